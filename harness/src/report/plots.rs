//! The report's plots, drawn once per backend: SVG (for reading) and PNG (for embedding).

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::load::{Inputs, Run};
use super::table1::{Table1, is_control};
use crate::records::bench_record::{BenchRecord, Scope};

/// One plot in both formats.
pub struct Figure {
    pub svg: String,
    pub png: Vec<u8>,
}

/// The plots' width, and the height of the one-row plots (the curves' grid grows with its
/// panels).
const WIDTH: u32 = 1100;
const HEIGHT: u32 = 520;

/// Figure 3's height: room for the crowd of labels.
const FIGURE3_HEIGHT: u32 = 620;

fn error(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e:?}")
}

/// A plot that can draw itself on any backend.
trait Draw {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static;
}

/// Draws `plot` into an SVG string and a PNG image, both `width` x `height` pixels.
fn render(plot: &impl Draw, (width, height): (u32, u32)) -> anyhow::Result<Figure> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(error)?;
        plot.draw(&root)?;
        root.present().map_err(error)?;
    }
    let mut rgb = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(error)?;
        plot.draw(&root)?;
        root.present().map_err(error)?;
    }
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, width, height);
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

impl Bubble {
    /// Whether this is the control model, drawn apart from the contenders.
    fn is_control(&self) -> bool {
        is_control(&self.model)
    }

    /// The bubble's label in the plot.
    fn label(&self) -> String {
        if self.is_control() { format!("{} (control)", self.model) } else { self.model.clone() }
    }
}

/// The control model's colour wherever a plot singles it out.
const CONTROL_GREY: RGBColor = RGBColor(130, 130, 130);

/// Font size of Figure 3's labels and ticks.
const LABEL_FONT: u32 = 14;
const TICK_FONT: u32 = 13;

/// A bubble's radius in pixels for `memory` of the largest `max_memory`: its area in
/// proportion to the memory, over a floor that keeps the smallest visible.
fn bubble_radius(memory: f64, max_memory: f64) -> f64 {
    5.0 + 30.0 * (memory / max_memory).max(0.0).sqrt()
}

/// The size in pixels of `text` in the sans-serif face at `size`, from the font both
/// backends draw with (0.6 em a character where no font can be read).
fn text_size(text: &str, size: u32) -> (f64, f64) {
    match ("sans-serif", size).into_font().box_size(text) {
        Ok((width, _)) => (width as f64, size as f64),
        Err(_) => (0.6 * (size as usize * text.chars().count()) as f64, size as f64),
    }
}

/// A label's box around its text: the text's size and this much room on each side.
const LABEL_PAD: f64 = 2.0;

/// Ticks of a logarithmic speed axis over `[lo, hi]`: 1, 2 and 5 times the powers of ten,
/// finer multiples where those give fewer than four, and in a range narrower than that, the
/// multiples of the longest round step that gives four or more.
fn speed_ticks(lo: f64, hi: f64) -> Vec<f64> {
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
fn tick_label(value: f64) -> String {
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
struct Rect {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

impl Rect {
    fn right(&self) -> f64 {
        self.left + self.width
    }

    fn bottom(&self) -> f64 {
        self.top + self.height
    }

    fn intersects(&self, other: &Rect) -> bool {
        self.left < other.right() && other.left < self.right() && self.top < other.bottom() && other.top < self.bottom()
    }

    fn contains(&self, other: &Rect) -> bool {
        self.left <= other.left && other.right() <= self.right() && self.top <= other.top && other.bottom() <= self.bottom()
    }

    /// This rectangle grown by `by` on every side.
    fn grown(&self, by: f64) -> Rect {
        Rect { left: self.left - by, top: self.top - by, width: self.width + 2.0 * by, height: self.height + 2.0 * by }
    }

    /// The point of the rectangle nearest to `point`.
    fn nearest(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (x.clamp(self.left, self.right()), y.clamp(self.top, self.bottom()))
    }

    /// How far `point` is from the rectangle (0 inside it).
    fn distance(&self, point: (f64, f64)) -> f64 {
        let (x, y) = self.nearest(point);
        (x - point.0).hypot(y - point.1)
    }
}

/// A bubble as its label sees it, in pixels: its centre, its radius and its label's size.
#[derive(Debug, Clone, Copy)]
struct Mark {
    centre: (f64, f64),
    radius: f64,
    label: (f64, f64),
}

/// The radius of the dot at each bubble's exact point; no label covers one.
const DOT_RADIUS: f64 = 2.0;

/// The room kept between two labels.
const LABEL_GAP: f64 = 2.0;

/// How much a label lying over another model's bubble costs, in pixels of distance from its
/// own: it may, where that keeps it much nearer.
const COVERED_BUBBLE_COST: f64 = 30.0;

/// A label farther than this from its bubble's rim is tied to it by a leader line.
const LEADER_FROM: f64 = 8.0;

/// Where each mark's label goes, inside `bounds`: no two labels intersect (nor come within
/// [`LABEL_GAP`] of each other), no label covers its own bubble or any bubble's centre, and
/// each is as near its bubble as that allows, preferring places off the other bubbles.
/// Greedy, the most crowded bubbles first: each label takes the cheapest free place on
/// rings around its bubble, else the cheapest free place anywhere in `bounds`; `None` only
/// where no room is left at all (labels that together fill the plot).
fn place_labels(marks: &[Mark], bounds: Rect) -> Vec<Option<Rect>> {
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
fn ring_places(mark: &Mark) -> impl Iterator<Item = Rect> + '_ {
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
fn grid_places(mark: &Mark, bounds: Rect) -> impl Iterator<Item = Rect> + '_ {
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
fn leader(mark: &Mark, place: &Rect) -> Option<((f64, f64), (f64, f64))> {
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
    let model = crate::records::run_record::model_of_label(label);
    let rank = lra_models::MODELS.iter().position(|m| m.name == model).unwrap_or(lra_models::MODELS.len());
    // A model's paper form beside its LRA form: the same colour, the other line style.
    let paper = label.ends_with(&format!("({})", lra_models::Variant::Paper.label()));
    Style { colour: COLOURS[rank % COLOURS.len()], dashed: ((rank / COLOURS.len()) % 2 == 1) != paper }
}

/// Draws `points` as a line in `style`, faded to `opacity`.
fn line<DB, X, Y>(
    chart: &mut ChartContext<DB, Cartesian2d<X, Y>>,
    points: Vec<(X::ValueType, Y::ValueType)>,
    style: Style,
    width: u32,
    opacity: f64,
) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    X: Ranged,
    Y: Ranged,
    X::ValueType: Clone + 'static,
    Y::ValueType: Clone + 'static,
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
fn smoothed<X: Copy>(values: &[(X, f64)], keep: f64) -> Vec<(X, f64)> {
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

/// Whether `value` has a place on a logarithmic axis: positive and finite.
fn plottable_on_log(value: f64) -> bool {
    value > 0.0 && value.is_finite()
}

/// The largest loss a curve plots: a cross-entropy past it is a run that diverged (its
/// record says so), and would flatten every other curve of the panel to its axis.
const MAX_PLOTTED_LOSS: f64 = 1e12;

/// Whether a logged loss is drawn: finite, not negative, and no larger than
/// [`MAX_PLOTTED_LOSS`] (a diverged run logs NaN or infinity).
fn plottable_loss(loss: f64) -> bool {
    (0.0..=MAX_PLOTTED_LOSS).contains(&loss)
}

/// Step time and peak memory against length, log-log, one line per model.
pub fn scaling(bench: &BenchRecord) -> anyhow::Result<Figure> {
    render(&Scaling { bench }, (WIDTH, HEIGHT))
}

/// Colours of the models that share a panel of the training curves; black and grey are the
/// baseline's and the control's.
const PANEL_COLOURS: [RGBColor; 8] =
    [COLOURS[0], COLOURS[1], COLOURS[2], COLOURS[3], COLOURS[4], COLOURS[5], COLOURS[6], COLOURS[9]];

/// The baseline's style in every panel of the curves.
const BASELINE_STYLE: Style = Style { colour: BLACK, dashed: false };

/// The control's style in every panel of the curves.
const CONTROL_STYLE: Style = Style { colour: CONTROL_GREY, dashed: true };

/// One panel of the training curves: a family of models, by their labels.
#[derive(Debug, Clone, PartialEq)]
struct Panel {
    title: String,
    models: Vec<String>,
}

impl Panel {
    /// How `label`'s curves are drawn in this panel: the baseline and the control as
    /// everywhere, a member in a colour of its own within the panel (a model's paper form
    /// in its LRA form's colour, dashed).
    fn style(&self, label: &str) -> Style {
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
fn family(label: &str) -> &'static str {
    lra_models::model_info(crate::records::run_record::model_of_label(label))
        .map_or("other", |m| m.family.split(" (").next().unwrap_or(m.family))
}

/// The panels of the curves of the models `labels` (in the registry's order): one per
/// family, the families of one model each gathered in a last panel, and none for the
/// baseline and the control, which every panel shows (a panel of their own where no other
/// model ran).
fn panels(labels: &[String]) -> Vec<Panel> {
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
enum Sample {
    /// A curve's line.
    Line(Style),
    /// The level of the majority class.
    Level,
    /// The mark of the first validation step above chance.
    Marker,
}

/// The key's font size, the length of its line samples and the room between entries.
const KEY_FONT: u32 = 13;
const KEY_SAMPLE: f64 = 24.0;
const KEY_GAP: f64 = 16.0;

/// The width of a key entry: its sample, a space and its text.
fn key_width(text: &str) -> f64 {
    KEY_SAMPLE + 5.0 + text_size(text, KEY_FONT).0
}

/// Where each of the entries `widths` wide goes when they flow into lines `room` wide:
/// its line and its x.
fn flow(widths: &[f64], room: f64) -> Vec<(usize, f64)> {
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
fn key_lines(entries: &[(Sample, String)], room: f64) -> usize {
    let widths: Vec<f64> = entries.iter().map(|(_, text)| key_width(text)).collect();
    flow(&widths, room).last().map_or(0, |(line, _)| line + 1)
}

/// The height of a line of a key.
const KEY_LINE: u32 = 18;

/// Draws `entries` flowed into `room` from `origin` (each line [`KEY_LINE`] high).
fn draw_key<DB: DrawingBackend>(
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
const LEVEL: RGBAColor = RGBAColor(0, 0, 0, 0.4);

/// Draws the mark of a run's first validation step above chance at `at` (pixels of
/// `area`): a triangle in the curve's colour, outlined so that it shows on any line.
fn left_chance_mark<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, at: (i32, i32), colour: RGBColor) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    area.draw(&TriangleMarker::new(at, 7, colour.filled())).map_err(error)?;
    area.draw(&TriangleMarker::new(at, 7, BLACK.stroke_width(1))).map_err(error)?;
    Ok(())
}

/// The point of `run`'s validation curve where it first left chance: its validation at the
/// record's `left_chance_step` (or the first after it, should the curve lack that row).
fn left_chance_point(run: &Run) -> Option<(u32, f64)> {
    let step = run.record.outcome.left_chance_step?;
    run.metrics.iter().filter(|m| m.step >= step).find_map(|m| m.val_acc.map(|a| (m.step as u32, 100.0 * a)))
}

/// The heights in the curves' figure: its heading's title line, a panel's title line and
/// its two charts.
const CURVES_TITLE: u32 = 30;
const PANEL_TITLE: u32 = 22;
const ACCURACY_HEIGHT: u32 = 190;
const LOSS_HEIGHT: u32 = 140;

/// The curves' layout, fixed before drawing: the figure's height follows from it.
#[derive(Debug, Clone)]
struct CurvesLayout {
    panels: Vec<Panel>,
    columns: usize,
    rows: usize,
    /// The heading's key: the baseline, the control and the majority level.
    key: Vec<(Sample, String)>,
    header_height: u32,
    /// Each panel's key: its models.
    keys: Vec<Vec<(Sample, String)>>,
    panel_head: u32,
    /// The majority class's share (%) of the validation split (of the test split in records
    /// that lack the validation's), where every run has the same.
    majority: Option<f64>,
}

impl CurvesLayout {
    fn new(runs: &[Run]) -> CurvesLayout {
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

    fn height(&self) -> u32 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every label placed, inside the plot, clear of every other label, of its own bubble
    /// and of every bubble's centre.
    fn assert_legible(marks: &[Mark], bounds: Rect) {
        let places = place_labels(marks, bounds);
        let placed: Vec<Rect> = places.iter().map(|p| p.expect("every label has a place")).collect();
        for (i, (a, mark)) in placed.iter().zip(marks).enumerate() {
            assert!(bounds.contains(a), "label {i} at {a:?} leaves the plot {bounds:?}");
            assert!(a.distance(mark.centre) >= mark.radius, "label {i} covers its bubble");
            for (j, b) in placed.iter().enumerate().skip(i + 1) {
                assert!(!a.intersects(b), "labels {i} {a:?} and {j} {b:?} overlap");
            }
            for (j, m) in marks.iter().enumerate() {
                assert!(a.distance(m.centre) > DOT_RADIUS, "label {i} covers bubble {j}'s centre");
            }
        }
    }

    /// Figure 3's plot area, as its chart lays it out in the figure's size.
    const PLOT: Rect = Rect { left: 75.0, top: 50.0, width: 1010.0, height: 505.0 };

    /// Bubbles placed as Figure 3 places them in [`PLOT`], labelled as it labels them.
    fn marks_of(bubbles: &[Bubble]) -> Vec<Mark> {
        let speeds: Vec<f64> = bubbles.iter().map(|b| b.speed.log10()).collect();
        let (lo, hi) = speeds.iter().fold((f64::MAX, f64::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
        let pad = ((hi - lo) * 0.07).max(0.05);
        let (acc_lo, acc_hi) = bubbles.iter().fold((f64::MAX, f64::MIN), |(lo, hi), b| (lo.min(b.accuracy), hi.max(b.accuracy)));
        let acc_pad = ((acc_hi - acc_lo) * 0.15).max(2.0);
        let max_memory = bubbles.iter().map(|b| b.memory).fold(1.0, f64::max);
        bubbles
            .iter()
            .map(|b| {
                let x = PLOT.left + PLOT.width * (b.speed.log10() - lo + pad) / (hi - lo + 2.0 * pad);
                let y = PLOT.bottom() - PLOT.height * (b.accuracy - acc_lo + acc_pad) / (acc_hi - acc_lo + 2.0 * acc_pad);
                let (width, height) = text_size(&b.label(), LABEL_FONT);
                Mark {
                    centre: (x, y),
                    radius: bubble_radius(b.memory, max_memory),
                    label: (width + 2.0 * LABEL_PAD, height + 2.0 * LABEL_PAD),
                }
            })
            .collect()
    }

    /// The 25 models and the control, both forms of the models with two: Figure 3 of a
    /// sweep of every form.
    fn every_model() -> Vec<String> {
        let mut labels = Vec::new();
        for m in lra_models::MODELS.iter() {
            if m.mechanism.has_variants() {
                for variant in [lra_models::Variant::Lra, lra_models::Variant::Paper] {
                    labels.push(crate::records::run_record::model_label(m.name, Some(variant)));
                }
            } else {
                labels.push(m.name.to_string());
            }
        }
        labels
    }

    /// The crowd of the example report's Figure 3 (25 models and the control between 0.25
    /// and 0.35 steps per second and 20 and 30%), one far to the right, stretching the axis:
    /// every label finds a place of its own.
    #[test]
    fn figure3_labels_never_overlap_in_a_crowd() {
        let models = every_model();
        let n = models.len() as f64;
        let mut bubbles: Vec<Bubble> = models
            .iter()
            .enumerate()
            .map(|(i, model)| Bubble {
                model: model.clone(),
                speed: 0.25 + 0.1 * (i as f64 * 0.618).fract(),
                accuracy: 20.0 + 10.0 * (i as f64 / n),
                memory: 2e8 + 3e9 * (i as f64 * 0.382).fract(),
            })
            .collect();
        bubbles[3].speed = 4.4;
        assert!(bubbles.len() >= 26);
        assert_legible(&marks_of(&bubbles), PLOT);
        // Every bubble at one point.
        for b in &mut bubbles {
            (b.speed, b.accuracy) = (0.3, 25.0);
        }
        assert_legible(&marks_of(&bubbles), PLOT);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Any 26 bubbles within a small part of the plot.
        #[test]
        fn labels_of_any_crowd_never_overlap(
            points in proptest::collection::vec((0.0..200.0f64, 0.0..120.0f64, 5.0..35.0f64, 40.0..190.0f64), 26),
        ) {
            let marks: Vec<Mark> = points
                .iter()
                .map(|&(x, y, radius, width)| Mark { centre: (400.0 + x, 200.0 + y), radius, label: (width, 18.0) })
                .collect();
            assert_legible(&marks, PLOT);
        }
    }

    #[test]
    fn the_speed_axis_is_ticked_at_round_values() {
        let labels = |lo, hi| speed_ticks(lo, hi).into_iter().map(tick_label).collect::<Vec<_>>();
        assert_eq!(labels(0.08, 5.0), ["0.1", "0.2", "0.5", "1", "2", "5"]);
        assert_eq!(labels(0.25, 0.8), ["0.3", "0.4", "0.5", "0.7"]);
        // Within a factor of 3, evenly spaced.
        assert_eq!(labels(0.251, 0.349), ["0.26", "0.28", "0.3", "0.32", "0.34"]);
        assert_eq!(labels(6.2, 18.0), ["8", "10", "12", "14", "16", "18"]);
    }

    /// Every contender in one panel of its family, the baseline and the control in none
    /// (every panel draws them), no more panels than a 3 x 3 grid, and the models of a panel
    /// apart by colour (a model's two forms by line).
    #[test]
    fn the_curves_have_a_panel_per_family_with_distinct_styles() {
        let labels = every_model();
        let grouped = panels(&labels);
        assert!(grouped.len() <= 9, "{grouped:#?}");
        for label in &labels {
            let holding = grouped.iter().filter(|p| p.models.contains(label)).count();
            let shared = matches!(crate::records::run_record::model_of_label(label), lra_models::BASELINE | lra_models::CONTROL);
            assert_eq!(holding, if shared { 0 } else { 1 }, "{label}");
        }
        for panel in &grouped {
            let styles: Vec<Style> = panel.models.iter().map(|m| panel.style(m)).collect();
            for (i, a) in styles.iter().enumerate() {
                assert!(*a != BASELINE_STYLE && *a != CONTROL_STYLE);
                for b in &styles[i + 1..] {
                    assert_ne!(a, b, "{panel:?}");
                }
            }
        }
        assert_eq!(panels(&[lra_models::BASELINE.to_string()]).len(), 1, "the baseline alone has a panel");
    }

    /// The curves of every model and form, with the baseline's three seeds, fill one grid
    /// of panels as tall as its layout says; Figure 3 draws the crowd.
    #[test]
    fn every_model_is_drawn_in_the_curves_and_in_figure3() {
        use crate::records::run_record::{Failure, MetricsRow, RunRecord};
        let resolve = |model: &str, seed: u64| {
            crate::records::run_config::RunConfig::resolve(
                lra_tasks::Task::Listops,
                lra_tasks::Preset::Tiny,
                model,
                seed,
                crate::records::device_name::DeviceName::Flex,
            )
            .unwrap()
        };
        let template = RunRecord::failed(&resolve(lra_models::BASELINE, 0), Failure::Crashed { detail: String::new() }, 0.0);
        let mut runs = Vec::new();
        for (i, label) in every_model().iter().enumerate() {
            let model = crate::records::run_record::model_of_label(label);
            let seeds = if model == lra_models::BASELINE { 0..3 } else { 0..1 };
            for seed in seeds {
                let mut record = template.clone();
                record.model = model.to_string();
                record.config = resolve(model, seed);
                for variant in [lra_models::Variant::Lra, lra_models::Variant::Paper] {
                    if label.ends_with(&format!("({})", variant.label())) {
                        record.config = record.config.with_variant(variant).unwrap();
                    }
                }
                assert_eq!(record.model_label(), *label);
                (record.outcome.failure, record.outcome.validation_majority_rate) = (None, Some(0.1));
                record.outcome.left_chance_step = (i % 2 == 0).then_some(10);
                let metrics = (1..=20)
                    .map(|step| MetricsRow {
                        step,
                        loss: 2.5 - 0.02 * step as f64,
                        lr: 1e-3,
                        train_acc: 0.2,
                        examples_per_s: 100.0,
                        val_acc: (step % 5 == 0).then(|| 0.1 + 0.01 * (step + i) as f64),
                    })
                    .collect();
                runs.push(Run { record, metrics });
            }
        }
        let shown: Vec<&Run> = runs.iter().collect();
        let figure = curves(lra_tasks::Task::Listops, &shown).unwrap();
        let layout = CurvesLayout::new(&runs);
        assert_eq!((layout.columns, layout.rows), (3, layout.panels.len().div_ceil(3)));
        let size = png::Decoder::new(std::io::Cursor::new(&figure.png)).read_info().unwrap().info().size();
        assert_eq!(size, (WIDTH, layout.height()));
        assert!(figure.svg.contains("first validation step above chance"));

        let bubbles: Vec<Bubble> = every_model()
            .into_iter()
            .enumerate()
            .map(|(i, model)| Bubble { model, speed: 0.25 + 0.004 * i as f64, accuracy: 25.0 + 0.2 * i as f64, memory: 1e8 })
            .collect();
        let figure = render(&Figure3 { bubbles: &bubbles, x_label: &String::from("speed") }, (WIDTH, FIGURE3_HEIGHT)).unwrap();
        assert!(figure.svg.contains("bag (control)"));
    }

    #[test]
    fn a_key_flows_onto_the_next_line_when_full() {
        assert_eq!(flow(&[50.0, 50.0, 50.0], 130.0), [(0, 0.0), (0, 50.0 + KEY_GAP), (1, 0.0)]);
        assert_eq!(flow(&[500.0], 130.0), [(0, 0.0)], "an entry wider than the line has one of its own");
    }

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
