//! Linear Transformer: attention with the feature map `elu(x) + 1`.
//!
//! Paper: Katharopoulos, Vyas, Pappas, Fleuret, "Transformers are RNNs: Fast Autoregressive
//! Transformers with Linear Attention", ICML 2020.
//! Family: kernel.
//! Cost: O(n d^2) time and O(n d + d^2) memory per head in the sequence length n: linear
//! in n.
//!
//! The softmax similarity is replaced by `phi(q)^T phi(k)` with `phi(x) = elu(x) + 1`
//! (Section 3.2, eq. 7), and associativity puts `phi(K)^T V` first (eq. 5):
//! `V'_i = phi(Q_i)^T (sum_j phi(K_j) V_j^T) / (phi(Q_i)^T sum_j phi(K_j))`.
//!
//! Padding: the features of padded keys are zeroed, so padded tokens add nothing to either
//! sum and real tokens' outputs do not depend on them. `dropout` is kept for the shared
//! interface but unused: no attention weights are formed.

use burn::prelude::*;
use burn::tensor::activation::elu;

use super::heads::HeadProjections;

/// Added to the normaliser, as in the paper's code, against a division by zero.
const NORMALISER_FLOOR: f64 = 1.0e-6;

#[derive(Config, Debug)]
pub struct LinearAttentionConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    pub max_length: usize,
    /// Unused: linear attention forms no attention weights to drop.
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl LinearAttentionConfig {
    pub fn init(&self, device: &Device) -> LinearAttention {
        LinearAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
        }
    }
}

#[derive(Module, Debug)]
pub struct LinearAttention {
    pub projections: HeadProjections,
}

impl LinearAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let (q, k, v) = self.projections.project(x);
        let real = padding.bool_not().float().reshape([batch, 1, len, 1]);
        let q_features = feature_map(q);
        let k_features = feature_map(k).mul(real); // [batch, heads, len, d_head]
        let context = k_features.clone().transpose().matmul(v); // [batch, heads, d_head, d_head]
        let key_sum = k_features.sum_dim(2); // [batch, heads, 1, d_head]
        let normaliser = q_features.clone().mul(key_sum).sum_dim(3).add_scalar(NORMALISER_FLOOR); // [batch, heads, len, 1]
        self.projections.combine(q_features.matmul(context).div(normaliser))
    }
}

/// `phi(x) = elu(x) + 1`, positive everywhere.
fn feature_map(x: Tensor<4>) -> Tensor<4> {
    elu(x, 1.0).add_scalar(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::Mechanism;
    use crate::attention::checks::{
        assert_close, assert_finite_gradients, assert_padding_is_invisible, assert_tiny_classifier_trains, padding_after, values,
    };
    use crate::attention::heads::merge_heads;
    use burn::tensor::Distribution;

    #[test]
    fn linear_attention_equals_the_explicit_normalised_kernel_product() {
        let device = Device::flex();
        device.seed(31);
        let (batch, len, d_model, heads) = (2, 6, 8, 2);
        let attention = LinearAttentionConfig::new(d_model, heads, len).init(&device);
        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let padding = padding_after(&[6, 4], len, &device);
        let got = values(attention.forward(x.clone(), padding.clone()));

        // The quadratic form: A = phi(Q) phi(K)^T with padded keys' columns zeroed, rows
        // normalised to sum to one, then A V.
        let (q, k, v) = attention.projections.project(x);
        let real_keys = padding.bool_not().float().reshape([batch, 1, 1, len]);
        let kernel = feature_map(q).matmul(feature_map(k).transpose()).mul(real_keys); // [batch, heads, len, len]
        let rows = kernel.clone().sum_dim(3);
        let expected = values(attention.projections.output.forward(merge_heads(kernel.div(rows).matmul(v))));
        assert_close(&got, &expected, 1e-4, "linear attention vs explicit kernel product");
    }

    #[test]
    fn linear_attention_padding_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(32);
        let attention = LinearAttentionConfig::new(8, 2, 10).init(&device);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    #[test]
    fn linear_attention_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(33);
        let attention = LinearAttentionConfig::new(8, 2, 10).init(&device);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let grads = attention.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
        assert_eq!(assert_finite_gradients(&attention, &grads), 4);
    }

    #[test]
    fn a_tiny_linear_transformer_classifier_trains() {
        assert_tiny_classifier_trains(Mechanism::Linear);
    }
}
