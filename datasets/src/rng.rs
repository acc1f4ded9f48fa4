//! The one pseudo-random generator of the data side.
//!
//! ChaCha8 (crate `rand_chacha`) is a named, portable stream: the same seed gives the
//! same `u64`s on every machine. The conversions from those words to ranges and
//! probabilities are written here rather than taken from `rand`'s distributions, whose
//! algorithms may change between versions: a dataset must not change with a dependency.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// A seeded ChaCha8 stream with portable sampling helpers.
#[derive(Debug, Clone)]
pub struct SeededRng(ChaCha8Rng);

impl SeededRng {
    /// The stream for `seed`; `stream` separates independent uses of one seed
    /// (e.g. the data of split A and of split B) without correlating them.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(&stream.to_le_bytes());
        key[16..].copy_from_slice(b"lra-harness-data");
        Self(ChaCha8Rng::from_seed(key))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[0, n)`, unbiased (Lemire's multiply-and-reject). `n > 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no value to return");
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = (self.next_u64() as u128) * (n as u128);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// Uniform integer in the inclusive range `[low, high]`.
    pub fn range_inclusive(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// One element of a non-empty slice, uniformly.
    pub fn choose<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Standard normal by Box-Muller (portable: only `ln`, `sqrt`, `cos`).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // in (0, 1], so ln is finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_stream_give_the_same_words() {
        let a: Vec<u64> = (0..8)
            .map({
                let mut r = SeededRng::new(7, 1);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = SeededRng::new(7, 1);
        let b: Vec<u64> = (0..8).map(|_| r.next_u64()).collect();
        assert_eq!(a, b);
        let mut other = SeededRng::new(7, 2);
        assert_ne!(a[0], other.next_u64());
    }

    #[test]
    fn the_stream_is_pinned_across_versions() {
        // The first word of seed 0, stream 0: if this changes, every generated dataset changes.
        let mut r = SeededRng::new(0, 0);
        let first = r.next_u64();
        let mut again = SeededRng::new(0, 0);
        assert_eq!(first, again.next_u64());
        assert_eq!(first, PINNED_FIRST_WORD);
    }

    const PINNED_FIRST_WORD: u64 = 4_019_705_081_102_808_174;

    #[test]
    fn below_covers_its_range_uniformly() {
        let mut r = SeededRng::new(3, 0);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[r.below(6) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "count {c} far from 10000");
        }
    }
}
