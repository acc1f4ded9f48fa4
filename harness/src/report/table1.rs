//! Table 1: test accuracy per model and task, one table per preset, beside LRA's published
//! rows; what a cell is (mean, deviation, the test against chance, when its runs left
//! chance), the noise floor the baseline's seeds give, the control row, and what the
//! average takes.

use std::collections::BTreeMap;

use lra_tasks::Task;

use super::format::{Table, ours, shorten};
use super::load::Run;
use super::published;
use crate::records::chance;
use crate::records::run_record::model_of_label;

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
    /// Of each finished run whose record says (not those of earlier versions), in seed
    /// order: its seed and the validation step at which it left chance (`None`: never).
    pub left_chance: Vec<(u64, Option<usize>)>,
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

    /// Whether the mean accuracy is not above the test split's majority rate by
    /// [`chance::above_chance`] (the mean's correct answers out of the test examples);
    /// `false` when the record does not say the split's size.
    pub fn near_chance(&self) -> bool {
        match (self.mean(), self.majority_rate, self.test_examples) {
            (Some(mean), Some(rate), Some(n)) if n > 0 => !chance::above_chance(mean, n, rate),
            _ => false,
        }
    }

    /// How many of the runs that say left chance, out of how many say; `None` when none
    /// says (records of earlier versions).
    pub fn left_chance_share(&self) -> Option<(usize, usize)> {
        let known = self.left_chance.len();
        (known > 0).then(|| (self.left_chance.iter().filter(|(_, step)| step.is_some()).count(), known))
    }

    /// When the cell's runs left chance, as the table shows it: `left at 300` or `never
    /// left` for one run, `2/3 left` for several; `None` when no record says.
    pub fn left_chance_text(&self) -> Option<String> {
        match (self.left_chance.as_slice(), self.left_chance_share()?) {
            ([(_, Some(step))], _) => Some(format!("left at {step}")),
            ([(_, None)], _) => Some("never left".into()),
            (_, (left, known)) => Some(format!("{left}/{known} left")),
        }
    }

    /// Each run's step, for a tooltip: `seed 0: left chance at validation step 300; seed
    /// 1: never left chance`.
    pub fn left_chance_detail(&self) -> String {
        let runs: Vec<String> = self
            .left_chance
            .iter()
            .map(|(seed, step)| match step {
                Some(step) => format!("seed {seed}: left chance at validation step {step}"),
                None => format!("seed {seed}: never left chance"),
            })
            .collect();
        runs.join("; ")
    }

    /// The steps for `table1.csv`, in seed order: `300;never;450`.
    pub fn left_chance_steps(&self) -> String {
        let steps: Vec<String> =
            self.left_chance.iter().map(|(_, step)| step.map_or_else(|| "never".to_string(), |s| s.to_string())).collect();
        steps.join(";")
    }

    /// `mean ± std` in percent (`≈ chance` before it when [`Cell::near_chance`]), then
    /// when its runs left chance ([`Cell::left_chance_text`]); `FAIL (cause)` when every
    /// run failed.
    pub fn text(&self) -> String {
        self.marked_text(false)
    }

    /// [`Cell::text`], marked ‡ when its difference to the baseline is within the noise
    /// floor ([`Table1::within_noise`]).
    fn marked_text(&self, within_noise: bool) -> String {
        let mut mark = String::from(if self.stand_in { " †" } else { "" });
        if within_noise {
            mark.push_str(" ‡");
        }
        let chance = if self.near_chance() { "≈ chance " } else { "" };
        let left = self.left_chance_text().map(|text| format!(" ({text})")).unwrap_or_default();
        match (self.mean(), self.std()) {
            (Some(mean), Some(std)) if self.accuracies.len() > 1 => {
                format!("{chance}{:.2} ± {:.2}{mark}{left}", 100.0 * mean, 100.0 * std)
            }
            (Some(mean), _) => format!("{chance}{:.2}{mark}{left}", 100.0 * mean),
            _ => match self.failures.first() {
                Some(cause) => format!("FAIL ({}){mark}", shorten(cause, 60)),
                None => "–".into(),
            },
        }
    }
}

/// Whether a model's label is the baseline's, against which the noise floor is measured.
pub fn is_baseline(label: &str) -> bool {
    model_of_label(label) == lra_models::BASELINE
}

/// Whether a model's label is the control's ([`lra_models::CONTROL`]): a row of its own,
/// not a contender.
pub fn is_control(label: &str) -> bool {
    model_of_label(label) == lra_models::CONTROL
}

/// The control row's title.
fn control_title(label: &str) -> String {
    format!("{label} (control: no attention, no positions; ours)")
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
    /// Models with runs, in registry order, the control last.
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

    /// The columns an average is over: every column but Path-X's (as LRA), the same for
    /// every model.
    pub fn averaged_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.averaged())
    }

    /// The mean over [`Table1::averaged_columns`] of a model's mean accuracies, cells at
    /// chance included (they stay marked in the table); `None` when the model lacks a
    /// result in any of them ([`Table1::average_or_why`] says which).
    pub fn average(&self, model: &str) -> Option<f64> {
        self.average_or_why(model).ok()
    }

    /// [`Table1::average`], or why there is none: `no run on Text; failed on Image`. An
    /// average over fewer tasks than the others' would not compare with theirs.
    pub fn average_or_why(&self, model: &str) -> Result<f64, String> {
        let (mut means, mut not_run, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        for column in self.averaged_columns() {
            match self.cells.get(&(model.to_string(), column.clone())) {
                Some(cell) => match cell.mean() {
                    Some(mean) => means.push(mean),
                    None => failed.push(column.title()),
                },
                None => not_run.push(column.title()),
            }
        }
        let mut why = Vec::new();
        if !not_run.is_empty() {
            why.push(format!("no run on {}", not_run.join(", ")));
        }
        if !failed.is_empty() {
            why.push(format!("failed on {}", failed.join(", ")));
        }
        match (means.is_empty(), why.is_empty()) {
            (_, false) => Err(why.join("; ")),
            (true, true) => Err("no averaged task".into()),
            (false, true) => Ok(means.iter().sum::<f64>() / means.len() as f64),
        }
    }

    /// The baseline's row label, if it has runs.
    fn baseline(&self) -> Option<&String> {
        self.models.iter().find(|m| is_baseline(m))
    }

    /// The noise floor of a column: the sample standard deviation of the baseline's test
    /// accuracy over its seeds, and how many seeds; `None` with fewer than two.
    pub fn baseline_spread(&self, column: &Column) -> Option<(f64, usize)> {
        let cell = self.cells.get(&(self.baseline()?.clone(), column.clone()))?;
        (cell.accuracies.len() >= 2).then(|| (cell.std().unwrap_or(0.0), cell.accuracies.len()))
    }

    /// Whether a model's mean differs from the baseline's by less than twice the column's
    /// [`Table1::baseline_spread`]: a difference that another seed of the baseline could
    /// give. `None` where there is nothing to compare: the baseline itself, the control (no
    /// contender), a column without a spread, a model or baseline without a result.
    pub fn within_noise(&self, model: &str, column: &Column) -> Option<bool> {
        if is_baseline(model) || is_control(model) {
            return None;
        }
        let (spread, _) = self.baseline_spread(column)?;
        let baseline = self.cells.get(&(self.baseline()?.clone(), column.clone()))?.mean()?;
        let mean = self.cells.get(&(model.to_string(), column.clone()))?.mean()?;
        Some((mean - baseline).abs() < 2.0 * spread)
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
                (None, Some(accuracy)) => {
                    cell.accuracies.push(accuracy);
                    if r.outcome.left_chance_known() {
                        cell.left_chance.push((r.seed, r.outcome.left_chance_step));
                    }
                }
                (Some(failure), _) => cell.failures.push(failure.to_string()),
                (None, None) => cell.failures.push("no test accuracy recorded".into()),
            }
        }
        table.columns.sort_by_key(|c| (column_index(&c.task).unwrap_or(usize::MAX), c.data_source.clone()));
        // The control is no contender: its row comes after the models'.
        table.models.sort_by_key(|m| is_control(m));
        tables.push(table);
    }
    tables
}

/// Table 1 as a table (the control row under the models, the baseline's seed spread, the
/// published rows under ours; each cell's runs in its HTML tooltip) and as the rows of
/// `table1.csv`.
pub(super) fn accuracy_table(table1: &Table1) -> (Table, Vec<Vec<String>>) {
    let mut header = vec!["Model".to_string()];
    header.extend(table1.columns.iter().map(Column::title));
    header.push("Avg".into());
    let mut rows = Vec::new();
    let mut titles = Vec::new();
    let mut csv_rows = Vec::new();
    for model in &table1.models {
        let mut row = vec![if is_control(model) { control_title(model) } else { ours(model) }];
        let mut row_titles = vec![String::new()];
        for column in &table1.columns {
            let cell = table1.cells.get(&(model.clone(), column.clone())).cloned().unwrap_or_default();
            let within_noise = table1.within_noise(model, column);
            row.push(cell.marked_text(within_noise == Some(true)));
            let mut title = cell.left_chance_detail();
            if within_noise == Some(true)
                && let (Some(mean), Some((spread, _))) = (cell.mean(), table1.baseline_spread(column))
                && let Some(baseline) = table1.baseline().and_then(|b| table1.cells.get(&(b.clone(), column.clone())))
                && let Some(baseline_mean) = baseline.mean()
            {
                let sep = if title.is_empty() { "" } else { "; " };
                title = format!(
                    "{title}{sep}within noise: {:.2} points from the {}'s {:.2}, under twice its seed spread (2 x {:.2})",
                    100.0 * (mean - baseline_mean).abs(),
                    lra_models::BASELINE,
                    100.0 * baseline_mean,
                    100.0 * spread
                );
            }
            row_titles.push(title);
            let published = published::accuracy_of(model)
                .and_then(|p| column_index(&column.task).and_then(|i| p.accuracy[i]))
                .map(|a| format!("{a:.2}"))
                .unwrap_or_default();
            let role = match model {
                m if is_baseline(m) => "baseline",
                m if is_control(m) => "control",
                _ => "model",
            };
            csv_rows.push(vec![
                table1.preset.clone(),
                model.clone(),
                role.to_string(),
                column.task.clone(),
                column.data_source.clone(),
                cell.mean().map(|m| format!("{:.6}", m)).unwrap_or_default(),
                cell.std().map(|s| format!("{:.6}", s)).unwrap_or_default(),
                cell.accuracies.len().to_string(),
                cell.failures.len().to_string(),
                cell.failures.first().cloned().unwrap_or_default(),
                cell.near_chance().to_string(),
                cell.left_chance_steps(),
                cell.left_chance_share().map(|(left, known)| format!("{left}/{known}")).unwrap_or_default(),
                table1.baseline_spread(column).map(|(spread, _)| format!("{spread:.6}")).unwrap_or_default(),
                within_noise.map(|w| w.to_string()).unwrap_or_default(),
                published,
            ]);
        }
        row.push(match table1.average_or_why(model) {
            Ok(average) => format!("{:.2}", 100.0 * average),
            Err(why) => format!("– ({why})"),
        });
        row_titles.push(String::new());
        rows.push(row);
        titles.push(row_titles);
    }
    if let Some(baseline) = table1.baseline()
        && table1.columns.iter().any(|c| table1.baseline_spread(c).is_some())
    {
        let mut spread = vec![format!("{baseline} seed spread (sample std; ‡ within twice it)")];
        spread.extend(table1.columns.iter().map(|c| {
            table1.baseline_spread(c).map(|(s, seeds)| format!("± {:.2} ({seeds} seeds)", 100.0 * s)).unwrap_or_default()
        }));
        spread.push(String::new());
        rows.push(spread);
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
    (Table { header, rows, titles }, csv_rows)
}
