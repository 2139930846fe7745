//! relgraph keeps a relational object graph in memory with SQLAlchemy's
//! relationship patterns (one-to-many, many-to-one, one-to-one,
//! many-to-many through a `secondary` table, `back_populates` and `backref`)
//! and both sides of every link always in agreement.
//!
//! This crate re-exports the layers; see `ARCHITECTURE.md` for the map.
//!
//! ```
//! use relgraph::{Column, Entity, Graph, Registry, Relationship, Table};
//!
//! let mut registry = Registry::new();
//! let association = registry.table(
//!     Table::new("association")
//!         .column(Column::integer("left_id").foreign_key("left.id"))
//!         .column(Column::integer("right_id").foreign_key("right.id")),
//! )?;
//! registry.entity(
//!     Entity::new("Parent", "left")
//!         .column(Column::integer("id").primary_key())
//!         .relationship(
//!             "children",
//!             Relationship::new("Child").secondary(association).back_populates("parents"),
//!         ),
//! )?;
//! registry.entity(
//!     Entity::new("Child", "right")
//!         .column(Column::integer("id").primary_key())
//!         .relationship(
//!             "parents",
//!             Relationship::new("Parent").secondary(association).back_populates("children"),
//!         ),
//! )?;
//! let schema = registry.configure()?;
//! let children = schema.relationship_by_name("Parent", "children").unwrap();
//! let parents = schema.relationship_by_name("Child", "parents").unwrap();
//!
//! let mut graph = Graph::new(schema.clone());
//! let p = graph.insert(schema.entity_id("Parent").unwrap());
//! let c = graph.insert(schema.entity_id("Child").unwrap());
//! assert!(graph.append(p, children, c)?);
//! assert!(!graph.append(p, children, c)?, "membership is a set");
//! assert_eq!(graph.members(c, parents)?.collect::<Vec<_>>(), [p]);
//! graph.remove_member(p, children, c)?;
//! assert_eq!(graph.count(c, parents)?, 0);
//! # Ok::<(), relgraph::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use relgraph_core::{
    Backref, Cascade, CascadeSpec, Column, ColumnDef, ColumnId, ColumnType, ConfigError, Direction, End,
    Entity, EntityDef, EntityId, ForeignKey, ForeignKeyDef, ForeignKeyId, LinkDef, LinkEnd, LinkId, LinkKind,
    OnDelete, PassiveDeletes, Registry, Relationship, RelationshipDef, RelationshipId, Schema, Secondary,
    Table, TableDef, TableId, Value,
};
pub use relgraph_core::{
    Cell, Echo, ErrorKind, InsertBatch, InsertRun, InsertStatement, Row, RowOp, Store, StoreError,
};
pub use relgraph_graph::{
    Detached, Graph, GraphError, LinkEdge, LinkView, Members, ObjectKey, Removed, petgraph,
};
#[cfg(feature = "postgres")]
pub use relgraph_postgres::PostgresStore;
pub use relgraph_session::{FlushError, FlushStats, Plan, PlannedOp, Session, SessionError, State};
#[cfg(feature = "snapshot")]
pub use relgraph_snapshot::SnapshotStore;
#[cfg(feature = "sqlite")]
pub use relgraph_sqlite::SqliteStore;

/// Every relgraph error, one variant per layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The mapping could not be configured.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A graph operation was refused.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A session operation was refused or could not load.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A flush did not happen; every pending change is still in the session.
    #[error(transparent)]
    Flush(#[from] FlushError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The crates behind the facade, for what it does not re-export by name.
pub mod layers {
    pub use relgraph_core as core;
    pub use relgraph_graph as graph;
    #[cfg(feature = "postgres")]
    pub use relgraph_postgres as postgres;
    pub use relgraph_session as session;
    #[cfg(feature = "snapshot")]
    pub use relgraph_snapshot as snapshot;
    #[cfg(feature = "sqlite")]
    pub use relgraph_sqlite as sqlite;
}

/// The README's examples, compiled and run as doc tests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
