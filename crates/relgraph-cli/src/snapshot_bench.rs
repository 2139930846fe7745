//! W1, W2 and W3 of WORKLOADS.md into the snapshot store, and the baseline
//! they are measured against: raw rkyv, the same rows as plain structs,
//! serialized, written and fsynced (the write), and read back and validated
//! with `rkyv::access` (the read, compared with the store's open).
//!
//! For W3 the raw baseline has no log to append to: it rewrites the whole
//! file with the changed rows, which is what a program holding its data in
//! one rkyv archive does.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use relgraph_core::Store;
use relgraph_snapshot::SnapshotStore;
use relgraph_testkit::workloads::{self, w1_rows, w2_links, w3_changes};
use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::sqlite_bench::{Run, relgraph_w1, relgraph_w2, relgraph_w3};

/// A W1 parent as the raw baseline stores it.
#[derive(rkyv::Archive, rkyv::Serialize, Clone)]
pub struct RawParent {
    id: i64,
    name: Option<String>,
}

/// A W1 child as the raw baseline stores it (every column but the key nullable, as in the schema).
#[derive(rkyv::Archive, rkyv::Serialize, Clone)]
pub struct RawChild {
    id: i64,
    parent_id: Option<i64>,
    name: Option<String>,
    value: Option<i64>,
}

/// W1's (and W3's) tables.
#[derive(rkyv::Archive, rkyv::Serialize)]
pub struct RawW1 {
    parents: Vec<RawParent>,
    children: Vec<RawChild>,
}

/// An association row.
#[derive(rkyv::Archive, rkyv::Serialize)]
pub struct RawLink {
    left_id: i64,
    right_id: i64,
}

/// W2's tables.
#[derive(rkyv::Archive, rkyv::Serialize)]
pub struct RawW2 {
    lefts: Vec<i64>,
    rights: Vec<i64>,
    links: Vec<RawLink>,
}

fn raw_w1(parents: usize) -> RawW1 {
    let (ps, cs) = w1_rows(parents);
    RawW1 {
        parents: ps.into_iter().map(|(id, name)| RawParent { id, name: Some(name) }).collect(),
        children: cs
            .into_iter()
            .map(|(id, parent, name, value)| RawChild {
                id,
                parent_id: Some(parent),
                name: Some(name),
                value: Some(value),
            })
            .collect(),
    }
}

/// Serializes, writes and fsyncs, as the baseline's write.
fn write<T>(path: &Path, value: &T) -> Result<Duration>
where
    T: for<'a> rkyv::Serialize<
            rkyv::api::high::HighSerializer<AlignedVec, rkyv::ser::allocator::ArenaHandle<'a>, rancor::Error>,
        >,
{
    let start = Instant::now();
    let bytes = rkyv::to_bytes::<rancor::Error>(value)?;
    let mut file = std::fs::File::create(path)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    Ok(start.elapsed())
}

/// Reads the file and validates it, as the baseline's read.
fn read<T>(path: &Path) -> Result<Duration>
where
    T: rkyv::Portable
        + for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>,
{
    let start = Instant::now();
    let raw = std::fs::read(path)?;
    let mut bytes = AlignedVec::<16>::with_capacity(raw.len());
    bytes.extend_from_slice(&raw);
    let archived = rkyv::access::<T, rancor::Error>(&bytes)?;
    std::hint::black_box(archived);
    Ok(start.elapsed())
}

/// Opens and reads are timed this many times each, the median kept: the
/// first one after a flush shares the machine with the threads freeing that
/// flush's work, which says nothing about the file.
const OPENS: usize = 5;

/// The median of [`OPENS`] timings of `f`.
fn settled(mut f: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    let mut times = (0..OPENS).map(|_| f()).collect::<Result<Vec<_>>>()?;
    times.sort_unstable();
    Ok(times[OPENS / 2])
}

/// Opens a snapshot and binds it to the workload schema, as a session does.
fn open(path: &Path) -> Result<Duration> {
    let schema = workloads::schema();
    let start = Instant::now();
    let mut store = SnapshotStore::open(path)?;
    store.create_tables(&schema)?;
    Ok(start.elapsed())
}

fn fresh(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// W1: 110,000 rows in one flush into an empty snapshot, then its open.
///
/// # Errors
/// IO errors.
pub fn w1(dir: &Path, parents: usize) -> Result<Run> {
    let data = raw_w1(parents);
    let raw_path = fresh(dir, "w1-raw.rkyv");
    let baseline = write(&raw_path, &data)?;
    let baseline_open = settled(|| read::<ArchivedRawW1>(&raw_path))?;

    let path = fresh(dir, "w1.snap");
    let relgraph = relgraph_w1(Box::new(SnapshotStore::open(&path)?), parents)?;
    let opened = settled(|| open(&path))?;
    Ok(Run {
        relgraph,
        baseline,
        rows: parents * 11,
        setup: Duration::ZERO,
        open: Some((opened, baseline_open)),
    })
}

/// W2: 120,000 rows in one flush into an empty snapshot, then its open.
///
/// # Errors
/// IO errors.
pub fn w2(dir: &Path, n: usize) -> Result<Run> {
    let links = w2_links(n);
    let data = RawW2 {
        lefts: (1..=n as i64).collect(),
        rights: (1..=n as i64).collect(),
        links: links.iter().map(|&(left_id, right_id)| RawLink { left_id, right_id }).collect(),
    };
    let raw_path = fresh(dir, "w2-raw.rkyv");
    let baseline = write(&raw_path, &data)?;
    let baseline_open = settled(|| read::<ArchivedRawW2>(&raw_path))?;

    let path = fresh(dir, "w2.snap");
    let relgraph = relgraph_w2(Box::new(SnapshotStore::open(&path)?), n)?;
    let opened = settled(|| open(&path))?;
    Ok(Run {
        relgraph,
        baseline,
        rows: 2 * n + links.len(),
        setup: Duration::ZERO,
        open: Some((opened, baseline_open)),
    })
}

/// W3: the mixed change on a W1 snapshot, appended as one batch; the raw
/// baseline rewrites its whole file with the changed rows. The open is of
/// the snapshot with that batch in its log.
///
/// # Errors
/// IO errors.
pub fn w3(dir: &Path, parents: usize) -> Result<Run> {
    let changes = w3_changes(parents);
    let changed =
        changes.moves.len() + changes.renames.len() + changes.deletes.len() + changes.child_deletes.len();
    let mut data = raw_w1(parents);
    let idx = |id: i64| id as usize - 1;
    for &(c, p) in &changes.moves {
        data.children[idx(c)].parent_id = Some(p);
    }
    for (p, name) in &changes.renames {
        data.parents[idx(*p)].name = Some(name.clone());
    }
    let gone: std::collections::HashSet<i64> = changes.deletes.iter().copied().collect();
    let dropped: std::collections::HashSet<i64> = changes.child_deletes.iter().copied().collect();
    data.parents.retain(|p| !gone.contains(&p.id));
    data.children.retain(|c| !dropped.contains(&c.id));
    let raw_path = fresh(dir, "w3-raw.rkyv");
    let baseline = write(&raw_path, &data)?;
    let baseline_open = settled(|| read::<ArchivedRawW1>(&raw_path))?;

    let path = fresh(dir, "w3.snap");
    relgraph_w1(Box::new(SnapshotStore::open(&path)?), parents)?;
    let (relgraph, setup) = relgraph_w3(Box::new(SnapshotStore::open(&path)?), parents)?;
    let opened = settled(|| open(&path))?;
    Ok(Run { relgraph, baseline, rows: changed, setup, open: Some((opened, baseline_open)) })
}
