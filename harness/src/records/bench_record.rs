//! The benchmark's records: `results/bench/<bench-id>.json`, one per benchmark, holding a
//! [`Measurement`] per (model, length) cell, and what a cell measures ([`CellSpec`]).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use lra_models::{MechanismSettings, Variant};
use lra_tasks::{Preset, Task, TaskConfig};

use crate::records::device_name::DeviceName;
use crate::records::environment::Environment;
use crate::records::files::write_json_atomically;
use crate::records::machine::Utilisation;
use crate::records::run_config::RunConfig;
use crate::records::run_record::Failure;

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
pub fn table2_task() -> TaskConfig {
    TaskConfig::resolve(Task::Text, Preset::Lra)
}

/// A cell's `"status"` and `"failure"`, as a run record's
/// ([`crate::records::run_record::status_and_failure`]). Cells of earlier versions said how they ended in
/// a status word with a `"detail"` (`"out of memory"`, `"timed out"`, `"failed"`, `"not
/// run"`, and a cell not run after a shorter one failed kept that one's word): they are
/// read as the failures those words name.
mod cell_ending {
    use serde::{Deserialize, Deserializer};

    use crate::records::run_record::Failure;
    use crate::records::run_record::status_and_failure::agreeing;
    pub use crate::records::run_record::status_and_failure::serialize;

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
        crate::records::run_record::status_and_failure::status_of(self.failure.as_ref())
    }

    /// A table's cell for a measurement that did not come: `FAIL (out of memory)`, ...
    pub fn failed_cell(&self) -> String {
        format!("FAIL ({})", self.failure.as_ref().map_or("no measurement", Failure::kind_words))
    }

    /// The form of the mechanism measured, where it has more than one.
    pub fn variant(&self) -> Option<Variant> {
        self.attention.as_ref().and_then(MechanismSettings::variant)
    }

    /// The model as reports name it ([`crate::records::run_record::model_label`]).
    pub fn label(&self) -> String {
        crate::records::run_record::model_label(&self.model, self.variant())
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
pub fn variant_of(model: &str, variant: Variant) -> Option<Variant> {
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

impl BenchRecord {
    /// Whether the device was a software renderer (e.g. Mesa's lavapipe without a GPU):
    /// its peak device memory is what a GPU would hold for the same kernels, its times are
    /// the CPU's.
    pub fn software_rendered(&self) -> bool {
        crate::records::device_name::is_software_renderer(&self.environment.device_adapter)
    }
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

/// The record of a cell that `failure` ended.
pub fn failed_cell(spec: &CellSpec, failure: Failure) -> Measurement {
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

/// A step benchmark's record on flex at batch 1, one warm-up and one timed step, with
/// LRA's Table 2 sizes, holding `measurements` (for tests).
#[cfg(test)]
pub fn step_record(bench_id: &str, lengths: Vec<usize>, measurements: Vec<Measurement>) -> BenchRecord {
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
        environment: crate::records::environment::capture("test", None, None),
        command: String::new(),
    }
}

/// Fills in each cell's speed and memory relative to the Transformer at its length; no
/// speed ratio where the device is a `software_rendered` GPU (see
/// [`BenchRecord::software_rendered`]), whose times are the CPU's.
pub fn relate_to_transformer(measurements: &mut [Measurement], software_rendered: bool) {
    let baseline: Vec<(usize, Option<f64>, Option<u64>)> = measurements
        .iter()
        .filter(|m| m.model == lra_models::BASELINE)
        .map(|m| (m.length, m.steps_per_second, m.peak_memory_bytes))
        .collect();
    for m in measurements.iter_mut() {
        if let Some((_, speed, memory)) = baseline.iter().find(|(length, _, _)| *length == m.length) {
            m.relative_speed = m.steps_per_second.zip(*speed).map(|(a, b)| a / b).filter(|_| !software_rendered);
            m.relative_memory = m.peak_memory_bytes.zip(*memory).filter(|(_, b)| *b > 0).map(|(a, b)| a as f64 / b as f64);
        }
    }
}

/// The folder of benchmark records.
pub fn bench_dir(results: &Path) -> PathBuf {
    results.join("bench")
}

/// `results/bench/<bench-id>.json`.
pub fn record_path(results: &Path, bench_id: &str) -> PathBuf {
    bench_dir(results).join(format!("{bench_id}.json"))
}

/// Writes a benchmark record as `results/bench/<bench-id>.json`.
pub fn save(results: &Path, record: &BenchRecord) -> anyhow::Result<PathBuf> {
    let path = record_path(results, &record.bench_id);
    crate::records::files::create_real_dir(&bench_dir(results), 1)?;
    write_json_atomically(&path, record)?;
    Ok(path)
}

/// The record at `path` (bounded by [`lra_datasets::files::limit::BENCH_RECORD`]), checked
/// ([`check`]); an unreadable or invalid one is an error naming the file and the field.
pub fn load(path: &Path) -> anyhow::Result<BenchRecord> {
    let text = lra_datasets::files::read_text_bounded(path, lra_datasets::files::limit::BENCH_RECORD)?;
    let record: BenchRecord =
        serde_json::from_str(&text).with_context(|| format!("{}: not a benchmark record", path.display()))?;
    check(&record).map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
    Ok(record)
}

/// The longest sequence a benchmark may name (LRA's longest is Path-X's 16,384).
pub const MAX_LENGTH: usize = 1 << 24;

/// Why `record` cannot be reported, naming the field (and the cell): names of the registry
/// and of bounded length, sizes at least 1 and in range, every time, speed, memory ratio
/// and rate finite and positive.
pub fn check(record: &BenchRecord) -> Result<(), String> {
    use crate::records::run_record::{MAX_FAILURE_CHARS, MAX_NAME_CHARS, check_length, check_optional, check_utilisation, shown};
    for (field, name) in [("bench_id", &record.bench_id), ("device", &record.device)] {
        check_length(field, name, MAX_NAME_CHARS)?;
    }
    check_length("command", &record.command, MAX_FAILURE_CHARS)?;
    for (field, size) in [
        ("batch", record.batch),
        ("d_model", record.d_model),
        ("heads", record.heads),
        ("layers", record.layers),
        ("d_ff", record.d_ff),
        ("timed_steps", record.timed_steps),
    ] {
        if size == 0 || size > MAX_LENGTH {
            return Err(format!("field `{field}`: {size} is not in [1, {MAX_LENGTH}]"));
        }
    }
    for length in &record.lengths {
        if *length == 0 || *length > MAX_LENGTH {
            return Err(format!("field `lengths`: {length} is not in [1, {MAX_LENGTH}]"));
        }
    }
    for (i, m) in record.measurements.iter().enumerate() {
        let cell = |why: String| format!("measurements[{i}]: {why}");
        check_length("model", &m.model, MAX_NAME_CHARS).map_err(cell)?;
        lra_models::model_info(&m.model).map_err(|why| cell(format!("field `model`: {why}")))?;
        if m.length == 0 || m.length > MAX_LENGTH {
            return Err(cell(format!("field `length`: {} is not in [1, {MAX_LENGTH}]", m.length)));
        }
        if let Some(failure) = &m.failure {
            check_length("failure", &failure.to_string(), MAX_FAILURE_CHARS).map_err(cell)?;
        }
        check_optional(m.memory_source.as_deref(), |s| check_length("memory_source", s, MAX_NAME_CHARS)).map_err(cell)?;
        for (field, value) in [
            ("step_seconds", m.step_seconds),
            ("steps_per_second", m.steps_per_second),
            ("tokens_per_second", m.tokens_per_second),
            ("relative_speed", m.relative_speed),
            ("relative_memory", m.relative_memory),
        ] {
            check_optional(value, |v| {
                if v.is_finite() && v > 0.0 {
                    Ok(())
                } else {
                    Err(format!("field `{field}`: {} is not a positive finite number", shown(v)))
                }
            })
            .map_err(cell)?;
        }
        check_utilisation(&m.utilisation).map_err(cell)?;
    }
    Ok(())
}

/// A file left out, and why (naming the file and the field).
pub type Refused = (PathBuf, String);

/// Every benchmark record under `results/bench/`, the last written last, and the files left
/// out as unreadable or invalid, each with why (naming the field).
pub fn load_all(results: &Path) -> anyhow::Result<(Vec<BenchRecord>, Vec<Refused>)> {
    let dir = bench_dir(results);
    let (mut records, mut skipped) = (Vec::new(), Vec::new());
    if !dir.is_dir() {
        return Ok((records, skipped));
    }
    let mut paths: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| (std::fs::metadata(&p).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), p))
        .collect();
    // Oldest first by the last write (a record is rewritten after each measurement).
    paths.sort();
    let paths = paths.into_iter().map(|(_, p)| p);
    for path in paths {
        match load(&path) {
            Ok(record) => records.push(record),
            Err(why) => skipped.push((path, format!("{why:#}"))),
        }
    }
    Ok((records, skipped))
}

/// One line for the console; a `software_rendered` device's time is marked as such.
pub fn describe(m: &Measurement, software_rendered: bool) -> String {
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
                (None, Some(r)) if software_rendered => {
                    format!("  ({r:.2}x memory of the Transformer; time software-rendered, no speed ratio)")
                }
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
        let record: BenchRecord =
            serde_json::from_str(include_str!("../../tests/data/bench-of-an-earlier-version.json")).unwrap();
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
}
