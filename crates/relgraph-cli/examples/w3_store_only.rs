//! The SQLite store's own share of W3, and what running it on another
//! thread costs: W1's rows are written and loaded into a session, W3's
//! changes made, and the plan the flush would send is replayed straight
//! into the session's SQLite store, alternately on the thread that loaded
//! the rows and on a new one, eight times, each into a new database.
//!
//! On the 2-core machine measured (2026-11-30, three runs of this example),
//! the apply took 26 to 33 ms on the loading thread, and on a new thread
//! either the same or 36 to 43 ms. In a later session on the same kind of
//! machine every run took 20 to 21 ms to apply and 7 to 8 ms to commit on
//! either thread; the streamed flush's store had been slowed instead by
//! freeing each applied chunk itself, which the session's thread now does.
//!
//! `cargo run --release -p relgraph-cli --example w3_store_only`

use std::time::Instant;

use relgraph_cli::sqlite_bench::{raw_w1, w3_session};
use relgraph_core::{RowOp, Schema, Store};
use relgraph_sqlite::SqliteStore;
use relgraph_testkit::workloads;

/// Begins, applies `ops` in chunks of 1,000 as a flush sends them, and
/// commits; returns the apply's and the commit's milliseconds.
fn replay(store: &mut dyn Store, schema: &Schema, ops: &[RowOp]) -> anyhow::Result<(f64, f64)> {
    let start = Instant::now();
    store.begin()?;
    let mut keys = Vec::new();
    for chunk in ops.chunks(1000) {
        store.apply(schema, chunk, &mut keys)?;
    }
    let applied = start.elapsed();
    store.commit()?;
    Ok((applied.as_secs_f64() * 1e3, (start.elapsed() - applied).as_secs_f64() * 1e3))
}

fn main() -> anyhow::Result<()> {
    let schema = workloads::schema();
    let dir = relgraph_cli::sqlite_bench::Scratch::new()?;
    for run in 0..8 {
        let elsewhere = run % 2 == 1;
        let path = dir.0.join(format!("w3-{run}.sqlite"));
        let mut store = SqliteStore::open(&path)?;
        store.create_tables(&schema)?;
        raw_w1(store.connection(), 10_000)?;
        let (mut session, _) = w3_session(Box::new(store), 10_000)?;
        let ops: Vec<RowOp> = session.plan()?.ops.into_iter().map(|p| p.op).collect();
        let store = session.store_mut();
        let (apply, commit) = if elsewhere {
            std::thread::scope(|s| s.spawn(|| replay(store, &schema, &ops)).join())
                .map_err(|_| anyhow::anyhow!("the replaying thread panicked"))??
        } else {
            replay(store, &schema, &ops)?
        };
        let thread = if elsewhere { "a new thread     " } else { "the loading thread" };
        println!("W3's {} operations on {thread}: apply {apply:.1} ms, commit {commit:.1} ms", ops.len());
    }
    Ok(())
}
