//! Operation sequences on random schemas: any input decodes to a schema of
//! the family and a sequence of graph operations, which must agree with the
//! reference model after every step. The same decoder runs on stable in
//! `crates/relgraph-testkit/tests/model.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relgraph_testkit::ops;

fuzz_target!(|data: &[u8]| {
    let (spec, sequence) = ops::decode(data);
    if let Err(disagreement) = ops::run(spec.build(), &sequence) {
        panic!("{disagreement}");
    }
});
