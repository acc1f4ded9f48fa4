//! The dense feed-forward layer of LRA's Transformer. Switch's experts are made of the
//! layer and the encoder block holds it or them; kept out of `encoder.rs` so that
//! `switch.rs` need not import the block that holds its layer.
//!
//! Its second half, `dropout(GELU(h)) W`, is one fused product on the CPU backends
//! ([`crate::dense`]), whose backward keeps `h` alone and recomputes `dropout(GELU(h))`
//! for the kernel's gradient.

use burn::module::Initializer;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;

use crate::activation::Activation;
use crate::attention::heads::dense;
use crate::dense::{DenseInput, apply_dense};

const XAVIER: Initializer = Initializer::XavierUniform { gain: 1.0 };

/// The dense feed-forward layer of LRA's Transformer (its MlpBlock): `Dense -> GELU ->
/// Dense`, Xavier-uniform kernels, zero biases.
#[derive(Module, Debug)]
pub struct DenseFeedForward {
    pub input: Linear,
    pub output: Linear,
    pub dropout: Dropout,
}

impl DenseFeedForward {
    pub fn new(d_model: usize, d_ff: usize, dropout: f64, device: &Device) -> Self {
        Self {
            input: dense(d_model, d_ff, XAVIER, device),
            output: dense(d_ff, d_model, XAVIER, device),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// `[.., d_model]` -> `[.., d_model]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let hidden = apply_dense(&self.input, x);
        // LRA's MlpBlock: flax's `nn.gelu`, the tanh form.
        DenseInput::activated(hidden, Activation::GeluTanh, &self.dropout).dense(&self.output)
    }
}
