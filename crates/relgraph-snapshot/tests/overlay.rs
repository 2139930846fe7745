//! The snapshot's overlay against the in-memory reference store: random row
//! operations (key moves, foreign-key moves, cascades, unique clashes),
//! commits, rollbacks, compactions and reopenings of the file, with every
//! table and every index lookup compared after each step.
//!
//! Reopening reads the rows changed since the image straight from the log
//! batches, and the overlay indexes only rows whose key moved away from
//! their image row; both are what this checks beyond the conformance suite.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use relgraph_core::{Cell, Row, RowOp, Schema, Store, StoreError, TableId, Value};
use relgraph_snapshot::{Compaction, SnapshotOptions, SnapshotStore};
use relgraph_testkit::memory_store::{MemoryStore, compare_rows};

/// Keys and names are drawn from small ranges so that operations collide.
const IDS: i64 = 8;

#[derive(Clone, Debug)]
enum Step {
    /// A parent `(id, name)`; names are unique.
    InsertParent(i64, u8),
    /// A row of `child`, `kid` or `pet` (by `table`) with its reference to a parent.
    InsertChild {
        table: u8,
        id: i64,
        parent: Option<i64>,
    },
    /// An association row.
    Link(i64, i64),
    /// A parent's name.
    Rename(i64, u8),
    /// A row's primary key (parents are referenced: a move may be refused).
    MoveKey {
        table: u8,
        from: i64,
        to: i64,
    },
    /// A child, kid or pet's parent.
    Reparent {
        table: u8,
        id: i64,
        parent: Option<i64>,
    },
    /// A row by primary key (a parent's delete cascades, nulls or is refused).
    Delete {
        table: u8,
        id: i64,
    },
    /// An association row.
    Unlink(i64, i64),
    Commit,
    Rollback,
    /// Commits, then drops the store and opens the file again.
    Reopen,
    /// Commits, then rewrites the file as one image.
    Compact,
}

fn key() -> impl Strategy<Value = i64> {
    1..=IDS
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (key(), 0..6u8).prop_map(|(id, n)| Step::InsertParent(id, n)),
        4 => (0..3u8, key(), proptest::option::of(key()))
            .prop_map(|(table, id, parent)| Step::InsertChild { table, id, parent }),
        2 => (key(), key()).prop_map(|(p, c)| Step::Link(p, c)),
        2 => (key(), 0..6u8).prop_map(|(id, n)| Step::Rename(id, n)),
        3 => (0..4u8, key(), key()).prop_map(|(table, from, to)| Step::MoveKey { table, from, to }),
        4 => (0..3u8, key(), proptest::option::of(key()))
            .prop_map(|(table, id, parent)| Step::Reparent { table, id, parent }),
        3 => (0..4u8, key()).prop_map(|(table, id)| Step::Delete { table, id }),
        1 => (key(), key()).prop_map(|(p, c)| Step::Unlink(p, c)),
        2 => Just(Step::Commit),
        1 => Just(Step::Rollback),
        2 => Just(Step::Reopen),
        1 => Just(Step::Compact),
    ]
}

struct Tables {
    parent: TableId,
    /// `child`, `kid`, `pet`: each references a parent in column 1.
    children: [TableId; 3],
    assoc: TableId,
}

impl Tables {
    fn new(schema: &Schema) -> Self {
        let t = |name| schema.table_id(name).expect("suite table");
        Tables { parent: t("parent"), children: [t("child"), t("kid"), t("pet")], assoc: t("assoc") }
    }

    /// `parent` for 3, else a child table.
    fn keyed(&self, table: u8) -> TableId {
        self.children.get(usize::from(table)).copied().unwrap_or(self.parent)
    }
}

fn int(i: i64) -> Cell {
    Cell::Value(Value::Integer(i))
}

fn reference(parent: Option<i64>) -> Cell {
    Cell::Value(parent.map_or(Value::Null, Value::Integer))
}

fn name(n: u8) -> Cell {
    Cell::Value(Value::from(format!("name-{n}")))
}

/// The row operation of a step (`None` for the transaction steps).
fn operation(schema: &Schema, t: &Tables, step: &Step) -> Option<RowOp> {
    let width = |table: TableId| schema.table(table).columns.len();
    let update = |table, key, column, value| RowOp::Update {
        table,
        key_columns: Box::new([0]),
        key: Box::new([int(key)]),
        columns: Box::new([column]),
        values: Box::new([value]),
    };
    Some(match *step {
        Step::InsertParent(id, n) => RowOp::Insert { table: t.parent, row: Box::new([int(id), name(n)]) },
        Step::InsertChild { table, id, parent } => {
            let table = t.children[usize::from(table)];
            let mut row = vec![Cell::Value(Value::Null); width(table)];
            row[0] = int(id);
            row[1] = reference(parent);
            RowOp::Insert { table, row: row.into() }
        }
        Step::Link(p, c) => RowOp::Insert { table: t.assoc, row: Box::new([int(p), int(c)]) },
        Step::Rename(id, n) => update(t.parent, id, 1, name(n)),
        Step::MoveKey { table, from, to } => update(t.keyed(table), from, 0, int(to)),
        Step::Reparent { table, id, parent } => {
            update(t.children[usize::from(table)], id, 1, reference(parent))
        }
        Step::Delete { table, id } => {
            RowOp::Delete { table: t.keyed(table), columns: Box::new([0]), values: Box::new([int(id)]) }
        }
        Step::Unlink(p, c) => {
            RowOp::Delete { table: t.assoc, columns: Box::new([0, 1]), values: Box::new([int(p), int(c)]) }
        }
        Step::Commit | Step::Rollback | Step::Reopen | Step::Compact => return None,
    })
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by(|a, b| compare_rows(a, b));
    rows
}

/// Every table, and every lookup through a key or index the snapshot keeps:
/// each primary key, each parent's referencing rows, each association side.
fn observe(store: &mut dyn Store, schema: &Schema, t: &Tables) -> Result<Vec<Vec<Row>>, StoreError> {
    let mut seen = Vec::new();
    for table in schema.table_ids() {
        seen.push(sorted(store.load_all(schema, table)?));
    }
    for id in 1..=IDS {
        let key: Row = Box::new([Value::Integer(id)]);
        for table in [t.parent].iter().chain(&t.children) {
            seen.push(sorted(store.load(schema, *table, &[0], std::slice::from_ref(&key))?));
        }
        for table in t.children.iter().chain([&t.assoc]) {
            seen.push(sorted(store.load(schema, *table, &[1], std::slice::from_ref(&key))?));
        }
        seen.push(sorted(store.load(schema, t.assoc, &[0], std::slice::from_ref(&key))?));
    }
    Ok(seen)
}

/// How the snapshot store is driven.
#[derive(Clone, Copy)]
struct Mode {
    compaction: Compaction,
    /// Whether each transaction is said to be large (`Store::reserve`), so
    /// the rows it inserts into empty tables are laid out as they arrive:
    /// for the commit to compact (`EveryCommit`), or moved into the overlay
    /// when it appends after all (`Auto`, whose threshold these never reach).
    large: bool,
}

const LOGGED: Mode = Mode { compaction: Compaction::Never, large: false };

fn reopen(path: &Path, schema: &Schema, mode: Mode) -> SnapshotStore {
    let options = SnapshotOptions { sync: false, compaction: mode.compaction };
    let mut store = SnapshotStore::with_options(path, options).expect("reopen");
    store.create_tables(schema).expect("same schema");
    store
}

/// Runs `steps` on both stores; `Err` says where they first differ.
fn run(path: &Path, steps: &[Step], mode: Mode) -> Result<(), String> {
    let schema: Arc<Schema> = relgraph_testkit::conformance::schema();
    let t = Tables::new(&schema);
    let _ = std::fs::remove_file(path);
    let mut snapshot = reopen(path, &schema, mode);
    let mut memory = MemoryStore::new();
    memory.create_tables(&schema).map_err(|e| e.to_string())?;
    let mut open = false;
    for (n, step) in steps.iter().enumerate() {
        let at = |what: &str| format!("step {n} ({step:?}): {what}");
        match operation(&schema, &t, step) {
            Some(op) => {
                if !open {
                    snapshot.begin().map_err(|e| at(&e.to_string()))?;
                    memory.begin().map_err(|e| at(&e.to_string()))?;
                    if mode.large {
                        snapshot.reserve(1 << 20);
                    }
                    open = true;
                }
                let ops = std::slice::from_ref(&op);
                let (s, m) = (snapshot.apply_all(&schema, ops), memory.apply_all(&schema, ops));
                match (&s, &m) {
                    (Ok(_), Ok(_)) => {}
                    (Err(a), Err(b)) if a.kind == b.kind => {
                        // A failed operation ends the transaction, as a flush does.
                        snapshot.rollback().map_err(|e| at(&e.to_string()))?;
                        memory.rollback().map_err(|e| at(&e.to_string()))?;
                        open = false;
                    }
                    _ => return Err(at(&format!("snapshot {s:?}, reference {m:?}"))),
                }
            }
            None => {
                if open {
                    if matches!(step, Step::Rollback) {
                        snapshot.rollback().map_err(|e| at(&e.to_string()))?;
                        memory.rollback().map_err(|e| at(&e.to_string()))?;
                    } else {
                        snapshot.commit().map_err(|e| at(&e.to_string()))?;
                        memory.commit().map_err(|e| at(&e.to_string()))?;
                    }
                    open = false;
                }
                match step {
                    Step::Reopen => {
                        drop(snapshot);
                        snapshot = reopen(path, &schema, mode);
                    }
                    Step::Compact => snapshot.compact().map_err(|e| at(&e.to_string()))?,
                    _ => {}
                }
            }
        }
        let seen = observe(&mut snapshot, &schema, &t).map_err(|e| at(&e.to_string()))?;
        let expected = observe(&mut memory, &schema, &t).map_err(|e| at(&e.to_string()))?;
        if seen != expected {
            return Err(at(&format!("the snapshot shows {seen:?}\nthe reference {expected:?}")));
        }
    }
    if open {
        snapshot.commit().map_err(|e| e.to_string())?;
        memory.commit().map_err(|e| e.to_string())?;
    }
    // What the file holds, opened afresh, is what was committed.
    drop(snapshot);
    let mut again = reopen(path, &schema, mode);
    let (seen, expected) = (observe(&mut again, &schema, &t), observe(&mut memory, &schema, &t));
    if seen.as_ref().ok() != expected.as_ref().ok() {
        return Err(format!("after the last reopening: {seen:?} against {expected:?}"));
    }
    Ok(())
}

/// A folder for one case's file, removed when dropped.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("relgraph-overlay-").tempdir().expect("scratch folder")
}

fn cases() -> u32 {
    std::env::var("RELGRAPH_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn the_overlay_and_its_log_match_the_reference(steps in proptest::collection::vec(step(), 1..60)) {
        let dir = scratch();
        let path = dir.path().join("overlay.snap");
        let result = run(&path, &steps, LOGGED);
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }

    #[test]
    fn rows_laid_out_match_the_reference(steps in proptest::collection::vec(step(), 1..60)) {
        for (name, compaction) in [("laid-compacted.snap", Compaction::EveryCommit), ("laid-appended.snap", Compaction::Auto)] {
            let dir = scratch();
            let path = dir.path().join(name);
            let result = run(&path, &steps, Mode { compaction, large: true });
            prop_assert!(result.is_ok(), "{compaction:?}: {}", result.unwrap_err());
        }
    }
}
