//! Running the encoder's blocks as a funnel, the sequence pooled between stages, and
//! counting their positions: what the classifier's stack calls. Kept out of `funnel.rs`,
//! whose tests build whole classifiers, and apart from the settings, which sit below the
//! registry that the encoder's blocks hold.

use burn::prelude::*;

use super::settings::FunnelSettings;
use crate::attention::blocks::append_zeros;
use crate::encoder::EncoderBlock;

/// Positions after pooling `len` (the first `leading` kept) with `stride`.
fn pooled_length(len: usize, leading: usize, stride: usize) -> usize {
    let leading = leading.min(len);
    leading + (len - leading).div_ceil(stride)
}

/// Runs `blocks` as a funnel: `x: [batch, len, d_model]`, `padding: [batch, len]`, the
/// first `leading` positions (the CLS vector) never pooled -> the last stage's sequence and
/// its padding, `[batch, len', d_model]` and `[batch, len']`.
pub fn encode(
    blocks: &[EncoderBlock],
    settings: &FunnelSettings,
    leading: usize,
    mut x: Tensor<3>,
    mut padding: Tensor<2, Bool>,
) -> (Tensor<3>, Tensor<2, Bool>) {
    for (index, block) in blocks.iter().enumerate() {
        if settings.pools_before(index) {
            let (pooled, pooled_padding) = pool(x.clone(), padding.clone(), leading, settings.stride);
            x = block.forward_cross(pooled, x, padding);
            padding = pooled_padding;
        } else {
            x = block.forward(x, padding.clone());
        }
    }
    (x, padding)
}

/// Mean pooling with window and stride `stride` over the positions after the first
/// `leading`, which are kept in front: each window averages its real positions; a window
/// without one is padding. `x: [batch, len, d]`, `padding: [batch, len]` ->
/// `[batch, leading + ceil((len - leading) / stride), d]` and its padding.
pub fn pool(x: Tensor<3>, padding: Tensor<2, Bool>, leading: usize, stride: usize) -> (Tensor<3>, Tensor<2, Bool>) {
    let [batch, len, d] = x.dims();
    let leading = leading.min(len);
    let rest = len - leading;
    if rest == 0 {
        return (x, padding);
    }
    let windows = pooled_length(len, leading, stride) - leading;
    let filled = windows * stride;
    let real = append_zeros(padding.clone().slice([0..batch, leading..len]).bool_not().float(), 1, filled); // [batch, filled]
    let body = append_zeros(x.clone().slice([0..batch, leading..len]), 1, filled);
    let real = real.reshape([batch, windows, stride, 1]);
    let count = real.clone().sum_dim(2); // [batch, windows, 1, 1]
    let pooled = (body.reshape([batch, windows, stride, d]) * real).sum_dim(2).div(count.clone().clamp_min(1.0));
    let pooled = pooled.reshape([batch, windows, d]);
    let pooled_padding = count.equal_elem(0.0).reshape([batch, windows]);
    match leading {
        0 => (pooled, pooled_padding),
        _ => (
            Tensor::cat(vec![x.slice([0..batch, 0..leading]), pooled], 1),
            Tensor::cat(vec![padding.slice([0..batch, 0..leading]), pooled_padding], 1),
        ),
    }
}

/// The query and key positions of each block's attention, for counting its work: the first
/// stage's blocks over the whole sequence, a stage's first block from the pooled sequence
/// over the unpooled one, then the pooled sequence over itself.
pub fn block_positions(settings: &FunnelSettings, layers: usize, leading: usize, positions: usize) -> Vec<(usize, usize)> {
    let mut current = positions;
    (0..layers)
        .map(|index| {
            if settings.pools_before(index) {
                let pooled = pooled_length(current, leading, settings.stride);
                let pair = (pooled, current);
                current = pooled;
                pair
            } else {
                (current, current)
            }
        })
        .collect()
}
