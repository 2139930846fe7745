//! The session's share of a flush: W1 and W2 into a store that does nothing.
use relgraph_core::*;
struct Null;
impl Store for Null {
    fn create_tables(&mut self, _: &Schema) -> Result<(), StoreError> {
        Ok(())
    }
    fn begin(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn apply(&mut self, _: &Schema, ops: &[RowOp]) -> Result<Vec<Option<i64>>, StoreError> {
        Ok(vec![None; ops.len()])
    }
    fn commit(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn rollback(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn load(&mut self, _: &Schema, _: TableId, _: &[u32], _: &[Row]) -> Result<Vec<Row>, StoreError> {
        Ok(vec![])
    }
    fn load_all(&mut self, _: &Schema, _: TableId) -> Result<Vec<Row>, StoreError> {
        Ok(vec![])
    }
    fn set_echo(&mut self, _: Option<Echo>) {}
}
fn main() {
    for _ in 0..5 {
        let t = relgraph_cli::sqlite_bench::relgraph_w1(Box::new(Null), 10_000).unwrap();
        println!("W1 session-only flush: {:.4} s", t.as_secs_f64());
    }
    for _ in 0..3 {
        let t = relgraph_cli::sqlite_bench::relgraph_w2(Box::new(Null), 10_000).unwrap();
        println!("W2 session-only flush: {:.4} s", t.as_secs_f64());
    }
}
