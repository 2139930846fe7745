//! The `relgraph` command's library: the benchmark workloads against their
//! baselines, shared by the command and the criterion benches.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod pg_bench;
pub mod sqlite_bench;
