//! Funnel Transformer: the sequence pooled between stages of the encoder.
//!
//! Paper: Dai, Lai, Yang, Le, "Funnel-Transformer: Filtering out Sequential Redundancy for
//! Efficient Language Processing", NeurIPS 2020.
//! Family: downsampling.
//! Cost: O(n^2) time and memory in the first stage, then (n / r)^2, (n / r^2)^2, ... with
//! stride r: quadratic in n, each later stage r^2 times cheaper than the one before.
//!
//! The encoder's blocks are grouped into stages of `stage_layers` blocks (Section 2.2). At
//! the start of every stage after the first, the sequence is mean-pooled with window and
//! stride `r` (the paper's `r = 2`), and that stage's first block attends with queries from
//! the pooled sequence and keys and values from the unpooled one ("pool-query-only"):
//! `h <- h' + Attn(Q = h', KV = h)`, `h' = pool(h)`, then its feed-forward layer; the
//! stage's other blocks run on the pooled sequence. The CLS vector is kept out of the
//! pooling and stays in front of the pooled sequence (Section 2.2, "we exclude [cls]").
//! Attention is full softmax attention throughout, as in the paper. Classification reads
//! the last stage; the paper's decoder, which upsamples back to every token for
//! token-level tasks, is not needed here.
//!
//! With `stage_layers` at least the number of blocks there is one stage and no pooling: the
//! Transformer itself.
//!
//! Padding: a window averages its real positions only, and a window with none is padding,
//! so real tokens' windows, and every real output, are those of the same tokens unpadded.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::attention::AttentionConfig;
use crate::attention::blocks::append_zeros;
use crate::attention::flops::LayerShape;
use crate::attention::settings::{ModelCard, Settings, at_least_one, fit, within};
use crate::encoder::EncoderBlock;

/// The Funnel Transformer's own settings in a run's configuration
/// (`"attention": {"funnel": {"stride": 2, "stage_layers": 1}}`): the pooling between
/// stages; its blocks attend in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelSettings {
    /// `r`, the window and stride of the mean pooling between stages.
    pub stride: usize,
    /// Blocks per stage; the sequence is pooled before every stage after the first.
    pub stage_layers: usize,
}

impl FunnelSettings {
    /// Whether block `index` starts a stage after the first, so that the sequence is
    /// pooled before it.
    fn pools_before(&self, index: usize) -> bool {
        index > 0 && index.is_multiple_of(self.stage_layers.max(1)) && self.stride > 1
    }
}

impl Settings for FunnelSettings {
    type Layer = crate::attention::full::FullAttention;
    const MODEL: ModelCard =
        ModelCard { name: "funnel", title: "Funnel Transformer (Dai et al. 2020)", family: "downsampling", cost: COST };
    const CHANGE_OUTSIDE_ATTENTION: Option<&'static str> = Some("the stack (the sequence pooled between blocks)");

    fn defaults(_max_length: usize) -> FunnelSettings {
        FunnelSettings {
            // The paper's `r = 2`: windows of two positions, the sequence halved at each stage.
            stride: 2,
            // One block per stage: the sequence pooled before every block after the first.
            stage_layers: 1,
        }
    }

    fn fitted_to(self, positions: usize) -> FunnelSettings {
        FunnelSettings { stride: fit(self.stride, positions), ..self }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        within("stride", self.stride, positions)?;
        at_least_one("stage_layers", self.stage_layers)
    }

    // Its blocks are full attention; what it saves is in the stack
    // (`ClassifierConfig::training_step_flops`).
    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        crate::attention::full::forward_flops(shape)
    }

    // The funnel changes the sequence between blocks (the classifier's stack); each block
    // attends in full.
    fn init(&self, layer: &AttentionConfig, device: &Device) -> crate::attention::full::FullAttention {
        crate::attention::full::FullSettings.init(layer, device)
    }
}

/// Positions after pooling `len` (the first `leading` kept) with `stride`.
fn pooled_length(len: usize, leading: usize, stride: usize) -> usize {
    let leading = leading.min(len);
    leading + (len - leading).div_ceil(stride)
}

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n^2) time, O(n^2) memory in the first stage, then (n/2)^2, (n/4)^2, ...";

/// Runs `blocks` as a funnel: `x: [batch, len, d_model]`, `padding: [batch, len]`, the
/// first `leading` positions (the CLS vector) never pooled -> the last stage's sequence and
/// its padding, `[batch, len', d_model]` and `[batch, len']`.
pub fn encode(
    blocks: &[EncoderBlock],
    settings: &FunnelSettings,
    leading: usize,
    mut x: Tensor<3>,
    mut padding: Tensor<2, Bool>,
) -> (Tensor<3>, Tensor<2, Bool>) {
    for (index, block) in blocks.iter().enumerate() {
        if settings.pools_before(index) {
            let (pooled, pooled_padding) = pool(x.clone(), padding.clone(), leading, settings.stride);
            x = block.forward_cross(pooled, x, padding);
            padding = pooled_padding;
        } else {
            x = block.forward(x, padding.clone());
        }
    }
    (x, padding)
}

/// Mean pooling with window and stride `stride` over the positions after the first
/// `leading`, which are kept in front: each window averages its real positions; a window
/// without one is padding. `x: [batch, len, d]`, `padding: [batch, len]` ->
/// `[batch, leading + ceil((len - leading) / stride), d]` and its padding.
pub fn pool(x: Tensor<3>, padding: Tensor<2, Bool>, leading: usize, stride: usize) -> (Tensor<3>, Tensor<2, Bool>) {
    let [batch, len, d] = x.dims();
    let leading = leading.min(len);
    let rest = len - leading;
    if rest == 0 {
        return (x, padding);
    }
    let windows = pooled_length(len, leading, stride) - leading;
    let filled = windows * stride;
    let real = append_zeros(padding.clone().slice([0..batch, leading..len]).bool_not().float(), 1, filled); // [batch, filled]
    let body = append_zeros(x.clone().slice([0..batch, leading..len]), 1, filled);
    let real = real.reshape([batch, windows, stride, 1]);
    let count = real.clone().sum_dim(2); // [batch, windows, 1, 1]
    let pooled = (body.reshape([batch, windows, stride, d]) * real).sum_dim(2).div(count.clone().clamp_min(1.0));
    let pooled = pooled.reshape([batch, windows, d]);
    let pooled_padding = count.equal_elem(0.0).reshape([batch, windows]);
    match leading {
        0 => (pooled, pooled_padding),
        _ => (
            Tensor::cat(vec![x.slice([0..batch, 0..leading]), pooled], 1),
            Tensor::cat(vec![padding.slice([0..batch, 0..leading]), pooled_padding], 1),
        ),
    }
}

/// The query and key positions of each block's attention, for counting its work: the first
/// stage's blocks over the whole sequence, a stage's first block from the pooled sequence
/// over the unpooled one, then the pooled sequence over itself.
pub fn block_positions(settings: &FunnelSettings, layers: usize, leading: usize, positions: usize) -> Vec<(usize, usize)> {
    let mut current = positions;
    (0..layers)
        .map(|index| {
            if settings.pools_before(index) {
                let pooled = pooled_length(current, leading, settings.stride);
                let pair = (pooled, current);
                current = pooled;
                pair
            } else {
                (current, current)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{assert_close, padding_after, values};
    use crate::classifier::{ClassifierConfig, PAD_ID, Pooling, Stack};
    use crate::{Mechanism, MechanismSettings};
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn pooling_averages_the_real_positions_of_each_window_and_keeps_the_leading_ones() {
        let device = Device::flex();
        // One sequence, d = 1: CLS 100, then 1 2 3 4 5 with the last two padding.
        let x = Tensor::<3>::from_data(TensorData::new(vec![100.0f32, 1.0, 2.0, 3.0, 4.0, 5.0], [1, 6, 1]), &device);
        let (pooled, padding) = pool(x, padding_after(&[4], 6, &device), 1, 2);
        // Windows (1, 2), (3, pad), (pad): means 1.5 and 3; the last one is padding.
        assert_eq!(values(pooled)[..3], [100.0, 1.5, 3.0]);
        let padding: Vec<bool> = padding.into_data().iter::<bool>().collect();
        assert_eq!(padding, [false, false, false, true]);
        let two_per_stage = FunnelSettings { stride: 2, stage_layers: 2 };
        assert_eq!(block_positions(&FunnelSettings::defaults(0), 3, 1, 6), [(6, 6), (4, 6), (3, 4)]);
        assert_eq!(block_positions(&two_per_stage, 4, 0, 8), [(8, 8), (8, 8), (4, 8), (4, 4)]);
    }

    fn funnel(layers: usize, stage_layers: usize, pooling: Pooling) -> ClassifierConfig {
        let settings = MechanismSettings::Funnel(FunnelSettings { stride: 2, stage_layers });
        ClassifierConfig::new(12, 3, 9, 8, 2, layers, 16, 8, Mechanism::Funnel)
            .with_pooling(pooling)
            .with_settings(Some(settings))
            .with_dropout(0.0)
            .with_attention_dropout(0.0)
    }

    fn tokens(rows: &[&[i64]], len: usize, device: &Device) -> Tensor<2, Int> {
        let ids: Vec<i64> = rows.iter().flat_map(|row| (0..len).map(|i| row.get(i).copied().unwrap_or(PAD_ID))).collect();
        Tensor::from_data(TensorData::new(ids, [rows.len(), len]), device)
    }

    #[test]
    fn a_funnel_of_one_stage_is_the_transformer() {
        let device = Device::flex();
        device.seed(101);
        let model = funnel(2, 2, Pooling::Cls).init(&device);
        let transformer = crate::Classifier { stack: Stack::Blocks, ..model.clone() };
        let input = tokens(&[&[3, 1, 4, 1, 5, 9, 2, 6, 5], &[2, 7, 1, 8]], 9, &device);
        assert_eq!(values(model.encode(input.clone())), values(transformer.encode(input)));
    }

    /// Two stages by hand: block 0 on the sequence, the mean-pooled queries (CLS kept), then
    /// block 1 with its attention computed as full attention of [pooled; sequence] with the
    /// pooled keys masked (so the pooled queries read the unpooled sequence only), its
    /// residual and its feed-forward layer.
    #[test]
    fn a_two_stage_funnel_pools_the_queries_and_attends_to_the_unpooled_sequence() {
        let device = Device::flex();
        device.seed(102);
        let model = funnel(2, 1, Pooling::Cls).init(&device);
        let (batch, len, d) = (1, 7, 8);
        let x = Tensor::<3>::random([batch, len, d], Distribution::Normal(0.0, 1.0), &device);
        let padding = padding_after(&[len], len, &device);
        let (got, got_padding) =
            encode(&model.blocks, &FunnelSettings { stride: 2, stage_layers: 1 }, 1, x.clone(), padding.clone());
        assert_eq!(got.dims(), [1, 4, d]);
        assert_eq!(got_padding.dims(), [1, 4]);

        let after_first = model.blocks[0].forward(x, padding.clone());
        let (pooled, _) = pool(after_first.clone(), padding, 1, 2);
        let block = &model.blocks[1];
        let attention = block.attention.as_full().expect("funnel blocks are full");
        let attention_norm = block.attention_norm.as_ref().expect("funnel blocks attend");
        let norm = |t| crate::layer_norm::layer_norm(attention_norm, t);
        let joint = Tensor::cat(vec![norm(pooled.clone()), norm(after_first)], 1);
        let pooled_keys_masked = Tensor::<2, Bool>::from_data(
            TensorData::new((0..4 + len).map(|i| i < 4).collect::<Vec<bool>>(), [1, 4 + len]),
            &device,
        );
        let attended = attention.forward(joint, pooled_keys_masked).slice([0..1, 0..4]);
        let residual = pooled + attended;
        let no_padding = Tensor::full([1, 4], false, &device);
        let expected = block.feed_forward(residual, no_padding, &mut crate::auxiliary::Auxiliary::default());
        assert_close(&values(got), &values(expected), 1e-5, "funnel's second stage vs full attention of its parts");
    }

    /// One stage counts as the Transformer; each pooled stage's first block as its pooled
    /// queries over the unpooled keys.
    #[test]
    fn a_funnels_count_is_the_transformers_over_its_stages_positions() {
        let transformer = ClassifierConfig { mechanism: Mechanism::Full, settings: None, ..funnel(2, 2, Pooling::Cls) };
        assert_eq!(funnel(2, 2, Pooling::Cls).training_step_flops(2), transformer.training_step_flops(2));
        // 9 tokens and CLS: block 0 over 10 positions; block 1 from 1 + 5 pooled over 10.
        let (d, f, b) = (8.0, 16.0, 2.0);
        let block = |q: f64, k: f64| 2.0 * b * (2.0 * q * d * d + 2.0 * k * d * d + 2.0 * q * d * k) + 4.0 * b * q * d * f;
        let head = 2.0 * b * (8.0 * 8.0 + 8.0 * 3.0);
        assert_eq!(funnel(2, 1, Pooling::Cls).training_step_flops(2), 3.0 * (block(10.0, 10.0) + block(6.0, 10.0) + head));
    }

    /// Every parameter of a funnel of three stages (pooled before its second and third
    /// blocks) gets a finite gradient through the pooling; `assert_finite_gradients` fails
    /// on any parameter without one.
    #[test]
    fn gradients_reach_every_parameter_through_the_pooling() {
        let device = Device::flex().autodiff();
        device.seed(104);
        let config = funnel(3, 1, Pooling::Cls);
        let settings = FunnelSettings { stride: 2, stage_layers: 1 };
        assert!(!settings.pools_before(0) && settings.pools_before(1) && settings.pools_before(2));
        let model = config.with_dropout(0.1).init(&device);
        let logits = model.forward(tokens(&[&[3, 1, 4, 1, 5, 9, 2], &[2; 4]], 7, &device));
        let grads = logits.powi_scalar(2).sum().backward();
        crate::attention::checks::assert_finite_gradients(&model, &grads);
    }

    #[test]
    fn funnel_padding_does_not_change_the_encoding() {
        let device = Device::flex();
        device.seed(103);
        for pooling in [Pooling::Cls, Pooling::Mean] {
            let model = funnel(3, 1, pooling).init(&device);
            let alone = values(model.encode(tokens(&[&[3, 1, 4, 1, 5]], 5, &device)));
            let padded = values(model.encode(tokens(&[&[3, 1, 4, 1, 5], &[2; 9]], 9, &device)));
            assert_close(&padded[..alone.len()], &alone, 1e-5, &format!("{pooling:?}"));
        }
    }
}
