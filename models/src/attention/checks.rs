//! Checks that the tests of the mechanisms in this folder share: padding invisibility,
//! finite gradients, a few training steps of a tiny classifier, and the explicit
//! `[len, len]` reference of an attention pattern (allowed here, in tests only).

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::{Distribution, Gradients, TensorData};

use crate::attention::Mechanism;
use crate::attention::heads::MASKED_SCORE;
use crate::classifier::{ClassifierConfig, PAD_ID};

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// Asserts `|got - expected| <= tolerance * max(1, |expected|)` elementwise.
pub fn assert_close(got: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: lengths differ");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(g.is_finite(), "{what}: element {i} is {g}");
        assert!((g - e).abs() <= tolerance * e.abs().max(1.0), "{what}: element {i}: {g} vs {e}");
    }
}

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
        let grad = param.grad(self.grads).unwrap_or_else(|| panic!("parameter {path} {:?} has no gradient", param.dims()));
        let finite = grad.is_finite().all().into_scalar::<bool>();
        assert!(finite, "parameter {path} {:?} has a non-finite gradient", param.dims());
        self.checked += 1;
    }
}

/// Asserts that every float parameter of `module` has a finite gradient in `grads`;
/// returns how many parameters were checked.
pub fn assert_finite_gradients<M: Module>(module: &M, grads: &Gradients) -> usize {
    let mut check = GradientCheck { grads, path: Vec::new(), checked: 0 };
    module.visit(&mut check);
    check.checked
}

/// A few AdamW steps of a tiny classifier using `mechanism` on one fixed batch of random
/// tokens (some rows padded): every loss is finite and the last is below the first.
pub fn assert_tiny_classifier_trains(mechanism: Mechanism) {
    let device = Device::flex().autodiff();
    device.seed(5);
    let (batch, len, vocab, classes) = (4, 12, 10, 3);
    let config =
        ClassifierConfig::new(vocab, classes, len, 16, 2, 1, 32, 16, mechanism).with_dropout(0.0).with_attention_dropout(0.0);
    let mut model = config.init(&device);
    let token_ids: Vec<i64> = (0..batch * len)
        .map(|i| {
            let (row, col) = (i / len, i % len);
            if col >= len - 3 * row { PAD_ID } else { 1 + ((7 * row + 3 * col + col * col) % (vocab - 1)) as i64 }
        })
        .collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(token_ids, [batch, len]), &device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 1], [batch]), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut optim = AdamWConfig::new().init();
    let mut losses = Vec::new();
    for step in 0..6 {
        let loss = loss_fn.forward(model.forward(tokens.clone()), labels.clone());
        let value = loss.clone().into_scalar::<f32>();
        assert!(value.is_finite(), "{mechanism:?}: loss {value} at step {step}");
        losses.push(value);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    assert!(losses[losses.len() - 1] < losses[0], "{mechanism:?}: losses {losses:?} did not fall");
}
