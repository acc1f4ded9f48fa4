//! Long convolutions: every channel of a sequence convolved with a kernel as long as the
//! sequence, in O(n log n) by the FFT.
//!
//! `y[b, t, c] = sum_s kernel[c, t - s + (n - 1)] u[b, s, c]` for `t, s < n`: the kernel
//! holds one weight per lag `t - s` from `-(n - 1)` to `n - 1` (`2n - 1` of them, lag 0 at
//! index `n - 1`). A causal kernel (state spaces run forward, Hyena's filters) is zero at
//! the negative lags; a bidirectional one (S4D and Mega run both ways on LRA) is not.
//!
//! By the convolution theorem, with both zero-padded to a length `N >= 2n - 1` (so that
//! no lag wraps around), `y = IFFT(FFT(u) FFT(k))` truncated to `n`. The gradient is two
//! more such products: `dL/du = IFFT(FFT(g) conj(FFT(k)))` (a correlation with the kernel)
//! and `dL/dk = IFFT(sum_b FFT(g) conj(FFT(u)))` read at the kernel's lags.
//!
//! On the CPU backends this is one fused operation with its own backward, on real FFTs
//! ([`realfft`], built on [`rustfft`]), parallel over channels; its backward keeps only
//! the operation's inputs. It takes and gives the layers' layout, channels last, and
//! transposes to and from rows of one channel itself, in cache-sized tiles: burn's copy of
//! a swapped view costs several times more, and the view's copy would be kept for the
//! backward. The transforms run in f64: an FFT's rounding error is relative
//! to the largest value of the whole signal, so in f32 an output much smaller than the
//! largest (a gradient summing lags that nearly cancel, a decayed state) keeps few correct
//! digits where a direct sum keeps them all; in f64 every output is the exact sum rounded
//! once to f32, for twice the transforms' arithmetic (a small part of a layer's time). Elsewhere (wgpu, cuda) it is burn's own depthwise `conv1d`,
//! which computes the same sum in O(n^2) per channel (burn has no FFT outside the
//! optional `burn-signal` crate).

// ndarray is deprecated in burn, and kept selectable here.
#![allow(deprecated)]

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::module::conv1d;
use burn::tensor::ops::ConvOptions;
use rayon::prelude::*;
use realfft::num_complex::Complex64;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::cpu::{self, RowMajor, runs_natively};

/// The long convolution above: `u: [batch, n, channels]`, `kernel: [channels, 2n - 1]`
/// (lags `-(n - 1)..=n - 1`) -> `[batch, n, channels]`.
pub fn convolve(u: Tensor<3>, kernel: Tensor<2>) -> Tensor<3> {
    let [_, n, channels] = u.dims();
    assert_eq!(kernel.dims(), [channels, 2 * n - 1], "a kernel of 2n - 1 lags per channel for n = {n}");
    if !runs_natively(&u) {
        return direct(u, kernel);
    }
    Tensor::from_dispatch(<Dispatch as FftConvolution>::long_convolution(u.into_dispatch(), kernel.into_dispatch()))
}

/// A two-sided kernel from its two halves, `[channels, n]` each: `causal[l]` weighs lag `l`
/// (`l = 0..n`, the current step included), `anticausal[m]` lag `-(m + 1)` (the step
/// `m + 1` later); `None`: a causal kernel. -> `[channels, 2n - 1]`.
pub fn two_sided(causal: Tensor<2>, anticausal: Option<Tensor<2>>) -> Tensor<2> {
    let [channels, n] = causal.dims();
    let before = match anticausal {
        // Lags -(n - 1)..=-1 in order: anticausal[n - 2], ..., anticausal[0].
        Some(later) => later.slice([0..channels, 0..n - 1]).flip([1]),
        None => Tensor::zeros([channels, n - 1], &causal.device()),
    };
    Tensor::cat(vec![before, causal], 1)
}

/// burn's depthwise `conv1d` (a cross-correlation, hence the reversed kernel), padded so
/// that output `t` sums inputs `t - (n - 1)..=t + (n - 1)`; it takes channels first.
fn direct(u: Tensor<3>, kernel: Tensor<2>) -> Tensor<3> {
    let [_, n, channels] = u.dims();
    let weight = kernel.flip([1]).reshape([channels, 1, 2 * n - 1]);
    conv1d(u.swap_dims(1, 2), weight, None, ConvOptions::new([1], [n - 1], [1], channels)).swap_dims(1, 2)
}

/// Each of `batch` row-major `[rows, cols]` matrices transposed to `[cols, rows]`, a tile
/// at a time (a tile's rows and columns stay in cache).
fn transpose(values: &[f32], batch: usize, rows: usize, cols: usize) -> Vec<f32> {
    const TILE: usize = 32;
    let matrix = rows * cols;
    debug_assert_eq!(values.len(), batch * matrix);
    // A task per matrix.
    let ([out], _) = cpu::par_blocks(values.len(), matrix, |start, [out]| {
        let m = &values[start..start + matrix];
        for r0 in (0..rows).step_by(TILE) {
            for c0 in (0..cols).step_by(TILE) {
                for r in r0..(r0 + TILE).min(rows) {
                    for c in c0..(c0 + TILE).min(cols) {
                        out[c * rows + r] = m[r * cols + c];
                    }
                }
            }
        }
    });
    out
}

/// The smallest FFT length at least `2n - 1` with no prime factor above 3, which rustfft
/// transforms fastest.
pub fn fft_length(n: usize) -> usize {
    let least = (2 * n).saturating_sub(1).max(1);
    let mut best = least.next_power_of_two();
    let mut three = 1;
    while three < best {
        let mut candidate = three;
        while candidate < least {
            candidate *= 2;
        }
        best = best.min(candidate);
        three *= 3;
    }
    best
}

/// Work of one [`convolve`] over `batch` sequences of `channels` x `n` ([`crate::attention::flops`]'s
/// convention, extended to transforms): a real FFT of length `N` counted as `2.5 N log2 N`
/// operations (half a complex one's `5 N log2 N`); per sequence and channel a forward and
/// an inverse transform and the spectra's product (`6` per bin), per channel the kernel's
/// transform.
pub fn forward_flops(batch: usize, channels: usize, n: usize) -> f64 {
    let length = fft_length(n) as f64;
    let transform = 2.5 * length * length.log2();
    let bins = length / 2.0 + 1.0;
    channels as f64 * (batch as f64 * (2.0 * transform + 6.0 * bins) + transform)
}

/// The real FFTs of one length, planned once.
struct Plans {
    length: usize,
    forward: Arc<dyn RealToComplex<f64>>,
    inverse: Arc<dyn ComplexToReal<f64>>,
}

impl Plans {
    fn new(length: usize) -> Plans {
        let mut planner = RealFftPlanner::<f64>::new();
        Plans { length, forward: planner.plan_fft_forward(length), inverse: planner.plan_fft_inverse(length) }
    }

    fn bins(&self) -> usize {
        self.length / 2 + 1
    }

    /// The spectrum of `values` zero-padded to the FFT length.
    fn spectrum(&self, values: &[f32], work: &mut Work) -> Vec<Complex64> {
        work.real.iter_mut().for_each(|v| *v = 0.0);
        work.load(0, values);
        self.transform(work)
    }

    /// The spectrum of the signal in `work.real` (which the transform overwrites).
    fn transform(&self, work: &mut Work) -> Vec<Complex64> {
        let mut out = vec![Complex64::new(0.0, 0.0); self.bins()];
        self.forward.process_with_scratch(&mut work.real, &mut out, &mut work.scratch).expect("buffers of the planned sizes");
        out
    }

    /// The real signal of a spectrum, divided by the FFT length (the inverse's scale),
    /// into `work.real`. The spectrum of a real signal has real first and last bins; they
    /// are set so exactly, since products keep them real only up to rounding.
    fn signal(&self, mut spectrum: Vec<Complex64>, work: &mut Work) {
        let last = spectrum.len() - 1;
        spectrum[0].im = 0.0;
        if self.length.is_multiple_of(2) {
            spectrum[last].im = 0.0;
        }
        self.inverse.process_with_scratch(&mut spectrum, &mut work.real, &mut work.scratch).expect("a real spectrum");
        let scale = 1.0 / self.length as f64;
        work.real.iter_mut().for_each(|v| *v *= scale);
    }
}

/// Scratch space of one task, in f64.
struct Work {
    real: Vec<f64>,
    scratch: Vec<Complex64>,
}

impl Work {
    fn new(plans: &Plans) -> Work {
        let scratch = plans.forward.get_scratch_len().max(plans.inverse.get_scratch_len());
        Work { real: vec![0.0; plans.length], scratch: vec![Complex64::new(0.0, 0.0); scratch] }
    }

    /// `values` into the signal from index `at`.
    fn load(&mut self, at: usize, values: &[f32]) {
        self.real[at..at + values.len()].iter_mut().zip(values).for_each(|(r, &v)| *r = v as f64);
    }

    /// The signal's values from index `at` into `out` (its length), rounded to f32.
    fn store(&self, at: usize, out: &mut [f32]) {
        let len = out.len();
        out.iter_mut().zip(&self.real[at..at + len]).for_each(|(o, &r)| *o = r as f32);
    }
}

/// The kernel's spectrum, its lags placed modulo the FFT length: lag `l >= 0` at `l`,
/// lag `-m` at `N - m`.
fn kernel_spectrum(plans: &Plans, kernel: &[f32], n: usize, work: &mut Work) -> Vec<Complex64> {
    work.real.iter_mut().for_each(|v| *v = 0.0);
    work.load(0, &kernel[n - 1..]);
    work.load(plans.length - (n - 1), &kernel[..n - 1]);
    plans.transform(work)
}

/// Rows computed per channel (`[channels][batch * n]`) laid out as the layers' `[batch, n,
/// channels]`, in one pass: a tile of steps at a time, every channel's few cache lines of
/// it read while the tile's rows are written.
fn channels_last(per_channel: &[Vec<f32>], batch: usize, n: usize) -> Vec<f32> {
    const TILE: usize = 64;
    let channels = per_channel.len();
    // Tiles of steps in parallel tasks, each writing its own rows of the output.
    let ([out], _) = cpu::par_blocks(batch * n * channels, TILE * channels, |start, [out]| {
        let (first, steps) = (start / channels, out.len() / channels);
        for (c, rows) in per_channel.iter().enumerate() {
            for (step, &value) in rows[first..first + steps].iter().enumerate() {
                out[step * channels + c] = value;
            }
        }
    });
    out
}

/// The forward on plain numbers: `u: [batch, channels, n]`, `kernel: [channels, 2n - 1]`
/// -> `[batch, n, channels]`.
fn forward_values(u: &[f32], kernel: &[f32], batch: usize, channels: usize, n: usize) -> Vec<f32> {
    let plans = Plans::new(fft_length(n));
    // One task per channel: its kernel's spectrum serves every sequence of the batch.
    let per_channel: Vec<Vec<f32>> = (0..channels)
        .into_par_iter()
        .map(|c| {
            let mut work = Work::new(&plans);
            let taps = kernel_spectrum(&plans, &kernel[c * (2 * n - 1)..(c + 1) * (2 * n - 1)], n, &mut work);
            let mut rows = vec![0.0f32; batch * n];
            for b in 0..batch {
                let row = &u[(b * channels + c) * n..(b * channels + c + 1) * n];
                let product = plans.spectrum(row, &mut work).iter().zip(&taps).map(|(x, k)| x * k).collect();
                plans.signal(product, &mut work);
                work.store(0, &mut rows[b * n..(b + 1) * n]);
            }
            rows
        })
        .collect();
    channels_last(&per_channel, batch, n)
}

/// The backward on plain numbers: the gradients of `u` (`[batch, n, channels]`) and of
/// `kernel` from the output's, `u` and `grad` given as `[batch, channels, n]`.
fn backward_values(u: &[f32], kernel: &[f32], grad: &[f32], batch: usize, channels: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let plans = Plans::new(fft_length(n));
    let length = plans.length;
    let per_channel: Vec<(Vec<f32>, Vec<f32>)> = (0..channels)
        .into_par_iter()
        .map(|c| {
            let mut work = Work::new(&plans);
            let taps = kernel_spectrum(&plans, &kernel[c * (2 * n - 1)..(c + 1) * (2 * n - 1)], n, &mut work);
            let mut grad_u = vec![0.0f32; batch * n];
            let mut correlation = vec![Complex64::new(0.0, 0.0); plans.bins()];
            for b in 0..batch {
                let at = (b * channels + c) * n;
                let g = plans.spectrum(&grad[at..at + n], &mut work);
                let x = plans.spectrum(&u[at..at + n], &mut work);
                for ((sum, g), x) in correlation.iter_mut().zip(&g).zip(&x) {
                    *sum += g * x.conj();
                }
                plans.signal(g.iter().zip(&taps).map(|(g, k)| g * k.conj()).collect(), &mut work);
                work.store(0, &mut grad_u[b * n..(b + 1) * n]);
            }
            // Lag l of the correlation sits at l mod N.
            plans.signal(correlation, &mut work);
            let mut grad_kernel = vec![0.0f32; 2 * n - 1];
            work.store(0, &mut grad_kernel[n - 1..]);
            work.store(length - (n - 1), &mut grad_kernel[..n - 1]);
            (grad_u, grad_kernel)
        })
        .collect();
    let (rows, taps): (Vec<Vec<f32>>, Vec<Vec<f32>>) = per_channel.into_iter().unzip();
    (channels_last(&rows, batch, n), taps.concat())
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FftConvolution: Backend {
    /// [`convolve`]: `u: [batch, n, channels]`, `kernel: [channels, 2n - 1]`.
    fn long_convolution(u: FloatTensor<Self>, kernel: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `u: [batch, n, channels]` -> `[batch, n, channels]`, by rows of one channel.
fn forward<B: RowMajor>(u: FloatTensor<B>, kernel: FloatTensor<B>) -> FloatTensor<B> {
    let shape = u.shape();
    let [batch, n, channels] = [shape[0], shape[1], shape[2]];
    let rows = B::with_values(u, |u| transpose(u, batch, n, channels));
    let y = B::with_values(kernel, |k| forward_values(&rows, k, batch, channels, n));
    B::from_values(y, shape)
}

impl<B: RowMajor> FftConvolution for B {
    fn long_convolution(u: FloatTensor<B>, kernel: FloatTensor<B>) -> FloatTensor<B> {
        forward::<B>(u, kernel)
    }
}

/// The backward node: it keeps the two inputs, and recomputes their spectra.
#[derive(Debug)]
struct LongConvolutionBackward;

impl<B: RowMajor> Backward<B, 2> for LongConvolutionBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (u, kernel) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let (u_shape, kernel_shape) = (u.shape(), kernel.shape());
        let [batch, n, channels] = [u_shape[0], u_shape[1], u_shape[2]];
        let (u, grad) =
            (B::with_values(u, |u| transpose(u, batch, n, channels)), B::with_values(grad, |g| transpose(g, batch, n, channels)));
        let (grad_u, grad_kernel) = B::with_values(kernel, |k| backward_values(&u, k, &grad, batch, channels, n));
        let [u_node, kernel_node] = ops.parents;
        if let Some(node) = u_node {
            grads.register::<B>(node.id, B::from_values(grad_u, u_shape));
        }
        if let Some(node) = kernel_node {
            grads.register::<B>(node.id, B::from_values(grad_kernel, kernel_shape));
        }
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FftConvolution for Autodiff<B, C> {
    fn long_convolution(u: FloatTensor<Self>, kernel: FloatTensor<Self>) -> FloatTensor<Self> {
        let (u, u_node) = u.into_parts();
        let (kernel, kernel_node) = kernel.into_parts();
        match LongConvolutionBackward.prepare::<C>([u_node, kernel_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = forward::<B>(u.clone(), kernel.clone());
                prep.finish((u, kernel), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::long_convolution(u, kernel)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric_checks::values;
    use burn::tensor::Distribution;

    /// The definition in f64 loops: `u: [batch, channels, n]`, `kernel: [channels, 2n - 1]`.
    fn by_definition(u: &[f32], kernel: &[f32], batch: usize, channels: usize, n: usize) -> Vec<f64> {
        let mut y = vec![0.0f64; batch * channels * n];
        for b in 0..batch {
            for c in 0..channels {
                for t in 0..n {
                    y[(b * channels + c) * n + t] = (0..n)
                        .map(|s| kernel[c * (2 * n - 1) + t + n - 1 - s] as f64 * u[(b * channels + c) * n + s] as f64)
                        .sum();
                }
            }
        }
        y
    }

    /// [`convolve`] and [`direct`] on `[batch, channels, n]`, the layout of [`by_definition`].
    fn fused_rows(u: Tensor<3>, kernel: Tensor<2>) -> Tensor<3> {
        convolve(u.swap_dims(1, 2), kernel).swap_dims(1, 2)
    }

    fn direct_rows(u: Tensor<3>, kernel: Tensor<2>) -> Tensor<3> {
        direct(u.swap_dims(1, 2), kernel).swap_dims(1, 2)
    }

    /// Each value the exact one rounded once to f32, to within the f64 transforms' error.
    fn assert_rounded(got: &[f32], want: &[f64], what: &str) {
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let bound = w.abs() * f32::EPSILON as f64 / 2.0 + 1e-12 * scale;
            assert!(((*g as f64) - w).abs() <= bound, "{what}[{i}]: {g} against {w} (scale {scale})");
        }
        assert_eq!(got.len(), want.len(), "{what}");
    }

    fn assert_near(got: &[f32], want: &[f64], what: &str) {
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(((*g as f64) - w).abs() <= 2e-5 * scale, "{what}[{i}]: {g} against {w} (scale {scale})");
        }
        assert_eq!(got.len(), want.len(), "{what}");
    }

    #[test]
    fn fft_lengths_hold_every_lag_and_have_no_factor_above_three() {
        for n in [1, 2, 3, 5, 17, 100, 1000, 1024, 4096, 16384] {
            let length = fft_length(n);
            assert!(length >= 2 * n - 1, "{n}: {length}");
            let mut rest = length;
            for p in [2, 3] {
                while rest.is_multiple_of(p) {
                    rest /= p;
                }
            }
            assert_eq!(rest, 1, "{n}: {length}");
            // The smallest such: no 3-smooth number between 2n - 1 and it.
            let smooth = |mut m: usize| {
                for p in [2, 3] {
                    while m.is_multiple_of(p) {
                        m /= p;
                    }
                }
                m == 1
            };
            assert!(((2 * n - 1).max(1)..length).all(|m| !smooth(m)), "{n}: {length}");
        }
    }

    #[test]
    fn the_fft_convolution_is_the_sum_by_definition_rounded_once_on_each_backend() {
        let device = Device::flex();
        for (batch, channels, n) in [(1, 1, 1), (2, 3, 7), (3, 2, 64), (1, 4, 100)] {
            let u = Tensor::<3>::random([batch, channels, n], Distribution::Normal(0.0, 1.0), &device);
            let kernel = Tensor::<2>::random([channels, 2 * n - 1], Distribution::Normal(0.0, 1.0), &device);
            let want = by_definition(&values(u.clone()), &values(kernel.clone()), batch, channels, n);
            assert_rounded(&values(fused_rows(u.clone(), kernel.clone())), &want, "fft");
            assert_near(&values(direct_rows(u.clone(), kernel.clone())), &want, "conv1d");
            let on_ndarray = fused_rows(u.to_device(&Device::ndarray()), kernel.to_device(&Device::ndarray()));
            assert_rounded(&values(on_ndarray), &want, "fft on ndarray");
        }
    }

    #[test]
    fn a_causal_kernel_keeps_the_future_out_and_two_sided_places_each_half() {
        let device = Device::flex();
        let (channels, n) = (2, 9);
        let causal = Tensor::<2>::random([channels, n], Distribution::Normal(0.0, 1.0), &device);
        let later = Tensor::<2>::random([channels, n], Distribution::Normal(0.0, 1.0), &device);
        let k = values(two_sided(causal.clone(), Some(later.clone())));
        let (c, l) = (values(causal.clone()), values(later));
        for ch in 0..channels {
            for lag in 0..n {
                assert_eq!(k[ch * (2 * n - 1) + n - 1 + lag], c[ch * n + lag], "lag {lag}");
            }
            for m in 0..n - 1 {
                // Lag -(m + 1) at index n - 2 - m.
                assert_eq!(k[ch * (2 * n - 1) + n - 2 - m], l[ch * n + m], "lag -{}", m + 1);
            }
        }
        // Causal: changing the last input moves only the last output.
        let kernel = two_sided(causal, None);
        let u = Tensor::<3>::random([1, channels, n], Distribution::Normal(0.0, 1.0), &device);
        let bumped = u.clone()
            + Tensor::<3>::zeros([1, channels, n], &device)
                .slice_assign([0..1, 0..channels, n - 1..n], Tensor::ones([1, channels, 1], &device));
        let (a, b) = (values(fused_rows(u, kernel.clone())), values(fused_rows(bumped, kernel)));
        for ch in 0..channels {
            for t in 0..n - 1 {
                let i = ch * n + t;
                assert!((a[i] - b[i]).abs() <= 1e-5 * a[i].abs().max(1.0), "step {t} saw the future");
            }
        }
    }

    #[test]
    fn the_fused_gradients_equal_those_of_burns_convolution() {
        let device = Device::flex().autodiff();
        for (batch, channels, n) in [(2, 3, 7), (3, 2, 50)] {
            let u = Tensor::<3>::random([batch, channels, n], Distribution::Normal(0.0, 1.0), &device);
            let kernel = Tensor::<2>::random([channels, 2 * n - 1], Distribution::Normal(0.0, 1.0), &device);
            let weights = Tensor::<3>::random([batch, channels, n], Distribution::Normal(0.0, 1.0), &device);
            let gradients = |fused: bool| {
                let (u, kernel) = (u.clone().require_grad(), kernel.clone().require_grad());
                let y = if fused { fused_rows(u.clone(), kernel.clone()) } else { direct_rows(u.clone(), kernel.clone()) };
                let grads = (y * weights.clone()).sum().backward();
                (values(u.grad(&grads).unwrap()), values(kernel.grad(&grads).unwrap()))
            };
            let ((fused_u, fused_k), (direct_u, direct_k)) = (gradients(true), gradients(false));
            let as_f64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
            assert_near(&fused_u, &as_f64(&direct_u), "d/du");
            assert_near(&fused_k, &as_f64(&direct_k), "d/dkernel");
        }
    }
}
