//! Where a flush's time goes, read from the spans the session opens for
//! its phases (target `relgraph::flush`, level DEBUG; see the session
//! crate's docs): `unit_of_work`, `order`, `build`, `apply` and `commit`
//! (on the store's thread when the flush runs it there), `record`, and
//! `flush`, the whole. Each phase's figure is its busy time: the time its
//! span was entered, so a store's `apply` does not count the time it
//! waited for rows.
//!
//! ```
//! use relgraph_cli::phases::Phases;
//!
//! let phases = Phases::default();
//! tracing::subscriber::with_default(phases.subscriber(), || {
//!     // session.flush() here
//! });
//! for flush in phases.take() {
//!     println!("{:?}", flush.get("apply"));
//! }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::span::{Attributes, Id};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// The target of the session's flush spans.
pub const TARGET: &str = "relgraph::flush";

/// The phases in the order a flush goes through them, `flush` last.
pub const ORDER: [&str; 7] = ["unit_of_work", "order", "build", "apply", "commit", "record", "flush"];

/// One flush's phases: busy time by span name, summed over the spans of
/// that name (a streamed flush records in two steps, for one).
pub type FlushPhases = BTreeMap<&'static str, Duration>;

/// A `tracing` layer that collects the phases of each flush it sees.
#[derive(Clone, Default)]
pub struct Phases {
    shared: Arc<Mutex<Collected>>,
}

#[derive(Default)]
struct Collected {
    /// The phases of the flush under way: its spans close before it does.
    current: FlushPhases,
    done: Vec<FlushPhases>,
}

/// A span's busy time so far, and since when it is entered.
struct Busy {
    entered: Option<Instant>,
    total: Duration,
}

impl Phases {
    /// A subscriber with this layer alone: only the flush spans are enabled,
    /// so that no store spends time formatting events nobody reads.
    pub fn subscriber(&self) -> impl Subscriber + Send + Sync + 'static {
        tracing_subscriber::registry().with(self.clone())
    }

    /// The phases of the flushes finished since the last call, oldest first.
    pub fn take(&self) -> Vec<FlushPhases> {
        std::mem::take(&mut self.lock().done)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Collected> {
        // A panic elsewhere while the lock was held leaves figures, not a broken invariant.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S> Layer<S> for Phases
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.target() == TARGET && metadata.is_span()
    }

    fn on_new_span(&self, _: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Busy { entered: None, total: Duration::ZERO });
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(busy) = span.extensions_mut().get_mut::<Busy>()
        {
            busy.entered = Some(Instant::now());
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(busy) = span.extensions_mut().get_mut::<Busy>()
            && let Some(since) = busy.entered.take()
        {
            busy.total += since.elapsed();
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(total) = span.extensions().get::<Busy>().map(|b| b.total) else { return };
        let mut collected = self.lock();
        *collected.current.entry(span.name()).or_default() += total;
        // A flush's span closes after every span inside it, the store's too.
        if span.name() == "flush" {
            let phases = std::mem::take(&mut collected.current);
            collected.done.push(phases);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ops::RangeInclusive;
    use std::sync::{Arc, Mutex};

    use relgraph_core::Value;
    use relgraph_graph::ObjectKey;
    use relgraph_session::Session;
    use relgraph_sqlite::SqliteStore;
    use relgraph_testkit::workloads::{Handles, schema};
    use tracing::Subscriber;
    use tracing::span::{Attributes, Id};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
    use tracing_subscriber::registry::LookupSpan;

    use super::Phases;

    /// Parents with children, flushed by a session whose pipeline starts at
    /// `threshold` operations; the phases of each flush.
    fn phases_of(threshold: usize) -> Vec<super::FlushPhases> {
        let schema = schema();
        let h = Handles::new(&schema);
        let mut session = Session::new(Arc::clone(&schema), SqliteStore::open_in_memory().unwrap()).unwrap();
        session.set_pipeline_threshold(threshold);
        let pid = schema.entity_column(h.parent, "id").unwrap();
        let cid = schema.entity_column(h.child, "id").unwrap();
        for p in 1..=50i64 {
            let parent = session.new_with(h.parent, [(pid, Value::from(p))]).unwrap();
            session.add(parent).unwrap();
            let child = session.new_with(h.child, [(cid, Value::from(p))]).unwrap();
            session.append(parent, h.children, child).unwrap();
        }
        let phases = Phases::default();
        let stats = tracing::subscriber::with_default(phases.subscriber(), || session.flush().unwrap());
        assert_eq!(stats.pipelined, threshold == 0);
        phases.take()
    }

    #[test]
    fn an_ordinary_flush_reports_its_phases_once() {
        let flushes = phases_of(usize::MAX);
        assert_eq!(flushes.len(), 1);
        let names: Vec<_> = flushes[0].keys().copied().collect();
        assert_eq!(names, ["apply", "commit", "flush", "order", "record", "unit_of_work"]);
        let phases = &flushes[0];
        let parts: std::time::Duration =
            ["unit_of_work", "order", "apply", "commit", "record"].iter().map(|p| phases[p]).sum();
        // Run one after another on one thread: the parts fit in the whole.
        assert!(parts <= phases["flush"], "{phases:?}");
    }

    #[test]
    fn a_pipelined_flush_reports_the_stores_phases_from_its_thread() {
        let flushes = phases_of(0);
        assert_eq!(flushes.len(), 1);
        // `apply` is opened on the store's thread: it is here only if that
        // thread's spans reach the flushing thread's subscriber.
        let names: Vec<_> = flushes[0].keys().copied().collect();
        assert_eq!(names, ["apply", "build", "commit", "flush", "record", "unit_of_work"]);
        assert!(flushes[0]["apply"] > std::time::Duration::ZERO);
    }

    /// New parents with the ids `ids`, added to `session`.
    fn add_parents(session: &mut Session, h: &Handles, ids: RangeInclusive<i64>) -> Vec<ObjectKey> {
        let pid = session.schema().entity_column(h.parent, "id").unwrap();
        ids.map(|p| {
            let parent = session.new_with(h.parent, [(pid, Value::from(p))]).unwrap();
            session.add(parent).unwrap();
            parent
        })
        .collect()
    }

    #[test]
    fn a_streamed_flush_reports_each_phase_within_its_own_flush() {
        let schema = schema();
        let h = Handles::new(&schema);
        let mut session = Session::new(Arc::clone(&schema), SqliteStore::open_in_memory().unwrap()).unwrap();
        let pname = schema.entity_column(h.parent, "name").unwrap();
        let parents = add_parents(&mut session, &h, 1..=50);
        let phases = Phases::default();
        let spans = Parents::default();
        let subscriber = tracing_subscriber::registry().with(phases.clone()).with(spans.clone());
        tracing::subscriber::with_default(subscriber, || {
            session.flush().unwrap();
            session.set_pipeline_threshold(0);
            for (i, &p) in parents.iter().enumerate() {
                session.set_value(p, pname, format!("renamed {i}")).unwrap();
            }
            let stats = session.flush().unwrap();
            assert_eq!((stats.updates, stats.streamed), (50, 50));
        });
        let flushes = phases.take();
        assert_eq!(flushes.len(), 2, "one entry per flush, the store's spans inside their own: {flushes:?}");
        let names: Vec<_> = flushes[1].keys().copied().collect();
        assert_eq!(names, ["apply", "commit", "flush", "order", "record", "unit_of_work"]);
        // The stream starts inside the unit of work, but the store's spans
        // are the flush's own phases, beside the unit of work.
        let seen = spans.0.lock().unwrap();
        for phase in ["apply", "commit"] {
            assert!(seen.contains(&(phase, Some("flush"))), "{phase} under the flush: {seen:?}");
            assert!(!seen.contains(&(phase, Some("unit_of_work"))), "{seen:?}");
        }
    }

    /// A span's name and its parent's.
    type Opened = (&'static str, Option<&'static str>);

    /// Each span's name with its parent's, as opened.
    #[derive(Clone, Default)]
    struct Parents(Arc<Mutex<Vec<Opened>>>);

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Parents {
        fn on_new_span(&self, _: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let span = ctx.span(id).unwrap();
            let parent = span.parent().map(|p| p.name());
            self.0.lock().unwrap().push((span.name(), parent));
        }
    }

    #[test]
    fn an_overlapped_flush_reports_the_stores_phases_from_its_thread() {
        let schema = schema();
        let h = Handles::new(&schema);
        let mut session = Session::new(Arc::clone(&schema), SqliteStore::open_in_memory().unwrap()).unwrap();
        let parents = add_parents(&mut session, &h, 1..=50);
        session.flush().unwrap();
        // Deletes beside inserts: neither pipelined (new rows only) nor
        // streamed (no INSERT), so the store overlaps on its own thread.
        session.set_pipeline_threshold(0);
        for &p in &parents[..25] {
            session.delete(p).unwrap();
        }
        add_parents(&mut session, &h, 51..=75);
        let phases = Phases::default();
        let stats = tracing::subscriber::with_default(phases.subscriber(), || session.flush().unwrap());
        assert!(stats.overlapped && !stats.pipelined, "{stats:?}");
        assert_eq!((stats.inserts, stats.deletes), (25, 25));
        let flushes = phases.take();
        assert_eq!(flushes.len(), 1, "{flushes:?}");
        // `apply` and `commit` are opened on the store's thread: they are
        // here only if that thread's spans reach the flushing thread's subscriber.
        let names: Vec<_> = flushes[0].keys().copied().collect();
        assert_eq!(names, ["apply", "commit", "flush", "order", "record", "unit_of_work"]);
        assert!(flushes[0]["apply"] > std::time::Duration::ZERO);
    }
}
