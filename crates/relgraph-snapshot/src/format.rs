//! The file format: the record types (owned by this crate, never the
//! engine's), the header, and the checksummed frames of the log.
//!
//! Layout (every multi-byte integer little-endian; `docs/snapshot-format.md`
//! is the full description):
//!
//! ```text
//! header  64 bytes  magic "RELGRAPH", format version, schema fingerprint,
//!                   base length, base CRC, generation, header CRC
//! base    rkyv ImageRec, zero-padded to 16 bytes
//! frame*  16-byte frame header (payload length, payload CRC, sequence,
//!         header CRC), then an rkyv BatchRec zero-padded to 16 bytes
//! ```
//!
//! Every byte of the file is covered by a CRC-32, padding included, so any
//! single flipped byte is detected. A frame cut short by the end of the file
//! is the trace of a crash during an append: it was never committed, and
//! opening ignores it.

use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::SnapshotError;

/// The first eight bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"RELGRAPH";
/// The format version this build writes and the newest it reads. It reads
/// every older one too: version 2 added the [`ColumnData::Texts`] and
/// [`ColumnData::Blobs`] layouts, version 3 [`ColumnData::Integer32`];
/// files of a version hold none of the layouts added after it.
pub const FORMAT_VERSION: u32 = 3;
/// In [`ColumnData::Texts`] and [`ColumnData::Blobs`], the bit of an end
/// offset that marks the row NULL.
pub const NULL_END: u32 = 1 << 31;
/// Bytes in the file header.
pub const HEADER_LEN: usize = 64;
/// Bytes in a frame header.
pub const FRAME_HEADER_LEN: usize = 16;
/// Alignment of the base image and of every frame payload in the file.
pub const ALIGN: usize = 16;

/// One column value.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq)]
#[rkyv(derive(Debug))]
pub enum CellRec {
    /// SQL NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(String),
    /// A boolean.
    Boolean(bool),
    /// Bytes.
    Blob(Vec<u8>),
}

/// A column's declaration, enough to rebuild the table without the program
/// that wrote the file.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq)]
pub struct ColumnRec {
    /// The column's name.
    pub name: String,
    /// Its type, as its SQL name (`INTEGER`, `REAL`, `TEXT`, `BOOLEAN`, `BLOB`).
    pub ty: String,
    /// Whether it accepts NULL.
    pub nullable: bool,
    /// Whether it is part of the primary key.
    pub primary_key: bool,
    /// Whether the store generates its value.
    pub autoincrement: bool,
    /// Whether it carries a single-column unique constraint of its own.
    pub unique: bool,
}

/// A foreign key.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq)]
pub struct ForeignKeyRec {
    /// Its columns.
    pub columns: Vec<u32>,
    /// The referenced table's position in the image.
    pub ref_table: u32,
    /// The referenced columns.
    pub ref_columns: Vec<u32>,
    /// `NO ACTION`, `CASCADE` or `SET NULL`.
    pub on_delete: String,
}

/// A sorted view of a table: the positions of its rows ordered by `columns`.
/// Rows with a NULL in any of the columns are left out.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq)]
pub struct IndexRec {
    /// The columns, in comparison order.
    pub columns: Vec<u32>,
    /// Whether the rows themselves are in this order (the columns are a
    /// prefix of the table's sort columns, or, from format version 3 on,
    /// one integer column without NULLs that the rows happen to hold in
    /// order): `order` is then empty and a lookup searches the rows
    /// directly, NULLs sorting first.
    pub implicit: bool,
    /// Row positions.
    pub order: Vec<u32>,
}

pub use columns::{ArchivedColumnData, ColumnData};

/// The column record lives in a module of its own so that the types rkyv
/// derives from it (whose fields carry no docs) can be exempted from the
/// documentation lint without exempting anything else.
mod columns {
    #![allow(missing_docs)]

    use super::CellRec;

    /// One column of a table's rows, stored by type so that validating it costs
    /// nothing per value for numbers (rkyv checks a `Vec<i64>` by its bounds
    /// alone) and reading a value is an array access. `nulls` is a bitmap (bit
    /// `r % 8` of byte `r / 8` set for a NULL in row `r`), empty when the column
    /// holds no NULL.
    #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq)]
    pub enum ColumnData {
        /// Integers.
        Integer {
            /// One per row (0 where NULL).
            values: Vec<i64>,
            /// The NULL bitmap.
            nulls: Vec<u8>,
        },
        /// Floats.
        Float {
            /// One per row (0 where NULL).
            values: Vec<f64>,
            /// The NULL bitmap.
            nulls: Vec<u8>,
        },
        /// Booleans, one byte each (non-zero is true).
        Boolean {
            /// One per row.
            values: Vec<u8>,
            /// The NULL bitmap.
            nulls: Vec<u8>,
        },
        /// Text, one string per row (format version 1; read, no longer written).
        Text {
            /// One per row (empty where NULL).
            values: Vec<String>,
            /// The NULL bitmap.
            nulls: Vec<u8>,
        },
        /// Bytes, one vector per row (format version 1; read, no longer written).
        Blob {
            /// One per row (empty where NULL).
            values: Vec<Vec<u8>>,
            /// The NULL bitmap.
            nulls: Vec<u8>,
        },
        /// Values of more than one kind (a store may be given values of another
        /// type than the column's), one cell per row.
        Mixed {
            /// One per row.
            values: Vec<CellRec>,
        },
        /// Text, every row's run of one string (format version 2 on): the
        /// archive validates one string per column instead of one per row.
        Texts {
            /// The rows' text, one after another.
            text: String,
            /// Per row, where its run ends (it starts where the previous
            /// one ends), with [`NULL_END`](super::NULL_END) set for a NULL.
            ends: Vec<u32>,
        },
        /// Bytes, laid out as [`ColumnData::Texts`] (format version 2 on).
        Blobs {
            /// The rows' bytes, one after another.
            bytes: Vec<u8>,
            /// Per row, where its run ends, [`NULL_END`](super::NULL_END) set for a NULL.
            ends: Vec<u32>,
        },
        /// Integers that all fit in 32 bits, as most keys and foreign keys
        /// do (format version 3 on): half the bytes of [`ColumnData::Integer`]
        /// to write, checksum and read. Declared last, so that the variants
        /// before it keep their tags and the files of older versions read
        /// as they did; it is no larger than they are, so the archived
        /// column keeps its size.
        Integer32 {
            /// One per row (0 where NULL).
            values: Vec<i32>,
            /// The NULL bitmap.
            nulls: Vec<u8>,
        },
    }
}

/// A table: its declaration, its rows (column by column, in primary-key
/// order) and its indexes.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq)]
pub struct TableRec {
    /// The table's name.
    pub name: String,
    /// Its columns.
    pub columns: Vec<ColumnRec>,
    /// The primary-key columns.
    pub primary_key: Vec<u32>,
    /// Unique constraints, single-column ones included.
    pub uniques: Vec<Vec<u32>>,
    /// Foreign keys held by this table.
    pub foreign_keys: Vec<ForeignKeyRec>,
    /// The number of rows.
    pub rows: u32,
    /// The rows' values, one entry per column.
    pub data: Vec<ColumnData>,
    /// One index per key, unique constraint and foreign key.
    pub indexes: Vec<IndexRec>,
}

impl TableRec {
    /// About the bytes its values and indexes take archived: a capacity
    /// to serialize into without regrowing.
    pub fn data_len(&self) -> usize {
        let column = |data: &ColumnData| match data {
            ColumnData::Integer { values, nulls } => values.len() * 8 + nulls.len(),
            ColumnData::Integer32 { values, nulls } => values.len() * 4 + nulls.len(),
            ColumnData::Float { values, nulls } => values.len() * 8 + nulls.len(),
            ColumnData::Boolean { values, nulls } => values.len() + nulls.len(),
            ColumnData::Text { values, nulls } => {
                values.iter().map(|v| v.len() + 8).sum::<usize>() + nulls.len()
            }
            ColumnData::Blob { values, nulls } => {
                values.iter().map(|v| v.len() + 8).sum::<usize>() + nulls.len()
            }
            ColumnData::Mixed { values } => values.len() * 24,
            ColumnData::Texts { text, ends } => text.len() + ends.len() * 4,
            ColumnData::Blobs { bytes, ends } => bytes.len() + ends.len() * 4,
        };
        self.data.iter().map(column).sum::<usize>()
            + self.indexes.iter().map(|ix| ix.order.len() * 4).sum::<usize>()
    }
}

/// The base image: every table.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq)]
pub struct ImageRec {
    /// The tables, in the schema's order.
    pub tables: Vec<TableRec>,
}

/// One row's new state after a committed flush.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq)]
pub struct ChangeRec {
    /// The table's position.
    pub table: u32,
    /// The row's identity within the table: its position in the base image,
    /// or a number past the base for a row inserted since.
    pub row: u64,
    /// The row's cells, or `None` when it was deleted.
    pub cells: Option<Vec<CellRec>>,
}

/// One committed flush.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq)]
pub struct BatchRec {
    /// Changed rows, each row at most once.
    pub changes: Vec<ChangeRec>,
}

/// The fixed-size file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The format version.
    pub version: u32,
    /// The fingerprint of the schema the file was written for.
    pub fingerprint: u64,
    /// Bytes in the base image, without padding.
    pub base_len: u64,
    /// CRC-32 of the base image with its padding.
    pub base_crc: u32,
    /// How many times the file has been compacted.
    pub generation: u64,
}

/// `len` rounded up to [`ALIGN`].
pub fn padded(len: usize) -> usize {
    len.div_ceil(ALIGN) * ALIGN
}

/// Whether `bytes` hash to the checksum `stored`. A fuzzing build (`--cfg
/// fuzzing`, see `fuzz/run-stable.sh`) takes every checksum as holding, so
/// that mutated inputs reach the validation and the log replay behind the
/// checksums instead of stopping at them; the stable corpus test reseals
/// its inputs instead.
pub(crate) fn checksum_holds(bytes: &[u8], stored: u32) -> bool {
    cfg!(fuzzing) || crc32fast::hash(bytes) == stored
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

impl Header {
    /// The header's 64 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&self.version.to_le_bytes());
        out[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.fingerprint.to_le_bytes());
        out[24..32].copy_from_slice(&self.base_len.to_le_bytes());
        out[32..36].copy_from_slice(&self.base_crc.to_le_bytes());
        out[40..48].copy_from_slice(&self.generation.to_le_bytes());
        let crc = crc32fast::hash(&out[..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads and checks the header at the start of `file`.
    ///
    /// # Errors
    /// [`SnapshotError::NotASnapshot`] without the magic,
    /// [`SnapshotError::Truncated`] when the file ends inside the header,
    /// [`SnapshotError::NewerVersion`] for a version this build cannot read,
    /// [`SnapshotError::Corrupt`] when the header's checksum fails.
    pub fn decode(file: &[u8]) -> Result<Header, SnapshotError> {
        if file.len() < MAGIC.len() || file[..MAGIC.len()] != MAGIC {
            if file.len() < MAGIC.len() && MAGIC.starts_with(file) {
                return Err(SnapshotError::Truncated { what: "header", offset: file.len() as u64 });
            }
            return Err(SnapshotError::NotASnapshot);
        }
        if file.len() < HEADER_LEN {
            return Err(SnapshotError::Truncated { what: "header", offset: file.len() as u64 });
        }
        let version = le_u32(file, 8);
        let crc_ok = checksum_holds(&file[..60], le_u32(file, 60));
        // A newer writer may lay its header out differently, so its version
        // is reported even when this build's checksum does not hold for it.
        if version > FORMAT_VERSION {
            return Err(SnapshotError::NewerVersion { found: version, supported: FORMAT_VERSION });
        }
        if !crc_ok {
            return Err(SnapshotError::Corrupt { offset: 0, what: "header checksum mismatch".into() });
        }
        if version == 0 || le_u32(file, 12) as usize != HEADER_LEN {
            return Err(SnapshotError::Corrupt { offset: 8, what: "impossible header fields".into() });
        }
        Ok(Header {
            version,
            fingerprint: le_u64(file, 16),
            base_len: le_u64(file, 24),
            base_crc: le_u32(file, 32),
            generation: le_u64(file, 40),
        })
    }
}

/// Appends one frame holding `payload` (an archived [`BatchRec`]) to `out`.
pub fn encode_frame(out: &mut Vec<u8>, sequence: u32, payload: &[u8]) {
    let mut body = payload.to_vec();
    body.resize(padded(payload.len()), 0);
    let mut head = [0u8; FRAME_HEADER_LEN];
    head[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    head[4..8].copy_from_slice(&crc32fast::hash(&body).to_le_bytes());
    head[8..12].copy_from_slice(&sequence.to_le_bytes());
    let crc = crc32fast::hash(&head[..12]);
    head[12..16].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&body);
}

/// What the log holds after the base image.
pub enum Frame<'a> {
    /// A complete, checksummed frame.
    Batch {
        /// Its archived [`BatchRec`].
        payload: &'a [u8],
        /// The offset just past it.
        end: usize,
    },
    /// The file ends inside a frame: an append that a crash cut short.
    TornTail,
    /// The file ends exactly here.
    End,
}

/// Reads the frame at `at` of `file`, which must be [`ALIGN`]-aligned.
///
/// # Errors
/// [`SnapshotError::Corrupt`] when a checksum fails or the sequence number is
/// not `sequence`.
pub fn decode_frame(file: &[u8], at: usize, sequence: u32) -> Result<Frame<'_>, SnapshotError> {
    let rest = &file[at..];
    if rest.is_empty() {
        return Ok(Frame::End);
    }
    if rest.len() < FRAME_HEADER_LEN {
        return Ok(Frame::TornTail);
    }
    let corrupt = |what: &str| SnapshotError::Corrupt { offset: at as u64, what: what.into() };
    if !checksum_holds(&rest[..12], le_u32(rest, 12)) {
        return Err(corrupt("frame header checksum mismatch"));
    }
    if le_u32(rest, 8) != sequence {
        return Err(corrupt("frame out of sequence"));
    }
    let len = le_u32(rest, 0) as usize;
    let body_end = FRAME_HEADER_LEN + padded(len);
    if rest.len() < body_end {
        return Ok(Frame::TornTail);
    }
    if !checksum_holds(&rest[FRAME_HEADER_LEN..body_end], le_u32(rest, 4)) {
        return Err(corrupt("frame checksum mismatch"));
    }
    Ok(Frame::Batch { payload: &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len], end: at + body_end })
}

/// Serializes a record with rkyv.
///
/// # Errors
/// [`SnapshotError::Encode`] when rkyv refuses it (a buffer over 4 GiB).
pub fn to_bytes<T>(value: &T) -> Result<AlignedVec, SnapshotError>
where
    T: for<'a> rkyv::Serialize<
            rkyv::api::high::HighSerializer<AlignedVec, rkyv::ser::allocator::ArenaHandle<'a>, rancor::Error>,
        >,
{
    rkyv::to_bytes::<rancor::Error>(value).map_err(|e| SnapshotError::Encode(e.to_string()))
}

/// Validates an archived [`BatchRec`] and returns it: the only way bytes from
/// a log become records.
///
/// # Errors
/// [`SnapshotError::Corrupt`] when validation fails.
pub fn access_batch(payload: &[u8], offset: usize) -> Result<&ArchivedBatchRec, SnapshotError> {
    rkyv::access::<ArchivedBatchRec, rancor::Error>(payload).map_err(|e| SnapshotError::Corrupt {
        offset: offset as u64,
        what: format!("invalid log batch: {e}"),
    })
}

/// Validates an archived [`ImageRec`].
///
/// # Errors
/// [`SnapshotError::Corrupt`] when validation fails.
pub fn access_image(base: &[u8]) -> Result<&ArchivedImageRec, SnapshotError> {
    rkyv::access::<ArchivedImageRec, rancor::Error>(base).map_err(|e| SnapshotError::Corrupt {
        offset: HEADER_LEN as u64,
        what: format!("invalid base image: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let header = Header { version: 1, fingerprint: 42, base_len: 100, base_crc: 7, generation: 3 };
        let bytes = header.encode();
        assert_eq!(Header::decode(&bytes).unwrap(), header);
        for i in 0..HEADER_LEN {
            let mut bad = bytes;
            bad[i] ^= 0x10;
            assert!(Header::decode(&bad).is_err(), "flip at {i} went unnoticed");
        }
        assert!(matches!(Header::decode(&bytes[..30]), Err(SnapshotError::Truncated { .. })));
        assert!(matches!(Header::decode(b"SQLite format 3\0"), Err(SnapshotError::NotASnapshot)));
    }

    #[test]
    fn frames_detect_damage_and_torn_tails() {
        let mut file = vec![0u8; 16];
        encode_frame(&mut file, 1, b"hello world");
        let end = file.len();
        assert!(matches!(decode_frame(&file, 16, 1), Ok(Frame::Batch { end: e, .. }) if e == end));
        assert!(matches!(decode_frame(&file, 16, 2), Err(SnapshotError::Corrupt { .. })));
        for cut in 17..end {
            assert!(matches!(decode_frame(&file[..cut], 16, 1), Ok(Frame::TornTail)), "cut at {cut}");
        }
        for i in 16..end {
            let mut bad = file.clone();
            bad[i] ^= 1;
            assert!(decode_frame(&bad, 16, 1).is_err(), "flip at {i} went unnoticed");
        }
    }
}
