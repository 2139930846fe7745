//! The conformance suite on the snapshot store, and the store's behaviour
//! across reopening.

use relgraph_snapshot::SnapshotStore;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("relgraph-snapshot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn snapshot_conforms() {
    let dir = scratch("conformance");
    let mut n = 0;
    relgraph_testkit::conformance::run(&mut || {
        n += 1;
        Box::new(SnapshotStore::open(dir.join(format!("db{n}.snap"))).expect("open"))
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
