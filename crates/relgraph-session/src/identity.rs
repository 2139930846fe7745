//! The identity map of one table: primary key to object, one object per row.
//!
//! A single integer key, by far the commonest, is stored as a plain `i64`, so
//! that recording a flushed or loaded row allocates nothing; other keys are
//! boxed rows. Lookups take a borrowed `&[Value]` either way.
//!
//! Integer keys usually arrive in order: a flush of new rows numbered 1, 2,
//! 3, ..., a table loaded by key. A key above every key the map has held is
//! appended to a sorted run instead of hashed, and found again by a probe
//! (keys numbered one after another) or a binary search. Hashing 100,000
//! keys scatters them over a table larger than the cache, a miss each; the
//! run is written and read in order. Other integer keys go to a hash map;
//! a key lives in one of the two. A removed run entry stays as a tombstone
//! (taken again by its key, swept once they make up half the run).

use relgraph_core::{Row, Value};
use relgraph_graph::ObjectKey;
use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry;

const _: () = assert!(std::mem::size_of::<Option<ObjectKey>>() == std::mem::size_of::<ObjectKey>());

/// Primary key to object, for one table.
#[derive(Debug, Default)]
pub(crate) struct IdentityMap {
    /// (key, object) by key, `None` where the key was removed.
    run: Vec<(i64, Option<ObjectKey>)>,
    /// The largest key ever appended to `run`: it only grows, so a key
    /// above it is in neither part.
    high: Option<i64>,
    /// Entries of `run` that are not tombstones.
    live: usize,
    ints: FxHashMap<i64, ObjectKey>,
    rows: FxHashMap<Row, ObjectKey>,
}

impl IdentityMap {
    pub(crate) fn get(&self, key: &[Value]) -> Option<ObjectKey> {
        match key {
            [Value::Integer(i)] => match self.in_run(*i) {
                Some(at) => self.run[at].1,
                None => self.ints.get(i).copied(),
            },
            _ => self.rows.get(key).copied(),
        }
    }

    pub(crate) fn contains(&self, key: &[Value]) -> bool {
        self.get(key).is_some()
    }

    /// Maps `key` to `object`; returns the object it mapped to before.
    pub(crate) fn insert(&mut self, key: &[Value], object: ObjectKey) -> Option<ObjectKey> {
        match key {
            [Value::Integer(i)] => self.put_int(*i, object, true),
            _ => self.rows.insert(key.into(), object),
        }
    }

    /// Maps `key` to `object` unless the key is taken; returns the object
    /// that holds it. One lookup either way.
    pub(crate) fn claim(&mut self, key: &[Value], object: ObjectKey) -> Option<ObjectKey> {
        match key {
            [Value::Integer(i)] => self.put_int(*i, object, false),
            _ => {
                if let Some(&other) = self.rows.get(key) {
                    return Some(other);
                }
                self.rows.insert(key.into(), object);
                None
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0 && self.ints.is_empty() && self.rows.is_empty()
    }

    /// Makes room for `n` more single-integer keys in order.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.run.reserve(n);
    }

    /// Removes `key` when it maps to `object`, in one lookup; returns
    /// whether it did.
    pub(crate) fn remove_if(&mut self, key: &[Value], object: ObjectKey) -> bool {
        match key {
            [Value::Integer(i)] => match self.in_run(*i) {
                Some(at) if self.run[at].1 == Some(object) => {
                    self.bury(at);
                    true
                }
                Some(_) => false,
                None => match self.ints.entry(*i) {
                    Entry::Occupied(e) if *e.get() == object => {
                        e.remove();
                        true
                    }
                    _ => false,
                },
            },
            _ => self.rows.get(key) == Some(&object) && self.rows.remove(key).is_some(),
        }
    }

    pub(crate) fn remove(&mut self, key: &[Value]) {
        match key {
            [Value::Integer(i)] => match self.in_run(*i) {
                Some(at) if self.run[at].1.is_some() => self.bury(at),
                Some(_) => {}
                None => {
                    self.ints.remove(i);
                }
            },
            _ => {
                self.rows.remove(key);
            }
        }
    }

    /// Maps integer key `k` to `object`, replacing a holder only if
    /// `replace`; returns the holder it found.
    fn put_int(&mut self, k: i64, object: ObjectKey, replace: bool) -> Option<ObjectKey> {
        if self.high.is_none_or(|high| k > high) {
            self.run.push((k, Some(object)));
            self.high = Some(k);
            self.live += 1;
            return None;
        }
        match self.in_run(k) {
            Some(at) => {
                let held = self.run[at].1;
                if held.is_none() {
                    self.live += 1;
                }
                if held.is_none() || replace {
                    self.run[at].1 = Some(object);
                }
                held
            }
            None if replace => self.ints.insert(k, object),
            None => match self.ints.entry(k) {
                Entry::Occupied(e) => Some(*e.get()),
                Entry::Vacant(e) => {
                    e.insert(object);
                    None
                }
            },
        }
    }

    /// The position of key `k` in the run, tombstone or not. Keys numbered
    /// one after another are found with one probe, others by binary search.
    fn in_run(&self, k: i64) -> Option<usize> {
        let &(first, _) = self.run.first()?;
        if self.high.is_some_and(|high| k > high) || k < first {
            return None;
        }
        let guess = usize::try_from(k.wrapping_sub(first)).ok();
        if let Some(at) = guess.filter(|&at| self.run.get(at).is_some_and(|e| e.0 == k)) {
            return Some(at);
        }
        self.run.binary_search_by_key(&k, |e| e.0).ok()
    }

    /// Turns run entry `at` into a tombstone; sweeps them once they are half the run.
    fn bury(&mut self, at: usize) {
        self.run[at].1 = None;
        self.live -= 1;
        if self.live * 2 < self.run.len() {
            self.run.retain(|e| e.1.is_some());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use slotmap::SlotMap;

    use super::*;

    /// Random inserts, claims and removals, keys in order and not, single
    /// integers and rows, against a hash map; every key is looked up after
    /// each batch of steps.
    #[test]
    fn agrees_with_a_hash_map() {
        let mut objects: SlotMap<ObjectKey, ()> = SlotMap::with_key();
        let keys: Vec<ObjectKey> = (0..64).map(|_| objects.insert(())).collect();
        let mut map = IdentityMap::default();
        let mut model: HashMap<Vec<Value>, ObjectKey> = HashMap::new();
        let mut rng = relgraph_testkit::rng::XorShift::new(0x2545_f491_4f6c_dd1d_u64);
        let mut next = |n: u64| rng.below(n);
        let mut counter = 0i64;
        for step in 0..30_000 {
            let key: Vec<Value> = match next(10) {
                0..=4 => {
                    counter += 1 + i64::from(next(4) == 0);
                    vec![Value::Integer(counter)]
                }
                5..=7 => vec![Value::Integer(next(400) as i64 - 50)],
                8 => vec![Value::Integer(counter - next(20) as i64)],
                _ => vec![Value::from(next(40) as i64), Value::from("x")],
            };
            let object = keys[next(keys.len() as u64) as usize];
            match next(5) {
                0 => assert_eq!(map.insert(&key, object), model.insert(key, object), "insert, step {step}"),
                1 => {
                    let held = model.get(&key).copied();
                    model.entry(key.clone()).or_insert(object);
                    assert_eq!(map.claim(&key, object), held, "claim, step {step}");
                }
                2 => {
                    let held = model.get(&key).copied();
                    let removed = held == Some(object);
                    if removed {
                        model.remove(&key);
                    }
                    assert_eq!(map.remove_if(&key, object), removed, "remove_if, step {step}");
                }
                3 => {
                    model.remove(&key);
                    map.remove(&key);
                }
                _ => assert_eq!(map.get(&key), model.get(&key).copied(), "get, step {step}"),
            }
            if step % 1000 == 0 {
                for (key, &object) in &model {
                    assert_eq!(map.get(key), Some(object), "step {step}, key {key:?}");
                }
                assert_eq!(map.is_empty(), model.is_empty());
            }
        }
        assert!(map.run.len() > 1000 && !map.ints.is_empty(), "both parts were used");
        for key in model.keys().cloned().collect::<Vec<_>>() {
            map.remove(&key);
        }
        assert!(map.is_empty(), "everything removed");
    }

    #[test]
    fn a_removed_run_key_is_taken_again_in_place() {
        let mut objects: SlotMap<ObjectKey, ()> = SlotMap::with_key();
        let (a, b) = (objects.insert(()), objects.insert(()));
        let mut map = IdentityMap::default();
        for k in 1..=10 {
            map.insert(&[Value::Integer(k)], a);
        }
        assert!(map.remove_if(&[Value::Integer(5)], a));
        assert!(!map.remove_if(&[Value::Integer(5)], a), "already gone");
        assert_eq!(map.get(&[Value::Integer(5)]), None);
        assert_eq!(map.claim(&[Value::Integer(5)], b), None);
        assert_eq!(map.get(&[Value::Integer(5)]), Some(b));
        assert_eq!(map.claim(&[Value::Integer(5)], a), Some(b), "a claim does not replace");
        assert_eq!(map.insert(&[Value::Integer(5)], a), Some(b), "an insert does");
        assert!(map.ints.is_empty(), "all in the run: {:?}", map.ints);
        // Below the run, and between its keys: the hash map.
        map.insert(&[Value::Integer(0)], b);
        assert_eq!(map.get(&[Value::Integer(0)]), Some(b));
        assert_eq!(map.ints.len(), 1);
    }
}
