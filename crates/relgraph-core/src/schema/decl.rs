//! Declarations: what a user writes before `configure()`, close to SQLAlchemy's spelling.
//!
//! Every builder here is infallible; names are checked when the table is
//! defined (duplicates) or when the registry is configured (everything that
//! refers to something else), so a mapping reads top to bottom like the seed.

use std::fmt;
use std::sync::Arc;

use super::{OnDelete, PassiveDeletes, Registry, TableId};
use crate::schema::cascade::Cascade;
use crate::value::{ColumnType, Value};

/// A column declaration, as SQLAlchemy's `Column`.
#[derive(Clone, Debug)]
pub struct Column {
    pub(crate) name: String,
    pub(crate) ty: ColumnType,
    pub(crate) nullable: Option<bool>,
    pub(crate) primary_key: bool,
    pub(crate) autoincrement: Option<bool>,
    pub(crate) unique: bool,
    pub(crate) default: Option<Value>,
    pub(crate) foreign_key: Option<(String, OnDelete)>,
}

impl Column {
    /// A nullable column of the given type.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Self {
        Column {
            name: name.into(),
            ty,
            nullable: None,
            primary_key: false,
            autoincrement: None,
            unique: false,
            default: None,
            foreign_key: None,
        }
    }

    /// An `INTEGER` column.
    pub fn integer(name: impl Into<String>) -> Self {
        Column::new(name, ColumnType::Integer)
    }

    /// A `TEXT` column.
    pub fn text(name: impl Into<String>) -> Self {
        Column::new(name, ColumnType::Text)
    }

    /// A `REAL` column.
    pub fn float(name: impl Into<String>) -> Self {
        Column::new(name, ColumnType::Float)
    }

    /// A `BOOLEAN` column.
    pub fn boolean(name: impl Into<String>) -> Self {
        Column::new(name, ColumnType::Boolean)
    }

    /// A `BLOB` column.
    pub fn blob(name: impl Into<String>) -> Self {
        Column::new(name, ColumnType::Blob)
    }

    /// Makes the column part of the primary key (and NOT NULL).
    ///
    /// A single integer primary key is autoincrement unless told otherwise, as in SQLAlchemy.
    pub fn primary_key(mut self) -> Self {
        self.primary_key = true;
        self
    }

    /// Sets whether the store generates this primary key's value when none is given.
    pub fn autoincrement(mut self, on: bool) -> Self {
        self.autoincrement = Some(on);
        self
    }

    /// Sets whether the column accepts NULL (default: yes, unless it is a primary key).
    pub fn nullable(mut self, nullable: bool) -> Self {
        self.nullable = Some(nullable);
        self
    }

    /// Shorthand for `nullable(false)`.
    pub fn not_null(self) -> Self {
        self.nullable(false)
    }

    /// Adds a single-column unique constraint.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// The value a new object gets for this column.
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// References `"table.column"`, as SQLAlchemy's `ForeignKey('parent.id')`.
    pub fn foreign_key(mut self, target: impl Into<String>) -> Self {
        self.foreign_key = Some((target.into(), OnDelete::NoAction));
        self
    }

    /// Sets the `ON DELETE` action of this column's foreign key.
    ///
    /// Without a foreign key this does nothing; `configure()` is where a
    /// dangling option would matter, and there is none to dangle.
    pub fn on_delete(mut self, action: OnDelete) -> Self {
        if let Some((_, on_delete)) = &mut self.foreign_key {
            *on_delete = action;
        }
        self
    }
}

/// A foreign key over one or more columns, declared on a table.
#[derive(Clone, Debug)]
pub struct ForeignKey {
    pub(crate) columns: Vec<String>,
    pub(crate) ref_table: String,
    pub(crate) ref_columns: Vec<String>,
    pub(crate) on_delete: OnDelete,
}

impl ForeignKey {
    /// `columns` reference `ref_columns` of `ref_table`, in order.
    pub fn new<C, R>(columns: C, ref_table: impl Into<String>, ref_columns: R) -> Self
    where
        C: IntoIterator,
        C::Item: Into<String>,
        R: IntoIterator,
        R::Item: Into<String>,
    {
        ForeignKey {
            columns: columns.into_iter().map(Into::into).collect(),
            ref_table: ref_table.into(),
            ref_columns: ref_columns.into_iter().map(Into::into).collect(),
            on_delete: OnDelete::NoAction,
        }
    }

    /// Sets the `ON DELETE` action.
    pub fn on_delete(mut self, action: OnDelete) -> Self {
        self.on_delete = action;
        self
    }
}

/// A table declaration, as SQLAlchemy's `Table(name, metadata, *columns)`.
#[derive(Clone, Debug)]
pub struct Table {
    pub(crate) name: String,
    pub(crate) columns: Vec<Column>,
    pub(crate) uniques: Vec<Vec<String>>,
    pub(crate) foreign_keys: Vec<ForeignKey>,
    pub(crate) extend_existing: bool,
}

impl Table {
    /// An empty table declaration.
    pub fn new(name: impl Into<String>) -> Self {
        Table {
            name: name.into(),
            columns: Vec::new(),
            uniques: Vec::new(),
            foreign_keys: Vec::new(),
            extend_existing: false,
        }
    }

    /// Adds a column.
    pub fn column(mut self, column: Column) -> Self {
        self.columns.push(column);
        self
    }

    /// Adds a unique constraint over several columns.
    pub fn unique<I>(mut self, columns: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.uniques.push(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a (possibly composite) foreign key.
    pub fn foreign_key(mut self, fk: ForeignKey) -> Self {
        self.foreign_keys.push(fk);
        self
    }

    /// Redefines a table of the same name that is already in the registry:
    /// columns of the same name are replaced, new ones are added, constraints
    /// are added. Without this, defining a table twice is an error.
    pub fn extend_existing(mut self) -> Self {
        self.extend_existing = true;
        self
    }
}

/// A closure that picks an association table when the registry is configured.
pub type ResolveSecondary = Arc<dyn Fn(&Registry) -> Option<TableId> + Send + Sync>;

/// Where a many-to-many relationship's association table comes from: the
/// three ways of the seed.
#[derive(Clone)]
pub enum Secondary {
    /// A table handle returned by [`Registry::table`].
    Table(TableId),
    /// A table name, looked up when the registry is configured.
    Name(String),
    /// A closure evaluated when the registry is configured (late binding, as
    /// the seed's `secondary=lambda: association_table`).
    Deferred(ResolveSecondary),
}

impl fmt::Debug for Secondary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secondary::Table(id) => f.debug_tuple("Table").field(id).finish(),
            Secondary::Name(name) => f.debug_tuple("Name").field(name).finish(),
            Secondary::Deferred(_) => f.write_str("Deferred(..)"),
        }
    }
}

impl From<TableId> for Secondary {
    fn from(id: TableId) -> Self {
        Secondary::Table(id)
    }
}

impl From<&str> for Secondary {
    fn from(name: &str) -> Self {
        Secondary::Name(name.to_owned())
    }
}

impl From<String> for Secondary {
    fn from(name: String) -> Self {
        Secondary::Name(name)
    }
}

/// A cascade given either as SQLAlchemy's string or as typed flags.
#[derive(Clone, Debug)]
pub enum CascadeSpec {
    /// A string such as `"all, delete-orphan"`, parsed by `configure()`.
    Text(String),
    /// Typed flags.
    Flags(Cascade),
}

impl From<&str> for CascadeSpec {
    fn from(text: &str) -> Self {
        CascadeSpec::Text(text.to_owned())
    }
}

impl From<Cascade> for CascadeSpec {
    fn from(flags: Cascade) -> Self {
        CascadeSpec::Flags(flags)
    }
}

/// Options shared by a relationship and a backref.
#[derive(Clone, Debug, Default)]
pub(crate) struct SideOptions {
    pub(crate) uselist: Option<bool>,
    pub(crate) cascade: Option<CascadeSpec>,
    pub(crate) passive_deletes: PassiveDeletes,
    pub(crate) single_parent: bool,
    pub(crate) post_update: bool,
}

/// The reverse side declared from one side, as SQLAlchemy's `backref("name", uselist=False)`.
#[derive(Clone, Debug)]
pub struct Backref {
    pub(crate) name: String,
    pub(crate) options: SideOptions,
}

impl Backref {
    /// A backref with default options.
    pub fn new(name: impl Into<String>) -> Self {
        Backref { name: name.into(), options: SideOptions::default() }
    }

    /// `uselist` of the reverse side.
    pub fn uselist(mut self, uselist: bool) -> Self {
        self.options.uselist = Some(uselist);
        self
    }

    /// The reverse side's cascade.
    pub fn cascade(mut self, cascade: impl Into<CascadeSpec>) -> Self {
        self.options.cascade = Some(cascade.into());
        self
    }

    /// The reverse side's `passive_deletes`.
    pub fn passive_deletes(mut self, passive: impl Into<PassiveDeletes>) -> Self {
        self.options.passive_deletes = passive.into();
        self
    }

    /// The reverse side's `single_parent`.
    pub fn single_parent(mut self, on: bool) -> Self {
        self.options.single_parent = on;
        self
    }
}

impl From<&str> for Backref {
    fn from(name: &str) -> Self {
        Backref::new(name)
    }
}

impl From<String> for Backref {
    fn from(name: String) -> Self {
        Backref::new(name)
    }
}

/// A relationship declaration, as SQLAlchemy's `relationship("Child", ...)`.
#[derive(Clone, Debug)]
pub struct Relationship {
    pub(crate) target: String,
    pub(crate) back_populates: Option<String>,
    pub(crate) backref: Option<Backref>,
    pub(crate) secondary: Option<Secondary>,
    pub(crate) foreign_keys: Vec<String>,
    pub(crate) remote_side: Vec<String>,
    pub(crate) options: SideOptions,
}

impl Relationship {
    /// A relationship to the entity named `target`.
    pub fn new(target: impl Into<String>) -> Self {
        Relationship {
            target: target.into(),
            back_populates: None,
            backref: None,
            secondary: None,
            foreign_keys: Vec::new(),
            remote_side: Vec::new(),
            options: SideOptions::default(),
        }
    }

    /// Names the reverse relationship, which must name this one back.
    pub fn back_populates(mut self, name: impl Into<String>) -> Self {
        self.back_populates = Some(name.into());
        self
    }

    /// Declares the reverse relationship from this side.
    pub fn backref(mut self, backref: impl Into<Backref>) -> Self {
        self.backref = Some(backref.into());
        self
    }

    /// `uselist=False` makes a one-to-many side a scalar (one-to-one).
    pub fn uselist(mut self, uselist: bool) -> Self {
        self.options.uselist = Some(uselist);
        self
    }

    /// The association table of a many-to-many relationship: a handle, a name, or see [`Relationship::secondary_with`].
    pub fn secondary(mut self, secondary: impl Into<Secondary>) -> Self {
        self.secondary = Some(secondary.into());
        self
    }

    /// The association table, chosen by a closure when the registry is configured.
    pub fn secondary_with<F>(mut self, resolve: F) -> Self
    where
        F: Fn(&Registry) -> Option<TableId> + Send + Sync + 'static,
    {
        self.secondary = Some(Secondary::Deferred(Arc::new(resolve)));
        self
    }

    /// The cascade: a SQLAlchemy string such as `"all, delete-orphan"` or [`Cascade`] flags.
    pub fn cascade(mut self, cascade: impl Into<CascadeSpec>) -> Self {
        self.options.cascade = Some(cascade.into());
        self
    }

    /// `passive_deletes`: `false`, `true` or [`PassiveDeletes::All`].
    pub fn passive_deletes(mut self, passive: impl Into<PassiveDeletes>) -> Self {
        self.options.passive_deletes = passive.into();
        self
    }

    /// `single_parent=True`, required for `delete-orphan` on a many-to-one or many-to-many side.
    pub fn single_parent(mut self, on: bool) -> Self {
        self.options.single_parent = on;
        self
    }

    /// Names the foreign-key columns to use where more than one path exists
    /// (`"table.column"` or a bare column name). For a many-to-many
    /// relationship they are the association-table columns that reference
    /// this side.
    pub fn foreign_keys<I>(mut self, columns: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.foreign_keys = columns.into_iter().map(Into::into).collect();
        self
    }

    /// For a self-referential relationship, names the referenced (remote)
    /// columns, making this side many-to-one, as SQLAlchemy's `remote_side=[id]`.
    pub fn remote_side<I>(mut self, columns: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.remote_side = columns.into_iter().map(Into::into).collect();
        self
    }

    /// `post_update=True`: write this link with a separate UPDATE after the rows exist.
    pub fn post_update(mut self, on: bool) -> Self {
        self.options.post_update = on;
        self
    }
}

/// A mapped class: an entity name, its table, and its relationships.
///
/// Columns given here define the table as the declarative `__tablename__`
/// does; an entity without columns maps a table already in the registry.
#[derive(Clone, Debug)]
pub struct Entity {
    pub(crate) name: String,
    pub(crate) table: String,
    pub(crate) columns: Vec<Column>,
    pub(crate) table_constraints: Table,
    pub(crate) relationships: Vec<(String, Relationship)>,
}

impl Entity {
    /// An entity named `name` mapped to table `table`.
    pub fn new(name: impl Into<String>, table: impl Into<String>) -> Self {
        let table = table.into();
        Entity {
            name: name.into(),
            table_constraints: Table::new(table.clone()),
            table,
            columns: Vec::new(),
            relationships: Vec::new(),
        }
    }

    /// Adds a column to the entity's table.
    pub fn column(mut self, column: Column) -> Self {
        self.columns.push(column);
        self
    }

    /// Adds a multi-column unique constraint to the entity's table.
    pub fn unique<I>(mut self, columns: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.table_constraints = self.table_constraints.unique(columns);
        self
    }

    /// Adds a composite foreign key to the entity's table.
    pub fn foreign_key(mut self, fk: ForeignKey) -> Self {
        self.table_constraints = self.table_constraints.foreign_key(fk);
        self
    }

    /// Adds a relationship named `name`.
    pub fn relationship(mut self, name: impl Into<String>, relationship: Relationship) -> Self {
        self.relationships.push((name.into(), relationship));
        self
    }
}
