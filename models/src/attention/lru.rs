//! LRU: the Linear Recurrent Unit, a diagonal complex linear recurrence run by a scan.
//!
//! Paper: Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu, De, "Resurrecting Recurrent
//! Neural Networks for Long Sequences", ICML 2023.
//! Family: recurrence (a linear recurrent network, diagonal and complex, as a state-space
//! model without a continuous-time system).
//! Cost here: O(n N d) time (the input and output projections of the state, `N` complex
//! states, `d = d_model`) and O(n N) memory per sequence, linear in the length n; the
//! recurrence itself is O(n N) work, run in order on the CPU and as a log-depth scan
//! (O(n log n N) work) elsewhere (`crate::scan`).
//!
//! The layer (Section 3 and the code of Appendix A), over inputs `u_t: [d_model]`:
//!
//! - `x_t = lambda ⊙ x_{t-1} + gamma ⊙ (B u_t)`, `x_{-1} = 0`, with `N` complex states
//!   `x_t`, a complex `B: [N, d_model]`;
//! - `y_t = Re(C x_t) + D ⊙ u_t`, with a complex `C: [d_model, N]` and a real `D: [d_model]`.
//!
//! Section 3.1 takes the recurrence linear (no nonlinearity in time), Section 3.2 diagonal
//! and complex: the diagonalised form of a dense linear recurrence.
//!
//! The stable exponential parametrisation (Section 3.3): `lambda = exp(-exp(nu_log) +
//! i exp(theta_log))`, so `|lambda| = exp(-exp(nu_log)) < 1` whatever the parameters, and
//! training moves `nu_log` and `theta_log`, the logs of the decay rate and of the angle.
//!
//! Ring initialisation (Lemma 3.2): `lambda` uniform on the ring `r_min <= |lambda| <=
//! r_max` with phase in `[0, max_phase]`: for `u1, u2` uniform in `[0, 1]`,
//! `nu = -1/2 log(u1 (r_max^2 - r_min^2) + r_min^2)`, `theta = max_phase u2`,
//! `nu_log = log nu`, `theta_log = log theta`. The defaults here (`r_min` 0.9, `r_max`
//! 0.999, the full phase range, 64 states) are this harness's choice, a ring near the unit
//! circle for long memory (the point of Section 3.3); the paper sets them per task.
//!
//! Normalisation (Section 3.4): `gamma = sqrt(1 - |lambda|^2)`, which keeps the state's
//! variance that of the input when `|lambda|` nears 1; it is trained as `gamma_log`,
//! initialised at `log sqrt(1 - |lambda|^2)` of the initial `lambda`.
//!
//! Initialisation of the projections (Appendix A): `B`'s real and imaginary parts normal
//! of variance `1 / (2 d_model)` (Glorot, halved for the two parts), `C`'s of variance
//! `1 / N`, `D` standard normal.
//!
//! Bidirectional (the default, as S4D's here; the sections cited above do not say whether
//! the paper's LRA layers read both directions, so this follows S4D's handling in this
//! harness): a second output matrix `C'` reads the same recurrence run from
//! the end, strictly after each step, exactly as S4D's backward kernel,
//! `y_t = Re(C x_t) + Re(C' x'_{t+1}) + D u_t` with `x'_t = lambda ⊙ x'_{t+1} + gamma ⊙ (B u_t)`
//! from `x'_len = 0`: a classifier reading a CLS token at position 0 sees the whole
//! sequence. As S4D, the layer's output is `Linear(dropout(GELU(y)))`, the rest of the
//! paper's block (normalisation, residual) being the encoder block's.
//!
//! Padding: padded positions are zeroed before `B`. The recurrence is linear from a zero
//! state, and `B u` has no bias, so zeros add nothing in either direction: a sequence
//! padded at its end gives its real tokens exactly the outputs of the same sequence
//! without padding. The layer takes no heads; its state size is `state_size`.

use std::f64::consts::PI;

use crate::activation::gelu_erf;
use crate::dense::apply_dense;
use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use serde::{Deserialize, Serialize};

use super::softmax::dropout;

use super::flops::LayerShape;
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Settings, in_sequences_of};
use crate::scan::{Complex, linear_recurrence, linear_recurrence_from_end};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n) time and memory (a diagonal linear recurrence, run as a scan)";

#[derive(Config, Debug)]
pub struct LruConfig {
    /// Input and output width.
    pub d_model: usize,
    /// Dropout after the GELU.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// `N`, the number of complex states.
    #[config(default = 64)]
    pub state_size: usize,
    /// Smallest initial modulus of `lambda` (Lemma 3.2).
    #[config(default = 0.9)]
    pub r_min: f64,
    /// Largest initial modulus of `lambda`, below 1.
    #[config(default = 0.999)]
    pub r_max: f64,
    /// Initial phases of `lambda` lie in `[0, max_phase]`.
    #[config(default = "2.0 * PI")]
    pub max_phase: f64,
    /// Add the backward pass (its own `C'`); `false` gives the causal layer.
    #[config(default = true)]
    pub bidirectional: bool,
}

impl LruConfig {
    pub fn init(&self, device: &Device) -> Lru {
        if let Err(problem) = check_ring(self.state_size, self.r_min, self.r_max, self.max_phase) {
            panic!("LRU: {problem}");
        }
        let (states, d_model) = (self.state_size, self.d_model);
        // Lemma 3.2's ring, drawn on the host from the device's generator.
        let uniform = |device: &Device| -> Vec<f64> {
            Tensor::<1>::random([states], Distribution::Uniform(0.0, 1.0), device)
                .into_data()
                .iter::<f32>()
                .map(f64::from)
                .collect()
        };
        let (u1, u2) = (uniform(device), uniform(device));
        let (r_min2, r_max2) = (self.r_min * self.r_min, self.r_max * self.r_max);
        let nu: Vec<f64> = u1.iter().map(|u| -0.5 * (u * (r_max2 - r_min2) + r_min2).ln()).collect();
        // A phase of exactly 0 would have no log; the smallest f32 step above it stands in.
        let theta: Vec<f64> = u2.iter().map(|u| (self.max_phase * u).max(f64::from(f32::MIN_POSITIVE))).collect();
        let gamma_log: Vec<f32> = nu.iter().map(|nu| (0.5 * (1.0 - (-2.0 * nu).exp()).ln()) as f32).collect();
        let logs = |values: &[f64]| values.iter().map(|v| v.ln() as f32).collect::<Vec<f32>>();
        let vector = |values: Vec<f32>| Param::from_data(TensorData::new(values, [states]), device);
        let b_part = Initializer::Normal { mean: 0.0, std: (1.0 / (2.0 * d_model as f64)).sqrt() };
        let c_part = Initializer::Normal { mean: 0.0, std: (1.0 / states as f64).sqrt() };
        Lru {
            nu_log: vector(logs(&nu)),
            theta_log: vector(logs(&theta)),
            gamma_log: vector(gamma_log),
            b_real: b_part.init([d_model, states], device),
            b_imag: b_part.init([d_model, states], device),
            c_real: c_part.init([states, d_model], device),
            c_imag: c_part.init([states, d_model], device),
            c_backward: self
                .bidirectional
                .then(|| (c_part.init([states, d_model], device), c_part.init([states, d_model], device))),
            skip: Initializer::Normal { mean: 0.0, std: 1.0 }.init([d_model], device),
            output: LinearConfig::new(d_model, d_model).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// LRU's own settings in a run's configuration (`"attention": {"lru": {...}}`): the state
/// size, the ring its `lambda` starts on and its direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LruSettings {
    pub state_size: usize,
    pub r_min: f64,
    pub r_max: f64,
    pub max_phase: f64,
    pub bidirectional: bool,
}

/// Refuses a state size of 0 and a ring that is not `0 <= r_min <= r_max < 1` with a
/// positive phase range.
fn check_ring(state_size: usize, r_min: f64, r_max: f64, max_phase: f64) -> Result<(), String> {
    if state_size == 0 {
        return Err("state_size must be at least 1".into());
    }
    if !(0.0 <= r_min && r_min <= r_max && r_max < 1.0) {
        return Err(format!("r_min ({r_min}) and r_max ({r_max}) must satisfy 0 <= r_min <= r_max < 1"));
    }
    match max_phase > 0.0 {
        true => Ok(()),
        false => Err(format!("max_phase ({max_phase}) must be positive")),
    }
}

impl Settings for LruSettings {
    type Layer = Lru;
    const MODEL: ModelCard = ModelCard {
        name: "lru",
        title: "LRU, Linear Recurrent Unit (Orvieto et al. 2023)",
        family: "recurrence (linear recurrent unit)",
        cost: COST,
    };

    fn defaults(_max_length: usize) -> LruSettings {
        let c = LruConfig::new(1);
        LruSettings {
            state_size: c.state_size,
            r_min: c.r_min,
            r_max: c.r_max,
            max_phase: c.max_phase,
            bidirectional: c.bidirectional,
        }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        check_ring(self.state_size, self.r_min, self.r_max, self.max_phase).map_err(in_sequences_of(positions))
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.state_size, self.bidirectional)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> Lru {
        // LRU has no attention width: it mixes tokens at d_model.
        LruConfig::new(layer.d_model)
            .with_state_size(self.state_size)
            .with_r_min(self.r_min)
            .with_r_max(self.r_max)
            .with_max_phase(self.max_phase)
            .with_bidirectional(self.bidirectional)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct Lru {
    /// `log(-log |lambda|): [N]`.
    pub nu_log: Param<Tensor<1>>,
    /// `log arg(lambda): [N]`.
    pub theta_log: Param<Tensor<1>>,
    /// `log gamma: [N]`, the input normalisation.
    pub gamma_log: Param<Tensor<1>>,
    /// `B^T: [d_model, N]`, real and imaginary parts (transposed, so that `u B^T` is a product of rows).
    pub b_real: Param<Tensor<2>>,
    pub b_imag: Param<Tensor<2>>,
    /// `C^T: [N, d_model]`, real and imaginary parts.
    pub c_real: Param<Tensor<2>>,
    pub c_imag: Param<Tensor<2>>,
    /// `C'^T: [N, d_model]` of the backward pass, real and imaginary parts; `None` when causal.
    pub c_backward: Option<(Param<Tensor<2>>, Param<Tensor<2>>)>,
    /// `D: [d_model]`, the skip connection.
    pub skip: Param<Tensor<1>>,
    pub output: Linear,
    pub dropout: Dropout,
}

impl Lru {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let u = x.mul(padding.bool_not().float().reshape([batch, len, 1]));
        apply_dense(&self.output, dropout(gelu_erf(self.recur(u)), &self.dropout))
    }

    /// `lambda: [N]`, real and imaginary parts.
    pub fn lambda(&self) -> Complex<1> {
        let modulus = self.nu_log.val().exp().neg().exp();
        let angle = self.theta_log.val().exp();
        Complex { re: modulus.clone() * angle.clone().cos(), im: modulus * angle.sin() }
    }

    /// The recurrence and its readout, `y = Re(C x) + D u` (plus `Re(C' x'_{t+1})` when
    /// bidirectional): `u: [batch, len, d_model]` -> `[batch, len, d_model]`.
    pub fn recur(&self, u: Tensor<3>) -> Tensor<3> {
        let [batch, len, d_model] = u.dims();
        let states = self.gamma_log.dims()[0];
        // gamma ⊙ (B u_t) for every step, real and imaginary parts side by side in one
        // product (one wide product runs faster than two narrow ones): [batch, len, 2N].
        let gamma = self.gamma_log.val().exp().reshape([1, 1, states]);
        let b = Tensor::cat(vec![self.b_real.val(), self.b_imag.val()], 1).unsqueeze::<3>();
        let driven = u.clone().matmul(b) * Tensor::cat(vec![gamma.clone(), gamma], 2);
        let driven = Complex { re: driven.clone().narrow(2, 0, states), im: driven.narrow(2, states, states) };
        // Re(C x) = Re(x) Re(C^T) - Im(x) Im(C^T): the states' parts side by side, read by
        // one product with the parts of C stacked (and those of C' after them).
        let forward = linear_recurrence(self.lambda(), driven.clone());
        let mut read = vec![forward.re, forward.im];
        let mut weights = vec![self.c_real.val(), self.c_imag.val().neg()];
        if let Some((c_real, c_imag)) = &self.c_backward {
            // Run from the end: position t of the flipped-back result holds
            // x'_t = sum_{s >= t} lambda^(s - t) gamma B u_s; position t reads x'_{t+1}
            // (zero after the last step).
            let from_end = linear_recurrence_from_end(self.lambda(), driven);
            let later =
                |x: Tensor<3>| Tensor::cat(vec![x.narrow(1, 1, len - 1), Tensor::zeros([batch, 1, states], &u.device())], 1);
            read.extend([later(from_end.re), later(from_end.im)]);
            weights.extend([c_real.val(), c_imag.val().neg()]);
        }
        let readout = Tensor::cat(read, 2).matmul(Tensor::cat(weights, 0).unsqueeze::<3>());
        readout + u * self.skip.val().reshape([1, 1, d_model])
    }
}

impl AttentionLayer for Lru {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// Work of one forward ([`super::flops`]), `N` complex states over `D = d_model`
/// channels: the input projection `B u`, two real products `[n, D] x [D, N]`; the
/// readout `Re(C x)`, two `[n, N] x [N, D]` per direction; the recurrence, a complex
/// multiply-add per step and state (8 operations); then the output layer `2 b n D^2`.
pub fn forward_flops(shape: &LayerShape, state_size: usize, bidirectional: bool) -> f64 {
    let (n, d_model, states) = (shape.n(), shape.d_model as f64, state_size as f64);
    let directions = if bidirectional { 2.0 } else { 1.0 };
    let recurrence = 8.0 * shape.batch as f64 * n * states;
    shape.products(2.0, n, d_model, states)
        + directions * (shape.products(2.0, n, states, d_model) + recurrence)
        + shape.products(1.0, n, d_model, d_model)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{assert_close, assert_finite_gradients, assert_padding_is_invisible, padding_after, values};

    type C64 = (f64, f64);
    fn mul(a: C64, b: C64) -> C64 {
        (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0)
    }

    /// `x_t = lambda x_{t-1} + gamma (B u_t)` step by step over plain numbers, from the
    /// layer's parameters, in the order the steps are given; returns every `x_t`,
    /// `[len][N]`. `u: [len][d_model]`.
    fn states(layer: &Lru, u: &[Vec<f32>]) -> Vec<Vec<C64>> {
        let (nu_log, theta_log, gamma_log) =
            (values(layer.nu_log.val()), values(layer.theta_log.val()), values(layer.gamma_log.val()));
        let (b_real, b_imag) = (values(layer.b_real.val()), values(layer.b_imag.val()));
        let n = nu_log.len();
        let mut x = vec![(0.0, 0.0); n];
        let mut all = Vec::new();
        for step in u {
            for k in 0..n {
                let modulus = (-(nu_log[k] as f64).exp()).exp();
                let angle = (theta_log[k] as f64).exp();
                let lambda = (modulus * angle.cos(), modulus * angle.sin());
                let gamma = (gamma_log[k] as f64).exp();
                let driven = step.iter().enumerate().fold((0.0, 0.0), |(re, im), (h, &value)| {
                    (re + b_real[h * n + k] as f64 * value as f64, im + b_imag[h * n + k] as f64 * value as f64)
                });
                let decayed = mul(lambda, x[k]);
                x[k] = (decayed.0 + gamma * driven.0, decayed.1 + gamma * driven.1);
            }
            all.push(x.clone());
        }
        all
    }

    /// `Re(C x)` of one state, `C^T` given as `[N, d_model]` parts.
    fn readout(c: (&Param<Tensor<2>>, &Param<Tensor<2>>), x: &[C64], d_model: usize) -> Vec<f64> {
        let (c_real, c_imag) = (values(c.0.val()), values(c.1.val()));
        (0..d_model)
            .map(|h| {
                x.iter()
                    .enumerate()
                    .map(|(k, x)| c_real[k * d_model + h] as f64 * x.0 - c_imag[k * d_model + h] as f64 * x.1)
                    .sum()
            })
            .collect()
    }

    /// The layer's `y` for one sequence `u: [len][d_model]` from plain loops: the forward
    /// recurrence read by `C`, `D u`, and (when there is `C'`) the recurrence run from the
    /// end read by `C'` one step later.
    fn plain_layer(layer: &Lru, u: &[Vec<f32>]) -> Vec<f32> {
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
            if let (Some((c_real, c_imag)), true) = (&layer.c_backward, t + 1 < len) {
                let after = readout((c_real, c_imag), &backward[len - 2 - t], d_model);
                row.iter_mut().zip(after).for_each(|(value, after)| *value += after);
            }
            y.extend(row.into_iter().map(|v| v as f32));
        }
        y
    }

    // ndarray is deprecated in burn, and kept selectable here.
    #[allow(deprecated)]
    #[test]
    fn lru_scan_layer_equals_its_recurrence_step_by_step() {
        let (batch, len, d_model) = (2, 13, 5);
        for device in [Device::flex(), Device::ndarray()] {
            device.seed(71);
            let mut layer = LruConfig::new(d_model).with_state_size(6).init(&device);
            let u = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
            for bidirectional in [true, false] {
                if !bidirectional {
                    layer.c_backward = None;
                }
                let got = values(layer.recur(u.clone()));
                let all = values(u.clone());
                let expected: Vec<f32> = all
                    .chunks(len * d_model)
                    .flat_map(|sequence| plain_layer(&layer, &sequence.chunks(d_model).map(<[f32]>::to_vec).collect::<Vec<_>>()))
                    .collect();
                assert_close(&got, &expected, 1e-4, &format!("bidirectional {bidirectional}"));
            }
        }
    }

    /// The ring initialisation: moduli within `[r_min, r_max]`, phases within
    /// `[0, max_phase]`, and `gamma = sqrt(1 - |lambda|^2)`.
    #[test]
    fn lru_starts_on_its_ring_with_the_normalisation_of_its_lambda() {
        let device = Device::flex();
        device.seed(72);
        let (r_min, r_max, max_phase) = (0.4, 0.8, 0.5);
        let layer =
            LruConfig::new(4).with_state_size(200).with_r_min(r_min).with_r_max(r_max).with_max_phase(max_phase).init(&device);
        let lambda = layer.lambda();
        let (re, im) = (values(lambda.re), values(lambda.im));
        let gamma: Vec<f32> = values(layer.gamma_log.val()).iter().map(|g| g.exp()).collect();
        for k in 0..re.len() {
            let modulus = (re[k] * re[k] + im[k] * im[k]).sqrt();
            let phase = im[k].atan2(re[k]);
            assert!((r_min as f32 - 1e-5..=r_max as f32 + 1e-5).contains(&modulus), "modulus {modulus}");
            assert!((0.0..=max_phase as f32 + 1e-5).contains(&phase), "phase {phase}");
            assert!((gamma[k] - (1.0 - modulus * modulus).sqrt()).abs() < 1e-5, "gamma {} at modulus {modulus}", gamma[k]);
        }
    }

    #[test]
    fn lru_padding_at_the_end_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(73);
        let layer = LruConfig::new(8).with_state_size(6).init(&device);
        assert_padding_is_invisible(|x, padding| layer.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    #[test]
    fn lru_gradients_are_finite_for_every_parameter() {
        for bidirectional in [true, false] {
            let device = Device::flex().autodiff();
            device.seed(74);
            let layer = LruConfig::new(8).with_state_size(6).with_bidirectional(bidirectional).init(&device);
            let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
            let grads = layer.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
            let expected = if bidirectional { 12 } else { 10 };
            assert_eq!(assert_finite_gradients(&layer, &grads), expected, "bidirectional {bidirectional}");
        }
    }

    #[test]
    fn lru_check_refuses_an_empty_state_naming_it_and_the_length() {
        let settings = LruSettings { state_size: 0, ..LruSettings::defaults(100) };
        let problem = settings.check(100).unwrap_err();
        assert!(problem.contains("state_size") && problem.contains("100"), "{problem}");
        assert_eq!(LruSettings::defaults(100).check(100), Ok(()));
    }
}
