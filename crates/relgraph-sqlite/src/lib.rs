//! relgraph's SQLite store: rusqlite with the bundled library, foreign keys
//! enforced, every foreign-key column indexed, prepared statements reused,
//! inserts batched as multi-row `VALUES`, generated keys fetched back.
//!
//! The store sees rows only (see `relgraph_core::Store`).
//!
//! ```
//! use relgraph_core::{Cell, Column, Entity, Registry, RowOp, Store, Value};
//! use relgraph_sqlite::SqliteStore;
//!
//! let mut registry = Registry::new();
//! registry.entity(Entity::new("Parent", "parent").column(Column::integer("id").primary_key()))?;
//! let schema = registry.configure()?;
//! let table = schema.table_id("parent").unwrap();
//!
//! let mut store = SqliteStore::open_in_memory()?;
//! store.create_tables(&schema)?;
//! store.begin()?;
//! let keys = store.apply_all(&schema, &[RowOp::Insert { table, row: Box::new([Cell::Value(Value::Null)]) }])?;
//! store.commit()?;
//! assert_eq!(keys, [Some(1)]);
//! assert_eq!(store.load_all(&schema, table)?.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::Path;

use relgraph_core::sql::{self, Dialect};
use relgraph_core::store::{self, InsertStatements};
use relgraph_core::{
    Cell, ColumnType, Echo, ErrorKind, InsertBatch, Resolved, Row, RowOp, Schema, Store, StoreError,
    TableDef, TableId, Value,
};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};

/// Rows per multi-row INSERT. Measured on W1: 100 to 500 rows per statement
/// are within noise of each other and about 20% faster than one row each.
const BATCH_ROWS: usize = 200;

/// Bound parameters per statement: SQLite's default limit is 32,766.
const MAX_PARAMS: usize = 32_000;

/// Rows per batched DELETE (`IN (...)` or `OR`ed conditions).
const DELETE_BATCH: usize = 500;

/// Keys per `IN (...)` of a load; well under SQLite's variable limit.
const LOAD_KEYS: usize = 500;

/// A SQLite database behind the store trait.
pub struct SqliteStore {
    conn: Connection,
    in_transaction: bool,
    echo: Option<Echo>,
    /// The last UPDATE's text: runs of updates of one shape reuse it.
    last_update: Option<UpdateText>,
}

/// An UPDATE statement's text and the shape it was built for.
struct UpdateText {
    table: TableId,
    columns: Box<[u32]>,
    key_columns: Box<[u32]>,
    sql: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("in_transaction", &self.in_transaction).finish_non_exhaustive()
    }
}

/// One bound parameter: a cell resolved against the keys generated so far.
struct Arg<'a>(Resolved<'a>);

impl ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match &self.0 {
            Resolved::Key(k) => ValueRef::Integer(*k),
            Resolved::Value(v) => match v {
                Value::Null => ValueRef::Null,
                Value::Integer(i) => ValueRef::Integer(*i),
                Value::Float(f) => ValueRef::Real(*f),
                Value::Text(t) => ValueRef::Text(t.as_bytes()),
                Value::Boolean(b) => ValueRef::Integer(i64::from(*b)),
                Value::Blob(b) => ValueRef::Blob(b),
            },
        }))
    }
}

impl std::fmt::Display for Arg<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn arg<'a>(cell: &'a Cell, keys: &[Option<i64>]) -> Result<Arg<'a>, StoreError> {
    cell.resolve(keys).map(Arg)
}

/// Maps a driver error to the backend-neutral kind.
fn kind_of(error: &rusqlite::Error) -> ErrorKind {
    use rusqlite::ffi;
    match error {
        rusqlite::Error::SqliteFailure(e, _) => match e.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => ErrorKind::Unique,
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKey,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNull,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::Check,
            _ => match e.code {
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                    ErrorKind::Serialization
                }
                rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::SystemIoFailure
                | rusqlite::ErrorCode::PermissionDenied
                | rusqlite::ErrorCode::ReadOnly => ErrorKind::Connection,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase => {
                    ErrorKind::Corrupt
                }
                _ => ErrorKind::Other,
            },
        },
        _ => ErrorKind::Other,
    }
}

fn error(context: impl std::fmt::Display, e: rusqlite::Error) -> StoreError {
    StoreError::new(kind_of(&e), context.to_string()).with_source(e)
}

fn read_value(value: ValueRef<'_>, ty: ColumnType) -> Result<Value, StoreError> {
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) if ty == ColumnType::Boolean => Value::Boolean(i != 0),
        ValueRef::Integer(i) if ty == ColumnType::Float => Value::Float(i as f64),
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::Text(
            std::str::from_utf8(t)
                .map_err(|e| StoreError::new(ErrorKind::Corrupt, "a text value is not UTF-8").with_source(e))?
                .into(),
        ),
        ValueRef::Blob(b) => Value::Blob(b.into()),
    })
}

/// The page cache the store's own connections ask for, in KiB: 64 MiB, where
/// SQLite's default is 2 MiB. A transaction that outgrows the cache writes
/// dirty pages to the file before its commit, which cost a flush of 100,000
/// rows about a tenth of its time; pages are allocated only as they are used.
/// [`SqliteStore::with_connection`] leaves a given connection's setting alone;
/// `store.connection().pragma_update(None, "cache_size", -kib)` changes it.
pub const CACHE_KIB: i64 = 65_536;

impl SqliteStore {
    /// Opens (or creates) the database file at `path`, with a page cache of
    /// [`CACHE_KIB`].
    ///
    /// # Errors
    /// [`ErrorKind::Connection`] when the file cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let conn =
            Connection::open(path).map_err(|e| error(format_args!("opening {}", path.display()), e))?;
        Self::with_cache(conn)
    }

    /// A private in-memory database.
    ///
    /// # Errors
    /// When SQLite cannot allocate it.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::with_cache(Connection::open_in_memory().map_err(|e| error("opening :memory:", e))?)
    }

    fn with_cache(conn: Connection) -> Result<Self, StoreError> {
        // A negative cache size is in KiB, a positive one in pages.
        conn.pragma_update(None, "cache_size", -CACHE_KIB).map_err(|e| error("PRAGMA cache_size", e))?;
        Self::with_connection(conn)
    }

    /// Wraps an open connection, turning foreign-key enforcement on.
    ///
    /// # Errors
    /// When the pragma fails.
    pub fn with_connection(conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "foreign_keys", true).map_err(|e| error("PRAGMA foreign_keys = ON", e))?;
        conn.set_prepared_statement_cache_capacity(128);
        Ok(SqliteStore { conn, in_transaction: false, echo: None, last_update: None })
    }

    /// The connection, for reading with plain SQL.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn echoing(&self) -> bool {
        self.echo.is_some() || tracing::enabled!(target: "relgraph::sql", tracing::Level::DEBUG)
    }

    fn emit(&mut self, text: &str) {
        tracing::debug!(target: "relgraph::sql", "{text}");
        if let Some(echo) = &mut self.echo {
            echo(text);
        }
    }

    /// Echoes `sql` with its parameters, one group of `width` per row.
    fn echo_statement(&mut self, sql: &str, args: &[Arg<'_>], width: usize) {
        if self.echoing() {
            let line = store::echo_line(sql, args, width);
            self.emit(&line);
        }
    }

    fn execute(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        width: usize,
        table: &TableDef,
    ) -> Result<usize, StoreError> {
        self.echo_statement(sql, args, width);
        let mut stmt =
            self.conn.prepare_cached(sql).map_err(|e| error(format_args!("preparing {sql}"), e))?;
        stmt.execute(rusqlite::params_from_iter(args.iter()))
            .map_err(|e| error(format_args!("writing table {}: {sql}", table.name), e))
    }

    /// The single-row UPDATE text for a shape, reused while runs keep that
    /// shape; the caller puts the text back into the cache after use.
    fn update_text(
        &mut self,
        def: &TableDef,
        table: TableId,
        columns: &[u32],
        key_columns: &[u32],
    ) -> String {
        let cached = matches!(&self.last_update,
            Some(u) if u.table == table && *u.columns == *columns && *u.key_columns == *key_columns);
        if !cached {
            self.last_update = Some(UpdateText {
                table,
                columns: columns.into(),
                key_columns: key_columns.into(),
                sql: sql::update(def, columns, key_columns, Dialect::Sqlite),
            });
        }
        std::mem::take(&mut self.last_update.as_mut().expect("just set").sql)
    }

    fn simple(&mut self, sql: &str) -> Result<(), StoreError> {
        self.emit(sql);
        self.conn.execute_batch(sql).map_err(|e| error(sql, e))
    }
}

/// `WITH v(c0, .., k0, ..) AS (VALUES (?, ..), ..) UPDATE t SET col = v.c0, ..
/// FROM v WHERE t.key = v.k0 AND ..`: `rows` updates of one shape in one statement.
fn update_from_values(def: &TableDef, columns: &[u32], key_columns: &[u32], rows: usize) -> String {
    let names: Vec<String> = (0..columns.len())
        .map(|i| format!("c{i}"))
        .chain((0..key_columns.len()).map(|i| format!("k{i}")))
        .collect();
    let row = format!("({})", vec!["?"; names.len()].join(", "));
    let mut text =
        format!("WITH v({}) AS (VALUES {}) UPDATE ", names.join(", "), vec![row.as_str(); rows].join(", "));
    sql::quote(&mut text, &def.name);
    text.push_str(" SET ");
    for (i, &c) in columns.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        sql::quote(&mut text, &def.columns[c as usize].name);
        text.push_str(&format!(" = v.c{i}"));
    }
    text.push_str(" FROM v WHERE ");
    for (i, &c) in key_columns.iter().enumerate() {
        if i > 0 {
            text.push_str(" AND ");
        }
        sql::quote(&mut text, &def.name);
        text.push('.');
        sql::quote(&mut text, &def.columns[c as usize].name);
        text.push_str(&format!(" = v.k{i}"));
    }
    text
}

impl store::InsertStatements for SqliteStore {
    const BATCH_ROWS: usize = BATCH_ROWS;
    const MAX_PARAMS: usize = MAX_PARAMS;

    /// Inserts `row`, leaving its key to the database (its autoincrement
    /// column is left out), and returns the key.
    fn insert_generating(
        &mut self,
        def: &TableDef,
        row: &[Cell],
        keys: &[Option<i64>],
    ) -> Result<i64, StoreError> {
        let auto = def.autoincrement_column().expect("generating tables have one");
        let columns: Vec<u32> = (0..def.columns.len() as u32).filter(|&c| c != auto).collect();
        let args = columns.iter().map(|&c| arg(&row[c as usize], keys)).collect::<Result<Vec<_>, _>>()?;
        let text = sql::insert_columns(def, &columns, 1, Dialect::Sqlite);
        self.execute(&text, &args, columns.len(), def)?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Inserts `count` rows with their keys given as one multi-row statement.
    fn insert_given<'r>(
        &mut self,
        def: &TableDef,
        rows: impl Iterator<Item = &'r [Cell]>,
        count: usize,
        keys: &[Option<i64>],
    ) -> Result<(), StoreError> {
        let mut args = Vec::with_capacity(count * def.columns.len());
        for row in rows {
            for cell in row {
                args.push(arg(cell, keys)?);
            }
        }
        let text = sql::insert(def, count, Dialect::Sqlite);
        self.execute(&text, &args, def.columns.len(), def)?;
        Ok(())
    }
}

impl Store for SqliteStore {
    fn create_tables(&mut self, schema: &Schema) -> Result<(), StoreError> {
        for id in schema.table_ids() {
            let table = schema.table(id);
            let existing: Vec<String> = {
                let mut stmt = self
                    .conn
                    .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
                    .map_err(|e| error("reading the catalogue", e))?;
                let names = stmt
                    .query_map([&table.name], |row| row.get::<_, String>(0))
                    .map_err(|e| error("reading the catalogue", e))?;
                names.collect::<Result<_, _>>().map_err(|e| error("reading the catalogue", e))?
            };
            let wanted: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
            if !existing.is_empty() && existing != wanted {
                return Err(StoreError::new(
                    ErrorKind::Schema,
                    format!(
                        "table '{}' exists with columns {existing:?}, the registry has {wanted:?}",
                        table.name
                    ),
                ));
            }
            for statement in sql::create_table(schema, id, Dialect::Sqlite) {
                self.simple(&statement)?;
            }
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        if self.in_transaction {
            return Err(StoreError::new(ErrorKind::Usage, "begin inside an open transaction"));
        }
        self.simple("BEGIN")?;
        self.in_transaction = true;
        Ok(())
    }

    fn apply(
        &mut self,
        schema: &Schema,
        ops: &[RowOp],
        keys: &mut Vec<Option<i64>>,
    ) -> Result<(), StoreError> {
        if !self.in_transaction {
            return Err(StoreError::new(ErrorKind::Usage, "apply outside a transaction"));
        }
        // Malformed operations are refused before any statement is sent.
        for op in ops {
            op.check(schema)?;
        }
        // This call's operations follow the transaction's earlier ones.
        let base = keys.len();
        keys.resize(base + ops.len(), None);
        let mut args: Vec<Arg<'_>> = Vec::new();
        let mut i = 0;
        while i < ops.len() {
            args.clear();
            let def = schema.table(ops[i].table());
            match &ops[i] {
                RowOp::Insert { row, .. } if ops[i].generates_key(schema) => {
                    keys[base + i] = Some(self.insert_generating(def, row, keys)?);
                    i += 1;
                }
                RowOp::Insert { .. } => {
                    // A run of inserts with their keys given: one statement per batch.
                    let end = store::run_end(ops, i, Self::rows_per_statement(def), schema);
                    let rows = ops[i..end].iter().map(|op| match op {
                        RowOp::Insert { row, .. } => &**row,
                        _ => unreachable!("a run holds one kind"),
                    });
                    self.insert_given(def, rows, end - i, keys)?;
                    i = end;
                }
                RowOp::Update { key_columns, columns, .. } => {
                    // A run of updates of one shape: `UPDATE ... FROM (VALUES ...)` per batch.
                    let width = columns.len() + key_columns.len();
                    let end =
                        store::run_end(ops, i, BATCH_ROWS.min(MAX_PARAMS / width.max(1)).max(1), schema);
                    for op in &ops[i..end] {
                        let RowOp::Update { key, values, .. } = op else {
                            unreachable!("a run holds one kind")
                        };
                        for cell in values.iter().chain(key.iter()) {
                            args.push(arg(cell, keys)?);
                        }
                    }
                    let updated = if end - i == 1 {
                        let text = self.update_text(def, ops[i].table(), columns, key_columns);
                        let updated = self.execute(&text, &args, width, def);
                        self.last_update.as_mut().expect("just cached").sql = text;
                        updated?
                    } else {
                        let text = update_from_values(def, columns, key_columns, end - i);
                        self.execute(&text, &args, width, def)?
                    };
                    if updated != end - i {
                        return Err(StoreError::new(
                            ErrorKind::Other,
                            format!(
                                "UPDATE of table {} matched {updated} of {} rows: some were deleted outside this session",
                                def.name,
                                end - i
                            ),
                        ));
                    }
                    i = end;
                }
                RowOp::Delete { columns, .. } => {
                    // A run of deletes by the same columns: one statement per batch.
                    let end = store::run_end(
                        ops,
                        i,
                        DELETE_BATCH.min(MAX_PARAMS / columns.len().max(1)).max(1),
                        schema,
                    );
                    for op in &ops[i..end] {
                        let RowOp::Delete { values, .. } = op else { unreachable!("a run holds one kind") };
                        for cell in values.iter() {
                            args.push(arg(cell, keys)?);
                        }
                    }
                    let text = sql::delete_many(def, columns, end - i, Dialect::Sqlite);
                    self.execute(&text, &args, columns.len(), def)?;
                    i = end;
                }
            }
        }
        Ok(())
    }

    fn apply_inserts(
        &mut self,
        schema: &Schema,
        batch: &mut InsertBatch,
        keys: &mut Vec<Option<i64>>,
    ) -> Result<(), StoreError> {
        if !self.in_transaction {
            return Err(StoreError::new(ErrorKind::Usage, "apply outside a transaction"));
        }
        store::send_inserts(self, schema, batch, keys)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if !self.in_transaction {
            return Err(StoreError::new(ErrorKind::Usage, "commit without a transaction"));
        }
        self.simple("COMMIT")?;
        self.in_transaction = false;
        Ok(())
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        if !self.in_transaction {
            return Ok(());
        }
        self.in_transaction = false;
        self.simple("ROLLBACK")
    }

    fn load(
        &mut self,
        schema: &Schema,
        table: TableId,
        columns: &[u32],
        keys: &[Row],
    ) -> Result<Vec<Row>, StoreError> {
        let def = schema.table(table);
        let mut out = Vec::new();
        for chunk in keys.chunks(LOAD_KEYS) {
            let sql = sql::select_where(def, columns, chunk.len(), Dialect::Sqlite);
            let args: Vec<Arg<'_>> =
                chunk.iter().flat_map(|k| k.iter().map(|v| Arg(Resolved::Value(v)))).collect();
            let width = columns.len();
            self.echo_statement(&sql, &args, width);
            out.extend(query(&self.conn, def, &sql, &args)?);
        }
        Ok(out)
    }

    fn load_all(&mut self, schema: &Schema, table: TableId) -> Result<Vec<Row>, StoreError> {
        let def = schema.table(table);
        let sql = sql::select_all(def);
        self.echo_statement(&sql, &[], 0);
        query(&self.conn, def, &sql, &[])
    }

    fn set_echo(&mut self, echo: Option<Echo>) {
        self.echo = echo;
    }
}

fn query(conn: &Connection, def: &TableDef, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(|e| error(format_args!("preparing {sql}"), e))?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args.iter()))
        .map_err(|e| error(format_args!("reading table {}", def.name), e))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| error(format_args!("reading table {}", def.name), e))? {
        let mut values = Vec::with_capacity(def.columns.len());
        for (i, column) in def.columns.iter().enumerate() {
            let value = row.get_ref(i).map_err(|e| error(format_args!("reading table {}", def.name), e))?;
            values.push(read_value(value, column.ty)?);
        }
        out.push(values.into_boxed_slice());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_size(store: &SqliteStore) -> i64 {
        store.connection().pragma_query_value(None, "cache_size", |row| row.get(0)).expect("cache_size")
    }

    #[test]
    fn stores_it_opens_get_the_large_page_cache_and_given_connections_keep_theirs() {
        assert_eq!(cache_size(&SqliteStore::open_in_memory().unwrap()), -CACHE_KIB);
        let dir = tempfile::Builder::new().prefix("relgraph-sqlite-cache-").tempdir().unwrap();
        let path = dir.path().join("cache.sqlite");
        assert_eq!(cache_size(&SqliteStore::open(&path).unwrap()), -CACHE_KIB);
        let given = SqliteStore::with_connection(Connection::open_in_memory().unwrap()).unwrap();
        assert_eq!(cache_size(&given), -2000, "SQLite's default, untouched");
    }
}
