//! The benchmark's scaling plot: time and peak memory against sequence length, log-log.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::draw::*;
use crate::records::bench_record::BenchRecord;

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
            (|m: &crate::records::bench_record::Measurement| m.step_seconds)
                as fn(&crate::records::bench_record::Measurement) -> Option<f64>,
        ),
        (&right, "peak memory (MiB)", |m: &crate::records::bench_record::Measurement| {
            m.peak_memory_bytes.map(|b| b as f64 / (1u64 << 20) as f64)
        }),
    ] {
        let values: Vec<f64> = bench.measurements.iter().filter_map(value).filter(|v| plottable_on_log(*v)).collect();
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
                .filter_map(|m| value(m).filter(|v| plottable_on_log(*v)).map(|v| (m.length as f64, v)))
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
    render(&Scaling { bench }, (WIDTH, HEIGHT))
}
