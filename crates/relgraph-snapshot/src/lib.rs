//! The snapshot store: the whole graph's rows in one file, opened through
//! rkyv's validation, with each committed flush appended as a checksummed
//! batch so that a flush costs its change, not the file.
//!
//! ```
//! use relgraph_core::{Cell, Column, Entity, Registry, RowOp, Store, Value};
//! use relgraph_snapshot::SnapshotStore;
//!
//! let mut registry = Registry::new();
//! registry.entity(
//!     Entity::new("Parent", "parent")
//!         .column(Column::integer("id").primary_key())
//!         .column(Column::text("name")),
//! )?;
//! let schema = registry.configure()?;
//! let path = std::env::temp_dir().join(format!("relgraph-doc-{}.snap", std::process::id()));
//! # let _ = std::fs::remove_file(&path);
//!
//! let mut store = SnapshotStore::open(&path)?;
//! store.create_tables(&schema)?;
//! store.begin()?;
//! let parent = schema.table_id("parent").unwrap();
//! let row = vec![Cell::Value(Value::Integer(1)), Cell::Value(Value::from("p1"))].into_boxed_slice();
//! store.apply_all(&schema, &[RowOp::Insert { table: parent, row }])?;
//! store.commit()?;
//! drop(store);
//!
//! // A second process (here: a second store) reads the committed row back.
//! let mut again = SnapshotStore::open(&path)?;
//! again.create_tables(&schema)?;
//! let rows = again.load_all(&schema, parent)?;
//! assert_eq!(rows[0][1], Value::from("p1"));
//! # drop(again);
//! # std::fs::remove_file(&path)?;
//! # std::fs::remove_file(path.with_extension("snap.lock"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The file format is described in `docs/snapshot-format.md` and in
//! [`format`](mod@format). Engine types never derive rkyv's traits: this crate owns its
//! record types.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;

use relgraph_core::{ErrorKind, StoreError};

mod changed;
pub mod describe;
pub mod format;
mod image;
mod overlay_index;
mod store;

pub use describe::{ColumnDesc, ForeignKeyDesc, TableDesc};
pub use image::ValueRef;
pub use store::{Compaction, SnapshotInfo, SnapshotOptions, SnapshotStore};

/// Why a snapshot file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The file does not start with the snapshot magic.
    #[error("not a relgraph snapshot file (the RELGRAPH magic is missing)")]
    NotASnapshot,
    /// The file was written by a newer format version.
    #[error("snapshot format version {found} is newer than this build reads (up to version {supported})")]
    NewerVersion {
        /// The file's version.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The file ends before its header or base image does.
    #[error("snapshot truncated: the file ends inside the {what} at byte {offset}")]
    Truncated {
        /// The part cut short.
        what: &'static str,
        /// The file's length.
        offset: u64,
    },
    /// A checksum or validation failed.
    #[error("snapshot corrupt at byte {offset}: {what}")]
    Corrupt {
        /// Where the damage was found.
        offset: u64,
        /// What was wrong.
        what: String,
    },
    /// The file was written for another schema.
    #[error("snapshot written for another schema: {0}")]
    ForeignSchema(String),
    /// An IO error on the file.
    #[error("snapshot io on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Another store holds the file open for writing.
    #[error(
        "snapshot {path} is open for writing in another store (see its .lock file); open it read-only to look at it"
    )]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// rkyv could not serialize a record.
    #[error("snapshot encoding failed: {0}")]
    Encode(String),
}

/// Decodes a whole snapshot held in memory as opening a file does, then
/// reads every row of every table, looks each row up again by every index,
/// and runs [`SnapshotStore::verify`]: the decoder's full surface, for the
/// fuzz target and the corpus test. Whatever the bytes, it returns, never
/// panics.
///
/// # Errors
/// What opening the same bytes as a file would report.
pub fn decode(bytes: &[u8]) -> Result<Vec<Vec<relgraph_core::Row>>, StoreError> {
    let store = SnapshotStore::from_bytes(bytes)?;
    let tables: Vec<Vec<relgraph_core::Row>> =
        (0..store.tables().len()).map(|t| store.rows(t)).collect::<Result<_, _>>()?;
    store.lookup_every_row()?;
    // A file can be well-formed and still break its own constraints; that is an error, not a panic.
    let _ = store.verify();
    Ok(tables)
}

impl SnapshotError {
    /// The backend-neutral kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SnapshotError::NotASnapshot | SnapshotError::Truncated { .. } | SnapshotError::Corrupt { .. } => {
                ErrorKind::Corrupt
            }
            SnapshotError::ForeignSchema(_) => ErrorKind::Schema,
            SnapshotError::NewerVersion { .. }
            | SnapshotError::Locked { .. }
            | SnapshotError::Io { .. }
            | SnapshotError::Encode(_) => ErrorKind::Other,
        }
    }
}

impl From<SnapshotError> for StoreError {
    fn from(e: SnapshotError) -> Self {
        StoreError::new(e.kind(), e.to_string()).with_source(e)
    }
}
