//! The report's plots, drawn once per backend: SVG (for reading) and PNG (for embedding).

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::{Inputs, Run, Table1};
use crate::bench::{BenchRecord, Scope};

/// One plot in both formats.
pub struct Figure {
    pub svg: String,
    pub png: Vec<u8>,
}

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 520;

fn error(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e:?}")
}

/// A plot that can draw itself on any backend.
trait Draw {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static;
}

/// Draws `plot` into an SVG string and a PNG image of the same size.
fn render(plot: &impl Draw) -> anyhow::Result<Figure> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(error)?;
        plot.draw(&root)?;
        root.present().map_err(error)?;
    }
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(error)?;
        plot.draw(&root)?;
        root.present().map_err(error)?;
    }
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.write_header()?.write_image_data(&rgb)?;
    }
    Ok(Figure { svg, png })
}

/// A drawing routine usable with either backend.
macro_rules! both_backends {
    ($name:ident, |$root:ident $(, $arg:ident : $ty:ty)*| $body:block) => {
        struct $name<'a> { $($arg: &'a $ty),* }
        impl Draw for $name<'_> {
            fn draw<DB: DrawingBackend>(&self, $root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
            where
                DB::ErrorType: 'static,
            {
                let $name { $($arg),* } = self;
                $( let $arg: &$ty = $arg; )*
                $body
            }
        }
    };
}

/// A point of LRA's Figure 3.
#[derive(Debug, Clone)]
struct Bubble {
    model: String,
    speed: f64,
    accuracy: f64,
    memory: f64,
}

both_backends!(Figure3, |root, bubbles: Vec<Bubble>, x_label: String| {
    let max_speed = bubbles.iter().map(|b| b.speed).fold(0.0, f64::max) * 1.15;
    let (min_acc, max_acc) = bubbles.iter().fold((f64::MAX, f64::MIN), |(lo, hi), b| (lo.min(b.accuracy), hi.max(b.accuracy)));
    let pad = ((max_acc - min_acc) * 0.2).max(2.0);
    let max_memory = bubbles.iter().map(|b| b.memory).fold(0.0, f64::max).max(1.0);
    let mut chart = ChartBuilder::on(root)
        .caption("Accuracy against speed (bubble area: peak memory)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_speed.max(1e-6), (min_acc - pad)..(max_acc + pad))
        .map_err(error)?;
    chart.configure_mesh().x_desc(x_label.as_str()).y_desc("average test accuracy (%)").draw().map_err(error)?;
    for b in bubbles.iter() {
        let color = style_of(&b.model).colour;
        let radius = (6.0 + 34.0 * (b.memory / max_memory).sqrt()) as i32;
        chart
            .draw_series(std::iter::once(Circle::new((b.speed, b.accuracy), radius, color.mix(0.45).filled())))
            .map_err(error)?;
        chart
            .draw_series(std::iter::once(Text::new(
                b.model.clone(),
                (b.speed, b.accuracy),
                ("sans-serif", 15).into_font().color(&BLACK),
            )))
            .map_err(error)?;
    }
    Ok(())
});

/// LRA's Figure 3 from the runs of the preset with the most finished runs and the
/// newest training-step benchmark: accuracy (y) against steps per second (x), bubble
/// area proportional to peak memory. Cells at chance do not count towards accuracy.
pub fn figure3(inputs: &Inputs, tables: &[Table1]) -> anyhow::Result<Option<(Figure, String)>> {
    let finished = |t: &Table1| t.cells.values().map(|c| c.accuracies.len()).sum::<usize>();
    let Some(table) = tables.iter().max_by_key(|t| finished(t)) else { return Ok(None) };
    let models = &table.models;
    let accuracy = |model: &str| table.average(model).map(|a| 100.0 * a);
    let bench = inputs.benches.iter().rev().find(|b| b.scope == Scope::Step);
    let reference_length = bench.and_then(|b| {
        b.measurements.iter().filter(|m| m.model == lra_models::BASELINE && m.steps_per_second.is_some()).map(|m| m.length).max()
    });
    let mut bubbles = Vec::new();
    let x_label;
    let caption;
    match (bench, reference_length) {
        (Some(bench), Some(length)) => {
            for model in models {
                let Some(acc) = accuracy(model) else { continue };
                if let Some(m) = bench.measurements.iter().find(|m| &m.label() == model && m.length == length)
                    && let (Some(speed), Some(memory)) = (m.steps_per_second, m.peak_memory_bytes)
                {
                    bubbles.push(Bubble { model: model.to_string(), speed, accuracy: acc, memory: memory as f64 });
                }
            }
            x_label = format!("training steps per second at length {length} ({}, batch {})", bench.device, bench.batch);
            caption = format!(
                "LRA's Figure 3 for this harness: average test accuracy (preset {}, cells at chance left out) against training speed at length {length} (benchmark {}); bubble area is proportional to peak memory",
                table.preset, bench.bench_id
            );
        }
        _ => {
            for model in models {
                let Some(acc) = accuracy(model) else { continue };
                let runs: Vec<&Run> = inputs
                    .runs
                    .iter()
                    .filter(|r| &r.record.model_label() == model && r.record.preset == table.preset && r.record.is_ok())
                    .collect();
                if runs.is_empty() {
                    continue;
                }
                let n = runs.len() as f64;
                let speed = runs.iter().map(|r| r.record.outcome.train_steps_per_second).sum::<f64>() / n;
                let memory = runs.iter().map(|r| r.record.outcome.peak_memory_bytes as f64).sum::<f64>() / n;
                bubbles.push(Bubble { model: model.to_string(), speed, accuracy: acc, memory });
            }
            x_label = "training steps per second (mean over the runs; no benchmark recorded)".into();
            caption = format!(
                "Average test accuracy (preset {}, cells at chance left out) against the runs' own training speed (no `lra bench` record yet); bubble area is proportional to peak memory",
                table.preset
            );
        }
    }
    if bubbles.is_empty() {
        return Ok(None);
    }
    let figure = render(&Figure3 { bubbles: &bubbles, x_label: &x_label })?;
    Ok(Some((figure, caption)))
}

/// Width of the legend column beside a plot: room for a line sample and a label such as
/// `synthesizer (as LRA ran it)`.
const LEGEND_WIDTH: u32 = 240;

/// Where the legend's first row is.
const LEGEND_TOP: i32 = 40;

/// The legend's row spacing and font size for `entries` rows: 22 and 15 while they fit the
/// plot's height, closer and smaller beyond (the 25 models, both forms of ten of them),
/// never below a legible 10.
fn legend_rows(entries: usize) -> (u32, u32) {
    let room = HEIGHT - LEGEND_TOP as u32 - 10;
    let spacing = (room / entries.max(1) as u32).clamp(11, 22);
    (spacing, (spacing - 3).clamp(10, 15))
}

/// Colours that stay apart on white (no pale yellow), in the registry's order; after
/// them the same colours again with dashed lines.
const COLOURS: [RGBColor; 13] = [
    RGBColor(31, 119, 180),
    RGBColor(230, 97, 1),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(80, 80, 80),
    RGBColor(128, 128, 0),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 128),
    RGBColor(0, 128, 96),
    RGBColor(190, 0, 120),
];

/// How one model is drawn in every plot.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Style {
    colour: RGBColor,
    dashed: bool,
}

/// The style of `model`, fixed by its place in the registry so that it is the same in
/// every plot.
fn style_of(label: &str) -> Style {
    let model = crate::record::model_of_label(label);
    let rank = lra_models::MODELS.iter().position(|m| m.name == model).unwrap_or(lra_models::MODELS.len());
    // A model's paper form beside its LRA form: the same colour, the other line style.
    let paper = label.ends_with(&format!("({})", lra_models::Variant::Paper.label()));
    Style { colour: COLOURS[rank % COLOURS.len()], dashed: ((rank / COLOURS.len()) % 2 == 1) != paper }
}

/// Draws `points` as a line in `style`, faded to `opacity`.
fn line<DB, X, Y>(
    chart: &mut ChartContext<DB, Cartesian2d<X, Y>>,
    points: Vec<(f64, f64)>,
    style: Style,
    width: u32,
    opacity: f64,
) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let shape = style.colour.mix(opacity).stroke_width(width);
    if style.dashed {
        chart.draw_series(DashedLineSeries::new(points, 7, 4, shape)).map_err(error)?;
    } else {
        chart.draw_series(LineSeries::new(points, shape)).map_err(error)?;
    }
    Ok(())
}

/// A legend in its own column beside the plots: a line sample and the name per entry.
fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[(String, Style)]) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let (spacing, font) = legend_rows(entries.len());
    for (i, (name, style)) in entries.iter().enumerate() {
        let y = LEGEND_TOP + (spacing * i as u32) as i32;
        let shape = style.colour.stroke_width(3);
        let sample = vec![(8, y), (40, y)];
        if style.dashed {
            area.draw(&DashedPathElement::new(sample, 7, 4, shape)).map_err(error)?;
        } else {
            area.draw(&PathElement::new(sample, shape)).map_err(error)?;
        }
        let label = Text::new(name.clone(), (48, y - font as i32 / 2), ("sans-serif", font).into_font().color(&BLACK));
        area.draw(&label).map_err(error)?;
    }
    Ok(())
}

/// `[lo, hi]` widened by `pad` of its span on each side (a span of at least `least`).
fn fitted(lo: f64, hi: f64, pad: f64, least: f64) -> (f64, f64) {
    let span = (hi - lo).max(least);
    let middle = (hi + lo) / 2.0;
    (middle - span * (0.5 + pad), middle + span * (0.5 + pad))
}

/// An exponential moving average of `values` (weight `keep` on the past), started at the
/// first value: the trend of a noisy training loss.
fn smoothed(values: &[(f64, f64)], keep: f64) -> Vec<(f64, f64)> {
    let mut average = None;
    values
        .iter()
        .map(|&(x, y)| {
            let next = average.map_or(y, |a: f64| keep * a + (1.0 - keep) * y);
            average = Some(next);
            (x, next)
        })
        .collect()
}

both_backends!(Scaling, |root, bench: BenchRecord| {
    let (plots, legend_area) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let (left, right) = plots.split_horizontally((WIDTH - LEGEND_WIDTH) / 2);
    let mut models: Vec<String> = Vec::new();
    for m in &bench.measurements {
        if !models.contains(&m.label()) {
            models.push(m.label());
        }
    }
    let min_len = *bench.lengths.iter().min().unwrap_or(&1) as f64;
    let max_len = *bench.lengths.iter().max().unwrap_or(&2) as f64;
    for (area, title, value) in [
        (
            &left,
            "seconds per step",
            (|m: &crate::bench::Measurement| m.step_seconds) as fn(&crate::bench::Measurement) -> Option<f64>,
        ),
        (&right, "peak memory (MiB)", |m: &crate::bench::Measurement| {
            m.peak_memory_bytes.map(|b| b as f64 / (1u64 << 20) as f64)
        }),
    ] {
        let values: Vec<f64> = bench.measurements.iter().filter_map(value).filter(|v| *v > 0.0).collect();
        if values.is_empty() {
            continue;
        }
        let lo = values.iter().cloned().fold(f64::MAX, f64::min) / 1.25;
        let hi = values.iter().cloned().fold(0.0, f64::max) * 1.25;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(65)
            .build_cartesian_2d((min_len / 1.1..max_len * 1.1).log_scale(), (lo..hi).log_scale())
            .map_err(error)?;
        chart.configure_mesh().x_desc("sequence length").y_desc(title).draw().map_err(error)?;
        for model in &models {
            let points: Vec<(f64, f64)> = bench
                .measurements
                .iter()
                .filter(|m| m.label() == *model)
                .filter_map(|m| value(m).filter(|v| *v > 0.0).map(|v| (m.length as f64, v)))
                .collect();
            if points.is_empty() {
                continue;
            }
            let style = style_of(model);
            line(&mut chart, points.clone(), style, 2, 1.0)?;
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, style.colour.filled()))).map_err(error)?;
        }
    }
    let entries: Vec<(String, Style)> = models.iter().map(|m| (m.to_string(), style_of(m))).collect();
    legend(&legend_area, &entries)
});

/// Step time and peak memory against length, log-log, one line per model.
pub fn scaling(bench: &BenchRecord) -> anyhow::Result<Figure> {
    render(&Scaling { bench })
}

both_backends!(Curves, |root, task: lra_tasks::Task, runs: Vec<Run>| {
    let (plots, legend_area) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let (left, right) = plots.split_horizontally((WIDTH - LEGEND_WIDTH) / 2);
    let title = task.title();
    let max_step = runs.iter().flat_map(|r| r.metrics.iter().map(|m| m.step)).max().unwrap_or(1) as f64;
    let losses: Vec<f64> = runs.iter().flat_map(|r| r.metrics.iter().map(|m| m.loss)).filter(|l| l.is_finite()).collect();
    let (loss_lo, loss_hi) = fitted(
        losses.iter().cloned().fold(f64::MAX, f64::min).min(f64::MAX / 4.0),
        losses.iter().cloned().fold(f64::MIN, f64::max).max(f64::MIN / 4.0),
        0.05,
        1e-3,
    );
    let accuracies: Vec<f64> = runs.iter().flat_map(|r| r.metrics.iter().filter_map(|m| m.val_acc.map(|a| 100.0 * a))).collect();
    let (acc_lo, acc_hi) = match accuracies.is_empty() {
        true => (0.0, 100.0),
        false => fitted(
            accuracies.iter().cloned().fold(f64::MAX, f64::min),
            accuracies.iter().cloned().fold(f64::MIN, f64::max),
            0.08,
            2.0,
        ),
    };
    let mut loss_chart = ChartBuilder::on(&left)
        .caption(format!("{title}: training loss"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_step, loss_lo.max(0.0)..loss_hi)
        .map_err(error)?;
    loss_chart.configure_mesh().x_desc("step").y_desc("loss (faint: raw; line: smoothed)").draw().map_err(error)?;
    let mut acc_chart = ChartBuilder::on(&right)
        .caption(format!("{title}: validation accuracy"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_step, acc_lo.max(0.0)..acc_hi.min(100.0))
        .map_err(error)?;
    acc_chart.configure_mesh().x_desc("step").y_desc("accuracy (%)").draw().map_err(error)?;
    let mut entries: Vec<(String, Style)> = Vec::new();
    for run in runs.iter() {
        let label = run.record.model_label();
        let style = style_of(&label);
        let loss: Vec<(f64, f64)> = run.metrics.iter().filter(|m| m.loss.is_finite()).map(|m| (m.step as f64, m.loss)).collect();
        line(&mut loss_chart, loss.clone(), style, 1, 0.22)?;
        line(&mut loss_chart, smoothed(&loss, 0.8), style, 2, 1.0)?;
        let acc: Vec<(f64, f64)> = run.metrics.iter().filter_map(|m| m.val_acc.map(|a| (m.step as f64, 100.0 * a))).collect();
        line(&mut acc_chart, acc.clone(), style, 2, 1.0)?;
        acc_chart.draw_series(acc.iter().map(|p| Circle::new(*p, 3, style.colour.filled()))).map_err(error)?;
        if !entries.iter().any(|(name, _)| *name == label) {
            entries.push((label, style));
        }
    }
    legend(&legend_area, &entries)
});

/// Loss and validation accuracy against step for the runs of one task.
pub fn curves(task: lra_tasks::Task, runs: &[&Run]) -> anyhow::Result<Figure> {
    let owned: Vec<Run> = runs.iter().map(|r| (*r).clone()).collect();
    render(&Curves { task: &task, runs: &owned })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_model_has_a_style_of_its_own() {
        let styles: Vec<Style> = lra_models::MODELS.iter().map(|m| style_of(m.name)).collect();
        for (i, a) in styles.iter().enumerate() {
            for b in &styles[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    /// Every model in both its forms fits the legend's column, at the largest font that
    /// lets it.
    #[test]
    fn the_legend_fits_every_model_in_every_form() {
        let rows = lra_models::MODELS.len() + lra_models::MODELS.iter().filter(|m| m.mechanism.has_variants()).count();
        let (spacing, font) = legend_rows(rows);
        assert!(LEGEND_TOP as u32 + spacing * (rows as u32 - 1) + font <= HEIGHT, "{rows} rows of {spacing}");
        assert_eq!(legend_rows(16), (22, 15), "a few entries keep the full size");
    }

    #[test]
    fn smoothing_starts_at_the_first_value_and_follows_the_trend() {
        let points = [(1.0, 2.0), (2.0, 0.0), (3.0, 0.0)];
        assert_eq!(smoothed(&points, 0.5), vec![(1.0, 2.0), (2.0, 1.0), (3.0, 0.5)]);
        assert_eq!(fitted(0.0, 10.0, 0.1, 1.0), (-1.0, 11.0));
    }
}
