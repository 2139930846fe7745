//! [`SnapshotStore`]: the base image read in place, an overlay of the rows
//! changed since, constraint checks through indexes on both, transactions by
//! undo record, and the file writes (append a batch, or compact).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use relgraph_core::{
    Cell, ColumnType, Echo, ErrorKind, InsertBatch, OnDelete, Resolved, Row, RowOp, Schema, Store,
    StoreError, TableId, Value,
};
use rkyv::util::AlignedVec;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::SnapshotError;
use crate::changed::{Changed, RowId};
use crate::describe::{ForeignKeyDesc, TableDesc, describe};
use crate::format::{BatchRec, ChangeRec, ColumnData, HEADER_LEN, Header, encode_frame, padded, to_bytes};
use crate::image::{Base, Columns, FileBytes, Source, ValueRef, cmp_keys, sorted_columns, write_image};
use crate::overlay_index::{Key, OverlayIndex};

/// Below this many rows in the base image, the log may hold this many row
/// changes before a commit compacts.
const COMPACT_MIN_ROWS: u64 = 16_384;

/// How a [`SnapshotStore`] writes.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotOptions {
    /// Whether each commit and compaction waits for the disk (`fsync`).
    /// Without it a crash of the machine (not of the process) may lose
    /// recent commits or leave a damaged file, which opening then reports:
    /// for fixtures, tests and scratch files, where speed matters more.
    pub sync: bool,
    /// When a commit compacts the file instead of appending to its log.
    pub compaction: Compaction,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions { sync: true, compaction: Compaction::Auto }
    }
}

/// When a commit rewrites the file as one base image instead of appending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compaction {
    /// Once the rows changed in the log would outnumber the rows of the base
    /// image (and 16,384): the log then never costs more than the image to
    /// replay at open, and compaction's cost spreads over the flushes that
    /// grew the log, so a flush costs its change, amortized.
    #[default]
    Auto,
    /// Only on [`SnapshotStore::compact`].
    Never,
    /// At every commit: every read then goes to the archived image. A flush
    /// costs the whole file; for files read far more than written, and for
    /// tests of the image's read path.
    EveryCommit,
}

/// What a snapshot file holds, for `relgraph inspect`.
#[derive(Clone, Debug)]
pub struct SnapshotInfo {
    /// The header.
    pub header: Header,
    /// Bytes of the file that hold committed data.
    pub file_len: u64,
    /// Committed batches in the log.
    pub batches: u32,
    /// Bytes of the log.
    pub log_len: u64,
    /// Whether a torn append (a crash mid-commit) follows the last batch.
    pub torn_tail: bool,
}

/// An overlay entry: a row inserted or updated since the image, or a base
/// row deleted since.
#[derive(Clone, Debug, PartialEq)]
enum Entry {
    /// Written by this process.
    Row(Row),
    /// As change `change` of the log's batch `batch` holds it: read in place,
    /// so opening a file with a long log copies no values.
    Logged { batch: u32, change: u32 },
    /// A base row deleted since the image.
    Deleted,
}

impl Entry {
    /// Where the entry's values are (`None` for a deleted row).
    fn source<'a>(&'a self, base: &'a Base) -> Option<Source<'a>> {
        match self {
            Entry::Row(row) => Some(Source::Row(row)),
            Entry::Logged { batch, change } => base.logged(*batch, *change).map(Source::Logged),
            Entry::Deleted => None,
        }
    }
}

struct TableState {
    /// The table's position.
    table: usize,
    desc: TableDesc,
    base_rows: u32,
    next_row: RowId,
    indexes: Vec<Vec<u32>>,
    changed: Changed<Entry>,
    /// Per index: key to the overlay rows holding it, where it differs from
    /// the row's key in the image (every row inserted since, a base row only
    /// when the change moved it within this index). A base row changed
    /// without moving is found through the image's index, so a log of
    /// renames indexes nothing.
    overlay: Vec<OverlayIndex>,
    /// Foreign keys of other tables referencing this one: (table, foreign key position).
    referenced_by: Vec<(usize, usize)>,
    max_key: Option<i64>,
    /// The rows the open transaction inserted while the table takes them
    /// laid out (see [`Bulk`]); they are in neither `changed` nor `overlay`.
    bulk: Option<Bulk>,
}

/// Rows inserted into a table that was empty when the transaction began,
/// with no unique constraint but its primary key, by a transaction said to
/// be large enough for its commit to compact ([`Store::reserve`]): kept in
/// a list instead of being indexed. When the key is one integer column and
/// the rows come in increasing key order, they are also laid out as columns
/// as they arrive ([`Laid`]): the key order makes each new key unique by
/// one comparison and the rows findable by key with a binary search, and
/// the compaction writes the columns as they are instead of reading 100,000
/// rows back from the heap. A table without a primary key (association
/// rows) has nothing to keep unique: its rows are only kept, found by a
/// scan, and sorted by the compaction as the overlay's rows are. Anything
/// else done to such a table in the transaction (an UPDATE, a DELETE, a
/// key out of order, a value of another type than its column's so far), or
/// a commit that appends after all, first moves its rows into the overlay
/// ([`materialize`]), where the general path takes over.
struct Bulk {
    /// The row id of the first row.
    first: RowId,
    rows: Vec<Row>,
    /// The rows laid out, for a table keyed by one integer column.
    laid: Option<Laid>,
}

/// The rows of a [`Bulk`] as columns, in key order.
struct Laid {
    /// The key column.
    key: u32,
    /// Every row is checked to fit before it joins, so no column gives up
    /// its layout, and the key column holds integers.
    columns: Columns,
}

impl Bulk {
    /// The list of a table that takes its rows so: empty, with no unique
    /// constraint, keyed by one integer column or not keyed at all.
    fn for_table(state: &TableState) -> Option<Bulk> {
        let laid = match state.desc.primary_key.as_slice() {
            [key] if state.desc.columns[*key as usize].ty == ColumnType::Integer => {
                Some(Laid { key: *key, columns: Columns::new(state.desc.columns.len() as u32) })
            }
            [] => None,
            _ => return None,
        };
        let empty = state.base_rows == 0 && state.changed.len() == 0;
        (empty && state.desc.uniques.is_empty()).then(|| Bulk {
            first: state.next_row,
            rows: Vec::new(),
            laid,
        })
    }

    /// The rows' keys, in order: their key column (none without a key).
    fn keys(&self) -> &[i64] {
        self.laid.as_ref().and_then(|laid| laid.columns.integers(laid.key)).unwrap_or_default()
    }

    /// Row `row`'s values, if it is one of these.
    fn row(&self, row: RowId) -> Option<&[Value]> {
        let at = usize::try_from(row.checked_sub(self.first)?).ok()?;
        self.rows.get(at).map(|row| &row[..])
    }

    /// Calls `f` with each row whose `columns` equal `key` until it returns
    /// false: a binary search by key, a scan by any other columns.
    fn each_match(&self, columns: &[u32], key: &[ValueRef<'_>], mut f: impl FnMut(RowId) -> bool) {
        if let (Some(laid), [c], [ValueRef::Integer(k)]) = (&self.laid, columns, key)
            && *c == laid.key
        {
            let keys = self.keys();
            // Keys numbered one after another are found with one probe.
            let guess = k.checked_sub(*keys.first().unwrap_or(&0)).and_then(|d| usize::try_from(d).ok());
            let at = match guess {
                Some(i) if keys.get(i) == Some(k) => Ok(i),
                _ => keys.binary_search(k),
            };
            if let Ok(i) = at {
                f(self.first + i as u64);
            }
            return;
        }
        for (r, row) in self.rows.iter().enumerate() {
            let hit =
                columns.iter().zip(key).all(|(&c, v)| ValueRef::from(&row[c as usize]).total_cmp(*v).is_eq());
            if hit && !f(self.first + r as u64) {
                return;
            }
        }
    }
}

/// An opened file: its base image, the overlay replayed from its log, and
/// where the next append goes.
struct Db {
    base: Base,
    tables: Vec<TableState>,
    header: Header,
    /// End of the last committed batch.
    valid_len: u64,
    log_len: u64,
    /// Row changes in the log.
    log_rows: u64,
    batches: u32,
    torn_tail: bool,
}

struct Tx {
    /// Rows that existed before the transaction, with their overlay entry then.
    undo: FxHashMap<(usize, RowId), Option<Entry>>,
    /// Rows inserted by the transaction (at or past `next_rows`): rolling back drops them.
    inserted: Vec<(usize, RowId)>,
    next_rows: Vec<RowId>,
    max_keys: Vec<Option<i64>>,
    /// How many rows the transaction must touch for its commit to compact
    /// (`None`: it never does), decided at `begin` from the options and the
    /// file's rows.
    compact_at: Option<u64>,
    /// Whether the caller said how large the transaction is (or its first
    /// `apply` did), which decides whether rows are laid out ([`Bulk`]).
    sized: bool,
}

/// The snapshot store. See the crate docs for an example.
///
/// Reads go to the base image in place (binary search over the indexes
/// stored in the file) and to the overlay of rows changed since; writes go
/// to the overlay and, at commit, to the end of the file as one checksummed
/// batch. O(log rows) per row read by key, O(change) per commit.
pub struct SnapshotStore {
    path: PathBuf,
    options: SnapshotOptions,
    db: Option<Db>,
    tx: Option<Tx>,
    echo: Option<Echo>,
    /// The exclusive lock on `<file>.lock` that makes this store the file's
    /// only writer; `None` for a store opened read-only.
    lock: Option<File>,
    /// Whether inserts into empty tables are laid out as they arrive (see
    /// [`Bulk`]); off only in tests, which compare both paths.
    laid_out_inserts: bool,
}

impl std::fmt::Debug for SnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io { path: path.to_owned(), source }
}

fn usage(message: &str) -> StoreError {
    StoreError::new(ErrorKind::Usage, message)
}

fn not_null(desc: &TableDesc, c: usize) -> StoreError {
    StoreError::new(
        ErrorKind::NotNull,
        format!("NOT NULL constraint failed: {}.{}", desc.name, desc.columns[c].name),
    )
}

fn key_of(row: Source<'_>, columns: &[u32]) -> Option<Key> {
    Key::of(columns.iter().map(|&c| row.cell(c)))
}

/// The values of `row` in `columns`, as a lookup key (`None` if any is NULL).
fn refs_of<'a>(row: &'a [Value], columns: &[u32]) -> Option<SmallVec<[ValueRef<'a>; 2]>> {
    refs_by(columns, |c| ValueRef::from(&row[c as usize]))
}

/// The values `cell` gives `columns`, unless one is NULL. A key of one
/// column, the common one, is made without collecting: collected, it cost
/// W2's 200,000 foreign-key checks about 150 instructions each.
fn refs_by<'a>(columns: &[u32], cell: impl Fn(u32) -> ValueRef<'a>) -> Option<SmallVec<[ValueRef<'a>; 2]>> {
    let refs = match columns {
        [c] => SmallVec::from_buf_and_len([cell(*c), ValueRef::Null], 1),
        _ => columns.iter().map(|&c| cell(c)).collect(),
    };
    (!refs.contains(&ValueRef::Null)).then_some(refs)
}

fn resolve(cell: &Cell, keys: &[Option<i64>]) -> Result<Value, StoreError> {
    Ok(match cell.resolve(keys)? {
        Resolved::Value(v) => v.clone(),
        Resolved::Key(k) => Value::Integer(k),
    })
}

impl TableState {
    fn new(table: usize, desc: TableDesc, base_rows: u32) -> Self {
        let indexes = desc.index_columns();
        TableState {
            table,
            base_rows,
            next_row: RowId::from(base_rows),
            overlay: vec![OverlayIndex::default(); indexes.len()],
            indexes,
            changed: Changed::new(base_rows),
            referenced_by: Vec::new(),
            max_key: None,
            bulk: None,
            desc,
        }
    }

    fn index_on(&self, columns: &[u32]) -> Option<usize> {
        self.indexes.iter().position(|ix| ix == columns)
    }

    /// Replaces the overlay entry of `row` (`None`: no entry, the base row
    /// shows through), keeping the overlay indexes in step; returns the old
    /// one. `base` is the file the logged entries are in.
    fn put(&mut self, base: &Base, row: RowId, entry: Option<Entry>) -> Option<Entry> {
        let old = match entry {
            Some(entry) => self.changed.insert(row, entry),
            None => self.changed.remove(row),
        };
        let in_base = (row < RowId::from(self.base_rows)).then_some(Source::Archived {
            base,
            table: self.table,
            row: row as u32,
        });
        // Whether `source` holds the same values in `columns` as the row's image.
        let unmoved = |source: Source<'_>, columns: &[u32]| {
            in_base.is_some_and(|b| columns.iter().all(|&c| b.cell(c).total_cmp(source.cell(c)).is_eq()))
        };
        if let Some(old_row) = old.as_ref().and_then(|e| e.source(base)) {
            for (i, columns) in self.indexes.iter().enumerate() {
                if !unmoved(old_row, columns)
                    && let Some(key) = key_of(old_row, columns)
                {
                    self.overlay[i].remove(&key, row);
                }
            }
        }
        if let Some(new_row) = self.changed.get(row).and_then(|e| e.source(base)) {
            for (i, columns) in self.indexes.iter().enumerate() {
                if !unmoved(new_row, columns)
                    && let Some(key) = key_of(new_row, columns)
                {
                    self.overlay[i].insert(key, row);
                }
            }
            if let Some(k) = self.autoincrement_key(new_row) {
                self.max_key = Some(self.max_key.map_or(k, |m| m.max(k)));
            }
        }
        old
    }

    fn autoincrement_key(&self, row: Source<'_>) -> Option<i64> {
        match self.desc.primary_key.as_slice() {
            [pk] if self.desc.columns[*pk as usize].autoincrement => match row.cell(*pk) {
                ValueRef::Integer(i) => Some(i),
                _ => None,
            },
            _ => None,
        }
    }

    /// Sets `row`'s state: a row (`None`: deleted). A row inserted since the
    /// image and deleted again leaves no entry.
    fn set(&mut self, base: &Base, row: RowId, new: Option<Entry>) -> Option<Entry> {
        let entry = match new {
            Some(entry) => Some(entry),
            None if row < RowId::from(self.base_rows) => Some(Entry::Deleted),
            None => None,
        };
        self.put(base, row, entry)
    }
}

impl Db {
    /// Parses a whole file: header, base image and log.
    fn parse(file: FileBytes) -> Result<Db, SnapshotError> {
        let header = Header::decode(&file)?;
        let (base, descs) = Base::open(file, &header)?;
        let mut tables: Vec<TableState> =
            descs.into_iter().enumerate().map(|(t, desc)| TableState::new(t, desc, base.rows(t))).collect();
        for t in 0..tables.len() {
            for f in 0..tables[t].desc.foreign_keys.len() {
                let target = tables[t].desc.foreign_keys[f].ref_table;
                tables[target].referenced_by.push((t, f));
            }
        }
        let mut db =
            Db { base, tables, header, valid_len: 0, log_len: 0, log_rows: 0, batches: 0, torn_tail: false };
        db.replay_log()?;
        for t in 0..db.tables.len() {
            db.tables[t].max_key = db.base_max_key(t);
        }
        Ok(db)
    }

    /// Replays the log's batches (validated at [`Base::open`]) into the
    /// overlay: each changed row's entry points into the batch, nothing is copied.
    fn replay_log(&mut self) -> Result<(), SnapshotError> {
        let log_start = HEADER_LEN + padded(self.header.base_len as usize);
        let Db { base, tables, .. } = self;
        let mut log_rows = 0;
        for (b, batch) in base.batches().iter().enumerate() {
            for (c, change) in batch.changes.iter().enumerate() {
                let table = change.table.to_native() as usize;
                let width = tables.get(table).map(|t| t.desc.columns.len());
                if width.is_none() || change.cells.as_ref().is_some_and(|c| Some(c.len()) != width) {
                    return Err(SnapshotError::Corrupt {
                        offset: log_start as u64,
                        what: format!(
                            "log batch {}: a change names a missing table or has a row of the wrong width",
                            b + 1
                        ),
                    });
                }
                let row = change.row.to_native();
                let t = &mut tables[table];
                t.next_row = t.next_row.max(row.saturating_add(1));
                let entry =
                    change.cells.is_some().then_some(Entry::Logged { batch: b as u32, change: c as u32 });
                t.set(base, row, entry);
            }
            log_rows += batch.changes.len() as u64;
        }
        let (end, torn_tail) = base.log_end();
        self.batches = base.batches().len() as u32;
        self.log_rows = log_rows;
        self.torn_tail = torn_tail;
        self.valid_len = end as u64;
        self.log_len = (end - log_start) as u64;
        Ok(())
    }

    fn base_max_key(&self, t: usize) -> Option<i64> {
        let state = &self.tables[t];
        let overlay = state.max_key;
        let base = match state.desc.primary_key.as_slice() {
            // Rows are stored in primary-key order, so the largest key is the last live one.
            [pk] if state.desc.columns[*pk as usize].autoincrement => (0..state.base_rows)
                .rev()
                .find(|r| !state.changed.contains_key(RowId::from(*r)))
                .and_then(|r| match self.base.cell(t, r, *pk) {
                    ValueRef::Integer(i) => Some(i),
                    _ => None,
                }),
            _ => None,
        };
        overlay.max(base)
    }

    /// The current state of a row.
    fn row(&self, t: usize, row: RowId) -> Option<Row> {
        self.source(t, row).map(Source::to_row)
    }

    /// Where the current values of a row are (`None`: no such row).
    fn source(&self, t: usize, row: RowId) -> Option<Source<'_>> {
        match self.tables[t].changed.get(row) {
            Some(entry) => entry.source(&self.base),
            None if row < RowId::from(self.tables[t].base_rows) => {
                Some(Source::Archived { base: &self.base, table: t, row: row as u32 })
            }
            None => self.tables[t].bulk.as_ref().and_then(|bulk| bulk.row(row)).map(Source::Row),
        }
    }

    /// Calls `f` with each live row of `t` whose `columns` equal `key` (no
    /// NULLs in it) until it returns `false`: binary search in the image
    /// and a hash lookup in the overlay when an index covers `columns`, a
    /// scan otherwise.
    fn for_each_match(
        &self,
        t: usize,
        columns: &[u32],
        key: &[ValueRef<'_>],
        mut f: impl FnMut(RowId) -> bool,
    ) {
        let state = &self.tables[t];
        if let Some(bulk) = &state.bulk {
            // Its only rows.
            bulk.each_match(columns, key, f);
            return;
        }
        let Some(i) = state.index_on(columns) else {
            for r in self.live_rows(t) {
                let hit = self.row(t, r).is_some_and(|row| {
                    columns.iter().zip(key).all(|(&c, v)| ValueRef::from(&row[c as usize]) == *v)
                });
                if hit && !f(r) {
                    return;
                }
            }
            return;
        };
        for r in self.base.find(t, i, columns, key) {
            let r = RowId::from(r);
            // A changed row still matches here only if the change left it
            // in place within this index (else the overlay has it).
            let live = match state.changed.get(r) {
                None => true,
                Some(entry) => entry.source(&self.base).is_some_and(|row| {
                    columns.iter().zip(key).all(|(&c, v)| row.cell(c).total_cmp(*v).is_eq())
                }),
            };
            if live && !f(r) {
                return;
            }
        }
        if let Some(key) = Key::of(key.iter().copied()) {
            state.overlay[i].each(&key, f);
        }
    }

    /// The live rows of `t` whose `columns` equal `key` (no NULLs in it).
    fn find(&self, t: usize, columns: &[u32], key: &[ValueRef<'_>]) -> Vec<RowId> {
        let mut out = Vec::new();
        self.for_each_match(t, columns, key, |r| {
            out.push(r);
            true
        });
        out
    }

    /// The live rows of `t` whose `columns` equal `key`; none if it holds a NULL.
    fn find_values(&self, t: usize, columns: &[u32], key: &[Value]) -> Vec<RowId> {
        let key: SmallVec<[ValueRef<'_>; 2]> = key.iter().map(ValueRef::from).collect();
        if key.contains(&ValueRef::Null) { Vec::new() } else { self.find(t, columns, &key) }
    }

    /// Whether a live row of `t` other than `except` has `key` in `columns`.
    fn any_match(&self, t: usize, columns: &[u32], key: &[ValueRef<'_>], except: Option<RowId>) -> bool {
        let mut found = false;
        self.for_each_match(t, columns, key, |r| {
            found = Some(r) != except;
            !found
        });
        found
    }

    /// The live rows of `t` in row-id order: the image's rows, then the ones
    /// inserted since, oldest first (so rows inserted in key order come out
    /// sorted, which makes compaction's sort a linear pass).
    fn live_rows(&self, t: usize) -> Vec<RowId> {
        self.live_sources(t).into_iter().map(|(r, _)| r).collect()
    }

    /// The live rows of table `t` in row order, each with where its values are.
    fn live_sources(&self, t: usize) -> Vec<(RowId, Source<'_>)> {
        let state = &self.tables[t];
        let base = RowId::from(state.base_rows);
        let mut live: Vec<(RowId, Source<'_>)> = (0..base)
            .filter_map(|r| match state.changed.get(r) {
                Some(entry) => entry.source(&self.base).map(|s| (r, s)),
                None => Some((r, Source::Archived { base: &self.base, table: t, row: r as u32 })),
            })
            .collect();
        // Rows inserted since the image, in row order.
        live.extend(
            state
                .changed
                .past_image_in_order()
                .into_iter()
                .filter_map(|(r, e)| e.source(&self.base).map(|s| (r, s))),
        );
        if let Some(bulk) = &state.bulk {
            live.extend(
                bulk.rows.iter().enumerate().map(|(r, row)| (bulk.first + r as u64, Source::Row(row))),
            );
        }
        live
    }

    /// NOT NULL, keys and unique constraints of `row`, ignoring `itself`;
    /// only those on the `changed` columns when given (an UPDATE: the
    /// others held before it and no other row can have broken them since).
    fn check_row(
        &self,
        t: usize,
        row: &[Value],
        itself: Option<RowId>,
        changed: Option<&[u32]>,
    ) -> Result<(), StoreError> {
        let desc = &self.tables[t].desc;
        let touched =
            |columns: &[u32]| changed.is_none_or(|changed| columns.iter().any(|c| changed.contains(c)));
        for (c, column) in desc.columns.iter().enumerate() {
            if row[c].is_null() && !column.nullable && touched(&[c as u32]) {
                return Err(not_null(desc, c));
            }
        }
        let keys = std::iter::once(&desc.primary_key).filter(|pk| !pk.is_empty()).chain(&desc.uniques);
        for columns in keys.filter(|columns| touched(columns)) {
            if let Some(key) = refs_of(row, columns)
                && self.any_match(t, columns, &key, itself)
            {
                let names: Vec<&str> =
                    columns.iter().map(|&c| desc.columns[c as usize].name.as_str()).collect();
                return Err(StoreError::new(
                    ErrorKind::Unique,
                    format!("UNIQUE constraint failed: {}.{}", desc.name, names.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// The outgoing foreign keys of `row`: each non-NULL one must find its
    /// row; only those on the `changed` columns when given (see [`Db::check_row`]).
    fn check_references(&self, t: usize, row: &[Value], changed: Option<&[u32]>) -> Result<(), StoreError> {
        let desc = &self.tables[t].desc;
        let touched = |fk: &&ForeignKeyDesc| {
            changed.is_none_or(|changed| fk.columns.iter().any(|c| changed.contains(c)))
        };
        for fk in desc.foreign_keys.iter().filter(touched) {
            let Some(key) = refs_of(row, &fk.columns) else { continue };
            self.check_reference(t, fk, &key)?;
        }
        Ok(())
    }

    /// That a row of `t` holding `key` in foreign key `fk` finds its row.
    fn check_reference(&self, t: usize, fk: &ForeignKeyDesc, key: &[ValueRef<'_>]) -> Result<(), StoreError> {
        if self.any_match(fk.ref_table, &fk.ref_columns, key, None) {
            return Ok(());
        }
        Err(StoreError::new(
            ErrorKind::ForeignKey,
            format!(
                "FOREIGN KEY constraint failed: {} references a missing {} row",
                self.tables[t].desc.name, self.tables[fk.ref_table].desc.name
            ),
        ))
    }
}

impl SnapshotStore {
    /// Opens the snapshot at `path`, validating it, or prepares a new one
    /// there (written by [`Store::create_tables`]) when there is no file or
    /// an empty one.
    ///
    /// # Errors
    /// [`SnapshotError`] converted to a [`StoreError`]: [`ErrorKind::Corrupt`]
    /// for a damaged, truncated or foreign file, [`ErrorKind::Other`] for a
    /// newer format version or an IO error. The source is the
    /// [`SnapshotError`] itself.
    pub fn open(path: impl AsRef<Path>) -> Result<SnapshotStore, StoreError> {
        SnapshotStore::with_options(path, SnapshotOptions::default())
    }

    /// As [`SnapshotStore::open`], with options.
    ///
    /// # Errors
    /// As [`SnapshotStore::open`].
    pub fn with_options(
        path: impl AsRef<Path>,
        options: SnapshotOptions,
    ) -> Result<SnapshotStore, StoreError> {
        let path = path.as_ref().to_owned();
        // Locked before reading, so what is read is what the next write extends.
        let lock = Some(lock(&path)?);
        let db = Self::read(&path)?;
        Ok(SnapshotStore { path, options, db, tx: None, echo: None, lock, laid_out_inserts: true })
    }

    /// Opens the snapshot at `path` for reading only, without taking the
    /// writer's lock, so it works while another store writes the file (it
    /// sees the commits made before it opened). Transactions, table creation
    /// and compaction are refused.
    ///
    /// # Errors
    /// As [`SnapshotStore::open`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<SnapshotStore, StoreError> {
        let path = path.as_ref().to_owned();
        let db = Self::read(&path)?;
        Ok(SnapshotStore {
            path,
            options: SnapshotOptions::default(),
            db,
            tx: None,
            echo: None,
            lock: None,
            laid_out_inserts: true,
        })
    }

    fn writable(&self) -> Result<(), StoreError> {
        match self.lock {
            Some(_) => Ok(()),
            None => Err(usage("the snapshot was opened read-only")),
        }
    }

    /// The parsed file at `path`; `None` when there is no file or an empty one.
    fn read(path: &Path) -> Result<Option<Db>, StoreError> {
        let db = match File::open(path) {
            Ok(mut file) => {
                let len = file.metadata().map_err(io(path))?.len();
                if len == 0 {
                    None
                } else {
                    // Read to its end, whatever length it has by then: a
                    // file that shrank or grew while being read is read as
                    // far as it goes (a torn tail at worst). The buffer is
                    // not zeroed first, and rkyv validates it in place.
                    let mut bytes = Vec::with_capacity(len as usize);
                    file.read_to_end(&mut bytes).map_err(io(path))?;
                    Some(Db::parse(FileBytes::from_vec(bytes))?)
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(path)(e).into()),
        };
        Ok(db)
    }

    /// Writes a new snapshot at `path` holding `rows` (per table of
    /// `schema`, in its order) as one base image, replacing any file there
    /// atomically, and opens it. The rows are checked afterwards, all at once
    /// (see [`SnapshotStore::verify`]), so they may come in any order; on a
    /// failed check the file is removed.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] when the rows break a key, unique constraint,
    /// NOT NULL or foreign key; [`ErrorKind::Usage`] for rows of the wrong
    /// width; IO errors.
    pub fn create_with_rows(
        path: impl AsRef<Path>,
        schema: &Schema,
        rows: Vec<Vec<Row>>,
        options: SnapshotOptions,
    ) -> Result<SnapshotStore, StoreError> {
        let path = path.as_ref().to_owned();
        let lock = lock(&path)?;
        let descs = describe(schema);
        if rows.len() != descs.len()
            || rows.iter().zip(&descs).any(|(rows, d)| rows.iter().any(|r| r.len() != d.columns.len()))
        {
            return Err(usage("rows do not match the schema's tables"));
        }
        let cells = rows
            .iter()
            .zip(&descs)
            .map(|(rows, desc)| {
                let width = desc.columns.len() as u32;
                sorted_columns(&desc.order_columns(), width, rows.iter().map(|r| Source::Row(r)).collect())
            })
            .collect();
        let bytes = write_image(&descs, cells, schema.fingerprint(), 0)?;
        let db = install(&path, bytes, options.sync)?;
        let store = SnapshotStore {
            path,
            options,
            db: Some(db),
            tx: None,
            echo: None,
            lock: Some(lock),
            laid_out_inserts: true,
        };
        if let Err(e) = store.verify() {
            let _ = std::fs::remove_file(&store.path);
            return Err(e);
        }
        Ok(store)
    }

    /// A read-only store over a snapshot's bytes (writes would go nowhere).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<SnapshotStore, StoreError> {
        let db = Db::parse(FileBytes::from_vec(bytes.to_vec()))?;
        Ok(SnapshotStore {
            path: PathBuf::new(),
            options: SnapshotOptions::default(),
            db: Some(db),
            tx: None,
            echo: None,
            lock: None,
            laid_out_inserts: true,
        })
    }

    /// Finds every live row again through every index that covers it.
    pub(crate) fn lookup_every_row(&self) -> Result<(), StoreError> {
        let db = self.db()?;
        for t in 0..db.tables.len() {
            for id in db.live_rows(t) {
                let row = db.row(t, id).ok_or_else(|| usage("a live row vanished"))?;
                for columns in &db.tables[t].indexes {
                    if let Some(key) = refs_of(&row, columns)
                        && !db.find(t, columns, &key).contains(&id)
                    {
                        return Err(StoreError::new(
                            ErrorKind::Corrupt,
                            format!("table {}: a row is missing from its index", db.tables[t].desc.name),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tables the file describes (empty before `create_tables` on a new file).
    pub fn tables(&self) -> impl ExactSizeIterator<Item = &TableDesc> {
        self.db.as_ref().map_or(&[][..], |db| &db.tables[..]).iter().map(|t| &t.desc)
    }

    /// The opened file, which must have a table at position `t`.
    fn db_with(&self, t: usize) -> Result<&Db, StoreError> {
        let db = self.db()?;
        if t >= db.tables.len() {
            return Err(StoreError::new(ErrorKind::Schema, format!("the snapshot has no table {t}")));
        }
        Ok(db)
    }

    fn db(&self) -> Result<&Db, StoreError> {
        self.db.as_ref().ok_or_else(|| {
            StoreError::new(ErrorKind::Schema, "the snapshot has no tables yet: call create_tables first")
        })
    }
}

/// Records `row`'s new state, remembering its state before the transaction
/// (rows the transaction inserted need no record: rolling back drops them).
fn write_row(db: &mut Db, tx: &mut Tx, t: usize, row: RowId, new: Option<Row>) {
    let old = db.tables[t].set(&db.base, row, new.map(Entry::Row));
    if row < tx.next_rows[t] {
        tx.undo.entry((t, row)).or_insert(old);
    }
}

fn insert(db: &mut Db, tx: &mut Tx, t: usize, values: Vec<Value>) -> Result<Option<i64>, StoreError> {
    let mut values = match insert_laid(db, tx, t, values)? {
        Ok(generated) => return Ok(generated),
        Err(values) => values,
    };
    let state = &db.tables[t];
    let mut generated = None;
    if let [pk] = state.desc.primary_key.as_slice() {
        let pk = *pk as usize;
        if state.desc.columns[pk].autoincrement && values[pk].is_null() {
            let next = state.max_key.unwrap_or(0).checked_add(1).ok_or_else(|| {
                StoreError::new(
                    ErrorKind::Other,
                    format!("table {}: no key left to generate after {}", state.desc.name, i64::MAX),
                )
            })?;
            values[pk] = Value::Integer(next);
            generated = Some(next);
        }
    }
    db.check_row(t, &values, None, None)?;
    let id = db.tables[t].next_row;
    db.tables[t].next_row += 1;
    write_row(db, tx, t, id, Some(values.into_boxed_slice()));
    tx.inserted.push((t, id));
    // Checked after the write, so that a row may reference itself.
    let db: &Db = db;
    if let Some(Entry::Row(row)) = db.tables[t].changed.get(id) {
        db.check_references(t, row, None)?;
    }
    Ok(generated)
}

/// Inserts `values` into table `t` as a row laid out (see [`Bulk`]) and
/// returns the key it generated; `Err(values)`, untouched, when the table
/// does not take rows so, or not this one, after which its rows are in the
/// overlay and [`insert`] goes on with the general path. Checks as it does.
fn insert_laid(
    db: &mut Db,
    tx: &mut Tx,
    t: usize,
    mut values: Vec<Value>,
) -> Result<Result<Option<i64>, Vec<Value>>, StoreError> {
    let state = &db.tables[t];
    let Some(bulk) = &state.bulk else { return Ok(Err(values)) };
    let key = bulk.laid.as_ref().map(|laid| laid.key as usize);
    let autoincrement = key.is_some_and(|key| state.desc.columns[key].autoincrement);
    let generated = match key {
        Some(key) if autoincrement && values[key].is_null() => {
            match state.max_key.unwrap_or(0).checked_add(1) {
                Some(next) => Some(next),
                // No key left: the general path reports it.
                None => {
                    materialize(db, tx, t);
                    return Ok(Err(values));
                }
            }
        }
        _ => None,
    };
    let cell = |c: usize| match generated {
        Some(k) if Some(c) == key => ValueRef::Integer(k),
        _ => ValueRef::from(&values[c]),
    };
    for (c, column) in state.desc.columns.iter().enumerate() {
        if cell(c) == ValueRef::Null && !column.nullable {
            return Err(not_null(&state.desc, c));
        }
    }
    // A keyed row must come after the last one and fit the columns so far.
    let k = match &bulk.laid {
        Some(laid) => match cell(laid.key as usize) {
            ValueRef::Integer(k)
                if bulk.keys().last().is_none_or(|&last| k > last)
                    && laid.columns.fits(|c| cell(c as usize)) =>
            {
                Some(k)
            }
            _ => {
                materialize(db, tx, t);
                return Ok(Err(values));
            }
        },
        None => None,
    };
    for fk in &state.desc.foreign_keys {
        let Some(reference) = refs_by(&fk.columns, |c| cell(c as usize)) else { continue };
        // A row may reference itself, as in the general path, which checks after writing.
        let itself = fk.ref_table == t
            && fk.ref_columns.iter().zip(&reference).all(|(&c, v)| cell(c as usize).total_cmp(*v).is_eq());
        if !itself {
            db.check_reference(t, fk, &reference)?;
        }
    }
    if let (Some(k), Some(key)) = (generated, key) {
        values[key] = Value::Integer(k);
    }
    let state = &mut db.tables[t];
    if let Some(bulk) = &mut state.bulk {
        if let Some(laid) = &mut bulk.laid {
            laid.columns.push(|c| ValueRef::from(&values[c as usize]));
        }
        bulk.rows.push(values.into_boxed_slice());
    }
    state.next_row += 1;
    if let Some(k) = k.filter(|_| autoincrement) {
        state.max_key = Some(state.max_key.map_or(k, |m| m.max(k)));
    }
    #[cfg(test)]
    LAID.with(|n| n.set(n.get() + 1));
    Ok(Ok(generated))
}

#[cfg(test)]
thread_local! {
    /// Rows inserted on this thread without indexing, for tests to see the path taken.
    static LAID: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Rows a compaction on this thread wrote from a transaction's lists.
    static WRITTEN_LAID: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Moves the rows table `t` holds laid out (see [`Bulk`]) into the overlay
/// as rows the transaction inserted, indexed: the general path's state.
fn materialize(db: &mut Db, tx: &mut Tx, t: usize) {
    let Some(bulk) = db.tables[t].bulk.take() else { return };
    for (r, row) in bulk.rows.into_iter().enumerate() {
        let id = bulk.first + r as u64;
        write_row(db, tx, t, id, Some(row));
        tx.inserted.push((t, id));
    }
}

/// The rows the open transaction has touched: the count a commit decides
/// by whether it compacts.
fn touched(db: &Db, tx: &Tx) -> u64 {
    let laid: usize = db.tables.iter().filter_map(|t| t.bulk.as_ref()).map(|b| b.rows.len()).sum();
    (tx.undo.len() + tx.inserted.len() + laid) as u64
}

/// [`materialize`] for every table.
fn materialize_all(db: &mut Db, tx: &mut Tx) {
    for t in 0..db.tables.len() {
        materialize(db, tx, t);
    }
}

fn update(
    db: &mut Db,
    tx: &mut Tx,
    t: usize,
    key_columns: &[u32],
    key: &[Value],
    columns: &[u32],
    values: Vec<Value>,
) -> Result<(), StoreError> {
    let rows = db.find_values(t, key_columns, key);
    if rows.is_empty() {
        return Err(StoreError::new(
            ErrorKind::Other,
            format!("UPDATE of table {} matched no row", db.tables[t].desc.name),
        ));
    }
    // The foreign keys of other tables whose referenced columns this UPDATE
    // changes: only for them is the row's old key needed.
    let watched: SmallVec<[(usize, usize); 2]> = db.tables[t]
        .referenced_by
        .iter()
        .copied()
        .filter(|&(rt, f)| db.tables[rt].desc.foreign_keys[f].ref_columns.iter().any(|c| columns.contains(c)))
        .collect();
    for id in rows {
        let mut row = db.row(t, id).ok_or_else(|| usage("an index names a deleted row"))?.into_vec();
        let old = if watched.is_empty() { Vec::new() } else { row.clone() };
        for (&c, v) in columns.iter().zip(&values) {
            row[c as usize] = v.clone();
        }
        db.check_row(t, &row, Some(id), Some(columns))?;
        db.check_references(t, &row, Some(columns))?;
        // Changing a referenced key under rows that reference it is refused, as ON UPDATE NO ACTION.
        for &(rt, f) in &watched {
            let fk = &db.tables[rt].desc.foreign_keys[f];
            let Some(old_key) = refs_of(&old, &fk.ref_columns) else { continue };
            if refs_of(&row, &fk.ref_columns).as_ref() != Some(&old_key)
                && db.any_match(rt, &fk.columns, &old_key, None)
            {
                return Err(StoreError::new(
                    ErrorKind::ForeignKey,
                    format!(
                        "FOREIGN KEY constraint failed: {} rows still reference the updated {} key",
                        db.tables[rt].desc.name, db.tables[t].desc.name
                    ),
                ));
            }
        }
        write_row(db, tx, t, id, Some(row.into_boxed_slice()));
    }
    Ok(())
}

/// Deletes `rows` of `t` and applies the ON DELETE actions of the foreign
/// keys that reference them.
fn delete(db: &mut Db, tx: &mut Tx, t: usize, rows: Vec<RowId>) -> Result<(), StoreError> {
    let referencing: Vec<_> = db.tables[t]
        .referenced_by
        .iter()
        .map(|&(rt, f)| (rt, db.tables[rt].desc.foreign_keys[f].clone()))
        .collect();
    // The deleted rows' values are needed only to find the rows that reference them.
    let mut removed = Vec::new();
    for id in rows {
        let Some(source) = db.source(t, id) else { continue };
        if !referencing.is_empty() {
            removed.push(source.to_row());
        }
        write_row(db, tx, t, id, None);
    }
    for row in &removed {
        for (rt, fk) in &referencing {
            let Some(key) = refs_of(row, &fk.ref_columns) else { continue };
            let found = db.find(*rt, &fk.columns, &key);
            if found.is_empty() {
                continue;
            }
            match fk.on_delete {
                OnDelete::NoAction => {
                    return Err(StoreError::new(
                        ErrorKind::ForeignKey,
                        format!(
                            "FOREIGN KEY constraint failed: a {} row still references the deleted {} row",
                            db.tables[*rt].desc.name, db.tables[t].desc.name
                        ),
                    ));
                }
                OnDelete::SetNull => {
                    for id in found {
                        let mut row =
                            db.row(*rt, id).ok_or_else(|| usage("an index names a deleted row"))?.to_vec();
                        for &c in &fk.columns {
                            row[c as usize] = Value::Null;
                        }
                        db.check_row(*rt, &row, Some(id), Some(&fk.columns))?;
                        write_row(db, tx, *rt, id, Some(row.into_boxed_slice()));
                    }
                }
                OnDelete::Cascade => delete(db, tx, *rt, found)?,
            }
        }
    }
    Ok(())
}

/// Takes the exclusive lock on `<path>.lock` (created if missing, and left
/// in place): one writing store per snapshot file, across processes too.
fn lock(path: &Path) -> Result<File, SnapshotError> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    let lock_path = path.with_file_name(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(SnapshotError::Locked { path: path.to_owned() }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(&lock_path)(e)),
    }
}

/// Parses `bytes`, a new file this store built, and only then writes it to
/// `path` (atomically): the file on disk changes only to something that
/// opens, and the returned state is what the file holds.
/// Overlay rows from which a replaced database is freed on a thread of its own.
const DROP_LATER_ROWS: usize = 10_000;

/// Frees a database a compaction replaced. An overlay of 100,000 rows takes
/// about as long to free as the new image takes to write, and nothing waits
/// for it; small ones, or any when no thread can start, are freed here.
fn drop_later(db: Option<Db>) {
    let rows: usize = db.as_ref().map_or(0, |db| db.tables.iter().map(|t| t.changed.len()).sum());
    free_later(db, rows);
}

/// Frees `value`, holding `rows` rows, on a thread of its own when they are
/// many, as [`drop_later`] does.
fn free_later<T: Send + 'static>(value: T, rows: usize) {
    if rows >= DROP_LATER_ROWS {
        // On failure the closure, and the value with it, is dropped here.
        let _ = std::thread::Builder::new().name("relgraph-snapshot-free".into()).spawn(move || drop(value));
    }
}

fn install(path: &Path, bytes: AlignedVec, sync: bool) -> Result<Db, SnapshotError> {
    let db = Db::parse(bytes.into())?;
    write_atomically(path, db.base.bytes(), sync)?;
    Ok(db)
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced,
/// renamed over it, and the directory synced so the rename itself survives.
fn write_atomically(path: &Path, bytes: &[u8], sync: bool) -> Result<(), SnapshotError> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".compact-tmp");
    let tmp = path.with_file_name(name);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&tmp, path)?;
        if sync && let Some(dir) = path.parent() {
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(path))
}

impl SnapshotStore {
    /// The header and log of the opened file (`None` before a new file is created).
    pub fn info(&self) -> Option<SnapshotInfo> {
        self.db.as_ref().map(|db| SnapshotInfo {
            header: db.header,
            file_len: db.valid_len,
            batches: db.batches,
            log_len: db.log_len,
            torn_tail: db.torn_tail,
        })
    }

    /// The number of rows of table `t` (by position), without reading them.
    ///
    /// # Errors
    /// [`ErrorKind::Schema`] when there is no such table.
    pub fn row_count(&self, t: usize) -> Result<usize, StoreError> {
        let db = self.db_with(t)?;
        let state = &db.tables[t];
        let deleted = state
            .changed
            .iter()
            .filter(|(r, e)| *r < RowId::from(state.base_rows) && **e == Entry::Deleted)
            .count();
        let inserted = state
            .changed
            .iter()
            .filter(|(r, e)| *r >= RowId::from(state.base_rows) && **e != Entry::Deleted)
            .count();
        let laid = state.bulk.as_ref().map_or(0, |bulk| bulk.rows.len());
        Ok(state.base_rows as usize - deleted + inserted + laid)
    }

    /// Every row of table `t` (by position), in primary-key order.
    ///
    /// # Errors
    /// [`ErrorKind::Schema`] when there is no such table.
    pub fn rows(&self, t: usize) -> Result<Vec<Row>, StoreError> {
        let db = self.db_with(t)?;
        let mut rows: Vec<Row> = db.live_rows(t).into_iter().filter_map(|r| db.row(t, r)).collect();
        let order = db.tables[t].desc.order_columns();
        rows.sort_by(|a, b| {
            cmp_keys(
                order.iter().map(|&c| ValueRef::from(&a[c as usize])),
                order.iter().map(|&c| ValueRef::from(&b[c as usize])),
            )
        });
        Ok(rows)
    }

    /// Rewrites the file as one base image with no log, atomically.
    ///
    /// # Errors
    /// [`ErrorKind::Usage`] inside a transaction; IO errors.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        self.writable()?;
        if self.tx.is_some() {
            return Err(usage("compact inside a transaction"));
        }
        self.compact_now(None)
    }

    /// Rewrites the file as one base image holding every row, those the
    /// open transaction `tx` kept in lists ([`Bulk`]) included. If the file
    /// cannot be written, those rows move into the overlay as the
    /// transaction's inserts: a rollback drops them and a second commit
    /// writes them, as it would any row of the general path.
    fn compact_now(&mut self, tx: Option<&mut Tx>) -> Result<(), StoreError> {
        let mut kept: Vec<Option<Bulk>> = match self.db.as_mut() {
            Some(db) => db.tables.iter_mut().map(|t| t.bulk.take()).collect(),
            None => Vec::new(),
        };
        let written = self.write_compacted(&mut kept);
        let rows: usize = kept.iter().flatten().map(|bulk| bulk.rows.len()).sum();
        match written {
            Ok((installed, len)) => {
                #[cfg(test)]
                WRITTEN_LAID.with(|n| n.set(n.get() + rows));
                free_later(kept, rows);
                let old = self.db.replace(installed);
                drop_later(old);
                if let Some(echo) = &mut self.echo {
                    echo(&format!("COMPACT {} -- {len} bytes", self.path.display()));
                }
                Ok(())
            }
            Err(e) => {
                if let (Some(db), Some(tx)) = (self.db.as_mut(), tx) {
                    for (t, bulk) in kept.into_iter().enumerate() {
                        db.tables[t].bulk = bulk;
                        materialize(db, tx, t);
                    }
                }
                Err(e)
            }
        }
    }

    /// Writes and installs the image of every row: the rows kept in lists
    /// (`kept`, per table, their columns taken) and the rest of each table's
    /// live rows. Returns the new database and the file's length.
    fn write_compacted(&self, kept: &mut [Option<Bulk>]) -> Result<(Db, usize), StoreError> {
        let db = self.db()?;
        let descs: Vec<TableDesc> = db.tables.iter().map(|t| t.desc.clone()).collect();
        // Rows kept in a list are their table's only rows: written as they
        // are when laid out in key order, sorted from the list otherwise.
        let cells: Vec<(u32, Vec<ColumnData>)> = kept
            .iter_mut()
            .enumerate()
            .map(|(t, kept)| {
                let desc = &db.tables[t].desc;
                let rows: Vec<Source<'_>> = match kept {
                    Some(bulk) => match bulk.laid.take() {
                        Some(laid) => {
                            debug_assert!(laid.columns.laid_out(), "every row laid out was checked to fit");
                            return laid.columns.finish(&[]);
                        }
                        None => bulk.rows.iter().map(|r| Source::Row(r)).collect(),
                    },
                    None => db.live_sources(t).into_iter().map(|(_, source)| source).collect(),
                };
                sorted_columns(&desc.order_columns(), desc.columns.len() as u32, rows)
            })
            .collect();
        let bytes = write_image(&descs, cells, db.header.fingerprint, db.header.generation + 1)?;
        let len = bytes.len();
        Ok((install(&self.path, bytes, self.options.sync)?, len))
    }

    /// A full check: the indexes stored in the file are sorted, and every
    /// row meets its table's keys, unique constraints, NOT NULLs and foreign
    /// keys. O(rows log rows).
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] for the first problem found.
    pub fn verify(&self) -> Result<(), StoreError> {
        let db = self.db()?;
        let descs: Vec<TableDesc> = db.tables.iter().map(|t| t.desc.clone()).collect();
        db.base.verify_order(&descs)?;
        self.lookup_every_row()?;
        for t in 0..db.tables.len() {
            for id in db.live_rows(t) {
                let row = db.row(t, id).ok_or_else(|| usage("a live row vanished"))?;
                db.check_row(t, &row, Some(id), None)
                    .and_then(|()| db.check_references(t, &row, None))
                    .map_err(|e| StoreError::new(ErrorKind::Corrupt, e.message))?;
            }
        }
        Ok(())
    }

    fn append(&mut self, rows: usize, payload: &[u8]) -> Result<(), SnapshotError> {
        let Some(db) = self.db.as_mut() else { return Ok(()) };
        let mut frame = Vec::with_capacity(payload.len() + 32);
        encode_frame(&mut frame, db.batches + 1, payload);
        let path = &self.path;
        let mut file = OpenOptions::new().write(true).open(path).map_err(io(path))?;
        let result = (|| {
            if db.torn_tail {
                file.set_len(db.valid_len)?;
            }
            file.seek(SeekFrom::Start(db.valid_len))?;
            file.write_all(&frame)?;
            if self.options.sync {
                file.sync_data()?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            // Cut the partial frame off so the file ends at its last commit.
            let _ = file.set_len(db.valid_len);
            db.torn_tail = false;
            return Err(io(path)(e));
        }
        if let Some(echo) = &mut self.echo {
            echo(&format!("APPEND batch {} -- {rows} rows, {} bytes", db.batches + 1, frame.len()));
        }
        db.valid_len += frame.len() as u64;
        db.log_len += frame.len() as u64;
        db.log_rows += rows as u64;
        db.batches += 1;
        db.torn_tail = false;
        Ok(())
    }

    fn batch(&self, tx: &Tx) -> BatchRec {
        let Some(db) = self.db.as_ref() else { return BatchRec { changes: Vec::new() } };
        let mut keys: Vec<(usize, RowId)> = tx
            .undo
            .iter()
            .filter(|((t, r), old)| db.tables[*t].changed.get(*r) != old.as_ref())
            .map(|(&k, _)| k)
            .chain(tx.inserted.iter().copied().filter(|(t, r)| db.tables[*t].changed.contains_key(*r)))
            .collect();
        keys.sort_unstable();
        BatchRec {
            changes: keys
                .into_iter()
                .map(|(t, r)| ChangeRec {
                    table: t as u32,
                    row: r,
                    cells: db.tables[t].changed.get(r).and_then(|e| e.source(&db.base)).map(|row| {
                        (0..db.tables[t].desc.columns.len() as u32).map(|c| row.cell(c).to_rec()).collect()
                    }),
                })
                .collect(),
        }
    }

    /// Echoes one row operation as `INSERT child (id, parent_id) = (1, 2)`,
    /// `UPDATE child SET (parent_id) = (3) WHERE (id) = (1)` or
    /// `DELETE child WHERE (id) = (1)`.
    fn echo_op(&mut self, schema: &Schema, op: &RowOp, keys: &[Option<i64>]) {
        let Some(echo) = &mut self.echo else { return };
        let table = schema.table(op.table());
        let names = |columns: &mut dyn Iterator<Item = u32>| {
            columns.map(|c| table.columns[c as usize].name.as_str()).collect::<Vec<_>>().join(", ")
        };
        let values = |cells: &[Cell]| {
            cells
                .iter()
                .map(|c| c.resolve(keys).map_or_else(|_| "?".into(), |r| r.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let name = &table.name;
        let line = match op {
            RowOp::Insert { row, .. } => {
                format!("INSERT {name} ({}) = ({})", names(&mut (0..row.len() as u32)), values(row))
            }
            RowOp::Update { key_columns, key, columns, values: new, .. } => format!(
                "UPDATE {name} SET ({}) = ({}) WHERE ({}) = ({})",
                names(&mut columns.iter().copied()),
                values(new),
                names(&mut key_columns.iter().copied()),
                values(key)
            ),
            RowOp::Delete { columns, values: key, .. } => {
                format!("DELETE {name} WHERE ({}) = ({})", names(&mut columns.iter().copied()), values(key))
            }
        };
        echo(&line);
    }
}

/// The tables `ops` inserts into, one row each, for
/// [`SnapshotStore::prepare_apply`].
fn inserted_tables(ops: &[RowOp]) -> impl Iterator<Item = (TableId, usize)> + '_ {
    ops.iter().filter_map(|op| match op {
        RowOp::Insert { table, .. } => Some((*table, 1)),
        _ => None,
    })
}

/// The values of a row handed to the store: the cells' allocation becomes
/// the row's, and no value is copied (a text's reference count is not touched).
fn take_cells(row: Box<[Cell]>, keys: &[Option<i64>]) -> Result<Vec<Value>, StoreError> {
    // Generated keys are resolved first, so that the common row of literals
    // becomes values in place by a plain loop: collecting `Result`s through
    // `try_process` cost about 200 instructions a row (W1, callgrind).
    let mut row = row.into_vec();
    for cell in &mut row {
        if let Cell::Generated(_) = cell {
            *cell = Cell::Value(resolve(cell, keys)?);
        }
    }
    Ok(row
        .into_iter()
        .map(|cell| match cell {
            Cell::Value(value) => value,
            Cell::Generated(_) => unreachable!("resolved above"),
        })
        .collect())
}

impl SnapshotStore {
    /// What [`Store::apply`] and [`Store::apply_owned`] do before their
    /// operations: refuse them outside a transaction, and make room in the
    /// overlay indexes' runs (where keys that arrive in order go) for the
    /// rows they insert, once per call rather than by regrowing.
    /// `operations` is the call's count, `inserts` its INSERTs' tables
    /// with a count of rows each.
    fn prepare_apply(
        &mut self,
        operations: usize,
        inserts: impl Iterator<Item = (TableId, usize)>,
        keys: &mut Vec<Option<i64>>,
    ) -> Result<(), StoreError> {
        if self.tx.as_ref().is_some_and(|tx| !tx.sized) {
            // The first call says how large the transaction is, if nothing did.
            self.reserve(operations);
        }
        let (Some(db), Some(_)) = (self.db.as_mut(), self.tx.as_ref()) else {
            return Err(usage("apply outside a transaction"));
        };
        keys.reserve(operations);
        let mut per_table = vec![0usize; db.tables.len()];
        for (table, rows) in inserts {
            if let Some(n) = per_table.get_mut(table.index()) {
                *n += rows;
            }
        }
        for (state, n) in db.tables.iter_mut().zip(per_table) {
            // A table taking its rows laid out indexes none of them.
            if n > 0 && state.bulk.is_none() {
                for index in &mut state.overlay {
                    index.reserve(n);
                }
            }
        }
        Ok(())
    }

    /// Inserts `values` as a new row of `table` and returns the key it
    /// generated: what every INSERT comes to, however it arrived.
    fn insert_values(&mut self, table: TableId, values: Vec<Value>) -> Result<Option<i64>, StoreError> {
        let (Some(db), Some(tx)) = (self.db.as_mut(), self.tx.as_mut()) else {
            return Err(usage("apply outside a transaction"));
        };
        let t = table.index();
        let Some(state) = db.tables.get(t) else {
            return Err(StoreError::new(ErrorKind::Schema, format!("the snapshot has no table {t}")));
        };
        // The file's own width: a schema whose tables differ from the file's is refused by `create_tables`.
        if values.len() != state.desc.columns.len() {
            return Err(usage("an INSERT row of the wrong width"));
        }
        insert(db, tx, t, values)
    }

    /// Applies `op` (echoed already) and returns the key it generated.
    /// `taken` is an INSERT's row handed over, taken out of `op`, to be moved.
    fn apply_one(
        &mut self,
        op: &RowOp,
        taken: Option<Box<[Cell]>>,
        keys: &[Option<i64>],
    ) -> Result<Option<i64>, StoreError> {
        let cells = |cells: &[Cell]| cells.iter().map(|c| resolve(c, keys)).collect::<Result<Vec<_>, _>>();
        if let RowOp::Insert { row, .. } = op {
            let values = match taken {
                Some(taken) => take_cells(taken, keys)?,
                None => cells(row)?,
            };
            return self.insert_values(op.table(), values);
        }
        let (Some(db), Some(tx)) = (self.db.as_mut(), self.tx.as_mut()) else {
            return Err(usage("apply outside a transaction"));
        };
        let t = op.table().index();
        if t >= db.tables.len() {
            return Err(StoreError::new(ErrorKind::Schema, format!("the snapshot has no table {t}")));
        }
        match op {
            RowOp::Insert { .. } => unreachable!("inserted above"),
            RowOp::Update { key_columns, key, columns, values, .. } => {
                materialize_all(db, tx);
                let (key, values) = (cells(key)?, cells(values)?);
                update(db, tx, t, key_columns, &key, columns, values)?;
                Ok(None)
            }
            RowOp::Delete { columns, values, .. } => {
                materialize_all(db, tx);
                let values = cells(values)?;
                let rows = db.find_values(t, columns, &values);
                delete(db, tx, t, rows)?;
                Ok(None)
            }
        }
    }
}

impl Store for SnapshotStore {
    fn create_tables(&mut self, schema: &Schema) -> Result<(), StoreError> {
        if self.tx.is_some() {
            return Err(usage("create_tables inside a transaction"));
        }
        let wanted = describe(schema);
        if let Some(db) = &self.db {
            let found: Vec<&TableDesc> = db.tables.iter().map(|t| &t.desc).collect();
            if db.header.fingerprint != schema.fingerprint() || found.iter().copied().ne(wanted.iter()) {
                let names = |tables: &mut dyn Iterator<Item = &TableDesc>| {
                    tables.map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
                };
                return Err(SnapshotError::ForeignSchema(format!(
                    "the file {} holds tables [{}] with fingerprint {:#018x}; the registry has [{}] with fingerprint {:#018x}",
                    self.path.display(),
                    names(&mut found.into_iter()),
                    db.header.fingerprint,
                    names(&mut wanted.iter()),
                    schema.fingerprint()
                ))
                .into());
            }
            return Ok(());
        }
        let empty = wanted
            .iter()
            .map(|d| sorted_columns(&d.order_columns(), d.columns.len() as u32, Vec::new()))
            .collect();
        self.writable()?;
        let bytes = write_image(&wanted, empty, schema.fingerprint(), 0)?;
        self.db = Some(install(&self.path, bytes, self.options.sync)?);
        Ok(())
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        self.writable()?;
        if self.tx.is_some() {
            return Err(usage("begin inside an open transaction"));
        }
        let db = self.db()?;
        let base_rows: u64 = db.tables.iter().map(|t| u64::from(t.base_rows)).sum();
        let compact_at = match self.options.compaction {
            // Once the log's rows would outnumber the image's.
            Compaction::Auto => Some((base_rows.max(COMPACT_MIN_ROWS) + 1).saturating_sub(db.log_rows)),
            Compaction::Never => None,
            Compaction::EveryCommit => Some(0),
        };
        let tx = Tx {
            undo: FxHashMap::default(),
            inserted: Vec::new(),
            next_rows: db.tables.iter().map(|t| t.next_row).collect(),
            max_keys: db.tables.iter().map(|t| t.max_key).collect(),
            compact_at,
            sized: false,
        };
        self.tx = Some(tx);
        Ok(())
    }

    /// A transaction said to be large enough for its commit to compact keeps
    /// the rows it inserts into empty tables in lists, laid out
    /// as columns where they are keyed, for the compaction to write.
    fn reserve(&mut self, operations: usize) {
        let (Some(db), Some(tx)) = (self.db.as_mut(), self.tx.as_mut()) else { return };
        if tx.sized {
            return;
        }
        tx.sized = true;
        if !self.laid_out_inserts || tx.compact_at.is_none_or(|at| touched(db, tx) + (operations as u64) < at)
        {
            return;
        }
        for state in &mut db.tables {
            state.bulk = Bulk::for_table(state);
        }
    }

    fn apply(
        &mut self,
        schema: &Schema,
        ops: &[RowOp],
        keys: &mut Vec<Option<i64>>,
    ) -> Result<(), StoreError> {
        self.prepare_apply(ops.len(), inserted_tables(ops), keys)?;
        for op in ops {
            op.check(schema)?;
            self.echo_op(schema, op, keys);
            let key = self.apply_one(op, None, keys)?;
            keys.push(key);
        }
        Ok(())
    }

    fn apply_owned(
        &mut self,
        schema: &Schema,
        ops: &mut Vec<RowOp>,
        keys: &mut Vec<Option<i64>>,
    ) -> Result<(), StoreError> {
        self.prepare_apply(ops.len(), inserted_tables(ops), keys)?;
        for mut op in ops.drain(..) {
            op.check(schema)?;
            self.echo_op(schema, &op, keys);
            let taken = match &mut op {
                RowOp::Insert { row, .. } => Some(std::mem::take(row)),
                _ => None,
            };
            let key = self.apply_one(&op, taken, keys)?;
            keys.push(key);
        }
        Ok(())
    }

    fn apply_inserts(
        &mut self,
        schema: &Schema,
        batch: &mut InsertBatch,
        keys: &mut Vec<Option<i64>>,
    ) -> Result<(), StoreError> {
        batch.check(schema)?;
        self.prepare_apply(batch.len(), batch.runs().map(|run| (run.table, run.len())), keys)?;
        for mut run in batch.runs_mut() {
            let table = run.table;
            for i in 0..run.len() {
                let row = run.row_mut(i);
                if self.echo.is_some() {
                    let op = RowOp::Insert { table, row: (&*row).into() };
                    self.echo_op(schema, &op, keys);
                }
                // The values are moved out of the batch: a text's reference
                // count is not touched, and the batch is cleared after.
                let mut values = Vec::with_capacity(row.len());
                for cell in row.iter_mut() {
                    values.push(match std::mem::replace(cell, Cell::Value(Value::Null)) {
                        Cell::Value(value) => value,
                        generated => resolve(&generated, keys)?,
                    });
                }
                let key = self.insert_values(table, values)?;
                keys.push(key);
            }
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        let mut tx = self.tx.take().ok_or_else(|| usage("commit without a transaction"))?;
        let result = (|| {
            let db = self.db.as_mut().ok_or_else(|| usage("commit without a transaction"))?;
            // Rows laid out are written as they are by a compaction, and are
            // moved into the overlay for an append, which writes the overlay.
            let touched = touched(db, &tx);
            if touched == 0 {
                // Lists that got no row end with the transaction, as every other path ends them.
                for state in &mut db.tables {
                    state.bulk = None;
                }
                return Ok(());
            }
            // Decided by row counts, before any encoding, so a commit that
            // compacts never serializes a batch it would throw away.
            if tx.compact_at.is_some_and(|at| touched >= at) {
                return self.compact_now(Some(&mut tx));
            }
            materialize_all(db, &mut tx);
            let batch = self.batch(&tx);
            if batch.changes.is_empty() {
                return Ok(());
            }
            Ok(self.append(batch.changes.len(), &to_bytes(&batch)?)?)
        })();
        if result.is_err() {
            // The caller rolls back; the undo record must still be there for it.
            self.tx = Some(tx);
        }
        result
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        let (Some(tx), Some(db)) = (self.tx.take(), self.db.as_mut()) else { return Ok(()) };
        for ((t, row), old) in tx.undo {
            db.tables[t].put(&db.base, row, old);
        }
        for (t, row) in tx.inserted {
            db.tables[t].put(&db.base, row, None);
        }
        for (t, state) in db.tables.iter_mut().enumerate() {
            state.next_row = tx.next_rows[t];
            state.max_key = tx.max_keys[t];
            state.bulk = None;
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
        let t = table.index();
        let db = self.db_with(t)?;
        let mut ids: Vec<RowId> = Vec::new();
        for key in keys {
            ids.extend(db.find_values(t, columns, key));
        }
        if keys.len() > 1 {
            ids.sort_unstable();
            ids.dedup();
        }
        Ok(ids.into_iter().filter_map(|id| db.row(t, id)).collect())
    }

    fn load_all(&mut self, _schema: &Schema, table: TableId) -> Result<Vec<Row>, StoreError> {
        self.rows(table.index())
    }

    fn set_echo(&mut self, echo: Option<Echo>) {
        self.echo = echo;
    }
}

#[cfg(test)]
mod laid_out_tests {
    //! Inserts laid out as columns (`Bulk`) against the general path: the
    //! same random transactions, run with and without, must give the same
    //! outcomes, keys, loads and rows at every step and byte-identical files.

    use std::path::PathBuf;
    use std::sync::Arc;

    use relgraph_core::{Column, Entity, ForeignKey, Registry, Table};
    use relgraph_testkit::rng::XorShift;

    use super::*;

    fn schema() -> Arc<Schema> {
        let mut reg = Registry::new();
        // Generated keys, a reference to itself, text that is sometimes an integer.
        reg.entity(
            Entity::new("Node", "node")
                .column(Column::integer("id").primary_key())
                .column(Column::integer("parent_id").foreign_key("node.id"))
                .column(Column::text("label"))
                .column(Column::float("score")),
        )
        .expect("schema");
        reg.entity(
            Entity::new("Item", "item")
                .column(Column::integer("id").primary_key().autoincrement(false))
                .column(Column::integer("node_id").not_null())
                .column(Column::blob("data"))
                .foreign_key(ForeignKey::new(["node_id"], "node", ["id"]).on_delete(OnDelete::Cascade)),
        )
        .expect("schema");
        // A unique column: never laid out.
        reg.entity(
            Entity::new("Code", "code")
                .column(Column::integer("id").primary_key())
                .column(Column::text("code").unique()),
        )
        .expect("schema");
        reg.table(
            Table::new("link")
                .column(Column::integer("node_id").not_null().foreign_key("node.id"))
                .column(Column::integer("item_id").not_null().foreign_key("item.id")),
        )
        .expect("schema");
        reg.configure().expect("schema configures")
    }

    /// A key: usually the next one up (laid out), sometimes any (out of
    /// order, or a duplicate), sometimes NULL (generated, or refused).
    fn key(rng: &mut XorShift, next: &mut i64) -> Value {
        match rng.below(40) {
            0 => Value::Integer(rng.below(40) as i64),
            1 => Value::Null,
            _ => {
                *next += 1 + rng.below(2) as i64;
                Value::Integer(*next)
            }
        }
    }

    /// A random operation; `churn` in 100 are UPDATEs or DELETEs.
    fn op(rng: &mut XorShift, schema: &Schema, next: &mut [i64; 3], churn: u64) -> RowOp {
        let t = |name: &str| schema.table_id(name).expect("table");
        // A key issued so far: most exist, a few were skipped or refused.
        let any = |rng: &mut XorShift, next: i64| Value::Integer(1 + rng.below(next.max(1) as u64) as i64);
        let cells = |values: Vec<Value>| values.into_iter().map(Cell::Value).collect();
        let pick = rng.below(100);
        let pick = if pick >= 100 - churn { 90 + pick % 10 } else { pick * 90 / (100 - churn) };
        match pick {
            0..=49 => {
                let id = key(rng, &mut next[0]);
                let parent = match rng.below(4) {
                    0 | 1 => Value::Null,
                    2 => id.clone(),
                    _ => any(rng, next[0]),
                };
                let label = match rng.below(8) {
                    0 => Value::Null,
                    1 => Value::Integer(7),
                    _ => Value::from(format!("node-{}", rng.below(1000))),
                };
                let score =
                    if rng.below(5) == 0 { Value::Null } else { Value::Float(rng.below(100) as f64 / 4.0) };
                RowOp::Insert { table: t("node"), row: cells(vec![id, parent, label, score]) }
            }
            50..=74 => {
                let id = key(rng, &mut next[1]);
                let data = if rng.below(3) == 0 {
                    Value::Null
                } else {
                    Value::Blob(vec![rng.below(256) as u8; 3].into())
                };
                RowOp::Insert {
                    table: t("item"),
                    row: cells(vec![
                        id,
                        if rng.below(4) == 0 { any(rng, next[0]) } else { Value::Integer(next[0]) },
                        data,
                    ]),
                }
            }
            75..=79 => {
                let id = key(rng, &mut next[2]);
                RowOp::Insert {
                    table: t("code"),
                    row: cells(vec![id, Value::from(format!("c{}", rng.below(20)))]),
                }
            }
            80..=89 => RowOp::Insert {
                table: t("link"),
                row: cells(vec![any(rng, next[0]), Value::Integer(next[1])]),
            },
            90..=95 => RowOp::Update {
                table: t("node"),
                key_columns: Box::new([0]),
                key: Box::new([Cell::Value(any(rng, next[0]))]),
                columns: Box::new([2]),
                values: Box::new([Cell::Value(Value::from("renamed"))]),
            },
            _ => RowOp::Delete {
                table: t("node"),
                columns: Box::new([0]),
                values: Box::new([Cell::Value(any(rng, next[0]))]),
            },
        }
    }

    /// A scratch folder for test `name`, removed when dropped.
    fn scratch(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new().prefix(&format!("relgraph-laid-{name}-")).tempdir().expect("scratch folder")
    }

    /// A new file at `path` (any old one removed) with [`schema`]'s tables,
    /// not synced, its inserts laid out when `laid`.
    fn fresh(path: &std::path::Path, compaction: Compaction, laid: bool) -> SnapshotStore {
        let _ = std::fs::remove_file(path);
        let mut store =
            SnapshotStore::with_options(path, SnapshotOptions { sync: false, compaction }).expect("open");
        store.laid_out_inserts = laid;
        store.create_tables(&schema()).expect("tables");
        store
    }

    /// What a run saw: each step's outcome, loads and rows, and the file.
    fn run(seed: u64, laid: bool, compaction: Compaction, dir: &std::path::Path) -> (Vec<String>, Vec<u8>) {
        let schema = schema();
        let path: PathBuf = dir.join(format!("{seed}-{laid}-{compaction:?}.snap"));
        let mut store = fresh(&path, compaction, laid);
        let mut rng = XorShift::new(seed);
        let mut next = [0i64; 3];
        let mut seen = Vec::new();
        for round in 0..4 {
            // The first transactions into empty tables are the laid-out
            // path's: with few UPDATEs and DELETEs, they stay on it longer.
            let churn = if round < 2 { 2 } else { 10 };
            store.begin().expect("begin");
            // Said to be large: laid out where the commit would compact
            // (always, under `EveryCommit`), and moved into the overlay when
            // it appends after all (`Auto`, whose threshold these never reach).
            if rng.below(3) != 0 {
                store.reserve(100_000);
            }
            let issued = next;
            let mut keys = Vec::new();
            let mut failed = false;
            for step in 0..rng.below(80) {
                let mut ops: Vec<RowOp> =
                    (0..1 + rng.below(4)).map(|_| op(&mut rng, &schema, &mut next, churn)).collect();
                let outcome = if step % 2 == 0 {
                    store.apply(&schema, &ops, &mut keys)
                } else {
                    store.apply_owned(&schema, &mut ops, &mut keys)
                };
                seen.push(format!("{round}/{step}: {:?} {keys:?}", outcome.map_err(|e| e.kind)));
                if seen.last().is_some_and(|s| s.contains("Err")) {
                    failed = true;
                    break;
                }
                let items = store.load(
                    &schema,
                    schema.table_id("item").expect("item"),
                    &[1],
                    &[Box::new([Value::Integer(rng.below(60) as i64)])],
                );
                seen.push(format!("load: {:?}", items.map_err(|e| e.kind)));
                // Association rows, kept in a list without a key, are found by a scan.
                let links = store.load(
                    &schema,
                    schema.table_id("link").expect("link"),
                    &[0],
                    &[Box::new([Value::Integer(1 + rng.below(next[0].max(1) as u64) as i64)])],
                );
                seen.push(format!("links: {:?}", links.map_err(|e| e.kind)));
            }
            if failed || rng.below(5) == 0 {
                store.rollback().expect("rollback");
                next = issued;
            } else {
                store.commit().expect("commit");
            }
            for t in schema.table_ids() {
                let rows = store.load_all(&schema, t).expect("rows");
                seen.push(format!("{t:?}: {} {rows:?}", store.row_count(t.index()).expect("count")));
            }
        }
        drop(store);
        let bytes = std::fs::read(&path).expect("file");
        (seen, bytes)
    }

    /// 20,000 rows in one transaction said to be large, under automatic
    /// compaction: laid out as they come; a value of another type (`odd`)
    /// sends the table back to the general path. The files match the
    /// general path's.
    fn large(laid: bool, odd: Option<usize>, dir: &std::path::Path) -> (Vec<u8>, (usize, usize)) {
        let schema = schema();
        let path = dir.join(format!("large-{laid}-{odd:?}.snap"));
        let mut store = fresh(&path, Compaction::Auto, laid);
        let before = (LAID.with(std::cell::Cell::get), WRITTEN_LAID.with(std::cell::Cell::get));
        store.begin().expect("begin");
        store.reserve(40_000);
        let (node, item) = (schema.table_id("node").expect("node"), schema.table_id("item").expect("item"));
        let mut keys = Vec::new();
        for chunk in 0..20 {
            let mut ops: Vec<RowOp> = (0..1000i64)
                .flat_map(|i| {
                    let id = chunk * 1000 + i + 1;
                    let label = if odd == Some(id as usize) {
                        Value::Integer(1)
                    } else {
                        Value::from(format!("n{id}"))
                    };
                    let parent = if id > 1 { Value::Integer(id - 1) } else { Value::Null };
                    [
                        RowOp::Insert {
                            table: node,
                            row: [Value::Integer(id), parent, label, Value::Float(0.5)]
                                .map(Cell::Value)
                                .into(),
                        },
                        RowOp::Insert {
                            table: item,
                            row: [Value::Integer(id), Value::Integer(id), Value::Null]
                                .map(Cell::Value)
                                .into(),
                        },
                    ]
                })
                .collect();
            store.apply_owned(&schema, &mut ops, &mut keys).expect("apply");
        }
        store.commit().expect("commit");
        assert_eq!(store.info().expect("info").batches, 0, "the commit compacted");
        drop(store);
        let counts =
            (LAID.with(std::cell::Cell::get) - before.0, WRITTEN_LAID.with(std::cell::Cell::get) - before.1);
        (std::fs::read(&path).expect("file"), counts)
    }

    #[test]
    fn a_transaction_said_to_be_large_lays_its_rows_out() {
        let dir = scratch("large");
        for odd in [None, Some(15_000)] {
            let (laid, rows) = large(true, odd, dir.path());
            let (general, _) = large(false, odd, dir.path());
            assert!(laid == general, "{odd:?}: the files differ");
            // After the odd value only the items are laid out still.
            let expected = if odd.is_some() { (14_999 + 20_000, 20_000) } else { (40_000, 40_000) };
            assert_eq!(rows, expected, "{odd:?}: rows kept unindexed, rows written from columns");
        }
    }

    /// A commit whose compaction cannot write leaves the transaction open
    /// with every row it inserted, laid out or not, so that committing again
    /// once the cause is gone writes them all, as the general path does.
    #[test]
    fn a_failed_compaction_keeps_the_transactions_rows_for_a_second_commit() {
        let schema = schema();
        let (node, link) = (schema.table_id("node").expect("node"), schema.table_id("link").expect("link"));
        for laid in [true, false] {
            let dir = scratch(&format!("retry-{laid}"));
            let path = dir.path().join("retry.snap");
            let mut store = fresh(&path, Compaction::EveryCommit, laid);
            let ops: Vec<RowOp> = (1..=50i64)
                .flat_map(|id| {
                    [
                        RowOp::Insert {
                            table: node,
                            row: [
                                Value::Integer(id),
                                Value::Null,
                                Value::from(format!("n{id}")),
                                Value::Null,
                            ]
                            .map(Cell::Value)
                            .into(),
                        },
                        RowOp::Insert {
                            table: schema.table_id("item").expect("item"),
                            row: [Value::Integer(id), Value::Integer(id), Value::Null]
                                .map(Cell::Value)
                                .into(),
                        },
                        RowOp::Insert {
                            table: link,
                            row: [Value::Integer(id), Value::Integer(id)].map(Cell::Value).into(),
                        },
                    ]
                })
                .collect();
            let blocker = dir.path().join("retry.snap.compact-tmp");
            std::fs::create_dir_all(&blocker).expect("blocker");
            store.begin().expect("begin");
            store.reserve(ops.len());
            store.apply_all(&schema, &ops).expect("apply");
            store.commit().expect_err("the compaction cannot write");
            for t in [node, link] {
                assert_eq!(
                    store.row_count(t.index()).expect("count"),
                    50,
                    "laid {laid}: still in the transaction"
                );
            }
            std::fs::remove_dir(&blocker).expect("unblock");
            store.commit().expect("the second commit");
            drop(store);
            let mut store = SnapshotStore::open(&path).expect("reopen");
            for t in [node, link] {
                assert_eq!(store.load_all(&schema, t).expect("rows").len(), 50, "laid {laid}: written");
            }
        }
    }

    /// A compaction of rows laid out whose file cannot be written fails
    /// with an IO error and loses nothing: rolled back, the store and the
    /// file are as before, and the same transaction then commits.
    #[test]
    fn a_failed_compaction_of_rows_laid_out_rolls_back_and_commits_again() {
        let dir = scratch("failed");
        let schema = schema();
        let path = dir.path().join("failed.snap");
        let mut store = fresh(&path, Compaction::EveryCommit, true);
        let before = std::fs::read(&path).expect("file");
        let node = schema.table_id("node").expect("node");
        let rows = |n: i64| -> Vec<RowOp> {
            (1..=n)
                .map(|id| RowOp::Insert {
                    table: node,
                    row: [Value::Integer(id), Value::Null, Value::from(format!("n{id}")), Value::Float(0.5)]
                        .map(Cell::Value)
                        .into(),
                })
                .collect()
        };
        // The temporary file's name is taken by a directory: the write fails.
        let blocker = dir.path().join("failed.snap.compact-tmp");
        std::fs::create_dir_all(&blocker).expect("blocker");
        let laid = LAID.with(std::cell::Cell::get);
        store.begin().expect("begin");
        store.reserve(100);
        store.apply_all(&schema, &rows(100)).expect("apply");
        assert_eq!(LAID.with(std::cell::Cell::get) - laid, 100, "the rows were laid out");
        let err = store.commit().expect_err("the compaction cannot write");
        let source = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<SnapshotError>());
        assert!(matches!(source, Some(SnapshotError::Io { .. })), "the write failed: {err}");
        store.rollback().expect("rollback");
        assert_eq!(store.row_count(node.index()).expect("count"), 0);
        assert_eq!(std::fs::read(&path).expect("file"), before, "the file is as it was");

        std::fs::remove_dir(&blocker).expect("unblock");
        store.begin().expect("begin");
        store.reserve(100);
        store.apply_all(&schema, &rows(100)).expect("apply");
        store.commit().expect("commit");
        let stored = store.load_all(&schema, node).expect("rows");
        assert_eq!(stored.len(), 100);
        assert_eq!(stored[99][2], Value::from("n100"));
        drop(store);
    }

    /// A transaction said to be large that inserts nothing leaves nothing
    /// behind: the next one, small, takes the general path.
    #[test]
    fn an_empty_large_transaction_leaves_the_next_one_its_own_path() {
        let dir = scratch("empty");
        let schema = schema();
        let mut store = fresh(&dir.path().join("empty.snap"), Compaction::Auto, true);
        store.begin().expect("begin");
        store.reserve(100_000);
        store.commit().expect("an empty commit");
        let before = LAID.with(std::cell::Cell::get);
        store.begin().expect("begin");
        let node = schema.table_id("node").expect("node");
        let row = [Value::Integer(1), Value::Null, Value::from("n"), Value::Null].map(Cell::Value);
        store.apply_all(&schema, &[RowOp::Insert { table: node, row: row.into() }]).expect("insert");
        store.commit().expect("commit");
        assert_eq!(LAID.with(std::cell::Cell::get), before, "the small transaction laid nothing out");
        assert_eq!(store.row_count(node.index()).expect("count"), 1);
    }

    #[test]
    fn laid_out_inserts_give_the_general_paths_outcomes_rows_and_file() {
        let dir = scratch("random");
        LAID.with(|n| n.set(0));
        for seed in 1..=150 {
            for compaction in [Compaction::Never, Compaction::EveryCommit, Compaction::Auto] {
                let (laid, laid_file) = run(seed, true, compaction, dir.path());
                let (general, general_file) = run(seed, false, compaction, dir.path());
                assert_eq!(laid, general, "seed {seed}, {compaction:?}");
                assert!(laid_file == general_file, "seed {seed}, {compaction:?}: the files differ");
            }
        }
        // The laid-out path was taken, not only the general one.
        assert!(LAID.with(std::cell::Cell::get) > 1000, "{} rows laid out", LAID.with(std::cell::Cell::get));
    }
}
