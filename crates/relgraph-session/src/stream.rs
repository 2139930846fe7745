//! A streamed flush: an overlapped flush (see `overlap.rs`) whose first
//! operations go to the store while the session is still working out the
//! rest. It is taken when the plan is known to begin with UPDATEs that
//! nothing waits on: a flush with no INSERT and no association-row DELETE,
//! whose UPDATEs change no key and no unique column and take no key from a
//! row of the same flush. Those UPDATEs come first in the plan, by table rank
//! and creation, so the session sends each as soon as it is built; when the
//! plan is complete, it checks that it begins with what was sent, sends the
//! rest and the commit, and records while the store works. If the check ever
//! failed, the store would roll back and the flush run as an ordinary one.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use relgraph_core::{ErrorKind, RowOp, Schema, Store, StoreError};

use crate::flush::{FlushStats, Work};
use crate::pipeline::{Lent, no_thread};
use crate::{FlushError, Session};

#[cfg(test)]
thread_local! {
    /// Set by a test to fail a flush once its unit of work is built (and
    /// its first UPDATEs sent), as an error of the session's own would.
    pub(crate) static FAIL_AFTER_COLLECT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set by a test to make every UPDATE guessed ahead of the delete
    /// analysis look wrong to it, as if the analysis had changed it.
    pub(crate) static SPOIL_GUESSES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Operations per hand-over, as in the pipeline.
const CHUNK: usize = 1000;

/// Operations after which a waiting store is handed what is built: the
/// SQLite store's statement holds 200 rows.
const EARLY_HAND_OVER: usize = 200;

/// Chunks that may wait between the two threads.
const QUEUED_CHUNKS: usize = 16;

enum Message {
    Ops(Vec<RowOp>),
    Commit,
    Abort,
}

/// How the store's thread ended: the step that failed, if one did; or the
/// panic it caught, to be raised again once the store is back.
type Outcome = std::thread::Result<crate::overlap::StoreRun>;

/// The store at work on its own thread, and what was sent to it.
pub(crate) struct Stream {
    sender: Option<SyncSender<Message>>,
    thread: JoinHandle<(Box<dyn Store>, Outcome)>,
    /// Applied chunks, given back to be freed here, by the thread that
    /// allocated their rows: freed on the store's thread, a chunk of 1,000
    /// UPDATEs took it 0.25 to 0.5 ms between two applies (W3: 21 chunks),
    /// where this thread is idle once it has recorded.
    returned: Receiver<Vec<RowOp>>,
    /// Chunks given back and not refilled yet.
    spare: Vec<Vec<RowOp>>,
    /// Chunks handed over, and given back: when the two are equal, the
    /// store has applied everything and waits.
    handed: usize,
    back: usize,
    chunk: Vec<RowOp>,
    /// The store would rather take each run of same-kind operations on one
    /// table in one call ([`Store::prefers_whole_runs`]: PostgreSQL's
    /// set-based statements): what is built is handed over when a run ends,
    /// whatever its length, instead of in chunks.
    whole_runs: bool,
    /// The nodes sent, in order.
    pub(crate) sent: Vec<u32>,
}

/// Whether `b` continues the run `a` belongs to: the same kind of
/// operation on the same table.
fn same_run(a: &RowOp, b: &RowOp) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b) && a.table() == b.table()
}

impl Stream {
    /// Starts `store` on a thread of its own, in a transaction, its spans
    /// under `flush_span`; gives the store back when no thread can start.
    pub(crate) fn start(
        store: Box<dyn Store>,
        schema: Arc<Schema>,
        flush_span: tracing::Span,
    ) -> Result<Stream, Box<dyn Store>> {
        if no_thread() {
            return Err(store);
        }
        // The store is handed over once the thread runs, so that a thread
        // that cannot start leaves it here.
        let whole_runs = store.prefers_whole_runs();
        let (hand, take) = sync_channel::<Box<dyn Store>>(1);
        let (sender, receiver) = sync_channel::<Message>(QUEUED_CHUNKS);
        let (give_back, returned) = channel::<Vec<RowOp>>();
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let thread = std::thread::Builder::new().name("relgraph-store".into()).spawn(move || {
            let mut store = take.recv().expect("the store is handed over as soon as the thread starts");
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                tracing::dispatcher::with_default(&dispatch, || {
                    // Dropped in here: a subscriber closes a span's parents
                    // through the thread's dispatcher, which is this one
                    // only inside this call.
                    let parent = flush_span;
                    write(&mut *store, &schema, receiver, give_back, &parent)
                })
            }));
            (store, outcome)
        });
        match thread {
            Ok(thread) => {
                hand.send(store).expect("the thread waits for the store");
                Ok(Stream {
                    sender: Some(sender),
                    thread,
                    returned,
                    spare: Vec::new(),
                    handed: 0,
                    back: 0,
                    chunk: Vec::with_capacity(CHUNK),
                    whole_runs,
                    sent: Vec::new(),
                })
            }
            Err(_) => Err(store),
        }
    }

    /// Sends node `node`'s operation; a store that has stopped (its error
    /// comes with [`Stream::finish`]) takes nothing more.
    pub(crate) fn send(&mut self, node: u32, op: RowOp) {
        if self.whole_runs && self.chunk.last().is_some_and(|last| !same_run(last, &op)) {
            self.hand_over();
        }
        self.sent.push(node);
        self.chunk.push(op);
        if self.whole_runs {
            return;
        }
        // A store that has applied everything it was given waits: it gets
        // what is built so far (a whole statement's worth at least) rather
        // than a full chunk later. W3's store would otherwise wait 0.5 ms
        // for its first 1,000 UPDATEs of children.
        if self.chunk.len() >= CHUNK
            || (self.chunk.len().is_multiple_of(EARLY_HAND_OVER) && self.store_waits())
        {
            self.hand_over();
        }
    }

    /// Whether every chunk handed over has come back applied.
    fn store_waits(&mut self) -> bool {
        while let Ok(used) = self.returned.try_recv() {
            self.back += 1;
            self.spare.push(used);
        }
        self.back == self.handed
    }

    /// Hands the chunk built so far to the store.
    pub(crate) fn hand_over(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        // A chunk the store has applied is emptied here and refilled.
        let used = self.spare.pop().or_else(|| {
            let used = self.returned.try_recv().ok()?;
            self.back += 1;
            Some(used)
        });
        let next = match used {
            Some(mut used) => {
                used.clear();
                used
            }
            None => Vec::with_capacity(CHUNK),
        };
        let chunk = std::mem::replace(&mut self.chunk, next);
        if let Some(sender) = &self.sender
            && sender.send(Message::Ops(chunk)).is_err()
        {
            self.sender = None;
        }
        self.handed += 1;
    }

    /// Names the operations sent ahead of their nodes (sent as `u32::MAX`
    /// by `send_early_updates`): the first ones sent, in order.
    pub(crate) fn name_early(&mut self, nodes: &[u32]) {
        for (sent, &node) in self.sent.iter_mut().zip(nodes) {
            debug_assert_eq!(*sent, u32::MAX, "only operations sent ahead are named later");
            *sent = node;
        }
    }

    /// Sends `ops` and the commit; the outcome comes with [`Stream::finish`].
    /// The session records INSERTs and UPDATEs from its own copies, so only
    /// those are copied; a DELETE is not recorded and is handed over,
    /// leaving an empty one. W3's 10,000 DELETEs then cost 20,000 fewer
    /// allocations and frees on the session's thread while the store works.
    pub(crate) fn commit(&mut self, ops: &mut [RowOp]) {
        if self.whole_runs {
            // The rest in one call, the run under way included.
            let rest = ops.iter_mut().map(hand_over_or_copy);
            self.chunk.extend(rest);
            self.hand_over();
            if let Some(sender) = self.sender.take() {
                let _ = sender.send(Message::Commit);
            }
            return;
        }
        self.hand_over();
        if let Some(sender) = self.sender.take() {
            for chunk in ops.chunks_mut(CHUNK) {
                let sent = chunk.iter_mut().map(hand_over_or_copy).collect();
                if sender.send(Message::Ops(sent)).is_err() {
                    return;
                }
            }
            let _ = sender.send(Message::Commit);
        }
    }

    /// Frees the chunks the store gives back until it has applied them all
    /// and commits (or has stopped).
    pub(crate) fn wait_for_commit(&mut self) {
        self.returned.iter().for_each(drop);
    }

    /// Waits for the store: it comes back with how its transaction ended.
    /// Meanwhile this thread frees the chunks the store has applied.
    pub(crate) fn finish(mut self) -> (Box<dyn Store>, Outcome) {
        self.hand_over();
        // Without a commit sent, the transaction is abandoned.
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(Message::Abort);
        }
        // Ends when the store's side is done and drops its sender.
        self.wait_for_commit();
        match self.thread.join() {
            Ok(done) => done,
            // The thread catches the store's panics; this one is its own.
            Err(panic) => (Box::new(Lent), Err(panic)),
        }
    }
}

/// `op` itself for a DELETE, which is not recorded, leaving an empty one
/// (empty slices allocate nothing); a copy of anything else.
fn hand_over_or_copy(op: &mut RowOp) -> RowOp {
    match op {
        RowOp::Delete { table, .. } => {
            let table = *table;
            std::mem::replace(op, RowOp::Delete { table, columns: Box::new([]), values: Box::new([]) })
        }
        _ => op.clone(),
    }
}

/// The store's side: begins, applies what arrives and gives it back,
/// commits when told.
fn write(
    store: &mut dyn Store,
    schema: &Schema,
    receiver: Receiver<Message>,
    give_back: Sender<Vec<RowOp>>,
    flush_span: &tracing::Span,
) -> Result<(), (&'static str, StoreError)> {
    store.begin().map_err(|e| ("begin", e))?;
    let mut keys = Vec::new();
    // Entered for each chunk: its busy time is the store's, not its waits.
    let apply = tracing::debug_span!(target: "relgraph::flush", parent: flush_span, "apply");
    for message in receiver {
        match message {
            Message::Ops(mut ops) => {
                apply
                    .in_scope(|| store.apply_owned(schema, &mut ops, &mut keys))
                    .map_err(|e| ("a row operation", e))?;
                let _ = give_back.send(ops);
            }
            Message::Commit => {
                // Nothing more to give back: the session stops waiting for it.
                drop(give_back);
                return tracing::debug_span!(target: "relgraph::flush", parent: flush_span, "commit")
                    .in_scope(|| store.commit())
                    .map_err(|e| ("commit", e));
            }
            Message::Abort => break,
        }
    }
    Err(("abort", StoreError::new(ErrorKind::Usage, "the flush stopped before its commit")))
}

impl Session {
    /// Takes the store back from an unfinished stream after the flush
    /// failed on the session's side: its transaction is rolled back.
    pub(crate) fn abandon_stream(&mut self) {
        let Some(stream) = self.stream.take() else { return };
        let (store, outcome) = stream.finish();
        self.store = store;
        match outcome {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(Err(("begin", _))) => {}
            Ok(_) => {
                let _ = self.store.rollback();
            }
        }
    }

    /// Runs the rest of a streamed flush once its plan is known.
    pub(crate) fn flush_streamed(
        &mut self,
        mut stream: Stream,
        mut work: Work,
        order: Vec<u32>,
    ) -> Result<FlushStats, FlushError> {
        let (mut ops, _) = Self::sequence(&mut work, &order);
        let sent = stream.sent.len();
        if !order.starts_with(&stream.sent) {
            // Not expected: the plan does not begin with what was sent. The
            // store rolls back and the flush runs as an ordinary one.
            debug_assert!(false, "a streamed flush's plan does not begin with the {sent} operations sent");
            tracing::warn!(target: "relgraph::flush", "the plan does not begin with the streamed operations; running again");
            self.stream = Some(stream);
            self.abandon_stream();
            return self.run(work, order, ops);
        }
        stream.commit(&mut ops[sent..]);
        let record = tracing::debug_span!(target: "relgraph::flush", "record");
        let mut log = record.in_scope(|| self.record_ahead(&work, &ops, &order));
        // Detached once the store commits: the memory it touches is then
        // still in this core's cache when the commit ends and it is freed.
        stream.wait_for_commit();
        record.in_scope(|| self.detach_deleted(&work, &mut log));
        let (store, outcome) = stream.finish();
        self.store = store;
        let ran = match outcome {
            Err(panic) => {
                self.play_back(log);
                std::panic::resume_unwind(panic)
            }
            Ok(ran) => ran,
        };
        self.conclude(ran, log, work, &order, ops, sent)
    }
}

#[cfg(test)]
mod tests {
    use relgraph_core::ErrorKind;
    use relgraph_testkit::fault::{Fault, FaultStore};
    use relgraph_testkit::memory_store::MemoryStore;

    use super::{FAIL_AFTER_COLLECT, SPOIL_GUESSES};
    use crate::overlap::tests::{digest, rows, staged};

    #[test]
    fn a_streamed_flush_sends_its_plan_and_fails_anywhere_without_losing_anything() {
        fails_anywhere_without_losing_anything(MemoryStore::new);
    }

    /// As above, to a store that takes whole runs (as PostgreSQL's does):
    /// the same operations in fewer calls, and the same outcome on any failure.
    #[test]
    fn a_flush_streamed_by_runs_sends_its_plan_and_fails_anywhere_without_losing_anything() {
        fails_anywhere_without_losing_anything(MemoryStore::preferring_whole_runs);
    }

    fn fails_anywhere_without_losing_anything(store: fn() -> MemoryStore) {
        let mut reference = staged(store());
        let plan = reference.plan().unwrap();
        let expected_stats = reference.flush().unwrap();
        assert!(expected_stats.streamed > 0, "the UPDATEs went ahead: {expected_stats:?}");
        let expected = rows(&mut reference);

        let (store, fault) = FaultStore::new(Box::new(store()), Fault::Never);
        let mut session = staged(store);
        let before = (digest(&session), rows(&mut session));
        let ops = plan.ops.len();
        for at in (0..ops).map(Fault::AtOp).chain([Fault::AtCommit]) {
            fault.set(at);
            let err = session.flush().expect_err("the injected fault fails the flush");
            assert_eq!(err.store_kind(), Some(ErrorKind::Connection), "{at:?}: {err}");
            assert_eq!((digest(&session), rows(&mut session)), before, "{at:?}: as it was");
            assert_eq!(session.plan().unwrap().to_string(), plan.to_string(), "{at:?}: nothing pending lost");
        }
        fault.set(Fault::Never);
        let stats = session.flush().unwrap();
        assert_eq!(stats, expected_stats);
        let sent = fault.last_transaction();
        assert_eq!(sent, plan.ops.iter().map(|p| p.op.clone()).collect::<Vec<_>>(), "the plan, in order");
        assert_eq!(rows(&mut session), expected);
        assert_eq!(digest(&session), digest(&reference));
    }

    /// Flushes [`staged`] through a fault store that never fails (with
    /// wrong guesses when `spoil`), and checks that the store was sent the
    /// plan of a session staged alike and holds its rows. Returns the
    /// flush's statistics and how many transactions it began.
    fn flush_against_the_plan(spoil: bool) -> (crate::FlushStats, usize) {
        let mut reference = staged(MemoryStore::new());
        let plan = reference.plan().unwrap();
        let (store, fault) = FaultStore::new(Box::new(MemoryStore::new()), Fault::Never);
        let mut session = staged(store);
        let begun = fault.transactions();
        SPOIL_GUESSES.with(|s| s.set(spoil));
        let stats = session.flush();
        SPOIL_GUESSES.with(|s| s.set(false));
        let stats = stats.unwrap();
        assert_eq!(fault.last_transaction(), plan.ops.iter().map(|p| p.op.clone()).collect::<Vec<_>>());
        let expected = reference.flush().unwrap();
        assert_eq!((stats.updates, stats.deletes), (expected.updates, expected.deletes));
        assert_eq!(rows(&mut session), rows(&mut reference));
        assert_eq!(digest(&session), digest(&reference));
        (stats, fault.transactions() - begun)
    }

    #[test]
    fn updates_sent_ahead_of_the_delete_analysis_are_the_plans_first() {
        // The parents' renames cannot change; the moved children's UPDATEs
        // are guessed, and the analysis confirms them.
        let (stats, transactions) = flush_against_the_plan(false);
        assert_eq!(transactions, 1);
        let renames = 40 - 10;
        assert!(stats.sent_ahead > renames, "renames and guessed moves went ahead: {stats:?}");
    }

    #[test]
    fn a_wrong_guess_rolls_the_updates_sent_ahead_back_and_the_flush_runs_as_an_ordinary_one() {
        let (stats, transactions) = flush_against_the_plan(true);
        assert_eq!(transactions, 2, "the guessed UPDATEs' transaction, then the flush's");
        assert_eq!((stats.streamed, stats.sent_ahead), (0, 0), "{stats:?}");
    }

    #[test]
    fn a_streamed_flush_the_session_fails_after_sending_rolls_the_store_back() {
        let mut session = staged(MemoryStore::new());
        let before = (digest(&session), rows(&mut session));
        let plan = session.plan().unwrap().to_string();
        FAIL_AFTER_COLLECT.with(|f| f.set(true));
        let failed = session.flush();
        FAIL_AFTER_COLLECT.with(|f| f.set(false));
        assert!(matches!(failed, Err(crate::FlushError::Cycle { .. })), "{failed:?}");
        assert_eq!((digest(&session), rows(&mut session)), before, "the UPDATEs sent were rolled back");
        assert_eq!(session.plan().unwrap().to_string(), plan);
        let stats = session.flush().unwrap();
        assert!(stats.streamed > 0, "{stats:?}");
        assert_ne!(rows(&mut session), before.1);
    }
}
