//! relgraph's object graph: objects are slotmap nodes, links are typed
//! edges, and the back-populate engine keeps both sides of every
//! relationship right by construction. No IO.
//!
//! The graph implements petgraph's `visit` traits (see [`LinkView`] and the
//! impls on `&Graph`), so petgraph's traversals and algorithms run on it
//! directly. Its edge storage is its own: petgraph's adjacency lists are
//! singly linked, which makes unlinking O(degree), measured at 6 to 20 times
//! our per-operation budget on hub objects (see ARCHITECTURE.md).
//!
//! ```
//! use relgraph_core::{Column, Entity, Registry, Relationship};
//! use relgraph_graph::Graph;
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
//! let parent_of = schema.relationship_by_name("Child", "parent").unwrap();
//!
//! let mut graph = Graph::new(schema.clone());
//! let p = graph.insert(schema.entity_id("Parent").unwrap());
//! let c = graph.insert(schema.entity_id("Child").unwrap());
//! graph.append(p, children, c)?;
//! // One edge, seen from both ends.
//! assert_eq!(graph.scalar(c, parent_of)?, Some(p));
//! assert_eq!(graph.members(p, children)?.collect::<Vec<_>>(), [c]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod engine;
mod error;
mod visit;

use std::sync::Arc;

use relgraph_core::{ColumnId, End, EntityId, LinkId, LinkKind, Schema, Value};
use slotmap::SlotMap;
use smallvec::SmallVec;

/// The petgraph this crate implements `visit` traits for, so callers use the same version.
pub use petgraph;

pub use engine::Members;
pub use error::GraphError;
pub use visit::{LinkEdge, LinkView};

slotmap::new_key_type! {
    /// An object's in-memory handle: generational, so a key of a removed
    /// object is refused instead of reaching whatever reuses its slot.
    pub struct ObjectKey;
}

/// A position in the edge arena. Private: edges are named by their two
/// objects and their relationship in the public API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct EdgeIx(u32);

/// The absent edge, in the intrusive lists and scalar slots.
fn no_edge() -> EdgeIx {
    EdgeIx(u32::MAX)
}

/// One link: which link type it is, its two objects (source first), and its
/// place in the ordered collection at each end (index 0 at the source, 1 at
/// the target). A free arena entry has `link == None` and chains the free
/// list through `next[0]`.
#[derive(Clone, Copy, Debug)]
struct EdgeData {
    link: Option<LinkId>,
    objects: [ObjectKey; 2],
    prev: [EdgeIx; 2],
    next: [EdgeIx; 2],
}

/// The edge arena: a vector with a free list, so that adding and removing an
/// edge are O(1) and an index stays put for the edge's lifetime.
#[derive(Debug)]
struct Edges {
    data: Vec<EdgeData>,
    free: EdgeIx,
    live: usize,
}

impl Edges {
    fn new() -> Self {
        Edges { data: Vec::new(), free: no_edge(), live: 0 }
    }

    fn add(&mut self, link: LinkId, objects: [ObjectKey; 2]) -> EdgeIx {
        let data = EdgeData { link: Some(link), objects, prev: [no_edge(); 2], next: [no_edge(); 2] };
        self.live += 1;
        if self.free == no_edge() {
            self.data.push(data);
            EdgeIx(self.data.len() as u32 - 1)
        } else {
            let edge = self.free;
            self.free = self[edge].next[0];
            self[edge] = data;
            edge
        }
    }

    fn remove(&mut self, edge: EdgeIx) {
        debug_assert!(self[edge].link.is_some(), "an edge is removed once");
        let free = self.free;
        let entry = &mut self[edge];
        entry.link = None;
        entry.next[0] = free;
        self.free = edge;
        self.live -= 1;
    }
}

impl std::ops::Index<EdgeIx> for Edges {
    type Output = EdgeData;
    fn index(&self, edge: EdgeIx) -> &EdgeData {
        &self.data[edge.0 as usize]
    }
}

impl std::ops::IndexMut<EdgeIx> for Edges {
    fn index_mut(&mut self, edge: EdgeIx) -> &mut EdgeData {
        &mut self.data[edge.0 as usize]
    }
}

/// The edges of one link end at one object.
///
/// A collection is a doubly-linked list threaded through the edge weights,
/// so that appending and unlinking are O(1) and the order is append order.
#[derive(Clone, Copy, Debug)]
enum Slot {
    One(EdgeIx),
    Many { head: EdgeIx, tail: EdgeIx, len: u32 },
}

#[derive(Debug)]
struct Object {
    entity: EntityId,
    values: Box<[Value]>,
    slots: Slots,
}

/// An object's link slots, held in the object itself up to two: most
/// entities take part in one or two links, and slots behind a pointer cost
/// every link operation a cache miss of their own (W4's link: 98 ns to 89,
/// unlink 47 ns to 34, medians of 30 alternated runs). A third slot moves
/// them all to the heap.
type Slots = SmallVec<[Slot; 2]>;

/// One link added or removed, as the journal records it (see [`Graph::set_journaling`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkChange {
    /// The link type.
    pub link: LinkId,
    /// The object at the source end.
    pub source: ObjectKey,
    /// The object at the target end.
    pub target: ObjectKey,
    /// Added (`true`) or removed.
    pub added: bool,
}

/// What the engine needs of a relationship on every call, resolved once.
#[derive(Clone, Copy, Debug)]
struct RelInfo {
    entity: EntityId,
    target: EntityId,
    link: LinkId,
    end: End,
    slot: u32,
    many: bool,
}

/// Per-entity templates, so that inserting an object copies instead of deciding.
#[derive(Debug)]
struct EntityInfo {
    defaults: Box<[Value]>,
    slots: Slots,
    /// For each column, a relationship (or link) that writes it from its
    /// links, as a message fragment; `None` for ordinary columns.
    managed: Box<[Option<Box<str>>]>,
}

/// Objects and their links for one schema.
///
/// Invalidation: removing an object invalidates its [`ObjectKey`] forever
/// (later calls with it return [`GraphError::StaleKey`]); no other operation
/// invalidates a key. Iterators borrow the graph, so no mutation can happen
/// while one is alive.
#[derive(Debug)]
pub struct Graph {
    schema: Arc<Schema>,
    objects: SlotMap<ObjectKey, Object>,
    edges: Edges,
    rels: Box<[RelInfo]>,
    entities: Box<[EntityInfo]>,
    /// Per link, the slot index at each end, so the engine never looks at the schema.
    link_slots: Box<[[u32; 2]]>,
    link_many: Box<[[bool; 2]]>,
    journaling: bool,
    journal: Vec<LinkChange>,
}

impl Graph {
    /// An empty graph over `schema`. O(schema).
    pub fn new(schema: Arc<Schema>) -> Self {
        let rels = schema
            .relationships()
            .iter()
            .map(|r| {
                let end = schema.link(r.link).end(r.end);
                RelInfo {
                    entity: r.entity,
                    target: r.target,
                    link: r.link,
                    end: r.end,
                    slot: end.slot,
                    many: end.many,
                }
            })
            .collect();
        let link_slots = schema.links().iter().map(|l| [l.ends[0].slot, l.ends[1].slot]).collect();
        let link_many = schema.links().iter().map(|l| [l.ends[0].many, l.ends[1].many]).collect();
        let entities = schema
            .entities()
            .iter()
            .enumerate()
            .map(|(index, e)| {
                let table = schema.table(e.table);
                let defaults = table.columns.iter().map(|c| c.default.clone().unwrap_or_default()).collect();
                let slots = e
                    .slots
                    .iter()
                    .map(|&(link, end)| {
                        if schema.link(link).end(end).many {
                            Slot::Many { head: no_edge(), tail: no_edge(), len: 0 }
                        } else {
                            Slot::One(no_edge())
                        }
                    })
                    .collect();
                let mut managed: Vec<Option<Box<str>>> = vec![None; table.columns.len()];
                for link in schema.links() {
                    let LinkKind::ForeignKey(fk) = link.kind else {
                        continue;
                    };
                    let fk = schema.foreign_key(fk);
                    let source = link.ends[0];
                    if source.entity.index() != index {
                        continue;
                    }
                    let owner = source
                        .relationship
                        .or(link.ends[1].relationship)
                        .map(|r| schema.relationship_path(r))
                        .unwrap_or_default();
                    for &c in &fk.columns {
                        managed[c as usize].get_or_insert_with(|| owner.clone().into_boxed_str());
                    }
                }
                EntityInfo { defaults, slots, managed: managed.into_boxed_slice() }
            })
            .collect();
        Graph {
            schema,
            objects: SlotMap::with_key(),
            edges: Edges::new(),
            rels,
            entities,
            link_slots,
            link_many,
            journaling: false,
            journal: Vec::new(),
        }
    }

    /// Turns the link journal on or off. While on, every link added or
    /// removed, including those displaced by cardinality, is recorded for
    /// [`Graph::take_journal`]; the session uses it to find what changed.
    pub fn set_journaling(&mut self, on: bool) {
        self.journaling = on;
    }

    /// Whether the journal is on.
    pub fn journaling(&self) -> bool {
        self.journaling
    }

    /// The link changes recorded since the last call, oldest first.
    pub fn take_journal(&mut self) -> Vec<LinkChange> {
        std::mem::take(&mut self.journal)
    }

    /// As [`Graph::take_journal`], but keeps the journal's buffer, so that a
    /// caller draining it after every edit does not allocate each time.
    pub fn drain_journal(&mut self) -> std::vec::Drain<'_, LinkChange> {
        self.journal.drain(..)
    }

    /// Writes a column value without the foreign-key check of
    /// [`Graph::set_value`]: for the session, which writes foreign-key
    /// columns from links after a flush and from rows when loading. The type
    /// is still checked.
    ///
    /// # Errors
    /// [`GraphError::StaleKey`], [`GraphError::ColumnNotOnEntity`], [`GraphError::TypeMismatch`].
    pub fn set_derived_value(
        &mut self,
        key: ObjectKey,
        column: ColumnId,
        value: Value,
    ) -> Result<Value, GraphError> {
        let entity = self.object(key)?.entity;
        self.check_column(entity, column)?;
        let def = self.schema.column(column);
        if let Some(found) = value.column_type().filter(|&t| t != def.ty) {
            return Err(GraphError::TypeMismatch {
                column: self.schema.column_path(column),
                expected: def.ty,
                found,
            });
        }
        Ok(std::mem::replace(&mut self.objects[key].values[column.index as usize], value))
    }

    /// The schema this graph was built for.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// How many objects the graph holds. O(1).
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the graph holds no object. O(1).
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// How many links (edges) the graph holds, over all relationships. O(1).
    pub fn link_count(&self) -> usize {
        self.edges.live
    }

    /// Reserves room for `objects` more objects and `links` more links.
    pub fn reserve(&mut self, objects: usize, links: usize) {
        self.objects.reserve(objects);
        self.edges.data.reserve(links);
    }

    /// Adds an object of `entity` with its columns' defaults (NULL where none
    /// is declared) and no links. O(columns).
    ///
    /// # Panics
    /// If `entity` comes from another schema and is out of range.
    pub fn insert(&mut self, entity: EntityId) -> ObjectKey {
        let info = &self.entities[entity.index()];
        let values = info.defaults.clone();
        let slots = info.slots.clone();
        self.objects.insert(Object { entity, values, slots })
    }

    /// Adds an object of `entity` with the given column values, each checked
    /// as [`Graph::set_value`] checks it. Nothing is added on error. O(columns).
    ///
    /// # Errors
    /// The errors of [`Graph::set_value`].
    ///
    /// # Panics
    /// If `entity` comes from another schema and is out of range.
    pub fn insert_with<I, V>(&mut self, entity: EntityId, values: I) -> Result<ObjectKey, GraphError>
    where
        I: IntoIterator<Item = (ColumnId, V)>,
        V: Into<Value>,
    {
        let mut row = self.entities[entity.index()].defaults.clone();
        for (column, value) in values {
            let value = value.into();
            self.check_value(entity, column, &value)?;
            row[column.index as usize] = value;
        }
        let key = self.insert(entity);
        self.objects[key].values = row;
        Ok(key)
    }

    /// Whether `key` names a live object. O(1).
    pub fn contains(&self, key: ObjectKey) -> bool {
        self.objects.contains_key(key)
    }

    /// The entity of an object. O(1).
    ///
    /// # Errors
    /// [`GraphError::StaleKey`].
    pub fn entity_of(&self, key: ObjectKey) -> Result<EntityId, GraphError> {
        Ok(self.object(key)?.entity)
    }

    /// An object's entity and row, found with one lookup. O(1).
    ///
    /// # Errors
    /// [`GraphError::StaleKey`].
    pub fn entity_and_row(&self, key: ObjectKey) -> Result<(EntityId, &[Value]), GraphError> {
        let object = self.object(key)?;
        Ok((object.entity, &object.values))
    }

    /// Every live object and its entity, in slot order. O(objects).
    pub fn objects(&self) -> impl Iterator<Item = (ObjectKey, EntityId)> + '_ {
        self.objects.iter().map(|(k, o)| (k, o.entity))
    }

    /// One column value of an object. O(1).
    ///
    /// # Errors
    /// [`GraphError::StaleKey`], [`GraphError::ColumnNotOnEntity`].
    pub fn value(&self, key: ObjectKey, column: ColumnId) -> Result<&Value, GraphError> {
        let object = self.object(key)?;
        self.check_column(object.entity, column)?;
        Ok(&object.values[column.index as usize])
    }

    /// The whole row of an object, in column order. O(1).
    ///
    /// # Errors
    /// [`GraphError::StaleKey`].
    pub fn row(&self, key: ObjectKey) -> Result<&[Value], GraphError> {
        Ok(&self.object(key)?.values)
    }

    /// Writes one column value, type-checked, and returns the old value. O(1).
    ///
    /// # Errors
    /// [`GraphError::StaleKey`]; [`GraphError::ColumnNotOnEntity`];
    /// [`GraphError::TypeMismatch`]; [`GraphError::NullNotAllowed`] for NULL
    /// in a NOT NULL column other than an autoincrement key, whose value the
    /// store will generate; [`GraphError::ManagedColumn`] for a foreign-key
    /// column that a relationship writes from its links.
    pub fn set_value(
        &mut self,
        key: ObjectKey,
        column: ColumnId,
        value: impl Into<Value>,
    ) -> Result<Value, GraphError> {
        let value = value.into();
        let entity = self.object(key)?.entity;
        self.check_value(entity, column, &value)?;
        let slot = &mut self.objects[key].values[column.index as usize];
        Ok(std::mem::replace(slot, value))
    }

    fn check_column(&self, entity: EntityId, column: ColumnId) -> Result<(), GraphError> {
        let table = self.schema.entity(entity).table;
        if column.table != table || column.index as usize >= self.schema.table(table).columns.len() {
            let column = if column.table.index() < self.schema.tables().len()
                && (column.index as usize) < self.schema.table(column.table).columns.len()
            {
                self.schema.column_path(column)
            } else {
                format!("{column:?}")
            };
            return Err(GraphError::ColumnNotOnEntity {
                column,
                entity: self.schema.entity(entity).name.clone(),
            });
        }
        Ok(())
    }

    fn check_value(&self, entity: EntityId, column: ColumnId, value: &Value) -> Result<(), GraphError> {
        self.check_column(entity, column)?;
        let def = self.schema.column(column);
        if let Some(owner) = &self.entities[entity.index()].managed[column.index as usize] {
            return Err(GraphError::ManagedColumn {
                column: self.schema.column_path(column),
                relationship: owner.to_string(),
            });
        }
        match value.column_type() {
            None if !def.nullable && !def.autoincrement => {
                Err(GraphError::NullNotAllowed { column: self.schema.column_path(column) })
            }
            Some(found) if found != def.ty => Err(GraphError::TypeMismatch {
                column: self.schema.column_path(column),
                expected: def.ty,
                found,
            }),
            _ => Ok(()),
        }
    }

    fn object(&self, key: ObjectKey) -> Result<&Object, GraphError> {
        // A match rather than `ok_or`: the error owns strings in other
        // variants, so an eagerly built one is dropped on every hit.
        match self.objects.get(key) {
            Some(object) => Ok(object),
            None => Err(GraphError::StaleKey(key)),
        }
    }

    /// Removes an object and every link it has, from both sides, and returns
    /// its row. Its key is stale from now on. O(links of the object).
    ///
    /// # Errors
    /// [`GraphError::StaleKey`].
    pub fn remove(&mut self, key: ObjectKey) -> Result<Box<[Value]>, GraphError> {
        let object = self.object(key)?;
        let slot_count = object.slots.len();
        for slot in 0..slot_count {
            while let Some(edge) = self.first_edge(key, slot) {
                self.disconnect(edge);
            }
        }
        let object = self.objects.remove(key).ok_or(GraphError::StaleKey(key))?;
        Ok(object.values)
    }

    /// Takes `keys` out of every collection and scalar, as [`Graph::remove`]
    /// would, but keeps the objects and their links so that
    /// [`Graph::reattach`] can put every link back exactly where it was
    /// (collection order included). Keys already stale are skipped. Nothing
    /// is journaled. Until the [`Detached`] is given back to one of the
    /// two, the graph must not change: its links are lists that the
    /// detached links still point into.
    pub fn detach_objects(&mut self, keys: &[ObjectKey]) -> Detached {
        let mut edges = Vec::new();
        let mut kept = Vec::with_capacity(keys.len());
        for &key in keys {
            let Some(object) = self.objects.get(key) else { continue };
            kept.push(key);
            for slot in 0..object.slots.len() {
                while let Some(edge) = self.first_edge(key, slot) {
                    self.detach_edge(edge);
                    edges.push(edge);
                }
            }
        }
        Detached { keys: kept, edges }
    }

    /// Puts back every link [`Graph::detach_objects`] took out, in reverse order, so
    /// each list is as it was.
    pub fn reattach(&mut self, detached: Detached) {
        for &edge in detached.edges.iter().rev() {
            self.attach_edge(edge);
        }
    }

    /// Removes detached objects for good, as [`Graph::remove`] would have:
    /// their links are freed (and journaled, when the journal is on), their
    /// keys are stale from now on. What they held comes back, to be dropped
    /// where the caller likes (a flush drops it on another thread).
    pub fn remove_detached(&mut self, detached: Detached) -> Removed {
        for &edge in &detached.edges {
            self.free_edge(edge);
        }
        let mut removed = Removed { rows: Vec::with_capacity(detached.keys.len()), slots: Vec::new() };
        for &key in &detached.keys {
            if let Some(object) = self.objects.remove(key) {
                removed.rows.push(object.values);
                // Slots held in place free nothing: only those on the heap go along.
                if object.slots.spilled() {
                    removed.slots.push(object.slots);
                }
            }
        }
        removed
    }
}

/// What [`Graph::remove_detached`] took out of the graph: the objects'
/// rows, in the order they were detached, and the link slots that were
/// not held in place.
#[derive(Debug)]
pub struct Removed {
    rows: Vec<Box<[Value]>>,
    slots: Vec<Slots>,
}

impl Removed {
    /// The removed objects' rows, in the order they were detached.
    pub fn rows(&self) -> &[Box<[Value]>] {
        &self.rows
    }
}

/// Objects taken out of every collection and scalar by [`Graph::detach_objects`],
/// to be removed ([`Graph::remove_detached`]) or put back ([`Graph::reattach`]).
#[derive(Debug, Default)]
#[must_use = "detached objects are removed or put back"]
pub struct Detached {
    keys: Vec<ObjectKey>,
    /// The links taken out, in the order they were.
    edges: Vec<EdgeIx>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_and_edge_weights_stay_small() {
        assert_eq!(std::mem::size_of::<Slot>(), 16);
        assert_eq!(std::mem::size_of::<EdgeData>(), 40);
        // Two slots in place, beside the entity and the row's pointer.
        assert_eq!(std::mem::size_of::<Object>(), 64);
    }
}
