//! The attention softmax with its dropout, as one operation with its own backward.
//!
//! Composed from burn's ops, `dropout(softmax(s))` under autodiff keeps about four tensors
//! of the score matrix's size per layer for the backward (the shifted scores, the
//! exponentials, a float Bernoulli mask and the dropped weights), and each of its five or six
//! passes runs on its own. Here, on the CPU backends (flex, ndarray), the forward is one
//! parallel pass per row and the backward needs only the weights `P`:
//!
//! - forward: `P = softmax(s)` per row; with dropout, `Y = P * keep / (1 - p)`, where
//!   `keep` comes from a counter-based generator (16 bits of the ChaCha8 stream of the
//!   call's seed decide each element, by its index), so the mask is regenerated in the
//!   backward, never stored;
//! - backward: `dP = dY * keep / (1 - p)`, `dS = P * (dP - rowsum(dP * P))`.
//!
//! The call's seed is drawn from the device's generator, so a run stays reproducible from
//! its seed. Other backends (wgpu, cuda) compose it from burn's ops and burn's [`Dropout`],
//! as before.

// ndarray is deprecated in burn, and kept selectable here.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::nn::Dropout;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use super::random;
use crate::cpu::{self, RowMajor, TASK_ELEMENTS, rows_per_task, runs_natively};

/// `dropout(softmax(scores))` over the last dimension. `dropout` is applied only where
/// burn's own [`Dropout`] would be (training on an autodiff device, probability above 0).
pub fn softmax_dropout<const D: usize>(scores: Tensor<D>, dropout: Option<&Dropout>) -> Tensor<D> {
    if !runs_natively(&scores) {
        let weights = softmax(scores, D - 1);
        return match dropout {
            Some(dropout) => dropout.forward(weights),
            None => weights,
        };
    }
    let (prob, seed) = match dropout.and_then(|dropout| active_probability(dropout, &scores.device())) {
        Some(prob) => (prob, random::seed_from_device(&scores.device())),
        None => (0.0, 0),
    };
    Tensor::from_dispatch(<Dispatch as FusedSoftmax>::softmax_dropout(scores.into_dispatch(), prob, seed))
}

/// `dropout(x)` as burn's [`Dropout`] computes it (same activity rule), but on the CPU
/// backends in one parallel pass whose mask is regenerated in the backward from the call's
/// seed, so the backward keeps no tensor at all (burn's keeps a float mask the size of `x`,
/// drawn one element at a time).
pub fn dropout<const D: usize>(x: Tensor<D>, dropout: &Dropout) -> Tensor<D> {
    let Some(prob) = active_probability(dropout, &x.device()) else { return x };
    if !runs_natively(&x) {
        return dropout.forward(x);
    }
    let seed = random::seed_from_device(&x.device());
    Tensor::from_dispatch(<Dispatch as FusedSoftmax>::dropout(x.into_dispatch(), prob, seed))
}

/// The dropout's probability where burn's [`Dropout`] would drop anything: in training
/// (not frozen), on an autodiff device, above 0.
pub(crate) fn active_probability(dropout: &Dropout, device: &Device) -> Option<f32> {
    (dropout.prob > 0.0 && dropout.training.is_enabled() && device.is_autodiff()).then_some(dropout.prob as f32)
}

/// The dropout of one call from element `first` on: element `i` is decided by half
/// `i % 2` (low 16 bits, then high) of word `i / 2` of the ChaCha8 stream of the call's
/// seed. ChaCha is counter-based, so any stretch of elements is regenerated from the seed
/// alone, in any order of tasks. 16 bits per element put the probability on a grid of
/// 1/65,536 (0.1 is kept as 0.100006) at half the generator's work of a whole word.
/// Kept elements are scaled by `1 / (1 - prob)`.
///
/// The halves are drawn a block at a time (the stream's little-endian bytes, read as
/// 16-bit numbers, are exactly the halves in that order), so applying the mask is a
/// branch-free loop that vectorises.
struct KeepMask {
    stream: ChaCha8Rng,
    /// The next halves of the stream; `halves[next..]` are not yet used.
    halves: [u16; MASK_BLOCK],
    next: usize,
    /// Kept where the 16-bit half is below this: `1 - prob` of the 65,536 values.
    threshold: u32,
    scale: f32,
}

/// Halves of the stream drawn at a time: 256 bytes, four of ChaCha's 64-byte blocks (what
/// its vectorised core makes in one go).
const MASK_BLOCK: usize = 128;

impl KeepMask {
    fn from(seed: u64, first: usize, prob: f32) -> KeepMask {
        let mut stream = random::stream(seed, 0);
        stream.set_word_pos((first / 2) as u128);
        let keep = 1.0 - prob;
        let threshold = (f64::from(keep) * 65_536.0).round() as u32;
        let mut mask = KeepMask { stream, halves: [0; MASK_BLOCK], next: MASK_BLOCK, threshold, scale: 1.0 / keep };
        if first % 2 == 1 {
            // Element `first` is the high half of its word.
            mask.refill();
            mask.next = 1;
        }
        mask
    }

    fn refill(&mut self) {
        let mut bytes = [0u8; 2 * MASK_BLOCK];
        self.stream.fill_bytes(&mut bytes);
        for (half, pair) in self.halves.iter_mut().zip(bytes.chunks_exact(2)) {
            *half = u16::from_le_bytes([pair[0], pair[1]]);
        }
        self.next = 0;
    }

    /// `out = values * keep / (1 - prob)` for the next `values.len()` elements.
    #[inline]
    fn drop_into(&mut self, mut values: &[f32], mut out: &mut [f32]) {
        while !values.is_empty() {
            if self.next == MASK_BLOCK {
                self.refill();
            }
            let take = (MASK_BLOCK - self.next).min(values.len());
            let (head, rest) = values.split_at(take);
            let (out_head, out_rest) = out.split_at_mut(take);
            let (threshold, scale) = (self.threshold, self.scale);
            for ((y, &x), &half) in out_head.iter_mut().zip(head).zip(&self.halves[self.next..self.next + take]) {
                *y = if u32::from(half) < threshold { x * scale } else { 0.0 };
            }
            self.next += take;
            (values, out) = (rest, out_rest);
        }
    }
}

/// Softmax of one row into `p`.
#[inline]
fn softmax_row(s: &[f32], p: &mut [f32]) {
    let max = cpu::max(s);
    p.iter_mut().zip(s).for_each(|(p, &s)| *p = cpu::exp(s - max));
    let inverse = 1.0 / cpu::sum(p);
    p.iter_mut().for_each(|p| *p *= inverse);
}

/// Softmax of each row of `scores` (rows of `width`), then dropout, in one pass per row:
/// returns `(P, Y)`, with `Y` absent when `prob` is 0 (then `Y = P`).
fn forward_rows(scores: &[f32], width: usize, prob: f32, seed: u64) -> (Vec<f32>, Option<Vec<f32>>) {
    let block = rows_per_task(width) * width;
    if prob == 0.0 {
        let ([weights], _) = cpu::par_blocks(scores.len(), block, |start, [p]| {
            let s = &scores[start..start + p.len()];
            p.chunks_mut(width).zip(s.chunks(width)).for_each(|(p, s)| softmax_row(s, p));
        });
        return (weights, None);
    }
    let ([weights, dropped], _) = cpu::par_blocks(scores.len(), block, |start, [p, y]| {
        let s = &scores[start..start + p.len()];
        let mut mask = KeepMask::from(seed, start, prob);
        for ((p, y), s) in p.chunks_mut(width).zip(y.chunks_mut(width)).zip(s.chunks(width)) {
            softmax_row(s, p);
            mask.drop_into(p, y);
        }
    });
    (weights, Some(dropped))
}

/// `values * keep / (1 - prob)`, the [`KeepMask`] over the flat index: the dropout's
/// forward, and (applied to the output's gradient) its backward.
fn drop_values(values: &[f32], prob: f32, seed: u64) -> Vec<f32> {
    let ([out], _) = cpu::par_blocks(values.len(), TASK_ELEMENTS, |start, [y]| {
        KeepMask::from(seed, start, prob).drop_into(&values[start..start + y.len()], y);
    });
    out
}

/// The gradient of the scores from the weights `P` and the gradient of the output `dY`.
fn backward_rows(weights: &[f32], output_grad: &[f32], width: usize, prob: f32, seed: u64) -> Vec<f32> {
    let block = rows_per_task(width) * width;
    let ([grad], _) = cpu::par_blocks(weights.len(), block, |start, [ds]| {
        let rows = start..start + ds.len();
        let (p, dy) = (&weights[rows.clone()], &output_grad[rows]);
        let mut mask = (prob > 0.0).then(|| KeepMask::from(seed, start, prob));
        for ((ds, p), dy) in ds.chunks_mut(width).zip(p.chunks(width)).zip(dy.chunks(width)) {
            // dP, written into dS first.
            match &mut mask {
                Some(mask) => mask.drop_into(dy, ds),
                None => ds.copy_from_slice(dy),
            }
            let dot = cpu::dot(ds, p);
            ds.iter_mut().zip(p).for_each(|(ds, &p)| *ds = p * (*ds - dot));
        }
    });
    grad
}

/// `(P, Y)` of [`forward_rows`] as tensors of backend `B`.
fn forward<B: RowMajor>(scores: FloatTensor<B>, prob: f32, seed: u64) -> (FloatTensor<B>, Option<FloatTensor<B>>) {
    let shape = scores.shape();
    let width = shape[shape.num_dims() - 1];
    let (weights, dropped) = B::with_values(scores, |s| forward_rows(s, width, prob, seed));
    (B::from_values(weights, shape.clone()), dropped.map(|y| B::from_values(y, shape)))
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedSoftmax: Backend {
    /// `dropout(softmax(scores))` over the last dimension, the mask drawn from `seed`
    /// (`prob` 0: no dropout).
    fn softmax_dropout(scores: FloatTensor<Self>, prob: f32, seed: u64) -> FloatTensor<Self>;

    /// `x * keep / (1 - prob)`, the mask drawn from `seed`.
    fn dropout(x: FloatTensor<Self>, prob: f32, seed: u64) -> FloatTensor<Self>;
}

/// [`FusedSoftmax::dropout`] on a CPU backend.
pub(crate) fn drop_tensor<B: RowMajor>(x: FloatTensor<B>, prob: f32, seed: u64) -> FloatTensor<B> {
    B::map_values(x, |x| drop_values(x, prob, seed))
}

/// The CPU backends (flex, ndarray): the row loops above.
impl<B: RowMajor> FusedSoftmax for B {
    fn softmax_dropout(scores: FloatTensor<B>, prob: f32, seed: u64) -> FloatTensor<B> {
        let (weights, dropped) = forward::<B>(scores, prob, seed);
        dropped.unwrap_or(weights)
    }

    fn dropout(x: FloatTensor<B>, prob: f32, seed: u64) -> FloatTensor<B> {
        drop_tensor::<B>(x, prob, seed)
    }
}

/// The dropout's backward node: it keeps the call's probability and seed, no tensor.
#[derive(Debug)]
struct DropoutBackward;

impl<B: RowMajor> Backward<B, 1> for DropoutBackward {
    type State = (f32, u64);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (prob, seed) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |output_grad| drop_tensor::<B>(output_grad, prob, seed));
    }
}

/// The backward node: it keeps `P` (shared with the output when there is no dropout) and
/// the call's dropout, nothing else.
#[derive(Debug)]
struct SoftmaxDropoutBackward;

impl<B: RowMajor> Backward<B, 1> for SoftmaxDropoutBackward {
    type State = (FloatTensor<B>, f32, u64);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (weights, prob, seed) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |output_grad| {
            let shape = weights.shape();
            let width = shape[shape.num_dims() - 1];
            let grad = B::with_values(weights, |p| B::with_values(output_grad, |dy| backward_rows(p, dy, width, prob, seed)));
            B::from_values(grad, shape)
        });
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedSoftmax for Autodiff<B, C> {
    fn softmax_dropout(scores: FloatTensor<Self>, prob: f32, seed: u64) -> FloatTensor<Self> {
        let (scores, node) = scores.into_parts();
        // Compute-bound: the node keeps `P` rather than recomputing it under checkpointing.
        match SoftmaxDropoutBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (weights, dropped) = forward::<B>(scores, prob, seed);
                let output = dropped.unwrap_or_else(|| weights.clone());
                prep.finish((weights, prob, seed), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::softmax_dropout(scores, prob, seed)),
        }
    }

    fn dropout(x: FloatTensor<Self>, prob: f32, seed: u64) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        match DropoutBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((prob, seed), drop_tensor::<B>(x, prob, seed)),
            OpsKind::UnTracked(prep) => prep.finish(B::dropout(x, prob, seed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric_checks::{assert_close, values};
    use burn::nn::DropoutConfig;
    use burn::tensor::Distribution;

    /// Scores with some masked entries (a padded key column and a fully masked row).
    fn scores(device: &Device, shape: [usize; 4]) -> Tensor<4> {
        device.seed(3);
        let scores = Tensor::<4>::random(shape, Distribution::Normal(0.0, 2.0), device);
        let [b, h, q, k] = shape;
        let masked: Vec<bool> = (0..b * h * q * k).map(|i| i % k == k - 1 || (i / k) % q == 1 && i / (q * k) == 0).collect();
        scores.mask_fill(Tensor::<4, Bool>::from_data(TensorData::new(masked, shape), device), -1.0e9)
    }

    /// Output and gradient of `sum(weights * g)` for fixed `g`, by the fused op and by burn's
    /// composed softmax, without dropout: equal, on both CPU backends and several shapes.
    #[test]
    fn the_fused_softmax_and_its_gradient_equal_the_composed_ones() {
        let devices = [Device::flex().autodiff(), Device::ndarray().autodiff()];
        for device in devices {
            for shape in [[1, 1, 1, 5], [2, 3, 4, 7], [1, 2, 33, 64]] {
                let g = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
                let run = |fused: bool| {
                    let s = scores(&device, shape).detach().require_grad();
                    let weights = if fused { softmax_dropout(s.clone(), None) } else { softmax(s.clone(), 3) };
                    let grads = (weights.clone() * g.clone()).sum().backward();
                    (values(weights), values(s.grad(&grads).unwrap()))
                };
                let ((w_fused, g_fused), (w_composed, g_composed)) = (run(true), run(false));
                assert_close(&w_fused, &w_composed, 1e-6, &format!("weights {shape:?}"));
                assert_close(&g_fused, &g_composed, 1e-5, &format!("gradient {shape:?}"));
            }
        }
    }

    /// With dropout the kept entries are `P / (1 - p)` and the rest 0; the gradient equals
    /// the composed computation `softmax(s) * mask / (1 - p)` with that same mask, which
    /// shows that the backward regenerates the forward's mask exactly.
    #[test]
    fn with_dropout_the_backward_regenerates_the_forwards_mask() {
        let device = Device::flex().autodiff();
        let shape = [2, 2, 16, 24];
        let dropout = DropoutConfig::new(0.3).init();
        let g = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let s = scores(&device, shape).detach().require_grad();
        let dropped = softmax_dropout(s.clone(), Some(&dropout));
        let grads = (dropped.clone() * g.clone()).sum().backward();
        let fused_grad = values(s.grad(&grads).unwrap());

        let weights = values(softmax(s.clone().detach(), 3));
        let dropped = values(dropped);
        let keep: Vec<f32> = dropped.iter().map(|&y| if y == 0.0 { 0.0 } else { 1.0 / 0.7 }).collect();
        for (y, (p, k)) in dropped.iter().zip(weights.iter().zip(&keep)) {
            assert!((y - p * k).abs() <= 1e-6 * (1.0 + y.abs()), "{y} vs {p} * {k}");
        }
        let dropped_share = keep.iter().filter(|&&k| k == 0.0).count() as f64 / keep.len() as f64;
        assert!((dropped_share - 0.3).abs() < 0.05, "{dropped_share}");

        let s2 = s.detach().require_grad();
        let mask = Tensor::<4>::from_data(TensorData::new(keep, shape), &device);
        let composed = softmax(s2.clone(), 3) * mask;
        let grads = (composed * g).sum().backward();
        assert_close(&fused_grad, &values(s2.grad(&grads).unwrap()), 1e-5, "gradient with dropout");
    }

    /// The same seed gives the same mask; the device's generator gives each call its own.
    #[test]
    fn dropout_masks_follow_the_device_seed() {
        let device = Device::flex().autodiff();
        let dropout = DropoutConfig::new(0.5).init();
        let s = Tensor::<4>::zeros([1, 1, 8, 8], &device);
        let draw = |seed| {
            device.seed(seed);
            let first = values(softmax_dropout(s.clone(), Some(&dropout)));
            (first, values(softmax_dropout(s.clone(), Some(&dropout))))
        };
        let (a1, a2) = draw(7);
        let (b1, _) = draw(7);
        assert_eq!(a1, b1);
        assert_ne!(a1, a2);
    }

    /// The dropout alone: kept elements are `x / (1 - p)`, the rest 0, about `p` of them,
    /// and the gradient is the same mask applied to the output's gradient.
    #[test]
    fn the_fused_dropout_scales_what_it_keeps_and_its_gradient_uses_the_same_mask() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let shape = [3, 50, 70];
        let layer = DropoutConfig::new(0.25).init();
        let x = Tensor::<3>::random(shape, Distribution::Uniform(1.0, 2.0), &device).require_grad();
        let g = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let y = dropout(x.clone(), &layer);
        let grads = (y.clone() * g.clone()).sum().backward();
        let (xs, ys, gs) = (values(x.clone()), values(y), values(g));
        let grad = values(x.grad(&grads).unwrap());
        let mut dropped = 0;
        for i in 0..xs.len() {
            let keep = ys[i] != 0.0;
            dropped += usize::from(!keep);
            let (expected_y, expected_grad) = if keep { (xs[i] / 0.75, gs[i] / 0.75) } else { (0.0, 0.0) };
            assert!((ys[i] - expected_y).abs() <= 1e-6 * expected_y.abs(), "{i}: {} vs {expected_y}", ys[i]);
            assert!((grad[i] - expected_grad).abs() <= 1e-6 * (1.0 + expected_grad.abs()), "{i}");
        }
        let share = dropped as f64 / xs.len() as f64;
        assert!((share - 0.25).abs() < 0.02, "{share}");
    }

    /// The mask of any stretch, applied in pieces of any length, is its definition: element
    /// `i` kept where half `i % 2` (low 16 bits first) of word `i / 2` of the ChaCha8 stream
    /// is below `(1 - p) * 65536`, element by element from `next_u32`.
    #[test]
    fn the_mask_of_any_stretch_is_its_definition_element_by_element() {
        let (seed, prob) = (11, 0.3f32);
        let keep = 1.0 - prob;
        let threshold = (f64::from(keep) * 65_536.0).round() as u32;
        let mut stream = random::stream(seed, 0);
        let words: Vec<u32> = (0..400).map(|_| stream.next_u32()).collect();
        let kept = |i: usize| {
            let word = words[i / 2];
            let half = if i.is_multiple_of(2) { word & 0xFFFF } else { word >> 16 };
            half < threshold
        };
        let x: Vec<f32> = (0..700).map(|i| 1.0 + i as f32).collect();
        for first in [0, 1, 2, 127, 128, 129, 255, 301] {
            for piece in [1, 3, 64, 127, 128, 129, 500] {
                let mut mask = KeepMask::from(seed, first, prob);
                let mut y = vec![f32::NAN; 700 - first];
                for (x, y) in x[first..].chunks(piece).zip(y.chunks_mut(piece)) {
                    mask.drop_into(x, y);
                }
                for (j, &y) in y.iter().enumerate() {
                    let i = first + j;
                    let expected = if kept(i) { x[i] * (1.0 / keep) } else { 0.0 };
                    assert_eq!(y, expected, "element {i} from {first} in pieces of {piece}");
                }
            }
        }
    }

    /// Without an autodiff device (evaluation) or with a frozen dropout there is no dropout.
    #[test]
    fn evaluation_has_no_dropout() {
        let dropout = DropoutConfig::new(0.5).init();
        let device = Device::flex();
        let s = scores(&device, [1, 2, 3, 9]);
        // Dropout at 0.5 would zero about half the weights and double the rest.
        assert_close(&values(softmax_dropout(s.clone(), Some(&dropout))), &values(softmax(s, 3)), 1e-6, "evaluation");
    }
}
