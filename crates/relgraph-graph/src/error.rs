//! The graph layer's error.

use relgraph_core::ColumnType;
use thiserror::Error;

use crate::ObjectKey;

/// A graph operation refused before it changed anything. Every variant names
/// the object, relationship or column involved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GraphError {
    /// The key is null, or its object was removed.
    #[error("object {0:?} does not exist: its key is null or the object was removed")]
    StaleKey(ObjectKey),
    /// A relationship was used on an object of another entity.
    #[error("relationship {relationship} is not an attribute of entity '{entity}'")]
    NotOnEntity {
        /// The relationship, as `Entity.name`.
        relationship: String,
        /// The object's entity.
        entity: String,
    },
    /// A member or target of the wrong entity.
    #[error("relationship {relationship} holds '{expected}' objects, not '{found}'")]
    WrongEntity {
        /// The relationship, as `Entity.name`.
        relationship: String,
        /// The entity it holds.
        expected: String,
        /// The entity it was given.
        found: String,
    },
    /// A collection operation on a scalar relationship.
    #[error("relationship {relationship} is a scalar: use set() to assign it")]
    NotACollection {
        /// The relationship, as `Entity.name`.
        relationship: String,
    },
    /// A scalar operation on a collection relationship.
    #[error("relationship {relationship} is a collection: use append(), remove_member() or replace()")]
    NotAScalar {
        /// The relationship, as `Entity.name`.
        relationship: String,
    },
    /// A tree walk over a relationship whose target is another entity.
    #[error("relationship {relationship} is not self-referential, so it has no descendants or ancestors")]
    NotSelfReferential {
        /// The relationship, as `Entity.name`.
        relationship: String,
    },
    /// A relationship handle from another schema.
    #[error("relationship handle {0} does not belong to this graph's schema")]
    UnknownRelationship(usize),
    /// A column of another table.
    #[error("column {column} is not a column of entity '{entity}'")]
    ColumnNotOnEntity {
        /// The column, as `table.column`.
        column: String,
        /// The object's entity.
        entity: String,
    },
    /// A value of the wrong type.
    #[error("column {column} is {expected}, not {found}")]
    TypeMismatch {
        /// The column, as `table.column`.
        column: String,
        /// The column's type.
        expected: ColumnType,
        /// The value's type.
        found: ColumnType,
    },
    /// NULL written to a NOT NULL column.
    #[error("column {column} is NOT NULL")]
    NullNotAllowed {
        /// The column, as `table.column`.
        column: String,
    },
    /// A foreign-key column that a relationship writes from its links.
    #[error(
        "column {column} is written from the links of relationship {relationship}; link the objects instead"
    )]
    ManagedColumn {
        /// The column, as `table.column`.
        column: String,
        /// A relationship over the foreign key, as `Entity.name` (or the link's table when no side is named).
        relationship: String,
    },
}
