//! The dense feed-forward layer of LRA's Transformer. Switch's experts are made of it and
//! the encoder block holds it or them; kept out of `encoder.rs` so that `switch.rs` need
//! not import the block that holds its layer.
//!
//! On the CPU backends (flex, ndarray) the product at the heart of its second half,
//! `dropout(GELU(h)) W`, is one fused operation whose backward keeps `h` alone and
//! recomputes `dropout(GELU(h))` for the kernel's gradient. Composed, the activation's
//! node keeps `h` and the product's node keeps `dropout(GELU(h))`: two `[.., d_ff]`
//! tensors per block held from the forward to the backward (the largest a block keeps,
//! at `d_ff = 4 d_model`) where one serves. The values and gradients are the
//! composition's bit for bit: the same loops and products in the same order, around the
//! same reshapes and bias addition as burn's `linear`, which multiplies either the
//! batches side by side or the rows of all batches at once ([`merges_batches`]).
//! Other backends (wgpu, cuda) use the composition.

// ndarray is deprecated in burn, and kept selectable here.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::module::Initializer;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;

use crate::activation::{gelu_tanh, gelu_tanh_backward, gelu_tanh_values};
use crate::attention::heads::dense;
use crate::attention::random;
use crate::attention::softmax::{active_probability, drop_tensor, dropout};
use crate::cpu::{RowMajor, runs_natively};

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
        let hidden = self.input.forward(x);
        // LRA's MlpBlock: flax's `nn.gelu`, the tanh form.
        if D < 2 || !runs_natively(&hidden) {
            return self.output.forward(dropout(gelu_tanh(hidden), &self.dropout));
        }
        // In the composition's order: the mask's seed drawn (where `dropout` would draw it),
        // then the kernel and the bias read (a parameter not yet initialised draws its
        // values when first read), so that the device's stream of numbers is the same.
        let (prob, seed) = match active_probability(&self.dropout, &hidden.device()) {
            Some(prob) => (prob, random::seed_from_device(&hidden.device())),
            None => (0.0, 0),
        };
        let (weight, bias) = (self.output.weight.val(), self.output.bias.as_ref().map(|bias| bias.val()));
        dense_of_activations(hidden, weight, bias, prob, seed)
    }
}

/// `Dense(dropout(GELU(hidden)))` with the fused product, arranged as burn's `linear`
/// arranges its product and bias: `hidden: [.., rows, d_ff]`, `weight: [d_ff, d_model]`,
/// `bias: [d_model]` -> `[.., rows, d_model]`.
fn dense_of_activations<const D: usize>(
    hidden: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
    prob: f32,
    seed: u64,
) -> Tensor<D> {
    let dims = hidden.dims();
    let [d_ff, d_model] = weight.dims();
    let (batches, rows) = (dims[..D - 2].iter().product::<usize>(), dims[D - 2]);
    if D > 2 && merges_batches(batches, rows, d_model) {
        let merged = gelu_dropout_matmul(hidden.reshape([batches * rows, d_ff]), weight, prob, seed);
        let merged = match bias {
            Some(bias) => merged + bias.reshape([1, d_model]),
            None => merged,
        };
        return merged.reshape(dims_with(dims, d_model));
    }
    let batched = gelu_dropout_matmul(hidden, weight.unsqueeze::<D>(), prob, seed);
    match bias {
        Some(bias) => batched + bias.unsqueeze::<D>(),
        None => batched,
    }
}

/// [`FusedFeedForward::gelu_dropout_matmul`] on tensors.
fn gelu_dropout_matmul<const D: usize>(hidden: Tensor<D>, weight: Tensor<D>, prob: f32, seed: u64) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedFeedForward>::gelu_dropout_matmul(
        hidden.into_dispatch(),
        weight.into_dispatch(),
        prob,
        seed,
    ))
}

/// `dims` with its last replaced by `last`.
fn dims_with<const D: usize>(mut dims: [usize; D], last: usize) -> [usize; D] {
    dims[D - 1] = last;
    dims
}

/// Whether burn's `linear` (burn 0.22, its default `MatmulTransformPolicy`) multiplies the
/// rows of all `batches` at once rather than batch by batch, for `rows` per batch and
/// `cols` outputs: when there are several batches, `rows` is not a whole number of its
/// tiles of 32 rows, and the merged output is closer to square. The bit-for-bit test
/// below holds only while this is burn's rule.
fn merges_batches(batches: usize, rows: usize, cols: usize) -> bool {
    const ROW_TILE: usize = 32;
    let merged = batches * rows;
    let squarer = merged.min(cols) * rows.max(cols) > rows.min(cols) * merged.max(cols);
    batches > 1 && !rows.is_multiple_of(ROW_TILE) && squarer
}

/// `dropout(GELU(hidden))` on a CPU backend: the dense layer's input, `[.., d_ff]`.
fn activations<B: RowMajor>(hidden: FloatTensor<B>, prob: f32, seed: u64) -> FloatTensor<B> {
    let active = gelu_tanh_values::<B>(hidden);
    if prob > 0.0 { drop_tensor::<B>(active, prob, seed) } else { active }
}

/// `grad` summed over the dimensions where `shape` has 1 and `grad` more (the broadcast
/// dimensions of a product's operand), as burn's autodiff sums them.
fn sum_broadcast<B: Backend>(grad: FloatTensor<B>, shape: &Shape) -> FloatTensor<B> {
    let grad_shape = grad.shape();
    let dims: Vec<usize> = (0..grad_shape.num_dims()).filter(|&i| grad_shape[i] != shape[i]).collect();
    match dims.as_slice() {
        [] => grad,
        [dim] => B::float_sum_dim(grad, *dim),
        dims => B::float_sum_dims(grad, dims),
    }
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedFeedForward: Backend {
    /// `dropout(GELU(hidden)) weight`, a (batched) product: `hidden: [.., rows, d_ff]`,
    /// `weight: [.., d_ff, d_model]` (leading dimensions equal to the hidden's or 1) ->
    /// `[.., rows, d_model]`; the tanh-form GELU, the dropout's mask drawn from `seed`
    /// (`prob` 0: no dropout).
    fn gelu_dropout_matmul(hidden: FloatTensor<Self>, weight: FloatTensor<Self>, prob: f32, seed: u64) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedFeedForward for B {
    fn gelu_dropout_matmul(hidden: FloatTensor<B>, weight: FloatTensor<B>, prob: f32, seed: u64) -> FloatTensor<B> {
        B::float_matmul(activations::<B>(hidden, prob, seed), weight)
    }
}

/// The backward node: it keeps `hidden`, the kernel and the dropout's probability and
/// seed; `dropout(GELU(hidden))` is recomputed for the kernel's gradient.
#[derive(Debug)]
struct GeluDropoutMatmulBackward;

impl<B: RowMajor> Backward<B, 2> for GeluDropoutMatmulBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, f32, u64);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (hidden, weight, prob, seed) = ops.state;
        let output_grad = grads.consume::<B>(&ops.node);
        let [hidden_node, weight_node] = ops.parents;
        // The product's gradients as burn's autodiff computes them, then those of the
        // dropout and the GELU as their fused nodes compute them.
        if let Some(node) = weight_node {
            let weight_shape = weight.shape();
            let active = activations::<B>(hidden.clone(), prob, seed);
            let grad = B::float_matmul(B::float_transpose(active), output_grad.clone());
            grads.register::<B>(node.id, sum_broadcast::<B>(grad, &weight_shape));
        }
        if let Some(node) = hidden_node {
            let active_grad = B::float_matmul(output_grad, B::float_transpose(weight));
            let gelu_grad = if prob > 0.0 { drop_tensor::<B>(active_grad, prob, seed) } else { active_grad };
            grads.register::<B>(node.id, gelu_tanh_backward::<B>(hidden, gelu_grad));
        }
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedFeedForward for Autodiff<B, C> {
    fn gelu_dropout_matmul(hidden: FloatTensor<Self>, weight: FloatTensor<Self>, prob: f32, seed: u64) -> FloatTensor<Self> {
        let (hidden, hidden_node) = hidden.into_parts();
        let (weight, weight_node) = weight.into_parts();
        match GeluDropoutMatmulBackward.prepare::<C>([hidden_node, weight_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = B::gelu_dropout_matmul(hidden.clone(), weight.clone(), prob, seed);
                prep.finish((hidden, weight, prob, seed), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gelu_dropout_matmul(hidden, weight, prob, seed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::softmax::FusedSoftmax;
    use crate::numeric_checks::values;
    use burn::tensor::Distribution;

    /// `(hidden's shape, d_model)`: many rows a batch (burn's `linear` multiplies batch by
    /// batch), whole tiles of rows, a few rows a batch (it merges the batches' rows), and
    /// rows alone.
    const SHAPES: [([usize; 3], usize); 3] = [([2, 201, 96], 24), ([2, 64, 32], 8), ([4, 3, 128], 64)];

    /// The output and the gradients of `hidden` and of both parameters of `Dense(drop(GELU(
    /// hidden)))`, fused or composed, with the mask of `seed`, for the output gradient `g`.
    fn run<const D: usize>(
        layer: &DenseFeedForward,
        hidden: &Tensor<D>,
        g: &Tensor<D>,
        (prob, seed): (f32, u64),
        fused: bool,
    ) -> [Vec<f32>; 4] {
        let hidden = hidden.clone().detach().require_grad();
        let (weight, bias) = (layer.output.weight.val(), layer.output.bias.as_ref().unwrap().val());
        let y = if fused {
            dense_of_activations(hidden.clone(), weight.clone(), Some(bias.clone()), prob, seed)
        } else {
            let active = gelu_tanh(hidden.clone());
            let dropped = match prob > 0.0 {
                true => Tensor::from_dispatch(<Dispatch as FusedSoftmax>::dropout(active.into_dispatch(), prob, seed)),
                false => active,
            };
            layer.output.forward(dropped)
        };
        let grads = (y.clone() * g.clone()).sum().backward();
        let grad = |t: Tensor<D>| values(t.grad(&grads).expect("a gradient"));
        [
            values(y),
            grad(hidden),
            values(weight.grad(&grads).expect("a gradient")),
            values(bias.grad(&grads).expect("a gradient")),
        ]
    }

    fn assert_same(fused: [Vec<f32>; 4], composed: [Vec<f32>; 4], case: &str) {
        for ((got, expected), name) in fused.iter().zip(&composed).zip(["y", "d hidden", "d weight", "d bias"]) {
            assert_eq!(got, expected, "{name}, {case}");
        }
        assert!(fused[0].iter().any(|&v| v != 0.0), "a non-trivial output, {case}");
    }

    /// With and without dropout (a mask of a given seed), the fused product gives the
    /// composition's output and the gradients of its input and of both parameters bit for
    /// bit, whichever way burn's `linear` multiplies.
    #[test]
    fn the_fused_feed_forward_output_equals_its_composition_bit_for_bit() {
        let device = Device::flex().autodiff();
        device.seed(61);
        let normal = Distribution::Normal(0.0, 1.0);
        assert!(merges_batches(4, 3, 64) && !merges_batches(2, 201, 24) && !merges_batches(2, 64, 8));
        for (shape, d_model) in SHAPES {
            let layer = DenseFeedForward::new(d_model, shape[2], 0.1, &device);
            let hidden = Tensor::<3>::random(shape, normal, &device);
            let g = Tensor::<3>::random([shape[0], shape[1], d_model], normal, &device);
            for dropout in [(0.0, 0), (0.1, 6_062)] {
                let case = format!("{shape:?} -> {d_model}, dropout {dropout:?}");
                assert_same(run(&layer, &hidden, &g, dropout, true), run(&layer, &hidden, &g, dropout, false), &case);
                let (rows, g) =
                    (hidden.clone().reshape([shape[0] * shape[1], shape[2]]), g.clone().reshape([shape[0] * shape[1], d_model]));
                assert_same(
                    run(&layer, &rows, &g, dropout, true),
                    run(&layer, &rows, &g, dropout, false),
                    &format!("rows of {case}"),
                );
            }
        }
    }
}
