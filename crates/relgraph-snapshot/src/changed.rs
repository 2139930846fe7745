//! The overlay's map from a row to its entry: an array indexed by row for
//! the rows of the base image, a vector for the rows inserted since (they
//! are numbered one after another), and a hash map for the rare row number
//! that does not follow on (a log is untrusted input).
//!
//! Opening a file replays its log, whose changes come sorted by row, and a
//! flush of new rows numbers them in order: with arrays, recording them
//! walks memory in order, where a hash map scatters every one of them over
//! a table larger than the cache (the difference was most of a W3 log's
//! replay), and listing them in order for a compaction needs no sort.

use rustc_hash::FxHashMap;

/// A row's identity within its table (see `store.rs`).
pub(crate) type RowId = u64;

/// Entries by row. Rows below `base_rows` live in `slots`/`entries`, the
/// ones after them in `tail`, the others in `inserted`.
pub(crate) struct Changed<E> {
    base_rows: u32,
    /// Per image row: its position in `entries` plus one, 0 for none.
    /// Allocated zeroed on the first change to an image row, so a table
    /// never changed below its image costs nothing, and the pages of one
    /// changed only here and there stay untouched (the allocator maps them
    /// zeroed).
    slots: Vec<u32>,
    /// The image rows' entries, with their rows, in no order.
    entries: Vec<(u32, E)>,
    /// Rows `base_rows..base_rows + tail.len()`, `None` where there is no
    /// entry. It grows only by the row just past its end, so no row of
    /// `inserted` is ever below its end.
    tail: Vec<Option<E>>,
    /// Entries in `tail`.
    in_tail: usize,
    /// Rows past the tail's end.
    inserted: FxHashMap<RowId, E>,
}

impl<E> Changed<E> {
    pub(crate) fn new(base_rows: u32) -> Self {
        Changed {
            base_rows,
            slots: Vec::new(),
            entries: Vec::new(),
            tail: Vec::new(),
            in_tail: 0,
            inserted: FxHashMap::default(),
        }
    }

    /// Where `row` is in `tail` (its position, possibly at or past the end),
    /// for a row past the image.
    fn tail_position(&self, row: RowId) -> usize {
        usize::try_from(row - RowId::from(self.base_rows)).unwrap_or(usize::MAX)
    }

    /// The image row `row` is, if it is one.
    fn image_row(&self, row: RowId) -> Option<u32> {
        u32::try_from(row).ok().filter(|&r| r < self.base_rows)
    }

    /// `row`'s slot, when it holds an entry.
    fn slot(&self, row: u32) -> Option<usize> {
        match self.slots.get(row as usize) {
            Some(&s) if s != 0 => Some(s as usize - 1),
            _ => None,
        }
    }

    pub(crate) fn get(&self, row: RowId) -> Option<&E> {
        match self.image_row(row) {
            Some(r) => self.slot(r).map(|s| &self.entries[s].1),
            None => match self.tail.get(self.tail_position(row)) {
                Some(entry) => entry.as_ref(),
                None => self.inserted.get(&row),
            },
        }
    }

    pub(crate) fn contains_key(&self, row: RowId) -> bool {
        self.get(row).is_some()
    }

    /// Sets `row`'s entry, returning the one it replaces.
    pub(crate) fn insert(&mut self, row: RowId, entry: E) -> Option<E> {
        let Some(r) = self.image_row(row) else { return self.insert_past_image(row, entry) };
        if let Some(s) = self.slot(r) {
            return Some(std::mem::replace(&mut self.entries[s].1, entry));
        }
        if self.slots.is_empty() {
            self.slots = vec![0; self.base_rows as usize];
        }
        self.entries.push((r, entry));
        // At most `base_rows` entries (u32), so the position plus one fits.
        self.slots[r as usize] = self.entries.len() as u32;
        None
    }

    fn insert_past_image(&mut self, row: RowId, entry: E) -> Option<E> {
        let at = self.tail_position(row);
        if let Some(held) = self.tail.get_mut(at) {
            let old = held.replace(entry);
            self.in_tail += usize::from(old.is_none());
            return old;
        }
        if at != self.tail.len() {
            return self.inserted.insert(row, entry);
        }
        // The row just past the tail's end joins it, leaving `inserted` if it was there.
        let old = if self.inserted.is_empty() { None } else { self.inserted.remove(&row) };
        self.tail.push(Some(entry));
        self.in_tail += 1;
        old
    }

    /// Removes `row`'s entry, returning it.
    pub(crate) fn remove(&mut self, row: RowId) -> Option<E> {
        let Some(r) = self.image_row(row) else {
            let at = self.tail_position(row);
            return match self.tail.get_mut(at) {
                Some(held) => {
                    let old = held.take();
                    self.in_tail -= usize::from(old.is_some());
                    old
                }
                None => self.inserted.remove(&row),
            };
        };
        let s = self.slot(r)?;
        self.slots[r as usize] = 0;
        let (_, entry) = self.entries.swap_remove(s);
        if let Some(&(moved, _)) = self.entries.get(s) {
            self.slots[moved as usize] = s as u32 + 1;
        }
        Some(entry)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len() + self.in_tail + self.inserted.len()
    }

    /// Every entry with its row, in no order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (RowId, &E)> {
        self.entries.iter().map(|(r, e)| (RowId::from(*r), e)).chain(self.past_image())
    }

    /// The entries of rows past the image, the tail's in row order first.
    fn past_image(&self) -> impl Iterator<Item = (RowId, &E)> {
        let first = RowId::from(self.base_rows);
        let tail =
            self.tail.iter().enumerate().filter_map(move |(i, e)| Some((first + i as u64, e.as_ref()?)));
        tail.chain(self.inserted.iter().map(|(&r, e)| (r, e)))
    }

    /// The entries of rows past the image, in row order.
    pub(crate) fn past_image_in_order(&self) -> Vec<(RowId, &E)> {
        let mut all: Vec<(RowId, &E)> = self.past_image().collect();
        // Every row of `inserted` is past the tail's end: only they need sorting.
        all[self.in_tail..].sort_unstable_by_key(|&(r, _)| r);
        all
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The map against a `BTreeMap` over a deterministic mix of inserts,
    /// replacements and removals: below the image, just past it (where the
    /// tail grows, sometimes over rows first kept in the hash map) and far
    /// past it.
    #[test]
    fn it_behaves_as_a_map() {
        let mut changed = Changed::new(50);
        let mut reference = BTreeMap::new();
        let mut rng = relgraph_testkit::rng::XorShift::new(0x9e37_79b9_7f4a_7c15);
        for step in 0..20_000u64 {
            let x = rng.next_u64();
            // Rows 0..50 are the image's, 50..80 follow it, 1,000.. are far past it.
            let row = if x.is_multiple_of(7) { 1_000 + x % 5 } else { x % 80 };
            if x.is_multiple_of(3) {
                assert_eq!(changed.remove(row), reference.remove(&row), "step {step}: remove {row}");
            } else {
                assert_eq!(
                    changed.insert(row, step),
                    reference.insert(row, step),
                    "step {step}: insert {row}"
                );
            }
            assert_eq!(changed.len(), reference.len());
            for probe in (0..80).chain(1_000..1_005) {
                assert_eq!(changed.get(probe), reference.get(&probe), "step {step}: get {probe}");
            }
            if step.is_multiple_of(97) {
                let past: Vec<(RowId, u64)> =
                    changed.past_image_in_order().into_iter().map(|(r, e)| (r, *e)).collect();
                let expected: Vec<(RowId, u64)> = reference.range(50..).map(|(&r, &e)| (r, e)).collect();
                assert_eq!(past, expected, "step {step}: rows past the image in order");
            }
        }
        let mut all: Vec<(RowId, u64)> = changed.iter().map(|(r, e)| (r, *e)).collect();
        all.sort_unstable();
        assert_eq!(all, reference.into_iter().collect::<Vec<_>>());
    }
}
