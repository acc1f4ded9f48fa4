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
//!
//! Variant `lra`, as LRA's released code computes it
//! (`lra_benchmarks/models/reformer/reformer_attention.py`), quirks and bugs included:
//! - the width is `d_model` whatever `qkv_dim` says (line 301); there is no output
//!   projection (337-339) and no attention dropout;
//! - the sequence is filled up with zero positions to a multiple of `chunk_size` (LRA's
//!   `chunk_len`, 308-312: always at least one), which are hashed, sorted and attended
//!   like the rest;
//! - the rotations `[d_head, rounds, buckets / 2]` are Gaussian, drawn once from a fixed
//!   seed (149-150: `PRNGKey(0)`), the same for every head, layer and step (ours come from
//!   our generator's seed 0, not jax's);
//! - items are sorted by (round, bucket, position) and cut into `rounds x buckets` chunks
//!   (145, 176-178: the number of chunks, not their length); each chunk attends to itself
//!   and to the chunk before it, the first chunk to the last (23-32);
//! - keys are the queries, not normalised (130); scores are multiplied by `sqrt(d_head)`,
//!   not divided (191); nothing is masked: not a position itself, not other buckets, not
//!   padding;
//! - the heads are merged by a reshape of `[heads, n, d_head]` to `[n, heads d_head]` with
//!   no transpose (337): output row `t` holds head `t heads / n`'s outputs for positions
//!   `t heads .. t heads + heads - 1`.

use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::{Distribution, TensorData};
use serde::{Deserialize, Serialize};

use super::blocks::{
    any_of, block_count, block_scores, log_sum_exp, lra_filled, mask_from_fn, pad_padding, pad_positions, shift_blocks,
};
use super::flops::LayerShape;
use super::heads::{MASKED_SCORE, attention_linear, check_heads, merge_heads, split_heads};
use super::layer::{AttentionLayer, LayerSizes};
use super::random;
use super::settings::{ModelCard, Scale, Settings, Variant, at_least_one, fit, within};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n log n) time, O(n c) memory per hash round (chunks of c)";

/// What the `lra` variant computes differently from the paper, in one line for reports
/// (the module's notes say it in full).
pub const LRA_VARIANT: &str = "width d_model, fixed rotations, (round, bucket, position) sorted into rounds x buckets chunks, the first looking back to the last, scores multiplied by sqrt(d), no masks, no output projection, and the heads merged by a reshape that scrambles heads and positions (reformer_attention.py:97-339)";

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
    /// The paper's form, or LRA's (a fixed hash, ten chunks, no masks).
    #[config(default = "Variant::Paper")]
    pub variant: Variant,
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
        let lra = self.variant == Variant::Lra;
        assert!(!lra || qkv_dim == self.d_model, "LRA's Reformer has the width d_model ({}), not {qkv_dim}", self.d_model);
        assert!(!lra || buckets.is_multiple_of(2), "LRA's Reformer needs an even number of buckets, not {buckets}");
        let d_head = qkv_dim / self.heads;
        ReformerAttention {
            query_key: attention_linear(self.d_model, qkv_dim, device),
            value: attention_linear(self.d_model, qkv_dim, device),
            output: (!lra).then(|| attention_linear(qkv_dim, self.d_model, device)),
            lra_rotations: lra.then(|| fixed_rotations(d_head, self.hash_rounds * buckets / 2, device)),
            dropout: DropoutConfig::new(self.dropout).init(),
            heads: self.heads,
            chunk_size: self.chunk_size,
            hash_rounds: self.hash_rounds,
            buckets,
            drawn_once: None,
        }
    }
}

/// Reformer's own settings in a run's configuration
/// (`"attention": {"reformer": {"chunk_size": 32, "hash_rounds": 2, "buckets": 34}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReformerSettings {
    #[serde(default)]
    pub variant: Variant,
    /// Positions per chunk.
    pub chunk_size: usize,
    pub hash_rounds: usize,
    pub buckets: usize,
}

impl Settings for ReformerSettings {
    type Layer = ReformerAttention;
    const MODEL: ModelCard =
        ModelCard { name: "reformer", title: "Reformer (Kitaev et al. 2020)", family: "learnable pattern", cost: COST };
    const LRA_VARIANT: Option<&'static str> = Some(LRA_VARIANT);

    fn defaults(max_length: usize) -> ReformerSettings {
        let c = ReformerAttentionConfig::new(1, 1, max_length);
        ReformerSettings {
            variant: c.variant,
            chunk_size: c.chunk_size,
            hash_rounds: c.hash_rounds,
            buckets: c.resolved_buckets(),
        }
    }

    fn variant_mut(&mut self) -> Option<&mut Variant> {
        Some(&mut self.variant)
    }

    /// LRA's Reformer, whose layout is a count of chunks, keeps its settings.
    fn fitted_to(self, positions: usize) -> ReformerSettings {
        match self.variant {
            Variant::Lra => self,
            Variant::Paper => {
                ReformerSettings { chunk_size: fit(self.chunk_size, positions), buckets: fit(self.buckets, positions), ..self }
            }
        }
    }

    /// LRA's Reformer unchanged: its chunks are a count, its chunk size the unit it pads to.
    fn scaled(self, scale: &Scale) -> ReformerSettings {
        match self.variant {
            Variant::Lra => self,
            Variant::Paper => ReformerSettings { chunk_size: scale.length(self.chunk_size), ..self },
        }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        let ReformerSettings { variant, chunk_size, hash_rounds, buckets } = *self;
        match variant {
            Variant::Lra => {
                at_least_one("chunk_size", chunk_size)?;
                at_least_one("hash_rounds", hash_rounds)?;
                if buckets < 2 || buckets % 2 == 1 {
                    return Err(format!("buckets must be even and at least 2, not {buckets}"));
                }
                // LRA's code pads to a multiple of chunk_size (always adding at least one
                // position), then cuts that into rounds x buckets chunks.
                let padded = lra_filled(positions, chunk_size);
                match padded % (hash_rounds * buckets) {
                    0 => Ok(()),
                    _ => Err(format!(
                        "LRA's Reformer pads the {positions} positions to {padded} (a multiple of chunk_size {chunk_size}) \
                         and cuts them into hash_rounds x buckets = {} chunks, which do not divide {padded}",
                        hash_rounds * buckets
                    )),
                }
            }
            Variant::Paper => {
                within("chunk_size", chunk_size, positions)?;
                at_least_one("hash_rounds", hash_rounds)?;
                within("buckets", buckets, positions)
            }
        }
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.variant, self.chunk_size, self.hash_rounds, self.buckets)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> ReformerAttention {
        ReformerAttentionConfig::new(layer.d_model, layer.heads, layer.max_length)
            .with_variant(self.variant)
            .with_qkv_dim(layer.qkv_dim)
            .with_chunk_size(self.chunk_size)
            .with_hash_rounds(self.hash_rounds)
            .with_buckets(Some(self.buckets))
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct ReformerAttention {
    /// The shared query and key projection.
    pub query_key: Linear,
    pub value: Linear,
    /// None in LRA's variant, which has no output projection.
    pub output: Option<Linear>,
    /// LRA's fixed rotations `[d_head, rounds * buckets / 2]` (its variant only).
    pub lra_rotations: Option<Tensor<2>>,
    pub dropout: Dropout,
    pub heads: usize,
    pub chunk_size: usize,
    pub hash_rounds: usize,
    pub buckets: usize,
    /// The rotations of every pass once [`AttentionLayer::draw_once`] has drawn them
    /// (host data, so that a copy on another device uses the same); `None` in training,
    /// which draws anew at every pass.
    #[module(skip)]
    pub drawn_once: Option<TensorData>,
}

impl ReformerAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        if let Some(rotations) = &self.lra_rotations {
            let (qk, v) = self.project(x);
            return self.lra_attend(qk, v, rotations.clone());
        }
        let rotations = match &self.drawn_once {
            Some(rotations) => Tensor::from_data(rotations.clone(), &x.device()),
            None => self.draw_rotations(x.dims()[2] / self.heads, &x.device()),
        };
        self.forward_with_rotations(x, padding, rotations)
    }

    /// [`Self::forward`] with given rotations (from [`Self::draw_rotations`]).
    pub fn forward_with_rotations(&self, x: Tensor<3>, padding: Tensor<2, Bool>, rotations: Tensor<3>) -> Tensor<3> {
        let (qk, v) = self.project(x);
        let output = self.output.as_ref().expect("the paper's variant has an output projection");
        output.forward(merge_heads(self.attend(qk, v, padding, rotations)))
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

impl ReformerAttention {
    /// LRA's LSH attention (see the module's notes): `qk, v: [batch, heads, len, d_head]`,
    /// `rotations: [d_head, rounds * buckets / 2]` -> `[batch, len, heads * d_head]`, heads
    /// merged as LRA merges them.
    pub fn lra_attend(&self, qk: Tensor<4>, v: Tensor<4>, rotations: Tensor<2>) -> Tensor<3> {
        let device = qk.device();
        let [batch, heads, len, d] = qk.dims();
        let (rounds, buckets, unit) = (self.hash_rounds, self.buckets, self.chunk_size);
        let padded = lra_filled(len, unit);
        let items = rounds * padded;
        let chunks = rounds * buckets;
        assert!(items.is_multiple_of(chunks), "LRA's Reformer: {chunks} chunks do not divide {items} items");
        let chunk = items / chunks;
        let (qk, v) = (pad_positions(qk, padded), pad_positions(v, padded));

        // Buckets argmax([xR; -xR]), round r's offset by r buckets: item r * padded + t.
        let rotated = qk.clone().detach().matmul(rotations.unsqueeze::<4>()).reshape([batch, heads, padded, rounds, buckets / 2]);
        let offsets = Tensor::<1, Int>::arange(0..rounds as i64, &device).mul_scalar(buckets as i64).reshape([1, 1, 1, rounds]);
        let bucket =
            Tensor::cat(vec![rotated.clone(), rotated.neg()], 4).argmax(4).reshape([batch, heads, padded, rounds]) + offsets;
        let bucket = bucket.swap_dims(2, 3).reshape([batch, heads, items]);
        let position = Tensor::<1, Int>::arange(0..items as i64, &device).remainder_scalar(padded as i64).reshape([1, 1, items]);
        let (_, order) = (bucket.mul_scalar(padded as i64) + position).sort_with_indices(2);

        // Sorted items, cut into chunks: [batch, heads, chunks, chunk, d].
        let source = order.clone().remainder_scalar(padded as i64).unsqueeze_dim::<4>(3).expand([batch, heads, items, d]);
        let queries = qk.gather(2, source.clone()).reshape([batch, heads, chunks, chunk, d]);
        let values = v.gather(2, source).reshape([batch, heads, chunks, chunk, d]);
        let with_previous = |x: Tensor<5>| {
            let previous = match chunks {
                1 => x.clone(),
                _ => Tensor::cat(vec![x.clone().narrow(2, chunks - 1, 1), x.clone().narrow(2, 0, chunks - 1)], 2),
            };
            Tensor::cat(vec![x, previous], 3)
        };
        let keys = with_previous(queries.clone());
        let scores = queries.matmul(keys.swap_dims(3, 4)).mul_scalar((d as f64).sqrt());
        let log_normaliser = log_sum_exp(scores.clone(), 4);
        let context = (scores - log_normaliser.clone()).exp().matmul(with_previous(values));

        // Back to item order, the rounds weighed by their softmax mass.
        let undo = order.argsort(2).unsqueeze_dim::<4>(3);
        let context = context.reshape([batch, heads, items, d]).gather(2, undo.clone().expand([batch, heads, items, d]));
        let log_normaliser = log_normaliser.reshape([batch, heads, items, 1]).gather(2, undo);
        let round_weights = softmax(log_normaliser.reshape([batch, heads, rounds, padded, 1]), 2);
        let context = (context.reshape([batch, heads, rounds, padded, d]) * round_weights).sum_dim(2);
        // [batch, heads, padded, d] read as [batch, padded, heads d], as LRA's reshape does.
        context.reshape([batch, padded, heads * d]).narrow(1, 0, len)
    }
}

impl AttentionLayer for ReformerAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }

    /// The paper's variant draws its rotations at every pass; LRA's are fixed already.
    fn draw_once(&mut self) {
        if self.lra_rotations.is_none() {
            let d_head = self.query_key.weight.dims()[1] / self.heads;
            self.drawn_once = Some(self.draw_rotations(d_head, &self.query_key.weight.device()).into_data());
        }
    }
}

/// LRA's rotations: Gaussian, from one fixed seed, `[d_head, columns]`.
fn fixed_rotations(d_head: usize, columns: usize, device: &Device) -> Tensor<2> {
    let mut rng = random::stream(0, 0);
    let values: Vec<f32> = (0..d_head * columns).map(|_| random::standard_normal(&mut rng) as f32).collect();
    Tensor::from_data(TensorData::new(values, [d_head, columns]), device)
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

/// Work of one forward ([`super::flops`]): the shared query-key and the value projections
/// (and the paper's output projection); the hash, a product with `rounds * buckets / 2`
/// rotations per head; and every item of every round over the two chunks it sees (its
/// own and the one before). LRA's chunks: `rounds * (n + c - n mod c)` items in
/// `rounds * buckets` chunks.
pub fn forward_flops(shape: &LayerShape, variant: Variant, chunk_size: usize, hash_rounds: usize, buckets: usize) -> f64 {
    let (n, c, rounds) = (shape.positions, chunk_size.max(1), hash_rounds as f64);
    let (d_model, d) = (shape.d_model as f64, shape.qkv_dim as f64);
    match variant {
        Variant::Lra => {
            let padded = lra_filled(n, c) as f64;
            let items = rounds * padded;
            let chunk = items / (rounds * buckets.max(1) as f64);
            shape.products(2.0, shape.n(), d_model, d)
                + shape.products(1.0, padded, d, rounds * (buckets / 2) as f64)
                + shape.attend(items, 2.0 * chunk)
        }
        Variant::Paper => {
            let padded = (block_count(n, c) * c) as f64;
            shape.products(3.0, shape.n(), d_model, d)
                + shape.products(1.0, shape.n(), d, rounds * buckets.div_ceil(2) as f64)
                + shape.attend(rounds * padded, 2.0 * c as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::checks::*;

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

    fn lra_reformer(chunk_size: usize, hash_rounds: usize, buckets: usize, device: &Device) -> ReformerAttention {
        ReformerAttentionConfig::new(D_MODEL, HEADS, 64)
            .with_chunk_size(chunk_size)
            .with_hash_rounds(hash_rounds)
            .with_buckets(Some(buckets))
            .with_variant(Variant::Lra)
            .init(device)
    }

    /// What `reformer_attention.py` computes, in loops (its pseudo-code, steps 1-6):
    /// `[batch, len, heads d]`.
    fn lra_reformer_loops(qk: &Rows, v: &Rows, rotations: &[f32], settings: [usize; 3], batch: usize, len: usize) -> Vec<f32> {
        let [unit, rounds, buckets] = settings;
        let (d, half) = (qk.d(), buckets / 2);
        let padded = len + unit - len % unit;
        let (items, chunks) = (rounds * padded, rounds * buckets);
        let chunk = items / chunks;
        let mut out = vec![0.0f32; batch * padded * HEADS * d];
        for b in 0..batch {
            for h in 0..HEADS {
                let zero = vec![0.0f32; d];
                let q = |t: usize| if t < len { qk.row(b, h, t).to_vec() } else { zero.clone() };
                let val = |t: usize| if t < len { v.row(b, h, t).to_vec() } else { zero.clone() };
                let bucket = |r: usize, t: usize| {
                    let z: Vec<f32> =
                        (0..half).map(|j| (0..d).map(|c| q(t)[c] * rotations[c * rounds * half + r * half + j]).sum()).collect();
                    let both: Vec<f32> = z.iter().cloned().chain(z.iter().map(|x| -x)).collect();
                    let first_max = (0..both.len()).fold(0, |best, j| if both[j] > both[best] { j } else { best });
                    first_max + r * buckets
                };
                let keys: Vec<usize> = (0..items).map(|i| padded * bucket(i / padded, i % padded) + i % padded).collect();
                let mut sticker: Vec<usize> = (0..items).collect();
                sticker.sort_by_key(|&i| keys[i]);
                let mut outputs = vec![Vec::new(); items];
                let mut lse = vec![0.0f64; items];
                for c in 0..chunks {
                    let members = |c: usize| (0..chunk).map(|i| sticker[c * chunk + i]).collect::<Vec<usize>>();
                    let previous = (c + chunks - 1) % chunks;
                    let key_items: Vec<usize> = members(c).into_iter().chain(members(previous)).collect();
                    for item in members(c) {
                        let scores: Vec<f64> = key_items
                            .iter()
                            .map(|&k| dot(&q(item % padded), &q(k % padded)) as f64 * (d as f64).sqrt())
                            .collect();
                        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                        lse[item] = max + total.ln();
                        let weights: Vec<f32> = scores.iter().map(|s| (s - lse[item]).exp() as f32).collect();
                        let rows: Vec<Vec<f32>> = key_items.iter().map(|&k| val(k % padded)).collect();
                        outputs[item] = mix(&weights, &rows.iter().map(Vec::as_slice).collect::<Vec<_>>());
                    }
                }
                for t in 0..padded {
                    let round_lse: Vec<f32> = (0..rounds).map(|r| lse[r * padded + t] as f32).collect();
                    let shares = softmax_of(&round_lse);
                    for (r, share) in shares.iter().enumerate() {
                        for c in 0..d {
                            // A[b, h, t] at flat [heads, padded, d] offset, read back as [padded, heads d].
                            out[((b * HEADS + h) * padded + t) * d + c] += share * outputs[r * padded + t][c];
                        }
                    }
                }
            }
        }
        // Row t of the result is the flat slice [t heads d, (t + 1) heads d) of each batch's
        // [heads, padded, d] block: the reshape without a transpose.
        (0..batch).flat_map(|b| out[b * padded * HEADS * d..(b * padded * HEADS * d + len * HEADS * d)].to_vec()).collect()
    }

    #[test]
    fn lra_reformer_equals_the_released_loops_with_its_scrambled_heads() {
        let device = Device::flex();
        for (len, settings, real) in [(23, [10, 1, 10], [23, 14]), (12, [4, 2, 4], [12, 5]), (30, [10, 1, 4], [30, 30])] {
            let [unit, rounds, buckets] = settings;
            let attention = lra_reformer(unit, rounds, buckets, &device);
            assert!(attention.output.is_none(), "LRA's Reformer has no output projection");
            let x = random_input(2, len, D_MODEL, &device);
            let got = values(attention.forward(x.clone(), padding_after(&real, len, &device)));
            let (qk, v) = attention.project(x);
            let rotations = values(attention.lra_rotations.clone().unwrap());
            let expected = lra_reformer_loops(&Rows::of(qk), &Rows::of(v), &rotations, settings, 2, len);
            assert_close(&got, &expected, 1e-3, &format!("LRA's Reformer, len {len}, {settings:?}"));
        }
    }

    #[test]
    fn lra_reformer_hashes_with_fixed_rotations_and_ignores_padding_masks() {
        let device = Device::flex();
        let (first, second) = (lra_reformer(10, 1, 10, &device), lra_reformer(10, 1, 10, &device));
        let rotations = |a: &ReformerAttention| values(a.lra_rotations.clone().unwrap());
        assert_eq!(rotations(&first), rotations(&second), "the same rotations in every layer");
        let x = random_input(1, 17, D_MODEL, &device);
        let masked = values(first.forward(x.clone(), padding_after(&[9], 17, &device)));
        assert_eq!(masked, values(first.forward(x, padding_after(&[17], 17, &device))), "the mask is ignored");
    }

    #[test]
    fn lra_reformer_gradients_are_finite() {
        let device = Device::flex().autodiff();
        let attention = ReformerAttentionConfig::new(D_MODEL, HEADS, 64)
            .with_chunk_size(10)
            .with_hash_rounds(1)
            .with_buckets(Some(10))
            .with_variant(Variant::Lra)
            .init(&device);
        let x = random_input(2, 13, D_MODEL, &device);
        let loss = attention.forward(x, padding_after(&[13, 9], 13, &device)).sum();
        assert_eq!(assert_finite_gradients(&attention, &loss.backward()), 2);
    }
}
