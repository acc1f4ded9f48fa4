//! The report's plots, drawn once per backend: SVG (for reading) and PNG (for embedding).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Inputs, Run, TASK_COLUMNS, table1};
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
    for (i, b) in bubbles.iter().enumerate() {
        let color = Palette99::pick(i);
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

/// LRA's Figure 3 from the runs and the newest training-step benchmark: accuracy (y)
/// against steps per second (x), bubble area proportional to peak memory.
pub fn figure3(inputs: &Inputs) -> anyhow::Result<Option<(Figure, String)>> {
    let (models, tasks, cells) = table1(&inputs.runs);
    let accuracy = |model: &str| -> Option<f64> {
        let means: Vec<f64> = tasks
            .iter()
            .filter(|t| **t != "pathx")
            .filter_map(|t| cells.get(&(model.to_string(), t.to_string())).and_then(|c| c.mean()))
            .collect();
        (!means.is_empty()).then(|| 100.0 * means.iter().sum::<f64>() / means.len() as f64)
    };
    let bench = inputs.benches.iter().rev().find(|b| b.scope == Scope::Step);
    let reference_length = bench.and_then(|b| {
        b.measurements.iter().filter(|m| m.model == "transformer" && m.steps_per_second.is_some()).map(|m| m.length).max()
    });
    let mut bubbles = Vec::new();
    let x_label;
    let caption;
    match (bench, reference_length) {
        (Some(bench), Some(length)) => {
            for model in &models {
                let Some(acc) = accuracy(model) else { continue };
                if let Some(m) = bench.measurements.iter().find(|m| &m.model == model && m.length == length)
                    && let (Some(speed), Some(memory)) = (m.steps_per_second, m.peak_memory_bytes)
                {
                    bubbles.push(Bubble { model: model.clone(), speed, accuracy: acc, memory: memory as f64 });
                }
            }
            x_label = format!("training steps per second at length {length} ({}, batch {})", bench.device, bench.batch);
            caption = format!(
                "LRA's Figure 3 for this harness: average test accuracy over the tasks run against training speed at length {length} (benchmark {}); bubble area is proportional to peak memory",
                bench.bench_id
            );
        }
        _ => {
            for model in &models {
                let Some(acc) = accuracy(model) else { continue };
                let runs: Vec<&Run> = inputs.runs.iter().filter(|r| &r.record.model == model && r.record.is_ok()).collect();
                if runs.is_empty() {
                    continue;
                }
                let n = runs.len() as f64;
                let speed = runs.iter().map(|r| r.record.train_steps_per_second).sum::<f64>() / n;
                let memory = runs.iter().map(|r| r.record.peak_memory_bytes as f64).sum::<f64>() / n;
                bubbles.push(Bubble { model: model.clone(), speed, accuracy: acc, memory });
            }
            x_label = "training steps per second (mean over the runs; no benchmark recorded)".into();
            caption = "Average test accuracy against the runs' own training speed (no `lra bench` record yet); bubble area is proportional to peak memory".into();
        }
    }
    if bubbles.is_empty() {
        return Ok(None);
    }
    let figure = render(&Figure3 { bubbles: &bubbles, x_label: &x_label })?;
    Ok(Some((figure, caption)))
}

both_backends!(Scaling, |root, bench: BenchRecord| {
    let (left, right) = root.split_horizontally(WIDTH / 2);
    let mut models: Vec<&str> = Vec::new();
    for m in &bench.measurements {
        if !models.contains(&m.model.as_str()) {
            models.push(&m.model);
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
        let lo = values.iter().cloned().fold(f64::MAX, f64::min) / 1.5;
        let hi = values.iter().cloned().fold(0.0, f64::max) * 1.5;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(65)
            .build_cartesian_2d((min_len / 1.2..max_len * 1.2).log_scale(), (lo..hi).log_scale())
            .map_err(error)?;
        chart.configure_mesh().x_desc("sequence length").y_desc(title).draw().map_err(error)?;
        for (i, model) in models.iter().enumerate() {
            let points: Vec<(f64, f64)> = bench
                .measurements
                .iter()
                .filter(|m| m.model == *model)
                .filter_map(|m| value(m).filter(|v| *v > 0.0).map(|v| (m.length as f64, v)))
                .collect();
            if points.is_empty() {
                continue;
            }
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(error)?
                .label(model.to_string())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled()))).map_err(error)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(error)?;
    }
    Ok(())
});

/// Step time and peak memory against length, log-log, one line per model.
pub fn scaling(bench: &BenchRecord) -> anyhow::Result<Figure> {
    render(&Scaling { bench })
}

both_backends!(Curves, |root, task: String, runs: Vec<Run>| {
    let (left, right) = root.split_horizontally(WIDTH / 2);
    let title = TASK_COLUMNS.iter().find(|(t, _)| t == task).map(|(_, t)| *t).unwrap_or("?");
    let max_step = runs.iter().flat_map(|r| r.metrics.iter().map(|m| m.step)).max().unwrap_or(1) as f64;
    let max_loss =
        runs.iter().flat_map(|r| r.metrics.iter().map(|m| m.loss)).filter(|l| l.is_finite()).fold(0.0, f64::max).max(1e-3) * 1.05;
    let mut loss_chart = ChartBuilder::on(&left)
        .caption(format!("{title}: training loss"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_step, 0.0..max_loss)
        .map_err(error)?;
    loss_chart.configure_mesh().x_desc("step").y_desc("loss").draw().map_err(error)?;
    let mut acc_chart = ChartBuilder::on(&right)
        .caption(format!("{title}: validation accuracy"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_step, 0.0..100.0)
        .map_err(error)?;
    acc_chart.configure_mesh().x_desc("step").y_desc("accuracy (%)").draw().map_err(error)?;
    for (i, run) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let label = format!("{} seed {}", run.record.model, run.record.seed);
        let loss: Vec<(f64, f64)> = run.metrics.iter().filter(|m| m.loss.is_finite()).map(|m| (m.step as f64, m.loss)).collect();
        loss_chart
            .draw_series(LineSeries::new(loss, color.stroke_width(2)))
            .map_err(error)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        let acc: Vec<(f64, f64)> = run.metrics.iter().filter_map(|m| m.val_acc.map(|a| (m.step as f64, 100.0 * a))).collect();
        acc_chart.draw_series(LineSeries::new(acc.clone(), color.stroke_width(2))).map_err(error)?;
        acc_chart.draw_series(acc.iter().map(|p| Circle::new(*p, 3, color.filled()))).map_err(error)?;
    }
    loss_chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(error)?;
    Ok(())
});

/// Loss and validation accuracy against step for the runs of one task.
pub fn curves(task: &str, runs: &[&Run]) -> anyhow::Result<Figure> {
    let owned: Vec<Run> = runs.iter().map(|r| (*r).clone()).collect();
    let task = task.to_string();
    render(&Curves { task: &task, runs: &owned })
}
