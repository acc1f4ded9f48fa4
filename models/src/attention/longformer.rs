//! Longformer: a sliding window around every position, plus a few global positions.
//!
//! Paper: Beltagy, Peters and Cohan, "Longformer: The Long-Document Transformer", 2020
//! (arXiv:2004.05150).
//! Family: combined patterns (sliding window + global attention).
//! Cost: O(n (w + g) d) time and O(n (w + g)) memory per head, for a window of w positions
//! on each side and g global positions.
//!
//! Position i attends to every position j with |i - j| <= w (Section 3.1, "sliding
//! window"); the first `global_tokens` positions (position 0 is the CLS vector) attend
//! to every position and every position attends to them (Section 3.1, "global
//! attention"). The window is computed block by block: with blocks of w positions, the
//! keys within w of any query of block i lie in blocks i - 1, i and i + 1, so each block
//! scores 3w keys and masks those farther than w. Global keys already inside a query's
//! window are masked in the global part, so that no key counts twice.
//!
//! Variant `lra`, as LRA's released code computes it
//! (`lra_benchmarks/models/longformer/longformer_attention.py`): the window is one short on
//! the left, `i - (w - 1) <= j <= i + w` (lines 59-66: a "sliding window size" of 512 is 255
//! positions before, the query and 256 after), and LRA gives no position global attention
//! (`global_mask=None`, `longformer.py:100`), which its preset says with `global_tokens: 0`.
//! LRA computes the window as a dense `[n, n]` mask and a second, discarded global
//! attention; the outputs of real tokens are those computed here block by block.
//!
//! Unlike the paper, the global attention reuses the sliding window's projections
//! instead of a second set, so that the mechanism keeps the shared `HeadProjections`.

use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::blocks::{Blocks, any_of, block_scores, joint_softmax, mask_from_fn, neighbour_blocks, unblock};
use super::flops::LayerShape;
use super::heads::{HeadProjections, MASKED_SCORE, attention_weights};
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Scale, Settings, Variant, fit, within};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n (w + g)) time, O(n (w + g)) memory (window w, g global)";

/// What the `lra` variant computes differently from the paper, in one line for reports
/// (the module's notes say it in full).
pub const LRA_VARIANT: &str = "a window of 255 positions before, the query and 256 after (one short on the left), no global positions (longformer_attention.py:59-66)";

#[derive(Config, Debug)]
pub struct LongformerAttentionConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// Longest sequence (the pattern does not depend on it).
    pub max_length: usize,
    /// Positions on each side of a query that it attends to (the paper's w/2); the
    /// window is computed in blocks of this size, three blocks per query block.
    #[config(default = 32)]
    pub window: usize,
    /// Leading positions with global attention (1: the CLS vector).
    #[config(default = 1)]
    pub global_tokens: usize,
    /// Dropout on the attention weights.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// The paper's form, or LRA's (the window one short on the left).
    #[config(default = "Variant::Paper")]
    pub variant: Variant,
}

impl LongformerAttentionConfig {
    pub fn init(&self, device: &Device) -> LongformerAttention {
        assert!(self.window > 0, "Longformer needs a window of at least 1 position");
        LongformerAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            window: self.window,
            left_reach: match self.variant {
                Variant::Paper => self.window,
                Variant::Lra => self.window - 1,
            },
            global_tokens: self.global_tokens,
        }
    }
}

/// Longformer's own settings in a run's configuration
/// (`"attention": {"longformer": {"window": 32, "global_tokens": 1}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongformerSettings {
    #[serde(default)]
    pub variant: Variant,
    /// Positions of the sliding window on each side.
    pub window: usize,
    /// Leading positions with global attention.
    pub global_tokens: usize,
}

impl Settings for LongformerSettings {
    type Layer = LongformerAttention;
    const MODEL: ModelCard =
        ModelCard { name: "longformer", title: "Longformer (Beltagy et al. 2020)", family: "combined patterns", cost: COST };
    const LRA_VARIANT: Option<&'static str> = Some(LRA_VARIANT);

    fn defaults(max_length: usize) -> LongformerSettings {
        let c = LongformerAttentionConfig::new(1, 1, max_length);
        LongformerSettings { variant: c.variant, window: c.window, global_tokens: c.global_tokens }
    }

    fn variant_mut(&mut self) -> Option<&mut Variant> {
        Some(&mut self.variant)
    }

    fn fitted_to(self, positions: usize) -> LongformerSettings {
        LongformerSettings { window: fit(self.window, positions), global_tokens: fit(self.global_tokens, positions), ..self }
    }

    fn scaled(self, scale: &Scale) -> LongformerSettings {
        LongformerSettings { window: scale.length(self.window), ..self }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        let global_tokens = self.global_tokens;
        within("window", self.window, positions)?;
        match global_tokens > positions {
            true => Err(format!("global_tokens {global_tokens} is more than the sequence ({positions} positions)")),
            false => Ok(()),
        }
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.window, self.global_tokens)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> LongformerAttention {
        LongformerAttentionConfig::new(layer.d_model, layer.heads, layer.max_length)
            .with_variant(self.variant)
            .with_qkv_dim(layer.qkv_dim)
            .with_window(self.window)
            .with_global_tokens(self.global_tokens)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct LongformerAttention {
    pub projections: HeadProjections,
    pub dropout: Dropout,
    pub window: usize,
    /// Positions before a query that it attends to: `window`, or one fewer in LRA's variant.
    pub left_reach: usize,
    pub global_tokens: usize,
}

impl LongformerAttention {
    /// Whether a query attends the key `offset = key - query` positions away.
    fn reaches(&self, offset: isize) -> bool {
        -(self.left_reach as isize) <= offset && offset <= self.window as isize
    }

    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let (q, k, v) = self.projections.project(x);
        let len = q.dims()[2];
        let global = self.global_tokens.min(len);
        let context = self.sliding_window(q.clone(), k.clone(), v.clone(), padding.clone(), global);
        if global == 0 {
            return self.projections.combine(context);
        }
        // Global queries attend to every position: O(g n).
        let weights = attention_weights(q.narrow(2, 0, global), k, Some(padding), Some(&self.dropout));
        let global_context = weights.matmul(v);
        let context = if global == len {
            global_context
        } else {
            Tensor::cat(vec![global_context, context.narrow(2, global, len - global)], 2)
        };
        self.projections.combine(context)
    }

    /// Every query's window plus the global keys: `q, k, v: [batch, heads, len, d]` ->
    /// `[batch, heads, len, d]`.
    fn sliding_window(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, padding: Tensor<2, Bool>, global: usize) -> Tensor<4> {
        let device = q.device();
        let [batch, heads, _, d] = q.dims();
        let w = self.window;
        let blocks = Blocks::new(q, k.clone(), v.clone(), padding.clone(), w);
        let count = blocks.count();

        // Keys of blocks i - 1, i, i + 1, kept within w positions: [b, h, blocks, w, 3w].
        let outside = mask_from_fn([1, 1, 1, w, 3 * w], &device, |[_, _, _, query, key]| {
            // The key blocks start one block before the query's block.
            !self.reaches(key as isize - w as isize - query as isize)
        });
        let window_mask = any_of(vec![blocks.neighbour_key_mask(1), outside]);
        let window_scores =
            block_scores(blocks.queries.clone(), neighbour_blocks(blocks.keys, 1)).mask_fill(window_mask, MASKED_SCORE);
        let window_values = neighbour_blocks(blocks.values, 1);
        if global == 0 {
            let weights = joint_softmax(vec![window_scores], &self.dropout).remove(0);
            return unblock(weights.matmul(window_values), blocks.len);
        }

        // Global keys, shared by all blocks: [b, h, 1, g, d].
        let global_keys = k.narrow(2, 0, global).reshape([batch, heads, 1, global, d]);
        let global_values = v.narrow(2, 0, global).reshape([batch, heads, 1, global, d]);
        let in_window = mask_from_fn([1, 1, count, w, global], &device, |[_, _, block, query, key]| {
            self.reaches(key as isize - (block * w + query) as isize)
        });
        let global_padding = padding.narrow(1, 0, global).reshape([batch, 1, 1, 1, global]);
        let global_mask = any_of(vec![in_window, global_padding]);
        let global_scores = block_scores(blocks.queries, global_keys).mask_fill(global_mask, MASKED_SCORE);

        let weights = joint_softmax(vec![window_scores, global_scores], &self.dropout);
        let context = weights[0].clone().matmul(window_values) + weights[1].clone().matmul(global_values);
        unblock(context, blocks.len)
    }
}

impl AttentionLayer for LongformerAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }
}

/// Work of one forward ([`super::flops`]): the projections; each query's window, computed
/// as the `3 w` keys of the neighbouring `w`-blocks, plus the `g` global keys; and the
/// global queries over every key: `8 b n D d + 4 b n' (3 w + g) d + 4 b g n d`.
pub fn forward_flops(shape: &LayerShape, window: usize, global_tokens: usize) -> f64 {
    let w = window.max(1);
    let global = global_tokens.min(shape.positions) as f64;
    let rows = (super::blocks::block_count(shape.positions, w) * w) as f64;
    let globals = if global > 0.0 { shape.attend(global, shape.n()) } else { 0.0 };
    shape.projections(shape.n()) + shape.attend(rows, 3.0 * w as f64 + global) + globals
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::*;
    use crate::attention::full_layer::FullAttention;

    const D_MODEL: usize = 16;

    fn longformer(window: usize, global_tokens: usize) -> LongformerAttention {
        LongformerAttentionConfig::new(D_MODEL, 2, 64)
            .with_window(window)
            .with_global_tokens(global_tokens)
            .with_dropout(0.0)
            .init(&Device::flex())
    }

    #[test]
    fn longformer_with_a_window_covering_the_sequence_equals_full_attention() {
        let device = Device::flex();
        for global_tokens in [0, 1, 3] {
            let attention = longformer(12, global_tokens);
            let full = FullAttention { projections: attention.projections.clone(), dropout: DropoutConfig::new(0.0).init() };
            let x = random_input(2, 12, D_MODEL, &device);
            let padding = padding_after(&[12, 8], 12, &device);
            let expected = values(full.forward(x.clone(), padding.clone()));
            assert_close(&values(attention.forward(x, padding)), &expected, 1e-4, &format!("{global_tokens} global tokens"));
        }
    }

    #[test]
    fn longformer_equals_full_attention_masked_to_window_and_global_positions() {
        let device = Device::flex();
        let (len, window, global) = (23, 3, 2);
        let attention = longformer(window, global);
        let x = random_input(2, len, D_MODEL, &device);
        let real = [23, 15];
        let padding = padding_after(&real, len, &device);
        let (q, k, v) = attention.projections.project(x.clone());
        let pattern = pattern_from_fn(2, len, &device, |_, i, j| i.abs_diff(j) <= window || i < global || j < global);
        let expected = attention.projections.combine(pattern_attention(q, k, v, pattern, padding.clone()));
        assert_close_at_real_tokens(attention.forward(x, padding), expected, &real, 1e-4, "Longformer vs its pattern");
    }

    #[test]
    fn longformer_outputs_of_real_tokens_ignore_padding() {
        let attention = longformer(3, 1);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), D_MODEL, &[10, 20, 4], 20, &Device::flex());
    }

    #[test]
    fn longformer_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        let attention = LongformerAttentionConfig::new(D_MODEL, 2, 64).with_window(3).init(&device);
        let x = random_input(2, 13, D_MODEL, &device);
        let loss = attention.forward(x, padding_after(&[13, 9], 13, &device)).sum();
        assert_eq!(assert_finite_gradients(&attention, &loss.backward()), 4);
    }

    #[test]
    fn lra_longformer_equals_the_released_loops_window_one_short_on_the_left() {
        let device = Device::flex();
        let (len, w) = (23, 3);
        let attention = LongformerAttentionConfig::new(D_MODEL, 2, 64)
            .with_window(w)
            .with_global_tokens(0)
            .with_dropout(0.0)
            .with_variant(Variant::Lra)
            .init(&device);
        let x = random_input(2, len, D_MODEL, &device);
        let real = [23, 15];
        let got = attention.forward(x.clone(), padding_after(&real, len, &device));
        // longformer_attention.py:59-66, 96-128: key j is seen from query i when
        // -(w - 1) <= j - i <= w and both are real; masked scores are -1e10.
        let (q, k, v) = attention.projections.project(x);
        let context = loop_attention(&Rows::of(q), &Rows::of(k), &Rows::of(v), |b, _, i, j| {
            let offset = j as isize - i as isize;
            !(-(w as isize - 1) <= offset && offset <= w as isize) || j >= real[b] || i >= real[b]
        });
        let expected = attention.projections.combine(context.tensor(&device));
        assert_close_at_real_tokens(got, expected, &real, 1e-4, "LRA's Longformer vs its loops");
    }

    #[test]
    fn lra_longformer_real_tokens_ignore_padding_and_gradients_are_finite() {
        let device = Device::flex().autodiff();
        let attention = LongformerAttentionConfig::new(D_MODEL, 2, 64)
            .with_window(3)
            .with_global_tokens(0)
            .with_variant(Variant::Lra)
            .init(&device);
        let x = random_input(2, 13, D_MODEL, &device);
        let loss = attention.forward(x, padding_after(&[13, 9], 13, &device)).sum();
        assert_eq!(assert_finite_gradients(&attention, &loss.backward()), 4);
        let attention = LongformerAttentionConfig::new(D_MODEL, 2, 64)
            .with_window(3)
            .with_global_tokens(0)
            .with_dropout(0.0)
            .with_variant(Variant::Lra)
            .init(&Device::flex());
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), D_MODEL, &[10, 20, 4], 20, &Device::flex());
    }
}
