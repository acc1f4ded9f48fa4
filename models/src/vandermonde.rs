//! S4D's convolution kernel, a Vandermonde sum, as one fused operation on the CPU backends.
//!
//! For each channel `c` and mode `m` (`M = N/2` complex modes), with `z = exp(log_decay +
//! i angle)` and a complex weight `w`:
//!
//! `K[c, l] = 2 Re(sum_m w[c, m] z[c, m]^l)`, `l = 0..len` (S4D's eq. 4).
//!
//! The powers are taken `T` steps at a time, `z^(jT + i) = z^(jT) z^i`, so a channel needs
//! `T + J` powers of each mode (`J = ceil(len / T)`, `T = ceil(sqrt(len))` by default),
//! each computed directly from its exponent in f64 (no error compounds along `l`), and
//! `K[jT + i]` is a sum over the modes of `w z^(jT)` times `z^i`.
//!
//! The gradients, from `G = dL/dK`, need two more such sums per mode,
//! `S1 = sum_l G[l] z^l` and `S2 = sum_l l G[l] z^l`:
//! `dL/dRe(w) = 2 Re(S1)`, `dL/dIm(w) = -2 Im(S1)` (as `Re(w z^l) = Re(w) Re(z^l) -
//! Im(w) Im(z^l)`), and, since `d z^l / d log_decay = l z^l` and `d z^l / d angle =
//! i l z^l`, `dL/dlog_decay = 2 Re(w S2)` and `dL/dangle = -2 Im(w S2)`.
//!
//! On the CPU backends (flex, ndarray) the operation is one parallel pass over the
//! channels, and its backward keeps only the four `[channels, M]` inputs: burn's
//! composition ([`kernel_composed`], used elsewhere) keeps every power, product and sum it
//! makes: S4D's step at 4K positions (Text sizes, batch 2, eight kernels) peaked 258 MiB
//! higher with it (868 against 610 MiB, before the feed-forward product was fused).

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

use crate::cpu::{RowMajor, dot, runs_natively};

/// The modes of every channel, each `[channels, M]`: `z = exp(log_decay + i angle)` and the
/// weight `w = weight_re + i weight_im`.
pub struct Modes {
    pub log_decay: Tensor<2>,
    pub angle: Tensor<2>,
    pub weight_re: Tensor<2>,
    pub weight_im: Tensor<2>,
}

/// The kernel `K[c, l] = 2 Re(sum_m w z^l)`, `l = 0..len`, its powers taken `chunk` steps
/// at a time: `[channels, len]`.
pub fn kernel(modes: Modes, len: usize, chunk: usize) -> Tensor<2> {
    let chunk = chunk.clamp(1, len.max(1));
    let inputs = [&modes.log_decay, &modes.angle, &modes.weight_re, &modes.weight_im];
    if !inputs.iter().all(|t| runs_natively(*t)) {
        return kernel_composed(modes, len, chunk);
    }
    Tensor::from_dispatch(<Dispatch as FusedVandermonde>::vandermonde_kernel(
        modes.log_decay.into_dispatch(),
        modes.angle.into_dispatch(),
        modes.weight_re.into_dispatch(),
        modes.weight_im.into_dispatch(),
        len,
        chunk,
    ))
}

/// `z^e` for every exponent: `exponents: [E]` -> real and imaginary parts, `[channels, M, E]`.
pub fn powers(log_decay: Tensor<2>, angle: Tensor<2>, exponents: Tensor<1>) -> (Tensor<3>, Tensor<3>) {
    let e = exponents.unsqueeze::<3>(); // [1, 1, E]
    let magnitude = (log_decay.unsqueeze_dim::<3>(2) * e.clone()).exp();
    let angle = angle.unsqueeze_dim::<3>(2) * e;
    (magnitude.clone() * angle.clone().cos(), magnitude * angle.sin())
}

/// [`kernel`] in burn's operations: `K[jT + i]` is entry `(j, i)` of one `[J, M] x [M, T]`
/// complex product per channel, of `w z^(jT)` and `z^i`.
pub fn kernel_composed(modes: Modes, len: usize, chunk: usize) -> Tensor<2> {
    let device = modes.log_decay.device();
    let chunks = len.div_ceil(chunk);
    let steps = |count: usize, every: usize| Tensor::<1, Int>::arange(0..count as i64, &device).float().mul_scalar(every as f64);
    let (within_re, within_im) = powers(modes.log_decay.clone(), modes.angle.clone(), steps(chunk, 1)); // [channels, M, T]
    let (start_re, start_im) = powers(modes.log_decay, modes.angle, steps(chunks, chunk)); // [channels, M, J]
    let (w_re, w_im) = (modes.weight_re.unsqueeze_dim::<3>(2), modes.weight_im.unsqueeze_dim::<3>(2));
    // w z^(jT), as [channels, J, M].
    let starts_re = (w_re.clone() * start_re.clone() - w_im.clone() * start_im.clone()).swap_dims(1, 2);
    let starts_im = (w_re * start_im + w_im * start_re).swap_dims(1, 2);
    let kernel = (starts_re.matmul(within_re) - starts_im.matmul(within_im)).mul_scalar(2.0); // [channels, J, T]
    let [channels, _, _] = kernel.dims();
    kernel.reshape([channels, chunks * chunk]).slice([0..channels, 0..len])
}

/// The sizes of one kernel.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    channels: usize,
    modes: usize,
    len: usize,
    chunk: usize,
}

impl Sizes {
    fn chunks(&self) -> usize {
        self.len.div_ceil(self.chunk)
    }
}

/// One channel's powers of its modes, in f32 computed from f64: `within_*[m * T + i]` the
/// parts of `z_m^i`, `starts[j * M + m]` the pair of `z_m^(jT)`.
struct ChannelPowers {
    within_re: Vec<f32>,
    within_im: Vec<f32>,
    starts: Vec<(f64, f64)>,
}

/// `z^e = exp(e log_decay) (cos(e angle), sin(e angle))` in f64.
fn power(log_decay: f32, angle: f32, e: usize) -> (f64, f64) {
    let e = e as f64;
    let magnitude = (e * log_decay as f64).exp();
    let (sin, cos) = (e * angle as f64).sin_cos();
    (magnitude * cos, magnitude * sin)
}

fn channel_powers(log_decay: &[f32], angle: &[f32], sizes: Sizes) -> ChannelPowers {
    let (modes, chunk) = (sizes.modes, sizes.chunk);
    let (mut within_re, mut within_im) = (vec![0.0f32; modes * chunk], vec![0.0f32; modes * chunk]);
    for m in 0..modes {
        for i in 0..chunk {
            let (re, im) = power(log_decay[m], angle[m], i);
            (within_re[m * chunk + i], within_im[m * chunk + i]) = (re as f32, im as f32);
        }
    }
    let starts = (0..sizes.chunks()).flat_map(|j| (0..modes).map(move |m| power(log_decay[m], angle[m], j * chunk))).collect();
    ChannelPowers { within_re, within_im, starts }
}

/// Rows of a `[channels, M]` input, one slice per channel.
fn row(values: &[f32], c: usize, modes: usize) -> &[f32] {
    &values[c * modes..(c + 1) * modes]
}

/// The forward on plain numbers: each input `[channels, M]` -> `[channels, len]`.
fn forward_values(inputs: [&[f32]; 4], sizes: Sizes) -> Vec<f32> {
    let [log_decay, angle, w_re, w_im] = inputs;
    let Sizes { modes, len, chunk, .. } = sizes;
    let rows: Vec<Vec<f32>> = (0..sizes.channels)
        .into_par_iter()
        .map(|c| {
            let powers = channel_powers(row(log_decay, c, modes), row(angle, c, modes), sizes);
            let (w_re, w_im) = (row(w_re, c, modes), row(w_im, c, modes));
            let mut out = vec![0.0f32; sizes.chunks() * chunk];
            for (j, block) in out.chunks_exact_mut(chunk).enumerate() {
                for m in 0..modes {
                    // 2 w z^(jT), so that the sum below is K itself.
                    let (s_re, s_im) = powers.starts[j * modes + m];
                    let (w_re, w_im) = (w_re[m] as f64, w_im[m] as f64);
                    let start_re = (2.0 * (w_re * s_re - w_im * s_im)) as f32;
                    let start_im = (2.0 * (w_re * s_im + w_im * s_re)) as f32;
                    let (p_re, p_im) = (&powers.within_re[m * chunk..][..chunk], &powers.within_im[m * chunk..][..chunk]);
                    for ((k, &p_re), &p_im) in block.iter_mut().zip(p_re).zip(p_im) {
                        *k += start_re * p_re - start_im * p_im;
                    }
                }
            }
            out.truncate(len);
            out
        })
        .collect();
    rows.concat()
}

/// The backward on plain numbers: `grad: [channels, len]` -> the gradients of the four
/// inputs, each `[channels, M]`.
fn backward_values(inputs: [&[f32]; 4], grad: &[f32], sizes: Sizes) -> [Vec<f32>; 4] {
    let [log_decay, angle, w_re, w_im] = inputs;
    let Sizes { modes, len, chunk, .. } = sizes;
    // Per channel, per mode: the gradients of its four inputs.
    let per_channel: Vec<Vec<[f32; 4]>> = (0..sizes.channels)
        .into_par_iter()
        .map(|c| {
            let powers = channel_powers(row(log_decay, c, modes), row(angle, c, modes), sizes);
            // G and l G, zero past the kernel's end to whole chunks.
            let mut g = vec![0.0f32; sizes.chunks() * chunk];
            g[..len].copy_from_slice(&grad[c * len..(c + 1) * len]);
            let lg: Vec<f32> = g.iter().enumerate().map(|(l, g)| l as f32 * g).collect();
            let (w_re, w_im) = (row(w_re, c, modes), row(w_im, c, modes));
            (0..modes)
                .map(|m| {
                    let (p_re, p_im) = (&powers.within_re[m * chunk..][..chunk], &powers.within_im[m * chunk..][..chunk]);
                    // S1 = sum_j z^(jT) sum_i G[jT + i] z^i, and S2 likewise with l G.
                    let (mut s1, mut s2) = ((0.0f64, 0.0f64), (0.0f64, 0.0f64));
                    for (j, (g, lg)) in g.chunks_exact(chunk).zip(lg.chunks_exact(chunk)).enumerate() {
                        let (q_re, q_im) = powers.starts[j * modes + m];
                        let (r_re, r_im) = (dot(g, p_re) as f64, dot(g, p_im) as f64);
                        let (r2_re, r2_im) = (dot(lg, p_re) as f64, dot(lg, p_im) as f64);
                        s1 = (s1.0 + q_re * r_re - q_im * r_im, s1.1 + q_re * r_im + q_im * r_re);
                        s2 = (s2.0 + q_re * r2_re - q_im * r2_im, s2.1 + q_re * r2_im + q_im * r2_re);
                    }
                    let (w_re, w_im) = (w_re[m] as f64, w_im[m] as f64);
                    // w S2.
                    let (ws2_re, ws2_im) = (w_re * s2.0 - w_im * s2.1, w_re * s2.1 + w_im * s2.0);
                    [2.0 * ws2_re, -2.0 * ws2_im, 2.0 * s1.0, -2.0 * s1.1].map(|v| v as f32)
                })
                .collect()
        })
        .collect();
    std::array::from_fn(|input| per_channel.iter().flat_map(|modes| modes.iter().map(move |grads| grads[input])).collect())
}

fn sizes<B: Backend>(log_decay: &FloatTensor<B>, len: usize, chunk: usize) -> Sizes {
    let shape = log_decay.shape();
    Sizes { channels: shape[0], modes: shape[1], len, chunk }
}

fn forward<B: RowMajor>(inputs: [FloatTensor<B>; 4], len: usize, chunk: usize) -> FloatTensor<B> {
    let sizes = sizes::<B>(&inputs[0], len, chunk);
    let [log_decay, angle, w_re, w_im] = inputs.map(|t| B::with_values(t, <[f32]>::to_vec));
    let kernel = forward_values([&log_decay, &angle, &w_re, &w_im], sizes);
    B::from_values(kernel, Shape::from([sizes.channels, len]))
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedVandermonde: Backend {
    /// [`kernel`]: four `[channels, M]` inputs -> `[channels, len]`.
    fn vandermonde_kernel(
        log_decay: FloatTensor<Self>,
        angle: FloatTensor<Self>,
        weight_re: FloatTensor<Self>,
        weight_im: FloatTensor<Self>,
        len: usize,
        chunk: usize,
    ) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedVandermonde for B {
    fn vandermonde_kernel(
        log_decay: FloatTensor<B>,
        angle: FloatTensor<B>,
        weight_re: FloatTensor<B>,
        weight_im: FloatTensor<B>,
        len: usize,
        chunk: usize,
    ) -> FloatTensor<B> {
        forward::<B>([log_decay, angle, weight_re, weight_im], len, chunk)
    }
}

/// The backward node: it keeps the four inputs and recomputes the powers.
#[derive(Debug)]
struct VandermondeBackward {
    len: usize,
    chunk: usize,
}

impl<B: RowMajor> Backward<B, 4> for VandermondeBackward {
    type State = [FloatTensor<B>; 4];

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let sizes = sizes::<B>(&ops.state[0], self.len, self.chunk);
        let shape = ops.state[0].shape();
        let [log_decay, angle, w_re, w_im] = ops.state.map(|t| B::with_values(t, <[f32]>::to_vec));
        let output_grad = grads.consume::<B>(&ops.node);
        let input_grads = B::with_values(output_grad, |g| backward_values([&log_decay, &angle, &w_re, &w_im], g, sizes));
        for (node, values) in ops.parents.into_iter().zip(input_grads) {
            if let Some(node) = node {
                grads.register::<B>(node.id, B::from_values(values, shape.clone()));
            }
        }
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedVandermonde for Autodiff<B, C> {
    fn vandermonde_kernel(
        log_decay: FloatTensor<Self>,
        angle: FloatTensor<Self>,
        weight_re: FloatTensor<Self>,
        weight_im: FloatTensor<Self>,
        len: usize,
        chunk: usize,
    ) -> FloatTensor<Self> {
        let [(log_decay, n0), (angle, n1), (weight_re, n2), (weight_im, n3)] =
            [log_decay, angle, weight_re, weight_im].map(|t| t.into_parts());
        let inputs = [log_decay, angle, weight_re, weight_im];
        let node = VandermondeBackward { len, chunk };
        match node.prepare::<C>([n0, n1, n2, n3]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(inputs.clone(), forward::<B>(inputs, len, chunk)),
            OpsKind::UnTracked(prep) => prep.finish(forward::<B>(inputs, len, chunk)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric_checks::{assert_close, values};
    use burn::tensor::Distribution;

    /// Modes as S4D makes them at 64 channels: decays in `[-0.5, -1e-3]` per step (some
    /// kernels long-lived, some short), angles up to 3 radians per step, weights standard
    /// normal.
    fn modes(device: &Device) -> [Tensor<2>; 4] {
        let shape = [64, 16];
        [
            Tensor::random(shape, Distribution::Uniform(-0.5, -1e-3), device),
            Tensor::random(shape, Distribution::Uniform(0.0, 3.0), device),
            Tensor::random(shape, Distribution::Normal(0.0, 1.0), device),
            Tensor::random(shape, Distribution::Normal(0.0, 1.0), device),
        ]
    }

    /// The gradients of `sum_{c,l} W[c,l] K[c,l]` in plain f64 loops, for `K[c,l] = 2 sum_m
    /// Re(w_m z_m^l)`, `z^l = e^(l a) (cos l theta + i sin l theta)`: with `(r, i)` the parts of
    /// `z^l`, `d/da = 2 sum_l W l (w_re r - w_im i)`, `d/dtheta = -2 sum_l W l (w_re i + w_im
    /// r)`, `d/dw_re = 2 sum_l W r`, `d/dw_im = -2 sum_l W i`.
    fn gradients_by_sum(inputs: &[Vec<f32>; 4], weight_of_lag: &[f32], len: usize) -> [Vec<f32>; 4] {
        let [a, theta, w_re, w_im] = inputs;
        let mut grads: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0.0; a.len()]);
        for i in 0..a.len() {
            let c = i / 16;
            let mut sums = [0.0f64; 4];
            for l in 0..len {
                let (re, im) = power(a[i], theta[i], l);
                let (w, lag) = (2.0 * weight_of_lag[c * len + l] as f64, l as f64);
                let (w_re, w_im) = (w_re[i] as f64, w_im[i] as f64);
                sums[0] += w * lag * (w_re * re - w_im * im);
                sums[1] -= w * lag * (w_re * im + w_im * re);
                sums[2] += w * re;
                sums[3] -= w * im;
            }
            for (grad, sum) in grads.iter_mut().zip(sums) {
                grad[i] = sum as f32;
            }
        }
        grads
    }

    /// The kernel at every lag and its gradients equal the Vandermonde sum and its
    /// derivatives in plain f64 loops, and burn's composition (in f32, whose error grows
    /// with the lag) comes within 1% of the largest gradient, for lengths that are and are
    /// not whole chunks.
    #[test]
    fn the_fused_vandermonde_kernel_and_its_gradients_equal_the_sum_and_burns_composition() {
        for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
            device.seed(9);
            let inputs = modes(&device);
            for (len, chunk) in [(300, 18), (256, 16), (7, 3)] {
                let weight_of_lag = Tensor::<2>::random([64, len], Distribution::Normal(0.0, 1.0), &device);
                let run = |f: fn(Modes, usize, usize) -> Tensor<2>| {
                    let tracked: Vec<Tensor<2>> = inputs.iter().map(|t| t.clone().detach().require_grad()).collect();
                    let modes = Modes {
                        log_decay: tracked[0].clone(),
                        angle: tracked[1].clone(),
                        weight_re: tracked[2].clone(),
                        weight_im: tracked[3].clone(),
                    };
                    let k = f(modes, len, chunk);
                    let grads = (k.clone() * weight_of_lag.clone()).sum().backward();
                    let input_grads: Vec<Vec<f32>> = tracked.iter().map(|t| values(t.grad(&grads).unwrap())).collect();
                    (values(k), input_grads)
                };
                let (k_fused, g_fused) = run(kernel);
                let (k_composed, g_composed) = run(kernel_composed);

                let inputs = inputs.clone().map(values);
                let [a, theta, w_re, w_im] = &inputs;
                let by_sum: Vec<f32> = (0..64 * len)
                    .map(|at| {
                        let (c, l) = (at / len, at % len);
                        let total: f64 = (0..16)
                            .map(|m| {
                                let i = c * 16 + m;
                                let (re, im) = power(a[i], theta[i], l);
                                w_re[i] as f64 * re - w_im[i] as f64 * im
                            })
                            .sum();
                        (2.0 * total) as f32
                    })
                    .collect();
                assert_close(&k_fused, &by_sum, 1e-5, &format!("kernel at {len} lags, chunks of {chunk}"));
                assert_close(&k_fused, &k_composed, 2e-4, "fused and composed kernels");
                let grads_by_sum = gradients_by_sum(&inputs, &values(weight_of_lag.clone()), len);
                let names = ["log_decay", "angle", "weight_re", "weight_im"];
                for (input, ((fused, composed), by_sum)) in names.iter().zip(g_fused.iter().zip(&g_composed).zip(&grads_by_sum)) {
                    let what = format!("{input}'s gradient at {len} lags");
                    assert_close(fused, by_sum, 1e-4, &what);
                    let largest = by_sum.iter().fold(0.0f32, |m, g| m.max(g.abs()));
                    let worst = composed.iter().zip(by_sum).fold(0.0f32, |m, (c, e)| m.max((c - e).abs()));
                    assert!(worst <= 1e-2 * largest, "{what}, composed: off by {worst}, largest {largest}");
                }
            }
        }
    }
}
