//! What each Long Range Arena task is: where its data comes from, its sequence length,
//! vocabulary and classes, and the hyperparameters of each preset.
//!
//! A [`TaskConfig`] is everything about a run that is not the model's code: it is
//! resolved once from (task, preset), may be overridden by a configuration file, and is
//! saved beside the results so the run can be repeated from it.

use serde::{Deserialize, Serialize};

use lra_datasets::{DataError, Splits, listops};

mod schedule;
pub use schedule::Schedule;

/// The tasks of the benchmark that this harness prepares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Listops,
}

impl Task {
    pub const ALL: [Task; 1] = [Task::Listops];

    pub fn name(self) -> &'static str {
        match self {
            Task::Listops => "listops",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Task::Listops => "ListOps: value of a nested MIN/MAX/MED/SM expression (10 classes), generated",
        }
    }

    pub fn classes(self) -> usize {
        match self {
            Task::Listops => 10,
        }
    }

    pub fn vocab_size(self) -> usize {
        match self {
            Task::Listops => listops::vocab::SIZE,
        }
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

/// Where a task's examples come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// The ListOps generator (see `lra_datasets::listops`).
    ListopsGenerated {
        /// Seed of the data, separate from the training seed: every run of a
        /// task at one preset sees the same examples.
        seed: u64,
        max_depth: usize,
        max_args: usize,
        min_length: usize,
        max_length: usize,
        train: usize,
        validation: usize,
        test: usize,
    },
}

impl DataConfig {
    /// The run record's `data_source`.
    pub fn source_label(&self) -> &'static str {
        match self {
            DataConfig::ListopsGenerated { .. } => "generated",
        }
    }

    /// Produces the tokenized splits.
    pub fn prepare(&self) -> Result<Splits, DataError> {
        match self {
            DataConfig::ListopsGenerated { seed, max_depth, max_args, min_length, max_length, train, validation, test } => {
                let config = listops::GeneratorConfig {
                    max_depth: *max_depth,
                    max_args: *max_args,
                    min_length: *min_length,
                    max_length: *max_length,
                    train: *train,
                    validation: *validation,
                    test: *test,
                };
                listops::to_splits(listops::generate_samples(&config, *seed)?)
            }
        }
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
    pub model: ModelConfig,
    pub training: TrainingConfig,
}

impl TaskConfig {
    /// The configuration of `task` at `preset`.
    pub fn resolve(task: Task, preset: Preset) -> TaskConfig {
        match task {
            Task::Listops => listops_config(preset),
        }
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
            TrainingConfig {
                batch_size: 16,
                steps: 20,
                schedule: Schedule::Cosine { base: 1e-3, warmup: 4 },
                weight_decay: 0.01,
                beta_1: 0.9,
                beta_2: 0.98,
                epsilon: 1e-9,
                gradient_clip_norm: Some(1.0),
                eval_every: 10,
                warmup_steps_untimed: 2,
                log_every: 2,
            },
        ),
        Preset::Quick => (
            128,
            DataConfig::ListopsGenerated {
                seed: 0,
                max_depth: 4,
                max_args: 5,
                min_length: 10,
                max_length: 128,
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
            TrainingConfig {
                batch_size: 32,
                steps: 600,
                schedule: Schedule::Cosine { base: 1e-3, warmup: 60 },
                weight_decay: 0.01,
                beta_1: 0.9,
                beta_2: 0.98,
                epsilon: 1e-9,
                gradient_clip_norm: Some(1.0),
                eval_every: 100,
                warmup_steps_untimed: 10,
                log_every: 10,
            },
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
    TaskConfig { name: task, preset, max_length, vocab_size: task.vocab_size(), classes: task.classes(), data, model, training }
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
                match c.data {
                    // The generator's exclusive bound keeps every sequence within the model's length.
                    DataConfig::ListopsGenerated { max_length, .. } => assert!(max_length <= c.max_length),
                }
            }
        }
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
