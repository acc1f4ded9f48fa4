//! Luna: linear unified nested attention.
//!
//! Paper: Ma, Kong, Wang, Zhou, May, Ma, Zettlemoyer, "Luna: Linear Unified Nested
//! Attention", NeurIPS 2021.
//! Family: memory (a short learned memory mediates between all tokens).
//! Cost: O(n l d) time and O(n l) memory per head in the sequence length n, with l memory
//! slots (fixed): linear in n.
//!
//! Two nested softmax attentions (Section 3, eq. 4-5):
//! - pack: the memory `P: [l, d_model]` attends to the sequence,
//!   `Y_P = Attn(P, X)`, a summary of the sequence of fixed length `l`;
//! - unpack: the sequence attends to the packed memory, `Y_X = Attn(X, Y_P)`.
//!
//! Each attention is multi-head with its own query, key, value and output projections.
//! The paper passes the packed memory `LayerNorm(Y_P + P)` on to the next layer as its `P`;
//! the shared one-tensor interface of this crate carries no second stream, so every layer
//! holds its own learned memory `P` (initialised N(0, d_model^-1/2), as in the paper's code)
//! and returns `Y_X` only.
//!
//! Padding: padded keys are masked in the pack attention, so the packed memory, and through
//! it every real token's output, is exactly that of the same tokens without padding. Dropout
//! applies to the weights of both attentions.

use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::flops::LayerShape;
use super::heads::HeadProjections;
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Scale, Settings, at_least_one};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n l) time, O(n l) memory (l = 256 memory slots)";

#[derive(Config, Debug)]
pub struct LunaConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    pub max_length: usize,
    /// Dropout on the pack and unpack attention weights.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// `l`, the memory length (Luna-256 in LRA's later comparisons).
    #[config(default = 256)]
    pub memory_length: usize,
}

impl LunaConfig {
    pub fn init(&self, device: &Device) -> LunaAttention {
        let memory = Initializer::Normal { mean: 0.0, std: (self.d_model as f64).powf(-0.5) };
        LunaAttention {
            memory: memory.init([self.memory_length, self.d_model], device),
            pack: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            unpack: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// Luna's own settings in a run's configuration (`"attention": {"luna": {"memory_length": 256}}`):
/// the slots of its learned memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LunaSettings {
    /// `l`, the slots of the learned memory.
    pub memory_length: usize,
}

impl Settings for LunaSettings {
    type Layer = LunaAttention;
    const MODEL: ModelCard = ModelCard { name: "luna", title: "Luna-256 (Ma et al. 2021)", family: "memory", cost: COST };

    fn defaults(max_length: usize) -> LunaSettings {
        LunaSettings { memory_length: LunaConfig::new(1, 1, max_length).memory_length }
    }

    fn scaled(self, scale: &Scale) -> LunaSettings {
        LunaSettings { memory_length: scale.slots(self.memory_length) }
    }

    fn check(&self, _positions: usize) -> Result<(), String> {
        at_least_one("memory_length", self.memory_length)
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.memory_length)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> LunaAttention {
        LunaConfig::new(layer.d_model, layer.heads, layer.max_length)
            .with_qkv_dim(layer.qkv_dim)
            .with_memory_length(self.memory_length)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct LunaAttention {
    /// `P: [l, d_model]`, the learned memory.
    pub memory: Param<Tensor<2>>,
    /// Projections of the pack attention (queries from the memory, keys and values from
    /// the sequence).
    pub pack: HeadProjections,
    /// Projections of the unpack attention (queries from the sequence, keys and values
    /// from the packed memory).
    pub unpack: HeadProjections,
    pub dropout: Dropout,
}

impl LunaAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, _, d_model] = x.dims();
        let memory_length = self.memory.dims()[0];
        let memory = self.memory.val().unsqueeze::<3>().expand([batch, memory_length, d_model]);
        let packed = self.pack.cross_attend(memory, x.clone(), Some(padding), &self.dropout); // [batch, l, d_model]
        self.unpack.cross_attend(x, packed, None, &self.dropout)
    }
}

impl AttentionLayer for LunaAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// Work of one forward ([`super::flops`]): the pack attention (the `l` memory slots over
/// the sequence) and the unpack attention (the sequence over the `l` packed slots), each
/// with its four projections: `8 b (n + l) D d + 8 b n l d`.
pub fn forward_flops(shape: &LayerShape, memory_length: usize) -> f64 {
    let (n, l) = (shape.n(), memory_length as f64);
    shape.projections(n) + shape.projections(l) + shape.attend(l, n) + shape.attend(n, l)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{assert_close, assert_finite_gradients, assert_padding_is_invisible, padding_after, values};
    use crate::attention::full_layer::FullAttention;
    use burn::tensor::Distribution;

    #[test]
    fn luna_is_full_attention_of_the_memory_then_of_the_sequence_over_it() {
        // With the same projections, pack is full attention of [P; X] restricted to the
        // memory's rows over X's keys: check it against FullAttention on the concatenation
        // with the memory's own keys masked.
        let device = Device::flex();
        device.seed(61);
        let (len, d_model, heads, l) = (5, 8, 2, 3);
        let luna = LunaConfig::new(d_model, heads, len).with_memory_length(l).init(&device);
        let x = Tensor::<3>::random([1, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let full_pack = FullAttention { projections: luna.pack.clone(), dropout: DropoutConfig::new(0.0).init() };
        let joint = Tensor::cat(vec![luna.memory.val().unsqueeze::<3>(), x.clone()], 1);
        let memory_keys_masked = Tensor::<2, Bool>::from_data(
            burn::tensor::TensorData::new((0..l + len).map(|i| i < l).collect::<Vec<bool>>(), [1, l + len]),
            &device,
        );
        let packed = full_pack.forward(joint, memory_keys_masked).slice([0..1, 0..l]);

        let full_unpack = FullAttention { projections: luna.unpack.clone(), dropout: DropoutConfig::new(0.0).init() };
        let joint = Tensor::cat(vec![x.clone(), packed], 1);
        let sequence_keys_masked = Tensor::<2, Bool>::from_data(
            burn::tensor::TensorData::new((0..len + l).map(|i| i < len).collect::<Vec<bool>>(), [1, len + l]),
            &device,
        );
        let expected = values(full_unpack.forward(joint, sequence_keys_masked).slice([0..1, 0..len]));

        let got = values(luna.forward(x, Tensor::<2, Bool>::full([1, len], false, &device)));
        assert_close(&got, &expected, 1e-5, "Luna vs two masked full attentions");
    }

    #[test]
    fn luna_padding_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(62);
        let attention = LunaConfig::new(8, 2, 10).with_memory_length(4).init(&device);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    #[test]
    fn luna_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(63);
        let attention = LunaConfig::new(8, 2, 10).with_memory_length(4).init(&device);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let grads = attention.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
        assert_eq!(assert_finite_gradients(&attention, &grads), 9);
    }
}
