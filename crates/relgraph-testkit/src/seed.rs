//! The mappings of the seed page (SQLAlchemy's "Basic Relationship
//! Patterns"), each written as close to the Python as Rust allows. Tests
//! and the walkthrough example build their schemas from here.

use std::sync::Arc;

use relgraph_core::{Backref, Column, ConfigError, Entity, Registry, Relationship, Schema, Table, TableId};

/// How the two sides of a relationship are declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sides {
    /// Only the first side is declared.
    OneWay,
    /// Both sides, naming each other with `back_populates`.
    BackPopulates,
    /// The first side declares the second with `backref`.
    Backref,
}

/// How a many-to-many relationship names its association table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecondaryForm {
    /// `secondary=association_table`.
    Handle,
    /// `secondary="association"`.
    Name,
    /// `secondary=lambda: association_table`.
    Closure,
}

/// One To Many: `Parent.children`, foreign key `child.parent_id`.
///
/// ```python
/// class Parent(Base):
///     __tablename__ = 'parent'
///     id = Column(Integer, primary_key=True)
///     children = relationship("Child", back_populates="parent")
/// ```
///
/// # Errors
/// None for these mappings; the `Result` keeps `?` usable in callers.
pub fn one_to_many(sides: Sides) -> Result<Arc<Schema>, ConfigError> {
    let mut base = Registry::new();
    let children = match sides {
        Sides::OneWay => Relationship::new("Child"),
        Sides::BackPopulates => Relationship::new("Child").back_populates("parent"),
        Sides::Backref => Relationship::new("Child").backref("parent"),
    };
    base.entity(
        Entity::new("Parent", "parent")
            .column(Column::integer("id").primary_key())
            .relationship("children", children),
    )?;
    let mut child = Entity::new("Child", "child")
        .column(Column::integer("id").primary_key())
        .column(Column::integer("parent_id").foreign_key("parent.id"));
    if sides == Sides::BackPopulates {
        child = child.relationship("parent", Relationship::new("Parent").back_populates("children"));
    }
    base.entity(child)?;
    base.configure()
}

/// Many To One: `Parent.child`, foreign key `parent.child_id`.
///
/// ```python
/// class Parent(Base):
///     __tablename__ = 'parent'
///     id = Column(Integer, primary_key=True)
///     child_id = Column(Integer, ForeignKey('child.id'))
///     child = relationship("Child", back_populates="parents")
/// ```
///
/// # Errors
/// None for these mappings.
pub fn many_to_one(sides: Sides) -> Result<Arc<Schema>, ConfigError> {
    let mut base = Registry::new();
    let child = match sides {
        Sides::OneWay => Relationship::new("Child"),
        Sides::BackPopulates => Relationship::new("Child").back_populates("parents"),
        Sides::Backref => Relationship::new("Child").backref("parents"),
    };
    base.entity(
        Entity::new("Parent", "parent")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("child_id").foreign_key("child.id"))
            .relationship("child", child),
    )?;
    let mut entity = Entity::new("Child", "child").column(Column::integer("id").primary_key());
    if sides == Sides::BackPopulates {
        entity = entity.relationship("parents", Relationship::new("Parent").back_populates("child"));
    }
    base.entity(entity)?;
    base.configure()
}

/// One To One from one-to-many with `uselist=False`: `Parent.child` / `Child.parent`.
///
/// ```python
/// class Parent(Base):
///     child = relationship("Child", uselist=False, back_populates="parent")
/// class Child(Base):
///     parent_id = Column(Integer, ForeignKey('parent.id'))
///     parent = relationship("Parent", back_populates="child")
/// ```
///
/// # Errors
/// None for this mapping.
pub fn one_to_one() -> Result<Arc<Schema>, ConfigError> {
    let mut base = Registry::new();
    base.entity(
        Entity::new("Parent", "parent")
            .column(Column::integer("id").primary_key())
            .relationship("child", Relationship::new("Child").uselist(false).back_populates("parent")),
    )?;
    base.entity(
        Entity::new("Child", "child")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("parent_id").foreign_key("parent.id"))
            .relationship("parent", Relationship::new("Parent").back_populates("child")),
    )?;
    base.configure()
}

/// One To One from many-to-one with `backref(uselist=False)`: `Parent.child` / `Child.parent`.
///
/// ```python
/// class Parent(Base):
///     child_id = Column(Integer, ForeignKey('child.id'))
///     child = relationship("Child", backref=backref("parent", uselist=False))
/// ```
///
/// # Errors
/// None for this mapping.
pub fn one_to_one_backref() -> Result<Arc<Schema>, ConfigError> {
    let mut base = Registry::new();
    base.entity(
        Entity::new("Parent", "parent")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("child_id").foreign_key("child.id"))
            .relationship("child", Relationship::new("Child").backref(Backref::new("parent").uselist(false))),
    )?;
    base.entity(Entity::new("Child", "child").column(Column::integer("id").primary_key()))?;
    base.configure()
}

/// A self-referential adjacency list (DESIGN rule 14): `Node.children` /
/// `Node.parent`, the foreign key `node.parent_id` on the same table.
///
/// ```python
/// class Node(Base):
///     id = Column(Integer, primary_key=True)
///     parent_id = Column(Integer, ForeignKey('node.id'))
///     children = relationship("Node", back_populates="parent")
///     parent = relationship("Node", back_populates="children", remote_side=[id])
/// ```
///
/// # Errors
/// None for this mapping.
pub fn adjacency_list() -> Result<Arc<Schema>, ConfigError> {
    let mut base = Registry::new();
    base.entity(
        Entity::new("Node", "node")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("parent_id").foreign_key("node.id"))
            .relationship("children", Relationship::new("Node").back_populates("parent"))
            .relationship("parent", Relationship::new("Node").back_populates("children").remote_side(["id"])),
    )?;
    base.configure()
}

/// Defines the seed's `association` table.
///
/// ```python
/// association_table = Table('association', Base.metadata,
///     Column('left_id', Integer, ForeignKey('left.id')),
///     Column('right_id', Integer, ForeignKey('right.id'))
/// )
/// ```
///
/// # Errors
/// [`ConfigError::TableExists`] when it is defined twice, as in the seed's traceback.
pub fn association_table(base: &mut Registry) -> Result<TableId, ConfigError> {
    base.table(
        Table::new("association")
            .column(Column::integer("left_id").foreign_key("left.id"))
            .column(Column::integer("right_id").foreign_key("right.id")),
    )
}

/// Many To Many: `Parent.children` (table `left`) / `Child.parents` (table `right`).
///
/// With [`SecondaryForm::Closure`], the association table is defined after
/// both classes, as the seed's late-binding example allows.
///
/// # Errors
/// None for these mappings.
pub fn many_to_many(sides: Sides, form: SecondaryForm) -> Result<Arc<Schema>, ConfigError> {
    let mut base = Registry::new();
    let handle = match form {
        SecondaryForm::Closure => None,
        _ => Some(association_table(&mut base)?),
    };
    let secondary = |r: Relationship| match (form, handle) {
        (SecondaryForm::Handle, Some(table)) => r.secondary(table),
        (SecondaryForm::Name, _) => r.secondary("association"),
        _ => r.secondary_with(|base| base.table_id("association")),
    };
    let children = match sides {
        Sides::OneWay => secondary(Relationship::new("Child")),
        Sides::BackPopulates => secondary(Relationship::new("Child")).back_populates("parents"),
        Sides::Backref => secondary(Relationship::new("Child")).backref("parents"),
    };
    base.entity(
        Entity::new("Parent", "left")
            .column(Column::integer("id").primary_key())
            .relationship("children", children),
    )?;
    let mut child = Entity::new("Child", "right").column(Column::integer("id").primary_key());
    if sides == Sides::BackPopulates {
        child =
            child.relationship("parents", secondary(Relationship::new("Parent")).back_populates("children"));
    }
    base.entity(child)?;
    if form == SecondaryForm::Closure {
        association_table(&mut base)?;
    }
    base.configure()
}
