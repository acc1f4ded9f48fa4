//! What `lra gpu-check` writes beside its records: `summary.json`, the first measurements
//! of a device in one file (its name and driver, a step benchmark beside LRA's Table 2,
//! a quick run, a shortened LRA run and the time of a full LRA sweep projected from it),
//! and the projection itself ([`project`]), computed from configurations alone.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::records::environment::Environment;
use crate::records::run_config::RunConfig;

/// The whole of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuCheckSummary {
    /// Whether the check ran at `--smoke` sizes (tiny: a test of the command, whose figures
    /// say nothing of the device).
    pub smoke: bool,
    /// The command line that wrote this summary.
    pub command: String,
    pub device: DeviceReport,
    /// The machine, the build's features and the binary's commit.
    pub environment: Environment,
    pub bench: BenchSummary,
    /// The quick ListOps run (at `--smoke`, the tiny one).
    pub quick_run: RunSummary,
    /// ListOps at LRA's configuration, cut to a few hundred steps (at `--smoke`, the tiny
    /// preset cut to a few steps): its speed is what the projection scales.
    pub short_run: RunSummary,
    /// The projected time of a full sweep; absent where the shortened run measured no speed.
    pub projection: Option<Projection>,
    /// Seconds the whole check took.
    pub wall_seconds: f64,
}

/// The device the check measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// As the command line names it: `wgpu`, `cuda:1`.
    pub name: String,
    pub backend: String,
    /// The adapter as the runtime names it.
    pub adapter: String,
    /// What is known of the driver, in words.
    pub driver: String,
}

/// The step benchmark: one row per (model, length).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchSummary {
    /// The benchmark record's id, and its file (under the check's results folder).
    pub bench_id: Option<String>,
    pub record: Option<String>,
    pub lengths: Vec<usize>,
    pub batch: usize,
    pub rows: Vec<BenchRow>,
    /// Why the benchmark could not run at all (a cell that failed says so in its row).
    pub error: Option<String>,
}

/// One cell of the benchmark, beside LRA's published figure where there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    pub model: String,
    pub length: usize,
    /// `ok`, or the failure in words (`timed out: after 600 s`).
    pub status: String,
    pub steps_per_second: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
    pub mfu: Option<f64>,
    /// LRA's Table 2 (4x4 TPU v3, batch 32), at lengths 1K to 4K.
    pub published_steps_per_second: Option<f64>,
    pub published_memory_gb: Option<f64>,
}

/// One training run of the check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub task: String,
    pub model: String,
    pub preset: String,
    /// The steps run, and the steps the preset trains for (more where the run was cut short).
    pub steps: usize,
    pub preset_steps: usize,
    pub run_id: Option<String>,
    /// The run record (`result.json`, under the check's results folder).
    pub record: Option<String>,
    /// `ok`, or the failure in words.
    pub status: String,
    pub test_accuracy: Option<f64>,
    pub train_steps_per_second: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
    /// Seconds from the start of the run's process to its record, data preparation and
    /// evaluation included.
    pub wall_seconds: Option<f64>,
}

impl RunSummary {
    /// The run of `config`, before its outcome is known (status `not run`).
    pub fn of(config: &RunConfig, preset_steps: usize) -> RunSummary {
        RunSummary {
            task: config.task.name.name().to_string(),
            model: config.model.clone(),
            preset: config.task.preset.name().to_string(),
            steps: config.task.training.steps,
            preset_steps,
            run_id: Some(crate::records::run_record::run_id(config)),
            record: None,
            status: "not run".into(),
            test_accuracy: None,
            train_steps_per_second: None,
            peak_memory_bytes: None,
            wall_seconds: None,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

/// The projected training time of a sweep, and how it was computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// The sweep's preset (`lra`; `tiny` at `--smoke`).
    pub preset: String,
    /// Its runs (every task but Path-X, every model, the baseline on three seeds).
    pub runs: usize,
    /// The measured run the projection scales, its steps per second and FLOPs per step.
    pub reference: String,
    pub reference_steps_per_second: f64,
    pub reference_step_flops: f64,
    /// The sum over the runs, in seconds.
    pub seconds: f64,
    pub per_task: Vec<TaskProjection>,
    /// How it is computed, in words.
    pub method: String,
}

/// The share of one task in a [`Projection`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskProjection {
    pub task: String,
    pub runs: usize,
    pub steps: u64,
    pub seconds: f64,
}

/// The time of training every configuration of `sweep`, projected from one measured run
/// (`reference`, at `steps_per_second`): a run of `s` steps of `f` FLOPs each takes
/// `s / (steps_per_second * reference_flops / f)` seconds, the reference's rate of
/// operations being assumed for every model and length. Training steps only: evaluation
/// and data preparation are left out.
pub fn project(sweep: &[RunConfig], reference: &RunConfig, steps_per_second: f64) -> Projection {
    let reference_flops = reference.step_flops();
    let mut per_task: Vec<TaskProjection> = Vec::new();
    for config in sweep {
        let steps = config.task.training.steps;
        let seconds = steps as f64 * config.step_flops() / (steps_per_second * reference_flops);
        let task = config.task.name.name();
        let index = match per_task.iter().position(|t| t.task == task) {
            Some(index) => index,
            None => {
                per_task.push(TaskProjection { task: task.to_string(), runs: 0, steps: 0, seconds: 0.0 });
                per_task.len() - 1
            }
        };
        let share = &mut per_task[index];
        share.runs += 1;
        share.steps += steps as u64;
        share.seconds += seconds;
    }
    let preset = sweep.first().map_or(reference.task.preset, |c| c.task.preset).name().to_string();
    Projection {
        method: format!(
            "a projection, not a measurement: for each run of the default `lra sweep --preset {preset}` (every task but \
             Path-X, every model, the baseline on three seeds), its configured training steps divided by the measured \
             steps/s of {} scaled by the ratio of the run's FLOPs per step to that run's, summed; that is, every model at \
             every length is assumed to compute at the measured run's FLOP rate. Training steps only: evaluation, data \
             preparation and compilation are left out",
            describe_run(reference)
        ),
        preset,
        runs: sweep.len(),
        reference: describe_run(reference),
        reference_steps_per_second: steps_per_second,
        reference_step_flops: reference_flops,
        seconds: per_task.iter().map(|t| t.seconds).sum(),
        per_task,
    }
}

/// `listops transformer (preset lra, 300 steps)`.
fn describe_run(config: &RunConfig) -> String {
    format!(
        "{} {} (preset {}, {} steps)",
        config.task.name.name(),
        config.model,
        config.task.preset.name(),
        config.task.training.steps
    )
}

/// Where the check writes its summary: `summary.json` and `summary.md` in `out`.
pub fn summary_paths(out: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    (out.join("summary.json"), out.join("summary.md"))
}

/// Reads a `summary.json`.
pub fn load(path: &Path) -> anyhow::Result<GpuCheckSummary> {
    let text = lra_datasets::files::read_text_bounded(path, lra_datasets::files::limit::SMALL_TEXT)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::device_name::DeviceName;
    use lra_tasks::{Preset, Task};

    fn config(task: Task, model: &str) -> RunConfig {
        RunConfig::resolve(task, Preset::Tiny, model, 0, DeviceName::Flex).unwrap()
    }

    /// A sweep of the reference itself takes its steps at the measured speed; a run of
    /// twice the FLOPs per step takes twice as long per step.
    #[test]
    fn a_projection_scales_each_runs_steps_by_its_flops_per_step() {
        let reference = config(Task::Listops, "transformer");
        let steps = reference.task.training.steps as f64;
        let alone = project(std::slice::from_ref(&reference), &reference, 2.0);
        assert_eq!(alone.seconds, steps / 2.0);
        assert_eq!(alone.runs, 1);
        let mut doubled = reference.clone();
        doubled.task.training.batch_size *= 2;
        let ratio = doubled.step_flops() / reference.step_flops();
        assert!((ratio - 2.0).abs() < 0.05, "twice the batch is about twice the work: {ratio}");
        let text = config(Task::Text, "linear");
        let both = project(&[reference.clone(), doubled.clone(), text.clone()], &reference, 2.0);
        let text_seconds = text.task.training.steps as f64 * text.step_flops() / (2.0 * reference.step_flops());
        assert_eq!(both.per_task.len(), 2);
        assert_eq!((both.per_task[0].task.as_str(), both.per_task[0].runs), ("listops", 2));
        assert!((both.per_task[0].seconds - (steps / 2.0) * (1.0 + ratio)).abs() < 1e-9);
        assert!((both.per_task[1].seconds - text_seconds).abs() < 1e-9);
        assert!((both.seconds - both.per_task.iter().map(|t| t.seconds).sum::<f64>()).abs() < 1e-9);
        assert_eq!(both.per_task[0].steps, 2 * reference.task.training.steps as u64);
        assert!(both.method.starts_with("a projection, not a measurement"), "{}", both.method);
        assert_eq!(both.preset, "tiny");
    }
}
