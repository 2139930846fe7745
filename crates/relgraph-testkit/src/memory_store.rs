//! An in-memory store: the reference implementation of the store contract,
//! with keys, unique constraints, NOT NULL and foreign keys (and their ON
//! DELETE actions) enforced at each statement, and rollback by snapshot.
//! Linear scans everywhere: it is for tests, not for speed.

use std::cmp::Ordering;

use relgraph_core::{Cell, Echo, ErrorKind, OnDelete, Row, RowOp, Schema, Store, StoreError, TableId, Value};

/// Rows per table, indexed like the schema's tables.
#[derive(Default)]
pub struct MemoryStore {
    tables: Option<Vec<Vec<Row>>>,
    backup: Option<Vec<Vec<Row>>>,
    echo: Option<Echo>,
    whole_runs: bool,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").field("tables", &self.tables).finish_non_exhaustive()
    }
}

/// A total order over values, for `load_all`'s key order.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Boolean(_) => 1,
            Value::Integer(_) => 2,
            Value::Float(_) => 3,
            Value::Text(_) => 4,
            Value::Blob(_) => 5,
        }
    }
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.total_cmp(y),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
        (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Rows compared column by column, for sorting rows in tests.
pub fn compare_rows(a: &[Value], b: &[Value]) -> Ordering {
    a.iter().zip(b).map(|(x, y)| compare_values(x, y)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
}

fn err(kind: ErrorKind, message: String) -> StoreError {
    StoreError::new(kind, message)
}

fn resolve(cell: &Cell, keys: &[Option<i64>]) -> Result<Value, StoreError> {
    match cell {
        Cell::Value(v) => Ok(v.clone()),
        Cell::Generated(op) => {
            keys.get(*op as usize).copied().flatten().map(Value::Integer).ok_or_else(|| {
                err(ErrorKind::Usage, format!("a cell refers to operation {op}, which generated no key"))
            })
        }
    }
}

fn matches(row: &[Value], columns: &[u32], values: &[Value]) -> bool {
    columns.iter().zip(values).all(|(&c, v)| !v.is_null() && &row[c as usize] == v)
}

impl MemoryStore {
    /// An empty store; call `create_tables` first.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// An empty store that says it [prefers whole runs](Store::prefers_whole_runs),
    /// as PostgreSQL's does, so that a session's streamed flush can be
    /// tested that way without a server.
    pub fn preferring_whole_runs() -> Self {
        MemoryStore { whole_runs: true, ..MemoryStore::default() }
    }

    fn tables(&mut self) -> Result<&mut Vec<Vec<Row>>, StoreError> {
        self.tables
            .as_mut()
            .ok_or_else(|| err(ErrorKind::Schema, "no tables: call create_tables first".into()))
    }

    /// Checks NOT NULL, keys, unique constraints and outgoing foreign keys of `row` in `table`.
    fn check_row(
        tables: &[Vec<Row>],
        schema: &Schema,
        table: TableId,
        row: &[Value],
        skip: Option<usize>,
    ) -> Result<(), StoreError> {
        let def = schema.table(table);
        for (c, column) in def.columns.iter().enumerate() {
            if row[c].is_null() && !column.nullable {
                return Err(err(
                    ErrorKind::NotNull,
                    format!("NOT NULL constraint failed: {}.{}", def.name, column.name),
                ));
            }
        }
        let others = tables[table.index()].iter().enumerate().filter(|(i, _)| Some(*i) != skip);
        let mut keys: Vec<&[u32]> = def.uniques.iter().map(Vec::as_slice).collect();
        if !def.primary_key.is_empty() {
            keys.push(&def.primary_key);
        }
        for (_, other) in others {
            for key in &keys {
                let values: Vec<Value> = key.iter().map(|&c| row[c as usize].clone()).collect();
                if matches(other, key, &values) {
                    return Err(err(
                        ErrorKind::Unique,
                        format!("UNIQUE constraint failed: table {}", def.name),
                    ));
                }
            }
        }
        for &fk in &def.foreign_keys {
            let fk = schema.foreign_key(fk);
            let values: Vec<Value> = fk.columns.iter().map(|&c| row[c as usize].clone()).collect();
            if values.iter().any(Value::is_null) {
                continue;
            }
            if !tables[fk.ref_table.index()].iter().any(|r| matches(r, &fk.ref_columns, &values)) {
                return Err(err(
                    ErrorKind::ForeignKey,
                    format!(
                        "FOREIGN KEY constraint failed: {} references a missing {} row",
                        def.name,
                        schema.table(fk.ref_table).name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Deletes the rows of `table` at `indexes`, applying ON DELETE actions to referencing rows.
    fn delete_rows(
        tables: &mut [Vec<Row>],
        schema: &Schema,
        table: TableId,
        mut indexes: Vec<usize>,
    ) -> Result<(), StoreError> {
        indexes.sort_unstable();
        let removed: Vec<Row> = indexes.iter().rev().map(|&i| tables[table.index()].remove(i)).collect();
        for row in &removed {
            for fk in schema.foreign_keys() {
                if fk.ref_table != table {
                    continue;
                }
                let values: Vec<Value> = fk.ref_columns.iter().map(|&c| row[c as usize].clone()).collect();
                let referencing: Vec<usize> = tables[fk.table.index()]
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| matches(r, &fk.columns, &values))
                    .map(|(i, _)| i)
                    .collect();
                if referencing.is_empty() {
                    continue;
                }
                match fk.on_delete {
                    OnDelete::NoAction => {
                        return Err(err(
                            ErrorKind::ForeignKey,
                            format!(
                                "FOREIGN KEY constraint failed: a {} row still references the deleted {} row",
                                schema.table(fk.table).name,
                                schema.table(table).name
                            ),
                        ));
                    }
                    OnDelete::SetNull => {
                        for i in referencing {
                            for &c in &fk.columns {
                                tables[fk.table.index()][i][c as usize] = Value::Null;
                            }
                        }
                    }
                    OnDelete::Cascade => Self::delete_rows(tables, schema, fk.table, referencing)?,
                }
            }
        }
        Ok(())
    }

    fn apply_one(
        &mut self,
        schema: &Schema,
        op: &RowOp,
        keys: &[Option<i64>],
    ) -> Result<Option<i64>, StoreError> {
        let tables = self.tables()?;
        match op {
            RowOp::Insert { table, row } => {
                let def = schema.table(*table);
                let mut values: Vec<Value> =
                    row.iter().map(|c| resolve(c, keys)).collect::<Result<_, _>>()?;
                let mut generated = None;
                if let [pk] = def.primary_key.as_slice() {
                    let pk = *pk as usize;
                    if def.columns[pk].autoincrement && values[pk].is_null() {
                        let next =
                            tables[table.index()].iter().filter_map(|r| r[pk].as_i64()).max().unwrap_or(0)
                                + 1;
                        values[pk] = Value::Integer(next);
                        generated = Some(next);
                    }
                }
                Self::check_row(tables, schema, *table, &values, None)?;
                tables[table.index()].push(values.into_boxed_slice());
                Ok(generated)
            }
            RowOp::Update { table, key_columns, key, columns, values } => {
                let key: Vec<Value> = key.iter().map(|c| resolve(c, keys)).collect::<Result<_, _>>()?;
                let values: Vec<Value> = values.iter().map(|c| resolve(c, keys)).collect::<Result<_, _>>()?;
                let index = tables[table.index()]
                    .iter()
                    .position(|r| matches(r, key_columns, &key))
                    .ok_or_else(|| {
                        err(
                            ErrorKind::Other,
                            format!("UPDATE of table {} matched no row", schema.table(*table).name),
                        )
                    })?;
                let old = tables[table.index()][index].clone();
                let mut row = old.clone();
                for (&c, v) in columns.iter().zip(values) {
                    row[c as usize] = v;
                }
                Self::check_row(tables, schema, *table, &row, Some(index))?;
                // ON UPDATE NO ACTION: a referenced key cannot change under its references.
                for fk in schema.foreign_keys().iter().filter(|fk| fk.ref_table == *table) {
                    let was: Vec<Value> = fk.ref_columns.iter().map(|&c| old[c as usize].clone()).collect();
                    let changed = fk.ref_columns.iter().any(|&c| old[c as usize] != row[c as usize]);
                    if changed && tables[fk.table.index()].iter().any(|r| matches(r, &fk.columns, &was)) {
                        return Err(err(
                            ErrorKind::ForeignKey,
                            format!(
                                "FOREIGN KEY constraint failed: {} rows still reference the updated {} key",
                                schema.table(fk.table).name,
                                schema.table(*table).name
                            ),
                        ));
                    }
                }
                tables[table.index()][index] = row;
                Ok(None)
            }
            RowOp::Delete { table, columns, values } => {
                let values: Vec<Value> = values.iter().map(|c| resolve(c, keys)).collect::<Result<_, _>>()?;
                let indexes: Vec<usize> = tables[table.index()]
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| matches(r, columns, &values))
                    .map(|(i, _)| i)
                    .collect();
                // Work on a copy so a refused delete leaves the statement without effect.
                let mut copy = tables.clone();
                Self::delete_rows(&mut copy, schema, *table, indexes)?;
                *tables = copy;
                Ok(None)
            }
        }
    }
}

impl Store for MemoryStore {
    fn create_tables(&mut self, schema: &Schema) -> Result<(), StoreError> {
        let tables = self.tables.get_or_insert_with(Vec::new);
        tables.resize_with(schema.tables().len(), Vec::new);
        Ok(())
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        if self.backup.is_some() {
            return Err(err(ErrorKind::Usage, "begin inside an open transaction".into()));
        }
        self.backup = Some(self.tables()?.clone());
        Ok(())
    }

    fn apply(
        &mut self,
        schema: &Schema,
        ops: &[RowOp],
        keys: &mut Vec<Option<i64>>,
    ) -> Result<(), StoreError> {
        if self.backup.is_none() {
            return Err(err(ErrorKind::Usage, "apply outside a transaction".into()));
        }
        keys.reserve(ops.len());
        for op in ops {
            if let Some(echo) = &mut self.echo {
                echo(&format!("{op:?}"));
            }
            op.check(schema)?;
            let key = self.apply_one(schema, op, keys)?;
            keys.push(key);
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.backup
            .take()
            .map(drop)
            .ok_or_else(|| err(ErrorKind::Usage, "commit without a transaction".into()))
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        if let Some(backup) = self.backup.take() {
            self.tables = Some(backup);
        }
        Ok(())
    }

    fn load(
        &mut self,
        _schema: &Schema,
        table: TableId,
        columns: &[u32],
        keys: &[Row],
    ) -> Result<Vec<Row>, StoreError> {
        Ok(self.tables()?[table.index()]
            .iter()
            .filter(|r| keys.iter().any(|k| matches(r, columns, k)))
            .cloned()
            .collect())
    }

    fn load_all(&mut self, schema: &Schema, table: TableId) -> Result<Vec<Row>, StoreError> {
        let def = schema.table(table);
        let order: Vec<u32> = if def.primary_key.is_empty() {
            (0..def.columns.len() as u32).collect()
        } else {
            def.primary_key.clone()
        };
        let mut rows = self.tables()?[table.index()].clone();
        rows.sort_by(|a, b| {
            let ka: Vec<Value> = order.iter().map(|&c| a[c as usize].clone()).collect();
            let kb: Vec<Value> = order.iter().map(|&c| b[c as usize].clone()).collect();
            compare_rows(&ka, &kb)
        });
        Ok(rows)
    }

    fn set_echo(&mut self, echo: Option<Echo>) {
        self.echo = echo;
    }

    fn prefers_whole_runs(&self) -> bool {
        self.whole_runs
    }
}
