//! Activations as one fused operation each on the CPU backends: GELU in its tanh form,
//! the feed-forward activation of LRA's Transformer block, and SiLU (Mega's gates).
//!
//! GELU:
//! LRA's `MlpBlock` (`lra_benchmarks/models/layers/common_layers.py`) calls flax's
//! `nn.gelu`, which is JAX's `gelu` with its default `approximate=True`:
//!
//! `gelu(x) = x/2 (1 + tanh(u)) = x sigmoid(2u)`, `u = sqrt(2/pi) (x + 0.044715 x^3)`.
//!
//! burn's `gelu_approximate` composes it from eight operations, each with its own pass and,
//! under autodiff, its own saved tensor. Here, on the CPU backends (flex, ndarray), the
//! forward is one parallel pass and the backward keeps only `x`:
//! `d gelu / dx = s + 2 x s (1 - s) u'`, `s = sigmoid(2u)`, `u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)`.
//! Other backends (wgpu, cuda) use burn's composition.

// ndarray is deprecated in burn, and kept selectable here.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::prelude::*;
use burn::tensor::activation::gelu_approximate;

use crate::cpu::{self, RowMajor, TASK_ELEMENTS, runs_natively};

/// `sqrt(2 / pi)`.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic term's coefficient.
const CUBIC: f32 = 0.044_715;

/// GELU, tanh form, element-wise.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !runs_natively(&x) {
        return gelu_approximate(x);
    }
    Tensor::from_dispatch(<Dispatch as FusedGelu>::gelu_tanh(x.into_dispatch()))
}

/// `sigmoid(x)`.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + cpu::exp(-x))
}

/// `(s, u')` at `x`: `s = sigmoid(2u)` and the derivative of `u`.
#[inline(always)]
fn sigmoid_and_slope(x: f32) -> (f32, f32) {
    let u = SQRT_2_OVER_PI * (x + CUBIC * x * x * x);
    let s = sigmoid(2.0 * u);
    (s, SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x * x))
}

/// `f(x, g)` over the pairs of `x` and `other`, in parallel tasks of [`TASK_ELEMENTS`].
fn zip_map(x: &[f32], other: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let ([out], _) = cpu::par_blocks(x.len(), TASK_ELEMENTS, |start, [out]| {
        let range = start..start + out.len();
        out.iter_mut().zip(x[range.clone()].iter().zip(&other[range])).for_each(|(y, (&x, &g))| *y = f(x, g));
    });
    out
}

fn gelu_forward<B: RowMajor>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::map_values(x, |x| zip_map(x, x, |x, _| x * sigmoid_and_slope(x).0))
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedGelu: Backend {
    /// GELU, tanh form, element-wise.
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedGelu for B {
    fn gelu_tanh(x: FloatTensor<B>) -> FloatTensor<B> {
        gelu_forward::<B>(x)
    }
}

/// The backward node: it keeps `x`.
#[derive(Debug)]
struct GeluBackward;

impl<B: RowMajor> Backward<B, 1> for GeluBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let x = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |output_grad| {
            B::map_values(x, |x| {
                B::with_values(output_grad, |dy| {
                    zip_map(x, dy, |x, dy| {
                        let (s, slope) = sigmoid_and_slope(x);
                        dy * (s + 2.0 * x * s * (1.0 - s) * slope)
                    })
                })
            })
        });
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedGelu for Autodiff<B, C> {
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        match GeluBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(x.clone(), gelu_forward::<B>(x)),
            OpsKind::UnTracked(prep) => prep.finish(gelu_forward::<B>(x)),
        }
    }
}

/// SiLU, `x sigmoid(x)`, element-wise. burn composes it from a sigmoid and a product, each a
/// pass with its own saved tensor under autodiff; here, on the CPU backends, the forward is
/// one parallel pass and the backward keeps only `x`: `d silu / dx = s (1 + x (1 - s))`,
/// `s = sigmoid(x)`. Other backends (wgpu, cuda) use burn's composition.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !runs_natively(&x) {
        return burn::tensor::activation::silu(x);
    }
    Tensor::from_dispatch(<Dispatch as FusedSilu>::silu(x.into_dispatch()))
}

fn silu_forward<B: RowMajor>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::map_values(x, |x| zip_map(x, x, |x, _| x * sigmoid(x)))
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedSilu: Backend {
    /// SiLU element-wise.
    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedSilu for B {
    fn silu(x: FloatTensor<B>) -> FloatTensor<B> {
        silu_forward::<B>(x)
    }
}

/// The backward node: it keeps `x`.
#[derive(Debug)]
struct SiluBackward;

impl<B: RowMajor> Backward<B, 1> for SiluBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let x = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |output_grad| {
            B::map_values(x, |x| {
                B::with_values(output_grad, |dy| {
                    zip_map(x, dy, |x, dy| {
                        let s = sigmoid(x);
                        dy * s * (1.0 + x * (1.0 - s))
                    })
                })
            })
        });
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedSilu for Autodiff<B, C> {
    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        match SiluBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(x.clone(), silu_forward::<B>(x)),
            OpsKind::UnTracked(prep) => prep.finish(silu_forward::<B>(x)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric_checks::{assert_close, values};
    use burn::tensor::Distribution;

    /// Output and gradient equal burn's composed `gelu_approximate` (and JAX's definition:
    /// gelu(1) = 0.841192), on both CPU backends, far into both tails.
    #[test]
    fn the_fused_gelu_and_its_gradient_equal_the_composed_ones() {
        for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
            device.seed(4);
            let shape = [3, 70, 130];
            let x = Tensor::<3>::random(shape, Distribution::Normal(0.0, 4.0), &device);
            let g = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let run = |fused: bool| {
                let x = x.clone().detach().require_grad();
                let y = if fused { gelu_tanh(x.clone()) } else { gelu_approximate(x.clone()) };
                let grads = (y.clone() * g.clone()).sum().backward();
                (values(y), values(x.grad(&grads).unwrap()))
            };
            let ((y_fused, g_fused), (y_composed, g_composed)) = (run(true), run(false));
            assert_close(&y_fused, &y_composed, 1e-5, "gelu");
            assert_close(&g_fused, &g_composed, 1e-4, "its gradient");
        }
        let one = values(gelu_tanh(Tensor::<1>::from_floats([1.0, -1.0, 0.0], &Device::flex())));
        assert!((one[0] - 0.841_192).abs() < 1e-6 && (one[1] + 0.158_808).abs() < 1e-6 && one[2] == 0.0, "{one:?}");
    }

    #[test]
    fn the_fused_silu_and_its_gradient_equal_the_composed_ones() {
        for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
            device.seed(96);
            let shape = [3, 70, 130];
            let x = Tensor::<3>::random(shape, Distribution::Normal(0.0, 6.0), &device);
            let g = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let run = |fused: bool| {
                let x = x.clone().detach().require_grad();
                let y = if fused { silu(x.clone()) } else { burn::tensor::activation::silu(x.clone()) };
                let grads = (y.clone() * g.clone()).sum().backward();
                (values(y), values(x.grad(&grads).unwrap()))
            };
            let ((y_fused, g_fused), (y_composed, g_composed)) = (run(true), run(false));
            assert_close(&y_fused, &y_composed, 1e-5, "silu");
            assert_close(&g_fused, &g_composed, 1e-4, "its gradient");
        }
    }
}
