//! Configuration: directions inferred from foreign keys, pairing, and every
//! configuration error with the names its message must carry.

use relgraph_core::*;

fn parent_child(parent_rels: Vec<(&str, Relationship)>, child_rels: Vec<(&str, Relationship)>) -> Registry {
    let mut reg = Registry::new();
    let mut parent = Entity::new("Parent", "parent").column(Column::integer("id").primary_key());
    for (name, rel) in parent_rels {
        parent = parent.relationship(name, rel);
    }
    let mut child = Entity::new("Child", "child")
        .column(Column::integer("id").primary_key())
        .column(Column::integer("parent_id").foreign_key("parent.id"));
    for (name, rel) in child_rels {
        child = child.relationship(name, rel);
    }
    reg.entity(parent).unwrap();
    reg.entity(child).unwrap();
    reg
}

fn left_right(left_rels: Vec<(&str, Relationship)>, right_rels: Vec<(&str, Relationship)>) -> Registry {
    let mut reg = Registry::new();
    reg.table(
        Table::new("association")
            .column(Column::integer("left_id").foreign_key("left.id"))
            .column(Column::integer("right_id").foreign_key("right.id")),
    )
    .unwrap();
    let mut left = Entity::new("Parent", "left").column(Column::integer("id").primary_key());
    for (name, rel) in left_rels {
        left = left.relationship(name, rel);
    }
    let mut right = Entity::new("Child", "right").column(Column::integer("id").primary_key());
    for (name, rel) in right_rels {
        right = right.relationship(name, rel);
    }
    reg.entity(left).unwrap();
    reg.entity(right).unwrap();
    reg
}

/// Configures and checks that the error's message contains every fragment.
fn check_err(reg: &Registry, fragments: &[&str]) -> ConfigError {
    let err = reg.configure().expect_err("configuration should fail");
    let message = err.to_string();
    for fragment in fragments {
        assert!(message.contains(fragment), "message {message:?} lacks {fragment:?}");
    }
    assert!(!message.ends_with('.'), "messages carry no trailing period: {message:?}");
    err
}

fn rel<'s>(schema: &'s Schema, entity: &str, name: &str) -> &'s RelationshipDef {
    schema.relationship(schema.relationship_by_name(entity, name).unwrap())
}

#[test]
fn one_to_many_without_reverse() {
    let schema = parent_child(vec![("children", Relationship::new("Child"))], vec![]).configure().unwrap();
    let children = rel(&schema, "Parent", "children");
    assert_eq!(children.direction, Direction::OneToMany);
    assert!(children.uselist);
    assert_eq!(children.end, End::Target);
    let link = schema.link(children.link);
    assert_eq!(link.end(End::Source).relationship, None);
    assert!(!link.end(End::Source).many, "a foreign key holds one parent even with no reverse side");
}

#[test]
fn back_populates_pairs_both_sides() {
    let schema = parent_child(
        vec![("children", Relationship::new("Child").back_populates("parent"))],
        vec![("parent", Relationship::new("Parent").back_populates("children"))],
    )
    .configure()
    .unwrap();
    let children = rel(&schema, "Parent", "children");
    let parent = rel(&schema, "Child", "parent");
    assert_eq!(parent.direction, Direction::ManyToOne);
    assert!(!parent.uselist);
    assert_eq!(children.link, parent.link);
    assert_eq!(children.reverse, schema.relationship_by_name("Child", "parent"));
    assert_eq!(schema.links().len(), 1);
}

#[test]
fn backref_creates_the_reverse() {
    let schema = parent_child(vec![("children", Relationship::new("Child").backref("parent"))], vec![])
        .configure()
        .unwrap();
    let parent = rel(&schema, "Child", "parent");
    assert!(parent.from_backref);
    assert_eq!(parent.direction, Direction::ManyToOne);
}

#[test]
fn many_to_one_seed_pattern() {
    let mut reg = Registry::new();
    reg.entity(
        Entity::new("Parent", "parent")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("child_id").foreign_key("child.id"))
            .relationship("child", Relationship::new("Child").backref(Backref::new("parent").uselist(false))),
    )
    .unwrap();
    reg.entity(Entity::new("Child", "child").column(Column::integer("id").primary_key())).unwrap();
    let schema = reg.configure().unwrap();
    let child = rel(&schema, "Parent", "child");
    assert_eq!(child.direction, Direction::ManyToOne);
    let parent = rel(&schema, "Child", "parent");
    assert_eq!(parent.direction, Direction::OneToMany);
    assert!(!parent.uselist, "backref(uselist=False) makes the reverse a scalar: one-to-one");
}

#[test]
fn one_to_one_uselist_false() {
    let schema = parent_child(
        vec![("child", Relationship::new("Child").uselist(false).back_populates("parent"))],
        vec![("parent", Relationship::new("Parent").back_populates("child"))],
    )
    .configure()
    .unwrap();
    let link = schema.link(rel(&schema, "Parent", "child").link);
    assert!(!link.ends[0].many && !link.ends[1].many);
}

#[test]
fn many_to_many_all_three_secondary_forms() {
    // The handle `Registry::table` returned for the association table comes first in `left_right`.
    let assoc = left_right(vec![], vec![]).table_id("association").unwrap();
    let by_handle = left_right(
        vec![("children", Relationship::new("Child").secondary(assoc).backref("parents"))],
        vec![],
    )
    .configure()
    .unwrap();
    let by_name = left_right(
        vec![("children", Relationship::new("Child").secondary("association").backref("parents"))],
        vec![],
    )
    .configure()
    .unwrap();
    let by_closure = left_right(
        vec![(
            "children",
            Relationship::new("Child").secondary_with(|reg| reg.table_id("association")).backref("parents"),
        )],
        vec![],
    )
    .configure()
    .unwrap();
    for schema in [by_handle, by_name, by_closure] {
        let children = rel(&schema, "Parent", "children");
        assert_eq!(children.direction, Direction::ManyToMany);
        let link = schema.link(children.link);
        assert!(matches!(link.kind, LinkKind::Secondary { .. }));
        assert!(link.ends[0].many && link.ends[1].many);
        assert_eq!(rel(&schema, "Child", "parents").direction, Direction::ManyToMany);
    }
}

#[test]
fn late_bound_secondary_sees_tables_defined_after_the_entity() {
    let mut reg = Registry::new();
    reg.entity(Entity::new("Parent", "left").column(Column::integer("id").primary_key()).relationship(
        "children",
        Relationship::new("Child").secondary_with(|reg| reg.table_id("association")).backref("parents"),
    ))
    .unwrap();
    reg.entity(Entity::new("Child", "right").column(Column::integer("id").primary_key())).unwrap();
    reg.table(
        Table::new("association")
            .column(Column::integer("left_id").foreign_key("left.id"))
            .column(Column::integer("right_id").foreign_key("right.id")),
    )
    .unwrap();
    let schema = reg.configure().unwrap();
    assert_eq!(rel(&schema, "Child", "parents").direction, Direction::ManyToMany);
}

#[test]
fn the_seeds_traceback_and_extend_existing() {
    let mut reg = Registry::new();
    let first = reg.table(Table::new("association").column(Column::integer("left_id"))).unwrap();
    let err = reg.table(Table::new("association").column(Column::integer("right_id"))).unwrap_err();
    assert_eq!(err, ConfigError::TableExists { table: "association".into() });
    let message = err.to_string();
    assert!(message.contains("'association'") && message.contains("extend_existing"), "{message}");
    let second =
        reg.table(Table::new("association").extend_existing().column(Column::integer("right_id"))).unwrap();
    assert_eq!(first, second);
    reg.entity(Entity::new("Anchor", "anchor").column(Column::integer("id").primary_key())).unwrap();
    let schema = reg.configure().unwrap();
    let table = schema.table(schema.table_id("association").unwrap());
    let names: Vec<_> = table.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["left_id", "right_id"]);
}

#[test]
fn entity_redefining_a_table_gets_the_same_error() {
    let mut reg = Registry::new();
    reg.entity(Entity::new("A", "t").column(Column::integer("id").primary_key())).unwrap();
    let err = reg.entity(Entity::new("B", "t").column(Column::integer("id").primary_key())).unwrap_err();
    assert!(matches!(err, ConfigError::TableExists { .. }));
    let err = reg.entity(Entity::new("A", "u").column(Column::integer("id").primary_key())).unwrap_err();
    assert_eq!(err, ConfigError::EntityExists { entity: "A".into() });
}

#[test]
fn duplicate_column() {
    let mut reg = Registry::new();
    let err = reg.table(Table::new("t").column(Column::integer("a")).column(Column::text("a"))).unwrap_err();
    assert!(err.to_string().contains("'t'") && err.to_string().contains("'a'"));
}

#[test]
fn foreign_key_to_unknown_table() {
    let mut reg = Registry::new();
    reg.table(Table::new("association").column(Column::integer("left_id").foreign_key("left.id"))).unwrap();
    check_err(&reg, &["association.left_id", "unknown table 'left'"]);
}

#[test]
fn foreign_key_to_unknown_column() {
    let mut reg = Registry::new();
    reg.table(Table::new("left").column(Column::integer("id").primary_key())).unwrap();
    reg.table(Table::new("association").column(Column::integer("left_id").foreign_key("left.ident")))
        .unwrap();
    check_err(&reg, &["association.left_id", "unknown column 'ident'", "'left'"]);
}

#[test]
fn malformed_and_mismatched_foreign_keys() {
    let mut reg = Registry::new();
    reg.table(Table::new("left").column(Column::integer("id").primary_key()).column(Column::text("name")))
        .unwrap();
    reg.table(Table::new("a").column(Column::integer("x").foreign_key("left"))).unwrap();
    check_err(&reg, &["a.x", "\"table.column\"", "'left'"]);

    let mut reg = Registry::new();
    reg.table(Table::new("left").column(Column::integer("id").primary_key()).column(Column::text("name")))
        .unwrap();
    reg.table(Table::new("a").column(Column::text("x").foreign_key("left.id"))).unwrap();
    check_err(&reg, &["a.x", "left.id", "TEXT", "INTEGER"]);

    let mut reg = Registry::new();
    reg.table(Table::new("left").column(Column::integer("id").primary_key()).column(Column::text("name")))
        .unwrap();
    reg.table(Table::new("a").column(Column::text("x").foreign_key("left.name"))).unwrap();
    check_err(&reg, &["a.x", "left.name", "neither the primary key nor unique"]);
}

#[test]
fn unknown_target_entity() {
    let reg = parent_child(vec![("children", Relationship::new("Kid"))], vec![]);
    check_err(&reg, &["Parent.children", "unknown entity 'Kid'"]);
}

#[test]
fn back_populates_naming_a_missing_relationship() {
    let reg = parent_child(vec![("children", Relationship::new("Child").back_populates("parent"))], vec![]);
    let err = check_err(&reg, &["Parent.children", "back_populates='parent'", "'Child'"]);
    assert!(matches!(err, ConfigError::BackPopulatesMissing { .. }));
}

#[test]
fn one_sided_back_populates_is_an_error() {
    let reg = parent_child(
        vec![("children", Relationship::new("Child").back_populates("parent"))],
        vec![("parent", Relationship::new("Parent"))],
    );
    let err = check_err(&reg, &["Parent.children", "Child.parent", "one-sided"]);
    assert!(matches!(err, ConfigError::BackPopulatesNotReciprocal { .. }));
}

#[test]
fn back_populates_pointing_elsewhere() {
    let reg = parent_child(
        vec![
            ("children", Relationship::new("Child").back_populates("parent")),
            ("kids", Relationship::new("Child").back_populates("parent")),
        ],
        vec![("parent", Relationship::new("Parent").back_populates("kids"))],
    );
    check_err(&reg, &["Parent.children", "Child.parent", "names 'kids' instead"]);
}

#[test]
fn backref_name_already_taken() {
    let reg = parent_child(
        vec![("children", Relationship::new("Child").backref("parent"))],
        vec![("parent", Relationship::new("Parent"))],
    );
    let err = check_err(&reg, &["backref 'parent'", "Parent.children", "Child.parent"]);
    assert!(matches!(err, ConfigError::BackrefConflict { .. }));
    // A column takes the name as well.
    let reg = parent_child(vec![("children", Relationship::new("Child").backref("parent_id"))], vec![]);
    check_err(&reg, &["backref 'parent_id'", "column child.parent_id"]);
}

#[test]
fn backref_and_back_populates_together() {
    let reg = parent_child(
        vec![("children", Relationship::new("Child").backref("parent").back_populates("parent"))],
        vec![],
    );
    check_err(&reg, &["Parent.children", "both backref and back_populates"]);
}

#[test]
fn no_foreign_key_path() {
    let mut reg = Registry::new();
    reg.entity(
        Entity::new("A", "a")
            .column(Column::integer("id").primary_key())
            .relationship("bs", Relationship::new("B")),
    )
    .unwrap();
    reg.entity(Entity::new("B", "b").column(Column::integer("id").primary_key())).unwrap();
    let err = check_err(&reg, &["A.bs", "'a'", "'b'"]);
    assert!(matches!(err, ConfigError::NoForeignKeyPath { .. }));
}

#[test]
fn ambiguous_foreign_key_path_and_its_fix() {
    let build = |rel: Relationship| {
        let mut reg = Registry::new();
        reg.entity(Entity::new("Customer", "customer").column(Column::integer("id").primary_key())).unwrap();
        reg.entity(
            Entity::new("Invoice", "invoice")
                .column(Column::integer("id").primary_key())
                .column(Column::integer("billing_id").foreign_key("customer.id"))
                .column(Column::integer("shipping_id").foreign_key("customer.id"))
                .relationship("billing", rel),
        )
        .unwrap();
        reg
    };
    let err = check_err(
        &build(Relationship::new("Customer")),
        &["Invoice.billing", "invoice.billing_id", "invoice.shipping_id", "foreign_keys"],
    );
    assert!(matches!(err, ConfigError::AmbiguousForeignKeyPath { .. }));
    let schema =
        build(Relationship::new("Customer").foreign_keys(["invoice.billing_id"])).configure().unwrap();
    let billing = rel(&schema, "Invoice", "billing");
    assert_eq!(billing.direction, Direction::ManyToOne);
    let LinkKind::ForeignKey(fk) = schema.link(billing.link).kind else { panic!("foreign-key link") };
    assert_eq!(schema.foreign_key(fk).columns, [1]);
    check_err(
        &build(Relationship::new("Customer").foreign_keys(["invoice.nope"])),
        &["foreign_keys", "'invoice.nope'"],
    );
}

#[test]
fn secondary_that_does_not_reference_both_sides() {
    let mut reg = Registry::new();
    reg.table(Table::new("association").column(Column::integer("left_id").foreign_key("left.id"))).unwrap();
    reg.entity(
        Entity::new("Parent", "left")
            .column(Column::integer("id").primary_key())
            .relationship("children", Relationship::new("Child").secondary("association")),
    )
    .unwrap();
    reg.entity(Entity::new("Child", "right").column(Column::integer("id").primary_key())).unwrap();
    let err = check_err(&reg, &["Parent.children", "'association'", "no foreign key to table 'right'"]);
    assert!(matches!(err, ConfigError::SecondaryMissingForeignKey { .. }));
}

#[test]
fn unknown_or_unresolved_secondary() {
    let reg = left_right(vec![("children", Relationship::new("Child").secondary("assoc"))], vec![]);
    check_err(&reg, &["Parent.children", "secondary='assoc'"]);
    let reg = left_right(vec![("children", Relationship::new("Child").secondary_with(|_| None))], vec![]);
    check_err(&reg, &["Parent.children", "closure returned no table"]);
}

#[test]
fn cascade_words() {
    let schema = parent_child(
        vec![("children", Relationship::new("Child").cascade("all, delete-orphan").back_populates("parent"))],
        vec![("parent", Relationship::new("Parent").back_populates("children"))],
    )
    .configure()
    .unwrap();
    let children = rel(&schema, "Parent", "children");
    assert!(children.cascade.contains(Cascade::ALL | Cascade::DELETE_ORPHAN));
    assert_eq!(rel(&schema, "Child", "parent").cascade, Cascade::default());
    let reg =
        parent_child(vec![("children", Relationship::new("Child").cascade("all, delete-orphin"))], vec![]);
    check_err(&reg, &["Parent.children", "unknown cascade 'delete-orphin'"]);
}

#[test]
fn delete_orphan_on_many_side_needs_single_parent() {
    let reg =
        parent_child(vec![], vec![("parent", Relationship::new("Parent").cascade("all, delete-orphan"))]);
    check_err(&reg, &["Child.parent", "many-to-one", "single_parent"]);
    let reg = parent_child(
        vec![],
        vec![("parent", Relationship::new("Parent").cascade("all, delete-orphan").single_parent(true))],
    );
    reg.configure().unwrap();
    let reg = left_right(
        vec![("children", Relationship::new("Child").secondary("association").cascade("delete-orphan"))],
        vec![],
    );
    check_err(&reg, &["Parent.children", "many-to-many", "single_parent"]);
}

#[test]
fn passive_deletes_all_with_delete_cascade() {
    let reg = parent_child(
        vec![("children", Relationship::new("Child").cascade("all").passive_deletes(PassiveDeletes::All))],
        vec![],
    );
    check_err(&reg, &["Parent.children", "passive_deletes=all"]);
    let schema = parent_child(
        vec![("children", Relationship::new("Child").cascade("all").passive_deletes(true))],
        vec![],
    )
    .configure()
    .unwrap();
    assert_eq!(rel(&schema, "Parent", "children").passive_deletes, PassiveDeletes::On);
}

#[test]
fn uselist_true_on_many_to_one_is_refused() {
    let reg = parent_child(vec![], vec![("parent", Relationship::new("Parent").uselist(true))]);
    check_err(&reg, &["Child.parent", "many-to-one"]);
}

#[test]
fn relationship_name_taken_by_a_column() {
    let reg = parent_child(vec![], vec![("parent_id", Relationship::new("Parent"))]);
    check_err(&reg, &["Child.parent_id", "column child.parent_id"]);
}

#[test]
fn self_referential_adjacency_list() {
    let build = |parent: Relationship| {
        let mut reg = Registry::new();
        reg.entity(
            Entity::new("Node", "node")
                .column(Column::integer("id").primary_key())
                .column(Column::integer("parent_id").foreign_key("node.id"))
                .relationship("children", Relationship::new("Node").back_populates("parent"))
                .relationship("parent", parent),
        )
        .unwrap();
        reg
    };
    let schema =
        build(Relationship::new("Node").back_populates("children").remote_side(["id"])).configure().unwrap();
    assert_eq!(rel(&schema, "Node", "children").direction, Direction::OneToMany);
    assert_eq!(rel(&schema, "Node", "parent").direction, Direction::ManyToOne);
    assert_eq!(schema.entity(schema.entity_id("Node").unwrap()).slots.len(), 2);
    check_err(
        &build(Relationship::new("Node").back_populates("children")),
        &["Node.children", "Node.parent", "remote_side"],
    );
}

#[test]
fn self_referential_many_to_many() {
    let mut reg = Registry::new();
    reg.table(
        Table::new("friendship")
            .column(Column::integer("a_id").foreign_key("person.id"))
            .column(Column::integer("b_id").foreign_key("person.id")),
    )
    .unwrap();
    reg.entity(Entity::new("Person", "person").column(Column::integer("id").primary_key()).relationship(
        "friends",
        Relationship::new("Person").secondary("friendship").foreign_keys(["a_id"]).backref("friend_of"),
    ))
    .unwrap();
    let schema = reg.configure().unwrap();
    assert_eq!(rel(&schema, "Person", "friend_of").direction, Direction::ManyToMany);
    let mut reg = Registry::new();
    reg.table(
        Table::new("friendship")
            .column(Column::integer("a_id").foreign_key("person.id"))
            .column(Column::integer("b_id").foreign_key("person.id")),
    )
    .unwrap();
    reg.entity(
        Entity::new("Person", "person")
            .column(Column::integer("id").primary_key())
            .relationship("friends", Relationship::new("Person").secondary("friendship")),
    )
    .unwrap();
    check_err(&reg, &["Person.friends", "friendship.a_id", "friendship.b_id"]);
}

#[test]
fn mapped_table_without_primary_key() {
    let mut reg = Registry::new();
    reg.table(Table::new("t").column(Column::integer("a"))).unwrap();
    reg.entity(Entity::new("T", "t")).unwrap();
    check_err(&reg, &["'t'", "'T'", "no primary key"]);
}

#[test]
fn columns_defaults_and_keys() {
    let mut reg = Registry::new();
    reg.entity(
        Entity::new("Item", "item")
            .column(Column::integer("shop").primary_key())
            .column(Column::text("sku").primary_key())
            .column(Column::text("name").not_null().default("unnamed"))
            .column(Column::float("price"))
            .column(Column::boolean("active").default(true))
            .column(Column::blob("image"))
            .column(Column::text("code").unique())
            .unique(["name", "price"]),
    )
    .unwrap();
    let schema = reg.configure().unwrap();
    let table = schema.table(schema.table_id("item").unwrap());
    assert_eq!(table.primary_key, [0, 1]);
    assert!(!table.columns[0].autoincrement, "composite keys are not autoincrement");
    assert!(!table.columns[2].nullable);
    assert_eq!(table.columns[2].default, Some(Value::from("unnamed")));
    assert!(table.uniques.contains(&vec![6]) && table.uniques.contains(&vec![2, 3]));
    let single = parent_child(vec![], vec![]).configure().unwrap();
    assert!(single.table(single.table_id("parent").unwrap()).columns[0].autoincrement);
}

#[test]
fn composite_foreign_key() {
    let mut reg = Registry::new();
    reg.entity(
        Entity::new("Shop", "shop")
            .column(Column::integer("region").primary_key())
            .column(Column::integer("number").primary_key()),
    )
    .unwrap();
    reg.entity(
        Entity::new("Order", "orders")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("shop_region"))
            .column(Column::integer("shop_number"))
            .foreign_key(
                ForeignKey::new(["shop_region", "shop_number"], "shop", ["region", "number"])
                    .on_delete(OnDelete::Cascade),
            )
            .relationship("shop", Relationship::new("Shop").backref("orders")),
    )
    .unwrap();
    let schema = reg.configure().unwrap();
    let shop = rel(&schema, "Order", "shop");
    let LinkKind::ForeignKey(fk) = schema.link(shop.link).kind else { panic!("foreign-key link") };
    assert_eq!(schema.foreign_key(fk).columns, [1, 2]);
    assert_eq!(schema.foreign_key(fk).on_delete, OnDelete::Cascade);
}

#[test]
fn schema_is_send_sync_and_fingerprint_is_stable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Schema>();
    let a = parent_child(vec![], vec![]).configure().unwrap();
    let b = parent_child(vec![("children", Relationship::new("Child"))], vec![]).configure().unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint(), "relationships do not change the stored shape");
    let mut reg = parent_child(vec![], vec![]);
    reg.table(Table::new("extra").column(Column::integer("id").primary_key())).unwrap();
    assert_ne!(a.fingerprint(), reg.configure().unwrap().fingerprint());
}
