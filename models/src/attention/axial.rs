//! Axial attention: attention along the rows of a 2D layout of the sequence, then along
//! its columns.
//!
//! Paper: Ho, Kalchbrenner, Weissenborn and Salimans, "Axial Attention in
//! Multidimensional Transformers", 2019 (arXiv:1912.12180).
//! Family: fixed pattern.
//! Cost: O(n (r + c) d) time and O(n (r + c)) memory per head for a layout of r rows of
//! c positions; O(n sqrt(n)) for a square-ish layout.
//!
//! The sequence is laid out row by row in rows of `row_length` positions (for images, the
//! image's rows; otherwise floor(sqrt(max_length)), a square-ish factorisation fixed
//! from `max_length` so that padding never moves the layout). Each position first
//! attends within its row; then it attends within its column, over the row results of
//! that column. The two steps share the layer's queries and keys, and the column step
//! mixes the row step's outputs, so that the composition `A_column (A_row V)` reaches
//! every position in one layer (the paper stacks the two axes as separate layers, each
//! with its own projections; composing them inside the layer keeps the one-layer
//! interface of the other mechanisms).
//!
//! A classifier that pools by CLS puts its CLS vector before the sequence: `leading`
//! such positions stand outside the layout, so that the image's rows stay the layout's
//! rows. They attend to every position, and every position attends to them beside its
//! row (one softmax over the row and the leading keys), as a global token.

use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::blocks::{Blocks, Leading, after_leading, block_attention, block_scores, joint_softmax, unblock};
use super::flops::LayerShape;
use super::heads::{HeadProjections, MASKED_SCORE};
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Scale, Settings, fit, within};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n sqrt(n)) time, O(n sqrt(n)) memory";

#[derive(Config, Debug)]
pub struct AxialAttentionConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// Longest sequence: the default row length is derived from it.
    pub max_length: usize,
    /// Positions per row; default: floor(sqrt(max_length)) (32 for a 32x32 image).
    pub row_length: Option<usize>,
    /// Positions before the layout (the CLS vector), attended by and attending to all.
    #[config(default = 0)]
    pub leading: usize,
    /// Dropout on the attention weights (of both steps).
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl AxialAttentionConfig {
    /// The row length in use: the configured one, or floor(sqrt(max_length)).
    pub fn resolved_row_length(&self) -> usize {
        self.row_length.unwrap_or_else(|| (self.max_length as f64).sqrt().floor() as usize).max(1)
    }

    pub fn init(&self, device: &Device) -> AxialAttention {
        let row_length = self.resolved_row_length();
        AxialAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            row_length,
            leading: self.leading,
        }
    }
}

/// Axial attention's own settings in a run's configuration
/// (`"attention": {"axial": {"row_length": 32}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AxialSettings {
    /// Positions per row.
    pub row_length: usize,
}

impl Settings for AxialSettings {
    type Layer = AxialAttention;
    const MODEL: ModelCard =
        ModelCard { name: "axial", title: "Axial Transformer (Ho et al. 2019)", family: "fixed pattern", cost: COST };

    fn defaults(max_length: usize) -> AxialSettings {
        AxialSettings { row_length: AxialAttentionConfig::new(1, 1, max_length).resolved_row_length() }
    }

    fn fitted_to(self, positions: usize) -> AxialSettings {
        AxialSettings { row_length: fit(self.row_length, positions) }
    }

    /// The row length derived from the new length.
    fn scaled(self, scale: &Scale) -> AxialSettings {
        AxialSettings::defaults(scale.to)
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        within("row_length", self.row_length, positions)
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.row_length)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> AxialAttention {
        AxialAttentionConfig::new(layer.d_model, layer.heads, layer.max_length)
            .with_qkv_dim(layer.qkv_dim)
            .with_leading(layer.leading)
            .with_row_length(Some(self.row_length))
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct AxialAttention {
    pub projections: HeadProjections,
    pub dropout: Dropout,
    pub row_length: usize,
    pub leading: usize,
}

impl AxialAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let qkv = self.projections.project(x);
        let context = after_leading(qkv, padding, self.leading, &self.dropout, |q, k, v, padding, leading| {
            self.rows_then_columns(q, k, v, padding, leading)
        });
        self.projections.combine(context)
    }

    /// The two steps over the layout: `q, k, v: [batch, heads, len, d]` -> `[batch, heads, len, d]`.
    fn rows_then_columns(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        padding: Tensor<2, Bool>,
        leading: Option<Leading>,
    ) -> Tensor<4> {
        let batch = q.dims()[0];
        // Rows are blocks: [batch, heads, rows, row_length, d].
        let rows = Blocks::new(q, k, v, padding, self.row_length);
        let (count, row_length) = (rows.count(), rows.size());
        let row_context = match &leading {
            None => {
                let mask = rows.key_mask();
                block_attention(rows.queries.clone(), rows.keys.clone(), rows.values, mask, &self.dropout)
            }
            // One softmax over the row and the leading keys.
            Some(leading) => {
                let row_scores = block_scores(rows.queries.clone(), rows.keys.clone()).mask_fill(rows.key_mask(), MASKED_SCORE);
                let weights = joint_softmax(vec![row_scores, leading.scores(rows.queries.clone())], &self.dropout);
                weights[0].clone().matmul(rows.values) + weights[1].clone().matmul(leading.values.clone())
            }
        };

        // Columns: the same layout transposed, [batch, heads, row_length, rows, d], with
        // the row step's outputs as values.
        let column_padding = rows.padding.clone().swap_dims(1, 2).reshape([batch, 1, row_length, 1, count]);
        let context = block_attention(
            rows.queries.swap_dims(2, 3),
            rows.keys.swap_dims(2, 3),
            row_context.swap_dims(2, 3),
            column_padding,
            &self.dropout,
        )
        .swap_dims(2, 3);
        unblock(context, rows.len)
    }
}

impl AttentionLayer for AxialAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// Work of one forward ([`super::flops`]): the projections, the leading rows, and every
/// position after them over its row (`r` keys, plus the leading ones) and then over its
/// column (one key per row): `8 b n D d + 4 b n (r + n / r) d` and the leading part.
pub fn forward_flops(shape: &LayerShape, row_length: usize) -> f64 {
    let r = row_length.max(1);
    let rows = super::blocks::block_count(shape.after_leading(), r) as f64;
    let filled = rows * r as f64;
    shape.projections(shape.n()) + shape.attend(filled, r as f64) + shape.attend(filled, rows) + shape.leading_rows()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::*;
    use crate::attention::full_layer::FullAttention;

    const D_MODEL: usize = 16;

    fn axial(row_length: usize) -> AxialAttention {
        AxialAttentionConfig::new(D_MODEL, 2, 64).with_row_length(Some(row_length)).with_dropout(0.0).init(&Device::flex())
    }

    #[test]
    fn a_leading_position_is_global_and_keeps_the_rows_of_the_sequence_after_it() {
        let device = Device::flex();
        let plain = axial(4);
        let with_cls = AxialAttention { leading: 1, ..plain.clone() };
        // With the leading position masked out, the rest is the plain layout of the
        // sequence after it: rows of 4 starting at position 1.
        let x = random_input(2, 13, D_MODEL, &device);
        let grid = x.clone().narrow(1, 1, 12);
        let padding = padding_after(&[13, 13], 13, &device);
        let masked_lead = padding.clone().slice_assign([0..2, 0..1], Tensor::<2, Bool>::full([2, 1], true, &device));
        let expected = values(plain.forward(grid, padding.clone().narrow(1, 1, 12)));
        let got = values(with_cls.forward(x.clone(), masked_lead).narrow(1, 1, 12));
        assert_close(&got, &expected, 1e-5, "rows after the leading position");
        // In one row, the leading position and the row see every key: full attention.
        let one_row = AxialAttention { row_length: 16, ..with_cls };
        let full = FullAttention { projections: plain.projections.clone(), dropout: DropoutConfig::new(0.0).init() };
        let padding = padding_after(&[13, 8], 13, &device);
        let expected = full.forward(x.clone(), padding.clone());
        assert_close_at_real_tokens(one_row.forward(x, padding), expected, &[13, 8], 1e-4, "one row with a leading position");
    }

    #[test]
    fn axial_attention_with_a_single_row_equals_full_attention() {
        let device = Device::flex();
        let attention = axial(16);
        let full = FullAttention { projections: attention.projections.clone(), dropout: DropoutConfig::new(0.0).init() };
        let x = random_input(2, 14, D_MODEL, &device);
        let padding = padding_after(&[14, 9], 14, &device);
        let expected = values(full.forward(x.clone(), padding.clone()));
        assert_close(&values(attention.forward(x, padding)), &expected, 1e-4, "one row vs full");
    }

    #[test]
    fn axial_attention_equals_column_attention_of_masked_row_attention() {
        let device = Device::flex();
        let (len, row) = (23, 5);
        let attention = axial(row);
        let x = random_input(2, len, D_MODEL, &device);
        let real = [23, 17];
        let padding = padding_after(&real, len, &device);
        let (q, k, v) = attention.projections.project(x.clone());
        let same_row = pattern_from_fn(2, len, &device, |_, i, j| i / row == j / row);
        let same_column = pattern_from_fn(2, len, &device, |_, i, j| i % row == j % row);
        let row_context = pattern_attention(q.clone(), k.clone(), v, same_row, padding.clone());
        let expected = attention.projections.combine(pattern_attention(q, k, row_context, same_column, padding.clone()));
        assert_close_at_real_tokens(attention.forward(x, padding), expected, &real, 1e-4, "axial vs rows then columns");
    }

    #[test]
    fn axial_attention_outputs_of_real_tokens_ignore_padding() {
        let attention = axial(4);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), D_MODEL, &[10, 22, 3], 22, &Device::flex());
    }

    #[test]
    fn axial_attention_default_row_length_is_the_floor_of_the_square_root_of_max_length() {
        // A 32x32 image and its CLS vector: 1025 positions, rows of 32.
        let attention = AxialAttentionConfig::new(D_MODEL, 2, 1025).init(&Device::flex());
        assert_eq!(attention.row_length, 32);
        let attention = AxialAttentionConfig::new(D_MODEL, 2, 1023).init(&Device::flex());
        assert_eq!(attention.row_length, 31);
    }

    #[test]
    fn axial_attention_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        let attention = AxialAttentionConfig::new(D_MODEL, 2, 16).init(&device);
        let x = random_input(2, 14, D_MODEL, &device);
        let loss = attention.forward(x, padding_after(&[14, 10], 14, &device)).sum();
        assert_eq!(assert_finite_gradients(&attention, &loss.backward()), 4);
    }
}
