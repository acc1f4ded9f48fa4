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
//! Two variants (Section 3):
//! - factorised random (the default, as in LRA with k = 32): per head, logits
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

use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};
use serde::{Deserialize, Serialize};

use super::heads::{MASKED_SCORE, attention_linear, check_heads, key_padding_mask, merge_heads, split_heads};

/// How the attention logits are synthesised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SynthesizerVariant {
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
    #[config(default = "SynthesizerVariant::FactorizedRandom")]
    pub variant: SynthesizerVariant,
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
        let logits = match self.variant {
            SynthesizerVariant::FactorizedRandom => {
                // Entries of N(0, k^-1/2) give logits R_1 R_2^T of unit variance.
                let factor = Initializer::Normal { mean: 0.0, std: (self.rank as f64).powf(-0.25) };
                SynthesizedLogits::FactorizedRandom(FactorizedRandomLogits {
                    left: factor.init([heads, n, self.rank], device),
                    right: factor.init([heads, n, self.rank], device),
                })
            }
            SynthesizerVariant::Dense => {
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
            value: attention_linear(self.d_model, qkv_dim, device),
            output: attention_linear(qkv_dim, self.d_model, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            heads: self.heads,
        }
    }
}

#[derive(Module, Debug)]
pub struct SynthesizerAttention {
    pub logits: SynthesizedLogits,
    pub value: Linear,
    pub output: Linear,
    pub dropout: Dropout,
    pub heads: usize,
}

#[derive(Module, Debug)]
pub enum SynthesizedLogits {
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
        let logits = self.logits.forward(x.clone(), self.heads).expand([batch, self.heads, len, len]);
        let logits = logits.mask_fill(key_padding_mask(padding), MASKED_SCORE);
        let weights = self.dropout.forward(softmax(logits, 3)); // [batch, heads, len, len]
        let v = split_heads(self.value.forward(x), self.heads);
        self.output.forward(merge_heads(weights.matmul(v)))
    }
}

impl SynthesizedLogits {
    /// `x: [batch, len, d_model]` -> logits `[batch, heads, len, len]` (`[1, heads, len, len]`
    /// for the factorised random variant, which ignores `x`).
    pub fn forward(&self, x: Tensor<3>, heads: usize) -> Tensor<4> {
        let len = x.dims()[1];
        match self {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::Mechanism;
    use crate::attention::checks::{
        assert_close, assert_finite_gradients, assert_padding_is_invisible, assert_tiny_classifier_trains, padding_after, values,
    };
    use burn::tensor::Distribution;

    fn config(variant: SynthesizerVariant) -> SynthesizerConfig {
        SynthesizerConfig::new(8, 2, 10).with_variant(variant).with_rank(3)
    }

    #[test]
    fn factorized_random_synthesizer_logits_are_r1_times_r2_transposed() {
        let device = Device::flex();
        device.seed(51);
        let attention = config(SynthesizerVariant::FactorizedRandom).init(&device);
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
        let attention = config(SynthesizerVariant::Dense).init(&device);
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
        for variant in [SynthesizerVariant::FactorizedRandom, SynthesizerVariant::Dense] {
            let device = Device::flex();
            device.seed(53);
            let attention = config(variant).init(&device);
            assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 7], 10, &device);
        }
    }

    #[test]
    fn synthesizer_gradients_are_finite_for_every_parameter() {
        for (variant, parameters) in [(SynthesizerVariant::FactorizedRandom, 4), (SynthesizerVariant::Dense, 6)] {
            let device = Device::flex().autodiff();
            device.seed(54);
            let attention = config(variant).init(&device);
            let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
            let grads = attention.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
            assert_eq!(assert_finite_gradients(&attention, &grads), parameters, "{variant:?}");
        }
    }

    #[test]
    fn a_tiny_synthesizer_classifier_trains() {
        assert_tiny_classifier_trains(Mechanism::Synthesizer);
    }
}
