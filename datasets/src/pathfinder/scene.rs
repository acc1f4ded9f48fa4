//! A whole image: the sample's label, its two targets and their markers, the distractors,
//! and the image rendered from them.

use super::config::PathfinderConfig;
use super::geometry::{Paddle, Pixel, as_point};
use super::occupancy::Occupancy;
use super::raster::{marker_disc, paddle_block};
use super::snakes::{Painter, draw};
use crate::DataError;
use crate::rng::SeededRng;

/// Everything drawn in one image.
#[derive(Debug, Clone)]
pub(super) struct Scene {
    pub(super) label: u8,
    pub(super) targets: [Vec<Paddle>; 2],
    pub(super) distractors: Vec<Vec<Paddle>>,
    pub(super) markers: [Pixel; 2],
    pub(super) marker_contours: [usize; 2],
    /// The paddle margin drawn for this image.
    pub(super) margin: usize,
}

/// The seeded stream of sample `index`: the index in the low 32 bits, above it the size
/// and contour length, so that datasets of different sizes or difficulties drawn from
/// one seed are independent.
pub(super) fn sample_stream(config: &PathfinderConfig, index: u64) -> Result<u64, DataError> {
    if index > u32::MAX as u64 {
        return Err(DataError::new(format!("pathfinder: sample index {index} is beyond 2^32")));
    }
    let tag = 0x5066u64 << 48; // "Pf"
    Ok(tag | (config.size as u64 & 0xfff) << 36 | (config.contour_length as u64 & 0xf) << 32 | index)
}

/// Whether a marker disc at `centre` would cover a pixel of any of `paddles`' strokes.
/// Drawn supersampled, a stroke is what shows above the dash level (64 of 255) in the
/// image: a pixel whose value times the paddle's contrast exceeds 64/255 (an upper bound,
/// since every image holds a marker at full intensity, so its brightest is at least 1).
/// Drawn exactly, the pixels within half a pixel of the stroke's band.
fn disc_touches(config: &PathfinderConfig, centre: Pixel, paddles: &[Paddle], margin: usize) -> bool {
    const DASH_LEVEL: f32 = 64.0 / 255.0;
    let radius = config.marker_radius as f64;
    let r = radius.floor() as i32;
    let disc: Vec<Pixel> = (-r..=r)
        .flat_map(|dy| (-r..=r).map(move |dx| (dy, dx)))
        .filter(|&(dy, dx)| ((dy * dy + dx * dx) as f64) <= radius * radius)
        .map(|(dy, dx)| (centre.0 + dy, centre.1 + dx))
        .collect();
    if config.antialias_scale > 0 {
        // A block reaches `length + ceil(thickness) + margin` from its anchor.
        let reach = (config.paddle_length as f64 + config.paddle_thickness.ceil() as f64 + margin as f64) * 2f64.sqrt();
        return paddles.iter().filter(|p| p.distance_to(as_point(centre)) <= reach + radius).any(|paddle| {
            let block = paddle_block(paddle, config.paddle_length, config.paddle_thickness, margin, config.antialias_scale);
            disc.iter().any(|&pixel| block.at(pixel) * paddle.contrast > DASH_LEVEL)
        });
    }
    let stroke_reach = config.paddle_thickness as f64 / 2.0 + 0.5;
    disc.iter().any(|&pixel| paddles.iter().any(|p| p.distance_to(as_point(pixel)) < stroke_reach))
}

/// The label of sample `index`: the first draw of its stream, a fair coin; the rest of the
/// sample is drawn to match it, so labels are balanced by construction.
pub(super) fn draw_label(rng: &mut SeededRng) -> u8 {
    rng.below(2) as u8
}

pub(super) fn generate_scene(config: &PathfinderConfig, seed: u64, index: u64) -> Result<Scene, DataError> {
    config.check()?;
    let mut rng = SeededRng::new(seed, sample_stream(config, index)?);
    let label = draw_label(&mut rng);
    let origin_contour = rng.below(2) as usize;
    let margin = draw(&mut rng, &config.paddle_margins);
    let painter = Painter::new(config, margin);
    let far_contour = if label == 1 { origin_contour } else { 1 - origin_contour };
    let marker_contours = [origin_contour, far_contour];
    let empty = Occupancy::with_border(config.size, config.padding);
    let mut placed = None;
    for _ in 0..config.max_target_attempts {
        let mut mask = empty.clone();
        let Some(targets) = painter.two_targets(&mut rng, &mut mask) else {
            continue;
        };
        let markers = [targets[origin_contour].origin, targets[far_contour].far_end];
        let ambiguous = (0..2).any(|m| disc_touches(config, markers[m], &targets[1 - marker_contours[m]].paddles, margin));
        if !ambiguous {
            placed = Some((mask, targets, markers));
            break;
        }
    }
    let Some((mut mask, targets, markers)) = placed else {
        return Err(DataError::new(format!(
            "pathfinder: found no room for two contours of {} paddles in {} attempts (sample {index}); \
             the image is too small for these settings",
            config.contour_length, config.max_target_attempts
        )));
    };
    let mut distractors = Vec::new();
    for _ in 0..config.distractor_count {
        for _ in 0..=config.max_distractor_retries {
            if let Some(paddles) = painter.distractor(&mut rng, &mut mask) {
                distractors.push(paddles);
                break;
            }
        }
    }
    Ok(Scene { label, markers, marker_contours, margin, targets: targets.map(|snake| snake.paddles), distractors })
}

/// The parts of an image, which [`render`] can draw separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layer {
    Target(usize),
    Distractors,
    Markers,
}

impl Layer {
    pub(super) const ALL: [Layer; 4] = [Layer::Target(0), Layer::Target(1), Layer::Distractors, Layer::Markers];
}

/// Intensities before scaling to bytes: each pixel the brightest of what covers it.
pub(super) fn render(config: &PathfinderConfig, scene: &Scene, layers: &[Layer]) -> Vec<f32> {
    let size = config.size;
    let mut canvas = vec![0.0f32; size * size];
    let draw_band = |canvas: &mut Vec<f32>, paddle: &Paddle, half_width: f64| {
        for (index, covered) in paddle.covered_pixels(half_width, size) {
            canvas[index] = canvas[index].max(paddle.contrast * covered);
        }
    };
    if config.antialias_scale > 0 {
        return render_supersampled(config, scene, layers, scene.margin);
    }
    let half_stroke = config.paddle_thickness as f64 / 2.0;
    for layer in layers {
        match *layer {
            Layer::Target(k) => scene.targets[k].iter().for_each(|p| draw_band(&mut canvas, p, half_stroke)),
            Layer::Distractors => scene.distractors.iter().flatten().for_each(|p| draw_band(&mut canvas, p, half_stroke)),
            Layer::Markers => {
                for &centre in &scene.markers {
                    // A disc is a paddle of length zero, drawn at full intensity (a contrast
                    // of 1.0 multiplies each coverage exactly).
                    let disc =
                        Paddle { from: as_point(centre), to: as_point(centre), contrast: 1.0, anchor: centre, bearing: 0.0 };
                    draw_band(&mut canvas, &disc, config.marker_radius as f64);
                }
            }
        }
    }
    canvas
}

/// As [`render`] on the supersampled grid: each paddle's block (its 8-bit resampled
/// intensities times its contrast) and each marker disc, the brightest of all per pixel.
fn render_supersampled(config: &PathfinderConfig, scene: &Scene, layers: &[Layer], margin: usize) -> Vec<f32> {
    let size = config.size;
    let scale = config.antialias_scale;
    let mut canvas = vec![0.0f32; size * size];
    let draw_paddle = |canvas: &mut Vec<f32>, paddle: &Paddle| {
        let block = paddle_block(paddle, config.paddle_length, config.paddle_thickness, margin, scale);
        for ((row, column), value) in block.lit_pixels(size) {
            let index = row as usize * size + column as usize;
            canvas[index] = canvas[index].max(paddle.contrast * value);
        }
    };
    for layer in layers {
        match *layer {
            Layer::Target(k) => scene.targets[k].iter().for_each(|p| draw_paddle(&mut canvas, p)),
            Layer::Distractors => scene.distractors.iter().flatten().for_each(|p| draw_paddle(&mut canvas, p)),
            Layer::Markers => {
                for &centre in &scene.markers {
                    let disc = marker_disc(size, centre, config.marker_radius, scale);
                    canvas.iter_mut().zip(disc).for_each(|(pixel, value)| *pixel = pixel.max(value));
                }
            }
        }
    }
    canvas
}

/// Bytes with `brightest` at 255.
pub(super) fn quantize(values: &[f32], brightest: f32) -> Vec<u8> {
    let scale = if brightest > 0.0 { 255.0 / brightest } else { 0.0 };
    values.iter().map(|&v| (v * scale).round().clamp(0.0, 255.0) as u8).collect()
}
