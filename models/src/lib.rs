//! burn modules for the Long Range Arena: the attention mechanisms (one file each in
//! [`attention`]), the encoder block and the classifier around them.
//!
//! The crate knows nothing of files, tasks or the command line: it turns token ids into
//! class logits, given a [`ClassifierConfig`].

pub mod activation;
pub mod attention;
pub mod auxiliary;
pub mod bag;
pub mod classifier;
#[cfg(test)]
mod classifier_checks;
pub mod columns;
pub mod cpu;
#[cfg(test)]
mod cross_backend;
pub mod dense;
pub mod depthwise;
pub mod encoder;
pub mod feed_forward;
pub mod fourier;
pub mod funnel;
pub mod layer_norm;
pub mod long_conv;
pub mod model_names;
#[cfg(test)]
mod numeric_checks;
pub mod perceiver;
pub mod product;
pub mod reversal;
pub mod scan;
pub mod switch;
pub mod vandermonde;

pub use attention::{AttentionConfig, MODELS, Mechanism, MechanismSettings, ModelInfo, Variant};
pub use auxiliary::Auxiliary;
pub use classifier::{Classifier, ClassifierConfig, Pooling, Positions};
pub use model_names::{BASELINE, CONTROL};

/// The model called `name`, or an error listing the valid names.
pub fn model_info(name: &str) -> Result<&'static ModelInfo, String> {
    MODELS.iter().find(|m| m.name == name).ok_or_else(|| {
        let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
        format!("unknown model `{name}`; the models are: {}", names.join(", "))
    })
}

pub fn check_model_name(name: &str) -> Result<(), String> {
    model_info(name).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::optim::{AdamWConfig, GradientsParams};
    use burn::prelude::*;
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn model_names_match_their_mechanisms_serialised_names() {
        for model in MODELS.iter().filter(|m| m.name != BASELINE) {
            let serialised = serde_json::to_string(&model.mechanism).expect("a mechanism serialises");
            assert_eq!(serialised, format!("\"{}\"", model.name));
        }
    }

    /// Every registered model, in each of its forms (the paper's, and LRA's where its code
    /// computes something else), trains a tiny classifier: finite losses, a finite gradient
    /// for every parameter at every step, and a falling loss. A model added to [`MODELS`] is
    /// tested here without a line of its own.
    #[test]
    fn every_registered_model_in_each_form_trains_a_tiny_classifier_with_finite_gradients() {
        use crate::classifier_checks::{assert_tiny_classifier_trains, assert_tiny_classifier_trains_with, tiny_lra_settings};
        let mut unfitted = Vec::new();
        for model in MODELS {
            assert_tiny_classifier_trains(model.mechanism);
            if model.mechanism.lra_variant().is_some() {
                match tiny_lra_settings(model.mechanism) {
                    Ok(settings) => assert_tiny_classifier_trains_with(model.mechanism, Some(settings)),
                    Err(_) => unfitted.push(model.name),
                }
            }
        }
        // Two LRA forms fix their blocks against the sequence in ways no fitting of their
        // defaults meets at 13 positions (Reformer: hash_rounds x buckets chunks of
        // chunk_size; BigBird: enough blocks for its window, global and random ones); the
        // test below trains those forms at this size with settings chosen to fit.
        assert_eq!(unfitted, ["reformer", "bigbird"]);
    }

    #[test]
    fn lra_reformer_and_bigbird_train_a_tiny_classifier_with_settings_chosen_to_fit() {
        use crate::classifier_checks::{assert_tiny_classifier_trains_with, tiny_lra_settings_that_fit};
        for mechanism in [Mechanism::Reformer, Mechanism::BigBird] {
            assert_tiny_classifier_trains_with(mechanism, Some(tiny_lra_settings_that_fit(mechanism)));
        }
    }

    /// Every registered model says what it is: a paper with its year, a family of the
    /// survey's taxonomy, and a cost in O-notation.
    #[test]
    fn every_registered_model_has_a_paper_a_family_and_a_cost() {
        for model in MODELS {
            let year = model.title.rsplit(' ').next().unwrap_or_default().trim_end_matches(')');
            assert!(
                model.title.contains(" (") && year.len() == 4 && year.starts_with("20"),
                "{}: the title {:?} names no paper and year",
                model.name,
                model.title
            );
            assert!(!model.family.is_empty(), "{}: no family", model.name);
            assert!(model.cost.starts_with("O(") && model.cost.contains("time"), "{}: cost {:?}", model.name, model.cost);
        }
    }

    /// Every registered mechanism's layer, in its paper form at its defaults for the
    /// length, gives real tokens outputs that what padding holds cannot move (the property
    /// each file tests in its stronger form where it has one: the same outputs as the real
    /// tokens alone). LRA's forms are left out: some let padding leak, as LRA's code does.
    /// A layer that draws anew at every forward (the paper's Reformer: its rotations) is
    /// compared with one draw ([`Attention::draw_once`](attention::Attention::draw_once)).
    #[test]
    fn every_registered_mechanism_keeps_padding_content_from_real_tokens() {
        use attention::checks::{assert_padding_content_is_invisible, padding_after, random_input, values};
        let device = Device::flex();
        device.seed(12);
        let (d_model, len, real) = (8, 37, [37, 23, 1]);
        for model in MODELS {
            let settings = MechanismSettings::defaults(model.mechanism, len).fitted_to(len);
            let settings = settings.clone().with_variant(Variant::Paper).unwrap_or(settings);
            let mut layer = AttentionConfig::new(d_model, 2, model.mechanism, len)
                .with_settings(Some(settings))
                .with_dropout(0.0)
                .init(&device);
            layer.draw_once();
            let (x, padding) = (random_input(3, len, d_model, &device), padding_after(&real, len, &device));
            assert_eq!(values(layer.forward(x.clone(), padding.clone())), values(layer.forward(x, padding)), "{}", model.name);
            assert_padding_content_is_invisible(|x, padding| layer.forward(x, padding), d_model, &real, len, &device);
        }
    }

    /// The models whose attention layer is the Transformer's say where else they differ,
    /// and only those.
    #[test]
    fn exactly_the_models_with_full_attention_layers_say_where_they_differ() {
        let device = Device::flex();
        for model in MODELS.iter().filter(|m| m.name != BASELINE) {
            let layer = AttentionConfig::new(8, 2, model.mechanism, 16).init(&device);
            let full_layer = layer.as_full().is_some();
            assert_eq!(full_layer, model.mechanism.change_outside_attention().is_some(), "{}", model.name);
        }
    }

    #[test]
    fn every_registered_model_trains_on_long_padded_sequences_to_a_finite_loss() {
        let device = Device::flex().autodiff();
        device.seed(11);
        // Long enough that every pattern spans several of its blocks (BigBird's blocks of 64,
        // Longformer's windows of 32, ...), with a length no block size divides.
        let (batch, len, classes) = (2, 400, 3);
        for model in MODELS {
            let config = ClassifierConfig::new(8, classes, len, 8, 2, 1, 16, 8, model.mechanism);
            let mut classifier = config.init(&device);
            let mut optimizer = AdamWConfig::new().init();
            // Random tokens in 1..8; the second sequence is padding (0) after 250 tokens.
            let real: Vec<i64> = (0..batch * len).map(|i| i64::from(i < len + 250)).collect();
            let tokens = Tensor::<2, Int>::random([batch, len], Distribution::Uniform(1.0, 8.0), &device)
                .mul(Tensor::from_data(TensorData::new(real, [batch, len]), &device));
            let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [batch]), &device);
            for step in 0..2 {
                let loss =
                    CrossEntropyLossConfig::new().init(&device).forward(classifier.forward(tokens.clone()), labels.clone());
                let value = loss.clone().into_scalar::<f32>();
                assert!(value.is_finite(), "{}: loss {value} at step {step}", model.name);
                let grads = GradientsParams::from_grads(loss.backward(), &classifier);
                classifier = optimizer.step(1e-3, classifier, grads);
            }
        }
    }
}
