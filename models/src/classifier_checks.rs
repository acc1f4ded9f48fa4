//! Test checks of a whole classifier: a few training steps of a tiny one, for every
//! registered mechanism. Kept out of `attention/checks.rs`, which every mechanism's tests
//! import, because the classifier holds the registry of every mechanism.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;

use crate::attention::checks::assert_finite_gradients_but_idle;
use crate::attention::{Mechanism, MechanismSettings, Variant};
use crate::classifier::{ClassifierConfig, PAD_ID};

/// A few AdamW steps of a tiny classifier using `mechanism` on one fixed batch of random
/// tokens (some rows padded): every loss (the auxiliary ones added) is finite, every
/// parameter's gradient is finite at every step, and the last loss is below the first. The
/// mechanism's settings for the tiny sequence ([`MechanismSettings::tiny`]): its defaults
/// fitted to it, or what its file sets for its parts to run there.
pub fn assert_tiny_classifier_trains(mechanism: Mechanism) {
    assert_tiny_classifier_trains_with(mechanism, Some(MechanismSettings::tiny(mechanism, TINY_LEN + 1)));
}

/// The mechanism as LRA's released code computes it, its defaults fitted to the tiny
/// classifier's sequence (12 tokens and the CLS vector); `Err` says why they cannot fit it.
pub fn tiny_lra_settings(mechanism: Mechanism) -> Result<MechanismSettings, String> {
    let settings = MechanismSettings::defaults(mechanism, TINY_LEN + 1).fitted_to(TINY_LEN + 1).with_variant(Variant::Lra)?;
    settings.check(TINY_LEN + 1)?;
    Ok(settings)
}

/// The tiny classifier's sequence length (tokens, without the CLS vector).
pub const TINY_LEN: usize = 12;

/// LRA's form of `mechanism` for the tiny classifier: [`tiny_lra_settings`], or, for the
/// two forms whose defaults no fitting fits to 13 positions (Reformer: hash_rounds x
/// buckets chunks of chunk_size; BigBird: enough blocks for its window, global and random
/// ones), settings chosen to fit.
pub fn tiny_lra_settings_that_fit(mechanism: Mechanism) -> MechanismSettings {
    use crate::attention::bigbird::BigBirdSettings;
    use crate::attention::reformer::ReformerSettings;
    match mechanism {
        Mechanism::Reformer => {
            MechanismSettings::Reformer(ReformerSettings { variant: Variant::Lra, chunk_size: 10, hash_rounds: 1, buckets: 10 })
        }
        Mechanism::BigBird => MechanismSettings::BigBird(BigBirdSettings {
            variant: Variant::Lra,
            block_size: 1,
            window_blocks: 3,
            global_blocks: 1,
            random_blocks: 3,
        }),
        _ => tiny_lra_settings(mechanism).unwrap_or_else(|why| panic!("{mechanism:?}: LRA's form does not fit: {why}")),
    }
}

/// The tiny classifier's batch: 4 rows of `TINY_LEN` tokens in `1..10`, row `r` padded in
/// its last `3 r` places, and labels in `0..3`.
pub fn tiny_tokens(device: &Device) -> (Tensor<2, Int>, Tensor<1, Int>) {
    let (batch, len, vocab) = (4, TINY_LEN, 10);
    let token_ids: Vec<i64> = (0..batch * len)
        .map(|i| {
            let (row, col) = (i / len, i % len);
            if col >= len - 3 * row { PAD_ID } else { 1 + ((7 * row + 3 * col + col * col) % (vocab - 1)) as i64 }
        })
        .collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(token_ids, [batch, len]), device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 1], [batch]), device);
    (tokens, labels)
}

/// [`assert_tiny_classifier_trains`] with `settings` (the mechanism's defaults when `None`).
pub fn assert_tiny_classifier_trains_with(mechanism: Mechanism, settings: Option<MechanismSettings>) {
    let device = Device::flex().autodiff();
    device.seed(5);
    let (len, vocab, classes) = (TINY_LEN, 10, 3);
    if let Some(settings) = &settings {
        assert_eq!(settings.check(len + 1), Ok(()), "settings for the tiny classifier");
    }
    let config = ClassifierConfig::new(vocab, classes, len, 16, 2, 1, 32, 16, mechanism)
        .with_dropout(0.0)
        .with_attention_dropout(0.0)
        .with_settings(settings);
    let mut model = config.init(&device);
    let (tokens, labels) = tiny_tokens(&device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut optim = AdamWConfig::new().init();
    let mut losses = Vec::new();
    for step in 0..6 {
        let (logits, auxiliary) = model.forward_with_auxiliary(tokens.clone());
        // An expert no token went to has no gradient in this step (block by block).
        let idle: Vec<String> = auxiliary
            .expert_loads
            .iter()
            .enumerate()
            .flat_map(|(block, loads)| {
                let idle = loads.iter().enumerate().filter(|(_, load)| **load == 0.0);
                idle.map(move |(expert, _)| format!("blocks.{block}.feed_forward.Switch.experts.{expert}."))
            })
            .collect();
        let loss = loss_fn.forward(logits, labels.clone());
        let loss = match auxiliary.loss() {
            Some(auxiliary) => loss + auxiliary,
            None => loss,
        };
        let value = loss.clone().into_scalar::<f32>();
        assert!(value.is_finite(), "{mechanism:?}: loss {value} at step {step}");
        losses.push(value);
        let grads = loss.backward();
        assert!(assert_finite_gradients_but_idle(&model, &grads, &idle) > 0, "{mechanism:?}: no parameter checked");
        let grads = GradientsParams::from_grads(grads, &model);
        model = optim.step(1e-2, model, grads);
    }
    assert!(losses[losses.len() - 1] < losses[0], "{mechanism:?}: losses {losses:?} did not fall");
}
