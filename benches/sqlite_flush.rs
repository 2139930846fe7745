//! W1, W2 and W3 of WORKLOADS.md flushed into SQLite, each beside its
//! baseline (raw rusqlite, one prepared statement per row, foreign keys on)
//! measured in the same iteration. Each iteration times one flush and commit;
//! building objects and loading (W3) are outside the clock.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use relgraph_cli::sqlite_bench::{self, Run, Scratch};

type Workload = fn(&std::path::Path, usize) -> anyhow::Result<Run>;

fn flush(c: &mut Criterion) {
    let scratch = Scratch::new().expect("scratch folder");
    let mut group = c.benchmark_group("sqlite");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    let workloads: [(&str, Workload); 3] =
        [("W1", sqlite_bench::w1), ("W2", sqlite_bench::w2), ("W3", sqlite_bench::w3)];
    for (name, workload) in workloads {
        for (side, pick) in [("relgraph", true), ("raw_rusqlite", false)] {
            group.bench_function(format!("{name}/{side}"), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            let run = workload(&scratch.0, 10_000).expect("workload runs");
                            if pick { run.relgraph } else { run.baseline }
                        })
                        .sum()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, flush);
criterion_main!(benches);
