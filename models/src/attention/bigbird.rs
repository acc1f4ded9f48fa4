//! BigBird: blocks attend to a window of neighbouring blocks, to global blocks and to a
//! few random blocks.
//!
//! Paper: Zaheer et al., "Big Bird: Transformers for Longer Sequences", NeurIPS 2020.
//! Family: combined patterns (window + global + random).
//! Cost: O(n (w + g + r) b d) time and O(n (w + g + r) b) memory per head, for blocks of b
//! positions, w window blocks, g global blocks and r random blocks per query block.
//!
//! The blocked form of the paper's Appendix D ("BigBird-ITC"): with the sequence cut into
//! blocks of `block_size`, query block i attends to
//! - the window: blocks i - 1, i, i + 1 (`window_blocks` = 3);
//! - the global blocks: the leading `global_blocks`, which also attend to every block;
//! - `random_blocks` blocks drawn per head and per query block, outside the window and
//!   the global blocks.
//!
//! Global keys already in a query block's window are masked in the global part, so that
//! no key counts twice. The random choice is drawn once, at initialisation, from the
//! device's seeded generator, for every block position up to `max_length` (as the
//! authors' code fixes it per layer from a seed); a block beyond the input is simply
//! unused. The global blocks are the leading ones: the paper's ITC also makes the last
//! block global, which would make real tokens' outputs depend on how much padding
//! follows them.

use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use burn::tensor::Distribution;

use super::blocks::{
    Blocks, any_of, block_count, block_scores, gather_blocks, gather_padding, joint_softmax, key_mask, mask_from_fn,
    neighbour_blocks,
};
use super::full::attention_weights;
use super::heads::{HeadProjections, MASKED_SCORE};

#[derive(Config, Debug)]
pub struct BigBirdAttentionConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// Longest sequence: the random blocks are drawn for the blocks that cover it.
    pub max_length: usize,
    /// Positions per block.
    #[config(default = 64)]
    pub block_size: usize,
    /// Blocks in the sliding window, centred on the query block (odd).
    #[config(default = 3)]
    pub window_blocks: usize,
    /// Leading blocks with global attention (the first holds the CLS vector).
    #[config(default = 2)]
    pub global_blocks: usize,
    /// Random key blocks per query block.
    #[config(default = 3)]
    pub random_blocks: usize,
    /// Dropout on the attention weights.
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl BigBirdAttentionConfig {
    pub fn init(&self, device: &Device) -> BigBirdAttention {
        assert!(self.block_size > 0, "BigBird needs a block size of at least 1");
        assert!(self.window_blocks % 2 == 1, "BigBird's window must be an odd number of blocks, not {}", self.window_blocks);
        let max_blocks = block_count(self.max_length, self.block_size);
        let radius = self.window_blocks / 2;
        let seed = draw_seed(device);
        BigBirdAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            block_size: self.block_size,
            window_radius: radius,
            global_blocks: self.global_blocks,
            random_blocks: self.random_blocks,
            random_choice: draw_random_blocks(seed, self.heads, max_blocks, radius, self.global_blocks, self.random_blocks),
        }
    }
}

#[derive(Module, Debug)]
pub struct BigBirdAttention {
    pub projections: HeadProjections,
    pub dropout: Dropout,
    pub block_size: usize,
    /// Window blocks on each side of the query block.
    pub window_radius: usize,
    pub global_blocks: usize,
    pub random_blocks: usize,
    /// The random key blocks of every head and query block (see [`draw_random_blocks`]).
    #[module(skip)]
    pub random_choice: RandomBlocks,
}

/// Random key blocks per head and query block, for query blocks `0..max_blocks`.
#[derive(Debug, Clone)]
pub struct RandomBlocks {
    pub max_blocks: usize,
    pub per_query: usize,
    /// `blocks[(head * max_blocks + i) * per_query + s]`: the `s`-th random block of query
    /// block `i`, or `None` where too few blocks were left to draw from.
    pub blocks: Vec<Option<usize>>,
}

impl RandomBlocks {
    /// The random blocks of query block `i` for `head`, among the first `count` blocks.
    pub fn of(&self, head: usize, i: usize, count: usize) -> Vec<Option<usize>> {
        if i >= self.max_blocks {
            return vec![None; self.per_query];
        }
        let start = (head * self.max_blocks + i) * self.per_query;
        self.blocks[start..start + self.per_query].iter().map(|&b| b.filter(|&b| b < count)).collect()
    }
}

/// A seed for the random blocks, drawn from the device's (seeded) generator.
fn draw_seed(device: &Device) -> u64 {
    let draw = Tensor::<1>::random([2], Distribution::Default, device).into_data();
    draw.iter::<f64>().fold(0u64, |seed, x| (seed << 24) ^ (x * 16_777_216.0) as u64)
}

/// SplitMix64: a small, fixed generator, so that a seed always gives the same blocks.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Draws, for every head and query block `i < max_blocks`, `per_query` distinct blocks
/// among those outside the window (`|j - i| > radius`) and the global blocks.
pub fn draw_random_blocks(
    seed: u64,
    heads: usize,
    max_blocks: usize,
    radius: usize,
    global: usize,
    per_query: usize,
) -> RandomBlocks {
    let mut state = seed;
    let mut blocks = Vec::with_capacity(heads * max_blocks * per_query);
    for _head in 0..heads {
        for i in 0..max_blocks {
            let mut candidates: Vec<usize> = (global..max_blocks).filter(|j| j.abs_diff(i) > radius).collect();
            // A partial Fisher-Yates shuffle: the first `per_query` candidates are the draw.
            for s in 0..per_query.min(candidates.len()) {
                let pick = s + (next_random(&mut state) % (candidates.len() - s) as u64) as usize;
                candidates.swap(s, pick);
            }
            blocks.extend((0..per_query).map(|s| candidates.get(s).copied()));
        }
    }
    RandomBlocks { max_blocks, per_query, blocks }
}

impl BigBirdAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let (q, k, v) = self.projections.project(x);
        let len = q.dims()[2];
        let count = block_count(len, self.block_size);
        let global = self.global_blocks.min(count);
        let global_len = (global * self.block_size).min(len);

        // Global query blocks attend to every position: O(g b n).
        let global_context = match global_len {
            0 => None,
            _ => {
                let weights = attention_weights(q.clone().narrow(2, 0, global_len), k.clone(), Some(padding.clone()));
                Some(self.dropout.forward(weights).matmul(v.clone()))
            }
        };
        if global == count {
            let context = global_context.expect("every block is global, and there is at least one");
            return self.projections.combine(context);
        }
        let rest = self.sparse_blocks(Blocks::new(q, k, v, padding, self.block_size), global);
        let context = match global_context {
            Some(global_context) => Tensor::cat(vec![global_context, rest], 2),
            None => rest,
        };
        self.projections.combine(context.narrow(2, 0, len))
    }

    /// Window, global and random attention of the query blocks after the global ones:
    /// -> `[batch, heads, (blocks - global) * block, d]`.
    fn sparse_blocks(&self, blocks: Blocks, global: usize) -> Tensor<4> {
        let device = blocks.queries.device();
        let [batch, heads, count, block, d] = blocks.queries.dims();
        let rest = count - global;
        let radius = self.window_radius;
        let queries = blocks.queries.clone().narrow(2, global, rest);

        // Window: blocks i - radius ..= i + radius.
        let window_keys = neighbour_blocks(blocks.keys.clone(), radius).narrow(2, global, rest);
        let window_values = neighbour_blocks(blocks.values.clone(), radius).narrow(2, global, rest);
        let window_mask = blocks.neighbour_key_mask(radius).narrow(2, global, rest);
        let mut scores = vec![block_scores(queries.clone(), window_keys).mask_fill(window_mask, MASKED_SCORE)];
        let mut values = vec![window_values];

        // Global blocks, as keys of every query block, unless already in its window.
        if global > 0 {
            let global_keys = blocks.keys.clone().narrow(2, 0, global).reshape([batch, heads, 1, global * block, d]);
            let global_values = blocks.values.clone().narrow(2, 0, global).reshape([batch, heads, 1, global * block, d]);
            let in_window = mask_from_fn([1, 1, rest, 1, global * block], &device, |[_, _, i, _, key]| {
                (global + i).abs_diff(key / block) <= radius
            });
            let global_padding = key_mask(blocks.padding.clone().narrow(1, 0, global).reshape([batch, 1, global * block]));
            let global_mask = any_of(vec![in_window, global_padding]);
            scores.push(block_scores(queries.clone(), global_keys).mask_fill(global_mask, MASKED_SCORE));
            values.push(global_values);
        }

        // Random blocks, chosen per head.
        let per_query = self.random_blocks;
        if per_query > 0 {
            let chosen: Vec<Option<usize>> =
                (0..heads).flat_map(|h| (global..count).flat_map(move |i| self.random_choice.of(h, i, count))).collect();
            // Missing choices gather block 0 and are masked.
            let index: Vec<usize> = chosen.iter().map(|b| b.unwrap_or(0)).collect();
            let missing = mask_from_fn([1, heads, rest, 1, per_query * block], &device, |[_, h, i, _, key]| {
                chosen[(h * rest + i) * per_query + key / block].is_none()
            });
            let random_padding = gather_padding(blocks.padding.clone(), heads, &index, per_query).unsqueeze_dim::<5>(3);
            let random_mask = any_of(vec![missing, random_padding]);
            let random_keys = gather_blocks(blocks.keys, &index, per_query);
            scores.push(block_scores(queries, random_keys).mask_fill(random_mask, MASKED_SCORE));
            values.push(gather_blocks(blocks.values, &index, per_query));
        }

        let weights = joint_softmax(scores, &self.dropout);
        let context =
            weights.into_iter().zip(values).map(|(w, v)| w.matmul(v)).reduce(|a, b| a + b).expect("the window is always there");
        context.reshape([batch, heads, rest * block, d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::Mechanism;
    use crate::attention::checks::*;
    use crate::attention::full::FullAttention;

    const D_MODEL: usize = 16;
    const HEADS: usize = 2;

    fn bigbird(block_size: usize, global_blocks: usize, random_blocks: usize) -> BigBirdAttention {
        BigBirdAttentionConfig::new(D_MODEL, HEADS, 64)
            .with_block_size(block_size)
            .with_global_blocks(global_blocks)
            .with_random_blocks(random_blocks)
            .with_dropout(0.0)
            .init(&Device::flex())
    }

    #[test]
    fn bigbird_with_every_block_global_equals_full_attention() {
        let device = Device::flex();
        let attention = bigbird(4, 5, 3);
        let full = FullAttention { projections: attention.projections.clone(), dropout: DropoutConfig::new(0.0).init() };
        let x = random_input(2, 17, D_MODEL, &device);
        let padding = padding_after(&[17, 12], 17, &device);
        let expected = values(full.forward(x.clone(), padding.clone()));
        assert_close(&values(attention.forward(x, padding)), &expected, 1e-4, "BigBird with every block global vs full");
    }

    #[test]
    fn bigbird_equals_full_attention_masked_to_window_global_and_random_blocks() {
        let device = Device::flex();
        let (len, block) = (37, 4);
        for (global, random) in [(1, 2), (2, 3), (0, 1)] {
            let attention = bigbird(block, global, random);
            let count = block_count(len, block);
            let x = random_input(2, len, D_MODEL, &device);
            let real = [37, 26];
            let padding = padding_after(&real, len, &device);
            let (q, k, v) = attention.projections.project(x.clone());
            let pattern = pattern_from_fn(HEADS, len, &device, |h, i, j| {
                let (bi, bj) = (i / block, j / block);
                bi < global || bj < global || bi.abs_diff(bj) <= 1 || attention.random_choice.of(h, bi, count).contains(&Some(bj))
            });
            let expected = attention.projections.combine(pattern_attention(q, k, v, pattern, padding.clone()));
            let what = format!("{global} global and {random} random blocks");
            assert_close_at_real_tokens(attention.forward(x, padding), expected, &real, 1e-4, &what);
        }
    }

    #[test]
    fn bigbird_random_blocks_avoid_window_and_global_blocks_and_are_distinct() {
        let choice = draw_random_blocks(7, 3, 12, 1, 2, 3);
        for h in 0..3 {
            for i in 0..12 {
                let drawn: Vec<usize> = choice.of(h, i, 12).into_iter().flatten().collect();
                let allowed = (2..12).filter(|j: &usize| j.abs_diff(i) > 1).count();
                assert_eq!(drawn.len(), allowed.min(3), "head {h} block {i}: {drawn:?}");
                for (s, &j) in drawn.iter().enumerate() {
                    assert!(j >= 2 && j.abs_diff(i) > 1, "head {h} block {i} drew {j}");
                    assert!(!drawn[..s].contains(&j), "head {h} block {i} drew {j} twice");
                }
            }
        }
        // The same seed gives the same blocks.
        assert_eq!(draw_random_blocks(7, 3, 12, 1, 2, 3).blocks, choice.blocks);
    }

    #[test]
    fn bigbird_outputs_of_real_tokens_ignore_padding() {
        let attention = bigbird(3, 1, 2);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), D_MODEL, &[14, 30, 5], 30, &Device::flex());
    }

    #[test]
    fn bigbird_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        let attention = BigBirdAttentionConfig::new(D_MODEL, HEADS, 64).with_block_size(3).with_global_blocks(1).init(&device);
        let x = random_input(2, 20, D_MODEL, &device);
        let loss = attention.forward(x, padding_after(&[20, 14], 20, &device)).sum();
        assert_eq!(assert_finite_gradients(&attention, &loss.backward()), 4);
    }

    #[test]
    fn bigbird_trains_a_tiny_classifier() {
        assert_tiny_classifier_trains(Mechanism::BigBird);
    }
}
