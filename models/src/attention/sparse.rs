//! Sparse Transformer: factorised attention, with strided heads and fixed heads.
//!
//! Paper: Child, Gray, Radford and Sutskever, "Generating Long Sequences with Sparse
//! Transformers", 2019 (arXiv:1904.10509).
//! Family: fixed pattern.
//! Cost: O(n (l + c n / l) d) time and O(n (l + c n / l)) memory per head for a stride l
//! and c summary positions per block; O(n sqrt(n)) with the default l ~ sqrt(n), c = 8.
//!
//! Section 4.3 factorises attention into two patterns of stride l, given to different
//! heads ("multi-head attention" of Section 5.2, half the heads each):
//! - strided heads: position i attends to the positions less than l away
//!   (`A(1) = {j : |i - j| < l}`) and to every l-th position from it
//!   (`A(2) = {j : (i - j) mod l = 0}`);
//! - fixed heads: position i attends to its own block of l positions
//!   (`A(1) = {j : floor(j / l) = floor(i / l)}`) and to the last c positions of every
//!   block, the "summary" columns (`A(2) = {j : j mod l >= l - c}`).
//!
//! The paper's patterns are causal (it generates sequences); an encoder that classifies
//! uses both directions, so each set here is the symmetric version. The stride is fixed
//! from `max_length` (not from the length of each batch), so that padding never moves
//! the pattern. With one head, the head is strided.
//!
//! Both patterns are computed block by block, with blocks of l positions: the local part
//! of a strided head reads blocks i - 1, i, i + 1; its strided part reads position t of
//! every block, which is attention along the columns of the `[blocks, l]` layout; a
//! fixed head reads its own block and the `c` summary positions of every block. Keys
//! reached by both parts of a head are masked in the second, so that none counts twice.
//!
//! A classifier that pools by CLS puts its CLS vector before the sequence: `leading`
//! such positions stand outside the pattern, so that the strides stay on the sequence's
//! own positions (an image's columns). Every position attends to them beside its pattern
//! (one softmax), and they attend to every position, as the CLS row and column of LRA's
//! Sparse Transformer.
//!
//! Variant `lra`, as LRA's released code computes it
//! (`lra_benchmarks/models/sparse_transformer/sparse_attention.py`, patterns forced by
//! `utils/train_utils.py:74-78`): every head takes one union of both fixed patterns,
//! causal even in an encoder (lines 63-95): position i attends to j <= i in its own block
//! of l (`Fixed1`) or at a summary column of an earlier block, `j mod l = 0` or
//! `j mod l >= l - c` (`Fixed2`, which keeps column 0 beside the last c); the CLS row
//! and column are open (185-195). LRA computes it as a dense `[n, n]` mask; here the own
//! block and the summary columns of earlier blocks are computed block by block.

use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::blocks::{
    Blocks, Leading, after_leading, any_of, block_scores, joint_softmax, key_mask, mask_from_fn, neighbour_blocks,
    outside_window, unblock,
};
use super::flops::LayerShape;
use super::heads::{HeadProjections, MASKED_SCORE};
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Scale, Settings, Variant, at_least_one, fit, within};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n sqrt(n)) time, O(n sqrt(n)) memory";

/// What the `lra` variant computes differently from the paper, in one line for reports
/// (the module's notes say it in full).
pub const LRA_VARIANT: &str = "every head one union of Fixed1 and Fixed2 (summary columns 0 and the last c of each block), causal even in the encoder, the CLS row and column open (sparse_attention.py:63-95, 185-195)";

#[derive(Config, Debug)]
pub struct SparseAttentionConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// Longest sequence: the default stride is derived from it.
    pub max_length: usize,
    /// Stride l (block length); default: ceil(sqrt(max_length)).
    pub stride: Option<usize>,
    /// Summary positions c at the end of each block (fixed heads), at most l. The paper
    /// uses c = 8 to 32 with l = 128; a constant c keeps the fixed heads at O(n sqrt(n)).
    #[config(default = 8)]
    pub summary: usize,
    /// Dropout on the attention weights.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// The paper's form, or LRA's (one causal union of both patterns).
    #[config(default = "Variant::Paper")]
    pub variant: Variant,
    /// Positions before the pattern (the CLS vector), attended by and attending to all.
    #[config(default = 0)]
    pub leading: usize,
}

impl SparseAttentionConfig {
    /// The stride in use: the configured one, or ceil(sqrt(max_length)).
    pub fn resolved_stride(&self) -> usize {
        self.stride.unwrap_or_else(|| (self.max_length as f64).sqrt().ceil() as usize).max(1)
    }

    pub fn init(&self, device: &Device) -> SparseAttention {
        let stride = self.resolved_stride();
        let summary = self.summary.clamp(1, stride);
        SparseAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            stride,
            summary,
            strided_heads: strided_heads(self.heads),
            leading: self.leading,
            variant: self.variant,
        }
    }
}

/// Sparse attention's own settings in a run's configuration
/// (`"attention": {"sparse": {"stride": 33, "summary": 8}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseSettings {
    #[serde(default)]
    pub variant: Variant,
    /// Stride l (the block length).
    pub stride: usize,
    /// Summary positions c at the end of each block (fixed heads).
    pub summary: usize,
}

impl Settings for SparseSettings {
    type Layer = SparseAttention;
    const MODEL: ModelCard =
        ModelCard { name: "sparse", title: "Sparse Transformer (Child et al. 2019)", family: "fixed pattern", cost: COST };
    const LRA_VARIANT: Option<&'static str> = Some(LRA_VARIANT);

    fn defaults(max_length: usize) -> SparseSettings {
        let c = SparseAttentionConfig::new(1, 1, max_length);
        let stride = c.resolved_stride();
        SparseSettings { variant: c.variant, stride, summary: c.summary.clamp(1, stride) }
    }

    fn variant_mut(&mut self) -> Option<&mut Variant> {
        Some(&mut self.variant)
    }

    fn fitted_to(self, positions: usize) -> SparseSettings {
        let stride = fit(self.stride, positions);
        SparseSettings { stride, summary: self.summary.min(stride), ..self }
    }

    fn scaled(self, scale: &Scale) -> SparseSettings {
        SparseSettings { stride: scale.length(self.stride), summary: scale.proportional(self.summary).max(1), ..self }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        let (stride, summary) = (self.stride, self.summary);
        within("stride", stride, positions)?;
        at_least_one("summary", summary)?;
        match summary > stride {
            true => Err(format!("summary {summary} is more than the stride {stride}")),
            false => Ok(()),
        }
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.variant, self.stride, self.summary)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> SparseAttention {
        SparseAttentionConfig::new(layer.d_model, layer.heads, layer.max_length)
            .with_variant(self.variant)
            .with_qkv_dim(layer.qkv_dim)
            .with_leading(layer.leading)
            .with_stride(Some(self.stride))
            .with_summary(self.summary)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct SparseAttention {
    pub projections: HeadProjections,
    pub dropout: Dropout,
    pub stride: usize,
    pub summary: usize,
    /// Heads `0..strided_heads` are strided, the others fixed.
    pub strided_heads: usize,
    pub leading: usize,
    #[module(skip)]
    pub variant: Variant,
}

impl SparseAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let qkv = self.projections.project(x);
        let context = after_leading(qkv, padding, self.leading, &self.dropout, |q, k, v, padding, leading| {
            self.pattern(q, k, v, padding, leading)
        });
        self.projections.combine(context)
    }

    /// Both kinds of heads over `q, k, v: [batch, heads, len, d]` -> `[batch, heads, len, d]`.
    fn pattern(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, padding: Tensor<2, Bool>, leading: Option<Leading>) -> Tensor<4> {
        let heads = q.dims()[1];
        let blocks = Blocks::new(q, k, v, padding, self.stride);
        if self.variant == Variant::Lra {
            let len = blocks.len;
            return unblock(self.lra_union(blocks, leading), len);
        }
        let leading_of = |first, count| leading.as_ref().map(|l| l.heads(first, count));
        let strided = self.strided(heads_of(&blocks, 0, self.strided_heads), leading_of(0, self.strided_heads));
        let context = if self.strided_heads == heads {
            strided
        } else {
            let fixed_heads = heads - self.strided_heads;
            let fixed =
                self.fixed(heads_of(&blocks, self.strided_heads, fixed_heads), leading_of(self.strided_heads, fixed_heads));
            Tensor::cat(vec![strided, fixed], 1)
        };
        unblock(context, blocks.len)
    }

    /// Strided heads: `|i - j| < l` or `(i - j) mod l = 0` -> `[batch, heads, blocks, l, d]`.
    fn strided(&self, blocks: Blocks, leading: Option<Leading>) -> Tensor<5> {
        let device = blocks.queries.device();
        let [batch, _, count, l, _] = blocks.queries.dims();

        // Local part: blocks i - 1, i, i + 1, keys less than l positions away.
        let local_mask = any_of(vec![blocks.neighbour_key_mask(1), outside_window(l, 1, l - 1, &device)]);
        let local_scores =
            block_scores(blocks.queries.clone(), neighbour_blocks(blocks.keys.clone(), 1)).mask_fill(local_mask, MASKED_SCORE);

        // Strided part: position t of every block, i.e. the columns of the [blocks, l]
        // layout; scores [batch, heads, l, blocks (query), blocks (key)] turned to
        // [batch, heads, blocks, l, blocks]. The key in the query's own block is the query
        // itself, already in the local part.
        let column_scores =
            block_scores(blocks.queries.clone().swap_dims(2, 3), blocks.keys.clone().swap_dims(2, 3)).swap_dims(2, 3);
        let column_padding = blocks.padding.clone().swap_dims(1, 2).reshape([batch, 1, 1, l, count]);
        let itself = mask_from_fn([1, 1, count, 1, count], &device, |[_, _, query, _, key]| query == key);
        let column_scores = column_scores.mask_fill(any_of(vec![column_padding, itself]), MASKED_SCORE);

        let mut parts = vec![local_scores, column_scores];
        parts.extend(leading.as_ref().map(|l| l.scores(blocks.queries.clone())));
        let weights = joint_softmax(parts, &self.dropout);
        let local = weights[0].clone().matmul(neighbour_blocks(blocks.values.clone(), 1));
        let columns = weights[1].clone().swap_dims(2, 3).matmul(blocks.values.swap_dims(2, 3)).swap_dims(2, 3);
        match leading {
            Some(leading) => local + columns + weights[2].clone().matmul(leading.values),
            None => local + columns,
        }
    }

    /// Fixed heads: same block, or the last c positions of any block ->
    /// `[batch, heads, blocks, l, d]`.
    fn fixed(&self, blocks: Blocks, leading: Option<Leading>) -> Tensor<5> {
        let device = blocks.queries.device();
        let [batch, heads, count, l, d] = blocks.queries.dims();
        let c = self.summary;

        let own_scores = block_scores(blocks.queries.clone(), blocks.keys.clone()).mask_fill(blocks.key_mask(), MASKED_SCORE);

        // Summary positions of every block, shared by all query blocks; those of the
        // query's own block are already in the first part.
        let summary_keys = blocks.keys.clone().narrow(3, l - c, c).reshape([batch, heads, 1, count * c, d]);
        let summary_values = blocks.values.clone().narrow(3, l - c, c).reshape([batch, heads, 1, count * c, d]);
        let summary_padding = key_mask(blocks.padding.clone().narrow(2, l - c, c).reshape([batch, 1, count * c]));
        let own_block = mask_from_fn([1, 1, count, 1, count * c], &device, |[_, _, query, _, key]| query == key / c);
        let summary_scores =
            block_scores(blocks.queries.clone(), summary_keys).mask_fill(any_of(vec![summary_padding, own_block]), MASKED_SCORE);

        self.own_and_summary(blocks.queries, (own_scores, blocks.values), (summary_scores, summary_values), leading)
    }

    /// LRA's causal union of Fixed1 and Fixed2, every head: the query's own block up to
    /// the query, and the summary columns of the blocks before -> `[batch, heads, blocks, l, d]`.
    fn lra_union(&self, blocks: Blocks, leading: Option<Leading>) -> Tensor<5> {
        let device = blocks.queries.device();
        let [batch, heads, count, l, d] = blocks.queries.dims();
        let c = self.summary;
        let later = mask_from_fn([1, 1, 1, l, l], &device, |[_, _, _, query, key]| key > query);
        let own_scores = block_scores(blocks.queries.clone(), blocks.keys.clone())
            .mask_fill(any_of(vec![blocks.key_mask(), later]), MASKED_SCORE);

        // Summary columns: 0, then l - c .. l - 1 (all of them when c = l).
        let columns = |x: Tensor<5>| match c < l {
            true => Tensor::cat(vec![x.clone().narrow(3, 0, 1), x.narrow(3, l - c, c)], 3),
            false => x,
        };
        let per_block = (c + 1).min(l);
        let summary_keys = columns(blocks.keys.clone()).reshape([batch, heads, 1, count * per_block, d]);
        let summary_values = columns(blocks.values.clone()).reshape([batch, heads, 1, count * per_block, d]);
        let padding = blocks.padding.clone(); // [batch, blocks, l]
        let summary_padding = match c < l {
            true => Tensor::cat(vec![padding.clone().narrow(2, 0, 1), padding.narrow(2, l - c, c)], 2),
            false => padding,
        };
        let summary_padding = key_mask(summary_padding.reshape([batch, 1, count * per_block]));
        // Blocks before the query's only: those of its own block are in the first part.
        let not_earlier =
            mask_from_fn([1, 1, count, 1, count * per_block], &device, |[_, _, query, _, key]| key / per_block >= query);
        let summary_scores = block_scores(blocks.queries.clone(), summary_keys)
            .mask_fill(any_of(vec![summary_padding, not_earlier]), MASKED_SCORE);

        self.own_and_summary(blocks.queries, (own_scores, blocks.values), (summary_scores, summary_values), leading)
    }

    /// One softmax over a block's own keys, summary keys and the leading positions (each
    /// part's scores already masked) -> the block's context `[batch, heads, blocks, l, d]`.
    fn own_and_summary(
        &self,
        queries: Tensor<5>,
        (own_scores, own_values): (Tensor<5>, Tensor<5>),
        (summary_scores, summary_values): (Tensor<5>, Tensor<5>),
        leading: Option<Leading>,
    ) -> Tensor<5> {
        let mut parts = vec![own_scores, summary_scores];
        parts.extend(leading.as_ref().map(|l| l.scores(queries)));
        let weights = joint_softmax(parts, &self.dropout);
        let context = weights[0].clone().matmul(own_values) + weights[1].clone().matmul(summary_values);
        match leading {
            Some(leading) => context + weights[2].clone().matmul(leading.values),
            None => context,
        }
    }
}

impl AttentionLayer for SparseAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// Heads `first..first + count` of `blocks`.
fn heads_of(blocks: &Blocks, first: usize, count: usize) -> Blocks {
    Blocks {
        queries: blocks.queries.clone().narrow(1, first, count),
        keys: blocks.keys.clone().narrow(1, first, count),
        values: blocks.values.clone().narrow(1, first, count),
        padding: blocks.padding.clone(),
        len: blocks.len,
    }
}

/// The paper's heads split: the strided pattern in half of them, rounded up; the fixed
/// pattern in the rest.
fn strided_heads(heads: usize) -> usize {
    heads - heads / 2
}

/// Work of one forward ([`super::flops`]): the projections, the leading rows, and each
/// query of the `l`-blocks after them over its keys. The paper's strided heads (half, rounded
/// up) take the blocks `i - 1 ..= i + 1` and one key per block (`3 l + n / l`), its fixed
/// heads the own block and `c` summary keys per block (`l + c n / l`); LRA's union takes
/// the own block and `c + 1` summary keys per block, every head.
pub fn forward_flops(shape: &LayerShape, variant: Variant, stride: usize, summary: usize) -> f64 {
    let l = stride.max(1);
    let count = super::blocks::block_count(shape.after_leading(), l) as f64;
    let (rows, l_f, c) = (count * l as f64, l as f64, summary as f64);
    let pattern = match variant {
        Variant::Lra => shape.attend(rows, l_f + count * (summary + 1).min(l) as f64),
        Variant::Paper => {
            let strided = strided_heads(shape.heads) as f64 / shape.heads as f64;
            strided * shape.attend(rows, 3.0 * l_f + count) + (1.0 - strided) * shape.attend(rows, l_f + count * c)
        }
    };
    // The leading keys of every row, and the leading rows, are in `leading_rows`.
    shape.projections(shape.n()) + pattern + shape.leading_rows()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::*;
    use crate::attention::full_layer::FullAttention;

    const D_MODEL: usize = 16;

    fn sparse(heads: usize, stride: usize, summary: usize) -> SparseAttention {
        SparseAttentionConfig::new(D_MODEL, heads, 64)
            .with_stride(Some(stride))
            .with_summary(summary)
            .with_dropout(0.0)
            .init(&Device::flex())
    }

    #[test]
    fn a_leading_position_is_global_and_keeps_the_strides_on_the_sequence_after_it() {
        let device = Device::flex();
        let plain = sparse(2, 4, 2);
        let with_cls = SparseAttention { leading: 1, ..plain.clone() };
        let x = random_input(2, 17, D_MODEL, &device);
        let padding = padding_after(&[17, 17], 17, &device);
        let masked_lead = padding.clone().slice_assign([0..2, 0..1], Tensor::<2, Bool>::full([2, 1], true, &device));
        let expected = values(plain.forward(x.clone().narrow(1, 1, 16), padding.clone().narrow(1, 1, 16)));
        let got = values(with_cls.forward(x.clone(), masked_lead).narrow(1, 1, 16));
        assert_close(&got, &expected, 1e-5, "the pattern after the leading position");
        // The leading position sees every position: its output is full attention's.
        let full = FullAttention { projections: plain.projections.clone(), dropout: DropoutConfig::new(0.0).init() };
        let padding = padding_after(&[17, 11], 17, &device);
        let expected = values(full.forward(x.clone(), padding.clone()).narrow(1, 0, 1));
        assert_close(&values(with_cls.forward(x, padding).narrow(1, 0, 1)), &expected, 1e-4, "the leading position");
    }

    #[test]
    fn sparse_transformer_with_a_stride_covering_the_sequence_equals_full_attention() {
        let device = Device::flex();
        for heads in [1, 2, 4] {
            let attention = sparse(heads, 13, 3);
            let full = FullAttention { projections: attention.projections.clone(), dropout: DropoutConfig::new(0.0).init() };
            let x = random_input(2, 13, D_MODEL, &device);
            let padding = padding_after(&[13, 9], 13, &device);
            let expected = values(full.forward(x.clone(), padding.clone()));
            assert_close(&values(attention.forward(x, padding)), &expected, 1e-4, &format!("{heads} heads"));
        }
    }

    #[test]
    fn sparse_transformer_equals_full_attention_masked_to_strided_and_fixed_patterns() {
        let device = Device::flex();
        let (len, l, c) = (31, 5, 2);
        let heads = 4;
        let attention = sparse(heads, l, c);
        let x = random_input(2, len, D_MODEL, &device);
        let real = [31, 19];
        let padding = padding_after(&real, len, &device);
        let (q, k, v) = attention.projections.project(x.clone());
        let pattern = pattern_from_fn(heads, len, &device, |h, i, j| {
            if h < attention.strided_heads {
                i.abs_diff(j) < l || i.abs_diff(j) % l == 0
            } else {
                i / l == j / l || j % l >= l - c
            }
        });
        let expected = attention.projections.combine(pattern_attention(q, k, v, pattern, padding.clone()));
        assert_close_at_real_tokens(attention.forward(x, padding), expected, &real, 1e-4, "Sparse Transformer vs its patterns");
    }

    #[test]
    fn sparse_transformer_outputs_of_real_tokens_ignore_padding() {
        let attention = sparse(2, 4, 1);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), D_MODEL, &[10, 27, 2], 27, &Device::flex());
    }

    #[test]
    fn sparse_transformer_default_stride_is_about_the_square_root_of_max_length() {
        let attention = SparseAttentionConfig::new(D_MODEL, 2, 1025).init(&Device::flex());
        assert_eq!((attention.stride, attention.summary, attention.strided_heads), (33, 8, 1));
    }

    #[test]
    fn sparse_transformer_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        let attention = SparseAttentionConfig::new(D_MODEL, 2, 16).with_summary(2).init(&device);
        let x = random_input(2, 15, D_MODEL, &device);
        let loss = attention.forward(x, padding_after(&[15, 11], 15, &device)).sum();
        assert_eq!(assert_finite_gradients(&attention, &loss.backward()), 4);
    }

    /// LRA's mask (`sparse_attention.py:71-95, 185-195`), for a position of the sequence
    /// after `lead` CLS positions: `(i, j)` over the whole sequence, CLS included.
    fn lra_allowed(i: usize, j: usize, lead: usize, l: usize, c: usize) -> bool {
        if i < lead || j < lead {
            return true;
        }
        let (i, j) = (i - lead, j - lead);
        j <= i && (i / l == j / l || j % l == 0 || j % l >= l - c)
    }

    #[test]
    fn lra_sparse_equals_the_released_mask_in_loops_causal_union_and_open_cls() {
        let device = Device::flex();
        for (len, lead, l, c, real) in [(23, 1, 5, 2, [23, 14]), (20, 0, 4, 1, [20, 9]), (17, 1, 4, 4, [17, 6])] {
            let attention = SparseAttentionConfig::new(D_MODEL, 2, 64)
                .with_stride(Some(l))
                .with_summary(c)
                .with_leading(lead)
                .with_dropout(0.0)
                .with_variant(Variant::Lra)
                .init(&device);
            let x = random_input(2, len, D_MODEL, &device);
            let got = attention.forward(x.clone(), padding_after(&real, len, &device));
            let (q, k, v) = attention.projections.project(x);
            let context = loop_attention(&Rows::of(q), &Rows::of(k), &Rows::of(v), |b, _, i, j| {
                !lra_allowed(i, j, lead, l, c) || j >= real[b]
            });
            let expected = attention.projections.combine(context.tensor(&device));
            assert_close_at_real_tokens(got, expected, &real, 1e-4, &format!("LRA's Sparse, len {len}, l {l}, c {c}"));
        }
    }

    #[test]
    fn lra_sparse_is_causal_after_the_cls() {
        let device = Device::flex();
        let attention = SparseAttentionConfig::new(D_MODEL, 2, 64)
            .with_stride(Some(4))
            .with_summary(1)
            .with_leading(1)
            .with_dropout(0.0)
            .with_variant(Variant::Lra)
            .init(&device);
        let x = random_input(1, 12, D_MODEL, &device);
        let none = padding_after(&[12], 12, &device);
        let before = values(attention.forward(x.clone(), none.clone()));
        // Changing the last token changes the CLS row and its own, no other position's.
        let changed = x.clone().slice_assign([0..1, 11..12], random_input(1, 1, D_MODEL, &device));
        let after = values(attention.forward(changed, none));
        for position in 0..12 {
            let row = |v: &[f32]| v[position * D_MODEL..(position + 1) * D_MODEL].to_vec();
            assert_eq!(row(&before) != row(&after), position == 0 || position == 11, "position {position}");
        }
        let device = Device::flex().autodiff();
        let attention = SparseAttentionConfig::new(D_MODEL, 2, 64)
            .with_stride(Some(4))
            .with_summary(1)
            .with_leading(1)
            .with_variant(Variant::Lra)
            .init(&device);
        let loss = attention.forward(random_input(2, 13, D_MODEL, &device), padding_after(&[13, 7], 13, &device)).sum();
        assert_eq!(assert_finite_gradients(&attention, &loss.backward()), 4);
    }
}
