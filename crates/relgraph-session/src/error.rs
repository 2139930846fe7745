//! The session layer's errors.

use relgraph_core::StoreError;
use relgraph_graph::{GraphError, ObjectKey};
use thiserror::Error;

/// A session operation (other than a flush) refused or failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The graph refused the operation.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// Loading from the store failed.
    #[error("loading from the store failed: {0}")]
    Load(#[from] StoreError),
    /// The object is not in the session (transient or detached).
    #[error("{object} is not in the session; add() it first")]
    NotInSession {
        /// The object, described.
        object: String,
    },
    /// The object is marked for deletion, so it cannot gain links (DESIGN rule 18).
    #[error("{object} is deleted in this session; it cannot be linked or changed")]
    Deleted {
        /// The object, described.
        object: String,
    },
    /// The object is pending: it has no stored row to read yet.
    #[error("{object} is pending: it has no row in the store until a flush writes it")]
    NotPersistent {
        /// The object, described.
        object: String,
    },
    /// The object's row is no longer in the store (deleted outside this session).
    #[error("{object} has no row in the store any more; it was deleted outside this session")]
    Gone {
        /// The object, described.
        object: String,
    },
    /// A detached object cannot come back: another object of the session
    /// holds its primary key (loaded after it was expunged). Expunge that
    /// one first, or `merge` the detached object's values onto it.
    #[error(
        "{object} cannot be added back: {holder} holds its primary key in this session; expunge it first, or merge()"
    )]
    IdentityTaken {
        /// The detached object.
        object: String,
        /// The object that holds the key.
        holder: String,
    },
    /// A key of the wrong shape for the entity's primary key.
    #[error("entity '{entity}' has a primary key of {expected} columns, not {found}")]
    KeyShape {
        /// The entity.
        entity: String,
        /// Its key's width.
        expected: usize,
        /// What was given.
        found: usize,
    },
    /// A row read from the store does not fit the schema.
    #[error("a row of table '{table}' read from the store does not fit the schema: {reason}")]
    BadRow {
        /// The table.
        table: String,
        /// What is wrong.
        reason: String,
    },
}

/// A flush that did not happen. Nothing was written (the store rolled back)
/// and every pending change is still in the session, so the cause can be
/// fixed and the flush run again.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FlushError {
    /// A link from an object in the unit of work to one outside it that no
    /// `save-update` cascade brings in (DESIGN rule 22).
    #[error(
        "{from} is linked through {relationship} to {to}, which is not in the session and no save-update cascade brings it in; add() it or unlink it"
    )]
    OutsideSession {
        /// The relationship, as `Entity.name` (or the link's table when no side is named).
        relationship: String,
        /// The object in the unit of work.
        from: String,
        /// The object outside it.
        to: String,
    },
    /// Deleting a parent would null a NOT NULL foreign key of a child that stays (DESIGN rule 11).
    #[error(
        "deleting {parent} would set {column} of {child} to NULL, but the column is NOT NULL; delete the child too (a delete cascade) or move it first"
    )]
    NotNullOrphan {
        /// The deleted parent.
        parent: String,
        /// The child that stays.
        child: String,
        /// The column, as `table.column`.
        column: String,
    },
    /// A required (NOT NULL) value is missing before any SQL runs.
    #[error("{object} has no value for NOT NULL column {column}")]
    MissingValue {
        /// The object.
        object: String,
        /// The column, as `table.column`.
        column: String,
    },
    /// Rows depend on each other in a cycle no nullable foreign key can break.
    #[error("rows depend on each other in a cycle that no nullable foreign key can break: {cycle}")]
    Cycle {
        /// The objects of the cycle.
        cycle: String,
    },
    /// Two objects of the unit of work claim one primary key.
    #[error("{first} and {second} have the same primary key in table '{table}'")]
    DuplicateKey {
        /// The table.
        table: String,
        /// One object.
        first: String,
        /// The other.
        second: String,
    },
    /// Loading what the flush needed (children to null, cascades) failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The store refused an operation or the transaction; it was rolled back.
    #[error("the flush was rolled back: {operation} failed: {source}")]
    Store {
        /// The operation that failed (or `commit`), described.
        operation: String,
        /// The store's error, with its backend-neutral kind.
        #[source]
        source: StoreError,
    },
}

impl From<relgraph_graph::GraphError> for FlushError {
    fn from(e: relgraph_graph::GraphError) -> Self {
        FlushError::Session(SessionError::Graph(e))
    }
}

impl FlushError {
    /// The store error's kind, when the store failed.
    pub fn store_kind(&self) -> Option<relgraph_core::ErrorKind> {
        match self {
            FlushError::Store { source, .. } => Some(source.kind),
            _ => None,
        }
    }
}

/// A key's description for messages: `Entity(pk)` or `Entity(new)`.
pub(crate) fn unknown(key: ObjectKey) -> String {
    format!("object {key:?}")
}
