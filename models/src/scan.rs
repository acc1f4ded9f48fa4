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

use crate::cpu::{RowMajor, TASK_ELEMENTS, runs_natively};

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
    if !(runs_natively(&b.re) && runs_natively(&a.re)) {
        return recurrence_by_doubling(a, b);
    }
    let [batch, len, channels] = b.re.dims();
    let packed = Tensor::<4>::from_dispatch(<Dispatch as FusedScan>::diagonal_scan(
        a.re.into_dispatch(),
        a.im.into_dispatch(),
        b.re.into_dispatch(),
        b.im.into_dispatch(),
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

/// The forward loop: `h` as `[2, batch, len, channels]` row-major numbers (real parts,
/// then imaginary ones).
fn forward_values(a_re: &[f32], a_im: &[f32], b_re: &[f32], b_im: &[f32], batch: usize, len: usize) -> Vec<f32> {
    let channels = a_re.len();
    let size = batch * len * channels;
    let mut out = vec![0.0f32; 2 * size];
    let shared = Shared(out.as_mut_ptr());
    tasks(batch, channels, channels_per_task(len, channels)).into_par_iter().for_each(|(example, block)| {
        let width = block.len();
        let (ar, ai) = (&a_re[block.clone()], &a_im[block.clone()]);
        let (mut hr, mut hi) = (vec![0.0f32; width], vec![0.0f32; width]);
        for t in 0..len {
            let row = (example * len + t) * channels + block.start;
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
    });
    out
}

/// The backward loop (see the top comment): from `a`, the output `h` (`[2, batch, len,
/// channels]`) and its gradient `g` (same layout), returns `db` in `h`'s layout and
/// `da` as `(re, im)`, each `[channels]`.
fn backward_values(a_re: &[f32], a_im: &[f32], h: &[f32], g: &[f32], batch: usize, len: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let channels = a_re.len();
    let size = batch * len * channels;
    let (h_re, h_im) = h.split_at(size);
    let (g_re, g_im) = g.split_at(size);
    let mut db = vec![0.0f32; 2 * size];
    let shared = Shared(db.as_mut_ptr());
    let partial: Vec<(std::ops::Range<usize>, Vec<f32>, Vec<f32>)> = tasks(batch, channels, channels_per_task(len, channels))
        .into_par_iter()
        .map(|(example, block)| {
            let width = block.len();
            let (ar, ai) = (&a_re[block.clone()], &a_im[block.clone()]);
            let (mut dr, mut di) = (vec![0.0f32; width], vec![0.0f32; width]);
            let (mut da_re, mut da_im) = (vec![0.0f32; width], vec![0.0f32; width]);
            for t in (0..len).rev() {
                let row = (example * len + t) * channels + block.start;
                let (gr, gi) = (&g_re[row..row + width], &g_im[row..row + width]);
                // d_t = g_t + conj(a) d_{t+1}.
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
                // da += d_t conj(h_{t-1}).
                if t > 0 {
                    let previous = row - channels;
                    let (pr, pi) = (&h_re[previous..previous + width], &h_im[previous..previous + width]);
                    for j in 0..width {
                        da_re[j] += dr[j] * pr[j] + di[j] * pi[j];
                        da_im[j] += di[j] * pr[j] - dr[j] * pi[j];
                    }
                }
            }
            (block, da_re, da_im)
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
) -> FloatTensor<B> {
    let shape = b_re.shape();
    let (batch, len, channels) = (shape[0], shape[1], shape[2]);
    let values = B::with_values(a_re, |ar| {
        B::with_values(a_im, |ai| {
            B::with_values(b_re, |br| B::with_values(b_im, |bi| forward_values(ar, ai, br, bi, batch, len)))
        })
    });
    B::from_values(values, Shape::from([2, batch, len, channels]))
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedScan: Backend {
    /// `h_t = a h_{t-1} + b_t` (complex, `a: [channels]` real and imaginary parts,
    /// `b: [batch, len, channels]` likewise) -> `[2, batch, len, channels]`, the real
    /// parts of `h` then the imaginary ones.
    fn diagonal_scan(
        a_re: FloatTensor<Self>,
        a_im: FloatTensor<Self>,
        b_re: FloatTensor<Self>,
        b_im: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedScan for B {
    fn diagonal_scan(a_re: FloatTensor<B>, a_im: FloatTensor<B>, b_re: FloatTensor<B>, b_im: FloatTensor<B>) -> FloatTensor<B> {
        forward::<B>(a_re, a_im, b_re, b_im)
    }
}

/// The backward node: it keeps `a` and the output `h`.
#[derive(Debug)]
struct ScanBackward;

impl<B: RowMajor> Backward<B, 4> for ScanBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (a_re, a_im, h) = ops.state;
        let output_grad = grads.consume::<B>(&ops.node);
        let shape = h.shape();
        let (batch, len, channels) = (shape[1], shape[2], shape[3]);
        let (db, da_re, da_im) = B::with_values(a_re, |ar| {
            B::with_values(a_im, |ai| {
                B::with_values(h, |h| B::with_values(output_grad, |g| backward_values(ar, ai, h, g, batch, len)))
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
    ) -> FloatTensor<Self> {
        let (a_re, a_re_node) = a_re.into_parts();
        let (a_im, a_im_node) = a_im.into_parts();
        let (b_re, b_re_node) = b_re.into_parts();
        let (b_im, b_im_node) = b_im.into_parts();
        // Compute-bound: the node keeps `h` rather than rerunning the loop.
        match ScanBackward.prepare::<C>([a_re_node, a_im_node, b_re_node, b_im_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let h = forward::<B>(a_re.clone(), a_im.clone(), b_re, b_im);
                prep.finish((a_re, a_im, h.clone()), h)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward::<B>(a_re, a_im, b_re, b_im)),
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
                let doubled = recurrence_by_doubling(a, b);
                assert_close(&values(doubled.re), &expected.0, 1e-4, &format!("doubling, real, {what}"));
                assert_close(&values(doubled.im), &expected.1, 1e-4, &format!("doubling, imaginary, {what}"));
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
                let run = |fused: bool| {
                    let a = Complex { re: a.re.clone().detach().require_grad(), im: a.im.clone().detach().require_grad() };
                    let b = Complex { re: b.re.clone().detach().require_grad(), im: b.im.clone().detach().require_grad() };
                    let h = if fused {
                        linear_recurrence(a.clone(), b.clone())
                    } else {
                        recurrence_by_doubling(a.clone(), b.clone())
                    };
                    let grads = (h.re.clone() * g_re.clone() + h.im.clone() * g_im.clone()).sum().backward();
                    // With one step `a` never acts, and the doubling scan gives it no gradient: zeros.
                    let grad = |t: &Tensor<1>| t.grad(&grads).map(values).unwrap_or_else(|| vec![0.0; channels]);
                    let grad3 = |t: &Tensor<3>| values(t.grad(&grads).expect("a gradient"));
                    [values(h.re), values(h.im), grad(&a.re), grad(&a.im), grad3(&b.re), grad3(&b.im)]
                };
                let (fused, doubled) = (run(true), run(false));
                let names = ["h real", "h imaginary", "da real", "da imaginary", "db real", "db imaginary"];
                for ((got, expected), name) in fused.iter().zip(&doubled).zip(names) {
                    // da sums batch x len terms of size up to about 1 / (1 - |a|).
                    assert_close(got, expected, 1e-3, &format!("{name}, batch {batch}, len {len}, channels {channels}"));
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
}
