//! The time axis of `[batch, len, width]` tensors reversed, as one copy on the CPU.
//!
//! A bidirectional layer (Mamba's and S4D's backward branches) runs its causal operations
//! over the reversed sequence and reverses their output back. burn's `flip` is a view with
//! a negative stride on flex; the next operation that needs its numbers in order copies
//! them one element at a time through a strided iterator, on one thread (at 4K tokens the
//! flips and their gradients' flips were a twentieth of a Mamba step, all of it serial).
//! Here, on the CPU backends (flex, ndarray), the reversal is a parallel copy of whole
//! rows, and its backward the same reversal of the gradient: the same numbers as the flip,
//! laid out in order. Other backends (wgpu, cuda) use burn's `flip`.

// ndarray is deprecated in burn, and kept selectable here.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::prelude::*;

use crate::cpu::{self, RowMajor, rows_per_task, runs_natively};

/// `x: [batch, len, width]` with its steps in reverse order: `out[b, t] = x[b, len - 1 - t]`.
pub fn reverse_time(x: Tensor<3>) -> Tensor<3> {
    if !runs_natively(&x) {
        return x.flip([1]);
    }
    Tensor::from_dispatch(<Dispatch as FusedReversal>::reverse_time(x.into_dispatch()))
}

/// The reversal on a CPU backend.
fn reversed<B: RowMajor>(x: FloatTensor<B>) -> FloatTensor<B> {
    let shape = x.shape();
    let (len, width) = (shape[1], shape[2]);
    B::map_values(x, |x| reverse_rows(x, len, width))
}

/// `x` as `[batch, len, width]` row-major numbers with each example's `len` rows in reverse
/// order; each parallel task copies whole rows.
pub(crate) fn reverse_rows(x: &[f32], len: usize, width: usize) -> Vec<f32> {
    let width = width.max(1);
    let ([out], _) = cpu::par_blocks(x.len(), rows_per_task(width) * width, |start, [out]| {
        for (i, out_row) in out.chunks_exact_mut(width).enumerate() {
            let row = start / width + i;
            let (example, t) = (row / len, row % len);
            let source = (example * len + len - 1 - t) * width;
            out_row.copy_from_slice(&x[source..source + width]);
        }
    });
    out
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedReversal: Backend {
    /// `x: [batch, len, width]` with its steps reversed.
    fn reverse_time(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedReversal for B {
    fn reverse_time(x: FloatTensor<B>) -> FloatTensor<B> {
        reversed::<B>(x)
    }
}

/// The backward node: the gradient reversed likewise; it keeps nothing.
#[derive(Debug)]
struct ReversalBackward;

impl<B: RowMajor> Backward<B, 1> for ReversalBackward {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        unary::<B, _>(ops.parents, ops.node, grads, reversed::<B>);
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedReversal for Autodiff<B, C> {
    fn reverse_time(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        match ReversalBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((), reversed::<B>(x)),
            OpsKind::UnTracked(prep) => prep.finish(reversed::<B>(x)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric_checks::values;
    use burn::tensor::Distribution;

    /// The reversal and its gradient are burn's flip's, number for number, on both CPU
    /// backends, for a width of 1, a single step and an odd length.
    #[test]
    fn the_reversal_and_its_gradient_equal_burns_flip() {
        for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
            device.seed(91);
            for shape in [[2, 7, 5], [3, 1, 4], [2, 9, 1]] {
                let x = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
                let g = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
                let run = |f: fn(Tensor<3>) -> Tensor<3>| {
                    let x = x.clone().detach().require_grad();
                    let y = f(x.clone());
                    let grads = (y.clone() * g.clone()).sum().backward();
                    (values(y), values(x.grad(&grads).unwrap()))
                };
                assert_eq!(run(reverse_time), run(|x| x.flip([1])), "{shape:?}");
            }
        }
    }
}
