//! Pipelined flushes (new rows only, the store writing on a thread of its
//! own): the same operations as the ordinary flush, and on any failure (the
//! store's at any operation or at commit, or the session's own halfway
//! through) nothing written and nothing recorded: the session is as before
//! and the same flush then succeeds.

use relgraph::{ErrorKind, FlushError, ObjectKey, RowOp, Session, SqliteStore, State, Value};
use relgraph_testkit::fault::{Fault, FaultHandle, FaultStore};
use relgraph_testkit::workloads::{Handles, schema};

/// Objects of a flush of new rows: parents with explicit keys and with
/// generated ones, their children (brought in by the save-update cascade),
/// lefts and rights linked many-to-many.
struct Staged {
    session: Session,
    sent: FaultHandle,
    parents: Vec<ObjectKey>,
    children: Vec<ObjectKey>,
}

fn staged(pipeline: usize) -> Staged {
    let schema = schema();
    let h = Handles::new(&schema);
    let (store, sent) = FaultStore::new(Box::new(SqliteStore::open_in_memory().unwrap()), Fault::Never);
    let mut session = Session::new(schema.clone(), store).unwrap();
    session.set_pipeline_threshold(pipeline);
    let col = |e, n| schema.entity_column(e, n).unwrap();
    let (pid, pname, cid) = (col(h.parent, "id"), col(h.parent, "name"), col(h.child, "id"));
    let (mut parents, mut children) = (Vec::new(), Vec::new());
    for p in 0..40i64 {
        let parent = session.new_object(h.parent);
        // Every fourth parent's key is generated: its children refer to it by position.
        if p % 4 != 3 {
            session.set_value(parent, pid, p + 1).unwrap();
        }
        session.set_value(parent, pname, format!("parent-{p}")).unwrap();
        session.add(parent).unwrap();
        for k in 0..3 {
            let child = session.new_object(h.child);
            session.set_value(child, cid, p * 10 + k).unwrap();
            session.append(parent, h.children, child).unwrap();
            children.push(child);
        }
        parents.push(parent);
    }
    let (lid, rid) = (col(h.left, "id"), col(h.right, "id"));
    let lefts: Vec<ObjectKey> =
        (1..=10i64).map(|i| session.new_with(h.left, [(lid, Value::from(i))]).unwrap()).collect();
    let rights: Vec<ObjectKey> =
        (1..=10i64).map(|i| session.new_with(h.right, [(rid, Value::from(i))]).unwrap()).collect();
    for (i, &l) in lefts.iter().enumerate() {
        session.add(l).unwrap();
        for k in 0..3 {
            session.append(l, h.rights, rights[(i * 7 + k * 3) % 10]).unwrap();
        }
    }
    Staged { session, sent, parents, children }
}

fn rows(session: &mut Session) -> Vec<String> {
    let schema = session.schema().clone();
    let mut out = Vec::new();
    for t in schema.table_ids() {
        let mut rows = session.store_mut().load_all(&schema, t).unwrap();
        rows.sort_by(|a, b| relgraph_testkit::memory_store::compare_rows(a, b));
        out.extend(rows.iter().map(|r| format!("{} {r:?}", schema.table(t).name)));
    }
    out
}

#[test]
fn a_pipelined_flush_sends_what_the_ordinary_flush_sends() {
    let mut ordinary = staged(usize::MAX);
    let mut pipelined = staged(0);
    let plan: Vec<RowOp> = pipelined.session.plan().unwrap().ops.into_iter().map(|p| p.op).collect();
    assert!(!ordinary.session.flush().unwrap().pipelined);
    let stats = pipelined.session.flush().unwrap();
    assert!(stats.pipelined);
    assert_eq!(stats.inserts, 40 + 120 + 20);
    assert_eq!(stats.association_inserts, 30);
    assert_eq!(pipelined.sent.last_transaction(), ordinary.sent.last_transaction());
    assert_eq!(pipelined.sent.last_transaction(), plan, "the plan is what runs");
    assert_eq!(rows(&mut pipelined.session), rows(&mut ordinary.session));
    // The session's record moved as the ordinary flush moves it: generated
    // keys and foreign keys read back, objects persistent, found by key.
    let schema = pipelined.session.schema().clone();
    let h = Handles::new(&schema);
    let parent_id = schema.entity_column(h.child, "parent_id").unwrap();
    for (s, o) in [(&pipelined, &ordinary)] {
        for (a, b) in s.children.iter().zip(&o.children) {
            assert_eq!(s.session.value(*a, parent_id).unwrap(), o.session.value(*b, parent_id).unwrap());
            assert_eq!(s.session.state(*a), State::Persistent);
        }
    }
    let generated = pipelined.parents[3];
    let id =
        pipelined.session.value(generated, schema.entity_column(h.parent, "id").unwrap()).unwrap().clone();
    assert!(matches!(id, Value::Integer(_)), "the generated key is read back: {id:?}");
    assert_eq!(pipelined.session.get(h.parent, &[id]).unwrap(), Some(generated));
    assert_eq!(pipelined.session.get(h.parent, &[Value::Integer(1)]).unwrap(), Some(pipelined.parents[0]));
    // Nothing is left to write.
    assert_eq!(pipelined.session.flush().unwrap(), Default::default());
}

#[test]
fn a_pipelined_flush_failed_anywhere_loses_nothing() {
    let mut reference = staged(usize::MAX);
    reference.session.flush().unwrap();
    let expected = rows(&mut reference.session);

    let Staged { mut session, sent, parents, children } = staged(0);
    let schema = session.schema().clone();
    let h = Handles::new(&schema);
    let parent_id = schema.entity_column(h.child, "parent_id").unwrap();
    let plan = session.plan().unwrap().to_string();
    let ops = session.plan().unwrap().ops.len();
    for at in (0..ops).map(Fault::AtOp).chain([Fault::AtCommit]) {
        sent.set(at);
        let err = session.flush().expect_err("the injected fault fails the flush");
        assert_eq!(err.store_kind(), Some(ErrorKind::Connection), "{at:?}: {err}");
        assert!(rows(&mut session).is_empty(), "{at:?}: the store rolled back");
        // What the pipeline recorded early is put back.
        assert!(parents.iter().all(|&p| session.state(p) == State::Pending), "{at:?}");
        assert!(children.iter().all(|&c| session.state(c) == State::Transient), "{at:?}");
        assert!(children.iter().all(|&c| session.value(c, parent_id).unwrap().is_null()), "{at:?}");
        assert_eq!(
            session.get(h.parent, &[Value::Integer(1)]).unwrap(),
            None,
            "{at:?}: the identity map forgot"
        );
        assert_eq!(session.plan().unwrap().to_string(), plan, "{at:?}: every pending change is kept");
    }
    sent.set(Fault::Never);
    assert!(session.flush().unwrap().pipelined);
    assert_eq!(rows(&mut session), expected, "after the failures the same flush succeeds");
}

#[test]
fn a_session_error_halfway_through_a_pipeline_rolls_back() {
    // Enough rows that the store has begun writing before the duplicate key is found.
    let schema = schema();
    let h = Handles::new(&schema);
    let mut session = Session::new(schema.clone(), SqliteStore::open_in_memory().unwrap()).unwrap();
    session.set_pipeline_threshold(0);
    let pid = schema.entity_column(h.parent, "id").unwrap();
    let parents: Vec<ObjectKey> = (1..=10_000i64)
        .map(|i| {
            let p = session.new_with(h.parent, [(pid, Value::from(i))]).unwrap();
            session.add(p).unwrap();
            p
        })
        .collect();
    let late = *parents.last().unwrap();
    session.set_value(late, pid, 10).unwrap();
    let err = session.flush().expect_err("a duplicate key");
    assert!(matches!(err, FlushError::DuplicateKey { .. }), "{err}");
    assert!(rows(&mut session).is_empty(), "nothing written stays");
    assert!(parents.iter().all(|&p| session.state(p) == State::Pending));
    assert_eq!(session.get(h.parent, &[Value::Integer(10)]).unwrap(), None, "the early record is undone");
    session.set_value(late, pid, 10_000).unwrap();
    let stats = session.flush().unwrap();
    assert!(stats.pipelined);
    assert_eq!(stats.inserts, 10_000);
    assert_eq!(session.get(h.parent, &[Value::Integer(10)]).unwrap(), Some(parents[9]));
}

/// A row the store itself refuses (here a second row with a unique value,
/// which only the database checks) fails a pipelined flush from inside the
/// store's own handling of laid-out rows, on SQLite and on a snapshot:
/// nothing is written, every object is pending again and out of the
/// identity map, and once the value is fixed the same flush succeeds.
#[test]
fn a_row_the_store_refuses_halfway_through_a_pipeline_loses_nothing() {
    let mut registry = relgraph::Registry::new();
    registry
        .entity(
            relgraph::Entity::new("Tag", "tag")
                .column(relgraph::Column::integer("id").primary_key())
                .column(relgraph::Column::text("code").unique()),
        )
        .unwrap();
    let schema = registry.configure().unwrap();
    let tag = schema.entity_id("Tag").unwrap();
    let (id, code) = (schema.entity_column(tag, "id").unwrap(), schema.entity_column(tag, "code").unwrap());
    let dir = tempfile::Builder::new().prefix("relgraph-tests-refused-").tempdir().unwrap();
    let stores: [(&str, Box<dyn relgraph::Store>); 2] = [
        ("sqlite", Box::new(SqliteStore::open_in_memory().unwrap())),
        ("snapshot", Box::new(relgraph::SnapshotStore::open(dir.path().join("refused.snap")).unwrap())),
    ];
    for (name, store) in stores {
        let mut session = Session::with_store(schema.clone(), store).unwrap();
        session.set_pipeline_threshold(0);
        // Enough rows that the store has written chunks before the duplicate.
        let tags: Vec<ObjectKey> = (1..=5_000i64)
            .map(|i| {
                let t = session.new_with(tag, [(id, Value::from(i)), (code, Value::from(format!("c{i}")))]);
                let t = t.unwrap();
                session.add(t).unwrap();
                t
            })
            .collect();
        let late = *tags.last().unwrap();
        session.set_value(late, code, "c10").unwrap();
        let plan = session.plan().unwrap().to_string();
        let err = session.flush().expect_err("a duplicate unique value");
        assert_eq!(err.store_kind(), Some(ErrorKind::Unique), "{name}: {err}");
        assert!(rows(&mut session).is_empty(), "{name}: nothing written stays");
        assert!(tags.iter().all(|&t| session.state(t) == State::Pending), "{name}");
        assert_eq!(
            session.get(tag, &[Value::Integer(10)]).unwrap(),
            None,
            "{name}: the early record is undone"
        );
        assert_eq!(session.plan().unwrap().to_string(), plan, "{name}: every pending change is kept");
        session.set_value(late, code, "c5000").unwrap();
        let stats = session.flush().unwrap();
        assert!(stats.pipelined, "{name}");
        assert_eq!(stats.inserts, 5_000, "{name}");
        assert_eq!(session.get(tag, &[Value::Integer(10)]).unwrap(), Some(tags[9]), "{name}");
        assert_eq!(rows(&mut session).len(), 5_000, "{name}");
    }
}
