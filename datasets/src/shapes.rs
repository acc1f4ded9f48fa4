//! The CPU image task: ten shapes of exactly eight lit pixels on a black square.
//!
//! Every image holds one shape of its class at a uniformly random place, all eight pixels
//! at one grey level drawn from `levels` (independently of the class), and nothing else.
//! So the multiset of pixel values is the same for every class: a model that sees the
//! pixels without their positions (a bag of pixels) is at chance by construction, and the
//! class can only be read from how the lit pixels lie relative to each other, which for
//! most shapes means relating pixels on different rows (a vertical line's pixels are a
//! whole row apart in the sequence).
//!
//! Cost: O(side²) per image.

use crate::rng::SeededRng;
use crate::standin::{self, SplitSizes};
use crate::{DataError, Example, Splits};

/// The shapes, by label, as (row, column) offsets of their eight pixels.
const SHAPES: [[(usize, usize); 8]; 10] = [
    // horizontal line
    [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (0, 7)],
    // vertical line
    [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0)],
    // diagonal
    [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7)],
    // anti-diagonal
    [(0, 7), (1, 6), (2, 5), (3, 4), (4, 3), (5, 2), (6, 1), (7, 0)],
    // ring (a 3x3 square outline)
    [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)],
    // wide block (2 rows of 4)
    [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)],
    // tall block (4 rows of 2)
    [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)],
    // two rows of 4, a row apart
    [(0, 0), (0, 1), (0, 2), (0, 3), (2, 0), (2, 1), (2, 2), (2, 3)],
    // two columns of 4, a column apart
    [(0, 0), (1, 0), (2, 0), (3, 0), (0, 2), (1, 2), (2, 2), (3, 2)],
    // dots (4 rows of 2, every other pixel)
    [(0, 0), (0, 2), (2, 0), (2, 2), (4, 0), (4, 2), (6, 0), (6, 2)],
];

/// The names of the classes, by label.
pub const SHAPE_NAMES: [&str; 10] = [
    "horizontal line",
    "vertical line",
    "diagonal",
    "anti-diagonal",
    "ring",
    "wide block",
    "tall block",
    "two rows",
    "two columns",
    "dots",
];

/// Lit pixels per image, whatever the class.
pub const LIT_PIXELS: usize = 8;

/// The smallest side that holds every shape (the lines are 8 pixels long).
pub const MIN_SIDE: usize = 8;

/// The largest side: a CPU task, a few hundred pixels at most is the point.
pub const MAX_SIDE: usize = 64;

const SHAPES_STREAM: u64 = 0x0063_7075_5f69_6d67; // "cpu_img"

/// The (height, width) of a shape's bounding box.
fn extent(shape: &[(usize, usize); 8]) -> (usize, usize) {
    let height = shape.iter().map(|&(row, _)| row).max().unwrap_or(0) + 1;
    let width = shape.iter().map(|&(_, column)| column).max().unwrap_or(0) + 1;
    (height, width)
}

/// Refuses a side or a number of grey levels that cannot produce the task.
pub fn check(side: usize, levels: usize) -> Result<(), DataError> {
    if !(MIN_SIDE..=MAX_SIDE).contains(&side) {
        return Err(DataError::new(format!("image: side {side} must be between {MIN_SIDE} (the longest shape) and {MAX_SIDE}")));
    }
    if !(1..=255).contains(&levels) {
        return Err(DataError::new(format!("image: levels {levels} must be between 1 and 255 (non-black grey levels)")));
    }
    Ok(())
}

/// One image of class `label`: pixels 0-255, row-major, `side * side` of them.
fn image(rng: &mut SeededRng, label: u32, side: usize, levels: usize) -> Vec<u32> {
    let shape = &SHAPES[label as usize];
    let (height, width) = extent(shape);
    let top = rng.below((side - height + 1) as u64) as usize;
    let left = rng.below((side - width + 1) as u64) as usize;
    // Levels spread evenly over 1..=255: level k of n is round(255 k / n).
    let level = 1 + rng.below(levels as u64) as usize;
    let value = ((255 * level) as f64 / levels as f64).round() as u32;
    let mut pixels = vec![0u32; side * side];
    for &(row, column) in shape {
        pixels[(top + row) * side + left + column] = value;
    }
    pixels
}

/// The CPU image task's splits: `side` x `side` images, ten balanced classes.
pub fn shapes(sizes: SplitSizes, side: usize, levels: usize, seed: u64) -> Result<Splits, DataError> {
    check(side, levels)?;
    let classes = SHAPES.len() as u32;
    standin::generate_splits(sizes, seed, SHAPES_STREAM, classes, |rng, label| {
        Ok(Example { tokens: image(rng, label, side, levels), second: None, label })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: SplitSizes = SplitSizes { train: 400, validation: 50, test: 50 };

    #[test]
    fn every_shape_has_eight_distinct_pixels_and_the_shapes_differ() {
        for (i, shape) in SHAPES.iter().enumerate() {
            let mut pixels = shape.to_vec();
            pixels.sort();
            pixels.dedup();
            assert_eq!(pixels.len(), LIT_PIXELS, "{}", SHAPE_NAMES[i]);
            let (height, width) = extent(shape);
            assert!(height <= MIN_SIDE && width <= MIN_SIDE, "{}", SHAPE_NAMES[i]);
            for (j, other) in SHAPES.iter().enumerate().skip(i + 1) {
                let mut other = other.to_vec();
                other.sort();
                assert_ne!(pixels, other, "{} and {} are the same shape", SHAPE_NAMES[i], SHAPE_NAMES[j]);
            }
        }
    }

    /// The property that makes the bag control fail: every image, whatever its class, holds
    /// exactly eight pixels of one non-black value and black elsewhere, so the histogram of
    /// pixel values carries no information about the class.
    #[test]
    fn the_pixel_histogram_is_the_same_for_every_class() {
        let splits = shapes(SIZES, 12, 4, 3).unwrap();
        let mut values_by_class = vec![std::collections::BTreeSet::new(); 10];
        for example in splits.train.iter().chain(&splits.validation).chain(&splits.test) {
            assert_eq!(example.tokens.len(), 144);
            let lit: Vec<u32> = example.tokens.iter().copied().filter(|&p| p != 0).collect();
            assert_eq!(lit.len(), LIT_PIXELS);
            assert!(lit.iter().all(|&p| p == lit[0]));
            values_by_class[example.label as usize].insert(lit[0]);
        }
        // Each class shows every one of the four levels: 64, 128, 191, 255.
        for values in &values_by_class {
            assert_eq!(values.iter().copied().collect::<Vec<_>>(), vec![64, 128, 191, 255]);
        }
    }

    #[test]
    fn the_shape_is_where_its_label_says_and_classes_are_balanced() {
        let splits = shapes(SIZES, 10, 1, 5).unwrap();
        let mut counts = [0usize; 10];
        for example in &splits.train {
            counts[example.label as usize] += 1;
            let lit: Vec<(usize, usize)> = (0..100).filter(|&i| example.tokens[i] != 0).map(|i| (i / 10, i % 10)).collect();
            let (top, left) = (lit.iter().map(|p| p.0).min().unwrap(), lit.iter().map(|p| p.1).min().unwrap());
            let mut relative: Vec<(usize, usize)> = lit.iter().map(|&(r, c)| (r - top, c - left)).collect();
            relative.sort();
            let mut expected = SHAPES[example.label as usize].to_vec();
            expected.sort();
            assert_eq!(relative, expected);
        }
        assert!(counts.iter().all(|&c| c == 40), "{counts:?}");
    }

    #[test]
    fn sides_and_levels_that_cannot_work_are_refused_naming_the_setting() {
        assert!(shapes(SIZES, 7, 4, 0).unwrap_err().to_string().contains("side 7"));
        assert!(shapes(SIZES, 65, 4, 0).unwrap_err().to_string().contains("side 65"));
        assert!(shapes(SIZES, 12, 0, 0).unwrap_err().to_string().contains("levels 0"));
        assert_eq!(shapes(SIZES, 12, 4, 9).unwrap(), shapes(SIZES, 12, 4, 9).unwrap());
    }
}
