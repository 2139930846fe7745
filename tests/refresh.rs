//! `Session::refresh`: the store's row wins over memory, links follow the
//! foreign keys read, changes of this session to links are kept, and the
//! `refresh-expire` cascade travels only where the relationship says so.

mod common;

use common::sql::Db;
use relgraph::{SessionError, State, Value};

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
fn a_refreshed_collection_reads_rows_the_store_gained_on_next_use() {
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
