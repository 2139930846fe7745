//! An overlay index: each key to the overlay rows that hold it (see
//! `store.rs`). Integer keys that arrive in order are appended to a sorted
//! run instead of hashed: a flush of new rows numbered 1, 2, 3, ..., or of
//! children grouped by their parent, indexes each one with a push, and a
//! lookup is a probe or a binary search. Keys out of order, and keys that
//! are not one integer, go to a hash map. A row removed from the run leaves
//! a tombstone, swept once they make up half of it.
//!
//! Measured on W1 into the snapshot store (110,000 new rows, two indexes on
//! the child table): the hash maps were half of the store's apply.

use std::ops::Range;

use relgraph_core::Row;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::changed::RowId;
use crate::image::{ValueRef, gallop};

/// An index key: one integer, the common case, kept without allocating; or
/// the values themselves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Int(i64),
    Values(Row),
}

impl Key {
    /// The key of non-NULL values (`None` if any is NULL: NULLs match nothing).
    pub(crate) fn of<'a>(mut values: impl ExactSizeIterator<Item = ValueRef<'a>>) -> Option<Key> {
        if values.len() == 1 {
            return match values.next()? {
                ValueRef::Null => None,
                ValueRef::Integer(i) => Some(Key::Int(i)),
                v => Some(Key::Values(Box::new([v.to_value()]))),
            };
        }
        values
            .map(|v| if v == ValueRef::Null { None } else { Some(v.to_value()) })
            .collect::<Option<Row>>()
            .map(Key::Values)
    }
}

/// The overlay rows under one hashed key. Two fit in the space one takes
/// (the inline array shares it with the heap pointer and length).
type Rows = SmallVec<[RowId; 2]>;
const _: () = assert!(std::mem::size_of::<Rows>() == std::mem::size_of::<SmallVec<[RowId; 1]>>());

/// A run entry's row once the row has left the index.
const TOMBSTONE: RowId = RowId::MAX;

/// See the module documentation.
#[derive(Clone, Default)]
pub(crate) struct OverlayIndex {
    /// (key, row) by key, ties in the order they came; removed rows are
    /// [`TOMBSTONE`].
    run: Vec<(i64, RowId)>,
    tombstones: usize,
    map: FxHashMap<Key, Rows>,
}

impl OverlayIndex {
    /// Makes room for `n` more keys in order.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.run.reserve(n);
    }

    /// Indexes `row` under `key`.
    pub(crate) fn insert(&mut self, key: Key, row: RowId) {
        match key {
            Key::Int(k) if self.run.last().is_none_or(|&(last, _)| k >= last) => self.run.push((k, row)),
            key => self.map.entry(key).or_default().push(row),
        }
    }

    /// Takes `row` out from under `key` (nothing if it is not there).
    pub(crate) fn remove(&mut self, key: &Key, row: RowId) {
        if let Key::Int(k) = *key {
            let at = self.run_range(k);
            if let Some(entry) = self.run[at].iter_mut().find(|e| e.1 == row) {
                entry.1 = TOMBSTONE;
                self.tombstones += 1;
                if self.tombstones * 2 > self.run.len() {
                    self.run.retain(|e| e.1 != TOMBSTONE);
                    self.tombstones = 0;
                }
                return;
            }
        }
        if let Some(rows) = self.map.get_mut(key) {
            rows.retain(|r| *r != row);
            if rows.is_empty() {
                self.map.remove(key);
            }
        }
    }

    /// Calls `f` with each row under `key` until it returns false; returns
    /// whether it never did.
    pub(crate) fn each(&self, key: &Key, mut f: impl FnMut(RowId) -> bool) -> bool {
        if let Key::Int(k) = *key {
            for &(_, r) in &self.run[self.run_range(k)] {
                if r != TOMBSTONE && !f(r) {
                    return false;
                }
            }
        }
        self.map.get(key).is_none_or(|rows| rows.iter().all(|&r| f(r)))
    }

    /// The run entries with key `k`. Keys numbered one after another are
    /// found with one probe, others by binary search.
    fn run_range(&self, k: i64) -> Range<usize> {
        let (Some(&(first, _)), Some(&(last, _))) = (self.run.first(), self.run.last()) else { return 0..0 };
        // Outside the run: the common case of a new key checked for
        // uniqueness before it is appended, answered without a search.
        if k > last || k < first {
            return 0..0;
        }
        let guess = k.checked_sub(first).and_then(|d| usize::try_from(d).ok());
        let start = match guess {
            Some(i) if self.run.get(i).is_some_and(|e| e.0 == k) && (i == 0 || self.run[i - 1].0 < k) => i,
            _ => self.run.partition_point(|e| e.0 < k),
        };
        start..start + gallop(start, self.run.len(), |i| self.run[i].0 == k)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use relgraph_core::Value;

    use super::*;

    fn rows(index: &OverlayIndex, key: &Key) -> Vec<RowId> {
        let mut out = Vec::new();
        index.each(key, |r| {
            out.push(r);
            true
        });
        out.sort_unstable();
        out
    }

    /// Mixed inserts and removals, in order and out of it, integer and
    /// other keys, against a map of sets; every key is looked up after
    /// every step's batch.
    #[test]
    fn agrees_with_a_map_of_sets() {
        let mut index = OverlayIndex::default();
        let mut model: HashMap<Key, Vec<RowId>> = HashMap::new();
        let mut rng = relgraph_testkit::rng::XorShift::new(0x9e37_79b9_7f4a_7c15_u64);
        let mut next = |n: u64| rng.below(n);
        let mut row = 0;
        let mut counter = 0i64;
        for step in 0..20_000 {
            let key = match next(10) {
                // Keys in order, dense and with repeats, then out of order.
                0..=4 => {
                    counter += i64::from(next(3) == 0);
                    Key::Int(counter)
                }
                5..=7 => Key::Int(next(200) as i64 - 20),
                8 => Key::Values(Box::new([Value::from(format!("k{}", next(50)))])),
                _ => Key::Values(Box::new([Value::from(1i64), Value::from(next(30) as i64)])),
            };
            if next(3) == 0 {
                // Remove one of the key's rows, if it has any.
                if let Some(rows) = model.get_mut(&key)
                    && !rows.is_empty()
                {
                    let r = rows.remove(next(rows.len() as u64) as usize);
                    index.remove(&key, r);
                }
            } else {
                row += 1;
                index.insert(key.clone(), row);
                model.entry(key).or_default().push(row);
            }
            if step % 500 == 0 {
                for (key, expected) in &model {
                    let mut expected = expected.clone();
                    expected.sort_unstable();
                    assert_eq!(rows(&index, key), expected, "step {step}, key {key:?}");
                }
            }
        }
        assert!(index.run.len() > 1000, "the run took the keys in order: {}", index.run.len());
        assert!(!index.map.is_empty(), "the map took the others");
    }

    #[test]
    fn dense_keys_are_probed_and_gaps_searched() {
        let mut index = OverlayIndex::default();
        for k in 1..=1000 {
            index.insert(Key::Int(k), k as RowId * 10);
        }
        index.insert(Key::Int(1000), 1);
        index.insert(Key::Int(1005), 2);
        assert_eq!(rows(&index, &Key::Int(1)), [10]);
        assert_eq!(rows(&index, &Key::Int(500)), [5000]);
        assert_eq!(rows(&index, &Key::Int(1000)), [1, 10_000]);
        assert_eq!(rows(&index, &Key::Int(1005)), [2]);
        assert!(rows(&index, &Key::Int(1003)).is_empty());
        assert!(rows(&index, &Key::Int(0)).is_empty());
        assert!(rows(&index, &Key::Int(i64::MIN)).is_empty());
        assert!(rows(&index, &Key::Int(i64::MAX)).is_empty());
        // Removing most of the run sweeps its tombstones and keeps the rest.
        for k in 1..=900 {
            index.remove(&Key::Int(k), k as RowId * 10);
        }
        assert!(index.run.len() < 600, "swept: {}", index.run.len());
        assert!(rows(&index, &Key::Int(900)).is_empty());
        assert_eq!(rows(&index, &Key::Int(901)), [9010]);
        assert_eq!(rows(&index, &Key::Int(1000)), [1, 10_000]);
        // A probe that lands inside a run of equal keys starts at its first.
        let mut index = OverlayIndex::default();
        for (k, r) in [(1, 1), (3, 2), (3, 3), (3, 4), (4, 5)] {
            index.insert(Key::Int(k), r);
        }
        assert_eq!(rows(&index, &Key::Int(3)), [2, 3, 4]);
        assert_eq!(rows(&index, &Key::Int(4)), [5]);
        assert!(rows(&index, &Key::Int(2)).is_empty());
    }

    #[test]
    fn each_stops_when_asked() {
        let mut index = OverlayIndex::default();
        for r in 0..5 {
            index.insert(Key::Int(7), r);
        }
        let mut seen = 0;
        assert!(!index.each(&Key::Int(7), |_| {
            seen += 1;
            seen < 2
        }));
        assert_eq!(seen, 2);
    }
}
