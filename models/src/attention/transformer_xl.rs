//! Transformer-XL: segment-level recurrence with relative positions.
//!
//! Paper: Dai, Yang, Yang, Carbonell, Le, Salakhutdinov, "Transformer-XL: Attentive Language
//! Models Beyond a Fixed-Length Context", ACL 2019.
//! Family: recurrence.
//! Cost: O(n s d) time and O(n s) memory per head in the sequence length n, with segments
//! of s positions (fixed): linear in n.
//!
//! The sequence is read in segments of `s` positions. Each segment attends to itself and to
//! the cached states of the segment before it (Section 3.2): in layer `l`, segment `t`'s
//! keys and values come from `[SG(h^{l-1}_{t-1}), h^{l-1}_t]`, where `SG` stops the
//! gradient. Here the whole sequence is at hand, so the cache of segment `t - 1` is this
//! layer's own input over that segment, detached: exactly the memory the recurrence would
//! have carried. The first segment has no memory. Information still travels `l` segments
//! back through `l` layers.
//!
//! Scores use relative positions (Section 3.3), for query `i` and key `j`:
//! `A_ij = (q_i + u) . k_j + (q_i + v) . W_R R_{i-j}`, over `sqrt(d_head)`, with `R` the
//! sinusoids of the distance (sines, then cosines, as the paper's code), `W_R` a learned
//! projection and `u`, `v` learned per head (the paper shares them across layers; each
//! layer holds its own here, as many re-implementations do). No absolute positions are
//! needed by the mechanism; the classifier still adds its own, as for every model.
//!
//! Bidirectional, for classification: within its segment a query attends to every key,
//! before and after it (the paper's language model is causal). Distances then run from
//! `-(s - 1)` (a later key of the same segment) to `2 s - 1` (the memory's first key),
//! encoded by the same sinusoids, as XLNet's bidirectional form does.
//!
//! Padding: padded keys (and the missing memory of the first segment) are masked; the last
//! segment is filled up with masked positions. Segments start at position 0 whatever the
//! padding, so real tokens' outputs do not depend on it.

use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

use super::blocks::{
    block_count, block_scores, key_mask, pad_positions, padding_blocks, shift_blocks, shift_padding, split_blocks, unblock,
};
use super::flops::LayerShape;
use super::heads::{HeadProjections, MASKED_SCORE, attention_linear, split_heads, split_heads_of_blocks};
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Scale, Settings, fit, within};
use super::softmax::softmax_dropout;

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n s) time, O(n s) memory (s = 256 segment length)";

#[derive(Config, Debug)]
pub struct TransformerXlConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// Dropout on the attention weights.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// `s`, positions per segment (and in the memory).
    #[config(default = 256)]
    pub segment_length: usize,
}

impl TransformerXlConfig {
    pub fn init(&self, device: &Device) -> TransformerXlAttention {
        let qkv_dim = self.qkv_dim.unwrap_or(self.d_model);
        let bias = Initializer::Normal { mean: 0.0, std: 0.02 }; // the paper's code's init for u and v
        TransformerXlAttention {
            projections: HeadProjections::new(self.d_model, qkv_dim, self.heads, device),
            position_projection: attention_linear(self.d_model, qkv_dim, device),
            content_bias: bias.init([self.heads, qkv_dim / self.heads], device),
            position_bias: bias.init([self.heads, qkv_dim / self.heads], device),
            dropout: DropoutConfig::new(self.dropout).init(),
            segment_length: self.segment_length,
        }
    }
}

/// Transformer-XL's own settings in a run's configuration
/// (`"attention": {"transformer_xl": {"segment_length": 256}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerXlSettings {
    /// `s`, positions per segment (and in the cached memory).
    pub segment_length: usize,
}

impl Settings for TransformerXlSettings {
    type Layer = TransformerXlAttention;
    const MODEL: ModelCard = ModelCard {
        name: "transformer_xl",
        title: "Transformer-XL, segment recurrence (Dai et al. 2019)",
        family: "recurrence",
        cost: COST,
    };

    fn defaults(_max_length: usize) -> TransformerXlSettings {
        TransformerXlSettings { segment_length: TransformerXlConfig::new(1, 1).segment_length }
    }

    fn fitted_to(self, positions: usize) -> TransformerXlSettings {
        TransformerXlSettings { segment_length: fit(self.segment_length, positions) }
    }

    /// Segments of 4: the defaults' segments of 256 would leave a tiny sequence one
    /// segment, with no memory.
    fn tiny(positions: usize) -> TransformerXlSettings {
        TransformerXlSettings { segment_length: 4 }.fitted_to(positions)
    }

    fn scaled(self, scale: &Scale) -> TransformerXlSettings {
        TransformerXlSettings { segment_length: scale.length(self.segment_length) }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        within("segment_length", self.segment_length, positions)
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.segment_length)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> TransformerXlAttention {
        TransformerXlConfig::new(layer.d_model, layer.heads)
            .with_qkv_dim(layer.qkv_dim)
            .with_segment_length(self.segment_length)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct TransformerXlAttention {
    pub projections: HeadProjections,
    /// `W_R`, the relative positions' projection `[d_model] -> [qkv_dim]`.
    pub position_projection: Linear,
    /// `u: [heads, d_head]`, the query's bias toward every key's content.
    pub content_bias: Param<Tensor<2>>,
    /// `v: [heads, d_head]`, the query's bias toward every distance.
    pub position_bias: Param<Tensor<2>>,
    pub dropout: Dropout,
    /// `s`, positions per segment.
    pub segment_length: usize,
}

impl TransformerXlAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let s = self.segment_length_for(x.dims()[1]);
        self.attend_segments(x, padding_blocks(padding, s), None)
    }

    /// Positions per segment for a sequence of `len`: a segment longer than the sequence is
    /// the sequence (one segment, no memory).
    pub fn segment_length_for(&self, len: usize) -> usize {
        self.segment_length.min(len).max(1)
    }

    /// Every segment over `[earlier, memory, itself]` with relative positions, where
    /// `earlier` (the Compressive Transformer's compressed memory) are states before the
    /// memory, one position each, oldest first: `states: [batch, segments, slots,
    /// d_model]` (their gradient already stopped where it should be) and their padding
    /// `[batch, segments, slots]`. `x: [batch, len, d_model]` and its padding by segment,
    /// `own_padding: [batch, segments, s]` ([`padding_blocks`] with `s` =
    /// [`TransformerXlAttention::segment_length_for`] `len`) -> `[batch, len, d_model]`.
    pub fn attend_segments(
        &self,
        x: Tensor<3>,
        own_padding: Tensor<3, Bool>,
        earlier: Option<(Tensor<4>, Tensor<3, Bool>)>,
    ) -> Tensor<3> {
        let [_, len, d_model] = x.dims();
        let heads = self.projections.heads;
        let s = self.segment_length_for(len);
        let filled = block_count(len, s) * s;
        let segments = |t: Tensor<4>| split_blocks(pad_positions(t, filled), s); // [batch, heads, segments, s, d_head]
        let (q, k, v) = self.projections.project(x.clone());
        // The memory: the previous segment's input, its gradient stopped, through the same
        // key and value projections.
        let cached = x.detach();
        let memory = |projection: &Linear| shift_blocks(segments(split_heads(projection.forward(cached.clone()), heads)), 2, -1);
        let (mut keys, mut values, mut key_padding) = (Vec::new(), Vec::new(), Vec::new());
        if let Some((states, states_padding)) = earlier {
            let per_head = |projection: &Linear| split_heads_of_blocks(projection.forward(states.clone()), heads);
            keys.push(per_head(&self.projections.key));
            values.push(per_head(&self.projections.value));
            key_padding.push(states_padding);
        }
        keys.extend([memory(&self.projections.key), segments(k)]);
        values.extend([memory(&self.projections.value), segments(v)]);
        key_padding.extend([shift_padding(own_padding.clone(), -1), own_padding]);
        let keys = Tensor::cat(keys, 3); // [batch, heads, segments, keys, d_head]
        let values = Tensor::cat(values, 3);
        let key_count = keys.dims()[3];

        let q = segments(q);
        let d_head = q.dims()[4];
        let bias = |b: &Param<Tensor<2>>| b.val().reshape([1, heads, 1, 1, d_head]);
        let content = block_scores(q.clone() + bias(&self.content_bias), keys);
        let distances = key_count + s - 1;
        let table =
            Tensor::<2>::from_data(TensorData::new(distance_sinusoids(s, key_count, d_model), [distances, d_model]), &q.device());
        let relative = split_heads(self.position_projection.forward(table.unsqueeze::<3>()), heads).unsqueeze_dim::<5>(2); // [1, heads, 1, distances, d_head]
        let by_distance = block_scores(q + bias(&self.position_bias), relative); // [batch, heads, segments, s, distances]
        let position = by_key(by_distance, s, key_count);
        let scores = (content + position).mask_fill(key_mask(Tensor::cat(key_padding, 2)), MASKED_SCORE);
        let context = softmax_dropout(scores, Some(&self.dropout)).matmul(values); // [batch, heads, segments, s, d_head]
        self.projections.combine(unblock(context, len))
    }
}

impl AttentionLayer for TransformerXlAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// The sinusoids `R` of the distances from the query's segment to its `keys` keys (the
/// last `s` its own segment's): `keys - 1` down to `-(s - 1)`, one row each, sines in the
/// first half of a row and cosines in the second (the paper's code):
/// `[(keys + s - 1) * d_model]`.
fn distance_sinusoids(s: usize, keys: usize, d_model: usize) -> Vec<f32> {
    let half = d_model / 2;
    // The divisor of the distance in sinusoid i: 10000^(2i / d_model).
    let timescales: Vec<f64> = (0..half).map(|i| 10_000f64.powf(2.0 * i as f64 / d_model as f64)).collect();
    let mut table = vec![0.0f32; (keys + s - 1) * d_model];
    for (row, distance) in (-(s as i64 - 1)..=keys as i64 - 1).rev().enumerate() {
        for (i, timescale) in timescales.iter().enumerate() {
            let angle = distance as f64 / timescale;
            table[row * d_model + i] = angle.sin() as f32;
            table[row * d_model + half + i] = angle.cos() as f32;
        }
    }
    table
}

/// The scores by distance rearranged by key: with `keys` keys (its segment's `s` last),
/// query `a` of a segment and key `c` are `keys - s + a - c` apart, row `s - 1 - a + c` of
/// [`distance_sinusoids`]. Row `a` of the result is therefore the `keys` scores of row `a`
/// starting at column `s - 1 - a`; read row-major (rows of `keys + s - 1`), those start at
/// `a (keys + s - 2) + s - 1`, so one view with rows of `keys + s - 2` (the paper code's
/// "relative shift") finds them all without gathering: `[batch, heads, segments, s, keys +
/// s - 1]` -> `[batch, heads, segments, s, keys]`.
fn by_key(by_distance: Tensor<5>, s: usize, keys: usize) -> Tensor<5> {
    if s == 1 {
        return by_distance; // one query per segment: its distances are in key order
    }
    let [batch, heads, segments, _, distances] = by_distance.dims();
    by_distance
        .reshape([batch, heads, segments, s * distances])
        .narrow(3, s - 1, s * (distances - 1))
        .reshape([batch, heads, segments, s, distances - 1])
        .narrow(4, 0, keys)
}

/// Work of one forward ([`super::flops`]): the projections, the memory's keys and values
/// again (from the detached input), the `3s - 1` distances' projection, every query over
/// the `2s` keys of its segment and memory, and over the `3s - 1` distances:
/// `8 b n D d + 4 b n D d + 2 (3s) D d + 4 b n (2s) d + 2 b n (3s) d`.
pub fn forward_flops(shape: &LayerShape, segment_length: usize) -> f64 {
    segment_flops(shape, segment_length, 0)
}

/// [`forward_flops`] with `earlier` more keys per segment (a compressed memory), projected
/// to keys and values for every segment.
pub fn segment_flops(shape: &LayerShape, segment_length: usize, earlier: usize) -> f64 {
    let s = segment_length.min(shape.positions).max(1);
    let segments = block_count(shape.positions, s) as f64;
    let filled = segments * s as f64;
    let (d_model, qkv) = (shape.d_model as f64, shape.qkv_dim as f64);
    let keys = (earlier + 2 * s) as f64;
    let distances = keys + s as f64 - 1.0;
    shape.projections(shape.n())
        + shape.products(2.0, shape.n() + segments * earlier as f64, d_model, qkv)
        + 2.0 * distances * d_model * qkv
        + shape.attend(filled, keys)
        + shape.products(1.0, filled, qkv, distances)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use crate::attention::checks::{
        Rows, assert_close, assert_equals_full_attention, assert_finite_gradients, assert_padding_is_invisible, attend,
        padding_after, values,
    };
    use burn::tensor::Distribution;

    #[test]
    fn one_segment_without_position_terms_equals_full_attention() {
        let device = Device::flex();
        device.seed(91);
        let (d_model, heads) = (8, 2);
        let mut attention = TransformerXlConfig::new(d_model, heads).with_segment_length(6).init(&device);
        attention.position_projection.weight = Param::from_tensor(Tensor::zeros([d_model, d_model], &device));
        attention.content_bias = Param::from_tensor(Tensor::zeros([heads, d_model / heads], &device));
        let forward = |x, padding| attention.forward(x, padding);
        assert_equals_full_attention(forward, &attention.projections, d_model, &device, "one segment vs full attention");
    }

    /// One key of a query in [`relative_attention_in_loops`]: the state it is projected
    /// from (`[d_model]`), its distance to the query and whether it is masked.
    pub(crate) struct LoopKey {
        pub state: Vec<f32>,
        pub distance: i64,
        pub masked: bool,
    }

    /// Relative attention from its definition in loops: query `i` of row `b` (the state
    /// `states[b][i]`) over `keys(b, i)`, each scored `(q_i + u) . k_j + (q_i + v) . W_R
    /// R_{distance}`, with every projection applied here from the weights and `R` computed
    /// from its formula -> `[batch, len, d_model]`.
    pub(crate) fn relative_attention_in_loops(
        attention: &TransformerXlAttention,
        states: &[Vec<Vec<f32>>],
        keys: impl Fn(usize, usize) -> Vec<LoopKey>,
        device: &Device,
    ) -> Tensor<3> {
        let heads = attention.projections.heads;
        let (batch, len, d_model) = (states.len(), states[0].len(), states[0][0].len());
        let weight = |linear: &Linear| values(linear.weight.val()); // [d_model, qkv_dim]
        let (w_q, w_k, w_v, w_r) = (
            weight(&attention.projections.query),
            weight(&attention.projections.key),
            weight(&attention.projections.value),
            weight(&attention.position_projection),
        );
        let qkv = w_q.len() / d_model;
        let d = qkv / heads;
        let project = |w: &[f32], row: &[f32], h: usize| -> Vec<f32> {
            (0..d).map(|o| (0..d_model).map(|c| row[c] * w[c * qkv + h * d + o]).sum()).collect()
        };
        let sinusoid = |distance: i64| -> Vec<f32> {
            (0..d_model)
                .map(|c| {
                    let i = c % (d_model / 2);
                    let angle = distance as f64 / 10_000f64.powf(2.0 * i as f64 / d_model as f64);
                    (if c < d_model / 2 { angle.sin() } else { angle.cos() }) as f32
                })
                .collect()
        };
        let (u, bias_v) = (values(attention.content_bias.val()), values(attention.position_bias.val()));
        let context = Rows::build([batch, heads, len, d], |b, h, i| {
            let query = project(&w_q, &states[b][i], h);
            let keys = keys(b, i);
            let scores: Vec<f32> = keys
                .iter()
                .map(|key| {
                    let k = project(&w_k, &key.state, h);
                    let r = project(&w_r, &sinusoid(key.distance), h);
                    (0..d).map(|c| (query[c] + u[h * d + c]) * k[c] + (query[c] + bias_v[h * d + c]) * r[c]).sum()
                })
                .collect();
            // attend() scales q.k: hand it the scores through a one-dimensional query.
            let score_rows: Vec<[f32; 1]> = scores.iter().map(|&score| [score]).collect();
            let score_keys: Vec<&[f32]> = score_rows.iter().map(|row| row.as_slice()).collect();
            let vals: Vec<Vec<f32>> = keys.iter().map(|key| project(&w_v, &key.state, h)).collect();
            let vals: Vec<&[f32]> = vals.iter().map(Vec::as_slice).collect();
            let masked: Vec<bool> = keys.iter().map(|key| key.masked).collect();
            attend(&[1.0], &score_keys, &vals, 1.0 / (d as f32).sqrt(), &masked, MASKED_SCORE)
        });
        attention.projections.combine(context.tensor(device))
    }

    /// The rows of `x: [batch, len, d_model]`.
    pub(crate) fn states_of(x: Tensor<3>) -> Vec<Vec<Vec<f32>>> {
        let [batch, len, d_model] = x.dims();
        let all = values(x);
        (0..batch).map(|b| (0..len).map(|i| all[(b * len + i) * d_model..][..d_model].to_vec()).collect()).collect()
    }

    /// The definition in loops: query `i` of segment `t` over the real keys of segments
    /// `t - 1` and `t`, at distances `i - j`; three segments, the last one short.
    #[test]
    fn transformer_xl_equals_its_definition_in_loops() {
        let device = Device::flex();
        device.seed(92);
        let (batch, len, d_model, heads, s) = (2, 8, 8, 2, 3);
        let real = [8, 5];
        let attention = TransformerXlConfig::new(d_model, heads).with_segment_length(s).init(&device);
        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let got = values(attention.forward(x.clone(), padding_after(&real, len, &device)));
        let states = states_of(x);
        let keys = |b: usize, i: usize| {
            let segment = i / s;
            (segment.saturating_sub(1) * s..((segment + 1) * s).min(len))
                .map(|j| LoopKey { state: states[b][j].clone(), distance: i as i64 - j as i64, masked: j >= real[b] })
                .collect()
        };
        let expected = values(relative_attention_in_loops(&attention, &states, keys, &device));
        assert_close(&got, &expected, 1e-4, "Transformer-XL vs its loops");
    }

    #[test]
    fn the_relative_shift_picks_each_keys_distance() {
        let device = Device::flex();
        for (s, earlier) in (1..6).flat_map(|s| [(s, 0), (s, 4)]) {
            let keys = earlier + 2 * s;
            let distances = keys + s - 1;
            let by_distance = Tensor::<5>::random([2, 1, 3, s, distances], Distribution::Normal(0.0, 1.0), &device);
            let all = values(by_distance.clone());
            let got = values(by_key(by_distance, s, keys));
            let expected: Vec<f32> = (0..2 * 3)
                .flat_map(|segment| (0..s).map(move |a| (segment, a)))
                .flat_map(|(segment, a)| (0..keys).map(move |c| (segment, a, c)))
                .map(|(segment, a, c)| all[(segment * s + a) * distances + s - 1 - a + c])
                .collect();
            assert_eq!(got, expected, "segments of {s}, {earlier} earlier keys");
        }
    }

    #[test]
    fn transformer_xl_padding_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(93);
        let attention = TransformerXlConfig::new(8, 2).with_segment_length(3).init(&device);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    /// The memory is cached: a segment's outputs send no gradient into the previous
    /// segment's inputs (only through the weights).
    #[test]
    fn the_memory_carries_no_gradient_back_to_the_previous_segment() {
        let device = Device::flex().autodiff();
        device.seed(94);
        let (len, s) = (6, 3);
        let attention = TransformerXlConfig::new(8, 2).with_segment_length(s).with_dropout(0.0).init(&device);
        let x = Tensor::<3>::random([1, len, 8], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let out = attention.forward(x.clone(), padding_after(&[len], len, &device));
        let grads = out.slice([0..1, s..len]).sum().backward();
        let dx = values(x.grad(&grads).expect("x has a gradient"));
        assert!(dx[..s * 8].iter().all(|&g| g == 0.0), "the first segment got a gradient: {:?}", &dx[..s * 8]);
        assert!(dx[s * 8..].iter().any(|&g| g != 0.0), "the second segment got none");
    }

    #[test]
    fn transformer_xl_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(95);
        let attention = TransformerXlConfig::new(8, 2).with_segment_length(3).init(&device);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let grads = attention.forward(x, padding_after(&[7, 4], 7, &device)).sum().backward();
        // Four projections, W_R, u and v.
        assert_eq!(assert_finite_gradients(&attention, &grads), 7);
    }
}
