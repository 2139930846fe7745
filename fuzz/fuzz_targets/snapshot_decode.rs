//! The snapshot decoder on arbitrary bytes: opening (header, checksums, rkyv
//! validation, log replay), reading every row, looking every row up by
//! every index and verifying must return, never panic. The same decoder runs
//! on stable over a generated corpus in
//! `crates/relgraph-snapshot/tests/decoder.rs`, whose seed files make a good
//! starting corpus here.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = relgraph_snapshot::decode(data);
});
