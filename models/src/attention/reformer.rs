//! Reformer: locality-sensitive-hashing (LSH) attention with shared queries and keys.
//!
//! Paper: Kitaev, Kaiser and Levskaya, "Reformer: The Efficient Transformer", ICLR 2020.
//! Family: learnable pattern.
//! Cost: O(n r c d + r n log n) time and O(n r c) memory per head, for r hash rounds and
//! chunks of c positions.
//!
//! Section 2 of the paper, step by step:
//! 1. queries and keys share one projection; a key is its query scaled to unit length
//!    ("Shared-QK Transformer");
//! 2. each position is hashed into one of `buckets` buckets by a random rotation,
//!    `h(x) = argmax([xR; -xR])` ("LSH attention"), in `hash_rounds` independent rounds;
//! 3. per round, positions are sorted by bucket (then position) and cut into chunks of
//!    `chunk_size`; each chunk attends to itself and to the chunk before it, to the keys
//!    of the query's own bucket ("P_i = {j : h(q_i) = h(k_j)}");
//! 4. a position does not attend to itself unless nothing else is available (its score
//!    is [`SELF_SCORE`] instead of being masked);
//! 5. the rounds are combined with weights `exp(logsumexp of round r - logsumexp of all
//!    rounds)`, which is softmax attention over the union of the rounds' keys, each key
//!    counted once per round that holds it.
//!
//! The rotations are drawn anew at every forward pass, as in the paper, from the
//! device's seeded generator. Padding is hashed into an extra bucket after all the others,
//! so that it sorts after every real position and never changes how real positions are
//! chunked; for the same reason the first chunk has no chunk before it (instead of
//! wrapping around to the last). The reversible layers and chunked feed-forward of the
//! paper save memory in the rest of the network and are not part of the attention.

use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::softmax;

use super::blocks::{any_of, block_count, block_scores, log_sum_exp, mask_from_fn, pad_padding, pad_positions, shift_blocks};
use super::heads::{MASKED_SCORE, attention_linear, check_heads, merge_heads, split_heads};

/// The score of a position for itself: low enough that any other key takes all the
/// weight, but not masked, so that a position alone in its bucket attends to itself.
pub const SELF_SCORE: f32 = -1.0e5;

#[derive(Config, Debug)]
pub struct ReformerAttentionConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// Longest sequence: the default number of buckets is derived from it.
    pub max_length: usize,
    /// Positions per chunk.
    #[config(default = 32)]
    pub chunk_size: usize,
    /// Independent hashing rounds.
    #[config(default = 2)]
    pub hash_rounds: usize,
    /// Hash buckets; default: as many as chunks cover `max_length`, rounded up to even
    /// (so that a bucket holds about a chunk).
    pub buckets: Option<usize>,
    /// Dropout on the attention weights.
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl ReformerAttentionConfig {
    /// The number of buckets in use: the configured one, or as many as chunks cover
    /// `max_length`, rounded up to even (at least 2).
    pub fn resolved_buckets(&self) -> usize {
        let derived = || {
            let chunks = block_count(self.max_length, self.chunk_size.max(1));
            (chunks + chunks % 2).max(2)
        };
        self.buckets.unwrap_or_else(derived).max(1)
    }

    pub fn init(&self, device: &Device) -> ReformerAttention {
        let qkv_dim = self.qkv_dim.unwrap_or(self.d_model);
        check_heads(qkv_dim, self.heads);
        assert!(
            self.chunk_size > 0 && self.hash_rounds > 0,
            "Reformer needs chunks of at least 1 position and at least 1 hash round"
        );
        let buckets = self.resolved_buckets();
        ReformerAttention {
            query_key: attention_linear(self.d_model, qkv_dim, device),
            value: attention_linear(self.d_model, qkv_dim, device),
            output: attention_linear(qkv_dim, self.d_model, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            heads: self.heads,
            chunk_size: self.chunk_size,
            hash_rounds: self.hash_rounds,
            buckets,
        }
    }
}

#[derive(Module, Debug)]
pub struct ReformerAttention {
    /// The shared query and key projection.
    pub query_key: Linear,
    pub value: Linear,
    pub output: Linear,
    pub dropout: Dropout,
    pub heads: usize,
    pub chunk_size: usize,
    pub hash_rounds: usize,
    pub buckets: usize,
}

impl ReformerAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let rotations = self.draw_rotations(x.dims()[2] / self.heads, &x.device());
        self.forward_with_rotations(x, padding, rotations)
    }

    /// [`Self::forward`] with given rotations (from [`Self::draw_rotations`]).
    pub fn forward_with_rotations(&self, x: Tensor<3>, padding: Tensor<2, Bool>, rotations: Tensor<3>) -> Tensor<3> {
        let (qk, v) = self.project(x);
        self.output.forward(merge_heads(self.attend(qk, v, padding, rotations)))
    }

    /// `x: [batch, len, d_model]` -> shared queries-keys and values, each
    /// `[batch, heads, len, d_head]`.
    pub fn project(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        (split_heads(self.query_key.forward(x.clone()), self.heads), split_heads(self.value.forward(x), self.heads))
    }

    /// Random rotations for every head and round: `[heads, d_head, rounds * ceil(buckets / 2)]`.
    pub fn draw_rotations(&self, d_head: usize, device: &Device) -> Tensor<3> {
        let half = self.buckets.div_ceil(2);
        Tensor::random([self.heads, d_head, self.hash_rounds * half], Distribution::Normal(0.0, 1.0), device)
    }

    /// The bucket of every position in every round: `qk: [batch, heads, len, d_head]` ->
    /// `[batch, heads, len, rounds]`, in `0..buckets`.
    pub fn hash(&self, qk: Tensor<4>, rotations: Tensor<3>) -> Tensor<4, Int> {
        let [batch, heads, len, _] = qk.dims();
        let rounds = self.hash_rounds;
        if self.buckets == 1 {
            return Tensor::zeros([batch, heads, len, rounds], &qk.device());
        }
        let half = self.buckets.div_ceil(2);
        let rotated = qk.detach().matmul(rotations.unsqueeze::<4>()).reshape([batch, heads, len, rounds, half]);
        // h(x) = argmax([xR; -xR]); an odd number of buckets leaves out the last column.
        let both_signs = Tensor::cat(vec![rotated.clone(), rotated.neg()], 4).narrow(4, 0, self.buckets);
        both_signs.argmax(4).reshape([batch, heads, len, rounds])
    }

    /// LSH attention: `qk, v: [batch, heads, len, d_head]`, `padding: [batch, len]` ->
    /// `[batch, heads, len, d_head]`.
    pub fn attend(&self, qk: Tensor<4>, v: Tensor<4>, padding: Tensor<2, Bool>, rotations: Tensor<3>) -> Tensor<4> {
        let device = qk.device();
        let [batch, heads, len, d] = qk.dims();
        let (rounds, chunk) = (self.hash_rounds, self.chunk_size);
        let padded_len = block_count(len, chunk) * chunk;
        let chunks = padded_len / chunk; // per round
        let qk = pad_positions(qk, padded_len);
        let v = pad_positions(v, padded_len);
        let padding = pad_padding(padding, padded_len);

        // Buckets, with padding in an extra last bucket: [batch, heads, rounds, padded_len].
        let buckets = self
            .hash(qk.clone(), rotations)
            .mask_fill(padding.reshape([batch, 1, padded_len, 1]), self.buckets as i64)
            .swap_dims(2, 3);

        // Sort by (bucket, position): `order` lists the positions in sorted order.
        let positions = Tensor::<1, Int>::arange(0..padded_len as i64, &device).reshape([1, 1, 1, padded_len]);
        let (sort_keys, order) = (buckets.mul_scalar(padded_len as i64) + positions).sort_with_indices(3);
        let sorted_buckets = sort_keys.div_scalar(padded_len as i64);

        // Sorted queries-keys and values, the rounds one after another, cut into chunks:
        // [batch, heads, rounds * chunks, chunk, d].
        let gather_index =
            order.clone().reshape([batch, heads, rounds * padded_len, 1]).expand([batch, heads, rounds * padded_len, d]);
        let chunked = [batch, heads, rounds * chunks, chunk, d];
        let queries = qk.gather(2, gather_index.clone()).reshape(chunked);
        let values = v.gather(2, gather_index).reshape(chunked);
        let keys = unit_length(queries.clone());
        let query_buckets = sorted_buckets.float().reshape([batch, heads, rounds * chunks, chunk]);
        let query_positions = order.clone().float().reshape([batch, heads, rounds * chunks, chunk]);

        // Each chunk attends to itself and to the chunk before it (of the same round).
        let keys = look_one_back(keys);
        let values = look_one_back(values);
        let key_buckets = look_one_back(query_buckets.clone());
        let key_positions = look_one_back(query_positions.clone());
        let no_previous =
            mask_from_fn([1, 1, rounds * chunks, 1, 2 * chunk], &device, |[_, _, c, _, key]| key < chunk && c % chunks == 0);

        let scores_shape = [batch, heads, rounds * chunks, chunk, 2 * chunk];
        let pairs = |queries: Tensor<4>, keys: Tensor<4>| {
            (queries.unsqueeze_dim::<5>(4).expand(scores_shape), keys.unsqueeze_dim::<5>(3).expand(scores_shape))
        };
        let (query_bucket, key_bucket) = pairs(query_buckets, key_buckets.clone());
        let (query_position, key_position) = pairs(query_positions, key_positions);
        let other_bucket = query_bucket.not_equal(key_bucket);
        let padded_key = key_buckets.equal_elem(self.buckets as f32).unsqueeze_dim::<5>(3);
        let scores = block_scores(queries, keys)
            .mask_fill(query_position.equal(key_position), SELF_SCORE)
            .mask_fill(any_of(vec![other_bucket, padded_key, no_previous]), MASKED_SCORE);

        let log_normaliser = log_sum_exp(scores.clone(), 4); // [.., chunk, 1]
        let weights = self.dropout.forward((scores - log_normaliser.clone()).exp());
        let context = weights.matmul(values);

        // Back to the original order, round by round.
        let undo = order.argsort(3).unsqueeze_dim::<5>(4); // [batch, heads, rounds, padded_len, 1]
        let context = context
            .reshape([batch, heads, rounds, padded_len, d])
            .gather(3, undo.clone().expand([batch, heads, rounds, padded_len, d]));
        let log_normaliser = log_normaliser.reshape([batch, heads, rounds, padded_len, 1]).gather(3, undo);

        // Each round weighs by its share of the total softmax mass.
        let round_weights = softmax(log_normaliser, 2);
        let context = (context * round_weights).sum_dim(2).reshape([batch, heads, padded_len, d]);
        if padded_len == len { context } else { context.narrow(2, 0, len) }
    }
}

/// Vectors scaled to unit length along the last dimension.
fn unit_length(x: Tensor<5>) -> Tensor<5> {
    let norm = x.clone().powi_scalar(2).sum_dim(4).clamp_min(1e-12).sqrt();
    x / norm
}

/// Chunk `i`'s own positions after those of chunk `i - 1` (zeros for the first chunk):
/// `[.., chunks, chunk, (d)]` -> `[.., chunks, 2 chunk, (d)]`.
fn look_one_back<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::cat(vec![shift_blocks(x.clone(), 2, -1), x], 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::Mechanism;
    use crate::attention::checks::*;
    use burn::tensor::TensorData;

    const D_MODEL: usize = 16;
    const HEADS: usize = 2;

    fn reformer(chunk_size: usize, hash_rounds: usize, buckets: usize) -> ReformerAttention {
        ReformerAttentionConfig::new(D_MODEL, HEADS, 64)
            .with_chunk_size(chunk_size)
            .with_hash_rounds(hash_rounds)
            .with_buckets(Some(buckets))
            .with_dropout(0.0)
            .init(&Device::flex())
    }

    /// Softmax over all pairs with shared queries and keys, weighting each pair by how
    /// many rounds hold it (`counts: [batch, heads, len, len]`, 0 = masked), with a
    /// position's own score at [`SELF_SCORE`].
    fn counted_shared_qk_attention(qk: Tensor<4>, v: Tensor<4>, counts: Tensor<4>, padding: Tensor<2, Bool>) -> Tensor<4> {
        let device = qk.device();
        let [batch, heads, len, d] = qk.dims();
        let norm = qk.clone().powi_scalar(2).sum_dim(3).sqrt();
        let keys = qk.clone() / norm;
        let shape = [batch, heads, len, len];
        let itself = pattern_from_fn(1, len, &device, |_, i, j| i == j).expand(shape);
        let masked = counts.clone().equal_elem(0.0).bool_or(padding.reshape([batch, 1, 1, len]).expand(shape));
        let scores = qk.matmul(keys.transpose()).mul_scalar(1.0 / (d as f64).sqrt()).mask_fill(itself, SELF_SCORE)
            + counts.clamp_min(1.0).log();
        softmax(scores.mask_fill(masked, MASKED_SCORE), 3).matmul(v)
    }

    /// How many rounds let query i attend key j, rebuilt from the buckets: per round,
    /// positions sorted by (bucket, position) with padding last, chunks of `chunk`, each
    /// chunk reaching itself and the chunk before it, within the query's bucket.
    fn lsh_counts(
        buckets: &[i64],
        real_tokens: &[usize],
        heads: usize,
        len: usize,
        rounds: usize,
        chunk: usize,
        padding_bucket: i64,
    ) -> Vec<f32> {
        let padded_len = len.div_ceil(chunk) * chunk;
        let mut counts = vec![0.0f32; real_tokens.len() * heads * len * len];
        for (b, &real) in real_tokens.iter().enumerate() {
            for h in 0..heads {
                for r in 0..rounds {
                    let bucket =
                        |p: usize| if p < real { buckets[((b * heads + h) * len + p) * rounds + r] } else { padding_bucket };
                    let mut order: Vec<usize> = (0..padded_len).collect();
                    order.sort_by_key(|&p| (bucket(p), p));
                    let mut chunk_of = vec![0; padded_len];
                    for (sorted, &p) in order.iter().enumerate() {
                        chunk_of[p] = sorted / chunk;
                    }
                    for i in 0..real {
                        for j in 0..real {
                            let reached = chunk_of[j] == chunk_of[i] || chunk_of[j] + 1 == chunk_of[i];
                            if reached && bucket(i) == bucket(j) {
                                counts[((b * heads + h) * len + i) * len + j] += 1.0;
                            }
                        }
                    }
                }
            }
        }
        counts
    }

    #[test]
    fn reformer_with_one_bucket_and_one_chunk_equals_full_shared_qk_attention() {
        let device = Device::flex();
        for rounds in [1, 2] {
            let attention = reformer(16, rounds, 1);
            let x = random_input(2, 13, D_MODEL, &device);
            let real = [13, 8];
            let padding = padding_after(&real, 13, &device);
            let (qk, v) = attention.project(x);
            let rotations = attention.draw_rotations(D_MODEL / HEADS, &device);
            let got = attention.attend(qk.clone(), v.clone(), padding.clone(), rotations);
            let every_pair = Tensor::<4>::ones([2, HEADS, 13, 13], &device);
            let expected = counted_shared_qk_attention(qk, v, every_pair, padding);
            let what = format!("{rounds} rounds");
            assert_close_at_real_tokens(merge_heads(got), merge_heads(expected), &real, 1e-4, &what);
        }
    }

    #[test]
    fn reformer_equals_full_attention_over_the_pairs_its_hash_rounds_chunk_together() {
        let device = Device::flex();
        let (len, chunk, rounds, buckets) = (21, 4, 2, 4);
        let attention = reformer(chunk, rounds, buckets);
        let x = random_input(2, len, D_MODEL, &device);
        let real = [21, 14];
        let padding = padding_after(&real, len, &device);
        let (qk, v) = attention.project(x);
        let rotations = attention.draw_rotations(D_MODEL / HEADS, &device);
        let hashed: Vec<i64> = attention.hash(qk.clone(), rotations.clone()).into_data().iter::<i64>().collect();
        assert!(hashed.iter().all(|&b| (0..buckets as i64).contains(&b)));
        let counts = lsh_counts(&hashed, &real, HEADS, len, rounds, chunk, buckets as i64);
        let counts = Tensor::<4>::from_data(TensorData::new(counts, [2, HEADS, len, len]), &device);
        let got = attention.attend(qk.clone(), v.clone(), padding.clone(), rotations);
        let expected = counted_shared_qk_attention(qk, v, counts, padding);
        assert_close_at_real_tokens(merge_heads(got), merge_heads(expected), &real, 1e-4, "Reformer vs its hashed pairs");
    }

    #[test]
    fn reformer_outputs_of_real_tokens_ignore_padding() {
        let device = Device::flex();
        let attention = reformer(4, 2, 4);
        let rotations = attention.draw_rotations(D_MODEL / HEADS, &device);
        let forward = |x, padding| attention.forward_with_rotations(x, padding, rotations.clone());
        assert_padding_is_invisible(forward, D_MODEL, &[10, 25, 3], 25, &device);
    }

    #[test]
    fn reformer_default_buckets_hold_about_a_chunk() {
        let attention = ReformerAttentionConfig::new(D_MODEL, HEADS, 1025).init(&Device::flex());
        assert_eq!((attention.chunk_size, attention.hash_rounds, attention.buckets), (32, 2, 34));
    }

    #[test]
    fn reformer_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        let attention = ReformerAttentionConfig::new(D_MODEL, HEADS, 64).with_chunk_size(4).init(&device);
        let x = random_input(2, 14, D_MODEL, &device);
        let loss = attention.forward(x, padding_after(&[14, 9], 14, &device)).sum();
        assert_eq!(assert_finite_gradients(&attention, &loss.backward()), 3);
    }

    #[test]
    fn reformer_trains_a_tiny_classifier() {
        assert_tiny_classifier_trains(Mechanism::Reformer);
    }
}
