//! The SQLite store's own share of W3, and what running it on another
//! thread costs: W1's rows are written and loaded into a session, W3's
//! changes made, and the plan the flush would send is replayed straight
//! into the session's SQLite store, alternately on the thread that loaded
//! the rows and on a new one, eight times, each into a new database.
//!
//! On the 2-core machine measured (2026-11-30, three runs of this example),
//! the apply took 26 to 33 ms on the loading thread, and on a new thread
//! either the same or 36 to 43 ms: slower, it seems, whenever the new
//! thread runs on the other core, whose caches do not hold the rows the
//! load brought in. A streamed flush runs the store on a thread of its
//! own, beside the session's work, so it pays that; the raw driver, on
//! one thread, does not.
//!
//! `cargo run --release -p relgraph-cli --example w3_store_only`

use std::time::Instant;

use relgraph_core::{RowOp, Schema, Store};
use relgraph_session::Session;
use relgraph_sqlite::SqliteStore;
use relgraph_testkit::workloads::{self, Handles, w1_rows, w3_changes};

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

/// W1's rows, written with plain SQL as the bench's baseline writes them.
fn write_w1(conn: &rusqlite::Connection) -> anyhow::Result<()> {
    let (parents, children) = w1_rows(10_000);
    let tx = conn.unchecked_transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO parent (id, name) VALUES (?1, ?2)")?;
        for (id, name) in &parents {
            insert.execute(rusqlite::params![id, name])?;
        }
        let mut insert =
            tx.prepare("INSERT INTO child (id, parent_id, name, value) VALUES (?1, ?2, ?3, ?4)")?;
        for (id, parent, name, value) in &children {
            insert.execute(rusqlite::params![id, parent, name, value])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let schema = workloads::schema();
    let h = Handles::new(&schema);
    let dir = relgraph_cli::sqlite_bench::Scratch::new()?;
    let changes = w3_changes(10_000);
    let name = schema.entity_column(h.parent, "name").expect("parent.name");
    for run in 0..8 {
        let elsewhere = run % 2 == 1;
        let path = dir.0.join(format!("w3-{run}.sqlite"));
        let mut store = SqliteStore::open(&path)?;
        store.create_tables(&schema)?;
        write_w1(store.connection())?;
        let mut session = Session::with_store(schema.clone(), Box::new(store))?;
        let all_parents = session.load_all(h.parent)?;
        let all_children = session.load_all(h.child)?;
        session.load_relationship(&all_parents, h.children)?;
        session.load_relationship(&all_children, h.child_parent)?;
        for &(c, p) in &changes.moves {
            session.set(all_children[c as usize - 1], h.child_parent, Some(all_parents[p as usize - 1]))?;
        }
        for (p, n) in &changes.renames {
            session.set_value(all_parents[*p as usize - 1], name, n.as_str())?;
        }
        for &p in &changes.deletes {
            session.delete(all_parents[p as usize - 1])?;
        }
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
