//! S4D: a diagonal state-space layer, computed as a long convolution.
//!
//! Paper: Gu, Gupta, Goel, Ré, "On the Parameterization and Initialization of Diagonal
//! State Space Models", NeurIPS 2022.
//! Family: recurrence (beyond attention: a linear time-invariant state space model).
//! Cost here: O(n d log n + n N d) time and O(n d) memory per sequence in the sequence
//! length n, with N the state size and d = d_model channels: the convolution by FFT, as
//! the paper computes it, on the CPU backends (see "Convolution" below); on wgpu and cuda,
//! where burn has no FFT, O(n^(3/2) d + n N d) time and O(n N d) memory (see "Without an
//! FFT").
//!
//! Each of the `d_model` channels is a single-input single-output state space model with
//! `N/2` complex modes (their conjugates make the state size `N` and the output real):
//! `x'(t) = A x(t) + B u(t)`, `y(t) = 2 Re(C x(t)) + D u(t)`, `A` diagonal with
//! `Re(A) = -exp(log_a_real) < 0`. With step `dt = exp(log_dt)` it is discretised (Section 2):
//! - zero-order hold: `A_bar = exp(dt A)`, `B_bar = (exp(dt A) - 1) / A * B`;
//! - bilinear: `A_bar = (1 + dt A / 2) / (1 - dt A / 2)`, `B_bar = dt B / (1 - dt A / 2)`;
//!
//! and the recurrence `x_t = A_bar x_{t-1} + B_bar u_t` unrolls into the causal convolution
//! `y = K * u + D u` with the kernel `K[l] = 2 Re(sum_n C_n B_bar_n A_bar_n^l)` (eq. 4), a
//! Vandermonde sum. Complex numbers are carried as (real, imaginary) pairs of real tensors.
//!
//! Bidirectional (the default, as S4 is run on LRA): a second output matrix `C'` gives a
//! kernel `K'` applied backwards in time, strictly after each step,
//! `y_t = sum_{s <= t} K[t - s] u_s + sum_{s > t} K'[s - t - 1] u_s + D u_t`. This matters
//! for a classifier reading a CLS token at position 0: a causal layer gives that position
//! nothing but itself, whatever follows it. The backward pass is the same causal
//! convolution run over the reversed sequence, shifted by one step.
//!
//! Initialisation (Section 4): `A_n = -1/2 + i pi n` (S4D-Lin) or
//! `A_n = -1/2 + i N/pi (N/(2n+1) - 1)` (S4D-Inv); `B = 1`; `C` complex standard normal;
//! `D` standard normal; `log dt` uniform in `[log dt_min, log dt_max]`. All are trained.
//! As in S4 blocks, the output is `Linear(dropout(GELU(y)))`.
//!
//! Convolution: the kernels `K` and `K'` are made for the input's length, then applied
//! together by FFT ([`crate::long_conv`]: `K` at the lags `0..n`, `K'` at `-1..-n`), in
//! O(n log n). The Vandermonde sum is taken `T` steps at a time (`T = ceil(sqrt(n))`
//! unless set): `A_bar^(jT + i) = A_bar^(jT) A_bar^i`, so that `K[jT + i]` is entry
//! `(j, i)` of one `[n/T, N/2] x [N/2, T]` complex product per channel, and no
//! `[d, N/2, n]` tensor of powers is ever made. On the CPU backends the kernel is one
//! fused operation with its own backward ([`crate::vandermonde`]), which keeps only the
//! modes; burn's composition would keep every power and product it makes.
//!
//! Without an FFT (wgpu, cuda): the length is cut into chunks of `T` steps. Within a chunk
//! the convolution is a `[T, T]` Toeplitz product with `K[0..T]`; across chunks the state
//! carries the past: each chunk's contribution to the state at its end is
//! `sum_tau A_bar^(T-1-tau) u[tau]`, the state entering chunk `j` sums those of earlier
//! chunks decayed by `A_bar^(T (j-1-i))` (a scan over the chunks), and it reaches step `t`
//! of the chunk as `2 Re(C B_bar A_bar^(t+1) state)`. This is exactly the convolution,
//! without its `[n, n]` Toeplitz matrix.
//!
//! Padding: padded positions are zeroed before the convolution. The system is linear with
//! a zero initial state and no bias, so zeros contribute nothing in either direction: a
//! sequence padded at its end gives its real tokens exactly the outputs of the same
//! sequence without padding. It takes no heads or length (each channel has its own
//! kernel, built for each input's length); `dropout` applies after the GELU, as in S4.

use crate::activation::gelu_erf;
use crate::dense::apply_dense;
use crate::vandermonde;
use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

use super::softmax::dropout;
use crate::cpu::runs_natively;
use crate::long_conv;

use super::flops::LayerShape;
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Settings};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n log n) time, O(n) memory (convolution by FFT)";

/// Initialisation of the imaginary parts of `A`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum S4dInit {
    /// `Im(A_n) = pi n`.
    Lin,
    /// `Im(A_n) = N/pi (N/(2n+1) - 1)`.
    Inv,
}

/// How the continuous system is discretised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Discretization {
    /// Zero-order hold.
    Zoh,
    /// The bilinear (Tustin) transform.
    Bilinear,
}

#[derive(Config, Debug)]
pub struct S4dConfig {
    /// Number of channels, each with its own kernel.
    pub d_model: usize,
    /// Dropout after the GELU.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// `N`, the state size per channel (`N/2` complex modes and their conjugates).
    #[config(default = 64)]
    pub state_size: usize,
    #[config(default = "S4dInit::Lin")]
    pub init: S4dInit,
    #[config(default = "Discretization::Zoh")]
    pub discretization: Discretization,
    #[config(default = 0.001)]
    pub dt_min: f64,
    #[config(default = 0.1)]
    pub dt_max: f64,
    /// Chunk length `T` of the kernel's Vandermonde sum; `None`: `ceil(sqrt(len))`.
    pub chunk_length: Option<usize>,
    /// Add the backward kernel (its own `C'`); `false` gives the causal layer.
    #[config(default = true)]
    pub bidirectional: bool,
}

impl S4dConfig {
    pub fn init(&self, device: &Device) -> S4d {
        assert!(
            self.state_size >= 2 && self.state_size.is_multiple_of(2),
            "S4D: state_size ({}) must be even and at least 2",
            self.state_size
        );
        assert!(
            0.0 < self.dt_min && self.dt_min <= self.dt_max,
            "S4D: need 0 < dt_min ({}) <= dt_max ({})",
            self.dt_min,
            self.dt_max
        );
        let (channels, modes, n) = (self.d_model, self.state_size / 2, self.state_size as f64);
        let pi = std::f64::consts::PI;
        let a_imag: Vec<f32> = (0..channels)
            .flat_map(|_| 0..modes)
            .map(|k| match self.init {
                S4dInit::Lin => pi * k as f64,
                S4dInit::Inv => n / pi * (n / (2 * k + 1) as f64 - 1.0),
            } as f32)
            .collect();
        // A complex standard normal: each part of variance 1/2.
        let c_part = Initializer::Normal { mean: 0.0, std: 0.5f64.sqrt() };
        S4d {
            log_dt: Initializer::Uniform { min: self.dt_min.ln(), max: self.dt_max.ln() }.init([channels], device),
            log_a_real: Initializer::Constant { value: 0.5f64.ln() }.init([channels, modes], device),
            a_imag: Param::from_data(TensorData::new(a_imag, [channels, modes]), device),
            b_real: Initializer::Ones.init([channels, modes], device),
            b_imag: Initializer::Zeros.init([channels, modes], device),
            c_real: c_part.init([channels, modes], device),
            c_imag: c_part.init([channels, modes], device),
            c_backward: self
                .bidirectional
                .then(|| (c_part.init([channels, modes], device), c_part.init([channels, modes], device))),
            skip: Initializer::Normal { mean: 0.0, std: 1.0 }.init([channels], device),
            output: LinearConfig::new(self.d_model, self.d_model).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            discretization: self.discretization,
            chunk_length: self.chunk_length,
        }
    }
}

/// S4D's own settings in a run's configuration (`"attention": {"s4d": {...}}`): the state
/// size, initialisation and discretisation of its state space, and its direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S4dSettings {
    pub state_size: usize,
    pub init: S4dInit,
    pub discretization: Discretization,
    pub dt_min: f64,
    pub dt_max: f64,
    pub bidirectional: bool,
}

impl Settings for S4dSettings {
    type Layer = S4d;
    const MODEL: ModelCard = ModelCard {
        name: "s4d",
        title: "S4D, diagonal state space (Gu et al. 2022)",
        family: "recurrence (state space)",
        cost: COST,
    };

    fn defaults(_max_length: usize) -> S4dSettings {
        let c = S4dConfig::new(1);
        S4dSettings {
            state_size: c.state_size,
            init: c.init,
            discretization: c.discretization,
            dt_min: c.dt_min,
            dt_max: c.dt_max,
            bidirectional: c.bidirectional,
        }
    }

    fn check(&self, _positions: usize) -> Result<(), String> {
        let (state_size, dt_min, dt_max) = (self.state_size, self.dt_min, self.dt_max);
        if state_size < 2 || state_size % 2 == 1 {
            return Err(format!("state_size must be even and at least 2, not {state_size}"));
        }
        match 0.0 < dt_min && dt_min < dt_max {
            true => Ok(()),
            false => Err(format!("dt_min ({dt_min}) and dt_max ({dt_max}) must satisfy 0 < dt_min < dt_max")),
        }
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.state_size, self.bidirectional, None)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> S4d {
        // S4D has no attention width: it mixes tokens at d_model.
        S4dConfig::new(layer.d_model)
            .with_state_size(self.state_size)
            .with_init(self.init)
            .with_discretization(self.discretization)
            .with_dt_min(self.dt_min)
            .with_dt_max(self.dt_max)
            .with_bidirectional(self.bidirectional)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct S4d {
    /// `log dt: [d_model]`.
    pub log_dt: Param<Tensor<1>>,
    /// `log(-Re A): [d_model, N/2]`.
    pub log_a_real: Param<Tensor<2>>,
    /// `Im A: [d_model, N/2]`.
    pub a_imag: Param<Tensor<2>>,
    /// `B: [d_model, N/2]`, real and imaginary parts.
    pub b_real: Param<Tensor<2>>,
    pub b_imag: Param<Tensor<2>>,
    /// `C: [d_model, N/2]`, real and imaginary parts.
    pub c_real: Param<Tensor<2>>,
    pub c_imag: Param<Tensor<2>>,
    /// `C': [d_model, N/2]` of the backward kernel, real and imaginary parts; `None` when causal.
    pub c_backward: Option<(Param<Tensor<2>>, Param<Tensor<2>>)>,
    /// `D: [d_model]`, the skip connection.
    pub skip: Param<Tensor<1>>,
    pub output: Linear,
    pub dropout: Dropout,
    #[module(skip)]
    pub discretization: Discretization,
    #[module(skip)]
    pub chunk_length: Option<usize>,
}

/// A complex tensor as its real and imaginary parts.
#[derive(Clone)]
struct Complex<const D: usize> {
    re: Tensor<D>,
    im: Tensor<D>,
}

impl<const D: usize> Complex<D> {
    fn mul(self, other: Self) -> Self {
        Complex {
            re: self.re.clone() * other.re.clone() - self.im.clone() * other.im.clone(),
            im: self.re * other.im + self.im * other.re,
        }
    }

    fn div(self, other: Self) -> Self {
        let denominator = other.re.clone().square() + other.im.clone().square();
        let re = (self.re.clone() * other.re.clone() + self.im.clone() * other.im.clone()) / denominator.clone();
        let im = (self.im * other.re - self.re * other.im) / denominator;
        Complex { re, im }
    }

    fn exp(self) -> Self {
        let magnitude = self.re.exp();
        Complex { re: magnitude.clone() * self.im.clone().cos(), im: magnitude * self.im.sin() }
    }

    fn add_scalar(self, value: f64) -> Self {
        Complex { re: self.re.add_scalar(value), im: self.im }
    }

    fn mul_scalar(self, value: f64) -> Self {
        Complex { re: self.re.mul_scalar(value), im: self.im.mul_scalar(value) }
    }
}

/// The discretised modes, each `[d_model, N/2]`: `A_bar = exp(log_decay + i angle)` and
/// `weight = C B_bar`, so that `K[l] = 2 Re(sum_n weight_n A_bar_n^l)`.
struct DiscreteModes {
    log_decay: Tensor<2>,
    angle: Tensor<2>,
    weight: Complex<2>,
}

impl DiscreteModes {
    /// `A_bar^e` for every exponent: `exponents: [E]` -> `[d_model, N/2, E]`.
    fn powers(&self, exponents: Tensor<1>) -> Complex<3> {
        let (re, im) = vandermonde::powers(self.log_decay.clone(), self.angle.clone(), exponents);
        Complex { re, im }
    }

    /// `weight` broadcast against powers: `[d_model, N/2, 1]`.
    fn weight3(&self) -> Complex<3> {
        Complex { re: self.weight.re.clone().unsqueeze_dim(2), im: self.weight.im.clone().unsqueeze_dim(2) }
    }
}

impl S4d {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let u = x.mul(padding.bool_not().float().reshape([batch, len, 1]));
        apply_dense(&self.output, dropout(gelu_erf(self.convolve(u)), &self.dropout))
    }

    /// The state space convolution with its skip term, `y = K * u + D u` (plus the backward
    /// kernel's `sum_{s > t} K'[s - t - 1] u_s` when bidirectional):
    /// `u: [batch, len, d_model]` -> `[batch, len, d_model]`.
    pub fn convolve(&self, u: Tensor<3>) -> Tensor<3> {
        if !runs_natively(&u) {
            return self.convolve_by_chunks(u);
        }
        let [_, len, channels] = u.dims();
        let causal = self.kernel(self.discrete_modes(self.c_real.val(), self.c_imag.val()), len);
        // K'[m] weighs the step m + 1 later: lag -(m + 1), as `two_sided` places it.
        let anticausal =
            self.c_backward.as_ref().map(|(c_real, c_imag)| self.kernel(self.discrete_modes(c_real.val(), c_imag.val()), len));
        let kernel = long_conv::two_sided(causal, anticausal);
        let mixed = long_conv::convolve(u.clone(), kernel);
        mixed + u * self.skip.val().reshape([1, 1, channels])
    }

    /// [`S4d::convolve`] without an FFT (wgpu, cuda): chunk by chunk, see "Without an FFT"
    /// above.
    fn convolve_by_chunks(&self, u: Tensor<3>) -> Tensor<3> {
        let [batch, len, channels] = u.dims();
        let forward = self.causal_convolution(u.clone(), self.discrete_modes(self.c_real.val(), self.c_imag.val()));
        let mut y = forward + u.clone() * self.skip.val().reshape([1, 1, channels]);
        if let Some((c_real, c_imag)) = &self.c_backward {
            // Causal over the reversed sequence: position t of the result sums s >= t of u;
            // one step later, s > t, so that the current step is counted once, by K[0].
            let reversed = self.causal_convolution(u.flip([1]), self.discrete_modes(c_real.val(), c_imag.val())).flip([1]);
            let after = Tensor::cat(
                vec![reversed.slice([0..batch, 1..len, 0..channels]), Tensor::zeros([batch, 1, channels], &y.device())],
                1,
            );
            y = y + after;
        }
        y
    }

    /// The kernel `K[l] = 2 Re(sum_n weight_n A_bar_n^l)` for `l = 0..len`, `T` steps at a
    /// time (see "Convolution" above): `[d_model, len]`.
    fn kernel(&self, modes: DiscreteModes, len: usize) -> Tensor<2> {
        let DiscreteModes { log_decay, angle, weight } = modes;
        let modes = vandermonde::Modes { log_decay, angle, weight_re: weight.re, weight_im: weight.im };
        vandermonde::kernel(modes, len, self.chunk(len))
    }

    /// `T`, the steps per chunk at `len` positions: `chunk_length`, or `ceil(sqrt(len))`.
    fn chunk(&self, len: usize) -> usize {
        self.chunk_length.unwrap_or_else(|| (len as f64).sqrt().ceil() as usize).clamp(1, len.max(1))
    }

    /// The causal convolution `K * u` of the modes' kernel, without the skip term:
    /// `u: [batch, len, d_model]` -> `[batch, len, d_model]`.
    fn causal_convolution(&self, u: Tensor<3>, modes: DiscreteModes) -> Tensor<3> {
        let [batch, len, channels] = u.dims();
        let device = u.device();
        let chunk = self.chunk(len);
        let chunks = len.div_ceil(chunk);
        let steps = |range: std::ops::Range<i64>| Tensor::<1, Int>::arange(range, &device).float();

        // u as [channels, batch * chunks, chunk], zero-padded to whole chunks.
        let mut padded = u.clone();
        if chunks * chunk > len {
            padded = Tensor::cat(vec![padded, Tensor::zeros([batch, chunks * chunk - len, channels], &device)], 1);
        }
        let u_chunks = padded.permute([2, 0, 1]).reshape([channels, batch * chunks, chunk]);

        // Within chunks: the Toeplitz matrix of K[0..chunk].
        let kernel_powers = modes.weight3().mul(modes.powers(steps(0..chunk as i64)));
        let kernel = kernel_powers.re.sum_dim(1).mul_scalar(2.0); // [channels, 1, chunk]
        let within = u_chunks.clone().matmul(toeplitz(kernel, &device).transpose()); // [channels, batch * chunks, chunk]

        // Each chunk's contribution to the state at its last step: sum_tau A_bar^(T-1-tau) u[tau].
        let to_end = modes.powers(steps(0..chunk as i64).mul_scalar(-1.0).add_scalar((chunk - 1) as f64));
        let contribution =
            Complex { re: u_chunks.clone().matmul(to_end.re.swap_dims(1, 2)), im: u_chunks.matmul(to_end.im.swap_dims(1, 2)) }; // [channels, batch * chunks, N/2]

        // The state entering chunk j: sum over i < j of A_bar^(T (j-1-i)) times chunk i's contribution.
        let carried = carry_states(&modes, contribution, batch, chunks, chunk, &device); // [channels, batch * chunks, N/2]

        // Its effect on step t of the chunk: 2 Re(weight A_bar^(t+1) state).
        let from_state = modes.weight3().mul(modes.powers(steps(1..chunk as i64 + 1))); // [channels, N/2, chunk]
        let across = (carried.re.matmul(from_state.re) - carried.im.matmul(from_state.im)).mul_scalar(2.0);

        (within + across).reshape([channels, batch, chunks * chunk]).slice([0..channels, 0..batch, 0..len]).permute([1, 2, 0])
    }

    /// `A_bar`, and `C B_bar` for the output matrix `C = c_real + i c_imag`, from the
    /// continuous parameters and the discretisation.
    fn discrete_modes(&self, c_real: Tensor<2>, c_imag: Tensor<2>) -> DiscreteModes {
        let dt = self.log_dt.val().exp().unsqueeze_dim::<2>(1); // [channels, 1]
        let a = Complex { re: self.log_a_real.val().exp().neg(), im: self.a_imag.val() };
        let b = Complex { re: self.b_real.val(), im: self.b_imag.val() };
        let c = Complex { re: c_real, im: c_imag };
        let dt_a = Complex { re: a.re.clone() * dt.clone(), im: a.im.clone() * dt.clone() };
        match self.discretization {
            Discretization::Zoh => {
                let b_bar = dt_a.clone().exp().add_scalar(-1.0).div(a).mul(b);
                DiscreteModes { log_decay: dt_a.re, angle: dt_a.im, weight: c.mul(b_bar) }
            }
            Discretization::Bilinear => {
                let half = dt_a.mul_scalar(0.5);
                let forward = half.clone().add_scalar(1.0);
                let backward = half.mul_scalar(-1.0).add_scalar(1.0);
                let a_bar = forward.div(backward.clone());
                let b_bar = Complex { re: b.re * dt.clone(), im: b.im * dt }.div(backward);
                let log_decay = (a_bar.re.clone().square() + a_bar.im.clone().square()).log().mul_scalar(0.5);
                DiscreteModes { log_decay, angle: a_bar.im.atan2(a_bar.re), weight: c.mul(b_bar) }
            }
        }
    }
}

impl AttentionLayer for S4d {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// The lower-triangular Toeplitz matrices `[channels, T, T]`, `M[t, tau] = K[t - tau]` for
/// `t >= tau`, of kernels `kernel: [channels, 1, T]`.
fn toeplitz(kernel: Tensor<3>, device: &Device) -> Tensor<3> {
    let [channels, _, length] = kernel.dims();
    let index = Tensor::<1, Int>::arange(0..length as i64, device);
    let lag = index.clone().reshape([length, 1]).expand([length, length]) - index.reshape([1, length]).expand([length, length]);
    let lag = lag.clamp_min(0).unsqueeze::<3>().expand([channels, length, length]);
    let causal = Tensor::<2>::ones([length, length], device).tril(0).unsqueeze::<3>();
    kernel.expand([channels, length, length]).gather(2, lag) * causal
}

/// The states entering each chunk from the chunks' own end-state contributions:
/// `contribution: [channels, batch * chunks, N/2]` -> the same shape, row `j` of a batch
/// holding `sum_{i < j} A_bar^(T (j-1-i)) contribution_i`.
///
/// A scan over the chunks in `ceil(log2 C)` doubling steps (Hillis and Steele): after the
/// step of span `s`, entry `j` sums the contributions `j - 2s < i <= j`, each decayed to
/// the end of chunk `j`, by adding `A_bar^(T s)` times the entry `s` chunks earlier. The
/// state entering chunk `j` is the one chunk `j - 1` ended with. O(C log C) per mode, not
/// the `[C, C]` matrix of every pair of chunks.
fn carry_states(
    modes: &DiscreteModes,
    contribution: Complex<3>,
    batch: usize,
    chunks: usize,
    chunk: usize,
    device: &Device,
) -> Complex<3> {
    let [channels, _, half_state] = contribution.re.dims();
    // [channels, batch * chunks, N/2] -> [channels, batch, chunks, N/2] and back.
    let to_chunks = |t: Tensor<3>| t.reshape([channels, batch, chunks, half_state]);
    let from_chunks = |t: Tensor<4>| t.reshape([channels, batch * chunks, half_state]);
    // Each entry moved `by` chunks later, zeros in front.
    let later = |t: Complex<4>, by: usize| {
        let moved = |t: Tensor<4>| {
            let kept = t.slice([0..channels, 0..batch, 0..chunks - by, 0..half_state]);
            Tensor::cat(vec![Tensor::zeros([channels, batch, by, half_state], device), kept], 2)
        };
        Complex { re: moved(t.re), im: moved(t.im) }
    };
    let mut ends = Complex { re: to_chunks(contribution.re), im: to_chunks(contribution.im) };
    let mut span = 1;
    while span < chunks {
        let decay = modes.powers(Tensor::from_floats([(chunk * span) as f32], device)); // [channels, N/2, 1]
        let decay =
            Complex { re: decay.re.reshape([channels, 1, 1, half_state]), im: decay.im.reshape([channels, 1, 1, half_state]) };
        let earlier = decay.mul(later(ends.clone(), span));
        ends = Complex { re: ends.re + earlier.re, im: ends.im + earlier.im };
        span *= 2;
    }
    let entering = later(ends, 1);
    Complex { re: from_chunks(entering.re), im: from_chunks(entering.im) }
}

/// Work of one forward ([`super::flops`]): per direction, the kernel's Vandermonde sum
/// (two real products `[J, H] x [H, T]` per channel, `H = N / 2` modes, `J T >= n` the
/// steps filled) `4 D H J T`; the convolution by FFT, counting a real FFT of length `N`
/// as `2.5 N log2 N` operations (half a complex one's `5 N log2 N`): per sequence and
/// channel one forward and one inverse transform and the spectra's product, per channel
/// the kernel's transform; then the output layer `2 b n D^2`.
pub fn forward_flops(shape: &LayerShape, state_size: usize, bidirectional: bool, chunk_length: Option<usize>) -> f64 {
    let n = shape.positions.max(1);
    let chunk = chunk_length.unwrap_or_else(|| (n as f64).sqrt().ceil() as usize).clamp(1, n);
    let filled = (super::blocks::block_count(n, chunk) * chunk) as f64;
    let (d_model, h) = (shape.d_model as f64, (state_size / 2) as f64);
    let directions = if bidirectional { 2.0 } else { 1.0 };
    let kernels = directions * 4.0 * d_model * h * filled;
    kernels + crate::long_conv::forward_flops(shape.batch, shape.d_model, n) + shape.products(1.0, shape.n(), d_model, d_model)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{assert_close, assert_finite_gradients, assert_padding_is_invisible, padding_after, values};
    use burn::tensor::Distribution;

    type C64 = (f64, f64);
    fn mul(a: C64, b: C64) -> C64 {
        (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0)
    }
    fn div(a: C64, b: C64) -> C64 {
        let n = b.0 * b.0 + b.1 * b.1;
        ((a.0 * b.0 + a.1 * b.1) / n, (a.1 * b.0 - a.0 * b.1) / n)
    }

    /// Runs `x_t = A_bar x_{t-1} + B_bar u_t`, `y_t = 2 Re(C x_t)` step by step over plain
    /// numbers, from the layer's parameters and the output matrix `c`:
    /// `u: [len, channels]` -> `[len, channels]`.
    fn recurrence(layer: &S4d, c: (&Param<Tensor<2>>, &Param<Tensor<2>>), u: &[f32], len: usize) -> Vec<f32> {
        let log_dt = values(layer.log_dt.val());
        let channels = log_dt.len();
        let (log_a_real, a_imag) = (values(layer.log_a_real.val()), values(layer.a_imag.val()));
        let (b_real, b_imag) = (values(layer.b_real.val()), values(layer.b_imag.val()));
        let (c_real, c_imag) = (values(c.0.val()), values(c.1.val()));
        let modes = a_imag.len() / channels;
        let mut y = vec![0.0f32; len * channels];
        for h in 0..channels {
            let dt = (log_dt[h] as f64).exp();
            let mut state = vec![(0.0, 0.0); modes];
            let discrete: Vec<(C64, C64, C64)> = (0..modes)
                .map(|n| {
                    let i = h * modes + n;
                    let a = (-(log_a_real[i] as f64).exp(), a_imag[i] as f64);
                    let b = (b_real[i] as f64, b_imag[i] as f64);
                    let c = (c_real[i] as f64, c_imag[i] as f64);
                    let dt_a = (dt * a.0, dt * a.1);
                    let (a_bar, b_bar) = match layer.discretization {
                        Discretization::Zoh => {
                            let e = (dt_a.0.exp() * dt_a.1.cos(), dt_a.0.exp() * dt_a.1.sin());
                            (e, mul(div((e.0 - 1.0, e.1), a), b))
                        }
                        Discretization::Bilinear => {
                            let back = (1.0 - dt_a.0 / 2.0, -dt_a.1 / 2.0);
                            (div((1.0 + dt_a.0 / 2.0, dt_a.1 / 2.0), back), div((dt * b.0, dt * b.1), back))
                        }
                    };
                    (a_bar, b_bar, c)
                })
                .collect();
            for t in 0..len {
                let input = u[t * channels + h] as f64;
                let mut output = 0.0;
                for (x, (a_bar, b_bar, c)) in state.iter_mut().zip(&discrete) {
                    let decayed = mul(*a_bar, *x);
                    *x = (decayed.0 + b_bar.0 * input, decayed.1 + b_bar.1 * input);
                    output += 2.0 * mul(*c, *x).0;
                }
                y[t * channels + h] = output as f32;
            }
        }
        y
    }

    /// `y_t = (forward recurrence with C)_t + D u_t + (the recurrence with C' run from the
    /// end)_{t+1}`, the last term only when the layer has `C'`.
    fn bidirectional_recurrence(layer: &S4d, u: &[f32], len: usize, channels: usize) -> Vec<f32> {
        let skip = values(layer.skip.val());
        let mut y = recurrence(layer, (&layer.c_real, &layer.c_imag), u, len);
        for (t, row) in y.chunks_mut(channels).enumerate() {
            for (h, value) in row.iter_mut().enumerate() {
                *value += skip[h] * u[t * channels + h];
            }
        }
        if let Some((c_real, c_imag)) = &layer.c_backward {
            let reversed_u: Vec<f32> = u.chunks(channels).rev().flatten().copied().collect();
            let reversed_y = recurrence(layer, (c_real, c_imag), &reversed_u, len);
            // Reversed step len-1-s is step s; step t receives the sum over s > t, that is
            // reversed step len-2-t.
            for t in 0..len - 1 {
                for h in 0..channels {
                    y[t * channels + h] += reversed_y[(len - 2 - t) * channels + h];
                }
            }
        }
        y
    }

    #[test]
    fn s4d_the_causal_layer_gives_position_0_only_itself_and_the_bidirectional_one_everything() {
        let device = Device::flex();
        device.seed(84);
        let config = S4dConfig::new(4).with_state_size(8).with_dt_min(0.05).with_dt_max(0.5);
        let mut layer = config.init(&device);
        let u = Tensor::<3>::random([1, 9, 4], Distribution::Normal(0.0, 1.0), &device);
        // Change only the last step.
        let changed = u.clone().slice_assign([0..1, 8..9, 0..4], Tensor::ones([1, 1, 4], &device));
        let first = |layer: &S4d, u: Tensor<3>| values(layer.convolve(u).slice([0..1, 0..1, 0..4]));
        let moved = |layer: &S4d| {
            first(layer, u.clone()).iter().zip(first(layer, changed.clone())).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
        };
        let seen = moved(&layer);
        assert!(seen > 1e-4, "bidirectional: position 0 must see the last step (moved {seen})");
        layer.c_backward = None;
        // By FFT every output is computed from every input, so "nothing" is up to rounding:
        // well below the change the bidirectional layer shows.
        let scale = first(&layer, u.clone()).iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(moved(&layer) <= 1e-6 * scale, "causal: position 0 sees only itself (moved {})", moved(&layer));
        assert_eq!(
            values(layer.convolve_by_chunks(u.clone()).slice([0..1, 0..1, 0..4])),
            values(layer.convolve_by_chunks(changed).slice([0..1, 0..1, 0..4])),
            "chunk by chunk, exactly"
        );
    }

    #[test]
    fn s4d_convolution_equals_its_recurrence_step_by_step() {
        let (len, channels) = (11, 3);
        for init in [S4dInit::Lin, S4dInit::Inv] {
            for discretization in [Discretization::Zoh, Discretization::Bilinear] {
                // No chunk length: ceil(sqrt(11)) = 4, three chunks; 3: four chunks; 16: one.
                for chunk_length in [None, Some(3), Some(16)] {
                    let device = Device::flex();
                    device.seed(81);
                    let config = S4dConfig::new(channels)
                        .with_state_size(8)
                        .with_init(init)
                        .with_discretization(discretization)
                        .with_dt_min(0.05)
                        .with_dt_max(0.5);
                    let mut layer = config.with_chunk_length(chunk_length).init(&device);
                    // B's initial value is real; make it complex so that the test sees it.
                    layer.b_imag = Param::from_tensor(Tensor::random([channels, 4], Distribution::Normal(0.0, 1.0), &device));
                    let u = Tensor::<3>::random([1, len, channels], Distribution::Normal(0.0, 1.0), &device);
                    // By FFT (the CPU's path) and chunk by chunk (the GPU's), both directions
                    // and then the causal layer: the same forward recurrence, without the
                    // backward pass.
                    for causal in [false, true] {
                        if causal {
                            layer.c_backward = None;
                        }
                        let expected = bidirectional_recurrence(&layer, &values(u.clone()), len, channels);
                        let what = format!("causal {causal} {init:?} {discretization:?} chunk {chunk_length:?}");
                        assert_close(&values(layer.convolve(u.clone())), &expected, 1e-4, &format!("FFT, {what}"));
                        assert_close(&values(layer.convolve_by_chunks(u.clone())), &expected, 1e-4, &format!("chunks, {what}"));
                    }
                }
            }
        }
    }

    #[test]
    fn s4d_gradients_by_fft_equal_those_chunk_by_chunk() {
        // Every parameter's gradient and the input's, through the FFT (the CPU's path) and
        // chunk by chunk (the GPU's), on the same weights: lengths with ragged chunks.
        for (len, chunk_length) in [(13, None), (50, Some(8))] {
            let device = Device::flex().autodiff();
            device.seed(85);
            let layer = S4dConfig::new(6).with_state_size(16).with_chunk_length(chunk_length).init(&device);
            let u = Tensor::<3>::random([2, len, 6], Distribution::Normal(0.0, 1.0), &device);
            let weights = Tensor::<3>::random([2, len, 6], Distribution::Normal(0.0, 1.0), &device);
            let gradients = |by_fft: bool| {
                let u = u.clone().require_grad();
                let y = if by_fft { layer.convolve(u.clone()) } else { layer.convolve_by_chunks(u.clone()) };
                let grads = (y * weights.clone()).sum().backward();
                let mut all = vec![("input".to_string(), values(u.grad(&grads).unwrap()))];
                all.push(("log_dt".to_string(), values(layer.log_dt.val().grad(&grads).unwrap())));
                all.push(("skip".to_string(), values(layer.skip.val().grad(&grads).unwrap())));
                let named = [
                    ("log_a_real", &layer.log_a_real),
                    ("a_imag", &layer.a_imag),
                    ("b_real", &layer.b_real),
                    ("b_imag", &layer.b_imag),
                    ("c_real", &layer.c_real),
                    ("c_imag", &layer.c_imag),
                    ("c_backward.0", &layer.c_backward.as_ref().unwrap().0),
                    ("c_backward.1", &layer.c_backward.as_ref().unwrap().1),
                ];
                all.extend(named.iter().map(|(name, p)| (name.to_string(), values(p.val().grad(&grads).unwrap()))));
                all
            };
            for ((name, by_fft), (_, by_chunks)) in gradients(true).iter().zip(gradients(false)) {
                assert_close(by_fft, &by_chunks, 1e-5, &format!("d/d{name}, length {len}"));
            }
        }
    }

    #[test]
    fn s4d_padding_at_the_end_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(82);
        let layer = S4dConfig::new(8).with_state_size(8).init(&device);
        assert_padding_is_invisible(|x, padding| layer.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    #[test]
    fn s4d_gradients_are_finite_for_every_parameter() {
        for discretization in [Discretization::Zoh, Discretization::Bilinear] {
            let device = Device::flex().autodiff();
            device.seed(83);
            let layer = S4dConfig::new(8).with_state_size(8).with_discretization(discretization).init(&device);
            let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
            let grads = layer.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
            assert_eq!(assert_finite_gradients(&layer, &grads), 12, "{discretization:?}");
        }
    }
}
