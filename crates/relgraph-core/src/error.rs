//! The configuration layer's error.

use thiserror::Error;

/// A mapping that cannot be configured. Every message names the table, column
/// or relationship (`Entity.name`) involved and, where there is one, the fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A table of this name is already in the registry (the seed's traceback).
    #[error(
        "table '{table}' is already defined for this registry; use `Table::new(\"{table}\").extend_existing()` to redefine options and columns on the existing table"
    )]
    TableExists {
        /// The table defined twice.
        table: String,
    },
    /// A table declares two columns of one name.
    #[error("table '{table}' declares column '{column}' twice")]
    DuplicateColumn {
        /// The table.
        table: String,
        /// The repeated column.
        column: String,
    },
    /// A column named by a constraint, `foreign_keys` or `remote_side` does not exist.
    #[error("{context} names column '{column}', which table '{table}' does not have")]
    UnknownColumn {
        /// What named it.
        context: String,
        /// The table searched.
        table: String,
        /// The missing column.
        column: String,
    },
    /// A foreign key target is not written as `"table.column"`.
    #[error("foreign key on {table}.{column} must reference \"table.column\", not '{target}'")]
    MalformedForeignKey {
        /// The table holding the foreign key.
        table: String,
        /// The column holding it.
        column: String,
        /// What was written.
        target: String,
    },
    /// A foreign key references a table that is not in the registry.
    #[error("foreign key on {table}.{column} references unknown table '{target_table}'")]
    ForeignKeyUnknownTable {
        /// The table holding the foreign key.
        table: String,
        /// The column holding it.
        column: String,
        /// The missing table.
        target_table: String,
    },
    /// A foreign key references a column its target table does not have.
    #[error(
        "foreign key on {table}.{column} references unknown column '{target_column}' of table '{target_table}'"
    )]
    ForeignKeyUnknownColumn {
        /// The table holding the foreign key.
        table: String,
        /// The column holding it.
        column: String,
        /// The referenced table.
        target_table: String,
        /// The missing column.
        target_column: String,
    },
    /// A foreign key's columns and referenced columns differ in number or type.
    #[error("foreign key on {table}.{column} does not match {target}: {reason}")]
    ForeignKeyMismatch {
        /// The table holding the foreign key.
        table: String,
        /// Its (first) column.
        column: String,
        /// The referenced `table.column`.
        target: String,
        /// What differs.
        reason: String,
    },
    /// A foreign key references columns that are neither the primary key nor unique.
    #[error(
        "foreign key on {table}.{column} references {target}, which is neither the primary key nor unique"
    )]
    ForeignKeyNotUnique {
        /// The table holding the foreign key.
        table: String,
        /// Its (first) column.
        column: String,
        /// The referenced `table.column`.
        target: String,
    },
    /// A mapped table has no primary key, so objects would have no identity.
    #[error("table '{table}' mapped by entity '{entity}' has no primary key")]
    NoPrimaryKey {
        /// The entity.
        entity: String,
        /// Its table.
        table: String,
    },
    /// Two entities share a name.
    #[error("entity '{entity}' is already defined for this registry")]
    EntityExists {
        /// The entity defined twice.
        entity: String,
    },
    /// An entity maps a table that is not in the registry.
    #[error("entity '{entity}' maps unknown table '{table}'; define it or give the entity columns")]
    UnknownEntityTable {
        /// The entity.
        entity: String,
        /// The missing table.
        table: String,
    },
    /// Two entities map one table.
    #[error("table '{table}' is mapped by both '{first}' and '{second}'")]
    TableMappedTwice {
        /// The table.
        table: String,
        /// The first entity.
        first: String,
        /// The second entity.
        second: String,
    },
    /// A relationship targets an entity that is not in the registry.
    #[error("relationship {relationship} targets unknown entity '{target}'")]
    UnknownTarget {
        /// The relationship, as `Entity.name`.
        relationship: String,
        /// The missing entity.
        target: String,
    },
    /// A relationship's name is already used on its entity (by a relationship or a column).
    #[error("{relationship} is defined twice: the name is already taken by {taken_by}")]
    DuplicateRelationship {
        /// The relationship, as `Entity.name`.
        relationship: String,
        /// What already holds the name.
        taken_by: String,
    },
    /// `back_populates` names a relationship the target entity does not have.
    #[error(
        "relationship {relationship} has back_populates='{back_populates}', but entity '{target}' has no relationship of that name"
    )]
    BackPopulatesMissing {
        /// The relationship, as `Entity.name`.
        relationship: String,
        /// The name it gave.
        back_populates: String,
        /// The target entity.
        target: String,
    },
    /// `back_populates` names a relationship that does not name this one back.
    #[error(
        "relationship {relationship} has back_populates='{other}', but {other_full} {points}; both sides must name each other"
    )]
    BackPopulatesNotReciprocal {
        /// The relationship, as `Entity.name`.
        relationship: String,
        /// The name it gave.
        other: String,
        /// The other relationship, as `Entity.name`.
        other_full: String,
        /// What the other side does instead.
        points: String,
    },
    /// Two relationships that name each other do not describe one link.
    #[error("relationships {relationship} and {other} name each other but {reason}")]
    BackPopulatesMismatch {
        /// The relationship, as `Entity.name`.
        relationship: String,
        /// The other side, as `Entity.name`.
        other: String,
        /// Why they are not one link.
        reason: String,
    },
    /// A relationship has both `backref` and `back_populates`.
    #[error("relationship {relationship} has both backref and back_populates; use one")]
    BackrefAndBackPopulates {
        /// The relationship, as `Entity.name`.
        relationship: String,
    },
    /// A backref's name is already taken on the target entity.
    #[error(
        "backref '{backref}' of relationship {relationship} conflicts with {taken_by} on entity '{target}'"
    )]
    BackrefConflict {
        /// The relationship declaring the backref, as `Entity.name`.
        relationship: String,
        /// The backref's name.
        backref: String,
        /// The target entity.
        target: String,
        /// What already holds the name.
        taken_by: String,
    },
    /// No foreign key joins the two tables.
    #[error(
        "relationship {relationship}: no foreign key joins table '{table}' and table '{target_table}'; add a ForeignKey or use secondary"
    )]
    NoForeignKeyPath {
        /// The relationship, as `Entity.name`.
        relationship: String,
        /// The relationship's own table.
        table: String,
        /// The target's table.
        target_table: String,
    },
    /// More than one foreign key joins the two tables.
    #[error(
        "relationship {relationship}: more than one foreign key could join the tables ({candidates}); name one with foreign_keys"
    )]
    AmbiguousForeignKeyPath {
        /// The relationship, as `Entity.name`.
        relationship: String,
        /// The candidates, as `table.column` separated by commas.
        candidates: String,
    },
    /// Both sides of a self-referential pair would be one-to-many.
    #[error(
        "self-referential relationships {relationship} and {other} both infer one-to-many; set remote_side on the many-to-one side"
    )]
    AmbiguousSelfReferential {
        /// The relationship, as `Entity.name`.
        relationship: String,
        /// The other side, as `Entity.name`.
        other: String,
    },
    /// `secondary` names a table that is not in the registry.
    #[error("relationship {relationship} has secondary='{table}', which is not a table of this registry")]
    UnknownSecondary {
        /// The relationship, as `Entity.name`.
        relationship: String,
        /// The missing table.
        table: String,
    },
    /// The `secondary` closure returned no table.
    #[error("relationship {relationship}: its secondary closure returned no table")]
    SecondaryUnresolved {
        /// The relationship, as `Entity.name`.
        relationship: String,
    },
    /// The association table does not reference one of the two sides.
    #[error(
        "relationship {relationship}: secondary table '{secondary}' has no foreign key to table '{missing}'"
    )]
    SecondaryMissingForeignKey {
        /// The relationship, as `Entity.name`.
        relationship: String,
        /// The association table.
        secondary: String,
        /// The side's table it does not reference.
        missing: String,
    },
    /// A cascade string holds a word that is not a cascade.
    #[error(
        "relationship {relationship}: unknown cascade '{word}' (expected all, none, save-update, merge, refresh-expire, expunge, delete, delete-orphan)"
    )]
    InvalidCascade {
        /// The relationship, as `Entity.name`.
        relationship: String,
        /// The unknown word.
        word: String,
    },
    /// `delete-orphan` on a many-to-one or many-to-many side without `single_parent`.
    #[error(
        "relationship {relationship} is {direction} and has delete-orphan cascade; set single_parent(true) to say each target has one parent"
    )]
    DeleteOrphanNeedsSingleParent {
        /// The relationship, as `Entity.name`.
        relationship: String,
        /// `many-to-one` or `many-to-many`.
        direction: &'static str,
    },
    /// `passive_deletes="all"` combined with a `delete` cascade.
    #[error(
        "relationship {relationship} combines passive_deletes=all with a delete cascade; passive_deletes=all leaves children untouched, so it cannot also delete them"
    )]
    PassiveDeletesAllWithDelete {
        /// The relationship, as `Entity.name`.
        relationship: String,
    },
    /// `uselist=True` on a many-to-one side, which a single foreign key cannot hold.
    #[error(
        "relationship {relationship} is many-to-one, so uselist cannot be true: one foreign key holds one target"
    )]
    InvalidUselist {
        /// The relationship, as `Entity.name`.
        relationship: String,
    },
}
