//! `lra bench`: LRA's Table 2 for this machine — the time and peak memory of a training
//! step (or of one attention layer) per model and sequence length, each relative to
//! the vanilla Transformer at the same length. Every measurement runs in its own
//! process, so one model's memory never counts towards another's, and a length that
//! runs out of memory or time is recorded as such instead of ending the benchmark.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use lra_models::Variant;

use crate::execute::device::open;
use crate::orchestrate::child;
use crate::records::bench_record::{
    BenchRecord, CellSpec, Measurement, Scope, describe, failed_cell, load, record_path, relate_to_transformer, save,
    table2_task, variant_of,
};
use crate::records::device_name::DeviceName;
use crate::records::run_record::Failure;

/// Whether a cell that ended so rules out the longer sequences of its model: they would
/// only cost more time and memory and end the same way, so they are not tried.
fn rules_out_longer(failure: &Failure) -> bool {
    matches!(failure, Failure::OutOfMemory { .. } | Failure::TimedOut { .. })
}

/// Runs one cell in a child process (`exe bench-cell ...`) within `timeout`.
pub fn measure_in_child(exe: &Path, spec: &CellSpec, timeout: Duration) -> anyhow::Result<Measurement> {
    let oom = child::OomWatch::start();
    let mut command = Command::new(exe);
    command
        .args([
            "bench-cell",
            "--model",
            &spec.model,
            "--variant",
            spec.variant.name(),
            "--length",
            &spec.length.to_string(),
            "--batch",
            &spec.batch.to_string(),
            "--device",
            &spec.device.to_string(),
            "--scope",
            spec.scope.name(),
            "--warmup-steps",
            &spec.warmup_steps.to_string(),
            "--timed-steps",
            &spec.timed_steps.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = child::prepare(&mut command).spawn().with_context(|| format!("starting {}", exe.display()))?;
    let started = Instant::now();
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let status = child::wait(&mut child, started, Some(timeout))?;
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    Ok(match status {
        None => failed_cell(spec, Failure::TimedOut { seconds: timeout.as_secs_f64() }),
        Some(status) if status.success() => match out.lines().rev().find(|l| l.starts_with('{')) {
            Some(line) => serde_json::from_str(line).with_context(|| format!("reading the child's measurement `{line}`"))?,
            None => failed_cell(spec, Failure::Crashed { detail: "the child printed no measurement".into() }),
        },
        Some(status) => failed_cell(spec, child::classify(status, &child::last_line(&err), oom.fired())),
    })
}

/// What `lra bench` measures.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchSpec {
    pub models: Vec<String>,
    /// The form measured of the mechanisms that have two.
    pub variant: Variant,
    pub lengths: Vec<usize>,
    pub batch: usize,
    pub device: DeviceName,
    pub scope: Scope,
    pub warmup_steps: usize,
    pub timed_steps: usize,
    /// Limit for each measurement.
    pub cell_timeout: Duration,
    /// No new measurement starts after this much time in all.
    pub budget: Option<Duration>,
}

impl BenchSpec {
    /// The `lra bench` command line that measures this benchmark into `results`.
    pub fn command(&self, results: &Path) -> String {
        let joined = |items: Vec<String>| items.join(",");
        let mut command = format!(
            "lra bench --lengths {} --batch {} --models {} --device {} --scope {} --variant {} --warmup-steps {} \
             --timed-steps {} --cell-timeout {}",
            joined(self.lengths.iter().map(usize::to_string).collect()),
            self.batch,
            joined(self.models.clone()),
            self.device,
            self.scope.name(),
            self.variant,
            self.warmup_steps,
            self.timed_steps,
            self.cell_timeout.as_secs_f64(),
        );
        if let Some(budget) = self.budget {
            command.push_str(&format!(" --budget {}", budget.as_secs_f64()));
        }
        command + &format!(" --results {}", results.display())
    }
}

/// Runs every (model, length) cell in its own process, saving the record after each one
/// (so a benchmark cut short keeps what it measured), and returns the record.
///
/// `resume_id` names the record: when one by that name exists for the same measurement
/// settings, its measured cells are kept and only the missing ones run (what a sweep
/// restarted after an interruption needs). Without it, a new record named after the time.
pub fn run(
    exe: &Path,
    spec: &BenchSpec,
    results: &Path,
    command: String,
    resume_id: Option<String>,
) -> anyhow::Result<BenchRecord> {
    let started = Instant::now();
    let bench_id = resume_id.clone().unwrap_or_else(|| {
        format!(
            "{}-{}-b{}-{}",
            spec.scope.name(),
            spec.device.to_string().replace(':', ""),
            spec.batch,
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
        )
    });
    // The cells a record of that name already holds, if they were measured the same way.
    let earlier: Vec<Measurement> = match resume_id.as_deref().map(|id| record_path(results, id)) {
        Some(path) if path.is_file() => {
            let r = load(&path)?;
            let same_settings = r.scope == spec.scope
                && r.device == spec.device.to_string()
                && r.batch == spec.batch
                && r.warmup_steps == spec.warmup_steps
                && r.timed_steps == spec.timed_steps;
            if same_settings { r.measurements } else { Vec::new() }
        }
        _ => Vec::new(),
    };
    let (earlier, others) = split_earlier(earlier, &spec.models, spec.variant);
    let device = open(spec.device).map_err(anyhow::Error::msg)?;
    let mut lengths = spec.lengths.clone();
    lengths.extend(others.iter().map(|m| m.length).filter(|l| !spec.lengths.contains(l)));
    lengths.sort_unstable();
    lengths.dedup();
    let model = table2_task().model;
    let mut record = BenchRecord {
        bench_id,
        scope: spec.scope,
        device: spec.device.to_string(),
        batch: spec.batch,
        lengths,
        d_model: model.d_model,
        heads: model.heads,
        layers: if spec.scope == Scope::Step { model.layers } else { 1 },
        d_ff: model.d_ff,
        warmup_steps: spec.warmup_steps,
        timed_steps: spec.timed_steps,
        // Cells of models this run does not measure stay: a record is merged, never cut.
        measurements: others,
        environment: crate::records::environment::capture(
            &device.adapter,
            device.driver.as_ref(),
            crate::records::machine::peak_of(spec.device, &device.adapter),
        ),
        command,
    };
    for model in &spec.models {
        let mut failed_at: Option<(usize, &'static str)> = None;
        for &length in &spec.lengths {
            let cell = CellSpec {
                model: model.clone(),
                variant: spec.variant,
                length,
                batch: spec.batch,
                device: spec.device,
                scope: spec.scope,
                warmup_steps: spec.warmup_steps,
                timed_steps: spec.timed_steps,
            };
            let measured = |m: &&Measurement| m.model == *model && m.variant() == variant_of(model, spec.variant);
            let measurement = if let Some(done) = earlier.iter().filter(measured).find(|m| m.length == length) {
                done.clone()
            } else if let Some((shorter, how)) = &failed_at {
                failed_cell(&cell, Failure::NotRun { reason: format!("{how} at length {shorter}") })
            } else if spec.budget.is_some_and(|b| started.elapsed() > b) {
                failed_cell(&cell, Failure::NotRun { reason: "the benchmark's time budget was spent".into() })
            } else {
                measure_in_child(exe, &cell, spec.cell_timeout)?
            };
            if let Some(failure) = measurement.failure.as_ref().filter(|f| rules_out_longer(f)) {
                failed_at = Some((length, failure.kind_words()));
            }
            let software_rendered = record.software_rendered();
            eprintln!("{}", describe(&measurement, software_rendered));
            record.measurements.push(measurement);
            relate_to_transformer(&mut record.measurements, software_rendered);
            save(results, &record)?;
        }
    }
    Ok(record)
}

/// An earlier record's cells split into those of `models` in `variant` (reused where this
/// run would measure them again) and the others (kept as they are).
fn split_earlier(earlier: Vec<Measurement>, models: &[String], variant: Variant) -> (Vec<Measurement>, Vec<Measurement>) {
    earlier.into_iter().partition(|m| models.contains(&m.model) && m.variant() == variant_of(&m.model, variant))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::bench_record::{Measurement, failed_cell, load, record_path, save, step_record};
    use crate::records::device_name::DeviceName;
    use lra_models::MechanismSettings;
    use lra_models::attention::local::LocalSettings;

    #[test]
    fn a_later_benchmark_of_other_models_merges_into_the_record_and_drops_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let spec = |models: &[&str]| BenchSpec {
            models: models.iter().map(|m| m.to_string()).collect(),
            lengths: vec![32],
            batch: 1,
            device: DeviceName::Flex,
            scope: Scope::Step,
            variant: Variant::Lra,
            warmup_steps: 1,
            timed_steps: 1,
            cell_timeout: Duration::from_secs(1),
            budget: None,
        };
        let cell = |model: &str| {
            let spec = CellSpec {
                model: model.into(),
                variant: Variant::Lra,
                length: 32,
                batch: 1,
                device: DeviceName::Flex,
                scope: Scope::Step,
                warmup_steps: 1,
                timed_steps: 1,
            };
            failed_cell(&spec, Failure::Crashed { detail: format!("{model}'s earlier cell") })
        };
        // An earlier sweep measured transformer, linear and local.
        let earlier = step_record("sweep-bench", vec![32], vec![cell("transformer"), cell("linear"), cell("local")]);
        save(dir.path(), &earlier).unwrap();
        // A later one asks for local alone: its cell is reused (no child starts: the
        // binary given cannot run one), and the other models' cells stay.
        let record =
            run(Path::new("/nonexistent/lra"), &spec(&["local"]), dir.path(), "later".into(), Some("sweep-bench".into()))
                .unwrap();
        let models: Vec<&str> = record.measurements.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(models, ["transformer", "linear", "local"]);
        assert_eq!(load(&record_path(dir.path(), "sweep-bench")).unwrap().measurements.len(), 3);
        // The cells name the settings they measured: LRA's local attention, its block of 50
        // cut to the 33 positions (32 tokens and the CLS vector).
        let local = &record.measurements[2];
        assert_eq!(local.label(), "local (as LRA ran it)");
        assert_eq!(local.attention, Some(MechanismSettings::Local(LocalSettings { variant: Variant::Lra, block_size: 33 })));
        // Local's paper form is another cell: a benchmark of it reuses none of the lra form's
        // cells and keeps them all.
        let (reused, kept) = split_earlier(record.measurements.clone(), &["local".into()], Variant::Paper);
        assert!(reused.is_empty(), "{reused:?}");
        assert_eq!(kept.len(), 3);
        let (reused, _) = split_earlier(record.measurements, &["local".into(), "transformer".into()], Variant::Lra);
        assert_eq!(reused.iter().map(Measurement::label).collect::<Vec<_>>(), ["transformer", "local (as LRA ran it)"]);
    }
}
