//! relgraph's foundation: the schema registry, values, row operations, the
//! store trait, and errors. No IO.
//!
//! ```
//! use relgraph_core::{Column, Entity, Registry, Relationship};
//!
//! let mut registry = Registry::new();
//! registry.entity(
//!     Entity::new("Parent", "parent")
//!         .column(Column::integer("id").primary_key())
//!         .relationship("children", Relationship::new("Child").back_populates("parent")),
//! )?;
//! registry.entity(
//!     Entity::new("Child", "child")
//!         .column(Column::integer("id").primary_key())
//!         .column(Column::integer("parent_id").foreign_key("parent.id"))
//!         .relationship("parent", Relationship::new("Parent").back_populates("children")),
//! )?;
//! let schema = registry.configure()?;
//! let children = schema.relationship_by_name("Parent", "children").unwrap();
//! assert_eq!(schema.relationship(children).direction, relgraph_core::Direction::OneToMany);
//! # Ok::<(), relgraph_core::ConfigError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod schema;
pub mod sql;
pub mod store;
pub mod value;

pub use error::ConfigError;
pub use schema::{
    Backref, Cascade, CascadeSpec, Column, ColumnDef, ColumnId, Direction, End, Entity, EntityDef, EntityId,
    ForeignKey, ForeignKeyDef, ForeignKeyId, LinkDef, LinkEnd, LinkId, LinkKind, OnDelete, PassiveDeletes,
    Registry, Relationship, RelationshipDef, RelationshipId, Schema, Secondary, Table, TableDef, TableId,
};
pub use store::{
    Cell, Echo, ErrorKind, InsertBatch, InsertRun, InsertStatement, Resolved, Row, RowOp, Store, StoreError,
};
pub use value::{ColumnType, Value};
