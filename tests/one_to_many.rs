//! Seed, "One To Many": a collection on the parent, the foreign key on the child.

mod common;

use common::Fx;
use relgraph::GraphError;
use relgraph_testkit::seed::{Sides, one_to_many};

#[test]
fn one_way_children_collection() {
    // children = relationship("Child")
    let mut fx = Fx::new(one_to_many(Sides::OneWay).unwrap());
    let (p1, p2) = (fx.new_obj("Parent"), fx.new_obj("Parent"));
    let (c1, c2) = (fx.new_obj("Child"), fx.new_obj("Child"));
    let children = fx.rel("Parent.children");
    fx.graph.append(p1, children, c1).unwrap();
    fx.graph.append(p1, children, c2).unwrap();
    fx.check(p1, "Parent.children", &[c1, c2]);
    fx.check_reverse(c1, "Parent.children", &[p1]);
    // The foreign key holds one parent even with no `parent` attribute: appending
    // to another parent takes the child out of the first (DESIGN rule 1).
    fx.graph.append(p2, children, c1).unwrap();
    fx.check(p1, "Parent.children", &[c2]);
    fx.check(p2, "Parent.children", &[c1]);
    fx.check_reverse(c1, "Parent.children", &[p2]);
}

#[test]
fn back_populates_keeps_both_sides() {
    let mut fx = Fx::new(one_to_many(Sides::BackPopulates).unwrap());
    let (p1, p2) = (fx.new_obj("Parent"), fx.new_obj("Parent"));
    let (c1, c2, c3) = (fx.new_obj("Child"), fx.new_obj("Child"), fx.new_obj("Child"));
    let (children, parent) = (fx.rel("Parent.children"), fx.rel("Child.parent"));

    fx.graph.append(p1, children, c1).unwrap();
    fx.check(c1, "Child.parent", &[p1]);
    fx.graph.set(c2, parent, Some(p1)).unwrap();
    fx.check(p1, "Parent.children", &[c1, c2]);

    // Appending a member that is already there changes nothing (rule 15).
    assert!(!fx.graph.append(p1, children, c1).unwrap());
    fx.check(p1, "Parent.children", &[c1, c2]);

    // Moving a child by its scalar side.
    assert_eq!(fx.graph.set(c1, parent, Some(p2)).unwrap(), Some(p1));
    fx.check(p1, "Parent.children", &[c2]);
    fx.check(p2, "Parent.children", &[c1]);

    // Assigning none unlinks it.
    fx.graph.set(c1, parent, None).unwrap();
    fx.check(p2, "Parent.children", &[]);
    fx.check(c1, "Child.parent", &[]);

    // Replace keeps members that stay and takes the rest from their parents.
    fx.graph.append(p2, children, c3).unwrap();
    fx.graph.replace(p1, children, &[c3, c2, c1, c3]).unwrap();
    fx.check(p1, "Parent.children", &[c3, c2, c1]);
    fx.check(p2, "Parent.children", &[]);
    fx.check(c3, "Child.parent", &[p1]);

    // Removing a member and clearing, from both sides.
    assert!(fx.graph.remove_member(p1, children, c2).unwrap());
    assert!(!fx.graph.remove_member(p1, children, c2).unwrap());
    fx.check(c2, "Child.parent", &[]);
    assert_eq!(fx.graph.clear(p1, children).unwrap(), 2);
    fx.check(c1, "Child.parent", &[]);
    fx.check(c3, "Child.parent", &[]);
    assert_eq!(fx.graph.link_count(), 0);
}

#[test]
fn backref_behaves_like_back_populates() {
    // children = relationship("Child", backref="parent")
    let mut fx = Fx::new(one_to_many(Sides::Backref).unwrap());
    let p = fx.new_obj("Parent");
    let c = fx.new_obj("Child");
    fx.graph.set(c, fx.rel("Child.parent"), Some(p)).unwrap();
    fx.check(p, "Parent.children", &[c]);
    fx.graph.remove_member(p, fx.rel("Parent.children"), c).unwrap();
    fx.check(c, "Child.parent", &[]);
}

#[test]
fn removing_an_object_removes_its_links_everywhere() {
    let mut fx = Fx::new(one_to_many(Sides::BackPopulates).unwrap());
    let p = fx.new_obj("Parent");
    let (c1, c2) = (fx.new_obj("Child"), fx.new_obj("Child"));
    let children = fx.rel("Parent.children");
    fx.graph.replace(p, children, &[c1, c2]).unwrap();
    fx.graph.remove(c1).unwrap();
    fx.check(p, "Parent.children", &[c2]);
    // A removed object's key is stale: refused, never another object (rule 18, 21).
    assert_eq!(fx.graph.append(p, children, c1), Err(GraphError::StaleKey(c1)));
    let c3 = fx.new_obj("Child");
    assert_ne!(c1, c3, "keys are generational");
    fx.graph.remove(p).unwrap();
    fx.check(c2, "Child.parent", &[]);
    assert_eq!(fx.graph.link_count(), 0);
}

#[test]
fn wrong_entity_null_and_scalar_misuse_are_refused() {
    let mut fx = Fx::new(one_to_many(Sides::BackPopulates).unwrap());
    let (p, p2) = (fx.new_obj("Parent"), fx.new_obj("Parent"));
    let c = fx.new_obj("Child");
    let (children, parent) = (fx.rel("Parent.children"), fx.rel("Child.parent"));
    let err = fx.graph.append(p, children, p2).unwrap_err();
    assert_eq!(err.to_string(), "relationship Parent.children holds 'Child' objects, not 'Parent'");
    let err = fx.graph.append(c, children, c).unwrap_err();
    assert!(matches!(err, GraphError::NotOnEntity { .. }), "{err}");
    let null = relgraph::ObjectKey::default();
    assert_eq!(fx.graph.append(p, children, null), Err(GraphError::StaleKey(null)));
    assert!(matches!(fx.graph.append(c, parent, p), Err(GraphError::NotACollection { .. })));
    assert!(matches!(fx.graph.set(p, children, Some(c)), Err(GraphError::NotAScalar { .. })));
    assert_eq!(fx.graph.link_count(), 0, "refused operations change nothing");
}

#[test]
fn the_journal_records_every_link_change_including_displacements() {
    let mut fx = Fx::new(one_to_many(Sides::BackPopulates).unwrap());
    let (p1, p2, c) = (fx.new_obj("Parent"), fx.new_obj("Parent"), fx.new_obj("Child"));
    let children = fx.rel("Parent.children");
    fx.graph.append(p1, children, c).unwrap();
    assert!(fx.graph.take_journal().is_empty(), "nothing is recorded while the journal is off");
    fx.graph.set_journaling(true);
    fx.graph.append(p2, children, c).unwrap(); // displaces the link to p1
    let link = fx.schema.relationship(children).link;
    let changes: Vec<_> =
        fx.graph.drain_journal().map(|ch| (ch.link, ch.source, ch.target, ch.added)).collect();
    assert_eq!(changes, [(link, c, p1, false), (link, c, p2, true)]);
    assert_eq!(fx.graph.drain_journal().count(), 0, "draining empties it");
    fx.graph.remove(p2).unwrap();
    assert_eq!(fx.graph.take_journal().len(), 1, "removing an object records its links going");
}
