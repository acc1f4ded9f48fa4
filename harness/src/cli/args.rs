//! The command line's types: every subcommand, its flags and its help, with examples
//! (`after_help`) that a test parses.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use lra_datasets::pathfinder::Difficulty;
use lra_models::Variant;
use lra_tasks::{Preset, Task};

use crate::records::device_name::DeviceName;

#[derive(Debug, Parser)]
#[command(
    name = "lra",
    version,
    about = "Train and compare efficient Transformers on the Long Range Arena",
    arg_required_else_help = true,
    after_help = START_HERE
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train one model on one task and write its run record.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Print the resolved configuration of a run, as its config.json would hold it.
    #[command(after_help = CONFIG_EXAMPLES)]
    Config(ConfigArgs),
    /// Train every model on every task (each run in its own process), then write the report.
    #[command(after_help = SWEEP_EXAMPLES)]
    Sweep(SweepArgs),
    /// Time and measure the memory of training steps per model and sequence length (LRA's Table 2).
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(BenchArgs),
    /// One benchmark measurement in this process (what `lra bench` runs in each child).
    #[command(hide = true)]
    BenchCell(BenchCellArgs),
    /// Measure a GPU in one command: its driver, the step benchmark beside LRA's Table 2, a
    /// quick run, and the time of a full LRA sweep projected from 300 steps.
    #[command(after_help = GPU_CHECK_EXAMPLES)]
    GpuCheck(GpuCheckArgs),
    /// Write the comparison report (Markdown, HTML, CSV, plots) from a results folder.
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Prepare, inspect, preview, export or fetch a task's data.
    #[command(after_help = DATA_EXAMPLES)]
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
    /// List models, tasks, presets or devices.
    #[command(after_help = LIST_EXAMPLES)]
    List {
        #[arg(value_enum)]
        what: ListWhat,
    },
}

/// What `lra` alone and `lra --help` end with: the one command to start with.
const START_HERE: &str = "\
Start here (from a clone: `cargo run --release -- sweep`):
  lra sweep
      every model on every task at the quick preset (about 34 minutes on 2 cores), then a
      step benchmark and the comparison report in reports/report.html; resumable.

One run, in under a minute:
  lra run --task listops --model transformer

The first time on a GPU: its driver, its speed, and what a full LRA sweep would take there:
  lra gpu-check --device cuda

Each command's --help ends with examples; the manual is in docs/ and results/README.md.";

const RUN_EXAMPLES: &str = "\
Examples:
  lra run --task listops --model transformer
  lra run --task text --model performer --preset lra --seed 1 --device wgpu
  lra run --config results/runs/<run-id>/config.json --seed 2";

const CONFIG_EXAMPLES: &str = "\
Examples:
  lra config --task image --model linformer
  lra config --task retrieval --model local --preset lra --explain
  lra config --task listops --model reformer --variant paper";

const SWEEP_EXAMPLES: &str = "\
Examples:
  lra sweep
  lra sweep --preset tiny --models transformer,linear,bag --tasks listops --out reports/tiny
  lra sweep --preset lra --device cuda --devices 0,1,2,3 --tasks text,retrieval
  lra sweep --preset lra --device cuda --slurm --gres gpu:1 --time 24:00:00 --wait";

const BENCH_EXAMPLES: &str = "\
Examples:
  lra bench --lengths 1024,2048 --batch 1 --models transformer,linear,local
  lra bench --scope layer --lengths 4096 --batch 2
  lra bench --device wgpu --batch 32 --cell-timeout 120";

const GPU_CHECK_EXAMPLES: &str = "\
Examples:
  lra gpu-check
  lra gpu-check --device cuda:1 --out gpu-check/h100
  lra gpu-check --smoke --device wgpu --out /tmp/gpu-check-smoke";

const REPORT_EXAMPLES: &str = "\
Examples:
  lra report
  lra report --results results --out reports";

const DATA_EXAMPLES: &str = "\
Examples:
  lra data inspect --task listops
  lra data preview --task pathfinder --out pathfinder.png
  lra data export --task text --format npy --out exported/text
  lra data stats --task pathfinder --count 200
  lra data fetch lra --data data";

const DATA_GENERATE_EXAMPLES: &str = "\
Examples:
  lra data generate --task pathfinder
  lra data generate --task listops --preset lra --seed 1";

const DATA_INSPECT_EXAMPLES: &str = "\
Examples:
  lra data inspect --task retrieval
  lra data inspect --task image --preset tiny";

const DATA_PREVIEW_EXAMPLES: &str = "\
Examples:
  lra data preview --task pathfinder
  lra data preview --task image --count 12 --columns 4 --out image.png";

const DATA_STATS_EXAMPLES: &str = "\
Examples:
  lra data stats --task pathfinder --count 200
  lra data stats --task pathx --count 50 --seed 1 --json pathx-stats.json
  lra data stats --task pathfinder --difficulty baseline
  lra data stats --task pathfinder --size 64 --count 200
  lra data stats --released data/lra_release/pathfinder32/curv_contour_length_14 --size 32
  lra data stats --released original/pathx --size 128 --count 500 --json original-stats.json";

const DATA_EXPORT_EXAMPLES: &str = "\
Examples:
  lra data export --task listops --format tsv --out exported/listops
  lra data export --task image --format npy --examples 100 --out exported/image";

const DATA_FETCH_EXAMPLES: &str = "\
Examples:
  lra data fetch lra
  lra data fetch imdb --data data
  lra data fetch cifar10 --url https://mirror.example.org/cifar-10-binary.tar.gz";

const LIST_EXAMPLES: &str = "\
Examples:
  lra list models
  lra list tasks
  lra list devices";

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub choice: RunChoice,
    /// Results folder.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Run again even when the folder already holds a finished record of this configuration.
    #[arg(long)]
    pub force: bool,
    /// Run again when the folder's record of this configuration is a failure.
    #[arg(long)]
    pub rerun_failed: bool,
    /// Run again when the folder's record of this configuration is a failure or was
    /// written by another version of the code (commit) than this binary.
    #[arg(long)]
    pub rerun_stale: bool,
    /// No progress bar (one line per evaluation instead).
    #[arg(long)]
    pub quiet: bool,
    /// Compute on this device (e.g. cuda:3) instead of the configuration's own, which
    /// must be of the same backend; the configuration and its run id are unchanged, and
    /// the record says where the run was placed (`placed_on`). What `lra sweep` hands each
    /// run when it spreads them over several GPUs.
    #[arg(long, value_name = "DEVICE")]
    pub placed_on: Option<DeviceName>,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub choice: RunChoice,
    /// Beside each value, where it comes from: LRA's file and line, or ours and why.
    #[arg(long)]
    pub explain: bool,
}

/// Which run: a task, model and preset (or a configuration file), a seed and a device.
#[derive(Debug, Args)]
pub struct RunChoice {
    /// Task name (`lra list tasks`); required unless --config is given.
    #[arg(long)]
    pub task: Option<Task>,
    /// Model name (`lra list models`); required unless --config is given.
    #[arg(long)]
    pub model: Option<String>,
    /// Preset: tiny, quick (default) or lra.
    #[arg(long)]
    pub preset: Option<Preset>,
    /// Training seed (initialisation, dropout, batch order).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Device: flex (default), ndarray, wgpu, wgpu:N, cuda or cuda:N (`lra list devices`).
    #[arg(long)]
    pub device: Option<DeviceName>,
    /// lra (every preset's) or paper: the form of a mechanism whose paper and LRA's released
    /// code compute different things (`lra list models`).
    #[arg(long)]
    pub variant: Option<Variant>,
    /// A run's config.json to repeat; --seed and --device given beside it override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data folder: released files (lra_release/, aclImdb/, cifar-10-batches-bin/) and the prepared-data cache.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ListWhat {
    Models,
    Tasks,
    Presets,
    Devices,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Preset of every run.
    #[arg(long, default_value_t)]
    pub preset: Preset,
    /// Tasks to sweep (comma-separated); all but pathx when absent.
    #[arg(long, value_delimiter = ',')]
    pub tasks: Option<Vec<Task>>,
    /// Models to sweep (comma-separated); all when absent.
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Seeds per (task, model), 0..N, for every model; when absent, 3 for the baseline
    /// (its spread over seeds is the report's noise floor) and 1 for every other model.
    #[arg(long)]
    pub seeds: Option<u64>,
    /// lra (every preset's) or paper, for the models whose mechanism has both forms.
    #[arg(long)]
    pub variant: Option<Variant>,
    /// Runs at once, each computing on its share of the cores (RAYON_NUM_THREADS, unless set);
    /// on a CPU two where there are two cores or more; on GPUs one per device, and never more
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Device: flex, ndarray, wgpu, wgpu:N, cuda or cuda:N (`lra list devices`). `cuda`
    /// places the runs on every GPU the driver reports, one run on each at a time; `cuda:N`
    /// (`cuda:0` too) on that one.
    #[arg(long, default_value = "flex")]
    pub device: SweepDevice,
    /// GPUs to place the runs on, by number (e.g. 0,1,2,3), one run on each at a time:
    /// cuda:N with --device cuda, wgpu:N (the N-th discrete GPU) with --device wgpu. Each
    /// run records where it ran (`placed_on`); its run id does not depend on it.
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub devices: Option<Vec<usize>>,
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Data folder (released files and the prepared-data cache).
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Where the report goes.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Stop a run that takes longer than this many seconds (recorded as timed out).
    #[arg(long, value_parser = positive_seconds)]
    pub run_timeout: Option<f64>,
    /// Print one `lra run ...` line per pending run instead of running them.
    #[arg(long)]
    pub print_commands: bool,
    /// Run again the configurations whose record is a failure (by default a sweep keeps
    /// every record, failed or not).
    #[arg(long)]
    pub retry_failed: bool,
    /// Run again the configurations whose record another version of the code (commit)
    /// wrote, so that no table mixes code versions.
    #[arg(long)]
    pub rerun_stale: bool,
    /// Do not write the report at the end.
    #[arg(long)]
    pub no_report: bool,
    /// Do not benchmark the models' training steps after the runs (Table 2).
    #[arg(long)]
    pub no_bench: bool,
    /// Hand the missing runs (never run, or failed) to Slurm as one job array instead of
    /// running them here; prints the job id.
    #[arg(long)]
    pub slurm: bool,
    /// With --slurm: write the job script and print it, without submitting.
    #[arg(long, requires = "slurm")]
    pub dry_run: bool,
    /// With --slurm: wait for the array to finish, then write the report.
    #[arg(long, requires = "slurm", conflicts_with = "dry_run")]
    pub wait: bool,
    /// With --slurm: the partition (`sbatch --partition`).
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// With --slurm: the time limit of each run (`sbatch --time`, e.g. 01:00:00).
    #[arg(long, requires = "slurm")]
    pub time: Option<String>,
    /// With --slurm: CPUs per run (`sbatch --cpus-per-task`).
    #[arg(long, requires = "slurm")]
    pub cpus_per_task: Option<usize>,
    /// With --slurm: memory per run (`sbatch --mem`, e.g. 8G).
    #[arg(long, requires = "slurm")]
    pub mem: Option<String>,
    /// With --slurm: generic resources per run (`sbatch --gres`, e.g. gpu:1); gpu:1 for a
    /// GPU device when absent (`none` asks for none).
    #[arg(long, requires = "slurm")]
    pub gres: Option<String>,
    /// With --slurm: at most this many runs at once (`--array=...%K`).
    #[arg(long, requires = "slurm")]
    pub max_parallel: Option<usize>,
}

/// A sweep's `--device`: the device, and whether its name gave a device number (`cuda:0`
/// is one GPU; `cuda`, the same device name, places the runs on every GPU there is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepDevice {
    pub name: DeviceName,
    pub numbered: bool,
}

impl std::str::FromStr for SweepDevice {
    type Err = String;

    fn from_str(text: &str) -> Result<SweepDevice, String> {
        Ok(SweepDevice { name: DeviceName::parse(text)?, numbered: text.contains(':') })
    }
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Sequence lengths (comma-separated).
    #[arg(long, default_value = "1024,2048,3072,4096", value_delimiter = ',')]
    pub lengths: Vec<usize>,
    /// Batch size (LRA's Table 2 used 32).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Models (comma-separated); all when absent, the Transformer first.
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Device: flex, ndarray, wgpu, wgpu:N, cuda or cuda:N (`lra list devices`).
    #[arg(long, default_value = "flex")]
    pub device: DeviceName,
    /// What to time: a whole training step, or one attention layer (forward and backward).
    #[arg(long, value_enum, default_value = "step")]
    pub scope: crate::records::bench_record::Scope,
    /// lra (LRA's Text settings and code) or paper (the mechanism's defaults), for the
    /// models whose mechanism has both forms.
    #[arg(long, default_value_t = Variant::Lra)]
    pub variant: Variant,
    #[arg(long, default_value_t = 1)]
    pub warmup_steps: usize,
    #[arg(long, default_value_t = 3)]
    pub timed_steps: usize,
    /// Limit for each measurement, in seconds (past it: recorded as timed out).
    #[arg(long, default_value_t = 600.0, value_parser = positive_seconds)]
    pub cell_timeout: f64,
    /// Start no new measurement after this many seconds in all (the rest: not run).
    #[arg(long, value_parser = positive_seconds)]
    pub budget: Option<f64>,
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
}

#[derive(Debug, Args)]
pub struct BenchCellArgs {
    #[arg(long)]
    pub model: String,
    #[arg(long)]
    pub length: usize,
    #[arg(long)]
    pub batch: usize,
    #[arg(long)]
    pub device: DeviceName,
    #[arg(long, value_enum)]
    pub scope: crate::records::bench_record::Scope,
    #[arg(long)]
    pub variant: Variant,
    #[arg(long)]
    pub warmup_steps: usize,
    #[arg(long)]
    pub timed_steps: usize,
}

#[derive(Debug, Args)]
pub struct GpuCheckArgs {
    /// The GPU: wgpu, wgpu:N, cuda or cuda:N (`lra list devices`); the CPU devices are refused.
    #[arg(long, default_value = "wgpu")]
    pub device: DeviceName,
    /// Where summary.md, summary.json and the records (results/) go; a check run again
    /// into the same folder measures only what is missing there.
    #[arg(long, default_value = "gpu-check")]
    pub out: PathBuf,
    /// Data folder (released files and the prepared-data cache).
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Tiny sizes (one short length at batch 2, the tiny run, 3 steps): a test of the
    /// command that finishes on a software Vulkan driver in minutes.
    #[arg(long)]
    pub smoke: bool,
    /// Limit for each benchmark measurement, in seconds (past it: recorded as timed out).
    #[arg(long, default_value_t = 600.0, value_parser = positive_seconds)]
    pub cell_timeout: f64,
    /// Limit for each of the two runs, in seconds (past it: recorded as timed out).
    #[arg(long, default_value_t = 3600.0, value_parser = positive_seconds)]
    pub run_timeout: f64,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum DataAction {
    /// Prepare a task's splits into the data folder's cache (as `lra run` does on first use).
    #[command(after_help = DATA_GENERATE_EXAMPLES)]
    Generate(DataArgs),
    /// Print, per split, the count, length distribution and label balance.
    #[command(after_help = DATA_INSPECT_EXAMPLES)]
    Inspect(DataArgs),
    /// Write a PNG grid of samples with their labels (image tasks: pathfinder, pathx, image).
    #[command(after_help = DATA_PREVIEW_EXAMPLES)]
    Preview {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, default_value_t = 24)]
        count: usize,
        #[arg(long, default_value_t = 6)]
        columns: usize,
        /// The PNG file (default: <task>-preview.png).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print per-image statistics of Pathfinder images (dashes, lit fractions, grey
    /// levels, markers, label balance), of this generator (--task) or of a folder in the
    /// released layout (--released), to compare the two.
    #[command(after_help = DATA_STATS_EXAMPLES)]
    Stats(StatsArgs),
    /// Write a prepared task into the folder --out: `npy`, the arrays a run trains,
    /// validates and tests on (token ids as the model sees them, labels, task.json), for
    /// any framework; `tsv`, the released format (ListOps and AAN TSVs).
    #[command(after_help = DATA_EXPORT_EXAMPLES)]
    Export {
        #[command(flatten)]
        data: DataArgs,
        /// npy or tsv.
        #[arg(long, default_value = "tsv")]
        format: String,
        #[arg(long)]
        out: PathBuf,
        /// With --format npy: only the first N examples of each split (all when absent).
        #[arg(long, value_name = "N", value_parser = positive_count)]
        examples: Option<usize>,
    },
    /// Download, check and unpack a released archive: lra, imdb or cifar10.
    #[command(after_help = DATA_FETCH_EXAMPLES)]
    Fetch {
        name: String,
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Download from this mirror instead of the official address; the archive is
        /// checked against the same digest (published, or recorded at its first fetch).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct DataArgs {
    #[arg(long)]
    pub task: Task,
    #[arg(long, default_value_t)]
    pub preset: Preset,
    /// Seed of the data (generators, stand-ins, and the seeded splits of the released IMDb
    /// and Pathfinder files); the preset's when absent.
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
}

/// The images `lra data stats` measures: the generator's (`--task`) or a released
/// folder's (`--released DIR --size N`).
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The generator of pathfinder (32x32) or pathx (128x128).
    #[arg(long, required_unless_present = "released", conflicts_with = "released")]
    pub task: Option<Task>,
    /// The preset whose generator settings are used: lra, tiny and quick's pathx draw at
    /// LRA's settings; quick's pathfinder is the CPU grid.
    #[arg(long, default_value = "lra")]
    pub preset: Preset,
    /// Contour length of the generated images: baseline (6 paddles), 9 or 14 (the
    /// preset's when absent: 14).
    #[arg(long, value_parser = difficulty, conflicts_with = "released")]
    pub difficulty: Option<Difficulty>,
    /// Seed of the generated images (the preset's when absent).
    #[arg(long, conflicts_with = "released")]
    pub seed: Option<u64>,
    /// A folder in the released layout (`metadata/*.npy`, `imgs/<batch>/sample_<i>.png`),
    /// e.g. data/lra_release/pathfinder32/curv_contour_length_14.
    #[arg(long, value_name = "DIR", requires = "size")]
    pub released: Option<PathBuf>,
    /// Side of the images, 32, 64 or 128: of the released folder; with --task, the side
    /// LRA's generator draws at (the preset's when absent; 64 is LRA's Pathfinder-64,
    /// which it released but did not report).
    #[arg(long, value_parser = image_side)]
    pub size: Option<usize>,
    /// Images to measure: the first N (generated: default 1000; released: every listed
    /// image when absent, all-black ones left out).
    #[arg(long, value_name = "N", value_parser = positive_images)]
    pub count: Option<usize>,
    /// Also write the statistics as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// A Pathfinder difficulty by its contour length (`baseline` is 6).
fn difficulty(text: &str) -> Result<Difficulty, String> {
    match text {
        "baseline" | "6" => Ok(Difficulty::Baseline),
        "9" => Ok(Difficulty::Nine),
        "14" => Ok(Difficulty::Fourteen),
        _ => Err(format!("`{text}` is not a difficulty: baseline (6), 9 or 14")),
    }
}

/// The side of LRA's Pathfinder images.
fn image_side(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(side @ (32 | 64 | 128)) => Ok(side),
        _ => Err(format!("`{text}` is not a side of LRA's Pathfinder images: 32, 64 or 128")),
    }
}

/// A count of images of at least one (statistics of no image are a mistake).
fn positive_images(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0 images: give at least 1".to_string()),
        Ok(count) => Ok(count),
        Err(_) => Err(format!("`{text}` is not a count of images")),
    }
}

/// A duration in seconds: a finite number above zero (a time limit of zero, a negative
/// or an infinite one is a mistake, not a request).
fn positive_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text.parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    match seconds.is_finite() && seconds > 0.0 && seconds <= 1e9 {
        true => Ok(seconds),
        false => Err(format!("{text} seconds: a limit must be above 0 and at most 1e9")),
    }
}

/// A count of at least one (exporting zero examples is a mistake, not a request).
fn positive_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0 examples: give at least 1, or leave the option out for every example".to_string()),
        Ok(count) => Ok(count),
        Err(_) => Err(format!("`{text}` is not a count of examples")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_in_seconds_must_be_positive_and_finite() {
        assert_eq!(positive_seconds("2.5"), Ok(2.5));
        for bad in ["-1", "0", "inf", "NaN", "1e300", "soon"] {
            assert!(positive_seconds(bad).is_err(), "{bad}");
        }
        let parsed = Cli::try_parse_from(["lra", "sweep", "--run-timeout=-1"]);
        assert!(parsed.unwrap_err().to_string().contains("above 0"));
    }

    #[test]
    fn an_export_of_zero_examples_is_refused() {
        assert_eq!(positive_count("3"), Ok(3));
        for bad in ["0", "-1", "many"] {
            assert!(positive_count(bad).is_err(), "{bad}");
        }
        let parsed = Cli::try_parse_from(["lra", "data", "export", "--task", "text", "--out", "x", "--examples", "0"]);
        assert!(parsed.unwrap_err().to_string().contains("at least 1"));
    }

    /// Every example that a command's help shows is a command line that parses.
    #[test]
    fn every_help_example_parses() {
        use clap::CommandFactory;
        fn examples(command: &clap::Command, out: &mut Vec<String>) {
            if let Some(help) = command.get_after_help() {
                out.extend(help.to_string().lines().filter_map(|l| l.trim().strip_prefix("lra ").map(str::to_string)));
            }
            for sub in command.get_subcommands() {
                examples(sub, out);
            }
        }
        let mut all = Vec::new();
        let cli = Cli::command();
        examples(&cli, &mut all);
        let shown = |name: &str| cli.find_subcommand(name).and_then(|c| c.get_after_help()).is_some();
        for name in ["run", "config", "sweep", "bench", "gpu-check", "report", "data", "list"] {
            assert!(shown(name), "{name} has no examples");
        }
        assert!(all.len() >= 25, "{all:?}");
        for example in all {
            let words = std::iter::once("lra").chain(example.split_whitespace());
            if let Err(e) = Cli::try_parse_from(words) {
                panic!("`lra {example}` does not parse: {e}");
            }
        }
    }
}
