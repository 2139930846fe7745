//! The schema registry: declarations go in, `configure()` freezes them into a
//! [`Schema`] of typed handles that the graph, the session and the stores share.
//!
//! A [`Schema`] is immutable and `Send + Sync`; share it as `Arc<Schema>`.
//! Handles (`TableId`, `ColumnId`, `EntityId`, `RelationshipId`, `LinkId`)
//! index its vectors and stay valid for the schema's lifetime; a handle from
//! one schema means nothing in another.

mod cascade;
mod configure;
mod decl;

use std::collections::HashMap;
use std::fmt;

pub use cascade::{Cascade, OnDelete, PassiveDeletes};
pub use decl::{
    Backref, CascadeSpec, Column, Entity, ForeignKey, Relationship, ResolveSecondary, Secondary, Table,
};

use crate::error::ConfigError;
use crate::value::{ColumnType, Value};

macro_rules! schema_handle {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub(crate) u32);

        impl $name {
            /// The position of this handle in its schema (stable for the schema's lifetime).
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

schema_handle!(
    /// A table of a registry or schema.
    TableId
);
schema_handle!(
    /// A mapped entity (SQLAlchemy's mapped class).
    EntityId
);
schema_handle!(
    /// One named side of a link, as seen from its entity.
    RelationshipId
);
schema_handle!(
    /// One link type: a foreign key or an association table joining two
    /// entity ends. One edge of a link serves both of its relationships.
    LinkId
);
schema_handle!(
    /// A foreign-key constraint.
    ForeignKeyId
);

/// A column of a table: the table and the column's position in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ColumnId {
    /// The table.
    pub table: TableId,
    /// The position of the column in the table's row.
    pub index: u32,
}

/// A configured column.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnDef {
    /// The column's name.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// Whether it accepts NULL.
    pub nullable: bool,
    /// Whether it is part of the primary key.
    pub primary_key: bool,
    /// Whether the store generates its value when none is given.
    pub autoincrement: bool,
    /// Whether it carries a single-column unique constraint.
    pub unique: bool,
    /// The value a new object gets.
    pub default: Option<Value>,
}

/// A configured table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableDef {
    /// The table's name.
    pub name: String,
    /// Its columns, in row order.
    pub columns: Vec<ColumnDef>,
    /// Positions of the primary-key columns, in declaration order.
    pub primary_key: Vec<u32>,
    /// Unique constraints (single-column ones included), as column positions.
    pub uniques: Vec<Vec<u32>>,
    /// Foreign keys held by this table.
    pub foreign_keys: Vec<ForeignKeyId>,
    /// The entity mapping this table, if any (association tables have none).
    pub entity: Option<EntityId>,
}

impl TableDef {
    /// The autoincrement key column: the single integer primary key, when it
    /// is autoincrement.
    pub fn autoincrement_column(&self) -> Option<u32> {
        match self.primary_key.as_slice() {
            [pk] if self.columns[*pk as usize].autoincrement => Some(*pk),
            _ => None,
        }
    }

    /// The position of the column named `name`. O(columns).
    pub fn column_index(&self, name: &str) -> Option<u32> {
        self.columns.iter().position(|c| c.name == name).map(|i| i as u32)
    }
}

/// A configured foreign key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignKeyDef {
    /// The table holding it.
    pub table: TableId,
    /// Its columns in that table.
    pub columns: Vec<u32>,
    /// The referenced table.
    pub ref_table: TableId,
    /// The referenced columns, matching `columns` in order.
    pub ref_columns: Vec<u32>,
    /// The database's action when a referenced row is deleted.
    pub on_delete: OnDelete,
}

/// A configured entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityDef {
    /// The entity's name.
    pub name: String,
    /// The table it maps.
    pub table: TableId,
    /// Its relationships, declared ones first, then those its targets' backrefs created.
    pub relationships: Vec<RelationshipId>,
    /// The link ends this entity takes part in; an object keeps one slot of
    /// edges per entry, in this order.
    pub slots: Vec<(LinkId, End)>,
}

/// Which end of a link. An edge runs from its `Source` object to its `Target` object.
///
/// For a foreign-key link the source holds the foreign key (the child of
/// one-to-many); for a many-to-many link the source is the side whose
/// relationship was declared first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum End {
    /// The end that holds the foreign key, or the first side of a many-to-many link.
    Source = 0,
    /// The referenced end, or the second side of a many-to-many link.
    Target = 1,
}

impl End {
    /// The other end.
    pub fn opposite(self) -> End {
        match self {
            End::Source => End::Target,
            End::Target => End::Source,
        }
    }

    /// 0 for `Source`, 1 for `Target`.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How a link is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// A foreign key on the source's table referencing the target's table.
    ForeignKey(ForeignKeyId),
    /// An association table with one foreign key to each end, source's first.
    Secondary {
        /// The association table.
        table: TableId,
        /// The foreign keys to the source and to the target.
        foreign_keys: [ForeignKeyId; 2],
    },
}

/// One end of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkEnd {
    /// The entity at this end.
    pub entity: EntityId,
    /// The relationship that shows, on this end's objects, the objects at the
    /// other end; `None` for a side nobody declared.
    pub relationship: Option<RelationshipId>,
    /// Whether an object at this end can link to many objects at the other
    /// end (a collection) or at most one (a scalar).
    pub many: bool,
    /// The slot of this end in the entity's [`EntityDef::slots`].
    pub slot: u32,
}

/// A configured link: one edge type, seen from both ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkDef {
    /// How it is stored.
    pub kind: LinkKind,
    /// Source end first.
    pub ends: [LinkEnd; 2],
}

impl LinkDef {
    /// The end at `end`.
    pub fn end(&self, end: End) -> &LinkEnd {
        &self.ends[end.index()]
    }
}

/// The direction of a relationship, inferred from the foreign keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The target's table holds the foreign key.
    OneToMany,
    /// This entity's table holds the foreign key.
    ManyToOne,
    /// An association table holds both.
    ManyToMany,
}

impl Direction {
    /// The usual spelling, as in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::OneToMany => "one-to-many",
            Direction::ManyToOne => "many-to-one",
            Direction::ManyToMany => "many-to-many",
        }
    }
}

/// A configured relationship: one side of a link, named on its entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationshipDef {
    /// The attribute name.
    pub name: String,
    /// The entity it is an attribute of.
    pub entity: EntityId,
    /// The entity it shows.
    pub target: EntityId,
    /// The link whose edges it shows.
    pub link: LinkId,
    /// The end of the link its entity sits at.
    pub end: End,
    /// The inferred direction.
    pub direction: Direction,
    /// A collection (`true`) or a scalar.
    pub uselist: bool,
    /// The relationship on the other end, when both sides are named.
    pub reverse: Option<RelationshipId>,
    /// Cascades from this side.
    pub cascade: Cascade,
    /// `passive_deletes` of this side.
    pub passive_deletes: PassiveDeletes,
    /// `single_parent`.
    pub single_parent: bool,
    /// `post_update`.
    pub post_update: bool,
    /// Whether this side was created by a `backref` on the other side.
    pub from_backref: bool,
}

/// The frozen result of [`Registry::configure`]: every name resolved, every
/// relationship paired and directed.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    tables: Vec<TableDef>,
    foreign_keys: Vec<ForeignKeyDef>,
    entities: Vec<EntityDef>,
    relationships: Vec<RelationshipDef>,
    links: Vec<LinkDef>,
    table_names: HashMap<String, TableId>,
    entity_names: HashMap<String, EntityId>,
}

impl Schema {
    /// All tables, in definition order.
    pub fn tables(&self) -> &[TableDef] {
        &self.tables
    }

    /// All entities.
    pub fn entities(&self) -> &[EntityDef] {
        &self.entities
    }

    /// All relationships.
    pub fn relationships(&self) -> &[RelationshipDef] {
        &self.relationships
    }

    /// All links.
    pub fn links(&self) -> &[LinkDef] {
        &self.links
    }

    /// All foreign keys.
    pub fn foreign_keys(&self) -> &[ForeignKeyDef] {
        &self.foreign_keys
    }

    /// Handles of all tables, in definition order.
    pub fn table_ids(&self) -> impl ExactSizeIterator<Item = TableId> + use<> {
        (0..self.tables.len() as u32).map(TableId)
    }

    /// Handles of all entities, in declaration order.
    pub fn entity_ids(&self) -> impl ExactSizeIterator<Item = EntityId> + use<> {
        (0..self.entities.len() as u32).map(EntityId)
    }

    /// Handles of all relationships: declared ones in order, then those backrefs created.
    pub fn relationship_ids(&self) -> impl ExactSizeIterator<Item = RelationshipId> + use<> {
        (0..self.relationships.len() as u32).map(RelationshipId)
    }

    /// Handles of all foreign keys, in the order of [`Schema::foreign_keys`].
    pub fn foreign_key_ids(&self) -> impl ExactSizeIterator<Item = ForeignKeyId> + use<> {
        (0..self.foreign_keys.len() as u32).map(ForeignKeyId)
    }

    /// Handles of all links.
    pub fn link_ids(&self) -> impl ExactSizeIterator<Item = LinkId> + use<> {
        (0..self.links.len() as u32).map(LinkId)
    }

    /// The table behind a handle. O(1).
    ///
    /// # Panics
    /// If the handle comes from another schema and is out of range.
    pub fn table(&self, id: TableId) -> &TableDef {
        &self.tables[id.index()]
    }

    /// The entity behind a handle. O(1).
    ///
    /// # Panics
    /// If the handle comes from another schema and is out of range.
    pub fn entity(&self, id: EntityId) -> &EntityDef {
        &self.entities[id.index()]
    }

    /// The relationship behind a handle. O(1).
    ///
    /// # Panics
    /// If the handle comes from another schema and is out of range.
    pub fn relationship(&self, id: RelationshipId) -> &RelationshipDef {
        &self.relationships[id.index()]
    }

    /// The link behind a handle. O(1).
    ///
    /// # Panics
    /// If the handle comes from another schema and is out of range.
    pub fn link(&self, id: LinkId) -> &LinkDef {
        &self.links[id.index()]
    }

    /// The foreign key behind a handle. O(1).
    ///
    /// # Panics
    /// If the handle comes from another schema and is out of range.
    pub fn foreign_key(&self, id: ForeignKeyId) -> &ForeignKeyDef {
        &self.foreign_keys[id.index()]
    }

    /// The column behind a handle. O(1).
    ///
    /// # Panics
    /// If the handle comes from another schema and is out of range.
    pub fn column(&self, id: ColumnId) -> &ColumnDef {
        &self.tables[id.table.index()].columns[id.index as usize]
    }

    /// The table named `name`. O(1).
    pub fn table_id(&self, name: &str) -> Option<TableId> {
        self.table_names.get(name).copied()
    }

    /// The entity named `name`. O(1).
    pub fn entity_id(&self, name: &str) -> Option<EntityId> {
        self.entity_names.get(name).copied()
    }

    /// The relationship `name` of `entity`. O(relationships of the entity).
    pub fn relationship_id(&self, entity: EntityId, name: &str) -> Option<RelationshipId> {
        self.entities
            .get(entity.index())?
            .relationships
            .iter()
            .copied()
            .find(|r| self.relationships[r.index()].name == name)
    }

    /// The relationship `name` of the entity named `entity`, as `"Parent", "children"`.
    pub fn relationship_by_name(&self, entity: &str, name: &str) -> Option<RelationshipId> {
        self.relationship_id(self.entity_id(entity)?, name)
    }

    /// The column `name` of `table`. O(columns).
    pub fn column_id(&self, table: TableId, name: &str) -> Option<ColumnId> {
        let index = self.tables.get(table.index())?.column_index(name)?;
        Some(ColumnId { table, index })
    }

    /// The column `name` of the table mapped by `entity`. O(columns).
    pub fn entity_column(&self, entity: EntityId, name: &str) -> Option<ColumnId> {
        self.column_id(self.entities.get(entity.index())?.table, name)
    }

    /// `Entity.name`, as used in messages.
    pub fn relationship_path(&self, id: RelationshipId) -> String {
        let rel = self.relationship(id);
        format!("{}.{}", self.entity(rel.entity).name, rel.name)
    }

    /// `table.column`, as used in messages.
    pub fn column_path(&self, id: ColumnId) -> String {
        let table = self.table(id.table);
        format!("{}.{}", table.name, table.columns[id.index as usize].name)
    }

    /// A 64-bit fingerprint of everything a store depends on: tables, columns,
    /// types, keys and foreign keys. Stable across runs and platforms, so a
    /// snapshot can refuse a file written for another schema.
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv64::new();
        for table in &self.tables {
            h.write(table.name.as_bytes());
            for column in &table.columns {
                h.write(column.name.as_bytes());
                h.write(column.ty.sql_name().as_bytes());
                h.write(&[
                    u8::from(column.nullable),
                    u8::from(column.primary_key),
                    u8::from(column.autoincrement),
                    u8::from(column.unique),
                ]);
            }
            for unique in &table.uniques {
                h.write_u32s(unique);
            }
        }
        for fk in &self.foreign_keys {
            h.write_u32s(&[fk.table.0, fk.ref_table.0, fk.on_delete as u32]);
            h.write_u32s(&fk.columns);
            h.write_u32s(&fk.ref_columns);
        }
        h.finish()
    }
}

/// FNV-1a: tiny, deterministic across platforms and releases, which
/// `std::hash` does not promise.
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator keeps ("ab", "c") apart from ("a", "bc").
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }

    fn write_u32s(&mut self, values: &[u32]) {
        for v in values {
            self.write(&v.to_le_bytes());
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Collects table and entity declarations (SQLAlchemy's `MetaData` plus the
/// declarative base) until [`Registry::configure`] freezes them.
#[derive(Default)]
pub struct Registry {
    tables: Vec<Table>,
    table_names: HashMap<String, TableId>,
    entities: Vec<Entity>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("tables", &self.tables.iter().map(|t| &t.name).collect::<Vec<_>>())
            .field("entities", &self.entities.iter().map(|e| &e.name).collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Defines a table and returns its handle.
    ///
    /// # Errors
    /// [`ConfigError::TableExists`] when a table of this name is already
    /// defined and the declaration does not say
    /// [`extend_existing`](Table::extend_existing);
    /// [`ConfigError::DuplicateColumn`] when it declares a column twice.
    pub fn table(&mut self, table: Table) -> Result<TableId, ConfigError> {
        check_duplicate_columns(&table.name, &table.columns)?;
        if let Some(&id) = self.table_names.get(&table.name) {
            if !table.extend_existing {
                return Err(ConfigError::TableExists { table: table.name });
            }
            let existing = &mut self.tables[id.index()];
            for column in table.columns {
                match existing.columns.iter_mut().find(|c| c.name == column.name) {
                    Some(slot) => *slot = column,
                    None => existing.columns.push(column),
                }
            }
            existing.uniques.extend(table.uniques);
            existing.foreign_keys.extend(table.foreign_keys);
            return Ok(id);
        }
        let id = TableId(self.tables.len() as u32);
        self.table_names.insert(table.name.clone(), id);
        self.tables.push(table);
        Ok(id)
    }

    /// Declares an entity. When it carries columns, its table is defined too,
    /// exactly as [`Registry::table`] would.
    ///
    /// # Errors
    /// [`ConfigError::EntityExists`] for a second entity of the same name, and
    /// the errors of [`Registry::table`] when the entity defines its table.
    pub fn entity(&mut self, entity: Entity) -> Result<EntityId, ConfigError> {
        if self.entities.iter().any(|e| e.name == entity.name) {
            return Err(ConfigError::EntityExists { entity: entity.name });
        }
        if !entity.columns.is_empty() {
            let mut table = entity.table_constraints.clone();
            table.columns = entity.columns.clone();
            self.table(table)?;
        }
        let id = EntityId(self.entities.len() as u32);
        self.entities.push(entity);
        Ok(id)
    }

    /// The handle of the table named `name`, for `secondary_with` closures.
    pub fn table_id(&self, name: &str) -> Option<TableId> {
        self.table_names.get(name).copied()
    }

    /// Resolves every name, pairs relationships, infers their directions and
    /// freezes the result.
    ///
    /// # Errors
    /// The first [`ConfigError`] found, in declaration order.
    pub fn configure(&self) -> Result<std::sync::Arc<Schema>, ConfigError> {
        configure::configure(self).map(std::sync::Arc::new)
    }
}

fn check_duplicate_columns(table: &str, columns: &[Column]) -> Result<(), ConfigError> {
    for (i, column) in columns.iter().enumerate() {
        if columns[..i].iter().any(|c| c.name == column.name) {
            return Err(ConfigError::DuplicateColumn {
                table: table.to_owned(),
                column: column.name.clone(),
            });
        }
    }
    Ok(())
}
