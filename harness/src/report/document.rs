//! The documents: `report.md` and a self-contained `report.html` (figures embedded), made
//! of the same sections: Table 1 per preset, Table 2 per benchmark, the figures after the
//! tables, the environment, every run, and what the models run "as LRA ran it" compute.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;

use super::format::{Table, bytes_label, escape, hyperparameters, reproduce_command, shorten};
use super::load::Inputs;
use super::table1::{Table1, is_control};
use super::table2::speed_table;

use crate::records::bench_record::{BenchRecord, Scope};
use crate::records::chance::CHANCE_TEST_LEVEL;

/// A figure as the documents show it: its files' stem, its caption and its PNG.
pub(super) struct Shown {
    pub stem: String,
    pub caption: String,
    pub png: Vec<u8>,
}

/// A section of both documents: its title, Markdown and HTML.
type Section = (String, String, String);

/// `report.md` and `report.html`. `figure3_note` says why Figure 3 is missing, if it is.
pub(super) fn render(
    results: &Path,
    inputs: &Inputs,
    accuracy_tables: &[(&Table1, Table)],
    figures: &[Shown],
    figure3_note: Option<&str>,
) -> (String, String) {
    let mut sections = table1_sections(accuracy_tables);
    sections.extend(inputs.benches.iter().map(table2_section));
    sections.push(environment_section(inputs));
    sections.push(runs_section(results, inputs, figure3_note));
    sections.extend(lra_forms_section(inputs));
    let mut markdown = String::from("# Long Range Arena: comparison report\n\n");
    let mut html = String::from(HTML_HEAD);
    html.push_str("<h1>Long Range Arena: comparison report</h1>\n");
    // The figures follow the tables.
    let tables = (accuracy_tables.len() + inputs.benches.len()).max(1);
    for (i, (title, md, h)) in sections.iter().enumerate() {
        let _ = write!(markdown, "## {title}\n\n{md}\n");
        let _ = write!(html, "<h2>{}</h2>\n{h}\n", escape(title));
        if i + 1 == tables {
            for Shown { stem, caption, png } in figures {
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

    (markdown, html)
}

/// Table 1 of each preset, with what its marks mean.
fn table1_sections(accuracy_tables: &[(&Table1, Table)]) -> Vec<Section> {
    let mut sections = Vec::new();
    let stand_in_note =
        "† trained on a synthetic stand-in (the released files were absent): not comparable to the published figure.";
    let chance_note = format!(
        "≈ chance: the mean accuracy is not above the test split's majority rate by a one-sided binomial test at {:.0}% \
         (its correct answers out of the test examples); such cells count in Avg and in Figure 3 as they are, so that \
         every model is averaged over the same tasks.",
        100.0 * CHANCE_TEST_LEVEL
    );
    let average_note = "Avg: the mean over every column but Path-X's (as LRA's), the same columns for every model; a \
                        model without a result in one of them has none (– with the reason), not an average over fewer \
                        tasks.";
    let left_note = "(left at N): the first validation step (of those every `eval_every` steps) whose accuracy was above \
                     the validation split's majority rate by the same test; (never left): none was; (k/n left): k of the \
                     cell's n seeds left chance (each seed's step in the HTML cell's tooltip and in table1.csv). Records \
                     of earlier versions do not say.";
    for (table1, table) in accuracy_tables {
        let devices = table1.devices.join(", ");
        let mut notes = vec![stand_in_note.to_string(), chance_note.clone(), average_note.into(), left_note.into()];
        if table1.columns.iter().any(|c| table1.baseline_spread(c).is_some()) {
            notes.push(format!(
                "Noise floor: the row \"{baseline} seed spread\" is the sample standard deviation of the {baseline}'s \
                 test accuracy over its seeds, per column; ‡ marks a model whose mean differs from the {baseline}'s by \
                 less than twice that spread, a difference another seed of the {baseline} could give: within noise.",
                baseline = lra_models::BASELINE
            ));
        }
        if table1.models.iter().any(|m| is_control(m)) {
            notes.push(format!(
                "The control row ({control}: the encoder without attention and without positions, mean pooled: a bag of \
                 token features) shows what each task gives away without relating positions. It is no contender: it \
                 comes after the models and is not compared with the {baseline} for noise.",
                control = lra_models::CONTROL,
                baseline = lra_models::BASELINE
            ));
        }
        let intro = format!(
            "Preset `{}`, device {devices}. Test accuracy of the final weights (as LRA reports; the best-validation \
             weights' accuracy is in runs.csv): mean ± sample standard deviation over seeds; FAIL names the cause. \
             Published rows are LRA's figures as printed, not runs of this harness. {}",
            table1.preset,
            table1.commits_note()
        );
        let legend_md: String = notes.iter().map(|note| format!("- {note}\n")).collect();
        let legend_html: String = notes.iter().map(|note| format!("<li>{}</li>\n", escape(note))).collect();
        sections.push((
            format!("Table 1: test accuracy (%), preset {}", table1.preset),
            format!("{intro}\n\n{}\n{legend_md}", table.markdown()),
            format!("<p>{}</p>\n{}<ul class=\"legend\">\n{legend_html}</ul>\n", escape(&intro), table.html()),
        ));
    }
    sections
}

/// Table 2 of one benchmark, with its sizes, device, peak and command.
fn table2_section(b: &BenchRecord) -> Section {
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
    let intro = match b.software_rendered() {
        true => format!(
            "{intro}. The adapter is a software renderer: the CPU ran the GPU's kernels, so the peak device memory is what a \
             GPU would hold for them, and the times are the CPU's, not a GPU's (no speed ratios are given)"
        ),
        false => intro,
    };
    (
        format!("Table 2: speed, peak memory and MFU ({})", b.bench_id),
        format!("{intro}\n\n{}", t.markdown()),
        format!("<p>{}</p>\n{}", escape(&intro), t.html()),
    )
}

/// The machines and code versions of the runs, each once.
fn environment_section(inputs: &Inputs) -> Section {
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
        titles: Vec::new(),
    };
    ("Environment".into(), env.markdown(), env.html())
}

/// Every run, with the command that reproduces it; what was left out and why.
fn runs_section(results: &Path, inputs: &Inputs, figure3_note: Option<&str>) -> Section {
    let run_rows: Vec<Vec<String>> = inputs
        .runs
        .iter()
        .map(|run| {
            let r = &run.record;
            vec![
                r.task.clone(),
                r.model_label(),
                r.seed.to_string(),
                r.status().to_string(),
                r.outcome
                    .test_accuracy
                    .map(|a| format!("{:.2}", 100.0 * a))
                    .unwrap_or_else(|| r.outcome.failure.as_ref().map(|f| shorten(&f.to_string(), 50)).unwrap_or_default()),
                format!("{:.2}", r.outcome.train_steps_per_second),
                bytes_label(r.outcome.peak_memory_bytes),
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
        titles: Vec::new(),
    };
    let mut runs_intro = format!("{} runs, {} failed.", inputs.runs.len(), inputs.failed_runs());
    if let Some(note) = figure3_note {
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
    (
        "Runs".into(),
        format!("{runs_intro}\n\n{}", runs_table.markdown()),
        format!("<p>{}</p>\n{}", escape(&runs_intro), runs_table.html().replace('`', "")),
    )
}

/// What each model run "as LRA ran it" computes beside its paper (none when no run or
/// measurement used that form).
fn lra_forms_section(inputs: &Inputs) -> Option<Section> {
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
    if lra_forms.is_empty() {
        return None;
    }
    let intro = "Models marked \"as LRA ran it\" compute what LRA's released code computes (google-research/long-range-arena, \
                 `lra_benchmarks/models/`), its quirks and bugs included, which is what LRA's Table 1 measured; \
                 \"as in the paper\" marks the paper's form. Beside the paper, LRA's code has:";
    let lines: Vec<String> = lra_forms.iter().map(|(model, note)| format!("- **{model}**: {note}.")).collect();
    let items: Vec<String> =
        lra_forms.iter().map(|(model, note)| format!("<li><b>{}</b>: {}.</li>", escape(model), escape(note))).collect();
    Some((
        "Mechanisms as LRA ran them".into(),
        format!("{intro}\n\n{}\n", lines.join("\n")),
        format!("<p>{}</p>\n<ul>\n{}\n</ul>", escape(intro), items.join("\n")),
    ))
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
