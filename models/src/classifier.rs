//! The sequence classifier around the encoder: token embedding, positions, encoder
//! blocks, pooling and the head `Dense -> ReLU -> Dense`, as in LRA.

use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::attention::flops::LayerShape;
use crate::attention::full;
use crate::attention::heads::dense;
use crate::attention::softmax::dropout;
use crate::attention::{AttentionConfig, Mechanism, MechanismSettings};
use crate::auxiliary::Auxiliary;
use crate::encoder::{EncoderBlock, EncoderBlockConfig};
use crate::funnel::FunnelSettings;
use crate::layer_norm::{LAYER_NORM_EPSILON, layer_norm};
use crate::perceiver::PerceiverSettings;

/// Token id reserved for padding.
pub const PAD_ID: i64 = 0;

/// How the encoder's outputs become one vector per sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pooling {
    /// A learned vector prepended to the sequence; its output is the summary.
    Cls,
    /// The mean of the outputs of the real (non-padding) tokens.
    Mean,
}

/// How the encoder runs its blocks: most models keep the sequence through every block;
/// two change it between blocks.
#[derive(Debug, Clone)]
pub enum Stack {
    /// Every block on the whole sequence, each with the model's attention.
    Blocks,
    /// The sequence mean-pooled between stages ([`funnel`](crate::funnel)).
    Funnel(FunnelSettings),
    /// A latent array of `latents` vectors reads the sequence in the first block; the
    /// others attend among the latents ([`perceiver`](crate::perceiver)).
    Perceiver { latents: usize },
}

impl Stack {
    /// How the blocks of a model with these settings are run.
    fn of(settings: &MechanismSettings) -> Stack {
        match settings {
            MechanismSettings::Funnel(funnel_settings) => Stack::Funnel(funnel_settings.clone()),
            MechanismSettings::Perceiver(PerceiverSettings { latents }) => Stack::Perceiver { latents: *latents },
            _ => Stack::Blocks,
        }
    }
}

/// How positions are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Positions {
    /// The fixed sine/cosine table of Vaswani et al.
    Sinusoidal,
    /// A learned vector per position.
    Learned,
    /// None: the encoder sees which tokens there are, not where.
    None,
}

#[derive(Config, Debug)]
pub struct ClassifierConfig {
    pub vocab_size: usize,
    pub classes: usize,
    /// Longest input (in tokens, without the CLS vector).
    pub max_length: usize,
    pub d_model: usize,
    pub heads: usize,
    pub layers: usize,
    pub d_ff: usize,
    /// Hidden size of the classification head.
    pub d_head_mlp: usize,
    pub mechanism: Mechanism,
    #[config(default = "Pooling::Cls")]
    pub pooling: Pooling,
    #[config(default = "Positions::Sinusoidal")]
    pub positions: Positions,
    #[config(default = 0.1)]
    pub dropout: f64,
    #[config(default = 0.1)]
    pub attention_dropout: f64,
    /// Two inputs per example (Retrieval): both are encoded by the one encoder and the
    /// head classifies `[u, v, u * v, u - v]` of the two pooled encodings.
    #[config(default = false)]
    pub paired: bool,
    /// Width of queries, keys and values; `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// The mechanism's own settings; its defaults when absent.
    #[config(default = "None")]
    pub settings: Option<MechanismSettings>,
}

/// LeCun-normal: N(0, 1 / fan_in).
const LECUN: Initializer = Initializer::KaimingNormal { gain: 1.0, fan_out_only: false };

impl ClassifierConfig {
    /// This configuration as the classifier computes it: a model whose blocks do not attend
    /// (the control, [`crate::bag`]) pools by the mean of the real tokens and reads no
    /// positions, whatever its pooling and positions say. Without attention a CLS vector
    /// would see no token, and positions would make the bag one of tokens in their places.
    pub fn computed(&self) -> ClassifierConfig {
        match self.mechanism.attends() {
            true => self.clone(),
            false => self.clone().with_pooling(Pooling::Mean).with_positions(Positions::None),
        }
    }

    /// The attention layer of every block.
    fn attention(&self) -> AttentionConfig {
        // The CLS vector takes position 0, so the layer sees one position more.
        let positions_len = self.max_length + usize::from(self.pooling == Pooling::Cls);
        AttentionConfig::new(self.d_model, self.heads, self.mechanism, positions_len)
            .with_dropout(self.attention_dropout)
            .with_qkv_dim(self.qkv_dim)
            .with_settings(self.settings.clone())
            .with_leading(usize::from(self.pooling == Pooling::Cls))
    }

    /// The operations of one training step on `batch` examples (forward and backward,
    /// three forwards: see [`crate::attention::flops`]): per block, the attention
    /// layer's and the feed-forward layer's products (`4 b n D F`); the head's on the
    /// pooled vectors. Retrieval's pairs run the encoder twice per example.
    pub fn training_step_flops(&self, batch: usize) -> f64 {
        let config = self.computed();
        let attention = config.attention();
        let sequences = if self.paired { 2 * batch } else { batch };
        let feed_forward = |rows: usize| 4.0 * (sequences * rows) as f64 * self.d_model as f64 * self.d_ff as f64;
        let positions = attention.max_length;
        let shape = LayerShape {
            batch: sequences,
            positions,
            d_model: self.d_model,
            qkv_dim: self.qkv_dim.unwrap_or(self.d_model),
            heads: self.heads,
            leading: attention.leading,
        };
        // The stacks that change the sequence run full attention, from `queries` positions
        // over `keys`.
        let full_block = |(queries, keys): (usize, usize)| {
            full::cross_forward_flops(&shape, queries as f64, keys as f64) + feed_forward(queries)
        };
        let settings = attention.resolved_settings();
        let encoder = match Stack::of(&settings) {
            // The layer's own count (`AttentionConfig::forward_flops`), from the settings
            // resolved above.
            Stack::Blocks => self.layers as f64 * (settings.forward_flops(&shape) + feed_forward(positions)),
            Stack::Funnel(funnel_settings) => {
                crate::funnel::block_positions(&funnel_settings, self.layers, attention.leading, positions)
                    .into_iter()
                    .map(full_block)
                    .sum()
            }
            Stack::Perceiver { latents } => {
                crate::perceiver::block_positions(latents, self.layers, positions).into_iter().map(full_block).sum()
            }
        };
        let pooled = if self.paired { 4 * self.d_model } else { self.d_model };
        let head = 2.0 * batch as f64 * (pooled * self.d_head_mlp + self.d_head_mlp * self.classes) as f64;
        3.0 * (encoder + head)
    }

    /// A low estimate of the bytes one training step on `batch` examples holds, to refuse
    /// before anything runs a configuration that cannot fit. In f64 throughout: absurd
    /// sizes give a huge number, never an overflow.
    ///
    /// Parameters `P`: the embedding (`vocab D`), learned positions (`n D`), per block the
    /// attention's four projections (`4 D d`, `d` the query-key-value width) and the
    /// feed-forward layer (`2 D F`), and the head; each held four times in f32 (weights,
    /// gradients and Adam's two moments): `16 P` bytes. Activations kept for the backward,
    /// in f32, per block on its `b n` rows (`2b` sequences for Retrieval's pairs): six
    /// vectors of width `D` (input, two norms, attention output, two residuals), three of
    /// `d` (queries, keys, values) and two of `F` (hidden, activation); and for full
    /// attention (`full`, and the full blocks of Funnel and Perceiver) the `b h n m`
    /// attention weights. A mechanism's own parameters and what it materialises beyond
    /// this are left out, so a configuration refused by the estimate cannot run, while
    /// one it passes still may not fit.
    pub fn training_step_memory_bytes(&self, batch: usize) -> f64 {
        let config = self.computed();
        let attention = config.attention();
        let f = |x: usize| x as f64;
        let (d, dq, ff) = (f(self.d_model), f(self.qkv_dim.unwrap_or(self.d_model)), f(self.d_ff));
        let n = f(attention.max_length);
        let sequences = f(batch) * if self.paired { 2.0 } else { 1.0 };
        let learned = if config.positions == Positions::Learned { n * d } else { 0.0 };
        let pooled = if self.paired { 4.0 * d } else { d };
        let head = pooled * f(self.d_head_mlp) + f(self.d_head_mlp) * f(self.classes);
        let parameters = f(self.vocab_size) * d + learned + f(self.layers) * (4.0 * d * dq + 2.0 * d * ff) + head;
        let rows = |positions: f64| sequences * positions * (6.0 * d + 3.0 * dq + 2.0 * ff);
        // The attention weights, kept for the backward (the scores before the softmax and
        // a dropout mask may be kept too, or not: the low estimate counts one matrix).
        let scores = |queries: f64, keys: f64| sequences * f(self.heads) * queries * keys;
        let full_block = |(queries, keys): (usize, usize)| rows(f(queries)) + scores(f(queries), f(keys));
        let settings = attention.resolved_settings();
        let activations: f64 = match Stack::of(&settings) {
            Stack::Blocks => {
                let square = if matches!(settings, MechanismSettings::Full(_)) { scores(n, n) } else { 0.0 };
                f(self.layers) * (rows(n) + square)
            }
            Stack::Funnel(funnel_settings) => {
                crate::funnel::block_positions(&funnel_settings, self.layers, attention.leading, attention.max_length)
                    .into_iter()
                    .map(full_block)
                    .sum()
            }
            Stack::Perceiver { latents } => {
                crate::perceiver::block_positions(latents, self.layers, attention.max_length).into_iter().map(full_block).sum()
            }
        };
        4.0 * (4.0 * parameters + activations)
    }

    pub fn init(&self, device: &Device) -> Classifier {
        let config = self.computed();
        let attention = config.attention();
        let positions_len = attention.max_length;
        let settings = attention.resolved_settings();
        let stack = Stack::of(&settings);
        let switch = match &settings {
            MechanismSettings::Switch(switch) => Some(switch.config(self.d_model, self.d_ff, self.dropout)),
            _ => None,
        };
        let latents = match stack {
            Stack::Perceiver { latents } => Some(latents),
            _ => None,
        };
        // Every block's layer is built with the settings resolved here, rather than each
        // resolving them again.
        let attention = attention.with_settings(Some(settings));
        let block = EncoderBlockConfig::new(attention, self.d_ff).with_dropout(self.dropout).with_switch(switch);
        let normal = Initializer::Normal { mean: 0.0, std: 0.02 };
        Classifier {
            embedding: EmbeddingConfig::new(self.vocab_size, self.d_model).init(device),
            learned_positions: (config.positions == Positions::Learned)
                .then(|| normal.init([positions_len, self.d_model], device)),
            sinusoid: (config.positions == Positions::Sinusoidal).then(|| {
                Tensor::from_data(
                    TensorData::new(sinusoid_table(positions_len, self.d_model), [positions_len, self.d_model]),
                    device,
                )
            }),
            // Zero, as LRA's CLS token: it starts as its position's vector alone.
            cls: (config.pooling == Pooling::Cls).then(|| Initializer::Zeros.init([self.d_model], device)),
            // A Perceiver's first block reads the sequence from the latents: its keys and
            // values have a layer norm of their own.
            blocks: (0..self.layers)
                .map(|index| {
                    block.clone().with_context_norm(latents.is_some() && crate::perceiver::reads_sequence(index)).init(device)
                })
                .collect(),
            latents: latents.map(|m| crate::perceiver::init_latents(m, self.d_model, device)),
            final_norm: LayerNormConfig::new(self.d_model).with_epsilon(LAYER_NORM_EPSILON).init(device),
            // LRA's head: flax's default Dense, a LeCun-normal kernel and a zero bias.
            head_hidden: dense(if self.paired { 4 * self.d_model } else { self.d_model }, self.d_head_mlp, LECUN, device),
            head_out: dense(self.d_head_mlp, self.classes, LECUN, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            pooling: config.pooling,
            paired: self.paired,
            stack,
        }
    }
}

/// `table[p][2i] = sin(p / 10000^(2i/d))`, `table[p][2i+1] = cos(..)`, flattened `[len, d]`.
pub fn sinusoid_table(len: usize, d: usize) -> Vec<f32> {
    let mut table = vec![0.0f32; len * d];
    for p in 0..len {
        for i in (0..d).step_by(2) {
            let angle = p as f64 / 10_000f64.powf(i as f64 / d as f64);
            table[p * d + i] = angle.sin() as f32;
            if i + 1 < d {
                table[p * d + i + 1] = angle.cos() as f32;
            }
        }
    }
    table
}

#[derive(Module, Debug)]
pub struct Classifier {
    pub embedding: Embedding,
    pub learned_positions: Option<Param<Tensor<2>>>,
    /// Fixed sinusoidal table `[positions, d_model]` (a constant, not trained), where the
    /// positions are sinusoidal.
    pub sinusoid: Option<Tensor<2>>,
    pub cls: Option<Param<Tensor<1>>>,
    pub blocks: Vec<EncoderBlock>,
    /// A Perceiver's latent array `[m, d_model]`.
    pub latents: Option<Param<Tensor<2>>>,
    pub final_norm: LayerNorm,
    pub head_hidden: Linear,
    pub head_out: Linear,
    pub dropout: Dropout,
    #[module(skip)]
    pub pooling: Pooling,
    pub paired: bool,
    #[module(skip)]
    pub stack: Stack,
}

impl Classifier {
    /// `tokens: [batch, len]` (0 = padding) -> logits `[batch, classes]`.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        self.forward_with_auxiliary(tokens).0
    }

    /// [`Classifier::forward`] and what its layers computed besides: the auxiliary losses
    /// to add to the task's in training, and Switch's routing.
    pub fn forward_with_auxiliary(&self, tokens: Tensor<2, Int>) -> (Tensor<2>, Auxiliary) {
        assert!(!self.paired, "a paired classifier takes two inputs (forward_pair)");
        let mut auxiliary = Auxiliary::default();
        let logits = self.classify(self.encode_with(tokens, &mut auxiliary));
        (logits, auxiliary)
    }

    /// Two inputs `[batch, len]` each -> logits `[batch, classes]` from
    /// `[u, v, u * v, u - v]` of their pooled encodings (the siamese head of LRA's
    /// Retrieval task).
    pub fn forward_pair(&self, first: Tensor<2, Int>, second: Tensor<2, Int>) -> Tensor<2> {
        self.forward_pair_with_auxiliary(first, second).0
    }

    /// [`Classifier::forward_pair`] and what its layers computed besides, over both inputs.
    pub fn forward_pair_with_auxiliary(&self, first: Tensor<2, Int>, second: Tensor<2, Int>) -> (Tensor<2>, Auxiliary) {
        assert!(self.paired, "a single-input classifier takes one input (forward)");
        let mut auxiliary = Auxiliary::default();
        let u = self.encode_with(first, &mut auxiliary);
        let v = self.encode_with(second, &mut auxiliary);
        let features = Tensor::cat(vec![u.clone(), v.clone(), u.clone() * v.clone(), u - v], 1);
        (self.classify(features), auxiliary)
    }

    /// `tokens: [batch, len]` -> pooled encoding `[batch, d_model]`.
    pub fn encode(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        self.encode_with(tokens, &mut Auxiliary::default())
    }

    /// [`Classifier::encode`], its layers' auxiliary losses and routing added to `auxiliary`.
    pub fn encode_with(&self, tokens: Tensor<2, Int>, auxiliary: &mut Auxiliary) -> Tensor<2> {
        let [batch, len] = tokens.dims();
        let device = tokens.device();
        let mut padding = tokens.clone().equal_elem(PAD_ID);
        let mut x = self.embedding.forward(tokens); // [batch, len, d]
        let d_model = x.dims()[2];
        if let Some(cls) = &self.cls {
            let cls = cls.val().reshape([1, 1, d_model]).expand([batch, 1, d_model]);
            x = Tensor::cat(vec![cls, x], 1);
            padding = Tensor::cat(vec![Tensor::<2, Bool>::full([batch, 1], false, &device), padding], 1);
        }
        let positions = x.dims()[1];
        let table = match &self.learned_positions {
            Some(learned) => Some(learned.val()),
            None => self.sinusoid.clone(),
        };
        if let Some(table) = table {
            assert!(positions <= table.dims()[0], "input of {len} tokens is longer than the model's max_length");
            x = x + table.narrow(0, 0, positions).unsqueeze::<3>();
        }
        x = dropout(x, &self.dropout);
        let (x, padding, pooling) = match &self.stack {
            Stack::Blocks => {
                for block in &self.blocks {
                    x = block.forward_with(x, padding.clone(), auxiliary);
                }
                (x, padding, self.pooling)
            }
            Stack::Funnel(funnel_settings) => {
                let (x, padding) =
                    crate::funnel::encode(&self.blocks, funnel_settings, usize::from(self.cls.is_some()), x, padding);
                (x, padding, self.pooling)
            }
            // The paper's classifier averages the latents.
            Stack::Perceiver { .. } => {
                let latents = self.latents.as_ref().expect("a Perceiver has latents").val();
                let z = crate::perceiver::encode(&self.blocks, latents, x, padding);
                let m = z.dims()[1];
                (z, Tensor::full([batch, m], false, &device), Pooling::Mean)
            }
        };
        let x = layer_norm(&self.final_norm, x);
        match pooling {
            Pooling::Cls => x.slice([0..batch, 0..1]).reshape([batch, d_model]),
            Pooling::Mean => {
                let real = padding.bool_not().float().unsqueeze_dim::<3>(2); // [batch, len, 1]
                let count = real.clone().sum_dim(1).clamp_min(1.0); // [batch, 1, 1]
                (x * real).sum_dim(1).div(count).reshape([batch, d_model])
            }
        }
    }

    /// Called by the training loop after step `step` (counted from 1), for attention
    /// mechanisms with a schedule of their own (Performer redraws its random features).
    pub fn on_training_step(&mut self, step: usize) {
        for block in &mut self.blocks {
            block.attention.on_training_step(step);
        }
    }

    /// Fixes every per-pass draw of the attention layers to one draw made now
    /// ([`AttentionLayer::draw_once`](crate::attention::AttentionLayer::draw_once)), so
    /// that the model moved to another device computes the same function: the comparison
    /// of backends uses it; training does not.
    pub fn draw_once(&mut self) {
        for block in &mut self.blocks {
            block.attention.draw_once();
        }
    }

    /// Pooled encoding `[batch, d_model]` (`[batch, 4 * d_model]` when paired) -> logits
    /// `[batch, classes]`; no dropout in the head, as LRA's.
    pub fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.head_out.forward(relu(self.head_hidden.forward(pooled)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn config(pooling: Pooling, positions: Positions) -> ClassifierConfig {
        ClassifierConfig::new(12, 5, 16, 16, 4, 2, 32, 24, Mechanism::Full).with_pooling(pooling).with_positions(positions)
    }

    /// Encodes `tokens` padded to `len` with zeros, returning the per-token outputs
    /// of every block for the first `real` positions (after CLS when present).
    fn encoder_outputs(model: &Classifier, tokens: &[i64], len: usize) -> Vec<f32> {
        let device = Device::flex();
        let mut padded = tokens.to_vec();
        padded.resize(len, PAD_ID);
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(padded, [1, len]), &device);
        model.encode(tokens).into_data().iter::<f32>().collect()
    }

    /// One training step of the Transformer, counted by hand: 16 tokens and the CLS vector
    /// (n = 17), batch 2, D = d = 16, F = 32, a head of 24 and 5 classes, 2 blocks.
    /// Per block: projections 4 x 2 x (2 x 17 x 16 x 16) = 69,632; scores and context
    /// 2 x 2 x (2 x 17 x 16 x 17) = 36,992; feed-forward 2 x 2 x (2 x 17 x 16 x 32) = 69,632.
    /// Head: 2 x (2 x 16 x 24 + 2 x 24 x 5) = 2,016. Forward: 2 x 176,256 + 2,016 = 354,528;
    /// a step is three forwards.
    #[test]
    fn the_transformers_step_count_is_the_hand_count() {
        assert_eq!(config(Pooling::Cls, Positions::Sinusoidal).training_step_flops(2), 3.0 * 354_528.0);
        // Pairs run the encoder twice, and the head reads [u, v, u*v, u-v] (4 x 16 wide).
        let paired = config(Pooling::Cls, Positions::Sinusoidal).with_paired(true).training_step_flops(2);
        assert_eq!(paired, 3.0 * (2.0 * 2.0 * 176_256.0 + 2.0 * 2.0 * (64.0 * 24.0 + 24.0 * 5.0)));
    }

    #[test]
    fn padding_does_not_change_the_outputs_of_real_tokens() {
        let device = Device::flex();
        device.seed(3);
        for pooling in [Pooling::Cls, Pooling::Mean] {
            for positions in [Positions::Sinusoidal, Positions::Learned] {
                let model = config(pooling, positions).init(&device).valid();
                let tokens = [3, 7, 1, 9, 4];
                let short = encoder_outputs(&model, &tokens, 5);
                let long = encoder_outputs(&model, &tokens, 16);
                for (a, b) in short.iter().zip(&long) {
                    assert!((a - b).abs() < 1e-5, "{pooling:?} {positions:?}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn padding_embeddings_cannot_reach_real_tokens_through_attention() {
        // Change what the padding positions would contribute (their embedding row) and
        // check that the real tokens' block outputs do not move.
        let device = Device::flex();
        device.seed(4);
        let mut model = config(Pooling::Mean, Positions::Sinusoidal).init(&device).valid();
        let before = encoder_outputs(&model, &[2, 5, 8], 10);
        let weight = model.embedding.weight.val();
        let noise = Tensor::<2>::random([1, 16], Distribution::Normal(0.0, 5.0), &device);
        let changed = weight.clone().slice_assign([0..1, 0..16], noise);
        model.embedding.weight = Param::from_tensor(changed);
        let after = encoder_outputs(&model, &[2, 5, 8], 10);
        for (a, b) in before.iter().zip(&after) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn the_paired_head_sees_both_inputs_and_their_order() {
        let device = Device::flex();
        device.seed(5);
        let model = config(Pooling::Cls, Positions::Sinusoidal).with_paired(true).init(&device).valid();
        let tokens = |t: [i64; 4]| Tensor::<2, Int>::from_data(TensorData::new(t.to_vec(), [1, 4]), &device);
        let logits = |a, b| -> Vec<f32> { model.forward_pair(tokens(a), tokens(b)).into_data().iter::<f32>().collect() };
        let base = logits([1, 2, 3, 4], [5, 6, 7, 8]);
        assert_eq!(base.len(), 5);
        let differs = |x: &[f32]| x.iter().zip(&base).any(|(a, b)| (a - b).abs() > 1e-6);
        assert!(differs(&logits([1, 2, 3, 9], [5, 6, 7, 8])), "the first input matters");
        assert!(differs(&logits([1, 2, 3, 4], [5, 6, 7, 9])), "the second input matters");
        assert!(differs(&logits([5, 6, 7, 8], [1, 2, 3, 4])), "u - v makes the head order-aware");
    }

    #[test]
    fn sinusoid_table_follows_the_formula() {
        let t = sinusoid_table(3, 4);
        assert_eq!(t[0..4], [0.0, 1.0, 0.0, 1.0]);
        assert!((t[4] - 1f32.sin()).abs() < 1e-7 && (t[5] - 1f32.cos()).abs() < 1e-7);
        assert!((t[6] - (0.01f32).sin()).abs() < 1e-7);
    }
}
