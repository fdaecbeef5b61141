//! colorize-train integration tests: the trainer lowers the loss on a small generated data set,
//! writes metrics.csv, exports a loadable model, and resumes from its checkpoint.

mod critics;
#[cfg(feature = "gpu")]
mod gpu;
mod recipes;
mod training;
