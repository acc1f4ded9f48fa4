//! cosFormer: linear attention with a cos-based re-weighting.
//!
//! Paper: Qin, Sun, Deng, Li, Wei, Lv, Yan, Kong, Zhong, "cosFormer: Rethinking Softmax in
//! Attention", ICLR 2022.
//! Family: kernel.
//! Cost: O(n d^2) time and O(n d + d^2) memory per head in the sequence length n: linear
//! in n.
//!
//! The softmax is replaced by two properties it has (Section 3.2): non-negative weights,
//! from the feature map `ReLU` on queries and keys, and a concentration on nearby tokens,
//! from re-weighting each pair by its distance (eq. 9-11):
//! `s(i, j) = ReLU(q_i) . ReLU(k_j) cos(pi/2 (i - j) / M)`,
//! `out_i = sum_j s(i, j) v_j / sum_j s(i, j)`.
//! Ptolemy's `cos(a - b) = cos a cos b + sin a sin b` splits the weight into a query part
//! and a key part, so the products associate as in linear attention (eq. 12):
//! `out_i = (Q^cos_i (K^cos^T V) + Q^sin_i (K^sin^T V)) / (Q^cos_i sum K^cos + Q^sin_i sum K^sin)`,
//! with `Q^cos_i = ReLU(q_i) cos(pi i / 2M)`, `Q^sin_i = ReLU(q_i) sin(pi i / 2M)` and
//! likewise for the keys. The denominator has a floor of 1e-6, as the paper's code.
//!
//! `M` is the sequence's length (the paper's code takes the longer of the query and key
//! lengths): here the number of its real tokens, so that `|i - j| < M` keeps every weight
//! positive and a padded sequence re-weights its real tokens exactly as the same tokens
//! alone. Positions count from 1, as the paper's code.
//!
//! Padding: padded keys' features are zeroed, so they add to neither sum. No dropout: no
//! attention weights are formed.

use std::f64::consts::FRAC_PI_2;

use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::flops::LayerShape;
use super::heads::HeadProjections;
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Settings};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n) time, O(n) memory";

/// Added to the normaliser, as in the paper's code, against a division by zero.
const NORMALISER_FLOOR: f64 = 1.0e-6;

#[derive(Config, Debug)]
pub struct CosformerConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
}

impl CosformerConfig {
    pub fn init(&self, device: &Device) -> CosformerAttention {
        CosformerAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
        }
    }
}

/// cosFormer has no settings of its own (`"attention": "cosformer"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CosformerSettings;

impl Settings for CosformerSettings {
    type Layer = CosformerAttention;
    const MODEL: ModelCard = ModelCard { name: "cosformer", title: "cosFormer (Qin et al. 2022)", family: "kernel", cost: COST };

    fn defaults(_max_length: usize) -> CosformerSettings {
        CosformerSettings
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> CosformerAttention {
        CosformerConfig::new(layer.d_model, layer.heads).with_qkv_dim(layer.qkv_dim).init(device)
    }
}

#[derive(Module, Debug)]
pub struct CosformerAttention {
    pub projections: HeadProjections,
}

impl CosformerAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let (q, k, v) = self.projections.project(x);
        let real = padding.bool_not().float(); // [batch, len]
        let (cos, sin) = reweighting(real.clone()); // [batch, 1, len, 1] each
        let real = real.reshape([batch, 1, len, 1]);
        let q = relu(q);
        let k = relu(k).mul(real); // padded keys add nothing
        let (q_cos, q_sin) = (q.clone().mul(cos.clone()), q.mul(sin.clone()));
        let (k_cos, k_sin) = (k.clone().mul(cos), k.mul(sin));
        let context = q_cos.clone().matmul(k_cos.clone().transpose().matmul(v.clone()))
            + q_sin.clone().matmul(k_sin.clone().transpose().matmul(v)); // [batch, heads, len, d_head]
        let normaliser = q_cos.mul(k_cos.sum_dim(2)).sum_dim(3) + q_sin.mul(k_sin.sum_dim(2)).sum_dim(3);
        self.projections.combine(context.div(normaliser.add_scalar(NORMALISER_FLOOR)))
    }
}

impl AttentionLayer for CosformerAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// `cos(pi i / 2M)` and `sin(pi i / 2M)` at every position `i` (from 1), `M` each
/// sequence's count of real tokens: `real: [batch, len]` (1 at real tokens) -> two
/// `[batch, 1, len, 1]`.
fn reweighting(real: Tensor<2>) -> (Tensor<4>, Tensor<4>) {
    let [batch, len] = real.dims();
    let device = real.device();
    let positions = Tensor::<1, Int>::arange(1..len as i64 + 1, &device).float().reshape([1, len]);
    let real_tokens = real.sum_dim(1).clamp_min(1.0); // [batch, 1]
    let angle = positions.mul_scalar(FRAC_PI_2).div(real_tokens).reshape([batch, 1, len, 1]);
    (angle.clone().cos(), angle.sin())
}

/// Work of one forward ([`super::flops`]): the projections, and linear attention through
/// the `d_head` features twice (the cos and the sin parts): `8 b n D d + 8 b n d_head d`.
pub fn forward_flops(shape: &LayerShape) -> f64 {
    shape.projections(shape.n()) + 2.0 * shape.linear_attend(shape.n(), shape.d_head())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{
        Rows, assert_close, assert_finite_gradients, assert_padding_is_invisible, dot, mix, padding_after, values,
    };
    use burn::tensor::Distribution;

    /// The quadratic form of eq. 9-11 in loops: every pair's weight
    /// `ReLU(q_i) . ReLU(k_j) cos(pi/2 (i - j) / M)` over the real keys, normalised.
    #[test]
    fn cosformer_equals_the_reweighted_kernel_in_loops() {
        let device = Device::flex();
        device.seed(41);
        let (batch, len, d_model, heads) = (2, 7, 8, 2);
        let real = [7, 4];
        let attention = CosformerConfig::new(d_model, heads).init(&device);
        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let got = values(attention.forward(x.clone(), padding_after(&real, len, &device)));

        let (q, k, v) = attention.projections.project(x);
        let (q, k, v) = (Rows::of(q), Rows::of(k), Rows::of(v));
        let relu = |row: &[f32]| row.iter().map(|t| t.max(0.0)).collect::<Vec<f32>>();
        let context = Rows::build([batch, heads, len, q.d()], |b, h, i| {
            let m = real[b] as f32;
            let weights: Vec<f32> = (0..len)
                .map(|j| match j < real[b] {
                    true => {
                        let distance = i as f32 - j as f32;
                        dot(&relu(q.row(b, h, i)), &relu(k.row(b, h, j))) * (std::f32::consts::FRAC_PI_2 * distance / m).cos()
                    }
                    false => 0.0,
                })
                .collect();
            let total = weights.iter().sum::<f32>() + 1.0e-6;
            let mixed = mix(&weights, &(0..len).map(|j| v.row(b, h, j)).collect::<Vec<_>>());
            mixed.into_iter().map(|m| m / total).collect()
        });
        let expected = values(attention.projections.combine(context.tensor(&device)));
        // Real queries only: a padded query lies beyond M, where the cosine turns negative
        // and the normaliser can cancel to nothing (its output is never read).
        for (b, &r) in real.iter().enumerate() {
            let rows = |t: &[f32]| t[b * len * d_model..(b * len + r) * d_model].to_vec();
            assert_close(&rows(&got), &rows(&expected), 1e-4, "cosFormer vs its loops");
        }
    }

    #[test]
    fn cosformer_padding_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(42);
        let attention = CosformerConfig::new(8, 2).init(&device);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    #[test]
    fn cosformer_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(43);
        let attention = CosformerConfig::new(8, 2).init(&device);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let grads = attention.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
        assert_eq!(assert_finite_gradients(&attention, &grads), 4);
    }
}
