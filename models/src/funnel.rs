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

mod settings;
mod stack;

pub use settings::{COST, FunnelSettings};
pub use stack::{block_positions, encode, pool};

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;

    use crate::attention::checks::{assert_close, padding_after, values};
    use crate::attention::settings::Settings;
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
