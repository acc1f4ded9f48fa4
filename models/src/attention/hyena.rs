//! Hyena: gated long convolutions whose filters are implicit, the output of a small network
//! of the position.
//!
//! Paper: Poli, Massaroli, Nguyen, Fu, Dao, Baccus, Bengio, Ermon, Ré, "Hyena Hierarchy:
//! Towards Larger Convolutional Language Models", ICML 2023.
//! Family: long convolution (implicit filters with data-controlled gating; beyond
//! attention, beside the state-space models of the recurrence family).
//! Cost here: O(N d n log n) time and O(N d n) memory per sequence in the length n (`N`
//! the order, `d = d_model`): `N` long convolutions by FFT (`crate::long_conv`, on the
//! CPU; burn's direct `conv1d`, O(n^2), elsewhere), the projections O(N d^2 n), the
//! implicit filters O(n F (F + N d)) once per batch (`F` the filter network's width).
//!
//! The operator of order `N` (Section 3.1, Definition 3.1, and the forward pass of
//! Section 3.4, Algorithms 1 to 3), over inputs `u_t: [d_model]`:
//!
//! - Projection (Algorithm 1): a linear map of `u` to `N + 1` streams of `d_model`
//!   channels, each channel then through a short depthwise convolution (`short_filter_size`
//!   taps, 3 in the paper), causal: `s_t = b + sum_{k < S} w_k ⊙ p_{t-k}`. The streams are
//!   `v, x^1, ..., x^N` in that order (the official code puts `v` last; the order of the
//!   channels of a projection changes nothing). The short filter is Mamba's causal
//!   depthwise convolution (`crate::depthwise`, one fused operation on the CPU).
//! - The recurrence (Definition 3.1): `z^1 = v`, `z^{n+1}_t = x^n_t (h^n * z^n)_t` for
//!   `n = 1..N`, `y = z^{N+1}`: long convolutions interleaved with gates, the operator
//!   `H(u) = D_x^N S_h^N ... D_x^1 S_h^1` of Section 3.2 applied to `v` without forming a
//!   matrix. The layer's output is `out_proj(y)`, a linear map back to `d_model`.
//!
//! Order semantics: this follows the paper's definition, `N` long filters and `N` gates.
//! The official code (HazyResearch/safari, `src/models/sequence/hyena.py`,
//! `HyenaOperator.forward`) computes, for its `order = N`, `N - 1` long convolutions, the
//! first gate applied before the first convolution: `x^0 ⊙ h * (x^1 ⊙ v)` at order 2.
//!
//! The implicit filters (Section 3.3, Algorithm 2): `h_t = Window(t) · FFN(PE(t))`, one
//! filter per order and channel (`N d` of them), all from one network:
//!
//! - `PE(l)`, the positional encoding of lag `l` (as the official `PositionalEmbedding`):
//!   `t = l / L` with `L = max_length`, then `cos(2 pi f_k l / L)` and `-sin(2 pi f_k l / L)`
//!   for `K = positional_bands` frequencies `f_k` evenly spaced from `1e-4` to `K - 1`:
//!   `2K + 1` features. They are fixed here (the official code trains them at a learning
//!   rate of its own, `lr_pos_emb`).
//! - `FFN`: `Linear(2K + 1, F)`, then two `Linear(F, F)`, each followed by `Sin`, the sine
//!   activation with a trained frequency per unit, `sin(omega ⊙ x)` (one `omega: [F]`
//!   shared by the three activations, as the official `Sin` module is), then
//!   `Linear(F, N d)` without bias (`F = filter_width`, 64 in the paper).
//! - `Window(t) = exp(-alpha_c t)` per channel, the rates `alpha_c` evenly spaced over the
//!   `N d` channels (the official `ExponentialModulation`, fixed as there) so that the
//!   window falls to `1e-2` at `t = fast_decay` on the fastest channel and at
//!   `t = slow_decay` on the slowest (0.3 and 1.5 there).
//! - A bias: the official code adds `bias ⊙ z` to each long convolution
//!   (`HyenaFilter.forward`, through `fftconv_ref`'s `u * D`), a trained weight per order
//!   and channel (standard normal at initialisation), which is the filter's lag 0 raised
//!   by `bias`; here it is added to lag 0 of the filter.
//!
//! The defaults are the official code's Pile configuration
//! (`configs/experiment/pile/hyena.yaml`: 33 positional features, so 16 bands, width 64,
//! sine frequency 14, short filters of 3) with the order of the paper, 2; they are cheap
//! at LRA's sizes. The paper reports no Long Range Arena results (its experiments,
//! Section 4, are associative recall, language modelling on WikiText103 and The Pile,
//! SuperGLUE, runtime, and ImageNet and CIFAR-10 classification), so it has no LRA row
//! in the published table and no LRA configuration.
//!
//! Bidirectional (the default): Hyena is causal, for language. A classifier reading a CLS
//! token at position 0 gets nothing from a causal layer but that position, so, as S4D and
//! the LRU here, the layer by default also reads the future: the filter network has a
//! second output head giving each long convolution an anticausal filter of its own,
//! `h'`, applied strictly after each step (`crate::long_conv::two_sided`),
//! `(h * z)_t = sum_{s <= t} h[t - s] z_s + sum_{s > t} h'[s - t - 1] z_s`, with the same
//! window. (The official `fftconv_ref` likewise takes an optional second kernel for the
//! lags before 0, `k_rev`; there it also adds to lag 0.)
//! `bidirectional: false` gives the paper's causal operator. The short filters stay causal.
//!
//! Padding (placed at the end of each sequence): the input is zeroed at padded positions,
//! but the projection's and the short filter's biases make the streams non-zero there
//! again, and the anticausal filter reads later steps. So the streams are zeroed at padded
//! positions after the short filter, and with them every `z^n` (`z^1 = v`, and each
//! later one is gated by a stream), before its long convolution: the convolution is
//! linear, so real tokens then sum over real tokens only. (Zeroing the streams once keeps
//! no tensor beyond the streams themselves, where zeroing each `z^n` kept one per order.)
//! The causal short filter reads only earlier steps, real for a real token when padding
//! comes last, and the gates are pointwise. A sequence padded at
//! its end thus gives its real tokens exactly the outputs of the same sequence without
//! padding: the filters depend on the lag and `max_length`, never on the padded length.
//! The layer takes no heads.

// ndarray is deprecated in burn, and kept selectable here.
#![allow(deprecated)]

use std::f64::consts::PI;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

use super::softmax::dropout;
use crate::dense::apply_dense;

use super::flops::LayerShape;
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Settings, at_least_one, fit, in_sequences_of, within};
use crate::columns::columns;
use crate::cpu::{self, RowMajor, runs_natively};
use crate::depthwise::causal_depthwise_conv;
use crate::long_conv::{convolve, two_sided};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n log n) time, O(n) memory (gated long convolutions by FFT)";

/// The window's value at `t = fast_decay` (`slow_decay`) on its fastest (slowest) channel.
const WINDOW_TARGET: f64 = 1e-2;

/// `Linear(F, F)` layers between the filter network's first and last (the official
/// `num_inner_mlps`).
const INNER_LAYERS: usize = 2;

#[derive(Config, Debug)]
pub struct HyenaConfig {
    /// Input and output width.
    pub d_model: usize,
    /// The longest sequence: lags are measured in units of it.
    pub max_length: usize,
    /// Dropout before the output projection.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// `N`: long convolutions and gates, each with its own filter.
    #[config(default = 2)]
    pub order: usize,
    /// `F`, the width of the filter network.
    #[config(default = 64)]
    pub filter_width: usize,
    /// `K`: frequencies of the positional encoding (`2K + 1` features with `t`).
    #[config(default = 16)]
    pub positional_bands: usize,
    /// Initial frequency `omega` of the filter network's sine activations.
    #[config(default = 14.0)]
    pub sine_frequency: f64,
    /// Taps of the short causal depthwise filter on each stream.
    #[config(default = 3)]
    pub short_filter_size: usize,
    /// Where (in units of `max_length`) the fastest channel's window reaches 1e-2.
    #[config(default = 0.3)]
    pub fast_decay: f64,
    /// Where the slowest channel's window reaches 1e-2.
    #[config(default = 1.5)]
    pub slow_decay: f64,
    /// Add the anticausal filters; `false` gives the causal operator.
    #[config(default = true)]
    pub bidirectional: bool,
}

impl HyenaConfig {
    /// Refuses an order, width, band count or short filter of 0, a sine frequency that is
    /// not positive, and decay times that are not `0 < fast_decay <= slow_decay`.
    fn check(&self) -> Result<(), String> {
        at_least_one("order", self.order)?;
        at_least_one("filter_width", self.filter_width)?;
        at_least_one("positional_bands", self.positional_bands)?;
        at_least_one("short_filter_size", self.short_filter_size)?;
        if !(self.sine_frequency.is_finite() && self.sine_frequency > 0.0) {
            return Err(format!("sine_frequency ({}) must be positive", self.sine_frequency));
        }
        match 0.0 < self.fast_decay && self.fast_decay <= self.slow_decay && self.slow_decay.is_finite() {
            true => Ok(()),
            false => Err(format!(
                "fast_decay ({}) and slow_decay ({}) must satisfy 0 < fast_decay <= slow_decay",
                self.fast_decay, self.slow_decay
            )),
        }
    }

    pub fn init(&self, device: &Device) -> Hyena {
        if let Err(problem) = self.check() {
            panic!("Hyena: {problem}");
        }
        let (d_model, width) = (self.d_model, self.filter_width);
        let streams = (self.order + 1) * d_model;
        let directions = if self.bidirectional { 2 } else { 1 };
        // PyTorch's defaults, as the official code's layers have them: uniform within
        // 1/sqrt(fan_in), here the short filter's taps.
        let tap = 1.0 / (self.short_filter_size as f64).sqrt();
        let short = Initializer::Uniform { min: -tap, max: tap };
        let mut layers = vec![LinearConfig::new(2 * self.positional_bands + 1, width).init(device)];
        layers.extend((0..INNER_LAYERS).map(|_| LinearConfig::new(width, width).init(device)));
        Hyena {
            input: LinearConfig::new(d_model, streams).init(device),
            short_filter: short.init([self.short_filter_size, streams], device),
            short_bias: short.init([streams], device),
            filter: ImplicitFilter {
                layers,
                frequency: Initializer::Constant { value: self.sine_frequency }.init([width], device),
                head: LinearConfig::new(width, directions * self.order * d_model).with_bias(false).init(device),
                bias: Initializer::Normal { mean: 0.0, std: 1.0 }.init([self.order, d_model], device),
                max_length: self.max_length.max(1),
                positional_bands: self.positional_bands,
                fast_decay: self.fast_decay,
                slow_decay: self.slow_decay,
                bidirectional: self.bidirectional,
            },
            output: LinearConfig::new(d_model, d_model).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            order: self.order,
        }
    }
}

/// Hyena's own settings in a run's configuration (`"attention": {"hyena": {...}}`): its
/// order, its filters (network, positional encoding, window, short filter) and direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HyenaSettings {
    pub order: usize,
    pub filter_width: usize,
    pub positional_bands: usize,
    pub sine_frequency: f64,
    pub short_filter_size: usize,
    pub fast_decay: f64,
    pub slow_decay: f64,
    pub bidirectional: bool,
}

impl HyenaSettings {
    /// The layer's config with these settings (dropout at its default).
    fn config(&self, d_model: usize, max_length: usize) -> HyenaConfig {
        HyenaConfig::new(d_model, max_length)
            .with_order(self.order)
            .with_filter_width(self.filter_width)
            .with_positional_bands(self.positional_bands)
            .with_sine_frequency(self.sine_frequency)
            .with_short_filter_size(self.short_filter_size)
            .with_fast_decay(self.fast_decay)
            .with_slow_decay(self.slow_decay)
            .with_bidirectional(self.bidirectional)
    }
}

impl Settings for HyenaSettings {
    type Layer = Hyena;
    const MODEL: ModelCard = ModelCard {
        name: "hyena",
        title: "Hyena, gated implicit long convolutions (Poli et al. 2023)",
        family: "long convolution (implicit filters with gating)",
        cost: COST,
    };

    fn defaults(_max_length: usize) -> HyenaSettings {
        let c = HyenaConfig::new(1, 1);
        HyenaSettings {
            order: c.order,
            filter_width: c.filter_width,
            positional_bands: c.positional_bands,
            sine_frequency: c.sine_frequency,
            short_filter_size: c.short_filter_size,
            fast_decay: c.fast_decay,
            slow_decay: c.slow_decay,
            bidirectional: c.bidirectional,
        }
    }

    /// The short filter cut to the sequence: taps beyond it would read only zeros.
    fn fitted_to(self, positions: usize) -> HyenaSettings {
        HyenaSettings { short_filter_size: fit(self.short_filter_size, positions), ..self }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        self.config(1, positions)
            .check()
            .and_then(|()| within("short_filter_size", self.short_filter_size, positions))
            .map_err(in_sequences_of(positions))
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> Hyena {
        // Hyena has no attention width: it mixes tokens at d_model.
        self.config(layer.d_model, layer.max_length).with_dropout(layer.dropout).init(device)
    }
}

/// The implicit filters of every order and channel (Section 3.3): `Window(t) · FFN(PE(t))`,
/// and the bias at lag 0.
#[derive(Module, Debug)]
pub struct ImplicitFilter {
    /// `Linear(2K + 1, F)` then `Linear(F, F)` twice, each followed by the sine.
    pub layers: Vec<Linear>,
    /// `omega: [F]`, the sine activations' frequencies.
    pub frequency: Param<Tensor<1>>,
    /// `Linear(F, directions N d)` without bias: the causal filters' `N d` channels, then
    /// (bidirectional) the anticausal filters'.
    pub head: Linear,
    /// `bias: [N, d_model]`, added to lag 0 of the causal filters.
    pub bias: Param<Tensor<2>>,
    #[module(skip)]
    pub max_length: usize,
    #[module(skip)]
    pub positional_bands: usize,
    #[module(skip)]
    pub fast_decay: f64,
    #[module(skip)]
    pub slow_decay: f64,
    #[module(skip)]
    pub bidirectional: bool,
}

/// `count` values evenly spaced from `first` to `last` (`first` alone when `count` is 1), as
/// torch's `linspace`.
fn evenly_spaced(first: f64, last: f64, count: usize) -> Vec<f64> {
    let step = if count > 1 { (last - first) / (count - 1) as f64 } else { 0.0 };
    (0..count).map(|i| first + step * i as f64).collect()
}

impl ImplicitFilter {
    /// `PE(l)` for the lags `l = 0..n`: `[n, 2K + 1]`, the columns `t = l / L`, then the
    /// `K` cosines, then the `K` negated sines.
    pub fn positional_encoding(&self, n: usize, device: &Device) -> Tensor<2> {
        let bands = self.positional_bands;
        let frequencies = evenly_spaced(1e-4, (bands - 1) as f64, bands);
        let length = self.max_length as f64;
        let mut features = Vec::with_capacity(n * (2 * bands + 1));
        for l in 0..n {
            let angle = 2.0 * PI * l as f64 / length;
            features.push((l as f64 / length) as f32);
            features.extend(frequencies.iter().map(|f| (f * angle).cos() as f32));
            features.extend(frequencies.iter().map(|f| -(f * angle).sin() as f32));
        }
        Tensor::from_data(TensorData::new(features, [n, 2 * bands + 1]), device)
    }

    /// `alpha_c: [N d]`, the window's decay rates, `ln(1/target) / slow_decay` up to
    /// `ln(1/target) / fast_decay`.
    pub fn decay_rates(&self, channels: usize) -> Vec<f64> {
        let rate = -WINDOW_TARGET.ln();
        evenly_spaced(rate / self.slow_decay, rate / self.fast_decay, channels)
    }

    /// The filters' responses without the bias, `Window(t) · FFN(PE(t))` for the lags
    /// `0..n`: `[directions N d, n]`, the rows of the causal filters (order-major, then
    /// channel) before those of the anticausal ones, whose column `m` is lag `-(m + 1)`.
    pub fn responses(&self, n: usize, device: &Device) -> Tensor<2> {
        self.responses_by_lag(n, device).transpose()
    }

    /// [`ImplicitFilter::responses`] as the network gives them, a row per lag: `[n,
    /// directions N d]`.
    fn responses_by_lag(&self, n: usize, device: &Device) -> Tensor<2> {
        let omega = self.frequency.val().unsqueeze::<2>(); // [1, F]
        let mut hidden = self.positional_encoding(n, device);
        for layer in &self.layers {
            hidden = (apply_dense(layer, hidden) * omega.clone()).sin();
        }
        let values = apply_dense(&self.head, hidden); // [n, directions N d]
        let [_, rows] = values.dims();
        let directions = if self.bidirectional { 2 } else { 1 };
        let channels = rows / directions;
        // Window(t) = exp(-alpha_c t), the same rates for both directions' channels.
        let rates: Vec<f32> = self.decay_rates(channels).repeat(directions).iter().map(|&a| a as f32).collect();
        windowed(values, Tensor::from_data(TensorData::new(rates, [rows]), device), self.max_length)
    }

    /// The long convolutions' kernels, one per order, `[d_model, 2n - 1]` each (lags
    /// `-(n - 1)..=n - 1`, as `crate::long_conv::convolve` takes them; `[d_model, 1]` for
    /// one step): the causal responses with the bias at lag 0, and (bidirectional) the
    /// anticausal responses.
    ///
    /// On the CPU backends each kernel is one fused operation that reads its lags out of
    /// the responses and whose backward writes their gradient in the responses' own layout
    /// at once. Composed ([`composed_kernels`], elsewhere), every slice of the responses,
    /// the concatenation and the flip keep a node whose backward builds a zero tensor of
    /// its input's size and copies its part into it: a dozen passes over `[directions N d,
    /// n]` tensors (16 MiB at 4K tokens) per layer and step, on one thread.
    pub fn kernels(&self, n: usize, device: &Device) -> Vec<Tensor<2>> {
        let responses = self.responses_by_lag(n, device);
        let bias = self.bias.val();
        if !runs_natively(&responses) {
            return composed_kernels(responses.transpose(), bias, self.bidirectional);
        }
        (0..bias.dims()[0])
            .map(|order| {
                Tensor::from_dispatch(<Dispatch as FusedFilterKernel>::filter_kernel(
                    responses.clone().into_dispatch(),
                    bias.clone().into_dispatch(),
                    order,
                    self.bidirectional,
                ))
            })
            .collect()
    }
}

/// [`ImplicitFilter::kernels`] by burn's operations: `responses: [directions N d, n]`,
/// `bias: [N, d]`.
fn composed_kernels(responses: Tensor<2>, bias: Tensor<2>, bidirectional: bool) -> Vec<Tensor<2>> {
    let n = responses.dims()[1];
    let [order, d_model] = bias.dims();
    let rows = |first: usize| responses.clone().slice([first..first + d_model, 0..n]);
    (0..order)
        .map(|i| {
            let lag0 = rows(i * d_model).slice([0..d_model, 0..1]) + bias.clone().slice([i..i + 1, 0..d_model]).transpose();
            let causal = match n {
                1 => lag0,
                _ => Tensor::cat(vec![lag0, rows(i * d_model).slice([0..d_model, 1..n])], 1),
            };
            match (bidirectional, n) {
                // One step has no other lag.
                (_, 1) | (false, _) => two_sided_or_alone(causal, None),
                (true, _) => two_sided_or_alone(causal, Some(rows((order + i) * d_model))),
            }
        })
        .collect()
}

/// Where the kernel of one order reads its lags: the responses `[n, rows]` (a row per
/// lag), `rows = directions orders d_model`.
#[derive(Clone, Copy, Debug)]
struct KernelPlace {
    n: usize,
    rows: usize,
    d_model: usize,
    orders: usize,
    order: usize,
    bidirectional: bool,
}

impl KernelPlace {
    /// The kernel's lags: `2n - 1`, or 1 for one step.
    fn width(&self) -> usize {
        if self.n == 1 { 1 } else { 2 * self.n - 1 }
    }

    /// The kernel's column of lag 0.
    fn lag0(&self) -> usize {
        self.width() - self.n
    }

    /// The responses' column of channel `c`'s causal filter.
    fn causal(&self, c: usize) -> usize {
        self.order * self.d_model + c
    }

    /// The responses' column of channel `c`'s anticausal filter, if the kernel has one.
    fn anticausal(&self, c: usize) -> Option<usize> {
        (self.bidirectional && self.n > 1).then_some((self.orders + self.order) * self.d_model + c)
    }
}

/// One order's kernel on plain numbers: `responses: [n, rows]`, `bias: [orders, d_model]`
/// -> `[d_model, width]`: lag `l >= 0` (column `lag0 + l`) the causal response at `l`, plus
/// the bias at lag 0; lag `-(m + 1)` (column `n - 2 - m`) the anticausal response at `m`,
/// or 0. In parallel tasks of a few channels' rows.
fn kernel_values(responses: &[f32], bias: &[f32], at: KernelPlace) -> Vec<f32> {
    let (width, lag0) = (at.width(), at.lag0());
    let ([out], _) = cpu::par_blocks(at.d_model * width, KERNEL_CHANNELS * width, |start, [out]| {
        for (c, row) in (start / width..).zip(out.chunks_mut(width)) {
            let lag = |l: usize, column: usize| responses[l * at.rows + column];
            for (l, value) in row[lag0..].iter_mut().enumerate() {
                *value = lag(l, at.causal(c));
            }
            row[lag0] += bias[at.causal(c)];
            if let Some(column) = at.anticausal(c) {
                for (m, value) in row[..at.n - 1].iter_mut().rev().enumerate() {
                    *value = lag(m, column);
                }
            }
        }
    });
    out
}

/// [`kernel_values`]' backward: the kernel's gradient `[d_model, width]` -> those of the
/// responses (`[n, rows]`, zero outside the order's columns) and of the bias (`[orders,
/// d_model]`, zero outside the order's row). In parallel tasks of a few lags' rows.
fn kernel_gradients(grad: &[f32], at: KernelPlace) -> (Vec<f32>, Vec<f32>) {
    let (width, lag0) = (at.width(), at.lag0());
    let ([responses], _) = cpu::par_blocks(at.n * at.rows, KERNEL_LAGS * at.rows, |start, [out]| {
        let (first, lags) = (start / at.rows, out.len() / at.rows);
        for c in 0..at.d_model {
            let g = &grad[c * width..(c + 1) * width];
            for (row, l) in out.chunks_mut(at.rows).zip(first..first + lags) {
                row[at.causal(c)] = g[lag0 + l];
                if let Some(column) = at.anticausal(c).filter(|_| l + 1 < at.n) {
                    row[column] = g[at.n - 2 - l];
                }
            }
        }
    });
    let mut bias = vec![0.0; at.orders * at.d_model];
    for c in 0..at.d_model {
        bias[at.causal(c)] = grad[c * width + lag0];
    }
    (responses, bias)
}

/// Channels (kernel rows) per parallel task of [`kernel_values`].
const KERNEL_CHANNELS: usize = 16;

/// Lags (response rows) per parallel task of [`kernel_gradients`].
const KERNEL_LAGS: usize = 16;

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedFilterKernel: Backend {
    /// [`ImplicitFilter::kernels`]' kernel of `order`: `responses: [n, directions N d]`,
    /// `bias: [N, d]` -> `[d, 2n - 1]` (`[d, 1]` for `n = 1`).
    fn filter_kernel(
        responses: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        order: usize,
        bidirectional: bool,
    ) -> FloatTensor<Self>;
}

/// The place of `order`'s kernel in responses and a bias of these shapes.
fn kernel_place(responses: &Shape, bias: &Shape, order: usize, bidirectional: bool) -> KernelPlace {
    KernelPlace { n: responses[0], rows: responses[1], d_model: bias[1], orders: bias[0], order, bidirectional }
}

impl<B: RowMajor> FusedFilterKernel for B {
    fn filter_kernel(responses: FloatTensor<B>, bias: FloatTensor<B>, order: usize, bidirectional: bool) -> FloatTensor<B> {
        let at = kernel_place(&responses.shape(), &bias.shape(), order, bidirectional);
        let kernel = B::with_all([responses, bias], |[responses, bias]| kernel_values(responses, bias, at));
        B::from_values(kernel, Shape::new([at.d_model, at.width()]))
    }
}

/// The kernel's backward node: it keeps the kernel's place alone (the kernel is a copy of
/// numbers, its gradient a copy back).
#[derive(Debug)]
struct FilterKernelBackward;

impl<B: RowMajor> Backward<B, 2> for FilterKernelBackward {
    type State = KernelPlace;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let at = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let (responses, bias) = B::with_values(grad, |grad| kernel_gradients(grad, at));
        let [responses_node, bias_node] = ops.parents;
        if let Some(node) = responses_node {
            grads.register::<B>(node.id, B::from_values(responses, Shape::new([at.n, at.rows])));
        }
        if let Some(node) = bias_node {
            grads.register::<B>(node.id, B::from_values(bias, Shape::new([at.orders, at.d_model])));
        }
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedFilterKernel for Autodiff<B, C> {
    fn filter_kernel(
        responses: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        order: usize,
        bidirectional: bool,
    ) -> FloatTensor<Self> {
        let (responses, responses_node) = responses.into_parts();
        let (bias, bias_node) = bias.into_parts();
        let at = kernel_place(&responses.shape(), &bias.shape(), order, bidirectional);
        let kernel = B::filter_kernel(responses, bias, order, bidirectional);
        match FilterKernelBackward.prepare::<C>([responses_node, bias_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(at, kernel),
            OpsKind::UnTracked(prep) => prep.finish(kernel),
        }
    }
}

/// `values ⊙ Window`, `Window[l, c] = exp(-rate_c l / L)` for the lags `l = 0..n` and
/// `L = max_length`: `values: [n, channels]`, `rates: [channels]` -> `[n, channels]`.
///
/// On the CPU backends one fused operation whose backward recomputes the window (an
/// exponential per entry, once per layer and step) rather than keeping it: a product with
/// the window as a tensor keeps that `[n, 2 N d_model]` tensor (16 MiB at 4K tokens,
/// `d_model` 256) in every layer from the forward to the backward. Elsewhere burn's
/// operations.
pub fn windowed(values: Tensor<2>, rates: Tensor<1>, max_length: usize) -> Tensor<2> {
    if !(runs_natively(&values) && runs_natively(&rates)) {
        let [n, channels] = values.dims();
        let device = values.device();
        let t = Tensor::<1, Int>::arange(0..n as i64, &device).float().div_scalar(max_length as f64).reshape([n, 1]);
        return values * (t * rates.reshape([1, channels])).neg().exp();
    }
    Tensor::from_dispatch(<Dispatch as FusedWindow>::windowed(values.into_dispatch(), rates.into_dispatch(), max_length))
}

/// `values ⊙ Window` on a CPU backend, in parallel tasks of whole rows (lags).
fn window_product<B: RowMajor>(values: FloatTensor<B>, rates: FloatTensor<B>, max_length: usize) -> FloatTensor<B> {
    let rates = B::with_values(rates, <[f32]>::to_vec);
    let channels = rates.len();
    B::map_values(values, |values| {
        let ([out], _) = cpu::par_blocks(values.len(), cpu::rows_per_task(channels) * channels, |start, [out]| {
            let rows = out.chunks_mut(channels).zip(values[start..].chunks(channels));
            for (l, (out, values)) in (start / channels..).zip(rows) {
                let t = l as f32 / max_length as f32;
                for ((out, value), rate) in out.iter_mut().zip(values).zip(&rates) {
                    *out = value * (-t * rate).exp();
                }
            }
        });
        out
    })
}

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedWindow: Backend {
    /// [`windowed`]: `values: [n, channels]`, `rates: [channels]` -> `[n, channels]`.
    fn windowed(values: FloatTensor<Self>, rates: FloatTensor<Self>, max_length: usize) -> FloatTensor<Self>;
}

impl<B: RowMajor> FusedWindow for B {
    fn windowed(values: FloatTensor<B>, rates: FloatTensor<B>, max_length: usize) -> FloatTensor<B> {
        window_product::<B>(values, rates, max_length)
    }
}

/// The window's backward node: it keeps the rates and `L`; the gradient of `values` is the
/// output's times the window, recomputed.
#[derive(Debug)]
struct WindowBackward;

impl<B: RowMajor> Backward<B, 1> for WindowBackward {
    type State = (FloatTensor<B>, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (rates, max_length) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |output_grad| window_product::<B>(output_grad, rates, max_length));
    }
}

impl<B: RowMajor, C: CheckpointStrategy> FusedWindow for Autodiff<B, C> {
    fn windowed(values: FloatTensor<Self>, rates: FloatTensor<Self>, max_length: usize) -> FloatTensor<Self> {
        let (values, node) = values.into_parts();
        let (rates, _) = rates.into_parts();
        match WindowBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((rates.clone(), max_length), window_product::<B>(values, rates, max_length)),
            OpsKind::UnTracked(prep) => prep.finish(window_product::<B>(values, rates, max_length)),
        }
    }
}

/// [`two_sided`], but a one-step kernel is its lag 0 alone (`[channels, 1]`).
fn two_sided_or_alone(causal: Tensor<2>, anticausal: Option<Tensor<2>>) -> Tensor<2> {
    match causal.dims()[1] {
        1 => causal,
        _ => two_sided(causal, anticausal),
    }
}

#[derive(Module, Debug)]
pub struct Hyena {
    /// `d_model -> (N + 1) d_model`: the streams `v, x^1, ..., x^N`, side by side.
    pub input: Linear,
    /// `w: [S, (N + 1) d_model]`, row `k` weighing the projection `k` steps earlier.
    pub short_filter: Param<Tensor<2>>,
    /// `b: [(N + 1) d_model]`, the short filter's bias.
    pub short_bias: Param<Tensor<1>>,
    pub filter: ImplicitFilter,
    /// `out_proj`: `d_model -> d_model`.
    pub output: Linear,
    pub dropout: Dropout,
    #[module(skip)]
    pub order: usize,
}

impl Hyena {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        // Zeroed at padded positions once, every z^n is (see the top comment). A batch
        // without padding skips the products with `real` (ones: the same numbers).
        let streams = match padding.clone().any().into_scalar() {
            true => {
                let real = padding.bool_not().float().reshape([batch, len, 1]);
                self.streams(x * real.clone()) * real
            }
            false => self.streams(x),
        };
        let y = self.recurrence(streams);
        apply_dense(&self.output, dropout(y, &self.dropout))
    }

    /// Algorithm 1: the projection and the short causal filter,
    /// `u: [batch, len, d_model]` -> `[batch, len, (N + 1) d_model]`.
    pub fn streams(&self, u: Tensor<3>) -> Tensor<3> {
        // Tap k of the short filter weighs the projection k steps earlier (zeros before the
        // sequence): the causal depthwise convolution's tap `taps - 1 - k`.
        let weight = self.short_filter.val().transpose().flip([1]); // [channels, taps]
        causal_depthwise_conv(apply_dense(&self.input, u), weight, self.short_bias.val())
    }

    /// Definition 3.1: `z^1 = v`, `z^{n+1} = x^n ⊙ (h^n * z^n)`.
    /// `streams: [batch, len, (N + 1) d_model]` -> `y = z^{N+1}: [batch, len, d_model]`.
    pub fn recurrence(&self, streams: Tensor<3>) -> Tensor<3> {
        let [_, len, channels] = streams.dims();
        let d_model = channels / (self.order + 1);
        let stream = |i: usize| columns(streams.clone(), i * d_model, d_model);
        let mut z = stream(0);
        for (n, kernel) in self.filter.kernels(len, &streams.device()).into_iter().enumerate() {
            z = stream(n + 1) * convolve(z, kernel);
        }
        z
    }
}

impl AttentionLayer for Hyena {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// Work of one forward ([`super::flops`]), `D = d_model`, order `N`:
/// the projection to `N + 1` streams `2 b n D (N + 1) D` and the output layer `2 b n D^2`;
/// the short filters `2 b n (N + 1) D S`; the filter network on the `n` lags, once per
/// batch, `2 n F (2K + 1 + 2F + directions N D)`; each of the `N` long convolutions by
/// FFT as [`crate::long_conv::forward_flops`] counts them.
pub fn forward_flops(shape: &LayerShape, settings: &HyenaSettings) -> f64 {
    let (b, n, d_model) = (shape.batch as f64, shape.n(), shape.d_model as f64);
    let order = settings.order as f64;
    let (width, features) = (settings.filter_width as f64, (2 * settings.positional_bands + 1) as f64);
    let directions = if settings.bidirectional { 2.0 } else { 1.0 };
    let projections = shape.products(1.0, n, d_model, (order + 1.0) * d_model) + shape.products(1.0, n, d_model, d_model);
    let short = 2.0 * b * n * (order + 1.0) * d_model * settings.short_filter_size as f64;
    let network = 2.0 * n * width * (features + INNER_LAYERS as f64 * width + directions * order * d_model);
    let convolutions = order * crate::long_conv::forward_flops(shape.batch, shape.d_model, shape.positions.max(1));
    projections + short + network + convolutions
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{assert_close, assert_finite_gradients, assert_padding_is_invisible, padding_after, values};
    use burn::tensor::Distribution;

    /// The fused window equals `exp(-rate_c l / L)` times the values, and its gradient the
    /// output's gradient times the same window (against plain f64 loops), on both CPU
    /// backends.
    #[test]
    fn the_fused_window_and_its_gradient_equal_the_definition() {
        let (n, channels, max_length) = (37, 5, 50);
        for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
            device.seed(71);
            let input = Tensor::<2>::random([n, channels], Distribution::Normal(0.0, 1.0), &device).require_grad();
            let g = Tensor::<2>::random([n, channels], Distribution::Normal(0.0, 1.0), &device);
            let rates = Tensor::<1>::random([channels], Distribution::Uniform(0.5, 20.0), &device);
            let out = windowed(input.clone(), rates.clone(), max_length);
            let grads = (out.clone() * g.clone()).sum().backward();
            let rates = values(rates);
            let window: Vec<f64> = (0..n * channels)
                .map(|i| (-((i / channels) as f64 / max_length as f64) * rates[i % channels] as f64).exp())
                .collect();
            let times_window = |x: Vec<f32>| -> Vec<f32> { x.iter().zip(&window).map(|(x, w)| (*x as f64 * w) as f32).collect() };
            assert_close(&values(out), &times_window(values(input.clone())), 1e-6, "values");
            assert_close(&values(input.grad(&grads).expect("a gradient")), &times_window(values(g)), 1e-6, "gradient");
        }
    }

    /// On the CPU the fused kernels equal burn's composition (slices, the bias's sum, the
    /// concatenation and the flip) bit for bit, and so do the gradients of the responses
    /// and of the bias: with and without the anticausal half, for one step and several.
    #[test]
    fn hyena_fused_filter_kernels_and_their_gradients_equal_the_composition_bit_for_bit() {
        let device = Device::flex().autodiff();
        device.seed(96);
        let normal = Distribution::Normal(0.0, 1.0);
        let (order, d_model) = (3, 5);
        for (n, bidirectional) in [(37, true), (37, false), (2, true), (1, true), (1, false)] {
            let rows = if bidirectional { 2 } else { 1 } * order * d_model;
            let responses = Tensor::<2>::random([n, rows], normal, &device).require_grad();
            let bias = Tensor::<2>::random([order, d_model], normal, &device).require_grad();
            let width = if n == 1 { 1 } else { 2 * n - 1 };
            let g: Vec<Tensor<2>> = (0..order).map(|_| Tensor::random([d_model, width], normal, &device)).collect();
            let run = |fused: bool| {
                let kernels = match fused {
                    true => (0..order)
                        .map(|i| {
                            Tensor::from_dispatch(<Dispatch as FusedFilterKernel>::filter_kernel(
                                responses.clone().into_dispatch(),
                                bias.clone().into_dispatch(),
                                i,
                                bidirectional,
                            ))
                        })
                        .collect(),
                    false => composed_kernels(responses.clone().transpose(), bias.clone(), bidirectional),
                };
                let loss = kernels.iter().zip(&g).map(|(k, g)| (k.clone() * g.clone()).sum()).reduce(|a, b| a + b).unwrap();
                let grads = loss.backward();
                let mut out: Vec<Vec<f32>> = kernels.into_iter().map(values).collect();
                out.push(values(responses.grad(&grads).expect("a gradient")));
                out.push(values(bias.grad(&grads).expect("a gradient")));
                out
            };
            let (fused, composed) = (run(true), run(false));
            assert_eq!(fused, composed, "n {n}, bidirectional {bidirectional}");
            assert!(fused[0].iter().any(|&v| v != 0.0) && fused[order].iter().any(|&v| v != 0.0), "n {n}");
        }
    }

    /// A linear layer's `y = x W + b` on plain numbers; `W: [in, out]` row-major.
    fn linear(layer: &Linear, x: &[f64]) -> Vec<f64> {
        let weight = values(layer.weight.val());
        let outputs = weight.len() / x.len();
        let bias = layer.bias.as_ref().map(|b| values(b.val()));
        (0..outputs)
            .map(|o| {
                let sum: f64 = x.iter().enumerate().map(|(i, v)| v * weight[i * outputs + o] as f64).sum();
                sum + bias.as_ref().map_or(0.0, |b| b[o] as f64)
            })
            .collect()
    }

    /// The implicit filters by their definition, `Window(t) FFN(PE(t))` for every lag
    /// `0..n`, from the layer's parameters in f64: `[lag][directions N d]`.
    fn filters_by_definition(filter: &ImplicitFilter, n: usize) -> Vec<Vec<f64>> {
        let omega: Vec<f64> = values(filter.frequency.val()).iter().map(|&w| w as f64).collect();
        let bands = filter.positional_bands;
        let length = filter.max_length as f64;
        (0..n)
            .map(|l| {
                let t = l as f64 / length;
                // PE: t, the cosines, the negated sines, at frequencies 1e-4, ..., K - 1.
                let frequency = |k: usize| {
                    if bands == 1 { 1e-4 } else { 1e-4 + k as f64 * (bands as f64 - 1.0 - 1e-4) / (bands as f64 - 1.0) }
                };
                let mut hidden: Vec<f64> = std::iter::once(t)
                    .chain((0..bands).map(|k| (2.0 * PI * frequency(k) * l as f64 / length).cos()))
                    .chain((0..bands).map(|k| -(2.0 * PI * frequency(k) * l as f64 / length).sin()))
                    .collect();
                for layer in &filter.layers {
                    hidden = linear(layer, &hidden).iter().zip(&omega).map(|(v, w)| (w * v).sin()).collect();
                }
                let out = linear(&filter.head, &hidden);
                let channels = out.len() / if filter.bidirectional { 2 } else { 1 };
                // The window: rates from ln(100) / slow_decay to ln(100) / fast_decay.
                let (slow, fast) = (100f64.ln() / filter.slow_decay, 100f64.ln() / filter.fast_decay);
                out.iter()
                    .enumerate()
                    .map(|(c, v)| {
                        let c = c % channels;
                        let rate = if channels == 1 { slow } else { slow + (fast - slow) * c as f64 / (channels - 1) as f64 };
                        v * (-rate * t).exp()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn hyena_implicit_filter_equals_window_times_ffn_of_the_positional_encoding() {
        let device = Device::flex();
        device.seed(91);
        for (bidirectional, bands, max_length, n) in [(true, 16, 20, 20), (false, 1, 30, 9), (true, 3, 7, 12)] {
            let layer = HyenaConfig::new(3, max_length)
                .with_filter_width(8)
                .with_positional_bands(bands)
                .with_bidirectional(bidirectional)
                .init(&device);
            let got = values(layer.filter.responses(n, &device));
            let by_definition = filters_by_definition(&layer.filter, n);
            let rows = by_definition[0].len();
            assert_eq!(rows, if bidirectional { 2 } else { 1 } * 2 * 3);
            // responses is [rows, n].
            let expected: Vec<f32> = (0..rows).flat_map(|c| by_definition.iter().map(move |lag| lag[c] as f32)).collect();
            assert_close(&got, &expected, 1e-4, &format!("bidirectional {bidirectional}, {bands} bands, n {n}"));
        }
    }

    /// The whole layer on one sequence `u: [len][d_model]` in plain f64 loops: the
    /// projection, the short causal filter, the recurrence by direct convolutions with the
    /// layer's filters (and the bias at lag 0), the gates, the output projection.
    fn plain_layer(layer: &Hyena, u: &[Vec<f32>]) -> Vec<f32> {
        let len = u.len();
        let d_model = u[0].len();
        let order = layer.order;
        let channels = (order + 1) * d_model;
        let projected: Vec<Vec<f64>> =
            u.iter().map(|row| linear(&layer.input, &row.iter().map(|&v| v as f64).collect::<Vec<_>>())).collect();
        let taps = values(layer.short_filter.val());
        let short_bias = values(layer.short_bias.val());
        let taps_count = taps.len() / channels;
        let streams: Vec<Vec<f64>> = (0..len)
            .map(|t| {
                (0..channels)
                    .map(|c| {
                        short_bias[c] as f64
                            + (0..taps_count.min(t + 1)).map(|k| taps[k * channels + c] as f64 * projected[t - k][c]).sum::<f64>()
                    })
                    .collect()
            })
            .collect();
        let responses = filters_by_definition(&layer.filter, len); // [lag][directions N d]
        let bias = values(layer.filter.bias.val());
        let mut z: Vec<Vec<f64>> = streams.iter().map(|row| row[..d_model].to_vec()).collect();
        for n in 0..order {
            let causal = |c: usize, lag: usize| {
                responses[lag][n * d_model + c] + if lag == 0 { bias[n * d_model + c] as f64 } else { 0.0 }
            };
            let convolved: Vec<Vec<f64>> = (0..len)
                .map(|t| {
                    (0..d_model)
                        .map(|c| {
                            let past: f64 = (0..=t).map(|s| causal(c, t - s) * z[s][c]).sum();
                            let future: f64 = match layer.filter.bidirectional {
                                true => (t + 1..len).map(|s| responses[s - t - 1][(order + n) * d_model + c] * z[s][c]).sum(),
                                false => 0.0,
                            };
                            past + future
                        })
                        .collect()
                })
                .collect();
            z = (0..len).map(|t| (0..d_model).map(|c| streams[t][(n + 1) * d_model + c] * convolved[t][c]).collect()).collect();
        }
        z.iter().flat_map(|row| linear(&layer.output, row)).map(|v| v as f32).collect()
    }

    #[test]
    fn hyena_operator_equals_its_definition_by_direct_convolutions_in_both_directions() {
        let (batch, len, d_model) = (2, 11, 4);
        for (order, bidirectional, short) in [(2, true, 3), (2, false, 3), (1, true, 1), (3, true, 4)] {
            let device = Device::flex();
            device.seed(92);
            let layer = HyenaConfig::new(d_model, 16)
                .with_order(order)
                .with_filter_width(8)
                .with_positional_bands(4)
                .with_short_filter_size(short)
                .with_bidirectional(bidirectional)
                .init(&device);
            let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
            let got = values(layer.forward(x.clone(), Tensor::<2, Bool>::full([batch, len], false, &device)));
            let expected: Vec<f32> = values(x)
                .chunks(len * d_model)
                .flat_map(|sequence| plain_layer(&layer, &sequence.chunks(d_model).map(<[f32]>::to_vec).collect::<Vec<_>>()))
                .collect();
            assert_close(&got, &expected, 1e-4, &format!("order {order}, bidirectional {bidirectional}, short filter {short}"));
        }
    }

    #[test]
    fn hyena_the_causal_layer_gives_position_0_only_itself_and_the_bidirectional_one_everything() {
        let device = Device::flex();
        device.seed(93);
        let (len, d_model) = (9, 4);
        let x = Tensor::<3>::random([1, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        // Change every step after the first.
        let changed = x.clone().slice_assign([0..1, 1..len, 0..d_model], Tensor::ones([1, len - 1, d_model], &device));
        let no_padding = || Tensor::<2, Bool>::full([1, len], false, &device);
        for bidirectional in [true, false] {
            let layer = HyenaConfig::new(d_model, len).with_filter_width(8).with_bidirectional(bidirectional).init(&device);
            let first = |x: Tensor<3>| values(layer.forward(x, no_padding()).slice([0..1, 0..1, 0..d_model]));
            let moved = first(x.clone()).iter().zip(first(changed.clone())).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            match bidirectional {
                true => assert!(moved > 1e-4, "bidirectional: position 0 must see the later steps (moved {moved})"),
                false => assert_eq!(moved, 0.0, "causal: position 0 sees only itself"),
            }
        }
    }

    #[test]
    fn hyena_padding_at_the_end_does_not_change_real_tokens() {
        for bidirectional in [true, false] {
            let device = Device::flex();
            device.seed(94);
            let layer = HyenaConfig::new(8, 10).with_filter_width(8).with_bidirectional(bidirectional).init(&device);
            assert_padding_is_invisible(|x, padding| layer.forward(x, padding), 8, &[3, 7, 10], 10, &device);
        }
    }

    #[test]
    fn hyena_gradients_are_finite_for_every_parameter() {
        for bidirectional in [true, false] {
            let device = Device::flex().autodiff();
            device.seed(95);
            let layer = HyenaConfig::new(8, 7).with_filter_width(8).with_bidirectional(bidirectional).init(&device);
            let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
            let grads = layer.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
            // input 2, short filter 2, filter network 3 x 2 + omega + head + bias, output 2.
            assert_eq!(assert_finite_gradients(&layer, &grads), 15, "bidirectional {bidirectional}");
        }
    }

    #[test]
    fn hyena_check_refuses_empty_filters_and_orders_naming_them_and_the_length() {
        let defaults = HyenaSettings::defaults(100);
        assert_eq!(defaults.check(100), Ok(()));
        let refused = [
            ("order", HyenaSettings { order: 0, ..defaults.clone() }),
            ("filter_width", HyenaSettings { filter_width: 0, ..defaults.clone() }),
            ("positional_bands", HyenaSettings { positional_bands: 0, ..defaults.clone() }),
            ("short_filter_size", HyenaSettings { short_filter_size: 0, ..defaults.clone() }),
            ("short_filter_size", HyenaSettings { short_filter_size: 101, ..defaults.clone() }),
            ("sine_frequency", HyenaSettings { sine_frequency: 0.0, ..defaults.clone() }),
            ("fast_decay", HyenaSettings { fast_decay: 2.0, ..defaults.clone() }),
        ];
        for (setting, settings) in refused {
            let problem = settings.check(100).unwrap_err();
            assert!(problem.contains(setting) && problem.contains("100"), "{setting}: {problem}");
        }
        // Fitting cuts the short filter to a sequence shorter than it.
        assert_eq!(defaults.clone().fitted_to(2).check(2), Ok(()));
        assert!(defaults.check(2).is_err());
    }
}
