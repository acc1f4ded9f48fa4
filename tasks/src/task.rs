//! The tasks of the benchmark and the presets that size a run.

use serde::{Deserialize, Serialize};

use lra_datasets::{bytes, cifar, listops};

/// Pixel values 0-255 become tokens 1-256, so that token 0 keeps meaning padding for
/// every task (a black pixel is not padding).
pub const PIXEL_VOCAB: usize = 257;

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

    /// The task's name in LRA's tables.
    pub fn title(self) -> &'static str {
        match self {
            Task::Listops => "ListOps",
            Task::Text => "Text",
            Task::Retrieval => "Retrieval",
            Task::Image => "Image",
            Task::Pathfinder => "Pathfinder",
            Task::Pathx => "Path-X",
        }
    }

    /// Whether the task counts in a model's average accuracy: LRA's Table 1 averages every
    /// task but Path-X, which every model failed.
    pub fn averaged(self) -> bool {
        self != Task::Pathx
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

    /// What the task is at `quick`: its CPU form, designed to be learned in a few hundred
    /// steps on a CPU while needing what LRA's task needs (`lra config --explain` gives
    /// each departure from LRA's task).
    pub fn cpu_form(self) -> &'static str {
        match self {
            Task::Listops => "short expressions (depth 4, up to 5 arguments): the same hierarchical evaluation",
            Task::Text => "128-byte documents, 9 planted sentiment words, the label their majority (lead of 1+ words)",
            Task::Retrieval => "pairs of 128-byte documents with 6 words of one of 4 topics: do they share it",
            Task::Image => "10 shapes of 8 pixels on 12x12 black: same histogram for every class, rows must be related",
            Task::Pathfinder => "12x12 grids, contours of 3 dashes and one distractor: are the two markers joined",
            Task::Pathx => "400 hard images: a smoke test",
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
}

/// Sizes of a run: `tiny` for tests, `quick` for a CPU (the default), `lra` for the
/// official setup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Tiny,
    #[default]
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
}

/// The training-step benchmark a sweep at a preset ends with: lengths, batch, timed steps
/// (after one warm-up) and the time limit of each measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepBenchmark {
    pub lengths: Vec<usize>,
    pub batch: usize,
    pub timed_steps: usize,
    pub cell_timeout_seconds: f64,
}

impl Preset {
    /// What a sweep at this preset benchmarks: `lra`, LRA's Table 2 (1K to 4K at batch 32);
    /// `quick`, 1K, 2K and 4K at batch 1 (time and memory grow in proportion to the
    /// batch, so the ratios to the Transformer keep their meaning, in minutes on a CPU);
    /// `tiny`, two short lengths for tests.
    pub fn sweep_benchmark(self) -> SweepBenchmark {
        let (lengths, batch, timed_steps, cell_timeout_seconds) = match self {
            Preset::Tiny => (vec![32, 64], 2, 1, 120.0),
            Preset::Quick => (vec![1024, 2048, 4096], 1, 2, 300.0),
            Preset::Lra => (vec![1024, 2048, 3072, 4096], 32, 3, 600.0),
        };
        SweepBenchmark { lengths, batch, timed_steps, cell_timeout_seconds }
    }
}

/// Names on the command line and in files: `Task::parse("listops")` (or `from_str`),
/// `task.to_string()`, over the type's `ALL` and `name()`; `noun` names the kind in the
/// error for an unknown name.
macro_rules! named {
    ($type:ty, $noun:literal) => {
        impl $type {
            /// The value called `name`; an unknown name is refused with the list of valid ones.
            pub fn parse(name: &str) -> Result<Self, String> {
                Self::ALL.into_iter().find(|value| value.name() == name).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|value| value.name()).collect();
                    let noun = $noun;
                    format!("unknown {noun} `{name}`; the {noun}s are: {}", names.join(", "))
                })
            }
        }

        impl std::str::FromStr for $type {
            type Err = String;

            fn from_str(name: &str) -> Result<Self, String> {
                Self::parse(name)
            }
        }

        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named!(Task, "task");
named!(Preset, "preset");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_names_list_the_valid_ones() {
        for task in Task::ALL {
            assert_eq!(Task::parse(task.name()), Ok(task));
        }
        let err = Task::parse("listopz").unwrap_err();
        assert!(err.contains("listops"), "{err}");
        assert!(Preset::parse("huge").unwrap_err().contains("tiny, quick, lra"));
        for preset in Preset::ALL {
            assert_eq!(preset.to_string().parse::<Preset>(), Ok(preset));
        }
        // The command line documents `quick` as the preset when none is given (the run
        // command takes `Preset::default()`).
        assert_eq!(Preset::default(), Preset::Quick);
    }
}
