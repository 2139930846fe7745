//! What may cross threads: a session (with any store) moves to another
//! thread, as a worker pool or `spawn_blocking` needs; a schema and a graph
//! are shared read-only between threads.

use relgraph::{Graph, Schema, Session, SqliteStore};

fn moves<T: Send>() {}
fn shares<T: Send + Sync>() {}

#[test]
fn sessions_and_stores_move_between_threads_and_schemas_and_graphs_are_shared() {
    moves::<Session>();
    moves::<SqliteStore>();
    moves::<relgraph::PostgresStore>();
    moves::<relgraph::SnapshotStore>();
    shares::<Schema>();
    shares::<Graph>();
}

#[test]
fn a_session_flushes_on_another_thread() {
    let schema = relgraph_testkit::workloads::schema();
    let mut session = Session::new(schema.clone(), SqliteStore::open_in_memory().unwrap()).unwrap();
    let parent = schema.entity_id("Parent").unwrap();
    let id = schema.entity_column(parent, "id").unwrap();
    let p = session.new_with(parent, [(id, relgraph::Value::from(7))]).unwrap();
    session.add(p).unwrap();
    let mut session = std::thread::spawn(move || {
        session.flush().unwrap();
        session
    })
    .join()
    .unwrap();
    assert_eq!(session.get(parent, &[relgraph::Value::from(7)]).unwrap(), Some(p));
}
