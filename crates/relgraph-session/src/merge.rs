//! `merge`: the state of an object from outside the session copied onto the
//! session's object with the same primary key, as SQLAlchemy's
//! `Session.merge()`, cascading along `merge` relationships.

use relgraph_core::{Cascade, ColumnId, Row};
use relgraph_graph::ObjectKey;
use slotmap::SecondaryMap;

use crate::{Session, SessionError, State};

impl Session {
    /// Copies the state of `source`, a transient or detached object, onto
    /// the session's object with the same primary key, and returns that
    /// object, as SQLAlchemy's `Session.merge()`:
    ///
    /// - the object comes from the identity map, or is loaded from the
    ///   store; when there is neither (or `source` has no key yet), a new
    ///   pending object is made, which the next flush inserts;
    /// - `source`'s column values are written onto it (foreign-key columns
    ///   excepted: they follow links), so the next flush updates the columns
    ///   that differ;
    /// - along relationships whose cascade includes `merge` (the default,
    ///   and `"all"`), the members `source` holds in memory are merged in
    ///   turn and become the object's members; a relationship `source` never
    ///   loaded is left as the object has it.
    ///
    /// `source` itself is left as it was, outside the session. An object
    /// already pending or persistent in this session is its own merge.
    ///
    /// # Errors
    /// [`SessionError::Deleted`] when the object with that key is deleted in
    /// this session; the graph's errors for a removed `source`; loading errors.
    /// Values written before an error stay written, as with any edit.
    pub fn merge(&mut self, source: ObjectKey) -> Result<ObjectKey, SessionError> {
        let mut merged: SecondaryMap<ObjectKey, ObjectKey> = SecondaryMap::new();
        self.merge_into(source, &mut merged)
    }

    fn merge_into(
        &mut self,
        source: ObjectKey,
        merged: &mut SecondaryMap<ObjectKey, ObjectKey>,
    ) -> Result<ObjectKey, SessionError> {
        if let Some(&done) = merged.get(source) {
            return Ok(done);
        }
        let entity = self.graph.entity_of(source)?;
        if matches!(self.state(source), State::Pending | State::Persistent) {
            merged.insert(source, source);
            return Ok(source);
        }
        let table = self.schema.entity(entity).table;
        let row: Row = self.graph.row(source)?.into();
        let pk = self.pk_of_row(table, &row);
        let found = if pk.iter().any(|v| v.is_null()) { None } else { self.get(entity, &pk)? };
        let target = match found {
            Some(found) => {
                if self.state(found) == State::Deleted {
                    return Err(SessionError::Deleted { object: self.describe(found) });
                }
                found
            }
            None => {
                let fresh = self.new_object(entity);
                self.add(fresh)?;
                fresh
            }
        };
        // Recorded before the relationships, so that a cycle of merges ends here.
        merged.insert(source, target);
        let managed: Vec<u32> = self.fk_links[entity.index()]
            .iter()
            .flat_map(|&(_, fk)| self.schema.foreign_key(fk).columns.clone())
            .collect();
        for (i, value) in row.iter().enumerate() {
            let i = i as u32;
            if managed.contains(&i) || self.graph.row(target)?[i as usize] == *value {
                continue;
            }
            self.set_value(target, ColumnId { table, index: i }, value.clone())?;
        }
        let source_loaded =
            |s: &Self, slot: usize| s.tracked.get(source).is_none_or(|t| !t.persisted || t.loaded[slot]);
        for rel in self.schema.entity(entity).relationships.clone() {
            let def = self.schema.relationship(rel);
            if !def.cascade.contains(Cascade::MERGE) {
                continue;
            }
            let (link, end, uselist) = (def.link, def.end, def.uselist);
            let slot = self.schema.entity(entity).slots.iter().position(|&s| s == (link, end));
            if slot.is_some_and(|slot| !source_loaded(self, slot)) {
                continue;
            }
            let members: Vec<ObjectKey> = self.graph.members(source, rel)?.collect();
            let mut targets = Vec::with_capacity(members.len());
            for member in members {
                targets.push(self.merge_into(member, merged)?);
            }
            if uselist {
                self.replace(target, rel, &targets)?;
            } else {
                self.set(target, rel, targets.first().copied())?;
            }
        }
        Ok(target)
    }
}
