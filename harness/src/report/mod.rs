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
    /// Records that could not be read, and why: left out of the report, which lists them.
    pub skipped: Vec<(PathBuf, String)>,
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
            let read = record::read_record(&result).and_then(|record| {
                let metrics_path = dir.join("metrics.csv");
                let metrics = if metrics_path.is_file() { record::read_metrics_csv(&metrics_path)? } else { Vec::new() };
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

/// A row of this harness's: `local (ours)`, `local (as LRA ran it; ours)`.
fn ours(label: &str) -> String {
    match label.strip_suffix(')').filter(|_| label.contains(" (")) {
        Some(head) => format!("{head}; ours)"),
        None => format!("{label} (ours)"),
    }
}

/// Position of a model (or a model's label) in the registry (unknown names last).
fn model_rank(name: &str) -> usize {
    let name = record::model_of_label(name);
    lra_models::MODELS.iter().position(|m| m.name == name).unwrap_or(usize::MAX)
}

/// One cell of Table 1: the runs of one model on one task (from one data source).
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// Test accuracy of each finished run: the final weights' (LRA's protocol).
    pub accuracies: Vec<f64>,
    pub failures: Vec<String>,
    pub stand_in: bool,
    /// The test split's majority rate and size (the same for every run of the cell).
    pub majority_rate: Option<f64>,
    pub test_examples: Option<usize>,
}

/// Significance of the test that a cell's accuracy is above its majority rate.
pub const CHANCE_TEST_LEVEL: f64 = 0.01;

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

    /// Whether the mean accuracy is not above the test split's majority rate by a
    /// one-sided binomial test at [`CHANCE_TEST_LEVEL`] (the mean's correct answers out of
    /// the test examples); `false` when the record does not say the split's size.
    pub fn near_chance(&self) -> bool {
        match (self.mean(), self.majority_rate, self.test_examples) {
            (Some(mean), Some(rate), Some(n)) if n > 0 => {
                let correct = (mean * n as f64).round() as usize;
                binomial_upper_tail(n, correct, rate) >= CHANCE_TEST_LEVEL
            }
            _ => false,
        }
    }

    /// `mean ± std` in percent (`≈ chance` before it when [`Cell::near_chance`]), `FAIL
    /// (cause)` when every run failed.
    pub fn text(&self) -> String {
        let mark = if self.stand_in { " †" } else { "" };
        let chance = if self.near_chance() { "≈ chance " } else { "" };
        match (self.mean(), self.std()) {
            (Some(mean), Some(std)) if self.accuracies.len() > 1 => {
                format!("{chance}{:.2} ± {:.2}{mark}", 100.0 * mean, 100.0 * std)
            }
            (Some(mean), _) => format!("{chance}{:.2}{mark}", 100.0 * mean),
            _ => match self.failures.first() {
                Some(cause) => format!("FAIL ({}){mark}", shorten(cause, 60)),
                None => "–".into(),
            },
        }
    }
}

/// `P(X >= k)` for `X ~ Binomial(n, p)`, summed exactly in log space.
pub fn binomial_upper_tail(n: usize, k: usize, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    // log pmf(j + 1) = log pmf(j) + log((n - j) / (j + 1)) + log(p / (1 - p)).
    let (log_p, log_q) = (p.ln(), (1.0 - p).ln());
    let mut log_pmf = n as f64 * log_q;
    let mut tail: Vec<f64> = Vec::with_capacity(n - k + 1);
    for j in 0..=n {
        if j >= k {
            tail.push(log_pmf);
        }
        if j < n {
            log_pmf += ((n - j) as f64 / (j + 1) as f64).ln() + log_p - log_q;
        }
    }
    let top = tail.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (top + tail.iter().map(|l| (l - top).exp()).sum::<f64>().ln()).exp().min(1.0)
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max { text.to_string() } else { format!("{}…", text.chars().take(max).collect::<String>()) }
}

/// A column of Table 1: the runs of one task from one data source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Column {
    pub task: String,
    pub data_source: String,
}

impl Column {
    /// The task's title, marked † for a synthetic stand-in.
    pub fn title(&self) -> String {
        match self.data_source.as_str() {
            lra_tasks::STAND_IN => format!("{} †", column_title(&self.task)),
            _ => column_title(&self.task).to_string(),
        }
    }
}

/// Table 1's cells, by (model, column).
pub type Cells = BTreeMap<(String, Column), Cell>;

/// Table 1 of one preset: runs of other presets, sizes or data never share a cell.
#[derive(Debug, Clone)]
pub struct Table1 {
    pub preset: String,
    /// Models with runs, in registry order.
    pub models: Vec<String>,
    /// Columns in LRA's task order.
    pub columns: Vec<Column>,
    pub cells: Cells,
    /// The devices the runs used.
    pub devices: Vec<String>,
    /// The code versions (git commits) of the runs, in order of first appearance.
    pub commits: Vec<String>,
}

impl Table1 {
    /// What the table says about its code versions: the commit, or a warning naming each
    /// when its runs come from more than one.
    pub fn commits_note(&self) -> String {
        match self.commits.as_slice() {
            [] => String::new(),
            [one] => format!("Every run is of commit {one}."),
            many => format!(
                "Warning: these cells mix runs of {} code versions (commits {}); the numbers of one configuration can \
                 differ between versions. `lra sweep --rerun-stale` reruns the records of other commits than the binary's.",
                many.len(),
                many.join(", ")
            ),
        }
    }

    /// The mean over the columns of a model's mean accuracies, Path-X excluded (as LRA)
    /// and cells at chance left out; `None` unless every column has a result and at least
    /// one counts.
    pub fn average(&self, model: &str) -> Option<f64> {
        let scored: Vec<&Column> = self.columns.iter().filter(|c| c.task != "pathx").collect();
        let cells: Option<Vec<&Cell>> = scored
            .iter()
            .map(|c| self.cells.get(&(model.to_string(), (*c).clone())).filter(|cell| cell.mean().is_some()))
            .collect();
        let means: Vec<f64> = cells?.into_iter().filter(|cell| !cell.near_chance()).filter_map(Cell::mean).collect();
        (!means.is_empty()).then(|| means.iter().sum::<f64>() / means.len() as f64)
    }

    /// Whether any of a model's cells was left out of its average as at chance.
    pub fn average_leaves_out(&self, model: &str) -> bool {
        self.columns
            .iter()
            .any(|c| c.task != "pathx" && self.cells.get(&(model.to_string(), c.clone())).is_some_and(Cell::near_chance))
    }
}

/// Table 1 for each preset that has runs (`lra` first, then `quick`, then `tiny`).
pub fn tables1(runs: &[Run]) -> Vec<Table1> {
    let mut tables = Vec::new();
    for preset in lra_tasks::Preset::ALL.iter().rev().map(|p| p.name()) {
        let runs: Vec<&Run> = runs.iter().filter(|r| r.record.preset == preset).collect();
        if runs.is_empty() {
            continue;
        }
        let mut table = Table1 {
            preset: preset.to_string(),
            models: Vec::new(),
            columns: Vec::new(),
            cells: Cells::new(),
            devices: Vec::new(),
            commits: Vec::new(),
        };
        for run in runs {
            let r = &run.record;
            let label = r.model_label();
            if !table.models.contains(&label) {
                table.models.push(label.clone());
            }
            if !table.devices.contains(&r.device) {
                table.devices.push(r.device.clone());
            }
            if !table.commits.contains(&r.environment.git_commit) {
                table.commits.push(r.environment.git_commit.clone());
            }
            let column = Column { task: r.task.clone(), data_source: r.data_source.clone() };
            if !table.columns.contains(&column) {
                table.columns.push(column.clone());
            }
            let cell = table.cells.entry((label, column)).or_default();
            cell.stand_in |= r.data_source == lra_tasks::STAND_IN;
            cell.majority_rate = cell.majority_rate.or(r.test_majority_rate);
            cell.test_examples = cell.test_examples.or(r.test_examples);
            match (&r.failure, r.test_accuracy) {
                (None, Some(accuracy)) => cell.accuracies.push(accuracy),
                (Some(failure), _) => cell.failures.push(failure.to_string()),
                (None, None) => cell.failures.push("no test accuracy recorded".into()),
            }
        }
        table.columns.sort_by_key(|c| (column_index(&c.task).unwrap_or(usize::MAX), c.data_source.clone()));
        tables.push(table);
    }
    tables
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

fn accuracy_table(table1: &Table1) -> (Table, Vec<Vec<String>>) {
    let mut header = vec!["Model".to_string()];
    header.extend(table1.columns.iter().map(Column::title));
    header.push("Avg".into());
    let mut rows = Vec::new();
    let mut csv_rows = Vec::new();
    for model in &table1.models {
        let mut row = vec![ours(model)];
        for column in &table1.columns {
            let cell = table1.cells.get(&(model.clone(), column.clone())).cloned().unwrap_or_default();
            row.push(cell.text());
            let published = published::TABLE1
                .iter()
                .find(|p| p.our_name == Some(model.as_str()))
                .and_then(|p| column_index(&column.task).and_then(|i| p.accuracy[i]))
                .map(|a| format!("{a:.2}"))
                .unwrap_or_default();
            csv_rows.push(vec![
                table1.preset.clone(),
                model.clone(),
                column.task.clone(),
                column.data_source.clone(),
                cell.mean().map(|m| format!("{:.6}", m)).unwrap_or_default(),
                cell.std().map(|s| format!("{:.6}", s)).unwrap_or_default(),
                cell.accuracies.len().to_string(),
                cell.failures.len().to_string(),
                cell.failures.first().cloned().unwrap_or_default(),
                cell.near_chance().to_string(),
                published,
            ]);
        }
        let mark = if table1.average_leaves_out(model) { " *" } else { "" };
        row.push(table1.average(model).map(|a| format!("{:.2}{mark}", 100.0 * a)).unwrap_or_else(|| "–".into()));
        rows.push(row);
    }
    let mut chance = vec!["chance".to_string()];
    chance.extend(
        table1.columns.iter().map(|c| column_index(&c.task).map(|i| format!("{:.2}", published::CHANCE[i])).unwrap_or_default()),
    );
    chance.push(String::new());
    rows.push(chance);
    for p in published::TABLE1 {
        let mut row = vec![format!("{} (published, {})", p.row, p.source)];
        let mut scored = Vec::new();
        for column in &table1.columns {
            let value = column_index(&column.task).and_then(|i| p.accuracy[i]);
            if column.task != "pathx" {
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
    for l in &bench.lengths {
        header.push(format!("MFU {}", length_label(*l)));
    }
    let mut models: Vec<String> = Vec::new();
    for m in &bench.measurements {
        if !models.contains(&m.label()) {
            models.push(m.label());
        }
    }
    let mut rows = Vec::new();
    for model in &models {
        let model = model.as_str();
        let find = |l: usize| bench.measurements.iter().find(|m| m.label() == model && m.length == l);
        let mut row = vec![ours(model)];
        for &l in &bench.lengths {
            row.push(match find(l) {
                Some(m) => match (m.steps_per_second, m.relative_speed) {
                    (Some(s), Some(r)) if model != lra_models::BASELINE => format!("{s:.3} ({r:.2}x)"),
                    (Some(s), _) => format!("{s:.3}"),
                    _ => format!("FAIL ({})", m.status),
                },
                None => "–".into(),
            });
        }
        for &l in &bench.lengths {
            row.push(match find(l) {
                Some(m) => match (m.peak_memory_bytes, m.relative_memory) {
                    (Some(b), Some(r)) if model != lra_models::BASELINE => format!("{} ({r:.2}x)", bytes_label(b)),
                    (Some(b), _) => bytes_label(b),
                    _ => format!("FAIL ({})", m.status),
                },
                None => "–".into(),
            });
        }
        for &l in &bench.lengths {
            row.push(find(l).and_then(|m| m.utilisation.mfu).map(|u| format!("{:.1}%", 100.0 * u)).unwrap_or_else(|| "–".into()));
        }
        rows.push(row);
        if bench.scope == Scope::Step
            && let Some(p) = published::TABLE2.iter().find(|p| p.our_name == model)
        {
            let mut row = vec![format!("{} (published, LRA Table 2, TPU v3)", p.row)];
            for &l in &bench.lengths {
                row.push(match (published::TABLE2_LENGTHS.iter().position(|&x| x == l), published::relative(model, l)) {
                    (Some(i), Some((r, _))) if model != lra_models::BASELINE => format!("{} ({r:.1}x)", p.steps_per_second[i]),
                    (Some(i), _) => format!("{}", p.steps_per_second[i]),
                    _ => "–".into(),
                });
            }
            for &l in &bench.lengths {
                row.push(match (published::TABLE2_LENGTHS.iter().position(|&x| x == l), published::relative(model, l)) {
                    (Some(i), Some((_, r))) if model != lra_models::BASELINE => format!("{} GB ({r:.2}x)", p.memory_gb[i]),
                    (Some(i), _) => format!("{} GB", p.memory_gb[i]),
                    _ => "–".into(),
                });
            }
            row.extend(bench.lengths.iter().map(|_| "–".to_string()));
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

/// A run's model sizes and mechanism settings in a line: `d 64 (qkv 64), 4 heads, 2
/// layers, ff 128, cls, sinusoidal; block_size 16`.
pub fn hyperparameters(record: &RunRecord) -> String {
    let m = &record.config.task.model;
    let mut text = format!(
        "d {} (qkv {}), {} heads, {} layers, ff {}, {}, {}",
        m.d_model,
        m.qkv_dim,
        m.heads,
        m.layers,
        m.d_ff,
        serde_json::to_value(m.pooling).map(|v| v.as_str().unwrap_or_default().to_string()).unwrap_or_default(),
        serde_json::to_value(m.positions).map(|v| v.as_str().unwrap_or_default().to_string()).unwrap_or_default(),
    );
    if let Ok(serde_json::Value::Object(mechanism)) = serde_json::to_value(&record.config.attention) {
        for settings in mechanism.values().filter_map(|v| v.as_object()) {
            // The variant is in the model's label.
            let listed: Vec<String> =
                settings.iter().filter(|(name, _)| *name != "variant").map(|(name, value)| format!("{name} {value}")).collect();
            let _ = write!(text, "; {}", listed.join(", "));
        }
    }
    text
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

    let tables1 = tables1(&inputs.runs);
    let mut accuracy_tables: Vec<(&Table1, Table)> = Vec::new();
    let mut table1_csv: Vec<Vec<String>> = Vec::new();
    for t in &tables1 {
        let (table, csv_rows) = accuracy_table(t);
        accuracy_tables.push((t, table));
        table1_csv.extend(csv_rows);
    }
    save(
        "table1.csv",
        &csv_bytes(
            &[
                "preset",
                "model",
                "task",
                "data_source",
                "mean_test_accuracy",
                "std_test_accuracy",
                "ok_runs",
                "failed_runs",
                "first_failure",
                "near_chance",
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
                m.label(),
                m.length.to_string(),
                m.status.clone(),
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
                "step_flops",
                "achieved_flops_per_second",
                "mfu",
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
                r.model_label(),
                r.preset.clone(),
                r.seed.to_string(),
                r.device.clone(),
                r.status.clone(),
                r.failure.as_ref().map(|f| f.to_string()).unwrap_or_default(),
                r.test_accuracy.map(|v| format!("{v:.6}")).unwrap_or_default(),
                r.best_val_test_accuracy.map(|v| format!("{v:.6}")).unwrap_or_default(),
                r.best_val_accuracy.map(|v| format!("{v:.6}")).unwrap_or_default(),
                r.test_majority_rate.map(|v| format!("{v:.6}")).unwrap_or_default(),
                format!("{:.4}", r.train_steps_per_second),
                format!("{:.1}", r.train_tokens_per_second),
                r.peak_memory_bytes.to_string(),
                r.parameters.to_string(),
                r.data_source.clone(),
                serde_json::json!({ "model": r.config.task.model, "attention": r.config.attention }).to_string(),
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
    let figure3_note = match plots::figure3(&inputs, &tables1)? {
        Some((figure, caption)) => {
            add_figure("figure3", caption, figure)?;
            None
        }
        None if inputs.runs.is_empty() => None,
        None => Some("Figure 3 is left out: no model has a complete row of Table 1 with a cell above chance.".to_string()),
    };
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
    let chance_note = format!(
        "≈ chance: the mean accuracy is not above the test split's majority rate by a one-sided binomial test at {:.0}% \
         (its correct answers out of the test examples); such cells are left out of Avg (marked *) and of Figure 3.",
        100.0 * CHANCE_TEST_LEVEL
    );
    for (table1, table) in &accuracy_tables {
        let devices = table1.devices.join(", ");
        let intro = format!(
            "Preset `{}`, device {devices}. Test accuracy of the final weights (as LRA reports; the best-validation \
             weights' accuracy is in runs.csv): mean ± sample standard deviation over seeds; FAIL names the cause. \
             Published rows are LRA's figures as printed, not runs of this harness. {stand_in_note} {chance_note} {}",
            table1.preset,
            table1.commits_note()
        );
        sections.push((
            format!("Table 1: test accuracy (%), preset {}", table1.preset),
            format!("{intro}\n\n{}", table.markdown()),
            format!("<p>{}</p>\n{}", escape(&intro), table.html()),
        ));
    }
    for b in &inputs.benches {
        let t = speed_table(b);
        let what = if b.scope == Scope::Step {
            "training step (forward, backward, AdamW)"
        } else {
            "one attention layer (forward and backward)"
        };
        let intro = format!(
            "`{}`: {what}, byte-level Text sizes (d_model {}, {} heads, {} layer(s), d_ff {}), batch {}, device {} ({}); {} warm-up and {} timed steps; ratios are to the Transformer at the same length. MFU: the step's operations (matrix products, counted from the configuration) per second over the device's peak, {}. Command: `{}`",
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
            match &b.environment.peak {
                Some(peak) => peak.derivation.clone(),
                None => "which could not be derived for this device".into(),
            },
            b.command
        );
        sections.push((
            format!("Table 2: speed, peak memory and MFU ({})", b.bench_id),
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
                r.model_label(),
                r.seed.to_string(),
                r.status.clone(),
                r.test_accuracy
                    .map(|a| format!("{:.2}", 100.0 * a))
                    .unwrap_or_else(|| r.failure.as_ref().map(|f| shorten(&f.to_string(), 50)).unwrap_or_default()),
                format!("{:.2}", r.train_steps_per_second),
                bytes_label(r.peak_memory_bytes),
                r.data_source.clone(),
                hyperparameters(r),
                format!("`{}`", reproduce_command(results, r)),
            ]
        })
        .collect();
    let runs_table = Table {
        header: [
            "task",
            "model",
            "seed",
            "status",
            "test acc %",
            "steps/s",
            "peak memory",
            "data",
            "model and mechanism",
            "reproduce with",
        ]
        .map(String::from)
        .to_vec(),
        rows: run_rows,
    };
    let mut runs_intro = format!("{} runs, {} failed.", inputs.runs.len(), failed_runs);
    if let Some(note) = &figure3_note {
        let _ = write!(runs_intro, " {note}");
    }
    for (path, why) in &inputs.skipped {
        let _ = write!(runs_intro, " Left out, unreadable: {} ({why}).", path.display());
    }
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

    // What each model run "as LRA ran it" computes beside its paper.
    let mut lra_forms: Vec<(String, &str)> = Vec::new();
    let variants = inputs
        .runs
        .iter()
        .map(|r| (r.record.model.clone(), r.record.config.attention.variant()))
        .chain(inputs.benches.iter().flat_map(|b| b.measurements.iter().map(|m| (m.model.clone(), m.variant()))));
    for (model, variant) in variants {
        let note = lra_models::model_info(&model).ok().and_then(|info| info.mechanism.lra_variant());
        if let (Some(lra_models::Variant::Lra), Some(note)) = (variant, note)
            && !lra_forms.iter().any(|(m, _)| *m == model)
        {
            lra_forms.push((model, note));
        }
    }
    if !lra_forms.is_empty() {
        let intro = "Models marked \"as LRA ran it\" compute what LRA's released code computes (google-research/long-range-arena, \
                     `lra_benchmarks/models/`), its quirks and bugs included, which is what LRA's Table 1 measured; \
                     \"as in the paper\" marks the paper's form. Beside the paper, LRA's code has:";
        let lines: Vec<String> = lra_forms.iter().map(|(model, note)| format!("- **{model}**: {note}.")).collect();
        let items: Vec<String> =
            lra_forms.iter().map(|(model, note)| format!("<li><b>{}</b>: {}.</li>", escape(model), escape(note))).collect();
        sections.push((
            "Mechanisms as LRA ran them".into(),
            format!("{intro}\n\n{}\n", lines.join("\n")),
            format!("<p>{}</p>\n<ul>\n{}\n</ul>", escape(intro), items.join("\n")),
        ));
    }

    let mut markdown = String::from("# Long Range Arena: comparison report\n\n");
    let mut html = String::from(HTML_HEAD);
    html.push_str("<h1>Long Range Arena: comparison report</h1>\n");
    // The figures follow the tables.
    let tables = (accuracy_tables.len() + inputs.benches.len()).max(1);
    for (i, (title, md, h)) in sections.iter().enumerate() {
        let _ = write!(markdown, "## {title}\n\n{md}\n");
        let _ = write!(html, "<h2>{}</h2>\n{h}\n", escape(title));
        if i + 1 == tables {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_each_runs_model_sizes_and_mechanism_settings() {
        let config = crate::config::RunConfig::resolve(
            lra_tasks::Task::Pathfinder,
            lra_tasks::Preset::Quick,
            "local",
            0,
            crate::device::DeviceName::Flex,
        )
        .unwrap();
        let record = RunRecord::failed(&config, record::Failure::Crashed { detail: String::new() }, 0.0);
        assert_eq!(hyperparameters(&record), "d 32 (qkv 16), 4 heads, 1 layers, ff 32, mean, sinusoidal; block_size 16");
    }

    #[test]
    fn an_unreadable_record_is_left_out_and_named_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join("runs").join("x");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join("result.json"), "{}").unwrap();
        let written = write(dir.path(), &dir.path().join("report")).unwrap();
        assert_eq!(written.runs, 0);
        let report = std::fs::read_to_string(dir.path().join("report").join("report.md")).unwrap();
        assert!(report.contains("Left out, unreadable") && report.contains("result.json"), "{report}");
    }

    #[test]
    fn the_binomial_tail_matches_hand_counts() {
        assert!((binomial_upper_tail(10, 10, 0.5) - 1.0 / 1024.0).abs() < 1e-12);
        // P(X >= 2) for X ~ B(4, 1/2): (6 + 4 + 1) / 16.
        assert!((binomial_upper_tail(4, 2, 0.5) - 11.0 / 16.0).abs() < 1e-12);
        assert_eq!(binomial_upper_tail(4, 0, 0.3), 1.0);
        assert_eq!(binomial_upper_tail(4, 5, 0.3), 0.0);
        // Large n stays finite and in [0, 1]: 25,000 test reviews at 50.8%.
        let p = binomial_upper_tail(25_000, 12_700, 0.5);
        assert!(p > 0.0 && p < 0.01, "{p}");
    }

    #[test]
    fn a_cell_is_at_chance_unless_its_accuracy_clears_the_majority_rate_at_one_percent() {
        let cell = |accuracy: f64, n: usize| Cell {
            accuracies: vec![accuracy],
            majority_rate: Some(0.5),
            test_examples: Some(n),
            ..Cell::default()
        };
        // 52 of 100 against 50%: p = 0.38.
        assert!(cell(0.52, 100).near_chance());
        assert!(cell(0.52, 100).text().starts_with("≈ chance"));
        // 280 of 500 against 50%: p = 0.004.
        assert!(!cell(0.56, 500).near_chance());
        // Without the split's size (older records) nothing is marked.
        assert!(!Cell { test_examples: None, ..cell(0.5, 100) }.near_chance());
    }

    /// A finished ListOps run of `model` at `tiny` (seed `seed`) with test accuracy `accuracy`.
    fn finished(model: &str, seed: u64, accuracy: f64) -> RunRecord {
        let config = crate::config::RunConfig::resolve(
            lra_tasks::Task::Listops,
            lra_tasks::Preset::Tiny,
            model,
            seed,
            crate::device::DeviceName::Flex,
        )
        .unwrap();
        let mut r = RunRecord::failed(&config, record::Failure::Crashed { detail: String::new() }, 0.0);
        (r.failure, r.test_accuracy) = (None, Some(accuracy));
        r
    }

    #[test]
    fn runs_of_other_presets_or_data_sources_never_share_a_cell_and_chance_cells_leave_the_average() {
        let record = |preset: &str, task: &str, source: &str, accuracy: f64| {
            let mut r = finished("transformer", 0, accuracy);
            (r.preset, r.task, r.data_source) = (preset.into(), task.into(), source.into());
            (r.test_majority_rate, r.test_examples) = (Some(0.1), Some(1000));
            Run { record: r, metrics: Vec::new() }
        };
        let runs = vec![
            record("quick", "listops", lra_tasks::GENERATED, 0.30),
            record("quick", "image", lra_tasks::STAND_IN, 0.11),
            record("quick", "image", lra_tasks::RELEASED, 0.40),
            record("lra", "listops", lra_tasks::GENERATED, 0.36),
        ];
        let tables = tables1(&runs);
        assert_eq!(tables.iter().map(|t| t.preset.as_str()).collect::<Vec<_>>(), ["lra", "quick"]);
        let quick = &tables[1];
        let titles: Vec<String> = quick.columns.iter().map(Column::title).collect();
        assert_eq!(titles, ["ListOps", "Image", "Image †"]);
        // 11% of 1,000 against 10% is at chance: the average is over the other two.
        assert!(quick.average_leaves_out("transformer"));
        assert!((quick.average("transformer").unwrap() - 0.35).abs() < 1e-12);
        assert_eq!(tables[0].average("transformer"), Some(0.36));
    }

    #[test]
    fn the_two_forms_of_a_mechanism_are_two_rows_and_the_report_says_what_lras_computes() {
        let dir = tempfile::tempdir().unwrap();
        for (variant, accuracy) in [(lra_models::Variant::Lra, 0.3), (lra_models::Variant::Paper, 0.4)] {
            let mut r = finished("sinkhorn", 0, accuracy);
            r.config = r.config.with_variant(variant).unwrap();
            r.run_id = record::run_id(&r.config);
            (r.test_majority_rate, r.test_examples) = (Some(0.1), Some(1000));
            record::write_json_atomically(&record::run_dir(dir.path(), &r.run_id).join("result.json"), &r).unwrap();
        }
        let inputs = load(dir.path()).unwrap();
        let tables = tables1(&inputs.runs);
        assert_eq!(tables[0].models, ["sinkhorn (as LRA ran it)", "sinkhorn (as in the paper)"]);
        assert_eq!(tables[0].average("sinkhorn (as in the paper)"), Some(0.4));
        let out = dir.path().join("report");
        write(dir.path(), &out).unwrap();
        let report = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(report.contains("## Mechanisms as LRA ran them"), "{report}");
        assert!(report.contains("| sinkhorn (as LRA ran it; ours) |") && report.contains("| sinkhorn (as in the paper; ours) |"));
        assert!(report.contains(&format!("- **sinkhorn**: {}.", lra_models::attention::sinkhorn::LRA_VARIANT)), "{report}");
    }

    #[test]
    fn a_table_of_runs_from_two_commits_says_so() {
        let run = |seed: u64, commit: &str| {
            let mut r = finished("transformer", seed, 0.3);
            r.environment.git_commit = commit.into();
            Run { record: r, metrics: Vec::new() }
        };
        let one = tables1(&[run(0, "aaa"), run(1, "aaa")]);
        assert_eq!(one[0].commits_note(), "Every run is of commit aaa.");
        let mixed = tables1(&[run(0, "aaa"), run(1, "bbb")]);
        let note = mixed[0].commits_note();
        assert!(note.starts_with("Warning") && note.contains("aaa, bbb") && note.contains("--rerun-stale"), "{note}");
    }

    #[test]
    fn a_cell_gives_the_sample_deviation_and_the_average_leaves_path_x_out_as_lra() {
        let cell = Cell { accuracies: vec![0.3, 0.5, 0.4], ..Cell::default() };
        assert!((cell.mean().unwrap() - 0.4).abs() < 1e-12);
        // Sample standard deviation: sqrt(((-0.1)^2 + 0.1^2 + 0) / 2) = 0.1.
        assert!((cell.std().unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(Cell { accuracies: vec![0.7], ..Cell::default() }.std(), Some(0.0));
        assert_eq!(Cell::default().std(), None);

        let run = |task: &str, accuracy: f64| {
            let mut r = finished("transformer", 0, accuracy);
            r.task = task.into();
            Run { record: r, metrics: Vec::new() }
        };
        let tables = tables1(&[run("listops", 0.3), run("text", 0.7), run("pathx", 0.9)]);
        assert!((tables[0].average("transformer").unwrap() - 0.5).abs() < 1e-12, "Path-X is not averaged");
    }
}
