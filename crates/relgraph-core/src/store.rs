//! The persistence boundary: row operations, the [`Store`] trait every
//! backend implements, and the backend-neutral [`StoreError`].
//!
//! Stores see tables and rows, never objects, graphs or sessions.

use std::error::Error as StdError;
use std::fmt;

use crate::schema::{ForeignKeyId, Schema, TableDef, TableId};
use crate::value::Value;

/// A full row, one value per column in table order.
pub type Row = Box<[Value]>;

/// One value of a row operation: a literal, or the key the store generated
/// for an earlier INSERT of the same batch (a parent inserted in this flush).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    /// A literal value.
    Value(Value),
    /// The generated key of the INSERT at this position in the batch.
    Generated(u32),
}

impl From<Value> for Cell {
    fn from(v: Value) -> Self {
        Cell::Value(v)
    }
}

/// One row-level operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowOp {
    /// Inserts a row. A NULL in the table's autoincrement key column asks the
    /// store to generate the key, which [`Store::apply`] returns.
    Insert {
        /// The table.
        table: TableId,
        /// The row, one cell per column.
        row: Box<[Cell]>,
    },
    /// Updates the row whose `key_columns` equal `key`.
    Update {
        /// The table.
        table: TableId,
        /// The columns that identify the row (the primary key).
        key_columns: Box<[u32]>,
        /// Their values.
        key: Box<[Cell]>,
        /// The columns written.
        columns: Box<[u32]>,
        /// Their new values.
        values: Box<[Cell]>,
    },
    /// Deletes every row whose `columns` equal `values`: one row by primary
    /// key, or all association rows of one object.
    Delete {
        /// The table.
        table: TableId,
        /// The columns matched.
        columns: Box<[u32]>,
        /// Their values.
        values: Box<[Cell]>,
    },
}

impl RowOp {
    /// The table the operation writes.
    pub fn table(&self) -> TableId {
        match self {
            RowOp::Insert { table, .. } | RowOp::Update { table, .. } | RowOp::Delete { table, .. } => *table,
        }
    }

    /// Refuses an operation that does not fit its table: a table the
    /// schema lacks, an INSERT row not one cell per column, a column out
    /// of range, or columns and values of different counts. Stores call it
    /// before writing, so a malformed operation is a usage error and never
    /// a panic or a driver's complaint about parameters.
    ///
    /// # Errors
    /// [`ErrorKind::Usage`], naming the table and what is wrong.
    pub fn check(&self, schema: &Schema) -> Result<(), StoreError> {
        let def = table_def(schema, self.table())?;
        let width = def.columns.len();
        let fits = |columns: &[u32], values: usize| {
            columns.len() == values && columns.iter().all(|&c| (c as usize) < width)
        };
        let fault = match self {
            RowOp::Insert { row, .. } => return check_insert(schema, self.table(), row.len()),
            RowOp::Update { key_columns, key, columns, values, .. } => (!fits(key_columns, key.len())
                || !fits(columns, values.len()))
            .then_some("an UPDATE whose columns and values do not match"),
            RowOp::Delete { columns, values, .. } => {
                (!fits(columns, values.len())).then_some("a DELETE whose columns and values do not match")
            }
        };
        match fault {
            Some(fault) => Err(StoreError::new(ErrorKind::Usage, format!("{fault} in table {}", def.name))),
            None => Ok(()),
        }
    }

    /// Whether this INSERT asks the store to generate its key (its table's
    /// autoincrement key is NULL); such rows are inserted one at a time so
    /// the key can be read back.
    pub fn generates_key(&self, schema: &Schema) -> bool {
        match self {
            RowOp::Insert { table, row } => generates_key(schema.table(*table), row),
            _ => false,
        }
    }

    /// Whether `other` can share one statement with this operation: the same
    /// kind on the same table and columns (INSERTs: neither generating a key).
    pub fn same_shape(&self, other: &RowOp, schema: &Schema) -> bool {
        match (self, other) {
            (RowOp::Insert { table: a, .. }, RowOp::Insert { table: b, .. }) => {
                a == b && !self.generates_key(schema) && !other.generates_key(schema)
            }
            (
                RowOp::Update { table: a, key_columns: ka, columns: ca, .. },
                RowOp::Update { table: b, key_columns: kb, columns: cb, .. },
            ) => a == b && ka == kb && ca == cb,
            (RowOp::Delete { table: a, columns: ca, .. }, RowOp::Delete { table: b, columns: cb, .. }) => {
                a == b && ca == cb
            }
            _ => false,
        }
    }
}

/// Refuses an INSERT into `table` of a row of `width` cells unless the
/// table has that many columns (see [`RowOp::check`]).
///
/// # Errors
/// [`ErrorKind::Usage`], naming the table and both widths.
pub fn check_insert(schema: &Schema, table: TableId, width: usize) -> Result<(), StoreError> {
    let def = table_def(schema, table)?;
    if width == def.columns.len() {
        return Ok(());
    }
    Err(StoreError::new(
        ErrorKind::Usage,
        format!("an INSERT into table {} of {width} cells; it has {} columns", def.name, def.columns.len()),
    ))
}

/// `table`'s definition, or a usage error for a handle from another schema.
fn table_def(schema: &Schema, table: TableId) -> Result<&TableDef, StoreError> {
    schema.tables().get(table.index()).ok_or_else(|| {
        StoreError::new(
            ErrorKind::Usage,
            format!("an operation on table {}, which the schema does not have", table.index()),
        )
    })
}

/// Whether `row`, a new row of `def`, asks the store to generate its key:
/// its autoincrement key is NULL (a row too short has none to ask for).
fn generates_key(def: &TableDef, row: &[Cell]) -> bool {
    def.autoincrement_column().is_some_and(|c| row.get(c as usize) == Some(&Cell::Value(Value::Null)))
}

/// The end of the run of operations that share `ops[start]`'s shape, at most
/// `limit` long: `ops[start..end]` can go as one batched statement.
pub fn run_end(ops: &[RowOp], start: usize, limit: usize, schema: &Schema) -> usize {
    let mut end = start + 1;
    while end < ops.len() && end - start < limit && ops[start].same_shape(&ops[end], schema) {
        end += 1;
    }
    end
}

/// INSERTs in order, their rows laid end to end in one buffer: what a
/// flush of new rows hands a store in each call of
/// [`Store::apply_inserts`]. One allocation holds a thousand rows, where a
/// [`RowOp::Insert`] each would take one of its own (and a page fault for
/// every forty or so of them, on a fresh heap); cleared, the batch is
/// filled again without allocating.
///
/// Consecutive rows of one table form a run; each row has its table's
/// width (one cell per column, as in [`RowOp::Insert`]).
///
/// ```
/// use relgraph_core::{Cell, Column, InsertBatch, Registry, RowOp, Table, Value};
///
/// let mut registry = Registry::new();
/// let table = registry.table(Table::new("pair").column(Column::integer("a")).column(Column::integer("b")))?;
/// let mut batch = InsertBatch::new();
/// batch.push(table, [Cell::Value(Value::Integer(1)), Cell::Value(Value::Null)]);
/// batch.push_row(table, 2)[0] = Cell::Value(Value::Integer(2));
/// assert_eq!(batch.len(), 2);
/// let run = batch.runs().next().unwrap();
/// assert_eq!((run.table, run.width, run.len()), (table, 2, 2), "two rows of one table");
/// assert_eq!(
///     batch.to_ops()[1],
///     RowOp::Insert { table, row: Box::new([Cell::Value(Value::Integer(2)), Cell::Value(Value::Null)]) }
/// );
/// # Ok::<(), relgraph_core::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InsertBatch {
    runs: Vec<RunHeader>,
    cells: Vec<Cell>,
    rows: usize,
}

/// Rows of one table and width, consecutive in an [`InsertBatch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RunHeader {
    table: TableId,
    width: u32,
    rows: u32,
}

/// Consecutive rows of one table in an [`InsertBatch`], their cells
/// (`&[Cell]` or `&mut [Cell]`) end to end.
#[derive(Debug)]
pub struct InsertRun<C> {
    /// The table the rows go into.
    pub table: TableId,
    /// Cells per row.
    pub width: usize,
    /// The rows' cells, `width` per row.
    pub cells: C,
    rows: usize,
}

impl<C> InsertRun<C> {
    /// The number of rows (also right for rows of no cells).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the run holds no row (never so for a run of a batch).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

impl<'a> InsertRun<&'a [Cell]> {
    /// Row `i`'s cells.
    ///
    /// # Panics
    /// When `i` is not below [`InsertRun::len`].
    pub fn row(&self, i: usize) -> &'a [Cell] {
        assert!(i < self.rows, "row {i} of a run of {}", self.rows);
        &self.cells[i * self.width..(i + 1) * self.width]
    }
}

impl InsertRun<&mut [Cell]> {
    /// Row `i`'s cells, writable.
    ///
    /// # Panics
    /// When `i` is not below [`InsertRun::len`].
    pub fn row_mut(&mut self, i: usize) -> &mut [Cell] {
        assert!(i < self.rows, "row {i} of a run of {}", self.rows);
        &mut self.cells[i * self.width..(i + 1) * self.width]
    }
}

impl InsertBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `cells` cells.
    pub fn with_capacity(cells: usize) -> Self {
        InsertBatch { runs: Vec::new(), cells: Vec::with_capacity(cells), rows: 0 }
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the batch holds no row.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Removes every row, keeping the allocation.
    pub fn clear(&mut self) {
        self.runs.clear();
        self.cells.clear();
        self.rows = 0;
    }

    /// Appends a row of `table`, `width` cells, all NULL, and returns it to
    /// be filled in place.
    pub fn push_row(&mut self, table: TableId, width: usize) -> &mut [Cell] {
        self.note_row(table, width);
        let start = self.cells.len();
        self.cells.resize_with(start + width, || Cell::Value(Value::Null));
        &mut self.cells[start..]
    }

    /// Appends a row of `table` with the cells `row` yields.
    pub fn push(&mut self, table: TableId, row: impl IntoIterator<Item = Cell>) {
        let start = self.cells.len();
        self.cells.extend(row);
        self.note_row(table, self.cells.len() - start);
    }

    fn note_row(&mut self, table: TableId, width: usize) {
        let width = u32::try_from(width).expect("a row has fewer than 2^32 columns");
        match self.runs.last_mut() {
            Some(run) if run.table == table && run.width == width && run.rows < u32::MAX => run.rows += 1,
            _ => self.runs.push(RunHeader { table, width, rows: 1 }),
        }
        self.rows += 1;
    }

    /// The runs in order.
    pub fn runs(&self) -> impl Iterator<Item = InsertRun<&[Cell]>> {
        let mut rest = self.cells.as_slice();
        self.runs.iter().map(move |run| {
            let (width, rows) = (run.width as usize, run.rows as usize);
            let (cells, after) = rest.split_at(width * rows);
            rest = after;
            InsertRun { table: run.table, width, cells, rows }
        })
    }

    /// [`InsertBatch::runs`], with the cells writable: a store that keeps
    /// the rows may move their values out.
    pub fn runs_mut(&mut self) -> impl Iterator<Item = InsertRun<&mut [Cell]>> {
        let mut rest = self.cells.as_mut_slice();
        self.runs.iter().map(move |run| {
            let (width, rows) = (run.width as usize, run.rows as usize);
            let (cells, after) = std::mem::take(&mut rest).split_at_mut(width * rows);
            rest = after;
            InsertRun { table: run.table, width, cells, rows }
        })
    }

    /// The rows in order, each with its table.
    pub fn rows(&self) -> impl Iterator<Item = (TableId, &[Cell])> {
        self.runs().flat_map(|run| (0..run.len()).map(move |i| (run.table, run.row(i))))
    }

    /// The rows as row operations, one [`RowOp::Insert`] each.
    pub fn to_ops(&self) -> Vec<RowOp> {
        self.rows().map(|(table, row)| RowOp::Insert { table, row: row.into() }).collect()
    }

    /// Refuses the batch unless every row fits its table (see
    /// [`check_insert`]): what a store calls before it writes any of it.
    ///
    /// # Errors
    /// [`ErrorKind::Usage`] for the first run whose width is not its table's.
    pub fn check(&self, schema: &Schema) -> Result<(), StoreError> {
        self.runs().try_for_each(|run| check_insert(schema, run.table, run.width))
    }

    /// The rows as a SQL store sends them, in order: each row whose table's
    /// autoincrement key is NULL alone (so the key can be read back), the
    /// others in runs of at most `rows_per_statement(table)` rows of one
    /// table. The batch is checked first ([`InsertBatch::check`]), so one
    /// with a row that does not fit its table sends nothing.
    ///
    /// # Errors
    /// [`ErrorKind::Usage`] for a row whose width is not its table's.
    pub fn statements<'a>(
        &'a self,
        schema: &Schema,
        rows_per_statement: impl Fn(&TableDef) -> usize,
    ) -> Result<Vec<InsertStatement<'a>>, StoreError> {
        self.check(schema)?;
        let mut statements = Vec::new();
        for run in self.runs() {
            let def = schema.table(run.table);
            let generates = |row: &[Cell]| generates_key(def, row);
            let limit = rows_per_statement(def).max(1);
            let mut i = 0;
            while i < run.len() {
                if generates(run.row(i)) {
                    statements.push(InsertStatement::Generating { table: run.table, row: run.row(i) });
                    i += 1;
                    continue;
                }
                let mut end = i + 1;
                while end < run.len() && end - i < limit && !generates(run.row(end)) {
                    end += 1;
                }
                let cells = &run.cells[i * run.width..end * run.width];
                statements.push(InsertStatement::Given {
                    table: run.table,
                    width: run.width,
                    rows: end - i,
                    cells,
                });
                i = end;
            }
        }
        Ok(statements)
    }
}

/// How a SQL store writes INSERTs: the two statement shapes
/// [`InsertBatch::statements`] yields. [`send_inserts`] drives it.
pub trait InsertStatements {
    /// Rows per multi-row INSERT, where the columns allow.
    const BATCH_ROWS: usize;

    /// Bound parameters per statement the database takes.
    const MAX_PARAMS: usize;

    /// Rows per multi-row INSERT into `def`: [`InsertStatements::BATCH_ROWS`],
    /// fewer where its columns would pass [`InsertStatements::MAX_PARAMS`].
    fn rows_per_statement(def: &TableDef) -> usize {
        Self::BATCH_ROWS.min(Self::MAX_PARAMS / def.columns.len().max(1)).max(1)
    }

    /// Inserts `row`, leaving its key to the database, and returns the key.
    ///
    /// # Errors
    /// The driver's, or an unresolvable placeholder.
    fn insert_generating(
        &mut self,
        def: &TableDef,
        row: &[Cell],
        keys: &[Option<i64>],
    ) -> Result<i64, StoreError>;

    /// Inserts `count` rows, their keys given, as one statement.
    ///
    /// # Errors
    /// The driver's, or an unresolvable placeholder.
    fn insert_given<'r>(
        &mut self,
        def: &TableDef,
        rows: impl Iterator<Item = &'r [Cell]>,
        count: usize,
        keys: &[Option<i64>],
    ) -> Result<(), StoreError>;
}

/// [`Store::apply_inserts`] for a SQL store: `batch`'s statements (see
/// [`InsertBatch::statements`]) through `sink`, a key entry per row pushed
/// onto `keys`. Nothing is sent for a batch with a row that does not fit.
///
/// # Errors
/// [`ErrorKind::Usage`] for a row of the wrong width; the sink's.
pub fn send_inserts<S: InsertStatements>(
    sink: &mut S,
    schema: &Schema,
    batch: &InsertBatch,
    keys: &mut Vec<Option<i64>>,
) -> Result<(), StoreError> {
    keys.reserve(batch.len());
    for statement in batch.statements(schema, S::rows_per_statement)? {
        match statement {
            InsertStatement::Generating { table, row } => {
                let key = sink.insert_generating(schema.table(table), row, keys)?;
                keys.push(Some(key));
            }
            InsertStatement::Given { table, width, rows, cells } => {
                sink.insert_given(schema.table(table), cells.chunks(width.max(1)), rows, keys)?;
                keys.resize(keys.len() + rows, None);
            }
        }
    }
    Ok(())
}

/// One statement's rows of an [`InsertBatch`] (see [`InsertBatch::statements`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertStatement<'a> {
    /// A row whose autoincrement key the store generates: sent alone.
    Generating {
        /// Its table.
        table: TableId,
        /// Its cells.
        row: &'a [Cell],
    },
    /// Rows with their keys given, of one table: one multi-row statement.
    Given {
        /// Their table.
        table: TableId,
        /// Cells per row.
        width: usize,
        /// How many rows.
        rows: usize,
        /// Their cells end to end.
        cells: &'a [Cell],
    },
}

/// A cell with its placeholder resolved: a value, or a key the store generated.
#[derive(Clone, Copy, Debug)]
pub enum Resolved<'a> {
    /// A literal value.
    Value(&'a Value),
    /// A key generated earlier in the batch.
    Key(i64),
}

impl Cell {
    /// Resolves a [`Cell::Generated`] against the keys generated so far in the batch.
    ///
    /// # Errors
    /// [`ErrorKind::Usage`] when it refers to an operation that generated no key.
    pub fn resolve<'a>(&'a self, keys: &[Option<i64>]) -> Result<Resolved<'a>, StoreError> {
        match self {
            Cell::Value(v) => Ok(Resolved::Value(v)),
            Cell::Generated(op) => {
                keys.get(*op as usize).copied().flatten().map(Resolved::Key).ok_or_else(|| {
                    StoreError::new(
                        ErrorKind::Usage,
                        format!("a cell refers to operation {op}, which generated no key"),
                    )
                })
            }
        }
    }
}

impl fmt::Display for Resolved<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolved::Value(v) => write!(f, "{v}"),
            Resolved::Key(k) => write!(f, "{k}"),
        }
    }
}

/// An echo line: the statement, then its parameters grouped `width` to a
/// row, the first three rows shown and the rest counted.
pub fn echo_line(sql: &str, args: &[impl fmt::Display], width: usize) -> String {
    let mut text = sql.to_owned();
    if !args.is_empty() {
        let rows: Vec<String> = args
            .chunks(width.max(1))
            .map(|row| format!("({})", row.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")))
            .collect();
        let shown = rows.len().min(3);
        text.push_str(" -- ");
        text.push_str(&rows[..shown].join(", "));
        if rows.len() > shown {
            text.push_str(&format!(" ... ({} rows)", rows.len()));
        }
    }
    text
}

/// Why a store operation failed, the same on every backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A unique or primary-key constraint.
    Unique,
    /// A foreign-key constraint.
    ForeignKey,
    /// A NOT NULL constraint.
    NotNull,
    /// A CHECK constraint.
    Check,
    /// The transaction could not be serialized with a concurrent one; retry it.
    Serialization,
    /// The connection to the database failed or was lost.
    Connection,
    /// The file or data is damaged.
    Corrupt,
    /// The stored schema does not match the registry's.
    Schema,
    /// A misuse of the store, such as `commit` without `begin`.
    Usage,
    /// Anything else the backend reports.
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Unique => "unique constraint",
            ErrorKind::ForeignKey => "foreign key constraint",
            ErrorKind::NotNull => "not null constraint",
            ErrorKind::Check => "check constraint",
            ErrorKind::Serialization => "serialization failure",
            ErrorKind::Connection => "connection",
            ErrorKind::Corrupt => "corrupt data",
            ErrorKind::Schema => "schema mismatch",
            ErrorKind::Usage => "store misuse",
            ErrorKind::Other => "store error",
        })
    }
}

/// A store failure: a backend-neutral kind, a message naming the table and
/// statement involved, the driver's own error, and, if rolling back after it
/// failed too, that error.
#[derive(Debug)]
pub struct StoreError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What failed, naming the table or statement.
    pub message: String,
    /// The driver's error.
    pub source: Option<Box<dyn StdError + Send + Sync>>,
    /// The error of the rollback that followed, when that failed as well.
    pub rollback: Option<Box<StoreError>>,
}

impl StoreError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StoreError { kind, message: message.into(), source: None, rollback: None }
    }

    /// Attaches the driver's error.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Records that the rollback after this error failed too.
    pub fn with_rollback(mut self, rollback: StoreError) -> Self {
        self.rollback = Some(Box::new(rollback));
        self
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(source) = &self.source {
            write!(f, " ({source})")?;
        }
        if let Some(rollback) = &self.rollback {
            write!(f, "; the rollback failed too: {rollback}")?;
        }
        Ok(())
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

/// Receives the text of every statement a store sends, as SQLAlchemy's `echo=True`.
pub type Echo = Box<dyn FnMut(&str) + Send>;

/// A persistence backend: row-level, object-safe, one transaction at a time.
///
/// Contract, for every implementation (the conformance suite in
/// `relgraph-testkit` checks it):
/// - `create_tables` creates every table of the schema that does not exist,
///   with its keys, unique constraints, foreign keys (enforced, with their
///   ON DELETE actions) and an index on every foreign-key column.
/// - Writes happen only between `begin` and `commit`/`rollback`; `apply`
///   runs its operations in order and stops at the first failure, after
///   which the caller must `rollback`. Nothing applied is visible to other
///   connections before `commit`, and `rollback` discards all of it.
/// - Loads may run inside or outside a transaction and see the
///   transaction's own writes.
/// - Errors carry a backend-neutral [`ErrorKind`].
pub trait Store: Send {
    /// Creates the schema's tables and foreign-key indexes where missing.
    ///
    /// # Errors
    /// [`ErrorKind::Schema`] when an existing table does not match, and IO errors.
    fn create_tables(&mut self, schema: &Schema) -> Result<(), StoreError>;

    /// Starts a transaction.
    ///
    /// # Errors
    /// [`ErrorKind::Usage`] when one is open already, and IO errors.
    fn begin(&mut self) -> Result<(), StoreError>;

    /// Says that the open transaction will apply about `operations` more
    /// operations: a hint, given before them, that changes no outcome. A
    /// store may prepare for them (the snapshot store keeps the rows of a
    /// transaction large enough for its commit to compact in lists, laid
    /// out as columns, instead of indexing them).
    /// The provided method does nothing.
    fn reserve(&mut self, operations: usize) {
        let _ = operations;
    }

    /// Applies `ops` in order, inside the open transaction, and appends to
    /// `keys`, for each operation, the key the store generated for it
    /// (`Some` only for an INSERT whose autoincrement key was NULL).
    ///
    /// A transaction's operations may arrive in several calls (a flush
    /// streams them while it builds the rest): on entry `keys` holds one
    /// entry per operation of the earlier calls, and a [`Cell::Generated`]
    /// refers to a position counted over all of them.
    ///
    /// # Errors
    /// The first failing operation's error; the caller must roll back.
    fn apply(
        &mut self,
        schema: &Schema,
        ops: &[RowOp],
        keys: &mut Vec<Option<i64>>,
    ) -> Result<(), StoreError>;

    /// [`Store::apply`], with the operations handed over: a store that keeps
    /// the rows it is given (in memory, or until its commit writes them out)
    /// may move their values instead of copying them. On return `ops` is
    /// either empty or as it was; its allocation is the caller's to reuse.
    /// The provided method calls [`Store::apply`] and leaves `ops` as it was.
    ///
    /// # Errors
    /// As [`Store::apply`].
    fn apply_owned(
        &mut self,
        schema: &Schema,
        ops: &mut Vec<RowOp>,
        keys: &mut Vec<Option<i64>>,
    ) -> Result<(), StoreError> {
        self.apply(schema, ops, keys)
    }

    /// [`Store::apply_owned`] for INSERTs alone, their rows laid end to end
    /// in `batch`: the same operations, in the same order, with the same
    /// outcome and keys, as `batch.to_ops()` would be. A flush of new rows
    /// sends them so. On return the batch's rows may have been taken (their
    /// cells left unspecified); its allocation is the caller's to clear and
    /// reuse. The provided method makes row operations of the rows and
    /// calls [`Store::apply_owned`].
    ///
    /// # Errors
    /// As [`Store::apply`]; [`ErrorKind::Usage`] for a row whose width is
    /// not its table's.
    fn apply_inserts(
        &mut self,
        schema: &Schema,
        batch: &mut InsertBatch,
        keys: &mut Vec<Option<i64>>,
    ) -> Result<(), StoreError> {
        let mut ops = batch.to_ops();
        self.apply_owned(schema, &mut ops, keys)
    }

    /// [`Store::apply`] for a transaction's only call, returning the keys:
    /// positions in `ops` are positions in the transaction.
    ///
    /// # Errors
    /// As [`Store::apply`].
    fn apply_all(&mut self, schema: &Schema, ops: &[RowOp]) -> Result<Vec<Option<i64>>, StoreError> {
        let mut keys = Vec::with_capacity(ops.len());
        self.apply(schema, ops, &mut keys)?;
        Ok(keys)
    }

    /// Commits the open transaction.
    ///
    /// # Errors
    /// [`ErrorKind::Usage`] without one, constraint kinds for deferred checks, IO errors.
    fn commit(&mut self) -> Result<(), StoreError>;

    /// Discards the open transaction (a no-op without one).
    ///
    /// # Errors
    /// IO errors.
    fn rollback(&mut self) -> Result<(), StoreError>;

    /// Every row of `table` whose `columns` equal one of `keys`, in no
    /// particular order: rows by primary key, children by foreign key, or
    /// association rows by one end.
    ///
    /// # Errors
    /// IO errors.
    fn load(
        &mut self,
        schema: &Schema,
        table: TableId,
        columns: &[u32],
        keys: &[Row],
    ) -> Result<Vec<Row>, StoreError>;

    /// The rows reached from `keys` through an association table: for each
    /// association row whose `near` foreign key holds one of `keys`, the pair
    /// (that key, the row its `far` foreign key references), in no particular
    /// order. The provided method runs two [`Store::load`]s; a SQL store may
    /// answer it with one JOIN.
    ///
    /// # Errors
    /// IO errors.
    fn load_through(
        &mut self,
        schema: &Schema,
        near: ForeignKeyId,
        far: ForeignKeyId,
        keys: &[Row],
    ) -> Result<Vec<(Row, Row)>, StoreError> {
        let (near, far) = (schema.foreign_key(near).clone(), schema.foreign_key(far).clone());
        let links = self.load(schema, near.table, &near.columns, keys)?;
        let pick = |row: &Row, columns: &[u32]| -> Row {
            columns.iter().map(|&c| row[c as usize].clone()).collect()
        };
        let mut seen = std::collections::HashSet::new();
        let far_keys: Vec<Row> =
            links.iter().map(|r| pick(r, &far.columns)).filter(|k| seen.insert(k.clone())).collect();
        let targets = self.load(schema, far.ref_table, &far.ref_columns, &far_keys)?;
        let by_key: std::collections::HashMap<Row, Row> =
            targets.into_iter().map(|r| (pick(&r, &far.ref_columns), r)).collect();
        Ok(links
            .iter()
            .filter_map(|l| by_key.get(&pick(l, &far.columns)).map(|t| (pick(l, &near.columns), t.clone())))
            .collect())
    }

    /// Every row of `table`, in primary-key order (association tables: in
    /// column order).
    ///
    /// # Errors
    /// IO errors.
    fn load_all(&mut self, schema: &Schema, table: TableId) -> Result<Vec<Row>, StoreError>;

    /// Sends the text of every statement to `echo` from now on (`None` stops it).
    fn set_echo(&mut self, echo: Option<Echo>);

    /// Whether this store would rather receive a run of same-shape
    /// operations in one [`Store::apply`] call than in chunks. A session may
    /// send a large flush's first UPDATEs in chunks of about 1,000 while it
    /// works out the rest; a store whose statements each cost a scan of the
    /// table (a set-based UPDATE on PostgreSQL) does better with whole runs,
    /// and says so here. It changes how operations are grouped into calls,
    /// never which operations run or in what order. Default: `false`.
    fn prefers_whole_runs(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Column, Registry, Table};

    fn int(i: i64) -> Cell {
        Cell::Value(Value::Integer(i))
    }

    fn tables() -> (TableId, TableId) {
        let mut registry = Registry::new();
        let a = registry.table(Table::new("a").column(Column::integer("x"))).unwrap();
        let b = registry
            .table(Table::new("b").column(Column::integer("x")).column(Column::integer("y")))
            .unwrap();
        (a, b)
    }

    #[test]
    fn an_insert_batch_groups_consecutive_rows_of_a_table_into_runs() {
        let (a, b) = tables();
        let mut batch = InsertBatch::new();
        batch.push(a, [int(1)]);
        batch.push(a, [int(2)]);
        batch.push(b, [int(3), int(4)]);
        batch.push_row(a, 1)[0] = int(5);
        let runs: Vec<_> = batch.runs().map(|r| (r.table, r.width, r.len(), r.cells.to_vec())).collect();
        assert_eq!(
            runs,
            [(a, 1, 2, vec![int(1), int(2)]), (b, 2, 1, vec![int(3), int(4)]), (a, 1, 1, vec![int(5)])]
        );
        assert_eq!(batch.len(), 4);
        let ops = batch.to_ops();
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[2], RowOp::Insert { table: b, row: Box::new([int(3), int(4)]) });
        assert_eq!(
            batch.rows().map(|(t, row)| (t, row.len())).collect::<Vec<_>>(),
            [(a, 1), (a, 1), (b, 2), (a, 1)]
        );
    }

    #[test]
    fn a_row_of_another_width_starts_a_run_and_clearing_ends_every_run() {
        let (a, _) = tables();
        let mut batch = InsertBatch::with_capacity(8);
        batch.push(a, [int(1)]);
        // The wrong width is the store's to refuse; the batch keeps it apart.
        batch.push(a, [int(2), int(3)]);
        batch.push(a, []);
        assert_eq!(batch.runs().map(|r| (r.width, r.len())).collect::<Vec<_>>(), [(1, 1), (2, 1), (0, 1)]);
        assert_eq!(batch.runs().count(), 3);
        assert_eq!(
            batch.to_ops(),
            [
                RowOp::Insert { table: a, row: Box::new([int(1)]) },
                RowOp::Insert { table: a, row: Box::new([int(2), int(3)]) },
                RowOp::Insert { table: a, row: Box::new([]) },
            ]
        );
        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(batch.runs().count(), 0);
        batch.push(a, [int(9)]);
        assert_eq!(batch.to_ops(), [RowOp::Insert { table: a, row: Box::new([int(9)]) }]);
        batch.clear();
        assert_eq!((batch.len(), batch.runs().count()), (0, 0));
    }

    #[test]
    fn operations_that_do_not_fit_their_table_are_usage_errors_naming_it() {
        let mut registry = Registry::new();
        let pair = registry
            .table(Table::new("pair").column(Column::integer("a")).column(Column::integer("b")))
            .unwrap();
        let keyed = registry.table(Table::new("keyed").column(Column::integer("id").primary_key())).unwrap();
        let schema = registry.configure().unwrap();
        // A handle from a schema with more tables than this one has.
        let mut other = Registry::new();
        other.table(Table::new("x").column(Column::integer("a"))).unwrap();
        other.table(Table::new("z").column(Column::integer("a"))).unwrap();
        let foreign = other.table(Table::new("y").column(Column::integer("a"))).unwrap();
        let update = |key_columns: &[u32], key: &[Cell], columns: &[u32], values: &[Cell]| RowOp::Update {
            table: pair,
            key_columns: key_columns.into(),
            key: key.into(),
            columns: columns.into(),
            values: values.into(),
        };
        let fitting = [
            RowOp::Insert { table: pair, row: Box::new([int(1), int(2)]) },
            update(&[0], &[int(1)], &[1], &[int(3)]),
            RowOp::Delete { table: pair, columns: Box::new([0, 1]), values: Box::new([int(1), int(2)]) },
        ];
        for op in &fitting {
            assert!(op.check(&schema).is_ok(), "{op:?}");
        }
        let malformed = [
            (RowOp::Insert { table: pair, row: Box::new([int(1)]) }, "pair"),
            (update(&[0], &[int(1)], &[2], &[int(3)]), "pair"),
            (update(&[0], &[], &[1], &[int(3)]), "pair"),
            (RowOp::Delete { table: pair, columns: Box::new([0]), values: Box::new([]) }, "pair"),
            (RowOp::Insert { table: foreign, row: Box::new([int(1)]) }, "table 2"),
        ];
        for (op, named) in &malformed {
            let err = op.check(&schema).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Usage, "{op:?}: {err}");
            assert!(err.message.contains(named), "{op:?}: {err}");
        }
        // A row too short to hold the key asks for none, rather than panicking.
        assert!(
            RowOp::Insert { table: keyed, row: Box::new([Cell::Value(Value::Null)]) }.generates_key(&schema)
        );
        assert!(!RowOp::Insert { table: keyed, row: Box::new([]) }.generates_key(&schema));
    }

    #[test]
    fn statements_send_generating_rows_alone_and_the_rest_in_runs_of_at_most_the_limit() {
        let mut registry = Registry::new();
        let keyed = registry
            .table(
                Table::new("keyed").column(Column::integer("id").primary_key()).column(Column::integer("v")),
            )
            .unwrap();
        let plain = registry.table(Table::new("plain").column(Column::integer("x"))).unwrap();
        let schema = registry.configure().unwrap();
        let null = Cell::Value(Value::Null);
        let mut batch = InsertBatch::new();
        for row in [[int(1), int(0)], [int(2), int(0)], [null.clone(), int(0)], [int(4), int(0)]] {
            batch.push(keyed, row);
        }
        for x in 0..5 {
            batch.push(plain, [int(x)]);
        }
        let statements = batch.statements(&schema, |def| if def.name == "plain" { 2 } else { 10 }).unwrap();
        let shapes: Vec<(TableId, bool, usize)> = statements
            .iter()
            .map(|s| match *s {
                InsertStatement::Generating { table, .. } => (table, true, 1),
                InsertStatement::Given { table, rows, .. } => (table, false, rows),
            })
            .collect();
        assert_eq!(
            shapes,
            [
                (keyed, false, 2),
                (keyed, true, 1),
                (keyed, false, 1),
                (plain, false, 2),
                (plain, false, 2),
                (plain, false, 1)
            ]
        );
        assert_eq!(shapes.iter().map(|&(_, _, rows)| rows).sum::<usize>(), batch.len());
        assert_eq!(
            statements[3],
            InsertStatement::Given { table: plain, width: 1, rows: 2, cells: &[int(0), int(1)] }
        );

        // A row of the wrong width anywhere: no statement at all.
        batch.push(plain, [int(5), int(6)]);
        let err = batch.statements(&schema, |_| 10).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Usage, "{err}");
        assert!(err.message.contains("plain"), "{err}");
    }

    #[test]
    fn rows_of_a_batch_are_written_in_place_through_runs_mut() {
        let (a, b) = tables();
        let mut batch = InsertBatch::new();
        batch.push_row(a, 1);
        batch.push_row(b, 2);
        batch.push_row(b, 2);
        for mut run in batch.runs_mut() {
            for i in 0..run.len() {
                let width = run.width as i64;
                for (c, cell) in run.row_mut(i).iter_mut().enumerate() {
                    *cell = int(width * 10 + i as i64 * 2 + c as i64);
                }
            }
        }
        let rows: Vec<Vec<Cell>> = batch.rows().map(|(_, r)| r.to_vec()).collect();
        assert_eq!(rows, [vec![int(10)], vec![int(20), int(21)], vec![int(22), int(23)]]);
    }
}
