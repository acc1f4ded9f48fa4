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
use super::layer::{AttentionLayer, LayerSizes};

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
    /// ([`MechanismSettings::scaled`](super::MechanismSettings::scaled) then fits them to
    /// the sequence).
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
    fn init(&self, layer: &LayerSizes, device: &Device) -> Self::Layer;
}

/// `value` cut to a sequence of `positions` positions.
pub fn fit(value: usize, positions: usize) -> usize {
    value.min(positions.max(1))
}

/// A scaling of settings from sequences of `from` positions to `to`
/// ([`MechanismSettings::scaled`](super::MechanismSettings::scaled)).
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

/// A problem with a mechanism's settings, placed: `problem (sequences of N positions)`.
pub fn in_sequences_of(positions: usize) -> impl Fn(String) -> String + Copy {
    move |problem| format!("{problem} (sequences of {positions} positions)")
}

/// Refuses a length of 0 or one longer than the sequence, naming both.
pub fn within(name: &str, value: usize, positions: usize) -> Result<(), String> {
    at_least_one(name, value)?;
    match value > positions {
        true => Err(format!("{name} {value} is longer than the sequence ({positions} positions)")),
        false => Ok(()),
    }
}

/// The shortest length [`MechanismSettings::scaled`](super::MechanismSettings::scaled)
/// gives a block, stride, window or chunk: below it a pattern degenerates to a handful of
/// neighbours.
pub const MIN_SCALED_LENGTH: usize = 4;

/// The fewest slots [`MechanismSettings::scaled`](super::MechanismSettings::scaled) leaves
/// Luna's memory or Nyströmformer's landmarks: fewer summarise too little to compare with.
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
