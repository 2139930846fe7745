//! Session behaviours on SQLite: rollback, save-update over several links, expunge, only changed columns,
//! delete cascades over many-to-many (rule 24), `passive_deletes="all"`, a
//! declared `post_update`.

mod common;

use common::sql::Db;
use relgraph::{Column, Entity, OnDelete, PassiveDeletes, Registry, Relationship, State, Table, Value};

#[test]
fn rollback_restores_values_links_and_states() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "rollback");
    let parent = db.schema.entity_id("Parent").unwrap();
    let name = db.schema.entity_column(parent, "name").unwrap();
    let (p1, p2, c) = (db.new_obj("Parent"), db.new_obj("Parent"), db.new_obj("Child"));
    let (children, child_parent) = (db.rel("Parent.children"), db.rel("Child.parent"));
    db.session.set_value(p1, name, "one").unwrap();
    db.session.append(p1, children, c).unwrap();
    db.session.add(p1).unwrap();
    db.session.add(p2).unwrap();
    db.session.flush().unwrap();

    db.session.set_value(p1, name, "changed").unwrap();
    db.session.set(c, child_parent, Some(p2)).unwrap();
    db.session.delete(p2).unwrap();
    let fresh = db.new_obj("Parent");
    db.session.add(fresh).unwrap();
    db.session.rollback();
    assert_eq!(db.session.value(p1, name).unwrap(), &Value::from("one"));
    assert_eq!(db.session.graph().scalar(c, child_parent).unwrap(), Some(p1));
    assert_eq!(db.session.state(p2), State::Persistent);
    assert_eq!(db.session.state(fresh), State::Transient);
    db.statements();
    db.session.flush().unwrap();
    assert!(db.statements().is_empty(), "nothing is left to write after a rollback");
}

/// save-update reaches objects several links away: a new child added to
/// the session takes its new parent in with it, and the parent takes its
/// other new child, reached only through the parent's collection.
#[test]
fn save_update_reaches_across_several_links() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "save_update_hops");
    let (children, child_parent) = (db.rel("Parent.children"), db.rel("Child.parent"));
    let (parent, first, second) = (db.new_obj("Parent"), db.new_obj("Child"), db.new_obj("Child"));
    db.session.append(parent, children, second).unwrap();
    db.session.set(first, child_parent, Some(parent)).unwrap();
    db.session.add(first).unwrap();
    db.session.flush().unwrap();
    for o in [parent, first, second] {
        assert_eq!(db.session.state(o), State::Persistent, "{o:?}");
    }
    assert_eq!(
        db.query("SELECT count(*), count(DISTINCT parent_id), min(parent_id IS NOT NULL) FROM child"),
        ["2|1|1"]
    );
    assert_eq!(db.query("SELECT count(*) FROM parent"), ["1"]);
}

#[test]
fn expunged_objects_are_left_alone() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "expunge");
    let parent = db.schema.entity_id("Parent").unwrap();
    let name = db.schema.entity_column(parent, "name").unwrap();
    let p = db.new_obj("Parent");
    db.session.add(p).unwrap();
    db.session.flush().unwrap();
    db.session.expunge(p).unwrap();
    assert_eq!(db.session.state(p), State::Detached);
    db.session.set_value(p, name, "ignored").unwrap();
    db.statements();
    db.session.flush().unwrap();
    assert!(db.statements().is_empty());
    // A second get is a new object: the identity map forgot the expunged one.
    let again = db.get("Parent", 1);
    assert_ne!(again, p);
    // One object per row: the expunged object cannot come back while the
    // new one holds its key, and nothing changed by trying.
    let refused = db.session.add(p).unwrap_err();
    assert!(matches!(refused, relgraph::SessionError::IdentityTaken { .. }), "{refused}");
    assert_eq!(db.session.state(p), State::Detached);
    assert_eq!(db.get("Parent", 1), again);
    db.session.expunge(again).unwrap();
    db.session.add(p).unwrap();
    assert_eq!(db.session.state(p), State::Persistent);
    assert_eq!(db.get("Parent", 1), p, "the re-attached object is the one a get finds");
    db.session.flush().unwrap();
    assert_eq!(
        db.query("SELECT name FROM parent WHERE id = 1"),
        ["ignored"],
        "its change made while detached is written once it is back"
    );
}

#[test]
fn a_rollback_leaves_a_detached_objects_changes_alone() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "expunge-rollback");
    let parent = db.schema.entity_id("Parent").unwrap();
    let name = db.schema.entity_column(parent, "name").unwrap();
    let (p, other) = (db.new_obj("Parent"), db.new_obj("Parent"));
    db.session.add(p).unwrap();
    db.session.add(other).unwrap();
    db.session.flush().unwrap();
    db.session.expunge(p).unwrap();
    db.session.set_value(p, name, "made while detached").unwrap();
    db.session.set_value(other, name, "rolled back").unwrap();
    db.session.rollback();
    assert_eq!(db.session.value(other, name).unwrap(), &Value::Null, "the session's own change goes");
    assert_eq!(db.session.value(p, name).unwrap(), &Value::from("made while detached"));
    db.session.add(p).unwrap();
    db.session.flush().unwrap();
    assert_eq!(db.query("SELECT name FROM parent ORDER BY id"), ["made while detached", "NULL"]);
}

#[test]
fn expunge_cascades_where_the_relationship_says_so() {
    // Parent.children cascades "all, delete-orphan" (expunge included);
    // Child.parent has the default "save-update, merge" (no expunge).
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "expunge-cascade");
    let (p, c1, c2) = (db.new_obj("Parent"), db.new_obj("Child"), db.new_obj("Child"));
    let children = db.rel("Parent.children");
    db.session.append(p, children, c1).unwrap();
    db.session.append(p, children, c2).unwrap();
    db.session.add(p).unwrap();
    db.session.flush().unwrap();

    db.session.expunge(c1).unwrap();
    assert_eq!(db.session.state(c1), State::Detached);
    assert_eq!(db.session.state(p), State::Persistent, "no expunge cascade from child to parent");
    db.session.expunge(p).unwrap();
    assert_eq!(db.session.state(p), State::Detached);
    assert_eq!(db.session.state(c2), State::Detached, "the parent's expunge cascades to its children");
    // Nothing of theirs is written any more, and a get loads new objects.
    db.statements();
    db.session.flush().unwrap();
    assert!(db.statements().is_empty());
    assert_ne!(db.get("Child", 2), c2);

    // Pending objects expunged go back to transient, and nothing of theirs is inserted.
    let (p, c) = (db.new_obj("Parent"), db.new_obj("Child"));
    db.session.append(p, children, c).unwrap();
    db.session.add(p).unwrap();
    db.session.expunge(p).unwrap();
    assert_eq!((db.session.state(p), db.session.state(c)), (State::Transient, State::Transient));
    db.statements();
    db.session.flush().unwrap();
    assert!(db.statements().is_empty());

    // Without the cascade, children stay.
    let mut db = Db::new(
        relgraph_testkit::seed::one_to_many(relgraph_testkit::seed::Sides::BackPopulates).unwrap(),
        "expunge-plain",
    );
    let (p, c) = (db.new_obj("Parent"), db.new_obj("Child"));
    let children = db.rel("Parent.children");
    db.session.append(p, children, c).unwrap();
    db.session.add(p).unwrap();
    db.session.flush().unwrap();
    db.session.expunge(p).unwrap();
    assert_eq!(db.session.state(c), State::Persistent);
}

#[test]
fn a_foreign_key_to_a_unique_column_loads_lazily_from_both_sides() {
    // child.parent_code references parent.code, unique but not the primary key.
    let mut base = Registry::new();
    base.entity(
        Entity::new("Parent", "parent")
            .column(Column::integer("id").primary_key())
            .column(Column::text("code").unique().not_null())
            .relationship("children", Relationship::new("Child").back_populates("parent")),
    )
    .unwrap();
    base.entity(
        Entity::new("Child", "child")
            .column(Column::integer("id").primary_key())
            .column(Column::text("parent_code").foreign_key("parent.code"))
            .relationship("parent", Relationship::new("Parent").back_populates("children")),
    )
    .unwrap();
    let mut db = Db::new(base.configure().unwrap(), "unique-fk");
    let code = db.schema.entity_column(db.schema.entity_id("Parent").unwrap(), "code").unwrap();
    // Parent 1 holds code "B" and parent 2 code "A": a lookup of the code as
    // if it were a primary key would find the wrong parent or none.
    let (p1, p2, c) = (db.new_obj("Parent"), db.new_obj("Parent"), db.new_obj("Child"));
    db.session.set_value(p1, code, "B").unwrap();
    db.session.set_value(p2, code, "A").unwrap();
    db.session.set(c, db.rel("Child.parent"), Some(p2)).unwrap();
    db.session.add(p1).unwrap();
    db.session.add(p2).unwrap();
    db.session.flush().unwrap();
    assert_eq!(db.query("SELECT id, parent_code FROM child"), ["1|A"]);

    db.reopen();
    let child = db.get("Child", 1);
    let parent = db.session.scalar(child, db.rel("Child.parent")).unwrap().expect("loaded on first read");
    assert_eq!(db.session.value(parent, code).unwrap(), &Value::from("A"));
    db.reopen();
    let parent = db.get("Parent", 2);
    let children = db.session.members(parent, db.rel("Parent.children")).unwrap();
    assert_eq!(children.len(), 1);
}

#[test]
fn deleted_rows_referencing_each_other_by_a_unique_column_go_children_first() {
    // node.parent_code references node.code: unique, not the primary key. The
    // root is older than its child, so only the foreign key can put the
    // child's DELETE first; SQLite checks the key at each statement.
    let mut base = Registry::new();
    base.entity(
        Entity::new("Node", "node")
            .column(Column::integer("id").primary_key())
            .column(Column::text("code").unique().not_null())
            .column(Column::text("parent_code").foreign_key("node.code"))
            .relationship("children", Relationship::new("Node").back_populates("parent").cascade("all"))
            .relationship(
                "parent",
                Relationship::new("Node").back_populates("children").remote_side(["code"]),
            ),
    )
    .unwrap();
    let mut db = Db::new(base.configure().unwrap(), "unique-fk-delete");
    let code = db.schema.entity_column(db.schema.entity_id("Node").unwrap(), "code").unwrap();
    let (root, child) = (db.new_obj("Node"), db.new_obj("Node"));
    db.session.set_value(root, code, "r").unwrap();
    db.session.set_value(child, code, "c").unwrap();
    db.session.append(root, db.rel("Node.children"), child).unwrap();
    db.session.add(root).unwrap();
    db.session.flush().unwrap();
    assert_eq!(db.query("SELECT id, code, parent_code FROM node ORDER BY id"), ["1|r|NULL", "2|c|r"]);

    db.reopen();
    let root = db.get("Node", 1);
    db.session.delete(root).unwrap();
    // SQLite may batch both into one statement; the plan shows the order
    // that stores checking per row (the snapshot store) rely on.
    let plan = db.session.plan().unwrap();
    let deleted: Vec<String> = plan
        .ops
        .iter()
        .filter_map(|p| match &p.op {
            relgraph::RowOp::Delete { values, .. } => Some(format!("{values:?}")),
            _ => None,
        })
        .collect();
    assert_eq!(deleted.len(), 2, "{plan}");
    assert!(deleted[0].contains("Integer(2)") && deleted[1].contains("Integer(1)"), "child first:\n{plan}");
    db.session.flush().unwrap();
    assert!(db.query("SELECT id FROM node").is_empty());
}

#[test]
fn only_changed_columns_are_updated() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "changed");
    let child = db.schema.entity_id("Child").unwrap();
    let (name, value) =
        (db.schema.entity_column(child, "name").unwrap(), db.schema.entity_column(child, "value").unwrap());
    let c = db.new_obj("Child");
    db.session.set_value(c, name, "a").unwrap();
    db.session.add(c).unwrap();
    db.session.flush().unwrap();
    db.statements();
    db.session.set_value(c, value, 5).unwrap();
    db.session.set_value(c, name, "a").unwrap(); // written, but the same value
    db.session.flush().unwrap();
    assert_eq!(db.statements(), [r#"UPDATE "child" SET "value" = ? WHERE "id" = ?"#]);
}

#[test]
fn delete_cascade_over_many_to_many_deletes_shared_far_objects() {
    let mut base = Registry::new();
    let assoc = base
        .table(
            Table::new("association")
                .column(Column::integer("left_id").foreign_key("left.id"))
                .column(Column::integer("right_id").foreign_key("right.id")),
        )
        .unwrap();
    base.entity(
        Entity::new("Left", "left").column(Column::integer("id").primary_key()).relationship(
            "rights",
            Relationship::new("Right").secondary(assoc).cascade("all").backref("lefts"),
        ),
    )
    .unwrap();
    base.entity(Entity::new("Right", "right").column(Column::integer("id").primary_key())).unwrap();
    let mut db = Db::new(base.configure().unwrap(), "m2m_cascade");
    let (l1, l2, r) = (db.new_obj("Left"), db.new_obj("Left"), db.new_obj("Right"));
    let rights = db.rel("Left.rights");
    db.session.append(l1, rights, r).unwrap();
    db.session.append(l2, rights, r).unwrap();
    db.session.add(l1).unwrap();
    db.session.add(l2).unwrap();
    db.session.flush().unwrap();
    db.session.delete(l1).unwrap();
    db.session.flush().unwrap();
    // Rule 24, as in SQLAlchemy: the shared right goes, and so do all its association rows.
    assert_eq!(db.query("SELECT count(*) FROM right"), ["0"]);
    assert_eq!(db.query("SELECT count(*) FROM association"), ["0"]);
    assert_eq!(db.query("SELECT id FROM left"), ["2"]);
    assert_eq!(db.session.graph().count(l2, rights).unwrap(), 0);
}

#[test]
fn passive_deletes_all_leaves_loaded_children_to_the_database() {
    let mut base = Registry::new();
    base.entity(Entity::new("Parent", "parent").column(Column::integer("id").primary_key()).relationship(
        "children",
        Relationship::new("Child").back_populates("parent").passive_deletes(PassiveDeletes::All),
    ))
    .unwrap();
    base.entity(
        Entity::new("Child", "child")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("parent_id").foreign_key("parent.id").on_delete(OnDelete::Cascade))
            .relationship("parent", Relationship::new("Parent").back_populates("children")),
    )
    .unwrap();
    let mut db = Db::new(base.configure().unwrap(), "passive_all");
    let (p, c) = (db.new_obj("Parent"), db.new_obj("Child"));
    db.session.append(p, db.rel("Parent.children"), c).unwrap();
    db.session.add(p).unwrap();
    db.session.flush().unwrap();
    db.statements();
    db.session.delete(p).unwrap();
    db.session.flush().unwrap();
    assert_eq!(
        db.statements(),
        [r#"DELETE FROM "parent" WHERE "id" = ?"#],
        "the loaded child's key is not touched"
    );
    assert_eq!(db.query("SELECT count(*) FROM child"), ["0"], "ON DELETE CASCADE removed it");
}

#[test]
fn declared_post_update_writes_the_key_after_both_rows() {
    let mut base = Registry::new();
    base.entity(
        Entity::new("Widget", "widget")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("favorite_id").foreign_key("entry.id"))
            .relationship("favorite", Relationship::new("Entry").post_update(true)),
    )
    .unwrap();
    base.entity(Entity::new("Entry", "entry").column(Column::integer("id").primary_key())).unwrap();
    let mut db = Db::new(base.configure().unwrap(), "post_update");
    let (w, e) = (db.new_obj("Widget"), db.new_obj("Entry"));
    db.session.set(w, db.rel("Widget.favorite"), Some(e)).unwrap();
    db.session.add(w).unwrap(); // the entry follows through save-update
    db.statements();
    db.session.flush().unwrap();
    let statements = db.statements();
    assert_eq!(statements.len(), 3, "{statements:?}");
    assert!(statements[2].starts_with(r#"UPDATE "widget" SET "favorite_id""#), "{statements:?}");
    assert_eq!(db.query("SELECT favorite_id FROM widget"), ["1"]);
}

#[test]
fn created_tables_index_every_foreign_key_column() {
    let db = Db::new(relgraph_testkit::workloads::schema(), "indexes");
    let indexes = db.query(
        "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_%' ORDER BY 1, 2",
    );
    assert_eq!(
        indexes,
        [
            "association|ix_association_left_id",
            "association|ix_association_right_id",
            "child|ix_child_parent_id"
        ]
    );
    let fks = db.query("SELECT \"from\", \"table\" FROM pragma_foreign_key_list('child')");
    assert_eq!(fks, ["parent_id|parent"]);
    assert_eq!(
        db.query("PRAGMA foreign_keys"),
        ["1"],
        "a fresh connection has them on in the bundled build too"
    );
}
