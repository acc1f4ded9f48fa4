//! Supersampled drawing, as the original generator draws: each paddle is stroked on a grid
//! `antialias_scale` times finer, then shrunk to pixels with an 8-bit Lanczos resampling
//! (support of 3 output pixels), and each marker disc likewise. The resampling spreads a
//! faint halo (a few levels of 255) around every stroke and, with its rounding, gives the
//! images their range of grey levels; an exact coverage raster has neither.

use std::f64::consts::PI;

use super::geometry::Paddle;

/// Fixed-point precision of the 8-bit resampling's weights (32-bit accumulators with
/// room for 8 bits of value and two of headroom).
const PRECISION_BITS: u32 = 32 - 8 - 2;

fn sinc(x: f64) -> f64 {
    if x == 0.0 { 1.0 } else { (PI * x).sin() / (PI * x) }
}

fn lanczos(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) { sinc(x) * sinc(x / 3.0) } else { 0.0 }
}

/// For each output index: the first input index it reads and its fixed-point weights.
/// An output pixel is centred at `(i + 0.5) * scale` of the input; the filter is widened
/// by the scale when shrinking, and its taps are normalised to sum to one.
type Taps = std::rc::Rc<Vec<(usize, Vec<i64>)>>;

/// [`compute_weights`], kept per thread: an image resamples the same few sizes many times.
fn weights(input: usize, output: usize) -> Taps {
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<(usize, usize), Taps>> = Default::default();
    }
    CACHE.with(|cache| cache.borrow_mut().entry((input, output)).or_insert_with(|| compute_weights(input, output).into()).clone())
}

fn compute_weights(input: usize, output: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = input as f64 / output as f64;
    let filter_scale = scale.max(1.0);
    let support = 3.0 * filter_scale;
    (0..output)
        .map(|i| {
            let centre = (i as f64 + 0.5) * scale;
            // Truncation towards zero, then clamping, as the reference implementation.
            let first = ((centre - support + 0.5) as i64).max(0) as usize;
            let end = ((centre + support + 0.5) as i64).min(input as i64) as usize;
            let raw: Vec<f64> = (first..end).map(|x| lanczos((x as f64 - centre + 0.5) / filter_scale)).collect();
            let total: f64 = raw.iter().sum();
            let fixed = raw
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { w };
                    let scaled = w * (1u64 << PRECISION_BITS) as f64;
                    (if scaled < 0.0 { scaled - 0.5 } else { scaled + 0.5 }) as i64
                })
                .collect();
            (first, fixed)
        })
        .collect()
}

fn to_byte(accumulated: i64) -> u8 {
    (accumulated >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes a `side` x `side` 8-bit image to `out` x `out`: rows first, into an 8-bit
/// intermediate (so negative lobes are clipped before the second pass), then columns.
pub(super) fn resize_lanczos(pixels: &[u8], side: usize, out: usize) -> Vec<u8> {
    let taps = weights(side, out);
    let half = 1i64 << (PRECISION_BITS - 1);
    let mut across = vec![0u8; side * out];
    for row in 0..side {
        let line = &pixels[row * side..(row + 1) * side];
        for (column, (first, w)) in taps.iter().enumerate() {
            let sum: i64 = w.iter().enumerate().map(|(k, &w)| line[first + k] as i64 * w).sum();
            across[row * out + column] = to_byte(half + sum);
        }
    }
    let mut result = vec![0u8; out * out];
    for (row, (first, w)) in taps.iter().enumerate() {
        for column in 0..out {
            let sum: i64 = w.iter().enumerate().map(|(k, &w)| across[(first + k) * out + column] as i64 * w).sum();
            result[row * out + column] = to_byte(half + sum);
        }
    }
    result
}

/// Lights the pixels of a `side` x `side` grid on the stroke from `start` to `end`
/// (`(row, column)`, whole pixels) of `width` pixels, as the reference drawing library
/// strokes a line: one pixel per step along the longer axis for a width of 1; otherwise a
/// quadrilateral whose long sides are offset across the line by the half-width rounded
/// to whole pixels along each axis, filled scanline by scanline from the nearest pixel of
/// each crossing (so diagonal strokes come out wider than axis-aligned ones).
fn stroke(grid: &mut [u8], side: usize, start: (i64, i64), end: (i64, i64), width: usize) {
    let mut span = |y: i64, x0: i64, x1: i64| {
        if !(0..side as i64).contains(&y) {
            return;
        }
        for x in x0.max(0)..=x1.min(side as i64 - 1) {
            grid[y as usize * side + x as usize] = 255;
        }
    };
    let (y0, x0, y1, x1) = (start.0, start.1, end.0, end.1);
    let (dy, dx) = (y1 - y0, x1 - x0);
    if width <= 1 || (dx == 0 && dy == 0) {
        let steps = dy.abs().max(dx.abs()).max(1);
        for i in 0..=steps {
            let t = i as f64 / steps as f64;
            let (y, x) = (y0 + (t * dy as f64).round() as i64, x0 + (t * dx as f64).round() as i64);
            span(y, x, x);
        }
        return;
    }
    let round_up = |f: f64| (f + 0.5).floor() as i64;
    let round_down = |f: f64| (f - 0.5).ceil() as i64;
    let hypotenuse = ((dx * dx + dy * dy) as f64).sqrt();
    let half = (width as f64 - 1.0) / 2.0;
    let (ratio_max, ratio_min) = (round_up(half) as f64 / hypotenuse, round_down(half) as f64 / hypotenuse);
    let dxmin = round_down(ratio_min * dy as f64);
    let dxmax = round_down(ratio_max * dy as f64);
    let dymin = round_down(ratio_min * dx as f64);
    let dymax = round_down(ratio_max * dx as f64);
    // Vertices as (x, y).
    let v = [(x0 - dxmin, y0 + dymax), (x1 - dxmin, y1 + dymax), (x1 + dxmax, y1 - dymin), (x0 + dxmax, y0 - dymin)];
    struct Edge {
        x0: i64,
        y0: i64,
        ymin: i64,
        ymax: i64,
        slope: f64,
    }
    let mut edges = Vec::new();
    for k in 0..4 {
        let ((ax, ay), (bx, by)) = (v[k], v[(k + 1) % 4]);
        if ay == by {
            // Horizontal edges are drawn as they are.
            span(ay, ax.min(bx), ax.max(bx));
            continue;
        }
        edges.push(Edge { x0: ax, y0: ay, ymin: ay.min(by), ymax: ay.max(by), slope: (bx - ax) as f64 / (by - ay) as f64 });
    }
    let ymin = edges.iter().map(|e| e.ymin).min().unwrap_or(0).max(0);
    let ymax = edges.iter().map(|e| e.ymax).max().unwrap_or(-1).min(side as i64);
    for y in ymin..=ymax {
        let mut crossings: Vec<f64> = Vec::with_capacity(8);
        for e in &edges {
            if y >= e.ymin && y <= e.ymax {
                // Single precision, as the reference computes its crossings.
                crossings.push(((y - e.y0) as f32 * e.slope as f32 + e.x0 as f32) as f64);
            }
            // A crossing at an edge's lower end is counted twice, which keeps the
            // polygon's outline consistent where edges meet.
            if y == e.ymax
                && y < ymax
                && let Some(&last) = crossings.last()
            {
                crossings.push(last);
            }
        }
        crossings.sort_by(|a, b| a.partial_cmp(b).expect("finite crossings"));
        for pair in crossings.chunks_exact(2) {
            span(y, round_up(pair[0]), round_down(pair[1]));
        }
    }
}

/// How far a paddle's block reaches from its anchor: `length + ceil(thickness) + margin`.
fn reach_of(length: usize, thickness: f32, margin: usize) -> usize {
    length + thickness.ceil() as usize + margin
}

/// A paddle stroked on the fine grid from its centre along `orientation`: the grid and
/// its side, `2 * reach * scale + 1`.
fn fine_stroke(length: usize, thickness: f32, margin: usize, scale: usize, orientation: f64) -> (Vec<u8>, usize) {
    let reach = reach_of(length, thickness, margin);
    let fine_side = 2 * reach * scale + 1;
    let fine_centre = (reach * scale) as i64;
    let fine_length = (length * scale) as f64;
    // The far end on the fine grid, rounded up as the original rounds translated points:
    // after the sum, so that a displacement below half a unit in the last place of the
    // centre (the cosine of a right angle) moves nothing.
    let fine_end = (
        (fine_centre as f64 + fine_length * orientation.sin()).ceil() as i64,
        (fine_centre as f64 + fine_length * orientation.cos()).ceil() as i64,
    );
    let width = (thickness as f64 * scale as f64).round().max(1.0) as usize;
    let mut fine = vec![0u8; fine_side * fine_side];
    stroke(&mut fine, fine_side, (fine_centre, fine_centre), fine_end, width);
    (fine, fine_side)
}

/// A block of the image: `side` x `side` pixels from `(top, left)` (possibly off the
/// image), 8-bit values.
pub(super) struct Block {
    pub(super) top: i64,
    pub(super) left: i64,
    pub(super) side: usize,
    pub(super) values: std::rc::Rc<Vec<u8>>,
}

impl Block {
    /// The value at `(row, column)` in `[0, 1]`; 0 outside the block.
    pub(super) fn at(&self, (row, column): (i32, i32)) -> f32 {
        let (y, x) = (row as i64 - self.top, column as i64 - self.left);
        let side = self.side as i64;
        if (0..side).contains(&y) && (0..side).contains(&x) { self.values[(y * side + x) as usize] as f32 / 255.0 } else { 0.0 }
    }

    /// The pixels of a `size` x `size` image the block lights, with their values in `[0, 1]`.
    pub(super) fn lit_pixels(&self, size: usize) -> impl Iterator<Item = ((i32, i32), f32)> + '_ {
        let side = self.side;
        self.values.iter().enumerate().filter(|&(_, &v)| v > 0).filter_map(move |(k, &v)| {
            let (row, column) = (self.top + (k / side) as i64, self.left + (k % side) as i64);
            let inside = (0..size as i64).contains(&row) && (0..size as i64).contains(&column);
            inside.then_some(((row as i32, column as i32), v as f32 / 255.0))
        })
    }
}

/// One paddle's intensities before its contrast, as a block centred on its anchor (the
/// original draws a paddle from its anchor) spanning `length + ceil(thickness) + margin`
/// pixels each way.
pub(super) fn paddle_block(paddle: &Paddle, length: usize, thickness: f32, margin: usize, scale: usize) -> Block {
    let (anchor, orientation) = ((paddle.anchor.0 as i64, paddle.anchor.1 as i64), paddle.bearing);
    let reach = reach_of(length, thickness, margin);
    let (fine, fine_side) = fine_stroke(length, thickness, margin, scale, orientation);
    let values = resize_lanczos(&fine, fine_side, 2 * reach + 1).into();
    Block { top: anchor.0 - reach as i64, left: anchor.1 - reach as i64, side: 2 * reach + 1, values }
}

/// A paddle's clearance zone as the original marks it in its occupancy mask: the stroke
/// dilated on the fine grid by a disc of `margin * scale` fine pixels, then shrunk as the
/// stroke is; placed as [`paddle_block`] places the stroke.
pub(super) fn clearance_block(paddle: &Paddle, length: usize, thickness: f32, margin: usize, scale: usize) -> Block {
    let (anchor, orientation) = ((paddle.anchor.0 as i64, paddle.anchor.1 as i64), paddle.bearing);
    let reach = reach_of(length, thickness, margin) as i64;
    let values = clearance_zone(length, thickness, margin, scale, orientation);
    Block { top: anchor.0 - reach, left: anchor.1 - reach, side: 2 * reach as usize + 1, values }
}

/// The shrunk clearance zone of a paddle from the centre of its block, kept per thread:
/// paddles point in a few hundred orientations (whole degrees, or the pixels of the
/// circle of candidate ends).
fn clearance_zone(length: usize, thickness: f32, margin: usize, scale: usize, orientation: f64) -> std::rc::Rc<Vec<u8>> {
    type Key = (usize, u32, usize, usize, u64);
    type Zones = std::collections::HashMap<Key, std::rc::Rc<Vec<u8>>>;
    thread_local! {
        static CACHE: std::cell::RefCell<Zones> = Default::default();
    }
    let key = (length, thickness.to_bits(), margin, scale, orientation.to_bits());
    CACHE.with(|cache| {
        cache
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| {
                let (fine, fine_side) = fine_stroke(length, thickness, margin, scale, orientation);
                let dilated = dilate_by_disc(&fine, fine_side, (margin * scale) as i64);
                resize_lanczos(&dilated, fine_side, 2 * reach_of(length, thickness, margin) + 1).into()
            })
            .clone()
    })
}

/// Every pixel of a `side` x `side` grid within `radius` of a lit one, lit.
fn dilate_by_disc(fine: &[u8], side: usize, radius: i64) -> Vec<u8> {
    let mut dilated = vec![0u8; fine.len()];
    for y in 0..side as i64 {
        for x in 0..side as i64 {
            if fine[y as usize * side + x as usize] == 0 {
                continue;
            }
            for dy in -radius..=radius {
                for dx in -radius..=radius {
                    let (ty, tx) = (y + dy, x + dx);
                    if dy * dy + dx * dx <= radius * radius && (0..side as i64).contains(&ty) && (0..side as i64).contains(&tx) {
                        dilated[ty as usize * side + tx as usize] = 255;
                    }
                }
            }
        }
    }
    dilated
}

/// Where a first paddle from pixel `(0, 0)` along `orientation` needs room, as the
/// original finds it: of the paddle's clearance zone ([`clearance_block`]) only the
/// pixels left at full intensity count, placed in a window of `length + margin` pixels
/// each way whose centre is one pixel down and right of the paddle's start. The original
/// dilates the mask with this window as a kernel anchored at its centre, so the offsets
/// returned are those of the mask pixels that must be free, relative to the start: one
/// pixel down and right of the zone itself.
pub(super) fn clearance_footprint(
    length: usize,
    thickness: f32,
    margin: usize,
    scale: usize,
    orientation: f64,
) -> std::rc::Rc<Vec<(i32, i32)>> {
    type Key = (usize, u32, usize, usize, u64);
    type Footprints = std::collections::HashMap<Key, std::rc::Rc<Vec<(i32, i32)>>>;
    thread_local! {
        static CACHE: std::cell::RefCell<Footprints> = Default::default();
    }
    // First paddles point in whole degrees, so a thread sees a few hundred footprints.
    let key = (length, thickness.to_bits(), margin, scale, orientation.to_bits());
    CACHE.with(|cache| {
        cache
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| compute_footprint(length, thickness, margin, scale, orientation).into())
            .clone()
    })
}

fn compute_footprint(length: usize, thickness: f32, margin: usize, scale: usize, orientation: f64) -> Vec<(i32, i32)> {
    let reach = reach_of(length, thickness, margin);
    let side = 2 * reach + 1;
    let coarse = clearance_zone(length, thickness, margin, scale, orientation);
    // The window spans offsets -(length + margin + 1) ..= length + margin - 1 from the start.
    let window = (length + margin) as i32;
    let mut offsets = Vec::new();
    for (index, &value) in coarse.iter().enumerate() {
        let offset = ((index / side) as i32 - reach as i32, (index % side) as i32 - reach as i32);
        let inside = |o: i32| (-window - 1..window).contains(&o);
        if value == 255 && inside(offset.0) && inside(offset.1) {
            offsets.push((offset.0 + 1, offset.1 + 1));
        }
    }
    offsets
}

/// A marker disc of `radius` pixels centred on pixel `centre` of a `size` x `size` image,
/// drawn on the grid `scale` times finer over the whole image and shrunk: values in `[0, 1]`.
pub(super) fn marker_disc(size: usize, centre: (i32, i32), radius: f32, scale: usize) -> Vec<f32> {
    let fine_side = size * scale;
    let (cy, cx) = (centre.0 as i64 * scale as i64, centre.1 as i64 * scale as i64);
    let reach = radius as f64 * scale as f64;
    let mut fine = vec![0u8; fine_side * fine_side];
    for y in 0..fine_side as i64 {
        for x in 0..fine_side as i64 {
            let (dy, dx) = ((y - cy) as f64, (x - cx) as f64);
            if dy * dy + dx * dx <= reach * reach {
                fine[y as usize * fine_side + x as usize] = 255;
            }
        }
    }
    resize_lanczos(&fine, fine_side, size).iter().map(|&v| v as f32 / 255.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_flat_images_flat_and_halves_a_block() {
        let flat = vec![200u8; 16 * 16];
        assert!(resize_lanczos(&flat, 16, 8).iter().all(|&v| v == 200));
        // A lit square of 4x4 fine pixels shrinks to a 2x2 core at full brightness, with
        // a faint halo and nothing far away.
        let mut fine = vec![0u8; 32 * 32];
        for y in 12..16 {
            for x in 12..16 {
                fine[y * 32 + x] = 255;
            }
        }
        let coarse = resize_lanczos(&fine, 32, 16);
        assert!(coarse[6 * 16 + 6] > 200 && coarse[7 * 16 + 7] > 200);
        assert_eq!(coarse[0], 0);
        assert!(coarse.iter().filter(|&&v| v > 0).count() > 4, "the Lanczos filter spreads beyond the block");
    }

    #[test]
    fn a_paddle_block_is_centred_on_its_whole_pixel_end_and_lit_along_the_paddle() {
        let paddle = Paddle { from: (10.0, 10.0), to: (10.0, 15.0), contrast: 1.0, anchor: (10, 15), bearing: PI };
        let block = paddle_block(&paddle, 5, 1.5, 2, 2);
        assert_eq!(block.side, 2 * (5 + 2 + 2) + 1);
        assert_eq!((block.top, block.left), (10 - 9, 15 - 9));
        assert!(block.at((10, 12)) > 0.8, "the middle of the paddle is lit");
        assert!(block.at((2, 12)) == 0.0, "far across the paddle stays dark");
        let (top, side) = (block.top as i32, block.side as i32);
        let halo = (top..top + side).filter(|&row| (row - 10).abs() >= 2).any(|row| {
            let value = block.at((row, 12));
            value > 0.0 && value < 0.05
        });
        assert!(halo, "a faint halo spreads beyond the stroke");
    }

    #[test]
    fn a_clearance_zone_covers_the_stroke_and_reaches_the_margin_beyond_it() {
        let paddle = Paddle { from: (10.0, 10.0), to: (10.0, 15.0), contrast: 1.0, anchor: (10, 15), bearing: PI };
        let stroke = paddle_block(&paddle, 5, 1.5, 2, 2);
        let zone = clearance_block(&paddle, 5, 1.5, 2, 2);
        assert_eq!((zone.top, zone.left, zone.side), (stroke.top, stroke.left, stroke.side));
        for column in 10..=15 {
            // Full but for the resampling's ringing (a few levels of 255).
            assert!(zone.at((10, column)) >= 0.95, "the stroke itself is covered");
            assert!(zone.at((12, column)) >= 0.95, "two pixels across the stroke lie within the margin");
        }
        assert!(zone.at((15, 12)) < 0.05, "five pixels across lie beyond it");
        let (size, total) = (32, |b: &Block| b.lit_pixels(32).map(|(_, v)| v).sum::<f32>());
        assert!(total(&zone) > 2.0 * total(&stroke), "the zone is the stroke widened by the margin each side");
        assert!(zone.lit_pixels(size).all(|(_, v)| v > 0.0 && v <= 1.0));
    }
}
