//! The snapshot tools of the `relgraph` command: inspect, verify, dump,
//! export to SQLite, import from SQLite, compact. Each writes its report to
//! the writer it is given, so tests read what a user would see.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use relgraph_core::{Cell, ColumnType, OnDelete, Row, RowOp, Schema, Store, StoreError, Value};
use relgraph_snapshot::describe::{TableDesc, to_schema};
use relgraph_snapshot::{ColumnDesc, ForeignKeyDesc, SnapshotOptions, SnapshotStore};
use relgraph_sqlite::SqliteStore;

/// How `relgraph dump` writes rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DumpFormat {
    /// Columns separated by ` | `, with a header line.
    Text,
    /// RFC 4180 CSV with a header line; blobs as hex.
    Csv,
    /// JSON Lines: one object per row; blobs as hex strings.
    Json,
}

/// Opens a snapshot for reading (alongside a program writing it), naming
/// the file in the error.
fn open(path: &Path) -> anyhow::Result<SnapshotStore> {
    open_with(path, |p| SnapshotStore::open_read_only(p))
}

fn open_with(
    path: &Path,
    open: fn(&Path) -> Result<SnapshotStore, StoreError>,
) -> anyhow::Result<SnapshotStore> {
    if !path.exists() {
        bail!("{}: no such file", path.display());
    }
    open(path).with_context(|| format!("cannot open {}", path.display()))
}

/// Rows in every table, counted without reading them.
fn total_rows(store: &SnapshotStore) -> anyhow::Result<usize> {
    Ok((0..store.tables().len()).map(|t| store.row_count(t)).sum::<Result<usize, _>>()?)
}

fn schema_of(store: &SnapshotStore) -> anyhow::Result<Arc<Schema>> {
    let tables: Vec<TableDesc> = store.tables().cloned().collect();
    to_schema(&tables).context("the snapshot describes an inconsistent schema")
}

/// A progress bar on stderr for `len` steps; hidden when stderr is not a terminal.
fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} rows ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// `relgraph inspect`: the header, the log and each table's columns, keys and row count.
///
/// # Errors
/// A file that is not a valid snapshot.
pub fn inspect(path: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let store = open(path)?;
    let info = store.info().context("the snapshot is empty")?;
    writeln!(out, "file         {}", path.display())?;
    writeln!(out, "format       version {}", info.header.version)?;
    writeln!(out, "schema       fingerprint {:#018x}", info.header.fingerprint)?;
    writeln!(out, "generation   {} (compactions)", info.header.generation)?;
    writeln!(out, "base image   {} bytes", info.header.base_len)?;
    writeln!(out, "log          {} batches, {} bytes", info.batches, info.log_len)?;
    if info.torn_tail {
        writeln!(out, "torn tail    yes: an append was cut short; the next commit or compaction drops it")?;
    }
    writeln!(out, "tables       {}", store.tables().len())?;
    let tables: Vec<&TableDesc> = store.tables().collect();
    for (t, table) in tables.iter().enumerate() {
        let rows = store.row_count(t)?;
        writeln!(out)?;
        writeln!(out, "table {} ({rows} rows)", table.name)?;
        for c in &table.columns {
            let mut flags = Vec::new();
            if c.primary_key {
                flags.push("primary key");
            }
            if c.autoincrement {
                flags.push("autoincrement");
            }
            if !c.nullable {
                flags.push("not null");
            }
            if c.unique {
                flags.push("unique");
            }
            writeln!(out, "  {:<20} {:<8} {}", c.name, c.ty.sql_name(), flags.join(", "))?;
        }
        let names =
            |cols: &[u32]| cols.iter().map(|&c| table.columns[c as usize].name.as_str()).collect::<Vec<_>>();
        for unique in table.uniques.iter().filter(|u| u.len() > 1) {
            writeln!(out, "  unique ({})", names(unique).join(", "))?;
        }
        for fk in &table.foreign_keys {
            let target = tables[fk.ref_table];
            let refs: Vec<&str> =
                fk.ref_columns.iter().map(|&c| target.columns[c as usize].name.as_str()).collect();
            writeln!(
                out,
                "  foreign key ({}) references {} ({}){}",
                names(&fk.columns).join(", "),
                target.name,
                refs.join(", "),
                fk.on_delete.sql().to_lowercase()
            )?;
        }
    }
    Ok(())
}

/// `relgraph verify`: opens the file (every checksum and rkyv validation),
/// then checks the stored indexes' order and every row's constraints.
///
/// # Errors
/// The first problem found.
pub fn verify(path: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let store = open(path)?;
    store.verify().with_context(|| format!("{} failed verification", path.display()))?;
    let rows = total_rows(&store)?;
    let info = store.info().context("the snapshot is empty")?;
    writeln!(
        out,
        "ok: {} tables, {rows} rows, {} log batches{}",
        store.tables().len(),
        info.batches,
        if info.torn_tail { " (and a torn tail, which is ignored)" } else { "" }
    )?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Blob(b) => hex(b),
        Value::Text(s) => s.to_string(),
        other => other.to_string(),
    }
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
        Value::Text(s) => s.as_ref().into(),
        Value::Boolean(b) => (*b).into(),
        Value::Blob(b) => hex(b).into(),
    }
}

/// `relgraph dump`: one table's rows, in primary-key order.
///
/// # Errors
/// A bad file or an unknown table.
pub fn dump(path: &Path, table: &str, format: DumpFormat, out: &mut dyn Write) -> anyhow::Result<()> {
    let store = open(path)?;
    let Some(t) = store.tables().position(|d| d.name == table) else {
        let names: Vec<&str> = store.tables().map(|d| d.name.as_str()).collect();
        bail!("{} has no table {table:?}; its tables are: {}", path.display(), names.join(", "));
    };
    let desc = store.tables().nth(t).context("table vanished")?.clone();
    let names: Vec<&str> = desc.columns.iter().map(|c| c.name.as_str()).collect();
    let rows = store.rows(t)?;
    match format {
        DumpFormat::Text => writeln!(out, "{}", names.join(" | "))?,
        DumpFormat::Csv => {
            writeln!(out, "{}", names.iter().map(|n| csv_field(n)).collect::<Vec<_>>().join(","))?
        }
        DumpFormat::Json => {}
    }
    for row in &rows {
        match format {
            DumpFormat::Text => {
                let cells: Vec<String> =
                    row.iter().map(|v| if v.is_null() { "NULL".into() } else { text(v) }).collect();
                writeln!(out, "{}", cells.join(" | "))?;
            }
            DumpFormat::Csv => {
                let cells: Vec<String> = row.iter().map(|v| csv_field(&text(v))).collect();
                writeln!(out, "{}", cells.join(","))?;
            }
            DumpFormat::Json => {
                let object: serde_json::Map<String, serde_json::Value> =
                    names.iter().zip(row.iter()).map(|(n, v)| ((*n).to_owned(), json(v))).collect();
                writeln!(out, "{}", serde_json::Value::Object(object))?;
            }
        }
    }
    Ok(())
}

fn refuse_existing(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.exists() {
        if !force {
            bail!("{} exists; pass --force to replace it", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("cannot replace {}", path.display()))?;
    }
    Ok(())
}

/// `relgraph export`: the snapshot's tables and rows into a new SQLite file.
///
/// # Errors
/// A bad snapshot, an existing target without `force`, SQLite errors.
pub fn export(path: &Path, sqlite: &Path, force: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let store = open(path)?;
    let schema = schema_of(&store)?;
    refuse_existing(sqlite, force)?;
    let mut target =
        SqliteStore::open(sqlite).with_context(|| format!("cannot create {}", sqlite.display()))?;
    target.create_tables(&schema)?;
    target.begin()?;
    // Rows go in table by table; foreign keys are checked once, at commit.
    target.connection().execute_batch("PRAGMA defer_foreign_keys = ON")?;
    let total = total_rows(&store)?;
    let bar = progress(total as u64, "export");
    for table in schema.table_ids() {
        let rows = store.rows(table.index())?;
        for chunk in rows.chunks(10_000) {
            let ops: Vec<RowOp> = chunk
                .iter()
                .map(|row| RowOp::Insert { table, row: row.iter().cloned().map(Cell::Value).collect() })
                .collect();
            if let Err(e) = target.apply_all(&schema, &ops) {
                return Err(rolled_back(&mut target, e))
                    .context(format!("exporting table {}", schema.table(table).name));
            }
            bar.inc(chunk.len() as u64);
        }
    }
    if let Err(e) = target.commit() {
        return Err(rolled_back(&mut target, e)).context("the exported rows break a constraint");
    }
    bar.finish_and_clear();
    writeln!(out, "exported {total} rows in {} tables to {}", schema.tables().len(), sqlite.display())?;
    Ok(())
}

/// `error` after rolling `target` back, keeping the rollback's error too if it fails.
fn rolled_back(target: &mut SqliteStore, error: StoreError) -> StoreError {
    match target.rollback() {
        Ok(()) => error,
        Err(rollback) => error.with_rollback(rollback),
    }
}

fn sqlite_type(declared: &str) -> Option<ColumnType> {
    let upper = declared.to_ascii_uppercase();
    Some(match upper.as_str() {
        "INTEGER" | "INT" | "BIGINT" => ColumnType::Integer,
        "REAL" | "FLOAT" | "DOUBLE" | "DOUBLE PRECISION" => ColumnType::Float,
        "TEXT" | "VARCHAR" | "CLOB" => ColumnType::Text,
        "BOOLEAN" | "BOOL" => ColumnType::Boolean,
        "BLOB" => ColumnType::Blob,
        _ => return None,
    })
}

/// Reads the tables of a SQLite file as snapshot descriptions.
fn describe_sqlite(conn: &rusqlite::Connection) -> anyhow::Result<Vec<TableDesc>> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut tables = Vec::new();
    for name in &names {
        let mut columns = Vec::new();
        let mut pk: Vec<(i64, u32)> = Vec::new();
        let mut stmt =
            conn.prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid")?;
        let infos: Vec<(String, String, bool, i64)> = stmt
            .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        for (i, (column, declared, not_null, pk_pos)) in infos.iter().enumerate() {
            let ty = sqlite_type(declared).with_context(|| {
                format!(
                    "table {name}: column {column} has type {declared:?}, which relgraph has no match for"
                )
            })?;
            if *pk_pos > 0 {
                pk.push((*pk_pos, i as u32));
            }
            columns.push(ColumnDesc {
                name: column.clone(),
                ty,
                nullable: !not_null && *pk_pos == 0,
                primary_key: *pk_pos > 0,
                autoincrement: false,
                unique: false,
            });
        }
        pk.sort_unstable();
        let primary_key: Vec<u32> = pk.into_iter().map(|(_, c)| c).collect();
        // A lone INTEGER PRIMARY KEY is SQLite's rowid: the store generates it.
        if let [c] = primary_key.as_slice()
            && columns[*c as usize].ty == ColumnType::Integer
        {
            columns[*c as usize].autoincrement = true;
        }
        let mut uniques: Vec<Vec<u32>> = Vec::new();
        let mut stmt = conn.prepare(
            "SELECT name FROM pragma_index_list(?1) WHERE \"unique\" AND origin = 'u' ORDER BY seq DESC",
        )?;
        let indexes: Vec<String> = stmt.query_map([name], |r| r.get(0))?.collect::<Result<_, _>>()?;
        for index in indexes {
            let mut stmt = conn.prepare("SELECT cid FROM pragma_index_info(?1) ORDER BY seqno")?;
            let cols: Vec<u32> = stmt.query_map([&index], |r| r.get(0))?.collect::<Result<_, _>>()?;
            uniques.push(cols);
        }
        // Single-column constraints read as the columns' own, first, as the registry orders them.
        for u in &uniques {
            if let [c] = u.as_slice() {
                columns[*c as usize].unique = true;
            }
        }
        let mut ordered: Vec<Vec<u32>> =
            (0..columns.len() as u32).filter(|&c| columns[c as usize].unique).map(|c| vec![c]).collect();
        ordered.extend(uniques.into_iter().filter(|u| u.len() > 1));
        tables.push((name.clone(), columns, primary_key, ordered));
    }
    let mut out = Vec::new();
    for (name, columns, primary_key, uniques) in &tables {
        let mut stmt = conn.prepare(
            "SELECT id, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list(?1) ORDER BY id DESC, seq",
        )?;
        let rows: Vec<(i64, String, String, Option<String>, String)> = stmt
            .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<Result<_, _>>()?;
        let mut foreign_keys: Vec<(i64, ForeignKeyDesc)> = Vec::new();
        for (id, target, from, to, on_delete) in rows {
            let ref_table = tables
                .iter()
                .position(|t| t.0 == target)
                .with_context(|| format!("table {name}: foreign key to a missing table {target}"))?;
            let column_of = |cols: &[ColumnDesc], n: &str| {
                cols.iter()
                    .position(|c| c.name == n)
                    .map(|c| c as u32)
                    .with_context(|| format!("no column {n}"))
            };
            let from = column_of(columns, &from)?;
            let to = match to {
                Some(to) => column_of(&tables[ref_table].1, &to)?,
                None => {
                    *tables[ref_table].2.first().context("a foreign key to a table without a primary key")?
                }
            };
            let on_delete = match on_delete.as_str() {
                "CASCADE" => OnDelete::Cascade,
                "SET NULL" => OnDelete::SetNull,
                "NO ACTION" => OnDelete::NoAction,
                other => bail!("table {name}: ON DELETE {other} has no match in relgraph"),
            };
            match foreign_keys.last_mut() {
                Some((last, fk)) if *last == id => {
                    fk.columns.push(from);
                    fk.ref_columns.push(to);
                }
                _ => foreign_keys.push((
                    id,
                    ForeignKeyDesc { columns: vec![from], ref_table, ref_columns: vec![to], on_delete },
                )),
            }
        }
        out.push(TableDesc {
            name: name.clone(),
            columns: columns.clone(),
            primary_key: primary_key.clone(),
            uniques: uniques.clone(),
            foreign_keys: foreign_keys.into_iter().map(|(_, fk)| fk).collect(),
        });
    }
    Ok(out)
}

/// `relgraph import`: a SQLite file's tables and rows into a new snapshot.
///
/// # Errors
/// A table relgraph cannot describe, rows that break a constraint, an
/// existing target without `force`.
pub fn import(sqlite: &Path, path: &Path, force: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    if !sqlite.exists() {
        bail!("{}: no such file", sqlite.display());
    }
    let mut source =
        SqliteStore::open(sqlite).with_context(|| format!("cannot open {}", sqlite.display()))?;
    let descs = describe_sqlite(source.connection())
        .with_context(|| format!("cannot describe the tables of {}", sqlite.display()))?;
    let schema = to_schema(&descs).context("the SQLite tables do not form a relgraph schema")?;
    refuse_existing(path, force)?;
    let mut rows: Vec<Vec<Row>> = Vec::new();
    let bar = progress(schema.tables().len() as u64, "import");
    for table in schema.table_ids() {
        rows.push(source.load_all(&schema, table)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let total: usize = rows.iter().map(Vec::len).sum();
    SnapshotStore::create_with_rows(path, &schema, rows, SnapshotOptions::default())
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(out, "imported {total} rows in {} tables into {}", schema.tables().len(), path.display())?;
    Ok(())
}

/// `relgraph compact`: rewrites the file as one base image, atomically.
///
/// # Errors
/// A bad file or an IO error.
pub fn compact(path: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let before = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    // Compaction writes: it takes the writer's lock.
    let mut store = open_with(path, |p| SnapshotStore::open(p))?;
    let batches = store.info().map_or(0, |i| i.batches);
    store.compact().with_context(|| format!("cannot compact {}", path.display()))?;
    let after = std::fs::metadata(path)?.len();
    writeln!(
        out,
        "compacted {}: {before} -> {after} bytes, {batches} log batches folded in",
        path.display()
    )?;
    Ok(())
}
