//! The session on a real PostgreSQL server: the seed's patterns flushed and
//! read back, a lost connection, and the session's property test. Each test
//! works in a schema of its own, dropped at the end. The server comes from
//! `RELGRAPH_PG_URL` (default: the local server `.ci/run` starts); an
//! unreachable server fails these tests, it does not skip them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use relgraph::{ErrorKind, PostgresStore, Schema, Session, State, Store};
use relgraph_testkit::family::schema_spec;
use relgraph_testkit::ops::op;
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
    let seed: u64 = std::env::var("RELGRAPH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    println!("postgres session model seed: RELGRAPH_SEED={seed}");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let cases = std::env::var("RELGRAPH_PG_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(12);
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let result = runner.run(&(schema_spec(), proptest::collection::vec(op(), 1..50)), |(spec, ops)| {
        let db = TestSchema::new("model");
        let name = db.0.clone();
        let reopen = Box::new(move || {
            Box::new(PostgresStore::connect_in_schema(&url(), &name).expect("reachable")) as Box<dyn Store>
        });
        let outcome = session_model::run(spec.build(), Box::new(db.store()), reopen, &ops);
        outcome.map(drop).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}\nreplay with RELGRAPH_SEED={seed}");
    }
}

/// The same operation sequences through SQLite and through PostgreSQL leave
/// the same rows (keys mapped to the model's objects, since the two generate
/// key values differently after deletes).
#[test]
fn sqlite_and_postgres_leave_the_same_rows() {
    let seed: u64 = std::env::var("RELGRAPH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    println!("differential seed: RELGRAPH_SEED={seed}");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&(seed ^ 0xd1ff).to_le_bytes());
    let cases = std::env::var("RELGRAPH_PG_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(12);
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let dir = std::env::temp_dir().join(format!("relgraph-differential-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let counter = AtomicUsize::new(0);
    let result = runner.run(&(schema_spec(), proptest::collection::vec(op(), 1..50)), |(spec, ops)| {
        let schema = spec.build();
        let path = dir.join(format!("case{}.sqlite", counter.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_file(&path);
        let again = path.clone();
        let sqlite = session_model::run_normalized(
            schema.clone(),
            Box::new(relgraph::SqliteStore::open(&path).unwrap()),
            Box::new(move || Box::new(relgraph::SqliteStore::open(&again).unwrap()) as Box<dyn Store>),
            &ops,
        )
        .map_err(TestCaseError::fail)?;
        let _ = std::fs::remove_file(&path);
        let db = TestSchema::new("diff");
        let name = db.0.clone();
        let postgres = session_model::run_normalized(
            schema,
            Box::new(db.store()),
            Box::new(move || {
                Box::new(PostgresStore::connect_in_schema(&url(), &name).expect("reachable"))
                    as Box<dyn Store>
            }),
            &ops,
        )
        .map_err(TestCaseError::fail)?;
        if sqlite != postgres {
            return Err(TestCaseError::fail(format!("SQLite rows {sqlite:?}\nPostgreSQL rows {postgres:?}")));
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("{e}\nreplay with RELGRAPH_SEED={seed}");
    }
}
