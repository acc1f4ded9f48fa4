//! Generating samples, images and splits from a [`PathfinderConfig`], on all cores; kept
//! out of `pathfinder.rs` so that the release reader's tests can draw images without
//! importing their parent.

use super::config::PathfinderConfig;
use super::geometry::{Paddle, Pixel};
use super::scene::{Layer, generate_scene, quantize, render};
use super::splits::{split_80_10_10, to_examples};
use crate::{DataError, Splits};

/// One generated image with the generator's own record of what it drew.
#[derive(Debug, Clone, PartialEq)]
pub struct PathfinderSample {
    /// 8-bit grayscale, row-major, `size * size` bytes.
    pub pixels: Vec<u8>,
    pub label: u8,
    /// The two target contours: the centres `(row, column)` of their paddles, from the
    /// origin end to the far end.
    pub contours: Vec<Vec<(f32, f32)>>,
    /// Marker centres `(row, column)`: the first at the origin end of contour
    /// `marker_contours[0]`, the second at the far end of contour `marker_contours[1]`.
    pub markers: [(f32, f32); 2],
    pub marker_contours: [usize; 2],
}

/// Generates sample `index` of the dataset `seed`: a function of the three alone.
pub fn generate_sample(config: &PathfinderConfig, seed: u64, index: u64) -> Result<PathfinderSample, DataError> {
    let scene = generate_scene(config, seed, index)?;
    let values = render(config, &scene, &Layer::ALL);
    let brightest = values.iter().copied().fold(0.0, f32::max);
    let paddle_centres = |paddles: &Vec<Paddle>| paddles.iter().map(Paddle::centre).collect();
    let marker = |(row, column): Pixel| (row as f32, column as f32);
    Ok(PathfinderSample {
        pixels: quantize(&values, brightest),
        label: scene.label,
        contours: scene.targets.iter().map(paddle_centres).collect(),
        markers: scene.markers.map(marker),
        marker_contours: scene.marker_contours,
    })
}

/// Samples `0..count` of the dataset `seed`, on all cores.
pub fn generate(config: &PathfinderConfig, seed: u64, count: u64) -> Result<Vec<PathfinderSample>, DataError> {
    generate_range(config, seed, 0..count, crate::parallel::available_threads())
}

/// Samples `indices` on `threads` threads; the same samples for any thread count.
pub fn generate_range(
    config: &PathfinderConfig,
    seed: u64,
    indices: std::ops::Range<u64>,
    threads: usize,
) -> Result<Vec<PathfinderSample>, DataError> {
    config.check()?;
    crate::parallel::map_indices(indices, threads, |index| generate_sample(config, seed, index))
}

/// As [`generate`], keeping only each image and its label.
pub fn generate_images(config: &PathfinderConfig, seed: u64, count: u64) -> Result<Vec<(Vec<u8>, u8)>, DataError> {
    config.check()?;
    crate::parallel::map_indices(0..count, crate::parallel::available_threads(), |index| {
        generate_sample(config, seed, index).map(|sample| (sample.pixels, sample.label))
    })
}

/// `count` generated samples as the three splits. Generated samples are independent
/// draws, so the split needs no shuffle.
pub fn generated_splits(config: &PathfinderConfig, seed: u64, count: u64) -> Result<Splits, DataError> {
    Ok(split_80_10_10(to_examples(&generate_images(config, seed, count)?)))
}
