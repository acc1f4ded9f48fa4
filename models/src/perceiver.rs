//! Perceiver: a small latent array reads the input once, then attends to itself.
//!
//! Paper: Jaegle, Gimeno, Brock, Zisserman, Vinyals, Carreira, "Perceiver: General
//! Perception with Iterative Attention", ICML 2021.
//! Family: memory (a latent bottleneck).
//! Cost: O(n m) time and memory for the cross-attention, with m latents (fixed), then
//! O(m^2) per latent block: linear in n.
//!
//! A learned latent array `Z: [m, d_model]` cross-attends to the input (Section 2.1):
//! queries from the latents, keys and values from the sequence, each with its own layer
//! norm, then the block's feed-forward layer, residuals on the latents. The encoder's other
//! blocks are a latent Transformer: softmax self-attention among the `m` latents, with no
//! padding. The input is read once (the paper's single cross-attend; its repeated
//! cross-attends are a variant). The classifier averages the final latents, as the paper's
//! classification head, whatever pooling the task asks for (a CLS vector, if the task has
//! one, is one more input token).
//!
//! Padding: padded keys are masked in the cross-attention, so the latents, and the
//! classification, are those of the same tokens unpadded.

mod settings;
mod stack;

pub use settings::{COST, PerceiverSettings};
pub use stack::{block_positions, encode, init_latents, reads_sequence};

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;

    use crate::attention::checks::{Rows, assert_close, loop_attention, padding_after, values};
    use crate::attention::heads::split_heads;
    use crate::classifier::{ClassifierConfig, PAD_ID, Pooling};
    use crate::layer_norm::layer_norm;
    use crate::{Mechanism, MechanismSettings};
    use burn::tensor::{Distribution, TensorData};

    fn perceiver(layers: usize, latents: usize) -> ClassifierConfig {
        ClassifierConfig::new(12, 3, 9, 8, 2, layers, 16, 8, Mechanism::Perceiver)
            .with_pooling(Pooling::Mean)
            .with_settings(Some(MechanismSettings::Perceiver(PerceiverSettings { latents })))
            .with_dropout(0.0)
            .with_attention_dropout(0.0)
    }

    /// The cross-attention in loops, from its definition: every latent over the real
    /// tokens (queries normed with the block's norm, keys and values with the context's),
    /// plus the residual and the feed-forward layer.
    #[test]
    fn the_latents_read_the_real_tokens_as_the_definition_says() {
        let device = Device::flex();
        device.seed(111);
        let (batch, len, d, heads, m) = (2, 6, 8, 2, 3);
        let real = [6, 4];
        let model = perceiver(1, m).init(&device);
        let block = &model.blocks[0];
        let latents = model.latents.as_ref().expect("a Perceiver has latents").val();
        let x = Tensor::<3>::random([batch, len, d], Distribution::Normal(0.0, 1.0), &device);
        let got = values(encode(&model.blocks, latents.clone(), x.clone(), padding_after(&real, len, &device)));

        let attention = block.attention.as_full().expect("a Perceiver block is full");
        let z = latents.unsqueeze::<3>().expand([batch, m, d]);
        let context = layer_norm(block.context_norm.as_ref().expect("a context norm"), x);
        let projections = &attention.projections;
        let attention_norm = block.attention_norm.as_ref().expect("a Perceiver block attends");
        let q = Rows::of(split_heads(projections.query.forward(layer_norm(attention_norm, z.clone())), heads));
        let k = Rows::of(split_heads(projections.key.forward(context.clone()), heads));
        let v = Rows::of(split_heads(projections.value.forward(context), heads));
        let read = loop_attention(&q, &k, &v, |b, _, _, j| j >= real[b]);
        let residual = z + projections.combine(read.tensor(&device));
        let no_padding = Tensor::full([batch, m], false, &device);
        let expected = values(block.feed_forward(residual, no_padding, &mut crate::auxiliary::Auxiliary::default()));
        assert_close(&got, &expected, 1e-4, "Perceiver's cross-attention vs its loops");
    }

    #[test]
    fn perceiver_padding_does_not_change_the_encoding() {
        let device = Device::flex();
        device.seed(112);
        let model = perceiver(2, 4).init(&device);
        let tokens = |rows: &[&[i64]], len: usize| {
            let ids: Vec<i64> = rows.iter().flat_map(|row| (0..len).map(|i| row.get(i).copied().unwrap_or(PAD_ID))).collect();
            Tensor::<2, Int>::from_data(TensorData::new(ids, [rows.len(), len]), &device)
        };
        let alone = values(model.encode(tokens(&[&[3, 1, 4, 1, 5]], 5)));
        let padded = values(model.encode(tokens(&[&[3, 1, 4, 1, 5], &[2; 9]], 9)));
        assert_close(&padded[..alone.len()], &alone, 1e-5, "Perceiver with and without padding");
    }

    /// The first block counts as the latents' queries over the sequence, the others as
    /// the latents over themselves.
    #[test]
    fn a_perceivers_count_is_its_latents_over_the_sequence_then_over_themselves() {
        assert_eq!(block_positions(4, 3, 10), [(4, 10), (4, 4), (4, 4)]);
        // 9 tokens, no CLS (mean pooling): block 0 from 4 latents over 9; block 1 over 4.
        let (d, f, b) = (8.0, 16.0, 2.0);
        let block = |q: f64, k: f64| 2.0 * b * (2.0 * q * d * d + 2.0 * k * d * d + 2.0 * q * d * k) + 4.0 * b * q * d * f;
        let head = 2.0 * b * (8.0 * 8.0 + 8.0 * 3.0);
        assert_eq!(perceiver(2, 4).training_step_flops(2), 3.0 * (block(4.0, 9.0) + block(4.0, 4.0) + head));
    }
}
