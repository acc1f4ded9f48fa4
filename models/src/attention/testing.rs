//! What the mechanisms' tests share: inputs with padding, the explicit `[len, len]`
//! reference of a pattern (allowed here, in tests only), comparisons, and the checks of
//! padding invariance and of gradients.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::{Distribution, Gradients, TensorData};

use super::heads::MASKED_SCORE;

/// `[batch, len, d_model]` drawn from N(0, 1).
pub fn random_input(batch: usize, len: usize, d_model: usize, device: &Device) -> Tensor<3> {
    Tensor::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), device)
}

/// Padding `[batch, len]`: sequence `b` has `lengths[b]` real tokens, then padding.
pub fn padding_after(lengths: &[usize], len: usize, device: &Device) -> Tensor<2, Bool> {
    let values: Vec<bool> = lengths.iter().flat_map(|&real| (0..len).map(move |p| p >= real)).collect();
    Tensor::from_data(TensorData::new(values, [lengths.len(), len]), device)
}

/// A pattern `[1, heads, len, len]`, true where `allowed(head, query, key)`.
pub fn pattern_from_fn(
    heads: usize,
    len: usize,
    device: &Device,
    allowed: impl Fn(usize, usize, usize) -> bool,
) -> Tensor<4, Bool> {
    let values: Vec<bool> = (0..heads * len * len).map(|at| allowed(at / (len * len), at / len % len, at % len)).collect();
    Tensor::from_data(TensorData::new(values, [1, heads, len, len]), device)
}

/// Softmax attention over the whole score matrix, restricted to `allowed`
/// (`[1 or batch, heads, len, len]`, true = the query attends the key) and to real keys:
/// `q, k, v: [batch, heads, len, d]` -> `[batch, heads, len, d]`.
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

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// Asserts that two tensors agree elementwise within `tolerance`.
pub fn assert_close<const D: usize>(got: Tensor<D>, expected: Tensor<D>, tolerance: f32) {
    assert_eq!(got.dims(), expected.dims(), "shapes differ");
    let (got, expected) = (values(got), values(expected));
    for (at, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert!((g - e).abs() <= tolerance, "element {at}: {g} vs {e}");
    }
}

/// Asserts that two `[batch, len, d]` outputs agree at the real tokens (the first
/// `lengths[b]` of sequence `b`).
pub fn assert_close_at_real_tokens(got: Tensor<3>, expected: Tensor<3>, lengths: &[usize], tolerance: f32) {
    for (b, &real) in lengths.iter().enumerate() {
        let take = |t: &Tensor<3>| t.clone().narrow(0, b, 1).narrow(1, 0, real);
        assert_close(take(&got), take(&expected), tolerance);
    }
}

/// Asserts that padding cannot reach real tokens: the same `real` tokens padded to each
/// of `lengths` with random padding content give the same outputs at the real tokens.
pub fn assert_padding_invariant(
    forward: impl Fn(Tensor<3>, Tensor<2, Bool>) -> Tensor<3>,
    d_model: usize,
    real: usize,
    lengths: [usize; 2],
) {
    let device = Device::flex();
    let tokens = random_input(1, real, d_model, &device);
    let padded = |len: usize| {
        let filler = random_input(1, len - real, d_model, &device).mul_scalar(3.0);
        let x = Tensor::cat(vec![tokens.clone(), filler], 1);
        forward(x, padding_after(&[real], len, &device)).narrow(1, 0, real)
    };
    let reference = padded(lengths[0]);
    // The same length again with other padding content, then another length.
    assert_close(padded(lengths[0]), reference.clone(), 1e-4);
    assert_close(padded(lengths[1]), reference, 1e-4);
}

/// Asserts that every float parameter of `module` has a gradient in `grads`, all finite.
pub fn assert_gradients_finite<M: Module>(module: &M, grads: &Gradients) {
    struct Check<'a> {
        grads: &'a Gradients,
        checked: usize,
    }
    impl ModuleVisitor for Check<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let grad =
                param.grad(self.grads).unwrap_or_else(|| panic!("parameter {:?} {:?} has no gradient", param.id, param.dims()));
            let any_not_finite = grad.is_finite().bool_not().any().into_scalar::<bool>();
            assert!(!any_not_finite, "parameter {:?} {:?} has a gradient that is not finite", param.id, param.dims());
            self.checked += 1;
        }
    }
    let mut check = Check { grads, checked: 0 };
    module.visit(&mut check);
    assert!(check.checked > 0, "the module has no parameters");
}
