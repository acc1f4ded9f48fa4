//! The control: the encoder with its attention removed and no positions, mean-pooled — a
//! bag of token features.
//!
//! Not an efficient Transformer but what a task gives away without relating positions:
//! its row in the report is the floor that the models relating positions must clear, and
//! a task it solves has a shortcut. It is a Deep Sets model (Zaheer, Kottur, Ravanbakhsh,
//! Póczos, Salakhutdinov, Smola, "Deep Sets", NeurIPS 2017, Theorem 2: a function of a set
//! is `rho(sum_x phi(x))`), with the encoder's per-token layers as `phi`, the mean as the
//! sum and the classifier's head as `rho`.
//! Family: control (no sequence modelling).
//! Cost: O(n) time and memory: each token's feed-forward work alone (`4 n d_model d_ff`
//! operations per block), nothing between tokens.
//!
//! Each token's embedding, with no position added, goes through every block's
//! feed-forward sub-layer with its layer norm, dropout and residual (`h <- h + FF(LN(h))`:
//! the Transformer's block without its attention sub-layer and that sub-layer's layer
//! norm), then the final layer norm; the classifier averages the real tokens and its head
//! classifies the mean, whatever pooling and positions the task's configuration asks for
//! (`ClassifierConfig::computed`: a CLS vector would see no token; the run's
//! configuration says mean pooling and no positions). No token reads another before the
//! mean, so the encoding is a function of the multiset of real tokens: the same for any
//! order of them.
//!
//! Padding: padded tokens are left out of the mean and read by no token, so the encoding
//! is that of the real tokens alone, wherever the padding stands.

mod settings;

pub use settings::{BagSettings, COST, NoAttention};

#[cfg(test)]
mod tests {
    use super::*;

    use burn::module::Module;
    use burn::prelude::*;
    use burn::tensor::TensorData;

    use crate::attention::checks::{assert_close, assert_finite_gradients, values};
    use crate::classifier::{Classifier, ClassifierConfig, PAD_ID, Pooling, Positions};
    use crate::{Mechanism, MechanismSettings};

    const VOCAB: usize = 12;

    /// A bag asked for CLS pooling and learned positions, which it does not compute.
    fn bag(layers: usize) -> ClassifierConfig {
        ClassifierConfig::new(VOCAB, 3, 12, 8, 2, layers, 16, 8, Mechanism::Bag)
            .with_pooling(Pooling::Cls)
            .with_positions(Positions::Learned)
            .with_dropout(0.0)
            .with_attention_dropout(0.0)
    }

    fn tokens(rows: &[&[i64]], device: &Device) -> Tensor<2, Int> {
        let len = rows[0].len();
        assert!(rows.iter().all(|row| row.len() == len), "rows of one length");
        Tensor::from_data(TensorData::new(rows.concat(), [rows.len(), len]), device)
    }

    /// Each row's logits.
    fn logits(model: &Classifier, rows: &[&[i64]], device: &Device) -> Vec<Vec<f32>> {
        let classes = 3;
        values(model.forward(tokens(rows, device))).chunks(classes).map(<[f32]>::to_vec).collect()
    }

    /// The real tokens 3 1 4 1 5 9 2 6 in their order, padded at the end, at the front and
    /// between them, and shuffled with the padding anywhere: the bag's logits are the same
    /// for every row, and for the tokens alone unpadded. The Transformer's are not: the
    /// property is the bag's, not the test's.
    #[test]
    fn the_bags_logits_are_invariant_to_permuting_the_real_tokens_wherever_the_padding_stands() {
        let device = Device::flex();
        device.seed(131);
        let rows: [&[i64]; 5] = [
            &[3, 1, 4, 1, 5, 9, 2, 6, PAD_ID, PAD_ID, PAD_ID, PAD_ID],
            &[PAD_ID, PAD_ID, PAD_ID, PAD_ID, 3, 1, 4, 1, 5, 9, 2, 6],
            &[3, PAD_ID, 1, 4, PAD_ID, 1, 5, PAD_ID, 9, 2, PAD_ID, 6],
            &[6, 2, 9, 5, 1, 4, 1, 3, PAD_ID, PAD_ID, PAD_ID, PAD_ID],
            &[1, PAD_ID, 9, 6, 1, PAD_ID, PAD_ID, 3, 2, 4, PAD_ID, 5],
        ];
        let model = bag(2).init(&device);
        let got = logits(&model, &rows, &device);
        let alone = logits(&model, &[&[3, 1, 4, 1, 5, 9, 2, 6]], &device).remove(0);
        for (row, row_logits) in got.iter().enumerate() {
            assert_close(row_logits, &alone, 1e-5, &format!("row {row} against the tokens alone"));
        }
        let transformer = ClassifierConfig { mechanism: Mechanism::Full, ..bag(2) }.init(&device);
        let ordered = logits(&transformer, &rows, &device);
        let moved = |a: &[f32], b: &[f32]| a.iter().zip(b).any(|(x, y)| (x - y).abs() > 1e-4);
        assert!(moved(&ordered[0], &ordered[3]), "the Transformer's logits move with the order");
        // A different multiset of tokens is another bag.
        let other = logits(&model, &[&[3, 1, 4, 1, 5, 9, 2, 7]], &device).remove(0);
        assert!(moved(&other, &alone), "the bag sees which tokens there are");
    }

    /// Retrieval's pairs: each document is a bag of its own, so permuting either one's
    /// tokens leaves the logits; exchanging the documents does not (the head reads u - v).
    #[test]
    fn a_paired_bag_is_invariant_to_permuting_each_documents_tokens() {
        let device = Device::flex();
        device.seed(132);
        let model = bag(1).with_paired(true).init(&device);
        let pair =
            |first: &[i64], second: &[i64]| values(model.forward_pair(tokens(&[first], &device), tokens(&[second], &device)));
        let base = pair(&[2, 7, 7, 5, PAD_ID, PAD_ID], &[1, 8, 3, PAD_ID, PAD_ID, PAD_ID]);
        assert_close(&pair(&[7, PAD_ID, 5, 2, 7, PAD_ID], &[PAD_ID, 3, 1, PAD_ID, 8, PAD_ID]), &base, 1e-5, "permuted");
        let exchanged = pair(&[1, 8, 3, PAD_ID, PAD_ID, PAD_ID], &[2, 7, 7, 5, PAD_ID, PAD_ID]);
        assert!(exchanged.iter().zip(&base).any(|(a, b)| (a - b).abs() > 1e-5), "the documents' order matters");
    }

    /// No token reads another: a sequence's encoding is the mean of its real tokens'
    /// encodings, each token encoded alone.
    #[test]
    fn the_encoding_is_the_mean_of_the_real_tokens_each_encoded_alone() {
        let device = Device::flex();
        device.seed(133);
        let model = bag(3).init(&device);
        let sequence = [5, PAD_ID, 11, 2, 5, PAD_ID];
        let got = values(model.encode(tokens(&[&sequence], &device)));
        let real: Vec<i64> = sequence.into_iter().filter(|&t| t != PAD_ID).collect();
        let mut mean = vec![0.0f32; 8];
        for token in &real {
            for (m, v) in mean.iter_mut().zip(values(model.encode(tokens(&[&[*token]], &device)))) {
                *m += v / real.len() as f32;
            }
        }
        assert_close(&got, &mean, 1e-5, "the encoding against the mean of single tokens");
    }

    /// The bag holds no attention, layer norm before it, CLS vector or positions, whatever
    /// its configuration asked for, and every parameter it holds gets a finite gradient:
    /// the embedding, per block the feed-forward layer norm and two dense layers, the final
    /// norm and the head's two dense layers.
    #[test]
    fn the_bag_holds_no_attention_or_positions_and_gradients_reach_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(134);
        let (layers, d, f, head, classes) = (2, 8, 16, 8, 3);
        let model = bag(layers).with_dropout(0.1).init(&device);
        assert!(model.cls.is_none() && model.learned_positions.is_none() && model.sinusoid.is_none());
        assert!(model.blocks.iter().all(|block| block.attention_norm.is_none()));
        assert_eq!(model.pooling, Pooling::Mean);
        let expected = VOCAB * d + layers * (2 * d + d * f + f + f * d + d) + 2 * d + d * head + head + head * classes + classes;
        assert_eq!(model.num_params(), expected);
        let logits = model.forward(tokens(&[&[3, 1, 4, PAD_ID, 5], &[PAD_ID, 9, 2, 6, 5]], &device));
        let grads = logits.powi_scalar(2).sum().backward();
        assert_eq!(assert_finite_gradients(&model, &grads), 1 + 6 * layers + 2 + 4);
    }

    /// A training step, counted by hand: 12 tokens and no CLS vector (mean pooling,
    /// whatever the configuration asked), batch 2, D = 8, F = 16, 2 blocks, a head of 8
    /// and 3 classes. Per block the feed-forward products 2 x (2 x 2 x 12 x 8 x 16) =
    /// 12,288; the head 2 x (2 x 8 x 8 + 2 x 8 x 3) = 352. A step is three forwards.
    #[test]
    fn a_step_counts_the_feed_forward_layers_and_the_head() {
        assert_eq!(bag(2).training_step_flops(2), 3.0 * (2.0 * 12_288.0 + 352.0));
        assert_eq!(MechanismSettings::defaults(Mechanism::Bag, 12), MechanismSettings::Bag(BagSettings));
    }
}
