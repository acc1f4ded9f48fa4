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
//!
//! Variant `lra`, as LRA's released code computes it
//! (`lra_benchmarks/models/bigbird/bigbird_attention.py`), quirks included:
//! - the sequence is filled up with `b - n % b` zero positions (lines 482-491: a whole
//!   block when `b` divides `n`), which the padding mask marks as real (a boolean `jnp.pad`
//!   with -1e9 gives true): zero keys every query row sees, in the last block;
//! - the global blocks are the first and the last (`global_blocks` = 1 at each end), global
//!   both ways; the window is 3 blocks; query blocks 1 and `m - 2` see blocks 0, 1, 2,
//!   `m - 1` (resp. 0, `m - 3`, `m - 2`, `m - 1`) and their random blocks; the others block
//!   0, their window, their random blocks and block `m - 1`; one softmax per row (130-314);
//! - the random blocks are drawn once per layer and head (numpy's generator seeded by the
//!   layer index, 366-380; ours from the layer's own seed), never from a global or window
//!   block, and, past 1024 positions, only from the blocks before position 1024 (375:
//!   `min(seq_length, 1024)`), by LRA's candidate rules (24-66); LRA's planner fails when a
//!   row has fewer candidates than random blocks (under 448 positions for blocks of 64);
//! - no attention dropout (633-640); padded query rows are zeroed (312).

use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use serde::{Deserialize, Serialize};

use super::blocks::{
    Blocks, any_of, block_count, block_scores, gather_blocks, gather_padding, joint_softmax, key_mask, lra_filled, mask_from_fn,
    neighbour_blocks, pad_positions,
};
use super::flops::LayerShape;
use super::heads::{HeadProjections, MASKED_SCORE, attention_weights};
use super::layer::{AttentionLayer, LayerSizes};
use super::random;
use super::settings::{ModelCard, Scale, Settings, Variant, at_least_one, fit, within};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n (w + g + r) b) time, O(n (w + g + r) b) memory (blocks of b)";

/// What the `lra` variant computes differently from the paper, in one line for reports
/// (the module's notes say it in full).
pub const LRA_VARIANT: &str = "zero filler keys marked real in the last block, global first and last blocks, random blocks fixed per layer and head and drawn only before position 1024, no attention dropout (bigbird_attention.py:24-654)";

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
    /// The paper's form, or LRA's (fixed random plan, filler keys).
    #[config(default = "Variant::Paper")]
    pub variant: Variant,
}

impl BigBirdAttentionConfig {
    pub fn init(&self, device: &Device) -> BigBirdAttention {
        assert!(self.block_size > 0, "BigBird needs a block size of at least 1");
        assert!(self.window_blocks % 2 == 1, "BigBird's window must be an odd number of blocks, not {}", self.window_blocks);
        let max_blocks = block_count(self.max_length, self.block_size);
        let radius = self.window_blocks / 2;
        let seed = random::seed_from_device(device);
        BigBirdAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            block_size: self.block_size,
            window_radius: radius,
            global_blocks: self.global_blocks,
            random_blocks: self.random_blocks,
            random_choice: draw_random_blocks(seed, self.heads, max_blocks, radius, self.global_blocks, self.random_blocks),
            seed,
            variant: self.variant,
        }
    }
}

/// BigBird's own settings in a run's configuration
/// (`"attention": {"bigbird": {"block_size": 64, "window_blocks": 3, "global_blocks": 2, "random_blocks": 3}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigBirdSettings {
    #[serde(default)]
    pub variant: Variant,
    pub block_size: usize,
    /// Blocks of the sliding window (odd: the query's block in the middle).
    pub window_blocks: usize,
    /// Global blocks at the start of the sequence.
    pub global_blocks: usize,
    /// Random key blocks per query block.
    pub random_blocks: usize,
}

impl Settings for BigBirdSettings {
    type Layer = BigBirdAttention;
    const MODEL: ModelCard =
        ModelCard { name: "bigbird", title: "BigBird (Zaheer et al. 2020)", family: "combined patterns", cost: COST };
    const LRA_VARIANT: Option<&'static str> = Some(LRA_VARIANT);

    fn defaults(max_length: usize) -> BigBirdSettings {
        let c = BigBirdAttentionConfig::new(1, 1, max_length);
        BigBirdSettings {
            variant: c.variant,
            block_size: c.block_size,
            window_blocks: c.window_blocks,
            global_blocks: c.global_blocks,
            random_blocks: c.random_blocks,
        }
    }

    fn variant_mut(&mut self) -> Option<&mut Variant> {
        Some(&mut self.variant)
    }

    fn fitted_to(self, positions: usize) -> BigBirdSettings {
        let block_size = fit(self.block_size, positions);
        let blocks = positions.max(1).div_ceil(block_size);
        BigBirdSettings { block_size, global_blocks: self.global_blocks.min(blocks), ..self }
    }

    fn scaled(self, scale: &Scale) -> BigBirdSettings {
        BigBirdSettings { block_size: scale.length(self.block_size), ..self }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        let (block_size, window_blocks, global_blocks, random_blocks) =
            (self.block_size, self.window_blocks, self.global_blocks, self.random_blocks);
        match self.variant {
            Variant::Lra => {
                at_least_one("block_size", block_size)?;
                if (window_blocks, global_blocks) != (3, 1) {
                    return Err(format!(
                        "LRA's BigBird has a window of 3 blocks and one global block at each end (window_blocks 3, \
                         global_blocks 1), not {window_blocks} and {global_blocks}"
                    ));
                }
                match lra_refusal(positions, block_size, random_blocks) {
                    Some(why) => Err(why),
                    None => Ok(()),
                }
            }
            Variant::Paper => {
                within("block_size", block_size, positions)?;
                if window_blocks % 2 == 0 {
                    return Err(format!("window_blocks must be odd (the query's block in the middle), not {window_blocks}"));
                }
                let blocks = positions.div_ceil(block_size);
                match global_blocks > blocks {
                    true => Err(format!(
                        "global_blocks {global_blocks} is more than the {blocks} blocks of {block_size} in {positions} positions"
                    )),
                    false => Ok(()),
                }
            }
        }
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.variant, self.block_size, self.window_blocks, self.global_blocks, self.random_blocks)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> BigBirdAttention {
        BigBirdAttentionConfig::new(layer.d_model, layer.heads, layer.max_length)
            .with_variant(self.variant)
            .with_qkv_dim(layer.qkv_dim)
            .with_block_size(self.block_size)
            .with_window_blocks(self.window_blocks)
            .with_global_blocks(self.global_blocks)
            .with_random_blocks(self.random_blocks)
            .with_dropout(layer.dropout)
            .init(device)
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
    /// The seed of the layer's random blocks (LRA's variant draws its plan from it).
    pub seed: u64,
    #[module(skip)]
    pub variant: Variant,
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
    let mut rng = random::stream(seed, 0);
    let mut blocks = Vec::with_capacity(heads * max_blocks * per_query);
    for _head in 0..heads {
        for i in 0..max_blocks {
            let mut candidates: Vec<usize> = (global..max_blocks).filter(|j| j.abs_diff(i) > radius).collect();
            random::draw_to_front(&mut rng, &mut candidates, per_query);
            blocks.extend((0..per_query).map(|s| candidates.get(s).copied()));
        }
    }
    RandomBlocks { max_blocks, per_query, blocks }
}

/// LRA's candidate key blocks for query block `i` of `blocks` (`get_block_rand_mask`,
/// `bigbird_attention.py:24-66`), for a filled-up length of `padded` positions.
pub fn lra_candidates(i: usize, blocks: usize, block_size: usize, padded: usize) -> Vec<usize> {
    // a = [1, ..., blocks - 2]; python slices a[x:y], cut to the list.
    let a: Vec<usize> = (1..blocks.saturating_sub(1)).collect();
    let slice = |from: usize, to: usize| a[from.min(a.len())..to.min(a.len()).max(from.min(a.len()))].to_vec();
    let last_index = padded.min(1024);
    let last = if last_index > 2 * block_size { last_index / block_size - 1 } else { blocks - 1 };
    if i == 1 {
        slice(2, last)
    } else if i == 2 {
        slice(3, last)
    } else if i + 3 == blocks {
        slice(0, last.saturating_sub(4))
    } else if i + 2 == blocks {
        slice(0, last.saturating_sub(3))
    } else {
        let (start, end) = (i - 2, i);
        if start > last {
            slice(0, last)
        } else if end + 1 == last {
            slice(0, start)
        } else {
            [slice(0, start), slice(end + 1, last)].concat()
        }
    }
}

/// Why LRA's BigBird cannot run on `positions` positions, if it cannot: its planner needs
/// at least `random_blocks` candidates for every middle query block.
pub fn lra_refusal(positions: usize, block_size: usize, random_blocks: usize) -> Option<String> {
    let padded = lra_filled(positions, block_size);
    let blocks = padded / block_size;
    let short = blocks < 4 || (1..blocks - 1).any(|i| lra_candidates(i, blocks, block_size, padded).len() < random_blocks);
    short.then(|| {
        format!(
            "LRA's BigBird cannot draw {random_blocks} random blocks for every query block of the {blocks} blocks of              {block_size} that cover {positions} positions (filled up to {padded}); LRA's own code fails the same way"
        )
    })
}

/// LRA's random blocks for every head and middle query block `1..blocks - 1`:
/// `[head][i - 1]` -> `random_blocks` distinct blocks, drawn from `seed`.
fn lra_plan(
    seed: u64,
    heads: usize,
    blocks: usize,
    block_size: usize,
    random_blocks: usize,
    padded: usize,
) -> Vec<Vec<Vec<usize>>> {
    let mut rng = random::stream(seed, 0);
    (0..heads)
        .map(|_| {
            (1..blocks - 1)
                .map(|i| {
                    let mut candidates = lra_candidates(i, blocks, block_size, padded);
                    random::draw_to_front(&mut rng, &mut candidates, random_blocks);
                    candidates.truncate(random_blocks);
                    candidates
                })
                .collect()
        })
        .collect()
}

impl BigBirdAttention {
    /// LRA's BigBird (see the module's notes): `q, k, v: [batch, heads, len, d]` ->
    /// `[batch, heads, len, d]`.
    fn lra_attention(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, padding: Tensor<2, Bool>) -> Tensor<4> {
        let device = q.device();
        let [batch, heads, len, d] = q.dims();
        let (block, r) = (self.block_size, self.random_blocks);
        if let Some(why) = lra_refusal(len, block, r) {
            panic!("{why}");
        }
        let padded = lra_filled(len, block);
        let count = padded / block;
        // The filler positions are zeros that the mask calls real.
        let filler = Tensor::<2, Bool>::full([batch, padded - len], false, &device);
        let padding = Tensor::cat(vec![padding, filler], 1);
        let [q, k, v] = [q, k, v].map(|x| pad_positions(x, padded));

        // The first and last blocks attend to every position.
        let global_rows = |first: usize| {
            let rows = q.clone().narrow(2, first * block, block);
            attention_weights(rows, k.clone(), Some(padding.clone()), None).matmul(v.clone())
        };
        let (first, last) = (global_rows(0), global_rows(count - 1));

        // Middle rows: 5 + r key blocks each (rows 1 and m - 2 have 4, the fifth masked).
        let plan = lra_plan(self.seed, heads, count, block, r, padded);
        let per_query = 5 + r;
        let rows = count - 2;
        let mut choice = Vec::with_capacity(heads * rows * per_query);
        for random in &plan {
            for i in 1..count - 1 {
                let fixed = match i {
                    1 => [0, 1, 2, count - 1, 0],
                    _ if i == count - 2 => [0, count - 3, count - 2, count - 1, 0],
                    _ => [0, i - 1, i, i + 1, count - 1],
                };
                choice.extend(fixed);
                choice.extend(&random[i - 1]);
            }
        }
        let blocks = Blocks::new(q, k, v, padding, block);
        let queries = blocks.queries.clone().narrow(2, 1, rows);
        let keys = gather_blocks(blocks.keys, &choice, per_query);
        let values = gather_blocks(blocks.values, &choice, per_query);
        let key_padding = gather_padding(blocks.padding, heads, &choice, per_query).unsqueeze_dim::<5>(3);
        let unused_slot = mask_from_fn([1, 1, rows, 1, per_query * block], &device, |[_, _, row, _, key]| {
            (row == 0 || row == rows - 1) && key / block == 4
        });
        let scores = block_scores(queries, keys).mask_fill(any_of(vec![key_padding, unused_slot]), MASKED_SCORE);
        let middle = softmax(scores, 4).matmul(values).reshape([batch, heads, rows * block, d]);
        Tensor::cat(vec![first, middle, last], 2).narrow(2, 0, len)
    }

    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let (q, k, v) = self.projections.project(x);
        if self.variant == Variant::Lra {
            return self.projections.combine(self.lra_attention(q, k, v, padding));
        }
        let len = q.dims()[2];
        let count = block_count(len, self.block_size);
        let global = self.global_blocks.min(count);
        let global_len = (global * self.block_size).min(len);

        // Global query blocks attend to every position: O(g b n).
        let global_context = match global_len {
            0 => None,
            _ => {
                let weights =
                    attention_weights(q.clone().narrow(2, 0, global_len), k.clone(), Some(padding.clone()), Some(&self.dropout));
                Some(weights.matmul(v.clone()))
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

impl AttentionLayer for BigBirdAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// Work of one forward ([`super::flops`]): the projections; the global query blocks over
/// every key; every other query block over its window of `2 r + 1` blocks, the `g` global
/// blocks and `r` random blocks. LRA's form: the first and last blocks over every position,
/// the middle ones over `5 + r` blocks, on the sequence filled up with a block.
pub fn forward_flops(
    shape: &LayerShape,
    variant: Variant,
    block: usize,
    window_blocks: usize,
    global_blocks: usize,
    random_blocks: usize,
) -> f64 {
    let (n, b) = (shape.positions, block.max(1));
    let attention = match variant {
        Variant::Lra => {
            let filled = lra_filled(n, b);
            let count = filled / b;
            shape.attend(2.0 * b as f64, filled as f64)
                + shape.attend((count.saturating_sub(2) * b) as f64, ((5 + random_blocks) * b) as f64)
        }
        Variant::Paper => {
            let count = block_count(n, b);
            let global = global_blocks.min(count);
            let global_len = (global * b).min(n);
            let rest = count - global;
            let keys = (window_blocks / 2 * 2 + 1 + global + random_blocks) * b;
            let globals = if global_len > 0 { shape.attend(global_len as f64, n as f64) } else { 0.0 };
            globals + shape.attend((rest * b) as f64, keys as f64)
        }
    };
    shape.projections(shape.n()) + attention
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::checks::*;
    use crate::attention::full_layer::FullAttention;
    use burn::tensor::Distribution;

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
    fn lra_candidates_are_those_of_lras_planner() {
        let blocks = |list: &[std::ops::RangeInclusive<usize>]| list.iter().cloned().flatten().collect::<Vec<usize>>();
        // Text: 1001 positions filled up to 1024, 16 blocks of 64.
        assert_eq!(lra_candidates(1, 16, 64, 1024), blocks(&[3..=14]));
        assert_eq!(lra_candidates(5, 16, 64, 1024), blocks(&[1..=3, 7..=14]));
        assert_eq!(lra_candidates(14, 16, 64, 1024), blocks(&[1..=12]));
        // ListOps: 2001 filled up to 2048, 32 blocks: only blocks before position 1024.
        assert_eq!(lra_candidates(1, 32, 64, 2048), blocks(&[3..=15]));
        assert_eq!(lra_candidates(2, 32, 64, 2048), blocks(&[4..=15]));
        assert_eq!(lra_candidates(13, 32, 64, 2048), blocks(&[1..=11, 15..=15]));
        assert_eq!(lra_candidates(14, 32, 64, 2048), blocks(&[1..=12]));
        assert_eq!(lra_candidates(16, 32, 64, 2048), blocks(&[1..=14]));
        assert_eq!(lra_candidates(20, 32, 64, 2048), blocks(&[1..=15]));
        assert_eq!(lra_candidates(29, 32, 64, 2048), blocks(&[1..=11]));
        assert_eq!(lra_candidates(30, 32, 64, 2048), blocks(&[1..=12]));
        // LRA's planner fails under 448 positions with blocks of 64, three random blocks.
        assert!(lra_refusal(447, 64, 3).is_some());
        assert!(lra_refusal(448, 64, 3).is_none());
    }

    /// What `bigbird_attention.py` computes, in loops (its pseudo-code): the keys of each
    /// query row by its block, filler positions real zeros, masked keys at -10000.
    fn lra_bigbird_loops(
        q: &Rows,
        k: &Rows,
        v: &Rows,
        plan: &[Vec<Vec<usize>>],
        real: &[usize],
        len: usize,
        block: usize,
    ) -> Rows {
        let padded = len + block - len % block;
        let count = padded / block;
        let d = q.d();
        let zero = vec![0.0f32; d];
        let row = |rows: &'_ Rows, b: usize, h: usize, t: usize| if t < len { rows.row(b, h, t).to_vec() } else { zero.clone() };
        Rows::build([real.len(), 2, len, d], |b, h, p| {
            let i = p / block;
            let key_blocks: Vec<usize> = if i == 0 || i == count - 1 {
                (0..count).collect()
            } else if i == 1 {
                [vec![0, 1, 2, count - 1], plan[h][0].clone()].concat()
            } else if i == count - 2 {
                [vec![0, count - 3, count - 2, count - 1], plan[h][count - 3].clone()].concat()
            } else {
                [vec![0, i - 1, i, i + 1], plan[h][i - 1].clone(), vec![count - 1]].concat()
            };
            let positions: Vec<usize> = key_blocks.iter().flat_map(|&j| j * block..(j + 1) * block).collect();
            let keys: Vec<Vec<f32>> = positions.iter().map(|&t| row(k, b, h, t)).collect();
            let vals: Vec<Vec<f32>> = positions.iter().map(|&t| row(v, b, h, t)).collect();
            let masked: Vec<bool> = positions.iter().map(|&t| t < len && t >= real[b]).collect();
            let keys: Vec<&[f32]> = keys.iter().map(Vec::as_slice).collect();
            let vals: Vec<&[f32]> = vals.iter().map(Vec::as_slice).collect();
            attend(&row(q, b, h, p), &keys, &vals, 1.0 / (d as f32).sqrt(), &masked, -1.0e4)
        })
    }

    #[test]
    fn lra_bigbird_equals_the_released_loops_with_filler_keys_and_its_plan() {
        let device = Device::flex();
        for (len, block, real) in [(30, 2, [30, 17]), (33, 3, [33, 20]), (40, 4, [40, 40])] {
            let attention = BigBirdAttentionConfig::new(16, 2, 64)
                .with_block_size(block)
                .with_global_blocks(1)
                .with_dropout(0.0)
                .with_variant(Variant::Lra)
                .init(&device);
            let x = Tensor::<3>::random([2, len, 16], Distribution::Normal(0.0, 1.0), &device);
            let got = attention.forward(x.clone(), padding_after(&real, len, &device));
            let padded = len + block - len % block;
            let plan = lra_plan(attention.seed, 2, padded / block, block, 3, padded);
            let (q, k, v) = attention.projections.project(x);
            let context = lra_bigbird_loops(&Rows::of(q), &Rows::of(k), &Rows::of(v), &plan, &real, len, block);
            let expected = attention.projections.combine(context.tensor(&device));
            assert_close_at_real_tokens(got, expected, &real, 1e-4, &format!("LRA's BigBird, len {len}, block {block}"));
        }
    }

    #[test]
    fn lra_bigbird_plans_differ_by_head_keep_to_the_candidates_and_have_finite_gradients() {
        let plan = lra_plan(7, 2, 16, 64, 3, 1024);
        assert_ne!(plan[0], plan[1], "each head draws its own blocks");
        for (i, row) in plan[0].iter().enumerate() {
            let candidates = lra_candidates(i + 1, 16, 64, 1024);
            assert!(row.iter().all(|b| candidates.contains(b)) && row.len() == 3, "row {}: {row:?}", i + 1);
        }
        let device = Device::flex().autodiff();
        let attention = BigBirdAttentionConfig::new(16, 2, 64)
            .with_block_size(2)
            .with_global_blocks(1)
            .with_variant(Variant::Lra)
            .init(&device);
        let x = Tensor::<3>::random([2, 30, 16], Distribution::Normal(0.0, 1.0), &device);
        let loss = attention.forward(x, padding_after(&[30, 21], 30, &device)).sum();
        assert_eq!(assert_finite_gradients(&attention, &loss.backward()), 4);
    }
}
