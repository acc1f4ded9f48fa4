//! Attention mechanisms behind one interface, and the registry of the models.
//!
//! Every mechanism maps `x: [batch, len, d_model]` and `padding: [batch, len]` (true
//! where the token is padding) to `[batch, len, d_model]`, and must leave real tokens'
//! outputs unchanged by whatever the padding holds. The encoder holds an [`Attention`]
//! and does not know which mechanism is inside.
//!
//! An attention mechanism is one file (its layer, and its settings type implementing
//! [`Settings`]) and one line of the registry below, which makes [`Mechanism`],
//! [`MechanismSettings`], [`Attention`] and [`MODELS`](crate::MODELS) from the lines. (A
//! model that changes the stack or the feed-forward layer instead also has its arm in
//! the classifier; the control, [`crate::bag`], has no attention at all.)
//!
//! This file dispatches to every mechanism, so no mechanism imports it: what they share is
//! in [`layer`] ([`LayerSizes`], [`AttentionLayer`]), [`settings`], [`heads`], [`blocks`]
//! and [`flops`].

pub mod axial;
pub mod bigbird;
pub mod blocks;
#[cfg(test)]
pub(crate) mod checks;
pub mod compressive;
pub mod cosformer;
pub mod flops;
pub mod fnet;
pub mod full;
pub mod full_layer;
pub mod heads;
pub mod hyena;
pub mod layer;
pub mod linear;
pub mod linformer;
pub mod local;
pub mod longformer;
pub mod lru;
pub mod luna;
pub mod mamba;
pub mod mega;
pub mod memory_compressed;
pub mod nystromformer;
pub mod performer;
pub mod random;
pub mod reformer;
mod registry;
pub mod routing;
pub mod s4d;
pub mod s5;
pub mod set_transformer;
pub mod settings;
pub mod sinkhorn;
pub mod softmax;
pub mod sparse;
pub mod synthesizer;
pub mod transformer_xl;

use burn::prelude::*;

use crate::auxiliary::Auxiliary;

pub use layer::{AttentionLayer, LayerSizes};
pub use settings::{ModelCard, Scale, Settings, Variant};

// The registry: one line per model, in the order the harness lists and sweeps them,
// `Name = "its name in configurations" => its settings type`.
registry::mechanisms! {
    Full = "full" => full::FullSettings,
    Local = "local" => local::LocalSettings,
    Sparse = "sparse" => sparse::SparseSettings,
    Longformer = "longformer" => longformer::LongformerSettings,
    Linformer = "linformer" => linformer::LinformerSettings,
    Reformer = "reformer" => reformer::ReformerSettings,
    Sinkhorn = "sinkhorn" => sinkhorn::SinkhornSettings,
    Synthesizer = "synthesizer" => synthesizer::SynthesizerSettings,
    BigBird = "bigbird" => bigbird::BigBirdSettings,
    Linear = "linear" => linear::LinearSettings,
    Performer = "performer" => performer::PerformerSettings,
    Axial = "axial" => axial::AxialSettings,
    Fnet = "fnet" => fnet::FnetSettings,
    Nystromformer = "nystromformer" => nystromformer::NystromformerSettings,
    Luna = "luna" => luna::LunaSettings,
    S4d = "s4d" => s4d::S4dSettings,
    Lru = "lru" => lru::LruSettings,
    S5 = "s5" => s5::S5Settings,
    Mamba = "mamba" => mamba::MambaSettings,
    Mega = "mega" => mega::MegaSettings,
    Hyena = "hyena" => hyena::HyenaSettings,
    MemoryCompressed = "memory_compressed" => memory_compressed::MemoryCompressedSettings,
    SetTransformer = "set_transformer" => set_transformer::SetTransformerSettings,
    TransformerXl = "transformer_xl" => transformer_xl::TransformerXlSettings,
    Cosformer = "cosformer" => cosformer::CosformerSettings,
    Funnel = "funnel" => crate::funnel::FunnelSettings,
    Perceiver = "perceiver" => crate::perceiver::PerceiverSettings,
    Compressive = "compressive" => compressive::CompressiveSettings,
    Switch = "switch" => crate::switch::SwitchSettings,
    Routing = "routing" => routing::RoutingSettings,
    Bag = "bag" => crate::bag::BagSettings,
}

/// A model the harness can train: a name on the command line and the attention it uses (a
/// line of the registry above, its [`ModelCard`] and mechanism).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    /// Name on the command line (`--model`).
    pub name: &'static str,
    /// The paper's name for the model.
    pub title: &'static str,
    /// Family in the taxonomy of "Efficient Transformers: A Survey" (Tay et al.).
    pub family: &'static str,
    /// Time and memory of one attention layer in the sequence length n.
    pub cost: &'static str,
    pub mechanism: Mechanism,
}

impl Mechanism {
    /// Whether LRA's released code computes something other than the paper for this
    /// mechanism: then its settings hold a [`Variant`].
    pub fn has_variants(self) -> bool {
        MechanismSettings::defaults(self, 1).variant().is_some()
    }
}

impl MechanismSettings {
    /// These settings computing `to` instead; refused for a mechanism with one form.
    pub fn with_variant(self, to: Variant) -> Result<MechanismSettings, String> {
        let mechanism = self.mechanism();
        self.switched_to(to).ok_or_else(|| {
            format!(
                "{mechanism:?} has one form: variants ({}) are for the mechanisms whose paper and LRA's code differ",
                Variant::ALL.map(Variant::name).join(", ")
            )
        })
    }

    /// These settings for sequences of `to` positions instead of `from`: every setting
    /// that is a length (a block, stride, window or chunk) scaled by `to / from`
    /// ([`Scale::length`]; Sparse's summary at least 1); the slots that summarise the sequence likewise
    /// ([`Scale::slots`]); other counts (k, features, buckets, rounds) unchanged; each
    /// mechanism's file says what it does. Then cut to the sequence
    /// ([`MechanismSettings::fitted_to`]).
    pub fn scaled(self, from: usize, to: usize) -> MechanismSettings {
        self.scaled_only(&Scale { from, to }).fitted_to(to)
    }
}

/// Sizes shared by every mechanism, and the mechanism's own settings.
#[derive(Config, Debug)]
pub struct AttentionConfig {
    pub d_model: usize,
    pub heads: usize,
    pub mechanism: Mechanism,
    /// Longest sequence the layer will see (mechanisms with length-shaped parameters,
    /// e.g. Linformer's projections, size them from it).
    pub max_length: usize,
    /// Dropout on the attention weights (where the mechanism has weights).
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Width of queries, keys and values, split among the heads; `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// The mechanism's own settings; its defaults for `max_length` when absent.
    #[config(default = "None")]
    pub settings: Option<MechanismSettings>,
    /// Positions before the sequence (a classifier's CLS vector): the layouts of axial
    /// and Sparse attention start after them, which attend and are attended globally.
    #[config(default = 0)]
    pub leading: usize,
}

impl AttentionConfig {
    /// The sizes the mechanism's layer is built with ([`Settings::init`]).
    pub fn sizes(&self) -> LayerSizes {
        LayerSizes {
            d_model: self.d_model,
            heads: self.heads,
            max_length: self.max_length,
            dropout: self.dropout,
            qkv_dim: self.qkv_dim,
            leading: self.leading,
        }
    }

    /// The operations of one forward of this layer on `batch` sequences of `max_length`
    /// positions (every batch is padded to it): each mechanism's `forward_flops`, by the
    /// convention of [`flops`].
    pub fn forward_flops(&self, batch: usize) -> f64 {
        let shape = flops::LayerShape {
            batch,
            positions: self.max_length,
            d_model: self.d_model,
            qkv_dim: self.qkv_dim.unwrap_or(self.d_model),
            heads: self.heads,
            leading: self.leading,
        };
        self.resolved_settings().forward_flops(&shape)
    }

    /// The settings the layer is built with: the given ones, or the mechanism's defaults.
    pub fn resolved_settings(&self) -> MechanismSettings {
        self.settings.clone().unwrap_or_else(|| MechanismSettings::defaults(self.mechanism, self.max_length))
    }

    pub fn init(&self, device: &Device) -> Attention {
        let settings = self.resolved_settings();
        assert_eq!(settings.mechanism(), self.mechanism, "the settings are not for the layer's mechanism");
        settings.init(&self.sizes(), device)
    }
}

impl Attention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.layer().attend(x, padding)
    }

    /// [`Attention::forward`], the layer's auxiliary loss added to `auxiliary`.
    pub fn forward_with(&self, x: Tensor<3>, padding: Tensor<2, Bool>, auxiliary: &mut Auxiliary) -> Tensor<3> {
        self.layer().attend_with(x, padding, auxiliary)
    }

    /// See [`AttentionLayer::on_training_step`].
    pub fn on_training_step(&mut self, step: usize) -> bool {
        self.layer_mut().on_training_step(step)
    }

    /// See [`AttentionLayer::draw_once`].
    pub fn draw_once(&mut self) {
        self.layer_mut().draw_once()
    }

    /// The layer as full attention, where it is.
    pub fn as_full(&self) -> Option<&full_layer::FullAttention> {
        self.layer().as_full()
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;
    use crate::MODELS;
    use crate::attention::Mechanism;
    use crate::attention::axial::AxialSettings;
    use crate::attention::bigbird::BigBirdSettings;
    use crate::attention::compressive::CompressiveSettings;
    use crate::attention::full::FullSettings;
    use crate::attention::linformer::LinformerSettings;
    use crate::attention::local::LocalSettings;
    use crate::attention::luna::LunaSettings;
    use crate::attention::memory_compressed::MemoryCompressedSettings;
    use crate::attention::nystromformer::NystromformerSettings;
    use crate::attention::reformer::ReformerSettings;
    use crate::attention::routing::RoutingSettings;
    use crate::attention::set_transformer::SetTransformerSettings;
    use crate::attention::sinkhorn::SinkhornSettings;
    use crate::attention::sparse::SparseSettings;
    use crate::attention::transformer_xl::TransformerXlSettings;
    use crate::funnel::FunnelSettings;
    use crate::perceiver::PerceiverSettings;
    use crate::switch::SwitchSettings;

    #[test]
    fn exactly_the_mechanisms_with_variants_describe_their_lra_form() {
        for model in MODELS {
            assert_eq!(model.mechanism.has_variants(), model.mechanism.lra_variant().is_some(), "{}", model.name);
        }
    }

    #[test]
    fn every_mechanism_has_defaults_that_name_it_and_pass_their_own_check() {
        for model in MODELS {
            let settings = MechanismSettings::defaults(model.mechanism, 1025);
            assert_eq!(settings.mechanism(), model.mechanism, "{}", model.name);
            assert_eq!(settings.check(1025), Ok(()), "{}", model.name);
        }
    }

    #[test]
    fn defaults_derived_from_the_length_are_resolved_to_numbers() {
        assert_eq!(
            MechanismSettings::defaults(Mechanism::Sparse, 1025),
            MechanismSettings::Sparse(SparseSettings { variant: Variant::Paper, stride: 33, summary: 8 })
        );
        assert_eq!(
            MechanismSettings::defaults(Mechanism::Axial, 1025),
            MechanismSettings::Axial(AxialSettings { row_length: 32 })
        );
        // 1025 positions in chunks of 32: 33 chunks, rounded up to 34 buckets.
        let MechanismSettings::Reformer(ReformerSettings { variant: Variant::Paper, buckets, .. }) =
            MechanismSettings::defaults(Mechanism::Reformer, 1025)
        else {
            panic!("not Reformer's settings")
        };
        assert_eq!(buckets, 34);
    }

    #[test]
    fn fitted_settings_pass_the_check_at_any_length() {
        for model in MODELS {
            for positions in [1, 2, 17, 33, 65, 257, 1025] {
                let fitted = MechanismSettings::defaults(model.mechanism, positions).fitted_to(positions);
                assert_eq!(fitted.check(positions), Ok(()), "{} at {positions}: {fitted:?}", model.name);
            }
        }
        assert_eq!(
            MechanismSettings::Linformer(LinformerSettings { variant: Variant::Paper, projected_length: 256 }).fitted_to(65),
            MechanismSettings::Linformer(LinformerSettings { variant: Variant::Paper, projected_length: 65 })
        );
    }

    #[test]
    fn scaling_shrinks_lengths_keeps_counts_and_fits_the_sequence() {
        let local = MechanismSettings::Local(LocalSettings { variant: Variant::Paper, block_size: 64 }).scaled(1024, 256);
        assert_eq!(local, MechanismSettings::Local(LocalSettings { variant: Variant::Paper, block_size: 16 }));
        assert_eq!(
            MechanismSettings::Local(LocalSettings { variant: Variant::Paper, block_size: 50 }).scaled(2001, 65),
            MechanismSettings::Local(LocalSettings { variant: Variant::Paper, block_size: 4 })
        );
        let reformer = MechanismSettings::Reformer(ReformerSettings {
            variant: Variant::Paper,
            chunk_size: 201,
            hash_rounds: 1,
            buckets: 10,
        })
        .scaled(2001, 65);
        assert_eq!(
            reformer,
            MechanismSettings::Reformer(ReformerSettings { variant: Variant::Paper, chunk_size: 7, hash_rounds: 1, buckets: 10 })
        );
        let linformer = MechanismSettings::Linformer(LinformerSettings { variant: Variant::Paper, projected_length: 16 });
        assert_eq!(linformer.clone().scaled(1024, 256), linformer);
        assert_eq!(
            MechanismSettings::Axial(AxialSettings { row_length: 32 }).scaled(1024, 256),
            MechanismSettings::Axial(AxialSettings { row_length: 16 })
        );
        // Summary slots keep their share of the sequence, but never fewer than 8 (or than
        // they were) and never more than they were.
        assert_eq!(
            MechanismSettings::Luna(LunaSettings { memory_length: 256 }).scaled(4001, 257),
            MechanismSettings::Luna(LunaSettings { memory_length: 16 })
        );
        assert_eq!(
            MechanismSettings::Luna(LunaSettings { memory_length: 256 }).scaled(2001, 65),
            MechanismSettings::Luna(LunaSettings { memory_length: 8 })
        );
        assert_eq!(
            MechanismSettings::Luna(LunaSettings { memory_length: 4 }).scaled(2001, 65),
            MechanismSettings::Luna(LunaSettings { memory_length: 4 })
        );
        assert_eq!(
            MechanismSettings::Luna(LunaSettings { memory_length: 16 }).scaled(65, 257),
            MechanismSettings::Luna(LunaSettings { memory_length: 16 })
        );
        assert_eq!(
            MechanismSettings::Nystromformer(NystromformerSettings { landmarks: 128, pinv_iterations: 6 }).scaled(1025, 257),
            MechanismSettings::Nystromformer(NystromformerSettings { landmarks: 32, pinv_iterations: 6 })
        );
    }

    #[test]
    fn settings_that_cannot_work_with_the_length_are_refused_naming_both() {
        let err = MechanismSettings::Local(LocalSettings { variant: Variant::Paper, block_size: 64 }).check(33).unwrap_err();
        assert!(err.contains("block_size 64") && err.contains("33 positions"), "{err}");
        let err = MechanismSettings::Linformer(LinformerSettings { variant: Variant::Paper, projected_length: 256 })
            .check(65)
            .unwrap_err();
        assert!(err.contains("projected_length (k) 256") && err.contains("65 positions"), "{err}");
        let bigbird = MechanismSettings::BigBird(BigBirdSettings {
            variant: Variant::Paper,
            block_size: 8,
            window_blocks: 2,
            global_blocks: 1,
            random_blocks: 1,
        });
        assert!(bigbird.check(64).unwrap_err().contains("window_blocks must be odd"));
        assert!(
            MechanismSettings::Sparse(SparseSettings { variant: Variant::Paper, stride: 8, summary: 9 })
                .check(64)
                .unwrap_err()
                .contains("summary 9")
        );
        let err = MechanismSettings::TransformerXl(TransformerXlSettings { segment_length: 300 }).check(257).unwrap_err();
        assert!(err.contains("segment_length 300") && err.contains("257 positions"), "{err}");
        let err = MechanismSettings::MemoryCompressed(MemoryCompressedSettings { compression: 5 }).check(4).unwrap_err();
        assert!(err.contains("compression 5") && err.contains("4 positions"), "{err}");
        assert!(
            MechanismSettings::MemoryCompressed(MemoryCompressedSettings { compression: 0 })
                .check(64)
                .unwrap_err()
                .contains("compression must be")
        );
        assert!(
            MechanismSettings::Funnel(FunnelSettings { stride: 0, stage_layers: 1 })
                .check(64)
                .unwrap_err()
                .contains("stride must be")
        );
        assert!(
            MechanismSettings::Funnel(FunnelSettings { stride: 2, stage_layers: 0 })
                .check(64)
                .unwrap_err()
                .contains("stage_layers must be")
        );
        assert!(
            MechanismSettings::Perceiver(PerceiverSettings { latents: 0 }).check(64).unwrap_err().contains("latents must be")
        );
        assert!(
            MechanismSettings::SetTransformer(SetTransformerSettings { inducing_points: 0 })
                .check(64)
                .unwrap_err()
                .contains("inducing_points must be")
        );
        // Lengths no segment, window or stride divides are filled up with masked
        // positions, not refused: LRA's lengths with their CLS vector (1001, 2001, 4097)
        // have few divisors.
        assert_eq!(MechanismSettings::TransformerXl(TransformerXlSettings { segment_length: 256 }).check(1001), Ok(()));
        assert_eq!(MechanismSettings::MemoryCompressed(MemoryCompressedSettings { compression: 3 }).check(1001), Ok(()));
        let switch = |capacity_factor| {
            MechanismSettings::Switch(SwitchSettings { experts: 4, capacity_factor, load_balance_weight: 0.01 })
        };
        assert!(switch(0.0).check(64).unwrap_err().contains("capacity_factor must be positive, not 0"));
        let compressive = MechanismSettings::Compressive(CompressiveSettings {
            segment_length: 4,
            compression_rate: 5,
            compressed_segments: 2,
        })
        .check(64)
        .unwrap_err();
        assert!(compressive.contains("compression_rate 5") && compressive.contains("segment_length 4"), "{compressive}");
        let routing = MechanismSettings::Routing(RoutingSettings { clusters: 70, ema_decay: 0.999 }).check(65).unwrap_err();
        assert!(routing.contains("clusters 70") && routing.contains("65 tokens"), "{routing}");
    }

    #[test]
    fn switching_variants_keeps_the_settings_but_lras_sort_which_has_no_paper_form() {
        let lra = MechanismSettings::Sinkhorn(SinkhornSettings {
            variant: Variant::Lra,
            block_size: 50,
            sinkhorn_iterations: 0,
            temperature: 1.0,
        });
        assert_eq!(lra.check(2000), Ok(()));
        let paper = lra.clone().with_variant(Variant::Paper).unwrap();
        let defaults = MechanismSettings::defaults(Mechanism::Sinkhorn, 2000);
        let MechanismSettings::Sinkhorn(SinkhornSettings { sinkhorn_iterations, temperature, .. }) = defaults else {
            panic!("not Sinkhorn's")
        };
        assert_eq!(
            paper,
            MechanismSettings::Sinkhorn(SinkhornSettings {
                variant: Variant::Paper,
                block_size: 50,
                sinkhorn_iterations,
                temperature
            })
        );
        assert!(lra.with_variant(Variant::Paper).unwrap().check(2000).is_ok());
        let refused = MechanismSettings::Sinkhorn(SinkhornSettings {
            variant: Variant::Paper,
            block_size: 50,
            sinkhorn_iterations: 0,
            temperature: 1.0,
        });
        assert!(refused.check(2000).unwrap_err().contains("at least once"));
        let local = MechanismSettings::Local(LocalSettings { variant: Variant::Lra, block_size: 50 });
        assert_eq!(
            local.with_variant(Variant::Paper),
            Ok(MechanismSettings::Local(LocalSettings { variant: Variant::Paper, block_size: 50 }))
        );
        assert!(MechanismSettings::Full(FullSettings).with_variant(Variant::Lra).unwrap_err().contains("one form"));
        assert_eq!(Variant::parse("paper"), Ok(Variant::Paper));
        assert!(Variant::parse("LRA").unwrap_err().contains("lra, paper"));
    }

    /// Every registered mechanism's settings are written under its name and read back
    /// equal; those without fields as the name alone.
    #[test]
    fn every_mechanisms_settings_round_trip_through_json_under_its_name() {
        for model in MODELS {
            let settings = MechanismSettings::defaults(model.mechanism, 1025);
            let json = serde_json::to_value(&settings).unwrap();
            let name = serde_json::to_value(model.mechanism).unwrap();
            let name = name.as_str().unwrap();
            match &json {
                serde_json::Value::String(alone) => assert_eq!(alone, name),
                serde_json::Value::Object(map) => assert_eq!(map.keys().collect::<Vec<_>>(), [name], "{}", model.name),
                other => panic!("{}: {other}", model.name),
            }
            assert_eq!(serde_json::from_value::<MechanismSettings>(json).unwrap(), settings, "{}", model.name);
        }
    }

    #[test]
    fn settings_naming_no_mechanism_or_two_or_none_of_their_fields_are_refused() {
        let read = |json: &str| serde_json::from_str::<MechanismSettings>(json).unwrap_err().to_string();
        let unknown = read(r#"{"locale": {"block_size": 50}}"#);
        assert!(unknown.contains("unknown variant `locale`") && unknown.contains("`local`"), "{unknown}");
        assert!(read(r#""local""#).contains(r#"`local` has settings: write {"local": {...}}"#));
        assert!(read(r#"{"full": null, "local": {"block_size": 50}}"#).contains("one mechanism"));
        assert!(read("{}").contains("names no mechanism"));
    }

    #[test]
    fn settings_read_from_json_refuse_unknown_fields_by_name() {
        let parsed: MechanismSettings = serde_json::from_str(r#"{"local": {"block_size": 50}}"#).unwrap();
        assert_eq!(parsed, MechanismSettings::Local(LocalSettings { variant: Variant::Paper, block_size: 50 }));
        let err = serde_json::from_str::<MechanismSettings>(r#"{"local": {"block_sise": 50}}"#).unwrap_err().to_string();
        assert!(err.contains("block_sise"), "{err}");
        assert_eq!(serde_json::from_str::<MechanismSettings>(r#""full""#).unwrap(), MechanismSettings::Full(FullSettings));
    }
}

#[cfg(test)]
mod flops_tests {
    use crate::attention::bigbird::BigBirdSettings;
    use crate::attention::full::FullSettings;
    use crate::attention::linformer::LinformerSettings;
    use crate::attention::local::LocalSettings;
    use crate::attention::{AttentionConfig, Mechanism, MechanismSettings, Variant};

    fn layer(mechanism: Mechanism, settings: MechanismSettings) -> AttentionConfig {
        AttentionConfig::new(32, 4, mechanism, 48).with_settings(Some(settings))
    }

    /// Where a mechanism computes exactly full attention, it counts as full attention:
    /// one block of the whole length, every block global, the length projected to itself
    /// (by the same products plus the projection's own).
    #[test]
    fn mechanisms_in_their_full_attention_limit_count_as_full_attention() {
        let full = layer(Mechanism::Full, MechanismSettings::Full(FullSettings)).forward_flops(3);
        let local = layer(Mechanism::Local, MechanismSettings::Local(LocalSettings { variant: Variant::Paper, block_size: 48 }));
        assert_eq!(local.forward_flops(3), full);
        let bigbird = MechanismSettings::BigBird(BigBirdSettings {
            variant: Variant::Paper,
            block_size: 8,
            window_blocks: 3,
            global_blocks: 6,
            random_blocks: 1,
        });
        assert_eq!(layer(Mechanism::BigBird, bigbird).forward_flops(3), full);
        let linformer = layer(
            Mechanism::Linformer,
            MechanismSettings::Linformer(LinformerSettings { variant: Variant::Paper, projected_length: 48 }),
        );
        // Plus E K and E V: 2 x 3 x 2 x (48 x 48 x 32).
        assert_eq!(linformer.forward_flops(3), full + 2.0 * 3.0 * 2.0 * 48.0 * 48.0 * 32.0);
    }

    /// Counts grow as the papers' costs say: linear in the length for the linear-cost
    /// mechanisms (doubling the length doubles the count), quadratic for full attention.
    #[test]
    fn counts_scale_with_the_length_as_the_costs_say() {
        let at = |mechanism, n: usize| AttentionConfig::new(32, 4, mechanism, n).forward_flops(2);
        for mechanism in [Mechanism::Linear, Mechanism::Local] {
            let ratio = at(mechanism, 1024) / at(mechanism, 512);
            assert!((ratio - 2.0).abs() < 0.05, "{mechanism:?}: {ratio}");
        }
        let ratio = at(Mechanism::Full, 4096) / at(Mechanism::Full, 2048);
        assert!(ratio > 3.5 && ratio < 4.0, "{ratio}");
    }
}
