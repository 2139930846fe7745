//! Seed, "Many To Many": collections on both sides through `secondary`, in
//! all three ways of naming it, the seed's traceback, and removal.

mod common;

use common::Fx;
use relgraph::{ConfigError, Registry, Table};
use relgraph_testkit::seed::{SecondaryForm, Sides, association_table, many_to_many};

const FORMS: [SecondaryForm; 3] = [SecondaryForm::Handle, SecondaryForm::Name, SecondaryForm::Closure];

#[test]
fn one_way_secondary() {
    for form in FORMS {
        let mut fx = Fx::new(many_to_many(Sides::OneWay, form).unwrap());
        let (l1, l2) = (fx.new_obj("Parent"), fx.new_obj("Parent"));
        let r = fx.new_obj("Child");
        let children = fx.rel("Parent.children");
        fx.graph.append(l1, children, r).unwrap();
        fx.graph.append(l2, children, r).unwrap();
        fx.check(l1, "Parent.children", &[r]);
        fx.check_reverse(r, "Parent.children", &[l1, l2]);
        // session.delete(somechild) with no reverse relationship still removes
        // both links (DESIGN rule 12).
        fx.graph.remove(r).unwrap();
        fx.check(l1, "Parent.children", &[]);
        fx.check(l2, "Parent.children", &[]);
        assert_eq!(fx.graph.link_count(), 0);
    }
}

fn bidirectional(sides: Sides, form: SecondaryForm) {
    let mut fx = Fx::new(many_to_many(sides, form).unwrap());
    let (l1, l2) = (fx.new_obj("Parent"), fx.new_obj("Parent"));
    let (r1, r2) = (fx.new_obj("Child"), fx.new_obj("Child"));
    let (children, parents) = (fx.rel("Parent.children"), fx.rel("Child.parents"));
    fx.graph.append(l1, children, r1).unwrap();
    fx.graph.append(l1, children, r2).unwrap();
    fx.graph.append(r1, parents, l2).unwrap();
    fx.check(l1, "Parent.children", &[r1, r2]);
    fx.check(l2, "Parent.children", &[r1]);
    fx.check(r1, "Child.parents", &[l1, l2]);
    fx.check(r2, "Child.parents", &[l1]);
    // A pair is linked once, from whichever side (rules 4 and 15).
    assert!(!fx.graph.append(r2, parents, l1).unwrap());
    assert_eq!(fx.graph.link_count(), 3);
    // myparent.children.remove(somechild)
    assert!(fx.graph.remove_member(l1, children, r1).unwrap());
    fx.check(r1, "Child.parents", &[l2]);
    fx.check(l1, "Parent.children", &[r2]);
    assert!(fx.graph.has_member(r1, parents, l2).unwrap());
    assert!(!fx.graph.has_member(r1, parents, l1).unwrap());
    fx.graph.remove(l2).unwrap();
    fx.check(r1, "Child.parents", &[]);
    assert_eq!(fx.graph.count(l1, children).unwrap(), 1);
}

#[test]
fn back_populates_in_every_secondary_form() {
    for form in FORMS {
        bidirectional(Sides::BackPopulates, form);
    }
}

#[test]
fn backref_in_every_secondary_form() {
    for form in FORMS {
        bidirectional(Sides::Backref, form);
    }
}

#[test]
fn the_seeds_traceback() {
    let mut base = Registry::new();
    association_table(&mut base).unwrap();
    let err = association_table(&mut base).unwrap_err();
    assert_eq!(
        err.to_string(),
        "table 'association' is already defined for this registry; use \
         `Table::new(\"association\").extend_existing()` to redefine options and columns on the existing table"
    );
    assert!(matches!(err, ConfigError::TableExists { .. }));
    base.table(Table::new("association").extend_existing()).unwrap();
}
