//! Block tools shared by the pattern-based mechanisms (local, Sparse Transformer,
//! Longformer, BigBird, axial, Reformer, Sinkhorn), and by those that cut the sequence
//! into segments or windows (Transformer-XL, the Compressive Transformer, memory-compressed
//! attention).
//!
//! A pattern mechanism never builds the `[len, len]` score matrix. It pads the sequence
//! to a whole number of blocks (the added positions count as padding), cuts queries, keys
//! and values into `[batch, heads, blocks, block, d_head]`, brings to each query block the
//! few key blocks its pattern needs (itself, its neighbours, chosen blocks), and runs
//! softmax attention over those keys only. Time and memory then grow with
//! `len * keys per query`, not with `len^2`.

use burn::nn::{Dropout, Linear};
use burn::prelude::*;
use burn::tensor::TensorData;

use super::heads::{MASKED_SCORE, attention_weights};
use super::softmax::softmax_dropout;

/// Queries, keys and values padded to whole blocks and cut into them.
#[derive(Debug, Clone)]
pub struct Blocks {
    /// `[batch, heads, blocks, block, d_head]`.
    pub queries: Tensor<5>,
    /// `[batch, heads, blocks, block, d_head]`.
    pub keys: Tensor<5>,
    /// `[batch, heads, blocks, block, d_head]`.
    pub values: Tensor<5>,
    /// `[batch, blocks, block]`, true at padding (the caller's and the added positions).
    pub padding: Tensor<3, Bool>,
    /// Length of the sequence before the blocks were filled up.
    pub len: usize,
}

impl Blocks {
    /// `q, k, v: [batch, heads, len, d_head]`, `padding: [batch, len]`, for blocks of
    /// `block` positions; the last block is filled up with padding.
    pub fn new(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, padding: Tensor<2, Bool>, block: usize) -> Self {
        let len = q.dims()[2];
        let padded_len = block_count(len, block) * block;
        Self {
            queries: split_blocks(pad_positions(q, padded_len), block),
            keys: split_blocks(pad_positions(k, padded_len), block),
            values: split_blocks(pad_positions(v, padded_len), block),
            padding: padding_blocks(padding, block),
            len,
        }
    }

    /// Number of blocks.
    pub fn count(&self) -> usize {
        self.queries.dims()[2]
    }

    /// Positions per block.
    pub fn size(&self) -> usize {
        self.queries.dims()[3]
    }

    /// Padding of each block's own keys, as a score mask `[batch, 1, blocks, 1, block]`.
    pub fn key_mask(&self) -> Tensor<5, Bool> {
        key_mask(self.padding.clone())
    }

    /// Padding of the keys of [`neighbour_blocks`] (`radius` blocks on each side, blocks
    /// beyond the ends count as padding): `[batch, 1, blocks, 1, (2 radius + 1) block]`.
    pub fn neighbour_key_mask(&self, radius: usize) -> Tensor<5, Bool> {
        let parts = offsets(radius).map(|offset| shift_padding(self.padding.clone(), offset)).collect();
        key_mask(Tensor::cat(parts, 2))
    }
}

/// Number of blocks of `block` positions that cover `len` positions.
pub fn block_count(len: usize, block: usize) -> usize {
    assert!(block > 0, "a block must hold at least one position");
    len.div_ceil(block).max(1)
}

/// The length LRA's released code fills a sequence up to before cutting it into blocks of
/// `block` (`jnp.pad` by `block - len % block`): a whole block more when `block` divides
/// `len`.
pub fn lra_filled(len: usize, block: usize) -> usize {
    len + block - len % block
}

/// Appends zero positions: `[batch, heads, len, d]` -> `[batch, heads, padded_len, d]`.
pub fn pad_positions(x: Tensor<4>, padded_len: usize) -> Tensor<4> {
    append_zeros(x, 2, padded_len)
}

/// Appends zeros along `dim` up to `filled` (nothing when it is that long already).
pub fn append_zeros<const D: usize>(x: Tensor<D>, dim: usize, filled: usize) -> Tensor<D> {
    let mut shape = x.dims();
    if filled <= shape[dim] {
        return x;
    }
    shape[dim] = filled - shape[dim];
    let zeros = Tensor::zeros(shape, &x.device());
    Tensor::cat(vec![x, zeros], dim)
}

/// Which windows of `window` consecutive positions hold no real one (padding, and the
/// positions filling the last window up): `padding: [batch, len]` -> `[batch,
/// ceil(len / window)]`, true for a window of padding alone.
pub fn empty_windows(padding: Tensor<2, Bool>, window: usize) -> Tensor<2, Bool> {
    let [batch, len] = padding.dims();
    padding_blocks(padding, window).all_dim(2).reshape([batch, block_count(len, window)])
}

/// A strided convolution of kernel and stride `window`, as one product per window (its
/// positions side by side, `[window * width]`): `x: [.., len, width]`, filled up with
/// zeros to whole windows -> `[.., ceil(len / window), d_output]`, for `convolution:
/// [window * width] -> [d_output]`.
pub fn compress<const D: usize>(x: Tensor<D>, convolution: &Linear, window: usize) -> Tensor<D> {
    let mut shape = x.dims();
    let (len, width) = (shape[D - 2], shape[D - 1]);
    let windows = block_count(len, window);
    shape[D - 2] = windows;
    shape[D - 1] = window * width;
    convolution.forward(append_zeros(x, D - 2, windows * window).reshape(shape))
}

/// Marks appended positions as padding: `[batch, len]` -> `[batch, padded_len]`.
pub fn pad_padding(padding: Tensor<2, Bool>, padded_len: usize) -> Tensor<2, Bool> {
    let [batch, len] = padding.dims();
    if padded_len <= len {
        return padding;
    }
    let extra = Tensor::<2, Bool>::full([batch, padded_len - len], true, &padding.device());
    Tensor::cat(vec![padding, extra], 1)
}

/// The padding of each block of `block` positions, the last one filled up with padding:
/// `[batch, len]` -> `[batch, blocks, block]`.
pub fn padding_blocks(padding: Tensor<2, Bool>, block: usize) -> Tensor<3, Bool> {
    let len = padding.dims()[1];
    split_padding(pad_padding(padding, block_count(len, block) * block), block)
}

/// `[batch, heads, blocks * block, d]` -> `[batch, heads, blocks, block, d]`.
pub fn split_blocks(x: Tensor<4>, block: usize) -> Tensor<5> {
    let [batch, heads, len, d] = x.dims();
    x.reshape([batch, heads, len / block, block, d])
}

/// `[batch, blocks * block]` -> `[batch, blocks, block]`.
pub fn split_padding(padding: Tensor<2, Bool>, block: usize) -> Tensor<3, Bool> {
    let [batch, len] = padding.dims();
    padding.reshape([batch, len / block, block])
}

/// Back from blocks, without the filled-up positions:
/// `[batch, heads, blocks, block, d]` -> `[batch, heads, len, d]`.
pub fn unblock(x: Tensor<5>, len: usize) -> Tensor<4> {
    let [batch, heads, blocks, block, d] = x.dims();
    let x = x.reshape([batch, heads, blocks * block, d]);
    if blocks * block == len { x } else { x.narrow(2, 0, len) }
}

/// LRA's grouping of a sequence into `groups` blocks (its Local and Sinkhorn attention,
/// `local_attention.py:315-323`, `sinkhorn_attention.py:343-348`): a row-major reshape to
/// `[size, groups]`, so that group `g` holds the strided positions `g, g + groups, g +
/// 2 groups, ...`: `[batch, heads, groups * size, d]` -> `[batch, heads, groups, size, d]`.
pub fn strided_groups(x: Tensor<4>, groups: usize) -> Tensor<5> {
    let [batch, heads, len, d] = x.dims();
    x.reshape([batch, heads, len / groups, groups, d]).swap_dims(2, 3)
}

/// Back from [`strided_groups`]: `[batch, heads, groups, size, d]` -> `[batch, heads,
/// groups * size, d]`.
pub fn ungroup_strided(x: Tensor<5>) -> Tensor<4> {
    let [batch, heads, groups, size, d] = x.dims();
    x.swap_dims(2, 3).reshape([batch, heads, groups * size, d])
}

/// LRA's padding mask for [`strided_groups`]: it cuts the mask contiguously
/// (`local_attention.py:342-355`, `sinkhorn_attention.py:401-417`), so the pair (slot `s`,
/// slot `t`) of group `g` is masked where position `g * size + s` or `g * size + t` is
/// padding, whichever tokens the group holds: `[batch, groups * size]` -> `[batch, 1,
/// groups, size, size]`.
pub fn contiguous_pair_mask(padding: Tensor<2, Bool>, groups: usize) -> Tensor<5, Bool> {
    let [batch, len] = padding.dims();
    let size = len / groups;
    let rows = padding.reshape([batch, 1, groups, size, 1]);
    let shape = [batch, 1, groups, size, size];
    rows.clone().expand(shape).bool_or(rows.swap_dims(3, 4).expand(shape))
}

/// Padding `[batch, blocks, keys]` as a score mask `[batch, 1, blocks, 1, keys]`, for scores
/// `[batch, heads, blocks, queries, keys]`.
pub fn key_mask(padding: Tensor<3, Bool>) -> Tensor<5, Bool> {
    let [batch, blocks, keys] = padding.dims();
    padding.reshape([batch, 1, blocks, 1, keys])
}

fn offsets(radius: usize) -> impl Iterator<Item = isize> {
    let radius = radius as isize;
    -radius..=radius
}

/// Moves blocks along `dim`: block `i` of the result is block `i + offset` of `x`, zeros
/// where that block does not exist.
pub fn shift_blocks<const D: usize>(x: Tensor<D>, dim: usize, offset: isize) -> Tensor<D> {
    let blocks = x.dims()[dim];
    let moved = offset.unsigned_abs().min(blocks);
    if moved == 0 {
        return x;
    }
    let mut zeros_shape = x.dims();
    zeros_shape[dim] = moved;
    let zeros = Tensor::zeros(zeros_shape, &x.device());
    if moved == blocks {
        return zeros;
    }
    if offset > 0 {
        Tensor::cat(vec![x.narrow(dim, moved, blocks - moved), zeros], dim)
    } else {
        Tensor::cat(vec![zeros, x.narrow(dim, 0, blocks - moved)], dim)
    }
}

/// [`shift_blocks`] for padding `[batch, blocks, block]`: blocks that do not exist are padding.
pub fn shift_padding(padding: Tensor<3, Bool>, offset: isize) -> Tensor<3, Bool> {
    let [batch, blocks, block] = padding.dims();
    let moved = offset.unsigned_abs().min(blocks);
    if moved == 0 {
        return padding;
    }
    let missing = Tensor::<3, Bool>::full([batch, moved, block], true, &padding.device());
    if moved == blocks {
        return missing;
    }
    if offset > 0 {
        Tensor::cat(vec![padding.narrow(1, moved, blocks - moved), missing], 1)
    } else {
        Tensor::cat(vec![missing, padding.narrow(1, 0, blocks - moved)], 1)
    }
}

/// The blocks within `radius` of each block, side by side along the positions:
/// `[batch, heads, blocks, block, d]` -> `[batch, heads, blocks, (2 radius + 1) block, d]`,
/// block `i - radius` first, zeros beyond the ends (masked by [`Blocks::neighbour_key_mask`]).
pub fn neighbour_blocks(x: Tensor<5>, radius: usize) -> Tensor<5> {
    let parts = offsets(radius).map(|offset| shift_blocks(x.clone(), 2, offset)).collect();
    Tensor::cat(parts, 3)
}

/// For the keys of [`neighbour_blocks`]: which ones lie more than `window` positions from
/// the query, `[1, 1, 1, block, (2 radius + 1) block]`.
pub fn outside_window(block: usize, radius: usize, window: usize, device: &Device) -> Tensor<5, Bool> {
    let keys = (2 * radius + 1) * block;
    mask_from_fn([1, 1, 1, block, keys], device, |[_, _, _, query, key]| {
        // The key block starts `radius` blocks before the query's block.
        let distance = (key as isize - (radius * block) as isize - query as isize).unsigned_abs();
        distance > window
    })
}

/// Gathers `per_query` key blocks for every query block, chosen per head:
/// `x: [batch, heads, blocks, block, d]`, `choice[(head * query_blocks + i) * per_query + s]`
/// = the `s`-th block for query block `i` of `head` -> `[batch, heads, query_blocks,
/// per_query * block, d]`.
pub fn gather_blocks(x: Tensor<5>, choice: &[usize], per_query: usize) -> Tensor<5> {
    let [batch, heads, blocks, block, d] = x.dims();
    let query_blocks = choice.len() / (heads * per_query);
    let index = head_major_index(choice, heads, blocks, per_query, &x.device());
    x.reshape([batch, heads * blocks, block, d]).select(1, index).reshape([batch, heads, query_blocks, per_query * block, d])
}

/// [`gather_blocks`] for padding `[batch, blocks, block]` -> `[batch, heads, query_blocks,
/// per_query * block]`.
pub fn gather_padding(padding: Tensor<3, Bool>, heads: usize, choice: &[usize], per_query: usize) -> Tensor<4, Bool> {
    let [batch, blocks, block] = padding.dims();
    let query_blocks = choice.len() / (heads * per_query);
    let index = head_major_index(choice, heads, blocks, per_query, &padding.device());
    padding
        .unsqueeze_dim::<4>(1)
        .expand([batch, heads, blocks, block])
        .reshape([batch, heads * blocks, block])
        .select(1, index)
        .reshape([batch, heads, query_blocks, per_query * block])
}

/// `choice` (block ids per head) as indices into the `heads * blocks` blocks of all heads.
fn head_major_index(choice: &[usize], heads: usize, blocks: usize, per_query: usize, device: &Device) -> Tensor<1, Int> {
    let per_head = choice.len() / heads;
    assert_eq!(per_head * heads, choice.len(), "the choice must list the same number of blocks for every head");
    assert_eq!(per_head % per_query, 0, "the choice must list {per_query} blocks per query block");
    let index: Vec<i64> = choice.iter().enumerate().map(|(at, &block)| ((at / per_head) * blocks + block) as i64).collect();
    Tensor::from_data(TensorData::new(index, [choice.len()]), device)
}

/// Positions before a block layout (a classifier's CLS vector), as keys that every
/// block's queries see beside their own: global positions that do not shift the layout.
#[derive(Debug, Clone)]
pub struct Leading {
    /// `[batch, heads, 1, lead, d_head]`.
    pub keys: Tensor<5>,
    /// `[batch, heads, 1, lead, d_head]`.
    pub values: Tensor<5>,
    /// `[batch, 1, 1, 1, lead]`, true at padding.
    pub padding: Tensor<5, Bool>,
}

impl Leading {
    /// The heads `first..first + count`.
    pub fn heads(&self, first: usize, count: usize) -> Leading {
        Leading {
            keys: self.keys.clone().narrow(1, first, count),
            values: self.values.clone().narrow(1, first, count),
            padding: self.padding.clone(),
        }
    }

    /// Scores of block queries `[.., queries, d]` against the leading keys, padding masked.
    pub fn scores(&self, queries: Tensor<5>) -> Tensor<5> {
        block_scores(queries, self.keys.clone()).mask_fill(self.padding.clone(), MASKED_SCORE)
    }
}

/// Attention over a layout that starts after `lead` positions: `attend` computes the
/// context of the positions after them (`q, k, v: [batch, heads, len - lead, d]`, their
/// padding, and the leading positions as [`Leading`] keys when there are any), and the
/// leading positions attend to every position. Returns `[batch, heads, len, d]`.
pub fn after_leading(
    (q, k, v): (Tensor<4>, Tensor<4>, Tensor<4>),
    padding: Tensor<2, Bool>,
    lead: usize,
    dropout: &Dropout,
    attend: impl FnOnce(Tensor<4>, Tensor<4>, Tensor<4>, Tensor<2, Bool>, Option<Leading>) -> Tensor<4>,
) -> Tensor<4> {
    let [batch, heads, len, d] = q.dims();
    let lead = lead.min(len);
    if lead == 0 {
        return attend(q, k, v, padding, None);
    }
    let rest = |t: Tensor<4>| t.narrow(2, lead, len - lead);
    let leading = Leading {
        keys: k.clone().narrow(2, 0, lead).reshape([batch, heads, 1, lead, d]),
        values: v.clone().narrow(2, 0, lead).reshape([batch, heads, 1, lead, d]),
        padding: padding.clone().narrow(1, 0, lead).reshape([batch, 1, 1, 1, lead]),
    };
    let context =
        attend(rest(q.clone()), rest(k.clone()), rest(v.clone()), padding.clone().narrow(1, lead, len - lead), Some(leading));
    let weights = attention_weights(q.narrow(2, 0, lead), k, Some(padding), Some(dropout));
    Tensor::cat(vec![weights.matmul(v), context], 2)
}

/// `q k^T / sqrt(d)` for every block: `q: [.., queries, d]`, `k: [.., keys, d]` ->
/// `[.., queries, keys]`; leading dimensions of size 1 broadcast.
pub fn block_scores(q: Tensor<5>, k: Tensor<5>) -> Tensor<5> {
    let d = q.dims()[4];
    q.matmul(k.swap_dims(3, 4)).mul_scalar(1.0 / (d as f64).sqrt())
}

/// One softmax over the keys of several parts that share their queries (the parts'
/// scores `[.., queries, keys_i]`, already masked), with dropout on the weights; the
/// weights come back split into the same parts.
pub fn joint_softmax(parts: Vec<Tensor<5>>, dropout: &Dropout) -> Vec<Tensor<5>> {
    let sizes: Vec<usize> = parts.iter().map(|part| part.dims()[4]).collect();
    let weights = softmax_dropout(Tensor::cat(parts, 4), Some(dropout));
    let mut start = 0;
    sizes
        .into_iter()
        .map(|size| {
            let part = weights.clone().narrow(4, start, size);
            start += size;
            part
        })
        .collect()
}

/// Softmax attention within blocks: `q: [.., queries, d]`, `k, v: [.., keys, d]`,
/// `masked` broadcasting to `[.., queries, keys]` (true = no attention) -> `[.., queries, d]`.
pub fn block_attention(q: Tensor<5>, k: Tensor<5>, v: Tensor<5>, masked: Tensor<5, Bool>, dropout: &Dropout) -> Tensor<5> {
    let weights = softmax_dropout(block_scores(q, k).mask_fill(masked, MASKED_SCORE), Some(dropout));
    weights.matmul(v)
}

/// Logical or of masks that broadcast to one shape (each dimension equal or 1).
pub fn any_of<const D: usize>(masks: Vec<Tensor<D, Bool>>) -> Tensor<D, Bool> {
    let mut shape = [1; D];
    for mask in &masks {
        for (size, dim) in shape.iter_mut().zip(mask.dims()) {
            *size = (*size).max(dim);
        }
    }
    masks.into_iter().map(|mask| mask.expand(shape)).reduce(|a, b| a.bool_or(b)).expect("any_of needs at least one mask")
}

/// `log(sum(exp(x)))` along `dim`, keeping it as size 1.
pub fn log_sum_exp<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    // The maximum only keeps exp() in range; the result does not depend on it.
    let max = x.clone().max_dim(dim).detach();
    max.clone() + (x - max).exp().sum_dim(dim).log()
}

/// A constant mask of the given shape, true where `masked(index)` holds.
pub fn mask_from_fn<const D: usize>(shape: [usize; D], device: &Device, masked: impl Fn([usize; D]) -> bool) -> Tensor<D, Bool> {
    let count: usize = shape.iter().product();
    let values: Vec<bool> = (0..count)
        .map(|flat| {
            let mut index = [0; D];
            let mut rest = flat;
            for dim in (0..D).rev() {
                index[dim] = rest % shape[dim];
                rest /= shape[dim];
            }
            masked(index)
        })
        .collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    fn bools<const D: usize>(t: Tensor<D, Bool>) -> Vec<bool> {
        t.into_data().iter::<bool>().collect()
    }

    /// `[1, 1, blocks, block, 1]` holding the positions 0, 1, 2, ...
    fn positions(blocks: usize, block: usize) -> Tensor<5> {
        let device = Device::flex();
        let data: Vec<f32> = (0..blocks * block).map(|p| p as f32).collect();
        Tensor::from_data(TensorData::new(data, [1, 1, blocks, block, 1]), &device)
    }

    #[test]
    fn blocks_fill_up_the_last_block_with_padding() {
        let device = Device::flex();
        let x = Tensor::<4>::ones([1, 1, 5, 2], &device);
        let padding = Tensor::<2, Bool>::from_data(TensorData::new(vec![false, false, false, false, true], [1, 5]), &device);
        let blocks = Blocks::new(x.clone(), x.clone(), x, padding, 3);
        assert_eq!(blocks.queries.dims(), [1, 1, 2, 3, 2]);
        assert_eq!(bools(blocks.padding.clone()), [false, false, false, false, true, true]);
        assert_eq!(values(blocks.keys.clone()), [1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 0., 0.]);
        assert_eq!(unblock(blocks.values, 5).dims(), [1, 1, 5, 2]);
    }

    #[test]
    fn neighbour_blocks_hold_the_previous_own_and_next_block() {
        let neighbours = values(neighbour_blocks(positions(3, 2), 1));
        // Block 0: nothing before it, itself, block 1; block 2: block 1, itself, nothing.
        assert_eq!(neighbours, [0., 0., 0., 1., 2., 3., 0., 1., 2., 3., 4., 5., 2., 3., 4., 5., 0., 0.]);
    }

    #[test]
    fn neighbour_key_mask_masks_missing_blocks_and_padding() {
        let device = Device::flex();
        let x = Tensor::<4>::zeros([1, 1, 4, 1], &device);
        let padding = Tensor::<2, Bool>::from_data(TensorData::new(vec![false, false, false, true], [1, 4]), &device);
        let mask = bools(Blocks::new(x.clone(), x.clone(), x, padding, 2).neighbour_key_mask(1));
        assert_eq!(mask, [true, true, false, false, false, true, false, false, false, true, true, true]);
    }

    #[test]
    fn outside_window_measures_the_distance_between_query_and_key() {
        let device = Device::flex();
        let mask = bools(outside_window(2, 1, 1, &device));
        // Query 0 (position 2 of the middle block) reaches keys at positions 1..=3,
        // query 1 (position 3) reaches 2..=4, out of the neighbour positions 0..6.
        assert_eq!(mask, [true, false, false, false, true, true, true, true, false, false, false, true]);
    }

    #[test]
    fn gather_blocks_takes_each_heads_own_choice() {
        let device = Device::flex();
        // Two heads, three blocks of one position; head h's block b holds 10 h + b.
        let data: Vec<f32> = vec![0., 1., 2., 10., 11., 12.];
        let x = Tensor::<5>::from_data(TensorData::new(data, [1, 2, 3, 1, 1]), &device);
        // One query block, two chosen blocks per head.
        let gathered = values(gather_blocks(x, &[2, 0, 1, 1], 2));
        assert_eq!(gathered, [2., 0., 11., 11.]);
        let padding = Tensor::<3, Bool>::from_data(TensorData::new(vec![false, true, false], [1, 3, 1]), &device);
        assert_eq!(bools(gather_padding(padding, 2, &[2, 0, 1, 1], 2)), [false, false, true, true]);
    }

    #[test]
    fn joint_softmax_normalises_over_all_parts() {
        let device = Device::flex();
        let a = Tensor::<5>::from_data(TensorData::new(vec![0.0f32, 1.0], [1, 1, 1, 1, 2]), &device);
        let b = Tensor::<5>::from_data(TensorData::new(vec![2.0f32], [1, 1, 1, 1, 1]), &device);
        let dropout = burn::nn::DropoutConfig::new(0.0).init();
        let parts = joint_softmax(vec![a, b], &dropout);
        let total: f32 = parts.into_iter().map(|p| p.sum().into_scalar::<f32>()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn log_sum_exp_matches_the_definition() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(TensorData::new(vec![1000.0f32, 1000.0, -3.0, 0.5], [2, 2]), &device);
        let got = values(log_sum_exp(x, 1));
        assert!((got[0] - (1000.0 + 2f32.ln())).abs() < 1e-3);
        assert!((got[1] - ((-3f32).exp() + 0.5f32.exp()).ln()).abs() < 1e-5);
    }
}
