//! W1, W2 and W3 of WORKLOADS.md flushed into each store, each beside its
//! baseline measured in the same iteration: raw rusqlite (one prepared
//! statement per row, foreign keys on), raw rkyv (serialize, write, fsync),
//! and for PostgreSQL the best raw batching (1,000-row INSERTs, set-based
//! W3). Each iteration times one flush and commit; building objects and
//! loading (W3) are outside the clock. The PostgreSQL group runs when
//! `RELGRAPH_PG_URL` (default: the local server) answers.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use relgraph_cli::sqlite_bench::{Run, Scratch};
use relgraph_cli::{pg_bench, snapshot_bench, sqlite_bench};

type Workload<'a> = Box<dyn Fn(usize) -> anyhow::Result<Run> + 'a>;

fn group(c: &mut Criterion, store: &str, baseline: &str, workloads: [(&str, Workload<'_>); 3]) {
    let mut group = c.benchmark_group(store);
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, workload) in &workloads {
        for (side, pick) in [("relgraph", true), (baseline, false)] {
            group.bench_function(format!("{name}/{side}"), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            let run = workload(10_000).expect("workload runs");
                            if pick { run.relgraph } else { run.baseline }
                        })
                        .sum()
                })
            });
        }
    }
    group.finish();
}

fn flush(c: &mut Criterion) {
    let scratch = Scratch::new().expect("scratch folder");
    let dir = &scratch.0;
    group(
        c,
        "sqlite",
        "raw_rusqlite",
        [
            ("W1", Box::new(|n| sqlite_bench::w1(dir, n, None))),
            ("W2", Box::new(|n| sqlite_bench::w2(dir, n, None))),
            ("W3", Box::new(|n| sqlite_bench::w3(dir, n, None))),
        ],
    );
    group(
        c,
        "snapshot",
        "raw_rkyv",
        [
            ("W1", Box::new(|n| snapshot_bench::w1(dir, n))),
            ("W2", Box::new(|n| snapshot_bench::w2(dir, n))),
            ("W3", Box::new(|n| snapshot_bench::w3(dir, n))),
        ],
    );
    let url = std::env::var("RELGRAPH_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    if relgraph::PostgresStore::connect(&url).is_err() {
        eprintln!("postgres: no server at {url}; its group is skipped");
        return;
    }
    let url = url.as_str();
    group(
        c,
        "postgres",
        "raw_postgres",
        [
            ("W1", Box::new(|n| pg_bench::w1(url, n))),
            ("W2", Box::new(|n| pg_bench::w2(url, n))),
            ("W3", Box::new(|n| pg_bench::w3(url, n))),
        ],
    );
}

criterion_group!(benches, flush);
criterion_main!(benches);
