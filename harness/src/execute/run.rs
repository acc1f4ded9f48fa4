//! One run: a configuration's data prepared, the model trained, and its run folder written
//! (`config.json`, `metrics.csv`, `result.json`) under the run's claim.

use std::io::IsTerminal;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::execute::device::open;
use crate::execute::train::{self, Progress};
use crate::records::claim;
use crate::records::device_name::DeviceName;
use crate::records::files::{json_bytes, write_atomically, write_json_atomically};
use crate::records::run_config::RunConfig;
use crate::records::run_record::{self, Failure, Outcome, RunRecord};

/// Exit code of a run that was recorded as failed (diverged, panicked, ...).
pub const EXIT_RUN_FAILED: u8 = 1;

/// Exit code of a run that another live process is training (its claim is held).
pub const EXIT_CLAIMED: u8 = 3;

/// When a run replaces a record its folder already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    Never,
    /// Only a failed record.
    Failed,
    /// A failed record, or one of another commit than this binary's.
    FailedOrStale,
    Always,
}

/// What [`execute`] did.
#[derive(Debug)]
pub enum Executed {
    /// The run's record: new, or the one already there.
    Recorded(Box<RunRecord>),
    /// Another live process holds the run's claim: nothing was done.
    Elsewhere(claim::Holder),
}

/// Runs `config` on `placed_on` (its configuration's device, or another of the same
/// backend where a sweep placed it) and writes its folder, holding the run's claim while
/// it does; returns the record (the existing one where the folder holds one that `replace`
/// keeps), or who else is running it.
pub fn execute(
    config: &RunConfig,
    placed_on: DeviceName,
    results: &Path,
    data_dir: &Path,
    replace: Replace,
    quiet: bool,
) -> anyhow::Result<Executed> {
    let started = Instant::now();
    config.device.check_placement(placed_on).map_err(anyhow::Error::msg)?;
    // Before the run's folder exists: a device that cannot run leaves nothing behind.
    crate::execute::device::check(placed_on).map_err(anyhow::Error::msg)?;
    crate::execute::memory::check_fits(config)?;
    let run_id = run_record::run_id(config);
    let dir = run_record::run_dir(results, &run_id);
    let result_path = dir.join("result.json");
    let _claim = match claim::take(&dir)? {
        Ok(claim) => claim,
        Err(holder) => return Ok(Executed::Elsewhere(holder)),
    };
    // Read under the claim: a record written meanwhile by another process counts.
    if result_path.exists() {
        let existing = run_record::read_record(&result_path);
        let keep = match (replace, &existing) {
            (Replace::Always, _) => false,
            (Replace::Failed, Ok(record)) => record.is_ok(),
            (Replace::FailedOrStale, Ok(record)) => {
                record.is_ok() && record.environment.git_commit == crate::records::environment::build_commit()
            }
            (Replace::Failed | Replace::FailedOrStale, Err(_)) => false,
            (Replace::Never, _) => true,
        };
        if keep {
            eprintln!("{} already holds a record of this configuration (use --force to run it again)", dir.display());
            return existing.map(|record| Executed::Recorded(Box::new(record)));
        }
    }
    let device = open(placed_on).map_err(anyhow::Error::msg)?;
    if let Some(how) = config.task.data.how_to_fetch() {
        eprintln!(
            "note: the released {} data is not under {}: training on a synthetic stand-in of the same shape (recorded as such). To use the real data: {how}",
            config.task.name.name(),
            data_dir.display()
        );
    }
    let splits = config.task.prepare(data_dir).with_context(|| format!("preparing the {} data", config.task.name.name()))?;
    if splits.train.is_empty() || splits.validation.is_empty() || splits.test.is_empty() {
        bail!(
            "the {} data has an empty split (train {}, validation {}, test {})",
            config.task.name.name(),
            splits.train.len(),
            splits.validation.len(),
            splits.test.len()
        );
    }
    write_json_atomically(&dir.join("config.json"), config)?;
    // One line at the start and one at the end of every training, in the run's log.
    eprintln!("[run {run_id}] training");

    // An allocation that fails in training aborts the process (a global allocator cannot
    // unwind): the failed record it leaves is rendered now, while memory is there.
    let detail = "an allocation failed during training and the process aborted (record written by the allocator)";
    let out_of_memory = RunRecord::failed(config, Failure::OutOfMemory { detail: detail.into() }, 0.0).placed_on(placed_on);
    let armed = crate::execute::memory::arm_out_of_memory_record(json_bytes(&out_of_memory)?, &result_path)?;
    let mut progress = Reporter::new(config, quiet);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        inject_test_fault(config);
        train::train(config, &splits, &device, &mut progress)
    }));
    drop(armed);
    progress.finish();
    let (mut outcome, metrics) = outcome.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        let outcome = Outcome {
            memory_source: "not measured (the run failed)".into(),
            peak_rss_bytes: crate::execute::memory::peak_rss_bytes(),
            ..Outcome::failed(Failure::Panicked { message }, 0.0)
        };
        (outcome, Vec::new())
    });
    // What the run knows beside training: its test split, and its time from the start.
    outcome.test_majority_rate = Some(crate::records::chance::majority_rate(&splits.test));
    outcome.test_examples = Some(splits.test.len());
    outcome.wall_seconds = started.elapsed().as_secs_f64();

    write_atomically(&dir.join("metrics.csv"), &run_record::metrics_csv(&metrics)?)?;
    let peak = crate::records::machine::peak_of(placed_on, &device.adapter);
    let utilisation =
        crate::records::machine::Utilisation::of(config.step_flops(), Some(outcome.train_steps_per_second), peak.as_ref());
    let environment = crate::records::environment::capture(&device.adapter, device.driver.as_ref(), peak);
    let record = RunRecord::new(config, outcome, utilisation, environment).placed_on(placed_on);
    write_json_atomically(&result_path, &record)?;
    eprintln!("[run {}] recorded", record.run_id);
    Ok(Executed::Recorded(Box::new(record)))
}

/// A fault switch for tests of failure handling: `LRA_TEST_FAULT=panic@<task>/<model>`
/// makes that run panic as it starts training (recorded by the run itself), and
/// `abort@<task>/<model>` aborts the process (as a crash or a kill would: the run
/// cannot record anything, and whoever started it must); `oom@<task>/<model>` asks for
/// an allocation no machine can give (the allocator writes the prepared failed record).
fn inject_test_fault(config: &RunConfig) {
    let Ok(fault) = std::env::var("LRA_TEST_FAULT") else { return };
    let target = format!("{}/{}", config.task.name.name(), config.model);
    match fault.split_once('@') {
        Some(("panic", t)) if t == target => panic!("fault injected by LRA_TEST_FAULT for {target}"),
        Some(("abort", t)) if t == target => {
            eprintln!("aborting: fault injected by LRA_TEST_FAULT for {target}");
            std::process::abort()
        }
        Some(("oom", t)) if t == target => {
            // 64 TiB: more than any address space allows, so the allocator sees a null.
            let impossible = vec![0u8; 1 << 46];
            std::hint::black_box(impossible);
        }
        _ => {}
    }
}

/// A progress bar on a terminal; one line per evaluation otherwise.
struct Reporter {
    bar: Option<ProgressBar>,
    label: String,
}

impl Reporter {
    fn new(config: &RunConfig, quiet: bool) -> Self {
        let label = format!("{} {} seed {}", config.task.name.name(), config.model, config.seed);
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(config.task.training.steps as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps | {msg} | ETA {eta}")
                    .expect("the template is valid")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.clone());
            bar
        });
        Self { bar, label }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

impl Progress for Reporter {
    fn step(&mut self, step: usize, loss: f64, train_acc: f64, steps_per_second: f64) {
        if let Some(bar) = &self.bar {
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.4} acc {train_acc:.3} {steps_per_second:.2} steps/s"));
        }
    }

    fn evaluated(&mut self, step: usize, val_acc: f64, best: f64) {
        let line = format!("{}: step {step}: validation accuracy {val_acc:.4} (best {best:.4})", self.label);
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}
