//! Mamba: a selective state-space block, run by a scan.
//!
//! Paper: Gu, Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
//! arXiv 2312.00752, 2023 (COLM 2024).
//! Family: recurrence (a selective state space: a diagonal linear recurrence whose step,
//! input and output matrices depend on the input).
//! Cost here: O(n E d (N + d)) time per sequence (the projections, and the scan over
//! `E d` channels of `N` states each), linear in the length n; memory O(n E d) in the
//! layer's tensors: the `[n, E d, N]` states are never a tensor, on the CPU (the fused
//! scan, `crate::scan::selective_scan`, whose forward keeps the states of every 128th
//! step and whose backward recomputes the others 128 steps at a time). Elsewhere (wgpu,
//! cuda) the scan is a log-depth doubling scan in tensor ops, O(n log n E d N) work and
//! O(n E d N) memory.
//!
//! The selective SSM (Section 3.2, Algorithm 2 "SSM + Selection (S6)"), over inputs
//! `x_t: [D]` (`D = E d_model` channels here), each channel with `N` real states:
//!
//! - `B_t = s_B(x_t) = Linear_N(x_t)` and `C_t = s_C(x_t) = Linear_N(x_t)`, both `[N]`,
//!   shared by the channels;
//! - `Delta_t = tau_Delta(Parameter + s_Delta(x_t))` with `tau_Delta = softplus` and
//!   `s_Delta` the low-rank projection of Section 3.6 ("Parameterization of Delta"):
//!   `Linear_R` then `Linear_D` (`dt_proj`, whose bias is Algorithm 2's Parameter),
//!   `R = ceil(d_model / 16)` in the paper's code;
//! - discretisation (Section 2, eq. 4, zero-order hold): `A_bar_t = exp(Delta_t A)`; for
//!   `B` the paper's code (`selective_scan_ref`, and the `step` of `mamba_simple.py`,
//!   `dB = dt * B`) takes eq. 4's first-order term, `B_bar_t = Delta_t B_t`, as here;
//! - the recurrence (eq. 2a, 2b, now time-varying): `h_t = A_bar_t ⊙ h_{t-1} + Delta_t B_t x_t`,
//!   `y_t = C_t · h_t + D ⊙ x_t` (`h_t: [D, N]`, `D ⊙ x_t` the skip of Section 3.4).
//!
//! `A = -exp(A_log): [D, N]`, real (Section 3.6, "Real vs. Complex": real for language
//! and discrete inputs), at its S4D-Real initialisation (Section 3.6, "Initialization")
//! `A_n = -(n + 1)` for `n = 0..N`; `dt_proj`'s bias so that `softplus(bias)` is
//! log-uniform in `[dt_min, dt_max] = [0.001, 0.1]` (floored at 1e-4; the paper's code),
//! its weight uniform in `±R^(-1/2)`; `D = 1`. Defaults: `N = 16` states and convolution
//! width 4, the paper's (Section 3.4 and its code), but expansion `E = 1`, not the
//! paper's 2: on the CPU at the `quick` preset's sizes (`d_model` 64, 128 tokens, batch
//! 16) a bidirectional layer's forward and backward took about four times as long with
//! `E = 2` (about 180 ms against 45 ms; LRU's layer 17 ms), which the default sweep
//! cannot afford. `expand: 2` gives the paper's block. Even at `E = 1` a `quick` run
//! trains slower than LRU's (on the Text task about 14 s against 9.5 s, 13.9 against
//! 20.1 steps per second, measured one after the other on a loaded two-core machine):
//! the scan carries `16 E d_model` real states per token against LRU's 64 complex ones.
//! On the CPU the block's convolution, softplus and SiLUs are fused operations
//! ([`crate::depthwise`], [`crate::activation`]), each one pass where burn's compositions
//! take several over `[batch, len, E d_model]` tensors (with burn's, the same `quick` run
//! took 16 to 19 s).
//! `in_proj`, `x_proj` and `out_proj` take burn's default initialisation (PyTorch's).
//!
//! The block (Section 3.4, Figure 3), used here as the encoder block's token-mixing
//! sub-layer (its layer norm and residual are the encoder block's, as for S4D and LRU
//! here, and the block keeps its feed-forward sub-layer; the paper stacks Mamba blocks
//! alone): `[x, z] = in_proj(u)` (`d_model -> 2 E d_model`, no bias), `x` through a
//! causal depthwise convolution (width 4, with a bias) and SiLU, the selective SSM on it,
//! gated, `y ⊙ SiLU(z)`, then `out_proj` (`E d_model -> d_model`, no bias).
//!
//! Bidirectional (the default): a classifier here may read a CLS token at position 0,
//! which a causal scan gives only itself. As in the bidirectional Mamba of Vision Mamba
//! (Zhu et al., "Vision Mamba", ICML 2024, Algorithm 1), a second branch runs over the
//! reversed sequence with its own convolution, `x_proj`, `dt_proj`, `A` and `D`, the
//! projections `in_proj`, `out_proj` and the gate `z` being shared; the two outputs are
//! summed before the gate: `out_proj((y_fwd + y_bwd) ⊙ SiLU(z))`. Position t's backward
//! branch reads positions t to the end. `bidirectional: false` gives the paper's causal
//! block. On the CPU the backward branch's convolution reads `u` from its end in place
//! ([`crate::depthwise::causal_depthwise_conv_of_reversed`]) and the other reversals are
//! copies of whole rows ([`crate::reversal`]), the same numbers as burn's `flip`, whose
//! strided views cost a twentieth of a 4K step in serial element-by-element copies.
//!
//! The paper reports no Long Range Arena results (its experiments are synthetic tasks,
//! language, DNA, audio and speed, Section 4), so there is no published row and no LRA
//! configuration to follow.
//!
//! Padding (sequences are padded at their end): padded inputs are zeroed before
//! `in_proj`, which has no bias, so `x` and `z` are 0 there, and `Delta` is forced to 0
//! at padded positions, so a padded step is the identity on the state (`A_bar = 1`,
//! `B_bar x = 0`). Forwards, real tokens come before any padding; backwards, the reversed
//! scan meets the padding first and keeps its zero state through it, and the convolution
//! reads zeros there as it reads zeros beyond the end of an unpadded sequence. A sequence
//! padded at its end thus gives its real tokens exactly the outputs of the same sequence
//! alone. The layer takes no heads; its width is `E d_model`.

use burn::module::{Initializer, Param};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use serde::{Deserialize, Serialize};

use super::flops::LayerShape;
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Settings, at_least_one, in_sequences_of};
use crate::activation::{silu, softplus};
use crate::columns::columns;
use crate::dense::apply_dense;
use crate::depthwise::{causal_depthwise_conv, causal_depthwise_conv_of_reversed};
use crate::reversal::reverse_time;
use crate::scan::selective_scan;

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n) time and memory (a selective state space, run as a scan)";

/// The smallest initial step, as the paper's code floors it (`dt_init_floor`).
const DT_FLOOR: f64 = 1e-4;

#[derive(Config, Debug)]
pub struct MambaConfig {
    /// Input and output width.
    pub d_model: usize,
    /// `N`, the real states per channel.
    #[config(default = 16)]
    pub state_size: usize,
    /// `E`: the scan runs over `E d_model` channels (the paper's 2 costs here about four
    /// times 1's at the `quick` preset's sizes; see the top comment).
    #[config(default = 1)]
    pub expand: usize,
    /// Width of the causal depthwise convolution before the scan.
    #[config(default = 4)]
    pub conv_kernel: usize,
    /// `R`, the rank of `Delta`'s projection; `None`: `ceil(d_model / 16)`.
    pub dt_rank: Option<usize>,
    /// Smallest initial step `softplus(dt_proj bias)`.
    #[config(default = 0.001)]
    pub dt_min: f64,
    /// Largest initial step.
    #[config(default = 0.1)]
    pub dt_max: f64,
    /// Add the backward branch; `false` gives the causal block.
    #[config(default = true)]
    pub bidirectional: bool,
}

impl MambaConfig {
    /// `R` for this width.
    pub fn rank(&self) -> usize {
        self.dt_rank.unwrap_or(self.d_model.div_ceil(16))
    }

    pub fn init(&self, device: &Device) -> Mamba {
        if let Err(problem) = check_sizes(self.state_size, self.expand, self.conv_kernel, self.dt_rank, self.dt_min, self.dt_max)
        {
            panic!("Mamba: {problem}");
        }
        let inner = self.expand * self.d_model;
        Mamba {
            in_proj: LinearConfig::new(self.d_model, 2 * inner).with_bias(false).init(device),
            forward_branch: self.branch(inner, device),
            backward_branch: self.bidirectional.then(|| self.branch(inner, device)),
            out_proj: LinearConfig::new(inner, self.d_model).with_bias(false).init(device),
        }
    }

    /// One direction's convolution, projections, `A` and `D` over `inner` channels.
    fn branch(&self, inner: usize, device: &Device) -> MambaBranch {
        let (states, rank) = (self.state_size, self.rank());
        // PyTorch's default for a depthwise Conv1d: uniform in ±1/sqrt(width), weight and bias.
        let conv_bound = 1.0 / (self.conv_kernel as f64).sqrt();
        let conv = Initializer::Uniform { min: -conv_bound, max: conv_bound };
        let dt_bound = 1.0 / (rank as f64).sqrt();
        let mut dt_proj =
            LinearConfig::new(rank, inner).with_initializer(Initializer::Uniform { min: -dt_bound, max: dt_bound }).init(device);
        // softplus(bias) = dt, log-uniform in [dt_min, dt_max]: bias = dt + log(1 - exp(-dt)).
        let (log_min, log_max) = (self.dt_min.ln(), self.dt_max.ln());
        let dt_bias: Vec<f32> = Tensor::<1>::random([inner], Distribution::Uniform(0.0, 1.0), device)
            .into_data()
            .iter::<f32>()
            .map(|u| {
                let dt = (f64::from(u) * (log_max - log_min) + log_min).exp().max(DT_FLOOR);
                (dt + (-(-dt).exp_m1()).ln()) as f32
            })
            .collect();
        dt_proj.bias = Some(Param::from_data(TensorData::new(dt_bias, [inner]), device));
        // S4D-Real: A_n = -(n + 1), so A_log = log(n + 1), every channel alike.
        let a_log: Vec<f32> = (0..inner).flat_map(|_| (1..=states).map(|n| (n as f32).ln())).collect();
        MambaBranch {
            conv_weight: conv.init([inner, self.conv_kernel], device),
            conv_bias: conv.init([inner], device),
            x_proj: LinearConfig::new(inner, rank + 2 * states).with_bias(false).init(device),
            dt_proj,
            a_log: Param::from_data(TensorData::new(a_log, [inner, states]), device),
            skip: Initializer::Ones.init([inner], device),
        }
    }
}

/// Mamba's own settings in a run's configuration (`"attention": {"mamba": {...}}`): the
/// state size, expansion, convolution width, rank and initial range of `Delta`, and the
/// direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MambaSettings {
    pub state_size: usize,
    pub expand: usize,
    pub conv_kernel: usize,
    /// `None`: `ceil(d_model / 16)`.
    pub dt_rank: Option<usize>,
    pub dt_min: f64,
    pub dt_max: f64,
    pub bidirectional: bool,
}

/// Refuses a state size, expansion, convolution width or rank of 0 and an initial step
/// range that is not `0 < dt_min <= dt_max`.
fn check_sizes(
    state_size: usize,
    expand: usize,
    conv_kernel: usize,
    dt_rank: Option<usize>,
    dt_min: f64,
    dt_max: f64,
) -> Result<(), String> {
    at_least_one("state_size", state_size)?;
    at_least_one("expand", expand)?;
    at_least_one("conv_kernel", conv_kernel)?;
    if let Some(rank) = dt_rank {
        at_least_one("dt_rank", rank)?;
    }
    match 0.0 < dt_min && dt_min <= dt_max {
        true => Ok(()),
        false => Err(format!("dt_min ({dt_min}) and dt_max ({dt_max}) must satisfy 0 < dt_min <= dt_max")),
    }
}

impl Settings for MambaSettings {
    type Layer = Mamba;
    const MODEL: ModelCard = ModelCard {
        name: "mamba",
        title: "Mamba, selective state space (Gu and Dao 2023)",
        family: "recurrence (selective state space)",
        cost: COST,
    };

    fn defaults(_max_length: usize) -> MambaSettings {
        let c = MambaConfig::new(1);
        MambaSettings {
            state_size: c.state_size,
            expand: c.expand,
            conv_kernel: c.conv_kernel,
            dt_rank: c.dt_rank,
            dt_min: c.dt_min,
            dt_max: c.dt_max,
            bidirectional: c.bidirectional,
        }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        check_sizes(self.state_size, self.expand, self.conv_kernel, self.dt_rank, self.dt_min, self.dt_max)
            .map_err(in_sequences_of(positions))
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        let config = self.config(shape.d_model);
        forward_flops(shape, config.state_size, config.expand, config.conv_kernel, config.rank(), self.bidirectional)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> Mamba {
        // Mamba has no attention width: it mixes tokens at E d_model.
        self.config(layer.d_model).init(device)
    }
}

impl MambaSettings {
    fn config(&self, d_model: usize) -> MambaConfig {
        MambaConfig::new(d_model)
            .with_state_size(self.state_size)
            .with_expand(self.expand)
            .with_conv_kernel(self.conv_kernel)
            .with_dt_rank(self.dt_rank)
            .with_dt_min(self.dt_min)
            .with_dt_max(self.dt_max)
            .with_bidirectional(self.bidirectional)
    }
}

/// One direction of the block: the convolution and the selective SSM over `E d_model`
/// channels.
#[derive(Module, Debug)]
pub struct MambaBranch {
    /// The causal depthwise convolution's taps, `[E d_model, width]`; tap `width - 1`
    /// reads the current step, tap `k` the step `width - 1 - k` before it.
    pub conv_weight: Param<Tensor<2>>,
    pub conv_bias: Param<Tensor<1>>,
    /// `x -> [Delta's rank-R input, B, C]`: `E d_model -> R + 2 N`, no bias.
    pub x_proj: Linear,
    /// `R -> E d_model`, its bias Algorithm 2's Parameter of `Delta`.
    pub dt_proj: Linear,
    /// `log(-A): [E d_model, N]`.
    pub a_log: Param<Tensor<2>>,
    /// `D: [E d_model]`, the skip.
    pub skip: Param<Tensor<1>>,
}

impl MambaBranch {
    /// `u: [batch, len, E d_model]` (the `x` half of `in_proj`), `real: [batch, len, 1]`
    /// (1 at real tokens, 0 at padding; `None`: no padding) -> `y: [batch, len, E d_model]`,
    /// before the gate.
    pub fn forward(&self, u: Tensor<3>, real: Option<Tensor<3>>) -> Tensor<3> {
        self.scan(silu(self.convolve(u)), real)
    }

    /// The same over the sequence reversed, `forward(reverse_time(u), reverse_time(real))`,
    /// number for number: the convolution reads `u` from the end in place (no reversed copy
    /// of `u` is made or kept), and its output is in the reversed order, as is the result.
    pub fn forward_reversed(&self, u: Tensor<3>, real: Option<Tensor<3>>) -> Tensor<3> {
        let x = silu(causal_depthwise_conv_of_reversed(u, self.conv_weight.val(), self.conv_bias.val()));
        self.scan(x, real.map(reverse_time))
    }

    /// The selective SSM and its skip over `x`, the convolution's output after SiLU.
    fn scan(&self, x: Tensor<3>, real: Option<Tensor<3>>) -> Tensor<3> {
        let (delta, b, c) = self.selection(x.clone(), real);
        let inner = x.dims()[2];
        selective_scan(delta, self.a(), b, c, x.clone()) + x * self.skip.val().reshape([1, 1, inner])
    }

    /// `A = -exp(A_log): [E d_model, N]`.
    pub fn a(&self) -> Tensor<2> {
        self.a_log.val().exp().neg()
    }

    /// The input-dependent parameters of `x: [batch, len, E d_model]`: `Delta`
    /// (`[batch, len, E d_model]`, 0 where `real` is 0), `B` and `C` (`[batch, len, N]`).
    pub fn selection(&self, x: Tensor<3>, real: Option<Tensor<3>>) -> (Tensor<3>, Tensor<3>, Tensor<3>) {
        let (states, rank) = (self.a_log.dims()[1], self.dt_proj.weight.dims()[0]);
        let projected = apply_dense(&self.x_proj, x);
        let low_rank = columns(projected.clone(), 0, rank);
        let b = columns(projected.clone(), rank, states);
        let c = columns(projected, rank + states, states);
        // Delta = 0 makes a padded step the identity: exp(0 A) = 1, 0 B x = 0.
        let delta = softplus(apply_dense(&self.dt_proj, low_rank));
        let delta = match real {
            Some(real) => delta * real,
            None => delta,
        };
        (delta, b, c)
    }

    /// The causal depthwise convolution, `[batch, len, E d_model]` -> the same:
    /// `out_t = bias + sum_k w[k] u_{t - (width - 1) + k}`, zeros before the start.
    pub fn convolve(&self, u: Tensor<3>) -> Tensor<3> {
        causal_depthwise_conv(u, self.conv_weight.val(), self.conv_bias.val())
    }
}

#[derive(Module, Debug)]
pub struct Mamba {
    /// `d_model -> 2 E d_model` (`x`, then the gate `z`), no bias.
    pub in_proj: Linear,
    pub forward_branch: MambaBranch,
    /// The branch over the reversed sequence; `None` when causal.
    pub backward_branch: Option<MambaBranch>,
    /// `E d_model -> d_model`, no bias.
    pub out_proj: Linear,
}

impl Mamba {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        // A batch without padding skips the products with `real` (ones: the same numbers).
        let real = padding.clone().any().into_scalar::<bool>().then(|| padding.bool_not().float().reshape([batch, len, 1]));
        let xz = apply_dense(
            &self.in_proj,
            match &real {
                Some(real) => x * real.clone(),
                None => x,
            },
        );
        let inner = xz.dims()[2] / 2;
        let (u, z) = (columns(xz.clone(), 0, inner), columns(xz, inner, inner));
        let mut y = self.forward_branch.forward(u.clone(), real.clone());
        if let Some(branch) = &self.backward_branch {
            y = y + reverse_time(branch.forward_reversed(u, real));
        }
        apply_dense(&self.out_proj, y * silu(z))
    }
}

impl AttentionLayer for Mamba {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// Work of one forward ([`super::flops`]), over `D = E d_model` channels of `N` states:
/// `in_proj` (`[n, d_model] x [d_model, 2 D]`) and `out_proj` (`[n, D] x [D, d_model]`);
/// per direction the convolution (`width` multiply-adds per step and channel), `x_proj`
/// (`[n, D] x [D, R + 2 N]`), `dt_proj` (`[n, R] x [R, D]`) and the scan (per step,
/// channel and state: the decay's product and exponential, two multiply-adds for the
/// state, one for the readout, 7 operations).
pub fn forward_flops(
    shape: &LayerShape,
    state_size: usize,
    expand: usize,
    conv_kernel: usize,
    rank: usize,
    bidirectional: bool,
) -> f64 {
    let (n, d_model, states, rank) = (shape.n(), shape.d_model as f64, state_size as f64, rank as f64);
    let inner = (expand * shape.d_model) as f64;
    let directions = if bidirectional { 2.0 } else { 1.0 };
    let batch = shape.batch as f64;
    let branch = 2.0 * batch * n * inner * conv_kernel as f64
        + shape.products(1.0, n, inner, rank + 2.0 * states)
        + shape.products(1.0, n, rank, inner)
        + 7.0 * batch * n * inner * states;
    shape.products(1.0, n, d_model, 2.0 * inner) + directions * branch + shape.products(1.0, n, inner, d_model)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{assert_close, assert_finite_gradients, assert_padding_is_invisible, padding_after, values};

    /// A linear layer's weight `[in, out]` and bias as plain numbers.
    struct PlainLinear {
        weight: Vec<f64>,
        bias: Option<Vec<f64>>,
        outputs: usize,
    }

    fn f64s<const D: usize>(t: Tensor<D>) -> Vec<f64> {
        values(t).into_iter().map(f64::from).collect()
    }

    impl PlainLinear {
        fn of(linear: &Linear) -> PlainLinear {
            PlainLinear {
                outputs: linear.weight.dims()[1],
                weight: f64s(linear.weight.val()),
                bias: linear.bias.as_ref().map(|b| f64s(b.val())),
            }
        }

        fn apply(&self, x: &[f64]) -> Vec<f64> {
            (0..self.outputs)
                .map(|o| {
                    let bias = self.bias.as_ref().map_or(0.0, |b| b[o]);
                    x.iter().enumerate().fold(bias, |total, (i, v)| total + v * self.weight[i * self.outputs + o])
                })
                .collect()
        }
    }

    fn silu(v: f64) -> f64 {
        v / (1.0 + (-v).exp())
    }

    /// One branch over `u: [len][D]` (the `x` half of `in_proj`, in the branch's own time
    /// order) in plain loops: the causal convolution, SiLU, `x_proj`, `Delta` by `dt_proj`
    /// and softplus, the recurrence `h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t` state
    /// by state, `y_t = C_t . h_t + D x_t`.
    fn plain_branch(branch: &MambaBranch, u: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let (len, inner) = (u.len(), u[0].len());
        let (weight, bias) = (f64s(branch.conv_weight.val()), f64s(branch.conv_bias.val()));
        let width = weight.len() / inner;
        let (x_proj, dt_proj) = (PlainLinear::of(&branch.x_proj), PlainLinear::of(&branch.dt_proj));
        let a_log = f64s(branch.a_log.val());
        let states = a_log.len() / inner;
        let rank = dt_proj.weight.len() / inner;
        let skip = f64s(branch.skip.val());
        let mut h = vec![vec![0.0f64; states]; inner];
        let mut y = Vec::new();
        for t in 0..len {
            let x: Vec<f64> = (0..inner)
                .map(|d| {
                    let taps =
                        (0..width).filter(|&k| t + k + 1 >= width).map(|k| weight[d * width + k] * u[t + k + 1 - width][d]);
                    silu(bias[d] + taps.sum::<f64>())
                })
                .collect();
            let projected = x_proj.apply(&x);
            let (b, c) = (&projected[rank..rank + states], &projected[rank + states..]);
            let delta: Vec<f64> = dt_proj.apply(&projected[..rank]).into_iter().map(|v| (1.0 + v.exp()).ln()).collect();
            let row = (0..inner)
                .map(|d| {
                    let mut out = skip[d] * x[d];
                    for n in 0..states {
                        let a = -a_log[d * states + n].exp();
                        h[d][n] = (delta[d] * a).exp() * h[d][n] + delta[d] * b[n] * x[d];
                        out += c[n] * h[d][n];
                    }
                    out
                })
                .collect();
            y.push(row);
        }
        y
    }

    /// The block over one unpadded sequence `u: [len][d_model]` in plain loops.
    fn plain_block(layer: &Mamba, u: &[Vec<f64>]) -> Vec<f32> {
        let in_proj = PlainLinear::of(&layer.in_proj);
        let inner = in_proj.outputs / 2;
        let xz: Vec<Vec<f64>> = u.iter().map(|row| in_proj.apply(row)).collect();
        let x: Vec<Vec<f64>> = xz.iter().map(|row| row[..inner].to_vec()).collect();
        let mut y = plain_branch(&layer.forward_branch, &x);
        if let Some(branch) = &layer.backward_branch {
            let reversed: Vec<Vec<f64>> = x.iter().rev().cloned().collect();
            let backward = plain_branch(branch, &reversed);
            for (t, row) in y.iter_mut().enumerate() {
                row.iter_mut().zip(&backward[u.len() - 1 - t]).for_each(|(v, b)| *v += b);
            }
        }
        let out_proj = PlainLinear::of(&layer.out_proj);
        y.iter()
            .zip(&xz)
            .flat_map(|(row, xz)| {
                let gated: Vec<f64> = row.iter().zip(&xz[inner..]).map(|(v, z)| v * silu(*z)).collect();
                out_proj.apply(&gated)
            })
            .map(|v| v as f32)
            .collect()
    }

    // ndarray is deprecated in burn, and kept selectable here.
    #[allow(deprecated)]
    #[test]
    fn mamba_block_equals_its_definition_in_plain_loops() {
        let (batch, len, d_model) = (2, 11, 6);
        for device in [Device::flex(), Device::ndarray()] {
            device.seed(81);
            for bidirectional in [true, false] {
                let layer =
                    MambaConfig::new(d_model).with_state_size(5).with_expand(2).with_bidirectional(bidirectional).init(&device);
                let u = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
                let got = values(layer.forward(u.clone(), padding_after(&[len, len], len, &device)));
                let expected: Vec<f32> = f64s(u)
                    .chunks(len * d_model)
                    .flat_map(|sequence| plain_block(&layer, &sequence.chunks(d_model).map(<[f64]>::to_vec).collect::<Vec<_>>()))
                    .collect();
                assert_close(&got, &expected, 1e-4, &format!("bidirectional {bidirectional}"));
            }
        }
    }

    /// The initialisation: `A_n = -(n + 1)` in every channel, `softplus(dt_proj bias)` within
    /// `[dt_min, dt_max]`, `D = 1`, and the rank `ceil(d_model / 16)`.
    #[test]
    fn mamba_starts_at_s4d_real_with_steps_in_its_range() {
        let device = Device::flex();
        device.seed(82);
        let (dt_min, dt_max) = (0.002, 0.05);
        let layer = MambaConfig::new(40).with_state_size(7).with_expand(2).with_dt_min(dt_min).with_dt_max(dt_max).init(&device);
        let branch = &layer.forward_branch;
        assert_eq!(branch.dt_proj.weight.dims(), [3, 80], "rank ceil(40 / 16) = 3, 2 x 40 channels");
        let a = values(branch.a());
        for (i, value) in a.iter().enumerate() {
            assert!((value + (i % 7 + 1) as f32).abs() < 1e-5, "A[{i}] = {value}");
        }
        for bias in values(branch.dt_proj.bias.as_ref().unwrap().val()) {
            let step = (1.0 + f64::from(bias).exp()).ln();
            assert!(dt_min * 0.999 <= step && step <= dt_max * 1.001, "initial step {step}");
        }
        assert!(values(branch.skip.val()).iter().all(|&d| d == 1.0));
    }

    #[test]
    fn mamba_padding_at_the_end_does_not_change_real_tokens() {
        for bidirectional in [true, false] {
            let device = Device::flex();
            device.seed(83);
            let layer = MambaConfig::new(8).with_state_size(4).with_bidirectional(bidirectional).init(&device);
            assert_padding_is_invisible(|x, padding| layer.forward(x, padding), 8, &[3, 7, 1], 10, &device);
        }
    }

    #[test]
    fn mamba_gradients_are_finite_for_every_parameter() {
        for bidirectional in [true, false] {
            let device = Device::flex().autodiff();
            device.seed(84);
            let layer = MambaConfig::new(8).with_state_size(4).with_bidirectional(bidirectional).init(&device);
            let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
            let grads = layer.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
            // in_proj and out_proj; per branch the convolution's two, x_proj, dt_proj's two, A_log and D.
            let expected = if bidirectional { 16 } else { 9 };
            assert_eq!(assert_finite_gradients(&layer, &grads), expected, "bidirectional {bidirectional}");
        }
    }

    #[test]
    fn mamba_check_refuses_empty_sizes_naming_them_and_the_length() {
        let defaults = MambaSettings::defaults(100);
        assert_eq!(defaults.check(100), Ok(()));
        let refused = [
            ("state_size", MambaSettings { state_size: 0, ..defaults.clone() }),
            ("expand", MambaSettings { expand: 0, ..defaults.clone() }),
            ("conv_kernel", MambaSettings { conv_kernel: 0, ..defaults.clone() }),
            ("dt_rank", MambaSettings { dt_rank: Some(0), ..defaults.clone() }),
            ("dt_min", MambaSettings { dt_min: 0.5, dt_max: 0.1, ..defaults.clone() }),
        ];
        for (name, settings) in refused {
            let problem = settings.check(100).unwrap_err();
            assert!(problem.contains(name) && problem.contains("100"), "{problem}");
        }
    }
}
