//! A large flush of UPDATEs and DELETEs on SQLite sends its first UPDATEs
//! before it has worked out its cascades. When that work needs a
//! relationship loaded, the store comes back for the load (its transaction
//! rolled back) and the UPDATEs go again: the statements and the rows are
//! those of the ordinary flush.

use relgraph::{FlushStats, RowOp, Session, SqliteStore, Value};
use relgraph_testkit::fault::{Fault, FaultHandle, FaultStore};
use relgraph_testkit::workloads::{Handles, schema};

/// 40 parents with 3 children each, written by one session; then a second
/// session over the same file loads the parents only, renames them all and
/// deletes every fourth, whose children (not loaded) the delete cascade
/// must load. Flushed with the streamed flush from `pipeline` operations.
fn flush_after_reopening(name: &str, pipeline: usize) -> (FlushStats, Vec<RowOp>, FaultHandle, Vec<String>) {
    let schema = schema();
    let h = Handles::new(&schema);
    let dir = std::env::temp_dir().join(format!("relgraph-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.sqlite"));
    let _ = std::fs::remove_file(&path);
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
