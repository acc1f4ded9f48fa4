//! What every multi-head mechanism shares: the query, key, value and output
//! projections, splitting `d_model` into heads and back, and softmax attention's weights
//! ([`attention_weights`]).

use burn::module::Initializer;
use burn::module::Param;
use burn::nn::{Dropout, Linear, LinearConfig};
use burn::prelude::*;

use super::softmax::softmax_dropout;
use crate::dense::apply_dense;

/// A score given to masked pairs before the softmax: large enough that its weight is
/// exactly zero in f32, finite so that a fully masked row gives no NaN.
pub const MASKED_SCORE: f32 = -1.0e9;

/// Query, key, value and output projections of multi-head attention.
#[derive(Module, Debug)]
pub struct HeadProjections {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub output: Linear,
    pub heads: usize,
}

impl HeadProjections {
    /// Projections from `d_model` to `qkv_dim` (the attention width, split into `heads`)
    /// and back.
    pub fn new(d_model: usize, qkv_dim: usize, heads: usize, device: &Device) -> Self {
        check_heads(qkv_dim, heads);
        Self {
            query: attention_linear(d_model, qkv_dim, device),
            key: attention_linear(d_model, qkv_dim, device),
            value: attention_linear(d_model, qkv_dim, device),
            output: attention_linear(qkv_dim, d_model, device),
            heads,
        }
    }

    /// `x: [batch, len, d_model]` -> `(q, k, v)`, each `[batch, heads, len, d_head]`.
    pub fn project(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let q = split_heads(apply_dense(&self.query, x.clone()), self.heads);
        let k = split_heads(apply_dense(&self.key, x.clone()), self.heads);
        let v = split_heads(apply_dense(&self.value, x), self.heads);
        (q, k, v)
    }

    /// `context: [batch, heads, len, d_head]` -> `[batch, len, d_model]`.
    pub fn combine(&self, context: Tensor<4>) -> Tensor<3> {
        apply_dense(&self.output, merge_heads(context))
    }

    /// Multi-head softmax attention of `queries: [batch, len_q, d_model]` over
    /// `keys_values: [batch, len_k, d_model]` (padded keys, `[batch, len_k]`, masked)
    /// -> `[batch, len_q, d_model]`: the cross-attention of the mechanisms whose queries
    /// are not the sequence's own (a memory, inducing points, latents).
    pub fn cross_attend(
        &self,
        queries: Tensor<3>,
        keys_values: Tensor<3>,
        key_padding: Option<Tensor<2, Bool>>,
        dropout: &Dropout,
    ) -> Tensor<3> {
        let q = split_heads(apply_dense(&self.query, queries), self.heads);
        let k = split_heads(apply_dense(&self.key, keys_values.clone()), self.heads);
        let v = split_heads(apply_dense(&self.value, keys_values), self.heads);
        self.combine(attention_weights(q, k, key_padding, Some(dropout)).matmul(v))
    }
}

/// Panics unless `heads` divides the attention width `qkv_dim` (configurations are
/// validated before a model is built; this guards direct use of the crate).
pub fn check_heads(qkv_dim: usize, heads: usize) {
    assert!(heads > 0 && qkv_dim.is_multiple_of(heads), "heads ({heads}) must divide the attention width ({qkv_dim})");
}

/// A projection of an attention layer, as LRA's (flax) attention: a Xavier-uniform
/// kernel and no bias.
pub fn attention_linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).with_bias(false).with_initializer(Initializer::XavierUniform { gain: 1.0 }).init(device)
}

/// A dense layer initialised as `kernel`, with a zero bias: LRA's feed-forward blocks
/// (Xavier-uniform) and classifier head (LeCun-normal, flax's default).
pub fn dense(d_in: usize, d_out: usize, kernel: Initializer, device: &Device) -> Linear {
    let mut linear = LinearConfig::new(d_in, d_out).with_initializer(kernel).init(device);
    linear.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
    linear
}

/// `[batch, len, heads * d_head]` -> `[batch, heads, len, d_head]`.
pub fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [batch, len, d_model] = x.dims();
    x.reshape([batch, len, heads, d_model / heads]).swap_dims(1, 2)
}

/// [`split_heads`] of rows grouped in blocks (segments):
/// `[batch, blocks, rows, heads * d_head]` -> `[batch, heads, blocks, rows, d_head]`.
pub fn split_heads_of_blocks(x: Tensor<4>, heads: usize) -> Tensor<5> {
    let [batch, blocks, rows, width] = x.dims();
    x.reshape([batch, blocks, rows, heads, width / heads]).permute([0, 3, 1, 2, 4])
}

/// `[batch, heads, len, d_head]` -> `[batch, len, heads * d_head]`.
pub fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [batch, heads, len, d_head] = x.dims();
    x.swap_dims(1, 2).reshape([batch, len, heads * d_head])
}

/// Padding of the keys as a mask over scores `[batch, 1, 1, len]`.
pub fn key_padding_mask(padding: Tensor<2, Bool>) -> Tensor<4, Bool> {
    let [batch, len] = padding.dims();
    padding.reshape([batch, 1, 1, len])
}

/// `dropout(softmax(q k^T / sqrt(d_head)))` with padded keys masked:
/// `q: [batch, heads, len_q, d_head]`, `k: [batch, heads, len_k, d_head]`,
/// `key_padding: [batch, len_k]` -> `[batch, heads, len_q, len_k]`.
pub fn attention_weights(
    q: Tensor<4>,
    k: Tensor<4>,
    key_padding: Option<Tensor<2, Bool>>,
    dropout: Option<&Dropout>,
) -> Tensor<4> {
    let d_head = q.dims()[3];
    // Scaling the queries costs a pass over `[len_q, d_head]`, not over the scores.
    let mut scores = q.mul_scalar(1.0 / (d_head as f64).sqrt()).matmul(k.transpose());
    // A batch without padding needs no masking pass.
    if let Some(padding) = key_padding.filter(|padding| padding.clone().any().into_scalar()) {
        scores = scores.mask_fill(key_padding_mask(padding), MASKED_SCORE);
    }
    softmax_dropout(scores, dropout)
}
