//! Each mechanism's own settings, as a run's configuration holds them: every value that
//! changes what a mechanism computes (block, k, features, buckets, landmarks, ...), so
//! that none is a hidden default. The defaults themselves stay in each mechanism's file,
//! beside its paper; [`MechanismSettings::defaults`] reads them from there.

use serde::{Deserialize, Serialize};

use super::Mechanism;
use super::axial::AxialAttentionConfig;
use super::bigbird::BigBirdAttentionConfig;
use super::compressive::CompressiveConfig;
use super::linear::LinearAttentionConfig;
use super::linformer::LinformerConfig;
use super::local::LocalAttentionConfig;
use super::longformer::LongformerAttentionConfig;
use super::luna::LunaConfig;
use super::memory_compressed::MemoryCompressedConfig;
use super::nystromformer::NystromformerConfig;
use super::performer::{PerformerConfig, PerformerKernel};
use super::reformer::ReformerAttentionConfig;
use super::routing::RoutingAttentionConfig;
use super::s4d::{Discretization, S4dConfig, S4dInit};
use super::set_transformer::SetTransformerConfig;
use super::sinkhorn::SinkhornAttentionConfig;
use super::sparse::SparseAttentionConfig;
use super::synthesizer::{SynthesizerConfig, SynthesizerKind};
use super::transformer_xl::TransformerXlConfig;
use crate::funnel::FunnelConfig;
use crate::perceiver::PerceiverConfig;
use crate::switch::SwitchConfig;

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

/// A mechanism and its own settings. In a configuration file:
/// `"attention": {"local": {"block_size": 50}}`, or `"attention": "full"` for a
/// mechanism without settings. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MechanismSettings {
    Full,
    Local {
        #[serde(default)]
        variant: Variant,
        /// Positions per block.
        block_size: usize,
    },
    Sparse {
        #[serde(default)]
        variant: Variant,
        /// Stride l (the block length).
        stride: usize,
        /// Summary positions c at the end of each block (fixed heads).
        summary: usize,
    },
    Longformer {
        #[serde(default)]
        variant: Variant,
        /// Positions of the sliding window on each side.
        window: usize,
        /// Leading positions with global attention.
        global_tokens: usize,
    },
    #[serde(rename = "bigbird")]
    BigBird {
        #[serde(default)]
        variant: Variant,
        block_size: usize,
        /// Blocks of the sliding window (odd: the query's block in the middle).
        window_blocks: usize,
        /// Global blocks at the start of the sequence.
        global_blocks: usize,
        /// Random key blocks per query block.
        random_blocks: usize,
    },
    Axial {
        /// Positions per row.
        row_length: usize,
    },
    Reformer {
        #[serde(default)]
        variant: Variant,
        /// Positions per chunk.
        chunk_size: usize,
        hash_rounds: usize,
        buckets: usize,
    },
    Sinkhorn {
        #[serde(default)]
        variant: Variant,
        block_size: usize,
        sinkhorn_iterations: usize,
        temperature: f64,
    },
    Linformer {
        #[serde(default)]
        variant: Variant,
        /// `k`, the length keys and values are projected to.
        projected_length: usize,
    },
    Performer {
        #[serde(default)]
        variant: Variant,
        /// The kernel the features estimate.
        #[serde(default)]
        kernel: PerformerKernel,
        /// `m`, the number of random features.
        features: usize,
        /// Training steps between two redraws of the features.
        redraw_every: usize,
    },
    Linear {
        #[serde(default)]
        variant: Variant,
    },
    Nystromformer {
        landmarks: usize,
        pinv_iterations: usize,
    },
    Synthesizer {
        #[serde(default)]
        variant: Variant,
        /// What the logits are synthesised from.
        kind: SynthesizerKind,
        /// Rank of the factorised random logits.
        rank: usize,
    },
    Luna {
        /// `l`, the slots of the learned memory.
        memory_length: usize,
    },
    Fnet,
    S4d {
        state_size: usize,
        init: S4dInit,
        discretization: Discretization,
        dt_min: f64,
        dt_max: f64,
        bidirectional: bool,
    },
    MemoryCompressed {
        /// `c`, the kernel and stride of the convolutions over keys and values.
        compression: usize,
    },
    SetTransformer {
        /// `m`, the learned inducing points.
        inducing_points: usize,
    },
    TransformerXl {
        /// `s`, positions per segment (and in the cached memory).
        segment_length: usize,
    },
    Cosformer,
    Funnel {
        /// `r`, the window and stride of the mean pooling between stages.
        stride: usize,
        /// Blocks per stage; the sequence is pooled before every stage after the first.
        stage_layers: usize,
    },
    Perceiver {
        /// `m`, the latents.
        latents: usize,
    },
    Compressive {
        /// `s`, positions per segment (and in the cached memory).
        segment_length: usize,
        /// `c`, the kernel and stride of the compressing convolution.
        compression_rate: usize,
        /// Segments before the memory whose compressions a segment reads.
        compressed_segments: usize,
    },
    Switch {
        /// `E`, the experts of each feed-forward layer.
        experts: usize,
        /// The share of an even split of the batch's tokens each expert can take.
        capacity_factor: f64,
        /// `alpha`, the weight of the load-balancing loss.
        load_balance_weight: f64,
    },
    Routing {
        /// `k`, the clusters of each routing head.
        clusters: usize,
        /// `lambda`, the centroids' decay in their moving average.
        ema_decay: f64,
    },
}

impl MechanismSettings {
    /// The settings of `mechanism` for sequences of up to `max_length` positions (CLS
    /// included): each mechanism file's defaults, with the ones derived from the length
    /// resolved to numbers.
    pub fn defaults(mechanism: Mechanism, max_length: usize) -> MechanismSettings {
        // The sizes do not enter any default; these stand in for them.
        let (d, h, n) = (1, 1, max_length);
        match mechanism {
            Mechanism::Full => MechanismSettings::Full,
            Mechanism::Local => {
                let c = LocalAttentionConfig::new(d, h, n);
                MechanismSettings::Local { variant: c.variant, block_size: c.block_size }
            }
            Mechanism::Sparse => {
                let c = SparseAttentionConfig::new(d, h, n);
                let stride = c.resolved_stride();
                MechanismSettings::Sparse { variant: c.variant, stride, summary: c.summary.clamp(1, stride) }
            }
            Mechanism::Longformer => {
                let c = LongformerAttentionConfig::new(d, h, n);
                MechanismSettings::Longformer { variant: c.variant, window: c.window, global_tokens: c.global_tokens }
            }
            Mechanism::BigBird => {
                let c = BigBirdAttentionConfig::new(d, h, n);
                MechanismSettings::BigBird {
                    variant: c.variant,
                    block_size: c.block_size,
                    window_blocks: c.window_blocks,
                    global_blocks: c.global_blocks,
                    random_blocks: c.random_blocks,
                }
            }
            Mechanism::Axial => MechanismSettings::Axial { row_length: AxialAttentionConfig::new(d, h, n).resolved_row_length() },
            Mechanism::Reformer => {
                let c = ReformerAttentionConfig::new(d, h, n);
                MechanismSettings::Reformer {
                    variant: c.variant,
                    chunk_size: c.chunk_size,
                    hash_rounds: c.hash_rounds,
                    buckets: c.resolved_buckets(),
                }
            }
            Mechanism::Sinkhorn => {
                let c = SinkhornAttentionConfig::new(d, h, n);
                MechanismSettings::Sinkhorn {
                    variant: c.variant,
                    block_size: c.block_size,
                    sinkhorn_iterations: c.sinkhorn_iterations,
                    temperature: c.temperature,
                }
            }
            Mechanism::Linformer => {
                let c = LinformerConfig::new(d, h, n);
                MechanismSettings::Linformer { variant: c.variant, projected_length: c.projected_length }
            }
            Mechanism::Performer => {
                let c = PerformerConfig::new(d, h);
                MechanismSettings::Performer {
                    variant: c.variant,
                    kernel: c.kernel,
                    features: c.features,
                    redraw_every: c.redraw_every,
                }
            }
            Mechanism::Linear => MechanismSettings::Linear { variant: LinearAttentionConfig::new(d, h).variant },
            Mechanism::Nystromformer => {
                let c = NystromformerConfig::new(d, h, n);
                MechanismSettings::Nystromformer { landmarks: c.landmarks, pinv_iterations: c.pinv_iterations }
            }
            Mechanism::Synthesizer => {
                let c = SynthesizerConfig::new(d, h, n);
                MechanismSettings::Synthesizer { variant: c.variant, kind: c.kind, rank: c.rank }
            }
            Mechanism::Luna => MechanismSettings::Luna { memory_length: LunaConfig::new(d, h, n).memory_length },
            Mechanism::Fnet => MechanismSettings::Fnet,
            Mechanism::S4d => {
                let c = S4dConfig::new(d);
                MechanismSettings::S4d {
                    state_size: c.state_size,
                    init: c.init,
                    discretization: c.discretization,
                    dt_min: c.dt_min,
                    dt_max: c.dt_max,
                    bidirectional: c.bidirectional,
                }
            }
            Mechanism::MemoryCompressed => {
                MechanismSettings::MemoryCompressed { compression: MemoryCompressedConfig::new(d, h).compression }
            }
            Mechanism::SetTransformer => {
                MechanismSettings::SetTransformer { inducing_points: SetTransformerConfig::new(d, h).inducing_points }
            }
            Mechanism::TransformerXl => {
                MechanismSettings::TransformerXl { segment_length: TransformerXlConfig::new(d, h).segment_length }
            }
            Mechanism::Cosformer => MechanismSettings::Cosformer,
            Mechanism::Funnel => {
                let c = FunnelConfig::new();
                MechanismSettings::Funnel { stride: c.stride, stage_layers: c.stage_layers }
            }
            Mechanism::Perceiver => MechanismSettings::Perceiver { latents: PerceiverConfig::new().latents },
            Mechanism::Compressive => {
                let c = CompressiveConfig::new(TransformerXlConfig::new(d, h));
                MechanismSettings::Compressive {
                    segment_length: c.segments.segment_length,
                    compression_rate: c.compression_rate,
                    compressed_segments: c.compressed_segments,
                }
            }
            Mechanism::Switch => {
                let c = SwitchConfig::new(d, 1);
                MechanismSettings::Switch {
                    experts: c.experts,
                    capacity_factor: c.capacity_factor,
                    load_balance_weight: c.load_balance_weight,
                }
            }
            Mechanism::Routing => {
                let c = RoutingAttentionConfig::new(d, h, n);
                MechanismSettings::Routing { clusters: c.resolved_clusters(), ema_decay: c.ema_decay }
            }
        }
    }

    /// The form these settings compute, for a mechanism that has more than one.
    pub fn variant(&self) -> Option<Variant> {
        self.clone().variant_mut().copied()
    }

    /// The field holding the form, for a mechanism that has more than one.
    fn variant_mut(&mut self) -> Option<&mut Variant> {
        match self {
            MechanismSettings::Local { variant, .. }
            | MechanismSettings::Sparse { variant, .. }
            | MechanismSettings::Longformer { variant, .. }
            | MechanismSettings::BigBird { variant, .. }
            | MechanismSettings::Reformer { variant, .. }
            | MechanismSettings::Sinkhorn { variant, .. }
            | MechanismSettings::Linformer { variant, .. }
            | MechanismSettings::Performer { variant, .. }
            | MechanismSettings::Linear { variant }
            | MechanismSettings::Synthesizer { variant, .. } => Some(variant),
            _ => None,
        }
    }

    /// These settings computing `to` instead; refused for a mechanism with one form.
    pub fn with_variant(mut self, to: Variant) -> Result<MechanismSettings, String> {
        let mechanism = self.mechanism();
        let Some(variant) = self.variant_mut() else {
            return Err(format!(
                "{mechanism:?} has one form: variants ({}) are for the mechanisms whose paper and LRA's code differ",
                Variant::ALL.map(Variant::name).join(", ")
            ));
        };
        *variant = to;
        // LRA's softmax sort (no Sinkhorn iterations) has no paper form: the paper's
        // Sinkhorn takes its own defaults.
        if let MechanismSettings::Sinkhorn { variant: Variant::Paper, sinkhorn_iterations, temperature, .. } = &mut self
            && *sinkhorn_iterations == 0
        {
            let paper = SinkhornAttentionConfig::new(1, 1, 1);
            (*sinkhorn_iterations, *temperature) = (paper.sinkhorn_iterations, paper.temperature);
        }
        Ok(self)
    }

    /// Whether these settings compute LRA's form.
    fn is_lra(&self) -> bool {
        self.variant() == Some(Variant::Lra)
    }

    /// These settings with every length-bound one (a block, window, chunk, row, k, the
    /// landmarks or buckets) cut to `positions` where it is longer: a block longer than
    /// the sequence computes what one block of the whole sequence does, at a higher cost.
    /// LRA's Sinkhorn block becomes the nearest divisor of `positions` (its code needs one);
    /// LRA's Reformer, whose layout is a count of chunks, keeps its settings.
    pub fn fitted_to(self, positions: usize) -> MechanismSettings {
        let fit = |value: usize| value.min(positions.max(1));
        let lra = self.is_lra();
        match self {
            MechanismSettings::Local { variant, block_size } => MechanismSettings::Local { variant, block_size: fit(block_size) },
            MechanismSettings::Sparse { variant, stride, summary } => {
                MechanismSettings::Sparse { variant, stride: fit(stride), summary: summary.min(fit(stride)) }
            }
            MechanismSettings::Longformer { variant, window, global_tokens } => {
                MechanismSettings::Longformer { variant, window: fit(window), global_tokens: fit(global_tokens) }
            }
            MechanismSettings::BigBird { variant, block_size, window_blocks, global_blocks, random_blocks } => {
                let block_size = fit(block_size);
                let blocks = positions.max(1).div_ceil(block_size);
                MechanismSettings::BigBird {
                    variant,
                    block_size,
                    window_blocks,
                    global_blocks: global_blocks.min(blocks),
                    random_blocks,
                }
            }
            MechanismSettings::Axial { row_length } => MechanismSettings::Axial { row_length: fit(row_length) },
            MechanismSettings::Reformer { variant, chunk_size, hash_rounds, buckets } if !lra => {
                MechanismSettings::Reformer { variant, chunk_size: fit(chunk_size), hash_rounds, buckets: fit(buckets) }
            }
            MechanismSettings::Sinkhorn { variant, block_size, sinkhorn_iterations, temperature } => {
                let block_size = match lra {
                    true => nearest_divisor(positions.max(1), block_size),
                    false => fit(block_size),
                };
                MechanismSettings::Sinkhorn { variant, block_size, sinkhorn_iterations, temperature }
            }
            MechanismSettings::Linformer { variant, projected_length } => {
                MechanismSettings::Linformer { variant, projected_length: fit(projected_length) }
            }
            MechanismSettings::Nystromformer { landmarks, pinv_iterations } => {
                MechanismSettings::Nystromformer { landmarks: fit(landmarks), pinv_iterations }
            }
            MechanismSettings::MemoryCompressed { compression } => {
                MechanismSettings::MemoryCompressed { compression: fit(compression) }
            }
            MechanismSettings::TransformerXl { segment_length } => {
                MechanismSettings::TransformerXl { segment_length: fit(segment_length) }
            }
            MechanismSettings::Funnel { stride, stage_layers } => MechanismSettings::Funnel { stride: fit(stride), stage_layers },
            MechanismSettings::Compressive { segment_length, compression_rate, compressed_segments } => {
                compressive_settings(fit(segment_length), compression_rate, compressed_segments)
            }
            MechanismSettings::Routing { clusters, ema_decay } => {
                MechanismSettings::Routing { clusters: fit(clusters), ema_decay }
            }
            other => other,
        }
    }

    /// These settings for sequences of `to` positions instead of `from`: every setting
    /// that is a length (a block, stride, window, chunk or summary) scaled by `to / from`,
    /// at least [`MIN_SCALED_LENGTH`] (a summary at least 1); the slots that summarise the
    /// sequence (Luna's memory, Nyströmformer's landmarks) scaled likewise, at least
    /// [`MIN_SCALED_SLOTS`], so that they stay the share of the sequence LRA gave them
    /// (256 slots over 1,000-4,000 tokens, not over 64); other counts (k, features,
    /// buckets, rounds) unchanged; the axial row length derived from
    /// the new length; LRA's Reformer unchanged (its chunks are a count, its chunk size
    /// the unit it pads to). Then cut to the sequence ([`MechanismSettings::fitted_to`]).
    pub fn scaled(self, from: usize, to: usize) -> MechanismSettings {
        let proportional = |value: usize| ((value * to) as f64 / from.max(1) as f64).round() as usize;
        let scale = |value: usize| proportional(value).max(MIN_SCALED_LENGTH);
        let slots = |value: usize| proportional(value).clamp(MIN_SCALED_SLOTS.min(value), value);
        let lra = self.is_lra();
        let scaled = match self {
            MechanismSettings::Local { variant, block_size } => {
                MechanismSettings::Local { variant, block_size: scale(block_size) }
            }
            MechanismSettings::Sparse { variant, stride, summary } => {
                MechanismSettings::Sparse { variant, stride: scale(stride), summary: proportional(summary).max(1) }
            }
            MechanismSettings::Longformer { variant, window, global_tokens } => {
                MechanismSettings::Longformer { variant, window: scale(window), global_tokens }
            }
            MechanismSettings::BigBird { variant, block_size, window_blocks, global_blocks, random_blocks } => {
                MechanismSettings::BigBird { variant, block_size: scale(block_size), window_blocks, global_blocks, random_blocks }
            }
            MechanismSettings::Axial { .. } => MechanismSettings::defaults(Mechanism::Axial, to),
            MechanismSettings::Reformer { variant, chunk_size, hash_rounds, buckets } if !lra => {
                MechanismSettings::Reformer { variant, chunk_size: scale(chunk_size), hash_rounds, buckets }
            }
            MechanismSettings::Sinkhorn { variant, block_size, sinkhorn_iterations, temperature } => {
                MechanismSettings::Sinkhorn { variant, block_size: scale(block_size), sinkhorn_iterations, temperature }
            }
            MechanismSettings::Luna { memory_length } => MechanismSettings::Luna { memory_length: slots(memory_length) },
            MechanismSettings::Nystromformer { landmarks, pinv_iterations } => {
                MechanismSettings::Nystromformer { landmarks: slots(landmarks), pinv_iterations }
            }
            MechanismSettings::SetTransformer { inducing_points } => {
                MechanismSettings::SetTransformer { inducing_points: slots(inducing_points) }
            }
            MechanismSettings::TransformerXl { segment_length } => {
                MechanismSettings::TransformerXl { segment_length: scale(segment_length) }
            }
            MechanismSettings::Perceiver { latents } => MechanismSettings::Perceiver { latents: slots(latents) },
            MechanismSettings::Compressive { segment_length, compression_rate, compressed_segments } => {
                compressive_settings(scale(segment_length), compression_rate, compressed_segments)
            }
            // The paper's sqrt(n) clusters, of the new length.
            MechanismSettings::Routing { ema_decay, .. } => {
                MechanismSettings::Routing { clusters: RoutingAttentionConfig::new(1, 1, to).resolved_clusters(), ema_decay }
            }
            other => other,
        };
        scaled.fitted_to(to)
    }

    /// The mechanism these settings are for.
    pub fn mechanism(&self) -> Mechanism {
        match self {
            MechanismSettings::Full => Mechanism::Full,
            MechanismSettings::Local { .. } => Mechanism::Local,
            MechanismSettings::Sparse { .. } => Mechanism::Sparse,
            MechanismSettings::Longformer { .. } => Mechanism::Longformer,
            MechanismSettings::BigBird { .. } => Mechanism::BigBird,
            MechanismSettings::Axial { .. } => Mechanism::Axial,
            MechanismSettings::Reformer { .. } => Mechanism::Reformer,
            MechanismSettings::Sinkhorn { .. } => Mechanism::Sinkhorn,
            MechanismSettings::Linformer { .. } => Mechanism::Linformer,
            MechanismSettings::Performer { .. } => Mechanism::Performer,
            MechanismSettings::Linear { .. } => Mechanism::Linear,
            MechanismSettings::Nystromformer { .. } => Mechanism::Nystromformer,
            MechanismSettings::Synthesizer { .. } => Mechanism::Synthesizer,
            MechanismSettings::Luna { .. } => Mechanism::Luna,
            MechanismSettings::Fnet => Mechanism::Fnet,
            MechanismSettings::S4d { .. } => Mechanism::S4d,
            MechanismSettings::MemoryCompressed { .. } => Mechanism::MemoryCompressed,
            MechanismSettings::SetTransformer { .. } => Mechanism::SetTransformer,
            MechanismSettings::TransformerXl { .. } => Mechanism::TransformerXl,
            MechanismSettings::Cosformer => Mechanism::Cosformer,
            MechanismSettings::Funnel { .. } => Mechanism::Funnel,
            MechanismSettings::Perceiver { .. } => Mechanism::Perceiver,
            MechanismSettings::Compressive { .. } => Mechanism::Compressive,
            MechanismSettings::Switch { .. } => Mechanism::Switch,
            MechanismSettings::Routing { .. } => Mechanism::Routing,
        }
    }

    /// Refuses settings that cannot work on sequences of `positions` positions (CLS
    /// included), naming the setting and the length.
    pub fn check(&self, positions: usize) -> Result<(), String> {
        let at_least_one = |name: &str, value: usize| match value {
            0 => Err(format!("{name} must be at least 1")),
            _ => Ok(()),
        };
        let within = |name: &str, value: usize| {
            at_least_one(name, value)?;
            match value > positions {
                true => Err(format!("{name} {value} is longer than the sequence ({positions} positions)")),
                false => Ok(()),
            }
        };
        let lra = self.is_lra();
        match *self {
            MechanismSettings::Full
            | MechanismSettings::Linear { .. }
            | MechanismSettings::Fnet
            | MechanismSettings::Cosformer => Ok(()),
            MechanismSettings::Local { block_size, .. } => within("block_size", block_size),
            MechanismSettings::Sparse { stride, summary, .. } => {
                within("stride", stride)?;
                at_least_one("summary", summary)?;
                match summary > stride {
                    true => Err(format!("summary {summary} is more than the stride {stride}")),
                    false => Ok(()),
                }
            }
            MechanismSettings::Longformer { window, global_tokens, .. } => {
                within("window", window)?;
                match global_tokens > positions {
                    true => Err(format!("global_tokens {global_tokens} is more than the sequence ({positions} positions)")),
                    false => Ok(()),
                }
            }
            MechanismSettings::BigBird { block_size, window_blocks, global_blocks, random_blocks, .. } if lra => {
                at_least_one("block_size", block_size)?;
                if (window_blocks, global_blocks) != (3, 1) {
                    return Err(format!(
                        "LRA's BigBird has a window of 3 blocks and one global block at each end (window_blocks 3, \
                         global_blocks 1), not {window_blocks} and {global_blocks}"
                    ));
                }
                match super::bigbird::lra_refusal(positions, block_size, random_blocks) {
                    Some(why) => Err(why),
                    None => Ok(()),
                }
            }
            MechanismSettings::BigBird { block_size, window_blocks, global_blocks, .. } => {
                within("block_size", block_size)?;
                if window_blocks % 2 == 0 {
                    return Err(format!("window_blocks must be odd (the query's block in the middle), not {window_blocks}"));
                }
                let blocks = positions.div_ceil(block_size);
                match global_blocks > blocks {
                    true => Err(format!(
                        "global_blocks {global_blocks} is more than the {blocks} blocks of {block_size} in {positions} positions"
                    )),
                    false => Ok(()),
                }
            }
            MechanismSettings::Axial { row_length } => within("row_length", row_length),
            MechanismSettings::Reformer { chunk_size, hash_rounds, buckets, .. } if lra => {
                at_least_one("chunk_size", chunk_size)?;
                at_least_one("hash_rounds", hash_rounds)?;
                if buckets < 2 || buckets % 2 == 1 {
                    return Err(format!("buckets must be even and at least 2, not {buckets}"));
                }
                // LRA's code pads to a multiple of chunk_size (always adding at least one
                // position), then cuts that into rounds x buckets chunks.
                let padded = super::blocks::lra_filled(positions, chunk_size);
                match padded % (hash_rounds * buckets) {
                    0 => Ok(()),
                    _ => Err(format!(
                        "LRA's Reformer pads the {positions} positions to {padded} (a multiple of chunk_size {chunk_size}) \
                         and cuts them into hash_rounds x buckets = {} chunks, which do not divide {padded}",
                        hash_rounds * buckets
                    )),
                }
            }
            MechanismSettings::Reformer { chunk_size, hash_rounds, buckets, .. } => {
                within("chunk_size", chunk_size)?;
                at_least_one("hash_rounds", hash_rounds)?;
                within("buckets", buckets)
            }
            MechanismSettings::Sinkhorn { block_size, sinkhorn_iterations, temperature, .. } => {
                within("block_size", block_size)?;
                if !lra && sinkhorn_iterations == 0 {
                    return Err("the paper's Sinkhorn normalises at least once: sinkhorn_iterations must be at least 1 \
                                (no iterations, a softmax sort, is LRA's: variant lra)"
                        .into());
                }
                if lra && !positions.is_multiple_of(block_size) {
                    return Err(format!(
                        "LRA's Sinkhorn reshapes the sequence into blocks without padding it: block_size {block_size} \
                         must divide the {positions} positions (LRA's own code fails the same way here)"
                    ));
                }
                match temperature > 0.0 {
                    true => Ok(()),
                    false => Err(format!("temperature must be positive, not {temperature}")),
                }
            }
            MechanismSettings::Linformer { projected_length, .. } => within("projected_length (k)", projected_length),
            MechanismSettings::Performer { features, redraw_every, .. } => {
                at_least_one("features", features)?;
                at_least_one("redraw_every", redraw_every)
            }
            MechanismSettings::Nystromformer { landmarks, pinv_iterations } => {
                within("landmarks", landmarks)?;
                at_least_one("pinv_iterations", pinv_iterations)
            }
            MechanismSettings::Synthesizer { kind, rank, .. } => {
                if lra && kind == SynthesizerKind::Dense {
                    return Err("LRA's dense Synthesizer (never run by its configurations) reshapes where it should \
                                transpose; its lra variant has the random and factorized_random kinds only"
                        .into());
                }
                at_least_one("rank", rank)
            }
            MechanismSettings::Luna { memory_length } => at_least_one("memory_length", memory_length),
            MechanismSettings::MemoryCompressed { compression } => within("compression", compression),
            MechanismSettings::SetTransformer { inducing_points } => at_least_one("inducing_points", inducing_points),
            MechanismSettings::TransformerXl { segment_length } => within("segment_length", segment_length),
            MechanismSettings::Funnel { stride, stage_layers } => {
                within("stride", stride)?;
                at_least_one("stage_layers", stage_layers)
            }
            MechanismSettings::Perceiver { latents } => at_least_one("latents", latents),
            MechanismSettings::Compressive { segment_length, compression_rate, .. } => {
                within("segment_length", segment_length)?;
                at_least_one("compression_rate", compression_rate)?;
                match compression_rate > segment_length {
                    true => Err(format!(
                        "compression_rate {compression_rate} is more than the segment_length {segment_length} it compresses"
                    )),
                    false => Ok(()),
                }
            }
            MechanismSettings::Switch { experts, capacity_factor, load_balance_weight } => {
                at_least_one("experts", experts)?;
                if !(capacity_factor > 0.0 && capacity_factor.is_finite()) {
                    return Err(format!(
                        "capacity_factor must be positive, not {capacity_factor}: with no capacity every token is dropped"
                    ));
                }
                match load_balance_weight >= 0.0 && load_balance_weight.is_finite() {
                    true => Ok(()),
                    false => Err(format!("load_balance_weight must be zero or more, not {load_balance_weight}")),
                }
            }
            MechanismSettings::Routing { clusters, ema_decay } => {
                at_least_one("clusters", clusters)?;
                if clusters > positions {
                    return Err(format!("clusters {clusters} is more than the {positions} tokens of the sequence"));
                }
                match (0.0..1.0).contains(&ema_decay) {
                    true => Ok(()),
                    false => Err(format!("ema_decay must be at least 0 and below 1, not {ema_decay}")),
                }
            }
            MechanismSettings::S4d { state_size, dt_min, dt_max, .. } => {
                if state_size < 2 || state_size % 2 == 1 {
                    return Err(format!("state_size must be even and at least 2, not {state_size}"));
                }
                match 0.0 < dt_min && dt_min < dt_max {
                    true => Ok(()),
                    false => Err(format!("dt_min ({dt_min}) and dt_max ({dt_max}) must satisfy 0 < dt_min < dt_max")),
                }
            }
        }
    }
}

/// The Compressive Transformer's settings for segments of `segment_length`: a rate no
/// more than the segment it compresses.
fn compressive_settings(segment_length: usize, compression_rate: usize, compressed_segments: usize) -> MechanismSettings {
    MechanismSettings::Compressive { segment_length, compression_rate: compression_rate.min(segment_length), compressed_segments }
}

/// The divisor of `n` nearest to `wanted` (the smaller on a tie).
fn nearest_divisor(n: usize, wanted: usize) -> usize {
    (1..=n).filter(|d| n.is_multiple_of(*d)).min_by_key(|&d| (d.abs_diff(wanted), d)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MODELS;

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
            MechanismSettings::Sparse { variant: Variant::Paper, stride: 33, summary: 8 }
        );
        assert_eq!(MechanismSettings::defaults(Mechanism::Axial, 1025), MechanismSettings::Axial { row_length: 32 });
        // 1025 positions in chunks of 32: 33 chunks, rounded up to 34 buckets.
        let MechanismSettings::Reformer { variant: Variant::Paper, buckets, .. } =
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
            MechanismSettings::Linformer { variant: Variant::Paper, projected_length: 256 }.fitted_to(65),
            MechanismSettings::Linformer { variant: Variant::Paper, projected_length: 65 }
        );
    }

    #[test]
    fn scaling_shrinks_lengths_keeps_counts_and_fits_the_sequence() {
        let local = MechanismSettings::Local { variant: Variant::Paper, block_size: 64 }.scaled(1024, 256);
        assert_eq!(local, MechanismSettings::Local { variant: Variant::Paper, block_size: 16 });
        assert_eq!(
            MechanismSettings::Local { variant: Variant::Paper, block_size: 50 }.scaled(2001, 65),
            MechanismSettings::Local { variant: Variant::Paper, block_size: 4 }
        );
        let reformer = MechanismSettings::Reformer { variant: Variant::Paper, chunk_size: 201, hash_rounds: 1, buckets: 10 }
            .scaled(2001, 65);
        assert_eq!(reformer, MechanismSettings::Reformer { variant: Variant::Paper, chunk_size: 7, hash_rounds: 1, buckets: 10 });
        let linformer = MechanismSettings::Linformer { variant: Variant::Paper, projected_length: 16 };
        assert_eq!(linformer.clone().scaled(1024, 256), linformer);
        assert_eq!(MechanismSettings::Axial { row_length: 32 }.scaled(1024, 256), MechanismSettings::Axial { row_length: 16 });
        // Summary slots keep their share of the sequence, but never fewer than 8 (or than
        // they were) and never more than they were.
        assert_eq!(
            MechanismSettings::Luna { memory_length: 256 }.scaled(4001, 257),
            MechanismSettings::Luna { memory_length: 16 }
        );
        assert_eq!(MechanismSettings::Luna { memory_length: 256 }.scaled(2001, 65), MechanismSettings::Luna { memory_length: 8 });
        assert_eq!(MechanismSettings::Luna { memory_length: 4 }.scaled(2001, 65), MechanismSettings::Luna { memory_length: 4 });
        assert_eq!(MechanismSettings::Luna { memory_length: 16 }.scaled(65, 257), MechanismSettings::Luna { memory_length: 16 });
        assert_eq!(
            MechanismSettings::Nystromformer { landmarks: 128, pinv_iterations: 6 }.scaled(1025, 257),
            MechanismSettings::Nystromformer { landmarks: 32, pinv_iterations: 6 }
        );
    }

    #[test]
    fn settings_that_cannot_work_with_the_length_are_refused_naming_both() {
        let err = MechanismSettings::Local { variant: Variant::Paper, block_size: 64 }.check(33).unwrap_err();
        assert!(err.contains("block_size 64") && err.contains("33 positions"), "{err}");
        let err = MechanismSettings::Linformer { variant: Variant::Paper, projected_length: 256 }.check(65).unwrap_err();
        assert!(err.contains("projected_length (k) 256") && err.contains("65 positions"), "{err}");
        let bigbird = MechanismSettings::BigBird {
            variant: Variant::Paper,
            block_size: 8,
            window_blocks: 2,
            global_blocks: 1,
            random_blocks: 1,
        };
        assert!(bigbird.check(64).unwrap_err().contains("window_blocks must be odd"));
        assert!(
            MechanismSettings::Sparse { variant: Variant::Paper, stride: 8, summary: 9 }
                .check(64)
                .unwrap_err()
                .contains("summary 9")
        );
        let err = MechanismSettings::TransformerXl { segment_length: 300 }.check(257).unwrap_err();
        assert!(err.contains("segment_length 300") && err.contains("257 positions"), "{err}");
        let err = MechanismSettings::MemoryCompressed { compression: 5 }.check(4).unwrap_err();
        assert!(err.contains("compression 5") && err.contains("4 positions"), "{err}");
        assert!(MechanismSettings::MemoryCompressed { compression: 0 }.check(64).unwrap_err().contains("compression must be"));
        assert!(MechanismSettings::Funnel { stride: 0, stage_layers: 1 }.check(64).unwrap_err().contains("stride must be"));
        assert!(MechanismSettings::Funnel { stride: 2, stage_layers: 0 }.check(64).unwrap_err().contains("stage_layers must be"));
        assert!(MechanismSettings::Perceiver { latents: 0 }.check(64).unwrap_err().contains("latents must be"));
        assert!(
            MechanismSettings::SetTransformer { inducing_points: 0 }.check(64).unwrap_err().contains("inducing_points must be")
        );
        // Lengths no segment, window or stride divides are filled up with masked
        // positions, not refused: LRA's lengths with their CLS vector (1001, 2001, 4097)
        // have few divisors.
        assert_eq!(MechanismSettings::TransformerXl { segment_length: 256 }.check(1001), Ok(()));
        assert_eq!(MechanismSettings::MemoryCompressed { compression: 3 }.check(1001), Ok(()));
        let switch = |capacity_factor| MechanismSettings::Switch { experts: 4, capacity_factor, load_balance_weight: 0.01 };
        assert!(switch(0.0).check(64).unwrap_err().contains("capacity_factor must be positive, not 0"));
        let compressive = MechanismSettings::Compressive { segment_length: 4, compression_rate: 5, compressed_segments: 2 }
            .check(64)
            .unwrap_err();
        assert!(compressive.contains("compression_rate 5") && compressive.contains("segment_length 4"), "{compressive}");
        let routing = MechanismSettings::Routing { clusters: 70, ema_decay: 0.999 }.check(65).unwrap_err();
        assert!(routing.contains("clusters 70") && routing.contains("65 tokens"), "{routing}");
    }

    #[test]
    fn switching_variants_keeps_the_settings_but_lras_sort_which_has_no_paper_form() {
        let lra = MechanismSettings::Sinkhorn { variant: Variant::Lra, block_size: 50, sinkhorn_iterations: 0, temperature: 1.0 };
        assert_eq!(lra.check(2000), Ok(()));
        let paper = lra.clone().with_variant(Variant::Paper).unwrap();
        let defaults = MechanismSettings::defaults(Mechanism::Sinkhorn, 2000);
        let MechanismSettings::Sinkhorn { sinkhorn_iterations, temperature, .. } = defaults else { panic!("not Sinkhorn's") };
        assert_eq!(
            paper,
            MechanismSettings::Sinkhorn { variant: Variant::Paper, block_size: 50, sinkhorn_iterations, temperature }
        );
        assert!(lra.with_variant(Variant::Paper).unwrap().check(2000).is_ok());
        let refused =
            MechanismSettings::Sinkhorn { variant: Variant::Paper, block_size: 50, sinkhorn_iterations: 0, temperature: 1.0 };
        assert!(refused.check(2000).unwrap_err().contains("at least once"));
        let local = MechanismSettings::Local { variant: Variant::Lra, block_size: 50 };
        assert_eq!(local.with_variant(Variant::Paper), Ok(MechanismSettings::Local { variant: Variant::Paper, block_size: 50 }));
        assert!(MechanismSettings::Full.with_variant(Variant::Lra).unwrap_err().contains("one form"));
        assert_eq!(Variant::parse("paper"), Ok(Variant::Paper));
        assert!(Variant::parse("LRA").unwrap_err().contains("lra, paper"));
    }

    #[test]
    fn settings_read_from_json_refuse_unknown_fields_by_name() {
        let parsed: MechanismSettings = serde_json::from_str(r#"{"local": {"block_size": 50}}"#).unwrap();
        assert_eq!(parsed, MechanismSettings::Local { variant: Variant::Paper, block_size: 50 });
        let err = serde_json::from_str::<MechanismSettings>(r#"{"local": {"block_sise": 50}}"#).unwrap_err().to_string();
        assert!(err.contains("block_sise"), "{err}");
        assert_eq!(serde_json::from_str::<MechanismSettings>(r#""full""#).unwrap(), MechanismSettings::Full);
    }
}
