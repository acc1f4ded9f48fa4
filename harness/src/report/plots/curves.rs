//! The training curves: validation accuracy and smoothed training loss against step, one
//! panel per model family, with where each run left chance.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::draw::*;
use crate::report::load::Run;

/// Colours of the models that share a panel of the training curves; black and grey are the
/// baseline's and the control's.
pub(super) const PANEL_COLOURS: [RGBColor; 8] =
    [COLOURS[0], COLOURS[1], COLOURS[2], COLOURS[3], COLOURS[4], COLOURS[5], COLOURS[6], COLOURS[9]];

/// The baseline's style in every panel of the curves.
pub(super) const BASELINE_STYLE: Style = Style { colour: BLACK, dashed: false };

/// The control's style in every panel of the curves.
pub(super) const CONTROL_STYLE: Style = Style { colour: CONTROL_GREY, dashed: true };

/// One panel of the training curves: a family of models, by their labels.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Panel {
    pub(super) title: String,
    pub(super) models: Vec<String>,
}

impl Panel {
    /// How `label`'s curves are drawn in this panel: the baseline and the control as
    /// everywhere, a member in a colour of its own within the panel (a model's paper form
    /// in its LRA form's colour, dashed).
    pub(super) fn style(&self, label: &str) -> Style {
        match crate::records::run_record::model_of_label(label) {
            lra_models::BASELINE => BASELINE_STYLE,
            lra_models::CONTROL => CONTROL_STYLE,
            model => {
                let mut models: Vec<&str> = self.models.iter().map(|m| crate::records::run_record::model_of_label(m)).collect();
                models.dedup();
                let rank = models.iter().position(|m| *m == model).unwrap_or(0);
                let paper = label.ends_with(&format!("({})", lra_models::Variant::Paper.label()));
                Style { colour: PANEL_COLOURS[rank % PANEL_COLOURS.len()], dashed: paper }
            }
        }
    }
}

/// The family a model's panel is named after: the survey's family without its gloss
/// (`memory (inducing points)` is `memory`), `other` for a model the registry lacks.
pub(super) fn family(label: &str) -> &'static str {
    lra_models::model_info(crate::records::run_record::model_of_label(label))
        .map_or("other", |m| m.family.split(" (").next().unwrap_or(m.family))
}

/// The panels of the curves of the models `labels` (in the registry's order): one per
/// family, the families of one model each gathered in a last panel, and none for the
/// baseline and the control, which every panel shows (a panel of their own where no other
/// model ran).
pub(super) fn panels(labels: &[String]) -> Vec<Panel> {
    let mut families: Vec<Panel> = Vec::new();
    for label in labels {
        if matches!(crate::records::run_record::model_of_label(label), lra_models::BASELINE | lra_models::CONTROL) {
            continue;
        }
        let title = family(label);
        match families.iter_mut().find(|p| p.title == title) {
            Some(panel) if !panel.models.contains(label) => panel.models.push(label.clone()),
            Some(_) => {}
            None => families.push(Panel { title: title.to_string(), models: vec![label.clone()] }),
        }
    }
    let alone = |p: &Panel| {
        p.models
            .iter()
            .all(|m| crate::records::run_record::model_of_label(m) == crate::records::run_record::model_of_label(&p.models[0]))
    };
    let (single, mut panels): (Vec<Panel>, Vec<Panel>) = families.into_iter().partition(alone);
    if single.len() > 1 {
        panels.push(Panel { title: "other families".into(), models: single.into_iter().flat_map(|p| p.models).collect() });
    } else {
        panels.extend(single);
    }
    if panels.is_empty() {
        panels.push(Panel { title: "baseline".into(), models: Vec::new() });
    }
    panels
}

/// What a key entry shows beside its text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Sample {
    /// A curve's line.
    Line(Style),
    /// The level of the majority class.
    Level,
    /// The mark of the first validation step above chance.
    Marker,
}

/// The key's font size, the length of its line samples and the room between entries.
pub(super) const KEY_FONT: u32 = 13;
pub(super) const KEY_SAMPLE: f64 = 24.0;
pub(super) const KEY_GAP: f64 = 16.0;

/// The width of a key entry: its sample, a space and its text.
pub(super) fn key_width(text: &str) -> f64 {
    KEY_SAMPLE + 5.0 + text_size(text, KEY_FONT).0
}

/// Where each of the entries `widths` wide goes when they flow into lines `room` wide:
/// its line and its x.
pub(super) fn flow(widths: &[f64], room: f64) -> Vec<(usize, f64)> {
    let (mut line, mut x) = (0, 0.0);
    let mut places = Vec::new();
    for &width in widths {
        if x > 0.0 && x + width > room {
            (line, x) = (line + 1, 0.0);
        }
        places.push((line, x));
        x += width + KEY_GAP;
    }
    places
}

/// How many lines `entries` take in `room`.
pub(super) fn key_lines(entries: &[(Sample, String)], room: f64) -> usize {
    let widths: Vec<f64> = entries.iter().map(|(_, text)| key_width(text)).collect();
    flow(&widths, room).last().map_or(0, |(line, _)| line + 1)
}

/// The height of a line of a key.
pub(super) const KEY_LINE: u32 = 18;

/// Draws `entries` flowed into `room` from `origin` (each line [`KEY_LINE`] high).
pub(super) fn draw_key<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(Sample, String)],
    origin: (i32, i32),
    room: f64,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let widths: Vec<f64> = entries.iter().map(|(_, text)| key_width(text)).collect();
    for ((sample, text), (line, x)) in entries.iter().zip(flow(&widths, room)) {
        let x = origin.0 + x.round() as i32;
        let y = origin.1 + (line as u32 * KEY_LINE) as i32 + KEY_LINE as i32 / 2;
        let ends = vec![(x, y), (x + KEY_SAMPLE as i32, y)];
        match sample {
            Sample::Line(style) if style.dashed => {
                area.draw(&DashedPathElement::new(ends, 6, 3, style.colour.stroke_width(2))).map_err(error)?
            }
            Sample::Line(style) => area.draw(&PathElement::new(ends, style.colour.stroke_width(2))).map_err(error)?,
            Sample::Level => area.draw(&PathElement::new(ends, LEVEL.stroke_width(1))).map_err(error)?,
            Sample::Marker => left_chance_mark(area, (x + KEY_SAMPLE as i32 / 2, y), BLACK)?,
        }
        let font = ("sans-serif", KEY_FONT).into_font().color(&BLACK);
        area.draw(&Text::new(text.clone(), (x + KEY_SAMPLE as i32 + 5, y - KEY_FONT as i32 / 2), font)).map_err(error)?;
    }
    Ok(())
}

/// The colour of the majority class's level.
pub(super) const LEVEL: RGBAColor = RGBAColor(0, 0, 0, 0.4);

/// Draws the mark of a run's first validation step above chance at `at` (pixels of
/// `area`): a triangle in the curve's colour, outlined so that it shows on any line.
pub(super) fn left_chance_mark<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    colour: RGBColor,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    area.draw(&TriangleMarker::new(at, 7, colour.filled())).map_err(error)?;
    area.draw(&TriangleMarker::new(at, 7, BLACK.stroke_width(1))).map_err(error)?;
    Ok(())
}

/// The point of `run`'s validation curve where it first left chance: its validation at the
/// record's `left_chance_step` (or the first after it, should the curve lack that row).
pub(super) fn left_chance_point(run: &Run) -> Option<(u32, f64)> {
    let step = run.record.outcome.left_chance_step?;
    run.metrics.iter().filter(|m| m.step >= step).find_map(|m| m.val_acc.map(|a| (m.step as u32, 100.0 * a)))
}

/// The heights in the curves' figure: its heading's title line, a panel's title line and
/// its two charts.
pub(super) const CURVES_TITLE: u32 = 30;
pub(super) const PANEL_TITLE: u32 = 22;
pub(super) const ACCURACY_HEIGHT: u32 = 190;
pub(super) const LOSS_HEIGHT: u32 = 140;

/// The curves' layout, fixed before drawing: the figure's height follows from it.
#[derive(Debug, Clone)]
pub(super) struct CurvesLayout {
    pub(super) panels: Vec<Panel>,
    pub(super) columns: usize,
    pub(super) rows: usize,
    /// The heading's key: the baseline, the control and the majority level.
    pub(super) key: Vec<(Sample, String)>,
    pub(super) header_height: u32,
    /// Each panel's key: its models.
    pub(super) keys: Vec<Vec<(Sample, String)>>,
    pub(super) panel_head: u32,
    /// The majority class's share (%) of the validation split (of the test split in records
    /// that lack the validation's), where every run has the same.
    pub(super) majority: Option<f64>,
}

impl CurvesLayout {
    pub(super) fn new(runs: &[Run]) -> CurvesLayout {
        let mut labels: Vec<String> = Vec::new();
        for run in runs {
            let label = run.record.model_label();
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        let panels = panels(&labels);
        let columns = panels.len().min(3);
        let rows = panels.len().div_ceil(columns);
        let same = |rates: Vec<Option<f64>>| match rates.first() {
            Some(Some(rate)) if rates.iter().all(|r| r.is_some_and(|r| (r - rate).abs() < 1e-9)) => Some(100.0 * rate),
            _ => None,
        };
        let validation = same(runs.iter().map(|r| r.record.outcome.validation_majority_rate).collect());
        let test = same(runs.iter().map(|r| r.record.outcome.test_majority_rate).collect());
        let majority = validation.or(test);
        let mut key = Vec::new();
        let ran = |name: &str| labels.iter().any(|l| crate::records::run_record::model_of_label(l) == name);
        if ran(lra_models::BASELINE) {
            key.push((Sample::Line(BASELINE_STYLE), format!("{} (baseline), in every panel", lra_models::BASELINE)));
        }
        if ran(lra_models::CONTROL) {
            key.push((Sample::Line(CONTROL_STYLE), format!("{} (control), in every panel", lra_models::CONTROL)));
        }
        if majority.is_some() {
            let split = if validation.is_some() { "validation" } else { "test" };
            // (No "j" in a key: the bitmap backend draws it cut.)
            key.push((Sample::Level, format!("the {split} split's most common class")));
        }
        if runs.iter().any(|r| left_chance_point(r).is_some()) {
            key.push((Sample::Marker, "first validation step above chance".to_string()));
        }
        let room = |columns: usize| (WIDTH as usize / columns) as f64 - 16.0;
        let header_height = CURVES_TITLE + KEY_LINE * key_lines(&key, room(1)) as u32 + 6;
        let keys: Vec<Vec<(Sample, String)>> =
            panels.iter().map(|p| p.models.iter().map(|m| (Sample::Line(p.style(m)), m.clone())).collect()).collect();
        let lines = keys.iter().map(|k| key_lines(k, room(columns))).max().unwrap_or(0).max(1);
        let panel_head = PANEL_TITLE + KEY_LINE * lines as u32 + 4;
        CurvesLayout { panels, columns, rows, key, header_height, keys, panel_head, majority }
    }

    pub(super) fn height(&self) -> u32 {
        self.header_height + self.rows as u32 * (self.panel_head + ACCURACY_HEIGHT + LOSS_HEIGHT)
    }
}

both_backends!(Curves, |root, task: lra_tasks::Task, runs: Vec<Run>, layout: CurvesLayout| {
    let (header, grid) = root.split_vertically(layout.header_height);
    let title =
        format!("{}: validation accuracy (top) and smoothed training loss (bottom) against step, by model family", task.title());
    header.draw(&Text::new(title, (8, 6), ("sans-serif", 18).into_font().color(&BLACK))).map_err(error)?;
    draw_key(&header, &layout.key, (8, CURVES_TITLE as i32), WIDTH as f64 - 16.0)?;

    // Every panel on the same scales, so that panels compare.
    let max_step = runs.iter().flat_map(|r| r.metrics.iter().map(|m| m.step)).max().unwrap_or(1).max(1) as u32;
    let loss_curves: Vec<Vec<(u32, f64)>> = runs
        .iter()
        .map(|r| {
            let raw: Vec<(u32, f64)> =
                r.metrics.iter().filter(|m| plottable_loss(m.loss)).map(|m| (m.step as u32, m.loss)).collect();
            smoothed(&raw, 0.8)
        })
        .collect();
    let losses: Vec<f64> = loss_curves.iter().flatten().map(|(_, l)| *l).collect();
    let (loss_lo, loss_hi) = match losses.is_empty() {
        true => (0.0, 1.0),
        false => {
            fitted(losses.iter().cloned().fold(f64::MAX, f64::min), losses.iter().cloned().fold(f64::MIN, f64::max), 0.05, 1e-3)
        }
    };
    let accuracy_curves: Vec<Vec<(u32, f64)>> = runs
        .iter()
        .map(|r| {
            r.metrics
                .iter()
                .filter_map(|m| m.val_acc.filter(|a| (0.0..=1.0).contains(a)).map(|a| (m.step as u32, 100.0 * a)))
                .collect()
        })
        .collect();
    let accuracies: Vec<f64> = accuracy_curves.iter().flatten().map(|(_, a)| *a).chain(layout.majority).collect();
    let (acc_lo, acc_hi) = match accuracies.is_empty() {
        true => (0.0, 100.0),
        false => fitted(
            accuracies.iter().cloned().fold(f64::MAX, f64::min),
            accuracies.iter().cloned().fold(f64::MIN, f64::max),
            0.08,
            2.0,
        ),
    };

    let cells = grid.split_evenly((layout.rows, layout.columns));
    let room = (WIDTH as usize / layout.columns) as f64 - 16.0;
    for ((panel, key), cell) in layout.panels.iter().zip(&layout.keys).zip(&cells) {
        let (head, charts) = cell.split_vertically(layout.panel_head);
        let (accuracy_area, loss_area) = charts.split_vertically(ACCURACY_HEIGHT);
        head.draw(&Text::new(panel.title.clone(), (8, 2), ("sans-serif", 16).into_font().color(&BLACK))).map_err(error)?;
        draw_key(&head, key, (8, PANEL_TITLE as i32), room)?;

        let mut accuracy_chart = ChartBuilder::on(&accuracy_area)
            .margin_left(4)
            .margin_right(14)
            .margin_top(4)
            .x_label_area_size(22)
            .y_label_area_size(52)
            .build_cartesian_2d(0..max_step, acc_lo.max(0.0)..acc_hi.min(100.0))
            .map_err(error)?;
        accuracy_chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(6)
            .light_line_style(WHITE)
            .bold_line_style(BLACK.mix(0.1))
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 13))
            .y_desc("val. accuracy (%)")
            .draw()
            .map_err(error)?;
        let mut loss_chart = ChartBuilder::on(&loss_area)
            .margin_left(4)
            .margin_right(14)
            .margin_top(6)
            .x_label_area_size(38)
            .y_label_area_size(52)
            .build_cartesian_2d(0..max_step, loss_lo.max(0.0)..loss_hi)
            .map_err(error)?;
        loss_chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(4)
            .light_line_style(WHITE)
            .bold_line_style(BLACK.mix(0.1))
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 13))
            .x_desc("step")
            .y_desc("loss")
            .draw()
            .map_err(error)?;
        if let Some(level) = layout.majority {
            line(&mut accuracy_chart, vec![(0, level), (max_step, level)], Style { colour: BLACK, dashed: false }, 1, 0.4)?;
        }
        // The control under the baseline, the baseline under the family's own models.
        let rank = |run: &Run| match crate::records::run_record::model_of_label(&run.record.model) {
            lra_models::CONTROL => 0,
            lra_models::BASELINE => 1,
            _ => 2,
        };
        let mut shown: Vec<usize> = (0..runs.len())
            .filter(|&i| {
                let label = runs[i].record.model_label();
                rank(&runs[i]) < 2 || panel.models.contains(&label)
            })
            .collect();
        shown.sort_by_key(|&i| rank(&runs[i]));
        for i in shown {
            let style = panel.style(&runs[i].record.model_label());
            line(&mut loss_chart, loss_curves[i].clone(), style, 2, 1.0)?;
            let accuracy = &accuracy_curves[i];
            line(&mut accuracy_chart, accuracy.clone(), style, 2, 1.0)?;
            accuracy_chart.draw_series(accuracy.iter().map(|p| Circle::new(*p, 3, style.colour.filled()))).map_err(error)?;
        }
        // The marks over every line.
        for run in runs.iter() {
            let label = run.record.model_label();
            if let Some(point) = left_chance_point(run).filter(|_| rank(run) < 2 || panel.models.contains(&label)) {
                let at = accuracy_chart.backend_coord(&point);
                left_chance_mark(root, at, panel.style(&label).colour)?;
            }
        }
    }
    Ok(())
});

/// Validation accuracy and smoothed training loss against step for the runs of one task,
/// in small multiples: one panel per family of models, with the baseline and the control
/// in each.
pub fn curves(task: lra_tasks::Task, runs: &[&Run]) -> anyhow::Result<Figure> {
    let owned: Vec<Run> = runs.iter().map(|r| (*r).clone()).collect();
    let layout = CurvesLayout::new(&owned);
    render(&Curves { task: &task, runs: &owned, layout: &layout }, (WIDTH, layout.height()))
}
