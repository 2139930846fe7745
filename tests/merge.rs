//! `Session::merge`: a transient or detached object's state copied onto the
//! session's object with its key (found, loaded, or made pending), along
//! `merge` relationships.

mod common;

use common::sql::Db;
use relgraph::{State, Value};

fn column(db: &Db, entity: &str, name: &str) -> relgraph::ColumnId {
    db.schema.entity_column(db.schema.entity_id(entity).unwrap(), name).unwrap()
}

#[test]
fn merge_copies_a_detached_objects_values_onto_the_loaded_one() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "merge-detached");
    let name = column(&db, "Parent", "name");
    let p = db.new_obj("Parent");
    db.session.set_value(p, name, "stored").unwrap();
    db.session.add(p).unwrap();
    db.session.flush().unwrap();
    db.session.expunge(p).unwrap();
    db.session.set_value(p, name, "edited while detached").unwrap();
    db.statements();

    let merged = db.session.merge(p).unwrap();
    assert_ne!(merged, p, "the identity map forgot the expunged object, so the row is loaded");
    assert_eq!(db.session.state(merged), State::Persistent);
    assert_eq!(db.session.state(p), State::Detached, "the source stays outside the session");
    assert_eq!(db.session.value(merged, name).unwrap(), &Value::from("edited while detached"));
    assert_eq!(db.get("Parent", 1), merged, "the merged object is the identity map's");
    db.session.flush().unwrap();
    let sent = db.statements();
    assert!(sent.iter().any(|s| s.starts_with(r#"UPDATE "parent" SET "name""#)), "{sent:?}");
    assert_eq!(db.query("SELECT id, name FROM parent"), vec!["1|edited while detached"]);
}

#[test]
fn merge_of_an_unknown_key_makes_a_pending_copy() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "merge-new");
    let (id, name) = (column(&db, "Parent", "id"), column(&db, "Parent", "name"));
    let source = db.new_obj("Parent");
    db.session.set_value(source, id, 42).unwrap();
    db.session.set_value(source, name, "from outside").unwrap();

    let merged = db.session.merge(source).unwrap();
    assert_ne!(merged, source);
    assert_eq!(db.session.state(merged), State::Pending);
    assert_eq!(db.session.state(source), State::Transient);
    db.session.flush().unwrap();
    assert_eq!(db.query("SELECT id, name FROM parent"), vec!["42|from outside"]);
    // A second merge of the same state finds the now persistent object and changes nothing.
    assert_eq!(db.session.merge(source).unwrap(), merged);
    db.statements();
    db.session.flush().unwrap();
    assert!(db.statements().is_empty());
}

#[test]
fn merge_cascades_to_the_members_a_merge_relationship_holds() {
    // Parent.children cascades "all" (merge included), Child.parent "save-update, merge".
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "merge-cascade");
    let children = db.rel("Parent.children");
    let cname = column(&db, "Child", "name");
    let (p, c1, c2) = (db.new_obj("Parent"), db.new_obj("Child"), db.new_obj("Child"));
    db.session.set_value(c1, cname, "first").unwrap();
    db.session.set_value(c2, cname, "second").unwrap();
    db.session.append(p, children, c1).unwrap();
    db.session.append(p, children, c2).unwrap();
    db.session.add(p).unwrap();
    db.session.flush().unwrap();
    // The expunge cascade detaches the children with the parent.
    db.session.expunge(p).unwrap();
    db.session.set_value(c2, cname, "second, edited").unwrap();
    db.session.remove_member(p, children, c1).unwrap();
    db.statements();

    let merged = db.session.merge(p).unwrap();
    let members = db.session.members(merged, children).unwrap();
    assert_eq!(members.len(), 1, "the merged collection is the source's");
    assert_eq!(db.session.value(members[0], cname).unwrap(), &Value::from("second, edited"));
    assert_ne!(members[0], c2, "members are merged too, not moved into the session");
    db.session.flush().unwrap();
    // The child left out of the collection is an orphan, deleted by delete-orphan.
    assert_eq!(db.query("SELECT id, parent_id, name FROM child"), vec!["2|1|second, edited"]);
}

#[test]
fn an_object_of_the_session_is_its_own_merge() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "merge-self");
    let p = db.new_obj("Parent");
    db.session.add(p).unwrap();
    assert_eq!(db.session.merge(p).unwrap(), p);
    db.session.flush().unwrap();
    assert_eq!(db.session.merge(p).unwrap(), p);
    assert_eq!(db.query("SELECT count(*) FROM parent"), vec!["1"]);
}

#[test]
fn merge_onto_an_object_deleted_in_the_session_is_refused() {
    let mut db = Db::new(relgraph_testkit::workloads::schema(), "merge-deleted");
    let id = column(&db, "Parent", "id");
    let p = db.new_obj("Parent");
    db.session.add(p).unwrap();
    db.session.flush().unwrap();
    db.session.delete(p).unwrap();
    let source = db.new_obj("Parent");
    db.session.set_value(source, id, 1).unwrap();
    let err = db.session.merge(source).unwrap_err();
    assert!(matches!(err, relgraph::SessionError::Deleted { .. }), "{err}");
}
