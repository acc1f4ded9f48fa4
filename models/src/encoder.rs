//! The encoder block, as in LRA's Transformer: pre-layer-norm attention and
//! feed-forward sub-layers, each with dropout and a residual connection. The control's
//! blocks ([`crate::bag`]) have the feed-forward sub-layer alone.

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig};
use burn::prelude::*;

use crate::attention::softmax::dropout;
use crate::attention::{Attention, AttentionConfig};
use crate::auxiliary::Auxiliary;
use crate::feed_forward::DenseFeedForward;
use crate::layer_norm::{LAYER_NORM_EPSILON, layer_norm};
use crate::switch::{SwitchConfig, SwitchFeedForward};

#[derive(Config, Debug)]
pub struct EncoderBlockConfig {
    pub attention: AttentionConfig,
    /// Hidden size of the feed-forward sub-layer.
    pub d_ff: usize,
    /// Dropout after each sub-layer and inside the feed-forward one.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// A layer norm of its own for the keys and values of a cross-attending block
    /// ([`EncoderBlock::forward_cross`]), whose context is another stream than its queries.
    #[config(default = false)]
    pub context_norm: bool,
    /// Experts in place of the dense feed-forward layer (Switch).
    #[config(default = "None")]
    pub switch: Option<SwitchConfig>,
}

impl EncoderBlockConfig {
    pub fn init(&self, device: &Device) -> EncoderBlock {
        let d_model = self.attention.d_model;
        EncoderBlock {
            attention_norm: self
                .attention
                .mechanism
                .attends()
                .then(|| LayerNormConfig::new(d_model).with_epsilon(LAYER_NORM_EPSILON).init(device)),
            attention: self.attention.init(device),
            context_norm: self.context_norm.then(|| LayerNormConfig::new(d_model).with_epsilon(LAYER_NORM_EPSILON).init(device)),
            feed_forward_norm: LayerNormConfig::new(d_model).with_epsilon(LAYER_NORM_EPSILON).init(device),
            feed_forward: match &self.switch {
                None => FeedForward::Dense(DenseFeedForward::new(d_model, self.d_ff, self.dropout, device)),
                Some(switch) => FeedForward::Switch(switch.init(device)),
            },
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// The feed-forward sub-layer: LRA's dense one, or Switch's experts.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum FeedForward {
    Dense(DenseFeedForward),
    Switch(SwitchFeedForward),
}

#[derive(Module, Debug)]
pub struct EncoderBlock {
    /// The layer norm before the attention sub-layer; none in a block without one (a
    /// mechanism that does not attend, the control's: [`crate::bag`]), whose layer is then
    /// never called.
    pub attention_norm: Option<LayerNorm>,
    pub attention: Attention,
    pub context_norm: Option<LayerNorm>,
    pub feed_forward_norm: LayerNorm,
    pub feed_forward: FeedForward,
    pub dropout: Dropout,
}

impl EncoderBlock {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward_with(x, padding, &mut Auxiliary::default())
    }

    /// [`EncoderBlock::forward`], its layers' auxiliary losses and routing added to
    /// `auxiliary`.
    pub fn forward_with(&self, x: Tensor<3>, padding: Tensor<2, Bool>, auxiliary: &mut Auxiliary) -> Tensor<3> {
        let x = match &self.attention_norm {
            Some(norm) => {
                let attended = self.attention.forward_with(layer_norm(norm, x.clone()), padding.clone(), auxiliary);
                x + dropout(attended, &self.dropout)
            }
            // Without attention, no position reads another: the feed-forward sub-layer alone.
            None => x,
        };
        self.feed_forward(x, padding, auxiliary)
    }

    /// The block with queries from one stream and keys and values from another (the
    /// stacks that change the sequence between blocks: Funnel's pooled queries, Perceiver's
    /// latents), by softmax attention: `queries: [batch, len_q, d_model]`, `context:
    /// [batch, len_k, d_model]`, `context_padding: [batch, len_k]` -> `[batch, len_q,
    /// d_model]`. The residual is the queries' stream; the queries have no padding of
    /// their own that the feed-forward layer needs (a dense one).
    pub fn forward_cross(&self, queries: Tensor<3>, context: Tensor<3>, context_padding: Tensor<2, Bool>) -> Tensor<3> {
        let attention = self.attention.as_full().expect("a cross-attending block computes full attention");
        let attention_norm = self.attention_norm.as_ref().expect("a block of full attention has its layer norm");
        let context_norm = self.context_norm.as_ref().unwrap_or(attention_norm);
        let attended = attention.projections.cross_attend(
            layer_norm(attention_norm, queries.clone()),
            layer_norm(context_norm, context),
            Some(context_padding),
            &attention.dropout,
        );
        let [batch, len, _] = queries.dims();
        let no_padding = Tensor::full([batch, len], false, &queries.device());
        self.feed_forward(queries + dropout(attended, &self.dropout), no_padding, &mut Auxiliary::default())
    }

    /// The feed-forward sub-layer with its residual: `x: [batch, len, d_model]` -> the same.
    pub fn feed_forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>, auxiliary: &mut Auxiliary) -> Tensor<3> {
        let normed = layer_norm(&self.feed_forward_norm, x.clone());
        let fed = match &self.feed_forward {
            FeedForward::Dense(layer) => layer.forward(normed),
            FeedForward::Switch(layer) => layer.forward(normed, padding, auxiliary),
        };
        x + dropout(fed, &self.dropout)
    }
}
