//! Loading: `get`, whole tables, and relationships (lazily, one object at a
//! time, or for many objects in one statement), merged with pending changes.
//!
//! The merge rule: a link read from the store is added unless memory
//! already knows better, that is unless the link was removed since the last
//! flush, or the object at the other end has that end loaded (its links
//! there are all in memory already).

use relgraph_core::{ColumnId, End, EntityId, LinkId, LinkKind, Row, Value};
use relgraph_graph::ObjectKey;

use crate::{Session, SessionError, State};

impl Session {
    /// The object with primary key `pk` (one value per key column): from the
    /// identity map, or loaded from the store. `None` when there is no such row.
    ///
    /// # Errors
    /// [`SessionError::KeyShape`]; loading errors.
    pub fn get(&mut self, entity: EntityId, pk: &[Value]) -> Result<Option<ObjectKey>, SessionError> {
        let table = self.schema.entity(entity).table;
        let def = self.schema.table(table);
        if pk.len() != def.primary_key.len() {
            return Err(SessionError::KeyShape {
                entity: self.schema.entity(entity).name.clone(),
                expected: def.primary_key.len(),
                found: pk.len(),
            });
        }
        let key: Row = pk.into();
        if let Some(found) = self.identity[table.index()].get(&key) {
            return Ok(Some(found));
        }
        let columns = def.primary_key.clone();
        let rows = self.store.load(&self.schema, table, &columns, &[key])?;
        match rows.into_iter().next() {
            Some(row) => Ok(Some(self.materialize(entity, row)?)),
            None => Ok(None),
        }
    }

    /// Loads every row of `entity`'s table and returns the objects, in key order.
    ///
    /// # Errors
    /// Loading errors.
    pub fn load_all(&mut self, entity: EntityId) -> Result<Vec<ObjectKey>, SessionError> {
        let table = self.schema.entity(entity).table;
        let rows = self.store.load_all(&self.schema, table)?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            keys.push(self.materialize(entity, row)?);
        }
        Ok(keys)
    }

    /// Loads `rel` for all of `objects` with as few statements as the store
    /// allows (SQLAlchemy's `selectinload`). Objects whose `rel` is loaded
    /// already are skipped.
    ///
    /// # Errors
    /// Loading errors.
    pub fn load_relationship(
        &mut self,
        objects: &[ObjectKey],
        rel: relgraph_core::RelationshipId,
    ) -> Result<(), SessionError> {
        let def = self.schema.relationship(rel);
        let (link, end) = (def.link, def.end);
        let todo: Vec<ObjectKey> =
            objects.iter().copied().filter(|&k| self.needs_load(k, link, end)).collect();
        self.load_slots(&todo, link, end)
    }

    /// The object for a row read from the store: the one the identity map
    /// has (its in-memory values win), or a new persistent one.
    pub(crate) fn materialize(&mut self, entity: EntityId, row: Row) -> Result<ObjectKey, SessionError> {
        let table = self.schema.entity(entity).table;
        let def = self.schema.table(table);
        if row.len() != def.columns.len() {
            return Err(SessionError::BadRow {
                table: def.name.clone(),
                reason: format!("{} values for {} columns", row.len(), def.columns.len()),
            });
        }
        let pk = self.pk_of_row(table, &row);
        if let Some(found) = self.identity[table.index()].get(&pk) {
            return Ok(found);
        }
        let key = self.graph.insert(entity);
        for (i, value) in row.iter().enumerate() {
            if let Err(e) =
                self.graph.set_derived_value(key, ColumnId { table, index: i as u32 }, value.clone())
            {
                let _ = self.graph.remove(key);
                self.graph.take_journal();
                return Err(SessionError::BadRow {
                    table: self.schema.table(table).name.clone(),
                    reason: e.to_string(),
                });
            }
        }
        self.track(key, State::Persistent, true);
        self.identity[table.index()].insert(&pk, key);
        Ok(key)
    }

    fn slot_index(&self, key: ObjectKey, link: LinkId, end: End) -> Option<usize> {
        let entity = self.graph.entity_of(key).ok()?;
        self.schema.entity(entity).slots.iter().position(|&s| s == (link, end))
    }

    fn needs_load(&self, key: ObjectKey, link: LinkId, end: End) -> bool {
        match (self.tracked.get(key), self.slot_index(key, link, end)) {
            (Some(t), Some(slot)) => t.persisted && !t.loaded[slot],
            _ => false,
        }
    }

    pub(crate) fn mark_loaded(&mut self, key: ObjectKey, link: LinkId, end: End) {
        if let Some(slot) = self.slot_index(key, link, end)
            && let Some(t) = self.tracked.get_mut(key)
        {
            t.loaded[slot] = true;
        }
    }

    /// Loads the links at `end` of `link` for `key` if the store may hold some
    /// that memory does not.
    pub(crate) fn ensure_loaded(
        &mut self,
        key: ObjectKey,
        link: LinkId,
        end: End,
    ) -> Result<(), SessionError> {
        if !self.needs_load(key, link, end) {
            return Ok(());
        }
        // A flush's UPDATEs sent ahead hold the store: it comes back, rolled
        // back, and the flush sends them again if it streams.
        self.abandon_stream();
        self.load_slots(&[key], link, end)
    }

    /// The stored values of `columns` of each of `keys` that has them all
    /// (none NULL), and the way back from values to object: what a batched
    /// load asks the store for, and how its answers find their objects.
    pub(crate) fn keyed_values(
        &self,
        keys: &[ObjectKey],
        columns: &[u32],
    ) -> (Vec<Row>, rustc_hash::FxHashMap<Row, ObjectKey>) {
        let keyed: Vec<(ObjectKey, Row)> =
            keys.iter().filter_map(|&k| self.committed_values(k, columns).map(|v| (k, v))).collect();
        let values = keyed.iter().map(|(_, v)| v.clone()).collect();
        (values, keyed.into_iter().map(|(k, v)| (v, k)).collect())
    }

    /// The values of `columns` in an object's row as the store has it.
    pub(crate) fn committed_values(&self, key: ObjectKey, columns: &[u32]) -> Option<Row> {
        let row = self.stored(key)?;
        let values: Row = columns.iter().map(|&c| row[c as usize].clone()).collect();
        (!values.iter().any(Value::is_null)).then_some(values)
    }

    /// Adds a link read from the store unless memory knows better (see the module doc).
    fn merge_link(
        &mut self,
        link: LinkId,
        source: ObjectKey,
        target: ObjectKey,
        far_end: End,
        far: ObjectKey,
    ) -> Result<(), SessionError> {
        if self.net.get(&(link, source, target)).is_some_and(|&n| n < 0) {
            return Ok(());
        }
        if !self.needs_load(far, link, far_end) && self.tracked.get(far).is_some_and(|t| t.persisted) {
            // The far object's links at this end are all in memory already.
            let linked = self.graph.link_members(source, link, End::Source)?.any(|t| t == target);
            if !linked {
                return Ok(());
            }
        }
        self.graph.connect_link(link, source, target)?;
        Ok(())
    }

    fn load_slots(&mut self, keys: &[ObjectKey], link: LinkId, end: End) -> Result<(), SessionError> {
        if keys.is_empty() {
            return Ok(());
        }
        let def = self.schema.link(link).clone();
        // Links read from the store are not changes: keep them out of the journal.
        self.graph.set_journaling(false);
        let result = self.load_slots_inner(keys, link, end, &def);
        self.graph.take_journal();
        self.graph.set_journaling(true);
        result?;
        for &key in keys {
            self.mark_loaded(key, link, end);
        }
        Ok(())
    }

    fn load_slots_inner(
        &mut self,
        keys: &[ObjectKey],
        link: LinkId,
        end: End,
        def: &relgraph_core::LinkDef,
    ) -> Result<(), SessionError> {
        let far_entity = def.end(end.opposite()).entity;
        let far_table = self.schema.entity(far_entity).table;
        match (def.kind, end) {
            (LinkKind::ForeignKey(fk), End::Source) => {
                // Many-to-one: the foreign key is in the row; fetch the targets not in memory.
                let fk = self.schema.foreign_key(fk).clone();
                // A key referencing the primary key finds targets already in
                // memory through the identity map; one referencing another
                // unique column is looked up in the store.
                let by_pk = fk.ref_columns == self.schema.table(far_table).primary_key;
                let mut wanted = Vec::new();
                for &key in keys {
                    if let Some(values) = self.committed_values(key, &fk.columns)
                        && (!by_pk || !self.identity[far_table.index()].contains(&values))
                    {
                        wanted.push(values);
                    }
                }
                let mut by_ref: rustc_hash::FxHashMap<Row, ObjectKey> = rustc_hash::FxHashMap::default();
                if !wanted.is_empty() {
                    for row in self.store.load(&self.schema, far_table, &fk.ref_columns, &wanted)? {
                        let refs: Row = fk.ref_columns.iter().map(|&c| row[c as usize].clone()).collect();
                        let target = self.materialize(far_entity, row)?;
                        by_ref.insert(refs, target);
                    }
                }
                for &key in keys {
                    if let Some(values) = self.committed_values(key, &fk.columns) {
                        let target = if by_pk {
                            self.identity[far_table.index()].get(&values)
                        } else {
                            by_ref.get(&values).copied()
                        };
                        if let Some(target) = target
                            && self.graph.link_members(key, link, End::Source)?.next().is_none()
                        {
                            self.merge_link(link, key, target, End::Target, target)?;
                        }
                    }
                }
            }
            (LinkKind::ForeignKey(fk), End::Target) => {
                // One-to-many: the children whose foreign key holds these objects' keys.
                let fk = self.schema.foreign_key(fk).clone();
                let (values, by_value) = self.keyed_values(keys, &fk.ref_columns);
                let rows = self.store.load(&self.schema, far_table, &fk.columns, &values)?;
                for row in rows {
                    let fk_values: Row = fk.columns.iter().map(|&c| row[c as usize].clone()).collect();
                    let child = self.materialize(far_entity, row)?;
                    if let Some(&parent) = by_value.get(&fk_values)
                        && self.needs_load(child, link, End::Source)
                    {
                        // The child's one link here is now known from its row.
                        self.merge_link(link, child, parent, End::Source, child)?;
                        self.mark_loaded(child, link, End::Source);
                    }
                }
            }
            (LinkKind::Secondary { foreign_keys, .. }, _) => {
                let (near_id, far_id) = (foreign_keys[end.index()], foreign_keys[end.opposite().index()]);
                let near_fk = self.schema.foreign_key(near_id).clone();
                let (values, by_value) = self.keyed_values(keys, &near_fk.ref_columns);
                let pairs = self.store.load_through(&self.schema, near_id, far_id, &values)?;
                for (near_value, far_row) in pairs {
                    let Some(&near_key) = by_value.get(&near_value) else { continue };
                    // The identity map returns the object already in memory, its values intact.
                    let far_key = self.materialize(far_entity, far_row)?;
                    let (source, target) =
                        if end == End::Source { (near_key, far_key) } else { (far_key, near_key) };
                    self.merge_link(link, source, target, end.opposite(), far_key)?;
                }
            }
        }
        Ok(())
    }
}
