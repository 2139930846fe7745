//! Every statement the store sends is traced at DEBUG under the
//! `relgraph::sql` target, whether or not an echo is set.

use std::sync::{Arc, Mutex};

use relgraph_core::{Cell, RowOp, Store, Value};
use relgraph_sqlite::SqliteStore;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A subscriber that keeps the target and message of every event.
struct Capture(Arc<Mutex<Vec<(String, String)>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().unwrap().push((event.metadata().target().to_owned(), message.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn statements_are_traced_under_relgraph_sql() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let schema = relgraph_testkit::conformance::schema();
    tracing::subscriber::with_default(Capture(events.clone()), || {
        let mut store = SqliteStore::open_in_memory().unwrap();
        store.create_tables(&schema).unwrap();
        store.begin().unwrap();
        let parent = schema.table_id("parent").unwrap();
        let row = vec![Cell::Value(Value::Integer(1)), Cell::Value(Value::from("traced"))].into_boxed_slice();
        store.apply_all(&schema, &[RowOp::Insert { table: parent, row }]).unwrap();
        store.commit().unwrap();
    });
    let events = events.lock().unwrap();
    let sql: Vec<&str> =
        events.iter().filter(|(target, _)| target == "relgraph::sql").map(|(_, m)| m.as_str()).collect();
    assert!(sql.iter().any(|m| m.starts_with("CREATE TABLE IF NOT EXISTS \"parent\"")), "{sql:?}");
    assert!(
        sql.iter().any(|m| m.starts_with("INSERT INTO \"parent\"") && m.contains("traced")),
        "the INSERT and its values are traced: {sql:?}"
    );
    assert!(sql.contains(&"COMMIT"), "{sql:?}");
}
