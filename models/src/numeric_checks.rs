//! Test checks of plain numbers: a tensor's values, and closeness. The fused kernels'
//! tests (softmax, GELU, layer norm) use them; kept apart from `attention/checks.rs`, which
//! builds attention layers from those kernels, and which re-exports them.

use burn::prelude::*;

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
