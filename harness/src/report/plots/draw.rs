//! What every plot draws with: rendering one drawing to SVG and PNG, the colours and line
//! styles of the models, legends, smoothing, and which values a plot can show.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// One plot in both formats.
pub struct Figure {
    pub svg: String,
    pub png: Vec<u8>,
}

/// The plots' width, and the height of the one-row plots (the curves' grid grows with its
/// panels).
pub(super) const WIDTH: u32 = 1100;
pub(super) const HEIGHT: u32 = 520;

pub(super) fn error(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e:?}")
}

/// A plot that can draw itself on any backend.
pub(super) trait Draw {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static;
}

/// Draws `plot` into an SVG string and a PNG image, both `width` x `height` pixels.
pub(super) fn render(plot: &impl Draw, (width, height): (u32, u32)) -> anyhow::Result<Figure> {
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
        pub(super) struct $name<'a> { $(pub(super) $arg: &'a $ty),* }
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
pub(super) use both_backends;

/// The control model's colour wherever a plot singles it out.
pub(super) const CONTROL_GREY: RGBColor = RGBColor(130, 130, 130);

/// The size in pixels of `text` in the sans-serif face at `size`, from the font both
/// backends draw with (0.6 em a character where no font can be read).
pub(super) fn text_size(text: &str, size: u32) -> (f64, f64) {
    match ("sans-serif", size).into_font().box_size(text) {
        Ok((width, _)) => (width as f64, size as f64),
        Err(_) => (0.6 * (size as usize * text.chars().count()) as f64, size as f64),
    }
}

/// Width of the legend column beside a plot: room for a line sample and a label such as
/// `synthesizer (as LRA ran it)`.
pub(super) const LEGEND_WIDTH: u32 = 240;

/// Where the legend's first row is.
pub(super) const LEGEND_TOP: i32 = 40;

/// The legend's row spacing and font size for `entries` rows: 22 and 15 while they fit the
/// plot's height, closer and smaller beyond (the 30 models, both forms of ten of them),
/// never below a legible 10.
pub(super) fn legend_rows(entries: usize) -> (u32, u32) {
    let room = HEIGHT - LEGEND_TOP as u32 - 10;
    let spacing = (room / entries.max(1) as u32).clamp(11, 22);
    (spacing, (spacing - 3).clamp(10, 15))
}

/// Colours that stay apart on white (no pale yellow), in the registry's order; after
/// them the same colours again with dashed lines.
pub(super) const COLOURS: [RGBColor; 16] = [
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
    RGBColor(255, 170, 90),
    RGBColor(100, 60, 200),
    RGBColor(160, 200, 40),
];

/// How one model is drawn in every plot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Style {
    pub(super) colour: RGBColor,
    pub(super) dashed: bool,
}

/// The style of `model`, fixed by its place in the registry so that it is the same in
/// every plot.
pub(super) fn style_of(label: &str) -> Style {
    let model = crate::records::run_record::model_of_label(label);
    let rank = lra_models::MODELS.iter().position(|m| m.name == model).unwrap_or(lra_models::MODELS.len());
    // A model's paper form beside its LRA form: the same colour, the other line style.
    let paper = label.ends_with(&format!("({})", lra_models::Variant::Paper.label()));
    Style { colour: COLOURS[rank % COLOURS.len()], dashed: ((rank / COLOURS.len()) % 2 == 1) != paper }
}

/// Draws `points` as a line in `style`, faded to `opacity`.
pub(super) fn line<DB, X, Y>(
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
pub(super) fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[(String, Style)]) -> anyhow::Result<()>
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
pub(super) fn fitted(lo: f64, hi: f64, pad: f64, least: f64) -> (f64, f64) {
    let span = (hi - lo).max(least);
    let middle = (hi + lo) / 2.0;
    (middle - span * (0.5 + pad), middle + span * (0.5 + pad))
}

/// An exponential moving average of `values` (weight `keep` on the past), started at the
/// first value: the trend of a noisy training loss.
pub(super) fn smoothed<X: Copy>(values: &[(X, f64)], keep: f64) -> Vec<(X, f64)> {
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

/// Whether `value` has a place on a logarithmic axis: positive and finite.
pub(super) fn plottable_on_log(value: f64) -> bool {
    value > 0.0 && value.is_finite()
}

/// The largest loss a curve plots: a cross-entropy past it is a run that diverged (its
/// record says so), and would flatten every other curve of the panel to its axis.
pub(super) const MAX_PLOTTED_LOSS: f64 = 1e12;

/// Whether a logged loss is drawn: finite, not negative, and no larger than
/// [`MAX_PLOTTED_LOSS`] (a diverged run logs NaN or infinity).
pub(super) fn plottable_loss(loss: f64) -> bool {
    (0.0..=MAX_PLOTTED_LOSS).contains(&loss)
}
