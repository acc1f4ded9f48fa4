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

use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;

use super::blocks::{Blocks, block_attention, unblock};
use super::heads::HeadProjections;

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
}

impl LocalAttentionConfig {
    pub fn init(&self, device: &Device) -> LocalAttention {
        assert!(self.block_size > 0, "local attention needs a block size of at least 1");
        LocalAttention {
            projections: HeadProjections::new(self.d_model, self.qkv_dim.unwrap_or(self.d_model), self.heads, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            block_size: self.block_size,
        }
    }
}

#[derive(Module, Debug)]
pub struct LocalAttention {
    pub projections: HeadProjections,
    pub dropout: Dropout,
    pub block_size: usize,
}

impl LocalAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let (q, k, v) = self.projections.project(x);
        let blocks = Blocks::new(q, k, v, padding, self.block_size);
        let key_mask = blocks.key_mask();
        let context = block_attention(blocks.queries, blocks.keys, blocks.values, key_mask, &self.dropout);
        self.projections.combine(unblock(context, blocks.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::Mechanism;
    use crate::attention::checks::*;
    use crate::attention::full::FullAttention;

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

    #[test]
    fn local_attention_trains_a_tiny_classifier() {
        assert_tiny_classifier_trains(Mechanism::Local);
    }
}
