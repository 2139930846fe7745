//! W1, W2 and W3 of WORKLOADS.md into PostgreSQL, against the best raw
//! variant measured in WORKLOADS.md with foreign keys on: 1,000-row
//! INSERTs for W1 and W2, and for W3 the set-based statements (`unnest`
//! arrays for the updates, `= ANY` for the deletes). Each run works in a
//! schema of its own, dropped afterwards.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use postgres::types::ToSql;
use relgraph_core::Store;
use relgraph_postgres::PostgresStore;
use relgraph_testkit::workloads::{self, w1_rows, w2_links, w3_changes};

use crate::sqlite_bench::{Run, relgraph_w1, relgraph_w2, relgraph_w3};

/// The name printed beside the figures.
pub const BASELINE: &str =
    "postgres crate, 1,000-row INSERTs (W3: set-based unnest and = ANY), foreign keys on";

/// A schema of its own for one run, dropped on drop.
struct Scratch {
    url: String,
    name: String,
}

impl Scratch {
    fn new(url: &str, tag: &str) -> Result<Self> {
        let name = format!("relgraph_bench_{}_{tag}", std::process::id());
        let scratch = Scratch { url: url.to_owned(), name };
        scratch.drop_schema()?;
        // Creating the tables through the store gives both sides the same DDL.
        scratch.store()?.create_tables(&workloads::schema())?;
        Ok(scratch)
    }

    fn store(&self) -> Result<PostgresStore> {
        PostgresStore::connect_in_schema(&self.url, &self.name)
            .with_context(|| format!("connecting to {}", self.url))
    }

    fn drop_schema(&self) -> Result<()> {
        let mut admin = PostgresStore::connect(&self.url)?;
        admin.client().batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name))?;
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.drop_schema();
    }
}

/// Inserts `rows` (each `width` values) into `table` 1,000 rows per statement.
fn insert_batched(
    client: &mut postgres::Transaction<'_>,
    table: &str,
    columns: &str,
    width: usize,
    values: &[&(dyn ToSql + Sync)],
) -> Result<()> {
    for chunk in values.chunks(1000 * width) {
        let rows = chunk.len() / width;
        let placeholders: Vec<String> = (0..rows)
            .map(|r| {
                format!(
                    "({})",
                    (1..=width).map(|c| format!("${}", r * width + c)).collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        client
            .execute(&format!("INSERT INTO {table} ({columns}) VALUES {}", placeholders.join(", ")), chunk)?;
    }
    Ok(())
}

fn raw_w1(store: &mut PostgresStore, parents: usize) -> Result<()> {
    let (ps, cs) = w1_rows(parents);
    let mut tx = store.client().transaction()?;
    let pv: Vec<&(dyn ToSql + Sync)> =
        ps.iter().flat_map(|(id, name)| [id as &(dyn ToSql + Sync), name]).collect();
    insert_batched(&mut tx, "parent", "id, name", 2, &pv)?;
    let cv: Vec<&(dyn ToSql + Sync)> = cs
        .iter()
        .flat_map(|(id, parent, name, value)| [id as &(dyn ToSql + Sync), parent, name, value])
        .collect();
    insert_batched(&mut tx, "child", "id, parent_id, name, value", 4, &cv)?;
    tx.commit()?;
    Ok(())
}

/// W1 into PostgreSQL.
///
/// # Errors
/// Connection and SQL errors.
pub fn w1(url: &str, parents: usize) -> Result<Run> {
    let raw = Scratch::new(url, "w1_raw")?;
    let mut store = raw.store()?;
    let start = Instant::now();
    raw_w1(&mut store, parents)?;
    let baseline = start.elapsed();
    let ours = Scratch::new(url, "w1_relgraph")?;
    let relgraph = relgraph_w1(Box::new(ours.store()?), parents)?;
    Ok(Run { relgraph, baseline, rows: parents * 11, setup: Duration::ZERO, open: None })
}

/// W2 into PostgreSQL.
///
/// # Errors
/// Connection and SQL errors.
pub fn w2(url: &str, n: usize) -> Result<Run> {
    let links = w2_links(n);
    let raw = Scratch::new(url, "w2_raw")?;
    let mut store = raw.store()?;
    let ids: Vec<i64> = (1..=n as i64).collect();
    let start = Instant::now();
    let mut tx = store.client().transaction()?;
    let iv: Vec<&(dyn ToSql + Sync)> = ids.iter().map(|i| i as &(dyn ToSql + Sync)).collect();
    insert_batched(&mut tx, "\"left\"", "id", 1, &iv)?;
    insert_batched(&mut tx, "\"right\"", "id", 1, &iv)?;
    let av: Vec<&(dyn ToSql + Sync)> =
        links.iter().flat_map(|(l, r)| [l as &(dyn ToSql + Sync), r]).collect();
    insert_batched(&mut tx, "association", "left_id, right_id", 2, &av)?;
    tx.commit()?;
    let baseline = start.elapsed();
    let ours = Scratch::new(url, "w2_relgraph")?;
    let relgraph = relgraph_w2(Box::new(ours.store()?), n)?;
    Ok(Run { relgraph, baseline, rows: 2 * n + links.len(), setup: Duration::ZERO, open: None })
}

/// W3 into PostgreSQL (the baseline set-based).
///
/// # Errors
/// Connection and SQL errors.
pub fn w3(url: &str, parents: usize) -> Result<Run> {
    let changes = w3_changes(parents);
    let changed =
        changes.moves.len() + changes.renames.len() + changes.deletes.len() + changes.child_deletes.len();
    let raw = Scratch::new(url, "w3_raw")?;
    let mut store = raw.store()?;
    raw_w1(&mut store, parents)?;
    let (moved, to): (Vec<i64>, Vec<i64>) = changes.moves.iter().copied().unzip();
    let (renamed, names): (Vec<i64>, Vec<String>) = changes.renames.iter().cloned().unzip();
    let start = Instant::now();
    let mut tx = store.client().transaction()?;
    tx.execute(
        "UPDATE child SET parent_id = v.p FROM unnest($1::bigint[], $2::bigint[]) AS v(c, p) WHERE child.id = v.c",
        &[&moved, &to],
    )?;
    tx.execute(
        "UPDATE parent SET name = v.n FROM unnest($1::bigint[], $2::text[]) AS v(id, n) WHERE parent.id = v.id",
        &[&renamed, &names],
    )?;
    tx.execute("DELETE FROM child WHERE id = ANY($1)", &[&changes.child_deletes])?;
    tx.execute("DELETE FROM parent WHERE id = ANY($1)", &[&changes.deletes])?;
    tx.commit()?;
    let baseline = start.elapsed();
    let ours = Scratch::new(url, "w3_relgraph")?;
    let mut store = ours.store()?;
    raw_w1(&mut store, parents)?;
    let (relgraph, setup) = relgraph_w3(Box::new(store), parents)?;
    let mut check = ours.store()?;
    let counts: (i64, i64) = {
        let row = check
            .client()
            .query_one("SELECT (SELECT count(*) FROM parent), (SELECT count(*) FROM child)", &[])?;
        (row.get(0), row.get(1))
    };
    anyhow::ensure!(
        counts == ((parents * 9 / 10) as i64, (parents * 91 / 10) as i64),
        "W3 end state on PostgreSQL: {counts:?}"
    );
    Ok(Run { relgraph, baseline, rows: changed, setup, open: None })
}
