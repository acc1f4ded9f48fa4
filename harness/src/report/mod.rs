//! `lra report`: every run record and benchmark under a results folder turned into
//! `report.md`, a self-contained `report.html`, CSVs and plots (SVG and PNG).
//!
//! One file per output: [`load`] reads the folder, [`table1`] and [`table2`] make LRA's
//! two tables, [`csv_tables`] the CSV files, [`plots`] the figures and [`document`] the
//! two documents, with [`format`] what they all write the same way; [`write`] below runs
//! them in that order.

mod csv_tables;
mod document;
mod format;
pub mod gpu_check;
mod load;
pub mod plots;
pub mod published;
mod table1;
mod table2;

use std::path::{Path, PathBuf};

use anyhow::Context;

pub use load::{Inputs, Run, load};
pub use table1::{Cell, Column, Table1, is_baseline, is_control, tables1};

use crate::records::bench_record::Scope;
use crate::records::files::write_atomically;
use document::Shown;

/// What `write` produced.
#[derive(Debug, Clone)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub runs: usize,
    pub failed_runs: usize,
}

/// Writes the report of `results` into `out`; an error where `results` is no folder, and
/// nothing written (no files in [`Written`]) where it holds no record of any kind.
pub fn write(results: &Path, out: &Path) -> anyhow::Result<Written> {
    let inputs = load(results)?;
    if inputs.is_empty() {
        // Nothing to report: no empty report written over an earlier one.
        return Ok(Written { files: Vec::new(), runs: 0, failed_runs: 0 });
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = Files { out, written: Vec::new() };

    let tables1 = tables1(&inputs.runs);
    let mut accuracy_tables = Vec::new();
    let mut table1_rows = Vec::new();
    for table1 in &tables1 {
        let (table, rows) = table1::accuracy_table(table1);
        accuracy_tables.push((table1, table));
        table1_rows.extend(rows);
    }
    files.save("table1.csv", &csv_tables::table1(&table1_rows)?)?;
    files.save("table2.csv", &csv_tables::table2(&inputs.benches)?)?;
    files.save("runs.csv", &csv_tables::runs(results, &inputs.runs)?)?;

    let (figures, figure3_note) = figures(&inputs, &tables1, &mut files)?;
    let (markdown, html) = document::render(results, &inputs, &accuracy_tables, &figures, figure3_note.as_deref());
    files.save("report.md", markdown.as_bytes())?;
    files.save("report.html", html.as_bytes())?;
    Ok(Written { files: files.written, runs: inputs.runs.len(), failed_runs: inputs.failed_runs() })
}

/// The report's folder and the files written into it so far (each atomically).
struct Files<'a> {
    out: &'a Path,
    written: Vec<PathBuf>,
}

impl Files<'_> {
    fn save(&mut self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.out.join(name);
        write_atomically(&path, bytes)?;
        self.written.push(path);
        Ok(())
    }

    /// A figure as SVG and PNG, shown in the documents with `caption`.
    fn figure(&mut self, stem: &str, caption: String, figure: plots::Figure) -> anyhow::Result<Shown> {
        self.save(&format!("{stem}.svg"), figure.svg.as_bytes())?;
        self.save(&format!("{stem}.png"), &figure.png)?;
        Ok(Shown { stem: stem.to_string(), caption, png: figure.png })
    }
}

/// Figure 3 (accuracy against speed and memory), the scaling plots of the latest step and
/// layer benchmarks, and each task's training curves; and why Figure 3 is missing, if it is.
fn figures(inputs: &Inputs, tables1: &[Table1], files: &mut Files) -> anyhow::Result<(Vec<Shown>, Option<String>)> {
    let mut figures = Vec::new();
    let figure3_note = match plots::figure3(inputs, tables1)? {
        Some((figure, caption)) => {
            figures.push(files.figure("figure3", caption, figure)?);
            None
        }
        None if inputs.runs.is_empty() => None,
        None => Some(
            "Figure 3 is left out: no model has a result on every averaged task of Table 1 (and a speed to plot it at)."
                .to_string(),
        ),
    };
    for (scope, what, stem) in
        [(Scope::Step, "training step", "scaling_step"), (Scope::Layer, "attention layer", "scaling_layer")]
    {
        if let Some(bench) = inputs.benches.iter().rev().find(|b| b.scope == scope) {
            let caption = format!(
                "Time and peak memory of a {what} against sequence length (log-log), {} on {}, batch {}",
                bench.bench_id, bench.device, bench.batch
            );
            figures.push(files.figure(stem, caption, plots::scaling(bench)?)?);
        }
    }
    for task in lra_tasks::Task::ALL {
        let name = task.name();
        let runs: Vec<&Run> = inputs.runs.iter().filter(|r| r.record.task == name && !r.metrics.is_empty()).collect();
        if !runs.is_empty() {
            let caption = format!(
                "Validation accuracy and smoothed training loss against step, {}: one panel per model family, the baseline and the control in each",
                task.title()
            );
            figures.push(files.figure(&format!("curves_{name}"), caption, plots::curves(task, &runs)?)?);
        }
    }
    Ok((figures, figure3_note))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::run_record::{self, RunRecord};
    use crate::report::format::hyperparameters;

    #[test]
    fn the_report_names_each_runs_model_sizes_and_mechanism_settings() {
        let config = crate::records::run_config::RunConfig::resolve(
            lra_tasks::Task::Pathfinder,
            lra_tasks::Preset::Quick,
            "local",
            0,
            crate::records::device_name::DeviceName::Flex,
        )
        .unwrap();
        let record = RunRecord::failed(&config, run_record::Failure::Crashed { detail: String::new() }, 0.0);
        assert_eq!(hyperparameters(&record), "d 64 (qkv 32), 4 heads, 1 layers, ff 64, mean, sinusoidal; block_size 9");
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
        let config = crate::records::run_config::RunConfig::resolve(
            lra_tasks::Task::Listops,
            lra_tasks::Preset::Tiny,
            model,
            seed,
            crate::records::device_name::DeviceName::Flex,
        )
        .unwrap();
        let mut r = RunRecord::failed(&config, run_record::Failure::Crashed { detail: String::new() }, 0.0);
        (r.outcome.failure, r.outcome.test_accuracy) = (None, Some(accuracy));
        r
    }

    #[test]
    fn runs_of_other_presets_or_data_sources_never_share_a_cell_and_chance_cells_count_in_the_average() {
        let record = |preset: &str, task: &str, source: &str, accuracy: f64| {
            let mut r = finished("transformer", 0, accuracy);
            (r.preset, r.task, r.data_source) = (preset.into(), task.into(), source.into());
            (r.outcome.test_majority_rate, r.outcome.test_examples) = (Some(0.1), Some(1000));
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
        // 11% of 1,000 against 10% is at chance, and stays marked; it counts in the
        // average all the same: (30 + 40 + 11) / 3 = 27.
        let stand_in = Column { task: "image".into(), data_source: lra_tasks::STAND_IN.into() };
        let cell = &quick.cells[&("transformer".to_string(), stand_in)];
        assert!(cell.near_chance() && cell.text() == "≈ chance 11.00 †", "{}", cell.text());
        assert!((quick.average("transformer").unwrap() - 0.27).abs() < 1e-12);
        assert_eq!(tables[0].average("transformer"), Some(0.36));
    }

    /// Every model is averaged over the same columns: one without a result in any of them
    /// has no average, and the table says why, rather than an average over fewer tasks.
    #[test]
    fn a_model_without_a_result_on_an_averaged_task_has_no_average_and_the_table_says_why() {
        let run = |model: &str, task: &str, accuracy: Option<f64>| {
            let mut r = finished(model, 0, accuracy.unwrap_or(0.0));
            r.task = task.into();
            if accuracy.is_none() {
                (r.outcome.failure, r.outcome.test_accuracy) = (Some(run_record::Failure::TimedOut { seconds: 60.0 }), None);
            }
            Run { record: r, metrics: Vec::new() }
        };
        let runs = vec![
            run("transformer", "listops", Some(0.4)),
            run("transformer", "text", Some(0.6)),
            run("transformer", "image", Some(0.2)),
            run("transformer", "pathx", Some(0.5)),
            run("fnet", "listops", Some(0.3)),
            run("fnet", "image", None),
            run("fnet", "pathx", Some(0.5)),
            run("s4d", "listops", Some(0.3)),
            run("s4d", "text", Some(0.5)),
            run("s4d", "image", Some(0.1)),
        ];
        let table = &tables1(&runs)[0];
        assert!((table.average("transformer").unwrap() - 0.4).abs() < 1e-12, "(40 + 60 + 20) / 3");
        // Path-X is not averaged: S4D's missing run there takes nothing away.
        assert!((table.average("s4d").unwrap() - 0.3).abs() < 1e-12, "(30 + 50 + 10) / 3");
        assert_eq!(table.average("fnet"), None);
        assert_eq!(table.average_or_why("fnet"), Err("no run on Text; failed on Image".to_string()));
        let (accuracy, _) = table1::accuracy_table(table);
        let fnet = accuracy.rows.iter().find(|row| row[0].starts_with("fnet")).unwrap();
        assert_eq!(fnet.last().unwrap(), "– (no run on Text; failed on Image)");
    }

    #[test]
    fn the_two_forms_of_a_mechanism_are_two_rows_and_the_report_says_what_lras_computes() {
        let dir = tempfile::tempdir().unwrap();
        for (variant, accuracy) in [(lra_models::Variant::Lra, 0.3), (lra_models::Variant::Paper, 0.4)] {
            let mut r = finished("sinkhorn", 0, accuracy);
            r.config = r.config.with_variant(variant).unwrap();
            r.run_id = run_record::run_id(&r.config);
            (r.outcome.test_majority_rate, r.outcome.test_examples) = (Some(0.1), Some(1000));
            crate::records::files::write_json_atomically(&run_record::run_dir(dir.path(), &r.run_id).join("result.json"), &r)
                .unwrap();
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

    /// `record`, as a run of this version of 100 steps that validated on 100 examples with
    /// a majority rate of 10% records it, leaving chance at `left` (`None`: never).
    fn validated(mut record: RunRecord, left: Option<usize>) -> RunRecord {
        (record.outcome.validation_majority_rate, record.outcome.validation_examples) = (Some(0.1), Some(100));
        record.outcome.left_chance_step = left;
        // Within the run's steps, or the record is refused when read.
        record.outcome.steps = 100;
        record
    }

    /// A small results folder in, exact tables out: the Transformer on ListOps at 30% and
    /// 50% (mean 40%, sample deviation sqrt(0.02) = 14.14%: the noise floor), its seed 0
    /// leaving chance at step 10 and its seed 1 never; Local at 45%, 5 points from the
    /// Transformer, within twice 14.14; a Linformer run that crashed; the control at 20%,
    /// under the models and compared with none; beside LRA's published 36.37, 15.82 and
    /// 35.70.
    #[test]
    fn a_small_results_folder_gives_exactly_these_tables() {
        let dir = tempfile::tempdir().unwrap();
        let mut crashed = finished("linformer", 0, 0.0);
        (crashed.outcome.failure, crashed.outcome.test_accuracy) =
            (Some(run_record::Failure::Crashed { detail: "signal 9".into() }), None);
        // The control's record (keyed on the name alone: its configuration does not matter here).
        let mut control = validated(finished("transformer", 0, 0.2), Some(30));
        (control.model, control.run_id) = (lra_models::CONTROL.into(), "control".into());
        for r in [
            control,
            validated(finished("transformer", 0, 0.3), Some(10)),
            validated(finished("transformer", 1, 0.5), None),
            validated(finished("local", 0, 0.45), Some(20)),
            crashed,
        ] {
            crate::records::files::write_json_atomically(&run_record::run_dir(dir.path(), &r.run_id).join("result.json"), &r)
                .unwrap();
        }
        let out = dir.path().join("report");
        write(dir.path(), &out).unwrap();
        let csv = std::fs::read_to_string(out.join("table1.csv")).unwrap();
        assert_eq!(
            csv,
            "preset,model,role,task,data_source,mean_test_accuracy,std_test_accuracy,ok_runs,failed_runs,first_failure,\
             near_chance,left_chance_steps,seeds_left_chance,baseline_seed_spread,within_noise,published_accuracy_percent\n\
             tiny,transformer,baseline,listops,generated,0.400000,0.141421,2,0,,false,10;never,1/2,0.141421,,36.37\n\
             tiny,local (as in the paper),model,listops,generated,0.450000,0.000000,1,0,,false,20,1/1,0.141421,true,15.82\n\
             tiny,linformer (as in the paper),model,listops,generated,,,0,1,crashed: signal 9,false,,,0.141421,,35.70\n\
             tiny,bag,control,listops,generated,0.200000,0.000000,1,0,,false,30,1/1,0.141421,,\n"
        );
        let report = std::fs::read_to_string(out.join("report.md")).unwrap();
        for row in [
            "| Model | ListOps | Avg |",
            "| transformer (ours) | 40.00 ± 14.14 (1/2 left) | 40.00 |",
            "| local (as in the paper; ours) | 45.00 ‡ (left at 20) | 45.00 |",
            "| linformer (as in the paper; ours) | FAIL (crashed: signal 9) | – (failed on ListOps) |",
            "| bag (control: no attention, no positions; ours) | 20.00 (left at 30) | 20.00 |",
            "| transformer seed spread (sample std; ‡ within twice it) | ± 14.14 (2 seeds) |  |",
            "| chance | 10.00 |  |",
            "| Transformer (published, LRA paper, Table 1) | 36.37 | 36.37 |",
        ] {
            assert!(report.lines().any(|line| line == row), "no row {row:?} in\n{report}");
        }
        // The control comes after every model and before the rows that are not runs.
        let position = |start: &str| report.lines().position(|line| line.starts_with(start)).unwrap();
        assert!(position("| linformer") < position("| bag") && position("| bag") < position("| transformer seed spread"));
        for legend in [
            "‡ marks a model whose mean differs from the transformer's by less than twice that spread",
            "The control row (bag: the encoder without attention and without positions",
            "(k/n left): k of the",
            "a model without a result in one of them has none (– with the reason)",
        ] {
            assert!(report.contains(legend), "no {legend:?} in\n{report}");
        }
        // Each seed's step is in the HTML cell's tooltip, and what makes a cell within noise.
        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(
            html.contains(
                r#"<td title="seed 0: left chance at validation step 20; within noise: 5.00 points from the transformer's 40.00, under twice its seed spread (2 x 14.14)">45.00 ‡ (left at 20)</td>"#
            ),
            "{html}"
        );
        assert!(
            html.contains(r#"<td title="seed 0: left chance at validation step 10; seed 1: never left chance">40.00 ± 14.14 (1/2 left)</td>"#),
            "{html}"
        );
    }

    /// A model is within noise when its difference to the baseline is under twice the
    /// baseline's spread, and only then; with one seed of the baseline there is no floor.
    #[test]
    fn within_noise_is_under_twice_the_baselines_spread_and_needs_two_of_its_seeds() {
        let run = |model: &str, seed: u64, accuracy: f64| Run { record: finished(model, seed, accuracy), metrics: Vec::new() };
        let listops = Column { task: "listops".into(), data_source: lra_tasks::GENERATED.into() };
        // The Transformer at 40, 42 and 44: sample deviation 2, so within 4 points of 42.
        let baseline = [run("transformer", 0, 0.40), run("transformer", 1, 0.42), run("transformer", 2, 0.44)];
        let table = &tables1(&[&baseline[..], &[run("fnet", 0, 0.385), run("s4d", 0, 0.375)]].concat())[0];
        let (spread, seeds) = table.baseline_spread(&listops).unwrap();
        assert!((spread - 0.02).abs() < 1e-12 && seeds == 3);
        assert_eq!(table.within_noise("fnet", &listops), Some(true), "3.5 points from 42");
        assert_eq!(table.within_noise("s4d", &listops), Some(false), "4.5 points from 42");
        assert_eq!(table.within_noise("transformer", &listops), None, "the baseline is not compared with itself");
        let one_seed = &tables1(&[run("transformer", 0, 0.40), run("fnet", 0, 0.40)])[0];
        assert_eq!(one_seed.baseline_spread(&listops), None);
        assert_eq!(one_seed.within_noise("fnet", &listops), None);
    }

    /// The share of seeds that left chance counts the runs whose record says; a record of
    /// an earlier version (which does not) counts in neither part.
    #[test]
    fn the_share_of_seeds_that_left_chance_counts_only_the_records_that_say() {
        let runs = [
            validated(finished("transformer", 0, 0.3), Some(40)),
            validated(finished("transformer", 1, 0.3), None),
            validated(finished("transformer", 2, 0.3), Some(20)),
            finished("transformer", 3, 0.3),
        ];
        let runs: Vec<Run> = runs.into_iter().map(|record| Run { record, metrics: Vec::new() }).collect();
        let table = &tables1(&runs)[0];
        let cell = table.cells.values().next().unwrap();
        assert_eq!(cell.left_chance_share(), Some((2, 3)));
        assert_eq!(cell.left_chance_steps(), "40;never;20");
        assert!(cell.text().ends_with(" (2/3 left)"), "{}", cell.text());
        let old = &tables1(&runs[3..])[0];
        let cell = old.cells.values().next().unwrap();
        assert_eq!((cell.left_chance_share(), cell.left_chance_text()), (None, None));
        assert_eq!(cell.text(), "30.00");
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
