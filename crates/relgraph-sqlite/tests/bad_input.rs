//! Bad input gets a typed error: a table that does not match the registry,
//! and a file that is not a SQLite database.

use relgraph_core::{Column, Entity, ErrorKind, Registry, Store};
use relgraph_sqlite::SqliteStore;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("relgraph-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn a_table_of_another_shape_is_a_schema_error() {
    let path = scratch("shape.sqlite");
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
    let path = scratch("garbage.sqlite");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let mut registry = Registry::new();
    registry.entity(Entity::new("Parent", "parent").column(Column::integer("id").primary_key())).unwrap();
    let schema = registry.configure().unwrap();
    // SQLite opens lazily: the error comes with the first statement.
    let err = SqliteStore::open(&path).and_then(|mut s| s.create_tables(&schema)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Corrupt, "{err}");
}
