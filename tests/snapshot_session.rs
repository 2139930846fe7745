//! A session over the snapshot store: the seed's patterns persist and read
//! back through a new store over the same file, and the flush's plans hold
//! one statement at a time (the snapshot store checks every foreign key at
//! each operation, where SQL stores check at the end of each statement).

use relgraph::{Session, SnapshotStore, Value};

/// A folder, removed when dropped, and the path of a snapshot file in it.
fn scratch(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new().prefix("relgraph-snapshot-session-").tempdir().unwrap();
    let path = dir.path().join(format!("{name}.snap"));
    (dir, path)
}

#[test]
fn deleting_rows_that_reference_each_other_nulls_a_key_first() {
    let (_dir, path) = scratch("delete-cycle");
    let schema = relgraph_testkit::seed::adjacency_list().unwrap();
    let node = schema.entity_id("Node").unwrap();
    let parent = schema.relationship_by_name("Node", "parent").unwrap();
    let mut session = Session::new(schema.clone(), SnapshotStore::open(&path).unwrap()).unwrap();
    let (a, b) = (session.new_object(node), session.new_object(node));
    session.set(a, parent, Some(b)).unwrap();
    session.set(b, parent, Some(a)).unwrap();
    session.add(a).unwrap();
    session.flush().unwrap();

    session.delete(a).unwrap();
    session.delete(b).unwrap();
    let plan: Vec<String> = session.plan().unwrap().ops.iter().map(|op| op.reason.clone()).collect();
    assert_eq!(plan.len(), 3, "{plan:?}");
    assert!(plan[0].starts_with("UPDATE"), "the cycle is broken by an UPDATE first: {plan:?}");
    session.flush().unwrap();
    drop(session);
    let mut again = SnapshotStore::open(&path).unwrap();
    relgraph::Store::create_tables(&mut again, &schema).unwrap();
    let table = schema.table_id("node").unwrap();
    assert_eq!(relgraph::Store::load_all(&mut again, &schema, table).unwrap(), Vec::<relgraph::Row>::new());
}

#[test]
fn the_seed_one_to_many_persists_and_reads_back() {
    let (_dir, path) = scratch("one-to-many");
    let schema = relgraph_testkit::seed::one_to_many(relgraph_testkit::seed::Sides::BackPopulates).unwrap();
    let (parent_e, child_e) = (schema.entity_id("Parent").unwrap(), schema.entity_id("Child").unwrap());
    let children = schema.relationship_by_name("Parent", "children").unwrap();
    let mut session = Session::new(schema.clone(), SnapshotStore::open(&path).unwrap()).unwrap();
    let p = session.new_object(parent_e);
    let kids: Vec<_> = (0..3).map(|_| session.new_object(child_e)).collect();
    for &k in &kids {
        session.append(p, children, k).unwrap();
    }
    session.add(p).unwrap();
    session.commit().unwrap();
    session.remove_member(p, children, kids[1]).unwrap();
    session.commit().unwrap();
    drop(session);

    let mut fresh = Session::new(schema.clone(), SnapshotStore::open(&path).unwrap()).unwrap();
    let p = fresh.get(parent_e, &[Value::Integer(1)]).unwrap().expect("parent 1");
    let loaded = fresh.members(p, children).unwrap();
    assert_eq!(loaded.len(), 2);
    let id = schema.entity_column(child_e, "id").unwrap();
    let mut ids: Vec<i64> =
        loaded.iter().map(|&k| fresh.graph().value(k, id).unwrap().as_i64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 3]);
}

#[test]
fn the_echo_shows_row_operations_and_the_batch_appended() {
    let (_dir, path) = scratch("echo");
    let schema = relgraph_testkit::seed::one_to_many(relgraph_testkit::seed::Sides::BackPopulates).unwrap();
    let (parent_e, child_e) = (schema.entity_id("Parent").unwrap(), schema.entity_id("Child").unwrap());
    let children = schema.relationship_by_name("Parent", "children").unwrap();
    let mut session = Session::new(schema.clone(), SnapshotStore::open(&path).unwrap()).unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    session.set_echo(Some(Box::new(move |line: &str| sink.lock().unwrap().push(line.to_owned()))));
    let (p, c) = (session.new_object(parent_e), session.new_object(child_e));
    session.append(p, children, c).unwrap();
    session.add(p).unwrap();
    session.flush().unwrap();
    let lines = lines.lock().unwrap();
    let shown: Vec<&str> = lines.iter().map(|l| l.split(" -- ").next().unwrap()).collect();
    assert_eq!(
        shown,
        ["INSERT parent (id) = (NULL)", "INSERT child (id, parent_id) = (NULL, 1)", "APPEND batch 1"],
        "{lines:?}"
    );
}

/// A pipelined flush of new rows large enough for its commit to compact
/// (18,700 rows into an empty file, over the 16,384 a log may hold), the
/// path on which the store is told how many operations come and lays the
/// rows out as they arrive (that path's own tests are the snapshot crate's
/// `store::laid_out_tests`). A commit that fails loses nothing: the file
/// stays empty, the objects pending, and the same flush then goes through,
/// compacting the file to one image holding exactly the workload's rows.
#[test]
fn a_large_new_flush_compacts_to_one_image_and_a_failed_commit_loses_nothing() {
    use relgraph_testkit::fault::{Fault, FaultStore};
    use relgraph_testkit::workloads::{Handles, schema, w1_rows};

    let (_dir, path) = scratch("large-new-flush");
    let schema = schema();
    let h = Handles::new(&schema);
    let (store, fault) = FaultStore::new(Box::new(SnapshotStore::open(&path).unwrap()), Fault::AtCommit);
    let mut session = Session::new(schema.clone(), store).unwrap();
    let col = |e, n| schema.entity_column(e, n).unwrap();
    let (ps, cs) = w1_rows(1_700);
    let mut parents = Vec::new();
    for (id, name) in &ps {
        let p = session
            .new_with(
                h.parent,
                [
                    (col(h.parent, "id"), Value::from(*id)),
                    (col(h.parent, "name"), Value::from(name.as_str())),
                ],
            )
            .unwrap();
        session.add(p).unwrap();
        parents.push(p);
    }
    for (id, parent, name, value) in &cs {
        let c = session
            .new_with(
                h.child,
                [
                    (col(h.child, "id"), Value::from(*id)),
                    (col(h.child, "name"), Value::from(name.as_str())),
                    (col(h.child, "value"), Value::from(*value)),
                ],
            )
            .unwrap();
        session.append(parents[*parent as usize - 1], h.children, c).unwrap();
    }
    let err = session.flush().unwrap_err();
    assert!(err.to_string().contains("commit"), "{err}");
    assert!(parents.iter().all(|&p| session.state(p) == relgraph::State::Pending));
    let read = |path: &std::path::Path| {
        let mut store = SnapshotStore::open_read_only(path).unwrap();
        relgraph::Store::create_tables(&mut store, &schema).unwrap();
        let all = |store: &mut SnapshotStore, t: &str| {
            relgraph::Store::load_all(store, &schema, schema.table_id(t).unwrap()).unwrap()
        };
        (all(&mut store, "parent"), all(&mut store, "child"), store.info().unwrap().batches)
    };
    let (no_parents, no_children, _) = read(&path);
    assert!(no_parents.is_empty() && no_children.is_empty(), "the failed commit wrote nothing");

    fault.set(Fault::Never);
    let stats = session.flush().unwrap();
    assert!(stats.pipelined);
    assert_eq!(stats.inserts, 18_700);
    assert!(parents.iter().all(|&p| session.state(p) == relgraph::State::Persistent));
    drop(session);
    let (stored_parents, stored_children, batches) = read(&path);
    assert_eq!(batches, 0, "the commit compacted the file to one image");
    let expected_parents: Vec<relgraph::Row> = ps
        .iter()
        .map(|(id, name)| -> relgraph::Row { Box::new([Value::from(*id), Value::from(name.as_str())]) })
        .collect();
    let expected_children: Vec<relgraph::Row> = cs
        .iter()
        .map(|(id, parent, name, value)| -> relgraph::Row {
            Box::new([
                Value::from(*id),
                Value::from(*parent),
                Value::from(name.as_str()),
                Value::from(*value),
            ])
        })
        .collect();
    assert_eq!(stored_parents, expected_parents);
    assert_eq!(stored_children, expected_children);
}
