//! The file as untrusted, crash-prone input: reopening, torn appends,
//! flipped bytes, foreign schemas and versions, and what a commit writes.

use std::error::Error as _;
use std::path::Path;
use std::sync::Arc;

use relgraph_core::{Cell, ErrorKind, Row, RowOp, Schema, Store, StoreError, Value};
use relgraph_snapshot::format::{FORMAT_VERSION, HEADER_LEN, Header};
use relgraph_snapshot::{SnapshotError, SnapshotStore};

/// A folder for one test's files, removed when dropped.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("relgraph-snapfile-{name}-")).tempdir().unwrap()
}

fn insert(schema: &Schema, table: &str, values: Vec<Value>) -> RowOp {
    RowOp::Insert {
        table: schema.table_id(table).unwrap(),
        row: values.into_iter().map(Cell::Value).collect(),
    }
}

fn rename(schema: &Schema, id: i64, name: &str) -> RowOp {
    RowOp::Update {
        table: schema.table_id("parent").unwrap(),
        key_columns: Box::new([0]),
        key: Box::new([Cell::Value(Value::Integer(id))]),
        columns: Box::new([1]),
        values: Box::new([Cell::Value(Value::from(name))]),
    }
}

fn delete(schema: &Schema, table: &str, id: i64) -> RowOp {
    RowOp::Delete {
        table: schema.table_id(table).unwrap(),
        columns: Box::new([0]),
        values: Box::new([Cell::Value(Value::Integer(id))]),
    }
}

/// Every table's rows, in order.
fn state(store: &mut SnapshotStore, schema: &Schema) -> Vec<Vec<Row>> {
    schema.table_ids().map(|t| store.load_all(schema, t).unwrap()).collect()
}

fn open(path: &Path, schema: &Schema) -> Result<SnapshotStore, StoreError> {
    let mut store = SnapshotStore::open(path)?;
    store.create_tables(schema)?;
    Ok(store)
}

fn commit(store: &mut SnapshotStore, schema: &Schema, ops: &[RowOp]) {
    store.begin().unwrap();
    store.apply_all(schema, ops).unwrap();
    store.commit().unwrap();
}

/// A file of three commits: parents and children, then a rename, an
/// association and a child, then a delete that cascades to a kid and nulls
/// a pet's owner. Returns the file's length and state after each commit.
/// The file's length and every table's rows after one commit.
type AfterCommit = (u64, Vec<Vec<Row>>);

fn three_commits(path: &Path) -> (Arc<Schema>, Vec<AfterCommit>) {
    let schema = relgraph_testkit::conformance::schema();
    let mut store = open(path, &schema).unwrap();
    let mut after = Vec::new();
    let child = |id: i64, parent: i64| {
        let label = format!("c{id}");
        insert(
            &schema,
            "child",
            vec![id.into(), parent.into(), true.into(), 0.5.into(), Value::Null, label.into()],
        )
    };
    commit(
        &mut store,
        &schema,
        &[
            insert(&schema, "parent", vec![Value::Null, "p1".into()]),
            insert(&schema, "parent", vec![Value::Null, "p2".into()]),
            child(1, 1),
            child(2, 2),
            insert(&schema, "kid", vec![1.into(), 2.into()]),
            insert(&schema, "pet", vec![1.into(), 2.into()]),
        ],
    );
    after.push((std::fs::metadata(path).unwrap().len(), state(&mut store, &schema)));
    commit(
        &mut store,
        &schema,
        &[rename(&schema, 1, "first"), insert(&schema, "assoc", vec![1.into(), 1.into()]), child(3, 1)],
    );
    after.push((std::fs::metadata(path).unwrap().len(), state(&mut store, &schema)));
    commit(&mut store, &schema, &[delete(&schema, "child", 2), delete(&schema, "parent", 2)]);
    after.push((std::fs::metadata(path).unwrap().len(), state(&mut store, &schema)));
    (schema, after)
}

fn snapshot_error(e: &StoreError) -> &SnapshotError {
    e.source().and_then(|s| s.downcast_ref::<SnapshotError>()).expect("a snapshot error as the source")
}

#[test]
fn a_reopened_file_holds_every_commit_and_continues_it() {
    let dir = scratch("reopen");
    let path = dir.path().join("a.snap");
    let (schema, after) = three_commits(&path);
    let (_, last) = after.last().unwrap();
    assert_eq!(last[0].len(), 1, "parent 2 deleted");
    assert_eq!(last[2].len(), 0, "kid cascaded");
    assert_eq!(last[3][0][1], Value::Null, "pet's owner set to NULL");
    let mut store = open(&path, &schema).unwrap();
    assert_eq!(&state(&mut store, &schema), last);
    assert_eq!(store.info().unwrap().batches, 3);
    // Keys keep counting from the stored rows, and the new commit reopens too.
    store.begin().unwrap();
    let keys =
        store.apply_all(&schema, &[insert(&schema, "parent", vec![Value::Null, "p3".into()])]).unwrap();
    store.commit().unwrap();
    assert_eq!(keys, vec![Some(3)]);
    let expected = state(&mut store, &schema);
    drop(store);
    let mut again = open(&path, &schema).unwrap();
    assert_eq!(state(&mut again, &schema), expected);
    // Compaction keeps the rows, drops the log, and bumps the generation.
    again.compact().unwrap();
    let info = again.info().unwrap();
    assert_eq!((info.batches, info.log_len, info.header.generation), (0, 0, 1));
    assert_eq!(state(&mut again, &schema), expected);
    drop(again);
    let mut compacted = open(&path, &schema).unwrap();
    assert_eq!(state(&mut compacted, &schema), expected);
    assert!(compacted.verify().is_ok());
}

#[test]
fn a_rolled_back_transaction_leaves_no_trace_in_memory_or_on_disk() {
    let dir = scratch("rollback");
    let path = dir.path().join("a.snap");
    let (schema, after) = three_commits(&path);
    let mut store = open(&path, &schema).unwrap();
    store.begin().unwrap();
    store
        .apply_all(
            &schema,
            &[
                rename(&schema, 1, "renamed"),
                insert(&schema, "parent", vec![Value::Null, "p9".into()]),
                delete(&schema, "parent", 1),
            ],
        )
        .unwrap_err();
    store.rollback().unwrap();
    assert_eq!(&state(&mut store, &schema), &after[2].1);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), after[2].0);
    // The generated key is not used up either.
    store.begin().unwrap();
    let keys =
        store.apply_all(&schema, &[insert(&schema, "parent", vec![Value::Null, "p9".into()])]).unwrap();
    store.rollback().unwrap();
    assert_eq!(keys, vec![Some(3)]);
}

#[test]
fn a_file_cut_inside_its_last_batch_opens_at_the_commit_before() {
    let dir = scratch("truncate");
    let path = dir.path().join("a.snap");
    let (schema, after) = three_commits(&path);
    let bytes = std::fs::read(&path).unwrap();
    let (before_len, before) = &after[1];
    let cut = dir.path().join("cut.snap");
    let mut tried = 0;
    for len in *before_len as usize..bytes.len() {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let mut store = open(&cut, &schema).unwrap_or_else(|e| panic!("cut at {len}: {e}"));
        assert_eq!(&state(&mut store, &schema), before, "cut at {len}");
        assert_eq!(store.info().unwrap().torn_tail, len > *before_len as usize);
        tried += 1;
    }
    println!("truncation offsets tried inside the last batch: {tried}");
    assert!(tried > 100);
    // A commit after a torn tail replaces it, and the file reads back whole.
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let mut store = open(&cut, &schema).unwrap();
    commit(&mut store, &schema, &[rename(&schema, 2, "after the crash")]);
    let expected = state(&mut store, &schema);
    drop(store);
    let mut reopened = open(&cut, &schema).unwrap();
    assert_eq!(state(&mut reopened, &schema), expected);
    assert!(!reopened.info().unwrap().torn_tail);
}

#[test]
fn a_file_cut_inside_its_header_or_base_is_a_truncated_error() {
    let dir = scratch("truncate-base");
    let path = dir.path().join("a.snap");
    let (_schema, after) = three_commits(&path);
    let bytes = std::fs::read(&path).unwrap();
    let header = Header::decode(&bytes).unwrap();
    let base_end = HEADER_LEN + (header.base_len as usize).div_ceil(16) * 16;
    assert!(base_end < after[0].0 as usize);
    let cut = dir.path().join("cut.snap");
    for len in 1..base_end {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let e = SnapshotStore::open(&cut).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Corrupt, "cut at {len}: {e}");
        assert!(matches!(snapshot_error(&e), SnapshotError::Truncated { .. }), "cut at {len}: {e}");
    }
}

#[test]
fn every_flipped_byte_is_detected() {
    let dir = scratch("flip");
    let path = dir.path().join("a.snap");
    three_commits(&path);
    let bytes = std::fs::read(&path).unwrap();
    let bad = dir.path().join("bad.snap");
    let mut tried = 0;
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0xff] {
            let mut copy = bytes.clone();
            copy[i] ^= mask;
            std::fs::write(&bad, &copy).unwrap();
            let e =
                SnapshotStore::open(&bad).map(|_| ()).expect_err(&format!("flip {mask:#x} at {i} unnoticed"));
            assert!(matches!(e.kind, ErrorKind::Corrupt | ErrorKind::Other), "flip at {i}: {e}");
            tried += 1;
        }
    }
    println!("byte flips tried: {tried} over a {}-byte file", bytes.len());
}

#[test]
fn foreign_files_say_what_they_are() {
    let dir = scratch("foreign");
    let path = dir.path().join("a.snap");
    let (_schema, _) = three_commits(&path);

    // Another schema.
    let mut registry = relgraph_core::Registry::new();
    registry
        .table(relgraph_core::Table::new("other").column(relgraph_core::Column::integer("id").primary_key()))
        .unwrap();
    let other = registry.configure().unwrap();
    let e = open(&path, &other).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Schema);
    assert!(matches!(snapshot_error(&e), SnapshotError::ForeignSchema(_)));
    assert!(e.to_string().contains("parent"), "{e}");

    // A newer format version, with a valid header checksum.
    let mut bytes = std::fs::read(&path).unwrap();
    let mut header = Header::decode(&bytes).unwrap();
    header.version += 1;
    bytes[..HEADER_LEN].copy_from_slice(&header.encode());
    let newer = dir.path().join("newer.snap");
    std::fs::write(&newer, &bytes).unwrap();
    let e = SnapshotStore::open(&newer).unwrap_err();
    assert!(
        matches!(snapshot_error(&e), SnapshotError::NewerVersion { found, supported }
            if *found == FORMAT_VERSION + 1 && *supported == FORMAT_VERSION),
        "{e}"
    );

    // Not a snapshot at all.
    let sqlite = dir.path().join("x.sqlite");
    std::fs::write(&sqlite, b"SQLite format 3\0 and then some more bytes").unwrap();
    let e = SnapshotStore::open(&sqlite).unwrap_err();
    assert!(matches!(snapshot_error(&e), SnapshotError::NotASnapshot), "{e}");
}

#[test]
fn a_small_commit_on_a_big_file_appends_only_its_change() {
    let dir = scratch("append");
    let path = dir.path().join("a.snap");
    let schema = relgraph_testkit::conformance::schema();
    let mut store = open(&path, &schema).unwrap();
    let parents: Vec<RowOp> = (1..=20_000)
        .map(|i| insert(&schema, "parent", vec![i.into(), format!("parent-{i}").into()]))
        .collect();
    commit(&mut store, &schema, &parents);
    // 20,000 row changes outnumber an empty image's rows and 16,384: the
    // commit compacted instead of appending.
    let info = store.info().unwrap();
    assert_eq!((info.header.generation, info.batches), (1, 0), "{info:?}");
    assert_eq!(store.row_count(0).unwrap(), 20_000);
    let big = std::fs::metadata(&path).unwrap().len();
    let generation = store.info().unwrap().header.generation;
    assert!(big > 200_000, "{big}");
    commit(&mut store, &schema, &[rename(&schema, 7, "seven")]);
    let grown = std::fs::metadata(&path).unwrap().len() - big;
    println!("a 1-row commit on a {big}-byte file appended {grown} bytes");
    assert!(grown < 256, "{grown}");
    assert_eq!(store.info().unwrap().header.generation, generation, "no compaction");
}

#[test]
fn one_writer_per_file_and_readers_alongside() {
    let dir = scratch("lock");
    let path = dir.path().join("a.snap");
    let (schema, after) = three_commits(&path);
    let mut writer = open(&path, &schema).unwrap();
    let e = SnapshotStore::open(&path).unwrap_err();
    assert!(matches!(snapshot_error(&e), SnapshotError::Locked { .. }), "{e}");
    assert!(e.to_string().contains("read-only"), "{e}");

    // A reader opens alongside the writer and sees the commits made before it opened.
    let mut reader = SnapshotStore::open_read_only(&path).unwrap();
    reader.create_tables(&schema).unwrap();
    assert_eq!(state(&mut reader, &schema), after[2].1);
    assert_eq!(reader.begin().unwrap_err().kind, ErrorKind::Usage);
    assert_eq!(reader.compact().unwrap_err().kind, ErrorKind::Usage);
    commit(&mut writer, &schema, &[rename(&schema, 1, "by the writer")]);

    // Once the writer is gone, another store may write.
    drop(writer);
    let mut next = open(&path, &schema).unwrap();
    assert_eq!(state(&mut next, &schema)[0][0][1], Value::from("by the writer"));
}

#[test]
fn a_leftover_compaction_file_is_replaced() {
    let dir = scratch("leftover");
    let path = dir.path().join("a.snap");
    let (schema, after) = three_commits(&path);
    // What a crash between writing the temporary file and renaming it leaves.
    let tmp = dir.path().join("a.snap.compact-tmp");
    std::fs::write(&tmp, b"half a compaction").unwrap();
    let mut store = open(&path, &schema).unwrap();
    assert_eq!(state(&mut store, &schema), after[2].1, "the file itself is untouched");
    store.compact().unwrap();
    assert!(!tmp.exists());
    drop(store);
    let mut again = open(&path, &schema).unwrap();
    assert_eq!(state(&mut again, &schema), after[2].1);
}

#[test]
fn row_counts_follow_the_log_without_reading_rows() {
    let dir = scratch("count");
    let path = dir.path().join("a.snap");
    let (schema, after) = three_commits(&path);
    let mut store = open(&path, &schema).unwrap();
    let counts: Vec<usize> = (0..schema.tables().len()).map(|t| store.row_count(t).unwrap()).collect();
    assert_eq!(counts, after[2].1.iter().map(Vec::len).collect::<Vec<_>>());
    store.compact().unwrap();
    commit(&mut store, &schema, &[delete(&schema, "child", 3)]);
    assert_eq!(store.row_count(1).unwrap(), after[2].1[1].len() - 1, "a deleted image row counts out");
    assert_eq!(store.row_count(9).unwrap_err().kind, ErrorKind::Schema);
}

#[test]
fn a_generated_key_past_the_largest_integer_is_an_error() {
    let dir = scratch("key-overflow");
    let path = dir.path().join("a.snap");
    let schema = relgraph_testkit::conformance::schema();
    let mut store = open(&path, &schema).unwrap();
    commit(&mut store, &schema, &[insert(&schema, "parent", vec![i64::MAX.into(), "last".into()])]);
    store.begin().unwrap();
    let e =
        store.apply_all(&schema, &[insert(&schema, "parent", vec![Value::Null, "next".into()])]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Other, "{e}");
    assert!(e.message.contains("no key left"), "{e}");
    store.rollback().unwrap();
}
