//! LRA's Figure 3 for this harness: each model's accuracy against its speed, bubble area
//! its peak memory, labels placed where they cover the least.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::draw::*;
use crate::records::bench_record::Scope;
use crate::report::load::{Inputs, Run};
use crate::report::table1::{Table1, is_control};

/// Figure 3's height: room for the crowd of labels.
pub(super) const FIGURE3_HEIGHT: u32 = 620;

/// A point of LRA's Figure 3.
#[derive(Debug, Clone)]
pub(super) struct Bubble {
    pub(super) model: String,
    pub(super) speed: f64,
    pub(super) accuracy: f64,
    pub(super) memory: f64,
}

impl Bubble {
    /// Whether this is the control model, drawn apart from the contenders.
    pub(super) fn is_control(&self) -> bool {
        is_control(&self.model)
    }

    /// The bubble's label in the plot.
    pub(super) fn label(&self) -> String {
        if self.is_control() { format!("{} (control)", self.model) } else { self.model.clone() }
    }
}

/// Font size of Figure 3's labels and ticks.
pub(super) const LABEL_FONT: u32 = 14;
pub(super) const TICK_FONT: u32 = 13;

/// A bubble's radius in pixels for `memory` of the largest `max_memory`: its area in
/// proportion to the memory, over a floor that keeps the smallest visible.
pub(super) fn bubble_radius(memory: f64, max_memory: f64) -> f64 {
    5.0 + 30.0 * (memory / max_memory).max(0.0).sqrt()
}

/// A label's box around its text: the text's size and this much room on each side.
pub(super) const LABEL_PAD: f64 = 2.0;

/// Ticks of a logarithmic speed axis over `[lo, hi]`: 1, 2 and 5 times the powers of ten,
/// finer multiples where those give fewer than four, and in a range narrower than that, the
/// multiples of the longest round step that gives four or more.
pub(super) fn speed_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (lo.log10().floor() as i32)..=(hi.log10().ceil() as i32);
    for mantissas in [&[1.0, 2.0, 5.0][..], &[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0]] {
        let ticks: Vec<f64> = decades
            .clone()
            .flat_map(|d| mantissas.iter().map(move |m| m * 10f64.powi(d)))
            .filter(|t| (lo..=hi).contains(t))
            .collect();
        if ticks.len() >= 4 {
            return ticks;
        }
    }
    let power = 10f64.powf((hi - lo).log10().floor());
    let multiples = |step: f64| -> Vec<f64> {
        let first = (lo / step).ceil() as i64;
        (first..).map(|i| i as f64 * step).take_while(|t| *t <= hi).collect()
    };
    [5.0, 2.0, 1.0, 0.5, 0.2, 0.1]
        .into_iter()
        .map(|m| multiples(m * power))
        .find(|ticks| ticks.len() >= 4)
        .unwrap_or_else(|| multiples(0.1 * power))
}

/// A tick value as a reader writes it: `0.3`, not `0.30000000000000004`.
pub(super) fn tick_label(value: f64) -> String {
    format!("{}", (value * 1e6).round() / 1e6)
}

both_backends!(Figure3, |root, bubbles: Vec<Bubble>, x_label: String| {
    // Speeds span an order of magnitude and more (the Perceiver at 4 steps/s, the crowd
    // under 1): the x axis is log10 of the speed, ticked in steps per second.
    let log_speeds: Vec<f64> = bubbles.iter().map(|b| b.speed.log10()).collect();
    let (lo, hi) = log_speeds.iter().fold((f64::MAX, f64::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    let pad = ((hi - lo) * 0.07).max(0.05);
    let (x_lo, x_hi) = (lo - pad, hi + pad);
    let (min_acc, max_acc) = bubbles.iter().fold((f64::MAX, f64::MIN), |(lo, hi), b| (lo.min(b.accuracy), hi.max(b.accuracy)));
    let y_pad = ((max_acc - min_acc) * 0.15).max(2.0);
    let (y_lo, y_hi) = (min_acc - y_pad, max_acc + y_pad);
    let max_memory = bubbles.iter().map(|b| b.memory).fold(0.0, f64::max).max(1.0);
    let mut chart = ChartBuilder::on(root)
        .caption("Accuracy against speed (bubble area: peak memory)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.15))
        .label_style(("sans-serif", TICK_FONT))
        .x_desc(x_label.as_str())
        .y_desc("average test accuracy (%)")
        .draw()
        .map_err(error)?;
    let (x_pixels, y_pixels) = chart.plotting_area().get_pixel_range();
    for tick in speed_ticks(10f64.powf(x_lo), 10f64.powf(x_hi)) {
        let (x, _) = chart.backend_coord(&(tick.log10(), y_lo));
        root.draw(&PathElement::new(vec![(x, y_pixels.start), (x, y_pixels.end)], BLACK.mix(0.15))).map_err(error)?;
        let text = tick_label(tick);
        let (width, _) = text_size(&text, TICK_FONT);
        let font = ("sans-serif", TICK_FONT).into_font().color(&BLACK);
        root.draw(&Text::new(text, (x - width as i32 / 2, y_pixels.end + 6), font)).map_err(error)?;
    }

    // The largest bubbles first, so that every smaller one stays in sight on top; a dot at
    // each exact point, which no label covers.
    let mut by_size: Vec<&Bubble> = bubbles.iter().collect();
    by_size.sort_by(|a, b| b.memory.total_cmp(&a.memory));
    let area = chart.plotting_area();
    for b in &by_size {
        let centre = (b.speed.log10(), b.accuracy);
        let radius = bubble_radius(b.memory, max_memory).round() as i32;
        if b.is_control() {
            area.draw(&Circle::new(centre, radius, CONTROL_GREY.stroke_width(2))).map_err(error)?;
        } else {
            let colour = style_of(&b.model).colour;
            area.draw(&Circle::new(centre, radius, colour.mix(0.35).filled())).map_err(error)?;
            area.draw(&Circle::new(centre, radius, colour.mix(0.8).stroke_width(1))).map_err(error)?;
        }
    }
    for b in &by_size {
        let colour = if b.is_control() { CONTROL_GREY } else { style_of(&b.model).colour };
        area.draw(&Circle::new((b.speed.log10(), b.accuracy), DOT_RADIUS as i32, colour.filled())).map_err(error)?;
    }

    let labels: Vec<String> = bubbles.iter().map(Bubble::label).collect();
    let marks: Vec<Mark> = bubbles
        .iter()
        .zip(&labels)
        .map(|(b, label)| {
            let (x, y) = chart.backend_coord(&(b.speed.log10(), b.accuracy));
            let (width, height) = text_size(label, LABEL_FONT);
            Mark {
                centre: (x as f64, y as f64),
                radius: bubble_radius(b.memory, max_memory),
                label: (width + 2.0 * LABEL_PAD, height + 2.0 * LABEL_PAD),
            }
        })
        .collect();
    let bounds = Rect {
        left: x_pixels.start as f64,
        top: y_pixels.start as f64,
        width: (x_pixels.end - x_pixels.start) as f64,
        height: (y_pixels.end - y_pixels.start) as f64,
    };
    // A label with no free place left (never with a plot's worth of room) sits to the
    // right of its bubble.
    let places: Vec<Rect> = place_labels(&marks, bounds)
        .into_iter()
        .zip(&marks)
        .map(|(place, m)| {
            place.unwrap_or(Rect {
                left: m.centre.0 + m.radius,
                top: m.centre.1 - m.label.1 / 2.0,
                width: m.label.0,
                height: m.label.1,
            })
        })
        .collect();
    for (place, m) in places.iter().zip(&marks) {
        if let Some((rim, end)) = leader(m, place) {
            let path = vec![(rim.0.round() as i32, rim.1.round() as i32), (end.0.round() as i32, end.1.round() as i32)];
            root.draw(&PathElement::new(path, BLACK.mix(0.45).stroke_width(1))).map_err(error)?;
        }
    }
    for ((place, label), b) in places.iter().zip(labels).zip(bubbles.iter()) {
        let corners = [
            (place.left.round() as i32, place.top.round() as i32),
            (place.right().round() as i32, place.bottom().round() as i32),
        ];
        root.draw(&Rectangle::new(corners, WHITE.mix(0.7).filled())).map_err(error)?;
        let colour = if b.is_control() { RGBColor(90, 90, 90) } else { BLACK };
        let font = ("sans-serif", LABEL_FONT).into_font().color(&colour);
        let at = ((place.left + LABEL_PAD).round() as i32, (place.top + LABEL_PAD).round() as i32);
        root.draw(&Text::new(label, at, font)).map_err(error)?;
    }
    Ok(())
});

/// A rectangle in pixels (y grows downwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rect {
    pub(super) left: f64,
    pub(super) top: f64,
    pub(super) width: f64,
    pub(super) height: f64,
}

impl Rect {
    pub(super) fn right(&self) -> f64 {
        self.left + self.width
    }

    pub(super) fn bottom(&self) -> f64 {
        self.top + self.height
    }

    pub(super) fn intersects(&self, other: &Rect) -> bool {
        self.left < other.right() && other.left < self.right() && self.top < other.bottom() && other.top < self.bottom()
    }

    pub(super) fn contains(&self, other: &Rect) -> bool {
        self.left <= other.left && other.right() <= self.right() && self.top <= other.top && other.bottom() <= self.bottom()
    }

    /// This rectangle grown by `by` on every side.
    pub(super) fn grown(&self, by: f64) -> Rect {
        Rect { left: self.left - by, top: self.top - by, width: self.width + 2.0 * by, height: self.height + 2.0 * by }
    }

    /// The point of the rectangle nearest to `point`.
    pub(super) fn nearest(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (x.clamp(self.left, self.right()), y.clamp(self.top, self.bottom()))
    }

    /// How far `point` is from the rectangle (0 inside it).
    pub(super) fn distance(&self, point: (f64, f64)) -> f64 {
        let (x, y) = self.nearest(point);
        (x - point.0).hypot(y - point.1)
    }
}

/// A bubble as its label sees it, in pixels: its centre, its radius and its label's size.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    pub(super) centre: (f64, f64),
    pub(super) radius: f64,
    pub(super) label: (f64, f64),
}

/// The radius of the dot at each bubble's exact point; no label covers one.
pub(super) const DOT_RADIUS: f64 = 2.0;

/// The room kept between two labels.
pub(super) const LABEL_GAP: f64 = 2.0;

/// How much a label lying over another model's bubble costs, in pixels of distance from its
/// own: it may, where that keeps it much nearer.
pub(super) const COVERED_BUBBLE_COST: f64 = 30.0;

/// A label farther than this from its bubble's rim is tied to it by a leader line.
pub(super) const LEADER_FROM: f64 = 8.0;

/// Where each mark's label goes, inside `bounds`: no two labels intersect (nor come within
/// [`LABEL_GAP`] of each other), no label covers its own bubble or any bubble's centre, and
/// each is as near its bubble as that allows, preferring places off the other bubbles.
/// Greedy, the most crowded bubbles first: each label takes the cheapest free place on
/// rings around its bubble, else the cheapest free place anywhere in `bounds`; `None` only
/// where no room is left at all (labels that together fill the plot).
pub(super) fn place_labels(marks: &[Mark], bounds: Rect) -> Vec<Option<Rect>> {
    let neighbours = |i: usize| {
        let (x, y) = marks[i].centre;
        marks.iter().filter(|m| (m.centre.0 - x).hypot(m.centre.1 - y) < 100.0).count()
    };
    let mut order: Vec<usize> = (0..marks.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(neighbours(i)));
    let mut places: Vec<Option<Rect>> = vec![None; marks.len()];
    for i in order {
        let own = marks[i];
        let taken: Vec<Rect> = places.iter().flatten().map(|r| r.grown(LABEL_GAP)).collect();
        let free = |r: &Rect| {
            bounds.contains(r)
                && r.distance(own.centre) >= own.radius
                && !taken.iter().any(|t| t.intersects(r))
                && marks.iter().all(|m| r.distance(m.centre) > DOT_RADIUS + 1.0)
        };
        let cost = |r: &Rect| {
            let covered = marks.iter().enumerate().filter(|(j, m)| *j != i && r.distance(m.centre) < m.radius).count();
            r.distance(own.centre) - own.radius + COVERED_BUBBLE_COST * covered as f64
        };
        let cheapest = |candidates: &mut dyn Iterator<Item = Rect>| {
            candidates.filter(|r| free(r)).map(|r| (cost(&r), r)).min_by(|a, b| a.0.total_cmp(&b.0)).map(|(_, r)| r)
        };
        places[i] = cheapest(&mut ring_places(&own)).or_else(|| cheapest(&mut grid_places(&own, bounds)));
    }
    places
}

/// Places for `mark`'s label on rings around its bubble, from the rim outwards, in 16
/// directions starting to the right: the label's side or corner nearest the bubble at the
/// ring.
pub(super) fn ring_places(mark: &Mark) -> impl Iterator<Item = Rect> + '_ {
    const GAPS: [f64; 13] = [2.0, 6.0, 12.0, 20.0, 30.0, 44.0, 60.0, 80.0, 105.0, 135.0, 170.0, 210.0, 260.0];
    GAPS.into_iter().flat_map(move |gap| {
        (0..16).map(move |k| {
            let angle = k as f64 * std::f64::consts::PI / 8.0;
            let (dx, dy) = (angle.cos(), angle.sin());
            let (x, y) = (mark.centre.0 + (mark.radius + gap) * dx, mark.centre.1 + (mark.radius + gap) * dy);
            let (width, height) = mark.label;
            let left = if dx > 0.38 {
                x
            } else if dx < -0.38 {
                x - width
            } else {
                x - width / 2.0
            };
            let top = if dy > 0.38 {
                y
            } else if dy < -0.38 {
                y - height
            } else {
                y - height / 2.0
            };
            Rect { left, top, width, height }
        })
    })
}

/// Every place for `mark`'s label in `bounds`, on a grid of 4 pixels: the last resort.
pub(super) fn grid_places(mark: &Mark, bounds: Rect) -> impl Iterator<Item = Rect> + '_ {
    let (width, height) = mark.label;
    let columns = ((bounds.width - width) / 4.0).floor().max(-1.0) as i64 + 1;
    let rows = ((bounds.height - height) / 4.0).floor().max(-1.0) as i64 + 1;
    (0..rows).flat_map(move |row| {
        (0..columns).map(move |column| Rect {
            left: bounds.left + 4.0 * column as f64,
            top: bounds.top + 4.0 * row as f64,
            width,
            height,
        })
    })
}

/// The leader line from a bubble's rim to its label's nearest point, where the label is
/// not beside the bubble.
pub(super) fn leader(mark: &Mark, place: &Rect) -> Option<((f64, f64), (f64, f64))> {
    let end = place.nearest(mark.centre);
    let (dx, dy) = (end.0 - mark.centre.0, end.1 - mark.centre.1);
    let distance = dx.hypot(dy);
    if distance <= mark.radius + LEADER_FROM {
        return None;
    }
    let rim = (mark.centre.0 + dx * mark.radius / distance, mark.centre.1 + dy * mark.radius / distance);
    Some((rim, end))
}

/// LRA's Figure 3 from the runs of the preset with the most finished runs and the
/// newest training-step benchmark: accuracy (y) against steps per second (x), bubble
/// area proportional to peak memory. Accuracy is Table 1's average: every model over the
/// same tasks, cells at chance included.
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
            x_label =
                format!("training steps per second at length {length} ({}, batch {}; log scale)", bench.device, bench.batch);
            caption = format!(
                "LRA's Figure 3 for this harness: average test accuracy (preset {}, Table 1's Avg: the same tasks for every model, cells at chance included) against training speed at length {length} (benchmark {}); bubble area is proportional to peak memory",
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
            x_label = "training steps per second (mean over the runs, no benchmark recorded; log scale)".into();
            caption = format!(
                "Average test accuracy (preset {}, Table 1's Avg: the same tasks for every model, cells at chance included) against the runs' own training speed (no `lra bench` record yet); bubble area is proportional to peak memory",
                table.preset
            );
        }
    }
    // A speed's logarithm places its bubble: a run that measured none has no place. (The
    // records are checked when read; this guard keeps any value that would stretch an axis
    // to infinity, and the plotting library with it, out of the figure all the same.)
    bubbles.retain(|b| {
        b.speed > 0.0 && b.speed.is_finite() && (0.0..=100.0).contains(&b.accuracy) && b.memory.is_finite() && b.memory >= 0.0
    });
    if bubbles.is_empty() {
        return Ok(None);
    }
    let mut caption = caption;
    if bubbles.iter().any(Bubble::is_control) {
        caption.push_str("; the control model (hollow, grey) shows what the tasks give away without relating positions");
    }
    let figure = render(&Figure3 { bubbles: &bubbles, x_label: &x_label }, (WIDTH, FIGURE3_HEIGHT))?;
    Ok(Some((figure, caption)))
}
