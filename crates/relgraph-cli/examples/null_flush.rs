//! The session's own share of a flush: W1 and W2 flushed into a store that
//! accepts every operation and does nothing, five and three times, so what
//! is timed is building, ordering and recording the row operations.
//!
//! `cargo run --release -p relgraph-cli --example null_flush`

use relgraph_cli::sqlite_bench::{relgraph_w1, relgraph_w2};
use relgraph_core::{Echo, InsertBatch, Row, RowOp, Schema, Store, StoreError, TableId};

/// A store that accepts everything and keeps nothing.
struct NullStore;

impl Store for NullStore {
    fn create_tables(&mut self, _: &Schema) -> Result<(), StoreError> {
        Ok(())
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn apply(&mut self, _: &Schema, ops: &[RowOp], keys: &mut Vec<Option<i64>>) -> Result<(), StoreError> {
        keys.resize(keys.len() + ops.len(), None);
        Ok(())
    }

    // New rows come laid end to end; taking them as they are keeps the
    // figure the session's alone (the provided method would box each row).
    fn apply_inserts(
        &mut self,
        _: &Schema,
        batch: &mut InsertBatch,
        keys: &mut Vec<Option<i64>>,
    ) -> Result<(), StoreError> {
        keys.resize(keys.len() + batch.len(), None);
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn load(&mut self, _: &Schema, _: TableId, _: &[u32], _: &[Row]) -> Result<Vec<Row>, StoreError> {
        Ok(Vec::new())
    }

    fn load_all(&mut self, _: &Schema, _: TableId) -> Result<Vec<Row>, StoreError> {
        Ok(Vec::new())
    }

    fn set_echo(&mut self, _: Option<Echo>) {}
}

fn main() -> anyhow::Result<()> {
    for _ in 0..5 {
        let t = relgraph_w1(Box::new(NullStore), 10_000)?;
        println!("W1 session-only flush: {:.4} s", t.as_secs_f64());
    }
    for _ in 0..3 {
        let t = relgraph_w2(Box::new(NullStore), 10_000)?;
        println!("W2 session-only flush: {:.4} s", t.as_secs_f64());
    }
    Ok(())
}
