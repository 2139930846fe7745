//! Files written by earlier format versions stay readable.
//!
//! `tests/fixtures/format-v1.snap` was written by the build of format
//! version 1 (text and bytes stored one string per row), and
//! `tests/fixtures/format-v2.snap` by the last build of version 2 (text and
//! bytes as runs, every integer in 64 bits), from the commits below: a
//! compacted image holding every column type, NULLs included, and one log
//! batch after it. This build must read each, continue it, and rewrite it
//! in its own version.
//!
//! To write such a fixture again: `RELGRAPH_WRITE_FIXTURE=<path> cargo test
//! -p relgraph-snapshot --test compat`.

use std::path::{Path, PathBuf};

use relgraph_core::{Cell, Row, RowOp, Schema, Store, Value};
use relgraph_snapshot::format::{FORMAT_VERSION, Header};
use relgraph_snapshot::{Compaction, SnapshotOptions, SnapshotStore};
use relgraph_testkit::memory_store::{MemoryStore, compare_rows};

fn insert(schema: &Schema, table: &str, values: Vec<Value>) -> RowOp {
    RowOp::Insert {
        table: schema.table_id(table).expect("suite table"),
        row: values.into_iter().map(Cell::Value).collect(),
    }
}

/// The image's commit (compacted) and the log's.
fn commits(schema: &Schema) -> [Vec<RowOp>; 2] {
    let child = |id: i64, parent: Value, flag: Value, score: Value, data: Value, label: Value| {
        insert(schema, "child", vec![id.into(), parent, flag, score, data, label])
    };
    let image = vec![
        insert(schema, "parent", vec![1.into(), "first".into()]),
        insert(schema, "parent", vec![2.into(), "zweite é".into()]),
        insert(schema, "parent", vec![3.into(), "a parent name longer than any inline string".into()]),
        child(1, 1.into(), true.into(), 0.5.into(), Value::Blob(vec![0, 1, 2].into()), "one".into()),
        child(2, 2.into(), false.into(), Value::Null, Value::Null, Value::Null),
        child(3, Value::Null, Value::Null, (-2.25).into(), Value::Blob(Vec::new().into()), "".into()),
        child(4, 3.into(), true.into(), 1e300.into(), Value::Blob(vec![255; 40].into()), "ünïcödé".into()),
        insert(schema, "kid", vec![1.into(), 3.into()]),
        insert(schema, "pet", vec![1.into(), 2.into()]),
        insert(schema, "assoc", vec![1.into(), 1.into()]),
        insert(schema, "assoc", vec![3.into(), 4.into()]),
    ];
    let log = vec![
        insert(schema, "parent", vec![4.into(), "from the log".into()]),
        child(5, 4.into(), Value::Null, Value::Null, Value::Blob(vec![7].into()), "logged".into()),
        RowOp::Update {
            table: schema.table_id("child").expect("suite table"),
            key_columns: Box::new([0]),
            key: Box::new([Cell::Value(1.into())]),
            columns: Box::new([5]),
            values: Box::new([Cell::Value("renamed".into())]),
        },
    ];
    [image, log]
}

fn rows(store: &mut dyn Store, schema: &Schema) -> Vec<Vec<Row>> {
    schema
        .table_ids()
        .map(|t| {
            let mut rows = store.load_all(schema, t).expect("rows");
            rows.sort_by(|a, b| compare_rows(a, b));
            rows
        })
        .collect()
}

fn expected(schema: &Schema) -> Vec<Vec<Row>> {
    let mut memory = MemoryStore::new();
    memory.create_tables(schema).expect("tables");
    for ops in commits(schema) {
        memory.begin().expect("begin");
        memory.apply_all(schema, &ops).expect("apply");
        memory.commit().expect("commit");
    }
    rows(&mut memory, schema)
}

fn open(path: &Path, schema: &Schema) -> SnapshotStore {
    let options = SnapshotOptions { sync: false, compaction: Compaction::Never };
    let mut store = SnapshotStore::with_options(path, options).expect("open");
    store.create_tables(schema).expect("the suite schema");
    store
}

fn version(path: &Path) -> u32 {
    Header::decode(&std::fs::read(path).expect("read")).expect("header").version
}

fn write_fixture(path: &Path, schema: &Schema) {
    let _ = std::fs::remove_file(path);
    let mut store = open(path, schema);
    let [image, log] = commits(schema);
    for (ops, compact) in [(image, true), (log, false)] {
        store.begin().expect("begin");
        store.apply_all(schema, &ops).expect("apply");
        store.commit().expect("commit");
        if compact {
            store.compact().expect("compact");
        }
    }
}

fn fixture(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/format-v{version}.snap"))
}

#[test]
fn a_version_1_file_is_read_continued_and_rewritten() {
    let schema = relgraph_testkit::conformance::schema();
    if let Some(path) = std::env::var_os("RELGRAPH_WRITE_FIXTURE") {
        write_fixture(Path::new(&path), &schema);
        return;
    }
    read_continue_and_rewrite(1, &schema);
}

#[test]
fn a_version_2_file_is_read_continued_and_rewritten() {
    read_continue_and_rewrite(2, &relgraph_testkit::conformance::schema());
}

/// Opens a copy of the fixture of format version `old`, checks its rows,
/// appends a commit (which keeps its version), compacts it (which writes
/// this build's) and checks the rows again.
fn read_continue_and_rewrite(old: u32, schema: &Schema) {
    let dir =
        tempfile::Builder::new().prefix(&format!("relgraph-compat-v{old}-")).tempdir().expect("scratch");
    let path = dir.path().join(format!("v{old}.snap"));
    std::fs::copy(fixture(old), &path).expect("copy the fixture");
    assert_eq!(version(&path), old);

    let mut store = open(&path, schema);
    let info = store.info().expect("an opened file");
    assert_eq!(info.batches, 1, "the fixture holds one log batch after its image");
    assert_eq!(rows(&mut store, schema), expected(schema));

    // A commit appends to the old file as it is; compaction rewrites it in this build's version.
    let more = [insert(schema, "parent", vec![5.into(), "after".into()])];
    store.begin().expect("begin");
    store.apply_all(schema, &more).expect("apply");
    store.commit().expect("commit");
    assert_eq!(version(&path), old);
    store.compact().expect("compact");
    drop(store);
    assert_eq!(version(&path), FORMAT_VERSION);
    let mut store = open(&path, schema);
    let mut want = expected(schema);
    want[0].push(Box::new([5.into(), "after".into()]));
    assert_eq!(rows(&mut store, schema), want);
    store.verify().expect("the rewritten file verifies");
}
