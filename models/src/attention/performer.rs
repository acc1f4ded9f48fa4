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
//! It takes no dropout: no attention weights are formed.
//!
//! Kernel `relu`: the paper's generalised attention with deterministic features
//! `phi(x) = relu(x) + 0.001` on the head's query or key itself (no random features, no
//! scaling), as the paper's code computes it by default (`make_fast_generalized_attention`).
//!
//! Variant `lra`, as LRA's released code computes it
//! (`lra_benchmarks/models/performer/performer_attention.py`):
//! - padding is not masked (the mask reaches the attention function, which never reads
//!   it, lines 550-561): padded keys add to both sums;
//! - softmax kernel: new features on every call, drawn from a seed that is the sum of the
//!   whole query tensor times 1e7, rounded up and saturated to 32 bits (581-584), so for
//!   any realistic batch one of two fixed draws picked by the sign of that sum; the
//!   stabiliser 1e-6 added after subtracting the maximum of `W x` (the row's for a query,
//!   the head's over all keys for a key, 99-106); the normaliser raised by 2e-6 where it is
//!   at most 1e-6 (695-696). Our draws use our own generator, not jax's.
//! - LRA ran the softmax kernel with 2 features on ListOps only; every other task took the
//!   code's default, the `relu` kernel (`performer.py:31`).

use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::flops::LayerShape;
use super::heads::{HeadProjections, MASKED_SCORE, check_heads};
use super::layer::{AttentionLayer, LayerSizes};
use super::random;
use super::settings::{ModelCard, Settings, Variant, at_least_one};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n m) time, O(n m) memory (m = 256 random features)";

/// What the `lra` variant computes differently from the paper, in one line for reports
/// (the module's notes say it in full).
pub const LRA_VARIANT: &str = "padding not masked; on ListOps FAVOR+ with 2 features drawn on every call from the saturated sum of the queries, elsewhere the deterministic ReLU kernel (performer_attention.py:550-705)";

/// Added to every feature, as in the paper's code, so that the normaliser stays positive
/// when all of a query's features underflow.
const FEATURE_FLOOR: f64 = 1.0e-4;

/// Added to every deterministic ReLU feature (the paper's code's `kernel_epsilon`).
const RELU_FEATURE_FLOOR: f64 = 1.0e-3;

/// LRA's softmax-kernel stabiliser, added after the maximum is subtracted.
const LRA_FEATURE_FLOOR: f64 = 1.0e-6;

/// Which kernel the features estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerformerKernel {
    /// FAVOR+: positive orthogonal random features of `exp(q^T k / sqrt(d))`.
    #[default]
    Softmax,
    /// Generalised attention with `relu(x) + 0.001` features, no random features.
    Relu,
}

#[derive(Config, Debug)]
pub struct PerformerConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// The paper's form, or LRA's (features and padding as its code).
    #[config(default = "Variant::Paper")]
    pub variant: Variant,
    /// `m`, the number of random features (256 in the paper's and LRA's experiments).
    #[config(default = 256)]
    pub features: usize,
    /// Training steps between two redraws of the random features.
    #[config(default = 1000)]
    pub redraw_every: usize,
    #[config(default = "PerformerKernel::Softmax")]
    pub kernel: PerformerKernel,
}

impl PerformerConfig {
    pub fn init(&self, device: &Device) -> PerformerAttention {
        let qkv_dim = self.qkv_dim.unwrap_or(self.d_model);
        check_heads(qkv_dim, self.heads);
        let d_head = qkv_dim / self.heads;
        let seed = random::seed_from_device(device);
        PerformerAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            random_features: random_features_tensor(self.features, d_head, seed, 0, device),
            seed,
            draw: 0,
            redraw_every: self.redraw_every,
            kernel: self.kernel,
            variant: self.variant,
            query_seed_once: None,
        }
    }
}

/// The Performer's own settings in a run's configuration
/// (`"attention": {"performer": {"features": 256, "redraw_every": 1000}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerformerSettings {
    #[serde(default)]
    pub variant: Variant,
    /// The kernel the features estimate.
    #[serde(default)]
    pub kernel: PerformerKernel,
    /// `m`, the number of random features.
    pub features: usize,
    /// Training steps between two redraws of the features.
    pub redraw_every: usize,
}

impl Settings for PerformerSettings {
    type Layer = PerformerAttention;
    const MODEL: ModelCard =
        ModelCard { name: "performer", title: "Performer, FAVOR+ (Choromanski et al. 2021)", family: "kernel", cost: COST };
    const LRA_VARIANT: Option<&'static str> = Some(LRA_VARIANT);

    fn defaults(_max_length: usize) -> PerformerSettings {
        let c = PerformerConfig::new(1, 1);
        PerformerSettings { variant: c.variant, kernel: c.kernel, features: c.features, redraw_every: c.redraw_every }
    }

    fn variant_mut(&mut self) -> Option<&mut Variant> {
        Some(&mut self.variant)
    }

    fn check(&self, _positions: usize) -> Result<(), String> {
        at_least_one("features", self.features)?;
        at_least_one("redraw_every", self.redraw_every)
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.kernel, self.features)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> PerformerAttention {
        PerformerConfig::new(layer.d_model, layer.heads)
            .with_variant(self.variant)
            .with_kernel(self.kernel)
            .with_qkv_dim(layer.qkv_dim)
            .with_features(self.features)
            .with_redraw_every(self.redraw_every)
            .init(device)
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
    #[module(skip)]
    pub kernel: PerformerKernel,
    #[module(skip)]
    pub variant: Variant,
    /// LRA's variant: the feature seed of every pass once [`AttentionLayer::draw_once`]
    /// has fixed it; `None` in training, where each pass takes it from its queries' sum
    /// (whose last bits differ between backends).
    #[module(skip)]
    pub query_seed_once: Option<i32>,
}

impl PerformerAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let (q, k, v) = self.projections.project(x);
        let real = padding.clone().bool_not().float().reshape([batch, 1, len, 1]);
        match (self.kernel, self.variant) {
            (PerformerKernel::Relu, variant) => {
                let phi = |x: Tensor<4>| relu(x).add_scalar(RELU_FEATURE_FLOOR);
                let k_features = match variant {
                    Variant::Paper => phi(k).mul(real),
                    Variant::Lra => phi(k),
                };
                return self.projections.combine(linear_attention(phi(q), k_features, v, 0.0));
            }
            (PerformerKernel::Softmax, Variant::Lra) => return self.projections.combine(self.lra_favor(q, k, v)),
            (PerformerKernel::Softmax, Variant::Paper) => {}
        }
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
        let k_features = k_logits.sub(k_max).exp().add_scalar(FEATURE_FLOOR).mul_scalar(1.0 / (m as f64).sqrt()).mul(real);

        self.projections.combine(linear_attention(q_features, k_features, v, 0.0))
    }

    /// LRA's FAVOR+ (see the module's notes): `q, k, v: [batch, heads, len, d]` ->
    /// `[batch, heads, len, d]`, with `m` features drawn from the query's sum.
    fn lra_favor(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        let [m, d_head] = self.random_features.dims();
        let seed = self.query_seed_once.unwrap_or_else(|| lra_query_seed(q.clone().sum().into_scalar::<f32>()));
        let features = random_features_tensor(m, d_head, seed as i64 as u64, 0, &q.device()).unsqueeze::<4>();
        let scale = (d_head as f64).powf(-0.25);
        let ratio = 1.0 / (m as f64).sqrt();
        // u = W (c x) and |c x|^2 / 2: [batch, heads, len, m] and [batch, heads, len, 1].
        let dash = |x: Tensor<4>| {
            let x = x.mul_scalar(scale);
            (x.clone().matmul(features.clone().transpose()), x.square().sum_dim(3).mul_scalar(0.5))
        };
        let (q_dash, q_half) = dash(q);
        let q_max = q_dash.clone().max_dim(3).detach();
        let q_features = (q_dash - q_half - q_max).exp().add_scalar(LRA_FEATURE_FLOOR).mul_scalar(ratio);
        let (k_dash, k_half) = dash(k);
        let k_max = k_dash.clone().max_dim(3).max_dim(2).detach();
        let k_features = (k_dash - k_half - k_max).exp().add_scalar(LRA_FEATURE_FLOOR).mul_scalar(ratio);
        linear_attention(q_features, k_features, v, LRA_FEATURE_FLOOR)
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
        // LRA's variant draws on every call; the ReLU kernel has no random features.
        let scheduled = self.variant == Variant::Paper && self.kernel == PerformerKernel::Softmax;
        let due = scheduled && self.redraw_every > 0 && step > 0 && step.is_multiple_of(self.redraw_every);
        if due {
            self.redraw_features();
        }
        due
    }
}

impl AttentionLayer for PerformerAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }

    fn on_training_step(&mut self, step: usize) -> bool {
        self.redraw_on_schedule(step)
    }

    /// LRA's softmax kernel seeds its features from each pass's queries: fixed here to one
    /// seed from the layer's own (the paper's form keeps its features between redraws).
    fn draw_once(&mut self) {
        if self.variant == Variant::Lra && self.kernel == PerformerKernel::Softmax {
            self.query_seed_once = Some((self.seed % (1 << 31)) as i32);
        }
    }
}

/// `W x - |x|^2 / 2`, the exponent of the positive features (Lemma 1):
/// `x: [batch, heads, len, d]`, `features: [m, d]` -> `[batch, heads, len, m]`.
fn feature_logits(x: Tensor<4>, features: Tensor<2>) -> Tensor<4> {
    let half_norm = x.clone().square().sum_dim(3).mul_scalar(0.5); // [batch, heads, len, 1]
    x.matmul(features.transpose().unsqueeze::<4>()).sub(half_norm)
}

/// `D^-1 phi(Q) (phi(K)^T V)`: `q_features, k_features: [batch, heads, len, m]`,
/// `v: [batch, heads, len, d_head]` -> `[batch, heads, len, d_head]`; a normaliser of at
/// most `guard` is raised by `2 guard` (LRA's softmax kernel; 0: none).
fn linear_attention(q_features: Tensor<4>, k_features: Tensor<4>, v: Tensor<4>, guard: f64) -> Tensor<4> {
    let key_sum = k_features.clone().sum_dim(2); // [batch, heads, 1, m]
    let context = k_features.transpose().matmul(v); // [batch, heads, m, d_head]
    let mut normaliser = q_features.clone().mul(key_sum).sum_dim(3); // [batch, heads, len, 1]
    if guard > 0.0 {
        let small = normaliser.clone().abs().lower_equal_elem(guard);
        normaliser = normaliser.clone() + small.float().mul_scalar(2.0 * guard);
    }
    q_features.matmul(context).div(normaliser)
}

/// The seed of LRA's feature draw: `ceil(sum(query) * 1e7)` in f32, converted to a 32-bit
/// integer the way XLA converts (saturating; NaN gives 0).
pub fn lra_query_seed(query_sum: f32) -> i32 {
    match query_sum.is_nan() {
        true => 0,
        false => (query_sum * 1.0e7).ceil().clamp(i32::MIN as f32, i32::MAX as f32) as i32,
    }
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
    let mut rng = random::stream(seed, draw);
    let mut gaussian = || random::standard_normal(&mut rng);
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

/// Work of one forward ([`super::flops`]): the projections; for the softmax kernel the
/// feature logits of queries and keys (`m` features per head, `[n, d_head] x [d_head, m]`
/// each); and linear attention through the `m` features (the ReLU kernel: through the
/// `d_head` coordinates themselves).
pub fn forward_flops(shape: &LayerShape, kernel: PerformerKernel, features: usize) -> f64 {
    let n = shape.n();
    let attention = match kernel {
        PerformerKernel::Relu => shape.linear_attend(n, shape.d_head()),
        PerformerKernel::Softmax => {
            let m = features as f64;
            shape.products(2.0, n, shape.qkv_dim as f64, m) + shape.linear_attend(n, m)
        }
    };
    shape.projections(n) + attention
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    use crate::attention::checks::{
        Rows, assert_close, assert_finite_gradients, assert_padding_is_invisible, dot, mix, padding_after, values,
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
        let mut attention = PerformerConfig::new(8, 2).with_features(12).with_redraw_every(5).init(&device);
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
        let attention = PerformerConfig::new(8, 2).with_features(16).init(&device);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    #[test]
    fn performer_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(24);
        let attention = PerformerConfig::new(8, 2).with_features(16).init(&device);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let grads = attention.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
        assert_eq!(assert_finite_gradients(&attention, &grads), 4);
    }

    /// LRA's linear attention of features `phi_q`, `phi_k` (host rows), in loops:
    /// `performer_attention.py:643-705`.
    fn lra_linear_loops(qf: &[Vec<f32>], kf: &[Vec<f32>], v: &[&[f32]], guard: f32) -> Vec<Vec<f32>> {
        qf.iter()
            .map(|phi_q| {
                let weights: Vec<f32> = kf.iter().map(|phi_k| dot(phi_q, phi_k)).collect();
                let mut total: f32 = weights.iter().sum();
                if guard > 0.0 && total.abs() <= guard {
                    total += 2.0 * guard;
                }
                mix(&weights, v).into_iter().map(|x| x / total).collect()
            })
            .collect()
    }

    #[test]
    fn lra_performer_relu_kernel_equals_the_released_loops_padding_included() {
        let device = Device::flex();
        device.seed(25);
        let (batch, len, heads) = (2, 6, 2);
        let attention =
            PerformerConfig::new(8, heads).with_kernel(PerformerKernel::Relu).with_variant(Variant::Lra).init(&device);
        let x = Tensor::<3>::random([batch, len, 8], Distribution::Normal(0.0, 1.0), &device);
        let got = values(attention.forward(x.clone(), padding_after(&[6, 3], len, &device)));
        let (q, k, v) = attention.projections.project(x);
        let (q, k, v) = (Rows::of(q), Rows::of(k), Rows::of(v));
        let phi = |row: &[f32]| row.iter().map(|&t| t.max(0.0) + 0.001).collect::<Vec<f32>>();
        let mut context = Vec::new();
        for b in 0..batch {
            for h in 0..heads {
                let qf: Vec<Vec<f32>> = (0..len).map(|t| phi(q.row(b, h, t))).collect();
                let kf: Vec<Vec<f32>> = (0..len).map(|t| phi(k.row(b, h, t))).collect();
                let vs: Vec<&[f32]> = (0..len).map(|t| v.row(b, h, t)).collect();
                context.extend(lra_linear_loops(&qf, &kf, &vs, 0.0).into_iter().flatten());
            }
        }
        let context = Tensor::<4>::from_data(TensorData::new(context, [batch, heads, len, q.d()]), &device);
        assert_close(&got, &values(attention.projections.combine(context)), 1e-4, "LRA's ReLU Performer");
    }

    #[test]
    fn lra_performer_softmax_kernel_equals_the_released_loops_with_features_from_the_query_sum() {
        let device = Device::flex();
        device.seed(26);
        let (batch, len, heads, m) = (2, 5, 2, 3);
        let attention = PerformerConfig::new(8, heads).with_features(m).with_variant(Variant::Lra).init(&device);
        let x = Tensor::<3>::random([batch, len, 8], Distribution::Normal(0.0, 1.0), &device);
        let got = values(attention.forward(x.clone(), padding_after(&[5, 2], len, &device)));
        let (q, k, v) = attention.projections.project(x);
        let seed = lra_query_seed(q.clone().sum().into_scalar::<f32>());
        let (q, k, v) = (Rows::of(q), Rows::of(k), Rows::of(v));
        let d = q.d();
        let w = values(random_features_tensor(m, d, seed as i64 as u64, 0, &device));
        let c = (d as f32).powf(-0.25);
        // performer_attention.py:78-106: u = W (c x), h = |c x|^2 / 2; a query subtracts its
        // own max of u, a key the head's max over every key; + 1e-6 after; times m^-1/2.
        let dash = |row: &[f32]| {
            let x: Vec<f32> = row.iter().map(|t| t * c).collect();
            let u: Vec<f32> = (0..m).map(|i| dot(&w[i * d..(i + 1) * d], &x)).collect();
            (u, dot(&x, &x) / 2.0)
        };
        let features = |u: &[f32], half: f32, max: f32| {
            u.iter().map(|&ui| ((ui - half - max).exp() + 1.0e-6) / (m as f32).sqrt()).collect::<Vec<f32>>()
        };
        let mut context = Vec::new();
        for b in 0..batch {
            for h in 0..heads {
                let qd: Vec<_> = (0..len).map(|t| dash(q.row(b, h, t))).collect();
                let kd: Vec<_> = (0..len).map(|t| dash(k.row(b, h, t))).collect();
                let key_max = kd.iter().flat_map(|(u, _)| u.iter().cloned()).fold(f32::NEG_INFINITY, f32::max);
                let qf: Vec<Vec<f32>> =
                    qd.iter().map(|(u, half)| features(u, *half, u.iter().cloned().fold(f32::NEG_INFINITY, f32::max))).collect();
                let kf: Vec<Vec<f32>> = kd.iter().map(|(u, half)| features(u, *half, key_max)).collect();
                let vs: Vec<&[f32]> = (0..len).map(|t| v.row(b, h, t)).collect();
                context.extend(lra_linear_loops(&qf, &kf, &vs, 1.0e-6).into_iter().flatten());
            }
        }
        let context = Tensor::<4>::from_data(TensorData::new(context, [batch, heads, len, d]), &device);
        assert_close(&got, &values(attention.projections.combine(context)), 1e-3, "LRA's FAVOR+");
    }

    #[test]
    fn lra_performer_seed_saturates_so_large_batches_share_two_draws() {
        assert_eq!(lra_query_seed(1.0e-6), 10);
        assert_eq!(lra_query_seed(214.0), 2_140_000_000);
        assert_eq!(lra_query_seed(215.0), i32::MAX);
        assert_eq!(lra_query_seed(1.0e6), i32::MAX);
        assert_eq!(lra_query_seed(-1.0e4), i32::MIN);
        assert_eq!(lra_query_seed(f32::NAN), 0);
    }

    #[test]
    fn lra_performer_leaks_padding() {
        for kernel in [PerformerKernel::Softmax, PerformerKernel::Relu] {
            let device = Device::flex();
            device.seed(27);
            let attention =
                PerformerConfig::new(8, 2).with_features(4).with_kernel(kernel).with_variant(Variant::Lra).init(&device);
            let x = Tensor::<3>::random([1, 6, 8], Distribution::Normal(0.0, 1.0), &device);
            let masked = values(attention.forward(x.clone(), padding_after(&[2], 6, &device)));
            assert_eq!(masked, values(attention.forward(x, padding_after(&[6], 6, &device))), "{kernel:?}: the mask is ignored");
            let device = Device::flex().autodiff();
            let attention =
                PerformerConfig::new(8, 2).with_features(4).with_kernel(kernel).with_variant(Variant::Lra).init(&device);
            let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
            let grads = attention.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
            assert_eq!(assert_finite_gradients(&attention, &grads), 4, "{kernel:?}");
        }
    }

    #[test]
    fn performer_relu_kernel_masks_padding_in_the_paper_variant() {
        let device = Device::flex();
        device.seed(28);
        let attention = PerformerConfig::new(8, 2).with_kernel(PerformerKernel::Relu).init(&device);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 7], 10, &device);
    }
}
