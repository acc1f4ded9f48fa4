//! The full-attention layer itself: the Transformer's, and the layer of the models that
//! change the stack or the feed-forward layer instead (Funnel, Perceiver, Switch). Kept out
//! of `full.rs`, which implements the registry's traits, so that
//! [`AttentionLayer::as_full`](super::layer::AttentionLayer::as_full) can name it without a
//! circle.

use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use super::heads::{HeadProjections, attention_weights, key_padding_mask};

#[derive(Config, Debug)]
pub struct FullAttentionConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// Dropout on the attention weights.
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl FullAttentionConfig {
    pub fn init(&self, device: &Device) -> FullAttention {
        FullAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

#[derive(Module, Debug)]
pub struct FullAttention {
    pub projections: HeadProjections,
    pub dropout: Dropout,
}

impl FullAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let (q, k, v) = self.projections.project(x);
        // Without gradients (evaluation), burn's fused attention kernel: on flex one
        // parallel pass, tiled with an online softmax at long lengths, no score matrix.
        if !q.device().is_autodiff() {
            let context = attention(q, k, v, Some(key_padding_mask(padding)), None, AttentionModuleOptions::default());
            return self.projections.combine(context);
        }
        let weights = attention_weights(q, k, Some(padding), Some(&self.dropout));
        self.projections.combine(weights.matmul(v))
    }
}
