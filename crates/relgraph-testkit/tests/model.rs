//! Model-based property test of the back-populate engine: random schemas
//! from the family, random operation sequences, and after every step the
//! engine checked against the reference model.
//!
//! Each run prints its seed; `RELGRAPH_SEED=<seed> cargo test -p
//! relgraph-testkit --test model` replays it exactly. `RELGRAPH_CASES`
//! changes the number of cases (default 256).

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use relgraph_testkit::family::{every_pattern, schema_spec};
use relgraph_testkit::ops::{self, op};

fn seed() -> u64 {
    match std::env::var("RELGRAPH_SEED") {
        Ok(text) => text.parse().expect("RELGRAPH_SEED is a decimal u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    }
}

fn runner(seed: u64) -> TestRunner {
    let cases = std::env::var("RELGRAPH_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

#[test]
fn engine_matches_model_on_random_schemas() {
    let seed = seed();
    println!("model test seed: RELGRAPH_SEED={seed}");
    let steps = AtomicUsize::new(0);
    let strategy = (schema_spec(), proptest::collection::vec(op(), 1..120));
    let result = runner(seed).run(&strategy, |(spec, ops)| {
        let done = ops::run(spec.build(), &ops).map_err(TestCaseError::fail)?;
        steps.fetch_add(done, Ordering::Relaxed);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nreplay with RELGRAPH_SEED={seed}");
    }
    let steps = steps.into_inner();
    println!("model test: {steps} mutation steps checked");
    // Shrinking adds steps on failure only; a passing default run must reach the floor.
    if std::env::var("RELGRAPH_CASES").is_err() {
        assert!(steps >= 10_000, "only {steps} steps: raise the case count or sequence length");
    }
}

#[test]
fn engine_matches_model_on_every_pattern_at_once() {
    let seed = seed() ^ 0x9e37_79b9_7f4a_7c15;
    println!("every-pattern seed: RELGRAPH_SEED={seed}");
    let schema = every_pattern().build();
    let result = runner(seed).run(&proptest::collection::vec(op(), 1..200), |ops| {
        ops::run(schema.clone(), &ops).map(|_| ()).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}\nreplay with RELGRAPH_SEED={}", seed ^ 0x9e37_79b9_7f4a_7c15);
    }
}

/// The fuzz target's path (`fuzz/fuzz_targets/graph_ops.rs`) on stable: random
/// byte strings decoded into schemas and operation sequences, checked as above.
#[test]
fn decoded_byte_strings_match_the_model() {
    let seed = seed() ^ 0x5bd1_e995;
    println!("byte-decoder seed: RELGRAPH_SEED={seed}");
    let result = runner(seed).run(&proptest::collection::vec(proptest::num::u8::ANY, 0..600), |bytes| {
        let (spec, ops) = relgraph_testkit::ops::decode(&bytes);
        ops::run(spec.build(), &ops).map(|_| ()).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}\nreplay with RELGRAPH_SEED={}", seed ^ 0x5bd1_e995);
    }
}
