//! Memory-compressed attention: keys and values shortened by a strided convolution.
//!
//! Paper: Liu, Saleh, Pot, Goodrich, Sepassi, Kaiser, Shazeer, "Generating Wikipedia by
//! Summarizing Long Sequences", ICLR 2018 (Section 4.2.2).
//! Family: downsampling.
//! Cost: O(n^2 / c) time and memory per head in the sequence length n, with c the
//! compression (stride): quadratic in n, c times cheaper than full attention.
//!
//! After the query, key and value projections, the keys and the values are each passed
//! through a convolution of kernel `c` and stride `c` along the sequence (the paper's
//! `c = 3`), from the attention width to itself, before they are split into heads: every
//! `c` consecutive keys become one. The queries are not compressed, so every position keeps
//! its output: `head = softmax(Q conv_K(K)^T / sqrt(d_head)) conv_V(V)`. A convolution
//! whose kernel equals its stride sees each position once, so it is written here as one
//! product: the `c` positions of a window side by side, `[c * qkv_dim]`, times
//! `[c * qkv_dim, qkv_dim]`, plus a bias.
//!
//! Padding: a window may straddle the end of the real tokens. Padded keys and values are
//! zeroed before the convolution and the sequence is filled up with zeros to whole windows,
//! so a straddling window computes exactly what it computes for the same tokens unpadded
//! (filled up with the same zeros); windows of padding alone are masked. Real tokens'
//! outputs then do not depend on the padding.

use burn::module::Initializer;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::blocks::{compress, empty_windows};
use super::flops::LayerShape;
use super::heads::{HeadProjections, attention_weights, dense, split_heads};
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Settings, fit, within};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n^2 / c) time, O(n^2 / c) memory (c = 3 compression)";

#[derive(Config, Debug)]
pub struct MemoryCompressedConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// Dropout on the attention weights.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// `c`, the kernel and stride of the convolutions over keys and values (the paper's 3).
    #[config(default = 3)]
    pub compression: usize,
}

impl MemoryCompressedConfig {
    pub fn init(&self, device: &Device) -> MemoryCompressedAttention {
        let qkv_dim = self.qkv_dim.unwrap_or(self.d_model);
        // Glorot-uniform over the flattened kernel's fans (c * qkv_dim in, qkv_dim out), zero
        // biases. tensor2tensor's convolutions are Glorot-uniform too, but over a
        // convolution's fans (c * qkv_dim both), so their bound is sqrt(3 / (c qkv_dim)),
        // not this sqrt(6 / ((c + 1) qkv_dim)).
        let convolution = || dense(self.compression * qkv_dim, qkv_dim, Initializer::XavierUniform { gain: 1.0 }, device);
        MemoryCompressedAttention {
            projections: HeadProjections::new(self.d_model, qkv_dim, self.heads, device),
            key_compression: convolution(),
            value_compression: convolution(),
            dropout: DropoutConfig::new(self.dropout).init(),
            compression: self.compression,
        }
    }
}

/// Memory-compressed attention's own settings in a run's configuration
/// (`"attention": {"memory_compressed": {"compression": 3}}`): the kernel and stride that
/// shorten keys and values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryCompressedSettings {
    /// `c`, the kernel and stride of the convolutions over keys and values.
    pub compression: usize,
}

impl Settings for MemoryCompressedSettings {
    type Layer = MemoryCompressedAttention;
    const MODEL: ModelCard = ModelCard {
        name: "memory_compressed",
        title: "Memory Compressed Attention (Liu et al. 2018)",
        family: "downsampling",
        cost: COST,
    };

    fn defaults(_max_length: usize) -> MemoryCompressedSettings {
        MemoryCompressedSettings { compression: MemoryCompressedConfig::new(1, 1).compression }
    }

    fn fitted_to(self, positions: usize) -> MemoryCompressedSettings {
        MemoryCompressedSettings { compression: fit(self.compression, positions) }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        within("compression", self.compression, positions)
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.compression)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> MemoryCompressedAttention {
        MemoryCompressedConfig::new(layer.d_model, layer.heads)
            .with_qkv_dim(layer.qkv_dim)
            .with_compression(self.compression)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct MemoryCompressedAttention {
    pub projections: HeadProjections,
    /// The keys' convolution, `[c * qkv_dim] -> [qkv_dim]` per window.
    pub key_compression: Linear,
    /// The values' convolution, `[c * qkv_dim] -> [qkv_dim]` per window.
    pub value_compression: Linear,
    pub dropout: Dropout,
    /// `c`, the kernel and stride.
    pub compression: usize,
}

impl MemoryCompressedAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let heads = self.projections.heads;
        let real = padding.clone().bool_not().float().reshape([batch, len, 1]);
        let q = split_heads(self.projections.query.forward(x.clone()), heads);
        let k = self.projections.key.forward(x.clone()).mul(real.clone());
        let v = self.projections.value.forward(x).mul(real.clone());
        let k = split_heads(compress(k, &self.key_compression, self.compression), heads); // [batch, heads, windows, d_head]
        let v = split_heads(compress(v, &self.value_compression, self.compression), heads);
        let window_padding = empty_windows(padding, self.compression);
        let weights = attention_weights(q, k, Some(window_padding), Some(&self.dropout)); // [batch, heads, len, windows]
        self.projections.combine(weights.matmul(v))
    }
}

impl AttentionLayer for MemoryCompressedAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// Work of one forward ([`super::flops`]): the projections, the two convolutions (one
/// `[c qkv_dim] x [c qkv_dim, qkv_dim]` product per window, `4 b n qkv_dim^2` together),
/// and every query over the `n / c` windows: `8 b n D d + 4 b n d^2 + 4 b n (n / c) d`.
pub fn forward_flops(shape: &LayerShape, compression: usize) -> f64 {
    let c = compression.max(1);
    let windows = shape.positions.div_ceil(c) as f64;
    let qkv = shape.qkv_dim as f64;
    shape.projections(shape.n()) + shape.products(2.0, windows, c as f64 * qkv, qkv) + shape.attend(shape.n(), windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{
        Rows, assert_close, assert_equals_full_attention, assert_finite_gradients, assert_padding_is_invisible, attend,
        padding_after, values,
    };
    use crate::attention::heads::MASKED_SCORE;
    use burn::module::Param;
    use burn::tensor::Distribution;

    #[test]
    fn compression_one_with_identity_convolutions_equals_full_attention() {
        let device = Device::flex();
        device.seed(71);
        let (d_model, heads) = (8, 2);
        let mut attention = MemoryCompressedConfig::new(d_model, heads).with_compression(1).init(&device);
        for convolution in [&mut attention.key_compression, &mut attention.value_compression] {
            convolution.weight = Param::from_tensor(Tensor::eye(d_model, &device));
        }
        let forward = |x, padding| attention.forward(x, padding);
        assert_equals_full_attention(forward, &attention.projections, d_model, &device, "compression 1 vs full attention");
    }

    /// The convolution in loops, window by window (the last one straddling the end and
    /// the real tokens' end), then attention over the windows in loops.
    #[test]
    fn memory_compressed_attention_equals_its_convolution_and_attention_in_loops() {
        let device = Device::flex();
        device.seed(72);
        let (batch, len, d_model, heads, c) = (2, 7, 8, 2, 3);
        let real = [7, 5];
        let attention = MemoryCompressedConfig::new(d_model, heads).with_compression(c).init(&device);
        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let got = values(attention.forward(x.clone(), padding_after(&real, len, &device)));

        let (q, k, v) = attention.projections.project(x);
        let (q, k, v) = (Rows::of(q), Rows::of(k), Rows::of(v));
        let d = q.d();
        let windows = len.div_ceil(c);
        // Window w of head h: bias + sum over its positions t and every channel of the
        // whole attention width (all heads) of kernel[t * width + channel][out].
        let convolve = |rows: &Rows, layer: &Linear, b: usize, h: usize, w: usize| -> Vec<f32> {
            let kernel = values(layer.weight.val());
            let bias = values(layer.bias.as_ref().expect("a convolution has a bias").val());
            let width = heads * d;
            (0..d)
                .map(|o| {
                    let out = h * d + o;
                    let mut sum = bias[out];
                    for t in 0..c {
                        let position = w * c + t;
                        if position >= real[b] {
                            continue; // padding and the filled-up positions are zeros
                        }
                        for channel in 0..width {
                            let value = rows.row(b, channel / d, position)[channel % d];
                            sum += kernel[(t * width + channel) * width + out] * value;
                        }
                    }
                    sum
                })
                .collect()
        };
        let context = Rows::build([batch, heads, len, d], |b, h, i| {
            let keys: Vec<Vec<f32>> = (0..windows).map(|w| convolve(&k, &attention.key_compression, b, h, w)).collect();
            let vals: Vec<Vec<f32>> = (0..windows).map(|w| convolve(&v, &attention.value_compression, b, h, w)).collect();
            let masked: Vec<bool> = (0..windows).map(|w| w * c >= real[b]).collect();
            let keys: Vec<&[f32]> = keys.iter().map(Vec::as_slice).collect();
            let vals: Vec<&[f32]> = vals.iter().map(Vec::as_slice).collect();
            attend(q.row(b, h, i), &keys, &vals, 1.0 / (d as f32).sqrt(), &masked, MASKED_SCORE)
        });
        let expected = values(attention.projections.combine(context.tensor(&device)));
        assert_close(&got, &expected, 1e-4, "memory-compressed attention vs its loops");
    }

    #[test]
    fn memory_compressed_padding_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(73);
        let attention = MemoryCompressedConfig::new(8, 2).with_compression(3).init(&device);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    #[test]
    fn memory_compressed_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(74);
        let attention = MemoryCompressedConfig::new(8, 2).with_compression(2).init(&device);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let grads = attention.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
        assert_eq!(assert_finite_gradients(&attention, &grads), 8);
    }
}
