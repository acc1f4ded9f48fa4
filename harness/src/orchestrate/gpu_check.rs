//! `lra gpu-check`: the first measurements of a GPU in one command. It opens the device,
//! benchmarks the training step of four models at LRA's lengths ([`crate::orchestrate::bench`],
//! each cell in its own process), runs a quick ListOps run and ListOps at LRA's
//! configuration cut to a few hundred steps (each a child `lra run`, as a sweep runs them,
//! [`crate::orchestrate::sweep::run_child`]), projects the time of a full LRA sweep from
//! the second, and writes `summary.json` and `summary.md`. Every record goes under the
//! check's own results folder, so nothing mixes with a user's results. A step that fails
//! is said so in the summary and the check goes on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lra_models::Variant;
use lra_tasks::{Preset, Task};

use crate::execute::device::{OpenDevice, driver_words};
use crate::orchestrate::bench::{self, BenchSpec};
use crate::orchestrate::sweep::{self, RunEnd, SweepSpec};
use crate::records::bench_record::{BenchRecord, Scope, bench_dir};
use crate::records::device_name::DeviceName;
use crate::records::files::write_atomically;
use crate::records::gpu_check::{BenchSummary, DeviceReport, GpuCheckSummary, RunSummary, project, summary_paths};
use crate::records::run_config::RunConfig;
use crate::records::run_record::{self, RunRecord};

/// The models benchmarked: the baseline and three efficient mechanisms of different kinds
/// (kernel-based, kernel with random features, block-local), the Transformer first since
/// the ratios are to it.
pub const MODELS: [&str; 4] = ["transformer", "linear", "local", "performer"];

/// What a check measures.
#[derive(Debug, Clone)]
pub struct GpuCheckSpec {
    pub device: DeviceName,
    /// Where `summary.json`, `summary.md` and `results/` go.
    pub out: PathBuf,
    /// The data folder (released files and the prepared-data cache), shared with the user's runs.
    pub data: PathBuf,
    pub sizes: Sizes,
    /// Limit of each benchmark cell.
    pub cell_timeout: Duration,
    /// Limit of each run.
    pub run_timeout: Duration,
}

/// The sizes of a check: LRA's ([`Sizes::full`]) or a smoke test's ([`Sizes::smoke`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Sizes {
    pub smoke: bool,
    pub lengths: Vec<usize>,
    pub batch: usize,
    pub warmup_steps: usize,
    pub timed_steps: usize,
    /// The preset of the quick run.
    pub quick: Preset,
    /// The preset of the shortened run, and of the sweep projected from it.
    pub projected: Preset,
    /// The steps of the shortened run.
    pub short_steps: usize,
}

impl Sizes {
    /// LRA's Table 2 (1K to 4K at batch 32), a quick run, and 300 steps at preset `lra`.
    pub fn full() -> Sizes {
        let table2 = Preset::Lra.sweep_benchmark();
        Sizes {
            smoke: false,
            lengths: table2.lengths,
            batch: table2.batch,
            warmup_steps: 1,
            timed_steps: table2.timed_steps,
            quick: Preset::Quick,
            projected: Preset::Lra,
            short_steps: 300,
        }
    }

    /// Sizes that finish on a software Vulkan driver in minutes: one short length at
    /// batch 2, the tiny run, and 3 steps of the tiny preset. On such a driver each
    /// process spends about a minute compiling its kernels whatever the sizes, so the
    /// processes are kept few: one length, four cells.
    pub fn smoke() -> Sizes {
        Sizes {
            smoke: true,
            lengths: vec![64],
            batch: 2,
            warmup_steps: 1,
            timed_steps: 1,
            quick: Preset::Tiny,
            projected: Preset::Tiny,
            short_steps: 3,
        }
    }
}

/// Refuses a CPU device: the check is for GPUs.
pub fn refuse_cpu(device: DeviceName) -> anyhow::Result<()> {
    match device {
        DeviceName::Flex | DeviceName::Ndarray => anyhow::bail!(
            "--device {device}: `lra gpu-check` measures a GPU (wgpu, wgpu:N, cuda, cuda:N); on the CPU, `lra bench \
             --device {device}` benchmarks the training step and `lra sweep` runs the models"
        ),
        DeviceName::Wgpu(_) | DeviceName::Cuda(_) => Ok(()),
    }
}

/// The shortened run: ListOps Transformer at `sizes.projected`, its steps cut to
/// `sizes.short_steps` (its configuration differs, and so does its run id, from the full
/// run's), with the steps it does not time cut to fit; and the preset's own step count.
pub fn short_config(sizes: &Sizes, device: DeviceName, data: &Path) -> anyhow::Result<(RunConfig, usize)> {
    let mut config = RunConfig::resolve(Task::Listops, sizes.projected, lra_models::BASELINE, 0, device)?.prefer_released(data);
    let training = &mut config.task.training;
    let preset_steps = training.steps;
    training.steps = sizes.short_steps.min(preset_steps);
    training.warmup_steps_untimed = training.warmup_steps_untimed.min(training.steps.saturating_sub(1) / 2);
    config.validate()?;
    Ok((config, preset_steps))
}

/// The runs of the default sweep at `preset` on `device`: every task but Path-X (as
/// `lra sweep` without `--tasks`), every model, the baseline on three seeds.
pub fn default_sweep(preset: Preset, device: DeviceName, data: &Path) -> anyhow::Result<Vec<RunConfig>> {
    sweep::plan(&SweepSpec {
        preset,
        tasks: sweep::default_tasks(),
        models: lra_models::MODELS.iter().map(|m| m.name.to_string()).collect(),
        seeds: None,
        device,
        data_dir: data.to_path_buf(),
        variant: None,
    })
}

/// What a check did: its summary, and whether it measured anything at all.
#[derive(Debug)]
pub struct Checked {
    pub summary: GpuCheckSummary,
    /// `summary.md`, as written.
    pub markdown: String,
    pub measured_anything: bool,
}

/// Runs the check on the opened `device`, with `exe` as the binary of the children;
/// writes the summary (and prints progress on stderr). An error only where the summary
/// itself cannot be written; every step's failure is in the summary.
pub fn run(exe: &Path, spec: &GpuCheckSpec, device: &OpenDevice, command: String) -> anyhow::Result<Checked> {
    let started = Instant::now();
    let results = spec.out.join("results");
    let sizes = &spec.sizes;
    let environment = crate::records::environment::capture(
        &device.adapter,
        device.driver.as_ref(),
        crate::records::machine::peak_of(spec.device, &device.adapter),
    );
    let device_report = DeviceReport {
        name: spec.device.to_string(),
        backend: spec.device.backend().name().to_string(),
        adapter: device.adapter.clone(),
        driver: driver_words(device),
    };
    eprintln!("gpu-check: {} ({}); {}", device_report.adapter, device_report.name, device_report.driver);

    eprintln!("gpu-check: 1/3 training steps of {} at lengths {:?}, batch {}", MODELS.join(", "), sizes.lengths, sizes.batch);
    let (bench, bench_record) = benchmark(exe, spec, &results);

    let quick = RunConfig::resolve(Task::Listops, sizes.quick, lra_models::BASELINE, 0, spec.device)
        .map(|c| c.prefer_released(&spec.data));
    eprintln!("gpu-check: 2/3 a {} ListOps run", sizes.quick.name());
    let quick_run = match quick {
        Ok(config) => {
            let steps = config.task.training.steps;
            train(exe, spec, &results, &config, steps)
        }
        Err(error) => failed_to_configure(Task::Listops, sizes.quick, &error),
    };

    eprintln!("gpu-check: 3/3 ListOps at preset {}, {} steps", sizes.projected.name(), sizes.short_steps);
    let (short_run, projection) = match short_config(sizes, spec.device, &spec.data) {
        Ok((config, preset_steps)) => {
            let run = train(exe, spec, &results, &config, preset_steps);
            let projection = match (run.is_ok(), run.train_steps_per_second) {
                (true, Some(speed)) if speed > 0.0 => match default_sweep(sizes.projected, spec.device, &spec.data) {
                    Ok(sweep) => Some(project(&sweep, &config, speed)),
                    Err(error) => {
                        eprintln!("gpu-check: the sweep to project could not be planned: {error:#}");
                        None
                    }
                },
                _ => None,
            };
            (run, projection)
        }
        Err(error) => (failed_to_configure(Task::Listops, sizes.projected, &error), None),
    };

    let measured_anything = bench.rows.iter().any(|r| r.status == "ok") || quick_run.is_ok() || short_run.is_ok();
    let summary = GpuCheckSummary {
        smoke: sizes.smoke,
        command,
        device: device_report,
        environment,
        bench,
        quick_run,
        short_run,
        projection,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    let (json, markdown) = summary_paths(&spec.out);
    crate::records::files::write_json_atomically(&json, &summary)?;
    let text = crate::report::gpu_check::markdown(&summary, bench_record.as_ref());
    write_atomically(&markdown, text.as_bytes())?;
    Ok(Checked { summary, markdown: text, measured_anything })
}

/// The step benchmark, into `results/bench`; a record that names the check, so that a
/// check run again into the same folder measures only the cells missing (as a restarted
/// sweep does).
fn benchmark(exe: &Path, spec: &GpuCheckSpec, results: &Path) -> (BenchSummary, Option<BenchRecord>) {
    let sizes = &spec.sizes;
    let bench_spec = BenchSpec {
        models: MODELS.iter().map(|m| m.to_string()).collect(),
        variant: Variant::Lra,
        lengths: sizes.lengths.clone(),
        batch: sizes.batch,
        device: spec.device,
        scope: Scope::Step,
        warmup_steps: sizes.warmup_steps,
        timed_steps: sizes.timed_steps,
        cell_timeout: spec.cell_timeout,
        budget: None,
    };
    let id = format!("gpu-check-step-{}-b{}", spec.device.to_string().replace(':', ""), sizes.batch);
    let mut summary = BenchSummary {
        bench_id: Some(id.clone()),
        record: Some(bench_dir(results).join(format!("{id}.json")).display().to_string()),
        lengths: sizes.lengths.clone(),
        batch: sizes.batch,
        rows: Vec::new(),
        error: None,
    };
    match bench::run(exe, &bench_spec, results, bench_spec.command(results), Some(id)) {
        Ok(record) => {
            summary.rows = crate::report::gpu_check::bench_rows(&record);
            (summary, Some(record))
        }
        Err(error) => {
            eprintln!("gpu-check: the benchmark could not run: {error:#}");
            summary.error = Some(format!("{error:#}"));
            (summary, None)
        }
    }
}

/// One run in a child `lra run` (as a sweep runs it), into `results`; a run already
/// recorded there by this commit is not run again.
fn train(exe: &Path, spec: &GpuCheckSpec, results: &Path, config: &RunConfig, preset_steps: usize) -> RunSummary {
    let mut summary = RunSummary::of(config, preset_steps);
    let recorded = sweep::recorded(results, config);
    let record = match recorded {
        sweep::Recorded::Ok => run_record::read_record(&run_record::result_path(results, config)),
        _ => {
            match sweep::run_child(exe, config, recorded, results, &spec.data, Some(spec.device), Some(spec.run_timeout), None) {
                Ok(RunEnd::Recorded { record, .. }) => Ok(*record),
                Ok(RunEnd::Elsewhere { holder }) => Err(anyhow::anyhow!("another process is training this run ({holder})")),
                Err(error) => Err(error),
            }
        }
    };
    summary.record = Some(run_record::result_path(results, config).display().to_string());
    match record {
        Ok(record) => fill(&mut summary, &record),
        Err(error) => summary.status = format!("could not run: {error:#}"),
    }
    eprintln!(
        "gpu-check: {} {} (preset {}, {} steps): {}",
        summary.task, summary.model, summary.preset, summary.steps, summary.status
    );
    summary
}

/// `summary` with the figures of its run's `record`.
fn fill(summary: &mut RunSummary, record: &RunRecord) {
    let o = &record.outcome;
    summary.status = o.failure.as_ref().map_or_else(|| "ok".to_string(), |f| f.to_string());
    summary.wall_seconds = Some(o.wall_seconds);
    if o.failure.is_none() {
        summary.test_accuracy = o.test_accuracy;
        summary.train_steps_per_second = Some(o.train_steps_per_second);
        summary.peak_memory_bytes = Some(o.peak_memory_bytes);
    }
}

/// A run whose configuration could not be resolved.
fn failed_to_configure(task: Task, preset: Preset, error: &anyhow::Error) -> RunSummary {
    RunSummary {
        task: task.name().to_string(),
        model: lra_models::BASELINE.to_string(),
        preset: preset.name().to_string(),
        steps: 0,
        preset_steps: 0,
        run_id: None,
        record: None,
        status: format!("could not be configured: {error:#}"),
        test_accuracy: None,
        train_steps_per_second: None,
        peak_memory_bytes: None,
        wall_seconds: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_devices_are_refused_with_the_command_that_measures_them() {
        for device in [DeviceName::Flex, DeviceName::Ndarray] {
            let refusal = refuse_cpu(device).unwrap_err().to_string();
            assert!(refusal.contains(&format!("`lra bench --device {device}`")), "{refusal}");
            assert!(refusal.starts_with(&format!("--device {device}: `lra gpu-check` measures a GPU")), "{refusal}");
        }
        assert!(refuse_cpu(DeviceName::Wgpu(None)).is_ok() && refuse_cpu(DeviceName::Cuda(1)).is_ok());
    }

    /// The shortened run is LRA's ListOps Transformer but for its steps: another run id,
    /// the record's configuration saying 300 steps, every other value LRA's.
    #[test]
    fn the_shortened_run_is_lras_listops_cut_to_300_steps() {
        let data = Path::new("no-data-here");
        let (short, preset_steps) = short_config(&Sizes::full(), DeviceName::Wgpu(None), data).unwrap();
        let full = RunConfig::resolve(Task::Listops, Preset::Lra, "transformer", 0, DeviceName::Wgpu(None)).unwrap();
        assert_eq!(short.task.training.steps, 300);
        assert_eq!(preset_steps, full.task.training.steps);
        assert!(preset_steps > 300, "{preset_steps}");
        assert_ne!(run_record::run_id(&short), run_record::run_id(&full));
        let mut back = short.clone();
        back.task.training.steps = full.task.training.steps;
        back.task.training.warmup_steps_untimed = full.task.training.warmup_steps_untimed;
        assert_eq!(back, full, "only the steps differ");
        // The smoke run: 3 steps, one of them untimed, so that two are timed.
        let (smoke, _) = short_config(&Sizes::smoke(), DeviceName::Wgpu(None), data).unwrap();
        assert_eq!((smoke.task.training.steps, smoke.task.training.warmup_steps_untimed), (3, 1));
    }

    /// The projected sweep is the default sweep: every task but Path-X, every model, the
    /// baseline on three seeds.
    #[test]
    fn the_projected_sweep_is_the_default_one() {
        let sweep = default_sweep(Preset::Lra, DeviceName::Wgpu(None), Path::new("no-data-here")).unwrap();
        let tasks = Task::ALL.len() - 1;
        assert_eq!(sweep.len(), tasks * (lra_models::MODELS.len() + 2));
        assert!(sweep.iter().all(|c| c.task.name != Task::Pathx && c.task.preset == Preset::Lra));
    }
}
