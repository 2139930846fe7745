//! relgraph's test kit.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod workloads;
