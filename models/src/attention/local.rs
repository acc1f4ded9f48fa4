//! Local attention: each block of positions attends only within itself.
//!
//! Paper: the "Local Attention" baseline of Tay et al., "Long Range Arena: A Benchmark for
//! Efficient Transformers", ICLR 2021 (block-local self-attention, as in Parmar et al.,
//! "Image Transformer", ICML 2018).
//! Family: fixed pattern.
//! Cost: O(n b d) time and O(n b) memory per head, for blocks of b positions.
//!
//! The sequence is cut into non-overlapping blocks of `block_size` positions (the last
//! one filled up with padding) and softmax attention runs within each block. No
//! information crosses a block boundary within one layer.
//!
//! Variant `lra`, as LRA's released code computes it (`lra_benchmarks/models/local/
//! local_attention.py`), quirks included:
//! - the sequence is filled up with `b - n % b` zero positions (lines 228-232: a whole
//!   block when `b` divides `n`), whose queries, keys and values are zero, and which the
//!   padding mask marks as real (237: `jnp.pad` of a boolean mask with -1e9 gives true);
//! - the blocks are strided, not contiguous (315-323): with `m` blocks, block `g` holds
//!   positions `g, g + m, g + 2m, ...`, so each position attends `b` positions spread over
//!   the whole sequence;
//! - the padding mask is cut contiguously (342-355): the pair (slot `s`, slot `t`) of block
//!   `g` is masked where position `g b + s` or `g b + t` is padding, not the positions the
//!   slots hold; a query whose every key is masked averages its block's values uniformly.

use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::blocks::{
    Blocks, block_attention, block_count, contiguous_pair_mask, lra_filled, pad_positions, strided_groups, unblock,
    ungroup_strided,
};
use super::flops::LayerShape;
use super::heads::HeadProjections;
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Scale, Settings, Variant, fit, within};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n b) time, O(n b) memory (blocks of b)";

/// What the `lra` variant computes differently from the paper, in one line for reports
/// (the module's notes say it in full).
pub const LRA_VARIANT: &str = "strided blocks (block g holds positions g, g + m, ... of the m blocks), the sequence filled up with zero positions marked real, and the padding mask cut contiguously, so that it masks other tokens than the block holds (local_attention.py:228-413)";

#[derive(Config, Debug)]
pub struct LocalAttentionConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// Longest sequence (the pattern does not depend on it).
    pub max_length: usize,
    /// Positions per block.
    #[config(default = 32)]
    pub block_size: usize,
    /// Dropout on the attention weights.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// The paper's form, or LRA's (strided blocks, a misaligned padding mask).
    #[config(default = "Variant::Paper")]
    pub variant: Variant,
}

impl LocalAttentionConfig {
    pub fn init(&self, device: &Device) -> LocalAttention {
        assert!(self.block_size > 0, "local attention needs a block size of at least 1");
        LocalAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            block_size: self.block_size,
            variant: self.variant,
        }
    }
}

/// Local attention's own settings in a run's configuration
/// (`"attention": {"local": {"block_size": 50}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    #[serde(default)]
    pub variant: Variant,
    /// Positions per block.
    pub block_size: usize,
}

impl Settings for LocalSettings {
    type Layer = LocalAttention;
    const MODEL: ModelCard = ModelCard {
        name: "local",
        title: "Local Attention (block-local, as in LRA, Tay et al. 2021)",
        family: "fixed pattern",
        cost: COST,
    };
    const LRA_VARIANT: Option<&'static str> = Some(LRA_VARIANT);

    fn defaults(max_length: usize) -> LocalSettings {
        let c = LocalAttentionConfig::new(1, 1, max_length);
        LocalSettings { variant: c.variant, block_size: c.block_size }
    }

    fn variant_mut(&mut self) -> Option<&mut Variant> {
        Some(&mut self.variant)
    }

    fn fitted_to(self, positions: usize) -> LocalSettings {
        LocalSettings { block_size: fit(self.block_size, positions), ..self }
    }

    fn scaled(self, scale: &Scale) -> LocalSettings {
        LocalSettings { block_size: scale.length(self.block_size), ..self }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        within("block_size", self.block_size, positions)
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.variant, self.block_size)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> LocalAttention {
        LocalAttentionConfig::new(layer.d_model, layer.heads, layer.max_length)
            .with_variant(self.variant)
            .with_qkv_dim(layer.qkv_dim)
            .with_block_size(self.block_size)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct LocalAttention {
    pub projections: HeadProjections,
    pub dropout: Dropout,
    pub block_size: usize,
    #[module(skip)]
    pub variant: Variant,
}

impl LocalAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let (q, k, v) = self.projections.project(x);
        if self.variant == Variant::Lra {
            return self.projections.combine(self.lra_blocks(q, k, v, padding));
        }
        let blocks = Blocks::new(q, k, v, padding, self.block_size);
        let key_mask = blocks.key_mask();
        let context = block_attention(blocks.queries, blocks.keys, blocks.values, key_mask, &self.dropout);
        self.projections.combine(unblock(context, blocks.len))
    }

    /// LRA's strided blocks: `q, k, v: [batch, heads, len, d]` -> `[batch, heads, len, d]`.
    fn lra_blocks(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, padding: Tensor<2, Bool>) -> Tensor<4> {
        let [batch, _, len, _] = q.dims();
        let block = self.block_size;
        let padded = lra_filled(len, block);
        let groups = padded / block;
        let filled = Tensor::<2, Bool>::full([batch, padded - len], false, &padding.device());
        let masked = contiguous_pair_mask(Tensor::cat(vec![padding, filled], 1), groups);
        let [q, k, v] = [q, k, v].map(|x| strided_groups(pad_positions(x, padded), groups));
        let context = block_attention(q, k, v, masked, &self.dropout);
        ungroup_strided(context).narrow(2, 0, len)
    }
}

impl AttentionLayer for LocalAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// Work of one forward ([`super::flops`]): the projections, and each query over the `b`
/// keys of its block, over the sequence filled up to whole blocks (LRA's form adds a
/// whole block when `b` divides the length): `8 b n D d + 4 b n' b d`.
pub fn forward_flops(shape: &LayerShape, variant: Variant, block: usize) -> f64 {
    let n = shape.positions;
    let filled = match variant {
        Variant::Lra => lra_filled(n, block),
        Variant::Paper => block_count(n, block) * block,
    };
    shape.projections(shape.n()) + shape.attend(filled as f64, block as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::*;
    use crate::attention::full_layer::FullAttention;

    const D_MODEL: usize = 16;

    fn local(block_size: usize) -> LocalAttention {
        LocalAttentionConfig::new(D_MODEL, 2, 64).with_block_size(block_size).with_dropout(0.0).init(&Device::flex())
    }

    #[test]
    fn local_attention_with_one_block_covering_the_sequence_equals_full_attention() {
        let device = Device::flex();
        let attention = local(16);
        let full = FullAttention { projections: attention.projections.clone(), dropout: DropoutConfig::new(0.0).init() };
        let x = random_input(2, 11, D_MODEL, &device);
        let padding = padding_after(&[11, 7], 11, &device);
        let expected = values(full.forward(x.clone(), padding.clone()));
        assert_close(&values(attention.forward(x, padding)), &expected, 1e-4, "local vs full");
    }

    #[test]
    fn local_attention_equals_full_attention_masked_to_its_blocks() {
        let device = Device::flex();
        let (len, block) = (19, 4);
        let attention = local(block);
        let x = random_input(2, len, D_MODEL, &device);
        let real = [19, 10];
        let padding = padding_after(&real, len, &device);
        let (q, k, v) = attention.projections.project(x.clone());
        let same_block = pattern_from_fn(2, len, &device, |_, i, j| i / block == j / block);
        let expected = attention.projections.combine(pattern_attention(q, k, v, same_block, padding.clone()));
        assert_close_at_real_tokens(attention.forward(x, padding), expected, &real, 1e-4, "local vs its pattern");
    }

    #[test]
    fn local_attention_outputs_of_real_tokens_ignore_padding() {
        let attention = local(4);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), D_MODEL, &[9, 13, 3], 24, &Device::flex());
    }

    #[test]
    fn local_attention_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        let attention = LocalAttentionConfig::new(D_MODEL, 2, 64).with_block_size(4).init(&device);
        let x = random_input(2, 10, D_MODEL, &device);
        let loss = attention.forward(x, padding_after(&[10, 6], 10, &device)).sum();
        assert_eq!(assert_finite_gradients(&attention, &loss.backward()), 4);
    }

    fn lra_local(block_size: usize, device: &Device) -> LocalAttention {
        LocalAttentionConfig::new(D_MODEL, 2, 64)
            .with_block_size(block_size)
            .with_dropout(0.0)
            .with_variant(Variant::Lra)
            .init(device)
    }

    /// What `local_attention.py` computes, in loops: fill up to `padded` with zero rows
    /// marked real, group position `s m + g` into slot `s` of group `g`, mask the pair of
    /// slots by the contiguous positions `g b + s`, `g b + t`; masked scores are -1e10.
    fn lra_local_loops(q: &Rows, k: &Rows, v: &Rows, real: &[usize], len: usize, block: usize) -> Rows {
        let padded = len + block - len % block;
        let groups = padded / block;
        let d = q.d();
        let zero = vec![0.0f32; d];
        let row = |rows: &'_ Rows, b: usize, h: usize, t: usize| -> Vec<f32> {
            if t < len { rows.row(b, h, t).to_vec() } else { zero.clone() }
        };
        let is_pad = |b: usize, t: usize| t < len && t >= real[b];
        let [batch, heads] = [real.len(), 2];
        Rows::build([batch, heads, len, d], |b, h, i| {
            let (s, g) = (i / groups, i % groups);
            let keys: Vec<Vec<f32>> = (0..block).map(|t| row(k, b, h, t * groups + g)).collect();
            let vals: Vec<Vec<f32>> = (0..block).map(|t| row(v, b, h, t * groups + g)).collect();
            let masked: Vec<bool> = (0..block).map(|t| is_pad(b, g * block + s) || is_pad(b, g * block + t)).collect();
            let keys: Vec<&[f32]> = keys.iter().map(Vec::as_slice).collect();
            let vals: Vec<&[f32]> = vals.iter().map(Vec::as_slice).collect();
            attend(&row(q, b, h, i), &keys, &vals, 1.0 / (d as f32).sqrt(), &masked, -1.0e10)
        })
    }

    #[test]
    fn lra_local_attention_equals_the_released_loops_strided_blocks_and_misaligned_mask() {
        let device = Device::flex();
        for (len, block, real) in [(19, 4, [19, 10]), (16, 4, [16, 9]), (13, 5, [13, 2])] {
            let attention = lra_local(block, &device);
            let x = random_input(2, len, D_MODEL, &device);
            let got = values(attention.forward(x.clone(), padding_after(&real, len, &device)));
            let (q, k, v) = attention.projections.project(x);
            let context = lra_local_loops(&Rows::of(q), &Rows::of(k), &Rows::of(v), &real, len, block);
            let expected = values(attention.projections.combine(context.tensor(&device)));
            assert_close(&got, &expected, 1e-4, &format!("LRA's local attention, len {len}, block {block}"));
        }
    }

    #[test]
    fn lra_local_groups_are_strided_and_its_mask_leaks_padding_as_released() {
        let device = Device::flex();
        // 12 positions, blocks of 4: filled up to 16, 4 groups; position 0 sees 0, 4, 8 (and 12, a filler).
        let attention = lra_local(4, &device);
        let x = random_input(1, 12, D_MODEL, &device);
        let none = padding_after(&[12], 12, &device);
        let base = values(attention.forward(x.clone(), none.clone()));
        let row0 = |out: &[f32]| out[..D_MODEL].to_vec();
        for moved in 1..12 {
            let changed = x.clone().slice_assign([0..1, moved..moved + 1], random_input(1, 1, D_MODEL, &device));
            let after = values(attention.forward(changed, none.clone()));
            assert_eq!(row0(&base) != row0(&after), moved % 4 == 0, "position 0 and position {moved}");
        }
        // Real length 7: the mask of group 0 covers positions 0-3 (all real), so position 8, a
        // padding token in group 0, is attended by position 0 and its content leaks.
        let padding = padding_after(&[7], 12, &device);
        let before = values(attention.forward(x.clone(), padding.clone()));
        let changed = x.clone().slice_assign([0..1, 8..9], random_input(1, 1, D_MODEL, &device));
        assert_ne!(row0(&before), row0(&values(attention.forward(changed, padding))), "padding at 8 reaches position 0");
    }

    #[test]
    fn lra_local_attention_gradients_are_finite() {
        let device = Device::flex().autodiff();
        let attention = LocalAttentionConfig::new(D_MODEL, 2, 64).with_block_size(4).with_variant(Variant::Lra).init(&device);
        let x = random_input(2, 10, D_MODEL, &device);
        let loss = attention.forward(x, padding_after(&[10, 6], 10, &device)).sum();
        assert_eq!(assert_finite_gradients(&attention, &loss.backward()), 4);
    }
}
