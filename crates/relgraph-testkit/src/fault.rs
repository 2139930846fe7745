//! A store that fails on purpose: at the N-th row operation of a
//! transaction (with an error, or a panic), or at commit, after passing
//! everything before it to the store it wraps. It drives the "a failed flush loses nothing" tests.

use std::sync::{Arc, Mutex};

use relgraph_core::{Echo, ErrorKind, InsertBatch, Row, RowOp, Schema, Store, StoreError, TableId};

/// Where to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Never; count operations only.
    Never,
    /// At the operation with this 0-based index within a transaction.
    AtOp(usize),
    /// At commit.
    AtCommit,
    /// A panic at the operation with this 0-based index within a
    /// transaction, as a store with a bug would: the caller's record of the
    /// flush must survive it too.
    PanicAtOp(usize),
    /// At the read ([`Store::load`]) with this 0-based index, counted from
    /// when the fault was set, in or out of a transaction.
    AtLoad(usize),
}

/// What a [`FaultHandle`] shares with its store: where to fail, and the
/// operations the last transaction asked for.
#[derive(Debug)]
struct Control {
    fault: Fault,
    ops: Vec<RowOp>,
    /// Transactions begun.
    begun: usize,
    /// Reads since the fault was set.
    loads: usize,
}

/// Controls a [`FaultStore`] from outside the session that owns it.
#[derive(Clone, Debug)]
pub struct FaultHandle(Arc<Mutex<Control>>);

impl FaultHandle {
    /// Changes where the next transaction fails.
    pub fn set(&self, fault: Fault) {
        let mut control = self.0.lock().expect("fault lock");
        control.fault = fault;
        control.loads = 0;
    }

    /// How many operations the last transaction asked for, failed or not.
    pub fn last_transaction_ops(&self) -> usize {
        self.0.lock().expect("fault lock").ops.len()
    }

    /// How many transactions were begun, committed or not.
    pub fn transactions(&self) -> usize {
        self.0.lock().expect("fault lock").begun
    }

    /// The operations the last transaction asked for, in order, over all its calls.
    pub fn last_transaction(&self) -> Vec<RowOp> {
        self.0.lock().expect("fault lock").ops.clone()
    }
}

/// Wraps a store and injects one fault per transaction.
pub struct FaultStore {
    inner: Box<dyn Store>,
    control: FaultHandle,
    fault: Fault,
    /// Operations applied in the current transaction.
    applied: usize,
}

impl FaultStore {
    /// Wraps `inner`, failing as `fault` says; the handle changes it later.
    pub fn new(inner: Box<dyn Store>, fault: Fault) -> (Self, FaultHandle) {
        let control =
            FaultHandle(Arc::new(Mutex::new(Control { fault, ops: Vec::new(), begun: 0, loads: 0 })));
        (FaultStore { inner, control: control.clone(), fault, applied: 0 }, control)
    }

    /// The operation the fault falls on, if it is among the next `n`.
    fn fails_within(&self, n: usize) -> Option<usize> {
        match self.fault {
            Fault::AtOp(k) | Fault::PanicAtOp(k) if k >= self.applied && k < self.applied + n => Some(k),
            _ => None,
        }
    }

    fn injected(what: String) -> StoreError {
        StoreError::new(ErrorKind::Connection, format!("injected fault: {what}"))
    }
}

impl Store for FaultStore {
    fn create_tables(&mut self, schema: &Schema) -> Result<(), StoreError> {
        self.inner.create_tables(schema)
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        self.applied = 0;
        let mut control = self.control.0.lock().expect("fault lock");
        self.fault = control.fault;
        control.ops.clear();
        control.begun += 1;
        drop(control);
        self.inner.begin()
    }

    fn reserve(&mut self, operations: usize) {
        self.inner.reserve(operations);
    }

    fn apply(
        &mut self,
        schema: &Schema,
        ops: &[RowOp],
        keys: &mut Vec<Option<i64>>,
    ) -> Result<(), StoreError> {
        self.control.0.lock().expect("fault lock").ops.extend_from_slice(ops);
        if let Some(n) = self.fails_within(ops.len()) {
            let before = n - self.applied;
            self.inner.apply(schema, &ops[..before], keys)?;
            self.applied += before;
            assert!(!matches!(self.fault, Fault::PanicAtOp(_)), "injected panic at operation {n}");
            return Err(Self::injected(format!("operation {n} ({:?})", ops[before])));
        }
        self.applied += ops.len();
        self.inner.apply(schema, ops, keys)
    }

    // A call the fault does not fall in goes to the wrapped store's own
    // method, so its handed-over and laid-out paths are the ones tested;
    // one it falls in is applied as lent operations up to the fault.
    fn apply_owned(
        &mut self,
        schema: &Schema,
        ops: &mut Vec<RowOp>,
        keys: &mut Vec<Option<i64>>,
    ) -> Result<(), StoreError> {
        if self.fails_within(ops.len()).is_some() {
            return self.apply(schema, ops, keys);
        }
        self.control.0.lock().expect("fault lock").ops.extend_from_slice(ops);
        self.applied += ops.len();
        self.inner.apply_owned(schema, ops, keys)
    }

    fn apply_inserts(
        &mut self,
        schema: &Schema,
        batch: &mut InsertBatch,
        keys: &mut Vec<Option<i64>>,
    ) -> Result<(), StoreError> {
        let ops = batch.to_ops();
        if self.fails_within(ops.len()).is_some() {
            return self.apply(schema, &ops, keys);
        }
        self.control.0.lock().expect("fault lock").ops.extend(ops);
        self.applied += batch.len();
        self.inner.apply_inserts(schema, batch, keys)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if self.fault == Fault::AtCommit {
            return Err(Self::injected("commit".into()));
        }
        self.inner.commit()
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        self.inner.rollback()
    }

    fn load(
        &mut self,
        schema: &Schema,
        table: TableId,
        columns: &[u32],
        keys: &[Row],
    ) -> Result<Vec<Row>, StoreError> {
        let mut control = self.control.0.lock().expect("fault lock");
        let n = control.loads;
        control.loads += 1;
        if control.fault == Fault::AtLoad(n) {
            return Err(Self::injected(format!("read {n} (table {})", table.index())));
        }
        drop(control);
        self.inner.load(schema, table, columns, keys)
    }

    fn load_all(&mut self, schema: &Schema, table: TableId) -> Result<Vec<Row>, StoreError> {
        self.inner.load_all(schema, table)
    }

    fn set_echo(&mut self, echo: Option<Echo>) {
        self.inner.set_echo(echo);
    }

    fn prefers_whole_runs(&self) -> bool {
        self.inner.prefers_whole_runs()
    }
}
