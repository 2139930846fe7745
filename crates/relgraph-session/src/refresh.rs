//! `refresh`: the store's row wins over what memory holds, as SQLAlchemy's
//! `Session.refresh()`, cascading along `refresh-expire` relationships.

use relgraph_core::{Cascade, ColumnId, End, LinkId, LinkKind, Row, TableId};
use relgraph_graph::ObjectKey;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::{Session, SessionError, State};

impl Session {
    /// Reads `key`'s row from the store again, as SQLAlchemy's
    /// `Session.refresh()`: column values written since the last flush are
    /// discarded and the stored ones take their place. Objects reached from
    /// `key` through relationships whose cascade includes `refresh-expire`
    /// (as `"all"` does) are refreshed too, among the links in memory; rows
    /// of one table are read in one statement.
    ///
    /// Links follow the store where no change of this session touches them:
    /// a many-to-one link is set from the foreign key just read (so another
    /// writer's move of the row shows, on both sides); a loaded collection
    /// is read again now, one statement per relationship, and holds what the
    /// store holds: a child another writer moved away leaves it (and follows
    /// its foreign key to its new parent), one moved here joins it, and an
    /// association row deleted elsewhere unlinks its pair. A collection not
    /// loaded yet stays so. A link changed since the last flush keeps the
    /// change, which the next flush writes.
    ///
    /// # Errors
    /// [`SessionError::NotInSession`] for a transient or detached object,
    /// [`SessionError::NotPersistent`] for a pending one, [`SessionError::Deleted`]
    /// for one deleted in this session, [`SessionError::Gone`] when its row
    /// is no longer in the store, loading errors. Cascaded objects that are
    /// not persistent are skipped.
    pub fn refresh(&mut self, key: ObjectKey) -> Result<(), SessionError> {
        match self.tracked.get(key).map(|t| t.state) {
            Some(State::Persistent) => {}
            Some(State::Pending) => return Err(SessionError::NotPersistent { object: self.describe(key) }),
            Some(State::Deleted) => return Err(SessionError::Deleted { object: self.describe(key) }),
            _ => return Err(SessionError::NotInSession { object: self.describe(key) }),
        }
        self.absorb_journal();
        let reached = self
            .cascade_reach(key, Cascade::REFRESH_EXPIRE, |s, member| s.state(member) == State::Persistent)?;
        // Rows by table, so that each table is read in one statement.
        let mut by_table: FxHashMap<TableId, Vec<(ObjectKey, Row)>> = FxHashMap::default();
        for &k in &reached {
            let table = self.schema.entity(self.graph.entity_of(k)?).table;
            let Some(row) = self.stored(k) else { continue };
            let pk = self.pk_of_row(table, row);
            by_table.entry(table).or_default().push((k, pk));
        }
        let mut tables: Vec<TableId> = by_table.keys().copied().collect();
        tables.sort_unstable();
        let mut fresh: Vec<(ObjectKey, TableId, Row)> = Vec::with_capacity(reached.len());
        for table in tables {
            let objects = &by_table[&table];
            let def = self.schema.table(table);
            let keys: Vec<Row> = objects.iter().map(|(_, pk)| pk.clone()).collect();
            let rows = self.store.load(&self.schema, table, &def.primary_key.clone(), &keys)?;
            let mut by_pk: FxHashMap<Row, Row> = FxHashMap::default();
            for row in rows {
                if row.len() != def.columns.len() {
                    return Err(SessionError::BadRow {
                        table: def.name.clone(),
                        reason: format!("{} values for {} columns", row.len(), def.columns.len()),
                    });
                }
                by_pk.insert(self.pk_of_row(table, &row), row);
            }
            for (k, pk) in objects {
                match by_pk.remove(pk) {
                    Some(row) => fresh.push((*k, table, row)),
                    None if *k == key => return Err(SessionError::Gone { object: self.describe(*k) }),
                    // A cascaded object whose row went keeps what it has.
                    None => {}
                }
            }
        }
        // Values are checked against the schema before any is written, so a
        // row that does not fit changes nothing.
        for (_, table, row) in &fresh {
            for (i, value) in row.iter().enumerate() {
                let column = self.schema.column(ColumnId { table: *table, index: i as u32 });
                if value.column_type().is_some_and(|t| t != column.ty) {
                    return Err(SessionError::BadRow {
                        table: self.schema.table(*table).name.clone(),
                        reason: format!("column {} holds {value:?}, not {:?}", column.name, column.ty),
                    });
                }
            }
        }
        let changed = self.changed_links();
        let mut collections: Vec<(LinkId, End, ObjectKey)> = Vec::new();
        for (k, table, row) in fresh {
            for (i, value) in row.iter().enumerate() {
                self.graph.set_derived_value(k, ColumnId { table, index: i as u32 }, value.clone())?;
            }
            if let Some(t) = self.tracked.get_mut(k) {
                t.snapshot = None;
                t.dirty = false;
            }
            self.relink_from_store(k, &changed, &mut collections)?;
        }
        // A stable sort: each group keeps the objects in the order reached.
        collections.sort_by_key(|&(link, end, _)| (link, end.index()));
        for group in collections.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let keys: Vec<ObjectKey> = group.iter().map(|&(_, _, k)| k).collect();
            self.reload_collection(&keys, group[0].0, group[0].1, &changed)?;
        }
        Ok(())
    }

    /// Reads the collections at `end` of `link` of `keys` again and makes
    /// memory hold what the store holds, except links `changed` names. All
    /// reading comes before any link changes, so a failed read changes none.
    fn reload_collection(
        &mut self,
        keys: &[ObjectKey],
        link: LinkId,
        end: End,
        changed: &FxHashSet<(ObjectKey, LinkId)>,
    ) -> Result<(), SessionError> {
        let def = self.schema.link(link).clone();
        let far_entity = def.end(end.opposite()).entity;
        let far_table = self.schema.entity(far_entity).table;
        // A one-to-many's children hold the foreign key: their rows say where they belong.
        let fk_columns = match def.kind {
            LinkKind::ForeignKey(fk) => Some(self.schema.foreign_key(fk).columns.clone()),
            LinkKind::Secondary { .. } => None,
        };
        // (near, far) pairs the store holds, with the foreign-key values a
        // child row holds (one-to-many only).
        let mut held: Vec<(ObjectKey, ObjectKey, Option<Row>)> = Vec::new();
        match def.kind {
            LinkKind::ForeignKey(fk) => {
                let fk = self.schema.foreign_key(fk).clone();
                let (values, by_value) = self.keyed_values(keys, &fk.ref_columns);
                for row in self.store.load(&self.schema, far_table, &fk.columns, &values)? {
                    let fk_values: Row = fk.columns.iter().map(|&c| row[c as usize].clone()).collect();
                    let Some(&parent) = by_value.get(&fk_values) else { continue };
                    held.push((parent, self.materialize(far_entity, row)?, Some(fk_values)));
                }
            }
            LinkKind::Secondary { foreign_keys, .. } => {
                let (near_id, far_id) = (foreign_keys[end.index()], foreign_keys[end.opposite().index()]);
                let near_fk = self.schema.foreign_key(near_id).clone();
                let (values, by_value) = self.keyed_values(keys, &near_fk.ref_columns);
                for (near_value, far_row) in
                    self.store.load_through(&self.schema, near_id, far_id, &values)?
                {
                    let Some(&near_key) = by_value.get(&near_value) else { continue };
                    held.push((near_key, self.materialize(far_entity, far_row)?, None));
                }
            }
        }
        let held_pairs: FxHashSet<(ObjectKey, ObjectKey)> = held.iter().map(|&(k, m, _)| (k, m)).collect();
        // Links memory holds and the store does not, none of them made by this session.
        let mut lost: Vec<(ObjectKey, ObjectKey)> = Vec::new();
        for &k in keys {
            for m in self.graph.link_members(k, link, end)? {
                if !held_pairs.contains(&(k, m)) && !changed.contains(&(m, link)) {
                    lost.push((k, m));
                }
            }
        }
        // A child that left one of these parents in the store: its row, read
        // again, says where it went.
        let mut moved: Vec<Row> = Vec::new();
        if fk_columns.is_some() && !lost.is_empty() {
            let pk = self.schema.table(far_table).primary_key.clone();
            let wanted: Vec<Row> = lost
                .iter()
                .filter_map(|&(_, c)| self.stored(c).map(|row| self.pk_of_row(far_table, row)))
                .collect();
            moved = self.store.load(&self.schema, far_table, &pk, &wanted)?;
        }

        // Links read from the store are not changes: keep them out of the journal.
        self.graph.set_journaling(false);
        let pair = |near, far| if end == End::Source { (near, far) } else { (far, near) };
        let result = (|| {
            for &(k, m) in &lost {
                let (source, target) = pair(k, m);
                self.graph.disconnect_link(link, source, target)?;
            }
            // Links the store holds, unless this session changed the far object's link.
            for (k, m, fk_values) in held {
                if changed.contains(&(m, link)) {
                    continue;
                }
                if let (Some(columns), Some(values)) = (&fk_columns, fk_values) {
                    // The child's row is as the store has it: its parent is `k`.
                    self.adopt_stored(m, far_table, columns, &values)?;
                    self.mark_loaded(m, link, End::Source);
                }
                let (source, target) = pair(k, m);
                self.graph.connect_link(link, source, target)?;
            }
            Ok::<_, SessionError>(())
        })();
        self.graph.take_journal();
        self.graph.set_journaling(true);
        result?;
        for &key in keys {
            self.mark_loaded(key, link, end);
        }
        if let Some(columns) = &fk_columns {
            for row in moved {
                let Some(child) = self.identity[far_table.index()].get(&self.pk_of_row(far_table, &row))
                else {
                    continue;
                };
                let values: Row = columns.iter().map(|&c| row[c as usize].clone()).collect();
                self.adopt_stored(child, far_table, columns, &values)?;
                self.follow_foreign_key(child, link)?;
            }
        }
        Ok(())
    }

    /// Sets columns of `key`'s stored row (and its graph row) to values the
    /// store holds; its other unflushed values stay unflushed.
    fn adopt_stored(
        &mut self,
        key: ObjectKey,
        table: TableId,
        columns: &[u32],
        values: &[relgraph_core::Value],
    ) -> Result<(), SessionError> {
        for (&c, value) in columns.iter().zip(values) {
            if let Some(snapshot) = self.tracked.get_mut(key).and_then(|t| t.snapshot.as_mut()) {
                snapshot[c as usize] = value.clone();
            }
            self.graph.set_derived_value(key, ColumnId { table, index: c }, value.clone())?;
        }
        Ok(())
    }

    /// (object, link) pairs with a link change since the last flush, at either end.
    fn changed_links(&self) -> FxHashSet<(ObjectKey, LinkId)> {
        let mut changed = FxHashSet::default();
        for &(link, source, target) in self.net.keys() {
            changed.insert((source, link));
            changed.insert((target, link));
        }
        changed
    }

    /// After `key`'s row was read again: its many-to-one links follow the
    /// foreign keys in the row, and its loaded collections go into
    /// `collections` to be read again, except where this session changed
    /// the link since the last flush.
    fn relink_from_store(
        &mut self,
        key: ObjectKey,
        changed: &FxHashSet<(ObjectKey, LinkId)>,
        collections: &mut Vec<(LinkId, End, ObjectKey)>,
    ) -> Result<(), SessionError> {
        let entity = self.graph.entity_of(key)?;
        let slots = self.schema.entity(entity).slots.clone();
        for (slot, (link, end)) in slots.into_iter().enumerate() {
            if changed.contains(&(key, link)) {
                continue;
            }
            match (self.schema.link(link).kind, end) {
                (LinkKind::ForeignKey(_), End::Source) => self.follow_foreign_key(key, link)?,
                _ => {
                    if self.tracked.get(key).is_some_and(|t| t.loaded[slot]) {
                        collections.push((link, end, key));
                    }
                }
            }
        }
        Ok(())
    }

    /// Links `key` by `link` (its many-to-one end) to the row its foreign key
    /// names, loading that row if needed; unlinks it when the key is NULL.
    fn follow_foreign_key(&mut self, key: ObjectKey, link: LinkId) -> Result<(), SessionError> {
        let LinkKind::ForeignKey(fk) = self.schema.link(link).kind else { return Ok(()) };
        let fk = self.schema.foreign_key(fk).clone();
        let far_entity = self.schema.link(link).end(End::Target).entity;
        let far_table = self.schema.entity(far_entity).table;
        let values: Option<Row> = self.stored(key).and_then(|row| {
            let values: Row = fk.columns.iter().map(|&c| row[c as usize].clone()).collect();
            (!values.iter().any(|v| v.is_null())).then_some(values)
        });
        let target = match values {
            None => None,
            Some(values) if fk.ref_columns == self.schema.table(far_table).primary_key => {
                match self.identity[far_table.index()].get(&values) {
                    Some(found) => Some(found),
                    None => self.load_one(far_entity, &fk.ref_columns, values)?,
                }
            }
            Some(values) => self.load_one(far_entity, &fk.ref_columns, values)?,
        };
        let current = self.graph.link_members(key, link, End::Source)?.next();
        if current != target {
            // What the store holds is not a change of this session.
            self.graph.set_journaling(false);
            let result = (|| {
                if let Some(old) = current {
                    self.graph.disconnect_link(link, key, old)?;
                }
                if let Some(new) = target {
                    self.graph.connect_link(link, key, new)?;
                }
                Ok::<_, SessionError>(())
            })();
            self.graph.take_journal();
            self.graph.set_journaling(true);
            result?;
        }
        if let Some(slot) = self
            .schema
            .entity(self.graph.entity_of(key)?)
            .slots
            .iter()
            .position(|&s| s == (link, End::Source))
            && let Some(t) = self.tracked.get_mut(key)
        {
            t.loaded[slot] = true;
        }
        Ok(())
    }

    /// The object of the row whose `columns` hold `values`, read from the store.
    fn load_one(
        &mut self,
        entity: relgraph_core::EntityId,
        columns: &[u32],
        values: Row,
    ) -> Result<Option<ObjectKey>, SessionError> {
        let table = self.schema.entity(entity).table;
        let rows = self.store.load(&self.schema, table, columns, &[values])?;
        rows.into_iter().next().map(|row| self.materialize(entity, row)).transpose()
    }
}
