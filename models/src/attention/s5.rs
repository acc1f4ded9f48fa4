//! S5: one multi-input multi-output diagonal state space per layer, run by a scan.
//!
//! Paper: Smith, Warrington, Linderman, "Simplified State Space Layers for Sequence
//! Modeling", ICLR 2023 (arXiv 2208.04933). Official code: github.com/lindermanlab/S5
//! (`s5/ssm.py`, `s5/ssm_init.py`, `s5/train.py`, `s5/layers.py`, the LRA scripts in
//! `bin/run_experiments/`), cited below as `file:line`.
//! Family: recurrence (a linear state space, multi-input multi-output).
//! Cost here: O(n P d) time (the input and output projections of the state, `P/2` complex
//! states, `d = d_model`) and O(n P) memory per sequence, linear in the length n; the
//! recurrence itself is O(n P) work, run in order on the CPU and as a log-depth scan
//! (O(n log n P) work) elsewhere (`crate::scan`).
//!
//! Where S4 and S4D run `d_model` independent single-input single-output systems, one per
//! channel (`s4d.rs`), S5 runs one system over all channels (Section 3): a state
//! `x_k ∈ C^P` read from the whole input `u_k ∈ R^H` (`H = d_model`),
//!
//! - `x_k = Lambda_bar ⊙ x_{k-1} + B_bar u_k`, `x_{-1} = 0`;
//! - `y_k = Re(C~ x_k) + D ⊙ u_k`,
//!
//! with `Lambda` diagonal (Section 3, "diagonalized dynamics"), a complex `B~: [P, H]`, a
//! complex `C~: [H, P]` and a real `D: [H]`. The continuous system `x' = Lambda x + B~ u`
//! is discretised by zero-order hold with a learned timescale per state, `Delta =
//! exp(log_step)` (`ssm.py:29`, `discretize_zoh`; the paper's `Delta ∈ R^P`):
//! `Lambda_bar = exp(Lambda Delta)`, `B_bar = (Lambda_bar - 1) / Lambda ⊙ B~` (row by row).
//! Being linear and time-invariant, the recurrence is a parallel scan (Section 2); here it
//! is `crate::scan::linear_recurrence`, LRU's.
//!
//! Initialisation (Section 4, Appendix B.1.1): HiPPO-LegS (`A_nk = -(2n+1)^½ (2k+1)^½`
//! below the diagonal, `-(n+1)` on it, 0 above) is not diagonalisable stably, but it is
//! normal plus low rank: HiPPO-N = HiPPO-LegS + p pᵀ with `p_n = (n + ½)^½` is `-½ I + S`
//! with `S` real skew-symmetric (`ssm_init.py:7-64`). So HiPPO-N = `V Lambda V*` with `V`
//! unitary and `Lambda = -½ + i w`, `i w` the eigenvalues of `S`. The paper computes them
//! with a complex Hermitian eigensolver (`eigh(-i S)`, `ssm_init.py:64`); here
//! [`hippo_n_eigen`] computes them with Jacobi rotations on a real symmetric matrix of
//! twice the size (see there), and the tests check `A V = V Lambda` and `V* V = I`. The
//! state is split into `J` blocks (`blocks`) of `P/J` states: each block starts from
//! HiPPO-N of size `P/J` (block-diagonal `Lambda`, `V`; `train.py:76-90`), so that
//! the timescales spread over `J` copies of the same spectrum rather than one large one.
//! Then `B~ = V^-1 B = V* B` and `C~ = C V` (`ssm_init.py:115`, `151`), with `B` real normal
//! of variance `1/P` (`lecun_normal` over a `[P, H]` array, `ssm.py:160`) and `C` complex,
//! each part normal of variance `1/P` (the code's default `trunc_standard_normal`,
//! `ssm_init.py:134-146`; the code truncates both at two standard deviations of a
//! rescaled normal of the same variance, untruncated here); `D` standard normal
//! (`ssm.py:213`); `log_step` uniform in `[log dt_min, log dt_max]`, one per state
//! (`ssm_init.py`, `init_log_steps`). `Lambda`'s real and imaginary parts, `log_step`,
//! `B~`, `C~` and `D` are all trained.
//!
//! Conjugate symmetry (the code's default, `conj_sym`, on in every LRA script): HiPPO-N is
//! real, so its eigenvalues and eigenvectors come in conjugate pairs and a real input
//! drives each pair's two states to conjugate values. The layer keeps one state of each
//! pair (`P/2` complex states, those with `w < 0`, the first half of `eigh`'s ascending
//! order, `train.py:78-83`) and reads `y_k = 2 Re(C~ x_k) + D u_k` (`ssm.py:86`).
//! `state_size` is the paper's `P`, conjugates counted: each block's `P/J` must be even.
//!
//! Clipping (`clip_eigenvalues`, on by default): `Re(Lambda)` is used as
//! `min(Re(Lambda), -1e-4)` (`ssm.py:155`), so that training cannot move a mode into the
//! right half plane, where it would grow with the length. The paper's code keeps it as an
//! option for unbounded lengths and turns it on for its LRA Image run
//! (`bin/run_experiments/run_lra_cifar.sh`); this harness runs one configuration on every
//! task, so it keeps the safe one.
//!
//! Bidirectional (the default; every LRA script of the paper's code sets
//! `--bidirectional=True`): a second output matrix `C2~` reads the same recurrence run from
//! the end, the current step included (`ssm.py:80-86`, an associative scan with
//! `reverse=True`): `y_k = 2 Re(C~ x_k) + 2 Re(C2~ x'_k) + D u_k` with
//! `x'_k = Lambda_bar ⊙ x'_{k+1} + B_bar u_k` from `x'_len = 0`. A classifier reading a CLS
//! token at position 0 then sees the whole sequence.
//!
//! After the state space (`layers.py:72-75`, the code's default `half_glu1`): the output
//! `g = dropout(GELU(y))` gates itself, `g ⊙ sigmoid(W g + b)`, a dense `W: [H, H]`. The rest
//! of the paper's block (batch or layer normalisation, the residual and the dropout after
//! the gate) is the encoder block's here.
//!
//! Padding: padded positions are zeroed before `B_bar`. The recurrence is linear from a
//! zero state, and `B_bar u` has no bias, so zeros add nothing in either direction: a
//! sequence padded at its end gives its real tokens exactly the outputs of the same
//! sequence without padding. The layer takes no heads.
//!
//! Defaults: `P = 128` (64 complex states, as many as LRU's default here), `J = 8` (blocks
//! of 16, the block size of the paper's Text, Retrieval and Path-X runs), `dt_min` 0.001
//! and `dt_max` 0.1 (the code's defaults), bidirectional, the `half_glu1` gate. The code's
//! default is `P = 256`, `J = 8`; `P = 128` keeps a quick run as fast as LRU's.
//!
//! The paper's LRA configurations: its Appendix's Table 11 lists depth, `H`, `P`, `J`,
//! dropout, learning rates, batch, epochs and weight decay per task; the values below are
//! read from the official code's scripts `bin/run_experiments/run_lra_*.sh`, which run
//! those experiments (`P` before conjugate symmetry halves it; learning rate =
//! `lr_factor` x SSM learning rate; all bidirectional, zero-order hold, batch norm,
//! pre-norm):
//!
//! | task       | depth | H   | P   | J  | dropout | lr     | SSM lr | batch | epochs | WD   |
//! |------------|-------|-----|-----|----|---------|--------|--------|-------|--------|------|
//! | ListOps    | 8     | 128 | 16  | 8  | 0.0     | 3e-3   | 1e-3   | 50    | 40     | 0.04 |
//! | Text       | 6     | 256 | 192 | 12 | 0.1     | 4e-3   | 1e-3   | 50    | 35     | 0.07 |
//! | Retrieval  | 6     | 128 | 256 | 16 | 0.0     | 2e-3   | 1e-3   | 32    | 20     | 0.05 |
//! | Image      | 6     | 512 | 384 | 3  | 0.1     | 4.5e-3 | 1e-3   | 50    | 250    | 0.07 |
//! | Pathfinder | 6     | 192 | 256 | 8  | 0.05    | 4.5e-3 | 9e-4   | 64    | 200    | 0.03 |
//! | Path-X     | 6     | 128 | 256 | 16 | 0.0     | 1.8e-3 | 6e-4   | 32    | 75     | 0.06 |
//!
//! with the gate `half_glu2` (the gate reads `y` itself: `y ⊙ sigmoid(W g + b)`) for
//! ListOps and Text, clipped eigenvalues for Image, `dt_min` 1e-4 for Path-X, and `C`
//! drawn as `lecun_normal` (ListOps, Text, Image) or complex normal (Path-X) instead of the
//! default; the timescales are trained at the global learning rate for Text and Retrieval
//! (`dt_global`). The code trains `Lambda`, `B~` and (elsewhere) `log_step` at the SSM
//! learning rate without weight decay (`s5/train_helpers.py:140-160`); the harness trains
//! every parameter alike. The harness's `lra` preset does not carry these values (its
//! Transformer configuration applies, as for every model LRA did not run).
//!
//! The paper's LRA accuracies (its Table 1) are in `harness/src/report/published.rs`.

use crate::activation::gelu_erf;
use crate::activation::sigmoid;
use crate::dense::apply_dense;
use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use serde::{Deserialize, Serialize};

use super::softmax::dropout;

use super::flops::LayerShape;
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Settings, at_least_one, in_sequences_of};
use crate::scan::{Complex, linear_recurrence, linear_recurrence_from_end};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n) time and memory (one multi-input multi-output diagonal state space, run as a scan)";

/// The largest `Re(Lambda)` when clipped (`ssm.py:155`).
const CLIPPED_REAL_PART: f64 = -1e-4;

#[derive(Config, Debug)]
pub struct S5Config {
    /// `H`: input and output width.
    pub d_model: usize,
    /// Dropout after the GELU.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// `P`, the state size, conjugate pairs counted: `P/2` complex states are kept.
    #[config(default = 128)]
    pub state_size: usize,
    /// `J`, the blocks of the initial state matrix: `J` copies of HiPPO-N of size `P/J`.
    #[config(default = 8)]
    pub blocks: usize,
    /// Smallest initial timescale `Delta`.
    #[config(default = 0.001)]
    pub dt_min: f64,
    /// Largest initial timescale `Delta`.
    #[config(default = 0.1)]
    pub dt_max: f64,
    /// Use `min(Re(Lambda), -1e-4)`, so that no mode can grow.
    #[config(default = true)]
    pub clip_eigenvalues: bool,
    /// Add the backward pass (its own `C2~`); `false` gives the causal layer.
    #[config(default = true)]
    pub bidirectional: bool,
}

impl S5Config {
    pub fn init(&self, device: &Device) -> S5 {
        if let Err(problem) = check_sizes(self.state_size, self.blocks, self.dt_min, self.dt_max) {
            panic!("S5: {problem}");
        }
        let (p, h, blocks) = (self.state_size, self.d_model, self.blocks);
        let (block, states) = (p / blocks, p / 2);
        let kept = block / 2;
        let (w, v) = hippo_n_eigen(block);
        // The first half of the ascending order: the states with w < 0, one of each conjugate pair.
        let lambda_im: Vec<f32> = (0..blocks).flat_map(|_| w[..kept].iter().map(|&w| w as f32)).collect();
        // V's kept columns, [block][kept].
        let v_kept = |r: usize, m: usize| v[r * block + m];

        // B~ = V* B, block by block: B~[j kept + m][c] = sum_r conj(V[r][m]) B[j block + r][c].
        let b = normal_draws(p * h, (1.0 / p as f64).sqrt(), device);
        let (mut b_real, mut b_imag) = (vec![0f32; h * states], vec![0f32; h * states]);
        for j in 0..blocks {
            for m in 0..kept {
                for c in 0..h {
                    let sum = (0..block).fold(Cx::ZERO, |sum, r| sum + v_kept(r, m).conj().scale(b[(j * block + r) * h + c]));
                    // Stored as B~ᵀ: [H, P/2].
                    b_real[c * states + j * kept + m] = sum.re as f32;
                    b_imag[c * states + j * kept + m] = sum.im as f32;
                }
            }
        }
        // C~ = C V, block by block: C~[c][j kept + m] = sum_r C[c][j block + r] V[r][m], stored as C~ᵀ: [P/2, H].
        let draw_c = || {
            let std = (1.0 / p as f64).sqrt();
            let (re, im) = (normal_draws(h * p, std, device), normal_draws(h * p, std, device));
            let (mut c_real, mut c_imag) = (vec![0f32; states * h], vec![0f32; states * h]);
            for c in 0..h {
                for j in 0..blocks {
                    for m in 0..kept {
                        let sum = (0..block).fold(Cx::ZERO, |sum, r| {
                            let k = c * p + j * block + r;
                            sum + Cx { re: re[k], im: im[k] } * v_kept(r, m)
                        });
                        c_real[(j * kept + m) * h + c] = sum.re as f32;
                        c_imag[(j * kept + m) * h + c] = sum.im as f32;
                    }
                }
            }
            let matrix = |values: Vec<f32>| Param::from_data(TensorData::new(values, [states, h]), device);
            (matrix(c_real), matrix(c_imag))
        };
        let (c_real, c_imag) = draw_c();
        let c_backward = self.bidirectional.then(draw_c);
        let (log_min, log_max) = (self.dt_min.ln(), self.dt_max.ln());
        let log_step = Tensor::<1>::random([states], Distribution::Uniform(log_min, log_max), device);
        let vector = |values: Vec<f32>| Param::from_data(TensorData::new(values, [states]), device);
        let b_matrix = |values: Vec<f32>| Param::from_data(TensorData::new(values, [h, states]), device);
        S5 {
            // HiPPO-N's real part, -1/2 for every eigenvalue.
            lambda_real: vector(vec![-0.5; states]),
            lambda_imag: vector(lambda_im),
            log_step: Param::from_tensor(log_step),
            b_real: b_matrix(b_real),
            b_imag: b_matrix(b_imag),
            c_real,
            c_imag,
            c_backward,
            skip: Param::from_tensor(Tensor::random([h], Distribution::Normal(0.0, 1.0), device)),
            gate: LinearConfig::new(h, h).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            clip_eigenvalues: self.clip_eigenvalues,
        }
    }
}

/// `count` draws from a normal of standard deviation `std`, on the host, from the device's
/// generator.
fn normal_draws(count: usize, std: f64, device: &Device) -> Vec<f64> {
    Tensor::<1>::random([count], Distribution::Normal(0.0, std), device).into_data().iter::<f32>().map(f64::from).collect()
}

/// S5's own settings in a run's configuration (`"attention": {"s5": {...}}`): the state
/// size and its blocks, the initial timescales, the clipping and the direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S5Settings {
    pub state_size: usize,
    pub blocks: usize,
    pub dt_min: f64,
    pub dt_max: f64,
    pub clip_eigenvalues: bool,
    pub bidirectional: bool,
}

/// Refuses a state size or block count of 0, blocks that do not split the state into even
/// sizes (conjugate pairs), and timescales that are not `0 < dt_min <= dt_max`.
fn check_sizes(state_size: usize, blocks: usize, dt_min: f64, dt_max: f64) -> Result<(), String> {
    at_least_one("state_size", state_size)?;
    at_least_one("blocks", blocks)?;
    if !state_size.is_multiple_of(2 * blocks) {
        return Err(format!(
            "state_size ({state_size}) must split into blocks ({blocks}) of an even size (conjugate pairs): a multiple of {}",
            2 * blocks
        ));
    }
    match 0.0 < dt_min && dt_min <= dt_max {
        true => Ok(()),
        false => Err(format!("dt_min ({dt_min}) and dt_max ({dt_max}) must satisfy 0 < dt_min <= dt_max")),
    }
}

impl Settings for S5Settings {
    type Layer = S5;
    const MODEL: ModelCard = ModelCard {
        name: "s5",
        title: "S5, Simplified State Space layer (Smith et al. 2023)",
        family: "recurrence (state space, multi-input multi-output)",
        cost: COST,
    };

    fn defaults(_max_length: usize) -> S5Settings {
        let c = S5Config::new(1);
        S5Settings {
            state_size: c.state_size,
            blocks: c.blocks,
            dt_min: c.dt_min,
            dt_max: c.dt_max,
            clip_eigenvalues: c.clip_eigenvalues,
            bidirectional: c.bidirectional,
        }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        check_sizes(self.state_size, self.blocks, self.dt_min, self.dt_max).map_err(in_sequences_of(positions))
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.state_size, self.bidirectional)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> S5 {
        // S5 has no attention width: its state space reads and writes d_model channels.
        S5Config::new(layer.d_model)
            .with_state_size(self.state_size)
            .with_blocks(self.blocks)
            .with_dt_min(self.dt_min)
            .with_dt_max(self.dt_max)
            .with_clip_eigenvalues(self.clip_eigenvalues)
            .with_bidirectional(self.bidirectional)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct S5 {
    /// `Re(Lambda): [P/2]`, the continuous-time decay rates (negative).
    pub lambda_real: Param<Tensor<1>>,
    /// `Im(Lambda): [P/2]`, the continuous-time frequencies.
    pub lambda_imag: Param<Tensor<1>>,
    /// `log Delta: [P/2]`, the timescale of each state.
    pub log_step: Param<Tensor<1>>,
    /// `B~ᵀ: [H, P/2]`, real and imaginary parts (transposed, so that `u B~ᵀ` is a product of rows).
    pub b_real: Param<Tensor<2>>,
    pub b_imag: Param<Tensor<2>>,
    /// `C~ᵀ: [P/2, H]`, real and imaginary parts.
    pub c_real: Param<Tensor<2>>,
    pub c_imag: Param<Tensor<2>>,
    /// `C2~ᵀ: [P/2, H]` of the backward pass, real and imaginary parts; `None` when causal.
    pub c_backward: Option<(Param<Tensor<2>>, Param<Tensor<2>>)>,
    /// `D: [H]`, the feedthrough.
    pub skip: Param<Tensor<1>>,
    /// `W, b` of the gate `g ⊙ sigmoid(W g + b)`.
    pub gate: Linear,
    pub dropout: Dropout,
    pub clip_eigenvalues: bool,
}

impl S5 {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let u = x.mul(padding.bool_not().float().reshape([batch, len, 1]));
        let g = dropout(gelu_erf(self.ssm(u)), &self.dropout);
        g.clone() * sigmoid(apply_dense(&self.gate, g))
    }

    /// The continuous `Lambda: [P/2]` (its real part clipped when `clip_eigenvalues`).
    pub fn lambda(&self) -> Complex<1> {
        let re = self.lambda_real.val();
        let re = if self.clip_eigenvalues { re.clamp_max(CLIPPED_REAL_PART) } else { re };
        Complex { re, im: self.lambda_imag.val() }
    }

    /// Zero-order hold: `Lambda_bar = exp(Lambda Delta): [P/2]` and `B_barᵀ: [H, P/2]`,
    /// `B_bar = (Lambda_bar - 1) / Lambda ⊙ B~` (each state's row of `B~` scaled).
    pub fn discretised(&self) -> (Complex<1>, Complex<2>) {
        let lambda = self.lambda();
        let step = self.log_step.val().exp();
        let modulus = (lambda.re.clone() * step.clone()).exp();
        let angle = lambda.im.clone() * step;
        let lambda_bar = Complex { re: modulus.clone() * angle.clone().cos(), im: modulus * angle.sin() };
        // (Lambda_bar - 1) / Lambda = (Lambda_bar - 1) conj(Lambda) / |Lambda|^2.
        let norm = lambda.re.clone().square() + lambda.im.clone().square();
        let shifted = lambda_bar.re.clone().sub_scalar(1.0);
        let factor_re = (shifted.clone() * lambda.re.clone() + lambda_bar.im.clone() * lambda.im.clone()) / norm.clone();
        let factor_im = (lambda_bar.im.clone() * lambda.re - shifted * lambda.im) / norm;
        let states = factor_re.dims()[0];
        let (factor_re, factor_im) = (factor_re.reshape([1, states]), factor_im.reshape([1, states]));
        let (b_re, b_im) = (self.b_real.val(), self.b_imag.val());
        let b_bar = Complex {
            re: b_re.clone() * factor_re.clone() - b_im.clone() * factor_im.clone(),
            im: b_re * factor_im + b_im * factor_re,
        };
        (lambda_bar, b_bar)
    }

    /// The state space's output before the nonlinearity, `y = 2 Re(C~ x) + D u` (plus
    /// `2 Re(C2~ x')` when bidirectional): `u: [batch, len, d_model]` -> `[batch, len, d_model]`.
    pub fn ssm(&self, u: Tensor<3>) -> Tensor<3> {
        let d_model = u.dims()[2];
        let (lambda_bar, b_bar) = self.discretised();
        // B_bar u_k for every step: [batch, len, P/2].
        let driven = Complex { re: u.clone().matmul(b_bar.re.unsqueeze::<3>()), im: u.clone().matmul(b_bar.im.unsqueeze::<3>()) };
        // 2 Re(C~ x) = 2 (Re x Re C~ᵀ - Im x Im C~ᵀ).
        let read = |x: Complex<3>, c: (&Param<Tensor<2>>, &Param<Tensor<2>>)| {
            (x.re.matmul(c.0.val().unsqueeze::<3>()) - x.im.matmul(c.1.val().unsqueeze::<3>())).mul_scalar(2.0)
        };
        let mut y = read(linear_recurrence(lambda_bar.clone(), driven.clone()), (&self.c_real, &self.c_imag))
            + u * self.skip.val().reshape([1, 1, d_model]);
        if let Some((c_real, c_imag)) = &self.c_backward {
            // Run from the end: position k of the flipped-back result holds
            // x'_k = sum_{s >= k} Lambda_bar^(s - k) B_bar u_s, the current step included.
            let from_end = linear_recurrence_from_end(lambda_bar, driven);
            y = y + read(from_end, (c_real, c_imag));
        }
        y
    }
}

impl AttentionLayer for S5 {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// Work of one forward ([`super::flops`]), `P/2` complex states over `D = d_model`
/// channels: the input projection `B_bar u`, two real products `[n, D] x [D, P/2]`; the
/// readout `Re(C~ x)`, two `[n, P/2] x [P/2, D]` per direction; the recurrence, a complex
/// multiply-add per step and state (8 operations) per direction; then the gate's dense
/// layer `2 b n D^2`.
pub fn forward_flops(shape: &LayerShape, state_size: usize, bidirectional: bool) -> f64 {
    let (n, d_model, states) = (shape.n(), shape.d_model as f64, (state_size / 2) as f64);
    let directions = if bidirectional { 2.0 } else { 1.0 };
    let recurrence = 8.0 * shape.batch as f64 * n * states;
    shape.products(2.0, n, d_model, states)
        + directions * (shape.products(2.0, n, states, d_model) + recurrence)
        + shape.products(1.0, n, d_model, d_model)
}

/// A complex number on the host, for the initialisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cx {
    pub re: f64,
    pub im: f64,
}

impl Cx {
    pub const ZERO: Cx = Cx { re: 0.0, im: 0.0 };

    pub fn conj(self) -> Cx {
        Cx { re: self.re, im: -self.im }
    }

    pub fn scale(self, factor: f64) -> Cx {
        Cx { re: self.re * factor, im: self.im * factor }
    }
}

impl std::ops::Add for Cx {
    type Output = Cx;
    fn add(self, other: Cx) -> Cx {
        Cx { re: self.re + other.re, im: self.im + other.im }
    }
}

impl std::ops::Mul for Cx {
    type Output = Cx;
    fn mul(self, other: Cx) -> Cx {
        Cx { re: self.re * other.re - self.im * other.im, im: self.re * other.im + self.im * other.re }
    }
}

/// HiPPO-LegS of size `n`, row-major `[n, n]`: `A_nk = -(2n+1)^½ (2k+1)^½` for `n > k`,
/// `-(n+1)` for `n = k`, 0 for `n < k` (`ssm_init.py:7`, after S4).
pub fn hippo_legs(n: usize) -> Vec<f64> {
    let root = |k: usize| ((2 * k + 1) as f64).sqrt();
    (0..n * n)
        .map(|at| {
            let (row, col) = (at / n, at % n);
            match row.cmp(&col) {
                std::cmp::Ordering::Greater => -root(row) * root(col),
                std::cmp::Ordering::Equal => -((row + 1) as f64),
                std::cmp::Ordering::Less => 0.0,
            }
        })
        .collect()
}

/// HiPPO-N of size `n`, row-major `[n, n]`: HiPPO-LegS plus the rank-one `p pᵀ`,
/// `p_k = (k + ½)^½` (`ssm_init.py:21-58`). It is `-½ I` plus a real skew-symmetric matrix.
pub fn hippo_n(n: usize) -> Vec<f64> {
    let p = |k: usize| (k as f64 + 0.5).sqrt();
    hippo_legs(n).into_iter().enumerate().map(|(at, a)| a + p(at / n) * p(at % n)).collect()
}

/// The eigendecomposition of HiPPO-N of size `n`: `(w, V)` with HiPPO-N `v_k = (-½ + i w_k) v_k`,
/// `w` ascending, `V` unitary, row-major `[n, n]` (column `k` is `v_k`).
///
/// Method: HiPPO-N = `-½ I + S`, `S` real skew-symmetric, so its eigenvectors are those of
/// `S`, and `S v = i w v` with `w` real (the Hermitian problem `-i S v = w v`, which the
/// paper's code hands to `eigh`). Writing `v = a + i b`, it is `S b = w a`, `-S a = w b`:
/// the real symmetric matrix `K = [[0, S], [-S, 0]]` (2n x 2n) has `[a; b]` as an
/// eigenvector of eigenvalue `w`. `K` is diagonalised by cyclic Jacobi rotations
/// ([`symmetric_eigen`]). Each `w` appears twice in `K`, for `v` and for `i v` (the same
/// complex line), so after sorting every other eigenvector gives one `v` per `w` (the
/// eigenvalues of HiPPO-N are distinct, so each pair spans exactly one complex line).
/// `|v|² = |a|² + |b|² = 1`, and eigenvectors of distinct `w` are orthogonal: `V` is
/// unitary. Cost O(n³) per sweep, a few sweeps: immediate at the blocks of the paper
/// (16 to 128).
pub fn hippo_n_eigen(n: usize) -> (Vec<f64>, Vec<Cx>) {
    let a = hippo_n(n);
    let size = 2 * n;
    let mut k = vec![0.0; size * size];
    for row in 0..n {
        for col in 0..n {
            // The skew-symmetric part; the diagonal (-1/2) is left out.
            let s = (a[row * n + col] - a[col * n + row]) / 2.0;
            k[row * size + n + col] = s;
            k[(n + row) * size + col] = -s;
        }
    }
    let (values, vectors) = symmetric_eigen(k, size);
    let mut order: Vec<usize> = (0..size).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let kept: Vec<usize> = order.into_iter().step_by(2).collect();
    let w = kept.iter().map(|&i| values[i]).collect();
    let mut v = vec![Cx::ZERO; n * n];
    for (column, &i) in kept.iter().enumerate() {
        for row in 0..n {
            v[row * n + column] = Cx { re: vectors[row * size + i], im: vectors[(n + row) * size + i] };
        }
    }
    (w, v)
}

/// Eigenvalues and eigenvectors of a real symmetric `[n, n]` matrix (row-major) by cyclic
/// Jacobi rotations: each rotation in the plane `(p, q)` zeroes `a_pq` (Golub and Van Loan,
/// "Matrix Computations", Section 8.5), sweeps over every pair until the off-diagonal part is
/// below `1e-14` of the matrix's norm. Returns the eigenvalues (unsorted) and the
/// eigenvectors as the columns of a row-major `[n, n]` orthogonal matrix.
pub fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v: Vec<f64> = (0..n * n).map(|at| if at / n == at % n { 1.0 } else { 0.0 }).collect();
    let norm: f64 = a.iter().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..n * n).filter(|at| at / n != at % n).map(|at| a[at] * a[at]).sum();
        if off <= 1e-28 * norm {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation angle that zeroes a_pq: tan of it, the smaller root.
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A <- Jᵀ A J and V <- V J, J the identity but for J_pp = J_qq = c, J_pq = s, J_qp = -s.
                for r in 0..n {
                    let (rp, rq) = (a[r * n + p], a[r * n + q]);
                    a[r * n + p] = c * rp - s * rq;
                    a[r * n + q] = s * rp + c * rq;
                }
                for col in 0..n {
                    let (pc, qc) = (a[p * n + col], a[q * n + col]);
                    a[p * n + col] = c * pc - s * qc;
                    a[q * n + col] = s * pc + c * qc;
                }
                for r in 0..n {
                    let (rp, rq) = (v[r * n + p], v[r * n + q]);
                    v[r * n + p] = c * rp - s * rq;
                    v[r * n + q] = s * rp + c * rq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{assert_close, assert_finite_gradients, assert_padding_is_invisible, padding_after, values};

    /// `x_k = Lambda_bar x_{k-1} + B_bar u_k` step by step over plain numbers, from the
    /// layer's parameters (Lambda, Delta and the discretisation recomputed here), in the
    /// order the steps are given; returns every `x_k`, `[len][P/2]`. `u: [len][d_model]`.
    fn states(layer: &S5, u: &[Vec<f32>]) -> Vec<Vec<Cx>> {
        let f64s = |t: Tensor<1>| values(t).into_iter().map(f64::from).collect::<Vec<f64>>();
        let (re, im, log_step) = (f64s(layer.lambda_real.val()), f64s(layer.lambda_imag.val()), f64s(layer.log_step.val()));
        let (b_real, b_imag) = (values(layer.b_real.val()), values(layer.b_imag.val()));
        let n = re.len();
        let mut x = vec![Cx::ZERO; n];
        let mut all = Vec::new();
        for step in u {
            for k in 0..n {
                let lambda = Cx { re: if layer.clip_eigenvalues { re[k].min(CLIPPED_REAL_PART) } else { re[k] }, im: im[k] };
                let delta = log_step[k].exp();
                let lambda_bar = Cx {
                    re: (lambda.re * delta).exp() * (lambda.im * delta).cos(),
                    im: (lambda.re * delta).exp() * (lambda.im * delta).sin(),
                };
                // (Lambda_bar - 1) / Lambda.
                let norm = lambda.re * lambda.re + lambda.im * lambda.im;
                let factor = (Cx { re: lambda_bar.re - 1.0, im: lambda_bar.im } * lambda.conj()).scale(1.0 / norm);
                let driven = step.iter().enumerate().fold(Cx::ZERO, |sum, (h, &value)| {
                    let b = Cx { re: b_real[h * n + k] as f64, im: b_imag[h * n + k] as f64 };
                    sum + (factor * b).scale(value as f64)
                });
                x[k] = lambda_bar * x[k] + driven;
            }
            all.push(x.clone());
        }
        all
    }

    /// `2 Re(C~ x)` of one state, `C~ᵀ` given as `[P/2, d_model]` parts.
    fn readout(c: (&Param<Tensor<2>>, &Param<Tensor<2>>), x: &[Cx], d_model: usize) -> Vec<f64> {
        let (c_real, c_imag) = (values(c.0.val()), values(c.1.val()));
        (0..d_model)
            .map(|h| {
                2.0 * x
                    .iter()
                    .enumerate()
                    .map(|(k, x)| c_real[k * d_model + h] as f64 * x.re - c_imag[k * d_model + h] as f64 * x.im)
                    .sum::<f64>()
            })
            .collect()
    }

    /// The layer's `y` for one sequence `u: [len][d_model]` from plain loops: the forward
    /// recurrence read by `C~`, `D u`, and (when there is `C2~`) the recurrence run from the
    /// end, the current step included, read by `C2~`.
    fn plain_ssm(layer: &S5, u: &[Vec<f32>]) -> Vec<f32> {
        let (len, d_model) = (u.len(), u[0].len());
        let skip = values(layer.skip.val());
        let forward = states(layer, u);
        let reversed: Vec<Vec<f32>> = u.iter().rev().cloned().collect();
        let backward = states(layer, &reversed); // step s of it is position len - 1 - s
        let mut y = Vec::new();
        for t in 0..len {
            let mut row = readout((&layer.c_real, &layer.c_imag), &forward[t], d_model);
            for (h, value) in row.iter_mut().enumerate() {
                *value += skip[h] as f64 * u[t][h] as f64;
            }
            if let Some((c_real, c_imag)) = &layer.c_backward {
                let after = readout((c_real, c_imag), &backward[len - 1 - t], d_model);
                row.iter_mut().zip(after).for_each(|(value, after)| *value += after);
            }
            y.extend(row.into_iter().map(|v| v as f32));
        }
        y
    }

    // ndarray is deprecated in burn, and kept selectable here.
    #[allow(deprecated)]
    #[test]
    fn s5_scan_layer_equals_its_recurrence_step_by_step_in_both_directions() {
        let (batch, len, d_model) = (2, 11, 5);
        for device in [Device::flex(), Device::ndarray()] {
            device.seed(81);
            // Two blocks of 4 (2 complex states each); timescales up to 1, so that the states turn and decay within the sequence.
            let mut layer = S5Config::new(d_model).with_state_size(8).with_blocks(2).with_dt_max(1.0).init(&device);
            let u = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
            for bidirectional in [true, false] {
                if !bidirectional {
                    layer.c_backward = None;
                }
                let got = values(layer.ssm(u.clone()));
                let all = values(u.clone());
                let expected: Vec<f32> = all
                    .chunks(len * d_model)
                    .flat_map(|sequence| plain_ssm(&layer, &sequence.chunks(d_model).map(<[f32]>::to_vec).collect::<Vec<_>>()))
                    .collect();
                assert_close(&got, &expected, 1e-4, &format!("bidirectional {bidirectional}"));
            }
        }
    }

    /// HiPPO-N is HiPPO-LegS plus `p pᵀ`: -1/2 on the diagonal and skew-symmetric off it,
    /// the structure the eigendecomposition relies on.
    #[test]
    fn s5_hippo_n_is_minus_one_half_plus_a_skew_symmetric_matrix() {
        let n = 9;
        let a = hippo_n(n);
        for row in 0..n {
            assert!((a[row * n + row] + 0.5).abs() < 1e-12, "diagonal {row}: {}", a[row * n + row]);
            for col in 0..row {
                assert!((a[row * n + col] + a[col * n + row]).abs() < 1e-12, "({row}, {col}) not skew");
                assert!(a[row * n + col].abs() > 0.1, "({row}, {col}) vanishes");
            }
        }
    }

    /// `A V = V Lambda` and `V* V = I` for HiPPO-N of several sizes, the eigenvalues
    /// `-1/2 + i w` in conjugate pairs.
    #[test]
    fn s5_hippo_n_eigendecomposition_satisfies_the_eigen_identity_with_a_unitary_v() {
        for n in [2, 5, 16, 40] {
            let a = hippo_n(n);
            let (w, v) = hippo_n_eigen(n);
            let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            for k in 0..n {
                let eigenvalue = Cx { re: -0.5, im: w[k] };
                for row in 0..n {
                    let av = (0..n).fold(Cx::ZERO, |sum, col| sum + v[col * n + k].scale(a[row * n + col]));
                    let lv = eigenvalue * v[row * n + k];
                    let residual = ((av.re - lv.re).powi(2) + (av.im - lv.im).powi(2)).sqrt();
                    assert!(residual < 1e-10 * scale, "n {n}, eigenpair {k}, row {row}: residual {residual}");
                }
                for other in 0..n {
                    let inner = (0..n).fold(Cx::ZERO, |sum, row| sum + v[row * n + k].conj() * v[row * n + other]);
                    let expected = if k == other { 1.0 } else { 0.0 };
                    assert!(
                        (inner.re - expected).abs() < 1e-10 && inner.im.abs() < 1e-10,
                        "n {n}: <v_{k}, v_{other}> = {inner:?}"
                    );
                }
                // Conjugate pairs: w ascending is the negation of w descending.
                assert!((w[k] + w[n - 1 - k]).abs() < 1e-9, "n {n}: w {} and {} are not a pair", w[k], w[n - 1 - k]);
            }
            assert!(w.windows(2).all(|pair| pair[1] - pair[0] > 1e-6), "n {n}: eigenvalues not distinct: {w:?}");
        }
    }

    /// The layer starts at HiPPO-N's eigenvalues, `J` copies of the `w < 0` half of a
    /// block, with `B~ = V* B` and `C~ = C V` block by block, for the `B` and `C` drawn
    /// (drawn again here from the same seed, in the same order).
    #[test]
    fn s5_starts_at_hippo_n_eigenvalues_in_blocks_with_b_and_c_through_v() {
        let device = Device::flex();
        let (state_size, blocks, d_model) = (24, 3, 4);
        device.seed(82);
        let layer = S5Config::new(d_model).with_state_size(state_size).with_blocks(blocks).init(&device);
        device.seed(82);
        let std = (1.0 / state_size as f64).sqrt();
        let b = normal_draws(state_size * d_model, std, &device);
        let (c_re, c_im) = (normal_draws(d_model * state_size, std, &device), normal_draws(d_model * state_size, std, &device));
        let (block, kept, states) = (state_size / blocks, state_size / blocks / 2, state_size / 2);
        let (w, v) = hippo_n_eigen(block);
        let (re, im) = (values(layer.lambda_real.val()), values(layer.lambda_imag.val()));
        assert_eq!(re.len(), states);
        for (k, (re, im)) in re.iter().zip(&im).enumerate() {
            assert_eq!(*re, -0.5);
            assert!((*im as f64 - w[k % kept]).abs() < 1e-5 && w[k % kept] < 0.0, "state {k}: {im} against {}", w[k % kept]);
        }
        let (b_real, b_imag) = (values(layer.b_real.val()), values(layer.b_imag.val()));
        let (c_real, c_imag) = (values(layer.c_real.val()), values(layer.c_imag.val()));
        for j in 0..blocks {
            for m in 0..kept {
                let state = j * kept + m;
                for h in 0..d_model {
                    let vb =
                        (0..block).fold(Cx::ZERO, |sum, r| sum + v[r * block + m].conj().scale(b[(j * block + r) * d_model + h]));
                    let at = h * states + state;
                    assert!(
                        (vb.re - b_real[at] as f64).abs() < 1e-5 && (vb.im - b_imag[at] as f64).abs() < 1e-5,
                        "B~[{state}][{h}]"
                    );
                    let cv = (0..block).fold(Cx::ZERO, |sum, r| {
                        let at = h * state_size + j * block + r;
                        sum + Cx { re: c_re[at], im: c_im[at] } * v[r * block + m]
                    });
                    let at = state * d_model + h;
                    assert!(
                        (cv.re - c_real[at] as f64).abs() < 1e-5 && (cv.im - c_imag[at] as f64).abs() < 1e-5,
                        "C~[{h}][{state}]"
                    );
                }
            }
        }
    }

    #[test]
    fn s5_padding_at_the_end_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(83);
        let layer = S5Config::new(8).with_state_size(8).with_blocks(2).init(&device);
        assert_padding_is_invisible(|x, padding| layer.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    #[test]
    fn s5_gradients_are_finite_for_every_parameter() {
        for bidirectional in [true, false] {
            let device = Device::flex().autodiff();
            device.seed(84);
            let layer = S5Config::new(8).with_state_size(8).with_blocks(2).with_bidirectional(bidirectional).init(&device);
            let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
            let grads = layer.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
            // Lambda's two parts, log Delta, B~'s two, C~'s two (and C2~'s), D, the gate's weight and bias.
            let expected = if bidirectional { 12 } else { 10 };
            assert_eq!(assert_finite_gradients(&layer, &grads), expected, "bidirectional {bidirectional}");
        }
    }

    #[test]
    fn s5_check_refuses_an_empty_state_and_blocks_that_do_not_split_it_naming_them_and_the_length() {
        let defaults = S5Settings::defaults(100);
        assert_eq!(defaults.check(100), Ok(()));
        for (settings, named) in [
            (S5Settings { state_size: 0, ..defaults.clone() }, "state_size"),
            (S5Settings { blocks: 0, ..defaults.clone() }, "blocks"),
            // 3 blocks do not divide 128.
            (S5Settings { blocks: 3, ..defaults.clone() }, "blocks"),
            // 12 / 4 = 3 states per block: odd, no conjugate pairs.
            (S5Settings { state_size: 12, blocks: 4, ..defaults.clone() }, "blocks"),
            (S5Settings { dt_min: 0.0, ..defaults.clone() }, "dt_min"),
        ] {
            let problem = settings.check(100).unwrap_err();
            assert!(problem.contains(named) && problem.contains("100"), "{problem}");
        }
    }
}
