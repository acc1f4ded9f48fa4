//! Pathfinder's geometry: points, paddles and how much of a pixel they cover.

use std::f64::consts::TAU;

/// A pixel `(row, column)`.
pub(super) type Pixel = (i32, i32);

/// A point `(row, column)` in pixel units; pixel centres are at whole numbers.
type Point = (f64, f64);

/// The unit step in `orientation` (radians, measured from the column axis towards rows).
fn direction(orientation: f64) -> Point {
    (orientation.sin(), orientation.cos())
}

pub(super) fn step_from(point: Point, orientation: f64, distance: f64) -> Point {
    let (dy, dx) = direction(orientation);
    (point.0 + distance * dy, point.1 + distance * dx)
}

pub(super) fn nearest_pixel(point: Point) -> Pixel {
    (point.0.round() as i32, point.1.round() as i32)
}

/// `point` moved `distance` along `orientation` and rounded up, as the original rounds
/// every translated point (pivots and paddle ends).
pub(super) fn ceil_pixel(point: Point) -> Pixel {
    (point.0.ceil() as i32, point.1.ceil() as i32)
}

/// The opposite orientation, kept in `[-pi, pi)` as the original flips a first paddle's.
pub(super) fn reversed(orientation: f64) -> f64 {
    use std::f64::consts::PI;
    if orientation + PI < PI { orientation + PI } else { orientation - PI }
}

/// The opposite orientation as the original flips a later paddle's, from its head back
/// towards its pivot (a test of the sign, not of the sum as [`reversed`]).
pub(super) fn flipped(orientation: f64) -> f64 {
    use std::f64::consts::PI;
    if orientation < 0.0 { orientation + PI } else { orientation - PI }
}

pub(super) fn as_point(pixel: Pixel) -> Point {
    (pixel.0 as f64, pixel.1 as f64)
}

/// The angle between two orientations, in `[0, pi]`.
pub(super) fn turn_between(a: f64, b: f64) -> f64 {
    let difference = (a - b).abs() % TAU;
    difference.min(TAU - difference)
}

/// The fraction of a pixel covered by a band of half-width `half_width` whose centre
/// line passes `distance` from the pixel centre (a box filter across the band).
pub(super) fn coverage(half_width: f64, distance: f64) -> f64 {
    ((distance + half_width).min(0.5) - (distance - half_width).max(-0.5)).clamp(0.0, 1.0)
}

/// One dash, drawn from `from` to `to` (`from` nearer the contour's origin).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Paddle {
    pub(super) from: Point,
    pub(super) to: Point,
    pub(super) contrast: f32,
    /// The whole pixel the original strokes the paddle from (the start of a first
    /// paddle, the head of a later one), and the orientation it strokes it in, with the
    /// original's own arithmetic: drawn supersampled, an orientation one rounding away
    /// from a right angle moves a fine pixel.
    pub(super) anchor: Pixel,
    pub(super) bearing: f64,
}

impl Paddle {
    pub(super) fn distance_to(&self, point: Point) -> f64 {
        let (ay, ax) = self.from;
        let (dy, dx) = (self.to.0 - ay, self.to.1 - ax);
        let (py, px) = (point.0 - ay, point.1 - ax);
        let length_squared = dy * dy + dx * dx;
        let t = if length_squared > 0.0 { ((py * dy + px * dx) / length_squared).clamp(0.0, 1.0) } else { 0.0 };
        let (ey, ex) = (py - t * dy, px - t * dx);
        (ey * ey + ex * ex).sqrt()
    }

    pub(super) fn centre(&self) -> (f32, f32) {
        (((self.from.0 + self.to.0) / 2.0) as f32, ((self.from.1 + self.to.1) / 2.0) as f32)
    }

    /// The pixels within `reach` of the paddle (a bounding box), rows and columns clipped
    /// to `first..=last`.
    pub(super) fn pixels_within(&self, reach: f64, first: i32, last: i32) -> impl Iterator<Item = Pixel> + use<> {
        let low = |a: f64, b: f64| ((a.min(b) - reach).floor() as i32).max(first);
        let high = |a: f64, b: f64| ((a.max(b) + reach).ceil() as i32).min(last);
        let rows = low(self.from.0, self.to.0)..=high(self.from.0, self.to.0);
        let columns = low(self.from.1, self.to.1)..=high(self.from.1, self.to.1);
        rows.flat_map(move |row| columns.clone().map(move |column| (row, column)))
    }

    /// The pixels of a `size`x`size` image that a band of half-width `half_width` around
    /// the paddle's stroke may touch (within `half_width + 0.5`), as row-major indices,
    /// each with the fraction of it the band covers (0 for corners of the bounding box
    /// beyond the reach).
    pub(super) fn covered_pixels(&self, half_width: f64, size: usize) -> impl Iterator<Item = (usize, f32)> + use<> {
        let paddle = *self;
        self.pixels_within(half_width + 0.5, 0, size as i32 - 1).map(move |pixel| {
            let covered = coverage(half_width, paddle.distance_to(as_point(pixel))) as f32;
            (pixel.0 as usize * size + pixel.1 as usize, covered)
        })
    }
}
