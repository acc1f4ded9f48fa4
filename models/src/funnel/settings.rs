//! The Funnel Transformer's settings: what the registry needs of it, below the registry
//! (its blocks attend in full). Kept out of `funnel.rs`, whose tests build whole
//! classifiers, which hold the registry.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::attention::flops::LayerShape;
use crate::attention::layer::LayerSizes;
use crate::attention::settings::{ModelCard, Settings, at_least_one, fit, within};

/// The Funnel Transformer's own settings in a run's configuration
/// (`"attention": {"funnel": {"stride": 2, "stage_layers": 1}}`): the pooling between
/// stages; its blocks attend in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelSettings {
    /// `r`, the window and stride of the mean pooling between stages.
    pub stride: usize,
    /// Blocks per stage; the sequence is pooled before every stage after the first.
    pub stage_layers: usize,
}

impl FunnelSettings {
    /// Whether block `index` starts a stage after the first, so that the sequence is
    /// pooled before it.
    pub(super) fn pools_before(&self, index: usize) -> bool {
        index > 0 && index.is_multiple_of(self.stage_layers.max(1)) && self.stride > 1
    }
}

impl Settings for FunnelSettings {
    type Layer = crate::attention::full_layer::FullAttention;
    const MODEL: ModelCard =
        ModelCard { name: "funnel", title: "Funnel Transformer (Dai et al. 2020)", family: "downsampling", cost: COST };
    const CHANGE_OUTSIDE_ATTENTION: Option<&'static str> = Some("the stack (the sequence pooled between blocks)");

    fn defaults(_max_length: usize) -> FunnelSettings {
        FunnelSettings {
            // The paper's `r = 2`: windows of two positions, the sequence halved at each stage.
            stride: 2,
            // One block per stage: the sequence pooled before every block after the first.
            stage_layers: 1,
        }
    }

    fn fitted_to(self, positions: usize) -> FunnelSettings {
        FunnelSettings { stride: fit(self.stride, positions), ..self }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        within("stride", self.stride, positions)?;
        at_least_one("stage_layers", self.stage_layers)
    }

    // Its blocks are full attention; what it saves is in the stack
    // (`ClassifierConfig::training_step_flops`).
    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        crate::attention::full::forward_flops(shape)
    }

    // The funnel changes the sequence between blocks (the classifier's stack); each block
    // attends in full.
    fn init(&self, layer: &LayerSizes, device: &Device) -> crate::attention::full_layer::FullAttention {
        crate::attention::full::FullSettings.init(layer, device)
    }
}

/// The registry's one-line summary of the cost in `funnel.rs`'s top comment (`lra list models`,
/// the report).
pub const COST: &str = "O(n^2) time, O(n^2) memory in the first stage, then (n/2)^2, (n/4)^2, ...";
