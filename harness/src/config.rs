//! The fully resolved configuration of one run: what decides its numbers.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use lra_tasks::{Preset, Task, TaskConfig};

use crate::device::DeviceName;

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
}

impl RunConfig {
    /// The configuration of `model` on `task` at `preset`, with generated or stand-in
    /// data. See [`RunConfig::prefer_released`].
    pub fn resolve(task: Task, preset: Preset, model: &str, seed: u64, device: DeviceName) -> anyhow::Result<RunConfig> {
        lra_models::check_model_name(model).map_err(anyhow::Error::msg)?;
        Ok(RunConfig { model: model.to_string(), seed, device, task: TaskConfig::resolve(task, preset) })
    }

    /// Switches to the task's released files when they are under `data_dir` (they are
    /// always preferred over generated or stand-in data).
    pub fn prefer_released(mut self, data_dir: &Path) -> RunConfig {
        self.task.data = self.task.data.prefer_released(data_dir);
        self
    }

    /// Reads a configuration file; errors name the file, and the line, column and field.
    pub fn load(path: &Path) -> anyhow::Result<RunConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading the configuration {}", path.display()))?;
        let config: RunConfig = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}:{}:{}: {}", path.display(), e.line(), e.column(), strip_position(&e)))?;
        config.validate().with_context(|| format!("{}: invalid configuration", path.display()))?;
        Ok(config)
    }

    /// Checks the values that serde's types cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        lra_models::check_model_name(&self.model).map_err(anyhow::Error::msg)?;
        let t = &self.task;
        let m = &t.model;
        if m.heads == 0 || !m.d_model.is_multiple_of(m.heads) {
            bail!("model.heads ({}) must divide model.d_model ({})", m.heads, m.d_model);
        }
        for (name, value) in [("model.dropout", m.dropout), ("model.attention_dropout", m.attention_dropout)] {
            if !(0.0..1.0).contains(&value) {
                bail!("{name} must be in [0, 1), found {value}");
            }
        }
        for (name, value) in [
            ("max_length", t.max_length),
            ("model.layers", m.layers),
            ("model.d_ff", m.d_ff),
            ("training.batch_size", t.training.batch_size),
            ("training.steps", t.training.steps),
            ("training.eval_every", t.training.eval_every),
            ("training.log_every", t.training.log_every),
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

    #[test]
    fn a_saved_configuration_loads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let config = RunConfig::resolve(Task::Listops, Preset::Quick, "transformer", 7, DeviceName::Ndarray).unwrap();
        let path = dir.path().join("config.json");
        crate::record::write_json_atomically(&path, &config).unwrap();
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
    }

    #[test]
    fn the_run_id_changes_with_anything_that_decides_the_run() {
        let base = RunConfig::resolve(Task::Listops, Preset::Tiny, "transformer", 1, DeviceName::Flex).unwrap();
        let id = crate::record::run_id(&base);
        assert_eq!(id, crate::record::run_id(&base.clone()));
        assert_eq!(id.len(), 12);
        let mut other_seed = base.clone();
        other_seed.seed = 2;
        let mut other_device = base.clone();
        other_device.device = DeviceName::Ndarray;
        let mut other_lr = base.clone();
        other_lr.task.training.weight_decay = 0.5;
        for changed in [other_seed, other_device, other_lr] {
            assert_ne!(crate::record::run_id(&changed), id);
        }
    }
}
