//! The conformance suite on the snapshot store: once with the default
//! compaction, where a small file's rows live in the log and its overlay,
//! and once compacting at every commit, so that every read after a commit
//! goes to the archived image (binary searches over its columns and
//! stored or implicit indexes).

use relgraph_snapshot::{Compaction, SnapshotOptions, SnapshotStore};

fn conforms(name: &str, compaction: Compaction) {
    let dir = tempfile::Builder::new().prefix(&format!("relgraph-snapshot-{name}-")).tempdir().unwrap();
    let options = SnapshotOptions { sync: false, compaction };
    let mut n = 0;
    relgraph_testkit::conformance::run(&mut || {
        n += 1;
        Box::new(SnapshotStore::with_options(dir.path().join(format!("db{n}.snap")), options).expect("open"))
    });
}

#[test]
fn snapshot_conforms() {
    conforms("conformance", Compaction::Auto);
}

#[test]
fn snapshot_compacted_at_every_commit_conforms() {
    conforms("conformance-compacted", Compaction::EveryCommit);
}
