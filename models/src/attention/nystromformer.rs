//! Nyströmformer: softmax attention approximated by the Nyström method.
//!
//! Paper: Xiong, Zeng, Chakraborty, Tan, Fung, Li, Singh, "Nyströmformer: A Nyström-Based
//! Algorithm for Approximating Self-Attention", AAAI 2021.
//! Family: low rank.
//! Cost: O(n m d + m^3) time and O(n m + m^2) memory per head in the sequence length n,
//! with m landmarks (fixed): linear in n.
//!
//! With landmarks `Q~, K~: [m, d]` (the means of m consecutive segments of the queries and
//! keys, Section 3.3), softmax attention is approximated by (eq. 14)
//! `softmax(Q K~^T) (softmax(Q~ K~^T))^+ softmax(Q~ K^T) V`, every score scaled by
//! `1 / sqrt(d_head)`, the pseudo-inverse `^+` computed by the iterative method of eq. 16
//! (`Z <- Z (13 I - A Z (15 I - A Z (7 I - A Z))) / 4` from `Z_0 = A^T / (|A|_1 |A|_inf)`).
//! Products are taken right to left, so no `[n, n]` matrix is formed. The paper's optional
//! depthwise convolution on the values is not included.
//!
//! Segments: the `r` real tokens of a row are cut into `m` segments of (nearly) equal
//! length, the one holding the real token of rank `i` being `floor(i m / r)`. When `r < m`,
//! segments are fewer than landmarks and the empty landmarks repeat the token of rank
//! `floor(j r / m)` (with `r = m` every landmark is one token, and the approximation is
//! exact).
//!
//! Padding: landmarks are means of real tokens only, and padded keys are masked in
//! `softmax(Q~ K^T)`, so a row's real tokens get exactly the outputs of the same tokens
//! without padding. Dropout applies to `softmax(Q K~^T)`, the weights of the queries over
//! the landmarks.

use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::flops::LayerShape;
use super::heads::{HeadProjections, attention_weights};
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Scale, Settings, at_least_one, fit, within};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n m) time, O(n m) memory (m = 64 landmarks)";

#[derive(Config, Debug)]
pub struct NystromformerConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    pub max_length: usize,
    /// Dropout on the weights of the queries over the landmarks.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// `m`, the number of landmarks (64 in the paper's LRA experiments).
    #[config(default = 64)]
    pub landmarks: usize,
    /// Iterations of the pseudo-inverse (6 in the paper).
    #[config(default = 6)]
    pub pinv_iterations: usize,
}

impl NystromformerConfig {
    pub fn init(&self, device: &Device) -> NystromformerAttention {
        assert!(self.landmarks > 0, "Nyströmformer needs at least one landmark");
        NystromformerAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            landmarks: self.landmarks,
            pinv_iterations: self.pinv_iterations,
        }
    }
}

/// The Nyströmformer's own settings in a run's configuration
/// (`"attention": {"nystromformer": {"landmarks": 64, "pinv_iterations": 6}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NystromformerSettings {
    pub landmarks: usize,
    pub pinv_iterations: usize,
}

impl Settings for NystromformerSettings {
    type Layer = NystromformerAttention;
    const MODEL: ModelCard =
        ModelCard { name: "nystromformer", title: "Nyströmformer (Xiong et al. 2021)", family: "low rank", cost: COST };

    fn defaults(max_length: usize) -> NystromformerSettings {
        let c = NystromformerConfig::new(1, 1, max_length);
        NystromformerSettings { landmarks: c.landmarks, pinv_iterations: c.pinv_iterations }
    }

    fn fitted_to(self, positions: usize) -> NystromformerSettings {
        NystromformerSettings { landmarks: fit(self.landmarks, positions), ..self }
    }

    fn scaled(self, scale: &Scale) -> NystromformerSettings {
        NystromformerSettings { landmarks: scale.slots(self.landmarks), ..self }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        within("landmarks", self.landmarks, positions)?;
        at_least_one("pinv_iterations", self.pinv_iterations)
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.landmarks, self.pinv_iterations)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> NystromformerAttention {
        NystromformerConfig::new(layer.d_model, layer.heads, layer.max_length)
            .with_qkv_dim(layer.qkv_dim)
            .with_landmarks(self.landmarks)
            .with_pinv_iterations(self.pinv_iterations)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct NystromformerAttention {
    pub projections: HeadProjections,
    pub dropout: Dropout,
    pub landmarks: usize,
    pub pinv_iterations: usize,
}

impl NystromformerAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let (q, k, v) = self.projections.project(x);
        let pooling = segment_means(padding.clone(), self.landmarks).unsqueeze_dim::<4>(1); // [batch, 1, m, len]
        let q_landmarks = pooling.clone().matmul(q.clone()); // [batch, heads, m, d_head]
        let k_landmarks = pooling.matmul(k.clone());

        let queries_to_landmarks = attention_weights(q, k_landmarks.clone(), None, Some(&self.dropout)); // [batch, heads, len, m]
        let landmarks_to_landmarks = attention_weights(q_landmarks.clone(), k_landmarks, None, None); // [batch, heads, m, m]
        let landmarks_to_keys = attention_weights(q_landmarks, k, Some(padding), None); // [batch, heads, m, len]

        let landmark_values = landmarks_to_keys.matmul(v); // [batch, heads, m, d_head]
        let mixed = iterative_pseudo_inverse(landmarks_to_landmarks, self.pinv_iterations).matmul(landmark_values);
        self.projections.combine(queries_to_landmarks.matmul(mixed))
    }
}

impl AttentionLayer for NystromformerAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// The landmark pooling matrix `[batch, m, len]`: row `j` of batch `b` averages the real
/// tokens of segment `j` (see the module's documentation for empty segments).
fn segment_means(padding: Tensor<2, Bool>, m: usize) -> Tensor<3> {
    let [batch, len] = padding.dims();
    let device = padding.device();
    let real = padding.bool_not();
    let real_f = real.clone().float();
    // Rank of each real token among its row's real tokens, and the row's real count. All are
    // small integers, exact in f32, and so are the products below.
    let rank = real_f.clone().cumsum(1).sub_scalar(1.0).reshape([batch, 1, len]).expand([batch, m, len]);
    let count = real_f.sum_dim(1).reshape([batch, 1, 1]).expand([batch, m, len]);
    let landmark = Tensor::<1, Int>::arange(0..m as i64, &device).float().reshape([1, m, 1]).expand([batch, m, len]);
    let real = real.reshape([batch, 1, len]).expand([batch, m, len]);

    // Token of rank i is in segment j iff j r <= i m < (j + 1) r.
    let rank_m = rank.mul_scalar(m as f64);
    let start = landmark.clone().mul(count.clone());
    let in_segment = rank_m
        .clone()
        .greater_equal(start.clone())
        .bool_and(rank_m.clone().lower(start.clone().add(count.clone())))
        .bool_and(real.clone());
    // Empty segment j (only when r < m): the token of rank floor(j r / m), i.e. i m <= j r < i m + m.
    let nearest = rank_m.clone().lower_equal(start.clone()).bool_and(start.lower(rank_m.add_scalar(m as f64))).bool_and(real);
    let in_segment_f = in_segment.clone().float();
    let empty = in_segment_f.clone().sum_dim(2).equal_elem(0.0).expand([batch, m, len]);
    let members = in_segment.bool_or(nearest.bool_and(empty)).float();
    let sizes = members.clone().sum_dim(2).clamp_min(1.0);
    members.div(sizes)
}

/// The Moore-Penrose pseudo-inverse of each `[m, m]` matrix of `a: [batch, heads, m, m]`
/// by the iteration of eq. 16.
fn iterative_pseudo_inverse(a: Tensor<4>, iterations: usize) -> Tensor<4> {
    let [batch, heads, m, _] = a.dims();
    let identity = Tensor::<2>::eye(m, &a.device()).reshape([1, 1, m, m]).expand([batch, heads, m, m]);
    let largest_column_sum = a.clone().abs().sum_dim(2).max_dim(3); // [batch, heads, 1, 1]
    let largest_row_sum = a.clone().abs().sum_dim(3).max_dim(2);
    let mut z = a.clone().transpose().div(largest_column_sum.mul(largest_row_sum));
    for _ in 0..iterations {
        let az = a.clone().matmul(z.clone());
        let inner = identity.clone().mul_scalar(7.0).sub(az.clone());
        let middle = identity.clone().mul_scalar(15.0).sub(az.clone().matmul(inner));
        let outer = identity.clone().mul_scalar(13.0).sub(az.matmul(middle));
        z = z.matmul(outer).mul_scalar(0.25);
    }
    z
}

/// Work of one forward ([`super::flops`]): the projections; the landmark means of queries
/// and keys (`[m, n] x [n, d]` each); every query over the `m` landmarks; the landmark
/// scores `[m, m]`; the landmarks over every key; the pseudo-inverse (four `[m, m]`
/// products per iteration and head); and its product with the landmark values.
pub fn forward_flops(shape: &LayerShape, landmarks: usize, pinv_iterations: usize) -> f64 {
    let (n, m, d) = (shape.n(), landmarks as f64, shape.qkv_dim as f64);
    shape.projections(n)
        + shape.products(2.0, m, n, d)
        + shape.attend(n, m)
        + shape.products(1.0, m, d, m)
        + shape.attend(m, n)
        + shape.products(4.0 * pinv_iterations as f64 * shape.heads as f64, m, m, m)
        + shape.products(1.0, m, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{assert_close, assert_finite_gradients, assert_padding_is_invisible, padding_after, values};
    use crate::attention::full_layer::FullAttention;
    use burn::tensor::Distribution;

    #[test]
    fn nystromformer_with_a_landmark_per_token_equals_full_attention() {
        let device = Device::flex();
        device.seed(41);
        let (batch, len, d_model, heads) = (2, 6, 8, 2);
        // Enough iterations for the pseudo-inverse of any draw's [6, 6] kernel: the device's
        // generator is shared with tests running beside this one, so the draw varies.
        let attention = NystromformerConfig::new(d_model, heads, len).with_landmarks(len).with_pinv_iterations(40).init(&device);
        let full = FullAttention { projections: attention.projections.clone(), dropout: DropoutConfig::new(0.0).init() };
        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let no_padding = Tensor::<2, Bool>::full([batch, len], false, &device);
        let got = values(attention.forward(x.clone(), no_padding.clone()));
        let expected = values(full.forward(x, no_padding));
        assert_close(&got, &expected, 1e-4, "Nyströmformer with m = n vs full attention");
    }

    #[test]
    fn iterative_pseudo_inverse_inverts_an_invertible_matrix() {
        let device = Device::flex();
        let a = Tensor::<2>::from_floats([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]], &device).reshape([1, 1, 3, 3]);
        let product = values(a.clone().matmul(iterative_pseudo_inverse(a, 12)));
        assert_close(&product, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], 1e-4, "A A^+");
    }

    #[test]
    fn segment_means_average_consecutive_real_tokens() {
        let device = Device::flex();
        // Row 0: 6 real tokens, 3 landmarks -> segments {0,1} {2,3} {4,5}.
        // Row 1: 4 real tokens of 6, 3 landmarks -> segments {0,1} {2} {3} (floor(i*3/4)).
        // Row 2: 2 real tokens, 3 landmarks -> segments {0} {1} {} (floor(i*3/2)); the empty
        // one repeats the token of rank floor(2*2/3) = 1.
        let pooling = values(segment_means(padding_after(&[6, 4, 2], 6, &device), 3));
        #[rustfmt::skip]
        let expected = [
            0.5, 0.5, 0.0, 0.0, 0.0, 0.0,   0.0, 0.0, 0.5, 0.5, 0.0, 0.0,   0.0, 0.0, 0.0, 0.0, 0.5, 0.5,
            0.5, 0.5, 0.0, 0.0, 0.0, 0.0,   0.0, 0.0, 1.0, 0.0, 0.0, 0.0,   0.0, 0.0, 0.0, 1.0, 0.0, 0.0,
            1.0, 0.0, 0.0, 0.0, 0.0, 0.0,   0.0, 1.0, 0.0, 0.0, 0.0, 0.0,   0.0, 1.0, 0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(pooling, expected);
    }

    #[test]
    fn nystromformer_padding_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(42);
        let attention = NystromformerConfig::new(8, 2, 12).with_landmarks(4).init(&device);
        // 3 real tokens: fewer than the landmarks; 9: more, in unequal segments.
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 9], 12, &device);
    }

    #[test]
    fn nystromformer_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(43);
        let attention = NystromformerConfig::new(8, 2, 10).with_landmarks(3).init(&device);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let grads = attention.forward(x, padding_after(&[7, 2], 7, &device)).sum().backward();
        assert_eq!(assert_finite_gradients(&attention, &grads), 4);
    }
}
