//! Layer normalisation as one operation with its own backward.
//!
//! burn 0.22.1's autodiff has no layer-norm node: under training, `LayerNorm` runs as its
//! decomposition (mean, subtract, square, mean, add, square root, divide, scale, shift),
//! each a pass over the activations and most keeping a tensor for the backward. Here, on
//! the CPU backends (flex, ndarray), the forward is one parallel pass per row and the
//! backward keeps only `x` and `gamma`, recomputing each row's mean and deviation:
//!
//! - forward: `x_hat = (x - mean) / sqrt(var + eps)`, `y = gamma x_hat + beta` per row;
//! - backward, with `g = dy gamma`: `dx = (g - mean(g) - x_hat mean(g x_hat)) / sqrt(var + eps)`,
//!   `dgamma = sum over rows of dy x_hat`, `dbeta = sum over rows of dy`.
//!
//! Other backends (wgpu, cuda) use burn's `LayerNorm`.

// ndarray is deprecated in burn, and kept selectable here.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::nn::LayerNorm;
use burn::prelude::*;

use crate::cpu::{self, RowMajor, rows_per_task, runs_natively};

/// Layer norm epsilon of LRA's (flax) layers.
pub const LAYER_NORM_EPSILON: f64 = 1e-6;

/// `norm` applied to `x: [..., d_model]`, through the fused operation on the CPU backends.
/// Every layer norm of this crate is made with [`LAYER_NORM_EPSILON`] (burn keeps a
/// `LayerNorm`'s own epsilon private).
pub fn layer_norm<const D: usize>(norm: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    let Some(beta) = norm.beta.as_ref().filter(|_| runs_natively(&x)) else { return norm.forward(x) };
    Tensor::from_dispatch(<Dispatch as FusedLayerNorm>::layer_norm(
        x.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        beta.val().into_dispatch(),
        LAYER_NORM_EPSILON as f32,
    ))
}

/// Mean and `1 / sqrt(var + eps)` of one row (two passes, as burn's decomposition).
#[inline]
fn moments(row: &[f32], epsilon: f32) -> (f32, f32) {
    let width = row.len() as f32;
    let mean = cpu::sum(row) / width;
    (mean, 1.0 / (cpu::squared_deviations(row, mean) / width + epsilon).sqrt())
}

fn forward_rows(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32) -> Vec<f32> {
    let width = gamma.len();
    let block = rows_per_task(width) * width;
    let ([y], _) = cpu::par_blocks(x.len(), block, |start, [y]| {
        let x = &x[start..start + y.len()];
        for (y, x) in y.chunks_mut(width).zip(x.chunks(width)) {
            let (mean, inverse_deviation) = moments(x, epsilon);
            for ((y, &x), (&gamma, &beta)) in y.iter_mut().zip(x).zip(gamma.iter().zip(beta)) {
                *y = (x - mean) * inverse_deviation * gamma + beta;
            }
        }
    });
    y
}

/// `(dx, dgamma, dbeta)`. The parameters' sums over rows are taken per task, then the
/// tasks' partial sums in task order: the same numbers on every run.
fn backward_rows(x: &[f32], gamma: &[f32], dy: &[f32], epsilon: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let width = gamma.len();
    let block = rows_per_task(width) * width;
    let ([dx], partials) = cpu::par_blocks(x.len(), block, |start, [dx]| {
        let rows = start..start + dx.len();
        let (x, dy) = (&x[rows.clone()], &dy[rows]);
        let (mut dgamma, mut dbeta) = (vec![0.0f32; width], vec![0.0f32; width]);
        let mut g = vec![0.0f32; width];
        let mut x_hat = vec![0.0f32; width];
        for ((dx, x), dy) in dx.chunks_mut(width).zip(x.chunks(width)).zip(dy.chunks(width)) {
            let (mean, inverse_deviation) = moments(x, epsilon);
            for ((x_hat, g), (&x, (&dy, &gamma))) in x_hat.iter_mut().zip(g.iter_mut()).zip(x.iter().zip(dy.iter().zip(gamma))) {
                *x_hat = (x - mean) * inverse_deviation;
                *g = dy * gamma;
            }
            for ((dgamma, dbeta), (&dy, &x_hat)) in dgamma.iter_mut().zip(dbeta.iter_mut()).zip(dy.iter().zip(&x_hat)) {
                *dgamma += dy * x_hat;
                *dbeta += dy;
            }
            let mean_g = cpu::sum(&g) / width as f32;
            let mean_g_x_hat = cpu::dot(&g, &x_hat) / width as f32;
            for (dx, (&g, &x_hat)) in dx.iter_mut().zip(g.iter().zip(&x_hat)) {
                *dx = (g - mean_g - x_hat * mean_g_x_hat) * inverse_deviation;
            }
        }
        (dgamma, dbeta)
    });
    let (mut dgamma, mut dbeta) = (vec![0.0f32; width], vec![0.0f32; width]);
    for (partial_gamma, partial_beta) in partials {
        dgamma.iter_mut().zip(&partial_gamma).for_each(|(total, part)| *total += part);
        dbeta.iter_mut().zip(&partial_beta).for_each(|(total, part)| *total += part);
    }
    (dx, dgamma, dbeta)
}

fn forward<B: RowMajor>(x: FloatTensor<B>, gamma: FloatTensor<B>, beta: FloatTensor<B>, epsilon: f32) -> FloatTensor<B> {
    B::map_values(x, |x| B::with_values(gamma, |gamma| B::with_values(beta, |beta| forward_rows(x, gamma, beta, epsilon))))
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedLayerNorm: Backend {
    /// `gamma (x - mean) / sqrt(var + epsilon) + beta` over the last dimension.
    fn layer_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedLayerNorm for B {
    fn layer_norm(x: FloatTensor<B>, gamma: FloatTensor<B>, beta: FloatTensor<B>, epsilon: f32) -> FloatTensor<B> {
        forward::<B>(x, gamma, beta, epsilon)
    }
}

/// The backward node: it keeps `x` and `gamma`.
#[derive(Debug)]
struct LayerNormBackward;

impl<B: RowMajor> Backward<B, 3> for LayerNormBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, f32);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let output_grad = grads.consume::<B>(&ops.node);
        let (x, gamma, epsilon) = ops.state;
        let (x_shape, gamma_shape) = (x.shape(), gamma.shape());
        let (dx, dgamma, dbeta) = B::with_values(x, |x| {
            B::with_values(gamma, |gamma| B::with_values(output_grad, |dy| backward_rows(x, gamma, dy, epsilon)))
        });
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::from_values(dx, x_shape));
        }
        if let Some(node) = node_gamma {
            grads.register::<B>(node.id, B::from_values(dgamma, gamma_shape.clone()));
        }
        if let Some(node) = node_beta {
            grads.register::<B>(node.id, B::from_values(dbeta, gamma_shape));
        }
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedLayerNorm for Autodiff<B, C> {
    fn layer_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (gamma, gamma_node) = gamma.into_parts();
        let (beta, beta_node) = beta.into_parts();
        match LayerNormBackward.prepare::<C>([x_node, gamma_node, beta_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = forward::<B>(x.clone(), gamma.clone(), beta, epsilon);
                prep.finish((x, gamma, epsilon), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward::<B>(x, gamma, beta, epsilon)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric_checks::{assert_close, values};
    use burn::module::Param;
    use burn::nn::LayerNormConfig;
    use burn::tensor::Distribution;

    /// Output and the gradients of `x`, `gamma` and `beta` equal burn's `LayerNorm` (its
    /// decomposition under autodiff), on both CPU backends, for widths that do and do not
    /// fill the reductions' lanes and for more rows than one task holds.
    #[test]
    fn the_fused_layer_norm_and_its_gradients_equal_burns() {
        for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
            for shape in [[2, 3, 5], [4, 300, 64], [1, 2, 130]] {
                device.seed(6);
                let width = shape[2];
                let x = Tensor::<3>::random(shape, Distribution::Normal(1.0, 3.0), &device);
                let g = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
                let mut norm = LayerNormConfig::new(width).with_epsilon(LAYER_NORM_EPSILON).init(&device);
                norm.gamma = Param::from_tensor(Tensor::random([width], Distribution::Normal(1.0, 0.5), &device));
                norm.beta = Some(Param::from_tensor(Tensor::random([width], Distribution::Normal(0.0, 0.5), &device)));
                let run = |fused: bool| {
                    let x = x.clone().detach().require_grad();
                    let y = if fused { layer_norm(&norm, x.clone()) } else { norm.forward(x.clone()) };
                    let grads = (y.clone() * g.clone()).sum().backward();
                    let (gamma, beta) = (norm.gamma.val(), norm.beta.as_ref().unwrap().val());
                    let parameter_grads = (values(gamma.grad(&grads).unwrap()), values(beta.grad(&grads).unwrap()));
                    (values(y), values(x.grad(&grads).unwrap()), parameter_grads)
                };
                let (fused, composed) = (run(true), run(false));
                assert_close(&fused.0, &composed.0, 1e-5, &format!("y {shape:?}"));
                assert_close(&fused.1, &composed.1, 1e-4, &format!("dx {shape:?}"));
                assert_close(&fused.2.0, &composed.2.0, 1e-4, &format!("dgamma {shape:?}"));
                assert_close(&fused.2.1, &composed.2.1, 1e-4, &format!("dbeta {shape:?}"));
            }
        }
    }
}
