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
//!
//! Variant `lra`, as LRA's released code computes it
//! (`lra_benchmarks/models/linformer/linformer_attention.py`): one projection `E` for
//! keys and values alike (lines 143-144; the paper's "key-value sharing"), shared by the
//! heads, Xavier-uniform over `[max_length, k]` (140-141), and padding not masked: padded
//! keys and values enter `E K` and `E V` (149-150: "Does Linformer care about masks?").
//! LRA's `k` is 16 on every task: the Text configuration's 32 never reaches the model.

use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::flops::LayerShape;
use super::heads::{HeadProjections, attention_weights};
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Settings, Variant, fit, within};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n k) time, O(n k) memory (k = 256 projected length)";

/// What the `lra` variant computes differently from the paper, in one line for reports
/// (the module's notes say it in full).
pub const LRA_VARIANT: &str = "one projection E of keys and values alike, shared by the heads, Xavier-uniform, and padding projected with the rest (linformer_attention.py:127-164)";

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
    /// The paper's form, or LRA's (one shared projection, padding not masked).
    #[config(default = "Variant::Paper")]
    pub variant: Variant,
}

impl LinformerConfig {
    pub fn init(&self, device: &Device) -> LinformerAttention {
        let shape = [self.projected_length, self.max_length];
        let (key_length_projection, value_length_projection) = match self.variant {
            Variant::Paper => {
                // N(0, 1/max_length): E K, a sum over up to max_length keys, keeps the keys' scale.
                let projection = Initializer::Normal { mean: 0.0, std: 1.0 / (self.max_length as f64).sqrt() };
                (projection.init(shape, device), Some(projection.init(shape, device)))
            }
            Variant::Lra => {
                let bound = (6.0 / (self.max_length + self.projected_length) as f64).sqrt();
                (Initializer::Uniform { min: -bound, max: bound }.init(shape, device), None)
            }
        };
        LinformerAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            key_length_projection,
            value_length_projection,
            dropout: DropoutConfig::new(self.dropout).init(),
            masks_padding: self.variant == Variant::Paper,
        }
    }
}

/// Linformer's own settings in a run's configuration
/// (`"attention": {"linformer": {"projected_length": 256}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinformerSettings {
    #[serde(default)]
    pub variant: Variant,
    /// `k`, the length keys and values are projected to.
    pub projected_length: usize,
}

impl Settings for LinformerSettings {
    type Layer = LinformerAttention;
    const MODEL: ModelCard =
        ModelCard { name: "linformer", title: "Linformer (Wang et al. 2020)", family: "low rank", cost: COST };
    const LRA_VARIANT: Option<&'static str> = Some(LRA_VARIANT);

    fn defaults(max_length: usize) -> LinformerSettings {
        let c = LinformerConfig::new(1, 1, max_length);
        LinformerSettings { variant: c.variant, projected_length: c.projected_length }
    }

    fn variant_mut(&mut self) -> Option<&mut Variant> {
        Some(&mut self.variant)
    }

    fn fitted_to(self, positions: usize) -> LinformerSettings {
        LinformerSettings { projected_length: fit(self.projected_length, positions), ..self }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        within("projected_length (k)", self.projected_length, positions)
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.projected_length)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> LinformerAttention {
        LinformerConfig::new(layer.d_model, layer.heads, layer.max_length)
            .with_variant(self.variant)
            .with_qkv_dim(layer.qkv_dim)
            .with_projected_length(self.projected_length)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct LinformerAttention {
    pub projections: HeadProjections,
    /// `E: [k, max_length]`, projects the keys along the length.
    pub key_length_projection: Param<Tensor<2>>,
    /// `F: [k, max_length]`, projects the values along the length; `E` does in LRA's variant.
    pub value_length_projection: Option<Param<Tensor<2>>>,
    pub dropout: Dropout,
    /// False in LRA's variant, where padded keys and values are projected with the rest.
    pub masks_padding: bool,
}

impl LinformerAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`;
    /// `len` at most `max_length`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let max_length = self.key_length_projection.dims()[1];
        assert!(len <= max_length, "Linformer: input of {len} tokens is longer than max_length {max_length}");
        let (q, k, v) = self.projections.project(x);
        let (k, v) = match self.masks_padding {
            true => {
                let real = padding.bool_not().float().reshape([batch, 1, len, 1]);
                (k * real.clone(), v * real)
            }
            false => (k, v),
        };
        let value_projection = self.value_length_projection.as_ref().unwrap_or(&self.key_length_projection);
        let k = project_length(self.key_length_projection.val(), k); // [batch, heads, k, d_head]
        let v = project_length(value_projection.val(), v);
        let weights = attention_weights(q, k, None, Some(&self.dropout)); // [batch, heads, len, k]
        self.projections.combine(weights.matmul(v))
    }
}

impl AttentionLayer for LinformerAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// `E[:, :len] x`: `projection: [k, max_length]`, `x: [batch, heads, len, d_head]` ->
/// `[batch, heads, k, d_head]`.
fn project_length(projection: Tensor<2>, x: Tensor<4>) -> Tensor<4> {
    let len = x.dims()[2];
    let [k, _] = projection.dims();
    projection.slice([0..k, 0..len]).unsqueeze::<4>().matmul(x)
}

/// Work of one forward ([`super::flops`]): the projections, keys and values projected
/// along the length to `k` (`[k, n] x [n, d]` each), and every query over the `k`
/// projected keys: `8 b n D d + 4 b k n d + 4 b n k d`.
pub fn forward_flops(shape: &LayerShape, projected_length: usize) -> f64 {
    let k = projected_length as f64;
    shape.projections(shape.n()) + shape.products(2.0, k, shape.n(), shape.qkv_dim as f64) + shape.attend(shape.n(), k)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{
        Rows, assert_close, assert_finite_gradients, assert_padding_is_invisible, attend, padding_after, values,
    };
    use crate::attention::full_layer::FullAttention;
    use burn::tensor::Distribution;

    #[test]
    fn linformer_with_identity_projections_equals_full_attention() {
        let device = Device::flex();
        device.seed(11);
        let (batch, len, d_model, heads) = (2, 6, 8, 2);
        let mut linformer = LinformerConfig::new(d_model, heads, len).with_projected_length(len).init(&device);
        linformer.key_length_projection = Param::from_tensor(Tensor::eye(len, &device));
        linformer.value_length_projection = Some(Param::from_tensor(Tensor::eye(len, &device)));
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
        let padding = padding_after(&[7, 4], 7, &device);
        let grads = attention.forward(x, padding).sum().backward();
        assert_eq!(assert_finite_gradients(&attention, &grads), 6);
    }

    #[test]
    fn lra_linformer_equals_the_released_loops_with_one_shared_projection_and_padding_projected() {
        let device = Device::flex();
        device.seed(14);
        let (batch, len, d_model, heads, k, max_length) = (2, 7, 8, 2, 3, 9);
        let attention =
            LinformerConfig::new(d_model, heads, max_length).with_projected_length(k).with_variant(Variant::Lra).init(&device);
        assert!(attention.value_length_projection.is_none(), "LRA shares E between keys and values");
        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let got = values(attention.forward(x.clone(), padding_after(&[7, 4], len, &device)));
        // linformer_attention.py:129-164: Kp[j] = sum_l K[l] E[l, j] over every l (padding
        // included), Vp likewise with the same E; softmax(q Kp^T / sqrt(d)) Vp, unmasked.
        let e = values(attention.key_length_projection.val()); // ours is [k, max_length]
        let (q, kk, v) = attention.projections.project(x);
        let (q, kk, v) = (Rows::of(q), Rows::of(kk), Rows::of(v));
        let d = q.d();
        let project = |rows: &Rows, b: usize, h: usize, j: usize| {
            (0..d).map(|c| (0..len).map(|l| rows.row(b, h, l)[c] * e[j * max_length + l]).sum::<f32>()).collect::<Vec<f32>>()
        };
        let context = Rows::build([batch, heads, len, d], |b, h, i| {
            let keys: Vec<Vec<f32>> = (0..k).map(|j| project(&kk, b, h, j)).collect();
            let vals: Vec<Vec<f32>> = (0..k).map(|j| project(&v, b, h, j)).collect();
            let keys: Vec<&[f32]> = keys.iter().map(Vec::as_slice).collect();
            let vals: Vec<&[f32]> = vals.iter().map(Vec::as_slice).collect();
            attend(q.row(b, h, i), &keys, &vals, 1.0 / (d as f32).sqrt(), &[false; 3], 0.0)
        });
        let expected = values(attention.projections.combine(context.tensor(&device)));
        assert_close(&got, &expected, 1e-4, "LRA's Linformer vs its loops");
    }

    #[test]
    fn lra_linformer_leaks_padding_exactly_as_released() {
        let device = Device::flex();
        device.seed(15);
        let attention = LinformerConfig::new(8, 2, 6).with_projected_length(3).with_variant(Variant::Lra).init(&device);
        let x = Tensor::<3>::random([1, 6, 8], Distribution::Normal(0.0, 1.0), &device);
        let masked = values(attention.forward(x.clone(), padding_after(&[2], 6, &device)));
        assert_eq!(masked, values(attention.forward(x, padding_after(&[6], 6, &device))), "the mask is ignored");
    }

    #[test]
    fn lra_linformer_gradients_are_finite() {
        let device = Device::flex().autodiff();
        device.seed(16);
        let attention = LinformerConfig::new(8, 2, 10).with_projected_length(4).with_variant(Variant::Lra).init(&device);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let grads = attention.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
        assert_eq!(assert_finite_gradients(&attention, &grads), 5);
    }
}
