//! The diagonal linear recurrence of the recurrent and state-space layers, run over time:
//!
//! `h_t = a ⊙ h_{t-1} + b_t`, `h_{-1} = 0`,
//!
//! complex, with `a: [channels]` the same at every step and `b: [batch, len, channels]`;
//! it returns every `h_t`, `[batch, len, channels]`. Complex numbers are carried as
//! (real, imaginary) pairs of real tensors ([`Complex`]). LRU runs it over its states; S5
//! over its diagonalised modes.
//!
//! Two computations of the same numbers:
//!
//! - On the CPU backends (flex, ndarray; [`runs_natively`]): one fused operation that
//!   loops over time in order, the `O(len)` work of the recurrence, in parallel tasks over
//!   the batch and blocks of channels (the channels of a step lie side by side, so the
//!   inner loop is a vector loop). It has its own backward, which keeps the inputs' `a`
//!   and the output `h` and nothing else (derived below).
//! - On the other backends (wgpu, cuda): a log-depth parallel scan in burn's tensor ops
//!   ([`recurrence_by_doubling`]), `ceil(log2 len)` steps of `h <- h + a^s ⊙ (h moved s
//!   steps later)` for `s = 1, 2, 4, ...` (Hillis and Steele), which autodiff
//!   differentiates. `O(len log len)` work, but each step is one pass over the sequence
//!   that a GPU runs in parallel.
//!
//! The backward of the fused operation, for a real loss `L`, with the gradient of a
//! complex `z` written `dz = dL/dRe z + i dL/dIm z`: for `w = a z`,
//! `Re w = Re a Re z - Im a Im z`, `Im w = Re a Im z + Im a Re z`, so
//! `dL/dRe z = Re dw Re a + Im dw Im a` and `dL/dIm z = Im dw Re a - Re dw Im a`, that is
//! `dz = conj(a) dw`; and likewise `da = dw conj(z)`. `h_t` reaches the loss directly
//! (`g_t`, the output's gradient) and through `h_{t+1} = a h_t + b_{t+1}`, hence the
//! reverse-time recurrence
//!
//! `d_t = g_t + conj(a) ⊙ d_{t+1}`, `d_len = 0`; `db_t = d_t`; `da = sum_{batch, t} d_t ⊙ conj(h_{t-1})`,
//!
//! with `h_{-1} = 0`. Tests check both against autodiff of the doubling scan.
//!
//! Only what is read back in order is materialised: `a` and `h`, not `b`.
//!
//! The fused loops (this recurrence's and the selective scan's below) run with subnormal
//! numbers flushed to zero ([`crate::cpu::without_subnormals`]): a gradient carried back
//! through thousands of decays from the one position a classifier reads passes through
//! f32's subnormal range on its way to zero, where each operation takes the processor
//! about a hundred times as long (Mamba's top layer's backward scan took ten times its
//! forward at 4K tokens; LRU's and S5's likewise). What is flushed lies below anything an
//! f32 sum with a normal term keeps; on the runs checked the losses are the same bit for bit.
//!
//! Mamba's selective scan ([`selective_scan`]) is the real, time-varying counterpart, for
//! every example, channel `d` and state `n`:
//!
//! `h_t = exp(delta_t a) h_{t-1} + delta_t b_t x_t`, `y_t = sum_n c_t h_t`,
//!
//! with `delta, x: [batch, len, channels]`, `a: [channels, states]` and
//! `b, c: [batch, len, states]` (shared by the channels), returning `y` and never the
//! `[batch, len, channels, states]` states. Again two computations:
//!
//! - On the CPU backends one fused operation, a loop over time in parallel tasks over the
//!   batch and blocks of channels, each task carrying its block's `[width, states]` states.
//!   Its backward keeps the five inputs and the states at the start of every chunk of
//!   `CHUNK_STEPS` (128) steps, which the forward writes (`1 / 128` of the states); each
//!   task then takes its chunks from the last, recomputes a chunk's states and decays from
//!   the state at its start (`CHUNK_STEPS x width x states` numbers of each, in the core's
//!   cache) and runs the reverse-time recurrence below over the chunk.
//! - Elsewhere the doubling scan in burn's ops ([`selective_scan_by_doubling`]), over
//!   `[batch, len, channels, states]` tensors (`O(len log len)` work, `O(len channels
//!   states)` memory), differentiated by autodiff.
//!
//! The backward, per (example, channel, state), with `alpha_t = exp(delta_t a)` and `g_t`
//! the gradient of `y_t`: `h_t` reaches the loss through `y_t` and through `h_{t+1}`, so
//!
//! `dh_t = g_t c_t + alpha_{t+1} dh_{t+1}`, `dh_len = 0`,
//!
//! and then `dc_t = sum_d g_t h_t`, `da = sum_{batch, t} dh_t h_{t-1} alpha_t delta_t`,
//! `ddelta_t = sum_n (dh_t h_{t-1} alpha_t a + dh_t b_t x_t)`,
//! `db_t = sum_d dh_t delta_t x_t`, `dx_t = sum_n dh_t delta_t b_t` (`h_{-1} = 0`).
//! Tests check both computations against plain loops and the fused gradients against
//! autodiff through the doubling scan.

// ndarray is deprecated in burn, and kept selectable here.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::prelude::*;
use rayon::prelude::*;

use crate::cpu::{RowMajor, TASK_ELEMENTS, dot, exp, runs_natively, vectorised, without_subnormals};

/// A complex tensor as its real and imaginary parts, of the same shape.
#[derive(Clone, Debug)]
pub struct Complex<const D: usize> {
    pub re: Tensor<D>,
    pub im: Tensor<D>,
}

impl<const D: usize> Complex<D> {
    /// The time axis (dimension 1) reversed.
    pub fn flip_time(self) -> Self {
        Complex { re: self.re.flip([1]), im: self.im.flip([1]) }
    }
}

/// `h_t = a ⊙ h_{t-1} + b_t` from `h_{-1} = 0`, every step:
/// `a: [channels]`, `b: [batch, len, channels]` -> `h: [batch, len, channels]`.
///
/// The fused sequential loop on the CPU backends, [`recurrence_by_doubling`] elsewhere.
pub fn linear_recurrence(a: Complex<1>, b: Complex<3>) -> Complex<3> {
    recurrence(a, b, false)
}

/// The same recurrence run from the end, `h_t = a ⊙ h_{t+1} + b_t` from `h_len = 0`: the
/// backward direction of a bidirectional layer. On the CPU backends the fused loop runs
/// backwards in time (the same numbers as flipping `b`, scanning and flipping back, without
/// the copies of the flips); elsewhere it is exactly that.
pub fn linear_recurrence_from_end(a: Complex<1>, b: Complex<3>) -> Complex<3> {
    recurrence(a, b, true)
}

fn recurrence(a: Complex<1>, b: Complex<3>, from_end: bool) -> Complex<3> {
    if !(runs_natively(&b.re) && runs_natively(&a.re)) {
        return match from_end {
            false => recurrence_by_doubling(a, b),
            true => recurrence_by_doubling(a, b.flip_time()).flip_time(),
        };
    }
    let [batch, len, channels] = b.re.dims();
    let packed = Tensor::<4>::from_dispatch(<Dispatch as FusedScan>::diagonal_scan(
        a.re.into_dispatch(),
        a.im.into_dispatch(),
        b.re.into_dispatch(),
        b.im.into_dispatch(),
        from_end,
    ));
    let part = |index: usize| packed.clone().narrow(0, index, 1).reshape([batch, len, channels]);
    Complex { re: part(0), im: part(1) }
}

/// The same recurrence as a log-depth parallel scan in burn's ops: after the step of span
/// `s`, `h_t` holds `sum_{t - 2s < tau <= t} a^(t - tau) b_tau`, by adding `a^s` times the
/// entry `s` steps earlier (zeros before the start). `a: [channels]`,
/// `b: [batch, len, channels]` -> `[batch, len, channels]`.
pub fn recurrence_by_doubling(a: Complex<1>, b: Complex<3>) -> Complex<3> {
    let [batch, len, channels] = b.re.dims();
    let device = b.re.device();
    let mut h = b;
    // a^span, [1, 1, channels].
    let mut power = Complex { re: a.re.reshape([1, 1, channels]), im: a.im.reshape([1, 1, channels]) };
    let mut span = 1;
    while span < len {
        let earlier = |t: Tensor<3>| {
            let kept = t.slice([0..batch, 0..len - span, 0..channels]);
            Tensor::cat(vec![Tensor::zeros([batch, span, channels], &device), kept], 1)
        };
        let (moved_re, moved_im) = (earlier(h.re.clone()), earlier(h.im.clone()));
        let re = h.re + power.re.clone() * moved_re.clone() - power.im.clone() * moved_im.clone();
        let im = h.im + power.re.clone() * moved_im + power.im.clone() * moved_re;
        h = Complex { re, im };
        power = Complex { re: power.re.clone().square() - power.im.clone().square(), im: (power.re * power.im).mul_scalar(2.0) };
        span *= 2;
    }
    h
}

/// Channels per parallel task: enough steps of them to fill [`TASK_ELEMENTS`], in whole
/// cache lines (16 f32: a step's read of `b` then uses every byte it brings in), at most
/// all of them.
fn channels_per_task(len: usize, channels: usize) -> usize {
    const LINE: usize = 16;
    (TASK_ELEMENTS / len.max(1)).next_multiple_of(LINE).clamp(LINE, channels.next_multiple_of(LINE).max(LINE))
}

/// The tasks of a sequence loop: every (example, block of channels).
fn tasks(batch: usize, channels: usize, block: usize) -> Vec<(usize, std::ops::Range<usize>)> {
    (0..batch)
        .flat_map(|example| (0..channels.div_ceil(block)).map(move |k| (example, k * block..((k + 1) * block).min(channels))))
        .collect()
}

/// A shared output written by tasks at disjoint indices.
#[derive(Clone, Copy)]
struct Shared(*mut f32);

// SAFETY: the tasks write through it only at their own (example, channel block) indices,
// which no two tasks share.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// # Safety
    /// `index` lies within the output and no other task writes it.
    unsafe fn write(self, index: usize, value: f32) {
        unsafe { *self.0.add(index) = value }
    }
}

/// Step `k` of a scan over `len` steps: time `k`, or `len - 1 - k` from the end.
fn time_of(k: usize, len: usize, from_end: bool) -> usize {
    if from_end { len - 1 - k } else { k }
}

/// The forward loop: `h` as `[2, batch, len, channels]` row-major numbers (real parts,
/// then imaginary ones), run from the end when `from_end`.
fn forward_values(
    a_re: &[f32],
    a_im: &[f32],
    b_re: &[f32],
    b_im: &[f32],
    (batch, len): (usize, usize),
    from_end: bool,
) -> Vec<f32> {
    let channels = a_re.len();
    let size = batch * len * channels;
    let mut out = vec![0.0f32; 2 * size];
    let shared = Shared(out.as_mut_ptr());
    tasks(batch, channels, channels_per_task(len, channels)).into_par_iter().for_each(|(example, block)| {
        without_subnormals(|| {
            let width = block.len();
            let (ar, ai) = (&a_re[block.clone()], &a_im[block.clone()]);
            let (mut hr, mut hi) = (vec![0.0f32; width], vec![0.0f32; width]);
            for k in 0..len {
                let row = (example * len + time_of(k, len, from_end)) * channels + block.start;
                let (br, bi) = (&b_re[row..row + width], &b_im[row..row + width]);
                for j in 0..width {
                    let (r, i) = (hr[j], hi[j]);
                    hr[j] = ar[j] * r - ai[j] * i + br[j];
                    hi[j] = ar[j] * i + ai[j] * r + bi[j];
                }
                for j in 0..width {
                    // SAFETY: `row + j` is this task's (example, t, channel) entry.
                    unsafe {
                        shared.write(row + j, hr[j]);
                        shared.write(size + row + j, hi[j]);
                    }
                }
            }
        })
    });
    out
}

/// The backward loop (see the top comment): from `a`, the output `h` (`[2, batch, len,
/// channels]`) and its gradient `g` (same layout), returns `db` in `h`'s layout and
/// `da` as `(re, im)`, each `[channels]`. The steps are taken in the forward's order
/// reversed, so `from_end` runs them forwards in time.
fn backward_values(
    a_re: &[f32],
    a_im: &[f32],
    h: &[f32],
    g: &[f32],
    (batch, len): (usize, usize),
    from_end: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let channels = a_re.len();
    let size = batch * len * channels;
    let (h_re, h_im) = h.split_at(size);
    let (g_re, g_im) = g.split_at(size);
    let mut db = vec![0.0f32; 2 * size];
    let shared = Shared(db.as_mut_ptr());
    let partial: Vec<(std::ops::Range<usize>, Vec<f32>, Vec<f32>)> = tasks(batch, channels, channels_per_task(len, channels))
        .into_par_iter()
        .map(|(example, block)| {
            without_subnormals(|| {
                let width = block.len();
                let (ar, ai) = (&a_re[block.clone()], &a_im[block.clone()]);
                let (mut dr, mut di) = (vec![0.0f32; width], vec![0.0f32; width]);
                let (mut da_re, mut da_im) = (vec![0.0f32; width], vec![0.0f32; width]);
                for k in (0..len).rev() {
                    let row = (example * len + time_of(k, len, from_end)) * channels + block.start;
                    let (gr, gi) = (&g_re[row..row + width], &g_im[row..row + width]);
                    // d_t = g_t + conj(a) d_{t+1} (from the end: d_{t-1}).
                    for j in 0..width {
                        let (r, i) = (dr[j], di[j]);
                        dr[j] = gr[j] + ar[j] * r + ai[j] * i;
                        di[j] = gi[j] + ar[j] * i - ai[j] * r;
                    }
                    for j in 0..width {
                        // SAFETY: `row + j` is this task's (example, t, channel) entry.
                        unsafe {
                            shared.write(row + j, dr[j]);
                            shared.write(size + row + j, di[j]);
                        }
                    }
                    // da += d_t conj(h_{t-1}) (from the end: h_{t+1}), the state before this step.
                    if k > 0 {
                        let previous = (example * len + time_of(k - 1, len, from_end)) * channels + block.start;
                        let (pr, pi) = (&h_re[previous..previous + width], &h_im[previous..previous + width]);
                        for j in 0..width {
                            da_re[j] += dr[j] * pr[j] + di[j] * pi[j];
                            da_im[j] += di[j] * pr[j] - dr[j] * pi[j];
                        }
                    }
                }
                (block, da_re, da_im)
            })
        })
        .collect();
    let (mut da_re, mut da_im) = (vec![0.0f32; channels], vec![0.0f32; channels]);
    for (block, re, im) in partial {
        da_re[block.clone()].iter_mut().zip(&re).for_each(|(total, part)| *total += part);
        da_im[block].iter_mut().zip(&im).for_each(|(total, part)| *total += part);
    }
    (db, da_re, da_im)
}

/// The forward on a CPU backend: `[2, batch, len, channels]`.
fn forward<B: RowMajor>(
    a_re: FloatTensor<B>,
    a_im: FloatTensor<B>,
    b_re: FloatTensor<B>,
    b_im: FloatTensor<B>,
    from_end: bool,
) -> FloatTensor<B> {
    let shape = b_re.shape();
    let (batch, len, channels) = (shape[0], shape[1], shape[2]);
    let values = B::with_values(a_re, |ar| {
        B::with_values(a_im, |ai| {
            B::with_values(b_re, |br| B::with_values(b_im, |bi| forward_values(ar, ai, br, bi, (batch, len), from_end)))
        })
    });
    B::from_values(values, Shape::from([2, batch, len, channels]))
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedScan: Backend {
    /// `h_t = a h_{t-1} + b_t` (complex, `a: [channels]` real and imaginary parts,
    /// `b: [batch, len, channels]` likewise) -> `[2, batch, len, channels]`, the real
    /// parts of `h` then the imaginary ones; `from_end`: `h_t = a h_{t+1} + b_t`.
    fn diagonal_scan(
        a_re: FloatTensor<Self>,
        a_im: FloatTensor<Self>,
        b_re: FloatTensor<Self>,
        b_im: FloatTensor<Self>,
        from_end: bool,
    ) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedScan for B {
    fn diagonal_scan(
        a_re: FloatTensor<B>,
        a_im: FloatTensor<B>,
        b_re: FloatTensor<B>,
        b_im: FloatTensor<B>,
        from_end: bool,
    ) -> FloatTensor<B> {
        forward::<B>(a_re, a_im, b_re, b_im, from_end)
    }
}

/// The backward node: it keeps `a` and the output `h`.
#[derive(Debug)]
struct ScanBackward {
    from_end: bool,
}

impl<B: RowMajor> Backward<B, 4> for ScanBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (a_re, a_im, h) = ops.state;
        let output_grad = grads.consume::<B>(&ops.node);
        let shape = h.shape();
        let (batch, len, channels) = (shape[1], shape[2], shape[3]);
        let (db, da_re, da_im) = B::with_values(a_re, |ar| {
            B::with_values(a_im, |ai| {
                B::with_values(h, |h| B::with_values(output_grad, |g| backward_values(ar, ai, h, g, (batch, len), self.from_end)))
            })
        });
        let (db_re, db_im) = db.split_at(batch * len * channels);
        let part = |values: &[f32]| B::from_values(values.to_vec(), Shape::from([batch, len, channels]));
        let [a_re_node, a_im_node, b_re_node, b_im_node] = ops.parents;
        let gradients = [
            (a_re_node, B::from_values(da_re, Shape::from([channels]))),
            (a_im_node, B::from_values(da_im, Shape::from([channels]))),
            (b_re_node, part(db_re)),
            (b_im_node, part(db_im)),
        ];
        for (node, gradient) in gradients {
            if let Some(node) = node {
                grads.register::<B>(node.id, gradient);
            }
        }
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedScan for Autodiff<B, C> {
    fn diagonal_scan(
        a_re: FloatTensor<Self>,
        a_im: FloatTensor<Self>,
        b_re: FloatTensor<Self>,
        b_im: FloatTensor<Self>,
        from_end: bool,
    ) -> FloatTensor<Self> {
        let (a_re, a_re_node) = a_re.into_parts();
        let (a_im, a_im_node) = a_im.into_parts();
        let (b_re, b_re_node) = b_re.into_parts();
        let (b_im, b_im_node) = b_im.into_parts();
        // Compute-bound: the node keeps `h` rather than rerunning the loop.
        let node = ScanBackward { from_end };
        match node.prepare::<C>([a_re_node, a_im_node, b_re_node, b_im_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let h = forward::<B>(a_re.clone(), a_im.clone(), b_re, b_im, from_end);
                prep.finish((a_re, a_im, h.clone()), h)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward::<B>(a_re, a_im, b_re, b_im, from_end)),
        }
    }
}

// The selective scan.

/// Mamba's selective scan, real and time-varying: for every example, channel `d` and
/// state `n`, from `h_{-1} = 0`,
///
/// `h_t[d, n] = exp(delta_t[d] a[d, n]) h_{t-1}[d, n] + delta_t[d] b_t[n] x_t[d]`,
/// `y_t[d] = sum_n c_t[n] h_t[d, n]`,
///
/// with `delta, x: [batch, len, channels]`, `a: [channels, states]`,
/// `b, c: [batch, len, states]` -> `y: [batch, len, channels]`.
///
/// The fused loop on the CPU backends (no `[batch, len, channels, states]` tensor is
/// made), [`selective_scan_by_doubling`] elsewhere.
pub fn selective_scan(delta: Tensor<3>, a: Tensor<2>, b: Tensor<3>, c: Tensor<3>, x: Tensor<3>) -> Tensor<3> {
    let native = runs_natively(&delta) && runs_natively(&a) && runs_natively(&b) && runs_natively(&c) && runs_natively(&x);
    if !native {
        return selective_scan_by_doubling(delta, a, b, c, x);
    }
    Tensor::<3>::from_dispatch(<Dispatch as FusedSelectiveScan>::selective_scan(
        delta.into_dispatch(),
        a.into_dispatch(),
        b.into_dispatch(),
        c.into_dispatch(),
        x.into_dispatch(),
    ))
}

/// The selective scan in burn's ops, as a log-depth parallel scan over the
/// `[batch, len, channels, states]` decays `exp(delta_t a)` and inputs `delta_t b_t x_t`:
/// after the step of span `s`, `h_t` holds the sum over the `2s` latest steps and
/// `decay_t` the product of their decays, by `h_t += decay_t h_{t-s}`,
/// `decay_t *= decay_{t-s}` (zeros and ones before the start). Same shapes as
/// [`selective_scan`].
pub fn selective_scan_by_doubling(delta: Tensor<3>, a: Tensor<2>, b: Tensor<3>, c: Tensor<3>, x: Tensor<3>) -> Tensor<3> {
    let [batch, len, channels] = x.dims();
    let states = a.dims()[1];
    let shape = [batch, len, channels, states];
    let device = x.device();
    let per_channel = |t: Tensor<3>| t.reshape([batch, len, channels, 1]).expand(shape);
    let per_state = |t: Tensor<3>| t.reshape([batch, len, 1, states]).expand(shape);
    let mut decay = (per_channel(delta.clone()) * a.reshape([1, 1, channels, states]).expand(shape)).exp();
    let mut h = per_channel(delta * x) * per_state(b);
    let mut span = 1;
    while span < len {
        let earlier = |t: Tensor<4>, before: Tensor<4>| Tensor::cat(vec![before, t.narrow(1, 0, len - span)], 1);
        let moved = earlier(h.clone(), Tensor::zeros([batch, span, channels, states], &device));
        h = h + decay.clone() * moved;
        if 2 * span < len {
            decay = decay.clone() * earlier(decay, Tensor::ones([batch, span, channels, states], &device));
        }
        span *= 2;
    }
    (h * per_state(c)).sum_dim(3).reshape([batch, len, channels])
}

/// The selective scan's inputs as row-major numbers: `delta`, `a`, `b`, `c`, `x`.
type ScanInputs<'a> = (&'a [f32], &'a [f32], &'a [f32], &'a [f32], &'a [f32]);

/// The sizes of a selective scan: `[batch, len, channels]` and the states per channel.
#[derive(Clone, Copy)]
struct ScanSizes {
    batch: usize,
    len: usize,
    channels: usize,
    states: usize,
}

/// The fewest channels of a selective scan's task: the loops over them are vectorised 8
/// wide and unrolled 4 times in the AVX2 build, which a block of fewer than 32 leaves to
/// the scalar remainder.
const SELECTIVE_WIDTH: usize = 32;

impl ScanSizes {
    /// The tasks: every (example, block of channels), a block holding about
    /// [`TASK_ELEMENTS`] inputs over the whole length, in whole cache lines of channels
    /// (the inner loops run over a block's channels), `states` times as many states.
    fn tasks(self) -> Vec<(usize, std::ops::Range<usize>)> {
        let width = channels_per_task(self.len, self.channels).max(SELECTIVE_WIDTH).min(self.channels.max(1));
        tasks(self.batch, self.channels, width)
    }
}

/// One task's block of channels, laid out for vector loops over the channels: the
/// block's `a` transposed, `[states, width]`, and its range.
struct Block {
    channels: std::ops::Range<usize>,
    a: Vec<f32>,
}

impl Block {
    fn new(a: &[f32], channels: std::ops::Range<usize>, states: usize) -> Block {
        let a = (0..states).flat_map(|n| channels.clone().map(move |d| a[d * states + n])).collect();
        Block { channels, a }
    }

    fn width(&self) -> usize {
        self.channels.len()
    }
}

/// One step of the forward recurrence for the channels of `block` at step `t` of
/// `example`: updates their states `h` (`[states, width]`, the channels side by side so
/// that the inner loops run over them) and writes each channel's `y_t` into `y`
/// (`[width]`).
#[inline(always)]
fn selective_step(
    (delta, b, c, x): (&[f32], &[f32], &[f32], &[f32]),
    sizes: ScanSizes,
    (example, t): (usize, usize),
    block: &Block,
    h: &mut [f32],
    y: &mut [f32],
) {
    let (states, width) = (sizes.states, block.width());
    let row = (example * sizes.len + t) * sizes.channels + block.channels.start;
    let step = (example * sizes.len + t) * states;
    // Slices of exactly `width` numbers, so that the loops below need no bounds checks
    // and vectorise.
    let (dt, x_t, y) = (&delta[row..row + width], &x[row..row + width], &mut y[..width]);
    y.fill(0.0);
    for n in 0..states {
        let (a_n, h_n) = (&block.a[n * width..(n + 1) * width], &mut h[n * width..(n + 1) * width]);
        let (b_n, c_n) = (b[step + n], c[step + n]);
        for j in 0..width {
            h_n[j] = exp(dt[j] * a_n[j]) * h_n[j] + dt[j] * x_t[j] * b_n;
            y[j] += c_n * h_n[j];
        }
    }
}

/// The states of one step, as [`selective_step`] computes them but without the output:
/// from the states `before` to `after` (both `[states, width]`), writing the decays
/// `exp(delta_t a)` into `decay` (`[states, width]`) for the reverse recurrence.
#[inline(always)]
fn selective_states(
    (delta, b, x): (&[f32], &[f32], &[f32]),
    sizes: ScanSizes,
    (example, t): (usize, usize),
    block: &Block,
    (before, after, decay): (&[f32], &mut [f32], &mut [f32]),
) {
    let (states, width) = (sizes.states, block.width());
    let row = (example * sizes.len + t) * sizes.channels + block.channels.start;
    let step = (example * sizes.len + t) * states;
    let (dt, x_t) = (&delta[row..row + width], &x[row..row + width]);
    for n in 0..states {
        let at = n * width..(n + 1) * width;
        // Each exactly `width` long, so that the loop below has no bounds checks.
        let (a_n, before_n) = (&block.a[at.clone()][..width], &before[at.clone()][..width]);
        let (after_n, decay_n) = (&mut after[at.clone()][..width], &mut decay[at][..width]);
        let b_n = b[step + n];
        for j in 0..width {
            decay_n[j] = exp(dt[j] * a_n[j]);
            after_n[j] = decay_n[j] * before_n[j] + dt[j] * x_t[j] * b_n;
        }
    }
}

/// The read-only operands of [`reverse_state`]: the step's `delta`, `x` and output
/// gradient (`[width]` each), then the state's `a`, `h_{t-1}` and decay `exp(delta_t a)`
/// (`[width]` each) and its `b_t`, `c_t`.
type ReverseInputs<'a> = ((&'a [f32], &'a [f32], &'a [f32]), (&'a [f32], &'a [f32], &'a [f32], f32, f32));

/// What [`reverse_state`] updates: the carry, `da`, `ddelta_t`, `dx_t` and `dh_t`
/// (`[width]` each).
type ReverseOutputs<'a> = (&'a mut [f32], &'a mut [f32], &'a mut [f32], &'a mut [f32], &'a mut [f32]);

/// One state's reverse-time step at step `t` over a block's channels (see the top
/// comment): updates the carry `exp(delta_{t+1} a) dh_{t+1}` to `exp(delta_t a) dh_t`,
/// adds the state's terms to `da`, `ddelta_t`, `dx_t`, and writes `dh_t` (`[width]` each).
#[inline(always)]
fn reverse_state(read: ReverseInputs, (carry_n, d_a_n, d_delta_t, d_x_t, d_h): ReverseOutputs) {
    let width = read.0.0.len();
    let whole = width - width % LANES;
    for j in (0..whole).step_by(LANES) {
        reverse_lanes::<LANES>(read, j, (carry_n, d_a_n, d_delta_t, d_x_t, d_h));
    }
    for j in whole..width {
        reverse_lanes::<1>(read, j, (carry_n, d_a_n, d_delta_t, d_x_t, d_h));
    }
}

/// [`reverse_state`] for the `L` channels from `j`: every operand read into an array
/// first and every result written back last, so that the compiler, which cannot tell the
/// slices apart, has no load to move past a store and makes each array a vector register.
#[inline(always)]
fn reverse_lanes<const L: usize>(
    ((dt, x_t, g_t), (a_n, before_n, decay_n, b_n, c_n)): ReverseInputs,
    j: usize,
    (carry_n, d_a_n, d_delta_t, d_x_t, d_h): ReverseOutputs,
) {
    let lanes = |values: &[f32]| -> [f32; L] { values[j..j + L].try_into().expect("L numbers") };
    let (dt, x_t, g_t, a_n, before_n, decay) = (lanes(dt), lanes(x_t), lanes(g_t), lanes(a_n), lanes(before_n), lanes(decay_n));
    let (mut carry, mut d_a, mut d_delta, mut d_x) = (lanes(carry_n), lanes(d_a_n), lanes(d_delta_t), lanes(d_x_t));
    let mut d_h_t = [0.0f32; L];
    for i in 0..L {
        // dL/dh_t: read out by c_t, and carried into h_{t+1}.
        let d_h_i = g_t[i] * c_n + carry[i];
        // Through the decay exp(delta a): a decay (for delta), delta decay (for a).
        let through_decay = d_h_i * before_n[i] * decay[i];
        d_a[i] += through_decay * dt[i];
        // Through the input delta b x.
        d_delta[i] += through_decay * a_n[i] + d_h_i * b_n * x_t[i];
        d_x[i] += d_h_i * dt[i] * b_n;
        carry[i] = decay[i] * d_h_i;
        d_h_t[i] = d_h_i;
    }
    carry_n[j..j + L].copy_from_slice(&carry);
    d_a_n[j..j + L].copy_from_slice(&d_a);
    d_delta_t[j..j + L].copy_from_slice(&d_delta);
    d_x_t[j..j + L].copy_from_slice(&d_x);
    d_h[j..j + L].copy_from_slice(&d_h_t);
}

/// Vector lanes of the AVX2 build (8 f32).
const LANES: usize = 8;

/// Steps in a chunk of the selective scan's backward: the forward keeps the state at the
/// start of every chunk, and the backward recomputes one chunk's states (and decays) at a
/// time from it, `CHUNK_STEPS x states x width` numbers of each that stay in the core's
/// cache while the reverse recurrence reads them back.
const CHUNK_STEPS: usize = 128;

/// The forward loop: `y` as `[batch, len, channels]` row-major numbers and, when
/// `keep_starts`, the state at the start of every chunk of [`CHUNK_STEPS`] steps
/// (`h_{t-1}` for `t` a multiple of it; zeros for the first) in [`chunk_starts_at`]'s
/// layout (empty otherwise).
fn selective_forward_values(inputs: ScanInputs, sizes: ScanSizes, keep_starts: bool) -> (Vec<f32>, Vec<f32>) {
    let (delta, a, b, c, x) = inputs;
    let (len, channels, states) = (sizes.len, sizes.channels, sizes.states);
    let mut y = vec![0.0f32; sizes.batch * len * channels];
    let mut starts = vec![0.0f32; if keep_starts { sizes.batch * channels * len.div_ceil(CHUNK_STEPS) * states } else { 0 }];
    let (shared, shared_starts) = (Shared(y.as_mut_ptr()), Shared(starts.as_mut_ptr()));
    sizes.tasks().into_par_iter().for_each(|(example, channels_of_task)| {
        vectorised(|| {
            without_subnormals(|| {
                let start_of_task = chunk_starts_at(sizes, example, channels_of_task.start);
                let block = Block::new(a, channels_of_task, states);
                let width = block.width();
                let (mut h, mut y_t) = (vec![0.0f32; states * width], vec![0.0f32; width]);
                for t in 0..len {
                    if keep_starts && t % CHUNK_STEPS == 0 {
                        let at = start_of_task + t / CHUNK_STEPS * h.len();
                        for (i, &value) in h.iter().enumerate() {
                            // SAFETY: `at + i` lies in this task's region of the chunk starts.
                            unsafe { shared_starts.write(at + i, value) };
                        }
                    }
                    selective_step((delta, b, c, x), sizes, (example, t), &block, &mut h, &mut y_t);
                    let row = (example * len + t) * channels + block.channels.start;
                    for (j, &value) in y_t.iter().enumerate() {
                        // SAFETY: `row + j` is this task's (example, t, channel) entry.
                        unsafe { shared.write(row + j, value) };
                    }
                }
            })
        })
    });
    (y, starts)
}

/// Where the chunk starts of the task over `example` and the channels from `first` lie:
/// each task's are `[chunks, states, width]` (its channels side by side, as its states),
/// at `(example channels + first) chunks states`, so that the tasks' regions tile
/// `[batch, channels, chunks, states]` numbers.
fn chunk_starts_at(sizes: ScanSizes, example: usize, first: usize) -> usize {
    (example * sizes.channels + first) * sizes.len.div_ceil(CHUNK_STEPS) * sizes.states
}

/// The gradients of the selective scan's inputs, each in its input's layout.
struct SelectiveGradients {
    delta: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    x: Vec<f32>,
}

/// What one task of the backward gives back for the sums over tasks: its example, its
/// channels, its share of `da` (`[states, width]`) and of `db`, `dc` (`[len, states]`).
type TaskShare = (usize, std::ops::Range<usize>, Vec<f32>, Vec<f32>, Vec<f32>);

/// The backward loop (see the top comment), from the inputs, the forward's chunk starts
/// ([`selective_forward_values`]) and the output's gradient `g` (`[batch, len,
/// channels]`). Each task runs its chunks from the last: it recomputes a chunk's states
/// and decays from the state kept at its start (`[CHUNK_STEPS, states, width]` each,
/// reused chunk after chunk), then runs the reverse-time recurrence over the chunk.
fn selective_backward_values(inputs: ScanInputs, starts: &[f32], g: &[f32], sizes: ScanSizes) -> SelectiveGradients {
    let (delta, a, b, c, x) = inputs;
    let ScanSizes { batch, len, channels, states } = sizes;
    let mut d_delta = vec![0.0f32; batch * len * channels];
    let mut d_x = vec![0.0f32; batch * len * channels];
    let (delta_out, x_out) = (Shared(d_delta.as_mut_ptr()), Shared(d_x.as_mut_ptr()));
    let partial: Vec<TaskShare> = sizes
        .tasks()
        .into_par_iter()
        .map(|(example, channels_of_task)| {
            vectorised(|| {
                without_subnormals(|| {
                    let start_of_task = chunk_starts_at(sizes, example, channels_of_task.start);
                    let block = Block::new(a, channels_of_task, states);
                    let width = block.width();
                    let size = states * width;
                    let chunk_len = CHUNK_STEPS.min(len);
                    let (mut kept, mut decays) = (vec![0.0f32; chunk_len * size], vec![0.0f32; chunk_len * size]);
                    // exp(delta_{t+1} a) dL/dh_{t+1}, what step t + 1 hands back to step t.
                    let mut carry = vec![0.0f32; size];
                    let mut d_a = vec![0.0f32; size];
                    let (mut d_b, mut d_c) = (vec![0.0f32; len * states], vec![0.0f32; len * states]);
                    let (mut d_delta_t, mut d_x_t) = (vec![0.0f32; width], vec![0.0f32; width]);
                    let (mut d_h, mut drive) = (vec![0.0f32; width], vec![0.0f32; width]);
                    for chunk in (0..len.div_ceil(CHUNK_STEPS)).rev() {
                        let first = chunk * CHUNK_STEPS;
                        let steps = first..(first + CHUNK_STEPS).min(len);
                        // h_{first - 1}, kept by the forward.
                        let start = &starts[start_of_task + chunk * size..start_of_task + (chunk + 1) * size];
                        for t in steps.clone() {
                            let k = t - first;
                            let (done, rest) = kept.split_at_mut(k * size);
                            let before = if k == 0 { start } else { &done[(k - 1) * size..] };
                            let decay = &mut decays[k * size..(k + 1) * size];
                            selective_states((delta, b, x), sizes, (example, t), &block, (before, &mut rest[..size], decay));
                        }
                        for t in steps.rev() {
                            let k = t - first;
                            let row = (example * len + t) * channels + block.channels.start;
                            let step = (example * len + t) * states;
                            // Slices of exactly `width` numbers: no bounds checks in the loop over them.
                            let (dt, x_t, g_t) = (&delta[row..row + width], &x[row..row + width], &g[row..row + width]);
                            let (d_delta_t, d_x_t) = (&mut d_delta_t[..width], &mut d_x_t[..width]);
                            let (d_h, drive) = (&mut d_h[..width], &mut drive[..width]);
                            let (h_t, decay_t) = (&kept[k * size..(k + 1) * size], &decays[k * size..(k + 1) * size]);
                            let h_before = if k > 0 { &kept[(k - 1) * size..k * size] } else { start };
                            d_delta_t.fill(0.0);
                            d_x_t.fill(0.0);
                            drive.iter_mut().enumerate().for_each(|(j, v)| *v = dt[j] * x_t[j]);
                            for n in 0..states {
                                let at = n * width..(n + 1) * width;
                                // Each exactly `width` long, so that the loop below has no bounds checks.
                                let (a_n, h_n, before_n) = (&block.a[at.clone()], &h_t[at.clone()], &h_before[at.clone()]);
                                let (a_n, h_n, before_n, decay_n) =
                                    (&a_n[..width], &h_n[..width], &before_n[..width], &decay_t[at.clone()][..width]);
                                let (carry_n, d_a_n) = (&mut carry[at.clone()][..width], &mut d_a[at][..width]);
                                let read = ((dt, x_t, g_t), (a_n, before_n, decay_n, b[step + n], c[step + n]));
                                reverse_state(read, (carry_n, d_a_n, d_delta_t, d_x_t, d_h));
                                // The channels' sums: dc_t = sum_d g_t h_t, db_t = sum_d dh_t delta_t x_t.
                                d_c[t * states + n] = dot(g_t, h_n);
                                d_b[t * states + n] = dot(d_h, drive);
                            }
                            for j in 0..width {
                                // SAFETY: `row + j` is this task's (example, t, channel) entry.
                                unsafe {
                                    delta_out.write(row + j, d_delta_t[j]);
                                    x_out.write(row + j, d_x_t[j]);
                                }
                            }
                        }
                    }
                    (example, block.channels, d_a, d_b, d_c)
                })
            })
        })
        .collect();
    // Sum the tasks' shares: of `a` over the examples, of `b` and `c` over the blocks.
    let mut d_a = vec![0.0f32; channels * states];
    let (mut d_b, mut d_c) = (vec![0.0f32; batch * len * states], vec![0.0f32; batch * len * states]);
    for (example, block, a_part, b_part, c_part) in partial {
        let width = block.len();
        for (j, d) in block.enumerate() {
            for n in 0..states {
                d_a[d * states + n] += a_part[n * width + j];
            }
        }
        let add = |total: &mut [f32], part: &[f32]| total.iter_mut().zip(part).for_each(|(total, part)| *total += part);
        add(&mut d_b[example * len * states..(example + 1) * len * states], &b_part);
        add(&mut d_c[example * len * states..(example + 1) * len * states], &c_part);
    }
    SelectiveGradients { delta: d_delta, a: d_a, b: d_b, c: d_c, x: d_x }
}

/// The sizes of a selective scan from its `x` and `a`.
fn selective_sizes<B: Backend>(x: &FloatTensor<B>, a: &FloatTensor<B>) -> ScanSizes {
    let (x, a) = (x.shape(), a.shape());
    ScanSizes { batch: x[0], len: x[1], channels: x[2], states: a[1] }
}

/// The forward on a CPU backend: `y: [batch, len, channels]` and, when `keep_starts`, the
/// chunk starts for the backward (a 1-d tensor; empty otherwise).
fn selective_forward<B: RowMajor>(
    delta: FloatTensor<B>,
    a: FloatTensor<B>,
    b: FloatTensor<B>,
    c: FloatTensor<B>,
    x: FloatTensor<B>,
    keep_starts: bool,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let sizes = selective_sizes::<B>(&x, &a);
    let (y, starts) =
        B::with_all([delta, a, b, c, x], |[delta, a, b, c, x]| selective_forward_values((delta, a, b, c, x), sizes, keep_starts));
    let starts_len = starts.len();
    (B::from_values(y, Shape::from([sizes.batch, sizes.len, sizes.channels])), B::from_values(starts, Shape::from([starts_len])))
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedSelectiveScan: Backend {
    /// Mamba's selective scan ([`selective_scan`]): `delta, x: [batch, len, channels]`,
    /// `a: [channels, states]`, `b, c: [batch, len, states]` -> `[batch, len, channels]`.
    fn selective_scan(
        delta: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        x: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedSelectiveScan for B {
    fn selective_scan(
        delta: FloatTensor<B>,
        a: FloatTensor<B>,
        b: FloatTensor<B>,
        c: FloatTensor<B>,
        x: FloatTensor<B>,
    ) -> FloatTensor<B> {
        selective_forward::<B>(delta, a, b, c, x, false).0
    }
}

/// The backward node of the selective scan: it keeps the five inputs and the state at the
/// start of every chunk of [`CHUNK_STEPS`] steps (the backward recomputes the others, one
/// chunk of one block of channels at a time).
#[derive(Debug)]
struct SelectiveScanBackward;

impl<B: RowMajor> Backward<B, 5> for SelectiveScanBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (delta, a, b, c, x, starts) = ops.state;
        let output_grad = grads.consume::<B>(&ops.node);
        let sizes = selective_sizes::<B>(&x, &a);
        let found = B::with_all([delta, a, b, c, x, starts, output_grad], |[delta, a, b, c, x, starts, g]| {
            selective_backward_values((delta, a, b, c, x), starts, g, sizes)
        });
        let ScanSizes { batch, len, channels, states } = sizes;
        let [delta_node, a_node, b_node, c_node, x_node] = ops.parents;
        let gradients = [
            (delta_node, found.delta, Shape::from([batch, len, channels])),
            (a_node, found.a, Shape::from([channels, states])),
            (b_node, found.b, Shape::from([batch, len, states])),
            (c_node, found.c, Shape::from([batch, len, states])),
            (x_node, found.x, Shape::from([batch, len, channels])),
        ];
        for (node, values, shape) in gradients {
            if let Some(node) = node {
                grads.register::<B>(node.id, B::from_values(values, shape));
            }
        }
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedSelectiveScan for Autodiff<B, C> {
    fn selective_scan(
        delta: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        x: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (delta, delta_node) = delta.into_parts();
        let (a, a_node) = a.into_parts();
        let (b, b_node) = b.into_parts();
        let (c, c_node) = c.into_parts();
        let (x, x_node) = x.into_parts();
        // The node keeps the inputs, `O(len channels)`, and the chunk starts, `O(len
        // channels states / CHUNK_STEPS)`, not the `O(len channels states)` states, which
        // the backward recomputes.
        match SelectiveScanBackward.prepare::<C>([delta_node, a_node, b_node, c_node, x_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, starts) = selective_forward::<B>(delta.clone(), a.clone(), b.clone(), c.clone(), x.clone(), true);
                prep.finish((delta, a, b, c, x, starts), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(selective_forward::<B>(delta, a, b, c, x, false).0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric_checks::{assert_close, values};
    use burn::tensor::Distribution;

    /// The recurrence in plain f64 loops: `a` as `(re, im)` per channel, `b` as
    /// `[batch, len, channels]` parts -> `h` as `(re, im)` parts.
    fn plain_recurrence(a: (&[f32], &[f32]), b: (&[f32], &[f32]), batch: usize, len: usize) -> (Vec<f32>, Vec<f32>) {
        let channels = a.0.len();
        let (mut re, mut im) = (vec![0.0f32; b.0.len()], vec![0.0f32; b.0.len()]);
        for example in 0..batch {
            for c in 0..channels {
                let (ar, ai) = (a.0[c] as f64, a.1[c] as f64);
                let (mut hr, mut hi) = (0.0f64, 0.0f64);
                for t in 0..len {
                    let i = (example * len + t) * channels + c;
                    (hr, hi) = (ar * hr - ai * hi + b.0[i] as f64, ar * hi + ai * hr + b.1[i] as f64);
                    (re[i], im[i]) = (hr as f32, hi as f32);
                }
            }
        }
        (re, im)
    }

    /// `a` inside the unit disc (moduli in [0.5, 0.99], any phase), `b` standard normal.
    fn inputs(device: &Device, batch: usize, len: usize, channels: usize) -> (Complex<1>, Complex<3>) {
        let modulus = Tensor::<1>::random([channels], Distribution::Uniform(0.5, 0.99), device);
        let phase = Tensor::<1>::random([channels], Distribution::Uniform(-3.1, 3.1), device);
        let a = Complex { re: modulus.clone() * phase.clone().cos(), im: modulus * phase.sin() };
        let normal = || Tensor::<3>::random([batch, len, channels], Distribution::Normal(0.0, 1.0), device);
        (a, Complex { re: normal(), im: normal() })
    }

    /// Ragged sizes: one step, lengths that are not powers of two, channels that are not a
    /// multiple of the vector width, and more channels than one task takes.
    const SIZES: [(usize, usize, usize); 5] = [(1, 1, 3), (2, 7, 5), (3, 33, 9), (1, 100, 1), (2, 17, 300)];

    #[test]
    fn the_fused_and_the_doubling_recurrence_equal_plain_loops() {
        for device in [Device::flex(), Device::ndarray()] {
            device.seed(91);
            for (batch, len, channels) in SIZES {
                let (a, b) = inputs(&device, batch, len, channels);
                let (a_re, a_im) = (values(a.re.clone()), values(a.im.clone()));
                let expected = plain_recurrence((&a_re, &a_im), (&values(b.re.clone()), &values(b.im.clone())), batch, len);
                let what = format!("batch {batch}, len {len}, channels {channels}");
                let fused = linear_recurrence(a.clone(), b.clone());
                assert_close(&values(fused.re), &expected.0, 1e-4, &format!("fused, real, {what}"));
                assert_close(&values(fused.im), &expected.1, 1e-4, &format!("fused, imaginary, {what}"));
                let doubled = recurrence_by_doubling(a.clone(), b.clone());
                assert_close(&values(doubled.re), &expected.0, 1e-4, &format!("doubling, real, {what}"));
                assert_close(&values(doubled.im), &expected.1, 1e-4, &format!("doubling, imaginary, {what}"));
                // From the end: the loop run backwards in time gives exactly the forward loop
                // over the reversed sequence, reversed.
                let from_end = linear_recurrence_from_end(a.clone(), b.clone());
                let by_flips = linear_recurrence(a, b.flip_time()).flip_time();
                assert_eq!(values(from_end.re), values(by_flips.re), "from the end, real, {what}");
                assert_eq!(values(from_end.im), values(by_flips.im), "from the end, imaginary, {what}");
            }
        }
    }

    /// The fused backward (the reverse-time recurrence) against autodiff through the
    /// doubling scan: the gradients of `a` and `b`, both parts, of
    /// `sum(h_re * g_re + h_im * g_im)` for random `g`.
    #[test]
    fn the_fused_gradients_equal_autodiff_through_the_doubling_scan() {
        for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
            device.seed(92);
            for (batch, len, channels) in SIZES {
                let (a, b) = inputs(&device, batch, len, channels);
                let g_re = Tensor::<3>::random([batch, len, channels], Distribution::Normal(0.0, 1.0), &device);
                let g_im = Tensor::<3>::random([batch, len, channels], Distribution::Normal(0.0, 1.0), &device);
                let run = |fused: bool, from_end: bool| {
                    let a = Complex { re: a.re.clone().detach().require_grad(), im: a.im.clone().detach().require_grad() };
                    let b = Complex { re: b.re.clone().detach().require_grad(), im: b.im.clone().detach().require_grad() };
                    let h = match (fused, from_end) {
                        (true, false) => linear_recurrence(a.clone(), b.clone()),
                        (true, true) => linear_recurrence_from_end(a.clone(), b.clone()),
                        (false, false) => recurrence_by_doubling(a.clone(), b.clone()),
                        (false, true) => recurrence_by_doubling(a.clone(), b.clone().flip_time()).flip_time(),
                    };
                    let grads = (h.re.clone() * g_re.clone() + h.im.clone() * g_im.clone()).sum().backward();
                    // With one step `a` never acts, and the doubling scan gives it no gradient: zeros.
                    let grad = |t: &Tensor<1>| t.grad(&grads).map(values).unwrap_or_else(|| vec![0.0; channels]);
                    let grad3 = |t: &Tensor<3>| values(t.grad(&grads).expect("a gradient"));
                    [values(h.re), values(h.im), grad(&a.re), grad(&a.im), grad3(&b.re), grad3(&b.im)]
                };
                // From the end, the fused loop run backwards in time gives the gradients of
                // the fused loop over the reversed sequence, bit for bit.
                let flipped = {
                    let a = Complex { re: a.re.clone().detach().require_grad(), im: a.im.clone().detach().require_grad() };
                    let b = Complex { re: b.re.clone().detach().require_grad(), im: b.im.clone().detach().require_grad() };
                    let h = linear_recurrence(a.clone(), b.clone().flip_time()).flip_time();
                    let grads = (h.re * g_re.clone() + h.im * g_im.clone()).sum().backward();
                    let grad = |t: &Tensor<1>| t.grad(&grads).map(values).unwrap_or_else(|| vec![0.0; channels]);
                    [grad(&a.re), grad(&a.im), values(b.re.grad(&grads).unwrap()), values(b.im.grad(&grads).unwrap())]
                };
                assert_eq!(run(true, true)[2..], flipped, "gradients from the end, batch {batch}, len {len}");
                for from_end in [false, true] {
                    let (fused, doubled) = (run(true, from_end), run(false, from_end));
                    let names = ["h real", "h imaginary", "da real", "da imaginary", "db real", "db imaginary"];
                    for ((got, expected), name) in fused.iter().zip(&doubled).zip(names) {
                        // da sums batch x len terms of size up to about 1 / (1 - |a|).
                        let what = format!("{name}, from the end: {from_end}, batch {batch}, len {len}, channels {channels}");
                        assert_close(got, expected, 1e-3, &what);
                    }
                }
            }
        }
    }

    /// Where only `b` is tracked (a fixed `a`), the backward still gives `b`'s gradient:
    /// `sum(h_re)` with `a = 0` is `sum(b_re)`, so `db_re = 1` and `db_im = 0`.
    #[test]
    fn with_a_fixed_the_gradient_of_b_alone_is_given() {
        let device = Device::flex().autodiff();
        let a = Complex { re: Tensor::<1>::zeros([4], &device), im: Tensor::<1>::zeros([4], &device) };
        let b = Complex {
            re: Tensor::<3>::ones([2, 5, 4], &device).require_grad(),
            im: Tensor::<3>::ones([2, 5, 4], &device).require_grad(),
        };
        let grads = linear_recurrence(a, b.clone()).re.sum().backward();
        assert!(values(b.re.grad(&grads).unwrap()).iter().all(|&g| g == 1.0));
        assert!(values(b.im.grad(&grads).unwrap()).iter().all(|&g| g == 0.0));
    }

    /// The selective scan in plain f64 loops, straight from its definition:
    /// `h_t = exp(delta_t a) h_{t-1} + delta_t b_t x_t`, `y_t = c_t . h_t`, per example,
    /// channel and state.
    fn plain_selective_scan(
        delta: &[f32],
        a: &[f32],
        b: &[f32],
        c: &[f32],
        x: &[f32],
        sizes: (usize, usize, usize, usize),
    ) -> Vec<f32> {
        let (batch, len, channels, states) = sizes;
        let mut y = vec![0.0f32; batch * len * channels];
        for example in 0..batch {
            for d in 0..channels {
                let mut h = vec![0.0f64; states];
                for t in 0..len {
                    let i = (example * len + t) * channels + d;
                    let step = (example * len + t) * states;
                    let dt = delta[i] as f64;
                    let mut out = 0.0f64;
                    for n in 0..states {
                        h[n] = (dt * a[d * states + n] as f64).exp() * h[n] + dt * b[step + n] as f64 * x[i] as f64;
                        out += c[step + n] as f64 * h[n];
                    }
                    y[i] = out as f32;
                }
            }
        }
        y
    }

    /// `delta` positive (as a softplus gives), `a` negative (as `-exp(a_log)`), `b`, `c`, `x`
    /// standard normal: `(delta, a, b, c, x)`.
    fn selective_inputs(
        device: &Device,
        (batch, len, channels, states): (usize, usize, usize, usize),
    ) -> (Tensor<3>, Tensor<2>, Tensor<3>, Tensor<3>, Tensor<3>) {
        let normal = |shape: [usize; 3]| Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), device);
        (
            Tensor::random([batch, len, channels], Distribution::Uniform(0.01, 0.5), device),
            Tensor::random([channels, states], Distribution::Uniform(-3.0, -0.2), device),
            normal([batch, len, states]),
            normal([batch, len, states]),
            normal([batch, len, channels]),
        )
    }

    /// Ragged sizes `(batch, len, channels, states)`: one step, one state, lengths that are
    /// not powers of two, channels not a multiple of the vector width, more channels than
    /// one task takes, and more steps than a chunk of the backward (the last one partial).
    const SELECTIVE_SIZES: [(usize, usize, usize, usize); 6] =
        [(1, 1, 3, 2), (2, 7, 5, 1), (3, 33, 9, 16), (1, 100, 1, 4), (2, 70, 300, 5), (2, 2 * CHUNK_STEPS + 45, 7, 3)];

    #[test]
    fn the_fused_and_the_doubling_selective_scans_equal_plain_loops() {
        for device in [Device::flex(), Device::ndarray()] {
            device.seed(93);
            for sizes in SELECTIVE_SIZES {
                let (delta, a, b, c, x) = selective_inputs(&device, sizes);
                let expected = plain_selective_scan(
                    &values(delta.clone()),
                    &values(a.clone()),
                    &values(b.clone()),
                    &values(c.clone()),
                    &values(x.clone()),
                    sizes,
                );
                let fused = selective_scan(delta.clone(), a.clone(), b.clone(), c.clone(), x.clone());
                assert_close(&values(fused), &expected, 1e-4, &format!("fused, {sizes:?}"));
                let doubled = selective_scan_by_doubling(delta, a, b, c, x);
                assert_close(&values(doubled), &expected, 1e-4, &format!("doubling, {sizes:?}"));
            }
        }
    }

    /// The fused backward against autodiff through the doubling scan: the gradients of all
    /// five inputs of `sum(y * g)` for random `g`.
    #[test]
    fn the_fused_selective_gradients_equal_autodiff_through_the_doubling_scan() {
        for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
            device.seed(94);
            for sizes in SELECTIVE_SIZES {
                let (delta, a, b, c, x) = selective_inputs(&device, sizes);
                let (batch, len, channels, _) = sizes;
                let g = Tensor::<3>::random([batch, len, channels], Distribution::Normal(0.0, 1.0), &device);
                let run = |fused: bool| {
                    let track3 = |t: &Tensor<3>| t.clone().detach().require_grad();
                    let (delta, b, c, x) = (track3(&delta), track3(&b), track3(&c), track3(&x));
                    let a = a.clone().detach().require_grad();
                    let scan = if fused { selective_scan } else { selective_scan_by_doubling };
                    let y = scan(delta.clone(), a.clone(), b.clone(), c.clone(), x.clone());
                    let grads = (y.clone() * g.clone()).sum().backward();
                    let grad3 = |t: &Tensor<3>| values(t.grad(&grads).expect("a gradient"));
                    // With one step the decay never acts, and the doubling scan gives `a` no
                    // gradient: zeros.
                    let grad_a = a.grad(&grads).map(values).unwrap_or_else(|| vec![0.0; a.dims().iter().product()]);
                    [values(y), grad3(&delta), grad_a, grad3(&b), grad3(&c), grad3(&x)]
                };
                let (fused, doubled) = (run(true), run(false));
                for ((got, expected), name) in fused.iter().zip(&doubled).zip(["y", "d delta", "d a", "d b", "d c", "d x"]) {
                    // The gradients of a, b and c sum batch x len (x channels) terms.
                    assert_close(got, expected, 1e-3, &format!("{name}, {sizes:?}"));
                }
            }
        }
    }

    /// With `delta` the same at every step (per channel) and `b`, `c` the same at every
    /// step, the selective scan is a time-invariant diagonal system: the existing
    /// [`linear_recurrence`] over `channels x states` real modes (zero imaginary parts)
    /// with `a = exp(delta a)` and inputs `delta b x`, read out by `c`.
    #[test]
    fn with_fixed_delta_b_and_c_the_selective_scan_is_a_time_invariant_recurrence() {
        let device = Device::flex();
        device.seed(95);
        let (batch, len, channels, states) = (2, 19, 6, 4);
        let step = Tensor::<1>::random([channels], Distribution::Uniform(0.05, 0.5), &device);
        let a = Tensor::<2>::random([channels, states], Distribution::Uniform(-2.0, -0.5), &device);
        let b_fixed = Tensor::<1>::random([states], Distribution::Normal(0.0, 1.0), &device);
        let c_fixed = Tensor::<1>::random([states], Distribution::Normal(0.0, 1.0), &device);
        let x = Tensor::<3>::random([batch, len, channels], Distribution::Normal(0.0, 1.0), &device);
        let over_time = |v: Tensor<1>, width: usize| v.reshape([1, 1, width]).expand([batch, len, width]);
        let selective = selective_scan(
            over_time(step.clone(), channels),
            a.clone(),
            over_time(b_fixed.clone(), states),
            over_time(c_fixed.clone(), states),
            x.clone(),
        );
        // Modes (d, n) flattened: decay exp(delta_d a[d, n]), input delta_d b_n x_t[d].
        let modes = channels * states;
        let decay = (step.clone().reshape([channels, 1]) * a).exp().reshape([modes]);
        let driven = (x * step.reshape([1, 1, channels])).reshape([batch, len, channels, 1]) * b_fixed.reshape([1, 1, 1, states]);
        let driven = driven.reshape([batch, len, modes]);
        let zeros = |t: &Tensor<3>| t.zeros_like();
        let h =
            linear_recurrence(Complex { re: decay.clone(), im: decay.zeros_like() }, Complex { im: zeros(&driven), re: driven });
        let read = (h.re.reshape([batch, len, channels, states]) * c_fixed.reshape([1, 1, 1, states])).sum_dim(3);
        assert_close(&values(selective), &values(read.reshape([batch, len, channels])), 1e-4, "time-invariant");
    }
}
