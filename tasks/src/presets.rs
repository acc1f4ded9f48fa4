//! The configuration of each task at each preset: `tiny` (tests), `quick` (a 2-core
//! CPU) and `lra` (LRA's official configuration of the task; the per-model differences
//! of the released code are in [`crate::lra`]).

use lra_datasets::cifar;
use lra_datasets::pathfinder::split_counts;

use crate::{
    DataConfig, ModelConfig, PathfinderDifficulty, Pooling, Positions, Preset, Schedule, Task, TaskConfig, TrainingConfig,
};

/// The configuration of `task` at `preset`.
pub(crate) fn resolve(task: Task, preset: Preset) -> TaskConfig {
    match task {
        Task::Listops => listops_config(preset),
        Task::Text | Task::Retrieval => byte_config(task, preset),
        Task::Image => image_config(preset),
        Task::Pathfinder | Task::Pathx => pathfinder_config(task, preset),
    }
}

impl TaskConfig {
    /// The configuration of `task` at `preset`: the task's own (LRA's Transformer
    /// configuration at `lra`). [`lra::model_settings`](crate::lra::model_settings) holds what
    /// LRA changed per model.
    pub fn resolve(task: Task, preset: Preset) -> TaskConfig {
        resolve(task, preset)
    }
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
            model(16, 2, 1, 32, Pooling::Cls, Positions::Sinusoidal),
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
            model(64, 4, 2, 128, Pooling::Cls, Positions::Sinusoidal),
            cpu_training_at(3e-3, 32, 300, 50),
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
            model(512, 8, 4, 1024, Pooling::Cls, Positions::Sinusoidal),
            lra_rsqrt_training(32, 5_000, 1_000, 50),
        ),
    };
    TaskConfig::new(task, preset, max_length, data, model, training)
}

fn model(d_model: usize, heads: usize, layers: usize, d_ff: usize, pooling: Pooling, positions: Positions) -> ModelConfig {
    ModelConfig {
        d_model,
        qkv_dim: d_model,
        heads,
        layers,
        d_ff,
        d_head_mlp: d_ff,
        pooling,
        positions,
        dropout: 0.1,
        attention_dropout: 0.1,
    }
}

/// The CPU presets' optimiser: AdamW, warm-up then cosine, global-norm clipping at 1.
fn cpu_training(batch_size: usize, steps: usize, eval_every: usize) -> TrainingConfig {
    cpu_training_at(1e-3, batch_size, steps, eval_every)
}

/// [`cpu_training`] at the learning rate `base`. The CPU tasks of `quick` train at 3e-3:
/// in a few hundred steps 1e-3 leaves the image task at 16% where 3e-3 reaches 50%
/// (a PyTorch Transformer of the same sizes, 400 steps).
fn cpu_training_at(base: f64, batch_size: usize, steps: usize, eval_every: usize) -> TrainingConfig {
    TrainingConfig {
        batch_size,
        steps,
        schedule: Schedule::Cosine { base, warmup: steps / 10 },
        weight_decay: 0.01,
        beta_1: 0.9,
        beta_2: 0.98,
        epsilon: 1e-9,
        gradient_clip_norm: Some(1.0),
        eval_every,
        warmup_steps_untimed: (steps / 20).clamp(1, 10),
        log_every: (steps / 50).max(1),
        gradient_checkpointing: false,
        eval_batch_size: Some(4 * batch_size),
    }
}

/// LRA's optimiser for the byte tasks and ListOps: the rsqrt schedule, no clipping.
fn lra_rsqrt_training(batch_size: usize, steps: usize, warmup: usize, eval_every: usize) -> TrainingConfig {
    TrainingConfig {
        batch_size,
        steps,
        schedule: Schedule::Rsqrt { base: 0.05, warmup },
        weight_decay: 0.1,
        beta_1: 0.9,
        beta_2: 0.98,
        epsilon: 1e-9,
        gradient_clip_norm: None,
        eval_every,
        warmup_steps_untimed: 10,
        log_every: eval_every,
        gradient_checkpointing: false,
        eval_batch_size: None,
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
        // The CPU forms (see `cpu_data`): 128 bytes, fresh generated data, 3e-3.
        Preset::Quick => (
            CPU_DOCUMENT_BYTES,
            cpu_data(task),
            model(64, 4, 2, 128, Pooling::Mean, Positions::Sinusoidal),
            cpu_training_at(3e-3, 16, 200, 50),
        ),
        // LRA's configurations: Text (IMDb, 25,000 reviews per split) and Retrieval (AAN).
        Preset::Lra if retrieval => (
            4000,
            stand_in(147_086, 18_090, 17_437),
            model(128, 4, 4, 512, Pooling::Cls, Positions::Sinusoidal),
            lra_rsqrt_training(32, 5_000, 8_000, 100),
        ),
        Preset::Lra => (
            1000,
            stand_in(25_000, 25_000, 25_000),
            model(256, 4, 4, 1024, Pooling::Cls, Positions::Sinusoidal),
            lra_rsqrt_training(32, 20_000, 8_000, 100),
        ),
    };
    TaskConfig::new(task, preset, max_length, data, model, training)
}

/// Bytes per document of the CPU text and retrieval tasks (LRA: 1,000-4,000; its appendix
/// treats the length as a free setting of the task).
const CPU_DOCUMENT_BYTES: usize = 128;

/// Side of the CPU Pathfinder's grid: 144 pixels.
const CPU_PATHFINDER_SIZE: usize = 12;

/// Side of the CPU image task's images: 144 pixels.
const CPU_IMAGE_SIDE: usize = 12;

/// The data of the CPU form of `task` at `quick`: generated, with every split large enough
/// that a run sees each training example about once (300-400 steps of 16).
fn cpu_data(task: Task) -> DataConfig {
    let (train, validation, test) = (6_000, 500, 1_000);
    match task {
        // Nine sentiment words in 128 bytes, decided by a lead of one word or more: a
        // tenth of the document (13 bytes) holds about one of them.
        Task::Text => DataConfig::TextGenerated { seed: 0, words: 9, margin: 1, train, validation, test },
        // Four topics, six words of its topic in each document (with three the
        // Transformer reaches 61% in 300 steps, with five 76%).
        Task::Retrieval => DataConfig::RetrievalGenerated { seed: 0, topics: 4, words: 6, train, validation, test },
        // Shapes of eight pixels at four grey levels: the histogram says nothing.
        Task::Image => DataConfig::ImageGenerated { seed: 0, side: CPU_IMAGE_SIDE, levels: 4, train, validation, test },
        _ => unreachable!("{task:?} has no generated CPU form here"),
    }
}

fn image_config(preset: Preset) -> TaskConfig {
    let task = Task::Image;
    let (data, model, training) = match preset {
        Preset::Tiny => (
            DataConfig::ImageStandIn { seed: 0, train: 128, validation: 32, test: 32 },
            model(16, 2, 1, 32, Pooling::Mean, Positions::Learned),
            cpu_training(16, 6, 3),
        ),
        // The CPU form: 12x12 shapes, black pixels as padding (as LRA's own image task),
        // sinusoidal positions (learned ones stay at chance in this budget).
        Preset::Quick => {
            (cpu_data(task), model(64, 4, 1, 128, Pooling::Mean, Positions::Sinusoidal), cpu_training_at(3e-3, 32, 400, 80))
        }
        // LRA's image config (the Transformer's): 1 layer, 8 heads, d 128 (attention 64),
        // mlp 128, dropout 0.3 (attention 0.2), learned positions, 200 epochs of 45,000
        // images at batch 256, cosine, evaluated every epoch. Sources: crate::lra.
        Preset::Lra => (
            DataConfig::ImageStandIn { seed: 0, train: 45_000, validation: 5_000, test: 10_000 },
            ModelConfig {
                d_model: 128,
                qkv_dim: 64,
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
                eval_every: 175,
                warmup_steps_untimed: 10,
                log_every: 25,
                gradient_checkpointing: false,
                eval_batch_size: None,
            },
        ),
    };
    // The model sees whole images: CIFAR-10's 1,024 pixels, or the CPU form's.
    let pixels = data.pixels().unwrap_or(cifar::PIXELS);
    let config = TaskConfig::new(task, preset, pixels, data, model, training);
    match preset {
        Preset::Lra | Preset::Quick => config.with_pixel_zero_as_padding(),
        Preset::Tiny => config,
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
        // The CPU Pathfinder: 12x12 grids, contours of 3 paddles, one distractor, black
        // pixels as padding; 20,000 images, so a run sees each training image about once.
        Preset::Quick if task == Task::Pathfinder => (
            DataConfig::PathfinderSmall { seed: 0, size: CPU_PATHFINDER_SIZE, contour_length: 3, distractors: 1, count: 20_000 },
            // One layer: at 400 steps two reach the same 64% at half the speed.
            model(64, 4, 1, 128, Pooling::Mean, Positions::Sinusoidal),
            cpu_training_at(3e-3, 32, 600, 100),
        ),
        Preset::Quick => (
            data(400, PathfinderDifficulty::Fourteen),
            model(32, 4, 1, 64, Pooling::Mean, Positions::Learned),
            cpu_training(16, 20, 10),
        ),
        // LRA's Pathfinder-32 config (the Transformer's): d 32 (attention 16), 4 layers,
        // 4 heads, mlp 32, dropout 0.2 (attention 0.1), sinusoidal positions, mean
        // pooling, batch 512, lr 1e-3, cosine after one epoch of warm-up, 200 epochs of
        // 160,000 images, evaluated every epoch. Path-X: 1 layer, 2 heads, dropout 0.1,
        // learned positions, batch 64, gradients clipped at 1. Sources: crate::lra.
        Preset::Lra => {
            let pathx = task == Task::Pathx;
            let count = 200_000;
            let batch_size = if pathx { 64 } else { 512 };
            let [train_count, _, _] = split_counts(count);
            let epoch = train_count / batch_size;
            (
                data(count, PathfinderDifficulty::Fourteen),
                ModelConfig {
                    d_model: 32,
                    qkv_dim: 16,
                    heads: if pathx { 2 } else { 4 },
                    layers: if pathx { 1 } else { 4 },
                    d_ff: 32,
                    d_head_mlp: 32,
                    pooling: Pooling::Mean,
                    positions: if pathx { Positions::Learned } else { Positions::Sinusoidal },
                    dropout: if pathx { 0.1 } else { 0.2 },
                    attention_dropout: 0.1,
                },
                TrainingConfig {
                    batch_size,
                    steps: 200 * epoch,
                    schedule: Schedule::Cosine { base: 1e-3, warmup: epoch },
                    weight_decay: 0.0,
                    beta_1: 0.9,
                    beta_2: 0.98,
                    epsilon: 1e-9,
                    gradient_clip_norm: pathx.then_some(1.0),
                    eval_every: epoch,
                    warmup_steps_untimed: 10,
                    log_every: 100,
                    gradient_checkpointing: false,
                    eval_batch_size: None,
                },
            )
        }
    };
    // The model sees whole images: LRA's size, or the CPU grid's.
    let pixels = data.pixels().unwrap_or(size * size);
    let config = TaskConfig::new(task, preset, pixels, data, model, training);
    match preset {
        Preset::Lra => config.with_pixel_zero_as_padding(),
        Preset::Quick if task == Task::Pathfinder => config.with_pixel_zero_as_padding(),
        _ => config,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Downsample, Limits, RELEASED};

    #[test]
    fn every_task_and_preset_resolves_to_a_consistent_configuration() {
        for task in Task::ALL {
            for preset in Preset::ALL {
                let c = TaskConfig::resolve(task, preset);
                assert_eq!(c.model.qkv_dim % c.model.heads, 0, "{task:?} {preset:?}: heads must divide qkv_dim");
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
    fn pathfinder_shrunk_by_means_keeps_its_markers_brighter_than_the_dashes() {
        // Where the markers are comes from the generator's bookkeeping. A marker (radius 1.5,
        // drawn supersampled as the original draws it: a 2x2 core near full brightness in a
        // dimmer ring) leaves a bright 2x2 block under means when its core falls in one
        // block, a dimmer one when the core straddles blocks; a dash is a pixel wide and
        // rarely fills a block. Under maxima every dash block is as bright as its brightest
        // pixel, which is why a configuration that shrinks Pathfinder should take means.
        use crate::Reduce;
        use lra_datasets::pathfinder::{Difficulty, PathfinderConfig, generate};
        let downsample = Downsample { side: 32, factor: 2, reduce: Reduce::Mean };
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
        let (mut outshone_under_means, mut outshone_under_maxima) = (0, 0);
        let (mut confusable_under_means, mut confusable_under_maxima) = (0, 0);
        for sample in &samples {
            let tokens: Vec<u32> = sample.pixels.iter().map(|&p| u32::from(p) + 1).collect();
            let off_markers = |at: usize| !sample.markers.iter().any(|&marker| within(at, marker, 2.0));
            // A block away from the markers as bright as a full marker block.
            let confusable = |small: &[u32]| (0..small.len()).any(|at| small[at] >= marker_bright && off_markers(at));
            // Whether the dimmer marker's brightest block outshines every block away from both.
            let markers_outshine = |small: &[u32]| {
                let marker = |&m: &(f32, f32)| (0..small.len()).filter(|&at| within(at, m, 1.0)).map(|at| small[at]).max();
                let dimmer = sample.markers.iter().map(marker).min().flatten().expect("a block under each marker");
                (0..small.len()).filter(|&at| off_markers(at)).all(|at| small[at] < dimmer)
            };
            let (small, small_by_maxima) = (downsample.apply(&tokens), maxima.apply(&tokens));
            outshone_under_means += usize::from(markers_outshine(&small));
            outshone_under_maxima += usize::from(markers_outshine(&small_by_maxima));
            confusable_under_means += usize::from(confusable(&small));
            confusable_under_maxima += usize::from(confusable(&small_by_maxima));
        }
        // Measured: 922 and 175 of 1,000 outshine; 0 and 943 confusable.
        assert!(outshone_under_means >= 880, "under means the markers outshine the dashes in {outshone_under_means} of 1000");
        assert!(outshone_under_maxima <= 250, "under maxima the markers outshine the dashes in {outshone_under_maxima} of 1000");
        assert!(confusable_under_means <= 10, "{confusable_under_means} of 1000 images have a dash as bright as a marker");
        assert!(confusable_under_maxima >= 900, "under maxima only {confusable_under_maxima} of 1000");
    }

    #[test]
    fn the_official_listops_configuration_matches_lra() {
        let c = TaskConfig::resolve(Task::Listops, Preset::Lra);
        assert_eq!((c.max_length, c.model.d_model, c.model.heads, c.model.layers, c.model.d_ff), (2000, 512, 8, 4, 1024));
        assert_eq!((c.training.batch_size, c.training.steps), (32, 5000));
        assert_eq!(c.training.schedule, Schedule::Rsqrt { base: 0.05, warmup: 1000 });
    }

    /// Generated and stand-in data take the new seed, and so do the released files split
    /// with a seed; the releases with fixed split files stay as they are.
    #[test]
    fn with_seed_reseeds_what_is_drawn_or_split_with_a_seed_and_leaves_fixed_releases_alone() {
        let generated = TaskConfig::resolve(Task::Listops, Preset::Tiny).data.with_seed(99);
        assert!(matches!(generated, DataConfig::ListopsGenerated { seed: 99, .. }), "{generated:?}");
        let text = DataConfig::TextReleased { seed: 1, limits: Limits::default(), validation_percent: Some(10) };
        assert_eq!(
            text.with_seed(99),
            DataConfig::TextReleased { seed: 99, limits: Limits::default(), validation_percent: Some(10) }
        );
        let pathfinder = DataConfig::PathfinderReleased {
            seed: 1,
            size: 32,
            difficulty: PathfinderDifficulty::Fourteen,
            limits: Limits::default(),
        };
        assert_eq!(
            pathfinder.with_seed(99),
            DataConfig::PathfinderReleased {
                seed: 99,
                size: 32,
                difficulty: PathfinderDifficulty::Fourteen,
                limits: Limits::default(),
            }
        );
        for fixed in [
            DataConfig::ListopsReleased { limits: Limits::default() },
            DataConfig::RetrievalReleased { limits: Limits::default() },
            DataConfig::ImageReleased { limits: Limits::default() },
        ] {
            assert_eq!(fixed.clone().with_seed(99), fixed);
        }
    }

    /// Every released source names an archive `lra data fetch` knows, and only those do.
    #[test]
    fn released_data_names_the_archive_that_holds_it() {
        let limits = Limits::default();
        let released = [
            DataConfig::ListopsReleased { limits },
            DataConfig::TextReleased { seed: 0, limits, validation_percent: Some(10) },
            DataConfig::RetrievalReleased { limits },
            DataConfig::ImageReleased { limits },
            DataConfig::PathfinderReleased { seed: 0, size: 32, difficulty: PathfinderDifficulty::Fourteen, limits },
        ];
        for config in released {
            let archive = config.released_archive().unwrap_or_else(|| panic!("{config:?}"));
            assert!(lra_datasets::fetch::known_archive(archive).is_some(), "{config:?}: {archive}");
            assert_eq!(config.source_label(), RELEASED);
        }
        for task in Task::ALL {
            let config = TaskConfig::resolve(task, Preset::Tiny).data;
            assert_eq!(config.released_archive(), None, "{config:?}");
        }
    }
}
