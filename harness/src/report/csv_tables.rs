//! The report's CSV files: `table1.csv` (a row per cell), `table2.csv` (a row per
//! measurement) and `runs.csv` (a row per run).

use std::path::Path;

use super::format::reproduce_command;
use super::load::Run;
use super::published;
use crate::records::bench_record::BenchRecord;

/// A CSV file of `header` and `rows`.
fn csv_bytes(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(header)?;
    for row in rows {
        writer.write_record(row)?;
    }
    Ok(writer.into_inner()?)
}

/// `table1.csv` from the rows of [`super::table1::accuracy_table`].
pub(super) fn table1(rows: &[Vec<String>]) -> anyhow::Result<Vec<u8>> {
    csv_bytes(
        &[
            "preset",
            "model",
            "role",
            "task",
            "data_source",
            "mean_test_accuracy",
            "std_test_accuracy",
            "ok_runs",
            "failed_runs",
            "first_failure",
            "near_chance",
            "left_chance_steps",
            "seeds_left_chance",
            "baseline_seed_spread",
            "within_noise",
            "published_accuracy_percent",
        ],
        rows,
    )
}

/// `table2.csv`: every measurement of every benchmark.
pub(super) fn table2(benches: &[BenchRecord]) -> anyhow::Result<Vec<u8>> {
    let mut table2_csv = Vec::new();
    for b in benches {
        for m in &b.measurements {
            let published = published::speed_of(&m.model);
            let index = published::TABLE2_LENGTHS.iter().position(|&l| l == m.length);
            table2_csv.push(vec![
                b.bench_id.clone(),
                b.scope.name().to_string(),
                b.device.clone(),
                b.batch.to_string(),
                m.label(),
                m.length.to_string(),
                m.status().to_string(),
                m.failure.as_ref().map(|f| f.to_string()).unwrap_or_default(),
                m.steps_per_second.map(|v| format!("{v:.6}")).unwrap_or_default(),
                m.relative_speed.map(|v| format!("{v:.4}")).unwrap_or_default(),
                m.peak_memory_bytes.map(|v| v.to_string()).unwrap_or_default(),
                m.relative_memory.map(|v| format!("{v:.4}")).unwrap_or_default(),
                published.zip(index).map(|(p, i)| p.steps_per_second[i].to_string()).unwrap_or_default(),
                published.zip(index).map(|(p, i)| p.memory_gb[i].to_string()).unwrap_or_default(),
                m.utilisation.step_flops.map(|v| format!("{v:.4e}")).unwrap_or_default(),
                m.utilisation.achieved_flops_per_second.map(|v| format!("{v:.4e}")).unwrap_or_default(),
                m.utilisation.mfu.map(|v| format!("{v:.5}")).unwrap_or_default(),
            ]);
        }
    }
    csv_bytes(
        &[
            "bench_id",
            "scope",
            "device",
            "batch",
            "model",
            "length",
            "status",
            "failure",
            "steps_per_second",
            "relative_speed",
            "peak_memory_bytes",
            "relative_memory",
            "published_steps_per_second",
            "published_memory_gb",
            "step_flops",
            "achieved_flops_per_second",
            "mfu",
        ],
        &table2_csv,
    )
}

/// `runs.csv`: every run, with the command that reproduces it.
pub(super) fn runs(results: &Path, runs: &[Run]) -> anyhow::Result<Vec<u8>> {
    let runs_csv: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            let r = &run.record;
            vec![
                r.run_id.clone(),
                r.task.clone(),
                r.model_label(),
                r.preset.clone(),
                r.seed.to_string(),
                r.device.clone(),
                r.status().to_string(),
                r.outcome.failure.as_ref().map(|f| f.to_string()).unwrap_or_default(),
                r.outcome.test_accuracy.map(|v| format!("{v:.6}")).unwrap_or_default(),
                r.outcome.best_val_test_accuracy.map(|v| format!("{v:.6}")).unwrap_or_default(),
                r.outcome.best_val_accuracy.map(|v| format!("{v:.6}")).unwrap_or_default(),
                r.outcome.test_majority_rate.map(|v| format!("{v:.6}")).unwrap_or_default(),
                format!("{:.4}", r.outcome.train_steps_per_second),
                format!("{:.1}", r.outcome.train_tokens_per_second),
                r.outcome.peak_memory_bytes.to_string(),
                r.outcome.parameters.to_string(),
                r.data_source.clone(),
                serde_json::json!({ "model": r.config.task.model, "attention": r.config.attention }).to_string(),
                format!("{:.1}", r.outcome.wall_seconds),
                reproduce_command(results, r),
            ]
        })
        .collect();
    csv_bytes(
        &[
            "run_id",
            "task",
            "model",
            "preset",
            "seed",
            "device",
            "status",
            "failure",
            "test_accuracy",
            "best_val_test_accuracy",
            "best_val_accuracy",
            "test_majority_rate",
            "train_steps_per_second",
            "train_tokens_per_second",
            "peak_memory_bytes",
            "parameters",
            "data_source",
            "hyperparameters",
            "wall_seconds",
            "command",
        ],
        &runs_csv,
    )
}
