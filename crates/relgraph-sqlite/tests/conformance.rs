//! The conformance suite on SQLite, in memory and in a file.

use relgraph_sqlite::SqliteStore;

#[test]
fn sqlite_in_memory_conforms() {
    relgraph_testkit::conformance::run(&mut || Box::new(SqliteStore::open_in_memory().expect("open")));
}

#[test]
fn sqlite_file_conforms() {
    let dir = tempfile::Builder::new().prefix("relgraph-conformance-").tempdir().unwrap();
    let mut n = 0;
    relgraph_testkit::conformance::run(&mut || {
        n += 1;
        let path = dir.path().join(format!("db{n}.sqlite"));
        Box::new(SqliteStore::open(&path).expect("open"))
    });
}
