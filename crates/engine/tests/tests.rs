//! colorize-engine tests: every kernel family against the naive reference, ops against naive
//! versions, and the graph planner.

mod ddcolor_ops;
mod fold;
mod graph;
mod kernels;
mod overflow;
