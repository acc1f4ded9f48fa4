//! Growing snakes: a target or distractor contour, one paddle at a time.

use std::f64::consts::{FRAC_PI_2, TAU};

use super::config::PathfinderConfig;
use super::geometry::{Paddle, Pixel, as_point, ceil_pixel, coverage, flipped, nearest_pixel, reversed, step_from, turn_between};
use super::occupancy::{OVERLAP, Occupancy, TAKEN, Zone};
use super::raster::{clearance_block, clearance_footprint};
use crate::rng::SeededRng;

/// A snake being drawn.
#[derive(Debug, Clone)]
pub(super) struct Snake {
    pub(super) paddles: Vec<Paddle>,
    /// Where the next paddle turns: `margin` beyond the end of the last one.
    pivot: Pixel,
    orientation: f64,
    /// The free end of the first paddle.
    pub(super) origin: Pixel,
    /// The free end of the last paddle.
    pub(super) far_end: Pixel,
}

impl Snake {
    fn last(&self) -> &Paddle {
        self.paddles.last().expect("a snake has at least its first paddle")
    }
}

/// The drawing settings of one image (its margin drawn).
pub(super) struct Painter<'a> {
    config: &'a PathfinderConfig,
    length: f64,
    margin: f64,
    /// Half-width of a paddle's clearance zone: the margin around half the stroke.
    clearance: f64,
    /// Offsets within `margin` of a pixel: the neighbourhood whose crowding weighs a candidate.
    neighbourhood: Vec<Pixel>,
    /// Where the next paddle may end, relative to its pivot: the pixels on the circle of
    /// radius `paddle_length + margin`, sampled one pixel of arc apart, each once; with
    /// the orientation of each from the pivot.
    circle: Vec<(Pixel, f64)>,
}

impl<'a> Painter<'a> {
    pub(super) fn new(config: &'a PathfinderConfig, margin: usize) -> Self {
        let m = margin as i32;
        let neighbourhood =
            (-m..=m).flat_map(|dy| (-m..=m).map(move |dx| (dy, dx))).filter(|(dy, dx)| dy * dy + dx * dx <= m * m).collect();
        let radius = (config.paddle_length + margin) as f64;
        let steps = (TAU * radius).ceil() as usize;
        // The original truncates the circle's points (floor, inside the image); the CPU
        // grids round them to the nearest pixel.
        let round = |point: (f64, f64)| {
            if config.original_rounding { (point.0.floor() as i32, point.1.floor() as i32) } else { nearest_pixel(point) }
        };
        let mut offsets: Vec<Pixel> = (0..steps).map(|k| round(step_from((0.0, 0.0), k as f64 / radius, radius))).collect();
        offsets.sort_unstable();
        offsets.dedup();
        let circle = offsets.into_iter().map(|(dy, dx)| ((dy, dx), (dy as f64).atan2(dx as f64))).collect();
        Painter {
            config,
            circle,
            length: config.paddle_length as f64,
            margin: margin as f64,
            clearance: margin as f64 + config.paddle_thickness as f64 / 2.0,
            neighbourhood,
        }
    }

    fn inside(&self, (row, column): Pixel) -> bool {
        let n = self.config.size as i32;
        (0..n).contains(&row) && (0..n).contains(&column)
    }

    /// The mask as a new paddle sees it: with the latest paddles of other snakes, which
    /// are not yet marked (a snake's own latest paddle stays unmarked so that the next
    /// one may sit close to it).
    fn crowding(&self, mask: &Occupancy, others: &[Zone], pixel: Pixel) -> f32 {
        others.iter().fold(mask.at(pixel), |most, other| most.max(other.at(pixel)))
    }

    /// The most crowded pixel within `margin` of `pixel` (the mask dilated by a disc).
    fn crowding_around(&self, mask: &Occupancy, others: &[Zone], pixel: Pixel) -> f32 {
        let marked = self.neighbourhood.iter().map(|&(dy, dx)| mask.at((pixel.0 + dy, pixel.1 + dx))).fold(0.0f32, f32::max);
        others.iter().fold(marked, |most, other| most.max(other.near(pixel, self.margin, &self.neighbourhood)))
    }

    /// A paddle's clearance zone: at LRA's sizes the original's supersampled one, on the
    /// CPU grids the exact band.
    fn zone(&self, paddle: &Paddle) -> Zone {
        let config = self.config;
        if config.antialias_scale > 0 {
            let margin = self.margin as usize;
            Zone::Resampled(clearance_block(
                paddle,
                config.paddle_length,
                config.paddle_thickness,
                margin,
                config.antialias_scale,
            ))
        } else {
            Zone::Band { paddle: *paddle, half_width: self.clearance }
        }
    }

    /// The offsets, from a first paddle's start, of the pixels its clearance zone covers
    /// entirely: where the paddle would need room.
    fn footprint(&self, orientation: f64) -> Vec<Pixel> {
        let config = self.config;
        if config.antialias_scale > 0 {
            return clearance_footprint(
                config.paddle_length,
                config.paddle_thickness,
                self.margin as usize,
                config.antialias_scale,
                orientation,
            )
            .to_vec();
        }
        let paddle = Paddle {
            from: (0.0, 0.0),
            to: step_from((0.0, 0.0), orientation, self.length),
            contrast: 0.0,
            anchor: (0, 0),
            bearing: orientation,
        };
        let reach = (self.clearance - 0.5).max(0.5);
        let r = (self.length + reach).ceil() as i32;
        (-r..=r)
            .flat_map(|dy| (-r..=r).map(move |dx| (dy, dx)))
            .filter(|&offset| paddle.distance_to(as_point(offset)) <= reach)
            .collect()
    }

    /// Whether a first paddle may start at `start`: its footprint is free and at least
    /// `band` pixels from every edge.
    fn room_at(&self, mask: &Occupancy, start: Pixel, footprint: &[Pixel], band: i32) -> bool {
        let high = self.config.size as i32 - band;
        footprint.iter().all(|&(dy, dx)| {
            let pixel = (start.0 + dy, start.1 + dx);
            (band..high).contains(&pixel.0) && (band..high).contains(&pixel.1) && mask.at(pixel) <= TAKEN
        })
    }

    /// A start drawn uniformly among the pixels with room: a few tries at random pixels
    /// (uniform on success), then, if none had room, a draw from the full list.
    fn sample_start(&self, rng: &mut SeededRng, mask: &Occupancy, footprint: &[Pixel], band: i32) -> Option<Pixel> {
        const QUICK_TRIES: usize = 32;
        let span = self.config.size as i32 - 2 * band;
        if span <= 0 {
            return None;
        }
        let random_pixel = |rng: &mut SeededRng| (band + rng.below(span as u64) as i32, band + rng.below(span as u64) as i32);
        for _ in 0..QUICK_TRIES {
            let start = random_pixel(rng);
            if self.room_at(mask, start, footprint, band) {
                return Some(start);
            }
        }
        let with_room: Vec<Pixel> = (band..band + span)
            .flat_map(|row| (band..band + span).map(move |column| (row, column)))
            .filter(|&start| self.room_at(mask, start, footprint, band))
            .collect();
        (!with_room.is_empty()).then(|| *rng.choose(&with_room))
    }

    /// A snake's first paddle: at a free pixel (`band` from the edges), or, for the second
    /// target, `seed_distance` from `near` at a random bearing. `None` when there is no room.
    fn first_paddle(
        &self,
        rng: &mut SeededRng,
        mask: &Occupancy,
        band: i32,
        near: Option<Pixel>,
        contrast: f32,
    ) -> Option<Snake> {
        for _ in 0..=self.config.max_paddle_retries {
            let orientation = random_degree(rng, self.config.original_rounding);
            let start = match near {
                None => {
                    let footprint = self.footprint(orientation);
                    // With the supersampled footprint (already shifted a pixel down and
                    // right) the bottom-right corner pixel reads no mask pixel unless
                    // some offset lies neither below nor right of the start.
                    let reaches_up_and_left = if self.config.antialias_scale > 0 {
                        footprint.iter().any(|o| o.0 <= 0 && o.1 <= 0)
                    } else {
                        footprint.iter().any(|o| o.0 < 0) && footprint.iter().any(|o| o.1 < 0)
                    };
                    if self.config.release_seed_quirk && !reaches_up_and_left {
                        return None;
                    }
                    self.sample_start(rng, mask, &footprint, band)?
                }
                Some(other) => {
                    let bearing = (rng.below(360) as f64).to_radians();
                    nearest_pixel(step_from(as_point(other), bearing, self.config.seed_distance as f64))
                }
            };
            let (head, pivot) = if self.config.original_rounding {
                let head = ceil_pixel(step_from(as_point(start), orientation, self.length));
                (head, ceil_pixel(step_from(as_point(head), reversed(orientation), self.length + self.margin)))
            } else {
                let head = nearest_pixel(step_from(as_point(start), orientation, self.length));
                (head, nearest_pixel(step_from(as_point(head), orientation, -(self.length + self.margin))))
            };
            if self.inside(head) && self.inside(pivot) {
                let to = step_from(as_point(start), orientation, self.length);
                let paddle = Paddle { from: as_point(start), to, contrast, anchor: start, bearing: orientation };
                return Some(Snake { paddles: vec![paddle], pivot, orientation, origin: start, far_end: head });
            }
        }
        None
    }

    /// Adds one paddle to `snake`; false when it is stuck. `others`: latest paddles of
    /// other snakes, not yet marked.
    fn extend(&self, rng: &mut SeededRng, mask: &mut Occupancy, snake: &mut Snake, contrast: f32, others: &[Zone]) -> bool {
        let next = step_from(as_point(snake.pivot), snake.orientation, self.length + 2.0 * self.margin);
        let pivot = if self.config.original_rounding { ceil_pixel(next) } else { nearest_pixel(next) };
        let continuity = self.config.continuity as f64;
        let mut candidates = Vec::with_capacity(self.circle.len());
        let mut weights = Vec::with_capacity(self.circle.len());
        for &((dy, dx), orientation) in &self.circle {
            let candidate = (pivot.0 + dy, pivot.1 + dx);
            if !self.inside(candidate) {
                continue;
            }
            let turn = turn_between(orientation, snake.orientation);
            let smooth = (continuity * turn).min(FRAC_PI_2).cos().max(0.0).powi(2);
            // Candidates beyond the sharpest allowed turn weigh nothing whatever the mask.
            let weight =
                if smooth > 0.0 { smooth * (1.0 - self.crowding_around(mask, others, candidate) as f64).max(0.0) } else { 0.0 };
            candidates.push((candidate, orientation));
            weights.push(weight);
        }
        let total: f64 = weights.iter().sum();
        if total < 1e-4 {
            return false;
        }
        for _ in 0..=self.config.max_paddle_retries {
            let (head, orientation) = candidates[pick_weighted(rng, &weights, total)];
            let from = step_from(as_point(head), orientation, -self.length);
            let paddle = Paddle { from, to: as_point(head), contrast, anchor: head, bearing: flipped(orientation) };
            if !self.overlaps(mask, others, &paddle) {
                let previous = *snake.last();
                mask.mark(&self.zone(&previous));
                snake.paddles.push(paddle);
                snake.pivot = pivot;
                snake.orientation = orientation;
                snake.far_end = head;
                return true;
            }
        }
        false
    }

    /// Whether the paddle's clearance zone lands on a taken pixel.
    fn overlaps(&self, mask: &Occupancy, others: &[Zone], paddle: &Paddle) -> bool {
        if let Zone::Resampled(block) = self.zone(paddle) {
            // As the original: only the pixels of the image count (its border is taken).
            let size = self.config.size;
            return block.lit_pixels(size).any(|(pixel, zone)| self.crowding(mask, others, pixel) + zone >= OVERLAP);
        }
        // Pixels outside the image count as taken, so look one pixel past its edges.
        let reach = self.clearance + 0.5;
        paddle.pixels_within(reach, -1, self.config.size as i32).any(|pixel| {
            let zone = coverage(self.clearance, paddle.distance_to(as_point(pixel))) as f32;
            zone > 0.0 && self.crowding(mask, others, pixel) + zone >= OVERLAP
        })
    }

    /// The two target contours, grown in turn; `None` if either gets stuck.
    pub(super) fn two_targets(&self, rng: &mut SeededRng, mask: &mut Occupancy) -> Option<[Snake; 2]> {
        let config = self.config;
        let mut snake_contrasts: Vec<f32> = config.snake_contrasts.repeat(2);
        rng.shuffle(&mut snake_contrasts);
        let band = 2 * config.seed_distance as i32;
        let first_contrast = draw(rng, &config.paddle_contrasts) * snake_contrasts[0];
        let first = self.first_paddle(rng, mask, band, None, first_contrast)?;
        let second_contrast = draw(rng, &config.paddle_contrasts) * snake_contrasts[1];
        let second = self.first_paddle(rng, mask, band, Some(first.origin), second_contrast)?;
        let mut targets = [first, second];
        for _ in 1..config.contour_length {
            let factor = draw(rng, &config.paddle_contrasts);
            for k in 0..2 {
                let other = self.zone(targets[1 - k].last());
                if !self.extend(rng, mask, &mut targets[k], factor * snake_contrasts[k], &[other]) {
                    return None;
                }
            }
        }
        for target in &targets {
            mask.mark(&self.zone(target.last()));
        }
        Some(targets)
    }

    /// One distractor snake, marked in the mask; `None` (mask unchanged) if it gets stuck.
    pub(super) fn distractor(&self, rng: &mut SeededRng, mask: &mut Occupancy) -> Option<Vec<Paddle>> {
        let config = self.config;
        if mask.free_fraction() < config.min_free_fraction as f64 {
            return None;
        }
        let contrast = draw(rng, &config.snake_contrasts);
        let mut snake = self.first_paddle(rng, mask, 1, None, contrast)?;
        mask.begin();
        for _ in 1..config.distractor_length {
            let contrast = draw(rng, &config.snake_contrasts);
            if !self.extend(rng, mask, &mut snake, contrast, &[]) {
                mask.roll_back();
                return None;
            }
        }
        mask.mark(&self.zone(snake.last()));
        mask.commit();
        Some(snake.paddles)
    }
}

/// A uniformly random whole degree in `[-180, 180)`, in radians: with the original's
/// arithmetic (`degrees * pi / 180`) where `original`, else with `to_radians`.
fn random_degree(rng: &mut SeededRng, original: bool) -> f64 {
    let degrees = rng.below(360) as f64 - 180.0;
    if original { degrees * std::f64::consts::PI / 180.0 } else { degrees.to_radians() }
}

/// One value of a list (no draw for a single value, so that a one-value list leaves the
/// stream where it was).
pub(super) fn draw<T: Copy>(rng: &mut SeededRng, values: &[T]) -> T {
    if values.len() == 1 { values[0] } else { *rng.choose(values) }
}

/// An index drawn with probability proportional to its (non-negative) weight.
fn pick_weighted(rng: &mut SeededRng, weights: &[f64], total: f64) -> usize {
    let target = rng.unit() * total;
    let mut sum = 0.0;
    for (i, &weight) in weights.iter().enumerate() {
        sum += weight;
        if weight > 0.0 && sum > target {
            return i;
        }
    }
    // Rounding left `target` past the sum: the last index with weight.
    weights.iter().rposition(|&w| w > 0.0).expect("the total weight is positive")
}
