//! The generator's settings ([`PathfinderConfig`]) and the released datasets'
//! difficulties: what the scene, the snakes and the release reader all read, so kept out of
//! `pathfinder.rs`, which its children must not import.

use crate::DataError;

/// The contour length of the three released datasets of each size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Difficulty {
    /// 6 paddles per contour (`curv_baseline`, "easy").
    Baseline,
    /// 9 paddles (`curv_contour_length_9`, "intermediate").
    Nine,
    /// 14 paddles (`curv_contour_length_14`, "hard"): the one LRA reports.
    #[default]
    Fourteen,
}

impl Difficulty {
    pub const ALL: [Difficulty; 3] = [Difficulty::Baseline, Difficulty::Nine, Difficulty::Fourteen];

    pub fn contour_length(self) -> usize {
        match self {
            Difficulty::Baseline => 6,
            Difficulty::Nine => 9,
            Difficulty::Fourteen => 14,
        }
    }

    /// The folder of this difficulty in the released files.
    pub fn release_folder(self) -> &'static str {
        match self {
            Difficulty::Baseline => "curv_baseline",
            Difficulty::Nine => "curv_contour_length_9",
            Difficulty::Fourteen => "curv_contour_length_14",
        }
    }
}

/// Every setting of the generator. Lengths are in pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct PathfinderConfig {
    /// Side of the square image.
    pub size: usize,
    /// Paddles per target contour (6, 9 or 14 in LRA: see [`Difficulty`]).
    pub contour_length: usize,
    /// Width of the border no paddle may enter.
    pub padding: usize,
    /// Length of one paddle.
    pub paddle_length: usize,
    /// Stroke width of a paddle.
    pub paddle_thickness: f32,
    /// Clearance kept around every paddle, and half the gap between consecutive paddles;
    /// one value of the list is drawn per image.
    pub paddle_margins: Vec<usize>,
    pub marker_radius: f32,
    /// Distance between the origins of the two target contours.
    pub seed_distance: usize,
    /// Straightness: a turn of `a` between paddles is weighted `cos²(min(continuity * a, 90°))`.
    pub continuity: f32,
    /// Paddles per distractor snake.
    pub distractor_length: usize,
    /// Distractor snakes attempted per image.
    pub distractor_count: usize,
    /// Contrasts of whole snakes: each target takes one (drawn from the list twice over,
    /// without replacement), every distractor paddle draws one.
    pub snake_contrasts: Vec<f32>,
    /// Per-paddle contrast factors of the targets, one drawn per growth step.
    pub paddle_contrasts: Vec<f32>,
    /// Redraws of a paddle that lands out of bounds or on another paddle.
    pub max_paddle_retries: usize,
    /// Restarts of a distractor snake that gets stuck.
    pub max_distractor_retries: usize,
    /// No distractor starts once less than this fraction of the pixels is free.
    pub min_free_fraction: f32,
    /// Attempts at drawing the two targets before the settings are declared unworkable
    /// (the original tries forever). LRA's settings need tens (size 32 and 128) to
    /// thousands (size 64) of attempts per image, each failing early and cheaply.
    pub max_target_attempts: usize,
    /// How many times finer the grid is on which paddles and markers are drawn before
    /// being shrunk to pixels with a Lanczos filter, as the original draws (2 at every
    /// LRA size); this gives the released images their faint halo around every stroke and
    /// their many grey levels. The occupancy mask is made the same way, of each paddle's
    /// stroke dilated by the margin on the fine grid. 0 draws each pixel, and marks the
    /// mask, with the exact fraction of it a stroke, disc or clearance band covers instead
    /// (the CPU grids).
    pub antialias_scale: usize,
    /// Round as the original does: translated points (a paddle's far end, each pivot) up,
    /// the points of the circle of candidate ends down. The half-pixel shifts decide at
    /// size 32 whether consecutive paddles, 2 pixels apart, touch. Off: every point to
    /// the nearest pixel (the CPU grids).
    pub original_rounding: bool,
    /// Reproduce a defect of the original code that shaped the released images. It looks
    /// for room for a first paddle by dilating the mask with a kernel that is off centre by
    /// a pixel down and right, and OpenCV pads a dilation with -infinity; when the kernel
    /// does not reach above and left of its anchor, the padding leaks into the result and
    /// the code finds no room at all. So a first paddle (of the first target or of a
    /// distractor) whose fully covered clearance pixels do not reach a row above and a
    /// column left of its start fails outright. Only thin paddles are affected: in
    /// Pathfinder-32 the first paddle of the first target always points up and to the
    /// left, and only one or two of the five distractors survive; from a margin of 2
    /// (Path-X) on, the zone always reaches. With `antialias_scale` set, the zone is the
    /// original's own (the supersampled clearance zone's pixels left at full intensity,
    /// a pixel down and right), and it must hold a pixel neither below nor right of the
    /// start, as the dilation's bottom-right corner needs.
    pub release_seed_quirk: bool,
}

impl PathfinderConfig {
    /// The settings LRA generated its data with (sizes 32, 64 and 128), from the
    /// documentation of its dataset builders; the rest are the generator's defaults.
    pub fn lra(size: usize, difficulty: Difficulty) -> Result<Self, DataError> {
        let contour_length = difficulty.contour_length();
        // The original divides with Python 2's integer division: 14 / 3 = 4.
        let distractor_length = contour_length / 3;
        let common = PathfinderConfig {
            size,
            contour_length,
            padding: 1,
            paddle_length: 5,
            paddle_thickness: 1.5,
            paddle_margins: vec![1],
            marker_radius: 3.0,
            seed_distance: 20,
            continuity: 1.8,
            distractor_length,
            distractor_count: 0,
            snake_contrasts: vec![1.0],
            paddle_contrasts: vec![1.0],
            max_paddle_retries: 2,
            max_distractor_retries: 4,
            min_free_fraction: 0.01,
            max_target_attempts: 1_000_000,
            antialias_scale: 2,
            original_rounding: true,
            release_seed_quirk: true,
        };
        let config = match size {
            32 => PathfinderConfig {
                paddle_length: 2,
                paddle_thickness: 0.5,
                paddle_margins: vec![1],
                marker_radius: 1.5,
                seed_distance: 7,
                continuity: 1.0,
                distractor_count: 20 / distractor_length,
                snake_contrasts: vec![2.0],
                paddle_contrasts: vec![0.75],
                ..common
            },
            64 => PathfinderConfig {
                paddle_thickness: 1.0,
                paddle_margins: vec![1],
                marker_radius: 2.5,
                seed_distance: 12,
                distractor_count: 22 / distractor_length,
                snake_contrasts: vec![0.8],
                ..common
            },
            128 => PathfinderConfig {
                paddle_thickness: 1.5,
                paddle_margins: vec![2, 3],
                marker_radius: 3.0,
                seed_distance: 20,
                distractor_count: 35 / distractor_length,
                snake_contrasts: vec![0.9],
                ..common
            },
            _ => {
                return Err(DataError::new(format!("pathfinder: LRA has images of size 32, 64 and 128, not {size}")));
            }
        };
        config.check()?;
        Ok(config)
    }

    /// A CPU Pathfinder: the generator of Pathfinder-32 (dashes of 2 pixels, half a pixel
    /// wide) on a `size` x `size` grid, with target contours of `contour_length` paddles,
    /// `distractors` distractor snakes of one paddle, markers of radius 1 and the targets'
    /// origins `size / 6` apart. Positives and negatives are drawn alike (two targets of
    /// equal length in every image), so their pixel statistics are the same. Refused when
    /// the contour cannot fit: its length in pixels, `contour_length * (paddle_length + 2
    /// * margin)`, at most twice the inner side.
    pub fn cpu(size: usize, contour_length: usize, distractors: usize) -> Result<Self, DataError> {
        let base = PathfinderConfig::lra(32, Difficulty::Baseline)?;
        let config = PathfinderConfig {
            size,
            contour_length,
            distractor_length: 1,
            distractor_count: distractors,
            seed_distance: size / 6,
            marker_radius: 1.0,
            // The CPU grids keep the exact coverage raster their reports were made with.
            antialias_scale: 0,
            original_rounding: false,
            ..base
        };
        let inner = size.saturating_sub(2 * config.padding);
        // Saturating: a configuration file may hold any count; too long is too long.
        let contour_pixels = contour_length.saturating_mul(config.paddle_length + 2 * config.paddle_margins[0]);
        if !(8..=64).contains(&size) {
            return Err(DataError::new(format!("pathfinder: a CPU grid's size {size} must be between 8 and 64")));
        }
        if contour_pixels > 2 * inner {
            return Err(DataError::new(format!(
                "pathfinder: contours of {contour_length} paddles ({contour_pixels} pixels) do not fit a grid of size \
                 {size}: at most {} pixels (twice its inner side)",
                2 * inner
            )));
        }
        if distractors > size * size / 16 {
            return Err(DataError::new(format!(
                "pathfinder: {distractors} distractors crowd a grid of size {size}: at most {}",
                size * size / 16
            )));
        }
        config.check()?;
        Ok(config)
    }

    /// Errors for settings under which the generator cannot work.
    pub fn check(&self) -> Result<(), DataError> {
        let fail = |what: String| Err(DataError::new(format!("pathfinder: {what}")));
        if !(8..=4096).contains(&self.size) {
            return fail(format!("size {} is outside 8..=4096", self.size));
        }
        if self.padding == 0 || 2 * self.padding >= self.size {
            return fail(format!("padding {} must be at least 1 and leave room inside size {}", self.padding, self.size));
        }
        if self.contour_length < 2 || self.distractor_length == 0 || self.paddle_length == 0 {
            return fail("contour_length must be at least 2, distractor_length and paddle_length at least 1".into());
        }
        if self.paddle_margins.is_empty() {
            return fail("paddle_margins is empty".into());
        }
        if 4 * self.seed_distance >= self.size {
            return fail(format!(
                "seed_distance {} leaves no room: the first contour starts 2 * seed_distance from every edge of size {}",
                self.seed_distance, self.size
            ));
        }
        let positive = |x: f32| x.is_finite() && x > 0.0;
        if !positive(self.paddle_thickness) || !positive(self.marker_radius) || !positive(self.continuity) {
            return fail("paddle_thickness, marker_radius and continuity must be positive".into());
        }
        if self.snake_contrasts.is_empty()
            || self.paddle_contrasts.is_empty()
            || !self.snake_contrasts.iter().chain(&self.paddle_contrasts).all(|&c| positive(c))
        {
            return fail("snake_contrasts and paddle_contrasts must be non-empty lists of positive numbers".into());
        }
        if !(0.0..1.0).contains(&self.min_free_fraction) {
            return fail(format!("min_free_fraction {} is outside [0, 1)", self.min_free_fraction));
        }
        Ok(())
    }
}
