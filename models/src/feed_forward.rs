//! The dense feed-forward layer of LRA's Transformer, and the fused product of a dense
//! layer with an activated, dropped-out input that it and Mega's projections share.
//! Switch's experts are made of the layer and the encoder block holds it or them; kept out
//! of `encoder.rs` so that `switch.rs` need not import the block that holds its layer.
//!
//! On the CPU backends (flex, ndarray) the product at the heart of the layer's second
//! half, `dropout(GELU(h)) W`, is one fused operation whose backward keeps `h` alone and
//! recomputes `dropout(GELU(h))` for the kernel's gradient. Composed, the activation's
//! node keeps `h` and the product's node keeps `dropout(GELU(h))`: two `[.., d_ff]`
//! tensors per block held from the forward to the backward (the largest a block keeps,
//! at `d_ff = 4 d_model`) where one serves. Mega's projection of its moving average,
//! `dropout(SiLU(h)) W`, is the same operation with another activation ([`DenseInput`]).
//! The values and gradients are the composition's bit for bit: the same loops and
//! products in the same order, around the same reshapes and bias addition as burn's
//! `linear`, which multiplies either the batches side by side or the rows of all batches
//! at once ([`merges_batches`]). Other backends (wgpu, cuda) use the composition.

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

use crate::activation::{Activation, activation_backward, activation_values};
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
        let hidden = apply_dense(&self.input, x);
        // LRA's MlpBlock: flax's `nn.gelu`, the tanh form.
        DenseInput::activated(hidden, Activation::GeluTanh, &self.dropout).dense(&self.output)
    }
}

/// `layer(x)`, burn's `Linear` (the same numbers): on the CPU backends the product is a
/// fused operation whose output, and whose gradients' outputs, are buffers of our own
/// (see [`crate::product`]); elsewhere the layer itself. `x: [.., d_in]` -> `[.., d_out]`.
pub fn apply_dense<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    DenseInput::plain(x).dense(layer)
}

/// The input of a dense layer, `dropout(activation(hidden))` or `values ⊙ gate`: on the
/// CPU backends kept as its parts until [`DenseInput::dense`] multiplies it in one fused
/// operation that keeps only those parts for its backward; elsewhere computed at once by
/// the composition.
// A value of one forward, built and consumed at once: boxing its larger variant would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum DenseInput<const D: usize> {
    Fused(FusedInput<D>),
    Composed(Tensor<D>),
}

/// The parts of a dense layer's input on the CPU backends.
#[allow(clippy::large_enum_variant)] // as `DenseInput`
pub(crate) enum FusedInput<const D: usize> {
    Activated { hidden: Tensor<D>, activation: Activation, prob: f32, seed: u64 },
    Gated { values: Tensor<D>, gate: Tensor<D> },
    Plain { input: Tensor<D> },
}

impl<const D: usize> DenseInput<D> {
    /// `dropout(activation(hidden))`. Draws the dropout's seed where the composed `dropout`
    /// would draw it.
    pub(crate) fn activated(hidden: Tensor<D>, activation: Activation, dropout: &Dropout) -> Self {
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
    pub(crate) fn gated(values: Tensor<D>, gate: Tensor<D>) -> Self {
        if D < 2 || !runs_natively(&values) {
            return DenseInput::Composed(values * gate);
        }
        DenseInput::Fused(FusedInput::Gated { values, gate })
    }

    /// `input` as it is.
    pub(crate) fn plain(input: Tensor<D>) -> Self {
        if D < 2 || !runs_natively(&input) {
            return DenseInput::Composed(input);
        }
        DenseInput::Fused(FusedInput::Plain { input })
    }

    /// `linear(input)`: `[.., d_in]` -> `[.., d_out]`.
    pub(crate) fn dense(self, linear: &Linear) -> Tensor<D> {
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
    /// input's or 1), fused.
    fn matmul(self, weight: Tensor<D>) -> Tensor<D> {
        Tensor::from_dispatch(match self {
            FusedInput::Activated { hidden, activation, prob, seed } => {
                <Dispatch as FusedFeedForward>::activation_dropout_matmul(
                    hidden.into_dispatch(),
                    weight.into_dispatch(),
                    activation,
                    prob,
                    seed,
                )
            }
            FusedInput::Gated { values, gate } => {
                <Dispatch as FusedFeedForward>::gated_matmul(values.into_dispatch(), gate.into_dispatch(), weight.into_dispatch())
            }
            FusedInput::Plain { input } => <Dispatch as FusedFeedForward>::dense_matmul(input.into_dispatch(), weight.into_dispatch()),
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
        let merged = input.reshape([batches * rows, d_in]).matmul(weight);
        let merged = match bias {
            Some(bias) => merged + bias.reshape([1, d_out]),
            None => merged,
        };
        return merged.reshape(dims_with(dims, d_out));
    }
    let batched = input.matmul(weight.unsqueeze::<D>());
    match bias {
        Some(bias) => batched + bias.unsqueeze::<D>(),
        None => batched,
    }
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

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedFeedForward: Backend {
    /// `dropout(activation(hidden)) weight`, a (batched) product: `hidden: [.., rows,
    /// d_ff]`, `weight: [.., d_ff, d_model]` (leading dimensions equal to the hidden's or 1)
    /// -> `[.., rows, d_model]`; the dropout's mask drawn from `seed` (`prob` 0: no dropout).
    fn activation_dropout_matmul(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        activation: Activation,
        prob: f32,
        seed: u64,
    ) -> FloatTensor<Self>;

    /// `(values ⊙ gate) weight`, a (batched) product: `values, gate: [.., rows, d_in]`,
    /// `weight: [.., d_in, d_out]` (leading dimensions equal to the values' or 1) -> `[..,
    /// rows, d_out]`.
    fn gated_matmul(values: FloatTensor<Self>, gate: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `input weight`, a (batched) product: `input: [.., rows, d_in]`, `weight: [.., d_in,
    /// d_out]` (leading dimensions equal to the input's or 1) -> `[.., rows, d_out]`.
    fn dense_matmul(input: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedFeedForward for B {
    fn dense_matmul(input: FloatTensor<B>, weight: FloatTensor<B>) -> FloatTensor<B> {
        B::matmul(input, weight)
    }

    fn gated_matmul(values: FloatTensor<B>, gate: FloatTensor<B>, weight: FloatTensor<B>) -> FloatTensor<B> {
        B::matmul(B::float_mul(values, gate), weight)
    }

    fn activation_dropout_matmul(
        hidden: FloatTensor<B>,
        weight: FloatTensor<B>,
        activation: Activation,
        prob: f32,
        seed: u64,
    ) -> FloatTensor<B> {
        B::matmul(activations::<B>(hidden, activation, prob, seed), weight)
    }
}

/// The backward node: it keeps `hidden`, the kernel, the activation and the dropout's
/// probability and seed; `dropout(activation(hidden))` is recomputed for the kernel's
/// gradient.
#[derive(Debug)]
struct ActivationDropoutMatmulBackward;

/// What [`ActivationDropoutMatmulBackward`] keeps.
type ActivationDropoutMatmulState<B> = (FloatTensor<B>, FloatTensor<B>, Activation, f32, u64);

impl<B: RowMajor> Backward<B, 2> for ActivationDropoutMatmulBackward {
    type State = ActivationDropoutMatmulState<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (hidden, weight, activation, prob, seed) = ops.state;
        let output_grad = grads.consume::<B>(&ops.node);
        let [hidden_node, weight_node] = ops.parents;
        // The product's gradients as burn's autodiff computes them, then those of the
        // dropout and the activation as their fused nodes compute them.
        if let Some(node) = weight_node {
            let weight_shape = weight.shape();
            let active = activations::<B>(hidden.clone(), activation, prob, seed);
            let grad = B::matmul(B::float_transpose(active), output_grad.clone());
            grads.register::<B>(node.id, sum_broadcast::<B>(grad, &weight_shape));
        }
        if let Some(node) = hidden_node {
            let active_grad = B::matmul(output_grad, B::float_transpose(weight));
            let activated_grad = if prob > 0.0 { drop_tensor::<B>(active_grad, prob, seed) } else { active_grad };
            grads.register::<B>(node.id, activation_backward::<B>(hidden, activated_grad, activation));
        }
    }
}

/// The backward node of `(values ⊙ gate) weight`: it keeps the three operands; the product
/// `values ⊙ gate` is recomputed for the kernel's gradient.
#[derive(Debug)]
struct GatedMatmulBackward;

impl<B: RowMajor> Backward<B, 3> for GatedMatmulBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (values, gate, weight) = ops.state;
        let output_grad = grads.consume::<B>(&ops.node);
        let [values_node, gate_node, weight_node] = ops.parents;
        // The product's gradients as burn's autodiff computes them, then those of the
        // element-wise product (the gradient times the other operand).
        if let Some(node) = weight_node {
            let weight_shape = weight.shape();
            let gated = B::float_mul(values.clone(), gate.clone());
            let grad = B::matmul(B::float_transpose(gated), output_grad.clone());
            grads.register::<B>(node.id, sum_broadcast::<B>(grad, &weight_shape));
        }
        if values_node.is_none() && gate_node.is_none() {
            return;
        }
        let gated_grad = B::matmul(output_grad, B::float_transpose(weight));
        if let Some(node) = values_node {
            grads.register::<B>(node.id, B::float_mul(gated_grad.clone(), gate));
        }
        if let Some(node) = gate_node {
            grads.register::<B>(node.id, B::float_mul(gated_grad, values));
        }
    }
}

/// The backward node of `input weight`: it keeps both operands, as burn's product does.
#[derive(Debug)]
struct DenseMatmulBackward;

impl<B: RowMajor> Backward<B, 2> for DenseMatmulBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (input, weight) = ops.state;
        let output_grad = grads.consume::<B>(&ops.node);
        let [input_node, weight_node] = ops.parents;
        // As burn's autodiff computes a product's gradients.
        if let Some(node) = weight_node {
            let weight_shape = weight.shape();
            let grad = B::matmul(B::float_transpose(input), output_grad.clone());
            grads.register::<B>(node.id, sum_broadcast::<B>(grad, &weight_shape));
        }
        if let Some(node) = input_node {
            grads.register::<B>(node.id, B::matmul(output_grad, B::float_transpose(weight)));
        }
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedFeedForward for Autodiff<B, C> {
    fn dense_matmul(input: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        let (input, input_node) = input.into_parts();
        let (weight, weight_node) = weight.into_parts();
        match DenseMatmulBackward.prepare::<C>([input_node, weight_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = B::dense_matmul(input.clone(), weight.clone());
                prep.finish((input, weight), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::dense_matmul(input, weight)),
        }
    }

    fn gated_matmul(values: FloatTensor<Self>, gate: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        let (values, values_node) = values.into_parts();
        let (gate, gate_node) = gate.into_parts();
        let (weight, weight_node) = weight.into_parts();
        match GatedMatmulBackward.prepare::<C>([values_node, gate_node, weight_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = B::gated_matmul(values.clone(), gate.clone(), weight.clone());
                prep.finish((values, gate, weight), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gated_matmul(values, gate, weight)),
        }
    }

    fn activation_dropout_matmul(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        activation: Activation,
        prob: f32,
        seed: u64,
    ) -> FloatTensor<Self> {
        let (hidden, hidden_node) = hidden.into_parts();
        let (weight, weight_node) = weight.into_parts();
        match ActivationDropoutMatmulBackward.prepare::<C>([hidden_node, weight_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = B::activation_dropout_matmul(hidden.clone(), weight.clone(), activation, prob, seed);
                prep.finish((hidden, weight, activation, prob, seed), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::activation_dropout_matmul(hidden, weight, activation, prob, seed)),
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
    fn run<const D: usize>(layer: &DenseFeedForward, case: Case<D>, g: &Tensor<D>, fused: bool) -> Vec<(&'static str, Vec<f32>)> {
        let (weight, bias) = (layer.output.weight.val(), layer.output.bias.as_ref().unwrap().val());
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
                    layer.output.forward(dropped)
                };
                (vec![("d hidden", hidden)], y)
            }
            Case::Gated(values, gate) => {
                let (values, gate) = (tracked(&values), tracked(&gate));
                let y = if fused {
                    let input = FusedInput::Gated { values: values.clone(), gate: gate.clone() };
                    arranged_dense(input, weight.clone(), Some(bias.clone()))
                } else {
                    layer.output.forward(values.clone() * gate.clone())
                };
                (vec![("d values", values), ("d gate", gate)], y)
            }
            Case::Plain(input) => {
                let input = tracked(&input);
                let y = match fused {
                    true => arranged_dense(FusedInput::Plain { input: input.clone() }, weight.clone(), Some(bias.clone())),
                    false => layer.output.forward(input.clone()),
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
            let layer = DenseFeedForward::new(d_model, shape[2], 0.1, &device);
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
