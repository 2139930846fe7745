//! The tables a snapshot holds, described in the file itself so that the
//! `relgraph` command can read, check and convert a snapshot without the
//! program that wrote it.

use std::sync::Arc;

use relgraph_core::{Column, ColumnType, ConfigError, ForeignKey, OnDelete, Registry, Schema, Table};

use crate::SnapshotError;
use crate::format::{ArchivedTableRec, ColumnRec, ForeignKeyRec};

/// A column as the file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnDesc {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// Whether it accepts NULL.
    pub nullable: bool,
    /// Whether it is part of the primary key.
    pub primary_key: bool,
    /// Whether the store generates its value.
    pub autoincrement: bool,
    /// Whether it carries a single-column unique constraint of its own.
    pub unique: bool,
}

/// A foreign key as the file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignKeyDesc {
    /// Its columns.
    pub columns: Vec<u32>,
    /// The referenced table's position.
    pub ref_table: usize,
    /// The referenced columns.
    pub ref_columns: Vec<u32>,
    /// The action when a referenced row is deleted.
    pub on_delete: OnDelete,
}

/// A table as the file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDesc {
    /// Its name.
    pub name: String,
    /// Its columns, in row order.
    pub columns: Vec<ColumnDesc>,
    /// The primary-key columns.
    pub primary_key: Vec<u32>,
    /// Unique constraints: first the columns' own, in column order, then the
    /// table's.
    pub uniques: Vec<Vec<u32>>,
    /// Foreign keys held by this table.
    pub foreign_keys: Vec<ForeignKeyDesc>,
}

impl TableDesc {
    /// The column lists the store keeps an index on: the primary key, each
    /// unique constraint and each foreign key, without repeats, in that order.
    pub fn index_columns(&self) -> Vec<Vec<u32>> {
        let mut out: Vec<Vec<u32>> = Vec::new();
        let lists = std::iter::once(&self.primary_key)
            .filter(|pk| !pk.is_empty())
            .chain(&self.uniques)
            .chain(self.foreign_keys.iter().map(|fk| &fk.columns));
        for list in lists {
            if !out.contains(list) {
                out.push(list.clone());
            }
        }
        out
    }

    /// The columns rows are kept sorted by: the primary key, or every column.
    pub fn order_columns(&self) -> Vec<u32> {
        if self.primary_key.is_empty() {
            (0..self.columns.len() as u32).collect()
        } else {
            self.primary_key.clone()
        }
    }

    pub(crate) fn column_recs(&self) -> Vec<ColumnRec> {
        self.columns
            .iter()
            .map(|c| ColumnRec {
                name: c.name.clone(),
                ty: c.ty.sql_name().to_owned(),
                nullable: c.nullable,
                primary_key: c.primary_key,
                autoincrement: c.autoincrement,
                unique: c.unique,
            })
            .collect()
    }

    pub(crate) fn foreign_key_recs(&self) -> Vec<ForeignKeyRec> {
        self.foreign_keys
            .iter()
            .map(|fk| ForeignKeyRec {
                columns: fk.columns.clone(),
                ref_table: fk.ref_table as u32,
                ref_columns: fk.ref_columns.clone(),
                on_delete: on_delete_name(fk.on_delete).to_owned(),
            })
            .collect()
    }
}

fn on_delete_name(action: OnDelete) -> &'static str {
    match action {
        OnDelete::NoAction => "NO ACTION",
        OnDelete::Cascade => "CASCADE",
        OnDelete::SetNull => "SET NULL",
    }
}

fn column_type(name: &str) -> Option<ColumnType> {
    [ColumnType::Integer, ColumnType::Float, ColumnType::Text, ColumnType::Boolean, ColumnType::Blob]
        .into_iter()
        .find(|t| t.sql_name() == name)
}

/// The description of every table of `schema`, in its order.
pub fn describe(schema: &Schema) -> Vec<TableDesc> {
    schema
        .tables()
        .iter()
        .map(|t| TableDesc {
            name: t.name.clone(),
            columns: t
                .columns
                .iter()
                .map(|c| ColumnDesc {
                    name: c.name.clone(),
                    ty: c.ty,
                    nullable: c.nullable,
                    primary_key: c.primary_key,
                    autoincrement: c.autoincrement,
                    unique: c.unique,
                })
                .collect(),
            primary_key: t.primary_key.clone(),
            uniques: t.uniques.clone(),
            foreign_keys: t
                .foreign_keys
                .iter()
                .map(|&id| {
                    let fk = schema.foreign_key(id);
                    ForeignKeyDesc {
                        columns: fk.columns.clone(),
                        ref_table: fk.ref_table.index(),
                        ref_columns: fk.ref_columns.clone(),
                        on_delete: fk.on_delete,
                    }
                })
                .collect(),
        })
        .collect()
}

/// A table-only schema with the tables `tables` describes: what the
/// `relgraph` command uses to export or import a snapshot. Its fingerprint
/// equals that of the schema the description was taken from.
///
/// # Errors
/// A [`ConfigError`] when the description is inconsistent.
pub fn to_schema(tables: &[TableDesc]) -> Result<Arc<Schema>, ConfigError> {
    let mut registry = Registry::new();
    for t in tables {
        let mut table = Table::new(&t.name);
        for c in &t.columns {
            let mut column = Column::new(&c.name, c.ty).nullable(c.nullable);
            if c.primary_key {
                column = column.primary_key().autoincrement(c.autoincrement);
            }
            if c.unique {
                column = column.unique();
            }
            table = table.column(column);
        }
        let own = t.columns.iter().filter(|c| c.unique).count();
        for unique in t.uniques.iter().skip(own) {
            table = table.unique(unique.iter().map(|&c| t.columns[c as usize].name.clone()));
        }
        for fk in &t.foreign_keys {
            let target = &tables[fk.ref_table];
            table = table.foreign_key(
                ForeignKey::new(
                    fk.columns.iter().map(|&c| t.columns[c as usize].name.clone()),
                    target.name.clone(),
                    fk.ref_columns.iter().map(|&c| target.columns[c as usize].name.clone()),
                )
                .on_delete(fk.on_delete),
            );
        }
        registry.table(table)?;
    }
    registry.configure()
}

/// Reads a table's description from the validated image, checking every
/// position it holds, since validation proves the bytes well-formed but not
/// meaningful.
pub(crate) fn from_archived(rec: &ArchivedTableRec, tables: usize) -> Result<TableDesc, SnapshotError> {
    let bad = |what: String| SnapshotError::Corrupt { offset: 0, what };
    let name = rec.name.as_str().to_owned();
    let width = rec.columns.len() as u32;
    let columns = rec
        .columns
        .iter()
        .map(|c| {
            Ok(ColumnDesc {
                name: c.name.as_str().to_owned(),
                ty: column_type(c.ty.as_str())
                    .ok_or_else(|| bad(format!("table {name}: unknown column type {}", c.ty.as_str())))?,
                nullable: c.nullable,
                primary_key: c.primary_key,
                autoincrement: c.autoincrement,
                unique: c.unique,
            })
        })
        .collect::<Result<Vec<_>, SnapshotError>>()?;
    let positions =
        |list: &[rkyv::rend::u32_le], width: u32| -> Result<Vec<u32>, SnapshotError> {
            list.iter()
                .map(|c| c.to_native())
                .map(|c| {
                    if c < width { Ok(c) } else { Err(bad(format!("table {name}: column {c} out of range"))) }
                })
                .collect()
        };
    let primary_key = positions(&rec.primary_key, width)?;
    let uniques = rec.uniques.iter().map(|u| positions(u, width)).collect::<Result<_, _>>()?;
    let foreign_keys = rec
        .foreign_keys
        .iter()
        .map(|fk| {
            let ref_table = fk.ref_table.to_native() as usize;
            if ref_table >= tables {
                return Err(bad(format!("table {name}: foreign key to table {ref_table} out of range")));
            }
            let on_delete = match fk.on_delete.as_str() {
                "NO ACTION" => OnDelete::NoAction,
                "CASCADE" => OnDelete::Cascade,
                "SET NULL" => OnDelete::SetNull,
                other => return Err(bad(format!("table {name}: unknown ON DELETE action {other}"))),
            };
            let columns = positions(&fk.columns, width)?;
            // The referenced columns are checked against their table once every table is read.
            let ref_columns = positions(&fk.ref_columns, u32::MAX)?;
            if columns.len() != ref_columns.len() || columns.is_empty() {
                return Err(bad(format!("table {name}: foreign key column counts differ")));
            }
            Ok(ForeignKeyDesc { columns, ref_table, ref_columns, on_delete })
        })
        .collect::<Result<_, _>>()?;
    Ok(TableDesc { name, columns, primary_key, uniques, foreign_keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_rebuilds_a_schema_with_the_same_fingerprint() {
        let schema = relgraph_testkit::conformance::schema();
        let rebuilt = to_schema(&describe(&schema)).unwrap();
        assert_eq!(rebuilt.fingerprint(), schema.fingerprint());
        assert_eq!(describe(&rebuilt), describe(&schema));
    }
}
