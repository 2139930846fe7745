//! Bad input gets a typed error: a table that does not match the registry,
//! and a file that is not a SQLite database.

use relgraph_core::{Column, Entity, ErrorKind, Registry, Store};
use relgraph_sqlite::SqliteStore;

/// A folder, removed when dropped, and the path of file `name` in it.
fn scratch(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new().prefix("relgraph-bad-input-").tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

#[test]
fn a_table_of_another_shape_is_a_schema_error() {
    let (_dir, path) = scratch("shape.sqlite");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE parent (id INTEGER, label TEXT)")
        .unwrap();
    let mut registry = Registry::new();
    registry
        .entity(
            Entity::new("Parent", "parent")
                .column(Column::integer("id").primary_key())
                .column(Column::text("name")),
        )
        .unwrap();
    let schema = registry.configure().unwrap();
    let err = SqliteStore::open(&path).unwrap().create_tables(&schema).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Schema);
    assert!(err.to_string().contains("'parent'") && err.to_string().contains("label"), "{err}");
}

#[test]
fn a_file_that_is_not_a_database_is_corrupt() {
    let (_dir, path) = scratch("garbage.sqlite");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let mut registry = Registry::new();
    registry.entity(Entity::new("Parent", "parent").column(Column::integer("id").primary_key())).unwrap();
    let schema = registry.configure().unwrap();
    // SQLite opens lazily: the error comes with the first statement.
    let err = SqliteStore::open(&path).and_then(|mut s| s.create_tables(&schema)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Corrupt, "{err}");
}
