//! The one seeded generator of the models, for what they draw on the host: Performer's
//! random features, the fixed rotations of LRA's Reformer, BigBird's random blocks and
//! the dropout masks of the fused softmax.
//!
//! ChaCha8 (crate `rand_chacha`) is a named, portable, counter-based stream: the same seed
//! gives the same numbers on every machine, and a stretch of it is found again from its
//! seed and position. Seeds come from the device's generator, which a run seeds, so that
//! `device.seed(..)` decides every draw. The conversions to normals and ranges are written
//! here, not taken from `rand`'s distributions, whose algorithms may change with a version.

use burn::prelude::*;
use burn::tensor::Distribution;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// A 60-bit seed from the device's (seeded) generator: two draws of 30 bits (the default
/// integer type is 32-bit signed).
pub fn seed_from_device(device: &Device) -> u64 {
    let draws = Tensor::<1, Int>::random([2], Distribution::Uniform(0.0, (1u64 << 30) as f64), device).into_data();
    draws.iter::<i64>().fold(0u64, |seed, part| (seed << 30) | part as u64)
}

/// The stream of `seed`; `stream` separates independent uses of one seed (e.g. the
/// successive redraws of Performer's features) without correlating them.
pub fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A standard normal sample by the Box-Muller transform.
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let uniform = |rng: &mut ChaCha8Rng| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (u1, u2) = (uniform(rng), uniform(rng));
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Uniform in `[0, n)`, unbiased (Lemire's multiply-and-reject). `n > 0`.
pub fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    let n = n as u64;
    let threshold = n.wrapping_neg() % n;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(n);
        if product as u64 >= threshold {
            return (product >> 64) as usize;
        }
    }
}

/// Puts a uniform draw of `count` distinct items of `items` (all of them, when fewer) in
/// its first places, in the order drawn: a partial Fisher-Yates shuffle.
pub fn draw_to_front<T>(rng: &mut ChaCha8Rng, items: &mut [T], count: usize) {
    for s in 0..count.min(items.len()) {
        let pick = s + below(rng, items.len() - s);
        items.swap(s, pick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_and_stream_give_the_same_numbers_and_other_streams_others() {
        let draw = |seed, s| {
            let mut rng = stream(seed, s);
            (0..4).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        let first = draw(7, 0);
        assert_eq!(draw(7, 0), first);
        assert!(first.windows(2).all(|pair| pair[0] != pair[1]), "{first:?}");
        assert_ne!(draw(7, 1), first);
        assert_ne!(draw(8, 0), first);
    }

    #[test]
    fn the_device_seed_decides_the_drawn_seed() {
        let device = Device::flex();
        device.seed(3);
        let first = seed_from_device(&device);
        device.seed(3);
        assert_eq!(seed_from_device(&device), first);
        assert!(first < 1 << 60);
    }

    /// Every item is drawn to the front about equally often (a chi-squared test at a
    /// 1e-6 level over 60,000 draws of 2 of 6), and the front holds distinct items.
    #[test]
    fn draws_to_the_front_are_uniform_and_distinct() {
        let mut rng = stream(11, 0);
        let mut counts = [0usize; 6];
        for _ in 0..60_000 {
            let mut items = [0, 1, 2, 3, 4, 5];
            draw_to_front(&mut rng, &mut items, 2);
            assert_ne!(items[0], items[1]);
            counts[items[0]] += 1;
            counts[items[1]] += 1;
        }
        let expected = 20_000.0;
        let chi_squared: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
        // The chi-squared quantile of 1 - 1e-6 with 5 degrees of freedom is 35.9.
        assert!(chi_squared < 35.9, "{counts:?}: chi-squared {chi_squared}");
        let mut few = [4, 5];
        draw_to_front(&mut rng, &mut few, 3);
        assert!(few == [4, 5] || few == [5, 4]);
    }

    #[test]
    fn normal_samples_have_mean_zero_and_variance_one() {
        let mut rng = stream(5, 0);
        let samples: Vec<f64> = (0..100_000).map(|_| standard_normal(&mut rng)).collect();
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let variance = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / samples.len() as f64;
        // Standard errors: 1/sqrt(n) = 0.0032 for the mean, sqrt(2/n) = 0.0045 for the variance.
        assert!(mean.abs() < 0.02 && (variance - 1.0).abs() < 0.03, "mean {mean}, variance {variance}");
    }
}
