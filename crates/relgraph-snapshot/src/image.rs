//! The base image: the validated archive, kept in the file's own bytes and
//! read in place, and the writer that builds a new one at compaction.

use std::cmp::Ordering;
use std::sync::Arc;

use relgraph_core::Value;
use rkyv::util::AlignedVec;

use crate::SnapshotError;
use crate::describe::TableDesc;
use crate::format::{
    ALIGN, ArchivedCellRec, ArchivedImageRec, ArchivedTableRec, CellRec, HEADER_LEN, Header, ImageRec,
    IndexRec, TableRec, access_image, padded, to_bytes,
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

impl ValueRef<'_> {
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

    fn rank(self) -> u8 {
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

type ImageRef<'a> = &'a ArchivedImageRec;

self_cell::self_cell!(
    /// The file's bytes and the validated archive inside them.
    struct ImageCell {
        owner: AlignedVec,
        #[covariant]
        dependent: ImageRef,
    }
);

/// The validated base image of an opened file.
pub(crate) struct Base {
    cell: ImageCell,
    /// Per table: positions in the archive of the indexes the description calls for.
    index_slots: Vec<Vec<usize>>,
}

impl Base {
    /// Validates the base image inside `file` (the whole file: header, base
    /// and log) and checks it against its own description.
    pub(crate) fn open(file: AlignedVec, header: &Header) -> Result<(Base, Vec<TableDesc>), SnapshotError> {
        let base_len = usize::try_from(header.base_len).unwrap_or(usize::MAX);
        let base_end = HEADER_LEN.saturating_add(padded(base_len.min(usize::MAX - ALIGN)));
        if file.len() < base_end {
            return Err(SnapshotError::Truncated { what: "base image", offset: file.len() as u64 });
        }
        if crc32fast::hash(&file[HEADER_LEN..base_end]) != header.base_crc {
            return Err(SnapshotError::Corrupt {
                offset: HEADER_LEN as u64,
                what: "base image checksum mismatch".into(),
            });
        }
        let cell = ImageCell::try_new(file, |bytes| access_image(&bytes[HEADER_LEN..HEADER_LEN + base_len]))?;
        let image = *cell.borrow_dependent();
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
        &self.cell.borrow_dependent().tables[table]
    }

    /// Rows of `table` in the image.
    pub(crate) fn rows(&self, table: usize) -> u32 {
        self.table(table).rows.to_native()
    }

    /// The cells of row `row` of `table`.
    pub(crate) fn row(&self, table: usize, row: u32) -> &[ArchivedCellRec] {
        let t = self.table(table);
        let width = t.columns.len();
        &t.cells[row as usize * width..(row as usize + 1) * width]
    }

    /// The rows of `table` whose `index`-th indexed columns equal `key`, by
    /// binary search over the stored order. O(log rows).
    pub(crate) fn find(
        &self,
        table: usize,
        index: usize,
        columns: &[u32],
        key: &[ValueRef<'_>],
    ) -> &[rkyv::rend::u32_le] {
        let t = self.table(table);
        let order = &t.indexes[self.index_slots[table][index]].order;
        let cmp = |row: &rkyv::rend::u32_le| {
            let cells = self.row(table, row.to_native());
            cmp_keys(columns.iter().map(|&c| ValueRef::from(&cells[c as usize])), key.iter().copied())
        };
        let start = order.partition_point(|r| cmp(r) == Ordering::Less);
        let end = start + order[start..].partition_point(|r| cmp(r) == Ordering::Equal);
        &order[start..end]
    }

    /// The file's bytes.
    pub(crate) fn bytes(&self) -> &AlignedVec {
        self.cell.borrow_owner()
    }

    /// Checks that every stored index is sorted: a deeper check than opening
    /// makes, for `relgraph verify`. O(rows) per index.
    pub(crate) fn verify_order(&self, descs: &[TableDesc]) -> Result<(), SnapshotError> {
        for (t, desc) in descs.iter().enumerate() {
            for (i, columns) in desc.index_columns().iter().enumerate() {
                let order = &self.table(t).indexes[self.index_slots[t][i]].order;
                let key =
                    |row: u32| columns.iter().map(move |&c| ValueRef::from(&self.row(t, row)[c as usize]));
                for pair in order.windows(2) {
                    if cmp_keys(key(pair[0].to_native()), key(pair[1].to_native())) == Ordering::Greater {
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
    if width == 0
        || t.cells.len() != rows.checked_mul(width).ok_or_else(|| bad("row count overflows".into()))?
    {
        return Err(bad(format!("table {}: {} cells for {rows} rows of {width}", desc.name, t.cells.len())));
    }
    desc.index_columns()
        .iter()
        .map(|columns| {
            let slot = t
                .indexes
                .iter()
                .position(|ix| ix.columns.iter().map(|c| c.to_native()).eq(columns.iter().copied()))
                .ok_or_else(|| bad(format!("table {}: missing index on columns {columns:?}", desc.name)))?;
            if t.indexes[slot].order.iter().any(|r| r.to_native() as usize >= rows) {
                return Err(bad(format!("table {}: index entry out of range", desc.name)));
            }
            Ok(slot)
        })
        .collect()
}

/// The bytes of a new file: header and base image, with no log. `tables`
/// holds each table's cells, row after row, already in the order of the
/// table's [`TableDesc::order_columns`].
pub(crate) fn write_image(
    descs: &[TableDesc],
    tables: Vec<Vec<CellRec>>,
    fingerprint: u64,
    generation: u64,
) -> Result<AlignedVec, SnapshotError> {
    let tables = descs
        .iter()
        .zip(tables)
        .map(|(desc, cells)| {
            let width = desc.columns.len();
            let rows = cells.len() / width.max(1);
            let order = desc.order_columns();
            let row = |r: u32| &cells[r as usize * width..(r as usize + 1) * width];
            let indexes = desc
                .index_columns()
                .into_iter()
                .map(|columns| {
                    let mut positions: Vec<u32> = (0..rows as u32)
                        .filter(|&r| columns.iter().all(|&c| row(r)[c as usize] != CellRec::Null))
                        .collect();
                    if columns != order {
                        positions.sort_by(|&a, &b| {
                            cmp_keys(
                                columns.iter().map(|&c| view(row(a), c)),
                                columns.iter().map(|&c| view(row(b), c)),
                            )
                        });
                    }
                    IndexRec { columns, order: positions }
                })
                .collect();
            TableRec {
                name: desc.name.clone(),
                columns: desc.column_recs(),
                primary_key: desc.primary_key.clone(),
                uniques: desc.uniques.clone(),
                foreign_keys: desc.foreign_key_recs(),
                rows: rows as u32,
                cells,
                indexes,
            }
        })
        .collect();
    let mut base = to_bytes(&ImageRec { tables })?;
    let base_len = base.len();
    base.resize(padded(base_len), 0);
    let header = Header {
        version: crate::format::FORMAT_VERSION,
        fingerprint,
        base_len: base_len as u64,
        base_crc: crc32fast::hash(&base),
        generation,
    };
    let mut file = AlignedVec::with_capacity(HEADER_LEN + base.len());
    file.extend_from_slice(&header.encode());
    file.extend_from_slice(&base);
    Ok(file)
}

/// A row to be written: from the current image, or from memory.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A row of the image, in place.
    Archived(&'a [ArchivedCellRec]),
    /// A row in memory.
    Row(&'a [Value]),
}

impl Source<'_> {
    fn cell(&self, c: u32) -> ValueRef<'_> {
        match self {
            Source::Archived(row) => ValueRef::from(&row[c as usize]),
            Source::Row(row) => ValueRef::from(&row[c as usize]),
        }
    }

    fn width(&self) -> usize {
        match self {
            Source::Archived(row) => row.len(),
            Source::Row(row) => row.len(),
        }
    }
}

/// Sorts `rows` by `order` and lays their cells out row after row, as
/// [`write_image`] takes them.
pub(crate) fn sorted_cells(order: &[u32], mut rows: Vec<Source<'_>>) -> Vec<CellRec> {
    let integer = |src: &Source<'_>| match (order, src) {
        ([c], _) => match src.cell(*c) {
            ValueRef::Integer(i) => Some(i),
            _ => None,
        },
        _ => None,
    };
    if rows.iter().all(|r| integer(r).is_some()) {
        // The common case, an integer key: compare integers, not value views.
        rows.sort_by_key(|r| integer(r));
    } else {
        rows.sort_by(|a, b| cmp_keys(order.iter().map(|&c| a.cell(c)), order.iter().map(|&c| b.cell(c))));
    }
    let width = rows.first().map_or(0, Source::width);
    let mut out = Vec::with_capacity(rows.len() * width);
    for src in &rows {
        out.extend((0..width as u32).map(|c| src.cell(c).to_rec()));
    }
    out
}

fn view(row: &[CellRec], c: u32) -> ValueRef<'_> {
    cell_view(&row[c as usize])
}

fn cell_view(c: &CellRec) -> ValueRef<'_> {
    match c {
        CellRec::Null => ValueRef::Null,
        CellRec::Integer(i) => ValueRef::Integer(*i),
        CellRec::Float(f) => ValueRef::Float(*f),
        CellRec::Text(s) => ValueRef::Text(s),
        CellRec::Boolean(b) => ValueRef::Boolean(*b),
        CellRec::Blob(b) => ValueRef::Blob(b),
    }
}
