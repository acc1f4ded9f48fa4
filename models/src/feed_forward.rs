//! The dense feed-forward layer of LRA's Transformer. Switch's experts are made of it and
//! the encoder block holds it or them; kept out of `encoder.rs` so that `switch.rs` need
//! not import the block that holds its layer.

use burn::module::Initializer;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;

use crate::activation::gelu_tanh;
use crate::attention::heads::dense;
use crate::attention::softmax::dropout;

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
        // LRA's MlpBlock: flax's `nn.gelu`, the tanh form.
        let hidden = gelu_tanh(self.input.forward(x));
        self.output.forward(dropout(hidden, &self.dropout))
    }
}
