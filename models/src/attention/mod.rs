//! Attention mechanisms behind one interface, and the registry of the models.
//!
//! Every mechanism maps `x: [batch, len, d_model]` and `padding: [batch, len]` (true
//! where the token is padding) to `[batch, len, d_model]`, and must leave real tokens'
//! outputs unchanged by whatever the padding holds. The encoder holds an [`Attention`]
//! and does not know which mechanism is inside.
//!
//! An attention mechanism is one file (its layer, and its settings type implementing
//! [`Settings`]) and one line of the registry below, which makes [`Mechanism`],
//! [`MechanismSettings`], [`Attention`] and [`MODELS`](crate::MODELS) from the lines. (A
//! model that changes the stack or the feed-forward layer instead also has its arm in
//! the classifier; the control, [`crate::bag`], has no attention at all.)

pub mod axial;
pub mod bigbird;
pub mod blocks;
#[cfg(test)]
pub(crate) mod checks;
pub mod compressive;
pub mod cosformer;
pub mod flops;
pub mod fnet;
pub mod full;
pub mod heads;
pub mod linear;
pub mod linformer;
pub mod local;
pub mod longformer;
pub mod luna;
pub mod memory_compressed;
pub mod nystromformer;
pub mod performer;
pub mod random;
pub mod reformer;
mod registry;
pub mod routing;
pub mod s4d;
pub mod set_transformer;
pub mod settings;
pub mod sinkhorn;
pub mod softmax;
pub mod sparse;
pub mod synthesizer;
pub mod transformer_xl;

use burn::prelude::*;

use crate::auxiliary::Auxiliary;

pub use settings::{ModelCard, Scale, Settings, Variant};

// The registry: one line per model, in the order the harness lists and sweeps them,
// `Name = "its name in configurations" => its settings type`.
registry::mechanisms! {
    Full = "full" => full::FullSettings,
    Local = "local" => local::LocalSettings,
    Sparse = "sparse" => sparse::SparseSettings,
    Longformer = "longformer" => longformer::LongformerSettings,
    Linformer = "linformer" => linformer::LinformerSettings,
    Reformer = "reformer" => reformer::ReformerSettings,
    Sinkhorn = "sinkhorn" => sinkhorn::SinkhornSettings,
    Synthesizer = "synthesizer" => synthesizer::SynthesizerSettings,
    BigBird = "bigbird" => bigbird::BigBirdSettings,
    Linear = "linear" => linear::LinearSettings,
    Performer = "performer" => performer::PerformerSettings,
    Axial = "axial" => axial::AxialSettings,
    Fnet = "fnet" => fnet::FnetSettings,
    Nystromformer = "nystromformer" => nystromformer::NystromformerSettings,
    Luna = "luna" => luna::LunaSettings,
    S4d = "s4d" => s4d::S4dSettings,
    MemoryCompressed = "memory_compressed" => memory_compressed::MemoryCompressedSettings,
    SetTransformer = "set_transformer" => set_transformer::SetTransformerSettings,
    TransformerXl = "transformer_xl" => transformer_xl::TransformerXlSettings,
    Cosformer = "cosformer" => cosformer::CosformerSettings,
    Funnel = "funnel" => crate::funnel::FunnelSettings,
    Perceiver = "perceiver" => crate::perceiver::PerceiverSettings,
    Compressive = "compressive" => compressive::CompressiveSettings,
    Switch = "switch" => crate::switch::SwitchSettings,
    Routing = "routing" => routing::RoutingSettings,
    Bag = "bag" => crate::bag::BagSettings,
}

/// What the registry asks of a layer beyond its own `forward`.
pub trait AttentionLayer {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3>;

    /// [`AttentionLayer::attend`], the layer's auxiliary loss (the Compressive
    /// Transformer's attention reconstruction) added to `auxiliary`.
    fn attend_with(&self, x: Tensor<3>, padding: Tensor<2, Bool>, _auxiliary: &mut Auxiliary) -> Tensor<3> {
        self.attend(x, padding)
    }

    /// Called after training step `step` (counted from 1): layers with a schedule of their
    /// own (Performer's feature redraws, Routing's centroids) act on it. Returns whether
    /// anything changed.
    fn on_training_step(&mut self, _step: usize) -> bool {
        false
    }

    /// The layer as full attention, where it is (a block that attends across two streams
    /// needs one).
    fn as_full(&self) -> Option<&full::FullAttention> {
        None
    }
}

impl Mechanism {
    /// Whether LRA's released code computes something other than the paper for this
    /// mechanism: then its settings hold a [`Variant`].
    pub fn has_variants(self) -> bool {
        MechanismSettings::defaults(self, 1).variant().is_some()
    }
}

/// Sizes shared by every mechanism, and the mechanism's own settings.
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
    /// Width of queries, keys and values, split among the heads; `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// The mechanism's own settings; its defaults for `max_length` when absent.
    #[config(default = "None")]
    pub settings: Option<MechanismSettings>,
    /// Positions before the sequence (a classifier's CLS vector): the layouts of axial
    /// and Sparse attention start after them, which attend and are attended globally.
    #[config(default = 0)]
    pub leading: usize,
}

impl AttentionConfig {
    /// The operations of one forward of this layer on `batch` sequences of `max_length`
    /// positions (every batch is padded to it): each mechanism's `forward_flops`, by the
    /// convention of [`flops`].
    pub fn forward_flops(&self, batch: usize) -> f64 {
        let shape = flops::LayerShape {
            batch,
            positions: self.max_length,
            d_model: self.d_model,
            qkv_dim: self.qkv_dim.unwrap_or(self.d_model),
            heads: self.heads,
            leading: self.leading,
        };
        self.resolved_settings().forward_flops(&shape)
    }

    /// The settings the layer is built with: the given ones, or the mechanism's defaults.
    pub fn resolved_settings(&self) -> MechanismSettings {
        self.settings.clone().unwrap_or_else(|| MechanismSettings::defaults(self.mechanism, self.max_length))
    }

    pub fn init(&self, device: &Device) -> Attention {
        let settings = self.resolved_settings();
        assert_eq!(settings.mechanism(), self.mechanism, "the settings are not for the layer's mechanism");
        settings.init(self, device)
    }
}

impl Attention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.layer().attend(x, padding)
    }

    /// [`Attention::forward`], the layer's auxiliary loss added to `auxiliary`.
    pub fn forward_with(&self, x: Tensor<3>, padding: Tensor<2, Bool>, auxiliary: &mut Auxiliary) -> Tensor<3> {
        self.layer().attend_with(x, padding, auxiliary)
    }

    /// See [`AttentionLayer::on_training_step`].
    pub fn on_training_step(&mut self, step: usize) -> bool {
        self.layer_mut().on_training_step(step)
    }

    /// The layer as full attention, where it is.
    pub fn as_full(&self) -> Option<&full::FullAttention> {
        self.layer().as_full()
    }
}
