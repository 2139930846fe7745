//! The identity map of one table: primary key to object, one object per row.
//!
//! A single integer key, by far the commonest, is stored as a plain `i64`, so
//! that recording a flushed or loaded row allocates nothing; other keys are
//! boxed rows. Lookups take a borrowed `&[Value]` either way.

use relgraph_core::{Row, Value};
use relgraph_graph::ObjectKey;
use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry;

/// Primary key to object, for one table.
#[derive(Debug, Default)]
pub(crate) struct IdentityMap {
    ints: FxHashMap<i64, ObjectKey>,
    rows: FxHashMap<Row, ObjectKey>,
}

impl IdentityMap {
    pub(crate) fn get(&self, key: &[Value]) -> Option<ObjectKey> {
        match key {
            [Value::Integer(i)] => self.ints.get(i).copied(),
            _ => self.rows.get(key).copied(),
        }
    }

    pub(crate) fn contains(&self, key: &[Value]) -> bool {
        self.get(key).is_some()
    }

    /// Maps `key` to `object`; returns the object it mapped to before.
    pub(crate) fn insert(&mut self, key: &[Value], object: ObjectKey) -> Option<ObjectKey> {
        match key {
            [Value::Integer(i)] => self.ints.insert(*i, object),
            _ => self.rows.insert(key.into(), object),
        }
    }

    /// Maps `key` to `object` unless the key is taken; returns the object
    /// that holds it. One hash lookup either way.
    pub(crate) fn claim(&mut self, key: &[Value], object: ObjectKey) -> Option<ObjectKey> {
        match key {
            [Value::Integer(i)] => match self.ints.entry(*i) {
                Entry::Occupied(e) => Some(*e.get()),
                Entry::Vacant(e) => {
                    e.insert(object);
                    None
                }
            },
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
        self.ints.is_empty() && self.rows.is_empty()
    }

    /// Makes room for `n` more single-integer keys.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.ints.reserve(n);
    }

    /// Removes `key` when it maps to `object`, in one hash lookup; returns
    /// whether it did.
    pub(crate) fn remove_if(&mut self, key: &[Value], object: ObjectKey) -> bool {
        match key {
            [Value::Integer(i)] => match self.ints.entry(*i) {
                Entry::Occupied(e) if *e.get() == object => {
                    e.remove();
                    true
                }
                _ => false,
            },
            _ => self.rows.get(key) == Some(&object) && self.rows.remove(key).is_some(),
        }
    }

    pub(crate) fn remove(&mut self, key: &[Value]) {
        match key {
            [Value::Integer(i)] => {
                self.ints.remove(i);
            }
            _ => {
                self.rows.remove(key);
            }
        }
    }
}
