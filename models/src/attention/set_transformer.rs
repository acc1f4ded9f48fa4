//! Set Transformer's induced set attention block (ISAB).
//!
//! Paper: Lee, Lee, Kim, Kosiorek, Choi, Teh, "Set Transformer: A Framework for
//! Attention-based Permutation-Invariant Neural Networks", ICML 2019 (Section 3.2).
//! Family: memory (inducing points: the learned memory Luna grew from).
//! Cost: O(n m d) time and O(n m) memory per head in the sequence length n, with m
//! inducing points (fixed): linear in n.
//!
//! `m` learned inducing points `I: [m, d_model]` attend to the sequence, and the sequence
//! attends to what they gathered (eq. 9-10):
//! - `H = MAB(I, X)`, where the multihead attention block is
//!   `MAB(A, B) = LayerNorm(Z + rFF(Z))`, `Z = LayerNorm(A + Multihead(A, B, B))`, and `rFF`
//!   a row-wise `ReLU(Dense)` (the authors' code);
//! - `ISAB(X) = MAB(X, H)`.
//!
//! This layer computes `H` whole and returns `Multihead(X, H, H)`: the outer block's
//! residual, layer norm and feed-forward are the encoder block's around every mechanism
//! (pre-norm, as LRA's Transformer, where the paper's are post-norm).
//!
//! Padding: padded keys are masked in `Multihead(I, X, X)`, so `H`, and through it every
//! real token's output, is exactly that of the same tokens without padding.

use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::flops::LayerShape;
use super::heads::{HeadProjections, dense};
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Scale, Settings, at_least_one};
use crate::layer_norm::{LAYER_NORM_EPSILON, layer_norm};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n m) time, O(n m) memory (m = 32 inducing points)";

#[derive(Config, Debug)]
pub struct SetTransformerConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// Dropout on the weights of both attentions.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// `m`, the inducing points (the paper's experiments use 16 and 32).
    #[config(default = 32)]
    pub inducing_points: usize,
}

impl SetTransformerConfig {
    pub fn init(&self, device: &Device) -> SetTransformerAttention {
        let qkv_dim = self.qkv_dim.unwrap_or(self.d_model);
        let norm = || LayerNormConfig::new(self.d_model).with_epsilon(LAYER_NORM_EPSILON).init(device);
        // Glorot-uniform over [m, d_model], as the authors' code initialises I.
        let bound = (6.0 / (self.inducing_points + self.d_model) as f64).sqrt();
        SetTransformerAttention {
            inducing: Initializer::Uniform { min: -bound, max: bound }.init([self.inducing_points, self.d_model], device),
            induce: HeadProjections::new(self.d_model, qkv_dim, self.heads, device),
            induced_norm: norm(),
            induced_feed_forward: dense(self.d_model, self.d_model, Initializer::XavierUniform { gain: 1.0 }, device),
            induced_feed_forward_norm: norm(),
            read: HeadProjections::new(self.d_model, qkv_dim, self.heads, device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// The Set Transformer's own settings in a run's configuration
/// (`"attention": {"set_transformer": {"inducing_points": 32}}`): its learned inducing points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTransformerSettings {
    /// `m`, the learned inducing points.
    pub inducing_points: usize,
}

impl Settings for SetTransformerSettings {
    type Layer = SetTransformerAttention;
    const MODEL: ModelCard = ModelCard {
        name: "set_transformer",
        title: "Set Transformer, induced set attention (Lee et al. 2019)",
        family: "memory (inducing points)",
        cost: COST,
    };

    fn defaults(_max_length: usize) -> SetTransformerSettings {
        SetTransformerSettings { inducing_points: SetTransformerConfig::new(1, 1).inducing_points }
    }

    fn scaled(self, scale: &Scale) -> SetTransformerSettings {
        SetTransformerSettings { inducing_points: scale.slots(self.inducing_points) }
    }

    fn check(&self, _positions: usize) -> Result<(), String> {
        at_least_one("inducing_points", self.inducing_points)
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.inducing_points)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> SetTransformerAttention {
        SetTransformerConfig::new(layer.d_model, layer.heads)
            .with_qkv_dim(layer.qkv_dim)
            .with_inducing_points(self.inducing_points)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct SetTransformerAttention {
    /// `I: [m, d_model]`, the learned inducing points.
    pub inducing: Param<Tensor<2>>,
    /// `Multihead(I, X, X)`: queries from the inducing points, keys and values from the
    /// sequence.
    pub induce: HeadProjections,
    pub induced_norm: LayerNorm,
    /// `rFF` of `MAB(I, X)`.
    pub induced_feed_forward: Linear,
    pub induced_feed_forward_norm: LayerNorm,
    /// `Multihead(X, H, H)`: queries from the sequence, keys and values from `H`.
    pub read: HeadProjections,
    pub dropout: Dropout,
}

impl SetTransformerAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let induced = self.induced(x.clone(), padding); // [batch, m, d_model]
        self.read.cross_attend(x, induced, None, &self.dropout)
    }

    /// `H = MAB(I, X)`: `x: [batch, len, d_model]` -> `[batch, m, d_model]`.
    pub fn induced(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, _, d_model] = x.dims();
        let m = self.inducing.dims()[0];
        let inducing = self.inducing.val().unsqueeze::<3>().expand([batch, m, d_model]);
        let gathered = self.induce.cross_attend(inducing.clone(), x, Some(padding), &self.dropout);
        let z = layer_norm(&self.induced_norm, inducing + gathered);
        let fed = relu(self.induced_feed_forward.forward(z.clone()));
        layer_norm(&self.induced_feed_forward_norm, z + fed)
    }
}

impl AttentionLayer for SetTransformerAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// Work of one forward ([`super::flops`]): the two attentions with their projections
/// (queries and outputs over the `m` points and the `n` positions in turn, keys and values
/// over the other), `rFF` over the points, and the `m` points over the `n` positions and
/// back: `8 b (n + m) D d + 2 b m D^2 + 8 b n m d`.
pub fn forward_flops(shape: &LayerShape, inducing_points: usize) -> f64 {
    let (n, m) = (shape.n(), inducing_points as f64);
    let d_model = shape.d_model as f64;
    shape.projections(n)
        + shape.projections(m)
        + shape.products(1.0, m, d_model, d_model)
        + shape.attend(m, n)
        + shape.attend(n, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{
        Rows, assert_close, assert_finite_gradients, assert_padding_is_invisible, loop_attention, padding_after, values,
    };
    use burn::tensor::Distribution;

    /// Both attentions in loops, from the paper's definition: the inducing points over the
    /// real tokens, the block's norms and rFF, then every token over the `m` points.
    #[test]
    fn isab_equals_its_two_attentions_in_loops() {
        let device = Device::flex();
        device.seed(81);
        let (batch, len, d_model, heads, m) = (2, 6, 8, 2, 3);
        let real = [6, 4];
        let attention = SetTransformerConfig::new(d_model, heads).with_inducing_points(m).init(&device);
        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let got = values(attention.forward(x.clone(), padding_after(&real, len, &device)));

        let inducing = attention.inducing.val().unsqueeze::<3>().expand([batch, m, d_model]);
        let project = |projections: &HeadProjections, queries: Tensor<3>, keys_values: Tensor<3>| {
            let split = |t: Tensor<3>| Rows::of(crate::attention::heads::split_heads(t, heads));
            let q = split(projections.query.forward(queries));
            let k = split(projections.key.forward(keys_values.clone()));
            let v = split(projections.value.forward(keys_values));
            (q, k, v)
        };
        let (q, k, v) = project(&attention.induce, inducing.clone(), x.clone());
        let gathered = loop_attention(&q, &k, &v, |b, _, _, j| j >= real[b]);
        let z = layer_norm(&attention.induced_norm, inducing + attention.induce.combine(gathered.tensor(&device)));
        let fed = relu(attention.induced_feed_forward.forward(z.clone()));
        let induced = layer_norm(&attention.induced_feed_forward_norm, z + fed);
        let (q, k, v) = project(&attention.read, x, induced);
        let read = loop_attention(&q, &k, &v, |_, _, _, _| false);
        let expected = values(attention.read.combine(read.tensor(&device)));
        assert_close(&got, &expected, 1e-4, "ISAB vs its loops");
    }

    #[test]
    fn set_transformer_padding_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(82);
        let attention = SetTransformerConfig::new(8, 2).with_inducing_points(4).init(&device);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    #[test]
    fn set_transformer_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(83);
        let attention = SetTransformerConfig::new(8, 2).with_inducing_points(4).init(&device);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let grads = attention.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
        // I, two sets of four projections, two norms of two, rFF's kernel and bias.
        assert_eq!(assert_finite_gradients(&attention, &grads), 15);
    }
}
