//! Seed, "One To One": a scalar on both sides; a new partner displaces the
//! old one at once, from either side (DESIGN rules 3 and 17).

mod common;

use common::Fx;
use relgraph::Direction;
use relgraph_testkit::seed::{one_to_one, one_to_one_backref};

/// Runs the replacement scenario over `holder.partner` / `partner.holder`,
/// where `holder_side` and `partner_side` name the two scalars.
fn replacement(
    fx: &mut Fx,
    holder_entity: &str,
    holder_side: &str,
    partner_entity: &str,
    partner_side: &str,
) {
    let (h1, h2) = (fx.new_obj(holder_entity), fx.new_obj(holder_entity));
    let (q1, q2) = (fx.new_obj(partner_entity), fx.new_obj(partner_entity));
    let (to_partner, to_holder) = (fx.rel(holder_side), fx.rel(partner_side));

    fx.graph.set(h1, to_partner, Some(q1)).unwrap();
    fx.check(q1, partner_side, &[h1]);

    // Replacement from the holder's side: q1 is left with nothing.
    assert_eq!(fx.graph.set(h1, to_partner, Some(q2)).unwrap(), Some(q1));
    fx.check(h1, holder_side, &[q2]);
    fx.check(q2, partner_side, &[h1]);
    fx.check(q1, partner_side, &[]);

    // Taking q2 for h2 leaves h1, its previous owner, empty at once.
    fx.graph.set(h2, to_partner, Some(q2)).unwrap();
    fx.check(h1, holder_side, &[]);
    fx.check(h2, holder_side, &[q2]);
    fx.check(q2, partner_side, &[h2]);

    // Replacement from the other side.
    fx.graph.set(q1, to_holder, Some(h2)).unwrap();
    fx.check(h2, holder_side, &[q1]);
    fx.check(q1, partner_side, &[h2]);
    fx.check(q2, partner_side, &[]);
    assert_eq!(fx.graph.link_count(), 1);

    // A scalar side refuses collection operations.
    assert!(fx.graph.append(h1, to_partner, q2).is_err());
}

#[test]
fn uselist_false_on_one_to_many() {
    let schema = one_to_one().unwrap();
    assert_eq!(
        schema.relationship(schema.relationship_by_name("Parent", "child").unwrap()).direction,
        Direction::OneToMany
    );
    let mut fx = Fx::new(schema);
    replacement(&mut fx, "Parent", "Parent.child", "Child", "Child.parent");
}

#[test]
fn uselist_false_from_the_foreign_key_side() {
    let mut fx = Fx::new(one_to_one().unwrap());
    replacement(&mut fx, "Child", "Child.parent", "Parent", "Parent.child");
}

#[test]
fn backref_uselist_false_on_many_to_one() {
    let schema = one_to_one_backref().unwrap();
    assert_eq!(
        schema.relationship(schema.relationship_by_name("Parent", "child").unwrap()).direction,
        Direction::ManyToOne
    );
    let mut fx = Fx::new(schema.clone());
    replacement(&mut fx, "Parent", "Parent.child", "Child", "Child.parent");
    let mut fx = Fx::new(schema);
    replacement(&mut fx, "Child", "Child.parent", "Parent", "Parent.child");
}
