//! colorize-train integration tests: the trainer lowers the loss on a small generated data set,
//! writes metrics.csv, exports a loadable model, and resumes from its checkpoint.

mod critics;
#[cfg(feature = "gpu")]
mod gpu;
mod recipes;
mod training;

/// burn's Flex backend draws every random initialisation from one process-wide generator, which
/// `train` seeds: two tests initialising networks at once would interleave their draws, so a
/// training run's weights (and its losses) would depend on the other tests' timing. Every test
/// that initialises or trains a network on Flex holds this lock.
static FLEX_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`FLEX_RNG`] (a test that panicked while holding it does not block the others).
pub fn flex_rng() -> std::sync::MutexGuard<'static, ()> {
    FLEX_RNG.lock().unwrap_or_else(|e| e.into_inner())
}
