//! A pipelined flush: for a flush of new rows only, the store begins and
//! writes on a thread of its own while this thread builds the rows that
//! follow, in run order, and hands them over in chunks. The rows, their
//! order and the all-or-nothing outcome are those of the ordinary flush;
//! what changes is that building the rows no longer adds to the time the
//! store takes.

use std::sync::Arc;
use std::sync::mpsc::{Sender, channel, sync_channel};

use relgraph_core::{Cell, Echo, ErrorKind, InsertBatch, Row, RowOp, Schema, Store, StoreError, TableId};
use relgraph_graph::ObjectKey;
use rustc_hash::FxHashSet as HashSet;
use smallvec::SmallVec;

use crate::flush::{FlushStats, KeyCheck, Kind, Reason, Streamed, Work};
use crate::overlap::RecordLog;
use crate::{FlushError, Session};

/// Operations per hand-over: enough for the store to batch (a multiple of
/// the SQLite store's 200-row statements), few enough that it starts early
/// and that a chunk's memory is reused rather than mapped afresh.
const CHUNK: usize = 1000;

/// Chunks that may wait between the two threads.
const QUEUED_CHUNKS: usize = 8;

/// Cells a new chunk has room for: a thousand rows of four columns (W1's
/// children). A chunk that needs more grows once and is reused.
const CHUNK_CELLS: usize = CHUNK * 4;

/// What the store's thread returns: the key it generated for each
/// operation, or the step that failed.
type StoreRun = Result<Vec<Option<i64>>, (&'static str, StoreError)>;

impl Session {
    /// Runs `work`, whose rows `streamed` describes, as a pipeline.
    pub(crate) fn flush_pipelined(
        &mut self,
        mut work: Work,
        streamed: Streamed,
    ) -> Result<FlushStats, FlushError> {
        let schema = Arc::clone(&self.schema);
        // The store moves to the writing thread for the run; the session
        // holds a stand-in that refuses everything until it comes back.
        let mut store = std::mem::replace(&mut self.store, Box::new(Lent));
        // Events the store logs through `tracing` reach this thread's subscriber.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        // The store's spans belong to this flush's.
        let flush_span = tracing::Span::current();
        let mut undo = Undo::default();
        let total = streamed.inserts.len() + streamed.links.len();
        // Taken by whichever side builds the rows: the pipeline, or the
        // fallback when no thread can start.
        let mut streamed = Some(streamed);
        let pipelined = std::thread::scope(|scope| {
            let (sender, receiver) = sync_channel::<InsertBatch>(QUEUED_CHUNKS);
            // Written chunks come back to be emptied and refilled here: the
            // rows are freed by the thread that made them, and their memory
            // serves the rows that follow.
            let (give_back, returned) = channel::<InsertBatch>();
            if no_thread() {
                return None;
            }
            let writer =
                std::thread::Builder::new().name("relgraph-store".into()).spawn_scoped(scope, || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        write(&mut *store, &schema, receiver, Some(give_back), total, &flush_span)
                    })
                });
            let writer = writer.ok()?;
            let rows = streamed.take()?;
            let mut hand_over = |chunk| {
                sender.send(chunk).ok()?;
                Some(match returned.try_recv() {
                    Ok(mut used) => {
                        used.clear();
                        used
                    }
                    Err(_) => InsertBatch::with_capacity(CHUNK_CELLS),
                })
            };
            let built = tracing::debug_span!(target: "relgraph::flush", "build")
                .in_scope(|| self.build_streamed(&mut work, rows, &mut hand_over, &mut undo));
            drop(sender);
            Some((built, writer.join()))
        });
        let (built, ran) = match pipelined {
            Some(outcome) => outcome,
            None => {
                // No thread to be had: the store writes here, once the rows are built.
                let mut chunks = Vec::new();
                let mut keep = |chunk| {
                    chunks.push(chunk);
                    Some(InsertBatch::with_capacity(CHUNK_CELLS))
                };
                let rows = streamed.take().expect("the pipeline did not start, so it took nothing");
                let built = tracing::debug_span!(target: "relgraph::flush", "build")
                    .in_scope(|| self.build_streamed(&mut work, rows, &mut keep, &mut undo));
                let ran = match &built {
                    Ok(_) => write(&mut *store, &schema, chunks, None, total, &flush_span),
                    Err(_) => Err(("begin", StoreError::new(ErrorKind::Usage, "not begun: the rows failed"))),
                };
                (built, Ok(ran))
            }
        };
        self.store = store;
        let ran = match ran {
            Ok(ran) => ran,
            Err(panic) => {
                // The store panicked: what was recorded early goes back first.
                self.play_back(undo.log);
                std::panic::resume_unwind(panic)
            }
        };
        let fail = |operation: &str, source| FlushError::Store { operation: operation.to_owned(), source };
        let (order, keys) = match (built, ran) {
            (Err(e), ran) => {
                // The session's own error comes first, whatever the store
                // made of the rows it got; none of them may stay written.
                if !matches!(ran, Err(("begin", _))) {
                    let _ = self.store.rollback();
                }
                self.play_back(undo.log);
                return Err(e);
            }
            (Ok(_), Err(("begin", e))) => {
                self.play_back(undo.log);
                return Err(fail("begin", e));
            }
            (Ok(_), Err((operation, e))) => {
                let e = match self.store.rollback() {
                    Ok(()) => e,
                    Err(rollback) => e.with_rollback(rollback),
                };
                self.play_back(undo.log);
                return Err(fail(operation, e));
            }
            // The store ran everything built: the session stops building
            // only when the store's thread has failed.
            (Ok(order), Ok(keys)) => (order, keys),
        };
        if let Err(e) =
            tracing::debug_span!(target: "relgraph::flush", "commit").in_scope(|| self.store.commit())
        {
            let e = match self.store.rollback() {
                Ok(()) => e,
                Err(rollback) => e.with_rollback(rollback),
            };
            self.play_back(undo.log);
            return Err(fail("commit", e));
        }
        let stats = FlushStats { pipelined: true, ..Self::stats(&work, &order) };
        let _record = tracing::debug_span!(target: "relgraph::flush", "record").entered();
        // Rows that waited for generated keys are recorded now; the rest
        // were recorded as they were built.
        let key_columns = std::mem::take(&mut self.key_columns);
        for (p, o, table, row) in std::mem::take(&mut undo.late) {
            self.record_inserted(&key_columns[table.index()], o, table, &row, p, &keys, None);
        }
        self.key_columns = key_columns;
        self.committed(work, &[], &[], &keys);
        Ok(stats)
    }

    /// Builds the rows of `streamed` in run order and sends them to the
    /// store's thread; returns the node of each operation sent. Stops early,
    /// without error, when the store's thread has stopped (its error says why).
    fn build_streamed(
        &mut self,
        work: &mut Work,
        streamed: Streamed,
        hand_over: &mut dyn FnMut(InsertBatch) -> Option<InsertBatch>,
        undo: &mut Undo,
    ) -> Result<Vec<u32>, FlushError> {
        let Streamed { inserts, links, seen } = streamed;
        work.in_run_order = true;
        // The early record puts every new row in the identity map: sized once.
        let mut per_table = vec![0usize; self.identity.len()];
        for &node in &inserts {
            per_table[work.nodes[node as usize].table.index()] += 1;
        }
        for (map, n) in self.identity.iter_mut().zip(per_table) {
            map.reserve(n);
        }
        undo.log.reserve_inserted(inserts.len());
        // Run positions of the INSERTs, for references to generated keys.
        let mut position = vec![u32::MAX; work.nodes.len()];
        for (p, &node) in inserts.iter().enumerate() {
            position[node as usize] = p as u32;
        }
        let renumber = |row: &mut [Cell]| {
            for cell in row {
                if let Cell::Generated(node) = cell {
                    *node = position[*node as usize];
                }
            }
        };
        let mut order = Vec::with_capacity(inserts.len() + links.len());
        let mut chunk = InsertBatch::with_capacity(CHUNK_CELLS);
        // Hands the chunk over once it is full; false once the store's thread has stopped.
        let mut send = |chunk: &mut InsertBatch| -> bool {
            if chunk.len() < CHUNK {
                return true;
            }
            match hand_over(std::mem::take(chunk)) {
                Some(next) => {
                    *chunk = next;
                    true
                }
                None => false,
            }
        };
        let (mut doomed, mut retired) = (HashSet::default(), HashSet::default());
        let mut keys = KeyCheck { seen, doomed: &mut doomed, retired: &mut retired };
        let keep_fk = HashSet::default();
        for &node in &inserts {
            let Reason::Insert(o) = work.nodes[node as usize].reason else {
                unreachable!("streamed INSERT nodes are inserts")
            };
            let table = work.nodes[node as usize].table;
            // Written in place, at the end of the chunk: no row of its own.
            let row = chunk.push_row(table, self.schema.table(table).columns.len());
            // Nothing is deleted in a pipelined flush, so a key held by
            // another object is a duplicate, never a re-key.
            if !self.fill_insert_row(work, o, node, &mut keys, &keep_fk, row)? {
                unreachable!("a re-key needs a deleted object, and a pipelined flush deletes none")
            }
            renumber(row);
            order.push(node);
            // While the store writes, this thread has time to spare: the
            // session's record of the row is written now, and put back if
            // the flush fails.
            if !self.record_early(o, table, row, undo) {
                undo.late.push((order.len() - 1, o, table, row.into()));
            }
            if !send(&mut chunk) {
                return Ok(order);
            }
        }
        for (link, s, t) in links {
            let table = self.association_table(link);
            let row = chunk.push_row(table, self.schema.table(table).columns.len());
            // The rows it follows are earlier in the run already.
            self.fill_association_row(work, link, s, t, row, &mut SmallVec::new())?;
            renumber(row);
            let placeholder = RowOp::Insert { table, row: Box::new([]) };
            order.push(work.push(placeholder, Reason::AssocInsert(link, s, t), Kind::AssocInsert));
            if !send(&mut chunk) {
                return Ok(order);
            }
        }
        if !chunk.is_empty() {
            let _ = hand_over(chunk);
        }
        Ok(order)
    }
}

thread_local! {
    /// Set by tests to take the path of a machine where no thread can start.
    pub(crate) static NO_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a test asked for the path of a machine where no thread can start.
pub(crate) fn no_thread() -> bool {
    NO_THREAD.with(std::cell::Cell::get)
}

/// What a pipelined flush recorded before the store committed, so that a
/// failed flush can put the session back as it was.
#[derive(Default)]
struct Undo {
    /// INSERTs recorded only after the commit, because they wait for a
    /// generated key: (run position, object, table, row as sent).
    late: Vec<(usize, ObjectKey, TableId, Box<[Cell]>)>,
    /// What the rows recorded early changed.
    log: RecordLog,
}

impl Session {
    /// Records new object `o` as stored with `row` (the row sent to the
    /// store), as `committed` would after the commit, noting how to undo it.
    /// Returns false, recording nothing, when the row waits for a generated key.
    fn record_early(&mut self, o: ObjectKey, table: TableId, row: &[Cell], undo: &mut Undo) -> bool {
        let key_columns = &self.key_columns[table.index()];
        let def = self.schema.table(table);
        let known = |c: u32| matches!(&row[c as usize], Cell::Value(v) if !v.is_null());
        if !def.primary_key.iter().all(|&c| known(c))
            || key_columns.iter().any(|&c| matches!(row[c as usize], Cell::Generated(_)))
            || !self.tracked.contains_key(o)
        {
            return false;
        }
        // Taken out for the call, so that the row borrows its table's key
        // columns instead of cloning a handle to them.
        let key_columns = std::mem::take(&mut self.key_columns);
        self.record_inserted(&key_columns[table.index()], o, table, row, 0, &[], Some(&mut undo.log));
        self.key_columns = key_columns;
        true
    }
}

/// The store's side of the pipeline: begins, then applies each chunk as it
/// arrives, until the session's side has sent everything (or stopped).
fn write(
    store: &mut dyn Store,
    schema: &Schema,
    chunks: impl IntoIterator<Item = InsertBatch>,
    give_back: Option<Sender<InsertBatch>>,
    total: usize,
    flush_span: &tracing::Span,
) -> StoreRun {
    store.begin().map_err(|e| ("begin", e))?;
    store.reserve(total);
    let mut keys = Vec::with_capacity(total);
    // Entered for each chunk: its busy time is the store's, not its waits.
    let apply = tracing::debug_span!(target: "relgraph::flush", parent: flush_span, "apply");
    for mut chunk in chunks {
        // Handed over: a store that keeps rows moves them instead of copying.
        apply
            .in_scope(|| store.apply_inserts(schema, &mut chunk, &mut keys))
            .map_err(|e| ("a row operation", e))?;
        if let Some(back) = &give_back {
            // Unwanted once the session's side has finished building.
            let _ = back.send(chunk);
        }
    }
    Ok(keys)
}

/// The session's stand-in for its store while a pipelined flush runs it on
/// another thread; seen only if that thread panicked and the store was lost.
pub(crate) struct Lent;

fn lent() -> StoreError {
    StoreError::new(ErrorKind::Usage, "the store was lost: a pipelined flush panicked while it held it")
}

impl Store for Lent {
    fn create_tables(&mut self, _: &Schema) -> Result<(), StoreError> {
        Err(lent())
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        Err(lent())
    }

    fn apply(&mut self, _: &Schema, _: &[RowOp], _: &mut Vec<Option<i64>>) -> Result<(), StoreError> {
        Err(lent())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        Err(lent())
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        Err(lent())
    }

    fn load(&mut self, _: &Schema, _: TableId, _: &[u32], _: &[Row]) -> Result<Vec<Row>, StoreError> {
        Err(lent())
    }

    fn load_all(&mut self, _: &Schema, _: TableId) -> Result<Vec<Row>, StoreError> {
        Err(lent())
    }

    fn set_echo(&mut self, _: Option<Echo>) {}
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use relgraph_core::{Schema, Value};
    use relgraph_testkit::fault::{Fault, FaultStore};
    use relgraph_testkit::memory_store::MemoryStore;
    use relgraph_testkit::workloads::{Handles, schema};

    use super::NO_THREAD;
    use crate::Session;

    /// 30 parents (keys 1 to 30, the tenth generated) with two children each.
    fn flushed(schema: &Arc<Schema>, no_thread: bool) -> (Vec<Vec<relgraph_core::Row>>, bool) {
        let h = Handles::new(schema);
        let mut session = Session::new(schema.clone(), MemoryStore::new()).unwrap();
        session.set_pipeline_threshold(0);
        let (pid, cid) =
            (schema.entity_column(h.parent, "id").unwrap(), schema.entity_column(h.child, "id").unwrap());
        for p in 1..=30i64 {
            let parent = session.new_object(h.parent);
            if p != 10 {
                session.set_value(parent, pid, p).unwrap();
            }
            session.add(parent).unwrap();
            for k in 0..2 {
                let child = session.new_with(h.child, [(cid, Value::from(p * 10 + k))]).unwrap();
                session.append(parent, h.children, child).unwrap();
            }
        }
        NO_THREAD.with(|n| n.set(no_thread));
        let stats = session.flush();
        NO_THREAD.with(|n| n.set(false));
        let stats = stats.unwrap();
        let rows = schema.table_ids().map(|t| session.store_mut().load_all(schema, t).unwrap()).collect();
        (rows, stats.pipelined)
    }

    #[test]
    fn a_store_that_panics_takes_back_what_was_recorded_early_and_the_panic_goes_on() {
        let schema = schema();
        let h = Handles::new(&schema);
        let (store, _) = FaultStore::new(Box::new(MemoryStore::new()), Fault::PanicAtOp(49));
        let mut session = Session::new(schema.clone(), store).unwrap();
        session.set_pipeline_threshold(0);
        let pid = schema.entity_column(h.parent, "id").unwrap();
        let parents: Vec<_> = (1..=3000i64)
            .map(|p| {
                let parent = session.new_with(h.parent, [(pid, Value::from(p))]).unwrap();
                session.add(parent).unwrap();
                parent
            })
            .collect();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.flush()));
        assert!(result.is_err(), "the store's panic reaches the caller");
        assert!(parents.iter().all(|&p| session.state(p) == crate::State::Pending));
        assert!(session.identity.iter().all(crate::identity::IdentityMap::is_empty));
    }

    #[test]
    fn without_a_thread_the_pipeline_writes_the_same_rows_after_building_them() {
        let schema = schema();
        let (threaded, pipelined) = flushed(&schema, false);
        let (alone, pipelined_alone) = flushed(&schema, true);
        assert!(pipelined && pipelined_alone);
        assert_eq!(threaded, alone);
        assert_eq!(threaded.iter().map(Vec::len).sum::<usize>(), 90);
    }
}
