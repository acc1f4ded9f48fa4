//! When an accuracy is above chance: a one-sided binomial test of its correct answers
//! against the split's majority rate (the accuracy of always guessing the most common
//! label). Training asks it of each validation (a run's `left_chance_step`), the report of
//! each test cell ("≈ chance"), so both use one rule.

use lra_datasets::Example;

/// Significance of the test that an accuracy is above its split's majority rate.
pub const CHANCE_TEST_LEVEL: f64 = 0.01;

/// Share of the most common label in `examples` (0 for none).
pub fn majority_rate(examples: &[Example]) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for e in examples {
        *counts.entry(e.label).or_insert(0usize) += 1;
    }
    counts.values().copied().max().unwrap_or(0) as f64 / examples.len().max(1) as f64
}

/// Whether `accuracy` on a split of `examples` is above its `majority_rate` by a one-sided
/// binomial test at [`CHANCE_TEST_LEVEL`]: its correct answers (rounded) out of the
/// examples are unlikely under guessing at the majority rate. Never for an empty split.
pub fn above_chance(accuracy: f64, examples: usize, majority_rate: f64) -> bool {
    if examples == 0 {
        return false;
    }
    let correct = (accuracy * examples as f64).round() as usize;
    binomial_upper_tail(examples, correct, majority_rate) < CHANCE_TEST_LEVEL
}

/// `P(X >= k)` for `X ~ Binomial(n, p)`, summed exactly in log space.
pub fn binomial_upper_tail(n: usize, k: usize, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    // log pmf(j + 1) = log pmf(j) + log((n - j) / (j + 1)) + log(p / (1 - p)).
    let (log_p, log_q) = (p.ln(), (1.0 - p).ln());
    let mut log_pmf = n as f64 * log_q;
    let mut tail: Vec<f64> = Vec::with_capacity(n - k + 1);
    for j in 0..=n {
        if j >= k {
            tail.push(log_pmf);
        }
        if j < n {
            log_pmf += ((n - j) as f64 / (j + 1) as f64).ln() + log_p - log_q;
        }
    }
    let top = tail.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (top + tail.iter().map(|l| (l - top).exp()).sum::<f64>().ln()).exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binomial_tail_matches_hand_counts() {
        assert!((binomial_upper_tail(10, 10, 0.5) - 1.0 / 1024.0).abs() < 1e-12);
        // P(X >= 2) for X ~ B(4, 1/2): (6 + 4 + 1) / 16.
        assert!((binomial_upper_tail(4, 2, 0.5) - 11.0 / 16.0).abs() < 1e-12);
        assert_eq!(binomial_upper_tail(4, 0, 0.3), 1.0);
        assert_eq!(binomial_upper_tail(4, 5, 0.3), 0.0);
        // Large n stays finite and in [0, 1]: 25,000 test reviews at 50.8%.
        let p = binomial_upper_tail(25_000, 12_700, 0.5);
        assert!(p > 0.0 && p < 0.01, "{p}");
    }

    #[test]
    fn an_accuracy_is_above_chance_when_its_correct_answers_clear_the_majority_rate_at_one_percent() {
        // 52 of 100 against 50%: p = 0.38.
        assert!(!above_chance(0.52, 100, 0.5));
        // 280 of 500 against 50%: p = 0.004.
        assert!(above_chance(0.56, 500, 0.5));
        // 10 of 10 against 50%: p = 1/1024.
        assert!(above_chance(1.0, 10, 0.5));
        // 9 of 10: p = 11/1024 = 0.0107, not under 1%.
        assert!(!above_chance(0.9, 10, 0.5));
        assert!(!above_chance(1.0, 0, 0.5), "an empty split says nothing");
    }

    #[test]
    fn the_majority_rate_is_the_share_of_the_most_common_label() {
        let example = |label| Example { tokens: vec![1], second: None, label };
        assert_eq!(majority_rate(&[example(0), example(2), example(2), example(1)]), 0.5);
        assert_eq!(majority_rate(&[]), 0.0);
    }
}
