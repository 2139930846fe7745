//! Where a snapshot's open goes: writes W1 (W1 changed by W3, or W2) into
//! a snapshot once, then opens it many times, for a profiler to look at.
//!
//! `cargo run --release -p relgraph-cli --example snapshot_open [W1|W2|W3] [opens]`
//!
//! With `SNAP=<file>` the snapshot is written at that path (and kept);
//! with `NOWRITE=1` as well, the file there is opened as it is, so two
//! builds can open the same file.

use std::time::Instant;

use relgraph_cli::sqlite_bench::{relgraph_w1, relgraph_w2, relgraph_w3};
use relgraph_core::Store;
use relgraph_snapshot::SnapshotStore;
use relgraph_testkit::workloads;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let workload = args.next().unwrap_or_else(|| "W1".into());
    let opens: usize = args.next().map_or(Ok(200), |n| n.parse())?;
    anyhow::ensure!(opens > 0, "at least one open");
    let scratch = relgraph_cli::sqlite_bench::Scratch::new()?;
    let path = std::env::var_os("SNAP").map_or_else(|| scratch.0.join("open.snap"), Into::into);
    if std::env::var_os("NOWRITE").is_none() {
        let _ = std::fs::remove_file(&path);
        match workload.as_str() {
            "W1" | "W3" => {
                relgraph_w1(Box::new(SnapshotStore::open(&path)?), 10_000)?;
                if workload == "W3" {
                    relgraph_w3(Box::new(SnapshotStore::open(&path)?), 10_000)?;
                }
            }
            "W2" => {
                relgraph_w2(Box::new(SnapshotStore::open(&path)?), 10_000)?;
            }
            other => anyhow::bail!("unknown workload {other:?}: W1, W2 or W3"),
        }
    }
    let schema = workloads::schema();
    let mut times = Vec::with_capacity(opens);
    for _ in 0..opens {
        let start = Instant::now();
        let mut store = SnapshotStore::open(&path)?;
        store.create_tables(&schema)?;
        times.push(start.elapsed().as_secs_f64());
        drop(store);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{workload} open: median {:.1} us, best {:.1} us over {opens}",
        times[opens / 2] * 1e6,
        times[0] * 1e6
    );
    Ok(())
}
