//! The seed's many-to-many pattern on SQLite: association rows appear on
//! append and disappear on remove, and `session.delete(child)` removes them
//! with or without a reverse relationship (DESIGN rule 12).

mod common;

use common::sql::Db;
use relgraph::{Column, Entity, Registry, Relationship, Value};
use relgraph_testkit::seed::{SecondaryForm, Sides, many_to_many};

/// Parents 1..=n and children 1..=n with explicit keys, flushed.
fn filled(sides: Sides, name: &str, n: i64) -> (Db, Vec<relgraph::ObjectKey>, Vec<relgraph::ObjectKey>) {
    let mut db = Db::new(many_to_many(sides, SecondaryForm::Name).unwrap(), name);
    let id = |db: &Db, e: &str| db.schema.entity_column(db.schema.entity_id(e).unwrap(), "id").unwrap();
    let (pid, cid) = (id(&db, "Parent"), id(&db, "Child"));
    let mut lefts = Vec::new();
    let mut rights = Vec::new();
    for i in 1..=n {
        let l = db.session.new_with(db.schema.entity_id("Parent").unwrap(), [(pid, Value::from(i))]).unwrap();
        let r = db.session.new_with(db.schema.entity_id("Child").unwrap(), [(cid, Value::from(i))]).unwrap();
        db.session.add(l).unwrap();
        db.session.add(r).unwrap();
        lefts.push(l);
        rights.push(r);
    }
    db.session.flush().unwrap();
    db.statements();
    (db, lefts, rights)
}

#[test]
fn association_rows_follow_append_and_remove() {
    let (mut db, l, r) = filled(Sides::BackPopulates, "m2m_rows", 2);
    assert_eq!(db.query("SELECT count(*) FROM left"), ["2"]);
    let (children, parents) = (db.rel("Parent.children"), db.rel("Child.parents"));
    db.session.append(l[0], children, r[0]).unwrap();
    db.session.append(l[0], children, r[1]).unwrap();
    db.session.append(r[0], parents, l[1]).unwrap();
    db.session.append(r[0], parents, l[0]).unwrap(); // already linked: nothing
    db.session.flush().unwrap();
    assert_eq!(
        db.statements(),
        [r#"INSERT INTO "association" ("left_id", "right_id") VALUES (?, ?), (?, ?), (?, ?)"#]
    );
    assert_eq!(db.query("SELECT left_id, right_id FROM association ORDER BY 1, 2"), ["1|1", "1|2", "2|1"]);

    // myparent.children.remove(somechild): the row goes, with no manual work.
    db.session.remove_member(l[0], children, r[0]).unwrap();
    db.session.flush().unwrap();
    assert_eq!(db.statements(), [r#"DELETE FROM "association" WHERE "left_id" = ? AND "right_id" = ?"#]);
    assert_eq!(db.query("SELECT left_id, right_id FROM association ORDER BY 1, 2"), ["1|2", "2|1"]);

    // Unlink then relink is nothing (rule 20).
    db.session.remove_member(l[0], children, r[1]).unwrap();
    db.session.append(r[1], parents, l[0]).unwrap();
    db.session.flush().unwrap();
    assert!(db.statements().is_empty());
}

#[test]
fn deleting_either_end_deletes_its_association_rows() {
    for sides in [Sides::BackPopulates, Sides::OneWay] {
        let (mut db, l, r) = filled(sides, "m2m_delete", 2);
        let children = db.rel("Parent.children");
        for (a, b) in [(0, 0), (0, 1), (1, 0)] {
            db.session.append(l[a], children, r[b]).unwrap();
        }
        db.session.flush().unwrap();
        db.statements();
        // session.delete(somechild), even where Child has no `parents` (OneWay).
        db.session.delete(r[0]).unwrap();
        db.session.flush().unwrap();
        assert_eq!(
            db.statements(),
            [r#"DELETE FROM "association" WHERE "right_id" = ?"#, r#"DELETE FROM "right" WHERE "id" = ?"#],
            "{sides:?}"
        );
        assert_eq!(db.query("SELECT left_id, right_id FROM association"), ["1|2"], "{sides:?}");
        assert_eq!(db.session.graph().count(l[1], children).unwrap(), 0);
    }
}

#[test]
fn unloaded_association_rows_go_too() {
    let (mut db, l, r) = filled(Sides::OneWay, "m2m_unloaded", 2);
    let children = db.rel("Parent.children");
    db.session.append(l[0], children, r[0]).unwrap();
    db.session.append(l[1], children, r[0]).unwrap();
    db.session.flush().unwrap();
    db.reopen();
    let right = db.get("Child", 1);
    db.session.delete(right).unwrap();
    db.session.flush().unwrap();
    assert_eq!(db.query("SELECT count(*) FROM association"), ["0"]);
}

#[test]
fn passive_deletes_leave_unloaded_children_to_on_delete_cascade() {
    let mut base = Registry::new();
    base.entity(
        Entity::new("Parent", "parent").column(Column::integer("id").primary_key()).relationship(
            "children",
            Relationship::new("Child")
                .back_populates("parent")
                .cascade("all, delete-orphan")
                .passive_deletes(true),
        ),
    )
    .unwrap();
    base.entity(
        Entity::new("Child", "child")
            .column(Column::integer("id").primary_key())
            .column(
                Column::integer("parent_id").foreign_key("parent.id").on_delete(relgraph::OnDelete::Cascade),
            )
            .relationship("parent", Relationship::new("Parent").back_populates("children")),
    )
    .unwrap();
    let mut db = Db::new(base.configure().unwrap(), "passive");
    let p = db.new_obj("Parent");
    let kids: Vec<_> = (0..3).map(|_| db.new_obj("Child")).collect();
    db.session.replace(p, db.rel("Parent.children"), &kids).unwrap();
    db.session.add(p).unwrap();
    db.session.flush().unwrap();

    db.reopen();
    let p = db.get("Parent", 1);
    db.statements();
    db.session.delete(p).unwrap();
    db.session.flush().unwrap();
    assert_eq!(
        db.statements(),
        [r#"DELETE FROM "parent" WHERE "id" = ?"#],
        "children are neither loaded nor deleted by us"
    );
    assert_eq!(
        db.query("SELECT count(*) FROM child"),
        ["0"],
        "the database's ON DELETE CASCADE removed them"
    );

    // Without passive_deletes the children are loaded and deleted by the session.
    let mut db2 = Db::new(relgraph_testkit::workloads::schema(), "not_passive");
    let p = db2.new_obj("Parent");
    let kids: Vec<_> = (0..2).map(|_| db2.new_obj("Child")).collect();
    db2.session.replace(p, db2.rel("Parent.children"), &kids).unwrap();
    db2.session.add(p).unwrap();
    db2.session.flush().unwrap();
    db2.reopen();
    let p = db2.get("Parent", 1);
    db2.statements();
    db2.session.delete(p).unwrap();
    db2.session.flush().unwrap();
    let statements = db2.statements();
    assert!(
        statements[0].starts_with(r#"SELECT "id", "parent_id", "name", "value" FROM "child""#),
        "{statements:?}"
    );
    assert_eq!(
        statements[1..],
        [r#"DELETE FROM "child" WHERE "id" IN (?, ?)"#, r#"DELETE FROM "parent" WHERE "id" = ?"#],
        "the children's deletes go as one statement"
    );
}
