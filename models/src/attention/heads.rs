//! What every multi-head mechanism shares: the query, key, value and output
//! projections, and splitting `d_model` into heads and back.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

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
    pub fn new(d_model: usize, heads: usize, device: &Device) -> Self {
        assert!(heads > 0 && d_model.is_multiple_of(heads), "heads ({heads}) must divide d_model ({d_model})");
        let linear = || LinearConfig::new(d_model, d_model).init(device);
        Self { query: linear(), key: linear(), value: linear(), output: linear(), heads }
    }

    /// `x: [batch, len, d_model]` -> `(q, k, v)`, each `[batch, heads, len, d_head]`.
    pub fn project(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let q = split_heads(self.query.forward(x.clone()), self.heads);
        let k = split_heads(self.key.forward(x.clone()), self.heads);
        let v = split_heads(self.value.forward(x), self.heads);
        (q, k, v)
    }

    /// `context: [batch, heads, len, d_head]` -> `[batch, len, d_model]`.
    pub fn combine(&self, context: Tensor<4>) -> Tensor<3> {
        self.output.forward(merge_heads(context))
    }
}

/// `[batch, len, heads * d_head]` -> `[batch, heads, len, d_head]`.
pub fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [batch, len, d_model] = x.dims();
    x.reshape([batch, len, heads, d_model / heads]).swap_dims(1, 2)
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
