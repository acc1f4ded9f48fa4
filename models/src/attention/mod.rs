//! Attention mechanisms behind one interface.
//!
//! Every mechanism maps `x: [batch, len, d_model]` and `padding: [batch, len]` (true
//! where the token is padding) to `[batch, len, d_model]`, and must leave real tokens'
//! outputs unchanged by whatever the padding holds. The encoder holds an [`Attention`]
//! and does not know which mechanism is inside.

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
use serde::{Deserialize, Serialize};

use crate::auxiliary::Auxiliary;

pub use settings::{MechanismSettings, Variant};

/// Which mechanism an attention layer computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// Softmax attention over all pairs ([`full`]).
    Full,
    /// Attention within non-overlapping blocks ([`local`]).
    Local,
    /// Strided and fixed factorised heads ([`sparse`]).
    Sparse,
    /// Sliding window plus global positions ([`longformer`]).
    Longformer,
    /// Window, global and random blocks ([`bigbird`]).
    #[serde(rename = "bigbird")]
    BigBird,
    /// Rows, then columns of a 2D layout ([`axial`]).
    Axial,
    /// LSH buckets with shared queries and keys ([`reformer`]).
    Reformer,
    /// Blocks re-sorted by a learned Sinkhorn sort ([`sinkhorn`]).
    Sinkhorn,
    /// Keys and values projected along the length ([`linformer`]).
    Linformer,
    /// FAVOR+ positive orthogonal random features ([`performer`]).
    Performer,
    /// The `elu + 1` feature map, `phi(K)^T V` first ([`linear`]).
    Linear,
    /// Segment-mean landmarks and an iterative pseudo-inverse ([`nystromformer`]).
    Nystromformer,
    /// Synthesised weights, factorised random by default ([`synthesizer`]).
    Synthesizer,
    /// Pack into a learned memory, unpack back ([`luna`]).
    Luna,
    /// Two-dimensional Fourier transform, no attention ([`fnet`]).
    Fnet,
    /// Diagonal state space convolution ([`s4d`]).
    S4d,
    /// Keys and values shortened by a strided convolution ([`memory_compressed`]).
    MemoryCompressed,
    /// Inducing points gather the sequence, which reads them back ([`set_transformer`]).
    SetTransformer,
    /// Segments attending to the cached previous segment, relative positions
    /// ([`transformer_xl`]).
    TransformerXl,
    /// ReLU features re-weighted by the cosine of the distance ([`cosformer`]).
    Cosformer,
    /// Full attention, the sequence pooled between stages ([`crate::funnel`]).
    Funnel,
    /// Full attention from a latent array, then among the latents ([`crate::perceiver`]).
    Perceiver,
    /// Transformer-XL's segments, plus compressed older memories ([`compressive`]).
    Compressive,
    /// Full attention; the feed-forward layer a choice of experts ([`crate::switch`]).
    Switch,
    /// Local heads, and heads attending within online k-means clusters ([`routing`]).
    Routing,
}

impl Mechanism {
    /// Whether LRA's released code computes something other than the paper for this
    /// mechanism: then its settings hold a [`Variant`].
    pub fn has_variants(self) -> bool {
        MechanismSettings::defaults(self, 1).variant().is_some()
    }

    /// Where the model differs from the Transformer when not in its attention layer (its
    /// layers then compute full attention, so a benchmark of the layer alone measures the
    /// Transformer's): the stack or the feed-forward layer.
    pub fn change_outside_attention(self) -> Option<&'static str> {
        match self {
            Mechanism::Funnel => Some("the stack (the sequence pooled between blocks)"),
            Mechanism::Perceiver => Some("the stack (a latent array reads the sequence)"),
            Mechanism::Switch => Some("the feed-forward layer (experts)"),
            _ => None,
        }
    }

    /// What this mechanism's `lra` variant computes differently from its paper, in one
    /// line (files under `lra_benchmarks/models/` of LRA's released code).
    pub fn lra_variant(self) -> Option<&'static str> {
        match self {
            Mechanism::Local => Some(local::LRA_VARIANT),
            Mechanism::Sparse => Some(sparse::LRA_VARIANT),
            Mechanism::Longformer => Some(longformer::LRA_VARIANT),
            Mechanism::BigBird => Some(bigbird::LRA_VARIANT),
            Mechanism::Reformer => Some(reformer::LRA_VARIANT),
            Mechanism::Sinkhorn => Some(sinkhorn::LRA_VARIANT),
            Mechanism::Linformer => Some(linformer::LRA_VARIANT),
            Mechanism::Performer => Some(performer::LRA_VARIANT),
            Mechanism::Linear => Some(linear::LRA_VARIANT),
            Mechanism::Synthesizer => Some(synthesizer::LRA_VARIANT),
            _ => None,
        }
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
        let settings = self.resolved_settings();
        let shape = flops::LayerShape {
            batch,
            positions: self.max_length,
            d_model: self.d_model,
            qkv_dim: self.qkv_dim.unwrap_or(self.d_model),
            heads: self.heads,
            leading: self.leading,
        };
        match settings {
            MechanismSettings::Full => full::forward_flops(&shape),
            MechanismSettings::Local { variant, block_size } => local::forward_flops(&shape, variant, block_size),
            MechanismSettings::Sparse { variant, stride, summary } => sparse::forward_flops(&shape, variant, stride, summary),
            MechanismSettings::Longformer { window, global_tokens, .. } => {
                longformer::forward_flops(&shape, window, global_tokens)
            }
            MechanismSettings::BigBird { variant, block_size, window_blocks, global_blocks, random_blocks } => {
                bigbird::forward_flops(&shape, variant, block_size, window_blocks, global_blocks, random_blocks)
            }
            MechanismSettings::Axial { row_length } => axial::forward_flops(&shape, row_length),
            MechanismSettings::Reformer { variant, chunk_size, hash_rounds, buckets } => {
                reformer::forward_flops(&shape, variant, chunk_size, hash_rounds, buckets)
            }
            MechanismSettings::Sinkhorn { variant, block_size, .. } => {
                sinkhorn::forward_flops(&shape, variant, block_size, self.max_length)
            }
            MechanismSettings::Linformer { projected_length, .. } => linformer::forward_flops(&shape, projected_length),
            MechanismSettings::Performer { kernel, features, .. } => performer::forward_flops(&shape, kernel, features),
            MechanismSettings::Linear { .. } => linear::forward_flops(&shape),
            MechanismSettings::Nystromformer { landmarks, pinv_iterations } => {
                nystromformer::forward_flops(&shape, landmarks, pinv_iterations)
            }
            MechanismSettings::Synthesizer { variant, kind, rank } => synthesizer::forward_flops(&shape, variant, kind, rank),
            MechanismSettings::Luna { memory_length } => luna::forward_flops(&shape, memory_length),
            MechanismSettings::Fnet => fnet::forward_flops(&shape),
            MechanismSettings::S4d { state_size, bidirectional, .. } => {
                s4d::forward_flops(&shape, state_size, bidirectional, None)
            }
            MechanismSettings::MemoryCompressed { compression } => memory_compressed::forward_flops(&shape, compression),
            MechanismSettings::SetTransformer { inducing_points } => set_transformer::forward_flops(&shape, inducing_points),
            MechanismSettings::TransformerXl { segment_length } => transformer_xl::forward_flops(&shape, segment_length),
            MechanismSettings::Cosformer => cosformer::forward_flops(&shape),
            // Their blocks are full attention; what they save is in the stack
            // (`ClassifierConfig::training_step_flops`).
            MechanismSettings::Funnel { .. } | MechanismSettings::Perceiver { .. } | MechanismSettings::Switch { .. } => {
                full::forward_flops(&shape)
            }
            MechanismSettings::Compressive { segment_length, compression_rate, compressed_segments } => {
                compressive::forward_flops(&shape, segment_length, compression_rate, compressed_segments)
            }
            MechanismSettings::Routing { clusters, .. } => routing::forward_flops(&shape, clusters),
        }
    }

    /// The settings the layer is built with: the given ones, or the mechanism's defaults.
    pub fn resolved_settings(&self) -> MechanismSettings {
        self.settings.clone().unwrap_or_else(|| MechanismSettings::defaults(self.mechanism, self.max_length))
    }

    pub fn init(&self, device: &Device) -> Attention {
        let (d_model, heads, max_length, dropout, qkv_dim) =
            (self.d_model, self.heads, self.max_length, self.dropout, self.qkv_dim);
        let settings = self.resolved_settings();
        assert_eq!(settings.mechanism(), self.mechanism, "the settings are not for the layer's mechanism");
        match settings {
            // Funnel and Perceiver change the sequence between blocks (the classifier's
            // stack), Switch the feed-forward layer (the block's); each attends in full.
            MechanismSettings::Full
            | MechanismSettings::Funnel { .. }
            | MechanismSettings::Perceiver { .. }
            | MechanismSettings::Switch { .. } => Attention::Full(
                full::FullAttentionConfig::new(d_model, heads).with_qkv_dim(qkv_dim).with_dropout(dropout).init(device),
            ),
            MechanismSettings::Local { variant, block_size } => Attention::Local(
                local::LocalAttentionConfig::new(d_model, heads, max_length)
                    .with_variant(variant)
                    .with_qkv_dim(qkv_dim)
                    .with_block_size(block_size)
                    .with_dropout(dropout)
                    .init(device),
            ),
            MechanismSettings::Sparse { variant, stride, summary } => Attention::Sparse(
                sparse::SparseAttentionConfig::new(d_model, heads, max_length)
                    .with_variant(variant)
                    .with_qkv_dim(qkv_dim)
                    .with_leading(self.leading)
                    .with_stride(Some(stride))
                    .with_summary(summary)
                    .with_dropout(dropout)
                    .init(device),
            ),
            MechanismSettings::Longformer { variant, window, global_tokens } => Attention::Longformer(
                longformer::LongformerAttentionConfig::new(d_model, heads, max_length)
                    .with_variant(variant)
                    .with_qkv_dim(qkv_dim)
                    .with_window(window)
                    .with_global_tokens(global_tokens)
                    .with_dropout(dropout)
                    .init(device),
            ),
            MechanismSettings::BigBird { variant, block_size, window_blocks, global_blocks, random_blocks } => {
                Attention::BigBird(
                    bigbird::BigBirdAttentionConfig::new(d_model, heads, max_length)
                        .with_variant(variant)
                        .with_qkv_dim(qkv_dim)
                        .with_block_size(block_size)
                        .with_window_blocks(window_blocks)
                        .with_global_blocks(global_blocks)
                        .with_random_blocks(random_blocks)
                        .with_dropout(dropout)
                        .init(device),
                )
            }
            MechanismSettings::Axial { row_length } => Attention::Axial(
                axial::AxialAttentionConfig::new(d_model, heads, max_length)
                    .with_qkv_dim(qkv_dim)
                    .with_leading(self.leading)
                    .with_row_length(Some(row_length))
                    .with_dropout(dropout)
                    .init(device),
            ),
            MechanismSettings::Reformer { variant, chunk_size, hash_rounds, buckets } => Attention::Reformer(
                reformer::ReformerAttentionConfig::new(d_model, heads, max_length)
                    .with_variant(variant)
                    .with_qkv_dim(qkv_dim)
                    .with_chunk_size(chunk_size)
                    .with_hash_rounds(hash_rounds)
                    .with_buckets(Some(buckets))
                    .with_dropout(dropout)
                    .init(device),
            ),
            MechanismSettings::Sinkhorn { variant, block_size, sinkhorn_iterations, temperature } => Attention::Sinkhorn(
                sinkhorn::SinkhornAttentionConfig::new(d_model, heads, max_length)
                    .with_variant(variant)
                    .with_qkv_dim(qkv_dim)
                    .with_block_size(block_size)
                    .with_sinkhorn_iterations(sinkhorn_iterations)
                    .with_temperature(temperature)
                    .with_dropout(dropout)
                    .init(device),
            ),
            MechanismSettings::Linformer { variant, projected_length } => Attention::Linformer(
                linformer::LinformerConfig::new(d_model, heads, max_length)
                    .with_variant(variant)
                    .with_qkv_dim(qkv_dim)
                    .with_projected_length(projected_length)
                    .with_dropout(dropout)
                    .init(device),
            ),
            MechanismSettings::Performer { variant, kernel, features, redraw_every } => Attention::Performer(
                performer::PerformerConfig::new(d_model, heads)
                    .with_variant(variant)
                    .with_kernel(kernel)
                    .with_qkv_dim(qkv_dim)
                    .with_features(features)
                    .with_redraw_every(redraw_every)
                    .init(device),
            ),
            MechanismSettings::Linear { variant } => Attention::Linear(
                linear::LinearAttentionConfig::new(d_model, heads).with_variant(variant).with_qkv_dim(qkv_dim).init(device),
            ),
            MechanismSettings::Nystromformer { landmarks, pinv_iterations } => Attention::Nystromformer(
                nystromformer::NystromformerConfig::new(d_model, heads, max_length)
                    .with_qkv_dim(qkv_dim)
                    .with_landmarks(landmarks)
                    .with_pinv_iterations(pinv_iterations)
                    .with_dropout(dropout)
                    .init(device),
            ),
            MechanismSettings::Synthesizer { variant, kind, rank } => Attention::Synthesizer(
                synthesizer::SynthesizerConfig::new(d_model, heads, max_length)
                    .with_qkv_dim(qkv_dim)
                    .with_variant(variant)
                    .with_kind(kind)
                    .with_rank(rank)
                    .with_dropout(dropout)
                    .init(device),
            ),
            MechanismSettings::Luna { memory_length } => Attention::Luna(
                luna::LunaConfig::new(d_model, heads, max_length)
                    .with_qkv_dim(qkv_dim)
                    .with_memory_length(memory_length)
                    .with_dropout(dropout)
                    .init(device),
            ),
            // FNet and S4D have no attention width: they mix tokens at d_model.
            MechanismSettings::Fnet => Attention::Fnet(fnet::FnetConfig::new(d_model).init(device)),
            MechanismSettings::S4d { state_size, init, discretization, dt_min, dt_max, bidirectional } => Attention::S4d(
                s4d::S4dConfig::new(d_model)
                    .with_state_size(state_size)
                    .with_init(init)
                    .with_discretization(discretization)
                    .with_dt_min(dt_min)
                    .with_dt_max(dt_max)
                    .with_bidirectional(bidirectional)
                    .with_dropout(dropout)
                    .init(device),
            ),
            MechanismSettings::MemoryCompressed { compression } => Attention::MemoryCompressed(
                memory_compressed::MemoryCompressedConfig::new(d_model, heads)
                    .with_qkv_dim(qkv_dim)
                    .with_compression(compression)
                    .with_dropout(dropout)
                    .init(device),
            ),
            MechanismSettings::SetTransformer { inducing_points } => Attention::SetTransformer(
                set_transformer::SetTransformerConfig::new(d_model, heads)
                    .with_qkv_dim(qkv_dim)
                    .with_inducing_points(inducing_points)
                    .with_dropout(dropout)
                    .init(device),
            ),
            MechanismSettings::TransformerXl { segment_length } => Attention::TransformerXl(
                transformer_xl::TransformerXlConfig::new(d_model, heads)
                    .with_qkv_dim(qkv_dim)
                    .with_segment_length(segment_length)
                    .with_dropout(dropout)
                    .init(device),
            ),
            MechanismSettings::Cosformer => {
                Attention::Cosformer(cosformer::CosformerConfig::new(d_model, heads).with_qkv_dim(qkv_dim).init(device))
            }
            MechanismSettings::Compressive { segment_length, compression_rate, compressed_segments } => Attention::Compressive(
                compressive::CompressiveConfig::new(
                    transformer_xl::TransformerXlConfig::new(d_model, heads)
                        .with_qkv_dim(qkv_dim)
                        .with_segment_length(segment_length)
                        .with_dropout(dropout),
                )
                .with_compression_rate(compression_rate)
                .with_compressed_segments(compressed_segments)
                .init(device),
            ),
            MechanismSettings::Routing { clusters, ema_decay } => Attention::Routing(
                routing::RoutingAttentionConfig::new(d_model, heads, max_length)
                    .with_qkv_dim(qkv_dim)
                    .with_clusters(Some(clusters))
                    .with_ema_decay(ema_decay)
                    .with_dropout(dropout)
                    .init(device),
            ),
        }
    }
}

/// An attention layer of any mechanism.
// Variants differ in size (a device handle per parameter grows with the GPU backends built
// in); a model holds one per layer, so boxing the large ones would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Attention {
    Full(full::FullAttention),
    Local(local::LocalAttention),
    Sparse(sparse::SparseAttention),
    Longformer(longformer::LongformerAttention),
    BigBird(bigbird::BigBirdAttention),
    Axial(axial::AxialAttention),
    Reformer(reformer::ReformerAttention),
    Sinkhorn(sinkhorn::SinkhornAttention),
    Linformer(linformer::LinformerAttention),
    Performer(performer::PerformerAttention),
    Linear(linear::LinearAttention),
    Nystromformer(nystromformer::NystromformerAttention),
    Synthesizer(synthesizer::SynthesizerAttention),
    Luna(luna::LunaAttention),
    Fnet(fnet::FnetMixing),
    S4d(s4d::S4d),
    MemoryCompressed(memory_compressed::MemoryCompressedAttention),
    SetTransformer(set_transformer::SetTransformerAttention),
    TransformerXl(transformer_xl::TransformerXlAttention),
    Cosformer(cosformer::CosformerAttention),
    Compressive(compressive::CompressiveAttention),
    Routing(routing::RoutingAttention),
}

impl Attention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        match self {
            Attention::Full(attention) => attention.forward(x, padding),
            Attention::Local(attention) => attention.forward(x, padding),
            Attention::Sparse(attention) => attention.forward(x, padding),
            Attention::Longformer(attention) => attention.forward(x, padding),
            Attention::BigBird(attention) => attention.forward(x, padding),
            Attention::Axial(attention) => attention.forward(x, padding),
            Attention::Reformer(attention) => attention.forward(x, padding),
            Attention::Sinkhorn(attention) => attention.forward(x, padding),
            Attention::Linformer(attention) => attention.forward(x, padding),
            Attention::Performer(attention) => attention.forward(x, padding),
            Attention::Linear(attention) => attention.forward(x, padding),
            Attention::Nystromformer(attention) => attention.forward(x, padding),
            Attention::Synthesizer(attention) => attention.forward(x, padding),
            Attention::Luna(attention) => attention.forward(x, padding),
            Attention::Fnet(mixing) => mixing.forward(x, padding),
            Attention::S4d(layer) => layer.forward(x, padding),
            Attention::MemoryCompressed(attention) => attention.forward(x, padding),
            Attention::SetTransformer(attention) => attention.forward(x, padding),
            Attention::TransformerXl(attention) => attention.forward(x, padding),
            Attention::Cosformer(attention) => attention.forward(x, padding),
            Attention::Compressive(attention) => attention.forward(x, padding),
            Attention::Routing(attention) => attention.forward(x, padding),
        }
    }

    /// [`Attention::forward`], the layer's auxiliary loss (the Compressive Transformer's
    /// attention reconstruction) added to `auxiliary`.
    pub fn forward_with(&self, x: Tensor<3>, padding: Tensor<2, Bool>, auxiliary: &mut Auxiliary) -> Tensor<3> {
        match self {
            Attention::Compressive(attention) => attention.forward_with(x, padding, auxiliary),
            _ => self.forward(x, padding),
        }
    }

    /// Called after training step `step` (counted from 1): mechanisms with a schedule of
    /// their own (Performer's feature redraws) act on it. Returns whether anything changed.
    pub fn on_training_step(&mut self, step: usize) -> bool {
        match self {
            Attention::Performer(attention) => attention.redraw_on_schedule(step),
            Attention::Routing(attention) => attention.apply_moved_centroids(),
            _ => false,
        }
    }
}
