//! The session's model-based property test on SQLite files and on snapshot
//! files: random schemas of the family, random operations with flushes
//! interleaved; after each flush the graph, the stored rows and a fresh
//! session's view must all match the reference model. Then the
//! differential: the same sequences leave the same rows in both stores.
//! Replay a failure with the printed `RELGRAPH_SEED`; `RELGRAPH_CASES` sets
//! the number of cases (default 64).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use relgraph::layers::snapshot::{Compaction, SnapshotOptions};
use relgraph::{SnapshotStore, SqliteStore, Store};
use relgraph_testkit::session_model;

/// A folder for one property's files, removed when dropped.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("relgraph-{name}-")).tempdir().unwrap()
}

type Reopen = Box<dyn FnMut() -> Box<dyn Store>>;

/// A fresh store at `path` and a way to open it again alongside (for the
/// fresh-session check, which only reads).
fn stores<S: Store + 'static, R: Store + 'static>(
    path: &Path,
    open: fn(&Path) -> S,
    reader: fn(&Path) -> R,
) -> (Box<dyn Store>, Reopen) {
    let _ = std::fs::remove_file(path);
    let again = path.to_owned();
    (Box::new(open(path)), Box::new(move || Box::new(reader(&again)) as Box<dyn Store>))
}

fn sqlite(path: &Path) -> SqliteStore {
    SqliteStore::open(path).expect("open SQLite")
}

fn snapshot(path: &Path) -> SnapshotStore {
    SnapshotStore::open(path).expect("open snapshot")
}

/// A snapshot compacted at every commit: every check after a flush reads
/// the archived image, not the log.
fn compacted_snapshot(path: &Path) -> SnapshotStore {
    let options = SnapshotOptions { sync: false, compaction: Compaction::EveryCommit };
    SnapshotStore::with_options(path, options).expect("open snapshot")
}

/// The snapshot's writer holds its lock: a second store reads alongside.
fn snapshot_reader(path: &Path) -> SnapshotStore {
    SnapshotStore::open_read_only(path).expect("open snapshot read-only")
}

fn check_model<S: Store + 'static, R: Store + 'static>(
    label: &str,
    ext: &str,
    open: fn(&Path) -> S,
    reader: fn(&Path) -> R,
) {
    let dir = scratch(label);
    let (steps, flushes) = (AtomicUsize::new(0), AtomicUsize::new(0));
    session_model::property(label, "RELGRAPH_CASES", 64, 80, 0, |n, schema, ops| {
        let path = dir.path().join(format!("case{n}.{ext}"));
        let (store, reopen) = stores(&path, open, reader);
        let (s, f) = session_model::run(schema, store, reopen, ops)?;
        let _ = std::fs::remove_file(&path);
        steps.fetch_add(s, Ordering::Relaxed);
        flushes.fetch_add(f, Ordering::Relaxed);
        Ok(())
    });
    println!("{label}: {} steps, {} flushes checked", steps.into_inner(), flushes.into_inner());
}

#[test]
fn session_and_sqlite_match_the_model() {
    check_model("sqlite session model", "sqlite", sqlite, sqlite);
}

#[test]
fn session_and_snapshot_match_the_model() {
    check_model("snapshot session model", "snap", snapshot, snapshot_reader);
}

#[test]
fn session_and_a_compacted_snapshot_match_the_model() {
    check_model("compacted snapshot session model", "snap", compacted_snapshot, snapshot_reader);
}

/// Case `n`'s operations through a pipelined session on SQLite, then on a
/// snapshot file (in `dir`, removed after): what the two runs saw, added up.
fn pipelined_on_both(
    dir: &Path,
    n: usize,
    schema: &std::sync::Arc<relgraph::Schema>,
    ops: &[relgraph_testkit::ops::Op],
) -> Result<session_model::Counts, String> {
    let mut sum = session_model::Counts::default();
    for (ext, (store, reopen)) in [
        ("sqlite", stores(&dir.join(format!("case{n}.sqlite")), sqlite, sqlite)),
        ("snap", stores(&dir.join(format!("case{n}.snap")), snapshot, snapshot_reader)),
    ] {
        sum += session_model::run_pipelined(schema.clone(), store, reopen, ops)
            .map_err(|e| format!("{ext}: {e}"))?;
        let _ = std::fs::remove_file(dir.join(format!("case{n}.{ext}")));
    }
    Ok(sum)
}

/// Every flush of new rows only runs as a pipeline (the store writing on a
/// thread of its own while the session builds the rows that follow) and
/// must send exactly what its plan lists, as must every other flush in
/// which no row waits for a generated key (recorded while the store writes,
/// some sending their UPDATEs before the plan is complete, and all put back
/// if the store fails); everything else is checked as in
/// the other model tests. SQLite checks foreign keys per statement, the
/// snapshot store per row: both take the pipelined rows.
#[test]
fn pipelined_flushes_send_their_plan_and_match_the_model() {
    let dir = scratch("pipelined");
    let counts = std::sync::Mutex::new(session_model::Counts::default());
    session_model::property("pipelined session model", "RELGRAPH_CASES", 64, 80, 3, |n, schema, ops| {
        *counts.lock().unwrap() += pipelined_on_both(dir.path(), n, &schema, ops)?;
        Ok(())
    });
    let session_model::Counts { steps, flushes, pipelined, overlapped, streamed, sent_ahead, retried } =
        counts.into_inner().unwrap();
    println!(
        "pipelined: {steps} steps, {flushes} flushes checked, {pipelined} pipelined, {overlapped} overlapped \
         ({streamed} streamed, {sent_ahead} sending UPDATEs ahead of their cascades, {retried} in a second transaction)"
    );
    // Measured over sixteen seeds at 64 cases: 286 to 434 flushes, 20 to 48
    // pipelined, 22 to 56 overlapped, 14 to 30 streamed. One in forty is
    // half the least seen: a bound of one in twenty failed now and then.
    assert!(pipelined * 40 >= flushes, "too few flushes ran as a pipeline: {pipelined} of {flushes}");
    assert!(
        overlapped * 40 >= flushes,
        "too few flushes were recorded beside the store: {overlapped} of {flushes}"
    );
    assert!(streamed * 100 >= flushes, "too few flushes sent UPDATEs ahead: {streamed} of {flushes}");
}

/// Flushes with no new row, which the random sequences above seldom give:
/// each sequence alternates operations of every kind with operations on
/// the objects that exist, a flush after each. Those flushes send their
/// UPDATEs ahead of the rest of their plan when they can (guessing, for
/// tables whose rows a cascade may still change), and must still send
/// exactly their plan and leave the model's rows.
#[test]
fn flushes_of_changes_only_send_updates_ahead_and_match_the_model() {
    let dir = scratch("changes-only");
    let mut all = session_model::Counts::default();
    let ops = relgraph_testkit::ops::phased_ops(80);
    session_model::property_over(
        "changes-only session model",
        "RELGRAPH_CASES",
        64,
        ops,
        4,
        |n, schema, ops| {
            all += pipelined_on_both(dir.path(), n, &schema, ops)?;
            Ok(())
        },
    );
    println!(
        "changes only: {} flushes checked, {} streamed, {} sending UPDATEs ahead",
        all.flushes, all.streamed, all.sent_ahead
    );
    // Measured over ten seeds at 64 cases: 564 to 666 flushes, 64 to 116
    // streamed, 18 to 46 sent ahead. The pipelined test above, on random
    // sequences: 354 to 414 flushes, 12 to 34 streamed, 4 to 10 sent ahead.
    assert!(
        all.streamed * 20 >= all.flushes,
        "too few flushes streamed: {} of {}",
        all.streamed,
        all.flushes
    );
    assert!(
        all.sent_ahead * 100 >= all.flushes,
        "too few flushes sent UPDATEs ahead: {} of {}",
        all.sent_ahead,
        all.flushes
    );
}

/// The same operation sequences through SQLite and through the snapshot
/// store leave the same rows (keys mapped to the model's objects).
#[test]
fn sqlite_and_snapshot_leave_the_same_rows() {
    let dir = scratch("differential-snapshot");
    session_model::property(
        "sqlite/snapshot differential",
        "RELGRAPH_CASES",
        64,
        60,
        0x5eed,
        |n, schema, ops| {
            let (store, reopen) = stores(&dir.path().join(format!("case{n}.sqlite")), sqlite, sqlite);
            let from_sqlite = session_model::run_normalized(schema.clone(), store, reopen, ops)?;
            let (store, reopen) =
                stores(&dir.path().join(format!("case{n}.snap")), snapshot, snapshot_reader);
            let from_snapshot = session_model::run_normalized(schema, store, reopen, ops)?;
            if from_sqlite != from_snapshot {
                return Err(format!("SQLite rows {from_sqlite:?}\nsnapshot rows {from_snapshot:?}"));
            }
            Ok(())
        },
    );
}
