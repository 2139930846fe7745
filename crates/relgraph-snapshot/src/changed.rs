//! The overlay's map from a row to its entry: an array indexed by row for
//! the rows of the base image, a hash map for the rows inserted since.
//!
//! Opening a file replays its log, whose changes come sorted by row: with
//! the array, recording them walks memory in order, where a hash map
//! scatters every one of them over a table larger than the cache (the
//! difference is most of a W3 log's replay).

use rustc_hash::FxHashMap;

/// A row's identity within its table (see `store.rs`).
pub(crate) type RowId = u64;

/// Entries by row. Rows below `base_rows` live in `slots`/`entries`, the
/// others in `inserted`.
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
    inserted: FxHashMap<RowId, E>,
}

impl<E> Changed<E> {
    pub(crate) fn new(base_rows: u32) -> Self {
        Changed { base_rows, slots: Vec::new(), entries: Vec::new(), inserted: FxHashMap::default() }
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
            None => self.inserted.get(&row),
        }
    }

    pub(crate) fn contains_key(&self, row: RowId) -> bool {
        self.get(row).is_some()
    }

    /// Sets `row`'s entry, returning the one it replaces.
    pub(crate) fn insert(&mut self, row: RowId, entry: E) -> Option<E> {
        let Some(r) = self.image_row(row) else { return self.inserted.insert(row, entry) };
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

    /// Removes `row`'s entry, returning it.
    pub(crate) fn remove(&mut self, row: RowId) -> Option<E> {
        let Some(r) = self.image_row(row) else { return self.inserted.remove(&row) };
        let s = self.slot(r)?;
        self.slots[r as usize] = 0;
        let (_, entry) = self.entries.swap_remove(s);
        if let Some(&(moved, _)) = self.entries.get(s) {
            self.slots[moved as usize] = s as u32 + 1;
        }
        Some(entry)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len() + self.inserted.len()
    }

    /// Every entry with its row, in no order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (RowId, &E)> {
        self.entries
            .iter()
            .map(|(r, e)| (RowId::from(*r), e))
            .chain(self.inserted.iter().map(|(&r, e)| (r, e)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The map against a `BTreeMap` over a deterministic mix of inserts,
    /// replacements and removals, below and past the image.
    #[test]
    fn it_behaves_as_a_map() {
        let mut changed = Changed::new(50);
        let mut reference = BTreeMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let row = x % 80;
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
            for probe in 0..80 {
                assert_eq!(changed.get(probe), reference.get(&probe), "step {step}: get {probe}");
            }
        }
        let mut all: Vec<(RowId, u64)> = changed.iter().map(|(r, e)| (r, *e)).collect();
        all.sort_unstable();
        assert_eq!(all, reference.into_iter().collect::<Vec<_>>());
    }
}
