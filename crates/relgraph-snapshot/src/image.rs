//! The base image: the validated archive, kept in the file's own bytes and
//! read in place, and the writer that builds a new one at compaction.

use std::cmp::Ordering;
use std::sync::Arc;

use relgraph_core::{Row, Value};
use rkyv::util::AlignedVec;

use crate::SnapshotError;
use crate::describe::TableDesc;
use crate::format::{
    ALIGN, ArchivedBatchRec, ArchivedCellRec, ArchivedColumnData, ArchivedImageRec, ArchivedTableRec,
    CellRec, ColumnData, Frame, HEADER_LEN, Header, ImageRec, IndexRec, NULL_END, TableRec, access_batch,
    access_image, decode_frame, padded,
};

/// A borrowed column value, from a row in memory or in the archive, so the
/// two compare without materializing either.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    /// SQL NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(&'a str),
    /// A boolean.
    Boolean(bool),
    /// Bytes.
    Blob(&'a [u8]),
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Text(s) => ValueRef::Text(s),
            Value::Boolean(b) => ValueRef::Boolean(*b),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }
}

impl<'a> From<&'a ArchivedCellRec> for ValueRef<'a> {
    fn from(c: &'a ArchivedCellRec) -> Self {
        match c {
            ArchivedCellRec::Null => ValueRef::Null,
            ArchivedCellRec::Integer(i) => ValueRef::Integer(i.to_native()),
            ArchivedCellRec::Float(f) => ValueRef::Float(f.to_native()),
            ArchivedCellRec::Text(s) => ValueRef::Text(s.as_str()),
            ArchivedCellRec::Boolean(b) => ValueRef::Boolean(*b),
            ArchivedCellRec::Blob(b) => ValueRef::Blob(b.as_slice()),
        }
    }
}

impl<'a> From<&'a CellRec> for ValueRef<'a> {
    fn from(c: &'a CellRec) -> Self {
        match c {
            CellRec::Null => ValueRef::Null,
            CellRec::Integer(i) => ValueRef::Integer(*i),
            CellRec::Float(f) => ValueRef::Float(*f),
            CellRec::Text(s) => ValueRef::Text(s),
            CellRec::Boolean(b) => ValueRef::Boolean(*b),
            CellRec::Blob(b) => ValueRef::Blob(b),
        }
    }
}

impl<'a> ValueRef<'a> {
    /// The text, if this is text.
    pub(crate) fn text(self) -> Option<&'a str> {
        if let ValueRef::Text(t) = self { Some(t) } else { None }
    }

    /// The bytes, if this is a blob.
    pub(crate) fn blob(self) -> Option<&'a [u8]> {
        if let ValueRef::Blob(b) = self { Some(b) } else { None }
    }

    /// An owned value.
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Text(s) => Value::Text(Arc::from(s)),
            ValueRef::Boolean(b) => Value::Boolean(b),
            ValueRef::Blob(b) => Value::Blob(Arc::from(b)),
        }
    }

    /// The record this value is written as.
    pub(crate) fn to_rec(self) -> CellRec {
        match self {
            ValueRef::Null => CellRec::Null,
            ValueRef::Integer(i) => CellRec::Integer(i),
            ValueRef::Float(f) => CellRec::Float(f),
            ValueRef::Text(s) => CellRec::Text(s.to_owned()),
            ValueRef::Boolean(b) => CellRec::Boolean(b),
            ValueRef::Blob(b) => CellRec::Blob(b.to_vec()),
        }
    }

    pub(crate) fn rank(self) -> u8 {
        match self {
            ValueRef::Null => 0,
            ValueRef::Boolean(_) => 1,
            ValueRef::Integer(_) => 2,
            ValueRef::Float(_) => 3,
            ValueRef::Text(_) => 4,
            ValueRef::Blob(_) => 5,
        }
    }

    /// A total order: NULL, booleans, integers, floats (IEEE total order),
    /// text, bytes. Sorted indexes in the file follow it.
    pub fn total_cmp(self, other: ValueRef<'_>) -> Ordering {
        match (self, other) {
            (ValueRef::Integer(a), ValueRef::Integer(b)) => a.cmp(&b),
            (ValueRef::Float(a), ValueRef::Float(b)) => a.total_cmp(&b),
            (ValueRef::Text(a), ValueRef::Text(b)) => a.cmp(b),
            (ValueRef::Boolean(a), ValueRef::Boolean(b)) => a.cmp(&b),
            (ValueRef::Blob(a), ValueRef::Blob(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// Compares rows (or keys) given as value views, column by column.
pub(crate) fn cmp_keys<'a, 'b>(
    a: impl IntoIterator<Item = ValueRef<'a>>,
    b: impl IntoIterator<Item = ValueRef<'b>>,
) -> Ordering {
    a.into_iter().zip(b).map(|(x, y)| x.total_cmp(y)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
}

/// The validated archives inside a file's bytes: the base image and the
/// committed log batches after it, read in place.
struct Archives<'a> {
    image: &'a ArchivedImageRec,
    batches: Vec<&'a ArchivedBatchRec>,
    /// The offset just past the last complete batch.
    log_end: usize,
    /// Whether the file goes on past it with an incomplete frame.
    torn_tail: bool,
}

/// A file's bytes, aligned for rkyv: as read, when the allocator aligned
/// them well enough (it does on the platforms we know, and reading into a
/// plain vector costs no zeroing of the buffer first), or copied into an
/// aligned buffer.
pub(crate) enum FileBytes {
    /// A buffer that happens to be aligned.
    Read(Vec<u8>),
    /// A buffer aligned by its type.
    Aligned(AlignedVec),
}

impl FileBytes {
    /// `bytes`, copied only if they are not aligned.
    pub(crate) fn from_vec(bytes: Vec<u8>) -> FileBytes {
        if bytes.as_ptr().align_offset(ALIGN) == 0 {
            FileBytes::Read(bytes)
        } else {
            let mut aligned = AlignedVec::with_capacity(bytes.len());
            aligned.extend_from_slice(&bytes);
            FileBytes::Aligned(aligned)
        }
    }
}

impl From<AlignedVec> for FileBytes {
    fn from(bytes: AlignedVec) -> Self {
        FileBytes::Aligned(bytes)
    }
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Read(bytes) => bytes,
            FileBytes::Aligned(bytes) => bytes,
        }
    }
}

self_cell::self_cell!(
    /// The file's bytes and the validated archives inside them.
    struct ImageCell {
        owner: FileBytes,
        #[covariant]
        dependent: Archives,
    }
);

/// Validates the log that starts at `at`: each frame's checksums and
/// sequence number, then its batch through rkyv's validation.
fn validate_log(bytes: &[u8], mut at: usize) -> Result<(Vec<&ArchivedBatchRec>, usize, bool), SnapshotError> {
    let mut batches = Vec::new();
    loop {
        match decode_frame(bytes, at, batches.len() as u32 + 1)? {
            Frame::End => return Ok((batches, at, false)),
            Frame::TornTail => return Ok((batches, at, true)),
            Frame::Batch { payload, end } => {
                // Frames start aligned, so the payload is aligned for rkyv.
                debug_assert_eq!(at % ALIGN, 0);
                batches.push(access_batch(payload, at)?);
                at = end;
            }
        }
    }
}

/// The validated base image and log of an opened file.
pub(crate) struct Base {
    cell: ImageCell,
    /// Per table: positions in the archive of the indexes the description calls for.
    index_slots: Vec<Vec<usize>>,
}

impl Base {
    /// Validates the base image inside `file` (the whole file: header, base
    /// and log) and checks it against its own description.
    pub(crate) fn open(file: FileBytes, header: &Header) -> Result<(Base, Vec<TableDesc>), SnapshotError> {
        let base_len = usize::try_from(header.base_len).unwrap_or(usize::MAX);
        let base_end = HEADER_LEN.saturating_add(padded(base_len.min(usize::MAX - ALIGN)));
        if file.len() < base_end {
            return Err(SnapshotError::Truncated { what: "base image", offset: file.len() as u64 });
        }
        if !crate::format::checksum_holds(&file[HEADER_LEN..base_end], header.base_crc) {
            return Err(SnapshotError::Corrupt {
                offset: HEADER_LEN as u64,
                what: "base image checksum mismatch".into(),
            });
        }
        let cell = ImageCell::try_new(file, |bytes| {
            let image = access_image(&bytes[HEADER_LEN..HEADER_LEN + base_len])?;
            let (batches, log_end, torn_tail) = validate_log(bytes, base_end)?;
            Ok::<_, SnapshotError>(Archives { image, batches, log_end, torn_tail })
        })?;
        let image = cell.borrow_dependent().image;
        let count = image.tables.len();
        let mut descs = Vec::with_capacity(count);
        let mut index_slots = Vec::with_capacity(count);
        for table in image.tables.iter() {
            let desc = crate::describe::from_archived(table, count)?;
            index_slots.push(check_table(table, &desc)?);
            descs.push(desc);
        }
        for desc in &descs {
            for fk in &desc.foreign_keys {
                let width = descs[fk.ref_table].columns.len() as u32;
                if fk.ref_columns.iter().any(|&c| c >= width) {
                    return Err(SnapshotError::Corrupt {
                        offset: HEADER_LEN as u64,
                        what: format!("table {}: foreign key to a column out of range", desc.name),
                    });
                }
            }
        }
        Ok((Base { cell, index_slots }, descs))
    }

    fn table(&self, table: usize) -> &ArchivedTableRec {
        &self.cell.borrow_dependent().image.tables[table]
    }

    /// The log's committed batches, oldest first.
    pub(crate) fn batches(&self) -> &[&ArchivedBatchRec] {
        &self.cell.borrow_dependent().batches
    }

    /// The cells of change `change` of batch `batch` (`None` for a deleted
    /// row). Positions come from the replay of the same batches.
    pub(crate) fn logged(&self, batch: u32, change: u32) -> Option<&[ArchivedCellRec]> {
        self.batches()[batch as usize].changes[change as usize].cells.as_ref().map(|c| c.as_slice())
    }

    /// The offset just past the last committed batch, and whether an
    /// incomplete frame follows it.
    pub(crate) fn log_end(&self) -> (usize, bool) {
        let archives = self.cell.borrow_dependent();
        (archives.log_end, archives.torn_tail)
    }

    /// Rows of `table` in the image.
    pub(crate) fn rows(&self, table: usize) -> u32 {
        self.table(table).rows.to_native()
    }

    /// Column `column` of row `row` of `table`, read in place. Positions
    /// were checked at open.
    pub(crate) fn cell(&self, table: usize, row: u32, column: u32) -> ValueRef<'_> {
        archived_cell(&self.table(table).data[column as usize], row as usize)
    }

    /// The columns of `table`.
    pub(crate) fn width(&self, table: usize) -> u32 {
        self.table(table).columns.len() as u32
    }

    /// The rows of `table` whose `index`-th indexed columns equal `key`, by
    /// binary search over the stored order. O(log rows).
    pub(crate) fn find(
        &self,
        table: usize,
        index: usize,
        columns: &[u32],
        key: &[ValueRef<'_>],
    ) -> Matches<'_> {
        let t = self.table(table);
        let index = &t.indexes[self.index_slots[table][index]];
        let cmp = |row: u32| cmp_keys(columns.iter().map(|&c| self.cell(table, row, c)), key.iter().copied());
        if index.implicit {
            let rows = t.rows.to_native() as usize;
            if let Some(hit) = self.probe_dense(table, columns, key, rows) {
                return Matches::Rows(hit);
            }
            let start = lower_bound(0, rows, |r| cmp(r as u32) == Ordering::Less);
            let end = start + gallop(start, rows, |r| cmp(r as u32) == Ordering::Equal);
            return Matches::Rows(start as u32..end as u32);
        }
        let order = &index.order;
        let start = order.partition_point(|r| cmp(r.to_native()) == Ordering::Less);
        let end = start + gallop(start, order.len(), |i| cmp(order[i].to_native()) == Ordering::Equal);
        Matches::Order(order[start..end].iter())
    }

    /// Where `key` sits if the table's integer keys are dense from its first
    /// row (as keys handed out one by one mostly are): one probe at the
    /// position the key would have, instead of a binary search that costs a
    /// cache miss per step on a large table. `None` when the probe misses.
    fn probe_dense(
        &self,
        table: usize,
        columns: &[u32],
        key: &[ValueRef<'_>],
        rows: usize,
    ) -> Option<std::ops::Range<u32>> {
        let ([column], [ValueRef::Integer(k)]) = (columns, key) else { return None };
        if rows == 0 {
            return None;
        }
        let ValueRef::Integer(first) = self.cell(table, 0, *column) else { return None };
        let at = usize::try_from(k.checked_sub(first)?).ok().filter(|&at| at < rows)?;
        let value = |r: usize| self.cell(table, r as u32, *column);
        let below = at == 0 || value(at - 1).total_cmp(ValueRef::Integer(*k)).is_lt();
        let above = at + 1 == rows || value(at + 1).total_cmp(ValueRef::Integer(*k)).is_gt();
        (value(at) == ValueRef::Integer(*k) && below && above).then_some(at as u32..at as u32 + 1)
    }

    /// The file's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.cell.borrow_owner()
    }

    /// Checks that every stored index is sorted: a deeper check than opening
    /// makes, for `relgraph verify`. O(rows) per index.
    pub(crate) fn verify_order(&self, descs: &[TableDesc]) -> Result<(), SnapshotError> {
        for (t, desc) in descs.iter().enumerate() {
            for (i, columns) in desc.index_columns().iter().enumerate() {
                let index = &self.table(t).indexes[self.index_slots[t][i]];
                let key = |row: u32| columns.iter().map(move |&c| self.cell(t, row, c));
                let order: Vec<u32> = if index.implicit {
                    (0..self.rows(t)).collect()
                } else {
                    index.order.iter().map(|r| r.to_native()).collect()
                };
                for pair in order.windows(2) {
                    if cmp_keys(key(pair[0]), key(pair[1])) == Ordering::Greater {
                        return Err(SnapshotError::Corrupt {
                            offset: HEADER_LEN as u64,
                            what: format!("table {}: index on columns {columns:?} is not sorted", desc.name),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Checks a table's shape against its description and returns, for each
/// index the description calls for, its position among the stored indexes.
fn check_table(t: &ArchivedTableRec, desc: &TableDesc) -> Result<Vec<usize>, SnapshotError> {
    let bad = |what: String| SnapshotError::Corrupt { offset: HEADER_LEN as u64, what };
    let rows = t.rows.to_native() as usize;
    let width = desc.columns.len();
    if width == 0 || t.data.len() != width {
        return Err(bad(format!(
            "table {}: {} columns of data for {width} columns",
            desc.name,
            t.data.len()
        )));
    }
    for (c, data) in t.data.iter().enumerate() {
        let (values, nulls) = match data {
            ArchivedColumnData::Integer { values, nulls } => (values.len(), nulls.len()),
            ArchivedColumnData::Integer32 { values, nulls } => (values.len(), nulls.len()),
            ArchivedColumnData::Float { values, nulls } => (values.len(), nulls.len()),
            ArchivedColumnData::Boolean { values, nulls } => (values.len(), nulls.len()),
            ArchivedColumnData::Text { values, nulls } => (values.len(), nulls.len()),
            ArchivedColumnData::Blob { values, nulls } => (values.len(), nulls.len()),
            ArchivedColumnData::Mixed { values } => (values.len(), rows.div_ceil(8)),
            ArchivedColumnData::Texts { text, ends } => {
                check_runs(ends, text.len(), |at| text.is_char_boundary(at))
                    .map_err(|what| bad(format!("table {}: column {c}: {what}", desc.name)))?;
                (ends.len(), 0)
            }
            ArchivedColumnData::Blobs { bytes, ends } => {
                check_runs(ends, bytes.len(), |_| true)
                    .map_err(|what| bad(format!("table {}: column {c}: {what}", desc.name)))?;
                (ends.len(), 0)
            }
        };
        if values != rows || (nulls != 0 && nulls != rows.div_ceil(8)) {
            return Err(bad(format!(
                "table {}: column {c} holds {values} values for {rows} rows",
                desc.name
            )));
        }
    }
    desc.index_columns()
        .iter()
        .map(|columns| {
            let slot = t
                .indexes
                .iter()
                .position(|ix| ix.columns.iter().map(|c| c.to_native()).eq(columns.iter().copied()))
                .ok_or_else(|| bad(format!("table {}: missing index on columns {columns:?}", desc.name)))?;
            let index = &t.indexes[slot];
            // The largest position, not the first one out of range: a
            // reduction without an early exit, which the compiler vectorizes.
            let largest = index.order.iter().fold(0u32, |m, r| m.max(r.to_native()));
            if (index.implicit && !index.order.is_empty())
                || (!index.order.is_empty() && largest as usize >= rows)
            {
                return Err(bad(format!("table {}: index entry out of range", desc.name)));
            }
            Ok(slot)
        })
        .collect()
}

/// Checks the end offsets of a column of runs: each run starts where the
/// previous one ended, so the ends (NULL bit masked off) must not go
/// backwards, stay within `len`, and fall where `boundary` allows.
fn check_runs(
    ends: &[rkyv::rend::u32_le],
    len: usize,
    boundary: impl Fn(usize) -> bool,
) -> Result<(), String> {
    let mut start = 0;
    for end in ends {
        let end = (end.to_native() & !NULL_END) as usize;
        if end < start || end > len {
            return Err(format!("run end {end} out of order or past the {len} bytes"));
        }
        if !boundary(end) {
            return Err(format!("run end {end} inside a character"));
        }
        start = end;
    }
    Ok(())
}

/// The run of row `r` in a column of runs (`None` for a NULL), `end(i)`
/// being row `i`'s end.
fn run(r: usize, end: impl Fn(usize) -> u32) -> Option<std::ops::Range<usize>> {
    let stop = end(r);
    if stop & NULL_END != 0 {
        return None;
    }
    let start = if r == 0 { 0 } else { end(r - 1) & !NULL_END };
    Some(start as usize..stop as usize)
}

/// The bytes of a new file: header and base image, with no log. `tables`
/// holds each table's rows as columns, already in the order of the table's
/// [`TableDesc::order_columns`] (see [`sorted_columns`]).
pub(crate) fn write_image(
    descs: &[TableDesc],
    tables: Vec<(u32, Vec<ColumnData>)>,
    fingerprint: u64,
    generation: u64,
) -> Result<AlignedVec, SnapshotError> {
    let tables: Vec<TableRec> = descs
        .iter()
        .zip(tables)
        .map(|(desc, (rows, data))| {
            let order = desc.order_columns();
            let cell = |r: u32, c: u32| owned_cell(&data[c as usize], r as usize);
            let indexes = desc
                .index_columns()
                .into_iter()
                .map(|columns| {
                    if order.starts_with(&columns) {
                        return IndexRec { columns, implicit: true, order: Vec::new() };
                    }
                    // One integer column without NULLs, already in order (children
                    // inserted grouped by parent): its order is the rows' own, so
                    // the index is implicit too, and a reader binary-searches the
                    // rows (format version 3 on; 400 KB fewer for W1's children).
                    if let [c] = columns.as_slice()
                        && let ColumnData::Integer { values, nulls } = &data[*c as usize]
                        && nulls.is_empty()
                        && values.is_sorted()
                    {
                        return IndexRec { columns, implicit: true, order: Vec::new() };
                    }
                    let mut positions: Vec<u32> = (0..rows)
                        .filter(|&r| columns.iter().all(|&c| cell(r, c) != ValueRef::Null))
                        .collect();
                    let integer = |i: usize, j: usize| match cell(positions[i], columns[j]) {
                        ValueRef::Integer(v) => Some(v),
                        _ => None,
                    };
                    match integer_order(positions.len(), columns.len(), integer) {
                        Some(permutation) => {
                            positions = permutation.into_iter().map(|i| positions[i as usize]).collect();
                        }
                        None => positions.sort_by(|&a, &b| {
                            cmp_keys(columns.iter().map(|&c| cell(a, c)), columns.iter().map(|&c| cell(b, c)))
                        }),
                    }
                    IndexRec { columns, implicit: false, order: positions }
                })
                .collect();
            TableRec {
                name: desc.name.clone(),
                columns: desc.column_recs(),
                primary_key: desc.primary_key.clone(),
                uniques: desc.uniques.clone(),
                foreign_keys: desc.foreign_key_recs(),
                rows,
                data: data.into_iter().map(narrowed).collect(),
                indexes,
            }
        })
        .collect();
    // The image is serialized in place after room for the header, so the
    // file's bytes are not copied again (5 MB for W1). Positions in an rkyv
    // archive are relative and the header's length keeps every alignment,
    // so the bytes are those of the image serialized on its own.
    let capacity = HEADER_LEN + tables.iter().map(TableRec::data_len).sum::<usize>() * 9 / 8 + 4096;
    let mut file = AlignedVec::with_capacity(capacity);
    file.extend_from_slice(&[0; HEADER_LEN]);
    let mut file = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(&ImageRec { tables }, file)
        .map_err(|e| SnapshotError::Encode(e.to_string()))?;
    let base_len = file.len() - HEADER_LEN;
    file.resize(HEADER_LEN + padded(base_len), 0);
    let header = Header {
        version: crate::format::FORMAT_VERSION,
        fingerprint,
        base_len: base_len as u64,
        base_crc: crc32fast::hash(&file[HEADER_LEN..]),
        generation,
    };
    file[..HEADER_LEN].copy_from_slice(&header.encode());
    Ok(file)
}

/// `data` as [`ColumnData::Integer32`] when it is a column of integers
/// that all fit in 32 bits; otherwise as it is.
fn narrowed(data: ColumnData) -> ColumnData {
    match data {
        ColumnData::Integer { values, nulls } => {
            // One pass for the range (vectorized), one for the copy.
            let (min, max) = values.iter().fold((0i64, 0i64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            if min < i64::from(i32::MIN) || max > i64::from(i32::MAX) {
                return ColumnData::Integer { values, nulls };
            }
            ColumnData::Integer32 { values: values.iter().map(|&v| v as i32).collect(), nulls }
        }
        other => other,
    }
}

/// The first position in `from..to` where `before` turns false (it must be
/// true, then false, over the range).
fn lower_bound(mut from: usize, mut to: usize, before: impl Fn(usize) -> bool) -> usize {
    while from < to {
        let mid = from + (to - from) / 2;
        if before(mid) {
            from = mid + 1;
        } else {
            to = mid;
        }
    }
    from
}

/// How many of the positions `from..to` hold, from the front, where
/// `holds` is true on a prefix of them and false after it: a galloping
/// search, so a key that a few rows hold costs a few probes however many
/// rows follow it (the end of a run of equal keys).
pub(crate) fn gallop(from: usize, to: usize, holds: impl Fn(usize) -> bool) -> usize {
    let mut step = 1;
    while from + step < to && holds(from + step) {
        step *= 2;
    }
    // Every position below `from + step / 2` holds; none from `from + step` on.
    lower_bound(from + step / 2, to.min(from + step), holds) - from
}

/// The rows a lookup found: a run of rows, or a run of a stored order.
pub(crate) enum Matches<'a> {
    /// Rows `start..end` themselves.
    Rows(std::ops::Range<u32>),
    /// Positions from a stored order.
    Order(std::slice::Iter<'a, rkyv::rend::u32_le>),
}

impl Iterator for Matches<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            Matches::Rows(range) => range.next(),
            Matches::Order(iter) => iter.next().map(|r| r.to_native()),
        }
    }
}

fn is_null(nulls: &[u8], row: usize) -> bool {
    nulls.get(row / 8).is_some_and(|b| b & (1 << (row % 8)) != 0)
}

fn archived_cell(data: &ArchivedColumnData, r: usize) -> ValueRef<'_> {
    match data {
        ArchivedColumnData::Integer { values, nulls } if !is_null(nulls, r) => {
            ValueRef::Integer(values[r].to_native())
        }
        ArchivedColumnData::Integer32 { values, nulls } if !is_null(nulls, r) => {
            ValueRef::Integer(i64::from(values[r].to_native()))
        }
        ArchivedColumnData::Float { values, nulls } if !is_null(nulls, r) => {
            ValueRef::Float(values[r].to_native())
        }
        ArchivedColumnData::Boolean { values, nulls } if !is_null(nulls, r) => {
            ValueRef::Boolean(values[r] != 0)
        }
        ArchivedColumnData::Text { values, nulls } if !is_null(nulls, r) => {
            ValueRef::Text(values[r].as_str())
        }
        ArchivedColumnData::Blob { values, nulls } if !is_null(nulls, r) => {
            ValueRef::Blob(values[r].as_slice())
        }
        ArchivedColumnData::Mixed { values } => ValueRef::from(&values[r]),
        // Ranges and character boundaries were checked at open: `get` cannot miss.
        ArchivedColumnData::Texts { text, ends } => run(r, |i| ends[i].to_native())
            .map_or(ValueRef::Null, |run| ValueRef::Text(text.get(run).unwrap_or_default())),
        ArchivedColumnData::Blobs { bytes, ends } => run(r, |i| ends[i].to_native())
            .map_or(ValueRef::Null, |run| ValueRef::Blob(bytes.get(run).unwrap_or_default())),
        _ => ValueRef::Null,
    }
}

fn owned_cell(data: &ColumnData, r: usize) -> ValueRef<'_> {
    match data {
        ColumnData::Integer { values, nulls } if !is_null(nulls, r) => ValueRef::Integer(values[r]),
        ColumnData::Integer32 { values, nulls } if !is_null(nulls, r) => {
            ValueRef::Integer(i64::from(values[r]))
        }
        ColumnData::Float { values, nulls } if !is_null(nulls, r) => ValueRef::Float(values[r]),
        ColumnData::Boolean { values, nulls } if !is_null(nulls, r) => ValueRef::Boolean(values[r] != 0),
        ColumnData::Text { values, nulls } if !is_null(nulls, r) => ValueRef::Text(&values[r]),
        ColumnData::Blob { values, nulls } if !is_null(nulls, r) => ValueRef::Blob(&values[r]),
        ColumnData::Mixed { values } => ValueRef::from(&values[r]),
        ColumnData::Texts { text, ends } => run(r, |i| ends[i])
            .map_or(ValueRef::Null, |run| ValueRef::Text(text.get(run).unwrap_or_default())),
        ColumnData::Blobs { bytes, ends } => run(r, |i| ends[i])
            .map_or(ValueRef::Null, |run| ValueRef::Blob(bytes.get(run).unwrap_or_default())),
        _ => ValueRef::Null,
    }
}

/// A row to be written: from the current image, or from memory.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// Row `row` of table `table` of the image, read in place.
    Archived {
        /// The image.
        base: &'a Base,
        /// The table.
        table: usize,
        /// The row.
        row: u32,
    },
    /// A row in memory.
    Row(&'a [Value]),
    /// A row as a log batch holds it, read in place.
    Logged(&'a [ArchivedCellRec]),
}

impl<'a> Source<'a> {
    /// Column `c`.
    pub(crate) fn cell(&self, c: u32) -> ValueRef<'a> {
        match *self {
            Source::Archived { base, table, row } => base.cell(table, row, c),
            Source::Row(row) => ValueRef::from(&row[c as usize]),
            Source::Logged(cells) => ValueRef::from(&cells[c as usize]),
        }
    }

    /// The row's values, owned.
    pub(crate) fn to_row(self) -> Row {
        match self {
            Source::Archived { base, table, row } => {
                (0..base.width(table)).map(|c| base.cell(table, row, c).to_value()).collect()
            }
            Source::Row(row) => row.into(),
            Source::Logged(cells) => cells.iter().map(|c| ValueRef::from(c).to_value()).collect(),
        }
    }
}

/// The order of `n` items by keys of `k` integers (`key(i, j)`: item `i`'s
/// `j`-th value), equal keys in item order as a stable sort leaves them; or
/// `None` as soon as a value is not an integer. Keys of one or two integers,
/// the common ones, are sorted as plain tuples: several times faster than
/// comparing value views, which is what a compaction spends its time on.
pub(crate) fn integer_order(
    n: usize,
    k: usize,
    key: impl Fn(usize, usize) -> Option<i64>,
) -> Option<Vec<u32>> {
    match k {
        0 => Some((0..n as u32).collect()),
        1 | 2 => {
            let mut keyed = Vec::with_capacity(n);
            for i in 0..n {
                let second = if k == 2 { key(i, 1)? } else { 0 };
                keyed.push((key(i, 0)?, second, i as u32));
            }
            sort_keyed(&mut keyed);
            Some(keyed.into_iter().map(|(_, _, i)| i).collect())
        }
        _ => {
            let mut flat = Vec::with_capacity(n * k);
            for i in 0..n {
                for j in 0..k {
                    flat.push(key(i, j)?);
                }
            }
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.sort_by(|&a, &b| flat[a as usize * k..][..k].cmp(&flat[b as usize * k..][..k]));
            Some(order)
        }
    }
}

/// Sorts (first key, second key, item) tuples, whose items are all
/// different, so that any sort gives the stable order. Rows and index
/// entries of a compaction are mostly keyed by integers in order or close
/// together (keys numbered one after another, foreign keys to them), which
/// this takes without comparing every tuple: a run already in order is
/// left as it is, first keys within a few times as many values as there
/// are tuples are counted into place (W2's association rows by `right_id`),
/// and first keys in order leave only each group of equal first keys to
/// sort (W2's association rows by `left_id`, `right_id`).
fn sort_keyed(keyed: &mut Vec<(i64, i64, u32)>) {
    if keyed.is_sorted() {
        return;
    }
    if !keyed.is_sorted_by_key(|t| t.0) {
        let (min, max) = keyed.iter().fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t.0), hi.max(t.0)));
        // Both ends are values of the slice: the span fits an unsigned 64-bit integer.
        let span = max.abs_diff(min);
        if span >= (keyed.len() as u64).saturating_mul(4) {
            keyed.sort_unstable();
            return;
        }
        // A counting sort by the first key keeps items of one key in the
        // order they came, which is item order.
        let mut starts = vec![0u32; span as usize + 2];
        for t in keyed.iter() {
            starts[t.0.abs_diff(min) as usize + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        // Where each tuple goes, then the tuples gathered: a zeroed array of
        // positions costs a sixth of a zeroed array of tuples.
        let mut from = vec![0u32; keyed.len()];
        for (i, t) in keyed.iter().enumerate() {
            let slot = &mut starts[t.0.abs_diff(min) as usize];
            from[*slot as usize] = i as u32;
            *slot += 1;
        }
        *keyed = from.into_iter().map(|i| keyed[i as usize]).collect();
    }
    // The first keys are in order: each group of equal ones is sorted by
    // the rest of the tuple.
    for group in keyed.chunk_by_mut(|a, b| a.0 == b.0) {
        if !group.is_sorted() {
            group.sort_unstable();
        }
    }
}

/// The most bytes one column of runs holds: an archived string's limit,
/// below the [`NULL_END`] bit. A column holding more is written one value
/// per row instead (version 1's layout).
const RUN_LIMIT: usize = (1 << 30) - 1;

/// Sorts `rows` (of `width` columns) by `order` and lays them out column by
/// column, as [`write_image`] takes them: each column typed when all its
/// values are of one kind, mixed otherwise.
pub(crate) fn sorted_columns(order: &[u32], width: u32, rows: Vec<Source<'_>>) -> (u32, Vec<ColumnData>) {
    lay_out(order, width, rows, RUN_LIMIT)
}

/// [`sorted_columns`] with columns of runs limited to `run_limit` bytes.
fn lay_out(order: &[u32], width: u32, mut rows: Vec<Source<'_>>, run_limit: usize) -> (u32, Vec<ColumnData>) {
    let integer = |i: usize, j: usize| match rows[i].cell(order[j]) {
        ValueRef::Integer(v) => Some(v),
        _ => None,
    };
    match integer_order(rows.len(), order.len(), integer) {
        Some(permutation) => rows = permutation.into_iter().map(|i| rows[i as usize]).collect(),
        None => {
            rows.sort_by(|a, b| cmp_keys(order.iter().map(|&c| a.cell(c)), order.iter().map(|&c| b.cell(c))));
        }
    }
    let mut columns = Columns::with_limit(width, run_limit, rows.len());
    // One pass over the rows, row by row: each row's values are read while
    // they are in the cache.
    for src in &rows {
        columns.push(|c| src.cell(c));
    }
    columns.finish(&rows)
}

/// Rows laid out column by column in the order they come, as
/// [`write_image`] takes one table's: each column typed by its first
/// non-NULL value. [`sorted_columns`] fills one with rows it has sorted;
/// the store fills one with the rows a transaction inserts, in key order,
/// into an empty table, as they arrive, so a compaction finds them laid out.
pub(crate) struct Columns {
    rows: usize,
    layouts: Vec<Layout>,
    /// Per column, its NULL bitmap so far (empty while it has no NULL).
    nulls: Vec<Vec<u8>>,
    run_limit: usize,
    /// Rows known to come, which a column makes room for when it takes its
    /// layout, instead of regrowing.
    expected: usize,
}

impl Columns {
    /// No rows of `width` columns.
    pub(crate) fn new(width: u32) -> Self {
        Columns::with_limit(width, RUN_LIMIT, 0)
    }

    fn with_limit(width: u32, run_limit: usize, expected: usize) -> Self {
        Columns {
            rows: 0,
            layouts: (0..width).map(|_| Layout::Pending).collect(),
            nulls: (0..width).map(|_| Vec::new()).collect(),
            run_limit,
            expected,
        }
    }

    /// Whether each value of a row (`cell` of each column) fits its column
    /// as laid out so far. A row that does not would make a column give up
    /// its layout, which then needs the rows again at the end.
    pub(crate) fn fits<'a>(&self, cell: impl Fn(u32) -> ValueRef<'a>) -> bool {
        self.layouts.iter().enumerate().all(|(c, layout)| layout.fits(cell(c as u32), self.run_limit))
    }

    /// Adds a row, `cell` giving each column's value.
    pub(crate) fn push<'a>(&mut self, cell: impl Fn(u32) -> ValueRef<'a>) {
        let r = self.rows;
        for (c, layout) in self.layouts.iter_mut().enumerate() {
            let v = cell(c as u32);
            if v == ValueRef::Null {
                let bitmap = &mut self.nulls[c];
                if bitmap.len() <= r / 8 {
                    bitmap.resize(r / 8 + 1, 0);
                }
                bitmap[r / 8] |= 1 << (r % 8);
            }
            layout.push(r, v, self.run_limit, self.expected);
        }
        self.rows += 1;
    }

    /// Column `c`'s values when it holds integers only (NULLs as 0).
    pub(crate) fn integers(&self, c: u32) -> Option<&[i64]> {
        match &self.layouts[c as usize] {
            Layout::Integers(values) => Some(values),
            _ => None,
        }
    }

    /// Whether every column kept its layout, so [`Columns::finish`] needs no rows.
    pub(crate) fn laid_out(&self) -> bool {
        !self.layouts.iter().any(|l| matches!(l, Layout::GivenUp))
    }

    /// The row count and the columns. A column that gave up its layout is
    /// written from `rows`, the rows pushed, in order.
    pub(crate) fn finish(self, rows: &[Source<'_>]) -> (u32, Vec<ColumnData>) {
        let n = self.rows;
        let columns = self
            .layouts
            .into_iter()
            .zip(self.nulls)
            .enumerate()
            .map(|(c, (layout, mut nulls))| {
                if !nulls.is_empty() {
                    nulls.resize(n.div_ceil(8), 0);
                }
                layout.finish(n, nulls, rows, c as u32)
            })
            .collect();
        (n as u32, columns)
    }
}

/// A column being laid out in one pass, typed by its first non-NULL value.
enum Layout {
    /// Only NULLs so far.
    Pending,
    Integers(Vec<i64>),
    Floats(Vec<f64>),
    Booleans(Vec<u8>),
    /// Text or bytes as runs ([`ColumnData::Texts`], [`ColumnData::Blobs`]).
    Runs {
        text: bool,
        bytes: Vec<u8>,
        ends: Vec<u32>,
    },
    /// Values of several kinds, or runs too long: laid out one value per
    /// row at the end.
    GivenUp,
}

impl Layout {
    /// Whether `v` joins the layout without making it give up.
    fn fits(&self, v: ValueRef<'_>, run_limit: usize) -> bool {
        match (self, v) {
            (Layout::GivenUp, _) => false,
            (Layout::Pending, _) | (_, ValueRef::Null) => true,
            (Layout::Integers(_), ValueRef::Integer(_))
            | (Layout::Floats(_), ValueRef::Float(_))
            | (Layout::Booleans(_), ValueRef::Boolean(_)) => true,
            (Layout::Runs { text: true, bytes, .. }, ValueRef::Text(t)) => bytes.len() + t.len() <= run_limit,
            (Layout::Runs { text: false, bytes, .. }, ValueRef::Blob(b)) => {
                bytes.len() + b.len() <= run_limit
            }
            _ => false,
        }
    }

    /// Adds row `r`'s value (rows come in order), making room for
    /// `expected` rows when the column takes its layout.
    fn push(&mut self, r: usize, v: ValueRef<'_>, run_limit: usize, expected: usize) {
        if let Layout::Pending = self {
            // The `r` rows before this one were NULLs.
            fn nulls<T: Clone>(r: usize, expected: usize, null: T) -> Vec<T> {
                let mut values = Vec::with_capacity(expected.max(r + 1));
                values.resize(r, null);
                values
            }
            *self = match v {
                ValueRef::Null => return,
                ValueRef::Integer(_) => Layout::Integers(nulls(r, expected, 0)),
                ValueRef::Float(_) => Layout::Floats(nulls(r, expected, 0.0)),
                ValueRef::Boolean(_) => Layout::Booleans(nulls(r, expected, 0)),
                ValueRef::Text(_) | ValueRef::Blob(_) => Layout::Runs {
                    text: matches!(v, ValueRef::Text(_)),
                    bytes: Vec::new(),
                    ends: nulls(r, expected, NULL_END),
                },
            };
        }
        match (&mut *self, v) {
            (Layout::Integers(values), ValueRef::Integer(i)) => values.push(i),
            (Layout::Integers(values), ValueRef::Null) => values.push(0),
            (Layout::Floats(values), ValueRef::Float(f)) => values.push(f),
            (Layout::Floats(values), ValueRef::Null) => values.push(0.0),
            (Layout::Booleans(values), ValueRef::Boolean(b)) => values.push(u8::from(b)),
            (Layout::Booleans(values), ValueRef::Null) => values.push(0),
            (Layout::Runs { bytes, ends, .. }, ValueRef::Null) => ends.push(bytes.len() as u32 | NULL_END),
            (Layout::Runs { text: true, bytes, ends }, ValueRef::Text(t))
                if bytes.len() + t.len() <= run_limit =>
            {
                bytes.extend_from_slice(t.as_bytes());
                ends.push(bytes.len() as u32);
            }
            (Layout::Runs { text: false, bytes, ends }, ValueRef::Blob(b))
                if bytes.len() + b.len() <= run_limit =>
            {
                bytes.extend_from_slice(b);
                ends.push(bytes.len() as u32);
            }
            _ => *self = Layout::GivenUp,
        }
    }

    /// The column of `n` rows with its NULL bitmap (empty when there is no
    /// NULL). A column given up on is laid out from `rows` (its column `c`):
    /// one value per row, typed when its values are of one kind.
    fn finish(self, n: usize, nulls: Vec<u8>, rows: &[Source<'_>], c: u32) -> ColumnData {
        match self {
            // A column of NULLs only is stored as integers.
            Layout::Pending => ColumnData::Integer { values: vec![0; n], nulls },
            Layout::Integers(values) => ColumnData::Integer { values, nulls },
            Layout::Floats(values) => ColumnData::Float { values, nulls },
            Layout::Booleans(values) => ColumnData::Boolean { values, nulls },
            Layout::Runs { text: true, bytes, ends } => match String::from_utf8(bytes) {
                Ok(text) => ColumnData::Texts { text, ends },
                // Whole strings laid end to end are UTF-8: not reached.
                Err(_) => Layout::GivenUp.finish(n, nulls, rows, c),
            },
            Layout::Runs { text: false, bytes, ends } => ColumnData::Blobs { bytes, ends },
            Layout::GivenUp => {
                let cells = rows.iter().map(|src| src.cell(c));
                let mut kinds = cells.clone().filter(|v| *v != ValueRef::Null).map(ValueRef::rank);
                let kind = kinds.next();
                match kind.filter(|&k| kinds.all(|other| other == k)) {
                    Some(4) => ColumnData::Text {
                        values: cells.map(|v| v.text().unwrap_or_default().to_owned()).collect(),
                        nulls,
                    },
                    Some(5) => ColumnData::Blob {
                        values: cells.map(|v| v.blob().unwrap_or_default().to_vec()).collect(),
                        nulls,
                    },
                    // Values of several kinds; `Mixed` holds any column.
                    _ => ColumnData::Mixed { values: cells.map(ValueRef::to_rec).collect() },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table's stored index may name only rows the table has: a position
    /// past its end is refused at open, wherever it sits in the index.
    #[test]
    fn an_index_position_past_the_rows_is_refused() {
        let schema = relgraph_testkit::conformance::schema();
        let descs = crate::describe::describe(&schema);
        let t = schema.table_id("pet").unwrap().index();
        // Three pets, the second without an owner: the owner index holds rows 0 and 2.
        let rows: Vec<Row> = [(1, Some(10)), (2, None), (3, Some(5))]
            .into_iter()
            .map(|(id, owner)| -> Row {
                Box::new([Value::Integer(id), owner.map_or(Value::Null, Value::Integer)])
            })
            .collect();
        let sources: Vec<Source<'_>> = rows.iter().map(|r| Source::Row(r)).collect();
        let (n, data) = sorted_columns(&descs[t].order_columns(), 2, sources);
        let base = write_image(&descs[t..=t], vec![(n, data)], 0, 0).unwrap();
        let image: ImageRec = rkyv::from_bytes::<ImageRec, rkyv::rancor::Error>(
            &base[HEADER_LEN..][..{
                let header = crate::format::Header::decode(&base).unwrap();
                header.base_len as usize
            }],
        )
        .unwrap();
        let table = &image.tables[0];
        let owner = table.indexes.iter().position(|ix| !ix.implicit).expect("the owner index is stored");
        assert_eq!(table.indexes[owner].order, [2, 0], "by owner: 5, then 10");
        let check = |order: Vec<u32>| {
            let mut table = table.clone();
            table.indexes[owner].order = order;
            let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&table).unwrap();
            let archived = rkyv::access::<ArchivedTableRec, rkyv::rancor::Error>(&bytes).unwrap();
            check_table(archived, &descs[t]).map(|_| ()).map_err(|e| e.to_string())
        };
        assert_eq!(check(vec![2, 0]), Ok(()));
        for order in [vec![3, 0], vec![2, 3], vec![u32::MAX, 0]] {
            let err = check(order.clone()).expect_err("a position past the rows");
            assert!(err.contains("index entry out of range"), "{order:?}: {err}");
        }
    }

    /// A column of integers is stored in 32 bits exactly when every value
    /// fits (NULLs aside), and reads back the same from the archive either way.
    #[test]
    fn integers_that_fit_in_32_bits_are_stored_so_and_read_back_the_same() {
        let schema = relgraph_testkit::conformance::schema();
        let descs = crate::describe::describe(&schema);
        let t = schema.table_id("pet").unwrap().index();
        let (min, max) = (i64::from(i32::MIN), i64::from(i32::MAX));
        for (owners, narrow) in [
            (vec![Some(10), None, Some(5)], true),
            (vec![Some(min), Some(max), Some(0)], true),
            (vec![Some(max + 1), Some(1), None], false),
            (vec![Some(min - 1), Some(1), Some(2)], false),
            (vec![Some(i64::MIN), None, Some(i64::MAX)], false),
        ] {
            let rows: Vec<Row> = owners
                .iter()
                .enumerate()
                .map(|(id, owner)| -> Row {
                    Box::new([Value::Integer(id as i64 + 1), owner.map_or(Value::Null, Value::Integer)])
                })
                .collect();
            let sources: Vec<Source<'_>> = rows.iter().map(|r| Source::Row(r)).collect();
            let (n, data) = sorted_columns(&descs[t].order_columns(), 2, sources);
            let file = write_image(&descs[t..=t], vec![(n, data)], 0, 0).unwrap();
            let header = crate::format::Header::decode(&file).unwrap();
            let base = &file[HEADER_LEN..][..header.base_len as usize];
            let image = rkyv::access::<ArchivedImageRec, rkyv::rancor::Error>(base).unwrap();
            let table = &image.tables[0];
            check_table(table, &descs[t]).unwrap();
            assert!(matches!(table.data[0], ArchivedColumnData::Integer32 { .. }), "{owners:?}: the keys");
            assert_eq!(
                matches!(table.data[1], ArchivedColumnData::Integer32 { .. }),
                narrow,
                "{owners:?}: 32 bits or 64"
            );
            for (r, row) in rows.iter().enumerate() {
                for c in 0..2 {
                    assert_eq!(
                        archived_cell(&table.data[c], r),
                        ValueRef::from(&row[c]),
                        "{owners:?}, row {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn gallop_counts_every_prefix() {
        for from in [0, 3] {
            for to in from..from + 70 {
                for end in from..=to {
                    assert_eq!(
                        gallop(from, to, |i| i < end),
                        end - from,
                        "{from}..{to}, holding up to {end}"
                    );
                }
            }
        }
    }

    /// `n` numbers from `-range / 2` up, below `range - range / 2`: the shared test generator.
    fn numbers(seed: u64, n: usize, range: i64) -> Vec<i64> {
        let mut rng = relgraph_testkit::rng::XorShift::new(seed);
        (0..n).map(|_| rng.below(range as u64) as i64 - range / 2).collect()
    }

    #[test]
    fn integer_order_is_the_stable_sort_of_the_keys_for_every_width() {
        for k in 0..5 {
            for (seed, range) in [(1, 3), (7, 1000), (42, i64::MAX / 4)] {
                let n = 500;
                let values = numbers(seed, n * k.max(1), range);
                let key = |i: usize, j: usize| Some(values[i * k + j]);
                let mut expected: Vec<u32> = (0..n as u32).collect();
                expected.sort_by_key(|&i| (0..k).map(|j| values[i as usize * k + j]).collect::<Vec<_>>());
                assert_eq!(integer_order(n, k, key).unwrap(), expected, "width {k}, range {range}");
            }
        }
    }

    #[test]
    fn text_and_bytes_are_written_as_runs_and_read_back() {
        let rows: Vec<Row> = vec![
            Box::new([Value::Integer(1), Value::from("één"), Value::Blob(vec![1, 2].into())]),
            Box::new([Value::Integer(2), Value::Null, Value::Null]),
            Box::new([Value::Integer(3), Value::from(""), Value::Blob(Vec::new().into())]),
            Box::new([Value::Integer(4), Value::from("last"), Value::Blob(vec![255].into())]),
        ];
        let sources = rows.iter().map(|r| Source::Row(r)).collect();
        let (n, columns) = sorted_columns(&[0], 3, sources);
        assert_eq!(n, 4);
        assert!(matches!(columns[1], ColumnData::Texts { .. }), "{:?}", columns[1]);
        assert!(matches!(columns[2], ColumnData::Blobs { .. }), "{:?}", columns[2]);
        for (r, row) in rows.iter().enumerate() {
            for c in 0..3 {
                assert_eq!(owned_cell(&columns[c], r), ValueRef::from(&row[c]), "row {r}, column {c}");
            }
        }
    }

    /// Every kind of column (with and without NULLs, all NULL, mixed) is
    /// laid out in its layout and reads back, sorted; with runs limited to
    /// a few bytes, text and bytes fall back to one value per row.
    #[test]
    fn columns_of_every_kind_are_laid_out_sorted_and_read_back() {
        let values = |r: i64| -> Row {
            Box::new([
                Value::Integer(r),
                if r % 3 == 0 { Value::Null } else { Value::Integer(r * 7) },
                Value::Float(r as f64 / 4.0),
                if r % 5 == 0 { Value::Null } else { Value::Boolean(r % 2 == 0) },
                if r % 4 == 1 { Value::Null } else { Value::from(format!("é{r}")) },
                Value::Blob(vec![r as u8; (r % 3) as usize].into()),
                Value::Null,
                // Mixed: integers, then text.
                if r < 10 { Value::Integer(r) } else { Value::from("text") },
                // NULLs first, then floats.
                if r < 7 { Value::Null } else { Value::Float(0.5) },
            ])
        };
        let rows: Vec<Row> = (0..40).rev().map(values).collect();
        let sources: Vec<Source<'_>> = rows.iter().map(|r| Source::Row(r)).collect();
        for limit in [RUN_LIMIT, 4] {
            let (n, columns) = lay_out(&[0], 9, sources.clone(), limit);
            assert_eq!(n, 40);
            for (c, column) in columns.iter().enumerate() {
                for r in 0..40 {
                    let expected = &values(r as i64)[c];
                    assert_eq!(
                        owned_cell(column, r),
                        ValueRef::from(expected),
                        "limit {limit}, row {r}, column {c}"
                    );
                }
            }
            let kinds: Vec<&str> = columns
                .iter()
                .map(|c| match c {
                    ColumnData::Integer { nulls, .. } if nulls.is_empty() => "integers",
                    ColumnData::Integer { .. } => "integers with NULLs",
                    ColumnData::Integer32 { nulls, .. } if nulls.is_empty() => "32-bit integers",
                    ColumnData::Integer32 { .. } => "32-bit integers with NULLs",
                    ColumnData::Float { .. } => "floats",
                    ColumnData::Boolean { .. } => "booleans",
                    ColumnData::Text { .. } => "text per row",
                    ColumnData::Blob { .. } => "bytes per row",
                    ColumnData::Texts { .. } => "text runs",
                    ColumnData::Blobs { .. } => "byte runs",
                    ColumnData::Mixed { .. } => "mixed",
                })
                .collect();
            let (text, bytes) =
                if limit == 4 { ("text per row", "bytes per row") } else { ("text runs", "byte runs") };
            assert_eq!(
                kinds,
                [
                    "integers",
                    "integers with NULLs",
                    "floats",
                    "booleans",
                    text,
                    bytes,
                    "integers with NULLs",
                    "mixed",
                    "floats"
                ],
                "limit {limit}"
            );
        }
    }

    #[test]
    fn runs_that_go_backwards_past_the_end_or_into_a_character_are_refused() {
        let ends = |e: &[u32]| e.iter().map(|&v| rkyv::rend::u32_le::from_native(v)).collect::<Vec<_>>();
        let text = "aé";
        let boundary = |at: usize| text.is_char_boundary(at);
        assert!(check_runs(&ends(&[1, 1 | NULL_END, 3]), text.len(), boundary).is_ok());
        assert!(check_runs(&ends(&[2, 1]), text.len(), boundary).is_err(), "backwards");
        assert!(check_runs(&ends(&[4]), text.len(), boundary).is_err(), "past the end");
        assert!(check_runs(&ends(&[2]), text.len(), boundary).is_err(), "inside é");
        assert!(check_runs(&ends(&[4 | NULL_END]), text.len(), boundary).is_err(), "a NULL past the end");
    }

    /// A foreign-key index over integers already in order is the rows' own
    /// order, as the sort would give it (ties in row order), and is stored
    /// implicit; with a NULL or out of order, it is stored in the sort's
    /// order. Either way, looking a value up finds exactly its rows.
    #[test]
    fn an_index_over_integers_in_order_is_the_sorts_order() {
        let schema = relgraph_testkit::conformance::schema();
        let descs = crate::describe::describe(&schema);
        let t = schema.table_id("pet").unwrap().index();
        for (owners, in_order) in [
            (vec![Some(1), Some(1), Some(2), Some(2), Some(2), Some(9)], true),
            (vec![Some(3), Some(1), Some(2), Some(2)], false),
            (vec![Some(1), None, Some(2)], false),
        ] {
            let rows: Vec<Row> = owners
                .iter()
                .enumerate()
                .map(|(id, owner)| -> Row {
                    Box::new([Value::Integer(id as i64), owner.map_or(Value::Null, Value::Integer)])
                })
                .collect();
            let (n, data) =
                sorted_columns(&descs[t].order_columns(), 2, rows.iter().map(|r| Source::Row(r)).collect());
            let file = write_image(&descs[t..=t], vec![(n, data)], 0, 0).unwrap();
            let header = crate::format::Header::decode(&file).unwrap();
            let image = rkyv::from_bytes::<ImageRec, rkyv::rancor::Error>(
                &file[HEADER_LEN..][..header.base_len as usize],
            )
            .unwrap();
            let index = image.tables[0].indexes.iter().find(|ix| ix.columns == [1]).expect("owner index");
            assert_eq!(index.implicit, in_order, "{owners:?}");
            let order: Vec<u32> = if index.implicit { (0..n).collect() } else { index.order.clone() };
            let present: Vec<u32> =
                (0..owners.len() as u32).filter(|&r| owners[r as usize].is_some()).collect();
            let expected: Vec<u32> = integer_order(present.len(), 1, |i, _| owners[present[i] as usize])
                .unwrap()
                .into_iter()
                .map(|i| present[i as usize])
                .collect();
            assert_eq!(order, expected, "{owners:?}");
            let (base, opened) = Base::open(FileBytes::from_vec(file.to_vec()), &header).unwrap();
            let slot = opened[0].index_columns().iter().position(|c| c == &[1]).expect("owner index");
            for owner in 0..11 {
                let mut found: Vec<u32> = base.find(0, slot, &[1], &[ValueRef::Integer(owner)]).collect();
                found.sort_unstable();
                let want: Vec<u32> =
                    (0..owners.len() as u32).filter(|&r| owners[r as usize] == Some(owner)).collect();
                assert_eq!(found, want, "{owners:?}: rows of owner {owner}");
            }
        }
    }

    /// The image serialized in place after the header holds the bytes of
    /// the same image serialized on its own, and its checksum covers them.
    #[test]
    fn the_image_serialized_after_the_header_is_the_image_serialized_alone() {
        let schema = relgraph_testkit::conformance::schema();
        let descs = crate::describe::describe(&schema);
        let cells = descs
            .iter()
            .map(|d| {
                let rows: Vec<Row> = (0..50i64)
                    .rev()
                    .map(|r| {
                        (0..d.columns.len())
                            .map(|c| match (c, r % 3) {
                                (0, _) => Value::Integer(r),
                                (_, 0) => Value::Null,
                                (_, 1) => Value::Integer(r * 7),
                                _ => Value::from(format!("v{r}")),
                            })
                            .collect()
                    })
                    .collect();
                sorted_columns(
                    &d.order_columns(),
                    d.columns.len() as u32,
                    rows.iter().map(|r| Source::Row(r)).collect(),
                )
            })
            .collect();
        let file = write_image(&descs, cells, 7, 3).unwrap();
        let header = crate::format::Header::decode(&file).unwrap();
        let base = &file[HEADER_LEN..][..header.base_len as usize];
        let image = rkyv::from_bytes::<ImageRec, rkyv::rancor::Error>(base).unwrap();
        assert_eq!(image.tables.len(), descs.len());
        assert_eq!(crate::format::to_bytes(&image).unwrap().as_slice(), base);
        assert_eq!(file.len(), HEADER_LEN + crate::format::padded(base.len()));
        assert_eq!(header.base_crc, crc32fast::hash(&file[HEADER_LEN..]));
    }

    /// The shapes [`sort_keyed`] takes without a full sort (keys in order,
    /// first keys in order, first keys close together, at the ends of the
    /// integers too) give the stable sort's order, as every other shape does.
    #[test]
    fn integer_order_of_keys_in_order_or_close_together_is_the_stable_sort() {
        let mut rng = relgraph_testkit::rng::XorShift::new(9);
        let n = 700;
        let mut small = || rng.below(7) as i64;
        let shapes: Vec<(&str, Vec<[i64; 2]>)> = vec![
            ("all in order", (0..n as i64).map(|i| [i / 3, i % 3]).collect()),
            ("first keys in order, far apart", (0..n as i64).map(|i| [(i / 10) << 40, small()]).collect()),
            ("first keys close together", (0..n).map(|_| [small() * 3 - 9, small()]).collect()),
            ("close together at the bottom", (0..n).map(|_| [i64::MIN + small(), small()]).collect()),
            ("close together at the top", (0..n).map(|_| [i64::MAX - small(), small()]).collect()),
            ("both ends", (0..n).map(|i| [if i % 2 == 0 { i64::MIN } else { i64::MAX }, small()]).collect()),
            ("far apart, out of order", (0..n).map(|i| [(small() - 3) << 50, (i % 5) as i64]).collect()),
        ];
        for (shape, keys) in shapes {
            for k in [1, 2] {
                let mut expected: Vec<u32> = (0..n as u32).collect();
                expected.sort_by_key(|&i| keys[i as usize][..k].to_vec());
                let order = integer_order(n, k, |i, j| Some(keys[i][j])).unwrap();
                assert_eq!(order, expected, "{shape}, width {k}");
            }
        }
    }

    #[test]
    fn integer_order_gives_up_on_a_value_that_is_not_an_integer() {
        let key = |i: usize, j: usize| if i == 3 && j == 1 { None } else { Some(i as i64) };
        assert_eq!(integer_order(10, 2, key), None);
        assert_eq!(integer_order(10, 1, key).map(|o| o.len()), Some(10), "column 1 is not read");
    }
}
