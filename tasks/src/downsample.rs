//! Shrinking square images before training (the CPU presets' image tasks).

use serde::{Deserialize, Serialize};

/// Square images of `side` pixels shrunk by `factor` in each direction: every
/// `factor x factor` block becomes one pixel, `max_length = (side / factor)^2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Downsample {
    pub side: usize,
    pub factor: usize,
    pub reduce: Reduce,
}

/// How a block of pixels becomes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    /// The rounded mean: photographs (CIFAR-10 and its stand-in).
    Mean,
    /// The brightest pixel: keeps one-pixel strokes at full brightness, but also makes
    /// them as bright as anything larger (no preset uses it; a configuration may).
    Max,
}

impl Downsample {
    /// `pixels: [side * side]` row-major -> `[(side / factor)^2]`. Tokens are pixel values
    /// + 1 and images have no padding, so reducing tokens reduces pixels.
    pub fn apply(&self, pixels: &[u32]) -> Vec<u32> {
        let small = self.side / self.factor;
        let mut out = Vec::with_capacity(small * small);
        for row in 0..small {
            for column in 0..small {
                let block = (0..self.factor).flat_map(|dy| {
                    (0..self.factor).map(move |dx| pixels[(row * self.factor + dy) * self.side + column * self.factor + dx])
                });
                out.push(match self.reduce {
                    Reduce::Max => block.max().unwrap_or(0),
                    Reduce::Mean => {
                        let area = (self.factor * self.factor) as u32;
                        (block.sum::<u32>() + area / 2) / area
                    }
                });
            }
        }
        out
    }
}

/// The side of a square image of `pixels` pixels.
pub(crate) fn square_side(pixels: usize) -> usize {
    (pixels as f64).sqrt().round() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_takes_block_means_or_maxima() {
        // A 4x4 image of tokens 1..=16, row-major.
        let pixels: Vec<u32> = (1..=16).collect();
        let mean = Downsample { side: 4, factor: 2, reduce: Reduce::Mean };
        // Top-left block 1, 2, 5, 6: mean 3.5, rounded half up to 4.
        assert_eq!(mean.apply(&pixels), vec![4, 6, 12, 14]);
        let max = Downsample { side: 4, factor: 2, reduce: Reduce::Max };
        assert_eq!(max.apply(&pixels), vec![6, 8, 14, 16]);
        // A single bright pixel (a Pathfinder dash) survives the maximum, not the mean.
        let mut dark = vec![1u32; 16];
        dark[5] = 256;
        assert_eq!(max.apply(&dark), vec![256, 1, 1, 1]);
        assert_eq!(mean.apply(&dark), vec![65, 1, 1, 1]);
    }
}
