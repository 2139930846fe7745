//! The snapshot store's own share of a W1 flush: W1's 110,000 rows, built
//! beforehand, applied in chunks of 1,000 as the pipelined flush hands them
//! over, then committed; seven times, each into a new file. With `lent` the
//! rows are lent (`Store::apply`, copied into the store) instead of handed
//! over (`Store::apply_owned`, moved). Compare with `null_flush`, the
//! session's share.
//!
//! `cargo run --release -p relgraph-cli --example snapshot_apply [lent]`

use std::time::Instant;

use relgraph_cli::sqlite_bench::Scratch;
use relgraph_core::{Cell, RowOp, Store, Value};
use relgraph_snapshot::SnapshotStore;
use relgraph_testkit::workloads::{self, Handles, w1_rows};

/// Rows per call, as the pipelined flush sends them.
const CHUNK: usize = 1000;

fn main() -> anyhow::Result<()> {
    let lent = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("lent") => true,
        Some(other) => anyhow::bail!("unknown argument {other:?}: expected nothing or `lent`"),
    };
    let schema = workloads::schema();
    let h = Handles::new(&schema);
    let (parent, child) = (schema.entity(h.parent).table, schema.entity(h.child).table);
    let dir = Scratch::new()?;
    for run in 0..7 {
        let (parents, children) = w1_rows(10_000);
        let value = |v: Value| Cell::Value(v);
        let ops = parents
            .into_iter()
            .map(|(id, name)| RowOp::Insert {
                table: parent,
                row: Box::new([value(id.into()), value(name.into())]),
            })
            .chain(children.into_iter().map(|(id, p, name, n)| RowOp::Insert {
                table: child,
                row: Box::new([value(id.into()), value(p.into()), value(name.into()), value(n.into())]),
            }));
        let mut ops = ops.peekable();
        let mut chunks: Vec<Vec<RowOp>> = Vec::new();
        while ops.peek().is_some() {
            chunks.push(ops.by_ref().take(CHUNK).collect());
        }
        let path = dir.0.join(format!("w1-{run}.snap"));
        let mut store = SnapshotStore::open(&path)?;
        store.create_tables(&schema)?;
        let start = Instant::now();
        store.begin()?;
        let mut keys = Vec::new();
        for mut chunk in chunks {
            if lent {
                store.apply(&schema, &chunk, &mut keys)?;
            } else {
                store.apply_owned(&schema, &mut chunk, &mut keys)?;
            }
        }
        let applied = start.elapsed();
        store.commit()?;
        let committed = start.elapsed() - applied;
        println!(
            "W1 into the snapshot store ({}): apply {:.1} ms, commit {:.1} ms",
            if lent { "lent" } else { "handed over" },
            applied.as_secs_f64() * 1e3,
            committed.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
