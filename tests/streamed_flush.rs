//! A large flush of UPDATEs and DELETEs on SQLite sends its first UPDATEs
//! before it has worked out its cascades. When that work needs a
//! relationship loaded, the store comes back for the load (its transaction
//! rolled back) and the UPDATEs go again: the statements and the rows are
//! those of the ordinary flush.

use relgraph::ObjectKey;
use relgraph::{FlushStats, RowOp, Session, SqliteStore, Value};
use relgraph_testkit::fault::{Fault, FaultHandle, FaultStore};
use relgraph_testkit::rng::XorShift;
use relgraph_testkit::workloads::{Handles, schema};

/// 40 parents with 3 children each, written by one session; then a second
/// session over the same file loads the parents only, renames them all and
/// deletes every fourth, whose children (not loaded) the delete cascade
/// must load. Flushed with the streamed flush from `pipeline` operations.
fn flush_after_reopening(name: &str, pipeline: usize) -> (FlushStats, Vec<RowOp>, FaultHandle, Vec<String>) {
    let schema = schema();
    let h = Handles::new(&schema);
    let dir = tempfile::Builder::new().prefix("relgraph-tests-").tempdir().unwrap();
    let path = dir.path().join(format!("{name}.sqlite"));
    let col = |e, n| schema.entity_column(e, n).unwrap();
    let (pid, pname, cid) = (col(h.parent, "id"), col(h.parent, "name"), col(h.child, "id"));
    {
        let mut writer = Session::new(schema.clone(), SqliteStore::open(&path).unwrap()).unwrap();
        for p in 1..=40i64 {
            let parent = writer
                .new_with(h.parent, [(pid, Value::from(p)), (pname, Value::from(format!("parent-{p}")))])
                .unwrap();
            writer.add(parent).unwrap();
            for k in 0..3 {
                let child = writer.new_with(h.child, [(cid, Value::from(p * 10 + k))]).unwrap();
                writer.append(parent, h.children, child).unwrap();
            }
        }
        writer.flush().unwrap();
    }
    let (store, fault) = FaultStore::new(Box::new(SqliteStore::open(&path).unwrap()), Fault::Never);
    let mut session = Session::new(schema.clone(), store).unwrap();
    session.set_pipeline_threshold(pipeline);
    let parents = session.load_all(h.parent).unwrap();
    for (i, &p) in parents.iter().enumerate() {
        session.set_value(p, pname, format!("renamed-{i}")).unwrap();
        if i % 4 == 3 {
            session.delete(p).unwrap();
        }
    }
    let begun = fault.transactions();
    let stats = session.flush().unwrap();
    let sent = fault.last_transaction();
    assert_eq!(fault.transactions() - begun, if pipeline == 0 { 2 } else { 1 }, "{name}: transactions");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT 'p', id, name FROM parent UNION ALL SELECT 'c', id, parent_id FROM child ORDER BY 1, 2",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(format!(
                "{}{}:{:?}",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, rusqlite::types::Value>(2)?
            ))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (stats, sent, fault, rows)
}

#[test]
fn a_load_during_the_delete_analysis_takes_the_store_back_and_the_updates_go_again() {
    let (ordinary, ordinary_sent, _, ordinary_rows) = flush_after_reopening("streamed-reference", usize::MAX);
    assert_eq!(ordinary.streamed, 0, "{ordinary:?}");
    let (streamed, sent, _, rows) = flush_after_reopening("streamed-reload", 0);
    // The renames went ahead, came back for the children's load, and were
    // streamed again once the plan was known.
    assert_eq!(streamed.sent_ahead, 0, "{streamed:?}");
    assert_eq!(streamed.streamed, 30, "{streamed:?}");
    assert_eq!(sent, ordinary_sent, "the same statements, in the same order");
    assert_eq!(rows, ordinary_rows);
    assert_eq!((streamed.updates, streamed.deletes), (30, 10 + 30), "{streamed:?}");
    assert_eq!(rows.iter().filter(|r| r.starts_with('p')).count(), 30);
    assert!(rows.iter().any(|r| r.starts_with("p1:") && r.contains("renamed-0")), "{rows:?}");
}

/// Random renames, moves, orphanings and deletes of parents and children
/// (delete cascade and delete-orphan), on SQLite and on a snapshot file,
/// flushed by a session that streams
/// (sending UPDATEs ahead of its cascades, some guessed) and by one that
/// runs every flush as an ordinary one, over the same rows: both send the
/// same statements in the same order and leave the same rows, through
/// several flushes in a row.
#[test]
fn flushes_that_send_updates_ahead_send_what_ordinary_flushes_send() {
    let schema = schema();
    let h = Handles::new(&schema);
    let col = |e, n| schema.entity_column(e, n).unwrap();
    let (pid, pname, cid, cname) =
        (col(h.parent, "id"), col(h.parent, "name"), col(h.child, "id"), col(h.child, "name"));
    let (mut ahead, mut retried, mut flushes) = (0, 0, 0);
    let dir = tempfile::Builder::new().prefix("relgraph-tests-ahead-").tempdir().unwrap();
    // SQLite, and the snapshot store (which checks each row as it comes).
    for seed in 1..=80u64 {
        let mut rng = XorShift::new(seed);
        let store = |pipeline: usize| -> Box<dyn relgraph::Store> {
            if seed % 2 == 0 {
                return Box::new(SqliteStore::open_in_memory().unwrap());
            }
            let path = dir.path().join(format!("seed{seed}-{}.snap", pipeline == 0));
            let _ = std::fs::remove_file(&path);
            Box::new(relgraph::SnapshotStore::open(&path).unwrap())
        };
        let mut sessions: Vec<(Session, FaultHandle)> = [0, usize::MAX]
            .into_iter()
            .map(|pipeline| {
                let (store, fault) = FaultStore::new(store(pipeline), Fault::Never);
                let mut session = Session::new(schema.clone(), store).unwrap();
                session.set_pipeline_threshold(pipeline);
                (session, fault)
            })
            .collect();
        // The same objects, in the same order, in both sessions: the same keys.
        let (parents, children) = {
            let build = |session: &mut Session, rng: &mut XorShift| {
                let (mut parents, mut children) = (Vec::new(), Vec::new());
                let mut next_child = 1i64;
                for p in 1..=(5 + rng.below(40) as i64) {
                    let parent = session.new_with(h.parent, [(pid, Value::from(p))]).unwrap();
                    session.add(parent).unwrap();
                    for _ in 0..rng.below(5) {
                        let child = session.new_with(h.child, [(cid, Value::from(next_child))]).unwrap();
                        next_child += 1;
                        session.append(parent, h.children, child).unwrap();
                        children.push(child);
                    }
                    parents.push(parent);
                }
                session.flush().unwrap();
                (parents, children)
            };
            let built: Vec<_> =
                sessions.iter_mut().map(|(s, _)| build(s, &mut XorShift::new(seed))).collect();
            assert_eq!(built[0], built[1]);
            built.into_iter().next().unwrap()
        };
        for round in 0..3 {
            let live = |s: &Session, o: ObjectKey| s.state(o) == relgraph::State::Persistent;
            // One list of changes, made to both sessions alike.
            let changes: Vec<(u64, usize, usize)> = (0..rng.below(60))
                .map(|_| (rng.below(6), rng.below(1000) as usize, rng.below(1000) as usize))
                .collect();
            for (session, _) in &mut sessions {
                for &(kind, a, b) in &changes {
                    let (p, c) =
                        (parents[a % parents.len()], children.get(a % children.len().max(1)).copied());
                    let q = parents[b % parents.len()];
                    match (kind, c) {
                        (0, _) if live(session, p) => {
                            session.set_value(p, pname, format!("p{round}-{b}")).map(drop).unwrap()
                        }
                        (1, Some(c)) if live(session, c) => {
                            session.set_value(c, cname, format!("c{round}-{b}")).map(drop).unwrap()
                        }
                        (2, Some(c)) if live(session, c) && live(session, q) => {
                            session.set(c, h.child_parent, Some(q)).map(drop).unwrap()
                        }
                        (3, Some(c)) if live(session, c) && b % 4 == 0 => {
                            session.set(c, h.child_parent, None).map(drop).unwrap()
                        }
                        (4, _) if live(session, p) && b % 3 == 0 => session.delete(p).unwrap(),
                        (5, Some(c)) if live(session, c) && b % 3 == 0 => session.delete(c).unwrap(),
                        _ => {}
                    }
                }
            }
            let mut sent = Vec::new();
            for (session, fault) in &mut sessions {
                let begun = fault.transactions();
                let stats = session.flush().unwrap_or_else(|e| panic!("seed {seed}, round {round}: {e}"));
                if stats.sent_ahead > 0 {
                    ahead += 1;
                }
                retried += usize::from(fault.transactions() > begun + 1);
                let ops = if fault.transactions() > begun { fault.last_transaction() } else { Vec::new() };
                sent.push((ops, rows_of(session)));
            }
            flushes += 1;
            assert_eq!(sent[0], sent[1], "seed {seed}, round {round}: the same statements and rows");
        }
    }
    println!("{flushes} flushes compared, {ahead} sent UPDATEs ahead of their cascades, {retried} retried");
    assert!(ahead * 2 >= flushes, "too few flushes sent UPDATEs ahead: {ahead} of {flushes}");
    // A guess is cut short where a deletion could make it wrong, so none of
    // these flushes should have to throw what it sent ahead away.
    assert_eq!(retried, 0, "flushes that sent UPDATEs ahead in vain");
}

fn rows_of(session: &mut Session) -> Vec<Vec<relgraph::Row>> {
    let schema = session.schema().clone();
    schema.table_ids().map(|t| session.store_mut().load_all(&schema, t).unwrap()).collect()
}
