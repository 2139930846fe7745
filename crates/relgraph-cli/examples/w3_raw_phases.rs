//! The raw baseline of W3, phase by phase: W1's rows written with raw
//! rusqlite, then W3's changes as the bench's baseline makes them (one
//! prepared statement per row), timed per kind of statement and for the
//! commit; six times, each into a new database. With a number, the
//! connection's page cache is that many KiB (the bench's `--raw-cache-kib`;
//! the store asks for 65,536).
//!
//! `cargo run --release -p relgraph-cli --example w3_raw_phases [cache_kib]`

use std::time::Instant;

use relgraph_cli::sqlite_bench::{Scratch, raw_w1, raw_w3};
use relgraph_core::Store;
use relgraph_sqlite::SqliteStore;
use relgraph_testkit::workloads::{self, w3_changes};

fn main() -> anyhow::Result<()> {
    let cache_kib: Option<i64> = match std::env::args().nth(1) {
        None => None,
        Some(kib) => {
            Some(kib.parse().map_err(|_| anyhow::anyhow!("expected a page cache in KiB, got {kib:?}"))?)
        }
    };
    let schema = workloads::schema();
    let dir = Scratch::new()?;
    let changes = w3_changes(10_000);
    for run in 0..6 {
        let path = dir.0.join(format!("w3-raw-{run}.sqlite"));
        SqliteStore::open(&path)?.create_tables(&schema)?;
        let conn = rusqlite::Connection::open(&path)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        if let Some(kib) = cache_kib {
            conn.pragma_update(None, "cache_size", -kib)?;
        }
        raw_w1(&conn, 10_000)?;
        let start = Instant::now();
        let mut phases: Vec<(&str, f64)> = Vec::new();
        let tx = conn.unchecked_transaction()?;
        raw_w3(&tx, &changes, |phase| phases.push((phase, start.elapsed().as_secs_f64() * 1e3)))?;
        tx.commit()?;
        phases.push(("commit", start.elapsed().as_secs_f64() * 1e3));
        let mut last = 0.0;
        let each: Vec<String> = phases
            .iter()
            .map(|&(phase, at)| {
                let text = format!("{phase} {:.2}", at - last);
                last = at;
                text
            })
            .collect();
        println!("W3 raw: {last:.2} ms: {}", each.join(", "));
    }
    Ok(())
}
