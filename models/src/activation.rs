//! Activations as one fused operation each on the CPU backends: GELU in its tanh form (the
//! feed-forward activation of LRA's Transformer block), GELU in its exact form (PyTorch's
//! default, after the state-space layers of S4D, S5 and LRU), SiLU (Mega's and Mamba's
//! gates), the sigmoid (Mega's update gate, S5's output gate) and softplus (Mamba's step
//! sizes).
//!
//! burn composes each from several operations (GELU from eight or five, softplus from six,
//! SiLU from a sigmoid and a product), each a pass over the tensor and, under autodiff, a node
//! keeping its own tensors. Here, on the CPU backends (flex, ndarray), each is one parallel
//! pass and its backward keeps only `x` (the sigmoid: its output `s`). Other backends
//! (wgpu, cuda) use burn's compositions.
//!
//! - GELU: LRA's `MlpBlock` (`lra_benchmarks/models/layers/common_layers.py`) calls flax's
//!   `nn.gelu`, which is JAX's `gelu` with its default `approximate=True`:
//!   `gelu(x) = x/2 (1 + tanh(u)) = x sigmoid(2u)`, `u = sqrt(2/pi) (x + 0.044715 x^3)`;
//!   `d gelu / dx = s + 2 x s (1 - s) u'`, `s = sigmoid(2u)`,
//!   `u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)`.
//! - Exact GELU: `gelu(x) = x Phi(x)`, `Phi` the standard normal distribution function,
//!   `d gelu / dx = Phi(x) + x phi(x)`, `phi(x) = exp(-x^2 / 2) / sqrt(2 pi)`. `Phi` comes
//!   from Abramowitz and Stegun's 7.1.26 for `erfc` (absolute error below 1.5e-7, one
//!   exponential shared with `phi`), written so that it vectorises, which libm's `erf` in
//!   burn's composition does not.
//! - SiLU: `silu(x) = x sigmoid(x)`; `d silu / dx = s (1 + x (1 - s))`, `s = sigmoid(x)`.
//! - Sigmoid: `s = 1 / (1 + exp(-x))`; `d s / dx = s (1 - s)`.
//! - Softplus: `softplus(x) = log(1 + exp(x))`, and `x` itself above 20 (burn's and
//!   PyTorch's threshold with `beta = 1`); its derivative `sigmoid(x)` (1 above 20).

// ndarray is deprecated in burn, and kept selectable here.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::prelude::*;

use crate::cpu::{self, RowMajor, TASK_ELEMENTS, runs_natively};

/// `sqrt(2 / pi)`.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// GELU's cubic term's coefficient.
const CUBIC: f32 = 0.044_715;
/// Above this, softplus is the identity (as burn's `softplus` with `beta = 1`).
const SOFTPLUS_THRESHOLD: f32 = 20.0;

/// GELU, tanh form, element-wise.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !runs_natively(&x) {
        return burn::tensor::activation::gelu_approximate(x);
    }
    Tensor::from_dispatch(<Dispatch as FusedActivations>::gelu_tanh(x.into_dispatch()))
}

/// GELU, exact form `x Phi(x)`, element-wise.
pub fn gelu_erf<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !runs_natively(&x) {
        return gelu_erf_composed(x);
    }
    Tensor::from_dispatch(<Dispatch as FusedActivations>::gelu_erf(x.into_dispatch()))
}

/// The exact GELU in burn's operations, `x (1 + erf(x / sqrt 2)) / 2`, differentiated
/// through `erf`. (burn's own `activation::gelu` has this value, but its backends differ on
/// its backward: flex differentiates the exact form, ndarray and wgpu take the tanh form's
/// derivative, up to about 2e-3 apart.)
fn gelu_erf_composed<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() * ((x / std::f32::consts::SQRT_2).erf() + 1.0) * 0.5
}

/// SiLU, `x sigmoid(x)`, element-wise.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !runs_natively(&x) {
        return burn::tensor::activation::silu(x);
    }
    Tensor::from_dispatch(<Dispatch as FusedActivations>::silu(x.into_dispatch()))
}

/// SiLU of `x` cut from a wider tensor that nothing else keeps for the backward: on the
/// CPU backends the backward keeps a copy of `x` alone ([`RowMajor::compact`]), where
/// keeping `x` itself would keep all of the tensor it was cut from. (Where that tensor is
/// kept anyway, [`silu`] keeps less.)
pub fn silu_of_slice<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !runs_natively(&x) {
        return burn::tensor::activation::silu(x);
    }
    Tensor::from_dispatch(<Dispatch as FusedActivations>::silu_of_slice(x.into_dispatch()))
}

/// The sigmoid, `1 / (1 + exp(-x))`, element-wise.
pub fn sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !runs_natively(&x) {
        return burn::tensor::activation::sigmoid(x);
    }
    Tensor::from_dispatch(<Dispatch as FusedActivations>::sigmoid(x.into_dispatch()))
}

/// Softplus, `log(1 + exp(x))` (the identity above 20), element-wise.
pub fn softplus<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !runs_natively(&x) {
        return burn::tensor::activation::softplus(x, 1.0);
    }
    Tensor::from_dispatch(<Dispatch as FusedActivations>::softplus(x.into_dispatch()))
}

/// The functions, each with its value and its derivative at `x`.
#[derive(Debug, Clone, Copy)]
pub enum Activation {
    GeluTanh,
    GeluErf,
    Silu,
    Sigmoid,
    Softplus,
}

impl Activation {
    /// The activation on a tensor (fused on the CPU backends, burn's composition elsewhere).
    pub(crate) fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::GeluTanh => gelu_tanh(x),
            Activation::GeluErf => gelu_erf(x),
            Activation::Silu => silu(x),
            Activation::Sigmoid => sigmoid(x),
            Activation::Softplus => softplus(x),
        }
    }

    /// `f(activation, x, other)` over the pairs of `x` and `other`, one loop per activation
    /// with its variant a constant inside: the loop then holds no branch on the variant and
    /// vectorises (a variant read in the loop kept it scalar, a quarter of a step's time).
    fn zip_map(self, x: &[f32], other: &[f32], f: impl Fn(Activation, f32, f32) -> f32 + Sync) -> Vec<f32> {
        match self {
            Activation::GeluTanh => zip_map(x, other, |x, o| f(Activation::GeluTanh, x, o)),
            Activation::GeluErf => zip_map(x, other, |x, o| f(Activation::GeluErf, x, o)),
            Activation::Silu => zip_map(x, other, |x, o| f(Activation::Silu, x, o)),
            Activation::Sigmoid => zip_map(x, other, |x, o| f(Activation::Sigmoid, x, o)),
            Activation::Softplus => zip_map(x, other, |x, o| f(Activation::Softplus, x, o)),
        }
    }

    #[inline(always)]
    fn value(self, x: f32) -> f32 {
        match self {
            Activation::GeluTanh => x * gelu_sigmoid_and_slope(x).0,
            Activation::GeluErf => x * normal_cdf_and_density(x).0,
            Activation::Silu => x * logistic(x),
            Activation::Sigmoid => logistic(x),
            Activation::Softplus if x > SOFTPLUS_THRESHOLD => x,
            Activation::Softplus => cpu::exp(x).ln_1p(),
        }
    }

    #[inline(always)]
    fn slope(self, x: f32) -> f32 {
        match self {
            Activation::GeluTanh => {
                let (s, u_slope) = gelu_sigmoid_and_slope(x);
                s + 2.0 * x * s * (1.0 - s) * u_slope
            }
            Activation::GeluErf => {
                let (cdf, density) = normal_cdf_and_density(x);
                cdf + x * density
            }
            Activation::Silu => {
                let s = logistic(x);
                s * (1.0 + x * (1.0 - s))
            }
            Activation::Sigmoid => {
                let s = logistic(x);
                s * (1.0 - s)
            }
            Activation::Softplus if x > SOFTPLUS_THRESHOLD => 1.0,
            Activation::Softplus => logistic(x),
        }
    }
}

/// `sigmoid(x)` of one number.
#[inline(always)]
fn logistic(x: f32) -> f32 {
    1.0 / (1.0 + cpu::exp(-x))
}

/// GELU's `(s, u')` at `x`: `s = sigmoid(2u)` and the derivative of `u`.
#[inline(always)]
fn gelu_sigmoid_and_slope(x: f32) -> (f32, f32) {
    let u = SQRT_2_OVER_PI * (x + CUBIC * x * x * x);
    let s = logistic(2.0 * u);
    (s, SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x * x))
}

/// The standard normal distribution function and density at `x`, `(Phi(x), phi(x))`.
///
/// `Phi(x) = erfc(-x / sqrt 2) / 2`, and for `z = |x| / sqrt 2 >= 0` Abramowitz and Stegun's
/// 7.1.26 gives `erfc(z) = t (a1 + t (a2 + ... + t a5)) exp(-z^2)`, `t = 1 / (1 + p z)`.
/// The tail below 0 is this `erfc` itself (no `1 + erf` cancelling), and `exp(-z^2)` is
/// `sqrt(2 pi) phi(x)`.
#[inline(always)]
fn normal_cdf_and_density(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_72, 1.421_413_8, -1.453_152, 1.061_405_4];
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let gauss = cpu::exp(-z * z);
    let polynomial = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let upper_tail = 0.5 * polynomial * gauss;
    let cdf = if x < 0.0 { upper_tail } else { 1.0 - upper_tail };
    (cdf, INV_SQRT_2PI * gauss)
}

/// `f(x, g)` over the pairs of `x` and `other`, in parallel tasks of [`TASK_ELEMENTS`].
fn zip_map(x: &[f32], other: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let ([out], _) = cpu::par_blocks(x.len(), TASK_ELEMENTS, |start, [out]| {
        let range = start..start + out.len();
        cpu::zip_into(out, &x[range.clone()], &other[range], &f);
    });
    out
}

/// `activation(x)` on a CPU backend: the fused operation's forward.
pub(crate) fn activation_values<B: RowMajor>(x: FloatTensor<B>, activation: Activation) -> FloatTensor<B> {
    B::map_values(x, |x| activation.zip_map(x, x, |activation, x, _| activation.value(x)))
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedActivations: Backend {
    /// GELU, tanh form, element-wise.
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// GELU, exact form, element-wise.
    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// SiLU, element-wise.
    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// SiLU, element-wise; the backward keeps a compact copy of `x`.
    fn silu_of_slice(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// The sigmoid, element-wise.
    fn sigmoid(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Softplus (`beta = 1`, threshold 20), element-wise.
    fn softplus(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedActivations for B {
    fn gelu_tanh(x: FloatTensor<B>) -> FloatTensor<B> {
        activation_values::<B>(x, Activation::GeluTanh)
    }

    fn gelu_erf(x: FloatTensor<B>) -> FloatTensor<B> {
        activation_values::<B>(x, Activation::GeluErf)
    }

    fn silu(x: FloatTensor<B>) -> FloatTensor<B> {
        activation_values::<B>(x, Activation::Silu)
    }

    fn silu_of_slice(x: FloatTensor<B>) -> FloatTensor<B> {
        activation_values::<B>(x, Activation::Silu)
    }

    fn sigmoid(x: FloatTensor<B>) -> FloatTensor<B> {
        activation_values::<B>(x, Activation::Sigmoid)
    }

    fn softplus(x: FloatTensor<B>) -> FloatTensor<B> {
        activation_values::<B>(x, Activation::Softplus)
    }
}

/// The gradient of `x` from that of `activation(x)`, `output_grad`, on a CPU backend: the
/// fused operation's backward.
pub(crate) fn activation_backward<B: RowMajor>(
    x: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    activation: Activation,
) -> FloatTensor<B> {
    B::map_values(x, |x| {
        B::with_values(output_grad, |dy| activation.zip_map(x, dy, |activation, x, dy| dy * activation.slope(x)))
    })
}

/// The sigmoid's gradient from its output `s`, `dy s (1 - s)`: the same numbers as from
/// its input, `s` being computed alike.
fn sigmoid_backward_from_output<B: RowMajor>(s: FloatTensor<B>, output_grad: FloatTensor<B>) -> FloatTensor<B> {
    B::map_values(s, |s| B::with_values(output_grad, |dy| zip_map(s, dy, |s, dy| dy * (s * (1.0 - s)))))
}

/// The backward node. It keeps the sigmoid's output (its derivative needs nothing else,
/// and a gate's output is kept by the product it gates anyway) and the others' input
/// (for [`silu_of_slice`], a compact copy).
#[derive(Debug)]
struct ActivationBackward(Activation);

impl<B: RowMajor> Backward<B, 1> for ActivationBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (kept, activation) = (ops.state, self.0);
        unary::<B, _>(ops.parents, ops.node, grads, |output_grad| match activation {
            Activation::Sigmoid => sigmoid_backward_from_output::<B>(kept, output_grad),
            _ => activation_backward::<B>(kept, output_grad, activation),
        });
    }
}

fn tracked<B: RowMajor, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    activation: Activation,
    compact: bool,
) -> FloatTensor<Autodiff<B, C>> {
    let (x, node) = x.into_parts();
    match ActivationBackward(activation).prepare::<C>([node]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let x = if compact { B::compact(x) } else { x };
            let y = activation_values::<B>(x.clone(), activation);
            let kept = match activation {
                Activation::Sigmoid => y.clone(),
                _ => x,
            };
            prep.finish(kept, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(activation_values::<B>(x, activation)),
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedActivations for Autodiff<B, C> {
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked::<B, C>(x, Activation::GeluTanh, false)
    }

    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked::<B, C>(x, Activation::GeluErf, false)
    }

    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked::<B, C>(x, Activation::Silu, false)
    }

    fn silu_of_slice(x: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked::<B, C>(x, Activation::Silu, true)
    }

    fn sigmoid(x: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked::<B, C>(x, Activation::Sigmoid, false)
    }

    fn softplus(x: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked::<B, C>(x, Activation::Softplus, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric_checks::{assert_close, values};
    use burn::tensor::Distribution;

    /// Outputs and gradients equal burn's compositions on both CPU backends, near 0 and far
    /// into both tails (standard deviations of 1 and 12, across softplus's threshold at 20).
    #[test]
    fn the_fused_activations_and_their_gradients_equal_the_composed_ones() {
        type Pair = (fn(Tensor<3>) -> Tensor<3>, fn(Tensor<3>) -> Tensor<3>, &'static str);
        // SiLU of the first half of the columns, the second half passed through.
        fn of_slice(x: Tensor<3>, f: fn(Tensor<3>) -> Tensor<3>) -> Tensor<3> {
            let half = x.dims()[2] / 2;
            Tensor::cat(vec![f(x.clone().narrow(2, 0, half)), x.narrow(2, half, half)], 2)
        }
        let pairs: [Pair; 6] = [
            (gelu_tanh, burn::tensor::activation::gelu_approximate, "gelu"),
            (gelu_erf, gelu_erf_composed, "exact gelu"),
            (silu, burn::tensor::activation::silu, "silu"),
            (|x| of_slice(x, silu_of_slice), |x| of_slice(x, burn::tensor::activation::silu), "silu of a slice"),
            (sigmoid, burn::tensor::activation::sigmoid, "sigmoid"),
            (softplus, |x| burn::tensor::activation::softplus(x, 1.0), "softplus"),
        ];
        let devices = [Device::flex().autodiff(), Device::ndarray().autodiff()];
        for (device, spread) in devices.iter().flat_map(|device| [(device, 1.0), (device, 12.0)]) {
            device.seed(5);
            let shape = [3, 70, 130];
            let x = Tensor::<3>::random(shape, Distribution::Normal(0.0, spread), device);
            let g = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), device);
            for (fused, composed, name) in pairs {
                let run = |f: fn(Tensor<3>) -> Tensor<3>| {
                    let x = x.clone().detach().require_grad();
                    let y = f(x.clone());
                    let grads = (y.clone() * g.clone()).sum().backward();
                    (values(y), values(x.grad(&grads).unwrap()))
                };
                let ((y_fused, g_fused), (y_composed, g_composed)) = (run(fused), run(composed));
                assert_close(&y_fused, &y_composed, 1e-5, name);
                assert_close(&g_fused, &g_composed, 1e-4, &format!("{name}'s gradient"));
            }
        }
    }

    /// JAX's definition at three points: gelu(1) = 0.841192, gelu(-1) = -0.158808, gelu(0) = 0.
    #[test]
    fn the_fused_gelu_is_jax_tanh_form() {
        let one = values(gelu_tanh(Tensor::<1>::from_floats([1.0, -1.0, 0.0], &Device::flex())));
        assert!((one[0] - 0.841_192).abs() < 1e-6 && (one[1] + 0.158_808).abs() < 1e-6 && one[2] == 0.0, "{one:?}");
    }

    /// The exact form at three points: `Phi(1) = 0.841344746`, so gelu(1) = 0.841345,
    /// gelu(-1) = -(1 - 0.841345) = -0.158655, gelu(0) = 0.
    #[test]
    fn the_fused_exact_gelu_is_x_times_the_normal_distribution_function() {
        let one = values(gelu_erf(Tensor::<1>::from_floats([1.0, -1.0, 0.0], &Device::flex())));
        assert!((one[0] - 0.841_345).abs() < 1e-6 && (one[1] + 0.158_655).abs() < 1e-6 && one[2] == 0.0, "{one:?}");
    }
}
