//! Helpers shared by the integration tests.

use lra_harness::train::Progress;

/// Training progress that reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn step(&mut self, _: usize, _: f64, _: f64, _: f64) {}
    fn evaluated(&mut self, _: usize, _: f64, _: f64) {}
}
