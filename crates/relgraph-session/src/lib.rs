//! relgraph's session: the unit of work over one store.
//!
//! A [`Session`] owns a [`Graph`] and a [`Store`]. Objects are created
//! transient, join the session with [`Session::add`] (or through a
//! `save-update` cascade at flush), and are written by [`Session::flush`] as
//! one transaction of row operations in dependency order. Persistent objects
//! come from [`Session::get`] and the loading methods; their relationships
//! load lazily on first use, merged with the changes still pending.
//!
//! ```
//! use relgraph_core::{Column, Entity, Registry, Relationship};
//! use relgraph_session::Session;
//! use relgraph_testkit::memory_store::MemoryStore;
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
//!
//! let mut session = Session::new(schema.clone(), MemoryStore::new())?;
//! let p = session.new_object(schema.entity_id("Parent").unwrap());
//! let c = session.new_object(schema.entity_id("Child").unwrap());
//! session.append(p, children, c)?;
//! session.add(p)?; // the child comes along through save-update
//! let stats = session.flush()?;
//! assert_eq!(stats.inserts, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where a flush spends its time
//!
//! A flush opens `tracing` spans (target `relgraph::flush`, level DEBUG)
//! for its phases, inside one named `flush`: `unit_of_work` (cascades,
//! deletes, and the rows of an ordinary flush), `order`, `build` (a
//! pipelined flush's rows, built while the store writes them), `apply` and
//! `commit` (the store's; on the store's own thread in a pipelined,
//! overlapped or streamed flush, entered once per chunk applied, so their
//! busy time is the store's work and not its waiting), and `record` (the
//! session's record of what the store now holds). Any subscriber that
//! reports span timings shows them; `relgraph_cli::phases` collects them,
//! and `relgraph bench --phases` prints them. With no subscriber, a span
//! costs a check of a cached flag.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod flush;
mod identity;
mod load;
mod merge;
mod order;
mod overlap;
mod pipeline;
mod refresh;
mod stream;

use std::sync::Arc;

use relgraph_core::{
    ColumnId, EntityId, LinkId, RelationshipId, Row, Schema, Store, StoreError, TableId, Value,
};
use relgraph_graph::{Graph, LinkChange, ObjectKey};
use slotmap::SecondaryMap;
use smallvec::SmallVec;

pub use error::{FlushError, SessionError};
pub use flush::{FlushStats, Plan, PlannedOp};

/// Where an object stands with respect to the session and the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not in the session and not in the store.
    Transient,
    /// Added; inserted by the next flush.
    Pending,
    /// In the store, and tracked by the session.
    Persistent,
    /// Marked for deletion; deleted by the next flush.
    Deleted,
    /// Was in the session; expunged, or deleted by a flush.
    Detached,
}

/// What the session knows of one object.
#[derive(Clone, Debug)]
pub(crate) struct Tracked {
    pub(crate) state: State,
    /// Creation order in this session, for a deterministic plan.
    pub(crate) seq: u64,
    /// Whether the store holds a row for this object (it was flushed or loaded).
    pub(crate) persisted: bool,
    /// The stored row, kept from the first column write after a flush or
    /// load on; until then the graph's row *is* the stored row, because
    /// foreign-key columns change only when a flush commits (copy on write).
    pub(crate) snapshot: Option<Row>,
    /// Per slot of the entity: whether the links at that slot are all in
    /// memory. Up to 16 slots are held in place, for 8 bytes more than a
    /// boxed slice: one allocation (and one pointer to follow) fewer for
    /// every object tracked.
    pub(crate) loaded: SmallVec<[bool; 16]>,
    /// Whether a column value was written since the last flush.
    pub(crate) dirty: bool,
}

/// A unit of work over one store.
pub struct Session {
    schema: Arc<Schema>,
    graph: Graph,
    store: Box<dyn Store>,
    /// A flush's store at work on its own thread while the flush is worked
    /// out (see `stream.rs`); `None` outside a flush.
    stream: Option<stream::Stream>,
    tracked: SecondaryMap<ObjectKey, Tracked>,
    /// (table, primary key) to object: one object per row.
    /// Per table: primary key to object. One object per row. Keyed by
    /// `Row` so lookups take a borrowed `&[Value]` and allocate nothing.
    identity: Box<[identity::IdentityMap]>,
    /// Net link changes since the last flush: +1 added, -1 removed. Kept
    /// in the order the links were made, which is close to the order of the
    /// objects in memory, so a flush walks them without sorting.
    net: NetLinks,
    /// Objects with a column written since the last flush, so a flush looks
    /// at them rather than at every tracked object.
    written: Vec<ObjectKey>,
    /// Objects added or deleted since the last flush (their state at flush
    /// time decides), so a flush need not scan every tracked object.
    staged: Vec<ObjectKey>,
    next_seq: u64,
    /// Per entity, the foreign-key links whose source end it is (its row holds the key).
    fk_links: FkLinks,
    /// Per link, whether a side declares `post_update`.
    post_update: Box<[bool]>,
    /// Flushes of new rows only, with at least this many operations, build
    /// their rows while the store writes them (see [`Session::set_pipeline_threshold`]).
    pipeline_min: usize,
    /// Per table, its primary-key and foreign-key columns: the only ones a
    /// flush writes that the graph does not hold already.
    key_columns: Box<[Arc<[u32]>]>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("objects", &self.tracked.len())
            .field("pending_links", &self.net.len())
            .finish()
    }
}

impl Session {
    /// A session over `store`, creating the schema's tables where missing.
    ///
    /// # Errors
    /// The store's, when it cannot create the tables.
    pub fn new(schema: Arc<Schema>, store: impl Store + 'static) -> Result<Self, StoreError> {
        Self::with_store(schema, Box::new(store))
    }

    /// As [`Session::new`], with a boxed store.
    ///
    /// # Errors
    /// The store's, when it cannot create the tables.
    pub fn with_store(schema: Arc<Schema>, mut store: Box<dyn Store>) -> Result<Self, StoreError> {
        store.create_tables(&schema)?;
        let mut graph = Graph::new(schema.clone());
        graph.set_journaling(true);
        let tables = vec![(); schema.tables().len()];
        Ok(Session {
            key_columns: schema
                .tables()
                .iter()
                .map(|t| {
                    let mut columns = t.primary_key.clone();
                    for &fk in &t.foreign_keys {
                        columns.extend(
                            schema.foreign_key(fk).columns.iter().filter(|c| !t.primary_key.contains(c)),
                        );
                    }
                    columns.into()
                })
                .collect(),
            fk_links: schema_fk_links(&schema),
            post_update: schema
                .links()
                .iter()
                .map(|l| {
                    l.ends.iter().any(|e| e.relationship.is_some_and(|r| schema.relationship(r).post_update))
                })
                .collect(),
            pipeline_min: DEFAULT_PIPELINE_MIN,
            schema,
            graph,
            store,
            tracked: SecondaryMap::new(),
            identity: tables.into_iter().map(|()| identity::IdentityMap::default()).collect(),
            net: NetLinks::default(),
            written: Vec::new(),
            staged: Vec::new(),
            stream: None,
            next_seq: 0,
        })
    }

    /// Sets how many row operations a flush needs before the store runs it
    /// on a thread of its own. A flush of new rows only (INSERTs and
    /// association rows, no update or delete) then runs as a pipeline: the
    /// session builds the rows that follow while the store writes, so the
    /// flush takes about as long as the store alone. Any other flush in which
    /// no row waits for a key the store generates is *overlapped*: the
    /// session records what the rows will have written while the store
    /// writes and commits them, and puts it all back if the store fails.
    /// The rows and their order are the same either way; `0` does this for
    /// every such flush, `usize::MAX` for none. Default: 4,096.
    pub fn set_pipeline_threshold(&mut self, ops: usize) {
        self.pipeline_min = ops;
    }

    /// The schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The object graph, for reading (reads here never load from the store).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The store.
    pub fn store_mut(&mut self) -> &mut dyn Store {
        &mut *self.store
    }

    /// Swaps the store, for instance for a new connection after one was lost,
    /// and returns the old one. Nothing else changes: pending changes, the
    /// identity map and the record of what the store holds stay, so the new
    /// store must reach the same database.
    pub fn replace_store(&mut self, store: Box<dyn Store>) -> Box<dyn Store> {
        std::mem::replace(&mut self.store, store)
    }

    /// Sends the text of every statement the store runs to `echo` (SQLAlchemy's `echo=True`).
    pub fn set_echo(&mut self, echo: Option<relgraph_core::Echo>) {
        self.store.set_echo(echo);
    }

    /// A new transient object of `entity` with its columns' defaults. O(columns).
    pub fn new_object(&mut self, entity: EntityId) -> ObjectKey {
        let key = self.graph.insert(entity);
        self.track(key, State::Transient, false);
        key
    }

    /// A new transient object with column values, checked as the graph checks them.
    ///
    /// # Errors
    /// The graph's value errors.
    pub fn new_with<I, V>(&mut self, entity: EntityId, values: I) -> Result<ObjectKey, SessionError>
    where
        I: IntoIterator<Item = (ColumnId, V)>,
        V: Into<Value>,
    {
        let key = self.graph.insert_with(entity, values)?;
        self.track(key, State::Transient, false);
        Ok(key)
    }

    fn track(&mut self, key: ObjectKey, state: State, persisted: bool) {
        let entity = self.graph.entity_of(key).expect("tracked objects are live");
        let slots = self.schema.entity(entity).slots.len();
        // A new object's links are all in memory; a loaded one's are not yet.
        let loaded = SmallVec::from_elem(!persisted, slots);
        let tracked = Tracked { state, seq: self.next_seq, persisted, snapshot: None, loaded, dirty: false };
        self.tracked.insert(key, tracked);
        self.next_seq += 1;
    }

    /// The state of an object. O(1).
    pub fn state(&self, key: ObjectKey) -> State {
        match self.tracked.get(key) {
            Some(t) => t.state,
            None if self.graph.contains(key) => State::Transient,
            None => State::Detached,
        }
    }

    /// Describes an object for messages: `Parent(id=1)` or `Parent(new #3)`.
    pub fn describe(&self, key: ObjectKey) -> String {
        let Ok(entity) = self.graph.entity_of(key) else {
            return error::unknown(key);
        };
        let def = self.schema.entity(entity);
        let table = self.schema.table(def.table);
        let row = self.graph.row(key).expect("live object");
        let pk: Vec<String> = table
            .primary_key
            .iter()
            .filter(|&&c| !row[c as usize].is_null())
            .map(|&c| format!("{}={}", table.columns[c as usize].name, row[c as usize]))
            .collect();
        if pk.len() == table.primary_key.len() {
            format!("{}({})", def.name, pk.join(", "))
        } else {
            format!("{}(new #{})", def.name, self.tracked.get(key).map_or(0, |t| t.seq))
        }
    }

    /// Adds a transient object (it becomes pending), re-attaches a detached
    /// one, or cancels the deletion of a deleted one. O(1).
    ///
    /// # Errors
    /// [`relgraph_graph::GraphError::StaleKey`] for a removed object;
    /// [`SessionError::IdentityTaken`] when a detached object's primary key
    /// is held by another object of the session (one object per row).
    pub fn add(&mut self, key: ObjectKey) -> Result<(), SessionError> {
        let state = self.state(key);
        let persisted = match self.tracked.get(key) {
            Some(t) => t.persisted,
            None => return Err(relgraph_graph::GraphError::StaleKey(key).into()),
        };
        if state == State::Detached && persisted {
            self.reattach(key)?;
        }
        let tracked = self.tracked.get_mut(key).expect("checked above");
        tracked.state = match (state, tracked.persisted) {
            (State::Transient, _) | (State::Detached, false) => State::Pending,
            (State::Deleted, _) | (State::Detached, true) => State::Persistent,
            (other, _) => other,
        };
        if tracked.state == State::Pending {
            self.staged.push(key);
        }
        Ok(())
    }

    /// Marks an object for deletion at the next flush; its links stay
    /// visible until the flush commits (DESIGN rule 18). A pending object has
    /// no row to wait for: it leaves the session and the graph at once, with
    /// its links, and its key is stale from then on. O(1), or O(links) for a
    /// pending object.
    ///
    /// # Errors
    /// [`SessionError::NotInSession`] for a transient or detached object,
    /// [`SessionError::Deleted`] for one already deleted.
    pub fn delete(&mut self, key: ObjectKey) -> Result<(), SessionError> {
        let object = self.describe(key);
        let tracked =
            self.tracked.get_mut(key).ok_or(SessionError::NotInSession { object: object.clone() })?;
        tracked.state = match tracked.state {
            State::Pending => {
                self.tracked.remove(key);
                self.graph.remove(key)?;
                self.absorb_journal();
                return Ok(());
            }
            State::Persistent => {
                self.staged.push(key);
                State::Deleted
            }
            State::Deleted => return Err(SessionError::Deleted { object }),
            State::Transient | State::Detached => return Err(SessionError::NotInSession { object }),
        };
        Ok(())
    }

    /// Takes an object out of the session without deleting it from the store,
    /// with the objects reached from it through relationships whose cascade
    /// includes `expunge` (as `"all"` does), as SQLAlchemy's
    /// `Session.expunge()`. They stay in the graph: persisted ones become
    /// detached, pending ones transient; the identity map forgets them.
    /// Only relationships already in memory are followed.
    ///
    /// # Errors
    /// [`SessionError::NotInSession`] for an object the session does not track.
    pub fn expunge(&mut self, key: ObjectKey) -> Result<(), SessionError> {
        let object = self.describe(key);
        self.tracked.get(key).ok_or(SessionError::NotInSession { object })?;
        let reached = self.cascade_reach(key, relgraph_core::Cascade::EXPUNGE, |s, member| {
            s.tracked.contains_key(member)
        })?;
        for k in reached {
            self.expunge_one(k)?;
        }
        Ok(())
    }

    /// `key` and the objects reached from it in memory through relationships
    /// whose cascade includes `cascade`, where `follow` admits them, in the
    /// order they were reached.
    pub(crate) fn cascade_reach(
        &self,
        key: ObjectKey,
        cascade: relgraph_core::Cascade,
        follow: impl Fn(&Self, ObjectKey) -> bool,
    ) -> Result<Vec<ObjectKey>, relgraph_graph::GraphError> {
        let mut reached = vec![key];
        let mut seen: SecondaryMap<ObjectKey, ()> = SecondaryMap::new();
        seen.insert(key, ());
        let mut next = 0;
        while let Some(&k) = reached.get(next) {
            next += 1;
            let entity = self.graph.entity_of(k)?;
            for &rel in &self.schema.entity(entity).relationships {
                if !self.schema.relationship(rel).cascade.contains(cascade) {
                    continue;
                }
                for member in self.graph.members(k, rel)? {
                    if follow(self, member) && seen.insert(member, ()).is_none() {
                        reached.push(member);
                    }
                }
            }
        }
        Ok(reached)
    }

    /// Marks `o` as holding the row the store has, its graph row being that row.
    /// With a `log`, what this changes is noted there, to be put back.
    pub(crate) fn mark_persisted(&mut self, o: ObjectKey, log: Option<&mut overlap::RecordLog>) {
        if let Some(t) = self.tracked.get_mut(o) {
            let snapshot = t.snapshot.take();
            if let Some(log) = log {
                log.tracked(o, t.state, t.persisted, t.dirty, snapshot);
            }
            t.persisted = true;
            t.state = State::Persistent;
            t.dirty = false;
        }
    }

    /// Puts a detached object back into the identity map under its stored
    /// key, unless another object of this session holds that key now.
    fn reattach(&mut self, key: ObjectKey) -> Result<(), SessionError> {
        let Some(row) = self.stored(key) else { return Ok(()) };
        let table = self.schema.entity(self.graph.entity_of(key)?).table;
        let pk = self.pk_of_row(table, row);
        match self.identity[table.index()].claim(&pk, key) {
            Some(holder) if holder != key => {
                Err(SessionError::IdentityTaken { object: self.describe(key), holder: self.describe(holder) })
            }
            _ => Ok(()),
        }
    }

    fn expunge_one(&mut self, key: ObjectKey) -> Result<(), SessionError> {
        if let Some(row) = self.stored(key).map(<[Value]>::to_vec) {
            let entity = self.graph.entity_of(key)?;
            let table = self.schema.entity(entity).table;
            let pk = self.pk_of_row(table, &row);
            self.identity[table.index()].remove(&pk);
        }
        if let Some(tracked) = self.tracked.get_mut(key) {
            tracked.state = if tracked.persisted { State::Detached } else { State::Transient };
        }
        Ok(())
    }

    pub(crate) fn pk_of_row(&self, table: TableId, row: &[Value]) -> Row {
        self.schema.table(table).primary_key.iter().map(|&c| row[c as usize].clone()).collect()
    }

    fn refuse_deleted(&self, keys: &[ObjectKey]) -> Result<(), SessionError> {
        for &key in keys {
            if self.tracked.get(key).is_some_and(|t| t.state == State::Deleted) {
                return Err(SessionError::Deleted { object: self.describe(key) });
            }
        }
        Ok(())
    }

    /// Folds the graph's journal into the net link changes.
    fn absorb_journal(&mut self) {
        for LinkChange { link, source, target, added } in self.graph.drain_journal() {
            let entry = self.net.entry((link, source, target)).or_insert(0);
            *entry += if added { 1 } else { -1 };
            if *entry == 0 {
                self.net.swap_remove(&(link, source, target));
            }
        }
    }

    /// Writes a column value of an object. O(1).
    ///
    /// # Errors
    /// The graph's value errors; [`SessionError::Deleted`].
    pub fn set_value(
        &mut self,
        key: ObjectKey,
        column: ColumnId,
        value: impl Into<Value>,
    ) -> Result<Value, SessionError> {
        self.refuse_deleted(&[key])?;
        let value = value.into();
        // A stale key or a foreign column is refused before a snapshot is taken.
        self.graph.value(key, column)?;
        if let Some(t) = self.tracked.get_mut(key)
            && t.persisted
            && t.snapshot.is_none()
        {
            t.snapshot = Some(self.graph.row(key)?.into());
        }
        let old = match self.graph.set_value(key, column, value) {
            Ok(old) => old,
            Err(e) => {
                if let Some(t) = self.tracked.get_mut(key)
                    && !t.dirty
                {
                    t.snapshot = None;
                }
                return Err(e.into());
            }
        };
        if let Some(t) = self.tracked.get_mut(key)
            && !t.dirty
        {
            t.dirty = true;
            self.written.push(key);
        }
        Ok(old)
    }

    /// A column value. O(1).
    ///
    /// # Errors
    /// The graph's.
    pub fn value(&self, key: ObjectKey, column: ColumnId) -> Result<&Value, SessionError> {
        Ok(self.graph.value(key, column)?)
    }

    /// Before a link edit: both objects' slots of the link are loaded, so the
    /// edit merges with what the store holds.
    fn prepare_link(
        &mut self,
        key: ObjectKey,
        rel: RelationshipId,
        others: &[ObjectKey],
    ) -> Result<(), SessionError> {
        self.refuse_deleted(&[key])?;
        self.refuse_deleted(others)?;
        let def = self.schema.relationship(rel);
        let (link, end, target, uselist) = (def.link, def.end, def.target, def.uselist);
        self.ensure_loaded(key, link, end)?;
        for &other in others {
            if self.graph.entity_of(other)? == target {
                self.ensure_loaded(other, link, end.opposite())?;
            }
        }
        // Members displaced from `key`'s scalar side lose a link too: their side must be loaded.
        if !uselist && let Some(held) = self.graph.link_members(key, link, end)?.next() {
            self.ensure_loaded(held, link, end.opposite())?;
        }
        Ok(())
    }

    /// Runs one link edit on the graph after loading what it touches, then
    /// folds the links it changed (displaced ones included) into the session.
    fn edit<T>(
        &mut self,
        key: ObjectKey,
        rel: RelationshipId,
        others: &[ObjectKey],
        edit: impl FnOnce(&mut Graph) -> Result<T, relgraph_graph::GraphError>,
    ) -> Result<T, SessionError> {
        self.prepare_link(key, rel, others)?;
        let result = edit(&mut self.graph);
        self.absorb_journal();
        Ok(result?)
    }

    /// Loads the members `key.rel` holds now, so that unlinking them merges with the store.
    fn load_current_members(&mut self, key: ObjectKey, rel: RelationshipId) -> Result<(), SessionError> {
        let def = self.schema.relationship(rel);
        let (link, end) = (def.link, def.end);
        self.ensure_loaded(key, link, end)?;
        let old: Vec<ObjectKey> = self.graph.members(key, rel)?.collect();
        for o in old {
            self.ensure_loaded(o, link, end.opposite())?;
        }
        Ok(())
    }

    /// `key.rel.append(member)`, loading what it needs first. See [`Graph::append`].
    ///
    /// # Errors
    /// The graph's; [`SessionError::Deleted`]; loading errors.
    pub fn append(
        &mut self,
        key: ObjectKey,
        rel: RelationshipId,
        member: ObjectKey,
    ) -> Result<bool, SessionError> {
        self.edit(key, rel, &[member], |g| g.append(key, rel, member))
    }

    /// `key.rel.remove(member)`. See [`Graph::remove_member`].
    ///
    /// # Errors
    /// As [`Session::append`].
    pub fn remove_member(
        &mut self,
        key: ObjectKey,
        rel: RelationshipId,
        member: ObjectKey,
    ) -> Result<bool, SessionError> {
        self.edit(key, rel, &[member], |g| g.remove_member(key, rel, member))
    }

    /// `key.rel = target`. See [`Graph::set`].
    ///
    /// # Errors
    /// As [`Session::append`].
    pub fn set(
        &mut self,
        key: ObjectKey,
        rel: RelationshipId,
        target: Option<ObjectKey>,
    ) -> Result<Option<ObjectKey>, SessionError> {
        self.edit(key, rel, target.as_slice(), |g| g.set(key, rel, target))
    }

    /// `key.rel = members`. See [`Graph::replace`].
    ///
    /// # Errors
    /// As [`Session::append`].
    pub fn replace(
        &mut self,
        key: ObjectKey,
        rel: RelationshipId,
        members: &[ObjectKey],
    ) -> Result<(), SessionError> {
        self.refuse_deleted(&[key])?;
        self.load_current_members(key, rel)?;
        self.edit(key, rel, members, |g| g.replace(key, rel, members))
    }

    /// Unlinks every member of `key.rel`. See [`Graph::clear`].
    ///
    /// # Errors
    /// As [`Session::append`].
    pub fn clear(&mut self, key: ObjectKey, rel: RelationshipId) -> Result<usize, SessionError> {
        self.refuse_deleted(&[key])?;
        self.load_current_members(key, rel)?;
        self.edit(key, rel, &[], |g| g.clear(key, rel))
    }

    /// The members of `key.rel`, loading them from the store on first use. O(members).
    ///
    /// # Errors
    /// The graph's; loading errors.
    pub fn members(&mut self, key: ObjectKey, rel: RelationshipId) -> Result<Vec<ObjectKey>, SessionError> {
        let def = self.schema.relationship(rel);
        let (link, end) = (def.link, def.end);
        self.ensure_loaded(key, link, end)?;
        Ok(self.graph.members(key, rel)?.collect())
    }

    /// The target of the scalar `key.rel`, loading it on first use.
    ///
    /// # Errors
    /// As [`Session::members`], and [`relgraph_graph::GraphError::NotAScalar`].
    pub fn scalar(&mut self, key: ObjectKey, rel: RelationshipId) -> Result<Option<ObjectKey>, SessionError> {
        let def = self.schema.relationship(rel);
        let (link, end) = (def.link, def.end);
        self.ensure_loaded(key, link, end)?;
        Ok(self.graph.scalar(key, rel)?)
    }

    /// Discards every change since the last flush: pending objects leave the
    /// session, deletions are cancelled, written values and links return to
    /// what the store holds. Objects created since stay in the graph, transient.
    pub fn rollback(&mut self) {
        self.absorb_journal();
        self.graph.set_journaling(false);
        let mut changes: Vec<_> = self.net.drain(..).collect();
        changes.sort_by_cached_key(|((l, s, t), n)| (std::cmp::Reverse(*n), *l, self.seq(*s), self.seq(*t)));
        for ((link, source, target), n) in changes {
            // Removals are undone after additions, so a scalar end is free again when relinked.
            let _ = if n > 0 {
                self.graph.disconnect_link(link, source, target)
            } else {
                self.graph.connect_link(link, source, target)
            };
        }
        self.graph.take_journal();
        self.graph.set_journaling(true);
        // Written values go back to the stored row (only written objects have
        // a snapshot), except a detached object's: it is outside the session,
        // and its changes wait for it to be added back.
        for key in std::mem::take(&mut self.written) {
            let Some(t) = self.tracked.get_mut(key) else { continue };
            if t.state == State::Detached && t.persisted {
                self.written.push(key);
                continue;
            }
            t.dirty = false;
            let (Some(row), Ok(entity)) = (t.snapshot.take(), self.graph.entity_of(key)) else { continue };
            let table = self.schema.entity(entity).table;
            for (i, v) in row.iter().enumerate() {
                let _ = self.graph.set_derived_value(key, ColumnId { table, index: i as u32 }, v.clone());
            }
        }
        for key in std::mem::take(&mut self.staged) {
            if let Some(t) = self.tracked.get_mut(key) {
                match t.state {
                    State::Pending => t.state = State::Transient,
                    State::Deleted => t.state = State::Persistent,
                    _ => {}
                }
            }
        }
    }

    /// The row the store holds for `key`: its snapshot if a column was
    /// written since, the graph's row otherwise; `None` if never stored.
    pub(crate) fn stored(&self, key: ObjectKey) -> Option<&[Value]> {
        let t = self.tracked.get(key).filter(|t| t.persisted)?;
        match &t.snapshot {
            Some(row) => Some(row),
            None => self.graph.row(key).ok(),
        }
    }

    pub(crate) fn seq(&self, key: ObjectKey) -> u64 {
        self.tracked.get(key).map_or(u64::MAX, |t| t.seq)
    }

    /// Sorts objects by creation order (a stable sort: untracked ones keep
    /// their relative order, last). Each object's order is looked up once,
    /// not once per comparison: on 100,000 objects that lookup is most of
    /// the sort.
    pub(crate) fn sort_by_seq(&self, keys: &mut [ObjectKey]) {
        // Objects staged, cascaded or listed in the order they were made
        // are usually in order already: checked in one pass, with no copy.
        if keys.is_sorted_by_key(|&k| self.seq(k)) {
            return;
        }
        let mut pairs: Vec<(u64, ObjectKey)> = keys.iter().map(|&k| (self.seq(k), k)).collect();
        pairs.sort_by_key(|p| p.0);
        for (slot, (_, k)) in keys.iter_mut().zip(pairs) {
            *slot = k;
        }
    }
}

/// Column names of `table` at `columns`, comma-separated, for messages.
pub(crate) fn sql_columns(table: &relgraph_core::TableDef, columns: &[u32]) -> String {
    columns.iter().map(|&c| table.columns[c as usize].name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Per entity, its foreign-key links and their keys.
/// See [`Session::set_pipeline_threshold`]: below this, a second thread
/// costs more than it saves.
const DEFAULT_PIPELINE_MIN: usize = 4096;

/// Link changes by (link, source, target), in the order they were made.
type NetLinks = indexmap::IndexMap<(LinkId, ObjectKey, ObjectKey), i8, rustc_hash::FxBuildHasher>;

type FkLinks = Arc<[Box<[(LinkId, relgraph_core::ForeignKeyId)]>]>;

fn schema_fk_links(schema: &Schema) -> FkLinks {
    schema
        .entity_ids()
        .map(|entity| {
            schema
                .link_ids()
                .filter_map(|l| match schema.link(l).kind {
                    relgraph_core::LinkKind::ForeignKey(fk) if schema.link(l).ends[0].entity == entity => {
                        Some((l, fk))
                    }
                    _ => None,
                })
                .collect()
        })
        .collect()
}
