//! W1, W2 and W3 of WORKLOADS.md into SQLite, and the baseline they are
//! measured against: raw rusqlite writing the same rows with one prepared
//! statement per row, foreign keys on, into the same tables (created by
//! the same DDL, foreign-key indexes included), in one transaction.
//!
//! Each function times the flush and commit only; building objects and, for
//! W3, loading and mutating are done before the clock starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use relgraph_core::{Schema, Store, Value};
use relgraph_session::Session;
use relgraph_sqlite::SqliteStore;
use relgraph_testkit::workloads::{self, Handles, W3Changes, w1_rows, w2_links, w3_changes};

/// One timed run of a workload: relgraph and its baseline.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// relgraph's flush and commit.
    pub relgraph: Duration,
    /// The raw driver writing the same rows.
    pub baseline: Duration,
    /// Rows written.
    pub rows: usize,
    /// Work before the clock (loading, for W3), reported apart.
    pub setup: Duration,
    /// For the snapshot store: its open and the baseline's read of the same rows.
    pub open: Option<(Duration, Duration)>,
}

/// A fresh database file in `dir` with the workload tables created.
fn fresh(dir: &Path, name: &str, schema: &Schema) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.sqlite"));
    for suffix in ["", "-journal", "-wal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    SqliteStore::open(&path)?.create_tables(schema)?;
    Ok(path)
}

/// A raw connection for the baseline, with SQLite's default page cache or
/// `cache_kib` KiB of it.
fn raw(path: &Path, cache_kib: Option<i64>) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    if let Some(kib) = cache_kib {
        conn.pragma_update(None, "cache_size", -kib)?;
    }
    Ok(conn)
}

/// The raw baseline's W1: `parents` parents with 10 children each, one
/// prepared statement per row, in one transaction on `conn`.
///
/// # Errors
/// SQLite's.
pub fn raw_w1(conn: &rusqlite::Connection, parents: usize) -> Result<()> {
    let (ps, cs) = w1_rows(parents);
    let tx = conn.unchecked_transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO parent (id, name) VALUES (?1, ?2)")?;
        for (id, name) in &ps {
            insert.execute(rusqlite::params![id, name])?;
        }
        let mut insert =
            tx.prepare("INSERT INTO child (id, parent_id, name, value) VALUES (?1, ?2, ?3, ?4)")?;
        for (id, parent, name, value) in &cs {
            insert.execute(rusqlite::params![id, parent, name, value])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// W1: 10,000 parents with 10 children each (`parents` scales it).
///
/// # Errors
/// IO and SQLite errors.
pub fn w1(dir: &Path, parents: usize, raw_cache_kib: Option<i64>) -> Result<Run> {
    let schema = workloads::schema();
    let path = fresh(dir, "w1-raw", &schema)?;
    let conn = raw(&path, raw_cache_kib)?;
    let start = Instant::now();
    raw_w1(&conn, parents)?;
    let baseline = start.elapsed();

    let path = fresh(dir, "w1-relgraph", &schema)?;
    let relgraph = relgraph_w1(Box::new(SqliteStore::open(&path)?), parents)?;
    Ok(Run { relgraph, baseline, rows: parents * 11, setup: Duration::ZERO, open: None })
}

/// W2: 10,000 lefts, 10,000 rights, 100,000 association rows (`n` scales it).
///
/// # Errors
/// IO and SQLite errors.
pub fn w2(dir: &Path, n: usize, raw_cache_kib: Option<i64>) -> Result<Run> {
    let schema = workloads::schema();
    let links = w2_links(n);
    let path = fresh(dir, "w2-raw", &schema)?;
    let conn = raw(&path, raw_cache_kib)?;
    let start = Instant::now();
    let tx = conn.unchecked_transaction()?;
    {
        let mut left = tx.prepare("INSERT INTO left (id) VALUES (?1)")?;
        let mut right = tx.prepare("INSERT INTO right (id) VALUES (?1)")?;
        for i in 1..=n as i64 {
            left.execute([i])?;
            right.execute([i])?;
        }
        let mut assoc = tx.prepare("INSERT INTO association (left_id, right_id) VALUES (?1, ?2)")?;
        for (l, r) in &links {
            assoc.execute([l, r])?;
        }
    }
    tx.commit()?;
    let baseline = start.elapsed();

    let path = fresh(dir, "w2-relgraph", &schema)?;
    let relgraph = relgraph_w2(Box::new(SqliteStore::open(&path)?), n)?;
    Ok(Run { relgraph, baseline, rows: 2 * n + links.len(), setup: Duration::ZERO, open: None })
}

/// W3: W1's rows persisted and loaded, then 10,000 moves, 1,000 renames and
/// 1,000 parent deletes with their 9,000 orphaned children, in one flush.
///
/// # Errors
/// IO and SQLite errors.
pub fn w3(dir: &Path, parents: usize, raw_cache_kib: Option<i64>) -> Result<Run> {
    let schema = workloads::schema();
    let changes = w3_changes(parents);
    let changed =
        changes.moves.len() + changes.renames.len() + changes.deletes.len() + changes.child_deletes.len();

    let path = fresh(dir, "w3-raw", &schema)?;
    let conn = raw(&path, raw_cache_kib)?;
    raw_w1(&conn, parents)?;
    let start = Instant::now();
    let tx = conn.unchecked_transaction()?;
    raw_w3(&tx, &changes, |_| {})?;
    tx.commit()?;
    let baseline = start.elapsed();
    check_w3_end_state(&conn, parents)?;

    let path = fresh(dir, "w3-relgraph", &schema)?;
    raw_w1(&raw(&path, None)?, parents)?;
    let (relgraph, setup) = relgraph_w3(Box::new(SqliteStore::open(&path)?), parents)?;
    check_w3_end_state(&raw(&path, None)?, parents)?;
    Ok(Run { relgraph, baseline, rows: changed, setup, open: None })
}

/// The raw baseline's W3 changes, one prepared statement per row, on
/// `conn` (in the caller's transaction): the moves, the renames, the
/// children's DELETEs, the parents' DELETEs, calling `done` after each kind.
///
/// # Errors
/// SQLite's.
pub fn raw_w3(
    conn: &rusqlite::Connection,
    changes: &W3Changes,
    mut done: impl FnMut(&'static str),
) -> Result<()> {
    let mut moves = conn.prepare("UPDATE child SET parent_id = ?1 WHERE id = ?2")?;
    for (c, p) in &changes.moves {
        moves.execute([p, c])?;
    }
    done("moves");
    let mut renames = conn.prepare("UPDATE parent SET name = ?1 WHERE id = ?2")?;
    for (p, name) in &changes.renames {
        renames.execute(rusqlite::params![name, p])?;
    }
    done("renames");
    let mut children = conn.prepare("DELETE FROM child WHERE id = ?1")?;
    for c in &changes.child_deletes {
        children.execute([c])?;
    }
    done("child deletes");
    let mut parents = conn.prepare("DELETE FROM parent WHERE id = ?1")?;
    for p in &changes.deletes {
        parents.execute([p])?;
    }
    done("parent deletes");
    Ok(())
}

fn check_w3_end_state(conn: &rusqlite::Connection, parents: usize) -> Result<()> {
    let count = |table: &str| -> Result<usize> {
        Ok(conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get::<_, i64>(0))? as usize)
    };
    let (p, c) = (count("parent")?, count("child")?);
    anyhow::ensure!(
        p == parents * 9 / 10 && c == parents * 91 / 10,
        "W3 end state: {p} parents and {c} children, not {} and {}",
        parents * 9 / 10,
        parents * 91 / 10
    );
    Ok(())
}

/// relgraph's side of W1 on `store`: objects built and linked (not timed),
/// then one timed flush.
///
/// # Errors
/// The store's and the session's.
pub fn relgraph_w1(store: Box<dyn Store>, parents: usize) -> Result<Duration> {
    let schema = workloads::schema();
    let h = Handles::new(&schema);
    let mut session = Session::with_store(schema.clone(), store)?;
    let col = |e, n| schema.entity_column(e, n).expect("workload column");
    let (pid, pname) = (col(h.parent, "id"), col(h.parent, "name"));
    let (cid, cname, cvalue) = (col(h.child, "id"), col(h.child, "name"), col(h.child, "value"));
    let (ps, cs) = w1_rows(parents);
    let mut parent_keys = Vec::with_capacity(ps.len());
    for (id, name) in ps {
        let p = session.new_with(h.parent, [(pid, Value::from(id)), (pname, Value::from(name))])?;
        session.add(p)?;
        parent_keys.push(p);
    }
    for (id, parent, name, value) in cs {
        let c = session.new_with(
            h.child,
            [(cid, Value::from(id)), (cname, Value::from(name)), (cvalue, Value::from(value))],
        )?;
        session.append(parent_keys[parent as usize - 1], h.children, c)?;
    }
    let start = Instant::now();
    let stats = session.flush()?;
    let elapsed = start.elapsed();
    anyhow::ensure!(
        stats.inserts == parents * 11,
        "W1 inserted {} rows, not {}",
        stats.inserts,
        parents * 11
    );
    Ok(elapsed)
}

/// relgraph's side of W2 on `store`.
///
/// # Errors
/// The store's and the session's.
pub fn relgraph_w2(store: Box<dyn Store>, n: usize) -> Result<Duration> {
    let schema = workloads::schema();
    let h = Handles::new(&schema);
    let links = w2_links(n);
    let mut session = Session::with_store(schema.clone(), store)?;
    let lid = schema.entity_column(h.left, "id").expect("left.id");
    let rid = schema.entity_column(h.right, "id").expect("right.id");
    let mut lefts = Vec::with_capacity(n);
    let mut rights = Vec::with_capacity(n);
    for i in 1..=n as i64 {
        let l = session.new_with(h.left, [(lid, Value::from(i))])?;
        let r = session.new_with(h.right, [(rid, Value::from(i))])?;
        session.add(l)?;
        session.add(r)?;
        lefts.push(l);
        rights.push(r);
    }
    for (l, r) in &links {
        session.append(lefts[*l as usize - 1], h.rights, rights[*r as usize - 1])?;
    }
    let start = Instant::now();
    let stats = session.flush()?;
    let elapsed = start.elapsed();
    anyhow::ensure!(
        stats.association_inserts == links.len(),
        "W2 wrote {} association rows",
        stats.association_inserts
    );
    Ok(elapsed)
}

/// relgraph's side of W3 on `store`, which already holds W1's rows: load
/// everything (returned second, not in the flush time), mutate, one timed flush.
///
/// # Errors
/// The store's and the session's.
pub fn relgraph_w3(store: Box<dyn Store>, parents: usize) -> Result<(Duration, Duration)> {
    let changed = {
        let c = w3_changes(parents);
        c.moves.len() + c.renames.len() + c.deletes.len() + c.child_deletes.len()
    };
    let (mut session, setup) = w3_session(store, parents)?;
    let start = Instant::now();
    let stats = session.flush()?;
    let elapsed = start.elapsed();
    let written = stats.inserts + stats.updates + stats.deletes;
    anyhow::ensure!(written == changed, "W3 wrote {written} rows, not {changed}: {stats:?}");
    Ok((elapsed, setup))
}

/// A session over `store` (which holds W1's rows) that has loaded them and
/// made W3's changes, not flushed yet; and how long the loading took.
///
/// # Errors
/// The store's and the session's.
pub fn w3_session(store: Box<dyn Store>, parents: usize) -> Result<(Session, Duration)> {
    let schema = workloads::schema();
    let h = Handles::new(&schema);
    let changes = w3_changes(parents);
    let start = Instant::now();
    let mut session = Session::with_store(schema.clone(), store)?;
    let all_parents = session.load_all(h.parent)?;
    let children = session.load_all(h.child)?;
    session.load_relationship(&all_parents, h.children)?;
    session.load_relationship(&children, h.child_parent)?;
    let setup = start.elapsed();
    let name = schema.entity_column(h.parent, "name").expect("parent.name");
    // Keys are 1-based and loaded in key order.
    for &(c, p) in &changes.moves {
        session.set(children[c as usize - 1], h.child_parent, Some(all_parents[p as usize - 1]))?;
    }
    for (p, new_name) in &changes.renames {
        session.set_value(all_parents[*p as usize - 1], name, new_name.as_str())?;
    }
    for &p in &changes.deletes {
        session.delete(all_parents[p as usize - 1])?;
    }
    Ok((session, setup))
}

/// A scratch folder for the benchmark databases, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new folder under the system's temporary folder.
    ///
    /// # Errors
    /// When it cannot be created.
    pub fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("relgraph-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The schema the SQLite workloads use (for callers that want to inspect it).
pub fn schema() -> Arc<Schema> {
    workloads::schema()
}
