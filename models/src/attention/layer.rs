//! What every mechanism's file builds on: the sizes its layer is built with
//! ([`LayerSizes`]) and what the registry asks of that layer ([`AttentionLayer`]). Kept
//! out of `mod.rs`, which dispatches to every mechanism, so that no mechanism imports its
//! parent.

use burn::prelude::*;

use super::full_layer::FullAttention;
use crate::auxiliary::Auxiliary;

/// The sizes every mechanism's layer is built with: those of its
/// [`AttentionConfig`](super::AttentionConfig), less the mechanism and its settings
/// ([`AttentionConfig::sizes`](super::AttentionConfig::sizes)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerSizes {
    pub d_model: usize,
    pub heads: usize,
    /// Longest sequence the layer will see (mechanisms with length-shaped parameters,
    /// e.g. Linformer's projections, size them from it).
    pub max_length: usize,
    /// Dropout on the attention weights (where the mechanism has weights).
    pub dropout: f64,
    /// Width of queries, keys and values, split among the heads; `d_model` when absent.
    pub qkv_dim: Option<usize>,
    /// Positions before the sequence (a classifier's CLS vector): the layouts of axial
    /// and Sparse attention start after them, which attend and are attended globally.
    pub leading: usize,
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

    /// Draws now, once, what the layer would otherwise draw at every forward pass
    /// (the paper's Reformer: its rotations; LRA's Performer: the seed of its features,
    /// which it takes from the queries' sum) and keeps it for every later pass. The kept
    /// draw is host data, so a copy of the layer moved to another device computes with the
    /// very same numbers: what a comparison of backends needs, since no two backends'
    /// generators agree. Training never calls it.
    fn draw_once(&mut self) {}

    /// The layer as full attention, where it is (a block that attends across two streams
    /// needs one).
    fn as_full(&self) -> Option<&FullAttention> {
        None
    }
}
