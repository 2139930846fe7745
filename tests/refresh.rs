//! `Session::refresh`: the store's row wins over memory, links follow the
//! foreign keys read, changes of this session to links are kept, and the
//! `refresh-expire` cascade travels only where the relationship says so.

mod common;

use common::sql::Db;
use relgraph::{Column, Entity, Registry, Relationship, SessionError, State, Value};

/// Parents 1 and 2 and child 1 of parent 1, flushed; `Parent.children`
/// cascades "all, delete-orphan", `Child.parent` the default "save-update, merge".
fn family(name: &str) -> (Db, [relgraph::ObjectKey; 3]) {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), name);
    let (p1, p2, c) = (db.new_obj("Parent"), db.new_obj("Parent"), db.new_obj("Child"));
    let children = db.rel("Parent.children");
    let pname = db.schema.entity_column(db.schema.entity_id("Parent").unwrap(), "name").unwrap();
    db.session.set_value(p1, pname, "one").unwrap();
    db.session.set_value(p2, pname, "two").unwrap();
    db.session.append(p1, children, c).unwrap();
    db.session.add(p1).unwrap();
    db.session.add(p2).unwrap();
    db.session.flush().unwrap();
    db.statements();
    (db, [p1, p2, c])
}

fn column(db: &Db, entity: &str, name: &str) -> relgraph::ColumnId {
    db.schema.entity_column(db.schema.entity_id(entity).unwrap(), name).unwrap()
}

#[test]
fn refresh_reads_the_row_again_and_follows_its_foreign_key() {
    let (mut db, [p1, p2, c]) = family("refresh-row");
    let (children, parent) = (db.rel("Parent.children"), db.rel("Child.parent"));
    let cname = column(&db, "Child", "name");
    assert_eq!(db.session.members(p1, children).unwrap(), vec![c]);
    db.session.set_value(c, cname, "unflushed").unwrap();
    db.exec("UPDATE child SET name = 'outside', parent_id = 2 WHERE id = 1");

    db.session.refresh(c).unwrap();
    assert_eq!(db.session.value(c, cname).unwrap(), &Value::from("outside"), "the store's value wins");
    assert_eq!(db.session.scalar(c, parent).unwrap(), Some(p2), "the link follows the foreign key read");
    assert_eq!(db.session.members(p1, children).unwrap(), vec![], "the old parent lost the child in memory");
    assert_eq!(db.session.members(p2, children).unwrap(), vec![c]);
    assert_eq!(db.session.state(c), State::Persistent);
    db.statements();
    db.session.flush().unwrap();
    let sent = db.statements();
    assert!(sent.is_empty(), "what was read is not a change: {sent:?}");
    // The discarded write stays discarded after a reopen.
    assert_eq!(db.query("SELECT name, parent_id FROM child"), vec!["outside|2"]);
}

#[test]
fn refresh_keeps_this_sessions_link_changes() {
    let (mut db, [_, p2, c]) = family("refresh-keeps-links");
    let parent = db.rel("Child.parent");
    let cname = column(&db, "Child", "name");
    db.session.set(c, parent, Some(p2)).unwrap();
    db.exec("UPDATE child SET name = 'outside' WHERE id = 1");

    db.session.refresh(c).unwrap();
    assert_eq!(db.session.value(c, cname).unwrap(), &Value::from("outside"));
    assert_eq!(db.session.scalar(c, parent).unwrap(), Some(p2), "the unflushed move stays");
    db.session.flush().unwrap();
    assert_eq!(db.query("SELECT name, parent_id FROM child"), vec!["outside|2"]);
}

#[test]
fn refresh_cascades_along_refresh_expire_only() {
    let (mut db, [p1, _, c]) = family("refresh-cascade");
    let children = db.rel("Parent.children");
    let (pname, cname) = (column(&db, "Parent", "name"), column(&db, "Child", "name"));
    assert_eq!(db.session.members(p1, children).unwrap(), vec![c]);
    db.exec(
        "UPDATE child SET name = 'child outside'; UPDATE parent SET name = 'parent outside' WHERE id = 1",
    );

    // Child.parent has no refresh-expire: the parent keeps what memory has.
    db.session.refresh(c).unwrap();
    assert_eq!(db.session.value(c, cname).unwrap(), &Value::from("child outside"));
    assert_eq!(db.session.value(p1, pname).unwrap(), &Value::from("one"));

    // Parent.children cascades "all": refreshing the parent refreshes the child.
    db.session.set_value(c, cname, "unflushed").unwrap();
    db.session.refresh(p1).unwrap();
    assert_eq!(db.session.value(p1, pname).unwrap(), &Value::from("parent outside"));
    assert_eq!(db.session.value(c, cname).unwrap(), &Value::from("child outside"));
    db.statements();
    db.session.flush().unwrap();
    let sent = db.statements();
    assert!(sent.is_empty(), "what was read is not a change: {sent:?}");
}

#[test]
fn a_refreshed_collection_reads_rows_the_store_gained() {
    let (mut db, [p1, _, c]) = family("refresh-collection");
    let children = db.rel("Parent.children");
    assert_eq!(db.session.members(p1, children).unwrap(), vec![c]);
    db.exec("INSERT INTO child (id, parent_id, name, value) VALUES (99, 1, 'new', 0)");
    assert_eq!(db.session.members(p1, children).unwrap().len(), 1, "loaded once, not read again");

    db.session.refresh(p1).unwrap();
    let members = db.session.members(p1, children).unwrap();
    assert_eq!(members.len(), 2);
    let id = column(&db, "Child", "id");
    assert!(members.iter().any(|&m| db.session.value(m, id).unwrap() == &Value::Integer(99)));
}

#[test]
fn refresh_refuses_objects_without_a_stored_row() {
    let (mut db, [p1, p2, c]) = family("refresh-refused");
    let fresh = db.new_obj("Parent");
    assert!(matches!(db.session.refresh(fresh), Err(SessionError::NotInSession { .. })));
    db.session.add(fresh).unwrap();
    assert!(matches!(db.session.refresh(fresh), Err(SessionError::NotPersistent { .. })));
    db.session.delete(p2).unwrap();
    assert!(matches!(db.session.refresh(p2), Err(SessionError::Deleted { .. })));

    // A row deleted by another writer: a typed error, and memory keeps what it had.
    let cname = column(&db, "Child", "name");
    db.session.set_value(c, cname, "kept").unwrap();
    db.exec("DELETE FROM child WHERE id = 1");
    let err = db.session.refresh(c).unwrap_err();
    assert!(matches!(err, SessionError::Gone { .. }), "{err}");
    assert!(err.to_string().contains("deleted outside this session"), "{err}");
    assert_eq!(db.session.value(c, cname).unwrap(), &Value::from("kept"));
    assert_eq!(db.session.state(p1), State::Persistent);
}

/// Parent and Child where `Parent.children` has the default cascade (no
/// refresh-expire): refreshing a parent reads its collection again without
/// refreshing the children's rows.
fn plain_family(name: &str) -> Db {
    let mut registry = Registry::new();
    registry
        .entity(
            Entity::new("Parent", "parent")
                .column(Column::integer("id").primary_key())
                .relationship("children", Relationship::new("Child").back_populates("parent")),
        )
        .unwrap();
    registry
        .entity(
            Entity::new("Child", "child")
                .column(Column::integer("id").primary_key())
                .column(Column::integer("parent_id").foreign_key("parent.id"))
                .column(Column::text("name"))
                .relationship("parent", Relationship::new("Parent").back_populates("children")),
        )
        .unwrap();
    Db::new(registry.configure().unwrap(), name)
}

/// Parents 1 and 2, and children 1 and 2 of parent 1, flushed.
fn two_parents_two_children(db: &mut Db) -> [relgraph::ObjectKey; 4] {
    let children = db.rel("Parent.children");
    let (p1, p2) = (db.new_obj("Parent"), db.new_obj("Parent"));
    let (c1, c2) = (db.new_obj("Child"), db.new_obj("Child"));
    db.session.append(p1, children, c1).unwrap();
    db.session.append(p1, children, c2).unwrap();
    db.session.add(p1).unwrap();
    db.session.add(p2).unwrap();
    db.session.flush().unwrap();
    [p1, p2, c1, c2]
}

#[test]
fn a_refreshed_collection_holds_what_the_store_holds_and_children_that_left_follow_their_row() {
    let mut db = plain_family("refresh-replaces-children");
    let (children, parent) = (db.rel("Parent.children"), db.rel("Child.parent"));
    let cname = column(&db, "Child", "name");
    let [p1, p2, c1, c2] = two_parents_two_children(&mut db);
    // Another writer moves child 1 to parent 2 and gives parent 1 a new child.
    db.exec("UPDATE child SET parent_id = 2 WHERE id = 1; INSERT INTO child (id, parent_id, name) VALUES (3, 1, 'outside')");
    db.session.set_value(c2, cname, "unflushed").unwrap();

    db.session.refresh(p1).unwrap();
    let members = db.session.members(p1, children).unwrap();
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(members.contains(&c2), "the child the store still has stays");
    assert!(!members.contains(&c1), "the child the store moved away left");
    let c3 = db.get("Child", 3);
    assert!(members.contains(&c3), "the child the store gained joined");
    assert_eq!(db.session.scalar(c1, parent).unwrap(), Some(p2), "the child that left followed its row");
    assert!(db.session.members(p2, children).unwrap().contains(&c1));
    assert_eq!(db.session.value(c2, cname).unwrap(), &Value::from("unflushed"), "not refreshed: no cascade");

    // Nothing read is written back; the unflushed name is.
    db.statements();
    db.session.flush().unwrap();
    let sent = db.statements();
    assert_eq!(sent, [r#"UPDATE "child" SET "name" = ? WHERE "id" = ?"#], "only the unflushed name");
    assert_eq!(
        db.query("SELECT id, parent_id, name FROM child ORDER BY id"),
        ["1|2|NULL", "2|1|unflushed", "3|1|outside"]
    );
}

#[test]
fn a_refreshed_many_to_many_collection_drops_pairs_the_store_lost() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "refresh-replaces-pairs");
    let (rights, lefts) = (db.rel("Left.rights"), db.rel("Right.lefts"));
    let l = db.new_obj("Left");
    let (r1, r2) = (db.new_obj("Right"), db.new_obj("Right"));
    db.session.append(l, rights, r1).unwrap();
    db.session.append(l, rights, r2).unwrap();
    db.session.add(l).unwrap();
    db.session.flush().unwrap();
    db.exec("DELETE FROM association WHERE right_id = 1; INSERT INTO \"right\" (id) VALUES (3); INSERT INTO association VALUES (1, 3)");

    db.session.refresh(l).unwrap();
    let r3 = db.get("Right", 3);
    let mut held = db.session.members(l, rights).unwrap();
    held.sort();
    let mut expected = vec![r2, r3];
    expected.sort();
    assert_eq!(held, expected);
    assert!(db.session.members(r1, lefts).unwrap().is_empty(), "one edge: the far side lost it too");
    db.statements();
    db.session.flush().unwrap();
    assert!(db.statements().is_empty(), "what was read is not a change");
    assert_eq!(db.query("SELECT left_id, right_id FROM association ORDER BY right_id"), ["1|2", "1|3"]);
}

#[test]
fn a_collection_this_session_changed_keeps_memory_over_the_store() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "refresh-keeps-pairs");
    let rights = db.rel("Left.rights");
    let l = db.new_obj("Left");
    let (r1, r2) = (db.new_obj("Right"), db.new_obj("Right"));
    db.session.append(l, rights, r1).unwrap();
    db.session.add(l).unwrap();
    db.session.flush().unwrap();
    db.exec("DELETE FROM association");
    db.session.append(l, rights, r2).unwrap();

    db.session.refresh(l).unwrap();
    assert_eq!(
        db.session.members(l, rights).unwrap(),
        vec![r1, r2],
        "the unflushed append keeps the collection"
    );
    db.session.flush().unwrap();
    assert_eq!(db.query("SELECT left_id, right_id FROM association ORDER BY right_id"), ["1|2"]);
}

#[test]
fn a_refresh_whose_read_fails_changes_no_link() {
    use relgraph_testkit::fault::{Fault, FaultStore};
    let mut db = plain_family("refresh-read-fails");
    let (children, parent) = (db.rel("Parent.children"), db.rel("Child.parent"));
    let [p1, p2, c1, c2] = two_parents_two_children(&mut db);
    db.exec("UPDATE child SET parent_id = 2 WHERE id = 1");
    let sqlite = db.session.replace_store(Box::new(relgraph::SqliteStore::open(&db.path).unwrap()));
    let (store, fault) = FaultStore::new(sqlite, Fault::Never);
    db.session.replace_store(Box::new(store));

    // Each read of the refresh fails in turn (its own row, p1's children, the
    // row of the child that left) until none is left to fail.
    let mut failed = 0;
    loop {
        fault.set(Fault::AtLoad(failed));
        match db.session.refresh(p1) {
            Err(e) => {
                assert_eq!(db.session.members(p1, children).unwrap(), vec![c1, c2], "read {failed}: {e}");
                assert_eq!(db.session.scalar(c1, parent).unwrap(), Some(p1), "read {failed}");
                failed += 1;
            }
            Ok(()) => break,
        }
    }
    assert_eq!(failed, 3, "three reads, each failed once");
    fault.set(Fault::Never);
    assert_eq!(db.session.members(p1, children).unwrap(), vec![c2]);
    assert_eq!(db.session.scalar(c1, parent).unwrap(), Some(p2));
    db.statements();
    db.session.flush().unwrap();
    assert!(db.statements().is_empty(), "nothing read is written back");
}
