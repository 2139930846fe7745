//! Column values: defaults, type checks when written, NOT NULL, and
//! foreign-key columns that only links may write.

mod common;

use common::Fx;
use relgraph::{Column, ColumnType, Entity, GraphError, Registry, Relationship, Value};

fn fx() -> Fx {
    let mut base = Registry::new();
    base.entity(
        Entity::new("Parent", "parent")
            .column(Column::integer("id").primary_key())
            .column(Column::text("name").not_null().default("unnamed"))
            .column(Column::float("score"))
            .column(Column::boolean("active").default(true))
            .column(Column::blob("avatar"))
            .relationship("children", Relationship::new("Child").backref("parent")),
    )
    .unwrap();
    base.entity(
        Entity::new("Child", "child")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("parent_id").foreign_key("parent.id")),
    )
    .unwrap();
    Fx::new(base.configure().unwrap())
}

#[test]
fn defaults_and_typed_writes() {
    let mut fx = fx();
    let parent = fx.schema.entity_id("Parent").unwrap();
    let col = |name| fx.schema.entity_column(parent, name).unwrap();
    let (id, name, score, active, avatar) =
        (col("id"), col("name"), col("score"), col("active"), col("avatar"));
    let p = fx.graph.insert(parent);
    assert_eq!(fx.graph.value(p, name).unwrap(), &Value::from("unnamed"));
    assert_eq!(fx.graph.value(p, active).unwrap(), &Value::Boolean(true));
    assert_eq!(fx.graph.value(p, id).unwrap(), &Value::Null, "the store generates autoincrement keys");
    assert_eq!(fx.graph.set_value(p, name, "Ada").unwrap(), Value::from("unnamed"));
    fx.graph.set_value(p, score, 1.5).unwrap();
    fx.graph.set_value(p, avatar, vec![1u8, 2, 3]).unwrap();
    fx.graph.set_value(p, id, 7).unwrap();
    fx.graph.set_value(p, id, None::<i64>).unwrap();
    assert_eq!(fx.graph.row(p).unwrap()[1], Value::from("Ada"));

    let err = fx.graph.set_value(p, score, "high").unwrap_err();
    assert_eq!(
        err,
        GraphError::TypeMismatch {
            column: "parent.score".into(),
            expected: ColumnType::Float,
            found: ColumnType::Text
        }
    );
    assert_eq!(err.to_string(), "column parent.score is REAL, not TEXT");
    let err = fx.graph.set_value(p, name, Value::Null).unwrap_err();
    assert_eq!(err.to_string(), "column parent.name is NOT NULL");
    assert_eq!(fx.graph.value(p, name).unwrap(), &Value::from("Ada"), "a refused write changes nothing");

    let child = fx.schema.entity_id("Child").unwrap();
    let child_id = fx.schema.entity_column(child, "id").unwrap();
    let err = fx.graph.value(p, child_id).unwrap_err();
    assert_eq!(err.to_string(), "column child.id is not a column of entity 'Parent'");
}

#[test]
fn insert_with_checks_every_value_first() {
    let mut fx = fx();
    let parent = fx.schema.entity_id("Parent").unwrap();
    let name = fx.schema.entity_column(parent, "name").unwrap();
    let score = fx.schema.entity_column(parent, "score").unwrap();
    let p = fx.graph.insert_with(parent, [(name, Value::from("Bo")), (score, Value::from(2.0))]).unwrap();
    assert_eq!(fx.graph.value(p, score).unwrap(), &Value::Float(2.0));
    let before = fx.graph.len();
    assert!(fx.graph.insert_with(parent, [(name, Value::from("x")), (score, Value::from(1))]).is_err());
    assert_eq!(fx.graph.len(), before, "nothing is added on error");
}

#[test]
fn foreign_key_columns_are_written_by_links() {
    let mut fx = fx();
    let child = fx.schema.entity_id("Child").unwrap();
    let parent_id = fx.schema.entity_column(child, "parent_id").unwrap();
    let c = fx.graph.insert(child);
    let err = fx.graph.set_value(c, parent_id, 3).unwrap_err();
    assert!(matches!(err, GraphError::ManagedColumn { .. }));
    assert_eq!(
        err.to_string(),
        "column child.parent_id is written from the links of relationship Child.parent; link the objects instead"
    );
}

#[test]
fn stale_keys_are_refused_everywhere() {
    let mut fx = fx();
    let p = fx.new_obj("Parent");
    fx.graph.remove(p).unwrap();
    assert_eq!(fx.graph.remove(p), Err(GraphError::StaleKey(p)));
    assert_eq!(fx.graph.row(p), Err(GraphError::StaleKey(p)));
    assert!(!fx.graph.contains(p));
    assert!(matches!(fx.graph.members(p, fx.rel("Parent.children")), Err(GraphError::StaleKey(_))));
}
