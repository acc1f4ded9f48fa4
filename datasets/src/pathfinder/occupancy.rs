//! The occupancy mask: how much of each pixel the clearance zones of paddles cover.

use super::geometry::{Paddle, Pixel, as_point, coverage};
use super::raster::Block;

/// The clearance zone of one paddle: how much of each pixel it covers.
pub(super) enum Zone {
    /// A band of half-width `half_width` around the stroke, each pixel covered by the
    /// fraction of it inside (the exact raster).
    Band { paddle: Paddle, half_width: f64 },
    /// The original's: the stroke dilated on a finer grid and shrunk ([`Block`]).
    Resampled(Block),
}

impl Zone {
    /// How much of `pixel` the zone covers.
    pub(super) fn at(&self, pixel: Pixel) -> f32 {
        match self {
            Zone::Band { paddle, half_width } => coverage(*half_width, paddle.distance_to(as_point(pixel))) as f32,
            Zone::Resampled(block) => block.at(pixel),
        }
    }

    /// The most the zone covers of any pixel within `margin` of `pixel` (`neighbourhood`:
    /// the offsets within `margin`), as the mask dilated by a disc sees it.
    pub(super) fn near(&self, pixel: Pixel, margin: f64, neighbourhood: &[Pixel]) -> f32 {
        match self {
            Zone::Band { paddle, half_width } => {
                coverage(*half_width, (paddle.distance_to(as_point(pixel)) - margin).max(0.0)) as f32
            }
            Zone::Resampled(block) => {
                neighbourhood.iter().map(|&(dy, dx)| block.at((pixel.0 + dy, pixel.1 + dx))).fold(0.0, f32::max)
            }
        }
    }
}

/// A pixel whose mask exceeds this is taken (the original's `ceil(mask - 0.3)`).
pub(super) const TAKEN: f32 = 0.3;
/// A new paddle is refused where its clearance zone and the mask add up to this.
pub(super) const OVERLAP: f32 = 1.8;

#[derive(Debug, Clone)]
pub(super) struct Occupancy {
    size: usize,
    values: Vec<f32>,
    taken: usize,
    /// While a distractor grows: the values it overwrote, to erase it if it gets stuck.
    journal: Option<Vec<(usize, f32)>>,
}

impl Occupancy {
    /// Empty but for a taken border `padding` pixels wide.
    pub(super) fn with_border(size: usize, padding: usize) -> Self {
        let mut mask = Occupancy { size, values: vec![0.0; size * size], taken: 0, journal: None };
        for row in 0..size {
            for column in 0..size {
                let border = row.min(column).min(size - 1 - row).min(size - 1 - column) < padding;
                if border {
                    mask.raise(row * size + column, 1.0);
                }
            }
        }
        mask
    }

    /// The mask at `pixel`; outside the image everything is taken.
    pub(super) fn at(&self, (row, column): Pixel) -> f32 {
        let n = self.size as i32;
        if (0..n).contains(&row) && (0..n).contains(&column) {
            self.values[row as usize * self.size + column as usize]
        } else {
            1.0
        }
    }

    fn raise(&mut self, index: usize, value: f32) {
        let old = self.values[index];
        if value > old {
            if let Some(journal) = &mut self.journal {
                journal.push((index, old));
            }
            if old <= TAKEN && value > TAKEN {
                self.taken += 1;
            }
            self.values[index] = value;
        }
    }

    /// Marks a paddle's clearance zone.
    pub(super) fn mark(&mut self, zone: &Zone) {
        match zone {
            Zone::Band { paddle, half_width } => {
                for (index, covered) in paddle.covered_pixels(*half_width, self.size) {
                    if covered > 0.0 {
                        self.raise(index, covered);
                    }
                }
            }
            Zone::Resampled(block) => {
                for ((row, column), covered) in block.lit_pixels(self.size) {
                    self.raise(row as usize * self.size + column as usize, covered);
                }
            }
        }
    }

    pub(super) fn free_fraction(&self) -> f64 {
        1.0 - self.taken as f64 / self.values.len() as f64
    }

    pub(super) fn begin(&mut self) {
        self.journal = Some(Vec::new());
    }

    pub(super) fn commit(&mut self) {
        self.journal = None;
    }

    pub(super) fn roll_back(&mut self) {
        for (index, old) in self.journal.take().unwrap_or_default().into_iter().rev() {
            if self.values[index] > TAKEN && old <= TAKEN {
                self.taken -= 1;
            }
            self.values[index] = old;
        }
    }
}
