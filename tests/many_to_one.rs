//! Seed, "Many To One": a scalar on the parent, whose table holds the foreign key.

mod common;

use common::Fx;
use relgraph_testkit::seed::{Sides, many_to_one};

#[test]
fn one_way_scalar() {
    let mut fx = Fx::new(many_to_one(Sides::OneWay).unwrap());
    let (p1, p2) = (fx.new_obj("Parent"), fx.new_obj("Parent"));
    let (c1, c2) = (fx.new_obj("Child"), fx.new_obj("Child"));
    let child = fx.rel("Parent.child");
    fx.graph.set(p1, child, Some(c1)).unwrap();
    fx.graph.set(p2, child, Some(c1)).unwrap();
    fx.check(p1, "Parent.child", &[c1]);
    fx.check_reverse(c1, "Parent.child", &[p1, p2]);
    assert_eq!(fx.graph.set(p1, child, Some(c2)).unwrap(), Some(c1));
    fx.check_reverse(c1, "Parent.child", &[p2]);
    fx.check_reverse(c2, "Parent.child", &[p1]);
    assert_eq!(fx.graph.set(p1, child, None).unwrap(), Some(c2));
    fx.check(p1, "Parent.child", &[]);
    fx.check_reverse(c2, "Parent.child", &[]);
}

fn bidirectional(sides: Sides) {
    let mut fx = Fx::new(many_to_one(sides).unwrap());
    let (p1, p2) = (fx.new_obj("Parent"), fx.new_obj("Parent"));
    let (c1, c2) = (fx.new_obj("Child"), fx.new_obj("Child"));
    let (child, parents) = (fx.rel("Parent.child"), fx.rel("Child.parents"));
    fx.graph.set(p1, child, Some(c1)).unwrap();
    fx.graph.append(c1, parents, p2).unwrap();
    fx.check(c1, "Child.parents", &[p1, p2]);
    fx.check(p2, "Parent.child", &[c1]);
    // Appending p2 to another child moves it: its scalar side holds one.
    fx.graph.append(c2, parents, p2).unwrap();
    fx.check(c1, "Child.parents", &[p1]);
    fx.check(c2, "Child.parents", &[p2]);
    fx.check(p2, "Parent.child", &[c2]);
    fx.graph.set(p1, child, None).unwrap();
    fx.check(c1, "Child.parents", &[]);
}

#[test]
fn back_populates() {
    bidirectional(Sides::BackPopulates);
}

#[test]
fn backref() {
    bidirectional(Sides::Backref);
}
