//! The conformance suite on the in-memory reference store.

#[test]
fn memory_store_conforms() {
    relgraph_testkit::conformance::run(&mut || Box::new(relgraph_testkit::memory_store::MemoryStore::new()));
}
