//! Synthesizer: attention weights synthesised without query-key dot products.
//!
//! Paper: Tay, Bahri, Metzler, Juan, Zhao, Zheng, "Synthesizer: Rethinking Self-Attention
//! for Transformer Models", ICML 2021.
//! Family: learnable weights (synthetic attention: the weights are learned or computed
//! from each token alone, never from query-key pairs).
//! Cost: O(n^2 d) time and O(n^2) memory per head in the sequence length n: the `[n, n]`
//! weights are formed (the dense variant also costs O(n d_head max_length) to synthesise
//! them).
//!
//! Three kinds (Section 3):
//! - random: per head, a learned `[max_length, max_length]` matrix of logits `R`, the same
//!   for every input;
//! - factorised random (the default): per head, logits
//!   `R = R_1 R_2^T` with learned `R_1, R_2: [max_length, k]`, the same for every input;
//! - dense: per head, each token synthesises its own row of logits,
//!   `B_i = W_2 relu(W_1 x_i + b_1) + b_2`, `W_1: [d_head, d_head]`, `W_2: [d_head, max_length]`,
//!   applied to the token's slice of the input.
//!
//! For `n` tokens the logits are cut to `[n, n]`; the output is `softmax(B) (X W_v)`, heads
//! merged and projected as in multi-head attention.
//!
//! Padding: padded keys are masked before the softmax, and a row's logits never depend on
//! other tokens, so real tokens get exactly the outputs of the same tokens without
//! padding. Dropout applies to the attention weights.
//!
//! Variant `lra`, as LRA's released code computes it (`lra_benchmarks/models/synthesizer/`):
//! the synthesised logits are added, with weight one, to the scaled dot-product logits of
//! query and key projections, `softmax(Q K^T / sqrt(d_head) + R) V` (the paper's "R + V"
//! mixture without its learned weights; `synthesizer_attention.py:121-124`), padded keys
//! masked. LRA's blocks pass `synthesizer_mode='random'` and `ignore_dot_product=False`
//! on every task (`synthesizer.py:38-39, 82-83`; the Text configuration's factorised
//! settings never reach the model), and initialise `R: [heads, n, n]` Xavier-uniform over
//! the three-dimensional shape, bound `sqrt(3 / (heads n))` (`synthesizer.py:74`). Its
//! dense mode, which no configuration ran, reshapes where it should transpose; this
//! variant refuses it.

use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::flops::LayerShape;
use super::heads::{MASKED_SCORE, attention_linear, check_heads, key_padding_mask, merge_heads, split_heads};
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Settings, Variant, at_least_one};
use super::softmax::softmax_dropout;

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n^2) time, O(n^2) memory";

/// What the `lra` variant computes differently from the paper, in one line for reports
/// (the module's notes say it in full).
pub const LRA_VARIANT: &str =
    "a learned [heads, n, n] matrix added to the dot-product scores, with weight one (synthesizer_attention.py:121-124)";

/// How the attention logits are synthesised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SynthesizerKind {
    /// `R`, a learned `[max_length, max_length]` matrix, independent of the input.
    Random,
    /// `R_1 R_2^T`, learned, independent of the input.
    FactorizedRandom,
    /// A two-layer network from each token to its row of logits.
    Dense,
}

#[derive(Config, Debug)]
pub struct SynthesizerConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// Longest sequence: the length of the synthesised rows.
    pub max_length: usize,
    /// Dropout on the attention weights.
    #[config(default = 0.1)]
    pub dropout: f64,
    #[config(default = "SynthesizerKind::FactorizedRandom")]
    pub kind: SynthesizerKind,
    /// The paper's form, or LRA's (the logits added to dot-product logits).
    #[config(default = "Variant::Paper")]
    pub variant: Variant,
    /// `k`, the rank of the factorised random logits (LRA used 32).
    #[config(default = 32)]
    pub rank: usize,
}

impl SynthesizerConfig {
    pub fn init(&self, device: &Device) -> SynthesizerAttention {
        let qkv_dim = self.qkv_dim.unwrap_or(self.d_model);
        check_heads(qkv_dim, self.heads);
        let d_head = qkv_dim / self.heads;
        let (heads, n) = (self.heads, self.max_length);
        let lra = self.variant == Variant::Lra;
        assert!(!(lra && self.kind == SynthesizerKind::Dense), "LRA's variant has no dense Synthesizer");
        // Xavier-uniform over a [heads, rows, columns] shape as jax computes its fans
        // (LRA's initialiser): bound sqrt(6 / (heads (rows + columns))).
        let xavier = |rows: usize, columns: usize| {
            let bound = (6.0 / (heads * (rows + columns)) as f64).sqrt();
            Initializer::Uniform { min: -bound, max: bound }
        };
        let logits = match self.kind {
            SynthesizerKind::Random => SynthesizedLogits::Random(xavier(n, n).init([heads, n, n], device)),
            SynthesizerKind::FactorizedRandom if lra => SynthesizedLogits::FactorizedRandom(FactorizedRandomLogits {
                left: xavier(n, self.rank).init([heads, n, self.rank], device),
                right: xavier(n, self.rank).init([heads, n, self.rank], device),
            }),
            SynthesizerKind::FactorizedRandom => {
                // Entries of N(0, k^-1/2) give logits R_1 R_2^T of unit variance.
                let factor = Initializer::Normal { mean: 0.0, std: (self.rank as f64).powf(-0.25) };
                SynthesizedLogits::FactorizedRandom(FactorizedRandomLogits {
                    left: factor.init([heads, n, self.rank], device),
                    right: factor.init([heads, n, self.rank], device),
                })
            }
            SynthesizerKind::Dense => {
                // U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as burn's Linear.
                let uniform = |fan_in: usize| {
                    let bound = 1.0 / (fan_in as f64).sqrt();
                    Initializer::Uniform { min: -bound, max: bound }
                };
                SynthesizedLogits::Dense(DenseLogits {
                    hidden_weight: uniform(d_head).init([heads, d_head, d_head], device),
                    hidden_bias: uniform(d_head).init([heads, 1, d_head], device),
                    output_weight: uniform(d_head).init([heads, d_head, n], device),
                    output_bias: uniform(d_head).init([heads, 1, n], device),
                })
            }
        };
        SynthesizerAttention {
            logits,
            query: lra.then(|| attention_linear(self.d_model, qkv_dim, device)),
            key: lra.then(|| attention_linear(self.d_model, qkv_dim, device)),
            value: attention_linear(self.d_model, qkv_dim, device),
            output: attention_linear(qkv_dim, self.d_model, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            heads: self.heads,
        }
    }
}

/// The Synthesizer's own settings in a run's configuration
/// (`"attention": {"synthesizer": {"kind": "factorized_random", "rank": 32}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthesizerSettings {
    #[serde(default)]
    pub variant: Variant,
    /// What the logits are synthesised from.
    pub kind: SynthesizerKind,
    /// Rank of the factorised random logits.
    pub rank: usize,
}

impl Settings for SynthesizerSettings {
    type Layer = SynthesizerAttention;
    const MODEL: ModelCard = ModelCard {
        name: "synthesizer",
        title: "Synthesizer, factorised random (Tay et al. 2021)",
        family: "learnable weights",
        cost: COST,
    };
    const LRA_VARIANT: Option<&'static str> = Some(LRA_VARIANT);

    fn defaults(max_length: usize) -> SynthesizerSettings {
        let c = SynthesizerConfig::new(1, 1, max_length);
        SynthesizerSettings { variant: c.variant, kind: c.kind, rank: c.rank }
    }

    fn variant_mut(&mut self) -> Option<&mut Variant> {
        Some(&mut self.variant)
    }

    fn check(&self, _positions: usize) -> Result<(), String> {
        if self.variant == Variant::Lra && self.kind == SynthesizerKind::Dense {
            return Err("LRA's dense Synthesizer (never run by its configurations) reshapes where it should \
                        transpose; its lra variant has the random and factorized_random kinds only"
                .into());
        }
        at_least_one("rank", self.rank)
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.variant, self.kind, self.rank)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> SynthesizerAttention {
        SynthesizerConfig::new(layer.d_model, layer.heads, layer.max_length)
            .with_qkv_dim(layer.qkv_dim)
            .with_variant(self.variant)
            .with_kind(self.kind)
            .with_rank(self.rank)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct SynthesizerAttention {
    pub logits: SynthesizedLogits,
    /// Query and key projections of LRA's variant, whose dot products add to the logits.
    pub query: Option<Linear>,
    pub key: Option<Linear>,
    pub value: Linear,
    pub output: Linear,
    pub dropout: Dropout,
    pub heads: usize,
}

#[derive(Module, Debug)]
pub enum SynthesizedLogits {
    /// `R: [heads, max_length, max_length]`.
    Random(Param<Tensor<3>>),
    FactorizedRandom(FactorizedRandomLogits),
    Dense(DenseLogits),
}

/// `R_1, R_2: [heads, max_length, k]`.
#[derive(Module, Debug)]
pub struct FactorizedRandomLogits {
    pub left: Param<Tensor<3>>,
    pub right: Param<Tensor<3>>,
}

/// Per head: `W_1: [d_head, d_head]`, `b_1: [1, d_head]`, `W_2: [d_head, max_length]`,
/// `b_2: [1, max_length]`.
#[derive(Module, Debug)]
pub struct DenseLogits {
    pub hidden_weight: Param<Tensor<3>>,
    pub hidden_bias: Param<Tensor<3>>,
    pub output_weight: Param<Tensor<3>>,
    pub output_bias: Param<Tensor<3>>,
}

impl SynthesizerAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`;
    /// `len` at most `max_length`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let mut logits = self.logits.forward(x.clone(), self.heads).expand([batch, self.heads, len, len]);
        if let (Some(query), Some(key)) = (&self.query, &self.key) {
            let q = split_heads(query.forward(x.clone()), self.heads);
            let k = split_heads(key.forward(x.clone()), self.heads);
            let d_head = q.dims()[3];
            logits = logits + q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (d_head as f64).sqrt());
        }
        let logits = logits.mask_fill(key_padding_mask(padding), MASKED_SCORE);
        let weights = softmax_dropout(logits, Some(&self.dropout)); // [batch, heads, len, len]
        let v = split_heads(self.value.forward(x), self.heads);
        self.output.forward(merge_heads(weights.matmul(v)))
    }
}

impl AttentionLayer for SynthesizerAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

impl SynthesizedLogits {
    /// `x: [batch, len, d_model]` -> logits `[batch, heads, len, len]` (`[1, heads, len, len]`
    /// for the factorised random variant, which ignores `x`).
    pub fn forward(&self, x: Tensor<3>, heads: usize) -> Tensor<4> {
        let len = x.dims()[1];
        match self {
            SynthesizedLogits::Random(logits) => {
                let max_length = logits.dims()[1];
                assert!(len <= max_length, "Synthesizer: input of {len} tokens is longer than max_length {max_length}");
                logits.val().slice([0..heads, 0..len, 0..len]).unsqueeze::<4>()
            }
            SynthesizedLogits::FactorizedRandom(factors) => {
                let max_length = factors.left.dims()[1];
                assert!(len <= max_length, "Synthesizer: input of {len} tokens is longer than max_length {max_length}");
                let left = factors.left.val().slice([0..heads, 0..len]); // [heads, len, k]
                let right = factors.right.val().slice([0..heads, 0..len]);
                left.matmul(right.transpose()).unsqueeze::<4>()
            }
            SynthesizedLogits::Dense(dense) => {
                let max_length = dense.output_weight.dims()[2];
                assert!(len <= max_length, "Synthesizer: input of {len} tokens is longer than max_length {max_length}");
                let x = split_heads(x, heads); // [batch, heads, len, d_head]
                let hidden =
                    relu(x.matmul(dense.hidden_weight.val().unsqueeze::<4>()) + dense.hidden_bias.val().unsqueeze::<4>());
                let d_head = hidden.dims()[3];
                let output_weight = dense.output_weight.val().slice([0..heads, 0..d_head, 0..len]);
                let output_bias = dense.output_bias.val().slice([0..heads, 0..1, 0..len]);
                hidden.matmul(output_weight.unsqueeze::<4>()) + output_bias.unsqueeze::<4>()
            }
        }
    }
}

/// Work of one forward ([`super::flops`]): the value and output projections; the
/// synthesised logits (random: none; factorised random: `[n, k] x [k, n]` per head, once
/// for the batch; dense: two products per head); LRA's form adds the query and key
/// projections and their scores; and every query's weights over every value.
pub fn forward_flops(shape: &LayerShape, variant: Variant, kind: SynthesizerKind, rank: usize) -> f64 {
    let (n, d_model, d, heads) = (shape.n(), shape.d_model as f64, shape.qkv_dim as f64, shape.heads as f64);
    let logits = match kind {
        SynthesizerKind::Random => 0.0,
        SynthesizerKind::FactorizedRandom => 2.0 * heads * n * rank as f64 * n,
        SynthesizerKind::Dense => shape.products(1.0, n, d, shape.d_head()) + shape.products(1.0, n, d, n),
    };
    let query_key = match variant {
        Variant::Lra => shape.products(2.0, n, d_model, d) + shape.products(1.0, n, d, n),
        Variant::Paper => 0.0,
    };
    shape.products(2.0, n, d_model, d) + logits + query_key + shape.products(1.0, n, n, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{
        Rows, assert_close, assert_close_at_real_tokens, assert_finite_gradients, assert_padding_is_invisible, dot, mix,
        padding_after, softmax_of, values,
    };
    use burn::tensor::Distribution;

    fn config(kind: SynthesizerKind) -> SynthesizerConfig {
        SynthesizerConfig::new(8, 2, 10).with_kind(kind).with_rank(3)
    }

    #[test]
    fn factorized_random_synthesizer_logits_are_r1_times_r2_transposed() {
        let device = Device::flex();
        device.seed(51);
        let attention = config(SynthesizerKind::FactorizedRandom).init(&device);
        let len = 4;
        let x = Tensor::<3>::random([1, len, 8], Distribution::Normal(0.0, 1.0), &device);
        let got = values(attention.logits.forward(x, 2));
        let SynthesizedLogits::FactorizedRandom(factors) = &attention.logits else { panic!("not the factorised random variant") };
        let (left, right) = (values(factors.left.val()), values(factors.right.val()));
        // R[h][i][j] = sum_r left[h][i][r] right[h][j][r], from the definition.
        let (n, k) = (10, 3);
        let mut expected = Vec::new();
        for h in 0..2 {
            for i in 0..len {
                for j in 0..len {
                    expected.push((0..k).map(|r| left[(h * n + i) * k + r] * right[(h * n + j) * k + r]).sum::<f32>());
                }
            }
        }
        assert_close(&got, &expected, 1e-5, "factorised random logits");
    }

    #[test]
    fn dense_synthesizer_rows_depend_only_on_their_own_token() {
        let device = Device::flex();
        device.seed(52);
        let attention = config(SynthesizerKind::Dense).init(&device);
        let x = Tensor::<3>::random([1, 5, 8], Distribution::Normal(0.0, 1.0), &device);
        let changed = x.clone().slice_assign([0..1, 3..4], Tensor::random([1, 1, 8], Distribution::Normal(0.0, 1.0), &device));
        let (before, after) = (values(attention.logits.forward(x, 2)), values(attention.logits.forward(changed, 2)));
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            let row = (i / 5) % 5; // logits are [1, heads, 5, 5]
            if row == 3 {
                assert_ne!(b, a, "row 3 ignores its own token");
            } else {
                assert_eq!(b, a, "row {row} depends on token 3");
            }
        }
    }

    #[test]
    fn synthesizer_padding_does_not_change_real_tokens() {
        for kind in [SynthesizerKind::Random, SynthesizerKind::FactorizedRandom, SynthesizerKind::Dense] {
            let device = Device::flex();
            device.seed(53);
            let attention = config(kind).init(&device);
            assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 7], 10, &device);
        }
    }

    #[test]
    fn synthesizer_gradients_are_finite_for_every_parameter() {
        for (kind, variant, parameters) in [
            (SynthesizerKind::Random, Variant::Paper, 3),
            (SynthesizerKind::FactorizedRandom, Variant::Paper, 4),
            (SynthesizerKind::Dense, Variant::Paper, 6),
            (SynthesizerKind::Random, Variant::Lra, 5),
            (SynthesizerKind::FactorizedRandom, Variant::Lra, 6),
        ] {
            let device = Device::flex().autodiff();
            device.seed(54);
            let attention = config(kind).with_variant(variant).init(&device);
            let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
            let grads = attention.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
            assert_eq!(assert_finite_gradients(&attention, &grads), parameters, "{kind:?} {variant:?}");
        }
    }

    #[test]
    fn lra_synthesizer_equals_the_released_loops_random_logits_plus_dot_products() {
        let device = Device::flex();
        device.seed(55);
        let (batch, len, heads, n) = (2, 6, 2, 10);
        let attention =
            SynthesizerConfig::new(8, heads, n).with_kind(SynthesizerKind::Random).with_variant(Variant::Lra).init(&device);
        let x = Tensor::<3>::random([batch, len, 8], Distribution::Normal(0.0, 1.0), &device);
        let real = [6, 4];
        let got = attention.forward(x.clone(), padding_after(&real, len, &device));
        // synthesizer_attention.py:283-160: s_ij = q_i.k_j / sqrt(d) + R[h, i, j], padded keys
        // at -1e10, softmax, times v.
        let SynthesizedLogits::Random(r) = &attention.logits else { panic!("not random logits") };
        let r = values(r.val());
        let project = |linear: &Linear| Rows::of(split_heads(linear.forward(x.clone()), heads));
        let (q, k, v) =
            (project(attention.query.as_ref().unwrap()), project(attention.key.as_ref().unwrap()), project(&attention.value));
        let d = q.d();
        let context = Rows::build([batch, heads, len, d], |b, h, i| {
            let scores: Vec<f32> = (0..len)
                .map(|j| match j >= real[b] {
                    true => -1.0e10,
                    false => dot(q.row(b, h, i), k.row(b, h, j)) / (d as f32).sqrt() + r[(h * n + i) * n + j],
                })
                .collect();
            mix(&softmax_of(&scores), &(0..len).map(|j| v.row(b, h, j)).collect::<Vec<_>>())
        });
        let expected = attention.output.forward(merge_heads(context.tensor(&device)));
        assert_close_at_real_tokens(got, expected, &real, 1e-4, "LRA's Synthesizer vs its loops");
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 6], 6, &device);
    }

    #[test]
    fn lra_synthesizer_initialises_r_as_lra() {
        let device = Device::flex();
        device.seed(56);
        let attention =
            SynthesizerConfig::new(8, 4, 300).with_kind(SynthesizerKind::Random).with_variant(Variant::Lra).init(&device);
        let SynthesizedLogits::Random(r) = &attention.logits else { panic!("not random logits") };
        // Xavier-uniform over [4, 300, 300] as jax counts fans: U(-a, a), a = sqrt(3 / 1200) = 0.05.
        let r = values(r.val());
        let largest = r.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(largest <= 0.05 && largest > 0.049, "largest |R| {largest}");
    }
}
