//! W4 of WORKLOADS.md: in-memory link and unlink with back-population.
//!
//! Each iteration is one whole phase (1,000,000 operations) on freshly built
//! objects, so criterion's time per iteration divided by 10^6 is the time per
//! operation; the throughput line shows operations per second. The SQLAlchemy
//! figures to compare with are 9,200 / 7,200 / 5,700 / 5,500 ns per operation.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use relgraph_testkit::workloads::{W4Objects, W4Size, w4_append, w4_link, w4_objects, w4_remove, w4_unlink};

const SIZE: W4Size = W4Size::FULL;

/// Times `phase` on a graph that `prepare` brought to the phase's start.
fn timed(iters: u64, prepare: impl Fn(&mut W4Objects), phase: impl Fn(&mut W4Objects)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut w = w4_objects(SIZE);
        prepare(&mut w);
        let start = Instant::now();
        phase(&mut w);
        total += start.elapsed();
    }
    total
}

fn w4(c: &mut Criterion) {
    let mut group = c.benchmark_group("w4");
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements((SIZE.parents * SIZE.children_per_parent) as u64));
    group.bench_function("many_to_one_link", |b| b.iter_custom(|n| timed(n, |_| {}, w4_link)));
    group.bench_function("many_to_one_unlink", |b| b.iter_custom(|n| timed(n, w4_link, w4_unlink)));
    group.throughput(Throughput::Elements((SIZE.lefts * SIZE.rights_per_left) as u64));
    group.bench_function("many_to_many_append", |b| b.iter_custom(|n| timed(n, |_| {}, w4_append)));
    group.bench_function("many_to_many_remove", |b| b.iter_custom(|n| timed(n, w4_append, w4_remove)));
    group.finish();
}

criterion_group!(benches, w4);
criterion_main!(benches);
