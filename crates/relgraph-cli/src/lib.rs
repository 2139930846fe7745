//! The `relgraph` command's library: the snapshot tools, and the benchmark
//! workloads against their baselines, shared by the command and the
//! criterion benches.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod pg_bench;
pub mod phases;
pub mod snapshot_bench;
pub mod sqlite_bench;
pub mod tools;
