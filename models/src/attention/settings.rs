//! What a mechanism's file gives the registry (`mechanisms!` in `attention/mod.rs`): its
//! settings type, implementing [`Settings`]. The settings are every value that changes
//! what a mechanism computes (block, k, features, buckets, landmarks, ...), as a run's
//! configuration holds them, so that none is a hidden default; the type knows the
//! model's registry line, its defaults (read from the file's config, where it has one),
//! how they fit and scale to a length, what they cannot be, what a layer costs and how it
//! is built.

use burn::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::flops::LayerShape;
use super::{AttentionConfig, AttentionLayer, MechanismSettings};

/// A model's line in the registry, stated by its settings type ([`Settings::MODEL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelCard {
    /// Name on the command line (`--model`).
    pub name: &'static str,
    /// The paper's name for the model.
    pub title: &'static str,
    /// Family in the taxonomy of "Efficient Transformers: A Survey" (Tay et al.).
    pub family: &'static str,
    /// Time and memory of one attention layer in the sequence length n (the file's `COST`).
    pub cost: &'static str,
}

/// A mechanism's own settings: what its file gives the registry. Every method but
/// [`Settings::defaults`], [`Settings::forward_flops`] and [`Settings::init`] has the
/// answer of a mechanism with one form and nothing bound to the length.
pub trait Settings: Sized + Clone + std::fmt::Debug + PartialEq + Serialize + DeserializeOwned {
    /// The layer these settings build.
    type Layer: AttentionLayer;
    /// The model's line in `lra list models`, sweeps and reports.
    const MODEL: ModelCard;
    /// For a mechanism whose paper and LRA's released code compute different things: what
    /// the `lra` form computes differently, in one line (files under
    /// `lra_benchmarks/models/` of LRA's code). Such settings hold a [`Variant`].
    const LRA_VARIANT: Option<&'static str> = None;
    /// Where the model differs from the Transformer when not in its attention layer (its
    /// layers then compute full attention, so a benchmark of the layer alone measures the
    /// Transformer's): the stack or the feed-forward layer.
    const CHANGE_OUTSIDE_ATTENTION: Option<&'static str> = None;
    /// Whether the model's blocks have an attention sub-layer: every model's but the
    /// control's ([`crate::bag`]), whose blocks are their feed-forward sub-layers alone and
    /// whose classifier reads no positions and pools by the mean of the real tokens.
    const ATTENDS: bool = true;
    /// Whether the settings have no fields (a unit struct): then they are written as the
    /// mechanism's name alone (`"attention": "full"`).
    const FIELDLESS: bool = std::mem::size_of::<Self>() == 0;

    /// The settings for sequences of up to `max_length` positions (CLS included): the
    /// file's defaults, those derived from the length resolved to numbers.
    fn defaults(max_length: usize) -> Self;

    /// The field holding the form, for a mechanism that has more than one.
    fn variant_mut(&mut self) -> Option<&mut Variant> {
        None
    }

    /// The form these settings compute, for a mechanism that has more than one.
    fn variant(&self) -> Option<Variant> {
        self.clone().variant_mut().copied()
    }

    /// These settings computing `variant` instead; `None` for a mechanism with one form.
    fn switched_to(mut self, variant: Variant) -> Option<Self> {
        *self.variant_mut()? = variant;
        Some(self)
    }

    /// These settings with every length-bound one (a block, window, chunk, k, ...) cut to
    /// `positions` where it is longer ([`fit`]): a block longer than the sequence computes
    /// what one block of the whole sequence does, at a higher cost.
    fn fitted_to(self, _positions: usize) -> Self {
        self
    }

    /// The settings for a tiny classifier of `positions` positions in tests: the defaults
    /// fitted to it, unless the mechanism needs others to run its parts at that size (a
    /// recurrence's segments, so that there is a memory).
    fn tiny(positions: usize) -> Self {
        Self::defaults(positions).fitted_to(positions)
    }

    /// These settings for sequences of `scale.to` positions instead of `scale.from`
    /// ([`MechanismSettings::scaled`] then fits them to the sequence).
    fn scaled(self, _scale: &Scale) -> Self {
        self
    }

    /// Refuses settings that cannot work on sequences of `positions` positions (CLS
    /// included), naming the setting and the length.
    fn check(&self, _positions: usize) -> Result<(), String> {
        Ok(())
    }

    /// Operations of one forward of the layer ([`super::flops`]).
    fn forward_flops(&self, shape: &LayerShape) -> f64;

    /// The layer, with `layer`'s sizes (its own settings are these).
    fn init(&self, layer: &AttentionConfig, device: &Device) -> Self::Layer;
}

/// `value` cut to a sequence of `positions` positions.
pub fn fit(value: usize, positions: usize) -> usize {
    value.min(positions.max(1))
}

/// A scaling of settings from sequences of `from` positions to `to`
/// ([`MechanismSettings::scaled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    pub from: usize,
    pub to: usize,
}

impl Scale {
    /// `value * to / from`, rounded.
    pub fn proportional(&self, value: usize) -> usize {
        ((value * self.to) as f64 / self.from.max(1) as f64).round() as usize
    }

    /// A length (a block, stride, window or chunk) scaled, at least [`MIN_SCALED_LENGTH`].
    pub fn length(&self, value: usize) -> usize {
        self.proportional(value).max(MIN_SCALED_LENGTH)
    }

    /// Slots that summarise the sequence (Luna's memory, Nyströmformer's landmarks)
    /// scaled, so that they stay the share of the sequence LRA gave them (256 slots over
    /// 1,000-4,000 tokens, not over 64): at least [`MIN_SCALED_SLOTS`] (or what they
    /// were, if fewer), never more than they were.
    pub fn slots(&self, value: usize) -> usize {
        self.proportional(value).clamp(MIN_SCALED_SLOTS.min(value), value)
    }
}

/// Refuses a count or length of 0, naming it.
pub fn at_least_one(name: &str, value: usize) -> Result<(), String> {
    match value {
        0 => Err(format!("{name} must be at least 1")),
        _ => Ok(()),
    }
}

/// Refuses a length of 0 or one longer than the sequence, naming both.
pub fn within(name: &str, value: usize, positions: usize) -> Result<(), String> {
    at_least_one(name, value)?;
    match value > positions {
        true => Err(format!("{name} {value} is longer than the sequence ({positions} positions)")),
        false => Ok(()),
    }
}

/// The shortest length [`MechanismSettings::scaled`] gives a block, stride, window or
/// chunk: below it a pattern degenerates to a handful of neighbours.
pub const MIN_SCALED_LENGTH: usize = 4;

/// The fewest slots [`MechanismSettings::scaled`] leaves Luna's memory or Nyströmformer's
/// landmarks: fewer summarise too little to compare with.
pub const MIN_SCALED_SLOTS: usize = 8;

/// Which form of a mechanism a layer computes, for the mechanisms whose paper and LRA's
/// released code compute different things ([`Mechanism::has_variants`]). Each mechanism file
/// names what its `lra` form does differently, the released code's quirks and plain bugs
/// included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// What LRA's released code (google-research/long-range-arena) computes: the numbers of
    /// LRA's Table 1 came from it.
    Lra,
    /// The paper's mechanism. Configurations written before variants existed meant it.
    #[default]
    Paper,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Lra, Variant::Paper];

    /// The name in configurations and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Lra => "lra",
            Variant::Paper => "paper",
        }
    }

    /// What a report writes after the model's name.
    pub fn label(self) -> &'static str {
        match self {
            Variant::Lra => "as LRA ran it",
            Variant::Paper => "as in the paper",
        }
    }

    pub fn parse(name: &str) -> Result<Variant, String> {
        Variant::ALL.into_iter().find(|v| v.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Variant::ALL.iter().map(|v| v.name()).collect();
            format!("unknown variant {name:?}: the variants are {}", names.join(", "))
        })
    }
}

impl std::str::FromStr for Variant {
    type Err = String;

    fn from_str(name: &str) -> Result<Variant, String> {
        Variant::parse(name)
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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

#[cfg(test)]
mod tests {
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
