//! FNet: token mixing by the Fourier transform, in place of attention.
//!
//! Paper: Lee-Thorp, Ainslie, Eckstein, Ontañón, "FNet: Mixing Tokens with Fourier
//! Transforms", NAACL 2022.
//! Family: token mixing (no attention weights, no parameters).
//! Cost here: O(n d log(n d)) time and O(n d) memory in the sequence length n on the CPU
//! backends, by the FFT as in the paper ([`crate::fourier`], a fused operation). On wgpu
//! and cuda, where burn 0.22.1 has no FFT (only in the optional `burn-signal` crate, for
//! power-of-two lengths), the two transforms are computed exactly as products with cosine
//! and sine tables: O(n^2 d + n d^2) time, O(n^2 + d^2) memory.
//!
//! The layer computes `y = Re(F_seq (F_hidden x))` (Section 3.2, eq. 3): a DFT along the
//! hidden dimension, then along the sequence, keeping the real part. With
//! `F = C - i S` (`C[a, b] = cos(2 pi a b / N)`, `S[a, b] = sin(2 pi a b / N)`) and `x` real,
//! `Re(F_n x F_d) = C_n x C_d - S_n x S_d`: four real matrix products (the GPU path).
//!
//! Padding: the transform mixes every position of the padded length, so it cannot mask
//! exactly; padded positions are zeroed before mixing. Real tokens' outputs therefore do
//! not depend on what the padding positions hold, but they do depend on the padded length
//! `n` (the DFT's frequencies are those of length `n`). It takes no heads, length or
//! dropout: the transform has no heads, its tables are built for each input's length, and
//! it forms no attention weights.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::flops::LayerShape;
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Settings};
use crate::cpu::runs_natively;
use crate::fourier::fourier_mixing;

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n log n) time, O(n) memory (FFT on the CPU; exact DFT by matrix products on wgpu/cuda)";

#[derive(Config, Debug)]
pub struct FnetConfig {
    pub d_model: usize,
}

impl FnetConfig {
    pub fn init(&self, device: &Device) -> FnetMixing {
        let (hidden_cos, hidden_sin) = dft_tables(self.d_model, device);
        FnetMixing { hidden_cos, hidden_sin }
    }
}

/// FNet has no settings of its own (`"attention": "fnet"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FnetSettings;

impl Settings for FnetSettings {
    type Layer = FnetMixing;
    const MODEL: ModelCard =
        ModelCard { name: "fnet", title: "FNet (Lee-Thorp et al. 2022)", family: "token mixing (Fourier transform)", cost: COST };

    fn defaults(_max_length: usize) -> FnetSettings {
        FnetSettings
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape)
    }

    /// No attention width: the transform mixes tokens at `d_model`.
    fn init(&self, layer: &LayerSizes, device: &Device) -> FnetMixing {
        FnetConfig::new(layer.d_model).init(device)
    }
}

#[derive(Module, Debug)]
pub struct FnetMixing {
    /// `C_d: [d_model, d_model]` (a constant).
    pub hidden_cos: Tensor<2>,
    /// `S_d: [d_model, d_model]` (a constant).
    pub hidden_sin: Tensor<2>,
}

impl FnetMixing {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let x = x.mul(padding.bool_not().float().reshape([batch, len, 1]));
        if runs_natively(&x) {
            return fourier_mixing(x);
        }
        self.by_products(x)
    }

    /// The transform as products with the cosine and sine tables (wgpu, cuda):
    /// `x: [batch, len, d_model]` -> `[batch, len, d_model]`.
    fn by_products(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, len, _] = x.dims();
        let (sequence_cos, sequence_sin) = dft_tables(len, &x.device());
        let cos_part = sequence_cos.unsqueeze::<3>().matmul(x.clone()).matmul(self.hidden_cos.clone().unsqueeze::<3>());
        let sin_part = sequence_sin.unsqueeze::<3>().matmul(x).matmul(self.hidden_sin.clone().unsqueeze::<3>());
        cos_part - sin_part
    }
}

impl AttentionLayer for FnetMixing {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// `(C, S)`, each `[n, n]`: `cos` and `sin` of `2 pi (a b mod n) / n`. The product is reduced
/// modulo `n` in integers first, so the angle stays in `[0, 2 pi)` and keeps f32 precision.
fn dft_tables(n: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
    assert!(n < 46_341, "DFT tables of length {n}: a b would overflow i32");
    let index = Tensor::<1, Int>::arange(0..n as i64, device);
    let products = index.clone().reshape([n, 1]).expand([n, n]).mul(index.reshape([1, n]).expand([n, n]));
    let angle = products.remainder_scalar(n as i64).float().mul_scalar(2.0 * std::f64::consts::PI / n as f64);
    (angle.clone().cos(), angle.sin())
}

/// Work of one forward ([`super::flops`]'s convention, extended to transforms), by the
/// FFT as the CPU computes it: per example `n` real transforms of length `D` and `D/2 + 1`
/// complex ones of length `n`, counting `5 N log2 N` operations for a complex transform of
/// length `N` and half that for a real one. (The GPU path's products compute
/// `4 b n^2 D + 4 b n D^2`.)
pub fn forward_flops(shape: &LayerShape) -> f64 {
    let (n, d_model) = (shape.n(), shape.d_model as f64);
    let rows = n * 2.5 * d_model * d_model.log2();
    let columns = (d_model / 2.0 + 1.0).floor() * 5.0 * n * n.max(2.0).log2();
    shape.batch as f64 * (rows + columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{assert_close, assert_padding_content_is_invisible, padding_after, values};
    use burn::tensor::Distribution;

    /// `Re(sum_t sum_j x[t][j] exp(-2 pi i (m t / n + k j / d)))`, with loops over plain numbers.
    fn naive_fourier_mixing(x: &[f32], n: usize, d: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; n * d];
        for m in 0..n {
            for k in 0..d {
                let mut real = 0.0f64;
                for t in 0..n {
                    for j in 0..d {
                        let angle = -2.0 * std::f64::consts::PI * ((m * t) as f64 / n as f64 + (k * j) as f64 / d as f64);
                        real += x[t * d + j] as f64 * angle.cos();
                    }
                }
                y[m * d + k] = real as f32;
            }
        }
        y
    }

    #[test]
    fn fnet_mixing_equals_a_naive_two_dimensional_dft() {
        let device = Device::flex();
        device.seed(71);
        let (batch, len, d_model) = (2, 7, 6);
        let mixing = FnetConfig::new(d_model).init(&device);
        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let no_padding = Tensor::<2, Bool>::full([batch, len], false, &device);
        let by_fft = values(mixing.forward(x.clone(), no_padding.clone()));
        let by_products = values(mixing.by_products(x.clone()));
        let x = values(x);
        let expected: Vec<f32> =
            (0..batch).flat_map(|b| naive_fourier_mixing(&x[b * len * d_model..(b + 1) * len * d_model], len, d_model)).collect();
        assert_close(&by_fft, &expected, 1e-4, "FNet by FFT vs naive DFT");
        assert_close(&by_products, &expected, 1e-4, "FNet by products vs naive DFT");
    }

    #[test]
    fn fnet_padding_content_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(72);
        let mixing = FnetConfig::new(8).init(&device);
        assert_padding_content_is_invisible(|x, padding| mixing.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    #[test]
    fn fnet_gradients_with_respect_to_the_input_are_finite() {
        // FNet has no parameters; the gradient reaching the layer below must be finite.
        let device = Device::flex().autodiff();
        device.seed(73);
        let mixing = FnetConfig::new(8).init(&device);
        assert_eq!(mixing.num_params(), 0);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let grads = mixing.forward(x.clone(), padding_after(&[7, 4], 7, &device)).sum().backward();
        let grad = x.grad(&grads).expect("the input has a gradient");
        assert!(grad.is_finite().all().into_scalar::<bool>());
    }
}
