//! Learning-rate schedules of the LRA configurations, as functions of the step.

use serde::{Deserialize, Serialize};

/// The learning rate at each step (steps count from 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Schedule {
    /// LRA's "rsqrt": `base * min(1, step / warmup) * rsqrt(max(step, warmup))`; the
    /// peak, reached at `warmup`, is `base / sqrt(warmup)`.
    Rsqrt {
        base: f64,
        warmup: usize,
    },
    /// Linear warm-up to `base`, then a cosine decay to zero at the last step.
    Cosine {
        base: f64,
        warmup: usize,
    },
    Constant {
        base: f64,
    },
}

impl Schedule {
    pub fn learning_rate(&self, step: usize, total_steps: usize) -> f64 {
        let step = step.max(1) as f64;
        match *self {
            Schedule::Rsqrt { base, warmup } => {
                let warmup = warmup.max(1) as f64;
                base * (step / warmup).min(1.0) / step.max(warmup).sqrt()
            }
            Schedule::Cosine { base, warmup } => {
                let warmup = warmup as f64;
                if step <= warmup {
                    base * step / warmup
                } else {
                    let decay_steps = (total_steps as f64 - warmup).max(1.0);
                    let progress = ((step - warmup) / decay_steps).min(1.0);
                    base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
                }
            }
            Schedule::Constant { base } => base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsqrt_peaks_at_base_over_root_warmup_then_decays_as_one_over_root_step() {
        let s = Schedule::Rsqrt { base: 0.05, warmup: 1000 };
        let peak = 0.05 / 1000f64.sqrt();
        assert!((s.learning_rate(1000, 5000) - peak).abs() < 1e-12);
        assert!((s.learning_rate(500, 5000) - peak / 2.0).abs() < 1e-12);
        assert!((s.learning_rate(4000, 5000) - 0.05 / 4000f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn cosine_warms_up_linearly_and_ends_at_zero() {
        let s = Schedule::Cosine { base: 1e-3, warmup: 10 };
        assert!((s.learning_rate(5, 110) - 5e-4).abs() < 1e-15);
        assert!((s.learning_rate(10, 110) - 1e-3).abs() < 1e-15);
        assert!((s.learning_rate(60, 110) - 5e-4).abs() < 1e-12);
        assert!(s.learning_rate(110, 110).abs() < 1e-15);
    }
}
