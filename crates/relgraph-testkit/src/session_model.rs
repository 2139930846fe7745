//! The model-based test of the session and a store: operations applied
//! through a [`Session`] and to the reference model, flushes interleaved.
//! Between flushes only success or refusal is compared (a deleted object's
//! links stay visible in the session until its flush commits, by design);
//! after every flush everything is: the session's graph against the model,
//! the store's rows against the rows the model implies, and a fresh session
//! over the same database against the model.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use relgraph_core::{LinkKind, Row, Schema, Store, Value};
use relgraph_graph::ObjectKey;
use relgraph_session::{Session, SessionError};

use crate::memory_store::compare_rows;
use crate::model::Model;
use crate::ops::{Op, Step, check_graph, resolve};

/// A session and the model side by side. `reopen` gives a new store over
/// the same database, for the fresh-session check.
pub struct SessionHarness {
    schema: Arc<Schema>,
    session: Session,
    model: Model,
    keys: Vec<ObjectKey>,
    numbers: HashMap<ObjectKey, usize>,
    by_entity: Vec<Vec<usize>>,
    reopen: Box<dyn FnMut() -> Box<dyn Store>>,
    /// Set for a pipelined run: what the store was sent, to compare with the plan.
    sent: Option<crate::fault::FaultHandle>,
    /// Flushes that ran as a pipeline.
    pub pipelined: usize,
    /// Flushes recorded while the store wrote them.
    pub overlapped: usize,
    /// Flushes that sent UPDATEs before their plan was complete.
    pub streamed: usize,
    /// Flushes that sent UPDATEs even before their cascades and deletes
    /// were worked out.
    pub sent_ahead: usize,
    /// Flushes that began more than one transaction: what they sent ahead
    /// was not their plan's beginning after all, or a load took the store back.
    pub retried: usize,
    /// Operations applied.
    pub steps: usize,
    /// Flushes checked.
    pub flushes: usize,
}

impl SessionHarness {
    /// A session over `store`; `reopen` opens the same database again.
    ///
    /// # Panics
    /// If the store cannot create the tables.
    pub fn new(
        schema: Arc<Schema>,
        store: Box<dyn Store>,
        reopen: Box<dyn FnMut() -> Box<dyn Store>>,
    ) -> Self {
        let entities = schema.entities().len();
        SessionHarness {
            session: Session::with_store(schema.clone(), store).expect("create tables"),
            model: Model::new(&schema),
            schema,
            keys: Vec::new(),
            numbers: HashMap::new(),
            by_entity: vec![Vec::new(); entities],
            reopen,
            sent: None,
            pipelined: 0,
            overlapped: 0,
            streamed: 0,
            sent_ahead: 0,
            retried: 0,
            steps: 0,
            flushes: 0,
        }
    }

    /// A session over `store` that runs every flush of new rows only as a
    /// pipeline, and checks that each flush sends exactly the operations
    /// its plan lists, in order.
    ///
    /// # Panics
    /// If the store cannot create the tables.
    pub fn pipelined(
        schema: Arc<Schema>,
        store: Box<dyn Store>,
        reopen: Box<dyn FnMut() -> Box<dyn Store>>,
    ) -> Self {
        let (store, sent) = crate::fault::FaultStore::new(store, crate::fault::Fault::Never);
        let mut h = SessionHarness::new(schema, Box::new(store), reopen);
        h.session.set_pipeline_threshold(0);
        h.sent = Some(sent);
        h
    }

    /// Applies one operation to both. Between flushes only success or
    /// refusal is compared (see the module doc).
    ///
    /// # Errors
    /// A description of the first disagreement.
    pub fn apply(&mut self, op: &Op) -> Result<(), String> {
        self.steps += 1;
        let Some(step) = resolve(op, &self.schema, &self.by_entity, self.keys.len()) else { return Ok(()) };
        let key = |n: usize| self.keys[n];
        let text = |e: SessionError| e.to_string();
        let (model_ok, session): (bool, Result<(), String>) = match step {
            Step::Flush => return self.flush_and_check(),
            Step::Insert(entity) => {
                let number = self.model.insert(entity);
                let k = self.session.new_object(entity);
                self.session.add(k).map_err(text)?;
                self.keys.push(k);
                self.numbers.insert(k, number);
                self.by_entity[entity.index()].push(number);
                return Ok(());
            }
            Step::Remove(o) => (self.model.remove(o).is_ok(), self.session.delete(key(o)).map_err(text)),
            Step::SetName(o, value) => {
                let session = match self.session.graph().entity_of(key(o)) {
                    Ok(entity) => {
                        let column =
                            self.schema.entity_column(entity, "name").expect("family tables have a name");
                        self.session.set_value(key(o), column, value.clone()).map(drop).map_err(text)
                    }
                    Err(e) => Err(e.to_string()),
                };
                (self.model.set_name(o, value).is_ok(), session)
            }
            Step::Append(rel, a, b) => (
                self.model.append(rel.index(), a, b).is_ok(),
                self.session.append(key(a), rel, key(b)).map(drop).map_err(text),
            ),
            Step::RemoveMember(rel, a, b) => (
                self.model.remove_member(rel.index(), a, b).is_ok(),
                self.session.remove_member(key(a), rel, key(b)).map(drop).map_err(text),
            ),
            Step::Set(rel, a, t) => (
                self.model.set(rel.index(), a, t).is_ok(),
                self.session.set(key(a), rel, t.map(key)).map(drop).map_err(text),
            ),
            Step::Replace(rel, a, members) => {
                let keys: Vec<ObjectKey> = members.iter().map(|&m| key(m)).collect();
                (
                    self.model.replace(rel.index(), a, &members).is_ok(),
                    self.session.replace(key(a), rel, &keys).map_err(text),
                )
            }
            Step::Clear(rel, a) => (
                self.model.clear(rel.index(), a).is_ok(),
                self.session.clear(key(a), rel).map(drop).map_err(text),
            ),
        };
        if model_ok != session.is_ok() {
            return Err(format!("step {}: {op:?}: model ok: {model_ok}, session: {session:?}", self.steps));
        }
        Ok(())
    }

    /// Flushes, then checks everything against the model.
    ///
    /// # Errors
    /// A description of the first disagreement.
    pub fn flush_and_check(&mut self) -> Result<(), String> {
        let step = self.steps;
        let planned = self.session.plan();
        let plan = planned.as_ref().map(|p| p.to_string()).unwrap_or_else(|e| e.to_string());
        let begun = self.sent.as_ref().map(crate::fault::FaultHandle::transactions);
        let stats =
            self.session.flush().map_err(|e| format!("step {step}: flush failed: {e}\nplan:\n{plan}"))?;
        self.flushes += 1;
        self.sent_ahead += usize::from(stats.sent_ahead > 0);
        if let (Some(sent), Some(begun)) = (&self.sent, begun) {
            self.retried += usize::from(sent.transactions() > begun + 1);
        }
        self.pipelined += usize::from(stats.pipelined);
        self.overlapped += usize::from(stats.overlapped);
        self.streamed += usize::from(stats.streamed > 0);
        if let (Some(sent), Ok(planned)) = (&self.sent, &planned) {
            let planned: Vec<_> = planned.ops.iter().map(|p| p.op.clone()).collect();
            let sent = if planned.is_empty() { Vec::new() } else { sent.last_transaction() };
            if sent != planned {
                return Err(format!(
                    "step {step}: the flush (pipelined: {}, overlapped: {}) sent {sent:?}\nits plan:\n{plan}",
                    stats.pipelined, stats.overlapped
                ));
            }
        }
        check_graph(&self.schema, self.session.graph(), &self.model, &self.keys, &self.numbers, step)?;
        let pks = self.primary_keys()?;
        let expected = self.expected_rows(&pks);
        let actual =
            rows_of(&self.schema, self.session.store_mut()).map_err(|e| format!("step {step}: {e}"))?;
        if actual != expected {
            return Err(format!("step {step}: store rows {actual:?}\nmodel rows {expected:?}"));
        }
        self.check_fresh_session(&pks)
    }

    fn primary_keys(&self) -> Result<HashMap<usize, i64>, String> {
        let mut out = HashMap::new();
        for (number, entity) in self.model.live() {
            let id = self.schema.entity_column(entity, "id").expect("family tables have an id");
            let value = self.session.graph().value(self.keys[number], id).map_err(|e| e.to_string())?;
            let id =
                value.as_i64().ok_or_else(|| format!("object {number} has no key after a flush: {value}"))?;
            out.insert(number, id);
        }
        Ok(out)
    }

    /// The rows the model implies: every live object with its foreign keys
    /// from its links, every many-to-many link as an association row.
    fn expected_rows(&self, pks: &HashMap<usize, i64>) -> BTreeMap<String, Vec<Row>> {
        let mut tables: BTreeMap<String, Vec<Row>> =
            self.schema.tables().iter().map(|t| (t.name.clone(), Vec::new())).collect();
        for (number, entity) in self.model.live() {
            let table = self.schema.entity(entity).table;
            let def = self.schema.table(table);
            let mut row = vec![Value::Null; def.columns.len()];
            row[0] = Value::Integer(pks[&number]);
            row[1] = self.model.name(number).map_or(Value::Null, Value::from);
            for link in self.schema.link_ids() {
                let LinkKind::ForeignKey(fk) = self.schema.link(link).kind else { continue };
                let fk = self.schema.foreign_key(fk);
                if fk.table != table || self.schema.link(link).ends[0].entity != entity {
                    continue;
                }
                if let Some(&target) = self.model.list(link.index(), 0, number).first() {
                    row[fk.columns[0] as usize] = Value::Integer(pks[&target]);
                }
            }
            tables.get_mut(&def.name).expect("every table").push(row.into());
        }
        for link in self.schema.link_ids() {
            let LinkKind::Secondary { table, foreign_keys } = self.schema.link(link).kind else { continue };
            let def = self.schema.table(table);
            for (source, _) in self.model.live() {
                for &target in self.model.list(link.index(), 0, source) {
                    let mut row = vec![Value::Null; def.columns.len()];
                    row[self.schema.foreign_key(foreign_keys[0]).columns[0] as usize] =
                        Value::Integer(pks[&source]);
                    row[self.schema.foreign_key(foreign_keys[1]).columns[0] as usize] =
                        Value::Integer(pks[&target]);
                    tables.get_mut(&def.name).expect("every table").push(row.into());
                }
            }
        }
        for rows in tables.values_mut() {
            rows.sort_by(|a, b| compare_rows(a, b));
        }
        tables
    }

    /// A new session over the same database, everything loaded, against the model.
    fn check_fresh_session(&mut self, pks: &HashMap<usize, i64>) -> Result<(), String> {
        let step = self.steps;
        let store = (self.reopen)();
        let mut fresh = Session::with_store(self.schema.clone(), store).map_err(|e| e.to_string())?;
        let mut by_pk: HashMap<(usize, i64), ObjectKey> = HashMap::new();
        for entity in self.schema.entity_ids() {
            let id = self.schema.entity_column(entity, "id").expect("id");
            for key in fresh.load_all(entity).map_err(|e| e.to_string())? {
                let pk =
                    fresh.graph().value(key, id).map_err(|e| e.to_string())?.as_i64().expect("integer keys");
                by_pk.insert((entity.index(), pk), key);
            }
        }
        let all: Vec<ObjectKey> = by_pk.values().copied().collect();
        for rel in self.schema.relationship_ids() {
            let entity = self.schema.relationship(rel).entity;
            let owners: Vec<ObjectKey> =
                all.iter().copied().filter(|&k| fresh.graph().entity_of(k).ok() == Some(entity)).collect();
            fresh.load_relationship(&owners, rel).map_err(|e| e.to_string())?;
        }
        for (number, entity) in self.model.live() {
            let key = by_pk
                .get(&(entity.index(), pks[&number]))
                .ok_or_else(|| format!("step {step}: object {number} missing"))?;
            for &rel in &self.schema.entity(entity).relationships {
                let target = self.schema.relationship(rel).target;
                let id = self.schema.entity_column(target, "id").expect("id");
                let mut got: Vec<i64> = fresh
                    .members(*key, rel)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|m| fresh.graph().value(m, id).expect("live").as_i64().expect("key"))
                    .collect();
                let mut want: Vec<i64> =
                    self.model.members(rel.index(), number).iter().map(|m| pks[m]).collect();
                got.sort_unstable();
                want.sort_unstable();
                if got != want {
                    return Err(format!(
                        "step {step}: a fresh session sees {} of object {number} as {got:?}, the model {want:?}",
                        self.schema.relationship_path(rel)
                    ));
                }
            }
        }
        Ok(())
    }
}

impl SessionHarness {
    /// The store's rows with every key (primary and foreign) replaced by the
    /// model's number for that object, sorted: equal across stores for the
    /// same operations even where they generate different key values.
    ///
    /// # Errors
    /// A description of a row the model does not know.
    pub fn normalized_rows(&mut self) -> Result<BTreeMap<String, Vec<Vec<Value>>>, String> {
        let pks = self.primary_keys()?;
        // Per table: stored key to model number.
        let mut numbers: HashMap<(usize, i64), i64> = HashMap::new();
        for (number, entity) in self.model.live() {
            numbers.insert((self.schema.entity(entity).table.index(), pks[&number]), number as i64);
        }
        let rows = rows_of(&self.schema, self.session.store_mut()).map_err(|e| e.to_string())?;
        let mut out = BTreeMap::new();
        for table_id in self.schema.table_ids() {
            let table = self.schema.table(table_id);
            // Which table each key column's values come from.
            let mut key_of: HashMap<u32, usize> = HashMap::new();
            if table.entity.is_some() {
                for &c in &table.primary_key {
                    key_of.insert(c, table_id.index());
                }
            }
            for &fk in &table.foreign_keys {
                let fk = self.schema.foreign_key(fk);
                for &c in &fk.columns {
                    key_of.insert(c, fk.ref_table.index());
                }
            }
            let mut normalized: Vec<Vec<Value>> = Vec::new();
            for row in &rows[&table.name] {
                let mut mapped = Vec::with_capacity(row.len());
                for (c, value) in row.iter().enumerate() {
                    mapped.push(match (key_of.get(&(c as u32)), value) {
                        (Some(&t), Value::Integer(k)) => Value::Integer(
                            *numbers
                                .get(&(t, *k))
                                .ok_or_else(|| format!("table {} holds unknown key {k}", table.name))?,
                        ),
                        _ => value.clone(),
                    });
                }
                normalized.push(mapped);
            }
            normalized.sort_by(|a, b| compare_rows(a, b));
            out.insert(table.name.clone(), normalized);
        }
        Ok(out)
    }
}

/// Runs `ops` as [`run`] does and returns the normalized rows at the end
/// (see [`SessionHarness::normalized_rows`]), for differential tests.
///
/// # Errors
/// The first disagreement with the model.
pub fn run_normalized(
    schema: Arc<Schema>,
    store: Box<dyn Store>,
    reopen: Box<dyn FnMut() -> Box<dyn Store>>,
    ops: &[Op],
) -> Result<BTreeMap<String, Vec<Vec<Value>>>, String> {
    let mut h = SessionHarness::new(schema, store, reopen);
    for op in ops {
        h.apply(op)?;
    }
    h.flush_and_check()?;
    h.normalized_rows()
}

/// Every table's rows, sorted, by table name.
///
/// # Errors
/// The store's.
pub fn rows_of(
    schema: &Schema,
    store: &mut dyn Store,
) -> Result<BTreeMap<String, Vec<Row>>, relgraph_core::StoreError> {
    let mut out = BTreeMap::new();
    for t in schema.table_ids() {
        let mut rows = store.load_all(schema, t)?;
        rows.sort_by(|a, b| compare_rows(a, b));
        out.insert(schema.table(t).name.clone(), rows);
    }
    Ok(out)
}

/// Runs `ops` through a session and the model, flushing at `Op::Flush` and at the end.
///
/// # Errors
/// The first disagreement.
pub fn run(
    schema: Arc<Schema>,
    store: Box<dyn Store>,
    reopen: Box<dyn FnMut() -> Box<dyn Store>>,
    ops: &[Op],
) -> Result<(usize, usize), String> {
    let mut h = SessionHarness::new(schema, store, reopen);
    for op in ops {
        h.apply(op)?;
    }
    h.flush_and_check()?;
    Ok((h.steps, h.flushes))
}

/// As [`run`], with every flush of new rows only run as a pipeline and
/// checked against its plan (see [`SessionHarness::pipelined`]); returns
/// its counters.
///
/// # Errors
/// The first disagreement.
pub fn run_pipelined(
    schema: Arc<Schema>,
    store: Box<dyn Store>,
    reopen: Box<dyn FnMut() -> Box<dyn Store>>,
    ops: &[Op],
) -> Result<Counts, String> {
    let mut h = SessionHarness::pipelined(schema, store, reopen);
    for op in ops {
        h.apply(op)?;
    }
    h.flush_and_check()?;
    Ok(Counts {
        steps: h.steps,
        flushes: h.flushes,
        pipelined: h.pipelined,
        overlapped: h.overlapped,
        streamed: h.streamed,
        sent_ahead: h.sent_ahead,
        retried: h.retried,
    })
}

/// What a run of [`run_pipelined`] saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Operations applied.
    pub steps: usize,
    /// Flushes checked.
    pub flushes: usize,
    /// Flushes that ran as a pipeline.
    pub pipelined: usize,
    /// Flushes recorded while the store wrote them.
    pub overlapped: usize,
    /// Flushes that sent UPDATEs before their plan was complete.
    pub streamed: usize,
    /// Flushes that sent UPDATEs before their cascades were worked out.
    pub sent_ahead: usize,
    /// Flushes that began more than one transaction.
    pub retried: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.steps += other.steps;
        self.flushes += other.flushes;
        self.pipelined += other.pipelined;
        self.overlapped += other.overlapped;
        self.streamed += other.streamed;
        self.sent_ahead += other.sent_ahead;
        self.retried += other.retried;
    }
}

/// Runs a model-based property over random schemas of the family and
/// random operation sequences (up to `max_ops` long): the seed comes from
/// `RELGRAPH_SEED` or the clock and is printed for replay; `cases_var` names
/// the variable that overrides `default_cases`. `salt` keeps tests that
/// share a seed on different sequences. `case` gets the case number.
///
/// # Panics
/// On the first failing case, with the seed to replay it.
pub fn property(
    label: &str,
    cases_var: &str,
    default_cases: u32,
    max_ops: usize,
    salt: u64,
    case: impl FnMut(usize, Arc<Schema>, &[Op]) -> Result<(), String>,
) {
    let ops = proptest::collection::vec(crate::ops::op(), 1..max_ops);
    property_over(label, cases_var, default_cases, ops, salt, case);
}

/// As [`property`], with the operation sequences drawn from `ops` (such
/// as [`crate::ops::phased_ops`]).
///
/// # Panics
/// On the first failing case, with the seed to replay it.
pub fn property_over(
    label: &str,
    cases_var: &str,
    default_cases: u32,
    ops: impl proptest::strategy::Strategy<Value = Vec<Op>>,
    salt: u64,
    mut case: impl FnMut(usize, Arc<Schema>, &[Op]) -> Result<(), String>,
) {
    use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
    let seed: u64 = std::env::var("RELGRAPH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    println!("{label} seed: RELGRAPH_SEED={seed}");
    let cases = std::env::var(cases_var).ok().and_then(|c| c.parse().ok()).unwrap_or(default_cases);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&(seed ^ salt).to_le_bytes());
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    // proptest takes a `Fn`; the case and its counter are mutable state of this one thread.
    let n = std::cell::Cell::new(0);
    let case = std::cell::RefCell::new(&mut case);
    let strategy = (crate::family::schema_spec(), ops);
    let result = runner.run(&strategy, |(spec, ops)| {
        n.set(n.get() + 1);
        (case.borrow_mut())(n.get(), spec.build(), &ops).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{label}: {e}\nreplay with RELGRAPH_SEED={seed}");
    }
}
