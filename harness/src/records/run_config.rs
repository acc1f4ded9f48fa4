//! The fully resolved configuration of one run: what decides its numbers.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use lra_models::{ClassifierConfig, Mechanism, MechanismSettings, Variant};
use lra_tasks::lra::{self as lra_values, Origin};
use lra_tasks::{Pooling, Positions, Preset, Task, TaskConfig};

use crate::records::device_name::DeviceName;

/// Everything that decides a run. Saved as `config.json`; `lra run --config` reads it
/// back (unknown fields are refused, so a typo cannot silently fall back to a default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Name of the model (`lra list models`).
    pub model: String,
    /// Seed of initialisation, dropout and batch order. The data has its own seed.
    pub seed: u64,
    pub device: DeviceName,
    /// What the task and preset decide: data, sizes, optimiser.
    pub task: TaskConfig,
    /// The mechanism's own settings (block, k, features, buckets, ...).
    pub attention: MechanismSettings,
}

impl RunConfig {
    /// The configuration of `model` on `task` at `preset`, with generated or stand-in
    /// data (see [`RunConfig::prefer_released`]). At `lra`, what LRA's released code ran
    /// for this model (`lra_tasks::lra`); at `quick`, a miniature of that
    /// ([`RunConfig::miniature_of`]); at `tiny`, the mechanism's defaults with every
    /// length-bound setting cut to the sequence. At every preset, the values the model's
    /// code fixes ([`RunConfig::with_model_fixed`]).
    pub fn resolve(task: Task, preset: Preset, model: &str, seed: u64, device: DeviceName) -> anyhow::Result<RunConfig> {
        let info = lra_models::model_info(model).map_err(anyhow::Error::msg)?;
        let task_config = TaskConfig::resolve(task, preset);
        // Defaults derived from the length (Sparse's stride, the axial rows) follow the
        // tokens: the CLS vector stands before their layout.
        let attention = MechanismSettings::defaults(info.mechanism, task_config.max_length).fitted_to(task_config.positions());
        let config = RunConfig { model: model.to_string(), seed, device, task: task_config, attention };
        let config = match preset {
            Preset::Lra => config.with_lra_values()?,
            Preset::Quick => {
                let lra = RunConfig::resolve(task, Preset::Lra, model, seed, device)?;
                config.miniature_of(&lra)
            }
            Preset::Tiny => config,
        };
        config.with_model_fixed()
    }

    /// This configuration with the values the model's code fixes whatever it is given
    /// (`lra_tasks::lra::model_fixed`: the control's pooling and positions); where they
    /// change the sequence (a CLS vector gone), the mechanism's settings fitted to it.
    fn with_model_fixed(self) -> anyhow::Result<RunConfig> {
        let mut config = self.patched(lra_values::model_fixed(&self.model).iter())?;
        if config.task.positions() != self.task.positions() {
            config.attention = config.attention.fitted_to(config.task.positions());
        }
        Ok(config)
    }

    /// This (`quick`) configuration as a miniature of `lra`, LRA's configuration of the
    /// same task and model: the task's CPU form (data, sizes, steps, dropout, positions,
    /// pixel padding, mean pooling) keeps, and the model takes LRA's shape: at most its
    /// heads and layers, its ratios of attention and feed-forward width to the model
    /// width, its pooling where the task pools by CLS; the mechanism its LRA settings,
    /// lengths scaled to the shorter sequence
    /// ([`MechanismSettings::scaled`]).
    fn miniature_of(mut self, lra: &RunConfig) -> RunConfig {
        let (small, large) = (&mut self.task.model, &lra.task.model);
        let widen = |part: usize| ((small.d_model * part) as f64 / large.d_model as f64).round().max(1.0) as usize;
        small.heads = small.heads.min(large.heads);
        small.qkv_dim = widen(large.qkv_dim).max(small.heads).next_multiple_of(small.heads);
        small.d_ff = widen(large.d_ff);
        small.d_head_mlp = widen(large.d_head_mlp);
        small.layers = small.layers.min(large.layers);
        // Positions and pixel padding are the CPU task's own choice (measured for it);
        // pooling too where the task pools by the mean, which every model supports. A
        // task that pools by CLS takes the model's LRA pooling (LRA's Sinkhorn, say,
        // refuses CLS and pools by the mean).
        if small.pooling != Pooling::Mean {
            small.pooling = large.pooling;
        }
        self.attention = lra.attention.clone().scaled(lra.task.positions(), self.task.positions());
        self
    }

    /// This configuration with the per-model values of LRA's released code applied: the
    /// task's first (pooling decides the length), then the mechanism's.
    fn with_lra_values(self) -> anyhow::Result<RunConfig> {
        let settings = lra_values::model_settings(self.task.name, &self.model);
        let is_task = |path: &str| path.starts_with("task.");
        let mut config = self.patched(settings.iter().filter(|s| is_task(s.path)))?;
        config.attention =
            MechanismSettings::defaults(config.attention.mechanism(), config.task.max_length).fitted_to(config.task.positions());
        config.patched(settings.iter().filter(|s| !is_task(s.path)))
    }

    /// This configuration with each setting's value written at its path.
    fn patched<'a>(&self, settings: impl Iterator<Item = &'a lra_values::Setting>) -> anyhow::Result<RunConfig> {
        let mut json = serde_json::to_value(self)?;
        for setting in settings {
            let Some(value) = setting.value else { continue };
            let value: serde_json::Value =
                serde_json::from_str(value).with_context(|| format!("LRA value of {}: {value}", setting.path))?;
            match setting.path.split('.').try_fold(&mut json, |node, key| node.get_mut(key)) {
                Some(slot) => *slot = value,
                None => bail!("LRA value for {}: no such field in the configuration of {}", setting.path, self.model),
            }
        }
        serde_json::from_value(json).with_context(|| format!("LRA's values for {}", self.model))
    }

    /// This configuration computing `variant` of its mechanism; refused for a model whose
    /// mechanism has one form.
    pub fn with_variant(mut self, variant: Variant) -> anyhow::Result<RunConfig> {
        self.attention =
            self.attention.with_variant(variant).map_err(|why| anyhow::anyhow!("--variant for {}: {why}", self.model))?;
        Ok(self)
    }

    /// Switches to the task's released files when they are under `data_dir` (they are
    /// always preferred over generated or stand-in data).
    pub fn prefer_released(mut self, data_dir: &Path) -> RunConfig {
        self.task.data = self.task.data.prefer_released(data_dir);
        self
    }

    /// Reads a configuration file; errors name the file, and the line, column and field.
    /// The file is read with a bound (a FIFO, a device or a huge file is refused, not read
    /// forever). Errors quote values whole: the command line cuts what it prints
    /// (`cli::errors`).
    pub fn load(path: &Path) -> anyhow::Result<RunConfig> {
        let text = lra_datasets::files::read_text_bounded(path, lra_datasets::files::limit::CONFIGURATION)
            .map_err(|e| anyhow::anyhow!("reading the configuration: {e}"))?;
        let config: RunConfig = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}:{}:{}: {}", path.display(), e.line(), e.column(), strip_position(&e)))?;
        config.validate().map_err(|e| anyhow::anyhow!("{}: invalid configuration: {e:#}", path.display()))?;
        Ok(config)
    }

    /// The model this configuration trains.
    pub fn classifier_config(&self) -> ClassifierConfig {
        let TaskConfig { max_length, vocab_size, classes, model: m, .. } = &self.task;
        let info = lra_models::model_info(&self.model).expect("the configuration was validated");
        ClassifierConfig::new(
            *vocab_size,
            *classes,
            *max_length,
            m.d_model,
            m.heads,
            m.layers,
            m.d_ff,
            m.d_head_mlp,
            info.mechanism,
        )
        .with_pooling(match m.pooling {
            Pooling::Cls => lra_models::Pooling::Cls,
            Pooling::Mean => lra_models::Pooling::Mean,
        })
        .with_positions(match m.positions {
            Positions::Sinusoidal => lra_models::Positions::Sinusoidal,
            Positions::Learned => lra_models::Positions::Learned,
            Positions::None => lra_models::Positions::None,
        })
        .with_dropout(m.dropout)
        .with_attention_dropout(m.attention_dropout)
        .with_paired(self.task.name.paired())
        .with_qkv_dim(Some(m.qkv_dim))
        .with_settings(Some(self.attention.clone()))
    }

    /// The operations of one training step of this configuration, counted from the
    /// model's shape ([`ClassifierConfig::training_step_flops`]).
    pub fn step_flops(&self) -> f64 {
        self.classifier_config().training_step_flops(self.task.training.batch_size)
    }

    /// A low estimate of the bytes one training step of this configuration holds
    /// ([`ClassifierConfig::training_step_memory_bytes`]).
    pub fn step_memory_bytes(&self) -> f64 {
        self.classifier_config().training_step_memory_bytes(self.task.training.batch_size)
    }

    /// Checks the values that serde's types cannot: every value by its range (sizes below
    /// [`limits`] where a larger one could only allocate absurdly, optimiser values where
    /// the optimiser means something), naming the field, the value and the limit.
    pub fn validate(&self) -> anyhow::Result<()> {
        lra_models::check_model_name(&self.model).map_err(anyhow::Error::msg)?;
        self.check_ranges()?;
        let t = &self.task;
        let m = &t.model;
        if m.heads == 0 || !m.qkv_dim.is_multiple_of(m.heads) {
            bail!("model.heads ({}) must divide model.qkv_dim ({})", m.heads, m.qkv_dim);
        }
        // A value the model's code fixes must be the one written: writing it changes nothing.
        for fixed in lra_values::model_fixed(&self.model) {
            let Some(value) = fixed.value else { continue };
            let (Origin::Ours(why) | Origin::Lra(why)) = fixed.origin;
            if self.patched(std::iter::once(&fixed))? != *self {
                bail!("{}: {} computes {value} whatever the configuration says; write {value} ({why})", fixed.path, self.model);
            }
        }
        let mechanism = lra_models::model_info(&self.model).map_err(anyhow::Error::msg)?.mechanism;
        if self.attention.mechanism() != mechanism {
            bail!(
                "attention: these settings are for {:?}, but the model {} uses {:?}",
                self.attention.mechanism(),
                self.model,
                mechanism
            );
        }
        let lra_reformer = mechanism == Mechanism::Reformer && self.attention.variant() == Some(Variant::Lra);
        if lra_reformer && m.qkv_dim != m.d_model {
            bail!(
                "attention: LRA's Reformer has the width d_model ({}) whatever qkv_dim says; set model.qkv_dim to it, not {}",
                m.d_model,
                m.qkv_dim
            );
        }
        let positions = t.positions();
        self.attention.check(positions).map_err(|why| {
            anyhow::anyhow!(
                "attention: {why}; the sequence is max_length {} plus the CLS vector where it pools by CLS",
                t.max_length
            )
        })?;
        for (name, value) in [("model.dropout", m.dropout), ("model.attention_dropout", m.attention_dropout)] {
            if !(0.0..1.0).contains(&value) {
                bail!("{name} must be in [0, 1), found {value}");
            }
        }
        for (name, value) in [
            ("max_length", t.max_length),
            ("model.layers", m.layers),
            ("model.d_ff", m.d_ff),
            ("model.qkv_dim", m.qkv_dim),
            ("training.batch_size", t.training.batch_size),
            ("training.steps", t.training.steps),
            ("training.eval_every", t.training.eval_every),
            ("training.log_every", t.training.log_every),
            ("training.eval_batch_size", t.training.eval_batch()),
        ] {
            if value == 0 {
                bail!("{name} must be positive");
            }
        }
        if t.training.warmup_steps_untimed >= t.training.steps {
            bail!(
                "training.warmup_steps_untimed ({}) must be below training.steps ({})",
                t.training.warmup_steps_untimed,
                t.training.steps
            );
        }
        t.check_images()?;
        if t.pixel_zero_is_padding && t.image_side().is_none() {
            bail!("pixel_zero_is_padding: the task {} has no pixels", t.name.name());
        }
        if t.vocab_size != t.name.vocab_size() || t.classes != t.name.classes() {
            bail!(
                "vocab_size and classes are fixed by the task {}: {} and {}",
                t.name.name(),
                t.name.vocab_size(),
                t.name.classes()
            );
        }
        Ok(())
    }
}

/// Upper bounds of the sizes of a configuration: far above anything LRA or a GPU of
/// today runs (Path-X is 16,384 positions, LRA's widest model 1,024), far below what
/// would only allocate absurdly or overflow a count.
pub mod limits {
    /// `max_length` (positions of a sequence).
    pub const MAX_LENGTH: usize = 1 << 20;
    /// `d_model`, `qkv_dim`, `d_ff`, `d_head_mlp`.
    pub const WIDTH: usize = 1 << 18;
    /// `heads`.
    pub const HEADS: usize = 1 << 12;
    /// `layers`.
    pub const LAYERS: usize = 1 << 10;
    /// Training and evaluation batch sizes.
    pub const BATCH: usize = 1 << 20;
    /// `steps`, `warmup_steps_untimed`, `eval_every`, `log_every`, a schedule's `warmup`.
    pub const STEPS: usize = 1 << 32;
    /// Every whole-number setting of the mechanism (features, hash rounds, buckets,
    /// blocks, ...) but its seed.
    pub const MECHANISM_SETTING: u64 = 1 << 20;
}

/// Refuses `value` of `name` when zero or above `limit`.
fn check_size(name: &str, value: usize, limit: usize) -> anyhow::Result<()> {
    if value == 0 || value > limit {
        bail!("{name} must be between 1 and {limit}, found {value}");
    }
    Ok(())
}

impl RunConfig {
    /// The range checks of [`RunConfig::validate`]: sizes, optimiser values, data counts.
    fn check_ranges(&self) -> anyhow::Result<()> {
        let t = &self.task;
        let (m, tr) = (&t.model, &t.training);
        for (name, value, limit) in [
            ("task.max_length", t.max_length, limits::MAX_LENGTH),
            ("task.model.d_model", m.d_model, limits::WIDTH),
            ("task.model.qkv_dim", m.qkv_dim, limits::WIDTH),
            ("task.model.d_ff", m.d_ff, limits::WIDTH),
            ("task.model.d_head_mlp", m.d_head_mlp, limits::WIDTH),
            ("task.model.heads", m.heads, limits::HEADS),
            ("task.model.layers", m.layers, limits::LAYERS),
            ("task.training.batch_size", tr.batch_size, limits::BATCH),
            ("task.training.eval_batch_size", tr.eval_batch(), limits::BATCH),
            ("task.training.steps", tr.steps, limits::STEPS),
            ("task.training.eval_every", tr.eval_every, limits::STEPS),
            ("task.training.log_every", tr.log_every, limits::STEPS),
        ] {
            check_size(name, value, limit)?;
        }
        if tr.warmup_steps_untimed > limits::STEPS {
            bail!("task.training.warmup_steps_untimed must be at most {}, found {}", limits::STEPS, tr.warmup_steps_untimed);
        }
        let (base, warmup) = match tr.schedule {
            lra_tasks::Schedule::Rsqrt { base, warmup } | lra_tasks::Schedule::Cosine { base, warmup } => (base, Some(warmup)),
            lra_tasks::Schedule::Constant { base } => (base, None),
        };
        if !(base.is_finite() && base > 0.0) {
            bail!("task.training.schedule.base (the learning rate) must be finite and above 0, found {base}");
        }
        if let Some(warmup) = warmup.filter(|&w| w > limits::STEPS) {
            bail!("task.training.schedule.warmup must be at most {}, found {warmup}", limits::STEPS);
        }
        for (name, value) in [("task.training.beta_1", tr.beta_1), ("task.training.beta_2", tr.beta_2)] {
            if !(0.0..1.0).contains(&value) {
                bail!("{name} must be in [0, 1), found {value}");
            }
        }
        if !(tr.epsilon.is_finite() && tr.epsilon > 0.0) {
            bail!("task.training.epsilon must be finite and above 0, found {}", tr.epsilon);
        }
        if !(tr.weight_decay.is_finite() && tr.weight_decay >= 0.0) {
            bail!("task.training.weight_decay must be finite and at least 0, found {}", tr.weight_decay);
        }
        if let Some(clip) = tr.gradient_clip_norm.filter(|c| !(c.is_finite() && *c > 0.0)) {
            bail!("task.training.gradient_clip_norm must be finite and above 0 when set (absent: no clipping), found {clip}");
        }
        let mut settings = Vec::new();
        flatten("attention", &serde_json::to_value(&self.attention)?, &mut settings);
        for (path, value) in settings {
            let Some(number) = value.as_u64() else { continue };
            if !path.ends_with(".seed") && number > limits::MECHANISM_SETTING {
                bail!("{path} must be at most {}, found {number}", limits::MECHANISM_SETTING);
            }
        }
        Ok(())
    }
}

/// One value of a resolved configuration and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainedValue {
    /// Dotted path in `config.json`.
    pub path: String,
    /// The value, as compact JSON.
    pub value: String,
    /// `LRA: <file:line>`, or `ours: <why>`.
    pub source: String,
}

/// A configuration's values with their sources, and the differences from LRA that no
/// value expresses (at `lra`).
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    pub values: Vec<ExplainedValue>,
    pub differences: Vec<(String, String)>,
}

/// Where each value of `config` comes from.
pub fn explain(config: &RunConfig) -> anyhow::Result<Explained> {
    let preset = config.task.preset;
    let settings = match preset {
        Preset::Lra => {
            let mut all = lra_values::task_settings(config.task.name);
            all.extend(lra_values::model_settings(config.task.name, &config.model));
            all
        }
        // What the model's code fixes holds at every preset (included in model_settings).
        Preset::Tiny => lra_values::model_fixed(&config.model),
        Preset::Quick => {
            let mut all = lra_values::cpu_form(config.task.name);
            all.extend(lra_values::model_fixed(&config.model));
            all
        }
    };
    let describe = |origin: Origin| match origin {
        Origin::Lra(file) => format!("LRA: {file}"),
        Origin::Ours(why) => format!("ours: {why}"),
    };
    let mut leaves = Vec::new();
    flatten("", &serde_json::to_value(config)?, &mut leaves);
    let mechanism_file = mechanism_file(&config.attention);
    let values = leaves
        .into_iter()
        .map(|(path, value)| {
            let listed = settings.iter().rev().find(|s| s.path == path && (s.value.is_some() || is_sourced(s.origin)));
            // A value changed from the preset's (--variant, an edited configuration file).
            let changed = listed.and_then(|s| s.value).filter(|v| serde_json::from_str::<serde_json::Value>(v).ok().as_ref() != Some(&value));
            let source = match listed {
                Some(setting) if changed.is_some() => {
                    format!("given (--variant or the configuration file), not the preset's {}: {}", changed.unwrap_or_default(), describe(setting.origin))
                }
                Some(setting) => describe(setting.origin),
                None if matches!(path.as_str(), "model" | "seed" | "device") => "the command line".to_string(),
                None if path.starts_with("attention.") => match preset {
                    Preset::Lra => format!("ours: the mechanism's default ({mechanism_file}); LRA's code has no such setting"),
                    Preset::Quick => {
                        "ours: the lra preset's value, lengths scaled to this sequence (RunConfig::miniature_of)".into()
                    }
                    Preset::Tiny => format!("ours: the mechanism's default ({mechanism_file}), cut to the sequence where longer"),
                },
                None if preset == Preset::Lra => "ours: the harness's choice, no value of LRA's (tasks/src/presets.rs)".into(),
                None if preset == Preset::Quick && (path.starts_with("task.model.") || path == "task.pixel_zero_is_padding") => {
                    "ours: the quick preset (tasks/src/presets.rs) in the lra preset's shape for this model (RunConfig::miniature_of)"
                        .into()
                }
                None => format!("ours: the {} preset (tasks/src/presets.rs)", preset.name()),
            };
            ExplainedValue { path, value: value.to_string(), source }
        })
        .collect::<Vec<_>>();
    let differences = settings
        .iter()
        .filter(|s| s.value.is_none() && !is_sourced(s.origin))
        .filter_map(|s| match s.origin {
            Origin::Ours(why) => Some((s.path.to_string(), why.to_string())),
            Origin::Lra(_) => None,
        })
        .collect();
    Ok(Explained { values, differences })
}

/// Whether an entry names where a value comes from (rather than noting a difference).
fn is_sourced(origin: Origin) -> bool {
    matches!(origin, Origin::Lra(_))
}

/// The leaves of `value` as (dotted path, value).
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(fields) if !fields.is_empty() => {
            for (key, field) in fields {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&path, field, out);
            }
        }
        leaf => out.push((prefix.to_string(), leaf.clone())),
    }
}

/// The file that defines a mechanism and its defaults.
fn mechanism_file(settings: &MechanismSettings) -> String {
    let name = serde_json::to_value(settings.mechanism()).ok().and_then(|v| v.as_str().map(str::to_string));
    format!("models/src/attention/{}.rs", name.unwrap_or_default())
}

/// The `lra` preset of every task and model as Markdown, each value with its source:
/// the document `docs/lra-configuration.md` (a test keeps the two equal).
pub fn lra_table_markdown() -> anyhow::Result<String> {
    use std::fmt::Write;
    let mut out = String::from(
        "# The `lra` preset: LRA's configuration per task and model\n\n\
         Generated from the code (`tasks/src/lra.rs`, `tasks/src/presets.rs`); `lra config --task T --model M \
         --preset lra --explain` prints the same for one run. Sources are files of LRA's released code \
         (google-research/long-range-arena, under `lra_benchmarks/`), at `path:line`. A config key that the \
         task's `train.py` never hands to the model has no effect: the model's default ran, and that default is \
         what is listed. \"ours\" marks where we differ on purpose, and why.\n",
    );
    for task in Task::ALL {
        let base = RunConfig::resolve(task, Preset::Lra, lra_models::BASELINE, 0, DeviceName::Flex)?;
        let explained = explain(&base)?;
        writeln!(out, "\n## {}\n\nThe task's own values (its Transformer):\n", task.name())?;
        writeln!(out, "| setting | value | source |\n|---|---|---|")?;
        for value in explained.values.iter().filter(|v| v.source.starts_with("LRA: ")) {
            writeln!(out, "| `{}` | `{}` | {} |", value.path, value.value, &value.source["LRA: ".len()..])?;
        }
        writeln!(out, "\nPer model, where it differs from the task's own:\n")?;
        writeln!(out, "| model | setting | value | source |\n|---|---|---|---|")?;
        // (path, why, the models it concerns; none: every model)
        let mut differences: Vec<(String, String, Vec<&str>)> =
            explained.differences.iter().map(|(path, why)| (path.clone(), why.clone(), Vec::new())).collect();
        for model in lra_models::MODELS {
            let config = RunConfig::resolve(task, Preset::Lra, model.name, 0, DeviceName::Flex)?;
            let explained = explain(&config)?;
            for setting in lra_values::model_settings(task, model.name).iter().filter(|s| s.value.is_some()) {
                let value = explained.values.iter().find(|v| v.path == setting.path).map(|v| v.value.clone());
                let source = match setting.origin {
                    Origin::Lra(file) => file.to_string(),
                    Origin::Ours(why) => format!("ours: {why}"),
                };
                writeln!(out, "| {} | `{}` | `{}` | {source} |", model.name, setting.path, value.unwrap_or_default())?;
            }
            for (path, why) in explained.differences {
                match differences.iter_mut().find(|(_, known, _)| *known == why) {
                    Some((_, _, models)) if models.is_empty() => {}
                    Some((_, _, models)) => models.push(model.name),
                    None => differences.push((path, why, vec![model.name])),
                }
            }
        }
        writeln!(out, "\nWhere we differ from LRA's code beyond these values:\n")?;
        for (path, why, models) in differences {
            let which = if models.is_empty() { String::new() } else { format!(" ({})", models.join(", ")) };
            writeln!(out, "- `{path}`{which}: {why}")?;
        }
    }
    Ok(out)
}

/// serde_json appends " at line L column C"; the caller puts the position first instead.
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lra_models::attention::linformer::LinformerSettings;
    use lra_models::attention::local::LocalSettings;
    use lra_models::attention::performer::PerformerSettings;
    use lra_models::attention::reformer::ReformerSettings;
    use lra_models::attention::synthesizer::SynthesizerSettings;

    #[test]
    fn a_saved_configuration_loads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let config = RunConfig::resolve(Task::Listops, Preset::Quick, "transformer", 7, DeviceName::Ndarray).unwrap();
        let path = dir.path().join("config.json");
        crate::records::files::write_json_atomically(&path, &config).unwrap();
        assert_eq!(RunConfig::load(&path).unwrap(), config);
    }

    #[test]
    fn invalid_values_are_refused_by_name() {
        let mut config = RunConfig::resolve(Task::Listops, Preset::Tiny, "transformer", 1, DeviceName::Flex).unwrap();
        config.task.model.heads = 3;
        assert!(config.validate().unwrap_err().to_string().contains("model.heads"));
        config.task.model.heads = 2;
        config.task.training.batch_size = 0;
        assert!(config.validate().unwrap_err().to_string().contains("training.batch_size"));
        config.task.training.batch_size = 2;
        // A hostile file: a ListOps generator whose trees grow without bound, refused
        // before anything is prepared.
        if let lra_tasks::DataConfig::ListopsGenerated { max_depth, .. } = &mut config.task.data {
            *max_depth = 1000;
        }
        let why = format!("{:#}", config.validate().unwrap_err());
        assert!(why.contains("data: listops: max_depth 1000 is above 20"), "{why}");
    }

    /// Every model's configuration of every task at `lra`.
    fn lra_configs() -> impl Iterator<Item = RunConfig> {
        Task::ALL.into_iter().flat_map(|task| {
            lra_models::MODELS.iter().map(move |model| {
                RunConfig::resolve(task, Preset::Lra, model.name, 0, DeviceName::Flex).expect("every model resolves")
            })
        })
    }

    /// The node at a dotted path of a JSON value.
    fn at<'a>(json: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
        path.split('.').try_fold(json, |node, key| node.get(key))
    }

    #[test]
    fn every_lra_setting_names_a_field_of_the_configuration_and_its_value_is_the_one_resolved() {
        for config in lra_configs() {
            let json = serde_json::to_value(&config).unwrap();
            let (task, model) = (config.task.name, config.model.as_str());
            let mut settings = lra_values::task_settings(task);
            settings.extend(lra_values::model_settings(task, model));
            for setting in &settings {
                let found = at(&json, setting.path);
                assert!(found.is_some(), "{task:?} {model}: no field {}", setting.path);
                // The last value given for a path is the one the configuration holds.
                let last = settings.iter().rev().find(|s| s.path == setting.path && s.value.is_some());
                if let Some(value) = last.and_then(|s| s.value) {
                    let expected: serde_json::Value = serde_json::from_str(value).unwrap();
                    assert_eq!(found, Some(&expected), "{task:?} {model}: {}", setting.path);
                }
            }
        }
    }

    #[test]
    fn every_configuration_of_every_preset_is_valid_but_lras_path_x_sinkhorn() {
        for preset in Preset::ALL {
            for task in Task::ALL {
                for model in lra_models::MODELS {
                    let config = RunConfig::resolve(task, preset, model.name, 0, DeviceName::Flex).unwrap();
                    let checked = config.validate();
                    if (preset, task, model.name) == (Preset::Lra, Task::Pathx, "sinkhorn") {
                        // LRA's Sinkhorn cuts 16384 pixels into blocks of 50 without padding:
                        // refused, as LRA's own code fails.
                        let why = format!("{:#}", checked.unwrap_err());
                        assert!(why.contains("block_size 50") && why.contains("16384 positions"), "{why}");
                        assert!(config.clone().with_variant(Variant::Paper).unwrap().validate().is_ok());
                        continue;
                    }
                    checked.unwrap_or_else(|e| panic!("{preset:?} {task:?} {}: {e:#}", model.name));
                }
            }
        }
    }

    #[test]
    fn quick_is_lras_shape_at_the_cpu_sizes() {
        let quick = |task, model| RunConfig::resolve(task, Preset::Quick, model, 0, DeviceName::Flex).unwrap();
        // Pathfinder's Local: LRA's qkv/emb of 1/2 and mlp/emb of 1 at quick's width 64;
        // LRA's block of 64 in 1,024 pixels is 9 in the 144 of the CPU grid.
        let local = quick(Task::Pathfinder, "local");
        let m = &local.task.model;
        assert_eq!((m.d_model, m.qkv_dim, m.d_ff, m.heads, m.layers), (64, 32, 64, 4, 1));
        assert_eq!((m.pooling, m.positions), (lra_tasks::Pooling::Mean, lra_tasks::Positions::Sinusoidal));
        assert!(local.task.pixel_zero_is_padding);
        assert_eq!(local.attention, MechanismSettings::Local(LocalSettings { variant: Variant::Lra, block_size: 9 }));
        // ListOps' Sinkhorn pools by mean, as LRA's; Linformer keeps k = 16.
        assert_eq!(quick(Task::Listops, "sinkhorn").task.model.pooling, lra_tasks::Pooling::Mean);
        assert_eq!(
            quick(Task::Listops, "linformer").attention,
            MechanismSettings::Linformer(LinformerSettings { variant: Variant::Lra, projected_length: 16 })
        );
    }

    #[test]
    fn the_lra_preset_holds_what_lras_configs_and_code_ran_per_model() {
        let lra = |task, model| RunConfig::resolve(task, Preset::Lra, model, 0, DeviceName::Flex).unwrap();
        // pathfinder32/local_base.py: 2 layers, 4 heads, emb 64, qkv 32, mlp 64, dropout 0.1, block 64.
        let local = lra(Task::Pathfinder, "local");
        let m = &local.task.model;
        assert_eq!((m.layers, m.heads, m.d_model, m.qkv_dim, m.d_ff, m.dropout), (2, 4, 64, 32, 64, 0.1));
        assert_eq!(local.attention, MechanismSettings::Local(LocalSettings { variant: Variant::Lra, block_size: 64 }));
        // The Transformer's own values of the task are untouched.
        let transformer = lra(Task::Pathfinder, "transformer");
        assert_eq!((transformer.task.model.layers, transformer.task.model.d_model), (4, 32));
        // cifar10/sinkhorn_base.py: the base config's sizes, weight decay 0.7, and MEAN pooling.
        let sinkhorn = lra(Task::Image, "sinkhorn");
        assert_eq!((sinkhorn.task.model.d_model, sinkhorn.task.model.heads), (32, 1));
        assert_eq!(sinkhorn.task.training.weight_decay, 0.7);
        assert_eq!(sinkhorn.task.model.pooling, lra_tasks::Pooling::Mean);
        // Linformer's k = 16 whatever the task's config says; ListOps' Performer: 2 features.
        assert_eq!(
            lra(Task::Text, "linformer").attention,
            MechanismSettings::Linformer(LinformerSettings { variant: Variant::Lra, projected_length: 16 })
        );
        assert!(matches!(
            lra(Task::Listops, "performer").attention,
            MechanismSettings::Performer(PerformerSettings { features: 2, .. })
        ));
        // Reformer: LRA's arguments (10 buckets, one round, padding to a multiple of 10),
        // its variant cutting the 2001 positions, filled up to 2010, into ten chunks.
        let reformer = lra(Task::Listops, "reformer");
        let expected =
            MechanismSettings::Reformer(ReformerSettings { variant: Variant::Lra, chunk_size: 10, hash_rounds: 1, buckets: 10 });
        assert_eq!(reformer.attention, expected);
        // Every mechanism with an lra variant runs it at lra and quick; Synthesizer's is
        // LRA's random logits plus dot products; Performer's kernel is ReLU outside ListOps.
        for model in lra_models::MODELS {
            for preset in [Preset::Lra, Preset::Quick] {
                let config = RunConfig::resolve(Task::Text, preset, model.name, 0, DeviceName::Flex).unwrap();
                let expected = model.mechanism.has_variants().then_some(Variant::Lra);
                assert_eq!(config.attention.variant(), expected, "{} at {preset:?}", model.name);
            }
        }
        assert!(matches!(
            lra(Task::Text, "synthesizer").attention,
            MechanismSettings::Synthesizer(SynthesizerSettings {
                kind: lra_models::attention::synthesizer::SynthesizerKind::Random,
                ..
            })
        ));
        assert!(matches!(
            lra(Task::Text, "performer").attention,
            MechanismSettings::Performer(PerformerSettings {
                kernel: lra_models::attention::performer::PerformerKernel::Relu,
                ..
            })
        ));
        assert_eq!(reformer.task.positions(), 2001);
        // Models LRA did not run take the task's Transformer configuration.
        assert_eq!(lra(Task::Image, "s4d").task.model, lra(Task::Image, "transformer").task.model);
    }

    #[test]
    fn an_unknown_hyperparameter_in_a_configuration_file_is_refused_by_name_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let config = RunConfig::resolve(Task::Listops, Preset::Tiny, "local", 1, DeviceName::Flex).unwrap();
        let text = String::from_utf8(crate::records::files::json_bytes(&config).unwrap()).unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, text.replace("\"block_size\"", "\"block_sise\"")).unwrap();
        let err = format!("{:#}", RunConfig::load(&path).unwrap_err());
        let line = text.lines().position(|l| l.contains("block_size")).unwrap() + 1;
        assert!(err.contains(&format!("config.json:{line}:")), "{err}");
        assert!(err.contains("block_sise"), "{err}");
    }

    #[test]
    fn data_of_another_task_or_images_cut_short_are_refused() {
        let mut config = RunConfig::resolve(Task::Pathfinder, Preset::Quick, "transformer", 0, DeviceName::Flex).unwrap();
        config.validate().unwrap();
        // A length short of the image's pixels would train on its first rows alone.
        config.task.max_length = 100;
        assert!(format!("{:#}", config.validate().unwrap_err()).contains("max_length 100 does not match the 144 pixels"));
        config.task.max_length = 144;
        config.task.data = RunConfig::resolve(Task::Pathx, Preset::Tiny, "transformer", 0, DeviceName::Flex).unwrap().task.data;
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(err.contains("does not hold pathfinder examples"), "{err}");
        let mut listops = RunConfig::resolve(Task::Listops, Preset::Tiny, "transformer", 0, DeviceName::Flex).unwrap();
        listops.task.data = config.task.data.clone();
        assert!(format!("{:#}", listops.validate().unwrap_err()).contains("listops"));
    }

    #[test]
    fn a_setting_that_cannot_work_with_the_length_is_refused_naming_both() {
        let mut config = RunConfig::resolve(Task::Listops, Preset::Tiny, "local", 1, DeviceName::Flex).unwrap();
        config.attention = MechanismSettings::Local(LocalSettings { variant: Variant::Paper, block_size: 100 });
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(err.contains("block_size 100") && err.contains("33 positions") && err.contains("max_length 32"), "{err}");
        config.attention = MechanismSettings::Linformer(LinformerSettings { variant: Variant::Paper, projected_length: 8 });
        assert!(format!("{:#}", config.validate().unwrap_err()).contains("uses Local"));
    }

    /// The control pools by the mean of the real tokens and reads no positions whatever
    /// the task's configuration: every preset's configuration says so and `--explain` says
    /// why; a configuration file that says otherwise is refused, naming the value.
    #[test]
    fn the_controls_configuration_says_mean_pooling_and_no_positions_at_every_preset_and_why() {
        for preset in Preset::ALL {
            for task in Task::ALL {
                let config = RunConfig::resolve(task, preset, lra_models::CONTROL, 0, DeviceName::Flex).unwrap();
                let m = &config.task.model;
                assert_eq!(
                    (m.pooling, m.positions),
                    (lra_tasks::Pooling::Mean, lra_tasks::Positions::None),
                    "{preset:?} {task:?}"
                );
                assert_eq!(config.task.positions(), config.task.max_length, "no CLS vector");
                let explained = explain(&config).unwrap();
                let source = |path: &str| explained.values.iter().find(|v| v.path == path).unwrap().source.clone();
                assert!(source("task.model.pooling").starts_with("ours: the control has no attention"), "{preset:?}");
                assert!(source("task.model.positions").starts_with("ours: the control adds no positions"), "{preset:?}");
            }
        }
        let mut config = RunConfig::resolve(Task::Text, Preset::Quick, lra_models::CONTROL, 0, DeviceName::Flex).unwrap();
        config.task.model.pooling = lra_tasks::Pooling::Cls;
        let why = format!("{:#}", config.validate().unwrap_err());
        assert!(why.starts_with("task.model.pooling: bag computes \"mean\" whatever the configuration says"), "{why}");
        config.task.model.pooling = lra_tasks::Pooling::Mean;
        config.task.model.positions = lra_tasks::Positions::Learned;
        assert!(format!("{:#}", config.validate().unwrap_err()).starts_with("task.model.positions: bag computes \"none\""));
        // The Transformer takes the task's own.
        let transformer = RunConfig::resolve(Task::Text, Preset::Quick, lra_models::BASELINE, 0, DeviceName::Flex).unwrap();
        assert_eq!(transformer.task.model.positions, lra_tasks::Positions::Sinusoidal);
    }

    /// What every model's configuration says of pooling and positions is what its
    /// classifier computes (`ClassifierConfig::computed`, which overrides them for a model
    /// without attention), at every preset and task.
    #[test]
    fn every_configuration_says_the_pooling_and_positions_its_classifier_computes() {
        for preset in Preset::ALL {
            for task in Task::ALL {
                for model in lra_models::MODELS {
                    let config = RunConfig::resolve(task, preset, model.name, 0, DeviceName::Flex).unwrap();
                    // What training builds from the configuration, and what that computes.
                    let classifier = config.classifier_config();
                    let computed = classifier.computed();
                    assert_eq!(
                        (computed.pooling, computed.positions),
                        (classifier.pooling, classifier.positions),
                        "{preset:?} {task:?} {}",
                        model.name
                    );
                }
            }
        }
    }

    #[test]
    fn explain_names_the_lra_file_of_each_value_and_the_differences() {
        let config = RunConfig::resolve(Task::Pathfinder, Preset::Lra, "local", 0, DeviceName::Flex).unwrap();
        let explained = explain(&config).unwrap();
        let source = |path: &str| explained.values.iter().find(|v| v.path == path).unwrap().source.clone();
        assert_eq!(source("task.model.layers"), "LRA: image/configs/pathfinder32/local_base.py:25");
        assert_eq!(source("attention.local.block_size"), "LRA: image/configs/pathfinder32/local_base.py:23");
        assert_eq!(source("task.model.pooling"), "LRA: image/configs/pathfinder32/base_pathfinder32_config.py:54");
        assert_eq!(source("seed"), "the command line");
        assert!(explained.differences.iter().any(|(path, _)| path == "task.pixel_zero_is_padding"));
        // Every value of the configuration is explained, once.
        let mut leaves = Vec::new();
        flatten("", &serde_json::to_value(&config).unwrap(), &mut leaves);
        assert_eq!(explained.values.len(), leaves.len());
        assert_eq!(source("attention.local.variant"), "LRA: models/local/local_attention.py:228-413 (strided blocks)");
        // A value changed from the preset's is not passed off as LRA's.
        let paper = explain(&config.with_variant(Variant::Paper).unwrap()).unwrap();
        let variant = paper.values.iter().find(|v| v.path == "attention.local.variant").unwrap();
        assert!(
            variant.source.starts_with("given (--variant or the configuration file), not the preset's \"lra\""),
            "{}",
            variant.source
        );
    }

    #[test]
    fn the_documented_lra_table_is_the_one_the_code_resolves() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/lra-configuration.md");
        let generated = lra_table_markdown().unwrap();
        if std::env::var_os("LRA_WRITE_DOCS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let documented = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(documented == generated, "docs/lra-configuration.md is stale: regenerate with LRA_WRITE_DOCS=1 cargo test");
    }

    /// Each value the probe found accepted, or aborting the process, is refused by
    /// `validate`, naming the field, the value and the limit.
    #[test]
    fn values_out_of_range_are_refused_naming_field_value_and_limit() {
        let base = || RunConfig::resolve(Task::Listops, Preset::Tiny, "transformer", 0, DeviceName::Flex).unwrap();
        type Change = fn(&mut RunConfig);
        let cases: [(&str, Change, &str); 14] = [
            ("task.model.d_model", |c| c.task.model.d_model = 1_000_000_000, "1000000000"),
            ("task.model.d_ff", |c| c.task.model.d_ff = 100_000_000_000, "100000000000"),
            ("task.max_length", |c| c.task.max_length = 1_000_000_000, "1000000000"),
            ("task.model.layers", |c| c.task.model.layers = 1 << 40, "1099511627776"),
            ("task.training.batch_size", |c| c.task.training.batch_size = 1 << 40, "1099511627776"),
            ("task.training.schedule.base", |c| c.task.training.schedule = lra_tasks::Schedule::Constant { base: -1.0 }, "-1"),
            ("task.training.weight_decay", |c| c.task.training.weight_decay = -5.0, "-5"),
            ("task.training.beta_1", |c| c.task.training.beta_1 = 2.0, "2"),
            ("task.training.beta_2", |c| c.task.training.beta_2 = 1.0, "1"),
            ("task.training.epsilon", |c| c.task.training.epsilon = -1.0, "-1"),
            ("task.training.epsilon", |c| c.task.training.epsilon = 0.0, "0"),
            ("task.training.gradient_clip_norm", |c| c.task.training.gradient_clip_norm = Some(0.0), "0"),
            ("task.training.gradient_clip_norm", |c| c.task.training.gradient_clip_norm = Some(-1.0), "-1"),
            (
                "task.training.schedule.base",
                |c| c.task.training.schedule = lra_tasks::Schedule::Constant { base: f64::NAN },
                "NaN",
            ),
        ];
        base().validate().unwrap();
        for (field, change, value) in cases {
            let mut config = base();
            change(&mut config);
            let why = format!("{:#}", config.validate().unwrap_err());
            assert!(why.contains(field) && why.contains(&format!("found {value}")), "{field}: {why}");
        }
        // The mechanism's own sizes: Performer's features, Reformer's hash rounds.
        let mut performer = RunConfig::resolve(Task::Listops, Preset::Tiny, "performer", 0, DeviceName::Flex).unwrap();
        if let MechanismSettings::Performer(settings) = &mut performer.attention {
            settings.features = 1_000_000_000;
        }
        let why = format!("{:#}", performer.validate().unwrap_err());
        assert!(why.contains("attention.performer.features must be at most 1048576, found 1000000000"), "{why}");
        let mut reformer = RunConfig::resolve(Task::Listops, Preset::Tiny, "reformer", 0, DeviceName::Flex).unwrap();
        if let MechanismSettings::Reformer(settings) = &mut reformer.attention {
            settings.hash_rounds = 1_000_000_000;
        }
        let why = format!("{:#}", reformer.validate().unwrap_err());
        assert!(why.contains("attention.reformer.hash_rounds") && why.contains("1000000000"), "{why}");
    }

    /// Every model at every task and preset passes validation and its estimated step
    /// memory is finite; the `lra` preset's estimates are those of models that fit an
    /// accelerator of LRA's time for the short tasks.
    #[test]
    fn every_configurations_memory_estimate_is_finite_and_lras_is_plausible() {
        for preset in Preset::ALL {
            for task in Task::ALL {
                for model in lra_models::MODELS {
                    let config = RunConfig::resolve(task, preset, model.name, 0, DeviceName::Flex).unwrap();
                    let bytes = config.step_memory_bytes();
                    assert!(bytes.is_finite() && bytes > 0.0, "{preset:?} {task:?} {}: {bytes}", model.name);
                    if preset != Preset::Lra {
                        // The CPU presets (whose Path-X keeps its 16,384 positions: about
                        // 32 GiB of scores for full attention) fit a large CPU machine.
                        assert!(bytes < 64.0 * (1u64 << 30) as f64, "{preset:?} {task:?} {}: {bytes}", model.name);
                    }
                }
            }
        }
        // LRA's ListOps Transformer: batch 32 of 2,001 positions and 8 heads; its attention
        // weights alone are 4 GiB a block. More than a gigabyte, less than an 80 GB
        // accelerator; and tiny ListOps, a few megabytes.
        let lra = RunConfig::resolve(Task::Listops, Preset::Lra, "transformer", 0, DeviceName::Flex).unwrap();
        let gib = lra.step_memory_bytes() / (1u64 << 30) as f64;
        assert!((1.0..80.0).contains(&gib), "{gib} GiB");
        let tiny = RunConfig::resolve(Task::Listops, Preset::Tiny, "transformer", 0, DeviceName::Flex).unwrap();
        assert!(tiny.step_memory_bytes() < (1u64 << 30) as f64, "{}", tiny.step_memory_bytes());
        // A linear mechanism holds no square: less than the Transformer's.
        let linear = RunConfig::resolve(Task::Listops, Preset::Lra, "linear", 0, DeviceName::Flex).unwrap();
        assert!(linear.step_memory_bytes() < lra.step_memory_bytes());
        // Absurd sizes give a huge number, not an overflow.
        let mut absurd = lra.clone();
        absurd.task.model.d_model = usize::MAX;
        absurd.task.training.batch_size = usize::MAX;
        assert!(absurd.step_memory_bytes() > 1e30);
    }

    /// A device, a FIFO or a huge file is refused by the bounded reader, naming the file.
    #[test]
    fn a_configuration_that_is_not_a_small_regular_file_is_refused() {
        let why = format!("{:#}", RunConfig::load(Path::new("/dev/zero")).unwrap_err());
        assert!(why.contains("/dev/zero"), "{why}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("config.json");
        std::fs::write(&big, vec![b' '; (lra_datasets::files::limit::CONFIGURATION + 1) as usize]).unwrap();
        let why = format!("{:#}", RunConfig::load(&big).unwrap_err());
        assert!(why.contains("config.json"), "{why}");
    }
}
