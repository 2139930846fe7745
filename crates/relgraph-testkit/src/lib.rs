//! relgraph's test kit: the workloads of WORKLOADS.md, a family of random
//! schemas covering every relationship pattern, a plain reference model, and
//! the operation enum and harness that drive model-based property tests and
//! fuzzing. Later stores reuse all of it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod conformance;
pub mod family;
pub mod fault;
pub mod memory_store;
pub mod model;
pub mod ops;
pub mod rng;
pub mod seed;
pub mod session_model;
pub mod workloads;
