//! A flush that touches all four patterns, failed at every one of its row
//! operations and at commit, on the memory store, SQLite and a snapshot
//! file: each time nothing reaches the store (for the snapshot, the file on
//! disk too), every pending change stays in memory, and the same flush then
//! succeeds.

use std::collections::BTreeMap;

use relgraph::{ErrorKind, Row, Session, SnapshotStore, SqliteStore, Store};
use relgraph_testkit::family::every_pattern;
use relgraph_testkit::fault::{Fault, FaultStore};
use relgraph_testkit::memory_store::{MemoryStore, compare_rows};

/// Every table's rows, sorted.
fn rows(session: &mut Session) -> BTreeMap<String, Vec<Row>> {
    let schema = session.schema().clone();
    schema
        .table_ids()
        .map(|t| {
            let mut rows = session.store_mut().load_all(&schema, t).unwrap();
            rows.sort_by(|a, b| compare_rows(a, b));
            (schema.table(t).name.clone(), rows)
        })
        .collect()
}

/// Builds the base state, flushes it, then stages a second unit of work
/// with inserts, updates, deletes and association changes over every
/// pattern. With `overlapped`, the new object's key is given (no key waits
/// for the store) and every flush runs with the store on its own thread
/// while the session records.
fn staged(store: Box<dyn Store>, overlapped: bool) -> Session {
    let schema = every_pattern().build();
    let mut s = Session::with_store(schema.clone(), store).unwrap();
    let e = |i: usize| schema.entity_id(&format!("E{i}")).unwrap();
    let r = |path: &str| {
        let (a, b) = path.split_once('.').unwrap();
        schema.relationship_by_name(a, b).unwrap()
    };
    let objs: Vec<Vec<_>> = (0..3).map(|i| (0..4).map(|_| s.new_object(e(i))).collect()).collect();
    for row in &objs {
        for &o in row {
            s.add(o).unwrap();
        }
    }
    // One-to-many, many-to-one, one-to-one, many-to-many and self-referential links.
    s.append(objs[0][0], r("E0.r0"), objs[1][0]).unwrap();
    s.append(objs[0][0], r("E0.r0"), objs[1][1]).unwrap();
    s.set(objs[1][2], r("E1.r2"), Some(objs[2][0])).unwrap();
    s.set(objs[0][1], r("E0.r4"), Some(objs[1][3])).unwrap();
    s.append(objs[0][2], r("E0.r6"), objs[1][0]).unwrap();
    s.append(objs[0][2], r("E0.r6"), objs[1][1]).unwrap();
    s.set(objs[0][3], r("E0.r8_rev"), Some(objs[0][0])).unwrap();
    s.append(objs[2][1], r("E2.r9"), objs[2][2]).unwrap();
    s.flush().unwrap();
    // The second unit of work.
    let name = schema.entity_column(e(1), "name").unwrap();
    s.set_value(objs[1][1], name, "renamed").unwrap();
    s.append(objs[0][1], r("E0.r0"), objs[1][1]).unwrap();
    s.set(objs[1][2], r("E1.r2"), None).unwrap();
    s.set(objs[0][0], r("E0.r4"), Some(objs[1][3])).unwrap();
    s.remove_member(objs[0][2], r("E0.r6"), objs[1][0]).unwrap();
    s.append(objs[0][3], r("E0.r6"), objs[1][2]).unwrap();
    let fresh = s.new_object(e(1));
    if overlapped {
        s.set_value(fresh, schema.entity_column(e(1), "id").unwrap(), 1000).unwrap();
        s.set_pipeline_threshold(0);
    }
    s.add(fresh).unwrap();
    s.append(objs[0][2], r("E0.r6"), fresh).unwrap();
    s.append(objs[0][0], r("E0.r0"), fresh).unwrap();
    s.delete(objs[2][2]).unwrap();
    s.delete(objs[0][3]).unwrap();
    s
}

/// Every object's state and row, in a form to compare.
fn session_state(s: &Session) -> Vec<String> {
    let graph = s.graph();
    let mut objects: Vec<String> =
        graph.objects().map(|(k, _)| format!("{k:?} {:?} {:?}", s.state(k), graph.row(k).unwrap())).collect();
    objects.sort();
    objects
}

#[test]
fn every_operation_index_fails_cleanly_and_loses_nothing() {
    fail_everywhere(false);
}

#[test]
fn every_operation_index_fails_cleanly_while_the_session_records_beside_the_store() {
    fail_everywhere(true);
}

fn fail_everywhere(overlapped: bool) {
    // The expected end state, from an unfailing run.
    let mut reference = staged(Box::new(MemoryStore::new()), overlapped);
    let expected_plan = reference.plan().unwrap().to_string();
    reference.flush().unwrap();
    let expected = rows(&mut reference);

    let dir = tempfile::Builder::new().prefix("relgraph-fault-").tempdir().unwrap();
    let file = dir.path().join("faults.snap");
    // The rows of the snapshot file as a new reader sees them.
    let on_disk = || {
        let schema = every_pattern().build();
        let mut reader = SnapshotStore::open_read_only(&file).unwrap();
        relgraph_testkit::session_model::rows_of(&schema, &mut reader).unwrap()
    };
    for inner in ["memory", "sqlite", "snapshot"] {
        let base: Box<dyn Store> = match inner {
            "memory" => Box::new(MemoryStore::new()),
            "sqlite" => Box::new(SqliteStore::open_in_memory().unwrap()),
            _ => Box::new(SnapshotStore::open(&file).unwrap()),
        };
        let (store, fault) = FaultStore::new(base, Fault::Never);
        let mut s = staged(Box::new(store), overlapped);
        let before = rows(&mut s);
        let memory_before = session_state(&s);
        let disk_before = (inner == "snapshot").then(on_disk);
        let plan = s.plan().unwrap();
        assert_eq!(plan.to_string(), expected_plan, "{inner}: the plan is deterministic");
        let ops = plan.ops.len();
        assert!(ops >= 10, "the flush touches every pattern: {plan}");
        let mut tried = 0;
        for at in (0..ops).map(Fault::AtOp).chain([Fault::AtCommit]) {
            fault.set(at);
            let err = s.flush().expect_err("the injected fault fails the flush");
            assert_eq!(err.store_kind(), Some(ErrorKind::Connection), "{inner} {at:?}: {err}");
            assert_eq!(rows(&mut s), before, "{inner} {at:?}: the store rolled back");
            if let Some(disk) = &disk_before {
                assert_eq!(&on_disk(), disk, "{at:?}: the snapshot file is unchanged");
            }
            assert_eq!(
                s.plan().unwrap().to_string(),
                expected_plan,
                "{inner} {at:?}: every pending change is kept"
            );
            assert_eq!(session_state(&s), memory_before, "{inner} {at:?}: the session is as it was");
            tried += 1;
        }
        fault.set(Fault::Never);
        let stats = s.flush().unwrap();
        assert_eq!(stats.overlapped, overlapped, "{inner}: {stats:?}");
        assert_eq!(fault.last_transaction_ops(), ops);
        assert_eq!(rows(&mut s), expected, "{inner}: after the failures the same flush succeeds");
        assert_eq!(tried, ops + 1);
        println!(
            "{inner}{}: {tried} fault points tried ({ops} operations and commit), 0 pending changes lost",
            if overlapped { ", recorded beside the store" } else { "" }
        );
    }
    assert_eq!(on_disk(), expected, "the snapshot file holds the flush that finally succeeded");
}
