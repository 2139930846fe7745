//! The snapshot tools as a user runs them: inspect, verify, dump in three
//! formats, export to SQLite and import back, compact, and bad files.

use std::path::Path;
use std::process::{Command, Output};

use relgraph_core::{Cell, RowOp, Schema, Store, Value};
use relgraph_snapshot::{Compaction, SnapshotOptions, SnapshotStore};

fn relgraph(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relgraph")).args(args).output().expect("relgraph runs")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn failure(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "expected a failure: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// A folder for one test's files, removed when dropped.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("relgraph-cli-{name}-")).tempdir().unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn insert(schema: &Schema, table: &str, values: Vec<Value>) -> RowOp {
    RowOp::Insert {
        table: schema.table_id(table).unwrap(),
        row: values.into_iter().map(Cell::Value).collect(),
    }
}

/// A snapshot of the conformance schema with two committed batches in its log.
fn sample(path: &Path) {
    let schema = relgraph_testkit::conformance::schema();
    let options = SnapshotOptions { sync: false, compaction: Compaction::Never };
    let mut store = SnapshotStore::with_options(path, options).unwrap();
    store.create_tables(&schema).unwrap();
    store.begin().unwrap();
    store
        .apply_all(
            &schema,
            &[
                insert(&schema, "parent", vec![Value::Null, "plain".into()]),
                insert(&schema, "parent", vec![Value::Null, "with, comma \"and quote\"".into()]),
            ],
        )
        .unwrap();
    store.commit().unwrap();
    store.begin().unwrap();
    let child =
        vec![7.into(), 1.into(), true.into(), 1.5.into(), Value::Blob(vec![0xde, 0xad].into()), Value::Null];
    store
        .apply_all(
            &schema,
            &[insert(&schema, "child", child), insert(&schema, "assoc", vec![2.into(), 7.into()])],
        )
        .unwrap();
    store.commit().unwrap();
}

#[test]
fn inspect_shows_header_log_and_tables() {
    let dir = scratch("inspect");
    let file = dir.path().join("a.snap");
    sample(&file);
    let text = stdout(&relgraph(&["inspect", s(&file)]));
    for expected in [
        "format       version 3",
        "log          2 batches",
        "table parent (2 rows)",
        "table child (1 rows)",
        "table assoc (1 rows)",
        "  name                 TEXT     not null, unique",
        "  foreign key (parent_id) references parent (id)",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
}

#[test]
fn dump_prints_text_csv_and_json() {
    let dir = scratch("dump");
    let file = dir.path().join("a.snap");
    sample(&file);
    let text = stdout(&relgraph(&["dump", s(&file), "parent"]));
    assert_eq!(text, "id | name\n1 | plain\n2 | with, comma \"and quote\"\n");
    let csv = stdout(&relgraph(&["dump", s(&file), "parent", "--format", "csv"]));
    assert_eq!(csv, "id,name\n1,plain\n2,\"with, comma \"\"and quote\"\"\"\n");
    let json = stdout(&relgraph(&["dump", s(&file), "child", "--format", "json"]));
    assert_eq!(
        json,
        "{\"id\":7,\"parent_id\":1,\"flag\":true,\"score\":1.5,\"data\":\"dead\",\"label\":null}\n"
    );
    let err = failure(&relgraph(&["dump", s(&file), "nope"]));
    assert!(err.contains("no table \"nope\"") && err.contains("parent, child"), "{err}");
}

#[test]
fn export_import_and_compact_keep_every_row() {
    let dir = scratch("convert");
    let (file, sqlite, back) =
        (dir.path().join("a.snap"), dir.path().join("a.sqlite"), dir.path().join("b.snap"));
    sample(&file);
    assert!(stdout(&relgraph(&["export", s(&file), s(&sqlite)])).contains("exported 4 rows in 5 tables"));
    let conn = rusqlite::Connection::open(&sqlite).unwrap();
    let names: Vec<String> = conn
        .prepare("SELECT name FROM parent ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(names, ["plain", "with, comma \"and quote\""]);
    drop(conn);
    // An existing target is refused without --force.
    assert!(failure(&relgraph(&["export", s(&file), s(&sqlite)])).contains("--force"));

    assert!(stdout(&relgraph(&["import", s(&sqlite), s(&back)])).contains("imported 4 rows in 5 tables"));
    let fingerprint = |path: &Path| {
        stdout(&relgraph(&["inspect", s(path)])).lines().find(|l| l.starts_with("schema")).unwrap().to_owned()
    };
    assert_eq!(fingerprint(&file), fingerprint(&back), "the round trip keeps the schema");
    for table in ["parent", "child", "kid", "pet", "assoc"] {
        let dump = |path: &Path| stdout(&relgraph(&["dump", s(path), table, "--format", "csv"]));
        assert_eq!(dump(&file), dump(&back), "table {table}");
    }

    let before = stdout(&relgraph(&["dump", s(&file), "child", "--format", "json"]));
    assert!(stdout(&relgraph(&["compact", s(&file)])).contains("2 log batches folded in"));
    assert!(stdout(&relgraph(&["inspect", s(&file)])).contains("log          0 batches"));
    assert_eq!(stdout(&relgraph(&["dump", s(&file), "child", "--format", "json"])), before);
    assert!(stdout(&relgraph(&["verify", s(&file)])).starts_with("ok: 5 tables, 4 rows"));
}

#[test]
fn bad_files_fail_with_what_is_wrong() {
    let dir = scratch("bad");
    let file = dir.path().join("a.snap");
    sample(&file);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let flipped = dir.path().join("flipped.snap");
    std::fs::write(&flipped, &bytes).unwrap();
    let err = failure(&relgraph(&["verify", s(&flipped)]));
    assert!(err.contains("corrupt"), "{err}");

    let other = dir.path().join("notes.txt");
    std::fs::write(&other, "hello").unwrap();
    assert!(failure(&relgraph(&["inspect", s(&other)])).contains("not a relgraph snapshot"));
    assert!(failure(&relgraph(&["inspect", s(&dir.path().join("missing.snap"))])).contains("no such file"));
}

#[test]
fn help_lists_every_tool() {
    let text = stdout(&relgraph(&["--help"]));
    for tool in ["inspect", "verify", "dump", "export", "import", "compact", "bench"] {
        assert!(text.contains(tool), "{tool} missing from:\n{text}");
    }
}

/// `relgraph dump ... | head`: the reader stops early, and the command
/// ends quietly with success, as Unix tools do, instead of reporting the
/// closed pipe as an error.
#[test]
fn dump_into_a_pipe_closed_early_ends_quietly() {
    use std::io::Read;
    let dir = scratch("pipe");
    let file = dir.path().join("big.snap");
    let schema = relgraph_testkit::conformance::schema();
    let options = SnapshotOptions { sync: false, compaction: Compaction::Never };
    let mut store = SnapshotStore::with_options(&file, options).unwrap();
    store.create_tables(&schema).unwrap();
    store.begin().unwrap();
    // Far more than a pipe's buffer holds, so the command is still writing when the reader goes.
    let rows: Vec<RowOp> = (1..=20_000)
        .map(|i| insert(&schema, "parent", vec![i.into(), format!("parent number {i}").into()]))
        .collect();
    store.apply_all(&schema, &rows).unwrap();
    store.commit().unwrap();
    drop(store);
    let mut child = Command::new(env!("CARGO_BIN_EXE_relgraph"))
        .args(["dump", s(&file), "parent"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("id | name"));
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "nothing on stderr: {}", String::from_utf8_lossy(&out.stderr));
}
