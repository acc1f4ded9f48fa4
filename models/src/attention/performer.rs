//! Performer: attention approximated by positive orthogonal random features (FAVOR+).
//!
//! Paper: Choromanski, Likhosherstov, Dohan, Song, Gane, Sarlos, Hawkins, Davis,
//! Mohiuddin, Kaiser, Belanger, Colwell, Weller, "Rethinking Attention with Performers",
//! ICLR 2021.
//! Family: kernel.
//! Cost: O(n m d) time and O(n m + m d) memory per head in the sequence length n, with m
//! random features (fixed): linear in n.
//!
//! The softmax kernel `SM(x, y) = exp(x^T y)` is estimated by positive random features
//! (Lemma 1): `phi(x) = exp(W x - |x|^2 / 2) / sqrt(m)` with the rows `w_i` of `W: [m, d]`
//! drawn as orthogonal random features (Section 2.4): blocks of `d` orthogonal directions,
//! each row rescaled to the norm of a `d`-dimensional Gaussian vector (a chi(d) sample), so
//! every row has the marginal law of `N(0, I_d)`. With `q` and `k` scaled by `d^(-1/4)`,
//! `Attention(Q, K, V) ~ D^-1 phi(Q) (phi(K)^T V)`, `D = diag(phi(Q) (phi(K)^T 1))`: the
//! product `phi(K)^T V` comes first, so no `[n, n]` matrix is formed.
//!
//! The feature matrix is a constant of the layer (not trained) shared by its heads. It is
//! drawn on the host from a ChaCha8 stream seeded by `(seed, draw)`; [`PerformerAttention::redraw_features`]
//! moves to the next draw, and the harness calls it every `redraw_every` training steps
//! (the paper redraws the features periodically). The features are not part of saved
//! records: a loaded model starts again from draw 0 of its seed.
//!
//! Padding: the features of padded keys are exactly zero, so padded tokens add nothing to
//! `phi(K)^T V` or to the normaliser, and real tokens' outputs do not depend on them.
//! `dropout` is kept for the shared interface but unused: no attention weights are formed.

use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::heads::{HeadProjections, MASKED_SCORE, check_heads};

/// Added to every feature, as in the paper's code, so that the normaliser stays positive
/// when all of a query's features underflow.
const FEATURE_FLOOR: f64 = 1.0e-4;

#[derive(Config, Debug)]
pub struct PerformerConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    pub max_length: usize,
    /// Unused: FAVOR+ forms no attention weights to drop.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// `m`, the number of random features (256 in the paper's and LRA's experiments).
    #[config(default = 256)]
    pub features: usize,
    /// Training steps between two redraws of the random features.
    #[config(default = 1000)]
    pub redraw_every: usize,
}

impl PerformerConfig {
    pub fn init(&self, device: &Device) -> PerformerAttention {
        let qkv_dim = self.qkv_dim.unwrap_or(self.d_model);
        check_heads(qkv_dim, self.heads);
        let d_head = qkv_dim / self.heads;
        // The stream's seed comes from the device's generator, so `device.seed(..)` decides it.
        let halves = Tensor::<1>::random([2], Distribution::Uniform(0.0, 1.0), device).into_data();
        let seed = halves.iter::<f32>().fold(0u64, |seed, half| (seed << 24) | (half * (1 << 24) as f32) as u64);
        PerformerAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            random_features: random_features_tensor(self.features, d_head, seed, 0, device),
            seed,
            draw: 0,
            redraw_every: self.redraw_every,
        }
    }
}

#[derive(Module, Debug)]
pub struct PerformerAttention {
    pub projections: HeadProjections,
    /// `W: [m, d_head]`, the orthogonal random features (a constant, not trained).
    pub random_features: Tensor<2>,
    /// Seed of the feature draws.
    pub seed: u64,
    /// Which draw `random_features` is.
    pub draw: usize,
    pub redraw_every: usize,
}

impl PerformerAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let (q, k, v) = self.projections.project(x);
        let d_head = q.dims()[3];
        let scale = (d_head as f64).powf(-0.25);
        let features = self.random_features.clone();
        let m = features.dims()[0];

        // Query features: a per-row stabiliser (it cancels in the normalisation of the row).
        let q_logits = feature_logits(q.mul_scalar(scale), features.clone());
        let q_max = q_logits.clone().max_dim(3).detach();
        let q_features = q_logits.sub(q_max).exp().add_scalar(FEATURE_FLOOR).mul_scalar(1.0 / (m as f64).sqrt());

        // Key features: one stabiliser per head over the real keys (it cancels between the
        // numerator and the normaliser); padded keys get exactly zero features.
        let key_padding = padding.clone().reshape([batch, 1, len, 1]);
        let k_logits = feature_logits(k.mul_scalar(scale), features).mask_fill(key_padding, MASKED_SCORE);
        let k_max = k_logits.clone().max_dim(3).max_dim(2).detach();
        let real = padding.bool_not().float().reshape([batch, 1, len, 1]);
        let k_features = k_logits.sub(k_max).exp().add_scalar(FEATURE_FLOOR).mul_scalar(1.0 / (m as f64).sqrt()).mul(real);

        self.projections.combine(linear_attention(q_features, k_features, v))
    }

    /// Moves to the next draw of random features.
    pub fn redraw_features(&mut self) {
        let [m, d_head] = self.random_features.dims();
        self.draw += 1;
        self.random_features = random_features_tensor(m, d_head, self.seed, self.draw, &self.random_features.device());
    }

    /// Redraws the features when `step` (counted from 1) is a multiple of `redraw_every`;
    /// returns whether it did.
    pub fn redraw_on_schedule(&mut self, step: usize) -> bool {
        let due = self.redraw_every > 0 && step > 0 && step.is_multiple_of(self.redraw_every);
        if due {
            self.redraw_features();
        }
        due
    }
}

/// `W x - |x|^2 / 2`, the exponent of the positive features (Lemma 1):
/// `x: [batch, heads, len, d]`, `features: [m, d]` -> `[batch, heads, len, m]`.
fn feature_logits(x: Tensor<4>, features: Tensor<2>) -> Tensor<4> {
    let half_norm = x.clone().square().sum_dim(3).mul_scalar(0.5); // [batch, heads, len, 1]
    x.matmul(features.transpose().unsqueeze::<4>()).sub(half_norm)
}

/// `D^-1 phi(Q) (phi(K)^T V)`: `q_features, k_features: [batch, heads, len, m]`,
/// `v: [batch, heads, len, d_head]` -> `[batch, heads, len, d_head]`.
fn linear_attention(q_features: Tensor<4>, k_features: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let key_sum = k_features.clone().sum_dim(2); // [batch, heads, 1, m]
    let context = k_features.transpose().matmul(v); // [batch, heads, m, d_head]
    let normaliser = q_features.clone().mul(key_sum).sum_dim(3); // [batch, heads, len, 1]
    q_features.matmul(context).div(normaliser)
}

/// The orthogonal random features of draw `draw` of `seed`, as a `[m, d]` tensor.
fn random_features_tensor(m: usize, d: usize, seed: u64, draw: usize, device: &Device) -> Tensor<2> {
    let rows = orthogonal_random_features(m, d, seed, draw as u64);
    Tensor::from_data(TensorData::new(rows.iter().map(|&w| w as f32).collect::<Vec<f32>>(), [m, d]), device)
}

/// `[m, d]` row-major: `ceil(m / d)` blocks of `d` orthonormal rows (Gram-Schmidt on
/// Gaussian samples, which gives a uniformly random orthonormal basis), the last block cut
/// to what is left, each row scaled by an independent chi(d) sample (Section 2.4).
fn orthogonal_random_features(m: usize, d: usize, seed: u64, draw: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(draw);
    let mut gaussian = || standard_normal(&mut rng);
    let mut rows = Vec::with_capacity(m * d);
    while rows.len() < m * d {
        let block_start = rows.len();
        let block_rows = (m - block_start / d).min(d);
        let mut block: Vec<Vec<f64>> = Vec::with_capacity(block_rows);
        while block.len() < block_rows {
            let mut row: Vec<f64> = (0..d).map(|_| gaussian()).collect();
            for done in &block {
                let along: f64 = row.iter().zip(done).map(|(a, b)| a * b).sum();
                row.iter_mut().zip(done).for_each(|(a, b)| *a -= along * b);
            }
            let norm = row.iter().map(|a| a * a).sum::<f64>().sqrt();
            // A Gaussian row in the span of the previous ones has probability zero; redraw.
            if norm > 1e-6 {
                block.push(row.into_iter().map(|a| a / norm).collect());
            }
        }
        for row in block {
            let chi = (0..d).map(|_| gaussian().powi(2)).sum::<f64>().sqrt();
            rows.extend(row.into_iter().map(|a| a * chi));
        }
    }
    rows
}

/// A standard normal sample by the Box-Muller transform.
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let uniform = |rng: &mut ChaCha8Rng| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (u1, u2) = (uniform(rng), uniform(rng));
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::Mechanism;
    use crate::attention::checks::{
        assert_finite_gradients, assert_padding_is_invisible, assert_tiny_classifier_trains, padding_after, values,
    };

    /// Mean relative error of the random-feature estimate of `exp(x^T y)` over all pairs of
    /// rows of `x, y: [pairs, d]`, with `m` features of draw `draw`.
    fn kernel_estimate_error(x: &Tensor<2>, y: &Tensor<2>, m: usize, draw: usize) -> f64 {
        let device = x.device();
        let d = x.dims()[1];
        let features = random_features_tensor(m, d, m as u64, draw, &device);
        let phi = |t: Tensor<2>| feature_logits(t.unsqueeze::<4>(), features.clone()).exp().mul_scalar(1.0 / (m as f64).sqrt());
        let estimate = values(phi(x.clone()).matmul(phi(y.clone()).transpose()));
        let exact = values(x.clone().matmul(y.clone().transpose()).exp());
        estimate.iter().zip(&exact).map(|(e, s)| ((e - s) / s).abs() as f64).sum::<f64>() / exact.len() as f64
    }

    #[test]
    fn performer_kernel_estimate_converges_to_the_softmax_kernel() {
        let device = Device::flex();
        device.seed(21);
        let d = 16;
        // Small inputs: for large |x| the features are log-normal with heavy tails, and a few
        // draws then understate the error of few features.
        let x = Tensor::<2>::random([12, d], Distribution::Normal(0.0, 0.15), &device);
        let y = Tensor::<2>::random([12, d], Distribution::Normal(0.0, 0.15), &device);
        // Averaged over draws so that one lucky draw of few features cannot pass.
        let draws = 16;
        let error = |m| (0..draws).map(|draw| kernel_estimate_error(&x, &y, m, draw)).sum::<f64>() / draws as f64;
        let (few, many) = (error(64), error(2048));
        assert!(many < few / 4.0, "error with 2048 features {many} is not under a quarter of the error with 64 {few}");
    }

    #[test]
    fn performer_features_are_orthogonal_within_each_block() {
        let (m, d) = (40, 16); // two full blocks and a partial one
        let rows = orthogonal_random_features(m, d, 7, 3);
        let row = |i: usize| &rows[i * d..(i + 1) * d];
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        for i in 0..m {
            for j in 0..m {
                let cosine = dot(row(i), row(j)) / (dot(row(i), row(i)) * dot(row(j), row(j))).sqrt();
                if i / d == j / d && i != j {
                    assert!(cosine.abs() < 1e-10, "rows {i} and {j} of one block: cosine {cosine}");
                }
            }
        }
        // Norms are chi(d) samples, not all equal (unit rows would be a different estimator).
        let norms: Vec<f64> = (0..m).map(|i| dot(row(i), row(i)).sqrt()).collect();
        assert!(norms.iter().any(|n| (n - norms[0]).abs() > 1e-3), "all rows have the norm {}", norms[0]);
    }

    #[test]
    fn performer_redraws_deterministically_on_its_schedule() {
        let device = Device::flex();
        device.seed(22);
        let mut attention = PerformerConfig::new(8, 2, 16).with_features(12).with_redraw_every(5).init(&device);
        let first = values(attention.random_features.clone());
        assert!(!attention.redraw_on_schedule(4));
        assert_eq!(values(attention.random_features.clone()), first);
        assert!(attention.redraw_on_schedule(5));
        let second = values(attention.random_features.clone());
        assert_ne!(second, first);
        let again = values(random_features_tensor(12, 4, attention.seed, 1, &device));
        assert_eq!(second, again);
    }

    #[test]
    fn performer_padding_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(23);
        let attention = PerformerConfig::new(8, 2, 10).with_features(16).init(&device);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    #[test]
    fn performer_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(24);
        let attention = PerformerConfig::new(8, 2, 10).with_features(16).init(&device);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let grads = attention.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
        assert_eq!(assert_finite_gradients(&attention, &grads), 4);
    }

    #[test]
    fn a_tiny_performer_classifier_trains() {
        assert_tiny_classifier_trains(Mechanism::Performer);
    }
}
