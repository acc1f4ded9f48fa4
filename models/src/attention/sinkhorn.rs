//! Sinkhorn Transformer: blocks of keys re-sorted by a learned, Sinkhorn-normalised
//! sorting matrix, then block-local attention.
//!
//! Paper: Tay, Bahri, Yang, Metzler and Juan, "Sparse Sinkhorn Attention", ICML 2020.
//! Family: learnable pattern.
//! Cost: O(n b d + N^2 b d) time and O(n b + N^2) memory per head, for blocks of b
//! positions and N = n / b blocks (the soft sort mixes whole blocks).
//!
//! Section 3 of the paper:
//! 1. the sequence is cut into N blocks of `block_size` positions, and each block of keys
//!    is summarised by its sum (as in the authors' code: the keys of each head);
//! 2. a sorting network (here one linear layer, shared by the heads, from a summary to
//!    a score for each of up to `max_length / block_size` target blocks) gives logits
//!    `R[i][j]`: how well source block j fits target slot i;
//! 3. Sinkhorn normalisation, `sinkhorn_iterations` rounds of normalising rows then
//!    columns in log space at temperature `temperature`, turns `exp(R / t)` into a
//!    doubly stochastic matrix S, a relaxed permutation of the blocks;
//! 4. the keys and values of block i are replaced by the sorted ones, `sum_j S[i][j] K_j`,
//!    and each query block attends to its own block and to the block sorted into its place
//!    (one softmax over both, as the authors combine local and sorted attention).
//!
//! Padding: padded keys and values are zeroed before sorting, and a sorted key that is
//! made of padding only is masked. Blocks of padding only are left out of the sort (each
//! stays in place), so that the sort of the real blocks does not depend on how much
//! padding follows them. Blocks beyond `max_length`, for which the sorting network has no
//! output, stay in place in the same way. The paper's Gumbel noise during training and
//! its SortCut variant are not used.
//!
//! Variant `lra`, as LRA's released code computes it
//! (`lra_benchmarks/models/sinkhorn_transformer/sinkhorn_attention.py`), quirks included:
//! - the `m = n / b` blocks are strided, not contiguous (lines 343-348): block `g` holds
//!   positions `g, g + m, ...`, so the "local" attention within a block is dilated; `b`
//!   must divide `n`, which LRA's code does not pad (Path-X's 16384 in blocks of 50 fails);
//! - the sort is a softmax (no Sinkhorn iterations, 380), and the einsum that applies it,
//!   `bskhd,bnhl->bsnhd` (382-383), sums over both block indices: since each row of the
//!   sort sums to one, every sorted block is the sum of all blocks, whatever the sorting
//!   network says. Slot `s` of every sorted block is the sum of the keys (values) of the
//!   contiguous positions `s m .. s m + m - 1`; the sorting network has no effect on the
//!   output and no gradient, and is not built here;
//! - the block and the sorted block are softmaxed separately, each with its own dropout,
//!   and their outputs added (492);
//! - the padding mask is cut contiguously (403-404): the pair (slot `s`, slot `t`) of
//!   block `g` is masked where position `g b + s` or `g b + t` is padding; in the sorted
//!   part the pair is masked only where it is masked in every block (418-420).

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::blocks::{
    Blocks, any_of, block_attention, block_count, block_scores, contiguous_pair_mask, joint_softmax, log_sum_exp, mask_from_fn,
    strided_groups, unblock, ungroup_strided,
};
use super::flops::LayerShape;
use super::heads::{HeadProjections, MASKED_SCORE};
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Scale, Settings, Variant, fit, within};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n b + (n/b)^2) time, O(n b + (n/b)^2) memory (blocks of b)";

/// What the `lra` variant computes differently from the paper, in one line for reports
/// (the module's notes say it in full).
pub const LRA_VARIANT: &str = "strided blocks, a softmax sort whose einsum sums every block (the sort has no effect), the block and the sorted block softmaxed apart and added, the padding mask cut contiguously (sinkhorn_attention.py:340-506)";

#[derive(Config, Debug)]
pub struct SinkhornAttentionConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// Longest sequence: the sorting network scores `ceil(max_length / block_size)` blocks.
    pub max_length: usize,
    /// Positions per block.
    #[config(default = 32)]
    pub block_size: usize,
    /// Rounds of row and column normalisation.
    #[config(default = 8)]
    pub sinkhorn_iterations: usize,
    /// Temperature of the Sinkhorn normalisation.
    #[config(default = 0.75)]
    pub temperature: f64,
    /// Dropout on the attention weights.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// The paper's form, or LRA's (strided blocks, a sort that sums every block).
    #[config(default = "Variant::Paper")]
    pub variant: Variant,
}

impl SinkhornAttentionConfig {
    pub fn init(&self, device: &Device) -> SinkhornAttention {
        assert!(self.block_size > 0, "Sinkhorn attention needs a block size of at least 1");
        assert!(self.temperature > 0.0, "Sinkhorn attention needs a positive temperature");
        let max_blocks = max_blocks(self.max_length, self.block_size);
        SinkhornAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            sorting_network: (self.variant == Variant::Paper)
                .then(|| LinearConfig::new(self.qkv_dim.unwrap_or(self.d_model) / self.heads, max_blocks).init(device)),
            dropout: DropoutConfig::new(self.dropout).init(),
            block_size: self.block_size,
            max_blocks,
            sinkhorn_iterations: self.sinkhorn_iterations,
            temperature: self.temperature,
            variant: self.variant,
        }
    }
}

/// The Sinkhorn Transformer's own settings in a run's configuration
/// (`"attention": {"sinkhorn": {"block_size": 32, "sinkhorn_iterations": 8, "temperature": 0.75}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkhornSettings {
    #[serde(default)]
    pub variant: Variant,
    pub block_size: usize,
    pub sinkhorn_iterations: usize,
    pub temperature: f64,
}

impl Settings for SinkhornSettings {
    type Layer = SinkhornAttention;
    const MODEL: ModelCard =
        ModelCard { name: "sinkhorn", title: "Sinkhorn Transformer (Tay et al. 2020)", family: "learnable pattern", cost: COST };
    const LRA_VARIANT: Option<&'static str> = Some(LRA_VARIANT);

    fn defaults(max_length: usize) -> SinkhornSettings {
        let c = SinkhornAttentionConfig::new(1, 1, max_length);
        SinkhornSettings {
            variant: c.variant,
            block_size: c.block_size,
            sinkhorn_iterations: c.sinkhorn_iterations,
            temperature: c.temperature,
        }
    }

    fn variant_mut(&mut self) -> Option<&mut Variant> {
        Some(&mut self.variant)
    }

    fn switched_to(self, variant: Variant) -> Option<SinkhornSettings> {
        let mut settings = SinkhornSettings { variant, ..self };
        // LRA's softmax sort (no Sinkhorn iterations) has no paper form: the paper's
        // Sinkhorn takes its own defaults.
        if settings.variant == Variant::Paper && settings.sinkhorn_iterations == 0 {
            let paper = SinkhornAttentionConfig::new(1, 1, 1);
            (settings.sinkhorn_iterations, settings.temperature) = (paper.sinkhorn_iterations, paper.temperature);
        }
        Some(settings)
    }

    /// LRA's block becomes the nearest divisor of `positions` (its code needs one).
    fn fitted_to(self, positions: usize) -> SinkhornSettings {
        let block_size = match self.variant == Variant::Lra {
            true => nearest_divisor(positions.max(1), self.block_size),
            false => fit(self.block_size, positions),
        };
        SinkhornSettings { block_size, ..self }
    }

    fn scaled(self, scale: &Scale) -> SinkhornSettings {
        SinkhornSettings { block_size: scale.length(self.block_size), ..self }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        let (block_size, sinkhorn_iterations, temperature) = (self.block_size, self.sinkhorn_iterations, self.temperature);
        let lra = self.variant == Variant::Lra;
        within("block_size", block_size, positions)?;
        if !lra && sinkhorn_iterations == 0 {
            return Err("the paper's Sinkhorn normalises at least once: sinkhorn_iterations must be at least 1 \
                        (no iterations, a softmax sort, is LRA's: variant lra)"
                .into());
        }
        if lra && !positions.is_multiple_of(block_size) {
            return Err(format!(
                "LRA's Sinkhorn reshapes the sequence into blocks without padding it: block_size {block_size} \
                 must divide the {positions} positions (LRA's own code fails the same way here)"
            ));
        }
        match temperature > 0.0 {
            true => Ok(()),
            false => Err(format!("temperature must be positive, not {temperature}")),
        }
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.variant, self.block_size, shape.positions)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> SinkhornAttention {
        SinkhornAttentionConfig::new(layer.d_model, layer.heads, layer.max_length)
            .with_variant(self.variant)
            .with_qkv_dim(layer.qkv_dim)
            .with_block_size(self.block_size)
            .with_sinkhorn_iterations(self.sinkhorn_iterations)
            .with_temperature(self.temperature)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct SinkhornAttention {
    pub projections: HeadProjections,
    /// Block summary `[d_head]` -> a logit per target block `[max_blocks]` (none in LRA's
    /// variant, where it has no effect).
    pub sorting_network: Option<Linear>,
    pub dropout: Dropout,
    pub block_size: usize,
    pub max_blocks: usize,
    pub sinkhorn_iterations: usize,
    pub temperature: f64,
    #[module(skip)]
    pub variant: Variant,
}

impl SinkhornAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let (q, k, v) = self.projections.project(x);
        if self.variant == Variant::Lra {
            return self.projections.combine(self.lra_attention(q, k, v, padding));
        }
        let blocks = real_keys_and_values(Blocks::new(q, k, v, padding, self.block_size));
        let [batch, heads, count, block, d] = blocks.queries.dims();
        let sorting = self.sort_blocks(&blocks);

        // Sorted keys and values: block i is sum_j S[i][j] (block j).
        let sort = |x: Tensor<5>| {
            sorting.clone().matmul(x.reshape([batch, heads, count, block * d])).reshape([batch, heads, count, block, d])
        };
        let sorted_keys = sort(blocks.keys.clone());
        let sorted_values = sort(blocks.values.clone());
        // A sorted key made of padding only has no weight from any real key.
        let real = blocks.padding.clone().bool_not().float().reshape([batch, 1, count, block]);
        let sorted_padding = sorting.detach().matmul(real).lower_equal_elem(0.0).unsqueeze_dim::<5>(3);

        let own_scores = block_scores(blocks.queries.clone(), blocks.keys.clone()).mask_fill(blocks.key_mask(), MASKED_SCORE);
        let sorted_scores = block_scores(blocks.queries, sorted_keys).mask_fill(sorted_padding, MASKED_SCORE);
        let weights = joint_softmax(vec![own_scores, sorted_scores], &self.dropout);
        let context = weights[0].clone().matmul(blocks.values) + weights[1].clone().matmul(sorted_values);
        self.projections.combine(unblock(context, blocks.len))
    }

    /// LRA's strided blocks plus its sorted part, the sum of every block:
    /// `q, k, v: [batch, heads, len, d]` -> `[batch, heads, len, d]`.
    fn lra_attention(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, padding: Tensor<2, Bool>) -> Tensor<4> {
        let [batch, heads, len, d] = q.dims();
        let block = self.block_size;
        assert!(len.is_multiple_of(block), "LRA's Sinkhorn: block_size {block} must divide the {len} positions");
        let groups = len / block;
        let local_masked = contiguous_pair_mask(padding, groups); // [batch, 1, groups, block, block]
        let [q, k_grouped, v_grouped] = [q, k.clone(), v.clone()].map(|x| strided_groups(x, groups));
        let local = block_attention(q.clone(), k_grouped, v_grouped, local_masked.clone(), &self.dropout);

        // Slot s of the sorted block: the sum over the contiguous positions s m .. s m + m - 1.
        let summed = |x: Tensor<4>| {
            x.reshape([batch, heads, block, groups, d])
                .sum_dim(3)
                .reshape([batch, heads, 1, block, d])
                .expand([batch, heads, groups, block, d])
        };
        let sorted_masked = local_masked.bool_not().int().sum_dim(2).equal_elem(0); // [batch, 1, 1, block, block]
        let sorted = block_attention(q, summed(k), summed(v), sorted_masked, &self.dropout);
        ungroup_strided(local + sorted)
    }

    /// The sorting matrix of the blocks of `k: [batch, heads, len, d_head]` (the layer's
    /// keys) with `padding: [batch, len]`: `[batch, heads, blocks, blocks]`, doubly
    /// stochastic, `S[i][j]` = the share of block j sorted into slot i.
    pub fn sorting_matrix(&self, k: Tensor<4>, padding: Tensor<2, Bool>) -> Tensor<4> {
        let blocks = real_keys_and_values(Blocks::new(k.clone(), k.clone(), k, padding, self.block_size));
        self.sort_blocks(&blocks)
    }

    fn sort_blocks(&self, blocks: &Blocks) -> Tensor<4> {
        let device = blocks.keys.device();
        let [batch, heads, count, _, d] = blocks.keys.dims();

        // Logits R[i][j] from the sorting network applied to the summary of block j.
        let summaries = blocks.keys.clone().sum_dim(3).reshape([batch, heads, count, d]);
        let network = self.sorting_network.as_ref().expect("the paper's variant has a sorting network");
        let logits = network.forward(summaries); // [batch, heads, j, max_blocks]
        let logits = if count <= self.max_blocks {
            logits.narrow(3, 0, count)
        } else {
            Tensor::cat(vec![logits, Tensor::zeros([batch, heads, count, count - self.max_blocks], &device)], 3)
        };
        let logits = logits.swap_dims(2, 3).div_scalar(self.temperature); // [batch, heads, i, j]

        // Blocks that take part in the sort: real ones the network can place. The others
        // map to themselves.
        let max_blocks = self.max_blocks;
        let placed = blocks.padding.clone().bool_not().float().sum_dim(2).greater_elem(0.0).reshape([batch, count]);
        let placed = placed.bool_and(mask_from_fn([1, count], &device, |[_, j]| j < max_blocks).expand([batch, count]));
        let unplaced = placed.clone().bool_not();
        let both_placed =
            any_of(vec![unplaced.clone().reshape([batch, 1, count, 1]), unplaced.clone().reshape([batch, 1, 1, count])])
                .bool_not();
        let diagonal = mask_from_fn([1, 1, count, count], &device, |[_, _, i, j]| i == j);
        let unplaced_to_itself = any_of(vec![placed.reshape([batch, 1, count, 1]), diagonal.bool_not()]).bool_not();
        let allowed = any_of(vec![both_placed, unplaced_to_itself]);
        let log_sorting = sinkhorn(logits.mask_fill(allowed.bool_not(), MASKED_SCORE), self.sinkhorn_iterations);
        log_sorting.exp()
    }
}

impl AttentionLayer for SinkhornAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// Zeros the padded keys and values, so that sorting never mixes them into real blocks.
fn real_keys_and_values(blocks: Blocks) -> Blocks {
    let [batch, _, count, block, _] = blocks.keys.dims();
    let real = blocks.padding.clone().bool_not().float().reshape([batch, 1, count, block, 1]);
    Blocks { keys: blocks.keys * real.clone(), values: blocks.values * real, ..blocks }
}

/// Sinkhorn normalisation in log space: rows then columns, `iterations` times.
fn sinkhorn(mut log_alpha: Tensor<4>, iterations: usize) -> Tensor<4> {
    for _ in 0..iterations {
        log_alpha = log_alpha.clone() - log_sum_exp(log_alpha, 3);
        log_alpha = log_alpha.clone() - log_sum_exp(log_alpha, 2);
    }
    log_alpha
}

/// The sorting network's targets: the blocks of the longest sequence.
fn max_blocks(max_length: usize, block_size: usize) -> usize {
    block_count(max_length, block_size)
}

/// The divisor of `n` nearest to `wanted` (the smaller on a tie).
fn nearest_divisor(n: usize, wanted: usize) -> usize {
    (1..=n).filter(|d| n.is_multiple_of(*d)).min_by_key(|&d| (d.abs_diff(wanted), d)).unwrap_or(1)
}

/// Work of one forward ([`super::flops`]): the projections; the paper's sorting network
/// (block summaries to `max_blocks` logits, per head) and the sort of keys and values (a
/// `[blocks, blocks]` product per head each); and every query over its own block and its
/// sorted block, `2 b` keys. LRA's form: its strided group and the summed slots, `2 b`
/// keys too, with no network and no sort products.
pub fn forward_flops(shape: &LayerShape, variant: Variant, block: usize, max_length: usize) -> f64 {
    let b = block.max(1);
    let max_blocks = max_blocks(max_length, b);
    let count = block_count(shape.positions, b) as f64;
    let d = shape.qkv_dim as f64;
    let sorting = match variant {
        Variant::Lra => 0.0,
        Variant::Paper => shape.products(1.0, count, d, max_blocks as f64) + shape.products(2.0, count, count, b as f64 * d),
    };
    let rows = match variant {
        Variant::Lra => shape.n(),
        Variant::Paper => count * b as f64,
    };
    shape.projections(shape.n()) + sorting + shape.attend(rows, 2.0 * b as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::*;
    use crate::attention::full_layer::FullAttention;
    use burn::tensor::TensorData;

    const D_MODEL: usize = 16;
    const HEADS: usize = 2;

    fn sinkhorn_attention(block_size: usize) -> SinkhornAttention {
        SinkhornAttentionConfig::new(D_MODEL, HEADS, 64).with_block_size(block_size).with_dropout(0.0).init(&Device::flex())
    }

    #[test]
    fn sinkhorn_attention_with_one_block_equals_full_attention() {
        let device = Device::flex();
        let attention = sinkhorn_attention(16);
        let full = FullAttention { projections: attention.projections.clone(), dropout: DropoutConfig::new(0.0).init() };
        let x = random_input(2, 13, D_MODEL, &device);
        let padding = padding_after(&[13, 9], 13, &device);
        let expected = values(full.forward(x.clone(), padding.clone()));
        assert_close(&values(attention.forward(x, padding)), &expected, 1e-4, "one block vs full");
    }

    #[test]
    fn sinkhorn_sorting_matrix_is_doubly_stochastic() {
        let device = Device::flex();
        // Alternating normalisation converges to a doubly stochastic matrix; 30 rounds
        // bring every sum within the tolerance (the default 8 leave up to ~3% here).
        let attention =
            SinkhornAttentionConfig::new(D_MODEL, HEADS, 64).with_block_size(4).with_sinkhorn_iterations(30).init(&device);
        let x = random_input(2, 30, D_MODEL, &device);
        let (_, k, _) = attention.projections.project(x);
        // The second sequence ends in whole blocks of padding.
        let sorting = attention.sorting_matrix(k, padding_after(&[30, 13], 30, &device));
        for dim in [2, 3] {
            let sums = values(sorting.clone().sum_dim(dim));
            assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-3), "sums along dim {dim}: {sums:?}");
        }
        assert!(values(sorting).iter().all(|&s| (0.0..=1.0 + 1e-6).contains(&s)));
    }

    #[test]
    fn sinkhorn_attention_equals_attention_over_own_and_sorted_blocks() {
        let device = Device::flex();
        let (len, block) = (22, 4);
        let count = block_count(len, block);
        let attention = sinkhorn_attention(block);
        let x = random_input(2, len, D_MODEL, &device);
        let real_tokens = [22, 11];
        let padding = padding_after(&real_tokens, len, &device);
        let (q, k, v) = attention.projections.project(x.clone());
        let sorting = values(attention.sorting_matrix(k.clone(), padding.clone()));

        // A naive computation on plain numbers, from the definition, per query position.
        let d = D_MODEL / HEADS;
        let (q, k, v) = (values(q), values(k), values(v));
        let mut expected = vec![0.0f32; 2 * HEADS * len * d];
        for b in 0..2 {
            let real = |p: usize| p < real_tokens[b];
            for h in 0..HEADS {
                let at = |p: usize, c: usize| ((b * HEADS + h) * len + p) * d + c;
                let key = |p: usize, c: usize| if real(p) { k[at(p, c)] as f64 } else { 0.0 };
                let value = |p: usize, c: usize| if real(p) { v[at(p, c)] as f64 } else { 0.0 };
                let s = |i: usize, j: usize| sorting[((b * HEADS + h) * count + i) * count + j] as f64;
                for i in 0..len {
                    let slot = i / block;
                    // Keys: the own block's real positions, then the sorted block's
                    // positions that are not made of padding only.
                    let mut keys: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
                    for p in slot * block..(slot + 1) * block {
                        if p < len && real(p) {
                            keys.push(((0..d).map(|c| key(p, c)).collect(), (0..d).map(|c| value(p, c)).collect()));
                        }
                    }
                    for t in 0..block {
                        let sources = (0..count).map(|j| (j, j * block + t));
                        let realness: f64 = sources.clone().map(|(j, p)| if p < len && real(p) { s(slot, j) } else { 0.0 }).sum();
                        if realness > 0.0 {
                            let mix = |f: &dyn Fn(usize, usize) -> f64, c: usize| {
                                sources.clone().map(|(j, p)| if p < len { s(slot, j) * f(p, c) } else { 0.0 }).sum::<f64>()
                            };
                            keys.push(((0..d).map(|c| mix(&key, c)).collect(), (0..d).map(|c| mix(&value, c)).collect()));
                        }
                    }
                    let scores: Vec<f64> = keys
                        .iter()
                        .map(|(kk, _)| (0..d).map(|c| q[at(i, c)] as f64 * kk[c]).sum::<f64>() / (d as f64).sqrt())
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    for (score, (_, vv)) in scores.iter().zip(&keys) {
                        for c in 0..d {
                            expected[at(i, c)] += ((score - max).exp() / total * vv[c]) as f32;
                        }
                    }
                }
            }
        }
        let expected = Tensor::<4>::from_data(TensorData::new(expected, [2, HEADS, len, d]), &device);
        let expected = attention.projections.combine(expected);
        assert_close_at_real_tokens(
            attention.forward(x, padding),
            expected,
            &real_tokens,
            1e-4,
            "Sinkhorn vs a naive computation",
        );
    }

    #[test]
    fn sinkhorn_attention_outputs_of_real_tokens_ignore_padding() {
        let attention = sinkhorn_attention(4);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), D_MODEL, &[10, 26, 3], 26, &Device::flex());
    }

    #[test]
    fn sinkhorn_attention_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        let attention = SinkhornAttentionConfig::new(D_MODEL, HEADS, 64).with_block_size(4).init(&device);
        let x = random_input(2, 17, D_MODEL, &device);
        let loss = attention.forward(x, padding_after(&[17, 10], 17, &device)).sum();
        assert_eq!(assert_finite_gradients(&attention, &loss.backward()), 6);
    }

    fn lra_sinkhorn(block_size: usize, device: &Device) -> SinkhornAttention {
        SinkhornAttentionConfig::new(D_MODEL, HEADS, 64)
            .with_block_size(block_size)
            .with_dropout(0.0)
            .with_variant(Variant::Lra)
            .init(device)
    }

    /// What `sinkhorn_attention.py` computes, in loops (its pseudo-code, steps 2-8): strided
    /// blocks; sorted keys and values the sums over contiguous segments of `m` positions;
    /// masks from contiguous positions; two softmaxes added.
    fn lra_sinkhorn_loops(q: &Rows, k: &Rows, v: &Rows, real: &[usize], len: usize, block: usize) -> Rows {
        let groups = len / block;
        let d = q.d();
        let valid = |b: usize, t: usize| t < real[b];
        let local_ok = |b: usize, g: usize, s: usize, t: usize| valid(b, g * block + s) && valid(b, g * block + t);
        let segment_sum = |rows: &Rows, b: usize, h: usize, s: usize| {
            let mut sum = vec![0.0f32; d];
            for t in s * groups..(s + 1) * groups {
                sum.iter_mut().zip(rows.row(b, h, t)).for_each(|(a, x)| *a += x);
            }
            sum
        };
        Rows::build([real.len(), HEADS, len, d], |b, h, i| {
            let (s, g) = (i / groups, i % groups);
            let scale = 1.0 / (d as f32).sqrt();
            let keys: Vec<&[f32]> = (0..block).map(|t| k.row(b, h, t * groups + g)).collect();
            let vals: Vec<&[f32]> = (0..block).map(|t| v.row(b, h, t * groups + g)).collect();
            let masked: Vec<bool> = (0..block).map(|t| !local_ok(b, g, s, t)).collect();
            let local = attend(q.row(b, h, i), &keys, &vals, scale, &masked, -1.0e10);
            let sorted_keys: Vec<Vec<f32>> = (0..block).map(|t| segment_sum(k, b, h, t)).collect();
            let sorted_vals: Vec<Vec<f32>> = (0..block).map(|t| segment_sum(v, b, h, t)).collect();
            let sorted_masked: Vec<bool> = (0..block).map(|t| !(0..groups).any(|j| local_ok(b, j, s, t))).collect();
            let keys: Vec<&[f32]> = sorted_keys.iter().map(Vec::as_slice).collect();
            let vals: Vec<&[f32]> = sorted_vals.iter().map(Vec::as_slice).collect();
            let sorted = attend(q.row(b, h, i), &keys, &vals, scale, &sorted_masked, -1.0e10);
            local.iter().zip(&sorted).map(|(a, b)| a + b).collect()
        })
    }

    #[test]
    fn lra_sinkhorn_equals_the_released_loops_every_sorted_block_the_sum_of_all_blocks() {
        let device = Device::flex();
        for (len, block, real) in [(20, 4, [20, 11]), (12, 6, [12, 3]), (16, 4, [16, 16])] {
            let attention = lra_sinkhorn(block, &device);
            let x = random_input(2, len, D_MODEL, &device);
            let got = values(attention.forward(x.clone(), padding_after(&real, len, &device)));
            let (q, k, v) = attention.projections.project(x);
            let context = lra_sinkhorn_loops(&Rows::of(q), &Rows::of(k), &Rows::of(v), &real, len, block);
            let expected = values(attention.projections.combine(context.tensor(&device)));
            assert_close(&got, &expected, 1e-4, &format!("LRA's Sinkhorn, len {len}, block {block}"));
        }
    }

    #[test]
    fn lra_sinkhorn_refuses_a_block_that_does_not_divide_the_sequence() {
        let device = Device::flex().autodiff();
        let attention =
            SinkhornAttentionConfig::new(D_MODEL, HEADS, 64).with_block_size(4).with_variant(Variant::Lra).init(&device);
        assert!(attention.sorting_network.is_none(), "LRA's sorting network has no effect: not built");
        let x = random_input(2, 16, D_MODEL, &device);
        let loss = attention.forward(x, padding_after(&[16, 10], 16, &device)).sum();
        assert_eq!(assert_finite_gradients(&attention, &loss.backward()), 4);
        let refused = std::panic::catch_unwind(|| {
            lra_sinkhorn(4, &Device::flex())
                .forward(random_input(1, 18, D_MODEL, &Device::flex()), padding_after(&[18], 18, &Device::flex()))
        });
        assert!(refused.is_err(), "18 positions in blocks of 4");
        // The tiny classifier's 13 positions take blocks of 13 (the nearest divisor).
    }
}
