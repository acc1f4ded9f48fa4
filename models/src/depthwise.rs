//! The causal depthwise convolution of Mamba's block, fused on the CPU.
//!
//! `out[b, t, d] = bias[d] + sum_k w[d, k] u[b, t - (width - 1) + k, d]`, zeros before
//! the start. In burn's operations it is a concatenation of zeros, `width` shifted copies,
//! products and sums, each a pass over `[batch, len, channels]` (most of them strided
//! copies) and, under autodiff, a node keeping its tensors. Here, on the CPU backends
//! (flex, ndarray), the forward is one parallel pass over the output and the backward one
//! over the input's gradient, which also gathers each task's share of the weights' and the
//! bias's gradients:
//!
//! `du[b, s, d] = sum_k w[d, k] g[b, s + (width - 1) - k, d]` (steps past the end left
//! out), `dw[d, k] = sum_{b, t} g[b, t, d] u[b, t - (width - 1) + k, d]`,
//! `dbias[d] = sum_{b, t} g[b, t, d]`.
//!
//! Other backends (wgpu, cuda) use burn's composition, [`causal_depthwise_conv_composed`].

// ndarray is deprecated in burn, and kept selectable here.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::prelude::*;

use crate::cpu::{self, RowMajor, rows_per_task, runs_natively};
use crate::reversal::reverse_rows;

/// The causal depthwise convolution: `u: [batch, len, channels]`, `weight:
/// [channels, width]` (tap `width - 1` on the current step), `bias: [channels]` -> the
/// shape of `u`.
pub fn causal_depthwise_conv(u: Tensor<3>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<3> {
    if !(runs_natively(&u) && runs_natively(&weight) && runs_natively(&bias)) {
        return causal_depthwise_conv_composed(u, weight, bias);
    }
    Tensor::from_dispatch(<Dispatch as FusedDepthwise>::causal_depthwise_conv(
        u.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        false,
    ))
}

/// The same convolution of the sequence reversed, `causal_depthwise_conv(reverse_time(u),
/// weight, bias)` (each output row at the reversed sequence's step), number for number. On
/// the CPU backends the fused operation reads `u` from the end as it lies, so that no
/// reversed copy of `u` is made, nor kept for the backward (the backward branch of a
/// bidirectional layer keeps the same `u` as its forward branch).
pub fn causal_depthwise_conv_of_reversed(u: Tensor<3>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<3> {
    if !(runs_natively(&u) && runs_natively(&weight) && runs_natively(&bias)) {
        return causal_depthwise_conv_composed(u.flip([1]), weight, bias);
    }
    Tensor::from_dispatch(<Dispatch as FusedDepthwise>::causal_depthwise_conv(
        u.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        true,
    ))
}

/// The same in burn's operations: zeros before the start, then a sum of shifted copies.
pub fn causal_depthwise_conv_composed(u: Tensor<3>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<3> {
    let [batch, len, channels] = u.dims();
    let width = weight.dims()[1];
    let padded = Tensor::cat(vec![Tensor::zeros([batch, width - 1, channels], &u.device()), u], 1);
    let tap = |k: usize| padded.clone().narrow(1, k, len) * weight.clone().narrow(1, k, 1).reshape([1, 1, channels]);
    (1..width).fold(tap(0), |total, k| total + tap(k)) + bias.reshape([1, 1, channels])
}

/// The sizes: `[batch, len, channels]` and the width; `reversed`: the convolution runs
/// over the sequences read from their ends.
#[derive(Clone, Copy)]
struct Sizes {
    len: usize,
    channels: usize,
    width: usize,
    reversed: bool,
}

impl Sizes {
    /// Where row `row` (`example len + t`, a step of the sequence the convolution runs
    /// over) lies in `u`: the same row, or, reversed, step `len - 1 - t` of its example.
    #[inline(always)]
    fn input_row(self, row: usize) -> usize {
        match self.reversed {
            false => row,
            true => row - row % self.len + (self.len - 1 - row % self.len),
        }
    }
}

/// `weight` transposed to `[width, channels]`, so that the loops run over the channels.
fn taps(weight: &[f32], sizes: Sizes) -> Vec<f32> {
    (0..sizes.width).flat_map(|k| (0..sizes.channels).map(move |d| weight[d * sizes.width + k])).collect()
}

fn forward_values(u: &[f32], weight: &[f32], bias: &[f32], sizes: Sizes) -> Vec<f32> {
    let Sizes { len, channels, width, .. } = sizes;
    let taps = taps(weight, sizes);
    let ([out], _) = cpu::par_blocks(u.len(), rows_per_task(channels) * channels, |start, [out]| {
        for (i, out_row) in out.chunks_exact_mut(channels).enumerate() {
            let row = start / channels + i;
            let t = row % len;
            // Taps reaching before the start read zeros: they are left out.
            for k in (width - 1).saturating_sub(t)..width {
                let source = sizes.input_row(row + k + 1 - width) * channels;
                let (u_row, tap) = (&u[source..source + channels], &taps[k * channels..(k + 1) * channels]);
                for d in 0..channels {
                    out_row[d] += tap[d] * u_row[d];
                }
            }
            for d in 0..channels {
                out_row[d] += bias[d];
            }
        }
    });
    out
}

/// The gradients of `u`, `weight` (`[channels, width]`) and `bias` from the output's `g`.
/// The loops run over the steps of the convolved sequence; reversed, the rows of `u`'s
/// gradient are put back in `u`'s order at the end.
fn backward_values(u: &[f32], weight: &[f32], g: &[f32], sizes: Sizes) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let Sizes { len, channels, width, reversed } = sizes;
    let taps = taps(weight, sizes);
    // Each task: its rows of du, and its share of dw (`[width, channels]`) and dbias.
    let ([d_u], shares) = cpu::par_blocks(u.len(), rows_per_task(channels) * channels, |start, [d_u]| {
        let (mut d_taps, mut d_bias) = (vec![0.0f32; width * channels], vec![0.0f32; channels]);
        for (i, d_u_row) in d_u.chunks_exact_mut(channels).enumerate() {
            let row = start / channels + i;
            let t = row % len;
            let g_row = &g[row * channels..(row + 1) * channels];
            // Row `t` as an input: read by the outputs `t + (width - 1) - k` within the sequence.
            for k in 0..width {
                if t + width - 1 - k < len {
                    let target = (row + width - 1 - k) * channels;
                    let (g_target, tap) = (&g[target..target + channels], &taps[k * channels..(k + 1) * channels]);
                    for d in 0..channels {
                        d_u_row[d] += tap[d] * g_target[d];
                    }
                }
            }
            // Row `t` as an output: its taps' inputs, and the bias.
            for k in (width - 1).saturating_sub(t)..width {
                let source = sizes.input_row(row + k + 1 - width) * channels;
                let (u_row, d_tap) = (&u[source..source + channels], &mut d_taps[k * channels..(k + 1) * channels]);
                for d in 0..channels {
                    d_tap[d] += g_row[d] * u_row[d];
                }
            }
            for d in 0..channels {
                d_bias[d] += g_row[d];
            }
        }
        (d_taps, d_bias)
    });
    let (mut d_weight, mut d_bias) = (vec![0.0f32; channels * width], vec![0.0f32; channels]);
    for (d_taps, bias_share) in shares {
        for k in 0..width {
            for d in 0..channels {
                d_weight[d * width + k] += d_taps[k * channels + d];
            }
        }
        d_bias.iter_mut().zip(&bias_share).for_each(|(total, share)| *total += share);
    }
    let d_u = match reversed {
        false => d_u,
        true => reverse_rows(&d_u, len, channels),
    };
    (d_u, d_weight, d_bias)
}

fn sizes<B: Backend>(u: &FloatTensor<B>, weight: &FloatTensor<B>, reversed: bool) -> Sizes {
    let (u, weight) = (u.shape(), weight.shape());
    Sizes { len: u[1], channels: u[2], width: weight[1], reversed }
}

fn forward<B: RowMajor>(u: FloatTensor<B>, weight: FloatTensor<B>, bias: FloatTensor<B>, reversed: bool) -> FloatTensor<B> {
    let sizes = sizes::<B>(&u, &weight, reversed);
    let (weight, bias) = (B::with_values(weight, <[f32]>::to_vec), B::with_values(bias, <[f32]>::to_vec));
    B::map_values(u, |u| forward_values(u, &weight, &bias, sizes))
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedDepthwise: Backend {
    /// The causal depthwise convolution ([`causal_depthwise_conv`]); `reversed`: of the
    /// sequence reversed ([`causal_depthwise_conv_of_reversed`]).
    fn causal_depthwise_conv(
        u: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        reversed: bool,
    ) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedDepthwise for B {
    fn causal_depthwise_conv(u: FloatTensor<B>, weight: FloatTensor<B>, bias: FloatTensor<B>, reversed: bool) -> FloatTensor<B> {
        forward::<B>(u, weight, bias, reversed)
    }
}

/// The backward node: it keeps `u` and the weights (the bias's gradient needs neither);
/// its field, whether the sequence was read reversed.
#[derive(Debug)]
struct DepthwiseBackward(bool);

impl<B: RowMajor> Backward<B, 3> for DepthwiseBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (u, weight) = ops.state;
        let output_grad = grads.consume::<B>(&ops.node);
        let sizes = sizes::<B>(&u, &weight, self.0);
        let (u_shape, weight_shape) = (u.shape(), weight.shape());
        let (d_u, d_weight, d_bias) =
            B::with_all([u, weight, output_grad], |[u, weight, g]| backward_values(u, weight, g, sizes));
        let [u_node, weight_node, bias_node] = ops.parents;
        let bias_shape = Shape::from([sizes.channels]);
        for (node, values, shape) in
            [(u_node, d_u, u_shape), (weight_node, d_weight, weight_shape), (bias_node, d_bias, bias_shape)]
        {
            if let Some(node) = node {
                grads.register::<B>(node.id, B::from_values(values, shape));
            }
        }
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedDepthwise for Autodiff<B, C> {
    fn causal_depthwise_conv(
        u: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        reversed: bool,
    ) -> FloatTensor<Self> {
        let (u, u_node) = u.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let (bias, bias_node) = bias.into_parts();
        match DepthwiseBackward(reversed).prepare::<C>([u_node, weight_node, bias_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = forward::<B>(u.clone(), weight.clone(), bias, reversed);
                prep.finish((u, weight), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward::<B>(u, weight, bias, reversed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric_checks::{assert_close, values};
    use crate::reversal::reverse_time;
    use burn::tensor::Distribution;

    /// A convolution: `u`, `weight`, `bias` -> its output.
    type Convolution = fn(Tensor<3>, Tensor<2>, Tensor<1>) -> Tensor<3>;

    /// Sizes `(batch, len, channels, width)`: sequences shorter and longer than the width,
    /// and tasks splitting the sequences.
    const SIZES: [(usize, usize, usize, usize); 4] = [(2, 3, 5, 4), (3, 300, 70, 4), (2, 17, 9, 1), (1, 40, 600, 3)];

    /// The output and the gradients of `u`, the weights and the bias (under a random output
    /// gradient) of each of `first` and `second` on the same random inputs.
    fn outputs_and_gradients(
        device: &Device,
        (batch, len, channels, width): (usize, usize, usize, usize),
        [first, second]: [Convolution; 2],
    ) -> [[Vec<f32>; 4]; 2] {
        let normal = Distribution::Normal(0.0, 1.0);
        let u = Tensor::<3>::random([batch, len, channels], normal, device);
        let weight = Tensor::<2>::random([channels, width], normal, device);
        let bias = Tensor::<1>::random([channels], normal, device);
        let g = Tensor::<3>::random([batch, len, channels], normal, device);
        [first, second].map(|convolution| {
            let (u, weight, bias) = (u.clone().require_grad(), weight.clone().require_grad(), bias.clone().require_grad());
            let y = convolution(u.clone(), weight.clone(), bias.clone());
            let grads = (y.clone() * g.clone()).sum().backward();
            [values(y), values(u.grad(&grads).unwrap()), values(weight.grad(&grads).unwrap()), values(bias.grad(&grads).unwrap())]
        })
    }

    /// Output and the three gradients equal burn's composition on both CPU backends.
    #[test]
    fn the_fused_convolution_and_its_gradients_equal_the_composed_ones() {
        for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
            device.seed(6);
            for sizes in SIZES {
                let [fused, composed] =
                    outputs_and_gradients(&device, sizes, [causal_depthwise_conv, causal_depthwise_conv_composed]);
                for ((got, expected), name) in fused.iter().zip(&composed).zip(["y", "d u", "d weight", "d bias"]) {
                    assert_close(got, expected, 1e-4, &format!("{name}, sizes {sizes:?}"));
                }
            }
        }
    }

    /// The convolution of the reversed sequence read in place equals the convolution of a
    /// reversed copy, output and the three gradients bit for bit, on both CPU backends.
    #[test]
    fn the_convolution_of_the_reversed_sequence_equals_that_of_a_reversed_copy() {
        for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
            device.seed(7);
            for sizes in SIZES {
                let of_a_copy: Convolution = |u, weight, bias| causal_depthwise_conv(reverse_time(u), weight, bias);
                let [in_place, copied] = outputs_and_gradients(&device, sizes, [causal_depthwise_conv_of_reversed, of_a_copy]);
                assert_eq!(in_place, copied, "sizes {sizes:?}");
            }
        }
    }
}
