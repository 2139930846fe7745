//! The conformance suite against a real PostgreSQL server, each check in a
//! schema of its own that is dropped afterwards, so runs never collide.
//! The server comes from `RELGRAPH_PG_URL` (default: the local server that
//! `.ci/run` starts). An unreachable server fails the test: it is not skipped.

use std::sync::atomic::{AtomicUsize, Ordering};

use relgraph_postgres::PostgresStore;

fn url() -> String {
    std::env::var("RELGRAPH_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

#[test]
fn postgres_conforms() {
    let prefix = format!("relgraph_conformance_{}", std::process::id());
    let n = AtomicUsize::new(0);
    let mut schemas = Vec::new();
    relgraph_testkit::conformance::run(&mut || {
        let schema = format!("{prefix}_{}", n.fetch_add(1, Ordering::Relaxed));
        schemas.push(schema.clone());
        Box::new(
            PostgresStore::connect_in_schema(&url(), &schema)
                .expect("PostgreSQL must be reachable for this test"),
        )
    });
    let mut admin = PostgresStore::connect(&url()).expect("PostgreSQL must be reachable");
    for schema in schemas {
        admin
            .client()
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .expect("drop test schema");
    }
}
