//! Full softmax attention: the vanilla Transformer.
//!
//! Paper: Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
//! Family: none — the baseline every efficient mechanism approximates.
//! Cost: O(n^2 d) time and O(n^2) memory per head in the sequence length n: the whole
//! `[n, n]` score matrix is built.
//!
//! `Attention(Q, K, V) = softmax(Q K^T / sqrt(d_head)) V`, per head, with padded keys
//! given a zero weight.
//!
//! The layer itself is [`super::full_layer`]'s; this file is the model's registry line.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::flops::LayerShape;
use super::full_layer::{FullAttention, FullAttentionConfig};
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Settings};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n^2) time, O(n^2) memory";

/// Full attention has no settings of its own (`"attention": "full"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullSettings;

impl Settings for FullSettings {
    type Layer = FullAttention;
    const MODEL: ModelCard = ModelCard {
        name: crate::model_names::BASELINE,
        title: "Transformer (Vaswani et al. 2017)",
        family: "full attention (baseline)",
        cost: COST,
    };

    fn defaults(_max_length: usize) -> FullSettings {
        FullSettings
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> FullAttention {
        FullAttentionConfig::new(layer.d_model, layer.heads).with_qkv_dim(layer.qkv_dim).with_dropout(layer.dropout).init(device)
    }
}

impl AttentionLayer for FullAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }

    fn as_full(&self) -> Option<&FullAttention> {
        Some(self)
    }
}

/// Work of one forward ([`super::flops`]): the projections, and every query over every
/// key, `8 b n D d + 4 b n^2 d` ([`cross_forward_flops`] with the sequence's positions
/// as both).
pub fn forward_flops(shape: &LayerShape) -> f64 {
    cross_forward_flops(shape, shape.n(), shape.n())
}

/// Work of one forward from `queries` positions over `keys` positions (a block that
/// attends across two streams, [`crate::encoder::EncoderBlock::forward_cross`]): the query
/// and output projections over the one and the key and value projections over the other,
/// half of [`LayerShape::projections`] each, and every query over every key,
/// `4 b (queries + keys) D d + 4 b queries keys d`.
pub fn cross_forward_flops(shape: &LayerShape, queries: f64, keys: f64) -> f64 {
    (shape.projections(queries) + shape.projections(keys)) / 2.0 + shape.attend(queries, keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::heads::{attention_weights, merge_heads, split_heads};
    use burn::tensor::{Distribution, TensorData};

    fn values(t: Tensor<3>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    /// Attention computed with loops over plain numbers, from the definition.
    fn naive_attention(q: &[f32], k: &[f32], v: &[f32], len: usize, d: usize, padded: &[bool]) -> Vec<f32> {
        let mut out = vec![0.0f32; len * d];
        for i in 0..len {
            let scores: Vec<f64> = (0..len)
                .map(|j| {
                    if padded[j] {
                        f64::NEG_INFINITY
                    } else {
                        (0..d).map(|c| q[i * d + c] as f64 * k[j * d + c] as f64).sum::<f64>() / (d as f64).sqrt()
                    }
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = exps.iter().sum();
            for j in 0..len {
                for c in 0..d {
                    out[i * d + c] += (exps[j] / total * v[j * d + c] as f64) as f32;
                }
            }
        }
        out
    }

    /// Evaluation takes burn's fused kernel, training the fused softmax: the same layer
    /// gives the same output both ways (dropout off), padding included.
    #[test]
    fn the_evaluation_kernel_equals_the_training_computation() {
        let device = Device::flex();
        device.seed(2);
        let (batch, len, d_model, heads) = (2, 9, 16, 4);
        let layer = FullAttentionConfig::new(d_model, heads).with_dropout(0.0).init(&device);
        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let padded: Vec<bool> = (0..batch * len).map(|i| i / len == 1 && i % len >= 6).collect();
        let padding = Tensor::<2, Bool>::from_data(TensorData::new(padded, [batch, len]), &device);
        let evaluated = values(layer.forward(x.clone(), padding.clone()));
        let trained = {
            let training = device.clone().autodiff();
            let layer = layer.clone().to_device(&training);
            values(layer.forward(x.to_device(&training), padding.to_device(&training)))
        };
        for (i, (e, t)) in evaluated.iter().zip(&trained).enumerate() {
            assert!((e - t).abs() < 1e-5, "{i}: {e} vs {t}");
        }
    }

    #[test]
    fn full_attention_equals_a_naive_computation() {
        let device = Device::flex();
        device.seed(1);
        let (batch, len, d_model, heads) = (2, 7, 12, 3);
        let d_head = d_model / heads;
        let q = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let k = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let v = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let padded: Vec<bool> = (0..batch * len).map(|i| i % len >= len - 2 && i / len == 1).collect();
        let padding = Tensor::<2, Bool>::from_data(TensorData::new(padded.clone(), [batch, len]), &device);

        let weights = attention_weights(split_heads(q.clone(), heads), split_heads(k.clone(), heads), Some(padding), None);
        let got = values(merge_heads(weights.matmul(split_heads(v.clone(), heads))));

        let (q, k, v) = (values(q), values(k), values(v));
        for b in 0..batch {
            for h in 0..heads {
                // Gather head h of batch b as [len, d_head] slices.
                let take = |x: &[f32]| -> Vec<f32> {
                    (0..len)
                        .flat_map(|i| (0..d_head).map(move |c| (i, c)))
                        .map(|(i, c)| x[(b * len + i) * d_model + h * d_head + c])
                        .collect()
                };
                let expected = naive_attention(&take(&q), &take(&k), &take(&v), len, d_head, &padded[b * len..(b + 1) * len]);
                for i in 0..len {
                    for c in 0..d_head {
                        let g = got[(b * len + i) * d_model + h * d_head + c];
                        let e = expected[i * d_head + c];
                        assert!((g - e).abs() < 1e-5, "batch {b} head {h} token {i}: {g} vs {e}");
                    }
                }
            }
        }
    }
}
