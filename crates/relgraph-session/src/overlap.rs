//! An overlapped flush: for a large flush that is not new rows only (so not
//! a pipeline), the store begins, applies and commits on a thread of its
//! own while this thread records what the operations will have written:
//! the values the graph takes, the identity map, the objects' states. What
//! the record changes goes into a log; if the store fails anywhere, the log
//! is played back and the session is as it was. What cannot be played back
//! (a deleted object leaving the graph, the link changes being cleared)
//! waits for the commit. The operations and their order are the plan's.

use std::sync::Arc;

use relgraph_core::{Cell, ColumnId, RowOp, Schema, Store, StoreError, TableId, Value};
use relgraph_graph::{Detached, ObjectKey};

use crate::flush::{FlushStats, Footprint, Reason, Work, free_later};
use crate::pipeline::{Lent, no_thread};
use crate::{FlushError, Session, State};

/// What an early record changed, in order, to be played back if the store fails.
#[derive(Default)]
pub(crate) struct RecordLog {
    changes: Vec<Change>,
    /// New objects that entered the record: one 24-byte entry instead of a
    /// key claim, a state change and a value for each foreign key that was
    /// NULL (40 bytes each), so that a pipelined flush of 100,000 new rows
    /// logs 2.4 MB rather than 8 to 12.
    inserted: Vec<Inserted>,
    /// The deleted objects, taken out of every collection and scalar while
    /// the store commits (the newest change): removed for good once it has.
    detached: Option<Detached>,
}

/// The columns whose bits `mask` sets (see [`Inserted`]), in order.
pub(crate) fn bits(mask: u32) -> impl Iterator<Item = u32> {
    (0..u32::BITS).filter(move |c| mask & (1 << c) != 0)
}

/// A new object `object` of `table` entered the identity map under its key
/// (no object held it) and became persistent; it was in `state`, dirty or
/// not, with no stored row, and the columns whose bits `nulled` sets held
/// NULL before the record wrote them. Logged after the first `after`
/// entries of `changes`.
struct Inserted {
    object: ObjectKey,
    table: TableId,
    state: State,
    dirty: bool,
    after: u32,
    nulled: u32,
}

enum Change {
    /// A graph value and the value it replaced.
    Value(ObjectKey, ColumnId, Value),
    /// An identity-map key and the object it mapped to before.
    Identity(TableId, relgraph_core::Row, Option<ObjectKey>),
    /// An object entered the identity map under its key (the key of its
    /// graph row as it is when the log is played back to here), where no
    /// object was: the common case, logged without copying the key.
    Claimed(TableId, ObjectKey),
    /// An object's state, whether it was persisted, whether dirty, and its
    /// stored row, as they were.
    Tracked(ObjectKey, State, bool, bool, Option<relgraph_core::Row>),
}

impl RecordLog {
    /// Room for `n` new objects' entries, made once.
    pub(crate) fn reserve_inserted(&mut self, n: usize) {
        self.inserted.reserve(n);
    }

    /// Whether [`RecordLog::inserted`] can note a new object now: its entry
    /// counts the changes before it in 32 bits. Past that (4 billion
    /// changes in one flush) the caller logs the object's changes one by
    /// one, as for any other object.
    pub(crate) fn takes_inserted(&self) -> bool {
        // This crate's own tests note only the first few new objects so,
        // and so play back logs that mix both kinds of entry for them.
        if cfg!(test) && self.inserted.len() >= 3 {
            return false;
        }
        self.changes.len() <= u32::MAX as usize
    }

    /// See [`Inserted`]; only when [`RecordLog::takes_inserted`].
    pub(crate) fn inserted(
        &mut self,
        object: ObjectKey,
        table: TableId,
        state: State,
        dirty: bool,
        nulled: u32,
    ) {
        debug_assert!(self.takes_inserted(), "{} changes logged", self.changes.len());
        let after = self.changes.len() as u32;
        self.inserted.push(Inserted { object, table, state, dirty, after, nulled });
    }

    pub(crate) fn value(&mut self, o: ObjectKey, column: ColumnId, old: Value) {
        self.changes.push(Change::Value(o, column, old));
    }

    /// `key` of `table` was mapped to an object; `before` held it until then.
    pub(crate) fn identity(
        &mut self,
        table: TableId,
        key: &[Value],
        object: ObjectKey,
        before: Option<ObjectKey>,
    ) {
        self.changes.push(match before {
            None => Change::Claimed(table, object),
            Some(_) => Change::Identity(table, key.into(), before),
        });
    }

    /// `key` of `table`, which `object` held, was taken out of the identity map.
    pub(crate) fn forgotten(&mut self, table: TableId, key: relgraph_core::Row, object: ObjectKey) {
        self.changes.push(Change::Identity(table, key, Some(object)));
    }

    pub(crate) fn tracked(
        &mut self,
        o: ObjectKey,
        state: State,
        persisted: bool,
        dirty: bool,
        snapshot: Option<relgraph_core::Row>,
    ) {
        self.changes.push(Change::Tracked(o, state, persisted, dirty, snapshot));
    }
}

impl Footprint for RecordLog {
    fn footprint(&self) -> usize {
        self.changes.len() + self.inserted.len()
    }
}

/// What the store's thread returns: the step that failed, if one did.
pub(crate) type StoreRun = Result<(), (&'static str, StoreError)>;

/// The store's side: the whole transaction.
fn run_store(store: &mut dyn Store, schema: &Schema, ops: &[RowOp], flush_span: &tracing::Span) -> StoreRun {
    store.begin().map_err(|e| ("begin", e))?;
    let mut keys = Vec::with_capacity(ops.len());
    tracing::debug_span!(target: "relgraph::flush", parent: flush_span, "apply")
        .in_scope(|| store.apply(schema, ops, &mut keys))
        .map_err(|e| ("a row operation", e))?;
    tracing::debug_span!(target: "relgraph::flush", parent: flush_span, "commit")
        .in_scope(|| store.commit())
        .map_err(|e| ("commit", e))
}

impl Session {
    /// Whether a flush of `ops` may record while the store writes: nothing in
    /// it waits for a key the store generates (so the record needs nothing
    /// back from the store), and no new object takes a deleted one's key (a
    /// re-key, recorded after the commit in any case, is rare).
    pub(crate) fn may_overlap(&self, work: &Work, ops: &[RowOp]) -> bool {
        let waits = |cells: &[Cell]| cells.iter().any(|c| matches!(c, Cell::Generated(_)));
        let generated = ops.iter().any(|op| {
            op.generates_key(&self.schema)
                || match op {
                    RowOp::Insert { row, .. } => waits(row),
                    RowOp::Update { key, values, .. } => waits(key) || waits(values),
                    RowOp::Delete { values, .. } => waits(values),
                }
        });
        !generated && !work.nodes.iter().any(|n| matches!(n.reason, Reason::Rekey { .. }))
    }

    /// Runs `ops` (nodes `order` of `work`) with the store on a thread of its
    /// own, recording meanwhile; see the module doc.
    pub(crate) fn flush_overlapped(
        &mut self,
        work: Work,
        order: Vec<u32>,
        ops: Vec<RowOp>,
    ) -> Result<FlushStats, FlushError> {
        let schema = Arc::clone(&self.schema);
        // The store moves to the writing thread for the run; the session
        // holds a stand-in that refuses everything until it comes back.
        let mut store = std::mem::replace(&mut self.store, Box::new(Lent));
        // Events the store logs through `tracing` reach this thread's subscriber.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        // The store's spans belong to this flush's.
        let flush_span = tracing::Span::current();
        let ran = std::thread::scope(|scope| {
            if no_thread() {
                return None;
            }
            let writer =
                std::thread::Builder::new().name("relgraph-store".into()).spawn_scoped(scope, || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        run_store(&mut *store, &schema, &ops, &flush_span)
                    })
                });
            let writer = writer.ok()?;
            let log = tracing::debug_span!(target: "relgraph::flush", "record").in_scope(|| {
                let mut log = self.record_ahead(&work, &ops, &order);
                self.detach_deleted(&work, &mut log);
                log
            });
            Some((log, writer.join()))
        });
        self.store = store;
        let (log, ran) = match ran {
            // No thread to be had (nothing recorded yet): the ordinary run.
            None => return self.run(work, order, ops),
            Some((log, ran)) => (log, ran),
        };
        let ran = match ran {
            Err(panic) => {
                // The store panicked: the early record goes back first.
                self.play_back(log);
                std::panic::resume_unwind(panic)
            }
            Ok(ran) => ran,
        };
        self.conclude(ran, log, work, &order, ops, 0)
    }

    /// Records what `ops` (nodes `order` of `work`) will have written once
    /// the store commits, deleted objects included, into a log to play back
    /// if it does not. The graph's journal stays off until the flush ends:
    /// these are not the user's changes.
    pub(crate) fn record_ahead(&mut self, work: &Work, ops: &[RowOp], order: &[u32]) -> RecordLog {
        let mut log = RecordLog::default();
        self.graph.set_journaling(false);
        self.record_ops(work, ops, order, &[], Some(&mut log));
        for &d in &work.deleted {
            self.forget_deleted(d, Some(&mut log));
        }
        log
    }

    /// Takes the deleted objects out of every collection and scalar while
    /// the store works, noting it in `log` (its newest change) so that a
    /// failed flush puts them back; [`Session::conclude`] removes them for
    /// good. W3's 10,000 objects took about 0.7 ms after the commit.
    pub(crate) fn detach_deleted(&mut self, work: &Work, log: &mut RecordLog) {
        debug_assert!(log.detached.is_none(), "detached once");
        log.detached = Some(self.graph.detach_objects(&work.deleted));
    }

    /// The end of an overlapped flush, its store back with how its
    /// transaction ended: on failure the store rolls back (unless it never
    /// began) and the log is played back; once committed, deleted objects
    /// leave the graph and the session settles. `streamed` UPDATEs went ahead.
    pub(crate) fn conclude(
        &mut self,
        ran: StoreRun,
        mut log: RecordLog,
        work: Work,
        order: &[u32],
        ops: Vec<RowOp>,
        streamed: usize,
    ) -> Result<FlushStats, FlushError> {
        if let Err((operation, e)) = ran {
            let e = if operation == "begin" {
                e
            } else {
                match self.store.rollback() {
                    Ok(()) => e,
                    Err(rollback) => e.with_rollback(rollback),
                }
            };
            self.play_back(log);
            return Err(FlushError::Store { operation: operation.to_owned(), source: e });
        }
        let _record = tracing::debug_span!(target: "relgraph::flush", "record").entered();
        let stats = FlushStats {
            overlapped: true,
            streamed,
            sent_ahead: work.sent_ahead,
            ..Self::stats(&work, order)
        };
        // The deleted objects left every collection and scalar while the
        // store committed (`detach_deleted`); now that it has, they go for
        // good (rule 18).
        let detached = match log.detached.take() {
            Some(detached) => detached,
            None => self.graph.detach_objects(&work.deleted),
        };
        let removed = self.graph.remove_detached(detached);
        self.settle(&work);
        free_later(((removed, work), (ops, log)));
        Ok(stats)
    }

    /// Puts back what an early record changed, newest first, and turns the
    /// graph's journal back on.
    pub(crate) fn play_back(&mut self, mut log: RecordLog) {
        if let Some(detached) = log.detached.take() {
            self.graph.reattach(detached);
        }
        // The two lists are undone as one, newest first: an object's key
        // leaves the identity map before the values it was claimed with
        // are put back, and a later state change is undone before it.
        let mut inserted = log.inserted.into_iter().rev().peekable();
        for (i, change) in log.changes.into_iter().enumerate().rev() {
            while let Some(entry) = inserted.next_if(|e| e.after as usize > i) {
                self.undo_inserted(entry);
            }
            self.undo(change);
        }
        for entry in inserted {
            self.undo_inserted(entry);
        }
        self.graph.set_journaling(true);
    }

    /// An [`Inserted`] entry stands for NULL values overwritten, a key
    /// claim and a state change (not persisted, no stored row): undone as
    /// those would be, newest first. The key leaves the identity map before
    /// the NULLs return, since a key column can be a foreign key too.
    fn undo_inserted(&mut self, entry: Inserted) {
        let Inserted { object, table, state, dirty, nulled, .. } = entry;
        self.undo(Change::Tracked(object, state, false, dirty, None));
        self.undo(Change::Claimed(table, object));
        for index in bits(nulled) {
            self.undo(Change::Value(object, ColumnId { table, index }, Value::Null));
        }
    }

    fn undo(&mut self, change: Change) {
        match change {
            Change::Value(o, column, old) => {
                let _ = self.graph.set_derived_value(o, column, old);
            }
            Change::Identity(table, key, before) => match before {
                Some(o) => {
                    self.identity[table.index()].insert(&key, o);
                }
                None => self.identity[table.index()].remove(&key),
            },
            Change::Claimed(table, o) => {
                if let Ok(row) = self.graph.row(o) {
                    let key = self.pk_of_row(table, row);
                    self.identity[table.index()].remove_if(&key, o);
                }
            }
            Change::Tracked(o, state, persisted, dirty, snapshot) => {
                if let Some(t) = self.tracked.get_mut(o) {
                    t.state = state;
                    t.persisted = persisted;
                    t.dirty = dirty;
                    t.snapshot = snapshot;
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use relgraph_core::{Row, Store, Value};
    use relgraph_testkit::fault::{Fault, FaultStore};
    use relgraph_testkit::memory_store::MemoryStore;
    use relgraph_testkit::workloads::{Handles, schema};

    use super::RecordLog;
    use crate::Session;
    use crate::pipeline::NO_THREAD;

    /// 40 parents with 3 children each, flushed; then every parent renamed,
    /// every fourth deleted (its children with it: delete-orphan) and the
    /// first child of every other parent moved to parent 1.
    pub(crate) fn staged(store: impl Store + 'static) -> Session {
        let schema = schema();
        let h = Handles::new(&schema);
        let mut session = Session::new(schema.clone(), store).unwrap();
        let col = |e, n| schema.entity_column(e, n).unwrap();
        let (pid, pname, cid) = (col(h.parent, "id"), col(h.parent, "name"), col(h.child, "id"));
        let mut parents = Vec::new();
        for p in 1..=40i64 {
            let parent = session.new_with(h.parent, [(pid, Value::from(p))]).unwrap();
            session.add(parent).unwrap();
            for k in 0..3 {
                let child = session.new_with(h.child, [(cid, Value::from(p * 10 + k))]).unwrap();
                session.append(parent, h.children, child).unwrap();
            }
            parents.push(parent);
        }
        session.flush().unwrap();
        for (i, &p) in parents.iter().enumerate() {
            session.set_value(p, pname, format!("renamed {i}")).unwrap();
            if i % 4 == 3 {
                session.delete(p).unwrap();
            } else if i % 2 == 0 && i > 0 {
                let first = session.members(p, h.children).unwrap()[0];
                session.set(first, h.child_parent, Some(parents[0])).unwrap();
            }
        }
        session.set_pipeline_threshold(0);
        session
    }

    /// [`staged`], with a new parent (its key given) when `insert`: then
    /// the flush is more than UPDATEs and DELETEs, overlapped but not streamed.
    fn staged_more(store: impl Store + 'static, insert: bool) -> Session {
        let mut session = staged(store);
        if insert {
            let schema = session.schema().clone();
            let h = Handles::new(&schema);
            let pid = schema.entity_column(h.parent, "id").unwrap();
            let fresh = session.new_with(h.parent, [(pid, Value::from(1000))]).unwrap();
            session.add(fresh).unwrap();
        }
        session
    }

    /// Every object's state and row, sorted, and the identity map's sizes.
    pub(crate) fn digest(session: &Session) -> Vec<String> {
        let mut out: Vec<String> = session
            .graph()
            .objects()
            .map(|(k, _)| format!("{k:?} {:?} {:?}", session.state(k), session.graph().row(k).unwrap()))
            .collect();
        out.sort();
        out.push(format!(
            "{:?}",
            session.identity.iter().map(|m| m.get(&[Value::from(1)])).collect::<Vec<_>>()
        ));
        out
    }

    pub(crate) fn rows(session: &mut Session) -> Vec<Vec<Row>> {
        let schema = session.schema().clone();
        schema.table_ids().map(|t| session.store_mut().load_all(&schema, t).unwrap()).collect()
    }

    #[test]
    fn a_store_that_panics_meanwhile_takes_back_the_record_and_the_panic_goes_on() {
        // Streamed (UPDATEs and DELETEs only), and overlapped only (a new
        // row with its key given makes it more than UPDATEs and DELETEs).
        for with_insert in [false, true] {
            let (store, fault) = FaultStore::new(Box::new(MemoryStore::new()), Fault::Never);
            let mut session = staged_more(store, with_insert);
            let before = digest(&session);
            let plan = session.plan().unwrap().to_string();
            let stats = staged_more(MemoryStore::new(), with_insert).flush().unwrap();
            assert!(stats.overlapped && (stats.streamed > 0) != with_insert, "{stats:?}");
            fault.set(Fault::PanicAtOp(5));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.flush()));
            assert!(result.is_err(), "the store's panic reaches the caller");
            assert_eq!(digest(&session), before, "the early record went back ({stats:?})");
            assert_eq!(session.plan().unwrap().to_string(), plan, "every pending change is kept");
        }
    }

    #[test]
    fn without_a_thread_an_overlapped_flush_runs_as_an_ordinary_one() {
        let mut threaded = staged(MemoryStore::new());
        let stats = threaded.flush().unwrap();
        assert!(stats.overlapped, "{stats:?}");
        assert!(stats.updates > 0 && stats.deletes > 0, "{stats:?}");
        let mut alone = staged(MemoryStore::new());
        NO_THREAD.with(|n| n.set(true));
        let stats_alone = alone.flush();
        NO_THREAD.with(|n| n.set(false));
        let stats_alone = stats_alone.unwrap();
        assert!(!stats_alone.overlapped);
        assert_eq!(FlushStatsCounts::of(&stats), FlushStatsCounts::of(&stats_alone));
        assert_eq!(rows(&mut threaded), rows(&mut alone));
        assert_eq!(digest(&threaded), digest(&alone), "the same record either way");
    }

    /// A new object's foreign key written by the record over a NULL is
    /// noted in its compact entry, not logged apart, and played back to
    /// NULL; when its key turns out to be held already, the same NULL is
    /// logged as a value change in its place and played back too.
    #[test]
    fn a_new_objects_foreign_key_goes_back_to_null() {
        let schema = schema();
        let h = Handles::new(&schema);
        let table = schema.entity(h.child).table;
        let cid = schema.entity_column(h.child, "id").unwrap();
        let parent_id = schema.entity_column(h.child, "parent_id").unwrap();
        for key_held in [false, true] {
            let mut session = Session::new(schema.clone(), MemoryStore::new()).unwrap();
            let child = session.new_with(h.child, [(cid, Value::from(5))]).unwrap();
            session.add(child).unwrap();
            let holder = session.new_object(h.child);
            if key_held {
                session.identity[table.index()].insert(&[Value::from(5)], holder);
            }
            let key_columns = session.key_columns[table.index()].clone();
            assert!(key_columns.contains(&parent_id.index), "parent_id is a key column");
            let mut row: Vec<relgraph_core::Cell> =
                session.graph().row(child).unwrap().iter().cloned().map(relgraph_core::Cell::Value).collect();
            row[parent_id.index as usize] = relgraph_core::Cell::Value(Value::from(9));
            let mut log = RecordLog::default();
            session.record_inserted(&key_columns, child, table, &row, 0, &[], Some(&mut log));
            assert_eq!(session.value(child, parent_id).unwrap(), &Value::from(9), "recorded");
            if key_held {
                assert!(log.inserted.is_empty(), "a key held already is no compact entry");
                assert!(
                    log.changes.iter().any(|c| matches!(c, super::Change::Value(o, col, Value::Null)
                        if *o == child && *col == parent_id)),
                    "the NULL is logged as a value change"
                );
            } else {
                assert_eq!(log.inserted.len(), 1);
                assert_eq!(log.inserted[0].nulled, 1 << parent_id.index);
                assert!(log.changes.is_empty(), "the NULL rides in the compact entry");
            }
            session.play_back(log);
            assert!(session.value(child, parent_id).unwrap().is_null(), "key held: {key_held}");
            assert_eq!(session.state(child), crate::State::Pending);
            let expected = key_held.then_some(holder);
            assert_eq!(session.identity[table.index()].get(&[Value::from(5)]), expected);
        }
    }

    /// A new object recorded twice in one flush (an INSERT, then an UPDATE
    /// of its own row) logs a compact entry, then a state change after it:
    /// played back newest first, it is pending again and out of the
    /// identity map, whatever its key.
    #[test]
    fn an_object_recorded_twice_is_played_back_newest_first() {
        let schema = schema();
        let h = Handles::new(&schema);
        let mut session = Session::new(schema.clone(), MemoryStore::new()).unwrap();
        let pid = schema.entity_column(h.parent, "id").unwrap();
        let parent = session.new_with(h.parent, [(pid, Value::from(7))]).unwrap();
        session.add(parent).unwrap();
        let table = session.schema().entity(h.parent).table;
        let key_columns = session.key_columns[table.index()].clone();
        let row: Vec<relgraph_core::Cell> =
            session.graph().row(parent).unwrap().iter().cloned().map(relgraph_core::Cell::Value).collect();
        let mut log = RecordLog::default();
        session.record_inserted(&key_columns, parent, table, &row, 0, &[], Some(&mut log));
        session.record_inserted(&key_columns, parent, table, &row, 0, &[], Some(&mut log));
        assert_eq!(session.state(parent), crate::State::Persistent);
        assert_eq!(log.inserted.len(), 1, "the first record is the compact entry");
        session.play_back(log);
        assert_eq!(session.state(parent), crate::State::Pending);
        assert!(!session.tracked[parent].persisted, "not stored");
        assert!(session.identity[table.index()].is_empty());
    }

    /// A pipelined flush (new rows only, recorded as they are built) that
    /// the store fails leaves every object as it was: pending, not stored,
    /// out of the identity map, its foreign keys as before. Flushed again,
    /// it writes what an unfailed flush writes, and every object is found
    /// by its key.
    #[test]
    fn a_failed_pipelined_flush_leaves_its_new_objects_unstored_and_flushes_again() {
        let schema = schema();
        let h = Handles::new(&schema);
        let stage = |store: Box<dyn Store>| {
            let mut session = Session::with_store(schema.clone(), store).unwrap();
            session.set_pipeline_threshold(0);
            let pid = schema.entity_column(h.parent, "id").unwrap();
            let cid = schema.entity_column(h.child, "id").unwrap();
            let mut objects = Vec::new();
            for p in 1..=20i64 {
                let parent = session.new_with(h.parent, [(pid, Value::from(p))]).unwrap();
                session.add(parent).unwrap();
                objects.push((parent, h.parent, p));
                for k in 0..3 {
                    let child = session.new_with(h.child, [(cid, Value::from(p * 10 + k))]).unwrap();
                    session.append(parent, h.children, child).unwrap();
                    objects.push((child, h.child, p * 10 + k));
                }
            }
            (session, objects)
        };
        let (mut reference, _) = stage(Box::new(MemoryStore::new()));
        assert!(reference.flush().unwrap().pipelined);
        let expected = rows(&mut reference);
        let (store, fault) = FaultStore::new(Box::new(MemoryStore::new()), Fault::AtOp(50));
        let (mut session, objects) = stage(Box::new(store));
        let before = digest(&session);
        assert!(session.flush().is_err(), "the fault fails the flush");
        assert_eq!(digest(&session), before, "states and rows as they were");
        for &(o, _, _) in &objects {
            assert!(!session.tracked[o].persisted, "{o:?} is not stored");
        }
        assert!(session.identity.iter().all(crate::identity::IdentityMap::is_empty));
        fault.set(Fault::Never);
        assert!(session.flush().unwrap().pipelined);
        assert_eq!(rows(&mut session), expected);
        for (o, entity, id) in objects {
            let table = schema.entity(entity).table;
            assert_eq!(session.identity[table.index()].get(&[Value::from(id)]), Some(o), "{o:?} by its key");
            assert_eq!(session.state(o), crate::State::Persistent);
        }
    }

    /// The counts of a flush, without how it ran.
    #[derive(Debug, PartialEq)]
    struct FlushStatsCounts([usize; 5]);

    impl FlushStatsCounts {
        fn of(s: &crate::FlushStats) -> Self {
            FlushStatsCounts([s.inserts, s.updates, s.deletes, s.association_inserts, s.association_deletes])
        }
    }
}
