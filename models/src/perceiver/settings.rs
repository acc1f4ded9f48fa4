//! The Perceiver's settings: what the registry needs of it, below the registry (its
//! blocks attend in full). Kept out of `perceiver.rs`, whose tests build whole
//! classifiers, which hold the registry.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::attention::flops::LayerShape;
use crate::attention::layer::LayerSizes;
use crate::attention::settings::{ModelCard, Scale, Settings, at_least_one};

/// The Perceiver's own settings in a run's configuration
/// (`"attention": {"perceiver": {"latents": 256}}`): the latent array; its blocks attend
/// in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerceiverSettings {
    /// `m`, the latents.
    pub latents: usize,
}

impl Settings for PerceiverSettings {
    type Layer = crate::attention::full_layer::FullAttention;
    const MODEL: ModelCard = ModelCard {
        name: "perceiver",
        title: "Perceiver (Jaegle et al. 2021)",
        family: "memory (latent bottleneck)",
        cost: COST,
    };
    const CHANGE_OUTSIDE_ATTENTION: Option<&'static str> = Some("the stack (a latent array reads the sequence)");

    fn defaults(_max_length: usize) -> PerceiverSettings {
        // The paper uses 512 latents on ImageNet; 256 here, as Luna's memory.
        PerceiverSettings { latents: 256 }
    }

    fn scaled(self, scale: &Scale) -> PerceiverSettings {
        PerceiverSettings { latents: scale.slots(self.latents) }
    }

    fn check(&self, _positions: usize) -> Result<(), String> {
        at_least_one("latents", self.latents)
    }

    // Its blocks are full attention; what it saves is in the stack
    // (`ClassifierConfig::training_step_flops`).
    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        crate::attention::full::forward_flops(shape)
    }

    // The latent array changes the sequence between blocks (the classifier's stack); each
    // block attends in full.
    fn init(&self, layer: &LayerSizes, device: &Device) -> crate::attention::full_layer::FullAttention {
        crate::attention::full::FullSettings.init(layer, device)
    }
}

/// The registry's one-line summary of the cost in `perceiver.rs`'s top comment (`lra list models`,
/// the report).
pub const COST: &str = "O(n m) time, O(n m) memory (m = 256 latents), then O(m^2) per latent block";
