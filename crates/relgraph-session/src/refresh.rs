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
    /// writer's move of the row shows, on both sides); a collection is read
    /// again on next use, merged with what memory holds. A link changed
    /// since the last flush keeps the change, which the next flush writes.
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
        for (k, table, row) in fresh {
            for (i, value) in row.iter().enumerate() {
                self.graph.set_derived_value(k, ColumnId { table, index: i as u32 }, value.clone())?;
            }
            if let Some(t) = self.tracked.get_mut(k) {
                t.snapshot = None;
                t.dirty = false;
            }
            self.relink_from_store(k, &changed)?;
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
    /// foreign keys in the row, and its collections are read again on next
    /// use, except where this session changed the link since the last flush.
    fn relink_from_store(
        &mut self,
        key: ObjectKey,
        changed: &FxHashSet<(ObjectKey, LinkId)>,
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
                    if let Some(t) = self.tracked.get_mut(key) {
                        t.loaded[slot] = false;
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
