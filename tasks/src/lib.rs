//! What each Long Range Arena task is: where its data comes from, its sequence length,
//! vocabulary and classes, and the hyperparameters of each preset.
//!
//! A [`TaskConfig`] is everything about a run that is not the model's code: it is
//! resolved once from (task, preset), may be overridden by a configuration file, and is
//! saved beside the results so the run can be repeated from it.

use serde::{Deserialize, Serialize};

use lra_datasets::{DataError, Splits, bytes, cifar, listops};

mod data;
mod schedule;
pub use data::{DataConfig, GENERATED, Limits, PIXEL_VOCAB, PathfinderDifficulty, RELEASED, STAND_IN, released_path};
pub use schedule::Schedule;

/// The tasks of the benchmark that this harness prepares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Listops,
    Text,
    Retrieval,
    Image,
    Pathfinder,
    Pathx,
}

impl Task {
    pub const ALL: [Task; 6] = [Task::Listops, Task::Text, Task::Retrieval, Task::Image, Task::Pathfinder, Task::Pathx];

    pub fn name(self) -> &'static str {
        match self {
            Task::Listops => "listops",
            Task::Text => "text",
            Task::Retrieval => "retrieval",
            Task::Image => "image",
            Task::Pathfinder => "pathfinder",
            Task::Pathx => "pathx",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Task::Listops => "value of a nested MIN/MAX/MED/SM expression; generated, or the released TSVs",
            Task::Text => "IMDb sentiment from bytes; the aclImdb folders, or a synthetic stand-in",
            Task::Retrieval => "do two papers cite each other (AAN), from bytes; the released TSVs, or a stand-in",
            Task::Image => "CIFAR-10 class from grayscale pixels; the binary batches, or a stand-in of drawn shapes",
            Task::Pathfinder => "are the two dots joined by one dashed contour (32x32 pixels); generated, or the released images",
            Task::Pathx => "Pathfinder at 128x128 (16,384 pixels); generated, or the released images",
        }
    }

    pub fn classes(self) -> usize {
        match self {
            Task::Listops => 10,
            Task::Text | Task::Retrieval | Task::Pathfinder | Task::Pathx => 2,
            Task::Image => cifar::CLASSES as usize,
        }
    }

    pub fn vocab_size(self) -> usize {
        match self {
            Task::Listops => listops::vocab::SIZE,
            Task::Text | Task::Retrieval => bytes::VOCAB_SIZE,
            Task::Image | Task::Pathfinder | Task::Pathx => PIXEL_VOCAB,
        }
    }

    /// Whether an example is a pair of sequences (encoded by one shared encoder).
    pub fn paired(self) -> bool {
        self == Task::Retrieval
    }

    pub fn parse(name: &str) -> Result<Task, String> {
        Task::ALL.into_iter().find(|t| t.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Task::ALL.iter().map(|t| t.name()).collect();
            format!("unknown task `{name}`; the tasks are: {}", names.join(", "))
        })
    }
}

/// Sizes of a run: `tiny` for tests, `quick` for a CPU, `lra` for the official setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Tiny,
    Quick,
    Lra,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Tiny, Preset::Quick, Preset::Lra];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Quick => "quick",
            Preset::Lra => "lra",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Preset::Tiny => "seconds per run; small data and model, for tests",
            Preset::Quick => "about a minute per run on a 2-core CPU; shorter sequences, small model",
            Preset::Lra => "the official LRA configuration (full lengths and sizes); meant for a GPU",
        }
    }

    pub fn parse(name: &str) -> Result<Preset, String> {
        Preset::ALL.into_iter().find(|p| p.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
            format!("unknown preset `{name}`; the presets are: {}", names.join(", "))
        })
    }
}

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
}

/// Sizes of the encoder classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub d_model: usize,
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
    /// Images shrunk before training (the `quick` preset's image tasks); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downsample: Option<Downsample>,
    pub model: ModelConfig,
    pub training: TrainingConfig,
}

/// Square images of `side` pixels shrunk by `factor` in each direction: every
/// `factor x factor` block becomes one pixel, `max_length = (side / factor)^2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Downsample {
    pub side: usize,
    pub factor: usize,
    pub reduce: Reduce,
}

/// How a block of pixels becomes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    /// The rounded mean: photographs (CIFAR-10 and its stand-in).
    Mean,
    /// The brightest pixel: keeps one-pixel strokes at full brightness, but also makes
    /// them as bright as anything larger (no preset uses it; a configuration may).
    Max,
}

impl Downsample {
    /// `pixels: [side * side]` row-major -> `[(side / factor)^2]`. Tokens are pixel values
    /// + 1 and images have no padding, so reducing tokens reduces pixels.
    pub fn apply(&self, pixels: &[u32]) -> Vec<u32> {
        let small = self.side / self.factor;
        let mut out = Vec::with_capacity(small * small);
        for row in 0..small {
            for column in 0..small {
                let block = (0..self.factor).flat_map(|dy| {
                    (0..self.factor).map(move |dx| pixels[(row * self.factor + dy) * self.side + column * self.factor + dx])
                });
                out.push(match self.reduce {
                    Reduce::Max => block.max().unwrap_or(0),
                    Reduce::Mean => {
                        let area = (self.factor * self.factor) as u32;
                        (block.sum::<u32>() + area / 2) / area
                    }
                });
            }
        }
        out
    }
}

impl TaskConfig {
    /// A configuration with the task's own vocabulary and classes, images unshrunk.
    fn new(
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
            downsample: None,
            model,
            training,
        }
    }

    /// This image task with its square images (of `max_length` pixels) shrunk by `factor`
    /// in each direction, and `max_length` to match.
    fn downsampled(mut self, factor: usize, reduce: Reduce) -> Self {
        let side = square_side(self.max_length);
        self.downsample = Some(Downsample { side, factor, reduce });
        self.max_length = (side / factor).pow(2);
        self
    }

    /// The task's splits, through the prepared-data cache, shrunk when `downsample` says so;
    /// also whether they came from the cache.
    pub fn prepare_reporting(&self, data_dir: &std::path::Path) -> Result<(Splits, bool), DataError> {
        let Some(downsample) = &self.downsample else {
            return self.data.prepare_reporting(self.max_length, data_dir);
        };
        // The factor is checked before it divides: a configuration file may hold 0.
        let small = downsample.side.checked_div(downsample.factor).unwrap_or(0);
        if small == 0 || small * downsample.factor != downsample.side || small * small != self.max_length {
            return Err(DataError::new(format!(
                "downsample: side {} must be a multiple of factor {}, and (side / factor)^2 must equal max_length {}",
                downsample.side, downsample.factor, self.max_length
            )));
        }
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

    /// The configuration of `task` at `preset`.
    pub fn resolve(task: Task, preset: Preset) -> TaskConfig {
        match task {
            Task::Listops => listops_config(preset),
            Task::Text | Task::Retrieval => byte_config(task, preset),
            Task::Image => image_config(preset),
            Task::Pathfinder => pathfinder_config(Task::Pathfinder, preset),
            Task::Pathx => pathfinder_config(Task::Pathx, preset),
        }
    }
}

/// The side of a square image of `pixels` pixels.
fn square_side(pixels: usize) -> usize {
    (pixels as f64).sqrt().round() as usize
}

fn listops_config(preset: Preset) -> TaskConfig {
    let task = Task::Listops;
    let (max_length, data, model, training) = match preset {
        Preset::Tiny => (
            32,
            DataConfig::ListopsGenerated {
                seed: 0,
                max_depth: 3,
                max_args: 4,
                min_length: 4,
                max_length: 32,
                train: 256,
                validation: 64,
                test: 64,
            },
            ModelConfig {
                d_model: 16,
                heads: 2,
                layers: 1,
                d_ff: 32,
                d_head_mlp: 32,
                pooling: Pooling::Cls,
                positions: Positions::Sinusoidal,
                dropout: 0.1,
                attention_dropout: 0.1,
            },
            cpu_training(16, 20, 10),
        ),
        // Short expressions (lengths 11 to 63, median about 18): a minute on a CPU.
        Preset::Quick => (
            64,
            DataConfig::ListopsGenerated {
                seed: 0,
                max_depth: 4,
                max_args: 5,
                min_length: 10,
                max_length: 64,
                train: 10_000,
                validation: 500,
                test: 1_000,
            },
            ModelConfig {
                d_model: 64,
                heads: 4,
                layers: 2,
                d_ff: 128,
                d_head_mlp: 128,
                pooling: Pooling::Cls,
                positions: Positions::Sinusoidal,
                dropout: 0.1,
                attention_dropout: 0.1,
            },
            cpu_training(32, 200, 50),
        ),
        // The official configuration (LRA's listops_base config).
        Preset::Lra => (
            2000,
            DataConfig::ListopsGenerated {
                seed: 0,
                max_depth: 10,
                max_args: 10,
                min_length: 500,
                max_length: 2000,
                train: 96_000,
                validation: 2_000,
                test: 2_000,
            },
            ModelConfig {
                d_model: 512,
                heads: 8,
                layers: 4,
                d_ff: 1024,
                d_head_mlp: 1024,
                pooling: Pooling::Cls,
                positions: Positions::Sinusoidal,
                dropout: 0.1,
                attention_dropout: 0.1,
            },
            TrainingConfig {
                batch_size: 32,
                steps: 5000,
                schedule: Schedule::Rsqrt { base: 0.05, warmup: 1000 },
                weight_decay: 0.1,
                beta_1: 0.9,
                beta_2: 0.98,
                epsilon: 1e-9,
                gradient_clip_norm: None,
                eval_every: 500,
                warmup_steps_untimed: 10,
                log_every: 50,
            },
        ),
    };
    TaskConfig::new(task, preset, max_length, data, model, training)
}

fn model(d_model: usize, heads: usize, layers: usize, d_ff: usize, pooling: Pooling, positions: Positions) -> ModelConfig {
    ModelConfig { d_model, heads, layers, d_ff, d_head_mlp: d_ff, pooling, positions, dropout: 0.1, attention_dropout: 0.1 }
}

/// The CPU presets' optimiser: AdamW, warm-up then cosine, global-norm clipping at 1.
fn cpu_training(batch_size: usize, steps: usize, eval_every: usize) -> TrainingConfig {
    TrainingConfig {
        batch_size,
        steps,
        schedule: Schedule::Cosine { base: 1e-3, warmup: steps / 10 },
        weight_decay: 0.01,
        beta_1: 0.9,
        beta_2: 0.98,
        epsilon: 1e-9,
        gradient_clip_norm: Some(1.0),
        eval_every,
        warmup_steps_untimed: (steps / 20).clamp(1, 10),
        log_every: (steps / 50).max(1),
    }
}

/// LRA's optimiser for the byte tasks and ListOps: the rsqrt schedule, no clipping.
fn lra_rsqrt_training(batch_size: usize, steps: usize, warmup: usize) -> TrainingConfig {
    TrainingConfig {
        batch_size,
        steps,
        schedule: Schedule::Rsqrt { base: 0.05, warmup },
        weight_decay: 0.1,
        beta_1: 0.9,
        beta_2: 0.98,
        epsilon: 1e-9,
        gradient_clip_norm: None,
        eval_every: 500,
        warmup_steps_untimed: 10,
        log_every: 50,
    }
}

/// Text and Retrieval: byte-level documents (Retrieval: pairs), stand-ins unless the
/// released files are found.
fn byte_config(task: Task, preset: Preset) -> TaskConfig {
    let retrieval = task == Task::Retrieval;
    let stand_in = |train, validation, test| match retrieval {
        true => DataConfig::RetrievalStandIn { seed: 0, train, validation, test },
        false => DataConfig::TextStandIn { seed: 0, train, validation, test },
    };
    let (max_length, data, model, training) = match preset {
        Preset::Tiny => {
            (64, stand_in(128, 32, 32), model(16, 2, 1, 32, Pooling::Cls, Positions::Sinusoidal), cpu_training(16, 10, 5))
        }
        Preset::Quick => (
            256,
            stand_in(4_000, 200, 500),
            model(64, 4, 2, 128, Pooling::Mean, Positions::Sinusoidal),
            // A pair costs two encoder passes: half the batch keeps the step time alike.
            cpu_training(if retrieval { 8 } else { 16 }, 120, 40),
        ),
        // LRA's configurations: Text (IMDb, 25,000 reviews per split) and Retrieval (AAN).
        Preset::Lra if retrieval => (
            4000,
            stand_in(147_086, 18_090, 17_437),
            model(128, 4, 4, 512, Pooling::Cls, Positions::Sinusoidal),
            lra_rsqrt_training(32, 5_000, 8_000),
        ),
        Preset::Lra => (
            1000,
            stand_in(25_000, 25_000, 25_000),
            model(256, 4, 4, 1024, Pooling::Cls, Positions::Sinusoidal),
            lra_rsqrt_training(32, 20_000, 8_000),
        ),
    };
    TaskConfig::new(task, preset, max_length, data, model, training)
}

fn image_config(preset: Preset) -> TaskConfig {
    let task = Task::Image;
    let (data, model, training) = match preset {
        Preset::Tiny => (
            DataConfig::ImageStandIn { seed: 0, train: 128, validation: 32, test: 32 },
            model(16, 2, 1, 32, Pooling::Mean, Positions::Learned),
            cpu_training(16, 6, 3),
        ),
        // 16x16 (2x2 means), 256 pixels: a quadratic layer at 1,024 pixels costs
        // seconds per step on a 2-core CPU, too slow for a sweep of every model.
        Preset::Quick => (
            DataConfig::ImageStandIn { seed: 0, train: 4_000, validation: 200, test: 500 },
            model(32, 4, 1, 64, Pooling::Mean, Positions::Learned),
            cpu_training(16, 120, 40),
        ),
        // LRA's image config: 1 layer, 8 heads, d 128, mlp 128, dropout 0.3 (attention
        // 0.2), learned positions, 200 epochs of 45,000 images at batch 256, cosine.
        Preset::Lra => (
            DataConfig::ImageStandIn { seed: 0, train: 45_000, validation: 5_000, test: 10_000 },
            ModelConfig {
                d_model: 128,
                heads: 8,
                layers: 1,
                d_ff: 128,
                d_head_mlp: 128,
                pooling: Pooling::Cls,
                positions: Positions::Learned,
                dropout: 0.3,
                attention_dropout: 0.2,
            },
            TrainingConfig {
                batch_size: 256,
                steps: 35_000,
                schedule: Schedule::Cosine { base: 5e-4, warmup: 175 },
                weight_decay: 0.0,
                beta_1: 0.9,
                beta_2: 0.98,
                epsilon: 1e-9,
                gradient_clip_norm: None,
                eval_every: 1_000,
                warmup_steps_untimed: 10,
                log_every: 100,
            },
        ),
    };
    let config = TaskConfig::new(task, preset, cifar::PIXELS, data, model, training);
    match preset {
        Preset::Quick => config.downsampled(2, Reduce::Mean),
        _ => config,
    }
}

fn pathfinder_config(task: Task, preset: Preset) -> TaskConfig {
    let size = if task == Task::Pathx { 128 } else { 32 };
    let data = |count: usize, difficulty| DataConfig::PathfinderGenerated { seed: 0, size, difficulty, count };
    let (data, model, training) = match preset {
        Preset::Tiny => (
            data(if task == Task::Pathx { 40 } else { 160 }, PathfinderDifficulty::Fourteen),
            model(16, 2, 1, 32, Pooling::Mean, Positions::Learned),
            cpu_training(if task == Task::Pathx { 2 } else { 8 }, 4, 2),
        ),
        // Pathfinder: the baseline difficulty (contours of 6 segments) at 16x16, 256
        // pixels, for the same reason as the image task. 2x2 means, not maxima: a marker
        // (a disc of radius 1.5) fills a whole block and stays at full brightness, while a
        // one-pixel dash fills at most part of one and comes out dimmer; under maxima both
        // become the same bright blocks and the markers cannot be told from the dashes.
        Preset::Quick if task == Task::Pathfinder => (
            data(5_000, PathfinderDifficulty::Baseline),
            model(32, 4, 1, 64, Pooling::Mean, Positions::Learned),
            cpu_training(16, 150, 50),
        ),
        Preset::Quick => (
            data(400, PathfinderDifficulty::Fourteen),
            model(32, 4, 1, 64, Pooling::Mean, Positions::Learned),
            cpu_training(16, 20, 10),
        ),
        // LRA's Pathfinder config: d 32 (qkv 16), 4 layers, 4 heads (Path-X: 1 layer, 2
        // heads), mean pooling, dropout 0.2, batch 512 (Path-X 64), lr 1e-3, cosine,
        // 200 epochs; Path-X clips gradients at 1.
        Preset::Lra => {
            let pathx = task == Task::Pathx;
            let (heads, layers, batch) = if pathx { (2, 1, 64) } else { (4, 4, 512) };
            let count = 200_000;
            (
                data(count, PathfinderDifficulty::Fourteen),
                ModelConfig {
                    d_model: 32,
                    heads,
                    layers,
                    d_ff: 32,
                    d_head_mlp: 32,
                    pooling: Pooling::Mean,
                    positions: Positions::Learned,
                    dropout: 0.2,
                    attention_dropout: 0.2,
                },
                TrainingConfig {
                    batch_size: batch,
                    steps: 200 * count * 8 / 10 / batch,
                    schedule: Schedule::Cosine { base: 1e-3, warmup: 0 },
                    weight_decay: 0.0,
                    beta_1: 0.9,
                    beta_2: 0.98,
                    epsilon: 1e-9,
                    gradient_clip_norm: pathx.then_some(1.0),
                    eval_every: 1_000,
                    warmup_steps_untimed: 10,
                    log_every: 100,
                },
            )
        }
    };
    let config = TaskConfig::new(task, preset, size * size, data, model, training);
    match preset {
        Preset::Quick if task == Task::Pathfinder => config.downsampled(2, Reduce::Mean),
        _ => config,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_and_preset_resolves_to_a_consistent_configuration() {
        for task in Task::ALL {
            for preset in Preset::ALL {
                let c = TaskConfig::resolve(task, preset);
                assert_eq!(c.model.d_model % c.model.heads, 0, "{task:?} {preset:?}: heads must divide d_model");
                assert!(c.training.warmup_steps_untimed < c.training.steps);
                assert!(c.training.eval_every > 0 && c.training.log_every > 0);
                if let DataConfig::ListopsGenerated { max_length, .. } = c.data {
                    // The generator's exclusive bound keeps every sequence within the model's length.
                    assert!(max_length <= c.max_length);
                }
            }
        }
    }

    #[test]
    fn downsampling_takes_block_means_or_maxima() {
        // A 4x4 image of tokens 1..=16, row-major.
        let pixels: Vec<u32> = (1..=16).collect();
        let mean = Downsample { side: 4, factor: 2, reduce: Reduce::Mean };
        // Top-left block 1, 2, 5, 6: mean 3.5, rounded half up to 4.
        assert_eq!(mean.apply(&pixels), vec![4, 6, 12, 14]);
        let max = Downsample { side: 4, factor: 2, reduce: Reduce::Max };
        assert_eq!(max.apply(&pixels), vec![6, 8, 14, 16]);
        // A single bright pixel (a Pathfinder dash) survives the maximum, not the mean.
        let mut dark = vec![1u32; 16];
        dark[5] = 256;
        assert_eq!(max.apply(&dark), vec![256, 1, 1, 1]);
        assert_eq!(mean.apply(&dark), vec![65, 1, 1, 1]);
    }

    #[test]
    fn quick_pathfinder_keeps_its_markers_brighter_than_the_dashes() {
        // Where the markers are comes from the generator's bookkeeping. A marker (a plus of
        // five full pixels and four at 149 for radius 1.5) fills one 2x2 block, whose mean
        // is at least 229; a dash is a pixel wide and rarely fills a block. Under maxima a
        // dash block is as bright as a marker block, which is why the preset takes means.
        use lra_datasets::pathfinder::{Difficulty, PathfinderConfig, generate};
        let downsample = TaskConfig::resolve(Task::Pathfinder, Preset::Quick).downsample.unwrap();
        assert_eq!(downsample.reduce, Reduce::Mean);
        let maxima = Downsample { reduce: Reduce::Max, ..downsample };
        let config = PathfinderConfig::lra(32, Difficulty::Baseline).unwrap();
        let samples = generate(&config, 11, 1_000).unwrap();
        let marker_bright = 229 + 1; // as a token: pixel value + 1
        let (factor, small_side) = (downsample.factor, downsample.side / downsample.factor);
        // Whether block `at` has its centre (in full-size pixels) within `reach` of `(y, x)`.
        let within = |at: usize, (y, x): (f32, f32), reach: f32| {
            let centre = |i: usize| (factor * i) as f32 + (factor as f32 - 1.0) / 2.0;
            (centre(at / small_side) - y).abs() <= reach && (centre(at % small_side) - x).abs() <= reach
        };
        let (mut confusable_under_means, mut confusable_under_maxima) = (0, 0);
        for sample in &samples {
            let tokens: Vec<u32> = sample.pixels.iter().map(|&p| u32::from(p) + 1).collect();
            let confusable = |small: &[u32]| {
                (0..small.len())
                    .any(|at| small[at] >= marker_bright && !sample.markers.iter().any(|&marker| within(at, marker, 2.0)))
            };
            let small = downsample.apply(&tokens);
            for &marker in &sample.markers {
                let brightest = (0..small.len()).filter(|&at| within(at, marker, 1.0)).map(|at| small[at]).max();
                assert!(brightest >= Some(marker_bright), "the marker at {marker:?} fades to {brightest:?}");
            }
            confusable_under_means += usize::from(confusable(&small));
            confusable_under_maxima += usize::from(confusable(&maxima.apply(&tokens)));
        }
        assert!(confusable_under_means <= 10, "{confusable_under_means} of 1000 images have a dash as bright as a marker");
        assert!(confusable_under_maxima >= 900, "under maxima only {confusable_under_maxima} of 1000");
    }

    #[test]
    fn downsampled_presets_prepare_images_of_their_max_length() {
        let dir = std::env::temp_dir().join(format!("lra-downsample-{}", std::process::id()));
        let mut config = TaskConfig::resolve(Task::Pathfinder, Preset::Quick);
        assert_eq!(config.max_length, 256);
        config.data =
            DataConfig::PathfinderGenerated { seed: 3, size: 32, difficulty: PathfinderDifficulty::Baseline, count: 20 };
        let splits = config.prepare(&dir).unwrap();
        let full = config.data.prepare(1024, &dir).unwrap();
        for (small, large) in splits.train.iter().zip(&full.train) {
            assert_eq!(small.tokens, config.downsample.unwrap().apply(&large.tokens));
            assert_eq!(small.tokens.len(), 256);
            assert_eq!(small.label, large.label);
        }
        // A configuration whose max_length does not match is refused, not truncated.
        config.max_length = 200;
        let err = config.prepare(&dir).unwrap_err().to_string();
        assert!(err.contains("max_length 200"), "{err}");
        // A factor of 0 (possible in a configuration file) is an error, not a division by zero.
        config.downsample = Some(Downsample { side: 32, factor: 0, reduce: Reduce::Max });
        let err = config.prepare(&dir).unwrap_err().to_string();
        assert!(err.contains("factor 0"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn names_parse_back_and_unknown_names_list_the_valid_ones() {
        for task in Task::ALL {
            assert_eq!(Task::parse(task.name()), Ok(task));
        }
        let err = Task::parse("listopz").unwrap_err();
        assert!(err.contains("listops"), "{err}");
        assert!(Preset::parse("huge").unwrap_err().contains("tiny, quick, lra"));
    }

    #[test]
    fn the_official_listops_configuration_matches_lra() {
        let c = TaskConfig::resolve(Task::Listops, Preset::Lra);
        assert_eq!((c.max_length, c.model.d_model, c.model.heads, c.model.layers, c.model.d_ff), (2000, 512, 8, 4, 1024));
        assert_eq!((c.training.batch_size, c.training.steps), (32, 5000));
        assert_eq!(c.training.schedule, Schedule::Rsqrt { base: 0.05, warmup: 1000 });
    }
}
