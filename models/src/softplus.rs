//! Softplus and SiLU, the element-wise functions of Mamba's block, fused on the CPU.
//!
//! burn's `softplus` composes six operations (a scaling, a threshold mask, a fill, `exp`,
//! `log1p`, a select), and `silu` two (`sigmoid`, a product), each a pass over the tensor
//! and, under autodiff, a node keeping its own tensors. Here, on the CPU backends (flex,
//! ndarray), each is one parallel pass and its backward keeps only `x`:
//!
//! - `softplus(x) = log(1 + exp(x))`, `x` itself above 20 (burn's and PyTorch's threshold
//!   with `beta = 1`), its derivative `sigmoid(x)` (1 above the threshold);
//! - `silu(x) = x sigmoid(x)`, its derivative `s (1 + x (1 - s))`, `s = sigmoid(x)`.
//!
//! Other backends (wgpu, cuda) use burn's compositions.

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

/// Above this, softplus is the identity (as burn's `softplus` with `beta = 1`).
const THRESHOLD: f32 = 20.0;

/// `softplus(x) = log(1 + exp(x))`, element-wise (the identity above 20).
pub fn softplus<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !runs_natively(&x) {
        return burn::tensor::activation::softplus(x, 1.0);
    }
    Tensor::from_dispatch(<Dispatch as FusedActivations>::softplus(x.into_dispatch()))
}

/// `silu(x) = x sigmoid(x)`, element-wise.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !runs_natively(&x) {
        return burn::tensor::activation::silu(x);
    }
    Tensor::from_dispatch(<Dispatch as FusedActivations>::silu(x.into_dispatch()))
}

/// The two functions, each with its value and its derivative at `x`.
#[derive(Debug, Clone, Copy)]
enum Activation {
    Softplus,
    Silu,
}

impl Activation {
    #[inline(always)]
    fn value(self, x: f32) -> f32 {
        match self {
            Activation::Softplus if x > THRESHOLD => x,
            Activation::Softplus => cpu::exp(x).ln_1p(),
            Activation::Silu => x * sigmoid(x),
        }
    }

    #[inline(always)]
    fn slope(self, x: f32) -> f32 {
        match self {
            Activation::Softplus if x > THRESHOLD => 1.0,
            Activation::Softplus => sigmoid(x),
            Activation::Silu => {
                let s = sigmoid(x);
                s * (1.0 + x * (1.0 - s))
            }
        }
    }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + cpu::exp(-x))
}

/// `f(x, g)` over the pairs of `x` and `other`, in parallel tasks of [`TASK_ELEMENTS`].
fn zip_map(x: &[f32], other: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let ([out], _) = cpu::par_blocks(x.len(), TASK_ELEMENTS, |start, [out]| {
        let range = start..start + out.len();
        out.iter_mut().zip(x[range.clone()].iter().zip(&other[range])).for_each(|(y, (&x, &g))| *y = f(x, g));
    });
    out
}

fn forward<B: RowMajor>(x: FloatTensor<B>, activation: Activation) -> FloatTensor<B> {
    B::map_values(x, |x| zip_map(x, x, |x, _| activation.value(x)))
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedActivations: Backend {
    /// Softplus (`beta = 1`, threshold 20), element-wise.
    fn softplus(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// SiLU, element-wise.
    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedActivations for B {
    fn softplus(x: FloatTensor<B>) -> FloatTensor<B> {
        forward::<B>(x, Activation::Softplus)
    }

    fn silu(x: FloatTensor<B>) -> FloatTensor<B> {
        forward::<B>(x, Activation::Silu)
    }
}

/// The backward node: it keeps `x`.
#[derive(Debug)]
struct ActivationBackward(Activation);

impl<B: RowMajor> Backward<B, 1> for ActivationBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (x, activation) = (ops.state, self.0);
        unary::<B, _>(ops.parents, ops.node, grads, |output_grad| {
            B::map_values(x, |x| B::with_values(output_grad, |dy| zip_map(x, dy, |x, dy| dy * activation.slope(x))))
        });
    }
}

fn tracked<B: RowMajor, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    activation: Activation,
) -> FloatTensor<Autodiff<B, C>> {
    let (x, node) = x.into_parts();
    match ActivationBackward(activation).prepare::<C>([node]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(x.clone(), forward::<B>(x, activation)),
        OpsKind::UnTracked(prep) => prep.finish(forward::<B>(x, activation)),
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedActivations for Autodiff<B, C> {
    fn softplus(x: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked::<B, C>(x, Activation::Softplus)
    }

    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked::<B, C>(x, Activation::Silu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric_checks::{assert_close, values};
    use burn::tensor::Distribution;

    /// Outputs and gradients equal burn's compositions on both CPU backends, far into both
    /// tails and across softplus's threshold.
    #[test]
    fn the_fused_softplus_and_silu_and_their_gradients_equal_the_composed_ones() {
        for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
            device.seed(5);
            let shape = [3, 70, 130];
            let x = Tensor::<3>::random(shape, Distribution::Normal(0.0, 12.0), &device);
            let g = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            type Pair = (fn(Tensor<3>) -> Tensor<3>, fn(Tensor<3>) -> Tensor<3>, &'static str);
            let pairs: [Pair; 2] = [
                (softplus, |x| burn::tensor::activation::softplus(x, 1.0), "softplus"),
                (silu, burn::tensor::activation::silu, "silu"),
            ];
            for (fused, composed, name) in pairs {
                let run = |f: fn(Tensor<3>) -> Tensor<3>| {
                    let x = x.clone().detach().require_grad();
                    let y = f(x.clone());
                    let grads = (y.clone() * g.clone()).sum().backward();
                    (values(y), values(x.grad(&grads).unwrap()))
                };
                let ((y_fused, g_fused), (y_composed, g_composed)) = (run(fused), run(composed));
                assert_close(&y_fused, &y_composed, 1e-5, name);
                assert_close(&g_fused, &g_composed, 1e-5, &format!("{name}'s gradient"));
            }
        }
    }
}
