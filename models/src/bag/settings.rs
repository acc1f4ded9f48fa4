//! The control's settings and the empty layer they build: what the registry needs of it.
//! Kept out of `bag.rs`, whose tests build whole classifiers, which hold the registry.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::attention::flops::LayerShape;
use crate::attention::layer::{AttentionLayer, LayerSizes};
use crate::attention::settings::{ModelCard, Settings};

/// The registry's one-line summary of the cost in `bag.rs`'s top comment (`lra list models`,
/// the report).
pub const COST: &str = "O(n) time, O(n) memory (no attention: each token's feed-forward layers alone)";

/// The control has no settings of its own (`"attention": "bag"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BagSettings;

impl Settings for BagSettings {
    type Layer = NoAttention;
    const MODEL: ModelCard = ModelCard {
        name: crate::model_names::CONTROL,
        title: "Bag of token features, the control: no attention, no positions (Deep Sets, Zaheer et al. 2017)",
        family: "control",
        cost: COST,
    };
    const ATTENDS: bool = false;

    fn defaults(_max_length: usize) -> BagSettings {
        BagSettings
    }

    // No attention: the blocks' feed-forward layers are the classifier's to count.
    fn forward_flops(&self, _shape: &LayerShape) -> f64 {
        0.0
    }

    fn init(&self, _layer: &LayerSizes, _device: &Device) -> NoAttention {
        NoAttention {}
    }
}

/// The attention sub-layer the control does not have: no parameters, and blocks built
/// for a mechanism that does not attend never call it (`EncoderBlock::forward_with`).
#[derive(Module, Debug)]
pub struct NoAttention {}

impl NoAttention {
    /// What a removed sub-layer adds to the residual stream: nothing. `x: [batch, len,
    /// d_model]`, `padding: [batch, len]` -> zeros `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, _padding: Tensor<2, Bool>) -> Tensor<3> {
        x.zeros_like()
    }
}

impl AttentionLayer for NoAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}
