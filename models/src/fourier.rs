//! The real part of the two-dimensional discrete Fourier transform, by the FFT: FNet's
//! token mixing.
//!
//! `y[m, k] = Re(sum_t sum_j x[t, j] exp(-2 pi i (m t / n + k j / d)))
//!          = sum_t sum_j x[t, j] cos(2 pi (m t / n + k j / d))` for `x: [n, d]` real.
//!
//! The map is a real matrix `M[(m, k), (t, j)] = cos(2 pi (m t / n + k j / d))`, symmetric
//! under swapping `(m, k)` and `(t, j)`, so its backward is the same map applied to the
//! output's gradient.
//!
//! On the CPU backends a fused operation: a real FFT along each row (length `d`, `d/2 + 1`
//! frequencies), a complex FFT along each of those frequency columns (length `n`), then
//! the real part; the other `d/2 - 1` frequencies follow from the symmetry of a real
//! input's transform, `Y[m, d - k] = conj(Y[(n - m) mod n, k])`. O(n d log(n d)). Parallel
//! over the batch. Elsewhere (wgpu, cuda) the caller computes it with matrix products.

// ndarray is deprecated in burn, and kept selectable here.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::prelude::*;
use rayon::prelude::*;
use realfft::RealFftPlanner;
use realfft::num_complex::Complex32;
use rustfft::FftPlanner;

use crate::cpu::RowMajor;

/// The map above for each `[n, d]` slice of `x: [batch, n, d]`, on a CPU backend (f32 on
/// flex or ndarray; see [`crate::cpu::runs_natively`]).
pub fn fourier_mixing(x: Tensor<3>) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as FourierMixing>::fourier_mixing(x.into_dispatch()))
}

/// The map on plain numbers, `x: [batch, n, d]` row-major.
fn mix_values(x: &[f32], batch: usize, n: usize, d: usize) -> Vec<f32> {
    let row_transform = RealFftPlanner::<f32>::new().plan_fft_forward(d);
    let column_transform = FftPlanner::<f32>::new().plan_fft_forward(n);
    let bins = d / 2 + 1;
    let mut out = vec![0.0f32; batch * n * d];
    out.par_chunks_mut(n * d).zip(x.par_chunks(n * d)).for_each(|(y, x)| {
        // Along the rows: spectrum[t, k] for k = 0..=d/2.
        let mut spectrum = vec![Complex32::new(0.0, 0.0); n * bins];
        let mut row = vec![0.0f32; d];
        let mut row_scratch = vec![Complex32::new(0.0, 0.0); row_transform.get_scratch_len()];
        for (t, out_row) in spectrum.chunks_mut(bins).enumerate() {
            row.copy_from_slice(&x[t * d..(t + 1) * d]);
            row_transform.process_with_scratch(&mut row, out_row, &mut row_scratch).expect("buffers of the planned sizes");
        }
        // Along the columns: transform[m, k] for k = 0..=d/2.
        let mut column = vec![Complex32::new(0.0, 0.0); n];
        let mut column_scratch = vec![Complex32::new(0.0, 0.0); column_transform.get_inplace_scratch_len()];
        let mut transform = vec![Complex32::new(0.0, 0.0); n * bins];
        for k in 0..bins {
            for t in 0..n {
                column[t] = spectrum[t * bins + k];
            }
            column_transform.process_with_scratch(&mut column, &mut column_scratch);
            for m in 0..n {
                transform[m * bins + k] = column[m];
            }
        }
        for m in 0..n {
            for k in 0..d {
                y[m * d + k] = if k < bins { transform[m * bins + k].re } else { transform[((n - m) % n) * bins + d - k].re };
            }
        }
    });
    out
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FourierMixing: Backend {
    /// [`fourier_mixing`]: `x: [batch, n, d]`.
    fn fourier_mixing(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

fn mix<B: RowMajor>(x: FloatTensor<B>) -> FloatTensor<B> {
    let shape = x.shape();
    let [batch, n, d] = [shape[0], shape[1], shape[2]];
    B::map_values(x, |x| mix_values(x, batch, n, d))
}

impl<B: RowMajor> FourierMixing for B {
    fn fourier_mixing(x: FloatTensor<B>) -> FloatTensor<B> {
        mix::<B>(x)
    }
}

/// The backward node: the map is its own transpose, so it keeps nothing.
#[derive(Debug)]
struct FourierMixingBackward;

impl<B: RowMajor> Backward<B, 1> for FourierMixingBackward {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        unary::<B, _>(ops.parents, ops.node, grads, |grad| mix::<B>(grad));
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FourierMixing for Autodiff<B, C> {
    fn fourier_mixing(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        match FourierMixingBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((), mix::<B>(x)),
            OpsKind::UnTracked(prep) => prep.finish(B::fourier_mixing(x)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric_checks::{assert_close, values};
    use burn::tensor::Distribution;

    /// The definition in f64 loops, for each `[n, d]` slice of `x: [batch, n, d]`.
    fn by_definition(x: &[f32], batch: usize, n: usize, d: usize) -> Vec<f32> {
        let tau = 2.0 * std::f64::consts::PI;
        let mut y = vec![0.0f32; batch * n * d];
        for b in 0..batch {
            for m in 0..n {
                for k in 0..d {
                    let mut sum = 0.0f64;
                    for t in 0..n {
                        for j in 0..d {
                            // Reduced modulo n and d first, so the angle keeps its precision.
                            let angle = tau * (((m * t) % n) as f64 / n as f64 + ((k * j) % d) as f64 / d as f64);
                            sum += x[(b * n + t) * d + j] as f64 * angle.cos();
                        }
                    }
                    y[(b * n + m) * d + k] = sum as f32;
                }
            }
        }
        y
    }

    #[test]
    fn the_fft_mixing_equals_the_definition_for_odd_and_even_sizes() {
        let device = Device::flex();
        for (batch, n, d) in [(1, 1, 1), (2, 7, 6), (1, 8, 5), (2, 12, 9), (1, 33, 16)] {
            let x = Tensor::<3>::random([batch, n, d], Distribution::Normal(0.0, 1.0), &device);
            let expected = by_definition(&values(x.clone()), batch, n, d);
            assert_close(&values(fourier_mixing(x.clone())), &expected, 1e-4, &format!("flex {batch}x{n}x{d}"));
            let on_ndarray = fourier_mixing(x.to_device(&Device::ndarray()));
            assert_close(&values(on_ndarray), &expected, 1e-4, &format!("ndarray {batch}x{n}x{d}"));
        }
    }

    /// The map is symmetric, so the gradient of `sum(w * mix(x))` is `mix(w)`.
    #[test]
    fn the_gradient_is_the_same_map_applied_to_the_outputs_gradient() {
        let device = Device::flex().autodiff();
        let (batch, n, d) = (2, 9, 6);
        let x = Tensor::<3>::random([batch, n, d], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let w = Tensor::<3>::random([batch, n, d], Distribution::Normal(0.0, 1.0), &device);
        let grads = (fourier_mixing(x.clone()) * w.clone()).sum().backward();
        let expected = by_definition(&values(w), batch, n, d);
        assert_close(&values(x.grad(&grads).unwrap()), &expected, 1e-4, "gradient");
    }
}
