//! The session's model-based property test on SQLite files: random schemas
//! of the family, random operations with flushes interleaved; after each
//! flush the graph, the stored rows and a fresh session's view must all
//! match the reference model. Replay a failure with the printed
//! `RELGRAPH_SEED`; `RELGRAPH_CASES` sets the number of cases (default 64).

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use relgraph::SqliteStore;
use relgraph_testkit::family::schema_spec;
use relgraph_testkit::ops::op;
use relgraph_testkit::session_model;

#[test]
fn session_and_sqlite_match_the_model() {
    let seed: u64 = std::env::var("RELGRAPH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    println!("session model seed: RELGRAPH_SEED={seed}");
    let cases = std::env::var("RELGRAPH_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let dir = std::env::temp_dir().join(format!("relgraph-session-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let counter = AtomicUsize::new(0);
    let (steps, flushes) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let result = runner.run(&(schema_spec(), proptest::collection::vec(op(), 1..80)), |(spec, ops)| {
        let path = dir.join(format!("case{}.sqlite", counter.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_file(&path);
        let store = Box::new(SqliteStore::open(&path).unwrap());
        let again = path.clone();
        let reopen =
            Box::new(move || Box::new(SqliteStore::open(&again).unwrap()) as Box<dyn relgraph::Store>);
        let outcome = session_model::run(spec.build(), store, reopen, &ops);
        let _ = std::fs::remove_file(&path);
        let (s, f) = outcome.map_err(TestCaseError::fail)?;
        steps.fetch_add(s, Ordering::Relaxed);
        flushes.fetch_add(f, Ordering::Relaxed);
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("{e}\nreplay with RELGRAPH_SEED={seed}");
    }
    println!("session model: {} steps, {} flushes checked", steps.into_inner(), flushes.into_inner());
}
