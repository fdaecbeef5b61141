//! colorize-engine tests: every kernel family against the naive reference, ops against naive
//! versions, and the graph planner.

mod fold;
mod graph;
mod kernels;
mod overflow;
