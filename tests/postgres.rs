//! The session on a real PostgreSQL server: the seed's patterns flushed and
//! read back, a lost connection, and the session's property test. Each test
//! works in a schema of its own, dropped at the end. The server comes from
//! `RELGRAPH_PG_URL` (default: the local server `.ci/run` starts); an
//! unreachable server fails these tests, it does not skip them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use relgraph::{ErrorKind, PostgresStore, Schema, Session, State, Store};
use relgraph_testkit::seed::{SecondaryForm, Sides, many_to_many};
use relgraph_testkit::session_model;

fn url() -> String {
    std::env::var("RELGRAPH_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// A schema name unique to this process and call, dropped on drop.
struct TestSchema(String);

impl TestSchema {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        TestSchema(format!("relgraph_{tag}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)))
    }

    fn store(&self) -> PostgresStore {
        PostgresStore::connect_in_schema(&url(), &self.0).expect("PostgreSQL must be reachable for this test")
    }

    fn session(&self, schema: Arc<Schema>) -> Session {
        Session::new(schema, self.store()).expect("create tables")
    }

    fn query(&self, sql: &str) -> Vec<String> {
        let mut store = self.store();
        store.client().query(sql, &[]).unwrap().iter().map(|r| r.get::<_, String>(0)).collect()
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Ok(mut admin) = PostgresStore::connect(&url()) {
            let _ = admin.client().batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0));
        }
    }
}

#[test]
fn many_to_many_rows_on_postgres() {
    let db = TestSchema::new("m2m");
    let schema = many_to_many(Sides::BackPopulates, SecondaryForm::Name).unwrap();
    let mut s = db.session(schema.clone());
    let (l, r) = (schema.entity_id("Parent").unwrap(), schema.entity_id("Child").unwrap());
    let children = schema.relationship_by_name("Parent", "children").unwrap();
    let (l1, r1, r2) = (s.new_object(l), s.new_object(r), s.new_object(r));
    s.append(l1, children, r1).unwrap();
    s.append(l1, children, r2).unwrap();
    s.add(l1).unwrap();
    s.flush().unwrap();
    assert_eq!(
        db.query("SELECT left_id || '-' || right_id FROM association ORDER BY 1"),
        ["1-1", "1-2"],
        "generated keys came back through RETURNING"
    );
    s.remove_member(l1, children, r1).unwrap();
    s.delete(r2).unwrap();
    s.flush().unwrap();
    assert!(db.query("SELECT left_id || '-' || right_id FROM association").is_empty());
    assert_eq!(db.query("SELECT id::text FROM \"right\" ORDER BY 1"), ["1"]);
}

#[test]
fn a_lost_connection_is_a_typed_error_and_loses_nothing() {
    let db = TestSchema::new("lost");
    let schema = relgraph_testkit::workloads::schema();
    let h = relgraph_testkit::workloads::Handles::new(&schema);
    let mut store = db.store();
    let pid: i32 = store.client().query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let mut s = Session::new(schema.clone(), store).unwrap();
    let p = s.new_object(h.parent);
    let c = s.new_object(h.child);
    s.append(p, h.children, c).unwrap();
    s.add(p).unwrap();
    let plan = s.plan().unwrap().to_string();

    // Another connection ends this session's backend, as a restart or a network cut would.
    let mut admin = PostgresStore::connect(&url()).unwrap();
    admin.client().execute("SELECT pg_terminate_backend($1)", &[&pid]).unwrap();

    let err = s.flush().expect_err("the connection is gone");
    assert_eq!(err.store_kind(), Some(ErrorKind::Connection), "{err}");
    assert_eq!(s.state(p), State::Pending);
    assert_eq!(s.plan().unwrap().to_string(), plan, "every pending change is still there");
    assert!(db.query("SELECT id::text FROM parent").is_empty(), "nothing reached the database");

    // Reconnect and flush again.
    s.replace_store(Box::new(db.store()));
    s.flush().unwrap();
    assert_eq!(db.query("SELECT parent_id::text FROM child"), ["1"]);
}

#[test]
fn session_and_postgres_match_the_model() {
    session_model::property("postgres session model", "RELGRAPH_PG_CASES", 12, 50, 0, |_, schema, ops| {
        let db = TestSchema::new("model");
        let name = db.0.clone();
        let reopen = Box::new(move || {
            Box::new(PostgresStore::connect_in_schema(&url(), &name).expect("reachable")) as Box<dyn Store>
        });
        session_model::run(schema, Box::new(db.store()), reopen, ops).map(drop)
    });
}

/// Phased sequences (see `relgraph_testkit::ops::phased_ops`) through a
/// session that pipelines and streams every flush it can, on PostgreSQL:
/// its flushes of changes only are streamed in whole runs, and every flush
/// must still send exactly its plan and leave the model's rows.
#[test]
fn streamed_flushes_on_postgres_send_their_plan_and_match_the_model() {
    let mut all = session_model::Counts::default();
    let ops = relgraph_testkit::ops::phased_ops(60);
    session_model::property_over(
        "postgres streamed model",
        "RELGRAPH_PG_CASES",
        24,
        ops,
        6,
        |_, schema, ops| {
            let db = TestSchema::new("streamed");
            let name = db.0.clone();
            let reopen = Box::new(move || {
                Box::new(PostgresStore::connect_in_schema(&url(), &name).expect("reachable"))
                    as Box<dyn Store>
            });
            all += session_model::run_pipelined(schema, Box::new(db.store()), reopen, ops)?;
            Ok(())
        },
    );
    println!(
        "postgres streamed: {} flushes checked, {} streamed, {} sent ahead",
        all.flushes, all.streamed, all.sent_ahead
    );
    assert!(all.streamed > 0, "no flush was streamed in {} flushes", all.flushes);
}

/// The same operation sequences through SQLite, the snapshot store and
/// PostgreSQL leave the same rows (keys mapped to the model's objects, since
/// the stores generate key values differently after deletes).
#[test]
fn sqlite_snapshot_and_postgres_leave_the_same_rows() {
    let dir = tempfile::Builder::new().prefix("relgraph-differential-").tempdir().unwrap();
    session_model::property(
        "three-store differential",
        "RELGRAPH_PG_CASES",
        12,
        50,
        0xd1ff,
        |n, schema, ops| {
            let file = |ext: &str| {
                let path = dir.path().join(format!("case{n}.{ext}"));
                let _ = std::fs::remove_file(&path);
                path
            };
            let (sqlite, snapshot) = (file("sqlite"), file("snap"));
            let again = sqlite.clone();
            let from_sqlite = session_model::run_normalized(
                schema.clone(),
                Box::new(relgraph::SqliteStore::open(&sqlite).unwrap()),
                Box::new(move || Box::new(relgraph::SqliteStore::open(&again).unwrap()) as Box<dyn Store>),
                ops,
            )?;
            let again = snapshot.clone();
            let from_snapshot = session_model::run_normalized(
                schema.clone(),
                Box::new(relgraph::SnapshotStore::open(&snapshot).unwrap()),
                Box::new(move || {
                    Box::new(relgraph::SnapshotStore::open_read_only(&again).unwrap()) as Box<dyn Store>
                }),
                ops,
            )?;
            let db = TestSchema::new("diff");
            let name = db.0.clone();
            let from_postgres = session_model::run_normalized(
                schema,
                Box::new(db.store()),
                Box::new(move || {
                    Box::new(PostgresStore::connect_in_schema(&url(), &name).expect("reachable"))
                        as Box<dyn Store>
                }),
                ops,
            )?;
            if from_sqlite != from_snapshot || from_sqlite != from_postgres {
                return Err(format!(
                    "SQLite rows {from_sqlite:?}\nsnapshot rows {from_snapshot:?}\nPostgreSQL rows {from_postgres:?}"
                ));
            }
            Ok(())
        },
    );
}

/// A large flush of UPDATEs and DELETEs on PostgreSQL is streamed: its
/// UPDATEs go to the store before the delete analysis, as they do to the
/// other stores, but each run of them whole, since the store's set-based
/// statements want whole runs: one UPDATE statement for the 15 renamed
/// parents, one DELETE for the 15 children, one for the 5 parents.
#[test]
fn postgres_takes_whole_runs_and_an_overlapped_flush_writes_the_right_rows() {
    let schema = relgraph_testkit::workloads::schema();
    let h = relgraph_testkit::workloads::Handles::new(&schema);
    let test = TestSchema::new("whole_runs");
    let mut session = test.session(schema.clone());
    assert!(session.store_mut().prefers_whole_runs());
    let col = |e, n| schema.entity_column(e, n).unwrap();
    let (pid, pname, cid) = (col(h.parent, "id"), col(h.parent, "name"), col(h.child, "id"));
    let mut parents = Vec::new();
    for p in 1..=20i64 {
        let parent = session.new_with(h.parent, [(pid, relgraph::Value::from(p))]).unwrap();
        session.add(parent).unwrap();
        for k in 0..3 {
            let child = session.new_with(h.child, [(cid, relgraph::Value::from(p * 10 + k))]).unwrap();
            session.append(parent, h.children, child).unwrap();
        }
        parents.push(parent);
    }
    session.flush().unwrap();
    for (i, &p) in parents.iter().enumerate() {
        session.set_value(p, pname, format!("renamed {i}")).unwrap();
        if i % 4 == 3 {
            session.delete(p).unwrap();
        }
    }
    session.set_pipeline_threshold(0);
    let statements = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let echoed = statements.clone();
    session.set_echo(Some(Box::new(move |sql| echoed.lock().unwrap().push(sql.to_owned()))));
    let stats = session.flush().unwrap();
    session.set_echo(None);
    assert!(stats.overlapped && stats.streamed == 15 && stats.sent_ahead == 15, "{stats:?}");
    assert_eq!(stats.deletes, 5 + 15, "{stats:?}");
    let statements = statements.lock().unwrap();
    let kinds: Vec<&str> = statements
        .iter()
        .filter_map(|sql| ["UPDATE", "DELETE"].into_iter().find(|kind| sql.starts_with(kind)))
        .collect();
    assert_eq!(kinds, ["UPDATE", "DELETE", "DELETE"], "one statement a run: {statements:#?}");
    assert_eq!(test.query("SELECT count(*)::text FROM parent"), ["15"]);
    assert_eq!(test.query("SELECT count(*)::text FROM child"), ["45"]);
    assert_eq!(test.query("SELECT name FROM parent WHERE id = 1"), ["renamed 0"]);
}
