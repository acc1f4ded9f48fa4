//! Dense layers (burn's `Linear`) as fused products on the CPU backends (flex, ndarray):
//! `input W + b`, `dropout(activation(hidden)) W + b` and `(values ⊙ gate) W + b`, each
//! one operation with its own backward. Other backends (wgpu, cuda) use burn's layer.
//!
//! - The product's output, and its gradients' outputs, are buffers of our own
//!   ([`crate::cpu::RowMajor::matmul`]: on flex, [`crate::product`]), and the bias is
//!   added in place in parallel tasks; its gradient is summed in parallel tasks of
//!   columns. burn's `linear` composes a product whose output flex zeroes and copies on
//!   one thread, a broadcast sum (one more pass on one thread), and for the bias's
//!   gradient a sum over the batch into a tensor of the output's size.
//! - With an activated input (the feed-forward layer's second half, `dropout(GELU(h)) W`;
//!   Mega's projection of its moving average, `dropout(SiLU(h)) W`), the backward keeps
//!   `h` alone and recomputes `dropout(activation(h))` for the kernel's gradient.
//!   Composed, the activation's node keeps `h` and the product's node keeps the activated
//!   input: two `[.., d_ff]` tensors per block held from the forward to the backward (the
//!   largest a block keeps, at `d_ff = 4 d_model`) where one serves. With a gated input
//!   (Mega's `(O ⊙ gamma) U_h`) it keeps `O` and `gamma`, not their product.
//! - The values and gradients are the composition's bit for bit: the same products in the
//!   same order (flex's own calls of `gemm`), around the same reshapes and bias addition
//!   as burn's `linear`, which multiplies either the batches side by side or the rows of
//!   all batches at once ([`merges_batches`]), and the bias's gradient summed in the order
//!   of burn's sums.

// ndarray is deprecated in burn, and kept selectable here.
#![allow(deprecated)]

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::nn::{Dropout, Linear};
use burn::prelude::*;

use crate::activation::{Activation, activation_backward, activation_values};
use crate::attention::random;
use crate::attention::softmax::{active_probability, drop_tensor, dropout};
use crate::cpu::{RowMajor, runs_natively};

/// `layer(x)`, burn's `Linear` (the same numbers): on the CPU backends the product is a
/// fused operation whose output, and whose gradients' outputs, are buffers of our own
/// (see [`crate::product`]); elsewhere the layer itself. `x: [.., d_in]` -> `[.., d_out]`.
pub fn apply_dense<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    DenseInput::plain(x).dense(layer)
}

/// The input of a dense layer, `dropout(activation(hidden))`, `values ⊙ gate` or a plain
/// tensor: on the CPU backends kept as its parts until [`DenseInput::dense`] multiplies it
/// in one fused operation that keeps only those parts for its backward; elsewhere computed
/// at once by the composition.
// A value of one forward, built and consumed at once: boxing its larger variant would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum DenseInput<const D: usize> {
    Fused(FusedInput<D>),
    Composed(Tensor<D>),
}

/// The parts of a dense layer's input on the CPU backends.
#[allow(clippy::large_enum_variant)] // as `DenseInput`
pub enum FusedInput<const D: usize> {
    Activated { hidden: Tensor<D>, activation: Activation, prob: f32, seed: u64 },
    Gated { values: Tensor<D>, gate: Tensor<D> },
    Plain { input: Tensor<D> },
}

impl<const D: usize> DenseInput<D> {
    /// `dropout(activation(hidden))`. Draws the dropout's seed where the composed `dropout`
    /// would draw it.
    pub fn activated(hidden: Tensor<D>, activation: Activation, dropout: &Dropout) -> Self {
        if D < 2 || !runs_natively(&hidden) {
            return DenseInput::Composed(self::dropout(activation.apply(hidden), dropout));
        }
        let (prob, seed) = match active_probability(dropout, &hidden.device()) {
            Some(prob) => (prob, random::seed_from_device(&hidden.device())),
            None => (0.0, 0),
        };
        DenseInput::Fused(FusedInput::Activated { hidden, activation, prob, seed })
    }

    /// `values ⊙ gate`, of one shape.
    pub fn gated(values: Tensor<D>, gate: Tensor<D>) -> Self {
        if D < 2 || !runs_natively(&values) {
            return DenseInput::Composed(values * gate);
        }
        DenseInput::Fused(FusedInput::Gated { values, gate })
    }

    /// `input` as it is.
    pub fn plain(input: Tensor<D>) -> Self {
        if D < 2 || !runs_natively(&input) {
            return DenseInput::Composed(input);
        }
        DenseInput::Fused(FusedInput::Plain { input })
    }

    /// `linear(input)`: `[.., d_in]` -> `[.., d_out]`.
    pub fn dense(self, linear: &Linear) -> Tensor<D> {
        match self {
            DenseInput::Composed(input) => linear.forward(input),
            DenseInput::Fused(input) => {
                // The kernel and the bias read after the seed was drawn, as in the
                // composition (a parameter not yet initialised draws its values when first
                // read), so that the device's stream of numbers is the same.
                let (weight, bias) = (linear.weight.val(), linear.bias.as_ref().map(|bias| bias.val()));
                arranged_dense(input, weight, bias)
            }
        }
    }
}

impl<const D: usize> FusedInput<D> {
    fn dims(&self) -> [usize; D] {
        match self {
            FusedInput::Activated { hidden, .. } => hidden.dims(),
            FusedInput::Gated { values, .. } => values.dims(),
            FusedInput::Plain { input } => input.dims(),
        }
    }

    fn reshape<const K: usize>(self, dims: [usize; K]) -> FusedInput<K> {
        match self {
            FusedInput::Activated { hidden, activation, prob, seed } => {
                FusedInput::Activated { hidden: hidden.reshape(dims), activation, prob, seed }
            }
            FusedInput::Gated { values, gate } => FusedInput::Gated { values: values.reshape(dims), gate: gate.reshape(dims) },
            FusedInput::Plain { input } => FusedInput::Plain { input: input.reshape(dims) },
        }
    }

    /// The input times `weight: [.., d_in, d_out]` (leading dimensions equal to the
    /// input's or 1), plus `bias: [d_out]` on every row, fused.
    fn matmul(self, weight: Tensor<D>, bias: Option<Tensor<1>>) -> Tensor<D> {
        type Ops = Dispatch;
        let (weight, bias) = (weight.into_dispatch(), bias.map(Tensor::into_dispatch));
        Tensor::from_dispatch(match (self, bias) {
            (FusedInput::Activated { hidden, activation, prob, seed }, bias) => {
                let (hidden, dropout) = (hidden.into_dispatch(), Dropped { prob, seed });
                match bias {
                    Some(bias) => <Ops as FusedDense>::activation_dropout_matmul_bias(hidden, weight, bias, activation, dropout),
                    None => <Ops as FusedDense>::activation_dropout_matmul(hidden, weight, activation, dropout),
                }
            }
            (FusedInput::Gated { values, gate }, bias) => {
                let (values, gate) = (values.into_dispatch(), gate.into_dispatch());
                match bias {
                    Some(bias) => <Ops as FusedDense>::gated_matmul_bias(values, gate, weight, bias),
                    None => <Ops as FusedDense>::gated_matmul(values, gate, weight),
                }
            }
            (FusedInput::Plain { input }, Some(bias)) => {
                <Ops as FusedDense>::dense_matmul_bias(input.into_dispatch(), weight, bias)
            }
            (FusedInput::Plain { input }, None) => <Ops as FusedDense>::dense_matmul(input.into_dispatch(), weight),
        })
    }
}

/// `Dense(input)` with the fused product, arranged as burn's `linear` arranges its product
/// and bias: `input: [.., rows, d_in]`, `weight: [d_in, d_out]`, `bias: [d_out]` -> `[..,
/// rows, d_out]`.
fn arranged_dense<const D: usize>(input: FusedInput<D>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<D> {
    let dims = input.dims();
    let [d_in, d_out] = weight.dims();
    let (batches, rows) = (dims[..D - 2].iter().product::<usize>(), dims[D - 2]);
    if D > 2 && merges_batches(batches, rows, d_out) {
        return input.reshape([batches * rows, d_in]).matmul(weight, bias).reshape(dims_with(dims, d_out));
    }
    input.matmul(weight.unsqueeze::<D>(), bias)
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

/// `dropout(activation(hidden))` on a CPU backend: the dense layer's input, `[.., d_ff]`.
fn activations<B: RowMajor>(hidden: FloatTensor<B>, activation: Activation, prob: f32, seed: u64) -> FloatTensor<B> {
    let active = activation_values::<B>(hidden, activation);
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

/// The dropout of a dense layer's activated input: its probability (0: none) and the
/// seed of its mask.
#[derive(Clone, Copy, Debug)]
pub struct Dropped {
    pub prob: f32,
    pub seed: u64,
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedDense: Backend {
    /// `dropout(activation(hidden)) weight`, a (batched) product: `hidden: [.., rows,
    /// d_ff]`, `weight: [.., d_ff, d_model]` (leading dimensions equal to the hidden's or
    /// 1) -> `[.., rows, d_model]`.
    fn activation_dropout_matmul(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        activation: Activation,
        dropout: Dropped,
    ) -> FloatTensor<Self>;

    /// [`FusedDense::activation_dropout_matmul`] plus `bias: [d_model]` on every row.
    fn activation_dropout_matmul_bias(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        activation: Activation,
        dropout: Dropped,
    ) -> FloatTensor<Self>;

    /// `(values ⊙ gate) weight`, a (batched) product: `values, gate: [.., rows, d_in]`,
    /// `weight: [.., d_in, d_out]` (leading dimensions equal to the values' or 1) -> `[..,
    /// rows, d_out]`.
    fn gated_matmul(values: FloatTensor<Self>, gate: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;

    /// [`FusedDense::gated_matmul`] plus `bias: [d_out]` on every row.
    fn gated_matmul_bias(
        values: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `input weight`, a (batched) product: `input: [.., rows, d_in]`, `weight: [..,
    /// d_in, d_out]` (leading dimensions equal to the input's or 1) -> `[.., rows, d_out]`.
    fn dense_matmul(input: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;

    /// [`FusedDense::dense_matmul`] plus `bias: [d_out]` on every row.
    fn dense_matmul_bias(input: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `product + bias` on every row, the bias's gradient left to the node of the fused product.
fn plus_bias<B: RowMajor>(product: FloatTensor<B>, bias: Option<FloatTensor<B>>) -> FloatTensor<B> {
    match bias {
        Some(bias) => B::plus_rows(product, bias),
        None => product,
    }
}

/// The fused products on a CPU backend, with a bias or without.
fn dense_values<B: RowMajor>(input: FloatTensor<B>, weight: FloatTensor<B>, bias: Option<FloatTensor<B>>) -> FloatTensor<B> {
    plus_bias::<B>(B::matmul(input, weight), bias)
}

fn gated_values<B: RowMajor>(
    values: FloatTensor<B>,
    gate: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
) -> FloatTensor<B> {
    plus_bias::<B>(B::matmul(B::float_mul(values, gate), weight), bias)
}

fn activated_values<B: RowMajor>(
    hidden: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
    activation: Activation,
    dropout: Dropped,
) -> FloatTensor<B> {
    plus_bias::<B>(B::matmul(activations::<B>(hidden, activation, dropout.prob, dropout.seed), weight), bias)
}

impl<B: RowMajor> FusedDense for B {
    fn dense_matmul(input: FloatTensor<B>, weight: FloatTensor<B>) -> FloatTensor<B> {
        dense_values::<B>(input, weight, None)
    }

    fn dense_matmul_bias(input: FloatTensor<B>, weight: FloatTensor<B>, bias: FloatTensor<B>) -> FloatTensor<B> {
        dense_values::<B>(input, weight, Some(bias))
    }

    fn gated_matmul(values: FloatTensor<B>, gate: FloatTensor<B>, weight: FloatTensor<B>) -> FloatTensor<B> {
        gated_values::<B>(values, gate, weight, None)
    }

    fn gated_matmul_bias(
        values: FloatTensor<B>,
        gate: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: FloatTensor<B>,
    ) -> FloatTensor<B> {
        gated_values::<B>(values, gate, weight, Some(bias))
    }

    fn activation_dropout_matmul(
        hidden: FloatTensor<B>,
        weight: FloatTensor<B>,
        activation: Activation,
        dropout: Dropped,
    ) -> FloatTensor<B> {
        activated_values::<B>(hidden, weight, None, activation, dropout)
    }

    fn activation_dropout_matmul_bias(
        hidden: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: FloatTensor<B>,
        activation: Activation,
        dropout: Dropped,
    ) -> FloatTensor<B> {
        activated_values::<B>(hidden, weight, Some(bias), activation, dropout)
    }
}

/// The gradients of a fused product's kernel and bias, as burn's autodiff computes those
/// of `input weight + bias`: `input` the product's left operand (recomputed by the caller
/// where the node does not keep it), `output_grad` the output's.
fn register_kernel_and_bias<B: RowMajor>(
    grads: &mut Gradients,
    (weight_node, bias_node): (Option<NodeId>, Option<NodeId>),
    input: impl FnOnce() -> FloatTensor<B>,
    weight_shape: &Shape,
    output_grad: &FloatTensor<B>,
) {
    if let Some(node) = bias_node {
        grads.register::<B>(node, B::sum_rows(output_grad.clone()));
    }
    if let Some(node) = weight_node {
        let grad = B::matmul(B::float_transpose(input()), output_grad.clone());
        grads.register::<B>(node, sum_broadcast::<B>(grad, weight_shape));
    }
}

/// The parents' nodes of a fused product in order, the bias's last where there is one:
/// `N` is the count of operands (a product without a bias has one parent fewer).
fn parent_ids<const N: usize, const K: usize, S>(ops: &Ops<S, N>) -> [Option<NodeId>; K] {
    std::array::from_fn(|i| ops.parents.get(i).and_then(|parent| parent.as_ref().map(|node| node.id)))
}

/// The backward node: it keeps `hidden`, the kernel, the activation and the dropout's
/// probability and seed; `dropout(activation(hidden))` is recomputed for the kernel's
/// gradient.
#[derive(Debug)]
struct ActivationDropoutMatmulBackward;

impl<B: RowMajor, const N: usize> Backward<B, N> for ActivationDropoutMatmulBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, Activation, Dropped);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [hidden_node, weight_node, bias_node] = parent_ids(&ops);
        let (hidden, weight, activation, dropout) = ops.state;
        let output_grad = grads.consume::<B>(&ops.node);
        // The product's and the bias's gradients as burn's autodiff computes them, then
        // those of the dropout and the activation as their fused nodes compute them.
        let active = || activations::<B>(hidden.clone(), activation, dropout.prob, dropout.seed);
        register_kernel_and_bias::<B>(grads, (weight_node, bias_node), active, &weight.shape(), &output_grad);
        if let Some(node) = hidden_node {
            let active_grad = B::matmul(output_grad, B::float_transpose(weight));
            let activated_grad =
                if dropout.prob > 0.0 { drop_tensor::<B>(active_grad, dropout.prob, dropout.seed) } else { active_grad };
            grads.register::<B>(node, activation_backward::<B>(hidden, activated_grad, activation));
        }
    }
}

/// The backward node of `(values ⊙ gate) weight + bias`: it keeps the three operands;
/// the product `values ⊙ gate` is recomputed for the kernel's gradient.
#[derive(Debug)]
struct GatedMatmulBackward;

impl<B: RowMajor, const N: usize> Backward<B, N> for GatedMatmulBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [values_node, gate_node, weight_node, bias_node] = parent_ids(&ops);
        let (values, gate, weight) = ops.state;
        let output_grad = grads.consume::<B>(&ops.node);
        // The product's and the bias's gradients as burn's autodiff computes them, then
        // those of the element-wise product (the gradient times the other operand).
        let gated = || B::float_mul(values.clone(), gate.clone());
        register_kernel_and_bias::<B>(grads, (weight_node, bias_node), gated, &weight.shape(), &output_grad);
        if values_node.is_none() && gate_node.is_none() {
            return;
        }
        let gated_grad = B::matmul(output_grad, B::float_transpose(weight));
        if let Some(node) = values_node {
            grads.register::<B>(node, B::float_mul(gated_grad.clone(), gate));
        }
        if let Some(node) = gate_node {
            grads.register::<B>(node, B::float_mul(gated_grad, values));
        }
    }
}

/// The backward node of `input weight + bias`: it keeps both operands, as burn's product
/// does.
#[derive(Debug)]
struct DenseMatmulBackward;

impl<B: RowMajor, const N: usize> Backward<B, N> for DenseMatmulBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [input_node, weight_node, bias_node] = parent_ids(&ops);
        let (input, weight) = ops.state;
        let output_grad = grads.consume::<B>(&ops.node);
        register_kernel_and_bias::<B>(grads, (weight_node, bias_node), || input, &weight.shape(), &output_grad);
        if let Some(node) = input_node {
            grads.register::<B>(node, B::matmul(output_grad, B::float_transpose(weight)));
        }
    }
}

/// A fused product's node on `N` operands (`output` computed from them, `state` kept for
/// its backward where the graph tracks it).
fn tracked<B, C, W, const N: usize>(
    backward: W,
    guards: [NodeGuard; N],
    state: W::State,
    output: FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>>
where
    B: RowMajor,
    C: CheckpointStrategy,
    W: Backward<B, N>,
{
    match backward.prepare::<C>(guards).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// A fused product's node: on `N` operands, or with the bias's guard (`bias_guard`) as one
/// more.
fn tracked_with_bias<B, C, W, const N: usize, const M: usize>(
    backward: W,
    guards: [NodeGuard; N],
    bias_guard: Option<NodeGuard>,
    state: <W as Backward<B, N>>::State,
    output: FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>>
where
    B: RowMajor,
    C: CheckpointStrategy,
    W: Backward<B, N> + Backward<B, M, State = <W as Backward<B, N>>::State>,
{
    match bias_guard {
        None => tracked::<B, C, W, N>(backward, guards, state, output),
        Some(bias) => {
            let mut guards = guards.into_iter().chain([bias]);
            let guards: [NodeGuard; M] = std::array::from_fn(|_| guards.next().expect("the operands and the bias"));
            tracked::<B, C, W, M>(backward, guards, state, output)
        }
    }
}

/// A bias's primitive and guard (none without a bias).
fn bias_parts<B: Backend, C: CheckpointStrategy>(
    bias: Option<FloatTensor<Autodiff<B, C>>>,
) -> (Option<FloatTensor<B>>, Option<NodeGuard>) {
    match bias.map(|bias| bias.into_parts()) {
        Some((bias, guard)) => (Some(bias), Some(guard)),
        None => (None, None),
    }
}

/// The fused products' nodes, with a bias or without.
fn tracked_dense<B: RowMajor, C: CheckpointStrategy>(
    input: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    bias: Option<FloatTensor<Autodiff<B, C>>>,
) -> FloatTensor<Autodiff<B, C>> {
    let (input, input_node) = input.into_parts();
    let (weight, weight_node) = weight.into_parts();
    let (bias, bias_node) = bias_parts::<B, C>(bias);
    let output = dense_values::<B>(input.clone(), weight.clone(), bias);
    tracked_with_bias::<B, C, _, 2, 3>(DenseMatmulBackward, [input_node, weight_node], bias_node, (input, weight), output)
}

fn tracked_gated<B: RowMajor, C: CheckpointStrategy>(
    values: FloatTensor<Autodiff<B, C>>,
    gate: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    bias: Option<FloatTensor<Autodiff<B, C>>>,
) -> FloatTensor<Autodiff<B, C>> {
    let (values, values_node) = values.into_parts();
    let (gate, gate_node) = gate.into_parts();
    let (weight, weight_node) = weight.into_parts();
    let (bias, bias_node) = bias_parts::<B, C>(bias);
    let output = gated_values::<B>(values.clone(), gate.clone(), weight.clone(), bias);
    let guards = [values_node, gate_node, weight_node];
    tracked_with_bias::<B, C, _, 3, 4>(GatedMatmulBackward, guards, bias_node, (values, gate, weight), output)
}

fn tracked_activated<B: RowMajor, C: CheckpointStrategy>(
    hidden: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    bias: Option<FloatTensor<Autodiff<B, C>>>,
    activation: Activation,
    dropout: Dropped,
) -> FloatTensor<Autodiff<B, C>> {
    let (hidden, hidden_node) = hidden.into_parts();
    let (weight, weight_node) = weight.into_parts();
    let (bias, bias_node) = bias_parts::<B, C>(bias);
    let output = activated_values::<B>(hidden.clone(), weight.clone(), bias, activation, dropout);
    let state = (hidden, weight, activation, dropout);
    tracked_with_bias::<B, C, _, 2, 3>(ActivationDropoutMatmulBackward, [hidden_node, weight_node], bias_node, state, output)
}

impl<B: RowMajor, C: CheckpointStrategy> FusedDense for Autodiff<B, C> {
    fn dense_matmul(input: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked_dense::<B, C>(input, weight, None)
    }

    fn dense_matmul_bias(input: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked_dense::<B, C>(input, weight, Some(bias))
    }

    fn gated_matmul(values: FloatTensor<Self>, gate: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked_gated::<B, C>(values, gate, weight, None)
    }

    fn gated_matmul_bias(
        values: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        tracked_gated::<B, C>(values, gate, weight, Some(bias))
    }

    fn activation_dropout_matmul(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        activation: Activation,
        dropout: Dropped,
    ) -> FloatTensor<Self> {
        tracked_activated::<B, C>(hidden, weight, None, activation, dropout)
    }

    fn activation_dropout_matmul_bias(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        activation: Activation,
        dropout: Dropped,
    ) -> FloatTensor<Self> {
        tracked_activated::<B, C>(hidden, weight, Some(bias), activation, dropout)
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

    /// The input of a case: `drop(f(hidden))` with the mask of a seed, or `values ⊙ gate`.
    #[derive(Clone)]
    #[allow(clippy::large_enum_variant)] // as `DenseInput`
    enum Case<const D: usize> {
        Activated(Tensor<D>, Activation, (f32, u64)),
        Gated(Tensor<D>, Tensor<D>),
        Plain(Tensor<D>),
    }

    /// The output and the gradients of the input's tensors and of both parameters of
    /// `Dense(input)`, fused or composed, for the output gradient `g`, with their names.
    fn run<const D: usize>(layer: &Linear, case: Case<D>, g: &Tensor<D>, fused: bool) -> Vec<(&'static str, Vec<f32>)> {
        let (weight, bias) = (layer.weight.val(), layer.bias.as_ref().unwrap().val());
        let tracked = |t: &Tensor<D>| t.clone().detach().require_grad();
        let (inputs, y) = match case {
            Case::Activated(hidden, activation, (prob, seed)) => {
                let hidden = tracked(&hidden);
                let y = if fused {
                    let input = FusedInput::Activated { hidden: hidden.clone(), activation, prob, seed };
                    arranged_dense(input, weight.clone(), Some(bias.clone()))
                } else {
                    let active = activation.apply(hidden.clone());
                    let dropped = match prob > 0.0 {
                        true => Tensor::from_dispatch(<Dispatch as FusedSoftmax>::dropout(active.into_dispatch(), prob, seed)),
                        false => active,
                    };
                    layer.forward(dropped)
                };
                (vec![("d hidden", hidden)], y)
            }
            Case::Gated(values, gate) => {
                let (values, gate) = (tracked(&values), tracked(&gate));
                let y = if fused {
                    let input = FusedInput::Gated { values: values.clone(), gate: gate.clone() };
                    arranged_dense(input, weight.clone(), Some(bias.clone()))
                } else {
                    layer.forward(values.clone() * gate.clone())
                };
                (vec![("d values", values), ("d gate", gate)], y)
            }
            Case::Plain(input) => {
                let input = tracked(&input);
                let y = match fused {
                    true => arranged_dense(FusedInput::Plain { input: input.clone() }, weight.clone(), Some(bias.clone())),
                    false => layer.forward(input.clone()),
                };
                (vec![("d input", input)], y)
            }
        };
        let grads = (y.clone() * g.clone()).sum().backward();
        let mut out = vec![("y", values(y))];
        out.extend(inputs.into_iter().map(|(name, t)| (name, values(t.grad(&grads).expect("a gradient")))));
        out.push(("d weight", values(weight.grad(&grads).expect("a gradient"))));
        out.push(("d bias", values(bias.grad(&grads).expect("a gradient"))));
        out
    }

    fn assert_same(fused: Vec<(&str, Vec<f32>)>, composed: Vec<(&str, Vec<f32>)>, case: &str) {
        assert_eq!(fused.len(), composed.len());
        for ((name, got), (_, expected)) in fused.iter().zip(&composed) {
            assert_eq!(got, expected, "{name}, {case}");
        }
        assert!(fused[0].1.iter().any(|&v| v != 0.0), "a non-trivial output, {case}");
    }

    /// With and without dropout (a mask of a given seed), after the feed-forward layer's
    /// GELU and Mega's SiLU, and for Mega's gated product, the fused product gives the
    /// composition's output and the gradients of its inputs and of both parameters bit for
    /// bit, whichever way burn's `linear` multiplies.
    #[test]
    fn the_fused_dense_products_equal_their_compositions_bit_for_bit() {
        let device = Device::flex().autodiff();
        device.seed(61);
        let normal = Distribution::Normal(0.0, 1.0);
        assert!(merges_batches(4, 3, 64) && !merges_batches(2, 201, 24) && !merges_batches(2, 64, 8));
        for (shape, d_model) in SHAPES {
            // burn's default initialisation: a bias of numbers other than 0.
            let layer = burn::nn::LinearConfig::new(shape[2], d_model).init(&device);
            let hidden = Tensor::<3>::random(shape, normal, &device);
            let gate = Tensor::<3>::random(shape, normal, &device);
            let g = Tensor::<3>::random([shape[0], shape[1], d_model], normal, &device);
            let activated = [(0.0, 0), (0.1, 6_062)]
                .into_iter()
                .flat_map(|d| [Activation::GeluTanh, Activation::Silu].map(|f| Case::Activated(hidden.clone(), f, d)));
            for case in activated.chain([Case::Gated(hidden.clone(), gate.clone()), Case::Plain(hidden.clone())]) {
                let name = match &case {
                    Case::Activated(_, f, dropout) => format!("{shape:?} -> {d_model}, {f:?}, dropout {dropout:?}"),
                    Case::Gated(..) => format!("{shape:?} -> {d_model}, gated"),
                    Case::Plain(..) => format!("{shape:?} -> {d_model}, plain"),
                };
                assert_same(run(&layer, case.clone(), &g, true), run(&layer, case.clone(), &g, false), &name);
                let rows = |t: Tensor<3>| t.reshape([shape[0] * shape[1], shape[2]]);
                let row_case = match case {
                    Case::Activated(h, f, d) => Case::Activated(rows(h), f, d),
                    Case::Gated(v, gate) => Case::Gated(rows(v), rows(gate)),
                    Case::Plain(input) => Case::Plain(rows(input)),
                };
                let g = g.clone().reshape([shape[0] * shape[1], d_model]);
                assert_same(
                    run(&layer, row_case.clone(), &g, true),
                    run(&layer, row_case, &g, false),
                    &format!("rows of {name}"),
                );
            }
        }
    }
}
