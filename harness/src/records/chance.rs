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
/// examples are unlikely under guessing at the majority rate. Never for an empty split,
/// nor for an accuracy or rate that is not a number.
pub fn above_chance(accuracy: f64, examples: usize, majority_rate: f64) -> bool {
    if examples == 0 || !accuracy.is_finite() || !majority_rate.is_finite() {
        return false;
    }
    // The cast saturates; an accuracy outside [0, 1] (a bad record) is held to the split.
    let correct = ((accuracy.clamp(0.0, 1.0) * examples as f64).round() as usize).min(examples);
    binomial_upper_tail(examples, correct, majority_rate) < CHANCE_TEST_LEVEL
}

/// Splits up to this size are summed exactly (about 20 ms at the most); larger ones, which
/// no LRA split comes near (the largest test split has 25,000 examples), are bounded.
pub const EXACT_TAIL_LIMIT: usize = 1 << 20;

/// `P(X >= k)` for `X ~ Binomial(n, p)`: summed exactly in log space up to
/// [`EXACT_TAIL_LIMIT`] trials, in constant memory; past it, the Chernoff bound
/// `exp(-n KL(k/n || p))` for `k > np` (and 1 otherwise), an upper bound on the tail, so a
/// test against it errs towards "not above chance". Bounded time and no overflow for any
/// `n` and `k`.
pub fn binomial_upper_tail(n: usize, k: usize, p: f64) -> f64 {
    if k == 0 || p.is_nan() {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    if n > EXACT_TAIL_LIMIT {
        return chernoff_upper_tail(n, k, p);
    }
    // log pmf(j + 1) = log pmf(j) + log((n - j) / (j + 1)) + log(p / (1 - p)), and the tail
    // summed as it comes, scaled by its largest term so far (a running log-sum-exp).
    let (log_p, log_q) = (p.ln(), (1.0 - p).ln());
    let mut log_pmf = n as f64 * log_q;
    let (mut top, mut scaled_sum) = (f64::NEG_INFINITY, 0.0f64);
    for j in 0..=n {
        if j >= k {
            if log_pmf > top {
                scaled_sum = scaled_sum * (top - log_pmf).exp() + 1.0;
                top = log_pmf;
            } else {
                scaled_sum += (log_pmf - top).exp();
            }
        }
        if j < n {
            log_pmf += ((n - j) as f64 / (j + 1) as f64).ln() + log_p - log_q;
        }
    }
    (top + scaled_sum.ln()).exp().clamp(0.0, 1.0)
}

/// The Chernoff bound on `P(X >= k)`, `X ~ Binomial(n, p)`, for `0 < p < 1` and `k <= n`.
fn chernoff_upper_tail(n: usize, k: usize, p: f64) -> f64 {
    let (n, k) = (n as f64, k as f64);
    let a = k / n;
    if a <= p {
        return 1.0;
    }
    // KL(a || p), with 0 ln 0 = 0 at a = 1.
    let right = if a < 1.0 { (1.0 - a) * ((1.0 - a) / (1.0 - p)).ln() } else { 0.0 };
    let divergence = a * (a / p).ln() + right;
    (-n * divergence).exp().clamp(0.0, 1.0)
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

    /// Any size of split, however large, answers at once and in [0, 1]: a record's
    /// `test_examples` of 2^64-1 or 10^12 neither overflows nor allocates.
    #[test]
    fn the_binomial_tail_is_bounded_in_time_and_memory_for_any_size() {
        let started = std::time::Instant::now();
        for n in [usize::MAX, 1_000_000_000_000, EXACT_TAIL_LIMIT + 1, EXACT_TAIL_LIMIT] {
            for k in [0, 1, n / 2, n / 2 + n / 100, n - 1, n] {
                for p in [0.0, 1e-9, 0.5, 0.999, 1.0, f64::NAN] {
                    let tail = binomial_upper_tail(n, k, p);
                    assert!((0.0..=1.0).contains(&tail), "n {n}, k {k}, p {p}: {tail}");
                }
            }
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        // The bound still decides the clear cases: 51% of 10^12 against 50%, and 50%.
        assert!(above_chance(0.51, 1_000_000_000_000, 0.5));
        assert!(!above_chance(0.5, 1_000_000_000_000, 0.5));
        // An accuracy out of range is held to the split: 7.5 counts as every answer right.
        assert_eq!(above_chance(7.5, usize::MAX, 0.5), above_chance(1.0, usize::MAX, 0.5));
        assert!(!above_chance(f64::NAN, 100, 0.5) && !above_chance(0.9, 100, f64::NAN));
    }

    /// Past the exact limit the bound is an upper bound on the exact tail: compared at the
    /// limit itself.
    #[test]
    fn the_chernoff_bound_is_above_the_exact_tail() {
        let n = EXACT_TAIL_LIMIT;
        for k in [n / 2 + 500, n / 2 + 1000, n / 2 + 2000] {
            let (exact, bound) = (binomial_upper_tail(n, k, 0.5), chernoff_upper_tail(n, k, 0.5));
            assert!(bound >= exact && exact > 0.0, "k {k}: exact {exact}, bound {bound}");
        }
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
