//! Attention mechanisms behind one interface.
//!
//! Every mechanism maps `x: [batch, len, d_model]` and `padding: [batch, len]` (true
//! where the token is padding) to `[batch, len, d_model]`, and must leave real tokens'
//! outputs unchanged by whatever the padding holds. The encoder holds an [`Attention`]
//! and does not know which mechanism is inside.

pub mod full;
pub mod heads;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Which mechanism an attention layer computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// Softmax attention over all pairs ([`full`]).
    Full,
}

/// Sizes shared by every mechanism.
#[derive(Config, Debug)]
pub struct AttentionConfig {
    pub d_model: usize,
    pub heads: usize,
    pub mechanism: Mechanism,
    /// Longest sequence the layer will see (mechanisms with length-shaped parameters,
    /// e.g. Linformer's projections, size them from it).
    pub max_length: usize,
    /// Dropout on the attention weights (where the mechanism has weights).
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl AttentionConfig {
    pub fn init(&self, device: &Device) -> Attention {
        match self.mechanism {
            Mechanism::Full => {
                Attention::Full(full::FullAttentionConfig::new(self.d_model, self.heads).with_dropout(self.dropout).init(device))
            }
        }
    }
}

/// An attention layer of any mechanism.
#[derive(Module, Debug)]
pub enum Attention {
    Full(full::FullAttention),
}

impl Attention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        match self {
            Attention::Full(attention) => attention.forward(x, padding),
        }
    }
}
