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
//! sum and real tokens' outputs do not depend on them. It takes no dropout: no attention
//! weights are formed.
//!
//! Variant `lra`, as LRA's released code computes it
//! (`lra_benchmarks/models/linear_transformer/linear_attention.py`): the same kernel, the
//! same floor of 1e-6 on the normaliser and no attention dropout, but padding is not
//! masked: padded keys add to `phi(K)^T V` and to the normaliser (its padding branch,
//! lines 137-142, builds a `NotImplementedError` it never raises).

use burn::prelude::*;
use burn::tensor::activation::elu;
use serde::{Deserialize, Serialize};

use super::flops::LayerShape;
use super::heads::HeadProjections;
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Settings, Variant};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n) time, O(n) memory";

/// What the `lra` variant computes differently from the paper, in one line for reports
/// (the module's notes say it in full).
pub const LRA_VARIANT: &str = "padding not masked: padded keys enter both sums (linear_attention.py:137-142)";

/// Added to the normaliser, as in the paper's code, against a division by zero.
const NORMALISER_FLOOR: f64 = 1.0e-6;

#[derive(Config, Debug)]
pub struct LinearAttentionConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// The paper's form, or LRA's (padding not masked).
    #[config(default = "Variant::Paper")]
    pub variant: Variant,
}

impl LinearAttentionConfig {
    pub fn init(&self, device: &Device) -> LinearAttention {
        LinearAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            masks_padding: self.variant == Variant::Paper,
        }
    }
}

/// The Linear Transformer's own settings in a run's configuration
/// (`"attention": {"linear": {"variant": "lra"}}`): only its form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearSettings {
    #[serde(default)]
    pub variant: Variant,
}

impl Settings for LinearSettings {
    type Layer = LinearAttention;
    const MODEL: ModelCard =
        ModelCard { name: "linear", title: "Linear Transformer (Katharopoulos et al. 2020)", family: "kernel", cost: COST };
    const LRA_VARIANT: Option<&'static str> = Some(LRA_VARIANT);

    fn defaults(_max_length: usize) -> LinearSettings {
        LinearSettings { variant: LinearAttentionConfig::new(1, 1).variant }
    }

    fn variant_mut(&mut self) -> Option<&mut Variant> {
        Some(&mut self.variant)
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> LinearAttention {
        LinearAttentionConfig::new(layer.d_model, layer.heads).with_variant(self.variant).with_qkv_dim(layer.qkv_dim).init(device)
    }
}

#[derive(Module, Debug)]
pub struct LinearAttention {
    pub projections: HeadProjections,
    /// False in LRA's variant, where padded keys count.
    pub masks_padding: bool,
}

impl LinearAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let (q, k, v) = self.projections.project(x);
        let real = padding.bool_not().float().reshape([batch, 1, len, 1]);
        let q_features = feature_map(q);
        let k_features = match self.masks_padding {
            true => feature_map(k).mul(real), // [batch, heads, len, d_head]
            false => feature_map(k),
        };
        let context = k_features.clone().transpose().matmul(v); // [batch, heads, d_head, d_head]
        let key_sum = k_features.sum_dim(2); // [batch, heads, 1, d_head]
        let normaliser = q_features.clone().mul(key_sum).sum_dim(3).add_scalar(NORMALISER_FLOOR); // [batch, heads, len, 1]
        self.projections.combine(q_features.matmul(context).div(normaliser))
    }
}

impl AttentionLayer for LinearAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// `phi(x) = elu(x) + 1`, positive everywhere.
fn feature_map(x: Tensor<4>) -> Tensor<4> {
    elu(x, 1.0).add_scalar(1.0)
}

/// Work of one forward ([`super::flops`]): the projections and linear attention through
/// the `d_head` features of `elu + 1`: `8 b n D d + 4 b n d_head d`.
pub fn forward_flops(shape: &LayerShape) -> f64 {
    shape.projections(shape.n()) + shape.linear_attend(shape.n(), shape.d_head())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{
        Rows, assert_close, assert_finite_gradients, assert_padding_is_invisible, dot, mix, padding_after, values,
    };
    use crate::attention::heads::merge_heads;
    use burn::tensor::Distribution;

    #[test]
    fn linear_attention_equals_the_explicit_normalised_kernel_product() {
        let device = Device::flex();
        device.seed(31);
        let (batch, len, d_model, heads) = (2, 6, 8, 2);
        let attention = LinearAttentionConfig::new(d_model, heads).init(&device);
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
        let attention = LinearAttentionConfig::new(8, 2).init(&device);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    #[test]
    fn linear_attention_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(33);
        let attention = LinearAttentionConfig::new(8, 2).init(&device);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let grads = attention.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
        assert_eq!(assert_finite_gradients(&attention, &grads), 4);
    }

    #[test]
    fn lra_linear_attention_equals_the_released_loops_padded_keys_included() {
        let device = Device::flex();
        device.seed(34);
        let (batch, len, d_model, heads) = (2, 7, 8, 2);
        let attention = LinearAttentionConfig::new(d_model, heads).with_variant(Variant::Lra).init(&device);
        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let padding = padding_after(&[7, 3], len, &device);
        let got = values(attention.forward(x.clone(), padding));
        // linear_attention.py:63-70: Y_i = sum_j (phi(q_i).phi(k_j)) v_j / (sum_j phi(q_i).phi(k_j) + 1e-6)
        // over every j, padding included.
        let (q, k, v) = attention.projections.project(x);
        let (q, k, v) = (Rows::of(q), Rows::of(k), Rows::of(v));
        let phi = |row: &[f32]| row.iter().map(|&t| if t > 0.0 { t + 1.0 } else { t.exp() }).collect::<Vec<f32>>();
        let context = Rows::build([batch, heads, len, q.d()], |b, h, i| {
            let weights: Vec<f32> = (0..len).map(|j| dot(&phi(q.row(b, h, i)), &phi(k.row(b, h, j)))).collect();
            let total = weights.iter().sum::<f32>() + 1.0e-6;
            let mixed = mix(&weights, &(0..len).map(|j| v.row(b, h, j)).collect::<Vec<_>>());
            mixed.into_iter().map(|m| m / total).collect()
        });
        let expected = values(attention.projections.combine(context.tensor(&device)));
        assert_close(&got, &expected, 1e-4, "LRA's linear attention vs its loops");
    }

    #[test]
    fn lra_linear_attention_leaks_padding_exactly_as_released() {
        let device = Device::flex();
        device.seed(35);
        let attention = LinearAttentionConfig::new(8, 2).with_variant(Variant::Lra).init(&device);
        let x = Tensor::<3>::random([1, 6, 8], Distribution::Normal(0.0, 1.0), &device);
        // The mask is ignored: marking the last three tokens as padding changes nothing.
        let masked = values(attention.forward(x.clone(), padding_after(&[3], 6, &device)));
        let unmasked = values(attention.forward(x, padding_after(&[6], 6, &device)));
        assert_eq!(masked, unmasked);
    }

    #[test]
    fn lra_linear_attention_gradients_are_finite() {
        let device = Device::flex().autodiff();
        device.seed(36);
        let attention = LinearAttentionConfig::new(8, 2).with_variant(Variant::Lra).init(&device);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let grads = attention.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
        assert_eq!(assert_finite_gradients(&attention, &grads), 4);
    }
}
