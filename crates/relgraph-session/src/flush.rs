//! The flush: from the session's changes to one transaction of row operations.
//!
//! 1. *Collect* the unit of work: pending objects plus what `save-update`
//!    cascades reach over the links as they are now; check that no link
//!    leaves the unit of work (rule 22).
//! 2. *Delete* cascades and orphans, evaluated over the current links
//!    (rules 10, 19); children of deleted parents that stay get NULL
//!    (rule 11) unless `passive_deletes` says otherwise (rule 13).
//! 3. *Rows*: INSERTs of new objects with foreign keys from their links
//!    (generated keys as placeholders), UPDATEs of changed columns only
//!    (rule 4.3), DELETEs, association rows from the net link changes
//!    (rules 4, 12, 20), a delete and re-insert of one key as an UPDATE.
//! 4. *Order* (see `order.rs`), then one store transaction; the session's
//!    record of the flushed state moves only after the store commits.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use relgraph_core::{
    Cascade, Cell, ColumnId, End, ForeignKeyId, LinkId, LinkKind, PassiveDeletes, RelationshipId, Row, RowOp,
    TableId, Value,
};
use relgraph_graph::ObjectKey;
use slotmap::SecondaryMap;
use smallvec::SmallVec;

use crate::order::{self, Dep, Edge, Ordered};
use crate::overlap::RecordLog;
use crate::{FlushError, Session, State};

/// A set of objects indexed by slot: no hashing, for sets that can hold
/// every object of a flush.
type KeySet = SecondaryMap<ObjectKey, ()>;

/// Per foreign key (by index), the objects a flush deletes by the values of
/// the columns the key references (a primary key or another unique key).
/// Orders a DELETE after the rows that stop referencing its row.
type DoomedTargets = Vec<crate::identity::IdentityMap>;

/// The key checks of a flush's new rows: keys taken so far per table, and
/// the deleted objects whose key a new object may take (rule 20).
pub(crate) struct KeyCheck<'a> {
    pub(crate) seen: Vec<crate::identity::IdentityMap>,
    pub(crate) doomed: &'a mut HashSet<ObjectKey>,
    pub(crate) retired: &'a mut HashSet<ObjectKey>,
}

/// What a flush wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Rows inserted.
    pub inserts: usize,
    /// Rows updated (post-updates of broken cycles included).
    pub updates: usize,
    /// Rows deleted.
    pub deletes: usize,
    /// Association rows inserted.
    pub association_inserts: usize,
    /// Association-row DELETE statements (one may remove all rows of an object).
    pub association_deletes: usize,
    /// Whether the rows were built while the store wrote them (see
    /// [`Session::set_pipeline_threshold`]).
    pub pipelined: bool,
    /// Whether the session recorded the flush while the store wrote and
    /// committed it (see [`Session::set_pipeline_threshold`]).
    pub overlapped: bool,
    /// UPDATEs sent to the store while the rest of the flush was still
    /// being worked out (an overlapped flush of UPDATEs and DELETEs only).
    pub streamed: usize,
    /// Of those, the ones sent before the cascades and deletes were worked
    /// out: of tables whose UPDATEs nothing else can change, and the next
    /// table's first ones, which the flush checked afterwards.
    pub sent_ahead: usize,
}

/// One planned row operation and why it is there, in run order.
#[derive(Clone, Debug)]
pub struct PlannedOp {
    /// The operation.
    pub op: RowOp,
    /// Why it exists and what it waits for.
    pub reason: String,
}

/// A dry run of a flush: the operations it would send, in order.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The operations, in run order.
    pub ops: Vec<PlannedOp>,
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, op) in self.ops.iter().enumerate() {
            writeln!(f, "{i:>4}  {}", op.reason)?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    AssocDelete = 0,
    Insert = 1,
    Update = 2,
    Delete = 3,
    PostUpdate = 4,
    AssocInsert = 5,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Why {
    Explicit,
    Cascade(RelationshipId, ObjectKey),
    Orphan(RelationshipId),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Reason {
    Insert(ObjectKey),
    Update(ObjectKey),
    Rekey { new: ObjectKey, old: ObjectKey },
    Delete(ObjectKey, Why),
    AssocInsert(LinkId, ObjectKey, ObjectKey),
    AssocDelete(LinkId, ObjectKey, ObjectKey),
    AssocDeleteAll(LinkId, ObjectKey),
    PostUpdate(ObjectKey),
}

pub(crate) struct Node {
    pub(crate) reason: Reason,
    kind: Kind,
    pub(crate) table: TableId,
}

/// Everything a flush decided, before it runs.
#[derive(Default)]
pub(crate) struct Work {
    pub(crate) nodes: Vec<Node>,
    /// Node `i`'s operation, for `i` below its length. The nodes after it
    /// are INSERTs whose rows are not built yet, known by their table
    /// alone: a pipelined flush builds its rows as it sends them and never
    /// keeps them here, so its nodes take 32 bytes instead of 104: 7 MB less
    /// for 100,000 rows, memory the kernel would have to hand over fresh
    /// (about 3 us a page on the 2-core machines measured).
    ops: Vec<RowOp>,
    edges: Vec<Edge>,
    /// Object to its INSERT (or UPDATE) node; slot-indexed, no hashing.
    insert_node: SecondaryMap<ObjectKey, u32>,
    /// Object to its DELETE node.
    delete_node: SecondaryMap<ObjectKey, u32>,
    /// Objects whose rows go: deleted ones, and those whose key a new object takes.
    pub(crate) deleted: Vec<ObjectKey>,
    /// Pending objects that lost their parent under delete-orphan: never inserted.
    dropped: Vec<ObjectKey>,
    /// Transient objects the save-update cascade brought in.
    cascaded: Vec<ObjectKey>,
    /// Set when the flush runs as a pipeline: its rows are built as the
    /// store writes them, in this order, instead of by `collect`.
    pub(crate) streamed: Option<Streamed>,
    /// Set while a pipelined flush builds its rows: they run in the order
    /// they are built, which already meets every dependency, so none is
    /// recorded (W1 would record 100,000 that nothing reads).
    pub(crate) in_run_order: bool,
    /// UPDATEs the stream got before the delete analysis (`send_early_updates`).
    pub(crate) sent_ahead: usize,
}

/// An UPDATE sent to the store before the delete analysis (see
/// `send_early_updates`), to be matched with 3c's.
pub(crate) struct Early {
    object: ObjectKey,
    op: RowOp,
    /// Built on a guess that the delete analysis leaves it as it is: 3c
    /// builds it again and compares. Otherwise nothing can change it.
    guessed: bool,
}

/// A test's wrong guess: `op` with its values NULL (the store was sent the right one).
#[cfg(test)]
fn spoiled(op: RowOp) -> RowOp {
    match op {
        RowOp::Update { table, key_columns, key, columns, values } => RowOp::Update {
            table,
            key_columns,
            key,
            columns,
            values: values.iter().map(|_| Cell::Value(Value::Null)).collect(),
        },
        other => other,
    }
}

/// Guessed UPDATEs sent ahead at most: enough to keep the store busy
/// while the session builds them and works out the delete analysis, and
/// all the store has done for nothing if the guess is wrong. At 2,000, W3
/// on SQLite left the store idle for 5 to 8 ms of a 110 ms flush on the
/// 2-core machines (it applied its 3,000 early UPDATEs in 11 ms, where the
/// session took 19 ms to build them and finish the analysis); at 10,000,
/// which takes every UPDATE of W3's children, the idle time went and the
/// flush's median over five alternated runs fell from 117 to 111 ms.
const GUESSED_UPDATES: usize = 10_000;

/// What 3c reads of the delete analysis: the objects deleted, the
/// deleted rows foreign keys point at, and the foreign keys kept under
/// `passive_deletes = all`.
struct Doomed<'a> {
    doomed: &'a HashSet<ObjectKey>,
    targets: &'a DoomedTargets,
    keep_fk: &'a HashSet<(ObjectKey, LinkId)>,
}

/// The rows of a pipelined flush (new rows only), in run order: the
/// INSERT nodes by table rank then creation order, and the association
/// links by table rank then the order they were made. That is the order
/// `order` gives the same work (its dependencies all point forward in it).
pub(crate) struct Streamed {
    pub(crate) inserts: Vec<u32>,
    pub(crate) links: Vec<(LinkId, ObjectKey, ObjectKey)>,
    pub(crate) seen: Vec<crate::identity::IdentityMap>,
}

impl Work {
    pub(crate) fn push(&mut self, op: RowOp, reason: Reason, kind: Kind) -> u32 {
        let node = self.nodes.len() as u32;
        self.nodes.push(Node { reason, kind, table: op.table() });
        if !matches!(&op, RowOp::Insert { row, .. } if row.is_empty()) {
            *self.op_mut(node) = op;
        }
        node
    }

    /// Node `node`'s operation; `None` for an INSERT whose row is not built yet.
    pub(crate) fn op(&self, node: u32) -> Option<&RowOp> {
        self.ops.get(node as usize)
    }

    pub(crate) fn op_mut(&mut self, node: u32) -> &mut RowOp {
        while self.ops.len() <= node as usize {
            let table = self.nodes[self.ops.len()].table;
            self.ops.push(RowOp::Insert { table, row: Box::new([]) });
        }
        &mut self.ops[node as usize]
    }

    /// Takes node `node`'s operation out, leaving an empty one.
    fn take_op(&mut self, node: u32) -> RowOp {
        let table = self.nodes[node as usize].table;
        match self.ops.get_mut(node as usize) {
            Some(op) => {
                std::mem::replace(op, RowOp::Delete { table, columns: Box::new([]), values: Box::new([]) })
            }
            None => RowOp::Insert { table, row: Box::new([]) },
        }
    }

    fn edge(&mut self, before: u32, after: u32, dep: Dep) {
        if !self.in_run_order && (before != after || dep != Dep::Must) {
            self.edges.push(Edge { before, after, dep, fk: None });
        }
    }

    /// A foreign-key dependency through `fk`, breakable in a cycle when nullable.
    fn fk_edge(&mut self, before: u32, after: u32, nullable: bool, fk: ForeignKeyId) {
        if !self.in_run_order {
            self.edges.push(Edge { before, after, dep: Dep::ForeignKey { nullable }, fk: Some(fk) });
        }
    }

    fn row_mut(&mut self, node: u32) -> &mut Box<[Cell]> {
        match self.op_mut(node) {
            RowOp::Insert { row, .. } => row,
            _ => unreachable!("rows are read from INSERT nodes"),
        }
    }
}

/// Whether `cell` is the literal `value` (compared without cloning it).
fn holds(cell: &Cell, value: &Value) -> bool {
    matches!(cell, Cell::Value(v) if v == value)
}

/// The columns where `cells` differ from `stored`, and their new cells:
/// counted first, so each is allocated once at its size.
fn changed_cells(cells: &[Cell], stored: &[Value]) -> (Box<[u32]>, Box<[Cell]>) {
    let differs = |i: usize| !holds(&cells[i], &stored[i]);
    let n = (0..cells.len()).filter(|&i| differs(i)).count();
    let mut columns = Vec::with_capacity(n);
    let mut values = Vec::with_capacity(n);
    for (i, cell) in cells.iter().enumerate() {
        if differs(i) {
            columns.push(i as u32);
            values.push(cell.clone());
        }
    }
    (columns.into_boxed_slice(), values.into_boxed_slice())
}

fn v(value: &Value) -> Cell {
    Cell::Value(value.clone())
}

impl Session {
    /// Writes every pending change to the store in one transaction: all or
    /// nothing. A flush with nothing to do sends nothing.
    ///
    /// # Errors
    /// A [`FlushError`]; nothing was written and every pending change is
    /// still in the session, so fixing the cause and flushing again works.
    pub fn flush(&mut self) -> Result<FlushStats, FlushError> {
        let flush = tracing::debug_span!(target: "relgraph::flush", "flush").entered();
        let collected = tracing::debug_span!(target: "relgraph::flush", "unit_of_work")
            .in_scope(|| self.collect(true, &flush));
        let mut work = match collected {
            Ok(work) => work,
            Err(e) => {
                self.abandon_stream();
                return Err(e);
            }
        };
        if let Some(streamed) = work.streamed.take() {
            return self.flush_pipelined(work, streamed);
        }
        #[cfg(test)]
        if crate::stream::FAIL_AFTER_COLLECT.with(std::cell::Cell::get) {
            self.abandon_stream();
            return Err(FlushError::Cycle { cycle: "a test's".into() });
        }
        let ordered =
            tracing::debug_span!(target: "relgraph::flush", "order").in_scope(|| self.order(&mut work));
        let order = match ordered {
            Ok(order) => order,
            Err(e) => {
                self.abandon_stream();
                return Err(e);
            }
        };
        if let Some(stream) = self.stream.take() {
            return self.flush_streamed(stream, work, order);
        }
        if order.is_empty() {
            // Nothing to send, but the session's record may still move: a
            // re-key whose row did not change, pending orphans never inserted.
            self.committed(work, &[], &[], &[]);
            return Ok(FlushStats::default());
        }
        let (ops, _) = Self::sequence(&mut work, &order);
        if ops.len() >= self.pipeline_min && self.may_overlap(&work, &ops) {
            return self.flush_overlapped(work, order, ops);
        }
        self.run(work, order, ops)
    }

    /// Runs the row operations `ops` (nodes `order` of `work`) in one
    /// transaction, then records them.
    pub(crate) fn run(
        &mut self,
        work: Work,
        order: Vec<u32>,
        ops: Vec<RowOp>,
    ) -> Result<FlushStats, FlushError> {
        let fail = |operation: String, source| FlushError::Store { operation, source };
        self.store.begin().map_err(|e| fail("begin".into(), e))?;
        let mut keys = Vec::with_capacity(ops.len());
        let applied = tracing::debug_span!(target: "relgraph::flush", "apply")
            .in_scope(|| self.store.apply(&self.schema, &ops, &mut keys));
        match applied {
            Ok(()) => {}
            Err(e) => {
                let e = match self.store.rollback() {
                    Ok(()) => e,
                    Err(rollback) => e.with_rollback(rollback),
                };
                return Err(fail("a row operation".into(), e));
            }
        };
        if let Err(e) =
            tracing::debug_span!(target: "relgraph::flush", "commit").in_scope(|| self.store.commit())
        {
            let e = match self.store.rollback() {
                Ok(()) => e,
                Err(rollback) => e.with_rollback(rollback),
            };
            return Err(fail("commit".into(), e));
        }
        let stats = Self::stats(&work, &order);
        let _record = tracing::debug_span!(target: "relgraph::flush", "record").entered();
        self.committed(work, &ops, &order, &keys);
        free_later(ops);
        Ok(stats)
    }

    /// Commits the session's changes: a flush (each flush is one store transaction).
    ///
    /// # Errors
    /// As [`Session::flush`].
    pub fn commit(&mut self) -> Result<FlushStats, FlushError> {
        self.flush()
    }

    /// A dry run: the row operations the next flush would send, in order,
    /// each with its reason. Sends nothing (it may load relationships the
    /// flush needs, as the flush would).
    ///
    /// # Errors
    /// As [`Session::flush`], except store write errors.
    pub fn plan(&mut self) -> Result<Plan, FlushError> {
        let mut work = self.collect(false, &tracing::Span::none())?;
        let order = self.order(&mut work)?;
        let mut position = vec![u32::MAX; work.nodes.len()];
        for (p, &node) in order.iter().enumerate() {
            position[node as usize] = p as u32;
        }
        let reasons: Vec<String> = order.iter().map(|&node| self.explain(&work, node, &position)).collect();
        let (ops, _) = Self::sequence(&mut work, &order);
        let ops = ops.into_iter().zip(reasons).map(|(op, reason)| PlannedOp { op, reason }).collect();
        Ok(Plan { ops })
    }

    /// What the operations of `order` (nodes of `work`, as they ran) wrote.
    pub(crate) fn stats(work: &Work, order: &[u32]) -> FlushStats {
        let mut s = FlushStats::default();
        for &node in order {
            match work.nodes[node as usize].kind {
                Kind::Insert => s.inserts += 1,
                Kind::Update | Kind::PostUpdate => s.updates += 1,
                Kind::Delete => s.deletes += 1,
                Kind::AssocInsert => s.association_inserts += 1,
                Kind::AssocDelete => s.association_deletes += 1,
            }
        }
        s
    }

    fn explain(&self, work: &Work, node: u32, position: &[u32]) -> String {
        let n = &work.nodes[node as usize];
        let d = |k| self.describe(k);
        let table = &self.schema.table(n.table).name;
        let link_name = |l: LinkId| self.link_name(l);
        let mut text = match n.reason {
            Reason::Insert(o) => format!("INSERT {table}: {} is new", d(o)),
            Reason::Update(o) => format!("UPDATE {table}: {} changed", d(o)),
            Reason::Rekey { new, old } => {
                format!(
                    "UPDATE {table}: {} takes the key of deleted {} (a delete and re-insert is an update)",
                    d(new),
                    d(old)
                )
            }
            Reason::Delete(o, Why::Explicit) => format!("DELETE {table}: {} was deleted", d(o)),
            Reason::Delete(o, Why::Cascade(rel, from)) => format!(
                "DELETE {table}: {} by the delete cascade of {} from {}",
                d(o),
                self.schema.relationship_path(rel),
                d(from)
            ),
            Reason::Delete(o, Why::Orphan(rel)) => {
                format!(
                    "DELETE {table}: {} lost its parent in {} (delete-orphan)",
                    d(o),
                    self.schema.relationship_path(rel)
                )
            }
            Reason::AssocInsert(l, a, b) => {
                format!("INSERT {table}: {} linked to {} through {}", d(a), d(b), link_name(l))
            }
            Reason::AssocDelete(l, a, b) => {
                format!("DELETE {table}: {} unlinked from {} in {}", d(a), d(b), link_name(l))
            }
            Reason::AssocDeleteAll(l, o) => {
                let columns = match work.op(node) {
                    Some(RowOp::Delete { columns, .. }) => {
                        crate::sql_columns(self.schema.table(n.table), columns)
                    }
                    _ => String::new(),
                };
                format!("DELETE {table}: every link of deleted {} in {} (by {columns})", d(o), link_name(l))
            }
            Reason::PostUpdate(o) => {
                format!("UPDATE {table}: {}'s foreign key, after the rows of its cycle exist", d(o))
            }
        };
        let waits: Vec<String> = work
            .edges
            .iter()
            .filter(|e| e.after == node && e.before != node && e.before != u32::MAX)
            .filter_map(|e| position.get(e.before as usize).filter(|&&p| p != u32::MAX))
            .map(|p| format!("#{p}"))
            .collect();
        if !waits.is_empty() {
            let _ = write!(text, " (after {})", waits.join(", "));
        }
        text
    }

    fn link_name(&self, link: LinkId) -> String {
        let def = self.schema.link(link);
        match def.ends.iter().find_map(|e| e.relationship) {
            Some(rel) => self.schema.relationship_path(rel),
            None => format!("link {}", link.index()),
        }
    }

    fn effective(&self, key: ObjectKey, cascaded: &KeySet) -> State {
        if cascaded.contains_key(key) { State::Pending } else { self.state(key) }
    }

    /// Records the row the INSERT at position `p` wrote for `o`. Only key
    /// columns can differ from the graph: a generated primary key, and
    /// foreign keys derived from links (or generated for their parent).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_inserted(
        &mut self,
        key_columns: &[u32],
        o: ObjectKey,
        table: TableId,
        row: &[Cell],
        p: usize,
        keys: &[Option<i64>],
        log: Option<&mut RecordLog>,
    ) {
        let generated = keys.get(p).copied().flatten();
        let pk = match self.schema.table(table).primary_key.as_slice() {
            [pk] => Some(*pk),
            _ => None,
        };
        let mut values = key_columns.iter().map(|&c| match (generated, pk, &row[c as usize]) {
            (Some(key), Some(pk), _) if c == pk => Value::Integer(key),
            (_, _, Cell::Value(v)) => v.clone(),
            (_, _, Cell::Generated(op)) => {
                keys.get(*op as usize).copied().flatten().map_or(Value::Null, Value::Integer)
            }
        });
        self.record(o, table, key_columns, &mut values, log);
    }

    /// Records that the store now holds `o`'s row: the values written to
    /// `columns` (generated keys, foreign keys from links) go into the graph
    /// where they differ, after which the graph's row is the stored row.
    /// With a `log`, what this changes is noted there, to be put back.
    fn record(
        &mut self,
        o: ObjectKey,
        table: TableId,
        columns: &[u32],
        values: &mut dyn Iterator<Item = Value>,
        mut log: Option<&mut RecordLog>,
    ) {
        if !self.graph.contains(o) {
            return;
        }
        // Read once: nothing below changes them until the record is made.
        // A new object is one not stored yet and with no stored row.
        let (persisted, new) = self
            .tracked
            .get(o)
            .map_or((false, false), |t| (t.persisted, !t.persisted && t.snapshot.is_none()));
        // A new object's foreign keys are usually NULL until now (W1: every
        // child's). Its log entry notes which, one bit a column, instead of
        // an entry per value: 100,000 fewer 40-byte entries for W1.
        let mut nulled = 0u32;
        for (&c, value) in columns.iter().zip(values) {
            let stale = self.graph.row(o).is_ok_and(|current| current[c as usize] != value);
            let column = ColumnId { table, index: c };
            if stale
                && let Ok(old) = self.graph.set_derived_value(o, column, value)
                && let Some(log) = log.as_deref_mut()
            {
                if new && c < u32::BITS && old.is_null() {
                    nulled |= 1 << c;
                } else {
                    log.value(o, column, old);
                }
            }
        }
        let def = self.schema.table(table);
        // A persisted object already sits in the identity map under its key,
        // unless this write changed the key: most UPDATEs need no hashing here.
        if persisted && !columns.iter().any(|c| def.primary_key.contains(c)) {
            self.mark_persisted(o, log);
            return;
        }
        let row = self.graph.row(o).expect("recorded objects are live");
        // The common single-column key is looked up in place.
        let many;
        let key: &[Value] = match def.primary_key.as_slice() {
            [pk] => std::slice::from_ref(&row[*pk as usize]),
            _ => {
                many = self.pk_of_row(table, row);
                &many
            }
        };
        let before = self.identity[table.index()].insert(key, o);
        // A new object taking a free key: one small entry undoes all three.
        if before.is_none()
            && new
            && let Some(log) = log.as_deref_mut()
            && log.takes_inserted()
            && let Some(t) = self.tracked.get_mut(o)
        {
            log.inserted(o, table, t.state, t.dirty, nulled);
            t.persisted = true;
            t.state = State::Persistent;
            t.dirty = false;
            return;
        }
        if let Some(log) = log.as_deref_mut() {
            // Not the common case after all: the NULLs are logged one by one,
            // in the place they would have had.
            for index in crate::overlap::bits(nulled) {
                log.value(o, ColumnId { table, index }, Value::Null);
            }
            log.identity(table, key, o, before);
        }
        self.mark_persisted(o, log);
    }

    /// The object deleted in this flush that `key`'s committed foreign key
    /// `fk` points at, if any (see [`DoomedTargets`]).
    fn doomed_target(&self, key: ObjectKey, fk: ForeignKeyId, doomed: &DoomedTargets) -> Option<ObjectKey> {
        let map = doomed.get(fk.index()).filter(|m| !m.is_empty())?;
        let row = self.stored(key)?;
        let def = self.schema.foreign_key(fk);
        // A single-column key is looked up in place, without collecting it.
        if let [c] = def.columns.as_slice() {
            let value = &row[*c as usize];
            return if value.is_null() { None } else { map.get(std::slice::from_ref(value)) };
        }
        let values: Row = def.columns.iter().map(|&c| row[c as usize].clone()).collect();
        if values.iter().any(Value::is_null) { None } else { map.get(&values) }
    }

    /// Per foreign key, the objects in `doomed` by the values of the columns
    /// it references: a map the size of the deletes, not of the table.
    fn doomed_targets(&self, doomed: &[ObjectKey]) -> DoomedTargets {
        let mut targets: DoomedTargets =
            self.schema.foreign_keys().iter().map(|_| crate::identity::IdentityMap::default()).collect();
        if doomed.is_empty() {
            return targets;
        }
        for (map, def) in targets.iter_mut().zip(self.schema.foreign_keys()) {
            for &d in doomed {
                let Ok(entity) = self.graph.entity_of(d) else { continue };
                let Some(row) = self.stored(d) else { continue };
                if self.schema.entity(entity).table != def.ref_table {
                    continue;
                }
                let values: Row = def.ref_columns.iter().map(|&c| row[c as usize].clone()).collect();
                if !values.iter().any(Value::is_null) {
                    map.insert(&values, d);
                }
            }
        }
        targets
    }

    /// The unit of work and its row operations. With `pipeline`, a flush of
    /// new rows only that is large enough comes back with `streamed` set and
    /// its rows not built yet, and a large one of UPDATEs and DELETEs starts
    /// its store on a stream, whose spans go under `flush_span` (the
    /// flush's, though the stream starts inside its unit of work).
    fn collect(&mut self, pipeline: bool, flush_span: &tracing::Span) -> Result<Work, FlushError> {
        // A handle of its own, so that schema parts are borrowed from it while
        // `self` loads, instead of cloned per object.
        let schema = Arc::clone(&self.schema);
        self.absorb_journal();
        let mut work = Work::default();
        let mut pending: Vec<ObjectKey> = Vec::new();
        let mut deleted: Vec<ObjectKey> = Vec::new();
        for &key in &self.staged {
            match self.tracked.get(key).map(|t| t.state) {
                Some(State::Pending) => pending.push(key),
                Some(State::Deleted) => deleted.push(key),
                _ => {}
            }
        }
        // An object staged twice (added, deleted, added again) counts once.
        self.sort_by_seq(&mut pending);
        pending.dedup();
        self.sort_by_seq(&mut deleted);
        deleted.dedup();
        // UPDATEs that nothing below can change go to the store first.
        let mut early =
            if pipeline { self.send_early_updates(&pending, &deleted, flush_span)? } else { Vec::new() };

        // 1. save-update cascades, from everything that could have gained a link.
        let mut cascaded = KeySet::new();
        // A transient object can only be reached through a link added since
        // the last flush: the walk starts from the pending objects and from
        // the transient ends of added links whose other side cascades.
        // The result is a set (sorted below), so the order does not matter.
        // Each with the relationship that leads straight back to the object
        // it was reached from, when that side is a scalar: walking it finds
        // only that object, which is in the unit of work already (a child
        // reached from its new parent need not look at the parent again).
        let mut roots: Vec<(ObjectKey, Option<RelationshipId>)> =
            pending.iter().map(|&k| (k, None)).collect();
        let back = |link: LinkId, end: End| {
            let far_end = self.schema.link(link).end(end.opposite());
            far_end.relationship.filter(|_| !far_end.many)
        };
        // Per link and near end: whether an object reached that way has a
        // save-update relationship to walk other than the one back. Most
        // have none (W1's 100,000 children only lead back to their parent),
        // and need not be walked at all.
        let leads_on: Vec<[bool; 2]> = schema
            .link_ids()
            .map(|link| {
                [End::Source, End::Target].map(|end| {
                    let far = schema.link(link).end(end.opposite()).entity;
                    schema.entity(far).relationships.iter().any(|&rel| {
                        Some(rel) != back(link, end)
                            && schema.relationship(rel).cascade.contains(Cascade::SAVE_UPDATE)
                    })
                })
            })
            .collect();
        // The net link changes in the order they were made: the passes below
        // then read objects about in the order they sit in memory.
        let net: Vec<(LinkId, ObjectKey, ObjectKey, i8)> =
            self.net.iter().map(|(&(l, s, t), &n)| (l, s, t, n)).collect();
        // About one row operation per object staged or written and per link
        // changed, and one dependency per link: sized once, not regrown.
        work.nodes.reserve(pending.len() + deleted.len() + self.written.len() + net.len());
        work.edges.reserve(net.len());
        // At most one object cascaded per link added: W1's 100,000 children
        // are, and regrowing these lists copied them about 17 times over.
        roots.reserve(net.len());
        work.cascaded.reserve(net.len());
        cascaded.set_capacity(self.graph.len() + 1);
        // One buffer for the members read while deleting.
        let mut scratch: Vec<ObjectKey> = Vec::new();
        for &(link, s, t, n) in &net {
            if n <= 0 {
                continue;
            }
            for (near, far, end) in [(s, t, End::Source), (t, s, End::Target)] {
                let cascades = self
                    .schema
                    .link(link)
                    .end(end)
                    .relationship
                    .is_some_and(|r| self.schema.relationship(r).cascade.contains(Cascade::SAVE_UPDATE));
                if cascades
                    && self.state(far) == State::Transient
                    && matches!(self.state(near), State::Persistent | State::Pending)
                    && cascaded.insert(far, ()).is_none()
                {
                    work.cascaded.push(far);
                    if leads_on[link.index()][end.index()] {
                        roots.push((far, back(link, end)));
                    }
                }
            }
        }
        // Walked in slot order (popped from the back), so memory is read
        // in sequence rather than in the hash order `net` yields.
        roots.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        while let Some((key, skip)) = roots.pop() {
            let Ok(entity) = self.graph.entity_of(key) else {
                continue;
            };
            for &rel in &self.schema.entity(entity).relationships {
                let def = self.schema.relationship(rel);
                if !def.cascade.contains(Cascade::SAVE_UPDATE) || skip == Some(rel) {
                    continue;
                }
                for member in self.graph.members(key, rel)? {
                    // Most members were reached already: the cheap check goes first.
                    if !cascaded.contains_key(member)
                        && self.state(member) == State::Transient
                        && cascaded.insert(member, ()).is_none()
                    {
                        work.cascaded.push(member);
                        if leads_on[def.link.index()][def.end.index()] {
                            roots.push((member, back(def.link, def.end)));
                        }
                    }
                }
            }
        }
        let in_uow = |s: &Self, k: ObjectKey| {
            matches!(s.effective(k, &cascaded), State::Pending | State::Persistent | State::Deleted)
        };

        // Rule 22: no link may leave the unit of work. Violations are sorted so
        // the same one is reported every time.
        let mut violations: Vec<(u64, u64, LinkId, ObjectKey, ObjectKey, End)> = Vec::new();
        for &(link, s, t, n) in &net {
            if n <= 0 {
                continue;
            }
            for (a, b, end) in [(s, t, End::Source), (t, s, End::Target)] {
                if in_uow(self, a) && !in_uow(self, b) && self.effective(a, &cascaded) != State::Deleted {
                    violations.push((self.seq(a), self.seq(b), link, a, b, end));
                }
            }
        }
        if let Some(&(_, _, link, a, b, end)) = violations.iter().min_by_key(|v| (v.0, v.1, v.2)) {
            let def = self.schema.link(link);
            let rel = def.end(end).relationship.or(def.end(end.opposite()).relationship);
            return Err(FlushError::OutsideSession {
                relationship: rel.map_or_else(|| self.link_name(link), |r| self.schema.relationship_path(r)),
                from: self.describe(a),
                to: self.describe(b),
            });
        }

        // 2. Deletes: explicit, cascaded, orphaned; evaluated over the links as they are.
        let mut doomed: HashSet<ObjectKey> = deleted.iter().copied().collect();
        let mut dropped: HashSet<ObjectKey> = HashSet::default();
        let mut why: HashMap<ObjectKey, Why> = deleted.iter().map(|&k| (k, Why::Explicit)).collect();
        let mut queue: Vec<ObjectKey> = deleted.clone();
        let mut orphan_checked: HashSet<(RelationshipId, ObjectKey)> = HashSet::default();
        let mut candidates: Vec<(RelationshipId, ObjectKey)> = Vec::new();
        let orphan_rels: Vec<RelationshipId> = self
            .schema
            .relationship_ids()
            .filter(|&r| self.schema.relationship(r).cascade.contains(Cascade::DELETE_ORPHAN))
            .collect();
        for &rel in &orphan_rels {
            let def = self.schema.relationship(rel);
            for &(link, s, t, n) in &net {
                if link == def.link && n < 0 {
                    let child = if def.end == End::Source { t } else { s };
                    candidates.push((rel, child));
                }
            }
        }
        candidates.sort_by_cached_key(|&(r, k)| (r, self.seq(k)));
        loop {
            while let Some(d) = queue.pop() {
                let entity = self.graph.entity_of(d)?;
                for &rel in &schema.entity(entity).relationships {
                    let def = schema.relationship(rel);
                    let cascades = def.cascade.contains(Cascade::DELETE);
                    let orphans = def.cascade.contains(Cascade::DELETE_ORPHAN);
                    if !cascades && !orphans {
                        continue;
                    }
                    if def.passive_deletes == PassiveDeletes::Off {
                        self.ensure_loaded(d, def.link, def.end)?;
                    }
                    scratch.clear();
                    scratch.extend(self.graph.members(d, rel)?);
                    for &m in &scratch {
                        if cascades {
                            match self.effective(m, &cascaded) {
                                State::Persistent if doomed.insert(m) => {
                                    why.insert(m, Why::Cascade(rel, d));
                                    queue.push(m);
                                }
                                State::Pending => {
                                    dropped.insert(m);
                                }
                                _ => {}
                            }
                        } else {
                            candidates.push((rel, m));
                        }
                    }
                }
            }
            let mut found = false;
            for (rel, child) in std::mem::take(&mut candidates) {
                if doomed.contains(&child) || dropped.contains(&child) || !orphan_checked.insert((rel, child))
                {
                    continue;
                }
                if !self.graph.contains(child) {
                    continue;
                }
                let def = schema.relationship(rel);
                self.ensure_loaded(child, def.link, def.end.opposite())?;
                let has_parent = self
                    .graph
                    .link_members(child, def.link, def.end.opposite())?
                    .any(|p| !doomed.contains(&p));
                if has_parent {
                    continue;
                }
                match self.effective(child, &cascaded) {
                    State::Persistent => {
                        doomed.insert(child);
                        why.insert(child, Why::Orphan(rel));
                        queue.push(child);
                        found = true;
                    }
                    State::Pending => {
                        dropped.insert(child);
                    }
                    _ => {}
                }
            }
            if !found && queue.is_empty() {
                break;
            }
        }

        // Children of deleted parents that stay: loaded (unless passive) and nulled (rule 11, 13).
        let mut doomed_list: Vec<ObjectKey> = doomed.iter().copied().collect();
        self.sort_by_seq(&mut doomed_list);
        let mut keep_fk: HashSet<(ObjectKey, LinkId)> = HashSet::default();
        let mut nulled: Vec<ObjectKey> = Vec::new();
        for &d in &doomed_list {
            let entity = self.graph.entity_of(d)?;
            for &(link, end) in &schema.entity(entity).slots {
                let def = schema.link(link);
                let LinkKind::ForeignKey(fk) = def.kind else {
                    continue;
                };
                if end != End::Target {
                    continue;
                }
                let passive = def.ends[1]
                    .relationship
                    .map_or(PassiveDeletes::Off, |r| self.schema.relationship(r).passive_deletes);
                if passive == PassiveDeletes::Off {
                    self.ensure_loaded(d, link, End::Target)?;
                }
                scratch.clear();
                scratch.extend(self.graph.link_members(d, link, End::Target)?);
                for &c in &scratch {
                    if doomed.contains(&c) || dropped.contains(&c) {
                        continue;
                    }
                    if passive == PassiveDeletes::All {
                        keep_fk.insert((c, link));
                        continue;
                    }
                    let fkdef = self.schema.foreign_key(fk);
                    let table = self.schema.table(fkdef.table);
                    if let Some(&col) =
                        fkdef.columns.iter().find(|&&col| !table.columns[col as usize].nullable)
                    {
                        return Err(FlushError::NotNullOrphan {
                            parent: self.describe(d),
                            child: self.describe(c),
                            column: self.schema.column_path(ColumnId { table: fkdef.table, index: col }),
                        });
                    }
                    nulled.push(c);
                }
            }
        }

        let doomed_targets = self.doomed_targets(&doomed_list);

        // The objects whose rows 3c may update, and the new objects of 3b.
        let mut candidates = self.update_candidates(|_| true);
        candidates.extend(nulled);
        self.sort_by_seq(&mut candidates);
        candidates.dedup();
        let mut new_objects: Vec<ObjectKey> = Vec::with_capacity(pending.len() + work.cascaded.len());
        new_objects
            .extend(pending.iter().chain(work.cascaded.iter()).copied().filter(|k| !dropped.contains(k)));
        self.sort_by_seq(&mut new_objects);
        // A large flush of UPDATEs and DELETEs only builds its DELETEs after
        // its UPDATEs, which go to the store as they are built (see
        // `stream.rs`): the store starts sooner. The plan is the same.
        let defer_deletes =
            pipeline && new_objects.is_empty() && self.may_stream(&doomed_list, &net, candidates.len());
        if !defer_deletes && self.stream.is_some() {
            // Started ahead (`send_early_updates`), but this flush is not streamed.
            self.abandon_stream();
            early.clear();
        }
        // 3a. Deletes and the association rows of deleted objects (rule 12).
        if !defer_deletes {
            self.push_deletes(&mut work, &doomed_list, &why)?;
        }

        // 3b. Inserts of new objects, parents first where the order is known.
        work.nodes.reserve(new_objects.len());
        // Nodes first, rows in the pass below: a child can then refer to its
        // parent's INSERT whichever of the two comes first.
        for &o in &new_objects {
            let entity = self.graph.entity_of(o)?;
            let table = self.schema.entity(entity).table;
            let node = work.push(RowOp::Insert { table, row: Box::new([]) }, Reason::Insert(o), Kind::Insert);
            work.insert_node.insert(o, node);
        }
        // Objects whose key a new object takes (rule 20): their rows stay, as the new object's.
        let mut retired: HashSet<ObjectKey> = HashSet::default();
        let mut seen_keys: Vec<crate::identity::IdentityMap> =
            (0..self.schema.tables().len()).map(|_| crate::identity::IdentityMap::default()).collect();
        // Sized once: growing a map of 100,000 keys rehashes it many times.
        let mut per_table = vec![0usize; seen_keys.len()];
        for node in &work.nodes[work.nodes.len() - new_objects.len()..] {
            per_table[node.table.index()] += 1;
        }
        for (map, n) in seen_keys.iter_mut().zip(per_table) {
            map.reserve(n);
        }
        if pipeline
            && let Some(streamed) =
                self.streamable(&work, &net, &doomed, &dropped, &new_objects, &cascaded, &mut seen_keys)
        {
            work.streamed = Some(streamed);
            return Ok(work);
        }
        let mut keys = KeyCheck { seen: seen_keys, doomed: &mut doomed, retired: &mut retired };
        for &o in &new_objects {
            let node = work.insert_node[o];
            if let Some(cells) = self.insert_row(&mut work, o, node, &mut keys, &keep_fk)? {
                *work.row_mut(node) = cells;
            }
        }

        // 3c. Updates of persistent objects: changed columns, foreign keys from links.
        // A large flush of UPDATEs and DELETEs only sends its UPDATEs to the
        // store as they are built (see `stream.rs`), in plan order: by table
        // rank, then creation.
        let mut streaming = defer_deletes;
        // UPDATEs that move a foreign key away from a row deleted later in the
        // build: they get their edge once the DELETEs exist.
        let mut moved_away: Vec<(u32, ObjectKey)> = Vec::new();
        if streaming {
            let ranks = self.table_ranks();
            let rank = |k: ObjectKey| {
                self.graph.entity_of(k).map_or(u32::MAX, |e| ranks[self.schema.entity(e).table.index()])
            };
            // Stable: creation order within a rank.
            candidates.sort_by_cached_key(|&k| rank(k));
            if self.stream.is_none() {
                // No stream started ahead, or it gave the store back for a load.
                early.clear();
                let store = std::mem::replace(&mut self.store, Box::new(crate::pipeline::Lent));
                match crate::stream::Stream::start(store, Arc::clone(&self.schema), flush_span.clone()) {
                    Ok(stream) => self.stream = Some(stream),
                    Err(store) => {
                        self.store = store;
                        streaming = false;
                    }
                }
            }
        }
        // One buffer for every candidate's row: only changed cells are kept.
        let mut cells: Vec<Cell> = Vec::new();
        // The UPDATEs sent ahead must be the first this loop sends, in
        // order. Those of the safe tables cannot have changed since (a load
        // would have taken the store back from their stream): they take
        // their nodes as they are, checked again in debug builds. Guessed
        // ones are built again and compared; at the first that differs, the
        // store rolls back and the flush runs as an ordinary one.
        let mut early = early.into_iter().peekable();
        let mut early_nodes: Vec<u32> = Vec::with_capacity(early.len());
        let doomed_info = Doomed { doomed: &doomed, targets: &doomed_targets, keep_fk: &keep_fk };
        for o in candidates {
            if doomed.contains(&o) || self.state(o) != State::Persistent {
                continue;
            }
            let expected = early.peek().map(|e| (e.object == o, e.guessed));
            let holds = match expected {
                Some((true, false)) => true,
                Some((true, true)) => streaming && self.guess_holds(o, &doomed_info),
                _ => false,
            };
            if holds {
                let Early { op, .. } = early.next().expect("peeked");
                let node = work.push(
                    RowOp::Insert { table: op.table(), row: Box::new([]) },
                    Reason::Update(o),
                    Kind::Update,
                );
                self.order_moves_away(&mut work, o, node, &doomed_info, defer_deletes, &mut moved_away);
                #[cfg(debug_assertions)]
                {
                    let built = self.build_update(
                        &mut Work::default(),
                        o,
                        &mut cells,
                        &doomed_info,
                        false,
                        &mut Vec::new(),
                    )?;
                    debug_assert_eq!(
                        built.map(|(_, op, _)| op).as_ref(),
                        Some(&op),
                        "an UPDATE sent ahead changed"
                    );
                }
                *work.op_mut(node) = op;
                early_nodes.push(node);
                continue;
            }
            let built =
                self.build_update(&mut work, o, &mut cells, &doomed_info, defer_deletes, &mut moved_away)?;
            let Some((node, op, sendable)) = built else {
                if expected.is_some_and(|(same, _)| same) {
                    // A guessed UPDATE that changes nothing after all.
                    self.abandon_early(&mut early, &mut early_nodes, &mut streaming);
                }
                continue;
            };
            // Streamed while each UPDATE is one that nothing waits on: no key
            // or unique column changes, no row of this flush comes first.
            streaming = streaming && sendable;
            if expected.is_some() {
                if streaming && early.peek().is_some_and(|e| e.object == o && e.op == op) {
                    early.next();
                    early_nodes.push(node);
                    *work.op_mut(node) = op;
                    continue;
                }
                self.abandon_early(&mut early, &mut early_nodes, &mut streaming);
            }
            if streaming && let Some(stream) = self.stream.as_mut() {
                stream.send(node, op.clone());
            }
            *work.op_mut(node) = op;
        }
        if let Some(left) = early.peek() {
            // Guessed UPDATEs the plan does not have (their objects were
            // deleted after all): as above. A safe one is never left.
            debug_assert!(left.guessed, "an UPDATE sent ahead is not in the plan");
            self.abandon_stream();
        } else if let Some(stream) = self.stream.as_mut() {
            stream.name_early(&early_nodes);
            work.sent_ahead = early_nodes.len();
        }

        if defer_deletes {
            self.push_deletes(&mut work, &doomed_list, &why)?;
            for (node, old) in moved_away {
                if let Some(&delete) = work.delete_node.get(old) {
                    work.edge(node, delete, Dep::Must);
                }
            }
        }

        // A deleted child goes before its deleted parent.
        for &d in &doomed_list {
            let Some(&node) = work.delete_node.get(d) else {
                continue;
            };
            let entity = self.graph.entity_of(d)?;
            for &(_, fk) in self.fk_links[entity.index()].iter() {
                if let Some(parent) = self.doomed_target(d, fk, &doomed_targets)
                    && let Some(&parent_node) = work.delete_node.get(parent)
                {
                    // In a cycle of deletes, the child's key can be nulled first instead.
                    let fkdef = self.schema.foreign_key(fk);
                    let table = self.schema.table(fkdef.table);
                    let nullable = fkdef.columns.iter().all(|&c| table.columns[c as usize].nullable);
                    work.fk_edge(node, parent_node, nullable, fk);
                }
            }
        }

        // 3d. Association rows from the net link changes (rules 4, 12).
        // In the order the links were made, as SQLAlchemy writes a collection
        // in its order; the plan's order puts each table's rows together.
        let nothing_gone = doomed.is_empty() && dropped.is_empty() && retired.is_empty();
        for &(link, s, t, n) in &net {
            let LinkKind::Secondary { table, foreign_keys } = schema.link(link).kind else {
                continue;
            };
            let gone = |k: &ObjectKey| {
                !nothing_gone && (doomed.contains(k) || dropped.contains(k) || retired.contains(k))
            };
            if n > 0 {
                if gone(&s) || gone(&t) || !in_uow(self, s) || !in_uow(self, t) {
                    continue;
                }
                let (op, after) = self.association_row(&work, link, s, t)?;
                let node = work.push(op, Reason::AssocInsert(link, s, t), Kind::AssocInsert);
                for before in after {
                    work.edge(before, node, Dep::Must);
                }
            } else {
                if gone(&s) || gone(&t) {
                    continue;
                }
                let mut columns = Vec::new();
                let mut values = Vec::new();
                for (end, obj) in [(0, s), (1, t)] {
                    let fk = self.schema.foreign_key(foreign_keys[end]);
                    let Some(row) = self.stored(obj) else { continue };
                    for (&col, &rc) in fk.columns.iter().zip(&fk.ref_columns) {
                        columns.push(col);
                        values.push(v(&row[rc as usize]));
                    }
                }
                if columns.len() == self.schema.foreign_key(foreign_keys[0]).columns.len() * 2
                    || self.schema.foreign_key(foreign_keys[0]).columns.len()
                        + self.schema.foreign_key(foreign_keys[1]).columns.len()
                        == columns.len()
                {
                    work.push(
                        RowOp::Delete { table, columns: columns.into(), values: values.into() },
                        Reason::AssocDelete(link, s, t),
                        Kind::AssocDelete,
                    );
                }
            }
        }
        // Association deletes of an object run before its own DELETE.
        let assoc_all: Vec<(u32, ObjectKey)> = work
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match n.reason {
                Reason::AssocDeleteAll(_, o) => Some((i as u32, o)),
                _ => None,
            })
            .collect();
        for (node, o) in assoc_all {
            if let Some(&d) = work.delete_node.get(o) {
                work.edge(node, d, Dep::Must);
            }
        }
        self.stage_unique_values(&mut work);
        work.deleted.extend(doomed_list.into_iter().filter(|&k| work.delete_node.contains_key(k)));
        work.dropped = dropped.into_iter().collect();
        Ok(work)
    }

    /// Builds and pushes the UPDATE node of persistent object `o` (3c): its
    /// changed columns, foreign keys from its links, and an edge to the
    /// DELETE of a row its key moves away from. Returns the node, the
    /// operation (the caller keeps or sends it) and whether it may go to the
    /// store at once: nothing waits on it and no key or unique column
    /// changes. `None` when nothing changed: the node stays an empty no-op,
    /// which `order` drops.
    fn build_update(
        &self,
        work: &mut Work,
        o: ObjectKey,
        cells: &mut Vec<Cell>,
        doomed: &Doomed<'_>,
        defer_deletes: bool,
        moved_away: &mut Vec<(u32, ObjectKey)>,
    ) -> Result<Option<(u32, RowOp, bool)>, FlushError> {
        let (entity, row) = self.graph.entity_and_row(o)?;
        let table = self.schema.entity(entity).table;
        let committed = self.stored(o).expect("persistent");
        cells.clear();
        cells.extend(row.iter().map(v));
        // Unloaded foreign keys keep what the store has.
        for &(_, fk) in self.fk_links[entity.index()].iter() {
            for &c in &self.schema.foreign_key(fk).columns {
                cells[c as usize] = v(&committed[c as usize]);
            }
        }
        let node = work.push(RowOp::Insert { table, row: Box::new([]) }, Reason::Update(o), Kind::Update);
        let (edges, nodes) = (work.edges.len(), work.nodes.len());
        self.fill_foreign_keys(work, o, entity, node, cells, doomed.doomed, doomed.keep_fk)?;
        // Nothing may have to run before a streamed UPDATE.
        let waits = work.edges.len() != edges || work.nodes.len() != nodes;
        let (columns, values) = changed_cells(cells, committed);
        if columns.is_empty() {
            *work.op_mut(node) = RowOp::Update {
                table,
                key_columns: Box::new([]),
                key: Box::new([]),
                columns: Box::new([]),
                values: Box::new([]),
            };
            return Ok(None);
        }
        let def = self.schema.table(table);
        let pk = &def.primary_key;
        self.order_moves_away(work, o, node, doomed, defer_deletes, moved_away);
        let sendable = !waits && def.uniques.is_empty() && !columns.iter().any(|c| pk.contains(c));
        let op = RowOp::Update {
            table,
            key_columns: pk.clone().into(),
            key: pk.iter().map(|&c| v(&committed[c as usize])).collect(),
            columns,
            values,
        };
        Ok(Some((node, op, sendable)))
    }

    /// Moving a foreign key away from a deleted row must happen before its
    /// DELETE: the edge from UPDATE `node` of `o`, or a note to add it once
    /// the DELETEs exist.
    fn order_moves_away(
        &self,
        work: &mut Work,
        o: ObjectKey,
        node: u32,
        doomed: &Doomed<'_>,
        defer_deletes: bool,
        moved_away: &mut Vec<(u32, ObjectKey)>,
    ) {
        let Ok(entity) = self.graph.entity_of(o) else { return };
        for &(_, fk) in self.fk_links[entity.index()].iter() {
            if let Some(old) = self.doomed_target(o, fk, doomed.targets) {
                match work.delete_node.get(old) {
                    Some(&delete) => work.edge(node, delete, Dep::Must),
                    None if defer_deletes => moved_away.push((node, old)),
                    None => {}
                }
            }
        }
    }

    /// Whether the first UPDATEs of table `r` (the first after the safe
    /// tables, `safe`) are worth guessing before the delete analysis of a
    /// flush that deletes `deleted`: it has no unique constraint, its rows
    /// reference rows of the safe tables alone (whose rows only an explicit
    /// delete removes), no cascade
    /// through an association table reaches them, and no row of theirs can
    /// be nulled, which would put a new UPDATE among the guessed ones.
    fn may_guess(&self, r: usize, safe: &[bool], deleted: &[ObjectKey]) -> bool {
        // A unique column's UPDATE waits for the analysis anyway (staging).
        if !self.schema.tables()[r].uniques.is_empty()
            || self.cyclic_tables()[r]
            || self
                .schema
                .foreign_keys()
                .iter()
                .any(|fk| fk.table.index() == r && !safe[fk.ref_table.index()])
        {
            return false;
        }
        let mut deletes = vec![false; self.schema.entities().len()];
        for &d in deleted {
            if let Ok(e) = self.graph.entity_of(d) {
                deletes[e.index()] = true;
            }
        }
        let table_of = |e: relgraph_core::EntityId| self.schema.entity(e).table.index();
        self.schema.links().iter().all(|link| {
            let [source, target] = &link.ends;
            match link.kind {
                LinkKind::Secondary { .. } => [source, target].iter().all(|end| {
                    table_of(end.entity) != r
                        || ![source, target].iter().filter_map(|e| e.relationship).any(|rel| {
                            let cascade = self.schema.relationship(rel).cascade;
                            cascade.contains(Cascade::DELETE) || cascade.contains(Cascade::DELETE_ORPHAN)
                        })
                }),
                LinkKind::ForeignKey(_) => {
                    if table_of(source.entity) != r || !deletes[target.entity.index()] {
                        return true;
                    }
                    // A deleted target's rows are deleted with it, or nulled.
                    target.relationship.is_some_and(|rel| {
                        let def = self.schema.relationship(rel);
                        def.cascade.contains(Cascade::DELETE) || def.passive_deletes == PassiveDeletes::All
                    })
                }
            }
        })
    }

    /// Whether persistent `o` (of a table [`Session::may_guess`] allows) is
    /// likely to keep its row: what it references is not deleted, and it
    /// has a parent wherever losing one would delete it.
    fn likely_kept(&self, o: ObjectKey) -> bool {
        let Ok(entity) = self.graph.entity_of(o) else { return false };
        self.fk_links[entity.index()].iter().all(|&(link, _)| {
            let orphans =
                self.schema.link(link).end(End::Target).relationship.is_some_and(|rel| {
                    self.schema.relationship(rel).cascade.contains(Cascade::DELETE_ORPHAN)
                });
            match self.graph.link_members(o, link, End::Source).ok().and_then(|mut m| m.next()) {
                Some(t) => self.state(t) != State::Deleted,
                None => !orphans,
            }
        })
    }

    /// Whether the UPDATE of persistent `o` (not deleted: 3c skips those)
    /// built as if nothing were deleted is the one the delete analysis
    /// (`doomed`) gives: no foreign key of its takes another value, i.e.
    /// each links to an object not deleted and none is kept by
    /// `passive_deletes = all`.
    fn guess_holds(&self, o: ObjectKey, doomed: &Doomed<'_>) -> bool {
        #[cfg(test)]
        if crate::stream::SPOIL_GUESSES.with(std::cell::Cell::get) {
            return false;
        }
        let Ok(entity) = self.graph.entity_of(o) else { return false };
        self.fk_links[entity.index()].iter().all(|&(link, _)| {
            !doomed.keep_fk.contains(&(o, link))
                && self
                    .graph
                    .link_members(o, link, End::Source)
                    .is_ok_and(|mut m| m.next().is_none_or(|t| !doomed.doomed.contains(&t)))
        })
    }

    /// Sends UPDATEs to the store on a thread of its own before the
    /// cascades and the delete analysis are worked out, so that the store
    /// works while they are (W3: 2.5 ms), and returns them in order; 3c
    /// checks that they are the first UPDATEs it sends. They are the
    /// written rows of the first tables by rank, which nothing else in the
    /// flush can change (see [`Session::early_tables`]), then up to
    /// [`GUESSED_UPDATES`] of the next table's, in creation order, built as
    /// if nothing were deleted (see [`Session::may_guess`]). Taken only
    /// where the flush will likely stream (`stream.rs`): large, no new
    /// object staged, no association row unlinked. Whatever turns out
    /// otherwise gives the store back, rolled back, and the flush goes on
    /// as it would have.
    fn send_early_updates(
        &mut self,
        pending: &[ObjectKey],
        deleted: &[ObjectKey],
        flush_span: &tracing::Span,
    ) -> Result<Vec<Early>, FlushError> {
        if !pending.is_empty()
            || self.written.len() + deleted.len() + self.net.len() < self.pipeline_min
            || self.net.iter().any(|(&(link, _, _), &n)| {
                n < 0 && matches!(self.schema.link(link).kind, LinkKind::Secondary { .. })
            })
        {
            return Ok(Vec::new());
        }
        let ranks = self.table_ranks();
        let (early_tables, next) = self.early_tables(&ranks);
        let mut safe = self.update_candidates(|k| self.table_of(k).is_some_and(|t| early_tables[t]));
        self.sort_by_seq(&mut safe);
        safe.dedup();
        // Stable: creation order within a rank, as 3c sorts.
        safe.sort_by_cached_key(|&k| self.table_of(k).map_or(u32::MAX, |t| ranks[t]));
        let guess = next.filter(|&r| self.may_guess(r, &early_tables, deleted));
        // With no safe UPDATE, the guess is made first: a stream starts only
        // with something to send.
        let mut guessed = match guess {
            Some(next) if safe.is_empty() => self.guessed_updates(next),
            _ => Vec::new(),
        };
        if safe.is_empty() && guessed.is_empty() {
            return Ok(Vec::new());
        }
        let store = std::mem::replace(&mut self.store, Box::new(crate::pipeline::Lent));
        match crate::stream::Stream::start(store, Arc::clone(&self.schema), flush_span.clone()) {
            Ok(stream) => self.stream = Some(stream),
            Err(store) => {
                self.store = store;
                return Ok(Vec::new());
            }
        }
        // Built as if nothing were deleted: for the safe tables that is so
        // (they hold no foreign key and no cascade deletes their rows); the
        // guessed UPDATEs are checked by 3c.
        let (none, targets) = (HashSet::default(), DoomedTargets::new());
        let nothing = Doomed { doomed: &none, targets: &targets, keep_fk: &HashSet::default() };
        let mut scratch = Work::default();
        let (mut cells, mut moved_away) = (Vec::new(), Vec::new());
        let mut sent = Vec::with_capacity(safe.len());
        let mut send =
            |this: &mut Self, objects: Vec<ObjectKey>, guessed: bool| -> Result<bool, FlushError> {
                for o in objects {
                    let Some((_, op, sendable)) =
                        this.build_update(&mut scratch, o, &mut cells, &nothing, false, &mut moved_away)?
                    else {
                        continue;
                    };
                    if !sendable {
                        return Ok(false);
                    }
                    if let Some(stream) = this.stream.as_mut() {
                        stream.send(u32::MAX, op.clone());
                    }
                    #[cfg(test)]
                    let op = if guessed && crate::stream::SPOIL_GUESSES.with(std::cell::Cell::get) {
                        spoiled(op)
                    } else {
                        op
                    };
                    sent.push(Early { object: o, op, guessed });
                }
                Ok(true)
            };
        // The safe ones go first: the store starts on them while the guess is made.
        if send(self, safe, false)? {
            if let Some(next) = guess.filter(|_| guessed.is_empty()) {
                if let Some(stream) = self.stream.as_mut() {
                    stream.hand_over();
                }
                guessed = self.guessed_updates(next);
            }
            send(self, guessed, true)?;
        }
        if sent.is_empty() {
            // Nothing to send ahead after all.
            self.abandon_stream();
            return Ok(sent);
        }
        // The store starts on them now, even with less than a chunk.
        if let Some(stream) = self.stream.as_mut() {
            stream.hand_over();
        }
        Ok(sent)
    }

    /// The persistent objects whose rows a flush may update, those `kept`
    /// accepts, unsorted and possibly repeated: those with columns written,
    /// and those holding a foreign key whose link changed. 3c adds the
    /// children the delete analysis nulls.
    fn update_candidates(&self, kept: impl Fn(ObjectKey) -> bool) -> Vec<ObjectKey> {
        let mut candidates: Vec<ObjectKey> = self
            .written
            .iter()
            .copied()
            .filter(|&k| {
                self.tracked.get(k).is_some_and(|t| t.state == State::Persistent && t.dirty) && kept(k)
            })
            .collect();
        candidates.extend(self.net.keys().filter_map(|&(link, source, _)| {
            (matches!(self.schema.link(link).kind, LinkKind::ForeignKey(_))
                && self.state(source) == State::Persistent
                && kept(source))
            .then_some(source)
        }));
        candidates
    }

    /// The index of `k`'s table, if `k` is live.
    fn table_of(&self, k: ObjectKey) -> Option<usize> {
        self.graph.entity_of(k).ok().map(|e| self.schema.entity(e).table.index())
    }

    /// The objects of table `next` whose UPDATEs are guessed to come first
    /// among its rows in 3c: its candidates as 3c gathers them (written
    /// columns, changed links to what its foreign keys reference), but for
    /// the children the delete analysis would null, in creation order, up to
    /// [`GUESSED_UPDATES`] and the first that the analysis is likely to delete.
    fn guessed_updates(&self, next: usize) -> Vec<ObjectKey> {
        let mut guessed = self.update_candidates(|k| self.table_of(k) == Some(next));
        self.sort_by_seq(&mut guessed);
        guessed.dedup();
        guessed.truncate(GUESSED_UPDATES);
        if let Some(stop) = guessed.iter().position(|&o| !self.likely_kept(o)) {
            guessed.truncate(stop);
        }
        guessed
    }

    /// The UPDATEs sent ahead are not the plan's first: the store rolls
    /// back and the flush runs as an ordinary one.
    fn abandon_early(
        &mut self,
        early: &mut std::iter::Peekable<std::vec::IntoIter<Early>>,
        early_nodes: &mut Vec<u32>,
        streaming: &mut bool,
    ) {
        self.abandon_stream();
        early.by_ref().for_each(drop);
        early_nodes.clear();
        *streaming = false;
    }

    /// Per table, whether its UPDATEs can be built before the delete
    /// analysis of a flush: it holds no foreign key (no column of its rows
    /// comes from a link or is nulled), no delete or delete-orphan cascade
    /// reaches its rows (only an explicit delete removes one, and that is
    /// known at once), it has no unique constraint (nothing to stage), and
    /// so does every entity's table ranked before it (its UPDATEs come first
    /// in the plan). Also the first entity's table after them by rank, whose
    /// first UPDATEs may go ahead on speculation.
    fn early_tables(&self, ranks: &[u32]) -> (Vec<bool>, Option<usize>) {
        let n = self.schema.tables().len();
        let mut excluded = vec![false; n];
        for fk in self.schema.foreign_keys() {
            excluded[fk.table.index()] = true;
        }
        for r in self.schema.relationship_ids() {
            let def = self.schema.relationship(r);
            if def.cascade.contains(Cascade::DELETE) || def.cascade.contains(Cascade::DELETE_ORPHAN) {
                excluded[self.schema.entity(def.target).table.index()] = true;
            }
        }
        // Only tables of entities hold objects, so only they can have UPDATEs
        // ranked before another's (association tables cannot).
        let mut mapped = vec![false; n];
        for e in self.schema.entity_ids() {
            mapped[self.schema.entity(e).table.index()] = true;
        }
        let mut by_rank: Vec<usize> = (0..n).filter(|&t| mapped[t]).collect();
        by_rank.sort_by_key(|&t| ranks[t]);
        let mut early = vec![false; n];
        for t in by_rank {
            if excluded[t] || !self.schema.tables()[t].uniques.is_empty() {
                return (early, Some(t));
            }
            early[t] = true;
        }
        (early, None)
    }

    /// The DELETEs of `doomed` objects, each after one DELETE per
    /// association table of its entity removing its association rows
    /// (rule 12).
    fn push_deletes(
        &self,
        work: &mut Work,
        doomed: &[ObjectKey],
        why: &HashMap<ObjectKey, Why>,
    ) -> Result<(), FlushError> {
        let schema = &self.schema;
        for &d in doomed {
            let entity = self.graph.entity_of(d)?;
            let table = self.schema.entity(entity).table;
            let row = self.stored(d).expect("deleted objects are persistent");
            for &(link, end) in &schema.entity(entity).slots {
                let LinkKind::Secondary { table: assoc, foreign_keys } = schema.link(link).kind else {
                    continue;
                };
                let fk = schema.foreign_key(foreign_keys[end.index()]);
                let op = RowOp::Delete {
                    table: assoc,
                    columns: fk.columns.clone().into(),
                    values: fk.ref_columns.iter().map(|&c| v(&row[c as usize])).collect(),
                };
                work.push(op, Reason::AssocDeleteAll(link, d), Kind::AssocDelete);
            }
            let pk = &self.schema.table(table).primary_key;
            let op = RowOp::Delete {
                table,
                columns: pk.clone().into(),
                values: pk.iter().map(|&c| v(&row[c as usize])).collect(),
            };
            let node = work.push(op, Reason::Delete(d, why[&d]), Kind::Delete);
            work.delete_node.insert(d, node);
        }

        Ok(())
    }

    /// Whether this flush may send its UPDATEs as they are built: it is
    /// large enough (`candidates` UPDATEs and the DELETEs of `doomed`), the
    /// store takes chunks, there is no INSERT (the caller's part), no
    /// association row is unlinked, and no
    /// object deleted has association rows to delete or sits on a
    /// foreign-key cycle of tables: so nothing comes before the UPDATEs in
    /// the plan.
    fn may_stream(
        &self,
        doomed: &[ObjectKey],
        net: &[(LinkId, ObjectKey, ObjectKey, i8)],
        candidates: usize,
    ) -> bool {
        if candidates == 0
            || candidates + doomed.len() < self.pipeline_min
            || net.iter().any(|&(link, _, _, n)| {
                n < 0 && matches!(self.schema.link(link).kind, LinkKind::Secondary { .. })
            })
        {
            return false;
        }
        // DELETEs of a table on a foreign-key cycle may need one of their
        // keys nulled first: an UPDATE the plan would put among the others.
        let cyclic = self.cyclic_tables();
        doomed.iter().all(|&d| {
            self.graph.entity_of(d).is_ok_and(|e| {
                let entity = self.schema.entity(e);
                !cyclic[entity.table.index()]
                    && !entity
                        .slots
                        .iter()
                        .any(|&(link, _)| matches!(self.schema.link(link).kind, LinkKind::Secondary { .. }))
            })
        })
    }

    /// The pipelined form of this flush, if it may run as one: only new
    /// rows (no UPDATE, no DELETE, no association row removed), a schema in
    /// which every foreign key points to an earlier table (no cycle, no
    /// self-reference, no `post_update`), and at least the threshold of
    /// operations. Then every dependency points forward in (kind, table
    /// rank, creation) order, which is the run order.
    #[allow(clippy::too_many_arguments)]
    fn streamable(
        &self,
        work: &Work,
        net: &[(LinkId, ObjectKey, ObjectKey, i8)],
        doomed: &HashSet<ObjectKey>,
        dropped: &HashSet<ObjectKey>,
        new_objects: &[ObjectKey],
        cascaded: &KeySet,
        seen: &mut Vec<crate::identity::IdentityMap>,
    ) -> Option<Streamed> {
        if !doomed.is_empty() || !dropped.is_empty() || self.post_update.iter().any(|&p| p) {
            return None;
        }
        let ranks = self.table_ranks();
        let forward =
            self.schema.foreign_keys().iter().all(|fk| ranks[fk.ref_table.index()] < ranks[fk.table.index()]);
        if !forward {
            return None;
        }
        let dirty =
            |k: ObjectKey| self.tracked.get(k).is_some_and(|t| t.state == State::Persistent && t.dirty);
        if self.written.iter().any(|&k| dirty(k)) {
            return None;
        }
        let in_uow = |k: ObjectKey| {
            matches!(self.effective(k, cascaded), State::Pending | State::Persistent | State::Deleted)
        };
        let mut links = Vec::new();
        for &(link, s, t, n) in net {
            match self.schema.link(link).kind {
                // A persistent object's foreign key changes: an UPDATE.
                LinkKind::ForeignKey(_) if self.state(s) == State::Persistent => return None,
                LinkKind::ForeignKey(_) => {}
                LinkKind::Secondary { .. } if n < 0 => return None,
                LinkKind::Secondary { table, .. } => {
                    if in_uow(s) && in_uow(t) {
                        links.push((ranks[table.index()], link, s, t));
                    }
                }
            }
        }
        let total = new_objects.len() + links.len();
        if total == 0 || total < self.pipeline_min {
            return None;
        }
        // Stable sorts: creation order, and link order, within each table.
        links.sort_by_key(|l| l.0);
        let mut inserts: Vec<u32> = new_objects.iter().map(|&o| work.insert_node[o]).collect();
        inserts.sort_by_key(|&node| ranks[work.nodes[node as usize].table.index()]);
        Some(Streamed {
            inserts,
            links: links.into_iter().map(|(_, l, s, t)| (l, s, t)).collect(),
            seen: std::mem::take(seen),
        })
    }

    /// The row of new object `o` (INSERT node `node`): its values, foreign
    /// keys from its links (with their dependencies), checked for missing
    /// values and duplicate keys. `None` when `o` takes the key of an object
    /// deleted in this flush (rule 20): the DELETE became an UPDATE instead.
    pub(crate) fn insert_row(
        &self,
        work: &mut Work,
        o: ObjectKey,
        node: u32,
        keys: &mut KeyCheck<'_>,
        keep_fk: &HashSet<(ObjectKey, LinkId)>,
    ) -> Result<Option<Box<[Cell]>>, FlushError> {
        let width = self.graph.row(o)?.len();
        let mut cells: Box<[Cell]> = (0..width).map(|_| Cell::Value(Value::Null)).collect();
        Ok(self.fill_insert_row(work, o, node, keys, keep_fk, &mut cells)?.then_some(cells))
    }

    /// [`Session::insert_row`], written into `cells` (one per column of
    /// `o`'s table, overwritten) instead of a row of its own: false where
    /// that returns `None`.
    pub(crate) fn fill_insert_row(
        &self,
        work: &mut Work,
        o: ObjectKey,
        node: u32,
        keys: &mut KeyCheck<'_>,
        keep_fk: &HashSet<(ObjectKey, LinkId)>,
        cells: &mut [Cell],
    ) -> Result<bool, FlushError> {
        let (entity, row) = self.graph.entity_and_row(o)?;
        for (cell, value) in cells.iter_mut().zip(row) {
            *cell = v(value);
        }
        self.fill_foreign_keys(work, o, entity, node, cells, keys.doomed, keep_fk)?;
        let table = self.schema.entity(entity).table;
        let def = self.schema.table(table);
        for (i, column) in def.columns.iter().enumerate() {
            if matches!(cells[i], Cell::Value(Value::Null)) && !column.nullable && !column.autoincrement {
                return Err(FlushError::MissingValue {
                    object: self.describe(o),
                    column: self.schema.column_path(ColumnId { table, index: i as u32 }),
                });
            }
        }
        // Rule 20 and duplicate keys. A single-column key is looked at in
        // place; a composite one is collected.
        let literal = |c: &u32| match &cells[*c as usize] {
            Cell::Value(v) if !v.is_null() => Some(v.clone()),
            _ => None,
        };
        let single: Option<[Value; 1]>;
        let composite: Option<Vec<Value>>;
        let pk: Option<&[Value]> = match def.primary_key.as_slice() {
            [c] => {
                single = literal(c).map(|v| [v]);
                single.as_ref().map(|k| &k[..])
            }
            many => {
                composite = many.iter().map(literal).collect();
                composite.as_deref()
            }
        };
        let Some(pk) = pk else { return Ok(true) };
        // A third object claiming a re-keyed key is a duplicate of `o`.
        if let Some(other) = keys.seen[table.index()].claim(pk, o) {
            return Err(FlushError::DuplicateKey {
                table: def.name.clone(),
                first: self.describe(other),
                second: self.describe(o),
            });
        }
        let identity = &self.identity[table.index()];
        let Some(old) = identity.get(pk).filter(|_| !identity.is_empty()) else { return Ok(true) };
        if !keys.doomed.contains(&old) {
            return Err(FlushError::DuplicateKey {
                table: def.name.clone(),
                first: self.describe(old),
                second: self.describe(o),
            });
        }
        // A delete and re-insert of one key is an UPDATE of the columns that differ.
        let old_row = self.stored(old).expect("persistent");
        let (columns, values) = changed_cells(cells, old_row);
        let delete = work.delete_node.remove(old).expect("doomed objects have a delete");
        *work.op_mut(delete) = RowOp::Update {
            table,
            key_columns: def.primary_key.clone().into(),
            key: pk.iter().map(v).collect(),
            columns,
            values,
        };
        work.nodes[delete as usize].kind = Kind::Update;
        work.nodes[delete as usize].reason = Reason::Rekey { new: o, old };
        // The insert node stays empty: the update stands for it.
        work.nodes[node as usize].kind = Kind::Update;
        work.edge(node, delete, Dep::Must);
        keys.doomed.remove(&old);
        keys.retired.insert(old);
        work.deleted.push(old);
        Ok(false)
    }

    /// The association row linking `s` to `t` through `link` (an
    /// association table's link), and the INSERTs of this flush it must follow.
    pub(crate) fn association_row(
        &self,
        work: &Work,
        link: LinkId,
        s: ObjectKey,
        t: ObjectKey,
    ) -> Result<(RowOp, SmallVec<[u32; 2]>), FlushError> {
        let table = self.association_table(link);
        // Made in place: `vec![cell; n]` clones its cell n times, which cost
        // W2's 100,000 association rows about 300 instructions each.
        let mut row: Box<[Cell]> =
            (0..self.schema.table(table).columns.len()).map(|_| Cell::Value(Value::Null)).collect();
        let mut after = SmallVec::new();
        self.fill_association_row(work, link, s, t, &mut row, &mut after)?;
        Ok((RowOp::Insert { table, row }, after))
    }

    /// The association table of `link` (a link through one).
    pub(crate) fn association_table(&self, link: LinkId) -> TableId {
        let LinkKind::Secondary { table, .. } = self.schema.link(link).kind else {
            unreachable!("association rows are rows of association tables")
        };
        table
    }

    /// [`Session::association_row`], its foreign-key columns written into
    /// `cells` (one per column, the others left as they are) and the
    /// INSERTs it must follow pushed onto `after`.
    pub(crate) fn fill_association_row(
        &self,
        work: &Work,
        link: LinkId,
        s: ObjectKey,
        t: ObjectKey,
        cells: &mut [Cell],
        after: &mut SmallVec<[u32; 2]>,
    ) -> Result<(), FlushError> {
        let LinkKind::Secondary { foreign_keys, .. } = self.schema.link(link).kind else {
            unreachable!("association rows are rows of association tables")
        };
        for (end, obj) in [(0, s), (1, t)] {
            let fk = self.schema.foreign_key(foreign_keys[end]);
            for (&col, &rc) in fk.columns.iter().zip(&fk.ref_columns) {
                cells[col as usize] = self.reference_cell(work, obj, rc, after)?;
            }
        }
        Ok(())
    }

    /// The cell for column `rc` of `obj` as a foreign key value: a literal,
    /// or the key its INSERT in this flush will generate (adding the dependency).
    fn reference_cell(
        &self,
        work: &Work,
        obj: ObjectKey,
        rc: u32,
        after: &mut SmallVec<[u32; 2]>,
    ) -> Result<Cell, FlushError> {
        if let Some(&node) = work.insert_node.get(obj) {
            // A row inserted in this flush: its key is the graph's value, or generated.
            after.push(node);
            let (entity, row) = self.graph.entity_and_row(obj)?;
            let value = &row[rc as usize];
            let def = self.schema.table(self.schema.entity(entity).table);
            if value.is_null() && def.columns[rc as usize].autoincrement {
                return Ok(Cell::Generated(node));
            }
            return Ok(v(value));
        }
        Ok(match self.stored(obj) {
            Some(row) => v(&row[rc as usize]),
            None => v(&self.graph.row(obj)?[rc as usize]),
        })
    }

    /// Writes the foreign-key columns of `o`'s new row (`cells`, for node
    /// `node`) from its links, with the dependencies on rows inserted in this flush.
    #[allow(clippy::too_many_arguments)]
    fn fill_foreign_keys(
        &self,
        work: &mut Work,
        o: ObjectKey,
        entity: relgraph_core::EntityId,
        node: u32,
        cells: &mut [Cell],
        doomed: &HashSet<ObjectKey>,
        keep_fk: &HashSet<(ObjectKey, LinkId)>,
    ) -> Result<(), FlushError> {
        let mut after: SmallVec<[u32; 2]> = SmallVec::new();
        let tracked = self.tracked.get(o);
        for &(link, fk) in self.fk_links[entity.index()].iter() {
            // A persistent object's foreign key not loaded yet keeps what the store has.
            let slot = self.schema.link(link).ends[0].slot as usize;
            let loaded = tracked.is_none_or(|t| !t.persisted || t.loaded[slot]);
            if !loaded || (!keep_fk.is_empty() && keep_fk.contains(&(o, link))) {
                continue;
            }
            let fkdef = self.schema.foreign_key(fk);
            let target = self.graph.link_members(o, link, End::Source)?.next();
            after.clear();
            match target {
                Some(t) if !doomed.contains(&t) && self.graph.contains(t) => {
                    for (&c, &rc) in fkdef.columns.iter().zip(&fkdef.ref_columns) {
                        cells[c as usize] = self.reference_cell(work, t, rc, &mut after)?;
                    }
                }
                _ => {
                    for &c in &fkdef.columns {
                        cells[c as usize] = Cell::Value(Value::Null);
                    }
                }
            }
            if after.is_empty() {
                continue;
            }
            let table = self.schema.table(fkdef.table);
            let nullable = fkdef.columns.iter().all(|&c| table.columns[c as usize].nullable);
            let post_update = self.post_update[link.index()];
            for &before in &after {
                if nullable && (post_update || before == node) {
                    // Declared post_update, or a row that references itself: write the key afterwards.
                    let values: Vec<Cell> = fkdef
                        .columns
                        .iter()
                        .map(|&c| std::mem::replace(&mut cells[c as usize], Cell::Value(Value::Null)))
                        .collect();
                    self.push_post_update(work, o, node, before, cells, &fkdef.columns, values);
                } else {
                    work.fk_edge(before, node, nullable, fk);
                }
            }
        }
        Ok(())
    }

    /// Adds the UPDATE that writes `values` into `columns` of `child`'s row
    /// (inserted by `child_node` with `row`) once `parent_node` has run too.
    #[allow(clippy::too_many_arguments)]
    fn push_post_update(
        &self,
        work: &mut Work,
        child: ObjectKey,
        child_node: u32,
        parent_node: u32,
        row: &[Cell],
        columns: &[u32],
        values: Vec<Cell>,
    ) {
        let table = work.nodes[child_node as usize].table;
        let def = self.schema.table(table);
        let key: Box<[Cell]> = def
            .primary_key
            .iter()
            .map(|&c| match &row[c as usize] {
                Cell::Value(Value::Null) => Cell::Generated(child_node),
                other => other.clone(),
            })
            .collect();
        let op = RowOp::Update {
            table,
            key_columns: def.primary_key.clone().into(),
            key,
            columns: columns.into(),
            values: values.into(),
        };
        let post = work.push(op, Reason::PostUpdate(child), Kind::PostUpdate);
        work.edge(child_node, post, Dep::Must);
        work.edge(parent_node, post, Dep::Must);
    }

    /// Breaks the foreign-key dependency `index` of a cycle: an INSERT goes in
    /// with NULL and an UPDATE writes the key afterwards; of two DELETEs, the
    /// child's key is set to NULL first. Returns whether it could.
    fn break_edge(&self, work: &mut Work, index: usize) -> bool {
        let edge = work.edges[index];
        let Some(fk) = edge.fk.filter(|_| edge.dep == Dep::ForeignKey { nullable: true }) else {
            return false;
        };
        let fk = self.schema.foreign_key(fk);
        let columns = fk.columns.clone();
        // The edge stays in place, parked, so other edges' indices stay valid.
        work.edges[index].before = u32::MAX;
        // Between INSERTs the child (the referencing row) is the edge's later
        // end; between DELETEs it is the earlier one.
        if let Reason::Delete(child, _) = work.nodes[edge.before as usize].reason {
            let child_node = edge.before;
            let table = work.nodes[child_node as usize].table;
            let def = self.schema.table(table);
            let committed: Row = self.stored(child).expect("deleted objects are persistent").into();
            let op = RowOp::Update {
                table,
                key_columns: def.primary_key.clone().into(),
                key: def.primary_key.iter().map(|&c| v(&committed[c as usize])).collect(),
                columns: columns.clone().into(),
                values: columns.iter().map(|_| Cell::Value(Value::Null)).collect(),
            };
            let null = work.push(op, Reason::PostUpdate(child), Kind::Update);
            work.edge(null, edge.after, Dep::Must);
            work.edge(null, child_node, Dep::Must);
            return true;
        }
        let child_node = edge.after;
        match work.nodes[child_node as usize].reason {
            Reason::Insert(child) => {
                let mut row = std::mem::take(work.row_mut(child_node));
                let values: Vec<Cell> = columns
                    .iter()
                    .map(|&c| std::mem::replace(&mut row[c as usize], Cell::Value(Value::Null)))
                    .collect();
                self.push_post_update(work, child, child_node, edge.before, &row, &columns, values);
                *work.row_mut(child_node) = row;
                true
            }
            _ => false,
        }
    }

    /// Rule 23: a DELETE or UPDATE that frees a unique value runs before the
    /// INSERT or UPDATE that takes it.
    fn stage_unique_values(&self, work: &mut Work) {
        let mut freed: HashMap<(TableId, usize, Vec<Value>), u32> = HashMap::default();
        let mut taken: Vec<(TableId, usize, Vec<Value>, u32)> = Vec::new();
        for (i, node) in work.nodes.iter().enumerate() {
            let table = self.schema.table(node.table);
            if table.uniques.is_empty() {
                continue;
            }
            let literal = |cells: &[Cell], cols: &[u32]| -> Option<Vec<Value>> {
                cols.iter()
                    .map(|&c| match &cells[c as usize] {
                        Cell::Value(v) if !v.is_null() => Some(v.clone()),
                        _ => None,
                    })
                    .collect()
            };
            match (work.op(i as u32), node.reason) {
                (Some(RowOp::Delete { .. }), Reason::Delete(o, _))
                | (Some(RowOp::Update { .. }), Reason::Update(o) | Reason::Rekey { old: o, .. }) => {
                    let Some(row) = self.stored(o).map(Row::from) else {
                        continue;
                    };
                    let cells: Vec<Cell> = row.iter().map(v).collect();
                    for (u, cols) in table.uniques.iter().enumerate() {
                        if let Some(values) = literal(&cells, cols) {
                            freed.insert((node.table, u, values), i as u32);
                        }
                    }
                    if let Some(RowOp::Update { columns, values, .. }) = work.op(i as u32) {
                        let mut new = cells.clone();
                        for (&c, value) in columns.iter().zip(values.iter()) {
                            new[c as usize] = value.clone();
                        }
                        for (u, cols) in table.uniques.iter().enumerate() {
                            if let Some(values) = literal(&new, cols) {
                                taken.push((node.table, u, values, i as u32));
                            }
                        }
                    }
                }
                (Some(RowOp::Insert { row, .. }), _) if !row.is_empty() => {
                    for (u, cols) in table.uniques.iter().enumerate() {
                        if let Some(values) = literal(row, cols) {
                            taken.push((node.table, u, values, i as u32));
                        }
                    }
                }
                _ => {}
            }
        }
        for (table, u, values, node) in taken {
            if let Some(&free) = freed.get(&(table, u, values))
                && free != node
            {
                work.edge(free, node, Dep::Must);
            }
        }
    }

    /// Orders the work, breaking cycles through nullable foreign keys.
    fn order(&self, work: &mut Work) -> Result<Vec<u32>, FlushError> {
        let ranks = self.table_ranks();
        loop {
            // Broken edges stay in place with `before == u32::MAX` so that the
            // indices `breaks` holds stay valid; the sort sees the live ones.
            let live_edges: Vec<usize> =
                (0..work.edges.len()).filter(|&i| work.edges[i].before != u32::MAX).collect();
            let edges: Vec<Edge> = live_edges.iter().map(|&i| work.edges[i]).collect();
            let n = work.nodes.len();
            let live: Vec<bool> = work
                .nodes
                .iter()
                .enumerate()
                .map(|(i, node)| match work.op(i as u32) {
                    None => node.kind == Kind::AssocInsert,
                    Some(RowOp::Insert { row, .. }) => !row.is_empty() || node.kind == Kind::AssocInsert,
                    Some(RowOp::Update { columns, .. }) => !columns.is_empty(),
                    Some(RowOp::Delete { .. }) => true,
                })
                .collect();
            let bucket: Vec<u64> = work
                .nodes
                .iter()
                .map(|node| {
                    let rank = ranks[node.table.index()] as u64;
                    let rank = if node.kind == Kind::Delete { 1 << 20 } else { 0 }
                        + if node.kind == Kind::Delete { (1 << 20) - rank } else { rank };
                    ((node.kind as u64) << 32) | rank
                })
                .collect();
            match order::order(n, &bucket, &edges) {
                Ordered::Done(order) => return Ok(order.into_iter().filter(|&i| live[i as usize]).collect()),
                Ordered::Cycle(nodes) => {
                    let names: Vec<String> = nodes
                        .iter()
                        .map(|&i| match work.nodes[i as usize].reason {
                            Reason::Insert(o)
                            | Reason::Update(o)
                            | Reason::PostUpdate(o)
                            | Reason::Delete(o, _) => self.describe(o),
                            Reason::Rekey { new, .. } => self.describe(new),
                            Reason::AssocInsert(_, a, b) | Reason::AssocDelete(_, a, b) => {
                                format!("{} - {}", self.describe(a), self.describe(b))
                            }
                            Reason::AssocDeleteAll(_, o) => self.describe(o),
                        })
                        .collect();
                    return Err(FlushError::Cycle { cycle: names.join(" -> ") });
                }
                Ordered::Break(edges) => {
                    let mut broke = false;
                    for e in edges {
                        broke |= self.break_edge(work, live_edges[e]);
                    }
                    if !broke {
                        return Err(FlushError::Cycle { cycle: "rows that reference each other".into() });
                    }
                }
            }
        }
    }

    /// Tables in foreign-key order (referenced first); declaration order where cyclic.
    fn table_ranks(&self) -> Vec<u32> {
        let n = self.schema.tables().len();
        let mut graph = petgraph::graph::DiGraph::<usize, ()>::new();
        let nodes: Vec<_> = (0..n).map(|i| graph.add_node(i)).collect();
        for fk in self.schema.foreign_keys() {
            if fk.table != fk.ref_table {
                graph.add_edge(nodes[fk.ref_table.index()], nodes[fk.table.index()], ());
            }
        }
        let mut ranks: Vec<u32> = (0..n as u32).collect();
        if let Ok(order) = petgraph::algo::toposort(&graph, None) {
            for (rank, node) in order.into_iter().enumerate() {
                ranks[graph[node]] = rank as u32;
            }
        }
        ranks
    }

    /// Per table, whether a foreign-key path leads from it back to itself
    /// (a self-reference included): only there can the rows of one flush
    /// depend on each other in a cycle.
    fn cyclic_tables(&self) -> Vec<bool> {
        let n = self.schema.tables().len();
        let mut cyclic = vec![false; n];
        let mut graph = petgraph::graph::DiGraph::<usize, ()>::new();
        let nodes: Vec<_> = (0..n).map(|i| graph.add_node(i)).collect();
        for fk in self.schema.foreign_keys() {
            if fk.table == fk.ref_table {
                cyclic[fk.table.index()] = true;
            } else {
                graph.add_edge(nodes[fk.ref_table.index()], nodes[fk.table.index()], ());
            }
        }
        for component in petgraph::algo::tarjan_scc(&graph) {
            if component.len() > 1 {
                for node in component {
                    cyclic[graph[node]] = true;
                }
            }
        }
        cyclic
    }

    /// The ordered operations, with generated-key references renumbered to positions.
    pub(crate) fn sequence(work: &mut Work, order: &[u32]) -> (Vec<RowOp>, Vec<u32>) {
        let mut position = vec![u32::MAX; work.nodes.len()];
        for (p, &node) in order.iter().enumerate() {
            position[node as usize] = p as u32;
        }
        let renumber = |cells: &mut Box<[Cell]>| {
            for cell in cells.iter_mut() {
                if let Cell::Generated(node) = cell {
                    *node = position[*node as usize];
                }
            }
        };
        let mut ops = Vec::with_capacity(order.len());
        for &node in order {
            // Moved out: after sequencing only the nodes' kinds and reasons are read.
            let mut op = work.take_op(node);
            match &mut op {
                RowOp::Insert { row, .. } => renumber(row),
                RowOp::Update { key, values, .. } => {
                    renumber(key);
                    renumber(values);
                }
                RowOp::Delete { values, .. } => renumber(values),
            }
            ops.push(op);
        }
        (ops, position)
    }

    /// After the store committed: the session's record moves to the flushed
    /// state, read from the operations as they ran.
    pub(crate) fn committed(&mut self, work: Work, ops: &[RowOp], order: &[u32], keys: &[Option<i64>]) {
        self.graph.set_journaling(false);
        self.record_ops(&work, ops, order, keys, None);
        // A re-key (rule 20) holds even when its UPDATE had no column to
        // change and so never ran: the new object's row is in the graph, the
        // old object's row is now the new one's.
        for node in &work.nodes {
            if let Reason::Rekey { new, old } = node.reason {
                self.record(new, node.table, &[], &mut std::iter::empty(), None);
                if let Some(t) = self.tracked.get_mut(old) {
                    t.persisted = false;
                }
            }
        }
        let mut gone = Vec::with_capacity(work.deleted.len());
        for &d in &work.deleted {
            self.forget_deleted(d, None);
            // The deleted object leaves every collection and scalar now that the flush committed (rule 18).
            gone.extend(self.graph.remove(d).ok());
        }
        self.settle(&work);
        free_later((gone, work));
    }

    /// Records the rows `ops` (nodes `order` of `work`, as they ran) wrote,
    /// noting in `log` what it changed when there is one.
    pub(crate) fn record_ops(
        &mut self,
        work: &Work,
        ops: &[RowOp],
        order: &[u32],
        keys: &[Option<i64>],
        mut log: Option<&mut RecordLog>,
    ) {
        let resolve = |cell: &Cell| -> Value {
            match cell {
                Cell::Value(v) => v.clone(),
                Cell::Generated(op) => {
                    keys.get(*op as usize).copied().flatten().map_or(Value::Null, Value::Integer)
                }
            }
        };
        // Sized once: every inserted row enters the identity map.
        let mut inserts = vec![0usize; self.identity.len()];
        for op in ops {
            if let RowOp::Insert { table, .. } = op {
                inserts[table.index()] += 1;
            }
        }
        for (map, n) in self.identity.iter_mut().zip(inserts) {
            map.reserve(n);
        }
        // Taken out for the loop, so that each row borrows its table's key
        // columns instead of cloning a handle to them.
        let key_columns = std::mem::take(&mut self.key_columns);
        for (p, (&node, op)) in order.iter().zip(ops).enumerate() {
            match (work.nodes[node as usize].reason, op) {
                (Reason::Insert(o), RowOp::Insert { table, row }) => {
                    let key_columns = &key_columns[table.index()];
                    self.record_inserted(key_columns, o, *table, row, p, keys, log.as_deref_mut());
                }
                (Reason::Update(o) | Reason::PostUpdate(o), RowOp::Update { table, columns, values, .. }) => {
                    if work.delete_node.contains_key(o) {
                        continue;
                    }
                    let mut values = values.iter().map(&resolve);
                    self.record(o, *table, columns, &mut values, log.as_deref_mut());
                }
                _ => {}
            }
        }
        self.key_columns = key_columns;
    }

    /// A deleted row is gone: its object leaves the identity map (unless a
    /// re-key gave its key to a successor) and becomes detached. Its links
    /// stay until the graph removes it.
    pub(crate) fn forget_deleted(&mut self, d: ObjectKey, log: Option<&mut RecordLog>) {
        // The store has committed: a missing object is skipped, not a panic.
        let Ok(entity) = self.graph.entity_of(d) else { return };
        let table = self.schema.entity(entity).table;
        // A single-column key is copied onto the stack, not collected.
        let (single, many) = match self.schema.table(table).primary_key.as_slice() {
            [pk] => (self.stored(d).map(|row| row[*pk as usize].clone()), None),
            _ => (None, self.stored(d).map(|row| self.pk_of_row(table, row))),
        };
        let key = single.as_ref().map(std::slice::from_ref).or(many.as_deref());
        let mut log = log;
        if let Some(key) = key
            && self.identity[table.index()].remove_if(key, d)
            && let Some(log) = log.as_deref_mut()
        {
            log.forgotten(table, key.into(), d);
        }
        if let Some(t) = self.tracked.get_mut(d) {
            let snapshot = t.snapshot.take();
            if let Some(log) = log {
                log.tracked(d, t.state, t.persisted, t.dirty, snapshot);
            }
            t.state = State::Detached;
            t.persisted = false;
        }
    }

    /// The end of a committed flush, after its rows are recorded: dropped
    /// objects are transient again, nothing is staged or written any more
    /// (but for detached objects), and the link changes are cleared.
    pub(crate) fn settle(&mut self, work: &Work) {
        for &o in &work.dropped {
            if let Some(t) = self.tracked.get_mut(o) {
                t.state = State::Transient;
            }
        }
        self.staged.clear();
        // Every stored row now equals its graph row, written columns included,
        // except a detached object's: the flush did not write it, and its
        // changes wait, with its stored row, until it is added back.
        for key in std::mem::take(&mut self.written) {
            if let Some(t) = self.tracked.get_mut(key) {
                if t.state == State::Detached && t.persisted {
                    self.written.push(key);
                    continue;
                }
                t.dirty = false;
                t.snapshot = None;
            }
        }
        self.net.clear();
        self.graph.take_journal();
        self.graph.set_journaling(true);
    }
}

/// Flushes of at least this many row operations free their plan on another thread.
const FREE_LATER_MIN: usize = 10_000;

/// Frees a large flush's operations or plan on a thread of its own: freeing
/// 100,000 rows of cells costs milliseconds the caller need not wait for.
/// Small ones, or any when no thread can start, are freed here.
pub(crate) fn free_later<T: Send + 'static + Footprint>(value: T) {
    if value.footprint() >= FREE_LATER_MIN {
        // On failure the closure, and the value with it, is dropped here.
        let _ = std::thread::Builder::new().name("relgraph-free".into()).spawn(move || drop(value));
    }
}

/// How many row operations a value holds, for [`free_later`].
pub(crate) trait Footprint {
    fn footprint(&self) -> usize;
}

impl Footprint for Vec<RowOp> {
    fn footprint(&self) -> usize {
        self.len()
    }
}

/// The rows of objects a flush deleted, as the graph gave them back.
impl Footprint for Vec<Row> {
    fn footprint(&self) -> usize {
        self.len()
    }
}

/// What a flush leaves behind, freed together: one thread, not one each.
impl<A: Footprint, B: Footprint> Footprint for (A, B) {
    fn footprint(&self) -> usize {
        self.0.footprint() + self.1.footprint()
    }
}

impl<T: Footprint> Footprint for Option<T> {
    fn footprint(&self) -> usize {
        self.as_ref().map_or(0, Footprint::footprint)
    }
}

/// The objects a flush deleted, as the graph gave them back.
impl Footprint for relgraph_graph::Removed {
    fn footprint(&self) -> usize {
        self.rows().len()
    }
}

impl Footprint for Work {
    fn footprint(&self) -> usize {
        self.nodes.len()
    }
}
