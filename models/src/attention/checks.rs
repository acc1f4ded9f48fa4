//! Checks that the tests of the mechanisms in this folder share: padding invisibility,
//! finite gradients, and the explicit `[len, len]` reference of an attention pattern
//! (allowed here, in tests only). With them, the checks of plain numbers
//! ([`crate::numeric_checks`]); a tiny classifier's training is
//! [`crate::classifier_checks`]'s, above the registry that every mechanism is below.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::{Distribution, Gradients, TensorData};

use crate::attention::full_layer::FullAttention;
use crate::attention::heads::{HeadProjections, MASKED_SCORE};
pub use crate::numeric_checks::{assert_close, values};

/// Asserts that two `[batch, len, d]` outputs agree at the real tokens (the first
/// `real[b]` of row `b`).
pub fn assert_close_at_real_tokens(got: Tensor<3>, expected: Tensor<3>, real: &[usize], tolerance: f32, what: &str) {
    assert_eq!(got.dims(), expected.dims(), "{what}: shapes differ");
    for (b, &r) in real.iter().enumerate() {
        let take = |t: &Tensor<3>| values(t.clone().slice([b..b + 1, 0..r]));
        assert_close(&take(&got), &take(&expected), tolerance, &format!("{what}, row {b}"));
    }
}

/// `[batch, len, d_model]` drawn from N(0, 1).
pub fn random_input(batch: usize, len: usize, d_model: usize, device: &Device) -> Tensor<3> {
    Tensor::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), device)
}

/// An attention pattern `[1, heads, len, len]`, true where `allowed(head, query, key)`.
pub fn pattern_from_fn(
    heads: usize,
    len: usize,
    device: &Device,
    allowed: impl Fn(usize, usize, usize) -> bool,
) -> Tensor<4, Bool> {
    let mask: Vec<bool> = (0..heads * len * len).map(|at| allowed(at / (len * len), at / len % len, at % len)).collect();
    Tensor::from_data(TensorData::new(mask, [1, heads, len, len]), device)
}

/// The reference of a pattern-based mechanism: softmax attention over the whole score
/// matrix, restricted to `allowed` (`[1 or batch, heads, len, len]`, true = the query
/// attends the key) and to real keys: `q, k, v: [batch, heads, len, d]` ->
/// `[batch, heads, len, d]`.
pub fn pattern_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    allowed: Tensor<4, Bool>,
    padding: Tensor<2, Bool>,
) -> Tensor<4> {
    let [batch, heads, len, d] = q.dims();
    let shape = [batch, heads, len, len];
    let masked = allowed.expand(shape).bool_not().bool_or(padding.reshape([batch, 1, 1, len]).expand(shape));
    let scores = q.matmul(k.transpose()).mul_scalar(1.0 / (d as f64).sqrt()).mask_fill(masked, MASKED_SCORE);
    softmax(scores, 3).matmul(v)
}

/// A padding mask `[batch, len]` whose row `b` holds `real[b]` real tokens, then padding.
pub fn padding_after(real: &[usize], len: usize, device: &Device) -> Tensor<2, Bool> {
    let mask: Vec<bool> = real.iter().flat_map(|&r| (0..len).map(move |i| i >= r)).collect();
    Tensor::from_data(TensorData::new(mask, [real.len(), len]), device)
}

/// Asserts that padding is invisible to real tokens: row `b` of a batch, with `real[b]`
/// real tokens followed by large random padding content up to `len`, gives its real
/// tokens the outputs that the same `real[b]` tokens give alone, unpadded.
pub fn assert_padding_is_invisible(
    forward: impl Fn(Tensor<3>, Tensor<2, Bool>) -> Tensor<3>,
    d_model: usize,
    real: &[usize],
    len: usize,
    device: &Device,
) {
    let batch = real.len();
    let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), device);
    let noise = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 10.0), device);
    let padding = padding_after(real, len, device);
    let padded_x = x.clone().mask_where(padding.clone().unsqueeze_dim::<3>(2).expand([batch, len, d_model]), noise);
    let padded = forward(padded_x, padding);
    for (b, &r) in real.iter().enumerate() {
        let alone = forward(x.clone().slice([b..b + 1, 0..r]), Tensor::<2, Bool>::full([1, r], false, device));
        let got = values(padded.clone().slice([b..b + 1, 0..r]));
        assert_close(&got, &values(alone), 1e-4, &format!("row {b} ({r} real tokens of {len})"));
    }
}

/// Asserts that `forward` computes full attention with `projections` (no dropout) on a
/// random batch of `d_model`-wide rows, the second one padded after 4 of its 6 tokens: the
/// limit in which a mechanism must equal the Transformer.
pub fn assert_equals_full_attention(
    forward: impl Fn(Tensor<3>, Tensor<2, Bool>) -> Tensor<3>,
    projections: &HeadProjections,
    d_model: usize,
    device: &Device,
    what: &str,
) {
    let full = FullAttention { projections: projections.clone(), dropout: burn::nn::DropoutConfig::new(0.0).init() };
    let x = Tensor::<3>::random([2, 6, d_model], Distribution::Normal(0.0, 1.0), device);
    let padding = padding_after(&[6, 4], 6, device);
    let got = values(forward(x.clone(), padding.clone()));
    assert_close(&got, &values(full.forward(x, padding)), 1e-5, what);
}

/// Asserts the weaker property of mechanisms that mix over the padded length: at a fixed
/// padded length, what the padding positions hold does not change real tokens' outputs.
pub fn assert_padding_content_is_invisible(
    forward: impl Fn(Tensor<3>, Tensor<2, Bool>) -> Tensor<3>,
    d_model: usize,
    real: &[usize],
    len: usize,
    device: &Device,
) {
    let batch = real.len();
    let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), device);
    let padding = padding_after(real, len, device);
    let outputs: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            let noise = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 10.0), device);
            let padded_x = x.clone().mask_where(padding.clone().unsqueeze_dim::<3>(2).expand([batch, len, d_model]), noise);
            values(forward(padded_x, padding.clone()))
        })
        .collect();
    for (b, &r) in real.iter().enumerate() {
        let row = |v: &[f32]| v[b * len * d_model..(b * len + r) * d_model].to_vec();
        assert_close(&row(&outputs[0]), &row(&outputs[1]), 1e-5, &format!("row {b} ({r} real tokens of {len})"));
    }
}

/// Walks a module's float parameters and checks their gradients.
struct GradientCheck<'a> {
    grads: &'a Gradients,
    path: Vec<String>,
    checked: usize,
    /// Path prefixes of parts that took no input (Switch's experts no token was sent to):
    /// their parameters may have no gradient.
    idle: &'a [String],
}

impl ModuleVisitor for GradientCheck<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.path.join(".");
        let Some(grad) = param.grad(self.grads) else {
            assert!(self.idle.iter().any(|idle| path.starts_with(idle)), "parameter {path} {:?} has no gradient", param.dims());
            return;
        };
        let finite = grad.is_finite().all().into_scalar::<bool>();
        assert!(finite, "parameter {path} {:?} has a non-finite gradient", param.dims());
        self.checked += 1;
    }
}

/// Asserts that every float parameter of `module` has a finite gradient in `grads`;
/// returns how many parameters were checked.
pub fn assert_finite_gradients<M: Module>(module: &M, grads: &Gradients) -> usize {
    assert_finite_gradients_but_idle(module, grads, &[])
}

/// [`assert_finite_gradients`], where the parameters under the path prefixes `idle` (parts
/// that took no input in this step) may have none.
pub fn assert_finite_gradients_but_idle<M: Module>(module: &M, grads: &Gradients, idle: &[String]) -> usize {
    let mut check = GradientCheck { grads, path: Vec::new(), checked: 0, idle };
    module.visit(&mut check);
    check.checked
}

/// The rows of a `[batch, heads, len, d]` tensor on the host, for references written as
/// plain loops.
pub struct Rows {
    data: Vec<f32>,
    dims: [usize; 4],
}

impl Rows {
    pub fn of(t: Tensor<4>) -> Rows {
        let dims = t.dims();
        Rows { data: values(t), dims }
    }

    /// Rows of `[batch, heads, len, d]` given by `row(b, h, t)`.
    pub fn build(dims: [usize; 4], row: impl Fn(usize, usize, usize) -> Vec<f32>) -> Rows {
        let mut data = Vec::with_capacity(dims.iter().product());
        for b in 0..dims[0] {
            for h in 0..dims[1] {
                for t in 0..dims[2] {
                    let r = row(b, h, t);
                    assert_eq!(r.len(), dims[3], "row ({b}, {h}, {t})");
                    data.extend(r);
                }
            }
        }
        Rows { data, dims }
    }

    pub fn row(&self, b: usize, h: usize, t: usize) -> &[f32] {
        let [_, heads, len, d] = self.dims;
        let at = ((b * heads + h) * len + t) * d;
        &self.data[at..at + d]
    }

    pub fn d(&self) -> usize {
        self.dims[3]
    }

    pub fn dims(&self) -> [usize; 4] {
        self.dims
    }

    pub fn tensor(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(self.data.clone(), self.dims), device)
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `sum_j weights[j] rows[j]`.
pub fn mix(weights: &[f32], rows: &[&[f32]]) -> Vec<f32> {
    let mut out = vec![0.0; rows.first().map_or(0, |r| r.len())];
    for (w, row) in weights.iter().zip(rows) {
        for (o, x) in out.iter_mut().zip(row.iter()) {
            *o += w * x;
        }
    }
    out
}

/// Softmax of `scores`, in f64 for the reference.
pub fn softmax_of(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = scores.iter().map(|&s| (s as f64 - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / total) as f32).collect()
}

/// Softmax attention of one query over `keys`/`values` (rows), scores scaled by `scale` and
/// set to `masked_score` where `masked[j]`: LRA's additive masks round to exactly that
/// value in f32 for any score below 512 in magnitude.
pub fn attend(query: &[f32], keys: &[&[f32]], values: &[&[f32]], scale: f32, masked: &[bool], masked_score: f32) -> Vec<f32> {
    let scores: Vec<f32> = keys.iter().zip(masked).map(|(k, &m)| if m { masked_score } else { dot(query, k) * scale }).collect();
    mix(&softmax_of(&scores), values)
}

/// Softmax attention in plain loops of every query over every key: scores `q.k / sqrt(d)`,
/// set to [`MASKED_SCORE`] where `masked(b, h, query, key)`: `q: [batch, heads, queries,
/// d]`, `k, v: [batch, heads, keys, d]` -> `[batch, heads, queries, d]` rows.
pub fn loop_attention(q: &Rows, k: &Rows, v: &Rows, masked: impl Fn(usize, usize, usize, usize) -> bool) -> Rows {
    let (keys, d) = (k.dims()[2], q.d());
    Rows::build(q.dims(), |b, h, i| {
        let key_rows: Vec<&[f32]> = (0..keys).map(|j| k.row(b, h, j)).collect();
        let value_rows: Vec<&[f32]> = (0..keys).map(|j| v.row(b, h, j)).collect();
        let masked: Vec<bool> = (0..keys).map(|j| masked(b, h, i, j)).collect();
        attend(q.row(b, h, i), &key_rows, &value_rows, 1.0 / (d as f32).sqrt(), &masked, MASKED_SCORE)
    })
}
