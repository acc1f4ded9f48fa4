//! Mega: single-head gated attention beside a multi-dimensional damped moving average, and
//! its chunked form Mega-chunk.
//!
//! Paper: Ma, Zhou, Kong, He, Gui, Neubig, May, Zettlemoyer, "Mega: Moving Average Equipped
//! Gated Attention", ICLR 2023.
//! Family: fixed pattern + recurrence (attention within fixed chunks, Section 3.5, beside
//! an exponential moving average over the whole sequence, Section 3.1).
//! Cost here: with chunks of `c` (Mega-chunk, the default), O(n c z) time and O(n c) memory
//! for the attention and O(n log n d) time, O(n d) memory for the moving average, computed
//! as a long convolution by FFT (`crate::long_conv`) with a kernel built in O(n d h) time
//! by one product of two O(sqrt(n) d h) tables of powers (`Mega::ema_kernels`): linear but
//! for the FFT's log. With full attention (`chunk: None`, the paper's Mega) the
//! attention is O(n^2 z) time and O(n^2) memory.
//!
//! The layer (Section 3), over inputs `X: [n, d]` (`d = d_model`):
//!
//! 1. The multi-dimensional damped EMA (Section 3.1), per channel with an expansion of
//!    `h` dimensions (`ema_dim`): `u^(j)_t = beta_j x_t`,
//!    `h^(j)_t = alpha_j ⊙ u^(j)_t + (1 - alpha_j ⊙ delta_j) ⊙ h^(j)_{t-1}`,
//!    `y_t = sum_j eta_j h^(j)_t`, with `alpha = sigmoid(.)`, `delta = sigmoid(.)` in (0, 1)
//!    (the damping). From a zero state it unrolls into the causal convolution with the kernel
//!    `K[l] = sum_j eta_j alpha_j (1 - alpha_j delta_j)^l beta_j` (the convolution form the
//!    paper computes it in, by FFT), built here for every lag in one product and applied by
//!    FFT. As the released code does (`fairseq/modules/exponential_moving_average.py`),
//!    the output is `X' = SiLU(y + omega ⊙ x)` with a learned `omega: [d]`, and the kernel
//!    there carries a factor `sqrt(1/h)`, folded here into `eta`'s initialisation.
//! 2. Bidirectional, as the released code runs it on LRA (`mega_sentence_encoder_layer.py`
//!    builds its layers with `bidirectional=True`, and the EMA with `shift=True`): a second
//!    set of EMA parameters gives a kernel `K'` applied backwards in time, strictly after
//!    each step, `y_t = sum_{s <= t} K[t - s] x_s + sum_{s > t} K'[s - t] x_s`: the EMA run
//!    from the end, read before the current step enters it. `bidirectional: false` gives
//!    the causal layer.
//! 3. The gated attention (Sections 3.2-3.3): the shared representation
//!    `Z = SiLU(X' W_z + b_z): [n, z]`, queries and keys by a per-dimension scale and offset
//!    `Q = kappa_q ⊙ Z + mu_q`, `K = kappa_k ⊙ Z + mu_k`, values from the layer's input
//!    `V = SiLU(X W_v + b_v): [n, v]`, and `O = f(Q K^T / tau + b_rel) V` with
//!    - `f` softmax with `tau = sqrt(z)` (the default), or the Laplace function
//!      `f(x) = 1/2 (1 + erf((x - mu) / (sigma sqrt 2)))`, `mu = sqrt(1/2)`,
//!      `sigma = sqrt(1 / (4 pi))`, with `tau` the number of real keys (Section 3.2; `tau`
//!      as the released `element_attention` divides): the released LRA scripts
//!      (`examples/mega/README.lra.md`) use softmax for ListOps, Text and Retrieval and
//!      Laplace for Image, Pathfinder and Path-X;
//!    - `b_rel` the "simple" relative positional bias of the released code
//!      (`relative_positional_bias.py`, its default `--rel-pos-bias simple`): one learned
//!      scalar per offset `j - i`, `2 c - 1` of them for chunks of `c`;
//! 4. the reset gate `gamma = SiLU(X' W_gamma + b_gamma): [n, v]`, the update gate
//!    `phi = sigmoid(X' W_phi + b_phi): [n, d]`, the candidate
//!    `H = SiLU(X' W_h + (gamma ⊙ O) U_h + b_h): [n, d]` and the output
//!    `Y = phi ⊙ H + (1 - phi) ⊙ X` (Section 3.3). `W_phi`, `W_z`, `W_gamma` and `W_h` act
//!    on the same `X'` and are one product here (`from_ema`), as in the released code.
//!
//! Mega-chunk (Section 3.5): the sequence is cut into chunks of `c` positions and the
//! attention runs within each chunk only, while the EMA still runs over the whole sequence
//! and carries information across chunks: time and memory linear in `n`. A length that `c`
//! does not divide has its last chunk filled up with positions marked as padding
//! (`blocks::Blocks`), masked like padding, so the last chunk is shorter, never shifted;
//! a sequence shorter than `c` is one chunk. With one chunk covering the sequence it is
//! exactly full Mega (tested).
//!
//! Padding: padding is expected at the end of each sequence. Padded positions are zeroed
//! before anything else: the EMA is linear from a zero state with no bias, so zeros add
//! nothing to it in either direction, and padded keys are masked in the attention (softmax:
//! `MASKED_SCORE`; Laplace: weight 0, and they do not count in `tau`). A chunk holding only
//! padding gets finite weights (the finite masked score, and `tau` at least 1), never NaN.
//! A sequence padded at its end therefore gives its real tokens exactly the outputs of the
//! same sequence without padding (tested with several chunks and a ragged last one).
//!
//! Sizes and initialisation (the released code, `moving_average_gated_attention.py` and
//! `exponential_moving_average.py`): projections normal of std 0.02 with zero biases;
//! `kappa` normal of std 0.02, `mu` zero; the EMA's `alpha` and `delta` logits normal of
//! std 0.2, `beta` normal of std 0.02 around `(1, -1, 1, -1, ...)`, `eta` normal of
//! variance `1/h`, `omega` standard normal; the relative bias normal of std 0.02.
//! The layer takes no heads (one head, Section 3.2) and no attention width: `z`, `v` and
//! `h` are its own settings.
//!
//! LRA configuration of the paper (its Appendix D on LRA; the numbers below are those of
//! the released code, `fairseq/models/lra/model.py` and `examples/mega/README.lra.md`):
//! every task `h = 16`, SiLU, bidirectional EMA, mean pooling, the simple relative bias,
//! Adam (0.9, 0.98), linear decay, attention dropout 0;
//!
//! | task       | layers | d   | z  | v   | FFN | norm      | f       | lr    | dropout |
//! |------------|--------|-----|----|-----|-----|-----------|---------|-------|---------|
//! | ListOps    | 6      | 80  | 64 | 160 | 160 | layernorm | softmax | 0.001 | 0.1     |
//! | Text       | 4      | 128 | 64 | 256 | 256 | scalenorm | softmax | 0.004 | 0.1     |
//! | Retrieval  | 6      | 128 | 64 | 256 | 256 | scalenorm | softmax | 0.003 | 0.1     |
//! | Image      | 8      | 160 | 96 | 320 | 320 | batchnorm | laplace | 0.01  | 0.0     |
//! | Pathfinder | 6      | 128 | 64 | 256 | 256 | batchnorm | laplace | 0.01  | 0.0     |
//! | Path-X     | 4      | 128 | 64 | 256 | 256 | syncbatch | laplace | 0.01  | 0.0     |
//!
//! (Path-X's sizes are the Pathfinder architecture's, `mega_lra_pf128` reusing them.) The
//! chunk is a command-line setting there (`--chunk-size`, -1 for full attention).
//!
//! Defaults here: `h = 16` and `z = 64` (the paper's LRA values), softmax, bidirectional,
//! chunks of 128 positions (this harness's choice: the linear-cost form, at a chunk short
//! enough for the CPU), and `v = d` (`value_expansion: 1`), where every LRA configuration
//! above has `v = 2 d`: the projections are most of the layer's work, and at `2 d` they
//! cost about 1.6 times as much (one layer at 4K positions, d = 256, on a 2-core CPU: 2.8
//! times the Transformer's speed at `v = 2 d`, 4.7 times at `v = d`);
//! `value_expansion: 2` gives the paper's widths.
//! The layer's output is the paper's `Y`; the encoder block adds its own normalisation,
//! residual connection and feed-forward layer around it, as for every mechanism here.
//!
//! Published LRA accuracy: the paper's Table 2, rows Mega and Mega-chunk
//! (`harness/src/report/published.rs`).

use crate::activation::sigmoid;
use crate::dense::apply_dense;
use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use serde::{Deserialize, Serialize};

use super::blocks::{Blocks, block_count, block_scores, unblock};
use super::flops::LayerShape;
use super::heads::MASKED_SCORE;
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Scale, Settings, at_least_one, fit, in_sequences_of, within};
use super::softmax::{dropout, softmax_dropout};
use crate::columns::columns;
use crate::long_conv::{convolve, two_sided};

use crate::activation::{Activation, silu, silu_of_slice};
use crate::dense::DenseInput;

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n c) time and memory for attention in chunks of c, O(n log n) for the moving average (FFT)";

/// The attention function `f` of Section 3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionFunction {
    /// `softmax(Q K^T / sqrt(z) + b_rel)` over the real keys.
    Softmax,
    /// `laplace(Q K^T / n_real + b_rel)`, zero at padded keys.
    Laplace,
}

#[derive(Config, Debug)]
pub struct MegaConfig {
    /// Input and output width `d`.
    pub d_model: usize,
    /// Longest sequence: the relative bias of full attention (`chunk: None`) covers it.
    pub max_length: usize,
    /// Dropout on the EMA's output `X'` and on the candidate `H` (the released code's
    /// `--dropout`).
    #[config(default = 0.1)]
    pub dropout: f64,
    /// `h`, the EMA's expansion dimensions per channel.
    #[config(default = 16)]
    pub ema_dim: usize,
    /// `z`, the width of the shared representation, queries and keys.
    #[config(default = 64)]
    pub z_dim: usize,
    /// `v / d`: the values and the reset gate are `value_expansion * d_model` wide.
    #[config(default = 1)]
    pub value_expansion: usize,
    /// Positions per attention chunk `c` (Mega-chunk); `None`: full attention (Mega).
    #[config(default = "Some(128)")]
    pub chunk: Option<usize>,
    #[config(default = "AttentionFunction::Softmax")]
    pub attention_function: AttentionFunction,
    /// Add the backward EMA (its own parameters); `false` gives the causal EMA.
    #[config(default = true)]
    pub bidirectional: bool,
}

impl MegaConfig {
    pub fn init(&self, device: &Device) -> Mega {
        let sizes = [("ema_dim", self.ema_dim), ("z_dim", self.z_dim), ("value_expansion", self.value_expansion)];
        for (name, value) in sizes {
            if let Err(problem) = at_least_one(name, value) {
                panic!("Mega: {problem}");
            }
        }
        if let Some(0) = self.chunk {
            panic!("Mega: chunk must be at least 1");
        }
        let (d_model, ema_dim, z_dim) = (self.d_model, self.ema_dim, self.z_dim);
        let value_dim = self.value_expansion * d_model;
        let rows = if self.bidirectional { 2 * d_model } else { d_model };
        let span = self.chunk.unwrap_or(self.max_length).max(1);
        let normal = |std: f64| Initializer::Normal { mean: 0.0, std };
        // beta around (1, -1, 1, -1, ...) along the expansion, as the released code.
        let signs: Vec<f32> = (0..rows * ema_dim).map(|i| if (i % ema_dim) % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let beta = Tensor::<2>::from_data(TensorData::new(signs, [rows, ema_dim]), device)
            + Tensor::random([rows, ema_dim], Distribution::Normal(0.0, 0.02), device);
        let projection = |d_in: usize, d_out: usize| {
            let mut linear = LinearConfig::new(d_in, d_out).with_initializer(normal(0.02)).init(device);
            linear.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
            linear
        };
        Mega {
            ema_alpha: normal(0.2).init([rows, ema_dim], device),
            ema_delta: normal(0.2).init([rows, ema_dim], device),
            ema_beta: Param::from_tensor(beta),
            ema_eta: normal((1.0 / ema_dim as f64).sqrt()).init([rows, ema_dim], device),
            ema_skip: normal(1.0).init([d_model], device),
            value: projection(d_model, value_dim),
            from_ema: projection(d_model, 2 * d_model + z_dim + value_dim),
            output: projection(value_dim, d_model),
            qk_scale: normal(0.02).init([2, z_dim], device),
            qk_offset: Initializer::Zeros.init([2, z_dim], device),
            relative_bias: normal(0.02).init([2 * span - 1], device),
            dropout: DropoutConfig::new(self.dropout).init(),
            chunk: self.chunk,
            span,
            attention_function: self.attention_function,
            bidirectional: self.bidirectional,
        }
    }
}

/// Mega's own settings in a run's configuration (`"attention": {"mega": {...}}`): the
/// chunk (`null`: full attention), the EMA's expansion, the widths of the attention, its
/// function and the EMA's direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MegaSettings {
    pub chunk: Option<usize>,
    pub ema_dim: usize,
    pub z_dim: usize,
    pub value_expansion: usize,
    pub attention_function: AttentionFunction,
    pub bidirectional: bool,
}

impl Settings for MegaSettings {
    type Layer = Mega;
    const MODEL: ModelCard = ModelCard {
        name: "mega",
        title: "Mega-chunk, moving average equipped gated attention (Ma et al. 2023)",
        family: "fixed pattern + recurrence (chunked gated attention, damped moving average)",
        cost: COST,
    };

    fn defaults(max_length: usize) -> MegaSettings {
        let c = MegaConfig::new(1, max_length);
        MegaSettings {
            chunk: c.chunk.map(|chunk| fit(chunk, max_length)),
            ema_dim: c.ema_dim,
            z_dim: c.z_dim,
            value_expansion: c.value_expansion,
            attention_function: c.attention_function,
            bidirectional: c.bidirectional,
        }
    }

    fn fitted_to(self, positions: usize) -> MegaSettings {
        MegaSettings { chunk: self.chunk.map(|chunk| fit(chunk, positions)), ..self }
    }

    fn scaled(self, scale: &Scale) -> MegaSettings {
        MegaSettings { chunk: self.chunk.map(|chunk| scale.length(chunk)), ..self }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        let in_context = in_sequences_of(positions);
        match self.chunk {
            Some(0) => return Err(in_context("chunk must be at least 1".into())),
            Some(chunk) => within("chunk", chunk, positions)?,
            None => {}
        }
        at_least_one("ema_dim", self.ema_dim).map_err(in_context)?;
        at_least_one("z_dim", self.z_dim).map_err(in_context)?;
        at_least_one("value_expansion", self.value_expansion).map_err(in_context)
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> Mega {
        // Mega has one head and widths of its own: heads and qkv_dim do not apply.
        MegaConfig::new(layer.d_model, layer.max_length)
            .with_chunk(self.chunk)
            .with_ema_dim(self.ema_dim)
            .with_z_dim(self.z_dim)
            .with_value_expansion(self.value_expansion)
            .with_attention_function(self.attention_function)
            .with_bidirectional(self.bidirectional)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct Mega {
    /// Logits of the EMA's `alpha: [directions * d_model, h]` (the backward EMA's rows after
    /// the forward one's).
    pub ema_alpha: Param<Tensor<2>>,
    /// Logits of the damping `delta: [directions * d_model, h]`.
    pub ema_delta: Param<Tensor<2>>,
    /// The expansion `beta: [directions * d_model, h]`.
    pub ema_beta: Param<Tensor<2>>,
    /// The projection back `eta: [directions * d_model, h]`.
    pub ema_eta: Param<Tensor<2>>,
    /// `omega: [d_model]`, the EMA's skip term.
    pub ema_skip: Param<Tensor<1>>,
    /// `W_v, b_v`: `d_model -> v`.
    pub value: Linear,
    /// `W_phi | W_z | W_gamma | W_h` and their biases: `d_model -> d_model + z + v + d_model`.
    pub from_ema: Linear,
    /// `U_h`: `v -> d_model`, from the gated attention to the candidate.
    pub output: Linear,
    /// `kappa_q, kappa_k: [2, z]`.
    pub qk_scale: Param<Tensor<2>>,
    /// `mu_q, mu_k: [2, z]`.
    pub qk_offset: Param<Tensor<2>>,
    /// `b_rel: [2 span - 1]`, entry `j - i + span - 1` for query `i` and key `j`.
    pub relative_bias: Param<Tensor<1>>,
    pub dropout: Dropout,
    #[module(skip)]
    pub chunk: Option<usize>,
    /// The longest chunk the relative bias covers (the chunk, or the longest sequence).
    #[module(skip)]
    pub span: usize,
    #[module(skip)]
    pub attention_function: AttentionFunction,
    #[module(skip)]
    pub bidirectional: bool,
}

impl Mega {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, d_model] = x.dims();
        let x = x.mul(padding.clone().bool_not().float().reshape([batch, len, 1]));
        let z_dim = self.qk_scale.dims()[1];
        let value_dim = self.output.weight.dims()[0];

        // X' = SiLU(EMA(X) + omega ⊙ X).
        let skip = x.clone() * self.ema_skip.val().reshape([1, 1, d_model]);
        // The dropout's seed drawn here, the product taken after the values' (the order of
        // the composition); fused on the CPU, the product keeps the SiLU's input alone.
        let ema = DenseInput::activated(self.moving_average(x.clone()) + skip, Activation::Silu, &self.dropout);
        let values = silu(apply_dense(&self.value, x.clone())); // [batch, len, v]
        let from_ema = ema.dense(&self.from_ema); // [batch, len, d + z + v + d]
        let update = sigmoid(columns(from_ema.clone(), 0, d_model));
        // Z and the reset gate lie side by side: one SiLU for both. Its backward keeps a copy
        // of its input, so that no part of `from_ema` is kept (the sigmoid keeps its output).
        let shared_and_reset = silu_of_slice(columns(from_ema.clone(), d_model, z_dim + value_dim));
        let shared = columns(shared_and_reset.clone(), 0, z_dim);
        let reset = columns(shared_and_reset, z_dim, value_dim);
        let candidate_from_ema = columns(from_ema, d_model + z_dim + value_dim, d_model);

        let scale = self.qk_scale.val().reshape([2, 1, 1, z_dim]);
        let offset = self.qk_offset.val().reshape([2, 1, 1, z_dim]);
        let qk = shared.unsqueeze::<4>() * scale + offset; // [2, batch, len, z]
        let queries = qk.clone().narrow(0, 0, 1).reshape([batch, len, z_dim]);
        let keys = qk.narrow(0, 1, 1).reshape([batch, len, z_dim]);
        let attended = self.attend(queries, keys, values, padding);

        // U_h (O ⊙ gamma), fused on the CPU: its backward keeps O and gamma, not their product.
        let candidate = silu(candidate_from_ema + DenseInput::gated(attended, reset).dense(&self.output));
        let candidate = dropout(candidate, &self.dropout);
        // phi ⊙ H + (1 - phi) ⊙ X, as X + phi ⊙ (H - X): one pass fewer.
        x.clone() + update * (candidate - x)
    }

    /// The EMA's kernels for the lags `0..=len`: `[directions * d_model, len + 1]`, row `r`
    /// holding `K[l] = sum_j eta_j alpha_j (1 - alpha_j delta_j)^l beta_j` of its parameters.
    ///
    /// Every power `q^l` (`q = 1 - alpha delta`) at once would be a `[rows, h, len + 1]`
    /// tensor of exponentials, kept for the backward: at 4K positions, 16 times the layer's
    /// activations. Writing `l = b B + a` with `B = ceil(sqrt(len + 1))`, `K[b B + a] =
    /// sum_j (w_j q_j^(b B)) q_j^a` (`w = eta alpha beta`) is one batched product
    /// `[rows, blocks, h] x [rows, h, B]` of two `O(rows h sqrt(len))` tables of powers.
    pub fn ema_kernels(&self, len: usize) -> Tensor<2> {
        let [rows, ema_dim] = self.ema_alpha.dims();
        let device = self.ema_alpha.device();
        let lags = len + 1;
        let step = (lags as f64).sqrt().ceil() as usize;
        let blocks = lags.div_ceil(step);
        let alpha = sigmoid(self.ema_alpha.val());
        // 1 - alpha delta, in (0, 1); kept off 0 where f32's sigmoids saturate at 1, so that
        // its log stays finite (lag 0 times an infinite log would be NaN).
        let damped = (alpha.clone() * sigmoid(self.ema_delta.val())).neg().add_scalar(1.0).clamp_min(1e-6);
        let log_damped = damped.log();
        let exponents =
            |count: usize, by: usize| Tensor::<1, Int>::arange(0..count as i64, &device).float().mul_scalar(by as f64);
        // q^a for a < B: [rows, h, B].
        let within = (log_damped.clone().reshape([rows, ema_dim, 1]) * exponents(step, 1).reshape([1, 1, step])).exp();
        // w q^(b B) for each block b: [rows, blocks, h].
        let weights = (self.ema_eta.val() * alpha * self.ema_beta.val()).reshape([rows, 1, ema_dim]);
        let across = weights * (log_damped.reshape([rows, 1, ema_dim]) * exponents(blocks, step).reshape([1, blocks, 1])).exp();
        across.matmul(within).reshape([rows, blocks * step]).narrow(1, 0, lags)
    }

    /// The EMA's output `y` (before the skip term and the SiLU), by FFT:
    /// `x: [batch, len, d_model]` -> `[batch, len, d_model]`.
    pub fn moving_average(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, len, d_model] = x.dims();
        let kernels = self.ema_kernels(len);
        let causal = kernels.clone().slice([0..d_model, 0..len]);
        // The backward EMA weighs the step `m` later by its K'[m], m >= 1 (`two_sided`'s
        // anticausal entry m - 1).
        let anticausal = self.bidirectional.then(|| kernels.slice([d_model..2 * d_model, 1..len + 1]));
        convolve(x, two_sided(causal, anticausal))
    }

    /// The attention `O = f(Q K^T / tau + b_rel) V` within chunks: `queries, keys:
    /// [batch, len, z]`, `values: [batch, len, v]`, `padding: [batch, len]` -> `[batch, len, v]`.
    fn attend(&self, queries: Tensor<3>, keys: Tensor<3>, values: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = queries.dims();
        let value_dim = values.dims()[2];
        let chunk = self.chunk.unwrap_or(len).clamp(1, len.max(1));
        assert!(chunk <= self.span, "Mega: chunks of {chunk} positions, beyond the relative bias's {}", self.span);
        // One head: [batch, 1, len, width], cut into [batch, 1, chunks, chunk, width].
        let blocks = Blocks::new(queries.unsqueeze_dim(1), keys.unsqueeze_dim(1), values.unsqueeze_dim(1), padding, chunk);
        let bias = self.bias_matrix(chunk).reshape([1, 1, 1, chunk, chunk]);
        let key_mask = blocks.key_mask(); // [batch, 1, chunks, 1, chunk]
        let weights = match self.attention_function {
            AttentionFunction::Softmax => {
                let scores = block_scores(blocks.queries, blocks.keys) + bias;
                softmax_dropout(scores.mask_fill(key_mask, MASKED_SCORE), None)
            }
            AttentionFunction::Laplace => {
                let chunks = blocks.count();
                // tau: the chunk's real keys, at least 1 (a chunk of padding alone).
                let real_keys = blocks.padding.clone().bool_not().float().sum_dim(2).clamp_min(1.0);
                let scores = blocks.queries.matmul(blocks.keys.swap_dims(3, 4)) / real_keys.reshape([batch, 1, chunks, 1, 1]);
                laplace(scores + bias).mask_fill(key_mask, 0.0)
            }
        };
        unblock(weights.matmul(blocks.values), len).reshape([batch, len, value_dim])
    }

    /// `b_rel` for one chunk: `[chunk, chunk]`, entry `(i, j)` the bias of offset `j - i`.
    fn bias_matrix(&self, chunk: usize) -> Tensor<2> {
        let span = self.span as i64;
        let offsets: Vec<i64> = (0..chunk as i64).flat_map(|i| (0..chunk as i64).map(move |j| j - i + span - 1)).collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(offsets, [chunk * chunk]), &self.relative_bias.device());
        self.relative_bias.val().select(0, index).reshape([chunk, chunk])
    }
}

/// The Laplace attention function `1/2 (1 + erf((x - mu) / (sigma sqrt 2)))`, `mu =
/// sqrt(1/2)`, `sigma = sqrt(1 / (4 pi))`: a smooth step that approximates `relu^2` near
/// zero without its unbounded growth.
pub fn laplace<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let mu = 0.5f64.sqrt();
    let sigma = (1.0 / (4.0 * std::f64::consts::PI)).sqrt();
    x.sub_scalar(mu).div_scalar(sigma * 2.0f64.sqrt()).erf().add_scalar(1.0).mul_scalar(0.5)
}

impl AttentionLayer for Mega {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// Work of one forward ([`super::flops`]), with `D = d_model`, `v` the value
/// width, `z`, `h`, chunks of `c` (`C` of them, `n' = C c`): the projections
/// `2 b n D (v + D + z + v + D) + 2 b n v D`; the attention within chunks `2 b n' c (z + v)`;
/// the EMA's kernels `2 R h (n + 1)` for `R` kernel rows; its convolution by FFT as
/// [`crate::long_conv::forward_flops`] counts it.
pub fn forward_flops(shape: &LayerShape, settings: &MegaSettings) -> f64 {
    let n = shape.positions.max(1);
    let chunk = settings.chunk.unwrap_or(n).clamp(1, n);
    let chunks = block_count(n, chunk) as f64;
    let d_model = shape.d_model as f64;
    let (z, h) = (settings.z_dim as f64, settings.ema_dim as f64);
    let value = (settings.value_expansion * shape.d_model) as f64;
    let rows = if settings.bidirectional { 2.0 * d_model } else { d_model };
    let projections = shape.products(1.0, shape.n(), d_model, value + d_model + z + value + d_model)
        + shape.products(1.0, shape.n(), value, d_model);
    let attention = shape.products(chunks, chunk as f64, z + value, chunk as f64);
    let kernels = 2.0 * rows * h * (shape.n() + 1.0);
    let convolution = crate::long_conv::forward_flops(shape.batch, shape.d_model, n);
    projections + attention + kernels + convolution
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{assert_close, assert_finite_gradients, assert_padding_is_invisible, padding_after, values};

    fn silu(x: f64) -> f64 {
        x / (1.0 + (-x).exp())
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// A dense layer's `x W + b` over plain numbers (`W: [d_in, d_out]` as burn stores it).
    fn dense(linear: &Linear, x: &[f64]) -> Vec<f64> {
        let [d_in, d_out] = linear.weight.dims();
        let weight = values(linear.weight.val());
        let bias = linear.bias.as_ref().map(|b| values(b.val())).unwrap_or_else(|| vec![0.0; d_out]);
        (0..d_out).map(|o| bias[o] as f64 + (0..d_in).map(|i| x[i] * weight[i * d_out + o] as f64).sum::<f64>()).collect()
    }

    /// The EMA of Section 3.1 step by step over plain numbers, from the parameters of row
    /// `row` of the layer's EMA, over `x` in the order given: every `sum_j eta_j h^(j)_t`
    /// and every state `h_t`.
    fn ema_steps(layer: &Mega, row: usize, x: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
        let h = layer.ema_alpha.dims()[1];
        let at = |p: &Param<Tensor<2>>| values(p.val())[row * h..(row + 1) * h].iter().map(|&v| v as f64).collect::<Vec<_>>();
        let (alpha, delta, beta, eta) = (at(&layer.ema_alpha), at(&layer.ema_delta), at(&layer.ema_beta), at(&layer.ema_eta));
        let mut state = vec![0.0; h];
        let (mut outputs, mut states) = (Vec::new(), Vec::new());
        for &input in x {
            for j in 0..h {
                let (a, d) = (sigmoid(alpha[j]), sigmoid(delta[j]));
                // u_t = beta x_t; h_t = alpha u_t + (1 - alpha delta) h_{t-1}.
                state[j] = a * beta[j] * input + (1.0 - a * d) * state[j];
            }
            outputs.push((0..h).map(|j| eta[j] * state[j]).sum());
            states.push(state.clone());
        }
        (outputs, states)
    }

    /// The (bidirectional) EMA of one sequence `x: [len][d_model]` in plain loops: the
    /// forward EMA's outputs, plus, where the layer has the backward one, at step `t` its
    /// state after the steps `len - 1 .. t + 1` decayed once more, `sum_j eta'_j (1 -
    /// alpha'_j delta'_j) h'^(j)_{t+1}`.
    fn plain_ema(layer: &Mega, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let (len, d_model) = (x.len(), x[0].len());
        let h = layer.ema_alpha.dims()[1];
        let mut y = vec![vec![0.0; d_model]; len];
        for c in 0..d_model {
            let channel: Vec<f64> = x.iter().map(|row| row[c]).collect();
            let (forward, _) = ema_steps(layer, c, &channel);
            for t in 0..len {
                y[t][c] = forward[t];
            }
            if layer.bidirectional {
                let reversed: Vec<f64> = channel.iter().rev().copied().collect();
                let (_, states) = ema_steps(layer, d_model + c, &reversed); // step s is position len - 1 - s
                let at = |p: &Param<Tensor<2>>, j: usize| values(p.val())[(d_model + c) * h + j] as f64;
                for t in 0..len - 1 {
                    let after = &states[len - 2 - t]; // h'_{t+1}
                    y[t][c] += (0..h)
                        .map(|j| {
                            let damped = 1.0 - sigmoid(at(&layer.ema_alpha, j)) * sigmoid(at(&layer.ema_delta, j));
                            at(&layer.ema_eta, j) * damped * after[j]
                        })
                        .sum::<f64>();
                }
            }
        }
        y
    }

    /// The whole layer on one sequence of real tokens `x: [len][d_model]`, from the
    /// paper's equations in plain loops (no dropout): the EMA, `X'`, `Z`, `Q`, `K`, `V`,
    /// the attention of each position over the keys of its chunk, the gates and `Y`.
    fn plain_layer(layer: &Mega, x: &[Vec<f64>]) -> Vec<f64> {
        let (len, d_model) = (x.len(), x[0].len());
        let z_dim = layer.qk_scale.dims()[1];
        let value_dim = layer.output.weight.dims()[0];
        let omega = values(layer.ema_skip.val());
        let (scale, offset) = (values(layer.qk_scale.val()), values(layer.qk_offset.val()));
        let bias = values(layer.relative_bias.val());
        let ema = plain_ema(layer, x);
        let mut q = Vec::new();
        let mut k = Vec::new();
        let mut v = Vec::new();
        let mut gates = Vec::new();
        for t in 0..len {
            let x_prime: Vec<f64> = (0..d_model).map(|c| silu(ema[t][c] + omega[c] as f64 * x[t][c])).collect();
            let projected = dense(&layer.from_ema, &x_prime);
            let shared: Vec<f64> = projected[d_model..d_model + z_dim].iter().map(|&s| silu(s)).collect();
            q.push((0..z_dim).map(|i| shared[i] * scale[i] as f64 + offset[i] as f64).collect::<Vec<_>>());
            k.push((0..z_dim).map(|i| shared[i] * scale[z_dim + i] as f64 + offset[z_dim + i] as f64).collect::<Vec<_>>());
            v.push(dense(&layer.value, &x[t]).into_iter().map(silu).collect::<Vec<_>>());
            gates.push(projected);
        }
        let chunk = layer.chunk.unwrap_or(len).min(len);
        let mut y = Vec::new();
        for t in 0..len {
            let first = t / chunk * chunk;
            let keys: Vec<usize> = (first..(first + chunk).min(len)).collect();
            let scores: Vec<f64> = keys
                .iter()
                .map(|&s| {
                    let dot: f64 = (0..z_dim).map(|i| q[t][i] * k[s][i]).sum();
                    let tau = match layer.attention_function {
                        AttentionFunction::Softmax => (z_dim as f64).sqrt(),
                        AttentionFunction::Laplace => keys.len() as f64,
                    };
                    dot / tau + bias[s + layer.span - 1 - t] as f64
                })
                .collect();
            let weights: Vec<f64> = match layer.attention_function {
                AttentionFunction::Softmax => {
                    let max = scores.iter().copied().fold(f64::MIN, f64::max);
                    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    scores.iter().map(|s| (s - max).exp() / total).collect()
                }
                AttentionFunction::Laplace => {
                    let (mu, sigma) = (0.5f64.sqrt(), (1.0 / (4.0 * std::f64::consts::PI)).sqrt());
                    scores.iter().map(|s| 0.5 * (1.0 + libm_erf((s - mu) / (sigma * 2.0f64.sqrt())))).collect()
                }
            };
            let attended: Vec<f64> = (0..value_dim).map(|e| keys.iter().zip(&weights).map(|(&s, w)| w * v[s][e]).sum()).collect();
            let projected = &gates[t];
            let reset: Vec<f64> = projected[d_model + z_dim..d_model + z_dim + value_dim].iter().map(|&r| silu(r)).collect();
            let gated: Vec<f64> = (0..value_dim).map(|e| reset[e] * attended[e]).collect();
            let from_attention = dense(&layer.output, &gated);
            for c in 0..d_model {
                let update = sigmoid(projected[c]);
                let candidate = silu(projected[d_model + z_dim + value_dim + c] + from_attention[c]);
                y.push(update * candidate + (1.0 - update) * x[t][c]);
            }
        }
        y
    }

    /// `erf` by its series (converges for every argument used here, |x| < 6) in f64.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() > 6.0 {
            return x.signum();
        }
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    }

    /// Rows of `[len][d]` plain numbers of batch row `b` of a tensor.
    fn rows(x: &Tensor<3>, b: usize) -> Vec<Vec<f64>> {
        let [_, len, d] = x.dims();
        let flat = values(x.clone().slice([b..b + 1, 0..len, 0..d]));
        flat.chunks(d).map(|row| row.iter().map(|&v| v as f64).collect()).collect()
    }

    /// Makes the layer's gates, scales and offsets large enough that the attention and
    /// both paths of the gate matter in a test (at their initial std of 0.02, `Q` and `K`
    /// are nearly 0 and the attention nearly uniform).
    fn livened(mut layer: Mega, device: &Device) -> Mega {
        let redraw =
            |p: &Param<Tensor<2>>, std: f64| Param::from_tensor(Tensor::random(p.dims(), Distribution::Normal(0.0, std), device));
        layer.qk_scale = redraw(&layer.qk_scale, 1.0);
        layer.qk_offset = redraw(&layer.qk_offset, 0.5);
        layer.from_ema.weight = redraw(&layer.from_ema.weight, 0.4);
        layer.value.weight = redraw(&layer.value.weight, 0.4);
        layer.output.weight = redraw(&layer.output.weight, 0.4);
        layer.relative_bias =
            Param::from_tensor(Tensor::random(layer.relative_bias.dims(), Distribution::Normal(0.0, 0.5), device));
        layer
    }

    #[test]
    fn mega_ema_by_fft_equals_its_recurrence_step_by_step() {
        let (batch, len, d_model) = (2, 37, 3);
        for bidirectional in [true, false] {
            let device = Device::flex();
            device.seed(91);
            let layer = MegaConfig::new(d_model, len).with_ema_dim(4).with_bidirectional(bidirectional).init(&device);
            let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
            let got = values(layer.moving_average(x.clone()));
            let expected: Vec<f32> =
                (0..batch).flat_map(|b| plain_ema(&layer, &rows(&x, b)).into_iter().flatten().map(|v| v as f32)).collect();
            assert_close(&got, &expected, 1e-4, &format!("bidirectional {bidirectional}"));
        }
    }

    #[test]
    fn mega_layer_equals_the_papers_equations_in_plain_loops() {
        let (batch, len, d_model) = (2, 11, 4);
        // Full attention; one chunk covering the sequence; chunks of 4 (the last one of 3);
        // chunks of 1.
        for chunk in [None, Some(11), Some(4), Some(1)] {
            for function in [AttentionFunction::Softmax, AttentionFunction::Laplace] {
                for bidirectional in [true, false] {
                    let device = Device::flex();
                    device.seed(92);
                    let config = MegaConfig::new(d_model, len)
                        .with_ema_dim(3)
                        .with_z_dim(5)
                        .with_chunk(chunk)
                        .with_attention_function(function)
                        .with_bidirectional(bidirectional);
                    let layer = livened(config.init(&device), &device);
                    let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
                    let got = values(layer.forward(x.clone(), padding_after(&[len, len], len, &device)));
                    let expected: Vec<f32> =
                        (0..batch).flat_map(|b| plain_layer(&layer, &rows(&x, b))).map(|v| v as f32).collect();
                    assert_close(&got, &expected, 1e-4, &format!("chunk {chunk:?} {function:?} bidirectional {bidirectional}"));
                }
            }
        }
    }

    #[test]
    fn mega_chunked_attention_with_one_chunk_equals_full_mega() {
        let (len, d_model) = (9, 6);
        for function in [AttentionFunction::Softmax, AttentionFunction::Laplace] {
            let device = Device::flex();
            device.seed(93);
            let full =
                livened(MegaConfig::new(d_model, len).with_chunk(None).with_attention_function(function).init(&device), &device);
            // The same parameters: the relative bias of full attention over 9 positions is
            // the one of a chunk of 9.
            let chunked = Mega { chunk: Some(len), ..full.clone() };
            let x = Tensor::<3>::random([2, len, d_model], Distribution::Normal(0.0, 1.0), &device);
            let padding = padding_after(&[len, 5], len, &device);
            let (got, expected) = (chunked.forward(x.clone(), padding.clone()), full.forward(x, padding));
            assert_close(&values(got), &values(expected), 1e-6, &format!("{function:?}"));
        }
    }

    #[test]
    fn mega_padding_at_the_end_does_not_change_real_tokens() {
        // Chunks of 4 over 10 positions: three chunks, the last ragged; row 0 (3 real
        // tokens) has its second and third chunks of padding alone.
        for (chunk, function) in [
            (Some(4), AttentionFunction::Softmax),
            (Some(4), AttentionFunction::Laplace),
            (Some(3), AttentionFunction::Softmax),
            (None, AttentionFunction::Softmax),
            (None, AttentionFunction::Laplace),
        ] {
            let device = Device::flex();
            device.seed(94);
            let config = MegaConfig::new(8, 10).with_z_dim(6).with_chunk(chunk).with_attention_function(function);
            let layer = livened(config.init(&device), &device);
            assert_padding_is_invisible(|x, padding| layer.forward(x, padding), 8, &[3, 7, 10], 10, &device);
            let x = Tensor::<3>::random([1, 10, 8], Distribution::Normal(0.0, 1.0), &device);
            let out = layer.forward(x, padding_after(&[3], 10, &device));
            assert!(out.is_finite().all().into_scalar::<bool>(), "chunk {chunk:?} {function:?}: a chunk of padding alone");
        }
    }

    #[test]
    fn mega_gradients_are_finite_for_every_parameter() {
        for function in [AttentionFunction::Softmax, AttentionFunction::Laplace] {
            let device = Device::flex().autodiff();
            device.seed(95);
            let layer = MegaConfig::new(8, 7).with_z_dim(6).with_chunk(Some(3)).with_attention_function(function).init(&device);
            let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
            // Row 1 has 2 real tokens: its second and third chunks are padding alone.
            let grads = layer.forward(x, padding_after(&[7, 2], 7, &device)).sum().backward();
            // 5 of the EMA, 2 of each of the three projections, scale, offset and bias.
            assert_eq!(assert_finite_gradients(&layer, &grads), 14, "{function:?}");
        }
    }

    /// The fused SiLU and its gradient equal burn's composed ones, on both CPU backends,
    /// far into both tails.
    #[test]
    fn mega_check_refuses_empty_and_overlong_settings_naming_them_and_the_length() {
        let defaults = MegaSettings::defaults(100);
        assert_eq!(defaults.check(100), Ok(()));
        assert_eq!(MegaSettings { chunk: None, ..defaults.clone() }.check(100), Ok(()));
        let refused = [
            ("chunk", MegaSettings { chunk: Some(0), ..defaults.clone() }),
            ("chunk", MegaSettings { chunk: Some(101), ..defaults.clone() }),
            ("ema_dim", MegaSettings { ema_dim: 0, ..defaults.clone() }),
            ("z_dim", MegaSettings { z_dim: 0, ..defaults.clone() }),
            ("value_expansion", MegaSettings { value_expansion: 0, ..defaults.clone() }),
        ];
        for (name, settings) in refused {
            let problem = settings.check(100).unwrap_err();
            assert!(problem.contains(name), "{name}: {problem}");
            assert!(problem.contains("100"), "{name}: {problem}");
        }
    }
}
