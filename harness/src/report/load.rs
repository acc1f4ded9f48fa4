//! Reading a results folder: every run record (with its training curve) and benchmark.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::records::bench_record::{self, BenchRecord};
use crate::records::run_record::{self, MetricsRow, RunRecord};

/// A finished run and its training curve.
#[derive(Debug, Clone)]
pub struct Run {
    pub record: RunRecord,
    pub metrics: Vec<MetricsRow>,
}

/// What the report was made from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub runs: Vec<Run>,
    /// Run folders without a `result.json` (unfinished or running).
    pub unfinished: Vec<PathBuf>,
    /// Records that could not be read, and why: left out of the report, which lists them.
    pub skipped: Vec<(PathBuf, String)>,
    pub benches: Vec<BenchRecord>,
}

impl Inputs {
    /// Whether the folder held nothing to report: no record, readable or not, and no run
    /// folder.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.benches.is_empty() && self.skipped.is_empty() && self.unfinished.is_empty()
    }

    /// How many of the runs failed.
    pub fn failed_runs(&self) -> usize {
        self.runs.iter().filter(|r| !r.record.is_ok()).count()
    }
}

/// Reads every run and benchmark under `results`.
pub fn load(results: &Path) -> anyhow::Result<Inputs> {
    if !results.is_dir() {
        anyhow::bail!("{}: no such results folder", results.display());
    }
    let (benches, skipped_benches) = bench_record::load_all(results)?;
    let mut inputs = Inputs { benches, ..Default::default() };
    for (path, why) in skipped_benches {
        eprintln!("warning: left out of the report: {why}");
        inputs.skipped.push((path, why));
    }
    let runs_dir = results.join("runs");
    if runs_dir.is_dir() {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&runs_dir)
            .with_context(|| format!("reading {}", runs_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let result = dir.join("result.json");
            // Whatever is there is read (and refused if it is no regular file, a link to
            // `/dev/zero` say): only a folder without one is unfinished.
            if result.symlink_metadata().is_err() {
                inputs.unfinished.push(dir);
                continue;
            }
            let read = run_record::read_record(&result).and_then(|record| {
                let metrics_path = dir.join("metrics.csv");
                let metrics = if metrics_path.symlink_metadata().is_ok() {
                    run_record::read_metrics_csv(&metrics_path)?
                } else {
                    Vec::new()
                };
                Ok(Run { record, metrics })
            });
            match read {
                Ok(run) => inputs.runs.push(run),
                Err(why) => {
                    eprintln!("warning: left out of the report: {why:#}");
                    inputs.skipped.push((result, format!("{why:#}")));
                }
            }
        }
    }
    inputs.runs.sort_by(|a, b| {
        (model_rank(&a.record.model), a.record.model_label(), &a.record.task, a.record.seed).cmp(&(
            model_rank(&b.record.model),
            b.record.model_label(),
            &b.record.task,
            b.record.seed,
        ))
    });
    Ok(inputs)
}

/// Position of a model (or a model's label) in the registry (unknown names last).
fn model_rank(name: &str) -> usize {
    let name = run_record::model_of_label(name);
    lra_models::MODELS.iter().position(|m| m.name == name).unwrap_or(usize::MAX)
}
