//! Self-referential relationships (DESIGN rule 14): an adjacency list and a
//! many-to-many of a table with itself, with tree walks in both directions.

mod common;

use common::Fx;
use relgraph::petgraph::algo::{has_path_connecting, toposort};
use relgraph::{Column, Entity, GraphError, Registry, Relationship, Table};

fn adjacency() -> Fx {
    Fx::new(relgraph_testkit::seed::adjacency_list().unwrap())
}

#[test]
fn adjacency_list_both_sides_and_walks() {
    let mut fx = adjacency();
    let [root, a, b, a1, a2, b1] = std::array::from_fn(|_| fx.new_obj("Node"));
    let (children, parent) = (fx.rel("Node.children"), fx.rel("Node.parent"));
    fx.graph.replace(root, children, &[a, b]).unwrap();
    fx.graph.set(a1, parent, Some(a)).unwrap();
    fx.graph.set(a2, parent, Some(a)).unwrap();
    fx.graph.append(b, children, b1).unwrap();
    fx.check(a, "Node.children", &[a1, a2]);
    fx.check(a1, "Node.parent", &[a]);
    assert_eq!(fx.graph.descendants(root, children).unwrap(), [a, b, a1, a2, b1]);
    assert_eq!(fx.graph.ancestors(a2, children).unwrap(), [a, root]);
    assert_eq!(fx.graph.descendants(a2, parent).unwrap(), [a, root], "descendants over `parent` climb");
    assert!(fx.graph.descendants(b1, children).unwrap().is_empty());

    // Moving a subtree.
    fx.graph.append(b, children, a).unwrap();
    assert_eq!(fx.graph.ancestors(a1, children).unwrap(), [a, b, root]);
    fx.check(root, "Node.children", &[b]);

    // petgraph's algorithms run on the relationship's view.
    let view = fx.graph.link_view(children).unwrap();
    assert!(has_path_connecting(view, root, a2, None));
    assert!(!has_path_connecting(view, a2, root, None));
    let order = toposort(view, None).unwrap();
    let pos = |k| order.iter().position(|&x| x == k).unwrap();
    assert!(pos(root) < pos(b) && pos(b) < pos(a) && pos(a) < pos(a1));

    // A cycle (allowed in memory; the flush breaks or refuses it) does not loop the walk.
    fx.graph.set(root, parent, Some(a1)).unwrap();
    assert_eq!(fx.graph.descendants(root, children).unwrap(), [b, b1, a, a1, a2]);
    assert!(toposort(view_of(&fx), None).is_err());

    // Removing a middle node unlinks both its parent and its children.
    fx.graph.remove(a).unwrap();
    fx.check(a1, "Node.parent", &[]);
    fx.check(b, "Node.children", &[b1]);
}

fn view_of(fx: &Fx) -> relgraph::LinkView<'_> {
    fx.graph.link_view(fx.rel("Node.children")).unwrap()
}

#[test]
fn self_loop_is_one_edge() {
    let mut fx = adjacency();
    let n = fx.new_obj("Node");
    fx.graph.set(n, fx.rel("Node.parent"), Some(n)).unwrap();
    fx.check(n, "Node.children", &[n]);
    fx.check(n, "Node.parent", &[n]);
    assert_eq!(fx.graph.link_count(), 1);
    assert!(fx.graph.descendants(n, fx.rel("Node.children")).unwrap().is_empty());
    fx.graph.remove(n).unwrap();
    assert_eq!(fx.graph.link_count(), 0);
}

#[test]
fn self_many_to_many() {
    let mut base = Registry::new();
    base.table(
        Table::new("friendship")
            .column(Column::integer("a_id").foreign_key("person.id"))
            .column(Column::integer("b_id").foreign_key("person.id")),
    )
    .unwrap();
    base.entity(Entity::new("Person", "person").column(Column::integer("id").primary_key()).relationship(
        "follows",
        Relationship::new("Person").secondary("friendship").foreign_keys(["a_id"]).backref("followers"),
    ))
    .unwrap();
    let mut fx = Fx::new(base.configure().unwrap());
    let [a, b, c] = std::array::from_fn(|_| fx.new_obj("Person"));
    let follows = fx.rel("Person.follows");
    fx.graph.append(a, follows, b).unwrap();
    fx.graph.append(b, follows, c).unwrap();
    fx.graph.append(c, follows, a).unwrap();
    fx.check(b, "Person.followers", &[a]);
    assert_eq!(fx.graph.descendants(a, follows).unwrap(), [b, c]);
    assert_eq!(fx.graph.ancestors(a, follows).unwrap(), [c, b]);
    fx.graph.remove(b).unwrap();
    fx.check(a, "Person.follows", &[]);
    fx.check(c, "Person.followers", &[]);
}

#[test]
fn walks_need_a_self_referential_relationship() {
    let mut fx =
        Fx::new(relgraph_testkit::seed::one_to_many(relgraph_testkit::seed::Sides::BackPopulates).unwrap());
    let p = fx.new_obj("Parent");
    let err = fx.graph.descendants(p, fx.rel("Parent.children")).unwrap_err();
    assert!(matches!(err, GraphError::NotSelfReferential { .. }));
    assert_eq!(
        err.to_string(),
        "relationship Parent.children is not self-referential, so it has no descendants or ancestors"
    );
}
