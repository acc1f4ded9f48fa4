//! Linformer: self-attention with linear complexity.
//!
//! Paper: Wang, Li, Khabsa, Fang, Ma, "Linformer: Self-Attention with Linear Complexity",
//! arXiv 2006.04768, 2020.
//! Family: low rank.
//! Cost: O(n k d) time and O(n k) memory per head in the sequence length n, with k the
//! projected length (fixed): linear in n.
//!
//! Keys and values are projected along the length by learned matrices `E, F: [k, n]`
//! (Section 4, eq. 7): `head = softmax(Q (E K)^T / sqrt(d_head)) (F V)`. The projections are
//! sized for `max_length` and cut to the first `n` columns for a sequence of `n` tokens;
//! they are shared by the heads (the paper's "headwise sharing"), one for keys and one for
//! values.
//!
//! Padding: padded keys and values are zeroed before the length projection, so they add
//! nothing to `E K` and `F V`. Because a sequence of `n` tokens uses the first `n` columns of
//! `E` and `F`, a sequence padded at its end gives its real tokens exactly the outputs of the
//! same sequence without padding.

use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;

use super::full::attention_weights;
use super::heads::HeadProjections;

#[derive(Config, Debug)]
pub struct LinformerConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// Longest sequence: the length the projections `E` and `F` are sized for.
    pub max_length: usize,
    /// Dropout on the attention weights.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// `k`, the length keys and values are projected to (the paper's default is 256; LRA
    /// used 32 on Text).
    #[config(default = 256)]
    pub projected_length: usize,
}

impl LinformerConfig {
    pub fn init(&self, device: &Device) -> LinformerAttention {
        // N(0, 1/max_length): E K, a sum over up to max_length keys, keeps the keys' scale.
        let projection = Initializer::Normal { mean: 0.0, std: 1.0 / (self.max_length as f64).sqrt() };
        LinformerAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            key_length_projection: projection.init([self.projected_length, self.max_length], device),
            value_length_projection: projection.init([self.projected_length, self.max_length], device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

#[derive(Module, Debug)]
pub struct LinformerAttention {
    pub projections: HeadProjections,
    /// `E: [k, max_length]`, projects the keys along the length.
    pub key_length_projection: Param<Tensor<2>>,
    /// `F: [k, max_length]`, projects the values along the length.
    pub value_length_projection: Param<Tensor<2>>,
    pub dropout: Dropout,
}

impl LinformerAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`;
    /// `len` at most `max_length`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let max_length = self.key_length_projection.dims()[1];
        assert!(len <= max_length, "Linformer: input of {len} tokens is longer than max_length {max_length}");
        let (q, k, v) = self.projections.project(x);
        let real = padding.bool_not().float().reshape([batch, 1, len, 1]);
        let k = project_length(self.key_length_projection.val(), k * real.clone()); // [batch, heads, k, d_head]
        let v = project_length(self.value_length_projection.val(), v * real);
        let weights = self.dropout.forward(attention_weights(q, k, None)); // [batch, heads, len, k]
        self.projections.combine(weights.matmul(v))
    }
}

/// `E[:, :len] x`: `projection: [k, max_length]`, `x: [batch, heads, len, d_head]` ->
/// `[batch, heads, k, d_head]`.
fn project_length(projection: Tensor<2>, x: Tensor<4>) -> Tensor<4> {
    let len = x.dims()[2];
    let [k, _] = projection.dims();
    projection.slice([0..k, 0..len]).unsqueeze::<4>().matmul(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::Mechanism;
    use crate::attention::checks::{
        assert_close, assert_finite_gradients, assert_padding_is_invisible, assert_tiny_classifier_trains, values,
    };
    use crate::attention::full::FullAttention;
    use burn::tensor::Distribution;

    #[test]
    fn linformer_with_identity_projections_equals_full_attention() {
        let device = Device::flex();
        device.seed(11);
        let (batch, len, d_model, heads) = (2, 6, 8, 2);
        let mut linformer = LinformerConfig::new(d_model, heads, len).with_projected_length(len).init(&device);
        linformer.key_length_projection = Param::from_tensor(Tensor::eye(len, &device));
        linformer.value_length_projection = Param::from_tensor(Tensor::eye(len, &device));
        let full = FullAttention { projections: linformer.projections.clone(), dropout: DropoutConfig::new(0.0).init() };

        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let no_padding = Tensor::<2, Bool>::full([batch, len], false, &device);
        let got = values(linformer.forward(x.clone(), no_padding.clone()));
        let expected = values(full.forward(x, no_padding));
        assert_close(&got, &expected, 1e-5, "linformer vs full attention");
    }

    #[test]
    fn linformer_padding_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(12);
        let attention = LinformerConfig::new(8, 2, 10).with_projected_length(4).init(&device);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    #[test]
    fn linformer_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(13);
        let attention = LinformerConfig::new(8, 2, 10).with_projected_length(4).init(&device);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let padding = crate::attention::checks::padding_after(&[7, 4], 7, &device);
        let grads = attention.forward(x, padding).sum().backward();
        assert_eq!(assert_finite_gradients(&attention, &grads), 6);
    }

    #[test]
    fn a_tiny_linformer_classifier_trains() {
        assert_tiny_classifier_trains(Mechanism::Linformer);
    }
}
