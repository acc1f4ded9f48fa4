//! Table 1: test accuracy per model and task, one table per preset, beside LRA's published
//! rows; what a cell is (mean, deviation, the test against chance) and what the average
//! leaves out.

use std::collections::BTreeMap;

use lra_tasks::Task;

use super::document::Table;
use super::{Run, ours, published, shorten};

/// The task of a record's task name, if it is one of LRA's.
fn task_of(name: &str) -> Option<Task> {
    Task::parse(name).ok()
}

/// A task's column title in LRA's tables ("?" for a name that is not a task).
pub(super) fn column_title(task: &str) -> &'static str {
    task_of(task).map_or("?", Task::title)
}

/// A task's position in LRA's task order.
fn column_index(task: &str) -> Option<usize> {
    task_of(task).and_then(|task| Task::ALL.iter().position(|&t| t == task))
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

/// A column of Table 1: the runs of one task from one data source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Column {
    pub task: String,
    pub data_source: String,
}

impl Column {
    /// Whether the column counts in a model's average (every task but Path-X, as LRA).
    pub fn averaged(&self) -> bool {
        task_of(&self.task).is_none_or(Task::averaged)
    }

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
        let scored: Vec<&Column> = self.columns.iter().filter(|c| c.averaged()).collect();
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
            .any(|c| c.averaged() && self.cells.get(&(model.to_string(), c.clone())).is_some_and(Cell::near_chance))
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
            cell.majority_rate = cell.majority_rate.or(r.outcome.test_majority_rate);
            cell.test_examples = cell.test_examples.or(r.outcome.test_examples);
            match (&r.outcome.failure, r.outcome.test_accuracy) {
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

/// Table 1 as a table (the published rows under ours) and as the rows of `table1.csv`.
pub(super) fn accuracy_table(table1: &Table1) -> (Table, Vec<Vec<String>>) {
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
            let published = published::accuracy_of(model)
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
            if column.averaged() {
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
