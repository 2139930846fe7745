//! relgraph facade (filled in below).
#![forbid(unsafe_code)]
pub use relgraph_core as core;
