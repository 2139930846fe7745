//! DESIGN.md rules of the flush on SQLite: one-to-one replacement, self-
//! referential order and cycles, links out of the session, NOT NULL
//! orphans, re-used keys, and the dry run.

mod common;

use common::sql::Db;
use relgraph::{Column, Entity, ErrorKind, FlushError, Registry, Relationship, State, Value};

fn one_to_one_orphans() -> std::sync::Arc<relgraph::Schema> {
    let mut base = Registry::new();
    base.entity(Entity::new("Parent", "parent").column(Column::integer("id").primary_key()).relationship(
        "child",
        Relationship::new("Child").uselist(false).back_populates("parent").cascade("all, delete-orphan"),
    ))
    .unwrap();
    base.entity(
        Entity::new("Child", "child")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("parent_id").unique().foreign_key("parent.id"))
            .relationship("parent", Relationship::new("Parent").back_populates("child")),
    )
    .unwrap();
    base.configure().unwrap()
}

#[test]
fn one_to_one_replacement_frees_the_unique_value_first() {
    let mut db = Db::new(one_to_one_orphans(), "o2o");
    let (p, c1) = (db.new_obj("Parent"), db.new_obj("Child"));
    let child = db.rel("Parent.child");
    db.session.set(p, child, Some(c1)).unwrap();
    db.session.add(p).unwrap();
    db.session.flush().unwrap();
    db.statements();
    // The new child takes parent_id = 1, which the old one holds under a unique constraint (rule 23).
    let c2 = db.new_obj("Child");
    db.session.set(p, child, Some(c2)).unwrap();
    assert_eq!(db.session.graph().scalar(c1, db.rel("Child.parent")).unwrap(), None, "rule 17");
    db.session.flush().unwrap();
    assert_eq!(
        db.statements(),
        [r#"DELETE FROM "child" WHERE "id" = ?"#, r#"INSERT INTO "child" ("parent_id") VALUES (?)"#]
    );
    let id = db.schema.entity_column(db.schema.entity_id("Child").unwrap(), "id").unwrap();
    let new_id = db.session.graph().value(c2, id).unwrap().as_i64().unwrap();
    assert_eq!(db.query("SELECT id, parent_id FROM child"), [format!("{new_id}|1")]);
}

#[test]
fn self_referential_rows_insert_parents_first_and_cycles_break() {
    let mut db = Db::new(relgraph_testkit::seed::adjacency_list().unwrap(), "selfref");
    let [leaf, mid, root] = std::array::from_fn(|_| db.new_obj("Node"));
    let parent = db.rel("Node.parent");
    db.session.set(leaf, parent, Some(mid)).unwrap();
    db.session.set(mid, parent, Some(root)).unwrap();
    db.session.add(leaf).unwrap();
    db.session.add(mid).unwrap();
    db.session.add(root).unwrap();
    db.session.flush().unwrap();
    // Created leaf first, but inserted root first: keys 1 = root.
    assert_eq!(db.query("SELECT id, parent_id FROM node ORDER BY id"), ["1|NULL", "2|1", "3|2"]);

    // A cycle through a nullable key: insert with NULL, then UPDATE (no post_update needed).
    let (a, b) = (db.new_obj("Node"), db.new_obj("Node"));
    db.session.set(a, parent, Some(b)).unwrap();
    db.session.set(b, parent, Some(a)).unwrap();
    db.session.add(a).unwrap();
    db.statements();
    db.session.flush().unwrap();
    let statements = db.statements();
    assert_eq!(statements.iter().filter(|s| s.starts_with("INSERT")).count(), 2, "{statements:?}");
    assert_eq!(statements.iter().filter(|s| s.starts_with("UPDATE")).count(), 1, "{statements:?}");
    assert_eq!(db.query("SELECT id, parent_id FROM node WHERE id > 3 ORDER BY id"), ["4|5", "5|4"]);
}

#[test]
fn a_cycle_through_not_null_keys_fails_before_any_sql() {
    let mut base = Registry::new();
    base.entity(
        Entity::new("Node", "node")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("parent_id").not_null().foreign_key("node.id"))
            .relationship("parent", Relationship::new("Node").remote_side(["id"])),
    )
    .unwrap();
    let mut db = Db::new(base.configure().unwrap(), "notnullcycle");
    let (a, b) = (db.new_obj("Node"), db.new_obj("Node"));
    let parent = db.rel("Node.parent");
    db.session.set(a, parent, Some(b)).unwrap();
    db.session.set(b, parent, Some(a)).unwrap();
    db.session.add(a).unwrap();
    db.session.add(b).unwrap();
    db.statements();
    let err = db.session.flush().unwrap_err();
    assert!(matches!(err, FlushError::Cycle { .. }), "{err}");
    assert!(db.statements().is_empty(), "nothing was sent");
}

#[test]
fn a_link_out_of_the_session_fails_naming_both_ends() {
    let mut base = Registry::new();
    base.entity(
        Entity::new("Parent", "parent")
            .column(Column::integer("id").primary_key())
            .relationship("children", Relationship::new("Child").back_populates("parent").cascade("merge")),
    )
    .unwrap();
    base.entity(
        Entity::new("Child", "child")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("parent_id").foreign_key("parent.id"))
            .relationship("parent", Relationship::new("Parent").back_populates("children").cascade("merge")),
    )
    .unwrap();
    let mut db = Db::new(base.configure().unwrap(), "outside");
    let (p, c) = (db.new_obj("Parent"), db.new_obj("Child"));
    db.session.append(p, db.rel("Parent.children"), c).unwrap();
    db.session.add(p).unwrap();
    let err = db.session.flush().unwrap_err();
    assert_eq!(
        err.to_string(),
        "Parent(new #0) is linked through Parent.children to Child(new #1), which is not in the session and no \
         save-update cascade brings it in; add() it or unlink it"
    );
    db.session.add(c).unwrap();
    db.session.flush().unwrap();
    assert_eq!(db.query("SELECT parent_id FROM child"), ["1"]);
}

#[test]
fn deleting_a_parent_of_not_null_children_is_refused_before_sql() {
    let mut base = Registry::new();
    base.entity(
        Entity::new("Parent", "parent")
            .column(Column::integer("id").primary_key())
            .relationship("children", Relationship::new("Child").backref("parent")),
    )
    .unwrap();
    base.entity(
        Entity::new("Child", "child")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("parent_id").not_null().foreign_key("parent.id")),
    )
    .unwrap();
    let mut db = Db::new(base.configure().unwrap(), "notnullorphan");
    let (p, c) = (db.new_obj("Parent"), db.new_obj("Child"));
    db.session.append(p, db.rel("Parent.children"), c).unwrap();
    db.session.add(p).unwrap();
    db.session.flush().unwrap();
    db.statements();
    db.session.delete(p).unwrap();
    let err = db.session.flush().unwrap_err();
    assert!(matches!(err, FlushError::NotNullOrphan { .. }));
    assert!(err.to_string().contains("child.parent_id"), "{err}");
    assert!(db.statements().is_empty());
    // Fix it: delete the child too.
    db.session.delete(c).unwrap();
    db.session.flush().unwrap();
    assert_eq!(db.query("SELECT count(*) FROM parent"), ["0"]);
}

#[test]
fn a_delete_and_reinsert_of_one_key_is_an_update() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "rekey");
    let parent = db.schema.entity_id("Parent").unwrap();
    let id = db.schema.entity_column(parent, "id").unwrap();
    let name = db.schema.entity_column(parent, "name").unwrap();
    let p = db.session.new_with(parent, [(id, Value::from(7)), (name, Value::from("old"))]).unwrap();
    db.session.add(p).unwrap();
    db.session.flush().unwrap();
    db.statements();
    db.session.delete(p).unwrap();
    let q = db.session.new_with(parent, [(id, Value::from(7)), (name, Value::from("new"))]).unwrap();
    db.session.add(q).unwrap();
    db.session.flush().unwrap();
    assert_eq!(db.statements(), [r#"UPDATE "parent" SET "name" = ? WHERE "id" = ?"#]);
    assert_eq!(db.query("SELECT id, name FROM parent"), ["7|new"]);
    assert_eq!(db.session.state(q), State::Persistent);
    assert_eq!(db.get("Parent", 7), q);
}

#[test]
fn constraint_failures_keep_every_pending_change() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "constraint");
    let parent = db.schema.entity_id("Parent").unwrap();
    let id = db.schema.entity_column(parent, "id").unwrap();
    let a = db.session.new_with(parent, [(id, Value::from(1))]).unwrap();
    db.session.add(a).unwrap();
    db.session.flush().unwrap();
    // A row written behind the session's back takes key 2.
    rusqlite::Connection::open(&db.path).unwrap().execute("INSERT INTO parent (id) VALUES (2)", []).unwrap();
    let b = db.session.new_with(parent, [(id, Value::from(2))]).unwrap();
    let c = db.new_obj("Child");
    db.session.append(b, db.rel("Parent.children"), c).unwrap();
    db.session.add(b).unwrap();
    let err = db.session.flush().unwrap_err();
    assert_eq!(err.store_kind(), Some(ErrorKind::Unique), "{err}");
    assert_eq!(db.session.state(b), State::Pending);
    assert_eq!(
        db.session
            .graph()
            .value(c, db.schema.entity_column(db.schema.entity_id("Child").unwrap(), "id").unwrap())
            .unwrap(),
        &Value::Null,
        "no generated key left behind"
    );
    // Fix the cause and flush again.
    db.session.set_value(b, id, 3).unwrap();
    db.session.flush().unwrap();
    assert_eq!(db.query("SELECT id, parent_id FROM child"), ["1|3"]);
}

#[test]
fn the_dry_run_lists_operations_and_reasons_without_sending() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "plan");
    let (p, c) = (db.new_obj("Parent"), db.new_obj("Child"));
    db.session.append(p, db.rel("Parent.children"), c).unwrap();
    db.session.add(p).unwrap();
    db.statements();
    let plan = db.session.plan().unwrap();
    assert!(db.statements().is_empty(), "a dry run sends nothing");
    let text = plan.to_string();
    assert_eq!(plan.ops.len(), 2, "{text}");
    assert!(text.contains("INSERT parent: Parent(new #0) is new"), "{text}");
    assert!(text.contains("INSERT child: Child(new #1) is new (after #0)"), "{text}");
    // The same plan twice: deterministic.
    assert_eq!(db.session.plan().unwrap().to_string(), text);
}

#[test]
fn two_objects_claiming_one_key_fail_before_any_sql() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "dupkey");
    let parent = db.schema.entity_id("Parent").unwrap();
    let id = db.schema.entity_column(parent, "id").unwrap();
    let with_id = |db: &mut Db, i: i64| {
        let p = db.session.new_with(parent, [(id, Value::from(i))]).unwrap();
        db.session.add(p).unwrap();
        p
    };
    // Two new objects with one key.
    let (a, b) = (with_id(&mut db, 1), with_id(&mut db, 1));
    db.statements();
    let err = db.session.flush().unwrap_err();
    assert!(matches!(err, FlushError::DuplicateKey { .. }), "{err}");
    assert!(db.statements().is_empty());
    db.session.delete(b).unwrap();
    db.session.flush().unwrap();
    // A new object with the key of a live persisted one.
    let c = with_id(&mut db, 1);
    let err = db.session.flush().unwrap_err();
    assert_eq!(err.to_string(), "Parent(id=1) and Parent(id=1) have the same primary key in table 'parent'");
    db.session.delete(c).unwrap();
    // After a delete, one new object takes the key (an UPDATE); a second one is a duplicate of it.
    db.session.delete(a).unwrap();
    let (d, e) = (with_id(&mut db, 1), with_id(&mut db, 1));
    let err = db.session.flush().unwrap_err();
    let FlushError::DuplicateKey { first, second, .. } = &err else { panic!("{err}") };
    assert_eq!((first.as_str(), second.as_str()), ("Parent(id=1)", "Parent(id=1)"));
    assert_eq!(db.session.state(d), State::Pending, "nothing pending was lost");
    db.session.delete(e).unwrap();
    db.session.flush().unwrap();
    assert_eq!(db.session.state(d), State::Persistent);
    assert_eq!(db.query("SELECT count(*) FROM parent"), ["1"]);
}
