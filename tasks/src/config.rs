//! The configuration of a run's task, model sizes and training ([`TaskConfig`] and its
//! parts); kept out of `lib.rs` so that the presets, which build it, import no item of the
//! crate root. [`TaskConfig::resolve`] is with the presets.

use serde::{Deserialize, Serialize};

use lra_datasets::{DataError, Splits};

use crate::data::DataConfig;
#[cfg(test)]
use crate::downsample::Reduce;
use crate::downsample::{Downsample, square_side};
use crate::padding::PAD_TOKEN;
use crate::schedule::Schedule;
use crate::task::{Preset, Task};

/// How the encoder's outputs become one vector per sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// A learned vector prepended to the sequence; its output is the summary.
    Cls,
    /// The mean over real (non-padding) tokens.
    Mean,
}

/// How token positions are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Positions {
    Sinusoidal,
    Learned,
    /// No positions: the encoder sees which tokens there are, not where (the control
    /// model, `bag`).
    None,
}

/// Sizes of the encoder classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub d_model: usize,
    /// Width of queries, keys and values, split among the heads (LRA's `qkv_dim`).
    pub qkv_dim: usize,
    pub heads: usize,
    pub layers: usize,
    /// Hidden size of each block's feed-forward layer.
    pub d_ff: usize,
    /// Hidden size of the classifier head (pool -> Dense -> ReLU -> Dense).
    pub d_head_mlp: usize,
    pub pooling: Pooling,
    pub positions: Positions,
    pub dropout: f64,
    pub attention_dropout: f64,
}

/// The optimiser and its schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    pub batch_size: usize,
    pub steps: usize,
    pub schedule: Schedule,
    pub weight_decay: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
    /// Clip the gradients' global L2 norm to this value; none when absent.
    pub gradient_clip_norm: Option<f64>,
    /// Evaluate on the validation split every this many steps (and after the last).
    pub eval_every: usize,
    /// Steps at the start not counted in throughput (compilation, caches, allocator).
    pub warmup_steps_untimed: usize,
    /// Log a metrics row every this many steps.
    pub log_every: usize,
    /// Recompute the cheap (memory-bound) operations in the backward instead of keeping
    /// their outputs (burn's balanced gradient checkpointing). Off in every preset: with
    /// the fused attention softmax it saves 4-10% of the peak on the step benchmark, at
    /// about the same speed. Absent from records where off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gradient_checkpointing: bool,
    /// Batch size of evaluation (validation and test); the training batch when absent, as
    /// in LRA. The CPU presets evaluate at four times the training batch: without
    /// gradients the memory is a fraction of a training step's, and fewer, larger batches
    /// cut a quick run's time by about a tenth. The accuracy is the same up to rounding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_batch_size: Option<usize>,
}

impl TrainingConfig {
    /// Batch size of evaluation.
    pub fn eval_batch(&self) -> usize {
        self.eval_batch_size.unwrap_or(self.batch_size)
    }
}

/// Everything a task and preset decide about a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    pub name: Task,
    pub preset: Preset,
    /// Sequences are padded or cut to this many tokens.
    pub max_length: usize,
    pub vocab_size: usize,
    pub classes: usize,
    pub data: DataConfig,
    /// Pixels of value 0 (token 1) are padding, as in LRA's released code, whose encoders
    /// mask `inputs == 0`: attention and mean pooling see only the lit pixels.
    #[serde(default)]
    pub pixel_zero_is_padding: bool,
    /// Images shrunk before training (the `quick` preset's image tasks); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downsample: Option<Downsample>,
    pub model: ModelConfig,
    pub training: TrainingConfig,
}

impl TaskConfig {
    /// A configuration with the task's own vocabulary and classes, images unshrunk.
    pub(crate) fn new(
        task: Task,
        preset: Preset,
        max_length: usize,
        data: DataConfig,
        model: ModelConfig,
        training: TrainingConfig,
    ) -> Self {
        TaskConfig {
            name: task,
            preset,
            max_length,
            vocab_size: task.vocab_size(),
            classes: task.classes(),
            data,
            pixel_zero_is_padding: false,
            downsample: None,
            model,
            training,
        }
    }

    /// This image task with its square images (of `max_length` pixels) shrunk by `factor`
    /// in each direction, and `max_length` to match (no preset shrinks images today; a
    /// configuration file may, through `downsample`).
    #[cfg(test)]
    pub(crate) fn downsampled(mut self, factor: usize, reduce: Reduce) -> Self {
        let side = square_side(self.max_length);
        self.downsample = Some(Downsample { side, factor, reduce });
        self.max_length = (side / factor).pow(2);
        self
    }

    /// This image task with pixels of value 0 as padding (LRA's released code).
    pub(crate) fn with_pixel_zero_as_padding(mut self) -> Self {
        self.pixel_zero_is_padding = true;
        self
    }

    /// The task's splits, through the prepared-data cache, shrunk when `downsample` says so
    /// and with black pixels as padding when `pixel_zero_is_padding` says so; also whether
    /// they came from the cache.
    pub fn prepare_reporting(&self, data_dir: &std::path::Path) -> Result<(Splits, bool), DataError> {
        let (mut splits, cached) = self.prepare_images(data_dir)?;
        if self.pixel_zero_is_padding {
            // Pixel tokens are value + 1: a black pixel is token 1, and becomes padding (0).
            for example in splits.train.iter_mut().chain(&mut splits.validation).chain(&mut splits.test) {
                example.tokens.iter_mut().filter(|token| **token == 1).for_each(|token| *token = PAD_TOKEN);
            }
        }
        Ok((splits, cached))
    }

    /// The splits, shrunk when `downsample` says so.
    fn prepare_images(&self, data_dir: &std::path::Path) -> Result<(Splits, bool), DataError> {
        self.check_images()?;
        let Some(downsample) = &self.downsample else {
            return self.data.prepare_reporting(self.max_length, data_dir);
        };
        let (mut splits, cached) = self.data.prepare_reporting(downsample.side * downsample.side, data_dir)?;
        for example in splits.train.iter_mut().chain(&mut splits.validation).chain(&mut splits.test) {
            if example.tokens.len() != downsample.side * downsample.side {
                return Err(DataError::new(format!(
                    "downsample: an image has {} pixels, not {} x {}",
                    example.tokens.len(),
                    downsample.side,
                    downsample.side
                )));
            }
            example.tokens = downsample.apply(&example.tokens);
        }
        Ok((splits, cached))
    }

    /// Checks that the data is the task's and that the model sees whole images:
    /// `max_length` is the pixels of an image, or of the image shrunk by `downsample` (a
    /// configuration file may hold anything; cutting would silently train on the first
    /// rows).
    pub fn check_images(&self) -> Result<(), DataError> {
        self.data.check()?;
        self.data.check_documents(self.max_length)?;
        if !self.data.serves(self.name) {
            return Err(DataError::new(format!(
                "data: a {} source does not hold {} examples",
                self.data.source_label(),
                self.name.name()
            )));
        }
        let Some(pixels) = self.data.pixels() else { return Ok(()) };
        let seen = match &self.downsample {
            None => pixels,
            Some(d) => {
                // The factor is checked before it divides: a configuration file may hold 0.
                let small = d.side.checked_div(d.factor).unwrap_or(0);
                if small == 0 || small * d.factor != d.side || d.side.checked_mul(d.side) != Some(pixels) {
                    return Err(DataError::new(format!(
                        "downsample: side {} must be a multiple of factor {}, and side^2 the data's {pixels} pixels",
                        d.side, d.factor
                    )));
                }
                small * small
            }
        };
        if self.max_length != seen {
            return Err(DataError::new(format!(
                "max_length {} does not match the {seen} pixels the model sees (images of {pixels} pixels{})",
                self.max_length,
                if self.downsample.is_some() { ", shrunk" } else { "" }
            )));
        }
        Ok(())
    }

    /// As [`TaskConfig::prepare_reporting`], without saying where the splits came from.
    pub fn prepare(&self, data_dir: &std::path::Path) -> Result<Splits, DataError> {
        self.prepare_reporting(data_dir).map(|(splits, _)| splits)
    }

    /// The side of the images the model sees, for image tasks.
    pub fn image_side(&self) -> Option<usize> {
        match self.name {
            Task::Image | Task::Pathfinder | Task::Pathx => Some(square_side(self.max_length)),
            _ => None,
        }
    }

    /// Positions the encoder sees: the tokens, and the CLS vector when it pools by CLS.
    pub fn positions(&self) -> usize {
        self.max_length + usize::from(self.model.pooling == Pooling::Cls)
    }
}
