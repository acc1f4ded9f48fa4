//! `lra report`: every run record and benchmark under a results folder turned into
//! `report.md`, a self-contained `report.html`, CSVs and plots (SVG and PNG).

pub mod plots;
pub mod published;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine as _;

use crate::bench::{self, BenchRecord, Scope};
use crate::record::{self, MetricsRow, RunRecord, write_atomically};

/// LRA's task order, with the published table's column names.
pub const TASK_COLUMNS: [(&str, &str); 6] = [
    ("listops", "ListOps"),
    ("text", "Text"),
    ("retrieval", "Retrieval"),
    ("image", "Image"),
    ("pathfinder", "Pathfinder"),
    ("pathx", "Path-X"),
];

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
    pub benches: Vec<BenchRecord>,
}

/// Reads every run and benchmark under `results`.
pub fn load(results: &Path) -> anyhow::Result<Inputs> {
    let mut inputs = Inputs { benches: bench::load_all(results)?, ..Default::default() };
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
            if !result.is_file() {
                inputs.unfinished.push(dir);
                continue;
            }
            let record = record::read_record(&result)?;
            let metrics_path = dir.join("metrics.csv");
            let metrics = if metrics_path.is_file() { record::read_metrics_csv(&metrics_path)? } else { Vec::new() };
            inputs.runs.push(Run { record, metrics });
        }
    }
    inputs.runs.sort_by(|a, b| {
        (model_rank(&a.record.model), &a.record.task, a.record.seed).cmp(&(
            model_rank(&b.record.model),
            &b.record.task,
            b.record.seed,
        ))
    });
    Ok(inputs)
}

/// Position of a model in the registry (unknown names last).
fn model_rank(name: &str) -> usize {
    lra_models::MODELS.iter().position(|m| m.name == name).unwrap_or(usize::MAX)
}

/// One cell of Table 1: the runs of one model on one task.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub accuracies: Vec<f64>,
    pub failures: Vec<String>,
    pub stand_in: bool,
}

impl Cell {
    pub fn mean(&self) -> Option<f64> {
        (!self.accuracies.is_empty()).then(|| self.accuracies.iter().sum::<f64>() / self.accuracies.len() as f64)
    }

    /// Sample standard deviation over seeds (0 for one seed).
    pub fn std(&self) -> Option<f64> {
        let mean = self.mean()?;
        let n = self.accuracies.len();
        if n < 2 {
            return Some(0.0);
        }
        Some((self.accuracies.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt())
    }

    /// `mean ± std` in percent, `FAIL (cause)` when every run failed.
    pub fn text(&self) -> String {
        let mark = if self.stand_in { " †" } else { "" };
        match (self.mean(), self.std()) {
            (Some(mean), Some(std)) if self.accuracies.len() > 1 => format!("{:.2} ± {:.2}{mark}", 100.0 * mean, 100.0 * std),
            (Some(mean), _) => format!("{:.2}{mark}", 100.0 * mean),
            _ => match self.failures.first() {
                Some(cause) => format!("FAIL ({}){mark}", shorten(cause, 60)),
                None => "–".into(),
            },
        }
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max { text.to_string() } else { format!("{}…", text.chars().take(max).collect::<String>()) }
}

/// Table 1's cells, by (model, task).
pub type Cells = BTreeMap<(String, String), Cell>;

/// Table 1: the models and tasks that have runs (in registry and LRA order), and the cells.
pub fn table1(runs: &[Run]) -> (Vec<String>, Vec<&'static str>, Cells) {
    let mut cells = Cells::new();
    let mut models: Vec<String> = Vec::new();
    for run in runs {
        let r = &run.record;
        if !models.contains(&r.model) {
            models.push(r.model.clone());
        }
        let cell = cells.entry((r.model.clone(), r.task.clone())).or_default();
        cell.stand_in |= r.data_source == "synthetic stand-in";
        match (&r.failure, r.test_accuracy) {
            (None, Some(accuracy)) => cell.accuracies.push(accuracy),
            (Some(failure), _) => cell.failures.push(failure.to_string()),
            (None, None) => cell.failures.push("no test accuracy recorded".into()),
        }
    }
    let tasks: Vec<&'static str> =
        TASK_COLUMNS.iter().map(|(t, _)| *t).filter(|t| runs.iter().any(|r| r.record.task == *t)).collect();
    (models, tasks, cells)
}

/// The mean over tasks of a model's mean accuracies, Path-X excluded (as LRA); `None`
/// unless every task of the table has a result.
fn average(model: &str, tasks: &[&str], cells: &Cells) -> Option<f64> {
    let scored: Vec<&str> = tasks.iter().copied().filter(|t| *t != "pathx").collect();
    let means: Option<Vec<f64>> =
        scored.iter().map(|t| cells.get(&(model.to_string(), t.to_string())).and_then(Cell::mean)).collect();
    means.filter(|m| !m.is_empty()).map(|m| m.iter().sum::<f64>() / m.len() as f64)
}

fn column_title(task: &str) -> &'static str {
    TASK_COLUMNS.iter().find(|(t, _)| *t == task).map(|(_, title)| *title).unwrap_or("?")
}

fn column_index(task: &str) -> Option<usize> {
    TASK_COLUMNS.iter().position(|(t, _)| *t == task)
}

/// A table as rows of cells, rendered to Markdown or HTML.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn markdown(&self) -> String {
        let mut out = format!("| {} |\n|{}\n", self.header.join(" | "), "---|".repeat(self.header.len()));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }

    fn html(&self) -> String {
        let mut out = String::from("<table>\n<thead><tr>");
        for h in &self.header {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for row in &self.rows {
            out.push_str("<tr>");
            for cell in row {
                let class = if cell.starts_with("FAIL") { " class=\"fail\"" } else { "" };
                let _ = write!(out, "<td{class}>{}</td>", escape(cell));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
        out
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn accuracy_table(runs: &[Run]) -> (Table, Vec<Vec<String>>) {
    let (models, tasks, cells) = table1(runs);
    let mut header = vec!["Model".to_string()];
    header.extend(tasks.iter().map(|t| column_title(t).to_string()));
    header.push("Avg".into());
    let mut rows = Vec::new();
    let mut csv_rows = Vec::new();
    for model in &models {
        let mut row = vec![format!("{model} (ours)")];
        for task in &tasks {
            let cell = cells.get(&(model.clone(), task.to_string())).cloned().unwrap_or_default();
            row.push(cell.text());
            let published = published::TABLE1
                .iter()
                .find(|p| p.our_name == Some(model.as_str()))
                .and_then(|p| column_index(task).and_then(|i| p.accuracy[i]))
                .map(|a| format!("{a:.2}"))
                .unwrap_or_default();
            csv_rows.push(vec![
                model.clone(),
                task.to_string(),
                cell.mean().map(|m| format!("{:.6}", m)).unwrap_or_default(),
                cell.std().map(|s| format!("{:.6}", s)).unwrap_or_default(),
                cell.accuracies.len().to_string(),
                cell.failures.len().to_string(),
                cell.failures.first().cloned().unwrap_or_default(),
                cell.stand_in.to_string(),
                published,
            ]);
        }
        row.push(average(model, &tasks, &cells).map(|a| format!("{:.2}", 100.0 * a)).unwrap_or_else(|| "–".into()));
        rows.push(row);
    }
    let mut chance = vec!["chance".to_string()];
    chance.extend(tasks.iter().map(|t| column_index(t).map(|i| format!("{:.2}", published::CHANCE[i])).unwrap_or_default()));
    chance.push(String::new());
    rows.push(chance);
    for p in published::TABLE1 {
        let mut row = vec![format!("{} (published, {})", p.row, p.source)];
        let mut scored = Vec::new();
        for task in &tasks {
            let value = column_index(task).and_then(|i| p.accuracy[i]);
            if *task != "pathx" {
                scored.push(value.unwrap_or(50.0));
            }
            row.push(value.map(|v| format!("{v:.2}")).unwrap_or_else(|| "FAIL".into()));
        }
        row.push(if scored.is_empty() {
            String::new()
        } else {
            format!("{:.2}", scored.iter().sum::<f64>() / scored.len() as f64)
        });
        rows.push(row);
    }
    (Table { header, rows }, csv_rows)
}

fn speed_table(bench: &BenchRecord) -> Table {
    let mut header = vec!["Model".to_string()];
    for l in &bench.lengths {
        header.push(format!("steps/s {}", length_label(*l)));
    }
    for l in &bench.lengths {
        header.push(format!("memory {}", length_label(*l)));
    }
    let mut models: Vec<&str> = Vec::new();
    for m in &bench.measurements {
        if !models.contains(&m.model.as_str()) {
            models.push(&m.model);
        }
    }
    let mut rows = Vec::new();
    for model in models {
        let find = |l: usize| bench.measurements.iter().find(|m| m.model == model && m.length == l);
        let mut row = vec![format!("{model} (ours)")];
        for &l in &bench.lengths {
            row.push(match find(l) {
                Some(m) => match (m.steps_per_second, m.relative_speed) {
                    (Some(s), Some(r)) if model != "transformer" => format!("{s:.3} ({r:.2}x)"),
                    (Some(s), _) => format!("{s:.3}"),
                    _ => format!("FAIL ({})", m.status),
                },
                None => "–".into(),
            });
        }
        for &l in &bench.lengths {
            row.push(match find(l) {
                Some(m) => match (m.peak_memory_bytes, m.relative_memory) {
                    (Some(b), Some(r)) if model != "transformer" => format!("{} ({r:.2}x)", bytes_label(b)),
                    (Some(b), _) => bytes_label(b),
                    _ => format!("FAIL ({})", m.status),
                },
                None => "–".into(),
            });
        }
        rows.push(row);
        if bench.scope == Scope::Step
            && let Some(p) = published::TABLE2.iter().find(|p| p.our_name == model)
        {
            let mut row = vec![format!("{} (published, LRA Table 2, TPU v3)", p.row)];
            for &l in &bench.lengths {
                row.push(match (published::TABLE2_LENGTHS.iter().position(|&x| x == l), published::relative(model, l)) {
                    (Some(i), Some((r, _))) if model != "transformer" => format!("{} ({r:.1}x)", p.steps_per_second[i]),
                    (Some(i), _) => format!("{}", p.steps_per_second[i]),
                    _ => "–".into(),
                });
            }
            for &l in &bench.lengths {
                row.push(match (published::TABLE2_LENGTHS.iter().position(|&x| x == l), published::relative(model, l)) {
                    (Some(i), Some((_, r))) if model != "transformer" => format!("{} GB ({r:.2}x)", p.memory_gb[i]),
                    (Some(i), _) => format!("{} GB", p.memory_gb[i]),
                    _ => "–".into(),
                });
            }
            rows.push(row);
        }
    }
    Table { header, rows }
}

fn length_label(length: usize) -> String {
    if length.is_multiple_of(1024) { format!("{}K", length / 1024) } else { length.to_string() }
}

pub fn bytes_label(bytes: u64) -> String {
    let mib = bytes as f64 / (1u64 << 20) as f64;
    if mib >= 1024.0 { format!("{:.2} GiB", mib / 1024.0) } else { format!("{mib:.1} MiB") }
}

fn csv_bytes(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(header)?;
    for row in rows {
        writer.write_record(row)?;
    }
    Ok(writer.into_inner()?)
}

/// The command that reproduces a run's numbers.
pub fn reproduce_command(results: &Path, record: &RunRecord) -> String {
    format!("lra run --config {}", record::run_dir(results, &record.run_id).join("config.json").display())
}

/// What `write` produced.
#[derive(Debug, Clone)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub runs: usize,
    pub failed_runs: usize,
}

/// Writes the report of `results` into `out`.
pub fn write(results: &Path, out: &Path) -> anyhow::Result<Written> {
    let inputs = load(results)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = Vec::new();
    let mut save = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let path = out.join(name);
        write_atomically(&path, bytes)?;
        files.push(path);
        Ok(())
    };

    let (table1, table1_csv) = accuracy_table(&inputs.runs);
    save(
        "table1.csv",
        &csv_bytes(
            &[
                "model",
                "task",
                "mean_test_accuracy",
                "std_test_accuracy",
                "ok_runs",
                "failed_runs",
                "first_failure",
                "stand_in_data",
                "published_accuracy_percent",
            ],
            &table1_csv,
        )?,
    )?;

    let mut table2_csv = Vec::new();
    for b in &inputs.benches {
        for m in &b.measurements {
            let published = published::TABLE2.iter().find(|p| p.our_name == m.model);
            let index = published::TABLE2_LENGTHS.iter().position(|&l| l == m.length);
            table2_csv.push(vec![
                b.bench_id.clone(),
                format!("{:?}", b.scope).to_lowercase(),
                b.device.clone(),
                b.batch.to_string(),
                m.model.clone(),
                m.length.to_string(),
                m.status.clone(),
                m.steps_per_second.map(|v| format!("{v:.6}")).unwrap_or_default(),
                m.relative_speed.map(|v| format!("{v:.4}")).unwrap_or_default(),
                m.peak_memory_bytes.map(|v| v.to_string()).unwrap_or_default(),
                m.relative_memory.map(|v| format!("{v:.4}")).unwrap_or_default(),
                published.zip(index).map(|(p, i)| p.steps_per_second[i].to_string()).unwrap_or_default(),
                published.zip(index).map(|(p, i)| p.memory_gb[i].to_string()).unwrap_or_default(),
            ]);
        }
    }
    save(
        "table2.csv",
        &csv_bytes(
            &[
                "bench_id",
                "scope",
                "device",
                "batch",
                "model",
                "length",
                "status",
                "steps_per_second",
                "relative_speed",
                "peak_memory_bytes",
                "relative_memory",
                "published_steps_per_second",
                "published_memory_gb",
            ],
            &table2_csv,
        )?,
    )?;

    let runs_csv: Vec<Vec<String>> = inputs
        .runs
        .iter()
        .map(|run| {
            let r = &run.record;
            vec![
                r.run_id.clone(),
                r.task.clone(),
                r.model.clone(),
                r.preset.clone(),
                r.seed.to_string(),
                r.device.clone(),
                r.status.clone(),
                r.failure.as_ref().map(|f| f.to_string()).unwrap_or_default(),
                r.test_accuracy.map(|v| format!("{v:.6}")).unwrap_or_default(),
                r.best_val_accuracy.map(|v| format!("{v:.6}")).unwrap_or_default(),
                r.test_majority_rate.map(|v| format!("{v:.6}")).unwrap_or_default(),
                format!("{:.4}", r.train_steps_per_second),
                format!("{:.1}", r.train_tokens_per_second),
                r.peak_memory_bytes.to_string(),
                r.parameters.to_string(),
                r.data_source.clone(),
                format!("{:.1}", r.wall_seconds),
                reproduce_command(results, r),
            ]
        })
        .collect();
    save(
        "runs.csv",
        &csv_bytes(
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
                "best_val_accuracy",
                "test_majority_rate",
                "train_steps_per_second",
                "train_tokens_per_second",
                "peak_memory_bytes",
                "parameters",
                "data_source",
                "wall_seconds",
                "command",
            ],
            &runs_csv,
        )?,
    )?;

    // Plots, each as SVG and PNG.
    let mut figures: Vec<(String, String, Vec<u8>)> = Vec::new(); // (file stem, caption, png)
    let mut add_figure = |stem: &str, caption: String, figure: plots::Figure| -> anyhow::Result<()> {
        save(&format!("{stem}.svg"), figure.svg.as_bytes())?;
        save(&format!("{stem}.png"), &figure.png)?;
        figures.push((stem.to_string(), caption, figure.png));
        Ok(())
    };
    if let Some((figure, caption)) = plots::figure3(&inputs)? {
        add_figure("figure3", caption, figure)?;
    }
    let step_bench = inputs.benches.iter().rev().find(|b| b.scope == Scope::Step);
    let layer_bench = inputs.benches.iter().rev().find(|b| b.scope == Scope::Layer);
    for (bench, what) in [(step_bench, "training step"), (layer_bench, "attention layer")] {
        if let Some(bench) = bench {
            let stem = format!("scaling_{}", if bench.scope == Scope::Step { "step" } else { "layer" });
            add_figure(
                &stem,
                format!(
                    "Time and peak memory of a {what} against sequence length (log-log), {} on {}, batch {}",
                    bench.bench_id, bench.device, bench.batch
                ),
                plots::scaling(bench)?,
            )?;
        }
    }
    let tasks: Vec<&str> =
        TASK_COLUMNS.iter().map(|(t, _)| *t).filter(|t| inputs.runs.iter().any(|r| r.record.task == *t)).collect();
    for task in &tasks {
        let runs: Vec<&Run> = inputs.runs.iter().filter(|r| r.record.task == *task && !r.metrics.is_empty()).collect();
        if !runs.is_empty() {
            add_figure(
                &format!("curves_{task}"),
                format!("Training loss and validation accuracy against step, {}", column_title(task)),
                plots::curves(task, &runs)?,
            )?;
        }
    }

    // The documents.
    let failed_runs = inputs.runs.iter().filter(|r| !r.record.is_ok()).count();
    let mut sections: Vec<(String, String, String)> = Vec::new(); // (title, markdown, html)
    let stand_in_note =
        "† trained on a synthetic stand-in (the released files were absent): not comparable to the published figure.";
    sections.push((
        "Table 1: test accuracy (%)".into(),
        format!(
            "Mean ± sample standard deviation over seeds; FAIL names the cause. Published rows are LRA's figures as printed, not runs of this harness. {stand_in_note}\n\n{}",
            table1.markdown()
        ),
        format!("<p>Mean ± sample standard deviation over seeds; FAIL names the cause. Published rows are LRA's figures as printed, not runs of this harness. {}</p>\n{}", escape(stand_in_note), table1.html()),
    ));
    for b in &inputs.benches {
        let t = speed_table(b);
        let what = if b.scope == Scope::Step {
            "training step (forward, backward, AdamW)"
        } else {
            "one attention layer (forward and backward)"
        };
        let intro = format!(
            "`{}`: {what}, byte-level Text sizes (d_model {}, {} heads, {} layer(s), d_ff {}), batch {}, device {} ({}); {} warm-up and {} timed steps; ratios are to the Transformer at the same length. Command: `{}`",
            b.bench_id,
            b.d_model,
            b.heads,
            b.layers,
            b.d_ff,
            b.batch,
            b.device,
            b.environment.device_adapter,
            b.warmup_steps,
            b.timed_steps,
            b.command
        );
        sections.push((
            format!("Table 2: speed and peak memory ({})", b.bench_id),
            format!("{intro}\n\n{}", t.markdown()),
            format!("<p>{}</p>\n{}", escape(&intro), t.html()),
        ));
    }
    let mut env_rows: Vec<Vec<String>> = Vec::new();
    for run in &inputs.runs {
        let e = &run.record.environment;
        let row = vec![
            e.cpu.clone(),
            e.cores.to_string(),
            bytes_label(e.memory_bytes),
            e.os.clone(),
            e.device_adapter.clone(),
            e.burn_version.clone(),
            e.git_commit.clone(),
        ];
        if !env_rows.contains(&row) {
            env_rows.push(row);
        }
    }
    let env = Table {
        header: ["CPU", "cores", "memory", "OS", "device adapter", "burn", "commit"].map(String::from).to_vec(),
        rows: env_rows,
    };
    sections.push(("Environment".into(), env.markdown(), env.html()));
    let run_rows: Vec<Vec<String>> = inputs
        .runs
        .iter()
        .map(|run| {
            let r = &run.record;
            vec![
                r.task.clone(),
                r.model.clone(),
                r.seed.to_string(),
                r.status.clone(),
                r.test_accuracy
                    .map(|a| format!("{:.2}", 100.0 * a))
                    .unwrap_or_else(|| r.failure.as_ref().map(|f| shorten(&f.to_string(), 50)).unwrap_or_default()),
                format!("{:.2}", r.train_steps_per_second),
                bytes_label(r.peak_memory_bytes),
                r.data_source.clone(),
                format!("`{}`", reproduce_command(results, r)),
            ]
        })
        .collect();
    let runs_table = Table {
        header: ["task", "model", "seed", "status", "test acc %", "steps/s", "peak memory", "data", "reproduce with"]
            .map(String::from)
            .to_vec(),
        rows: run_rows,
    };
    let mut runs_intro = format!("{} runs, {} failed.", inputs.runs.len(), failed_runs);
    if !inputs.unfinished.is_empty() {
        let _ = write!(
            runs_intro,
            " {} run folders have no record yet (unfinished or running) and are left out.",
            inputs.unfinished.len()
        );
    }
    sections.push((
        "Runs".into(),
        format!("{runs_intro}\n\n{}", runs_table.markdown()),
        format!("<p>{}</p>\n{}", escape(&runs_intro), runs_table.html().replace('`', "")),
    ));

    let mut markdown = String::from("# Long Range Arena: comparison report\n\n");
    let mut html = String::from(HTML_HEAD);
    html.push_str("<h1>Long Range Arena: comparison report</h1>\n");
    for (i, (title, md, h)) in sections.iter().enumerate() {
        let _ = write!(markdown, "## {title}\n\n{md}\n");
        let _ = write!(html, "<h2>{}</h2>\n{h}\n", escape(title));
        if i == 1 || (i == 0 && inputs.benches.is_empty()) {
            // The figures follow the tables.
            for (stem, caption, png) in &figures {
                let _ = write!(markdown, "![{caption}]({stem}.png)\n\n*{caption}* ([SVG]({stem}.svg))\n\n");
                let _ = writeln!(
                    html,
                    "<figure><img alt=\"{}\" src=\"data:image/png;base64,{}\"><figcaption>{}</figcaption></figure>",
                    escape(caption),
                    base64::engine::general_purpose::STANDARD.encode(png),
                    escape(caption)
                );
            }
        }
    }
    html.push_str("</body>\n</html>\n");
    save("report.md", markdown.as_bytes())?;
    save("report.html", html.as_bytes())?;
    Ok(Written { files, runs: inputs.runs.len(), failed_runs })
}

const HTML_HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Long Range Arena: comparison report</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 75em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { background: #eee; }
td.fail { color: #a00; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; }
</style>
</head>
<body>
"#;
