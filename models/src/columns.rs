//! A range of the last axis's columns of a `[batch, len, width]` tensor, `x.narrow(2,
//! start, columns)`, whose backward is one parallel pass on the CPU.
//!
//! Layers that split one wide projection into its parts (Mega's `[update, Z | reset,
//! candidate]`, Hyena's streams, Mamba's `[x, z]`) take each part as a range of columns.
//! The forward is burn's: a view, nothing copied. Its backward in burn makes a tensor of
//! zeros of the whole width (on flex an allocation that is zeroed, then copied once more
//! into an aligned buffer) and copies the part's gradient into it, each a serial pass over
//! the whole width, for every part. Here, on the CPU backends (flex, ndarray), the
//! backward writes the whole-width gradient in one parallel pass, zeros around the part's
//! columns: the same numbers. Other backends (wgpu, cuda) use burn's `narrow`.

// ndarray is deprecated in burn, and kept selectable here.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::Slice;

use crate::cpu::{self, RowMajor, rows_per_task, runs_natively};

/// `x: [batch, len, width]` -> its columns `start..start + columns`, `[batch, len, columns]`.
pub fn columns(x: Tensor<3>, start: usize, columns: usize) -> Tensor<3> {
    if !runs_natively(&x) {
        return x.narrow(2, start, columns);
    }
    Tensor::from_dispatch(<Dispatch as FusedColumns>::columns(x.into_dispatch(), start, columns))
}

/// The view of the columns, as burn's `narrow` makes it.
fn view<B: Backend>(x: FloatTensor<B>, start: usize, columns: usize) -> FloatTensor<B> {
    let shape = x.shape();
    let slices = [Slice::from(0..shape[0]), Slice::from(0..shape[1]), Slice::from(start..start + columns)];
    B::float_slice(x, &slices)
}

/// The gradient of the whole `[batch, len, width]` input from the part's, `grad: [batch,
/// len, columns]`: zeros but at the part's columns.
fn whole_width<B: RowMajor>(grad: FloatTensor<B>, width: usize, start: usize) -> FloatTensor<B> {
    let shape = grad.shape();
    let (rows, columns) = (shape[0] * shape[1], shape[2]);
    let values = B::with_values(grad, |grad| {
        let ([whole], _) = cpu::par_blocks(rows * width, rows_per_task(width) * width.max(1), |first, [part]| {
            for (i, row) in part.chunks_exact_mut(width.max(1)).enumerate() {
                let source = (first / width.max(1) + i) * columns;
                row[start..start + columns].copy_from_slice(&grad[source..source + columns]);
            }
        });
        whole
    });
    B::from_values(values, Shape::from([shape[0], shape[1], width]))
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedColumns: Backend {
    /// `x: [batch, len, width]` -> its columns `start..start + columns`.
    fn columns(x: FloatTensor<Self>, start: usize, columns: usize) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedColumns for B {
    fn columns(x: FloatTensor<B>, start: usize, columns: usize) -> FloatTensor<B> {
        view::<B>(x, start, columns)
    }
}

/// The backward node: the input's width and the part's first column; it keeps no tensor.
#[derive(Debug)]
struct ColumnsBackward {
    width: usize,
    start: usize,
}

impl<B: RowMajor> Backward<B, 1> for ColumnsBackward {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        unary::<B, _>(ops.parents, ops.node, grads, |grad| whole_width::<B>(grad, self.width, self.start));
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedColumns for Autodiff<B, C> {
    fn columns(x: FloatTensor<Self>, start: usize, columns: usize) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        let width = x.shape()[2];
        match (ColumnsBackward { width, start }).prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((), view::<B>(x, start, columns)),
            OpsKind::UnTracked(prep) => prep.finish(view::<B>(x, start, columns)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric_checks::values;
    use burn::tensor::Distribution;

    /// Parts of a tensor and the gradient through all of them (each part weighted by its own
    /// gradient, summed as a layer's parts are) equal burn's `narrow`'s, number for number,
    /// on both CPU backends: parts at the start, the middle and the end, one column, the
    /// whole width.
    #[test]
    fn the_columns_and_their_gradient_equal_burns_narrow() {
        for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
            device.seed(92);
            let shape = [2, 9, 13];
            let x = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            for parts in [vec![(0, 4), (4, 1), (5, 8)], vec![(0, 13)], vec![(3, 5), (3, 2)]] {
                let run = |split: fn(Tensor<3>, usize, usize) -> Tensor<3>| {
                    let x = x.clone().detach().require_grad();
                    let mut outputs = Vec::new();
                    let mut total = Tensor::<1>::zeros([1], &device);
                    for &(start, columns) in &parts {
                        let part = split(x.clone(), start, columns);
                        let g = Tensor::<3>::random([2, 9, columns], Distribution::Normal(0.0, 1.0), &device);
                        outputs.push(values(part.clone()));
                        total = total + (part * g).sum();
                    }
                    (outputs, values(x.grad(&total.backward()).unwrap()))
                };
                device.seed(93);
                let fused = run(columns);
                device.seed(93);
                let narrowed = run(|x, start, columns| x.narrow(2, start, columns));
                assert_eq!(fused, narrowed, "{parts:?}");
            }
        }
    }
}
