//! The run record and the files of a run folder, all written atomically.
//!
//! A run folder `results/runs/<run-id>/` holds `config.json` (the resolved
//! configuration, enough to repeat the run), `metrics.csv` (one row per logged step) and
//! `result.json` (the [`RunRecord`]), written last: a folder without `result.json` is an
//! unfinished run.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::records::device_name::DeviceName;
use crate::records::environment::Environment;
use crate::records::machine::Utilisation;
use crate::records::run_config::RunConfig;

/// Why a run or a benchmark cell failed; `null` in its record when it succeeded. Runs and
/// cells share these words: a record says `"status": "failed"` and names the failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    OutOfMemory {
        detail: String,
    },
    DivergedToNan {
        step: usize,
    },
    /// The gradients' global norm was not finite (with clipping on, where it is computed).
    GradientNotFinite {
        step: usize,
    },
    Panicked {
        message: String,
    },
    TimedOut {
        seconds: f64,
    },
    /// The process ended without writing its record (a signal, an abort), or without the
    /// measurement it was to print.
    Crashed {
        detail: String,
    },
    /// Never started: a benchmark cell after its time budget was spent, or after a
    /// shorter length of its model ran out of memory or time.
    NotRun {
        reason: String,
    },
}

impl Failure {
    /// The failure in a word or two, as tables name it: `out of memory`, `timed out`, ...
    pub fn kind_words(&self) -> &'static str {
        match self {
            Failure::OutOfMemory { .. } => "out of memory",
            Failure::DivergedToNan { .. } | Failure::GradientNotFinite { .. } => "diverged",
            Failure::Panicked { .. } => "panicked",
            Failure::TimedOut { .. } => "timed out",
            Failure::Crashed { .. } => "crashed",
            Failure::NotRun { .. } => "not run",
        }
    }
}

/// `kind words: what is known`, e.g. `timed out: after 60 s`.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.kind_words())?;
        match self {
            Failure::OutOfMemory { detail } | Failure::Crashed { detail } => f.write_str(detail),
            Failure::DivergedToNan { step } => write!(f, "loss is not finite at step {step}"),
            Failure::GradientNotFinite { step } => write!(f, "the gradient norm is not finite at step {step}"),
            Failure::Panicked { message } => f.write_str(message),
            Failure::TimedOut { seconds } => write!(f, "after {seconds:.0} s"),
            Failure::NotRun { reason } => f.write_str(reason),
        }
    }
}

/// A record's `"status"` and `"failure"`, the status derived from the failure: `"ok"` with
/// `null`, `"failed"` with the failure. Reading checks that they agree.
pub mod status_and_failure {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Failure;

    #[derive(Serialize)]
    struct Written<'a> {
        status: &'static str,
        failure: &'a Option<Failure>,
    }

    #[derive(Deserialize)]
    struct Read {
        status: String,
        #[serde(default)]
        failure: Option<Failure>,
    }

    /// `"ok"` without a failure, `"failed"` with one.
    pub fn status_of(failure: Option<&Failure>) -> &'static str {
        if failure.is_none() { "ok" } else { "failed" }
    }

    pub fn serialize<S: Serializer>(failure: &Option<Failure>, serializer: S) -> Result<S::Ok, S::Error> {
        Written { status: status_of(failure.as_ref()), failure }.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Failure>, D::Error> {
        let Read { status, failure } = Read::deserialize(deserializer)?;
        agreeing(&status, failure)
    }

    /// `failure`, where `status` agrees with it; an error naming both otherwise.
    pub fn agreeing<E: serde::de::Error>(status: &str, failure: Option<Failure>) -> Result<Option<Failure>, E> {
        let disagree = |what: &str| E::custom(format!("\"status\": {status:?} {what}"));
        match (status, failure) {
            ("ok", None) => Ok(None),
            ("ok", Some(failure)) => Err(disagree(&format!("beside the failure \"{failure}\""))),
            ("failed", Some(failure)) => Ok(Some(failure)),
            ("failed", None) => Err(disagree("without a failure")),
            (_, _) => Err(disagree("is none of \"ok\" and \"failed\"")),
        }
    }
}

/// `result.json`: the run's identity (what ran), its [`Outcome`] (how it ended, how well,
/// how fast, in how much memory), and what repeats it (its configuration and environment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub task: String,
    pub model: String,
    pub preset: String,
    pub seed: u64,
    /// The configuration's device, as its run id has it (`cuda`, `wgpu`).
    pub device: String,
    /// The device the run computed on, with its number (`cuda:3`): where a sweep over
    /// several GPUs placed it, which its configuration (and so its run id) does not say.
    /// Absent in records of earlier versions, whose runs computed on `device`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed_on: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// One training step's operations (`ClassifierConfig::training_step_flops`), the
    /// achieved rate and the MFU.
    #[serde(flatten)]
    pub utilisation: Utilisation,
    pub data_source: String,
    pub config: RunConfig,
    pub environment: Environment,
}

/// How a run ended and what it measured, as the record holds it between the run's identity
/// and its configuration: training fills it (`train::train`), but for the test split's
/// majority rate and size and the run's whole time, which the run adds.
///
/// Written by [`Outcome`]'s own `Serialize` below, which writes `left_chance_step` only where
/// it is known (see there); read by the derived `Deserialize`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Outcome {
    /// `null` when the run succeeded; the record's `status` is derived from it.
    #[serde(flatten, with = "status_and_failure")]
    pub failure: Option<Failure>,
    /// Test accuracy of the final weights, as LRA reports (its code evaluates the last
    /// checkpoint).
    pub test_accuracy: Option<f64>,
    pub best_val_accuracy: Option<f64>,
    /// The step whose weights gave `best_val_accuracy`.
    pub best_step: Option<usize>,
    /// Test accuracy of the weights of `best_step` (absent in records of earlier versions,
    /// whose `test_accuracy` was this one).
    #[serde(default)]
    pub best_val_test_accuracy: Option<f64>,
    /// Fraction of the test split in its most common class: the accuracy of always
    /// guessing that class.
    pub test_majority_rate: Option<f64>,
    /// Examples in the test split (absent in records of earlier versions).
    #[serde(default)]
    pub test_examples: Option<usize>,
    /// The validation split's majority rate and size, against which `left_chance_step` was
    /// found. Absent in records of earlier versions and in those of runs that ended without
    /// training's own outcome ([`Outcome::failed`]: a panic, a crash, a timeout): their
    /// `left_chance_step` is unknown.
    #[serde(default)]
    pub validation_majority_rate: Option<f64>,
    #[serde(default)]
    pub validation_examples: Option<usize>,
    /// The first validation step whose accuracy was above chance by the report's rule
    /// ([`crate::records::chance::above_chance`] against the validation split's majority rate and
    /// size). `None` when the run never left chance, and when the record does not say
    /// (earlier versions): [`Outcome::left_chance_known`] tells the two apart. Written as
    /// `null` for the first and left out for the second, so that a record of an earlier
    /// version is written again as it was.
    #[serde(default)]
    pub left_chance_step: Option<usize>,
    /// The task's loss at the last step (without the auxiliary losses).
    pub final_train_loss: Option<f64>,
    /// The auxiliary losses and routing of the models that have them (Switch, the
    /// Compressive Transformer); absent for the others.
    #[serde(default)]
    pub auxiliary: Option<AuxiliaryRecord>,
    pub steps: usize,
    /// Time spent in training steps, evaluation excluded.
    pub train_seconds: f64,
    /// The whole run's time, data preparation and evaluation included.
    pub wall_seconds: f64,
    pub train_steps_per_second: f64,
    pub train_tokens_per_second: f64,
    pub peak_memory_bytes: u64,
    pub memory_source: String,
    pub peak_rss_bytes: Option<u64>,
    pub parameters: usize,
}

impl Outcome {
    /// The outcome of a run that failed before it measured anything.
    pub fn failed(failure: Failure, wall_seconds: f64) -> Outcome {
        Outcome {
            failure: Some(failure),
            test_accuracy: None,
            best_val_accuracy: None,
            best_step: None,
            best_val_test_accuracy: None,
            test_majority_rate: None,
            test_examples: None,
            validation_majority_rate: None,
            validation_examples: None,
            left_chance_step: None,
            final_train_loss: None,
            auxiliary: None,
            steps: 0,
            train_seconds: 0.0,
            wall_seconds,
            train_steps_per_second: 0.0,
            train_tokens_per_second: 0.0,
            peak_memory_bytes: 0,
            memory_source: "not measured (the run did not finish)".into(),
            peak_rss_bytes: None,
            parameters: 0,
        }
    }

    /// Whether the record says when the run left chance (its `left_chance_step`, `None`
    /// for never): the outcomes of training do (a run that diverged before it left chance
    /// never did), records of earlier versions and [`Outcome::failed`] do not.
    pub fn left_chance_known(&self) -> bool {
        self.validation_examples.is_some()
    }
}

/// The fields in the order the record has them; `status` derived from the failure, the
/// auxiliary record only for the models that have one, `left_chance_step` only where it
/// is known. (By hand, since whether one field is written depends on another; the tests
/// below read every field back.)
impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Outcome", 22)?;
        s.serialize_field("status", status_and_failure::status_of(self.failure.as_ref()))?;
        s.serialize_field("failure", &self.failure)?;
        s.serialize_field("test_accuracy", &self.test_accuracy)?;
        s.serialize_field("best_val_accuracy", &self.best_val_accuracy)?;
        s.serialize_field("best_step", &self.best_step)?;
        s.serialize_field("best_val_test_accuracy", &self.best_val_test_accuracy)?;
        s.serialize_field("test_majority_rate", &self.test_majority_rate)?;
        s.serialize_field("test_examples", &self.test_examples)?;
        if self.left_chance_known() {
            s.serialize_field("validation_majority_rate", &self.validation_majority_rate)?;
            s.serialize_field("validation_examples", &self.validation_examples)?;
            s.serialize_field("left_chance_step", &self.left_chance_step)?;
        }
        s.serialize_field("final_train_loss", &self.final_train_loss)?;
        if let Some(auxiliary) = &self.auxiliary {
            s.serialize_field("auxiliary", auxiliary)?;
        }
        s.serialize_field("steps", &self.steps)?;
        s.serialize_field("train_seconds", &self.train_seconds)?;
        s.serialize_field("wall_seconds", &self.wall_seconds)?;
        s.serialize_field("train_steps_per_second", &self.train_steps_per_second)?;
        s.serialize_field("train_tokens_per_second", &self.train_tokens_per_second)?;
        s.serialize_field("peak_memory_bytes", &self.peak_memory_bytes)?;
        s.serialize_field("memory_source", &self.memory_source)?;
        s.serialize_field("peak_rss_bytes", &self.peak_rss_bytes)?;
        s.serialize_field("parameters", &self.parameters)?;
        s.end()
    }
}

/// What training recorded of a model's auxiliary losses and routing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuxiliaryRecord {
    /// The weighted sum of the auxiliary losses at the last step (Switch's load balance,
    /// the Compressive Transformer's attention reconstruction), which training added to
    /// the task's loss; `final_train_loss` is the task's alone.
    pub final_loss: f64,
    /// Per Switch layer, the fraction of the real tokens its router sent to each expert,
    /// averaged over the training steps: an even load is `1 / experts` each. One row per
    /// layer of each encoding (Retrieval encodes twice: its first documents' layers, then
    /// the second's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expert_load: Vec<Vec<f64>>,
    /// Per Switch layer, the fraction of the real tokens over their expert's capacity
    /// (passed through by the residual alone), averaged over the training steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<f64>,
}

impl RunRecord {
    /// The record of `config`'s run with `outcome`, in `environment`.
    pub fn new(config: &RunConfig, outcome: Outcome, utilisation: Utilisation, environment: Environment) -> RunRecord {
        RunRecord {
            run_id: run_id(config),
            task: config.task.name.name().to_string(),
            model: config.model.clone(),
            preset: config.task.preset.name().to_string(),
            seed: config.seed,
            device: config.device.to_string(),
            placed_on: None,
            outcome,
            utilisation,
            data_source: config.task.data.source_label().to_string(),
            config: config.clone(),
            environment,
        }
    }

    /// The record of a run that ended before it could write its own, written by whoever
    /// started it.
    pub fn failed(config: &RunConfig, failure: Failure, wall_seconds: f64) -> RunRecord {
        let mut environment = crate::records::environment::capture("unknown (the run did not finish)", None, None);
        // The threads are the run's, which this process does not know (a sweep gives each
        // run its share of the cores; Slurm, another machine's).
        environment.threads = None;
        RunRecord::new(
            config,
            Outcome::failed(failure, wall_seconds),
            Utilisation::of(config.step_flops(), None, None),
            environment,
        )
    }

    /// The record, saying that the run computed on `device` (see [`RunRecord::placed_on`]).
    pub fn placed_on(mut self, device: DeviceName) -> RunRecord {
        self.placed_on = Some(device.exact());
        self
    }

    /// The device the run computed on: where it was placed, else its configuration's.
    pub fn computed_on(&self) -> &str {
        self.placed_on.as_deref().unwrap_or(&self.device)
    }

    pub fn is_ok(&self) -> bool {
        self.outcome.failure.is_none()
    }

    /// `"ok"` or `"failed"`, as the record says.
    pub fn status(&self) -> &'static str {
        status_and_failure::status_of(self.outcome.failure.as_ref())
    }

    /// The model as reports name it ([`model_label`]).
    pub fn model_label(&self) -> String {
        model_label(&self.model, self.config.attention.variant())
    }
}

/// A model as reports name it: its name, and the form it computes where it has more than
/// one, e.g. `sinkhorn (as LRA ran it)`.
pub fn model_label(model: &str, variant: Option<lra_models::Variant>) -> String {
    match variant {
        Some(variant) => format!("{model} ({})", variant.label()),
        None => model.to_string(),
    }
}

/// The model's name in a [`model_label`].
pub fn model_of_label(label: &str) -> &str {
    label.split(" (").next().unwrap_or(label)
}

/// The id of a run: the first 12 hex digits of the SHA-256 of its canonical configuration.
pub fn run_id(config: &RunConfig) -> String {
    let canonical = serde_json::to_vec(config).expect("a configuration always serialises");
    let digest = Sha256::digest(&canonical);
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The folder of one run inside a results folder.
pub fn run_dir(results: &Path, run_id: &str) -> PathBuf {
    results.join("runs").join(run_id)
}

/// Where the record of `config` goes: `results/runs/<run-id>/result.json`.
pub fn result_path(results: &Path, config: &RunConfig) -> PathBuf {
    run_dir(results, &run_id(config)).join("result.json")
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    pub train_acc: f64,
    pub examples_per_s: f64,
    /// Validation accuracy, on the rows where the validation split was evaluated.
    pub val_acc: Option<f64>,
}

pub fn metrics_csv(rows: &[MetricsRow]) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    Ok(writer.into_inner()?)
}

/// Reads a run's `metrics.csv` (bounded by [`lra_datasets::files::limit::METRICS`]), each
/// row checked ([`check_metrics_row`]); an error names the file, the line and the field.
pub fn read_metrics_csv(path: &Path) -> anyhow::Result<Vec<MetricsRow>> {
    let text = lra_datasets::files::read_text_bounded(path, lra_datasets::files::limit::METRICS)?;
    parse_metrics_csv(&text).map_err(|why| anyhow::anyhow!("{}:{why}", path.display()))
}

/// The rows of a `metrics.csv` text; an error starts with the line it is on.
pub fn parse_metrics_csv(text: &str) -> Result<Vec<MetricsRow>, String> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut rows: Vec<MetricsRow> = Vec::new();
    for (i, row) in reader.deserialize().enumerate() {
        let line = i + 2;
        let row: MetricsRow = row.map_err(|e| format!("{line}: not a metrics row: {e}"))?;
        check_metrics_row(&row).map_err(|why| format!("{line}: {why}"))?;
        if let Some(last) = rows.last().filter(|last| last.step >= row.step) {
            return Err(format!("{line}: field `step`: {} does not follow the step {} before it", row.step, last.step));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// A metrics row's values in range: the accuracies fractions, the learning rate and
/// speed finite and not negative. The loss may be anything, NaN included: a run that
/// diverged logs the loss it diverged to (the plots leave such points out).
pub fn check_metrics_row(row: &MetricsRow) -> Result<(), String> {
    check_fraction("train_acc", row.train_acc)?;
    check_optional(row.val_acc, |v| check_fraction("val_acc", v))?;
    check_non_negative("lr", row.lr)?;
    check_non_negative("examples_per_s", row.examples_per_s)?;
    check_at_most("step", row.step, MAX_STEPS)
}

/// Reads a run record (bounded by [`lra_datasets::files::limit::RUN_RECORD`]) and checks it
/// ([`check_record`]), naming the file, and the field, on error.
pub fn read_record(path: &Path) -> anyhow::Result<RunRecord> {
    let text = lra_datasets::files::read_text_bounded(path, lra_datasets::files::limit::RUN_RECORD)?;
    let record: RunRecord = serde_json::from_str(&text).with_context(|| format!("{}: not a run record", path.display()))?;
    check_record(&record).map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
    Ok(record)
}

/// The most characters a name in a record (run id, task, model, preset, device, data
/// source, memory source) may have: the registry's longest is a few dozen.
pub const MAX_NAME_CHARS: usize = 200;
/// The most characters a failure's text may have (a panic's message, a crash's detail).
pub const MAX_FAILURE_CHARS: usize = 64 * 1024;
/// The most examples a split may have: the most any data configuration may ask for
/// (LRA's largest test split has 25,000); a count past this is a corrupt record, not a run.
pub const MAX_SPLIT_EXAMPLES: usize = lra_datasets::listops::MAX_EXAMPLES;
/// The most steps a run may have: the most a configuration may ask for (LRA's longest
/// schedule has 50,000).
pub const MAX_STEPS: usize = crate::records::run_config::limits::STEPS;

/// Why `record` cannot be reported, naming the field: each fraction in [0, 1], each time,
/// speed and loss finite and not negative, each count in range and consistent with the
/// others (a split's majority rate a share of its examples, the best step within the steps
/// run), each name known to the registry and of bounded length. Records of earlier
/// versions, without the fields added since, pass.
pub fn check_record(record: &RunRecord) -> Result<(), String> {
    for (field, name) in [
        ("run_id", &record.run_id),
        ("task", &record.task),
        ("model", &record.model),
        ("preset", &record.preset),
        ("device", &record.device),
        ("data_source", &record.data_source),
        ("memory_source", &record.outcome.memory_source),
    ] {
        check_length(field, name, MAX_NAME_CHARS)?;
    }
    if let Some(placed) = &record.placed_on {
        check_length("placed_on", placed, MAX_NAME_CHARS)?;
        let placed = DeviceName::parse(placed).map_err(|why| format!("field `placed_on`: {why}"))?;
        record.config.device.check_placement(placed).map_err(|why| format!("field `placed_on`: {why}"))?;
    }
    lra_tasks::Task::parse(&record.task).map_err(|why| format!("field `task`: {why}"))?;
    lra_tasks::Preset::parse(&record.preset).map_err(|why| format!("field `preset`: {why}"))?;
    lra_models::model_info(&record.model).map_err(|why| format!("field `model`: {why}"))?;
    let o = &record.outcome;
    if let Some(failure) = &o.failure {
        check_length("failure", &failure.to_string(), MAX_FAILURE_CHARS)?;
        if let Failure::TimedOut { seconds } = failure {
            check_non_negative("failure.seconds", *seconds)?;
        }
    }
    for (field, value) in [
        ("test_accuracy", o.test_accuracy),
        ("best_val_accuracy", o.best_val_accuracy),
        ("best_val_test_accuracy", o.best_val_test_accuracy),
        ("test_majority_rate", o.test_majority_rate),
        ("validation_majority_rate", o.validation_majority_rate),
    ] {
        check_optional(value, |v| check_fraction(field, v))?;
    }
    check_split("test", o.test_majority_rate, o.test_examples)?;
    check_split("validation", o.validation_majority_rate, o.validation_examples)?;
    check_at_most("steps", o.steps, MAX_STEPS)?;
    for (field, step) in [("best_step", o.best_step), ("left_chance_step", o.left_chance_step)] {
        check_optional(step, |step| {
            if step > o.steps { Err(format!("field `{field}`: {step} is past the run's {} steps", o.steps)) } else { Ok(()) }
        })?;
    }
    check_optional(o.final_train_loss, |v| check_non_negative("final_train_loss", v))?;
    for (field, value) in [
        ("train_seconds", o.train_seconds),
        ("wall_seconds", o.wall_seconds),
        ("train_steps_per_second", o.train_steps_per_second),
        ("train_tokens_per_second", o.train_tokens_per_second),
    ] {
        check_non_negative(field, value)?;
    }
    if let Some(auxiliary) = &o.auxiliary {
        check_finite("auxiliary.final_loss", auxiliary.final_loss)?;
        for value in auxiliary.expert_load.iter().flatten() {
            check_fraction("auxiliary.expert_load", *value)?;
        }
        for value in &auxiliary.dropped {
            check_fraction("auxiliary.dropped", *value)?;
        }
    }
    check_utilisation(&record.utilisation)
}

/// The operation counts and rates finite and not negative.
pub fn check_utilisation(utilisation: &Utilisation) -> Result<(), String> {
    for (field, value) in [
        ("step_flops", utilisation.step_flops),
        ("achieved_flops_per_second", utilisation.achieved_flops_per_second),
        ("mfu", utilisation.mfu),
    ] {
        check_optional(value, |v| check_non_negative(field, v))?;
    }
    Ok(())
}

/// A split's size in range and its majority rate a share of it: the most common label's
/// count over the examples, so at least one example's worth, and a whole number of them.
fn check_split(split: &str, rate: Option<f64>, examples: Option<usize>) -> Result<(), String> {
    let Some(examples) = examples else { return Ok(()) };
    check_at_most(&format!("{split}_examples"), examples, MAX_SPLIT_EXAMPLES)?;
    let Some(rate) = rate else { return Ok(()) };
    let count = rate * examples as f64;
    let whole = examples == 0 || (count >= 1.0 - 1e-6 && (count - count.round()).abs() <= 1e-6 * examples as f64);
    if (examples == 0 && rate != 0.0) || !whole {
        return Err(format!(
            "field `{split}_majority_rate`: {} is no share of the {examples} examples of `{split}_examples`",
            shown(rate)
        ));
    }
    Ok(())
}

pub(crate) fn check_optional<T>(value: Option<T>, check: impl FnOnce(T) -> Result<(), String>) -> Result<(), String> {
    value.map_or(Ok(()), check)
}

pub(crate) fn check_length(field: &str, text: &str, most: usize) -> Result<(), String> {
    // Counted up to one past the bound: a long text is not walked to its end.
    if text.chars().take(most + 1).count() > most {
        return Err(format!("field `{field}`: longer than {most} characters"));
    }
    Ok(())
}

/// `value` for an error: in scientific notation where plain digits would run long
/// (`1e307`, not 308 digits).
pub(crate) fn shown(value: f64) -> String {
    if value != 0.0 && value.is_finite() && !(1e-6..1e15).contains(&value.abs()) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

pub(crate) fn check_finite(field: &str, value: f64) -> Result<(), String> {
    if !value.is_finite() {
        return Err(format!("field `{field}`: {} is not a finite number", shown(value)));
    }
    Ok(())
}

pub(crate) fn check_non_negative(field: &str, value: f64) -> Result<(), String> {
    check_finite(field, value)?;
    if value < 0.0 {
        return Err(format!("field `{field}`: {} is negative", shown(value)));
    }
    Ok(())
}

pub(crate) fn check_fraction(field: &str, value: f64) -> Result<(), String> {
    if !(0.0..=1.0).contains(&value) {
        return Err(format!("field `{field}`: {} is not a fraction in [0, 1]", shown(value)));
    }
    Ok(())
}

pub(crate) fn check_at_most(field: &str, value: usize, most: usize) -> Result<(), String> {
    if value > most {
        return Err(format!("field `{field}`: {value} is over the most a record may hold, {most}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::device_name::DeviceName;
    use crate::records::files::json_bytes;
    use crate::records::files::write_atomically;
    use lra_models::attention::local::LocalSettings;
    use lra_models::{MechanismSettings, Variant};
    use lra_tasks::{Preset, Task};

    /// Records written before the outcome was a type of its own (and the status a field
    /// beside the failure), by the code at ef29a9e and 7a71cbc: the Transformer's, whose
    /// settings are its name alone, and BigBird's, whose settings have fields.
    const EARLIER_RECORDS: [&str; 2] = [
        include_str!("../../tests/data/result-of-the-transformer-of-an-earlier-version.json"),
        include_str!("../../tests/data/result-of-bigbird-of-an-earlier-version.json"),
    ];

    /// They are read and written again with the same fields in the same order and the
    /// same values, and their configurations hash to the run ids they were recorded under.
    /// (Values, not bytes: serde_json's default float parsing may miss the last digit of a
    /// 17-digit float, the same on every read, so a float read and written again can
    /// differ there from the file.)
    #[test]
    fn records_of_earlier_versions_are_read_and_written_again_unchanged() {
        let keys = |text: &str| -> Vec<String> {
            text.lines()
                .filter_map(|line| line.trim_start().strip_prefix('"')?.split_once("\":").map(|(key, _)| key.to_string()))
                .collect()
        };
        for earlier in EARLIER_RECORDS {
            let record: RunRecord = serde_json::from_str(earlier).unwrap();
            assert!(record.is_ok());
            let written = String::from_utf8(json_bytes(&record).unwrap()).unwrap();
            assert_eq!(keys(&written), keys(earlier), "{}", record.model);
            let value = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
            assert_eq!(value(&written), value(earlier), "{}", record.model);
            assert_eq!(run_id(&record.config), record.run_id, "{}", record.model);
            // They do not say when the run left chance, and are not made to.
            assert!(!record.outcome.left_chance_known() && record.outcome.left_chance_step.is_none());
            assert!(!written.contains("left_chance_step"), "{written}");
        }
    }

    /// A run of this version says when it left chance: a step, or `null` for never, beside
    /// the validation split it was judged on; each reads back as it was written, and
    /// neither is taken for a record of an earlier version.
    #[test]
    fn a_record_says_when_the_run_left_chance_and_null_when_it_never_did() {
        let mut record: RunRecord = serde_json::from_str(EARLIER_RECORDS[0]).unwrap();
        (record.outcome.validation_majority_rate, record.outcome.validation_examples) = (Some(0.125), Some(64));
        for (step, written) in [(Some(20), serde_json::json!(20)), (None, serde_json::Value::Null)] {
            record.outcome.left_chance_step = step;
            let json = serde_json::to_value(&record).unwrap();
            assert_eq!(json["left_chance_step"], written);
            assert_eq!(
                (json["validation_majority_rate"].as_f64(), json["validation_examples"].as_u64()),
                (Some(0.125), Some(64))
            );
            let read: RunRecord = serde_json::from_value(json).unwrap();
            assert!(read.outcome.left_chance_known());
            assert_eq!(read, record);
        }
        // The fields in the record's order: after the test split's, before the loss.
        let text = String::from_utf8(json_bytes(&record).unwrap()).unwrap();
        let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {text}"));
        assert!(at("test_examples") < at("validation_majority_rate"));
        assert!(at("validation_examples") < at("left_chance_step") && at("left_chance_step") < at("final_train_loss"));
    }

    /// The outcome is written by hand: every field, set, reads back the same.
    #[test]
    fn every_field_of_the_outcome_is_written_and_read_back() {
        let outcome = Outcome {
            failure: Some(Failure::DivergedToNan { step: 7 }),
            test_accuracy: Some(0.25),
            best_val_accuracy: Some(0.5),
            best_step: Some(5),
            best_val_test_accuracy: Some(0.375),
            test_majority_rate: Some(0.125),
            test_examples: Some(64),
            validation_majority_rate: Some(0.25),
            validation_examples: Some(32),
            left_chance_step: Some(5),
            final_train_loss: Some(1.5),
            auxiliary: Some(AuxiliaryRecord { final_loss: 0.5, expert_load: vec![vec![0.25, 0.75]], dropped: vec![0.125] }),
            steps: 7,
            train_seconds: 1.25,
            wall_seconds: 2.5,
            train_steps_per_second: 5.5,
            train_tokens_per_second: 176.0,
            peak_memory_bytes: 1024,
            memory_source: "heap".into(),
            peak_rss_bytes: Some(4096),
            parameters: 99,
        };
        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 22, "every field, and the status: {json}");
        assert_eq!(serde_json::from_value::<Outcome>(json).unwrap(), outcome);
    }

    #[test]
    fn the_status_is_derived_from_the_failure_and_must_agree_with_it_when_read() {
        let mut record: RunRecord = serde_json::from_str(EARLIER_RECORDS[0]).unwrap();
        record.outcome.failure = Some(Failure::DivergedToNan { step: 3 });
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["status"], "failed");
        assert_eq!(json["failure"], serde_json::json!({ "kind": "diverged_to_nan", "step": 3 }));
        assert_eq!(record.status(), "failed");
        assert_eq!(serde_json::from_value::<RunRecord>(json.clone()).unwrap(), record);

        let mut said_ok = json.clone();
        said_ok["status"] = "ok".into();
        let error = serde_json::from_value::<RunRecord>(said_ok).unwrap_err().to_string();
        assert!(error.contains(r#""status": "ok" beside the failure "diverged: loss is not finite at step 3""#), "{error}");
        let mut no_failure = json.clone();
        no_failure["failure"] = serde_json::Value::Null;
        let error = serde_json::from_value::<RunRecord>(no_failure).unwrap_err().to_string();
        assert!(error.contains(r#""status": "failed" without a failure"#), "{error}");
        let mut unknown = json;
        unknown["status"] = "fine".into();
        let error = serde_json::from_value::<RunRecord>(unknown).unwrap_err().to_string();
        assert!(error.contains(r#""status": "fine" is none of"#), "{error}");
    }

    /// A run record never held a benchmark cell's status words of earlier versions: read
    /// as one, they are refused.
    #[test]
    fn a_run_record_with_a_cells_status_words_is_refused() {
        let mut json: serde_json::Value = serde_json::from_str(EARLIER_RECORDS[0]).unwrap();
        json["status"] = "out of memory".into();
        json["detail"] = "SIGKILL".into();
        let error = serde_json::from_value::<RunRecord>(json).unwrap_err().to_string();
        assert!(error.contains(r#""status": "out of memory" is none of"#), "{error}");
    }

    /// A record written for a run by whoever started it states nothing of the run's own
    /// machine use that it cannot know: not the threads, not the adapter, not the peak.
    #[test]
    fn a_failed_run_recorded_by_another_process_claims_no_threads() {
        use crate::records::device_name::DeviceName;
        use lra_tasks::{Preset, Task};
        let config = RunConfig::resolve(Task::Listops, Preset::Tiny, "transformer", 0, DeviceName::Flex).unwrap();
        let record = RunRecord::failed(&config, Failure::TimedOut { seconds: 5.0 }, 5.0);
        assert_eq!(record.environment.threads, None);
        assert_eq!(record.environment.peak, None);
        assert_eq!(record.environment.device_adapter, "unknown (the run did not finish)");
        assert_eq!(record.run_id, run_id(&config));
    }

    /// A run placed on one of several GPUs says which, beside its configuration's device;
    /// the placement is no part of the run id. A record without it (written before
    /// placements, or by a run that names none) reads as it did, and a placement on another
    /// backend than the configuration's, or no device at all, is refused.
    #[test]
    fn a_record_says_where_the_run_was_placed_and_the_run_id_does_not() {
        let config = RunConfig::resolve(Task::Listops, Preset::Tiny, "transformer", 0, DeviceName::Cuda(0)).unwrap();
        let unplaced = RunRecord::failed(&config, Failure::TimedOut { seconds: 5.0 }, 5.0);
        let placed = unplaced.clone().placed_on(DeviceName::Cuda(3));
        assert_eq!((placed.device.as_str(), placed.placed_on.as_deref()), ("cuda", Some("cuda:3")));
        assert_eq!((placed.computed_on(), unplaced.computed_on()), ("cuda:3", "cuda"));
        assert_eq!(placed.run_id, unplaced.run_id);
        assert_eq!(placed.run_id, run_id(&config));
        let json = serde_json::to_value(&placed).unwrap();
        assert_eq!(json["placed_on"], "cuda:3");
        let read: RunRecord = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(read, placed);
        check_record(&read).unwrap();
        // Without a placement the field is left out, and reads back as absent.
        let json_unplaced = serde_json::to_value(&unplaced).unwrap();
        assert!(json_unplaced.get("placed_on").is_none(), "{json_unplaced}");
        let read: RunRecord = serde_json::from_value(json_unplaced).unwrap();
        assert_eq!(read.placed_on, None);
        check_record(&read).unwrap();
        for (bad, words) in [("wgpu:1", "not a device of the configuration's backend"), ("tpu", "unknown device")] {
            let mut json = json.clone();
            json["placed_on"] = bad.into();
            let record: RunRecord = serde_json::from_value(json).unwrap();
            let why = check_record(&record).unwrap_err();
            assert!(why.starts_with("field `placed_on`") && why.contains(words), "{why}");
        }
    }

    #[test]
    fn metrics_rows_round_trip_through_csv() {
        let rows = vec![
            MetricsRow { step: 10, loss: 2.25, lr: 1e-3, train_acc: 0.125, examples_per_s: 300.5, val_acc: None },
            MetricsRow { step: 20, loss: 2.0, lr: 5e-4, train_acc: 0.25, examples_per_s: 310.0, val_acc: Some(0.5) },
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        write_atomically(&path, &metrics_csv(&rows).unwrap()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("step,loss,lr,train_acc,examples_per_s,val_acc\n"), "{text}");
        assert_eq!(read_metrics_csv(&path).unwrap(), rows);
    }

    #[test]
    fn the_run_id_changes_with_anything_that_decides_the_run() {
        let base = RunConfig::resolve(Task::Listops, Preset::Tiny, "transformer", 1, DeviceName::Flex).unwrap();
        let id = run_id(&base);
        assert_eq!(id, run_id(&base.clone()));
        assert_eq!(id.len(), 12);
        let mut other_seed = base.clone();
        other_seed.seed = 2;
        let mut other_device = base.clone();
        other_device.device = DeviceName::Ndarray;
        let mut other_lr = base.clone();
        other_lr.task.training.weight_decay = 0.5;
        let mut other_attention = RunConfig::resolve(Task::Listops, Preset::Tiny, "local", 1, DeviceName::Flex).unwrap();
        let local_id = run_id(&other_attention);
        other_attention.attention = MechanismSettings::Local(LocalSettings { variant: Variant::Paper, block_size: 3 });
        assert_ne!(run_id(&other_attention), local_id);
        for changed in [other_seed, other_device, other_lr] {
            assert_ne!(run_id(&changed), id);
        }
    }
}
