//! The seed's one-to-many pattern flushed to SQLite: the statements sent and
//! the rows read back with plain SQL.

mod common;

use common::sql::Db;
use relgraph::State;
use relgraph_testkit::seed::{Sides, one_to_many};

#[test]
fn children_become_rows_with_their_parents_generated_keys() {
    let mut db = Db::new(one_to_many(Sides::BackPopulates).unwrap(), "o2m_insert");
    let (p, c1, c2) = (db.new_obj("Parent"), db.new_obj("Child"), db.new_obj("Child"));
    let children = db.rel("Parent.children");
    db.session.append(p, children, c1).unwrap();
    db.session.append(p, children, c2).unwrap();
    db.session.add(p).unwrap();
    assert_eq!(db.session.state(c1), State::Transient, "save-update is evaluated at flush");
    let stats = db.session.flush().unwrap();
    assert_eq!(stats.inserts, 3);
    assert_eq!(
        db.statements(),
        [
            r#"INSERT INTO "parent" DEFAULT VALUES"#,
            // Generated keys are read back row by row; explicit keys batch (see the many-to-many test).
            r#"INSERT INTO "child" ("parent_id") VALUES (?)"#,
            r#"INSERT INTO "child" ("parent_id") VALUES (?)"#,
        ]
    );
    assert_eq!(db.query("SELECT id FROM parent"), ["1"]);
    assert_eq!(db.query("SELECT id, parent_id FROM child ORDER BY id"), ["1|1", "2|1"]);
    assert_eq!(db.session.state(c1), State::Persistent);
    // Nothing to do sends nothing.
    assert_eq!(db.session.flush().unwrap(), Default::default());
    assert!(db.statements().is_empty());
}

#[test]
fn moving_and_deleting_write_updates_in_dependency_order() {
    let mut db = Db::new(one_to_many(Sides::BackPopulates).unwrap(), "o2m_move");
    let (p1, p2, c) = (db.new_obj("Parent"), db.new_obj("Parent"), db.new_obj("Child"));
    let (children, parent) = (db.rel("Parent.children"), db.rel("Child.parent"));
    db.session.append(p1, children, c).unwrap();
    db.session.add(p1).unwrap();
    db.session.add(p2).unwrap();
    db.session.flush().unwrap();
    db.statements();

    db.session.set(c, parent, Some(p2)).unwrap();
    db.session.flush().unwrap();
    assert_eq!(db.statements(), [r#"UPDATE "child" SET "parent_id" = ? WHERE "id" = ?"#]);
    assert_eq!(db.query("SELECT parent_id FROM child"), ["2"]);

    // Deleting a parent without a delete cascade nulls its children first (rule 11).
    db.session.delete(p2).unwrap();
    assert_eq!(
        db.session.graph().members(p2, children).unwrap().count(),
        1,
        "visible until the flush commits"
    );
    db.session.flush().unwrap();
    assert_eq!(
        db.statements(),
        [r#"UPDATE "child" SET "parent_id" = ? WHERE "id" = ?"#, r#"DELETE FROM "parent" WHERE "id" = ?"#]
    );
    assert_eq!(db.query("SELECT id, parent_id FROM child"), ["1|NULL"]);
    assert_eq!(
        db.session.graph().scalar(c, parent).unwrap(),
        None,
        "gone from memory after the commit (rule 18)"
    );
    assert_eq!(db.session.state(p2), State::Detached);
}

#[test]
fn lazy_loading_in_a_fresh_session() {
    let mut db = Db::new(one_to_many(Sides::BackPopulates).unwrap(), "o2m_lazy");
    let p = db.new_obj("Parent");
    let kids: Vec<_> = (0..3).map(|_| db.new_obj("Child")).collect();
    db.session.replace(p, db.rel("Parent.children"), &kids).unwrap();
    db.session.add(p).unwrap();
    db.session.flush().unwrap();

    db.reopen();
    let p = db.get("Parent", 1);
    db.statements();
    let children = db.session.members(p, db.rel("Parent.children")).unwrap();
    assert_eq!(children.len(), 3);
    assert_eq!(db.statements(), [r#"SELECT "id", "parent_id" FROM "child" WHERE "parent_id" IN (?)"#]);
    // The identity map: one object per row.
    let c = db.get("Child", 2);
    assert!(children.contains(&c));
    assert_eq!(db.session.scalar(c, db.rel("Child.parent")).unwrap(), Some(p));
    assert!(db.statements().is_empty(), "already in the identity map and loaded");
}

#[test]
fn delete_orphan_and_cascade() {
    use relgraph::{Column, Entity, Registry, Relationship};
    let mut base = Registry::new();
    base.entity(Entity::new("Parent", "parent").column(Column::integer("id").primary_key()).relationship(
        "children",
        Relationship::new("Child").back_populates("parent").cascade("all, delete-orphan"),
    ))
    .unwrap();
    base.entity(
        Entity::new("Child", "child")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("parent_id").foreign_key("parent.id"))
            .relationship("parent", Relationship::new("Parent").back_populates("children")),
    )
    .unwrap();
    let mut db = Db::new(base.configure().unwrap(), "o2m_orphan");
    let (p1, p2) = (db.new_obj("Parent"), db.new_obj("Parent"));
    let kids: Vec<_> = (0..4).map(|_| db.new_obj("Child")).collect();
    let children = db.rel("Parent.children");
    db.session.replace(p1, children, &kids[..3]).unwrap();
    db.session.add(p1).unwrap();
    db.session.add(p2).unwrap();
    db.session.flush().unwrap();
    db.statements();

    // Losing the parent deletes the child; a pending child that loses it is never inserted.
    db.session.remove_member(p1, children, kids[0]).unwrap();
    db.session.append(p1, children, kids[3]).unwrap();
    db.session.remove_member(p1, children, kids[3]).unwrap();
    db.session.flush().unwrap();
    assert_eq!(db.statements(), [r#"DELETE FROM "child" WHERE "id" = ?"#]);
    assert_eq!(db.query("SELECT id FROM child ORDER BY id"), ["2", "3"]);
    assert_eq!(db.session.state(kids[3]), State::Transient);

    // A move to another parent before the flush cancels the cascade (rule 19).
    db.session.append(p2, children, kids[1]).unwrap();
    db.session.delete(p1).unwrap();
    let plan = db.session.plan().unwrap();
    assert_eq!(plan.ops.len(), 3, "{plan}");
    db.session.flush().unwrap();
    assert_eq!(
        db.statements(),
        [
            r#"UPDATE "child" SET "parent_id" = ? WHERE "id" = ?"#,
            r#"DELETE FROM "child" WHERE "id" = ?"#,
            r#"DELETE FROM "parent" WHERE "id" = ?"#,
        ]
    );
    assert_eq!(db.query("SELECT id, parent_id FROM child"), ["2|2"]);
    assert_eq!(db.query("SELECT id FROM parent"), ["2"]);
}
