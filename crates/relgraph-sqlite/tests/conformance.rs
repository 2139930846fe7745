//! The conformance suite on SQLite, in memory and in a file.

use relgraph_sqlite::SqliteStore;

#[test]
fn sqlite_in_memory_conforms() {
    relgraph_testkit::conformance::run(&mut || Box::new(SqliteStore::open_in_memory().expect("open")));
}

#[test]
fn sqlite_file_conforms() {
    let dir = std::env::temp_dir().join(format!("relgraph-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut n = 0;
    relgraph_testkit::conformance::run(&mut || {
        n += 1;
        let path = dir.join(format!("db{n}.sqlite"));
        let _ = std::fs::remove_file(&path);
        Box::new(SqliteStore::open(&path).expect("open"))
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
