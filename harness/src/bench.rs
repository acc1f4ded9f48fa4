//! `lra bench`: LRA's Table 2 for this machine — the time and peak memory of a training
//! step (or of one attention layer) per model and sequence length, each relative to
//! the vanilla Transformer at the same length. Every measurement runs in its own
//! process, so one model's memory never counts towards another's, and a length that
//! runs out of memory or time is recorded as such instead of ending the benchmark.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use serde::{Deserialize, Serialize};

use lra_datasets::rng::SeededRng;
use lra_models::{AttentionConfig, Auxiliary, ClassifierConfig, MechanismSettings, Pooling, Positions, Variant};
use lra_tasks::{Preset, Task, TaskConfig};

use crate::config::RunConfig;

use crate::device::{DeviceName, open};
use crate::environment::Environment;
use crate::measure::HeapPeak;
use crate::peak::Utilisation;
use crate::record::{Failure, write_json_atomically};
use crate::train::training_loss;

/// What one measurement times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// A whole training step of the byte-level Text classifier (forward, backward, AdamW).
    Step,
    /// Forward and backward of one attention layer alone.
    Layer,
}

impl Scope {
    /// The name on the command line and in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Step => "step",
            Scope::Layer => "layer",
        }
    }
}

/// Why `model` cannot be benchmarked at `scope`: a model whose attention layer is the
/// Transformer's (it changes the stack or the feed-forward layer) has no layer of its own
/// to time, and the control none at all.
pub fn scope_refusal(model: &str, scope: Scope) -> anyhow::Result<Option<String>> {
    let mechanism = lra_models::model_info(model).map_err(anyhow::Error::msg)?.mechanism;
    Ok(match (scope, mechanism.change_outside_attention()) {
        (Scope::Layer, _) if !mechanism.attends() => Some(format!(
            "{model} has no attention layer (its blocks are their feed-forward layers alone): there is nothing to \
             time at this scope; benchmark it with --scope step"
        )),
        (Scope::Layer, Some(change)) => Some(format!(
            "{model} changes {change}, not the attention layer, whose benchmark would measure the Transformer's; \
             benchmark it with --scope step"
        )),
        _ => None,
    })
}

/// LRA's Table 2 timed the byte-level Text classifier at its `lra` sizes (d_model 256, 4
/// heads, 4 layers, d_ff 1024, pooled by a CLS vector): the Text configuration at `lra`
/// says them, here read from it.
fn table2_task() -> TaskConfig {
    TaskConfig::resolve(Task::Text, Preset::Lra)
}

/// Whether a cell that ended so rules out the longer sequences of its model: they would
/// only cost more time and memory and end the same way, so they are not tried.
fn rules_out_longer(failure: &Failure) -> bool {
    matches!(failure, Failure::OutOfMemory { .. } | Failure::TimedOut { .. })
}

/// A cell's `"status"` and `"failure"`, as a run record's
/// ([`crate::record::status_and_failure`]). Cells of earlier versions said how they ended in
/// a status word with a `"detail"` (`"out of memory"`, `"timed out"`, `"failed"`, `"not
/// run"`, and a cell not run after a shorter one failed kept that one's word): they are
/// read as the failures those words name.
mod cell_ending {
    use serde::{Deserialize, Deserializer};

    use crate::record::Failure;
    use crate::record::status_and_failure::agreeing;
    pub use crate::record::status_and_failure::serialize;

    #[derive(Deserialize)]
    struct Read {
        status: String,
        #[serde(default)]
        failure: Option<Failure>,
        #[serde(default)]
        detail: Option<String>,
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Failure>, D::Error> {
        let Read { status, failure, detail } = Read::deserialize(deserializer)?;
        let Some(detail) = detail.filter(|_| failure.is_none()) else { return agreeing(&status, failure) };
        let earlier = match (status.as_str(), detail.strip_prefix("not run: ")) {
            ("out of memory" | "timed out", Some(reason)) => Failure::NotRun { reason: reason.to_string() },
            ("out of memory", None) => Failure::OutOfMemory { detail },
            ("timed out", None) => {
                let limit = detail.strip_prefix("over the limit of ").and_then(|s| s.strip_suffix(" s")?.parse().ok());
                let Some(seconds) = limit else {
                    return Err(serde::de::Error::custom(format!("a timed-out cell without its limit: {detail:?}")));
                };
                Failure::TimedOut { seconds }
            }
            ("failed", None) => Failure::Crashed { detail },
            ("not run", None) => Failure::NotRun { reason: detail },
            _ => return agreeing(&status, None),
        };
        Ok(Some(earlier))
    }
}

/// One (model, length) cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub model: String,
    /// The mechanism's settings measured (its variant among them).
    #[serde(default)]
    pub attention: Option<MechanismSettings>,
    pub length: usize,
    /// `null` when measured; the cell's `status` is derived from it, as a run record's.
    #[serde(flatten, with = "cell_ending")]
    pub failure: Option<Failure>,
    pub step_seconds: Option<f64>,
    pub steps_per_second: Option<f64>,
    pub tokens_per_second: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
    pub memory_source: Option<String>,
    /// Steps per second over the Transformer's at this length.
    pub relative_speed: Option<f64>,
    /// Peak memory over the Transformer's at this length.
    pub relative_memory: Option<f64>,
    #[serde(flatten)]
    pub utilisation: Utilisation,
}

impl Measurement {
    /// `"ok"` or `"failed"`, as the record says.
    pub fn status(&self) -> &'static str {
        crate::record::status_and_failure::status_of(self.failure.as_ref())
    }

    /// A table's cell for a measurement that did not come: `FAIL (out of memory)`, ...
    pub fn failed_cell(&self) -> String {
        format!("FAIL ({})", self.failure.as_ref().map_or("no measurement", Failure::kind_words))
    }

    /// The form of the mechanism measured, where it has more than one.
    pub fn variant(&self) -> Option<Variant> {
        self.attention.as_ref().and_then(MechanismSettings::variant)
    }

    /// The model as reports name it ([`crate::record::model_label`]).
    pub fn label(&self) -> String {
        crate::record::model_label(&self.model, self.variant())
    }
}

/// The settings a cell of `model` measures at `positions` positions. For a mechanism with
/// two forms, `variant`'s: LRA's values on Text (the task of LRA's Table 2), or the
/// paper form's defaults for the length; each length-bound setting cut to the sequence.
pub fn cell_settings(model: &str, variant: Variant, positions: usize) -> anyhow::Result<MechanismSettings> {
    let info = lra_models::model_info(model).map_err(anyhow::Error::msg)?;
    let settings = match (info.mechanism.has_variants(), variant) {
        (true, Variant::Lra) => {
            RunConfig::resolve(Task::Text, Preset::Lra, model, 0, DeviceName::Flex)?.attention.fitted_to(positions)
        }
        _ => MechanismSettings::defaults(info.mechanism, positions),
    };
    settings.check(positions).map_err(|why| anyhow::anyhow!("{model} at {positions} positions: {why}"))?;
    Ok(settings)
}

/// The variant a cell of `model` measures: `variant` where its mechanism has two forms.
fn variant_of(model: &str, variant: Variant) -> Option<Variant> {
    lra_models::model_info(model).ok().filter(|info| info.mechanism.has_variants()).map(|_| variant)
}

/// `results/bench/<bench-id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRecord {
    pub bench_id: String,
    pub scope: Scope,
    pub device: String,
    pub batch: usize,
    pub lengths: Vec<usize>,
    pub d_model: usize,
    pub heads: usize,
    pub layers: usize,
    pub d_ff: usize,
    pub warmup_steps: usize,
    pub timed_steps: usize,
    pub measurements: Vec<Measurement>,
    pub environment: Environment,
    /// The command that reproduces this benchmark.
    pub command: String,
}

/// What one child measures.
#[derive(Debug, Clone)]
pub struct CellSpec {
    pub model: String,
    pub variant: Variant,
    pub length: usize,
    pub batch: usize,
    pub device: DeviceName,
    pub scope: Scope,
    pub warmup_steps: usize,
    pub timed_steps: usize,
}

/// Measures one cell in this process (the child side of `lra bench`).
pub fn measure_cell(spec: &CellSpec) -> anyhow::Result<Measurement> {
    if let Some(refusal) = scope_refusal(&spec.model, spec.scope)? {
        anyhow::bail!(refusal);
    }
    let info = lra_models::model_info(&spec.model).map_err(anyhow::Error::msg)?;
    let opened = open(spec.device).map_err(anyhow::Error::msg)?;
    let plain = opened.device.clone();
    let device = plain.clone().autodiff();
    device.seed(0);
    let mut rng = SeededRng::new(0, spec.length as u64);
    let heap = HeapPeak::start();
    let mut pool_peak = 0u64;
    let mut sample_pool = || {
        if let Some(usage) = plain.memory_pool_usage() {
            pool_peak = pool_peak.max(usage.bytes_in_use);
        }
    };
    let (b, n) = (spec.batch, spec.length);
    // A step pools by a CLS vector before the n tokens.
    let positions = n + usize::from(spec.scope == Scope::Step);
    let settings = cell_settings(&spec.model, spec.variant, positions)?;
    let task = table2_task();
    let mut durations = Vec::new();
    let step_flops = match spec.scope {
        Scope::Step => {
            let config = step_model(&task, info.mechanism, n, &settings);
            let mut model = config.init(&device);
            let mut optimizer = crate::train::optimizer(&task.training).init();
            for step in 0..spec.warmup_steps + spec.timed_steps {
                // Bytes 1..vocab (0 is padding), and the task's labels.
                let tokens: Vec<i64> = (0..b * n).map(|_| 1 + rng.below(task.vocab_size as u64 - 1) as i64).collect();
                let labels: Vec<i64> = (0..b).map(|_| rng.below(task.classes as u64) as i64).collect();
                let tokens = Tensor::<2, Int>::from_data(TensorData::new(tokens, [b, n]), &device);
                let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), &device);
                let _ = plain.sync();
                let started = Instant::now();
                // The step training takes, its auxiliary losses included.
                let (logits, auxiliary) = model.forward_with_auxiliary(tokens);
                let (loss, _, _) = training_loss(logits, &auxiliary, labels);
                sample_pool();
                let loss_value = loss.clone().detach();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                sample_pool();
                model = optimizer.step(1e-4, model, grads);
                sample_pool();
                // Reading the loss and synchronising: the clock stops when the device is done.
                let _ = loss_value.into_scalar::<f32>();
                let _ = plain.sync();
                if step >= spec.warmup_steps {
                    durations.push(started.elapsed());
                }
            }
            config.training_step_flops(b)
        }
        Scope::Layer => {
            let config = layer_config(&task, info.mechanism, n, &settings);
            let layer = config.init(&device);
            let padding = Tensor::<2, Bool>::full([b, n], false, &device);
            let d_model = task.model.d_model;
            for step in 0..spec.warmup_steps + spec.timed_steps {
                let x = Tensor::<3>::random([b, n, d_model], Distribution::Normal(0.0, 1.0), &device).require_grad();
                let _ = plain.sync();
                let started = Instant::now();
                let mut auxiliary = Auxiliary::default();
                let out = layer.forward_with(x.clone(), padding.clone(), &mut auxiliary).sum();
                sample_pool();
                let total = match auxiliary.loss() {
                    Some(extra) => out + extra,
                    None => out,
                };
                let grads = total.backward();
                sample_pool();
                let _ = x.grad(&grads).map(|g| g.into_data());
                let _ = plain.sync();
                if step >= spec.warmup_steps {
                    durations.push(started.elapsed());
                }
            }
            // The layer's forward, and its backward (two forwards' worth).
            3.0 * config.forward_flops(b)
        }
    };
    let step_seconds = durations.iter().map(Duration::as_secs_f64).sum::<f64>() / durations.len().max(1) as f64;
    let (peak, source) = if plain.memory_pool_usage().is_some() {
        (pool_peak, "device memory pool (peak bytes in use)")
    } else {
        (heap.peak_above_baseline(), "heap (exact peak bytes allocated)")
    };
    Ok(Measurement {
        model: spec.model.clone(),
        attention: Some(settings),
        length: n,
        failure: None,
        step_seconds: Some(step_seconds),
        steps_per_second: Some(1.0 / step_seconds),
        tokens_per_second: Some((b * n) as f64 / step_seconds),
        peak_memory_bytes: Some(peak),
        memory_source: Some(source.into()),
        relative_speed: None,
        relative_memory: None,
        utilisation: Utilisation::of(
            step_flops,
            Some(1.0 / step_seconds),
            crate::peak::of(spec.device, &opened.adapter).as_ref(),
        ),
    })
}

/// The model a step cell trains: LRA's Text classifier ([`table2_task`]) at `n` tokens,
/// with the mechanism's `settings` measured.
fn step_model(task: &TaskConfig, mechanism: lra_models::Mechanism, n: usize, settings: &MechanismSettings) -> ClassifierConfig {
    let m = &task.model;
    ClassifierConfig::new(task.vocab_size, task.classes, n, m.d_model, m.heads, m.layers, m.d_ff, m.d_head_mlp, mechanism)
        .with_settings(Some(settings.clone()))
        .with_pooling(Pooling::Cls)
        .with_positions(Positions::Sinusoidal)
}

/// The layer a layer cell times, at `n` positions, without dropout.
fn layer_config(task: &TaskConfig, mechanism: lra_models::Mechanism, n: usize, settings: &MechanismSettings) -> AttentionConfig {
    let m = &task.model;
    AttentionConfig::new(m.d_model, m.heads, mechanism, n).with_settings(Some(settings.clone())).with_dropout(0.0)
}

fn failed_cell(spec: &CellSpec, failure: Failure) -> Measurement {
    let positions = spec.length + usize::from(spec.scope == Scope::Step);
    Measurement {
        model: spec.model.clone(),
        attention: cell_settings(&spec.model, spec.variant, positions).ok(),
        length: spec.length,
        failure: Some(failure),
        step_seconds: None,
        steps_per_second: None,
        tokens_per_second: None,
        peak_memory_bytes: None,
        memory_source: None,
        relative_speed: None,
        relative_memory: None,
        utilisation: Utilisation::default(),
    }
}

/// Runs one cell in a child process (`exe bench-cell ...`) within `timeout`.
pub fn measure_in_child(exe: &Path, spec: &CellSpec, timeout: Duration) -> anyhow::Result<Measurement> {
    let oom = crate::child::OomWatch::start();
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
    let mut child = crate::child::prepare(&mut command).spawn().with_context(|| format!("starting {}", exe.display()))?;
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
    let status = crate::child::wait(&mut child, started, Some(timeout))?;
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    Ok(match status {
        None => failed_cell(spec, Failure::TimedOut { seconds: timeout.as_secs_f64() }),
        Some(status) if status.success() => match out.lines().rev().find(|l| l.starts_with('{')) {
            Some(line) => serde_json::from_str(line).with_context(|| format!("reading the child's measurement `{line}`"))?,
            None => failed_cell(spec, Failure::Crashed { detail: "the child printed no measurement".into() }),
        },
        Some(status) => failed_cell(spec, crate::child::classify(status, &crate::child::last_line(&err), oom.fired())),
    })
}

/// A step benchmark's record on flex at batch 1, one warm-up and one timed step, with
/// LRA's Table 2 sizes, holding `measurements` (for tests).
#[cfg(test)]
pub(crate) fn step_record(bench_id: &str, lengths: Vec<usize>, measurements: Vec<Measurement>) -> BenchRecord {
    let model = table2_task().model;
    BenchRecord {
        bench_id: bench_id.into(),
        scope: Scope::Step,
        device: DeviceName::Flex.to_string(),
        batch: 1,
        lengths,
        d_model: model.d_model,
        heads: model.heads,
        layers: model.layers,
        d_ff: model.d_ff,
        warmup_steps: 1,
        timed_steps: 1,
        measurements,
        environment: crate::environment::capture("test", None, None),
        command: String::new(),
    }
}

/// Fills in each cell's speed and memory relative to the Transformer at its length.
pub fn relate_to_transformer(measurements: &mut [Measurement]) {
    let baseline: Vec<(usize, Option<f64>, Option<u64>)> = measurements
        .iter()
        .filter(|m| m.model == lra_models::BASELINE)
        .map(|m| (m.length, m.steps_per_second, m.peak_memory_bytes))
        .collect();
    for m in measurements.iter_mut() {
        if let Some((_, speed, memory)) = baseline.iter().find(|(length, _, _)| *length == m.length) {
            m.relative_speed = m.steps_per_second.zip(*speed).map(|(a, b)| a / b);
            m.relative_memory = m.peak_memory_bytes.zip(*memory).filter(|(_, b)| *b > 0).map(|(a, b)| a as f64 / b as f64);
        }
    }
}

/// The folder of benchmark records.
pub fn bench_dir(results: &Path) -> PathBuf {
    results.join("bench")
}

/// `results/bench/<bench-id>.json`.
fn record_path(results: &Path, bench_id: &str) -> PathBuf {
    bench_dir(results).join(format!("{bench_id}.json"))
}

/// Writes a benchmark record as `results/bench/<bench-id>.json`.
pub fn save(results: &Path, record: &BenchRecord) -> anyhow::Result<PathBuf> {
    let path = record_path(results, &record.bench_id);
    write_json_atomically(&path, record)?;
    Ok(path)
}

/// The record at `path`; an unreadable one is an error naming the file.
fn load(path: &Path) -> anyhow::Result<BenchRecord> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a benchmark record", path.display()))
}

/// Every benchmark record under `results/bench/`, the last written last; unreadable files are
/// errors naming the file.
pub fn load_all(results: &Path) -> anyhow::Result<Vec<BenchRecord>> {
    let dir = bench_dir(results);
    let mut records = Vec::new();
    if !dir.is_dir() {
        return Ok(records);
    }
    let mut paths: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| (std::fs::metadata(&p).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), p))
        .collect();
    // Oldest first by the last write (a record is rewritten after each measurement).
    paths.sort();
    let paths = paths.into_iter().map(|(_, p)| p);
    for path in paths {
        records.push(load(&path)?);
    }
    Ok(records)
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
        environment: crate::environment::capture(
            &device.adapter,
            device.driver.as_ref(),
            crate::peak::of(spec.device, &device.adapter),
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
            eprintln!("{}", describe(&measurement));
            record.measurements.push(measurement);
            relate_to_transformer(&mut record.measurements);
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

/// One line for the console.
pub fn describe(m: &Measurement) -> String {
    match (m.steps_per_second, m.peak_memory_bytes) {
        (Some(speed), Some(memory)) => format!(
            "{:<26} n={:<6} {:>9.3} steps/s {:>10.1} MiB {:>9}{}",
            m.label(),
            m.length,
            speed,
            memory as f64 / (1u64 << 20) as f64,
            match m.utilisation.achieved_flops_per_second {
                Some(rate) => format!(
                    "{:.1} GFLOP/s{}",
                    rate / 1e9,
                    m.utilisation.mfu.map(|u| format!(" (MFU {:.1}%)", 100.0 * u)).unwrap_or_default()
                ),
                None => String::new(),
            },
            match (m.relative_speed, m.relative_memory) {
                (Some(s), Some(r)) => format!("  ({s:.2}x speed, {r:.2}x memory of the Transformer)"),
                _ => String::new(),
            }
        ),
        _ => format!(
            "{:<26} n={:<6} FAIL {}",
            m.label(),
            m.length,
            m.failure.as_ref().map(Failure::to_string).unwrap_or_else(|| "without a measurement".into())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lra_models::attention::local::LocalSettings;

    #[test]
    fn the_status_words_of_earlier_benchmark_cells_are_read_as_failures() {
        let read = |status: &str, detail: Option<&str>| {
            let cell = serde_json::json!({ "status": status, "detail": detail });
            cell_ending::deserialize(cell).map_err(|e: serde_json::Error| e.to_string())
        };
        assert_eq!(read("ok", None), Ok(None));
        assert_eq!(read("out of memory", Some("SIGKILL")), Ok(Some(Failure::OutOfMemory { detail: "SIGKILL".into() })));
        assert_eq!(read("timed out", Some("over the limit of 60 s")), Ok(Some(Failure::TimedOut { seconds: 60.0 })));
        assert_eq!(
            read("timed out", Some("not run: timed out at length 64")),
            Ok(Some(Failure::NotRun { reason: "timed out at length 64".into() }))
        );
        assert_eq!(read("failed", Some("exited with 3")), Ok(Some(Failure::Crashed { detail: "exited with 3".into() })));
        assert_eq!(
            read("not run", Some("the benchmark's time budget was spent")),
            Ok(Some(Failure::NotRun { reason: "the benchmark's time budget was spent".into() }))
        );
        assert!(read("timed out", Some("soon")).unwrap_err().contains("without its limit"));
        assert!(read("failed", None).unwrap_err().contains(r#""status": "failed" without a failure"#));
        assert!(read("fine", Some("not run: x")).unwrap_err().contains(r#""status": "fine" is none of"#));
    }

    /// A benchmark record of an earlier version, whose cells named their end in a status
    /// word with a detail (a cell past its time limit, and the longer one not run after
    /// it), is read into the failures runs name and written in their words.
    #[test]
    fn benchmark_records_of_earlier_versions_are_read_into_failures() {
        let record: BenchRecord = serde_json::from_str(include_str!("../tests/data/bench-of-an-earlier-version.json")).unwrap();
        let failures: Vec<Option<Failure>> = record.measurements.iter().map(|m| m.failure.clone()).collect();
        assert_eq!(
            failures,
            [Some(Failure::TimedOut { seconds: 0.0 }), Some(Failure::NotRun { reason: "timed out at length 64".into() })]
        );
        let written = serde_json::to_value(&record).unwrap();
        assert_eq!(written["measurements"][1]["status"], "failed");
        assert_eq!(
            written["measurements"][1]["failure"],
            serde_json::json!({ "kind": "not_run", "reason": "timed out at length 64" })
        );
        assert_eq!(serde_json::from_value::<BenchRecord>(written).unwrap(), record);
    }

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
