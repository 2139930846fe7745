//! The conformance suite: the store contract, checked the same way on every
//! store. A store's test file calls [`run`] with a constructor of fresh,
//! empty stores; each check panics with its name on failure.

use std::sync::Arc;

use relgraph_core::{
    Cell, Column, Entity, ErrorKind, ForeignKey, InsertBatch, OnDelete, Registry, Row, RowOp, Schema, Store,
    Table, TableId, Value,
};

/// The suite's schema: `parent` (generated keys, unique NOT NULL name),
/// `child` (every column type, a plain foreign key), `kid` (ON DELETE
/// CASCADE), `pet` (ON DELETE SET NULL), and `assoc` between parent and child.
pub fn schema() -> Arc<Schema> {
    let mut reg = Registry::new();
    reg.entity(
        Entity::new("Parent", "parent")
            .column(Column::integer("id").primary_key())
            .column(Column::text("name").not_null().unique()),
    )
    .expect("suite schema");
    reg.entity(
        Entity::new("Child", "child")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("parent_id").foreign_key("parent.id"))
            .column(Column::boolean("flag"))
            .column(Column::float("score"))
            .column(Column::blob("data"))
            .column(Column::text("label")),
    )
    .expect("suite schema");
    reg.entity(
        Entity::new("Kid", "kid")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("parent_id"))
            .foreign_key(ForeignKey::new(["parent_id"], "parent", ["id"]).on_delete(OnDelete::Cascade)),
    )
    .expect("suite schema");
    reg.entity(
        Entity::new("Pet", "pet")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("owner_id").foreign_key("parent.id").on_delete(OnDelete::SetNull)),
    )
    .expect("suite schema");
    reg.table(
        Table::new("assoc")
            .column(Column::integer("parent_id").not_null().foreign_key("parent.id"))
            .column(Column::integer("child_id").not_null().foreign_key("child.id")),
    )
    .expect("suite schema");
    reg.configure().expect("suite schema configures")
}

struct Suite {
    schema: Arc<Schema>,
    store: Box<dyn Store>,
}

fn v(value: impl Into<Value>) -> Cell {
    Cell::Value(value.into())
}

fn null() -> Cell {
    Cell::Value(Value::Null)
}

impl Suite {
    fn t(&self, name: &str) -> TableId {
        self.schema.table_id(name).expect("suite table")
    }

    fn insert(&self, table: &str, row: Vec<Cell>) -> RowOp {
        RowOp::Insert { table: self.t(table), row: row.into_boxed_slice() }
    }

    fn delete(&self, table: &str, column: u32, value: impl Into<Value>) -> RowOp {
        RowOp::Delete { table: self.t(table), columns: Box::new([column]), values: Box::new([v(value)]) }
    }

    fn all(&mut self, table: &str) -> Vec<Row> {
        let t = self.t(table);
        self.store.load_all(&self.schema, t).unwrap_or_else(|e| panic!("load_all {table}: {e}"))
    }

    fn ids(&mut self, table: &str) -> Vec<i64> {
        self.all(table).iter().map(|r| r[0].as_i64().expect("integer id")).collect()
    }

    /// Runs `ops` in one committed transaction.
    fn commit(&mut self, ops: &[RowOp]) -> Vec<Option<i64>> {
        self.store.begin().expect("begin");
        let keys = self.store.apply_all(&self.schema, ops).unwrap_or_else(|e| panic!("apply {ops:?}: {e}"));
        self.store.commit().expect("commit");
        keys
    }

    /// Runs `ops`, expects them to fail with `kind`, rolls back.
    fn refused(&mut self, ops: &[RowOp], kind: ErrorKind, check: &str) {
        self.store.begin().expect("begin");
        let err = self
            .store
            .apply_all(&self.schema, ops)
            .err()
            .unwrap_or_else(|| panic!("{check}: {ops:?} was accepted"));
        assert_eq!(err.kind, kind, "{check}: {err}");
        self.store.rollback().expect("rollback");
    }

    fn parents(&self, names: &[(i64, &str)]) -> Vec<RowOp> {
        names.iter().map(|&(id, name)| self.insert("parent", vec![v(id), v(name)])).collect()
    }
}

/// Runs every check on stores made by `make` (each check gets a fresh one).
///
/// # Panics
/// On the first check a store fails, naming it.
pub fn run(make: &mut dyn FnMut() -> Box<dyn Store>) {
    type Check = fn(&mut Suite);
    let checks: [(&str, Check); 13] = [
        ("tables are created idempotently", tables_idempotent),
        ("rows round-trip with every type", round_trip),
        ("generated keys are returned and referenced", generated_keys),
        ("a transaction's operations may come in several calls", operations_in_several_calls),
        ("operations handed over are applied as lent ones", operations_handed_over),
        ("inserts laid end to end are applied as row operations", inserts_in_a_batch),
        ("updates write only their columns", updates),
        ("loads by key, by foreign key and by association", loads),
        ("constraint violations have their kind", constraint_kinds),
        ("on delete actions", on_delete_actions),
        ("rollback discards, commit keeps", rollback_discards),
        ("a failed statement leaves no trace after rollback", failed_statement),
        ("misuse is a usage error", misuse),
    ];
    for (name, check) in checks {
        let schema = schema();
        let mut store = make();
        store.create_tables(&schema).unwrap_or_else(|e| panic!("{name}: create_tables: {e}"));
        let mut suite = Suite { schema, store };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&mut suite)));
        if let Err(panic) = result {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("conformance check '{name}' failed: {message}");
        }
    }
}

fn tables_idempotent(s: &mut Suite) {
    s.store.create_tables(&s.schema).expect("second create_tables");
    assert!(s.all("parent").is_empty());
}

fn round_trip(s: &mut Suite) {
    let mut ops = s.parents(&[(1, "a")]);
    let row = vec![v(10), v(1), v(true), v(2.5), v(vec![0u8, 255, 7]), v("héllo \"quoted\"")];
    ops.push(s.insert("child", row.clone()));
    ops.push(s.insert("child", vec![v(11), null(), v(false), null(), null(), null()]));
    s.commit(&ops);
    let rows = s.all("child");
    let expected: Vec<Value> =
        row.into_iter().map(|c| if let Cell::Value(v) = c { v } else { unreachable!() }).collect();
    assert_eq!(&*rows[0], expected.as_slice());
    assert_eq!(rows[1][2], Value::Boolean(false));
    assert_eq!(rows[1][1], Value::Null);
}

fn generated_keys(s: &mut Suite) {
    let ops = vec![
        s.insert("parent", vec![null(), v("x")]),
        s.insert("parent", vec![null(), v("y")]),
        s.insert("child", vec![v(1), Cell::Generated(1), null(), null(), null(), null()]),
    ];
    let keys = s.commit(&ops);
    let (a, b) = (keys[0].expect("generated"), keys[1].expect("generated"));
    assert!(b > a, "keys increase: {keys:?}");
    assert_eq!(keys[2], None, "explicit keys are not reported");
    assert_eq!(s.all("child")[0][1], Value::Integer(b));
    let keys = s.commit(&[s.insert("parent", vec![null(), v("z")])]);
    assert!(keys[0].expect("generated") > b, "a later transaction gets a fresh key");
}

fn operations_in_several_calls(s: &mut Suite) {
    // One transaction, three calls: positions count over all of them, so
    // the third call's child refers to the first call's parent.
    s.store.begin().expect("begin");
    let mut keys = Vec::new();
    let first = [s.insert("parent", vec![null(), v("first")])];
    s.store.apply(&s.schema, &first, &mut keys).expect("first call");
    s.store.apply(&s.schema, &[], &mut keys).expect("an empty call");
    let second = [
        s.insert("parent", vec![null(), v("second")]),
        s.insert("child", vec![v(1), Cell::Generated(0), null(), null(), null(), null()]),
    ];
    s.store.apply(&s.schema, &second, &mut keys).expect("second call");
    s.store.commit().expect("commit");
    assert_eq!(keys.len(), 3, "one key entry per operation over all calls: {keys:?}");
    let first_key = keys[0].expect("generated");
    assert!(keys[1].expect("generated") > first_key);
    assert_eq!(keys[2], None);
    assert_eq!(s.all("child")[0][1], Value::Integer(first_key));
}

fn operations_handed_over(s: &mut Suite) {
    // Every kind of operation, two calls, a key generated in the first and
    // referenced in the second: as `apply` would write them.
    let mut first = vec![
        s.insert("parent", vec![null(), v("given")]),
        s.insert("parent", vec![v(7), v("seven")]),
        s.insert("child", vec![v(1), v(7), v(true), v(0.5), v(vec![1u8, 2]), v("label")]),
    ];
    let mut second = vec![
        s.insert("child", vec![v(2), Cell::Generated(0), null(), null(), null(), v("two")]),
        RowOp::Update {
            table: s.t("child"),
            key_columns: Box::new([0]),
            key: Box::new([v(1)]),
            columns: Box::new([5]),
            values: Box::new([v("relabelled")]),
        },
        s.delete("child", 0, 2),
        s.insert("child", vec![v(3), Cell::Generated(0), null(), null(), null(), null()]),
    ];
    let (first_sent, second_sent) = (first.clone(), second.clone());
    s.store.begin().expect("begin");
    let mut keys = Vec::new();
    s.store.apply_owned(&s.schema, &mut first, &mut keys).expect("first call");
    s.store.apply_owned(&s.schema, &mut second, &mut keys).expect("second call");
    s.store.commit().expect("commit");
    assert!(first.is_empty() || first == first_sent, "handed-over operations are taken or left: {first:?}");
    assert!(second.is_empty() || second == second_sent, "{second:?}");
    let generated = keys[0].expect("generated");
    assert_eq!(keys.len(), 7);
    assert!(keys[1..].iter().all(Option::is_none), "{keys:?}");
    let rows: Vec<Vec<Value>> = s.all("child").iter().map(|r| r.to_vec()).collect();
    assert_eq!(
        rows,
        [
            vec![
                Value::Integer(1),
                Value::Integer(7),
                Value::Boolean(true),
                Value::Float(0.5),
                Value::from(vec![1u8, 2]),
                Value::from("relabelled")
            ],
            vec![
                Value::Integer(3),
                Value::Integer(generated),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null
            ],
        ]
    );
    // A failing handed-over call leaves nothing once rolled back.
    s.store.begin().expect("begin");
    let mut failing = vec![
        s.insert("parent", vec![v(8), v("eight")]),
        s.insert("child", vec![v(4), v(99), null(), null(), null(), null()]),
    ];
    let err = s.store.apply_owned(&s.schema, &mut failing, &mut Vec::new()).expect_err("missing parent");
    assert_eq!(err.kind, ErrorKind::ForeignKey, "{err}");
    s.store.rollback().expect("rollback");
    assert_eq!(s.ids("parent").len(), 2, "the failed call's parent is gone");
}

fn inserts_in_a_batch(s: &mut Suite) {
    let (parent, child, assoc) = (s.t("parent"), s.t("child"), s.t("assoc"));
    s.store.begin().expect("begin");
    let mut keys = Vec::new();
    s.store.apply(&s.schema, &[s.insert("parent", vec![null(), v("before")])], &mut keys).expect("apply");
    // Runs of three tables, a generated key amid given ones (position 2 of
    // the transaction), rows referring to keys generated in this call and
    // the one before, and runs long enough to span several statements.
    let mut batch = InsertBatch::new();
    batch.push(parent, [v(50), v("p50")]);
    batch.push(parent, [null(), v("generated")]);
    batch.push(parent, [v(40), v("p40")]);
    for id in 0..450i64 {
        let parent_cell = if id % 2 == 0 { Cell::Generated(0) } else { Cell::Generated(2) };
        batch.push(child, [v(id), parent_cell, v(id % 3 == 0), null(), null(), v(format!("c{id}"))]);
    }
    for id in (0..450i64).step_by(7) {
        batch.push(assoc, [v(50), v(id)]);
    }
    batch.push(parent, [v(42), v("p42")]);
    let rows = batch.len();
    s.store.apply_inserts(&s.schema, &mut batch, &mut keys).expect("apply_inserts");
    s.store.commit().expect("commit");
    assert_eq!(keys.len(), 1 + rows, "one key entry per row: {} for {rows}", keys.len() - 1);
    let (before, generated) = (keys[0].expect("generated"), keys[2].expect("generated amid given keys"));
    assert!(keys.iter().enumerate().all(|(i, k)| k.is_some() == (i == 0 || i == 2)), "{keys:?}");
    assert_eq!(s.ids("parent").len(), 5);
    let children = s.all("child");
    assert_eq!(children.len(), 450);
    for row in &children {
        let id = row[0].as_i64().expect("id");
        let parent = if id % 2 == 0 { before } else { generated };
        assert_eq!(row[1], Value::Integer(parent), "child {id}");
        assert_eq!(row[5], Value::from(format!("c{id}")), "child {id}");
    }
    assert_eq!(s.all("assoc").len(), 65);

    // A row of the wrong width is refused, a failing row fails its batch,
    // and neither leaves a trace after rollback.
    for (row, kind) in [
        (vec![v(200)], ErrorKind::Usage),
        (vec![v(200), v("p50")], ErrorKind::Unique),
        (vec![v(200), null(), v("extra")], ErrorKind::Usage),
    ] {
        s.store.begin().expect("begin");
        let mut batch = InsertBatch::new();
        batch.push(parent, [v(201), v("fine")]);
        batch.push(parent, row.clone());
        let err = s.store.apply_inserts(&s.schema, &mut batch, &mut Vec::new()).expect_err("refused");
        assert_eq!(err.kind, kind, "{row:?}: {err}");
        s.store.rollback().expect("rollback");
        assert_eq!(s.ids("parent").len(), 5, "{row:?}: nothing of the refused batch remains");
    }
    let mut batch = InsertBatch::new();
    batch.push(parent, [v(300), v("outside")]);
    let err = s.store.apply_inserts(&s.schema, &mut batch, &mut Vec::new()).expect_err("no transaction");
    assert_eq!(err.kind, ErrorKind::Usage, "{err}");
}

fn updates(s: &mut Suite) {
    let mut ops = s.parents(&[(1, "a"), (2, "b")]);
    ops.push(s.insert("child", vec![v(10), v(1), v(true), v(1.0), null(), v("l")]));
    s.commit(&ops);
    let child = s.t("child");
    s.commit(&[RowOp::Update {
        table: child,
        key_columns: Box::new([0]),
        key: Box::new([v(10)]),
        columns: Box::new([1, 5]),
        values: Box::new([v(2), v("m")]),
    }]);
    let row = &s.all("child")[0];
    assert_eq!(
        (row[1].clone(), row[3].clone(), row[5].clone()),
        (Value::Integer(2), Value::Float(1.0), Value::from("m"))
    );
    // A run of updates of one shape (a store may send them as one statement).
    s.commit(&[s.insert("child", vec![v(11), v(1), null(), null(), null(), null()])]);
    let relabel = |id: i64, label: &str, parent: Cell| RowOp::Update {
        table: child,
        key_columns: Box::new([0]),
        key: Box::new([v(id)]),
        columns: Box::new([1, 5]),
        values: Box::new([parent, v(label)]),
    };
    s.commit(&[relabel(10, "x", v(1)), relabel(11, "y", null())]);
    let labels: Vec<(Value, Value)> = s.all("child").iter().map(|r| (r[1].clone(), r[5].clone())).collect();
    assert_eq!(labels, [(Value::Integer(1), Value::from("x")), (Value::Null, Value::from("y"))]);
    // An update of a row that is not there fails: the session's record would be wrong otherwise.
    s.store.begin().expect("begin");
    assert!(s.store.apply_all(&s.schema, &[relabel(10, "z", v(1)), relabel(99, "z", v(1))]).is_err());
    s.store.rollback().expect("rollback");
    assert_eq!(s.all("child")[0][5], Value::from("x"));
}

fn loads(s: &mut Suite) {
    let mut ops = s.parents(&[(1, "a"), (2, "b"), (3, "c")]);
    for (id, parent) in [(10, 1), (11, 1), (12, 2)] {
        ops.push(s.insert("child", vec![v(id), v(parent), null(), null(), null(), null()]));
    }
    for (p, c) in [(1, 10), (2, 10), (2, 11)] {
        ops.push(s.insert("assoc", vec![v(p), v(c)]));
    }
    s.commit(&ops);
    let (parent, child, assoc) = (s.t("parent"), s.t("child"), s.t("assoc"));
    let key = |i: i64| -> Row { Box::new([Value::Integer(i)]) };
    let mut got: Vec<i64> = s
        .store
        .load(&s.schema, parent, &[0], &[key(3), key(1), key(9)])
        .expect("load by key")
        .iter()
        .map(|r| r[0].as_i64().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, [1, 3]);
    let mut kids: Vec<i64> = s
        .store
        .load(&s.schema, child, &[1], &[key(1)])
        .expect("load by fk")
        .iter()
        .map(|r| r[0].as_i64().unwrap())
        .collect();
    kids.sort_unstable();
    assert_eq!(kids, [10, 11]);
    let mut links: Vec<i64> = s
        .store
        .load(&s.schema, assoc, &[0], &[key(2)])
        .expect("load assoc")
        .iter()
        .map(|r| r[1].as_i64().unwrap())
        .collect();
    links.sort_unstable();
    assert_eq!(links, [10, 11]);
    let LinkKeys(near, far) = assoc_keys(&s.schema);
    let mut through: Vec<(i64, i64)> = s
        .store
        .load_through(&s.schema, near, far, &[key(2), key(3)])
        .expect("load through the association table")
        .iter()
        .map(|(k, row)| (k[0].as_i64().unwrap(), row[0].as_i64().unwrap()))
        .collect();
    through.sort_unstable();
    assert_eq!(through, [(2, 10), (2, 11)], "parent 2 reaches children 10 and 11; parent 3 none");
    let many: Vec<Row> = (0..1200).map(key).collect();
    assert_eq!(s.store.load(&s.schema, parent, &[0], &many).expect("load in chunks").len(), 3);
    assert_eq!(s.ids("parent"), [1, 2, 3], "load_all is in key order");
    s.commit(&[s.delete("assoc", 0, 2)]);
    assert_eq!(s.all("assoc").len(), 1, "a delete by one end removes all of that end's association rows");
}

/// The association table's foreign keys: to `parent`, then to `child`.
struct LinkKeys(relgraph_core::ForeignKeyId, relgraph_core::ForeignKeyId);

fn assoc_keys(schema: &Schema) -> LinkKeys {
    let assoc = schema.table(schema.table_id("assoc").expect("suite table"));
    LinkKeys(assoc.foreign_keys[0], assoc.foreign_keys[1])
}

fn constraint_kinds(s: &mut Suite) {
    s.commit(&s.parents(&[(1, "a")]));
    let dup_key = s.parents(&[(1, "b")]);
    s.refused(&dup_key, ErrorKind::Unique, "duplicate primary key");
    let dup_name = s.parents(&[(2, "a")]);
    s.refused(&dup_name, ErrorKind::Unique, "duplicate unique value");
    let no_name = vec![s.insert("parent", vec![v(3), null()])];
    s.refused(&no_name, ErrorKind::NotNull, "NULL in a NOT NULL column");
    let orphan = vec![s.insert("child", vec![v(1), v(99), null(), null(), null(), null()])];
    s.refused(&orphan, ErrorKind::ForeignKey, "reference to a missing row");
    let child = vec![s.insert("child", vec![v(1), v(1), null(), null(), null(), null()])];
    s.commit(&child);
    let referenced = vec![s.delete("parent", 0, 1)];
    s.refused(&referenced, ErrorKind::ForeignKey, "delete of a referenced row");
    let rekey = vec![RowOp::Update {
        table: s.t("parent"),
        key_columns: Box::new([0]),
        key: Box::new([v(1)]),
        columns: Box::new([0]),
        values: Box::new([v(10)]),
    }];
    s.refused(
        &rekey,
        ErrorKind::ForeignKey,
        "a referenced key changed under its references (ON UPDATE NO ACTION)",
    );
}

fn on_delete_actions(s: &mut Suite) {
    let mut ops = s.parents(&[(1, "a")]);
    ops.push(s.insert("kid", vec![v(5), v(1)]));
    ops.push(s.insert("pet", vec![v(6), v(1)]));
    s.commit(&ops);
    s.commit(&[s.delete("parent", 0, 1)]);
    assert!(s.all("kid").is_empty(), "ON DELETE CASCADE removes the kid");
    assert_eq!(s.all("pet")[0][1], Value::Null, "ON DELETE SET NULL clears the owner");
}

fn rollback_discards(s: &mut Suite) {
    s.commit(&s.parents(&[(1, "a")]));
    s.store.begin().expect("begin");
    let ops = s.parents(&[(2, "b")]);
    s.store.apply_all(&s.schema, &ops).expect("apply");
    assert_eq!(s.ids("parent"), [1, 2], "a transaction sees its own writes");
    s.store.rollback().expect("rollback");
    assert_eq!(s.ids("parent"), [1]);
}

fn failed_statement(s: &mut Suite) {
    s.commit(&s.parents(&[(1, "a")]));
    let mut ops = s.parents(&[(2, "b"), (3, "c")]);
    ops.push(s.insert("child", vec![v(1), v(42), null(), null(), null(), null()]));
    s.refused(&ops, ErrorKind::ForeignKey, "a batch failing at its last operation");
    assert_eq!(s.ids("parent"), [1], "nothing of the failed transaction remains");
    s.commit(&s.parents(&[(2, "b")]));
    assert_eq!(s.ids("parent"), [1, 2], "the store is usable after a rollback");
}

fn misuse(s: &mut Suite) {
    assert_eq!(s.store.commit().expect_err("commit without begin").kind, ErrorKind::Usage);
    let ops = s.parents(&[(1, "a")]);
    assert_eq!(
        s.store.apply_all(&s.schema, &ops).expect_err("apply outside a transaction").kind,
        ErrorKind::Usage
    );
    s.store.begin().expect("begin");
    assert_eq!(s.store.begin().expect_err("nested begin").kind, ErrorKind::Usage);
    s.store.rollback().expect("rollback");
    s.store.rollback().expect("a second rollback is a no-op");
    // Operations that do not fit their table are refused as misuse, never a
    // panic or a driver's complaint, and leave nothing behind.
    s.commit(&s.parents(&[(1, "a")]));
    let parent = s.t("parent");
    let malformed = [
        s.insert("parent", vec![v(2)]),
        s.insert("parent", vec![v(2), v("b"), v("extra")]),
        RowOp::Update {
            table: parent,
            key_columns: Box::new([0]),
            key: Box::new([v(1)]),
            columns: Box::new([9]),
            values: Box::new([v("x")]),
        },
        RowOp::Update {
            table: parent,
            key_columns: Box::new([0]),
            key: Box::new([]),
            columns: Box::new([1]),
            values: Box::new([v("x")]),
        },
        RowOp::Delete { table: parent, columns: Box::new([0, 1]), values: Box::new([v(1)]) },
    ];
    for op in malformed {
        let ops = [s.insert("parent", vec![v(3), v("c")]), op];
        s.refused(&ops, ErrorKind::Usage, "a malformed operation");
        assert_eq!(s.all("parent").len(), 1, "{:?}", ops[1]);
    }
}
