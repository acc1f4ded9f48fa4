//! The occupancy mask: how much of each pixel the clearance zones of paddles cover.

use super::geometry::{Paddle, Pixel};

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

    /// Marks a paddle's clearance zone (half-width `clearance` around its stroke).
    pub(super) fn mark(&mut self, paddle: &Paddle, clearance: f64) {
        for (index, zone) in paddle.covered_pixels(clearance, self.size) {
            if zone > 0.0 {
                self.raise(index, zone);
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
