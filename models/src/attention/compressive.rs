//! Compressive Transformer: Transformer-XL's memory, and older memories compressed.
//!
//! Paper: Rae, Potapenko, Jayakumar, Hillier, Lillicrap, "Compressive Transformers for
//! Long-Range Sequence Modelling", ICLR 2020.
//! Family: recurrence.
//! Cost: O(n (s + n_cm) d) time and O(n (s + n_cm)) memory per head in the sequence length
//! n, with segments of s and n_cm compressed slots (both fixed): linear in n.
//!
//! As [`super::transformer_xl`], the sequence is read in segments of `s`, each attending to
//! itself and to the cached (stop-gradient) previous segment, with relative positions.
//! States evicted from that memory are not discarded but compressed (Section 3.1): a
//! convolution of kernel and stride `c` (the compression rate; the paper's best, Section
//! 5.1) turns every `c` states of a segment into one slot, and segment `t` also attends to
//! the compressed slots of the `compressed_segments` segments before its memory (`t - 2`,
//! `t - 3`, ...): `n_cm = compressed_segments * ceil(s / c)` slots, each one position
//! further back, oldest first.
//!
//! The compression is trained by the attention-reconstruction loss alone (Section 3.2,
//! Algorithm 2): for each segment `t`, the states `h` of segment `t` attend, by the layer's
//! content attention (softmax of its query-key products), once to the evicted states of
//! segment `t - 2` and once to their compression, and the squared difference of the two
//! results, averaged over the real queries' numbers, is added to the training loss. Its
//! gradient reaches only the convolution: the states and the attention's weights are
//! stopped there, and the compressed memory the main attention reads is stopped as any
//! memory is, so the task's loss does not train the convolution.
//!
//! Padding: evicted states at padding are zeroed before compressing, and slots of padding
//! alone are masked; a segment's compressed memory is of segments before its memory, which
//! are whole real segments wherever the segment has a real token, so real tokens' outputs
//! do not depend on the padding.

use burn::module::Initializer;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use serde::{Deserialize, Serialize};

use super::blocks::{
    append_zeros, block_count, block_scores, compress, empty_windows, key_mask, pad_padding, padding_blocks, shift_blocks,
    shift_padding,
};
use super::flops::LayerShape;
use super::heads::{MASKED_SCORE, dense, split_heads_of_blocks};
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Scale, Settings, at_least_one, fit, within};
use super::transformer_xl::{TransformerXlAttention, TransformerXlConfig, segment_flops};
use crate::auxiliary::Auxiliary;

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n (s + n_cm)) time, O(n (s + n_cm)) memory (s = 256, n_cm = 3 x 86 compressed slots)";

#[derive(Config, Debug)]
pub struct CompressiveConfig {
    /// The segments' attention: sizes, dropout and `s`, the segment length.
    pub segments: TransformerXlConfig,
    /// `c`, the kernel and stride of the compressing convolution.
    #[config(default = 3)]
    pub compression_rate: usize,
    /// Segments before the memory whose compressions a segment reads.
    #[config(default = 3)]
    pub compressed_segments: usize,
}

impl CompressiveConfig {
    pub fn init(&self, device: &Device) -> CompressiveAttention {
        let d_model = self.segments.d_model;
        CompressiveAttention {
            xl: self.segments.init(device),
            compression: dense(self.compression_rate * d_model, d_model, Initializer::XavierUniform { gain: 1.0 }, device),
            compression_rate: self.compression_rate,
            compressed_segments: self.compressed_segments,
        }
    }
}

/// The Compressive Transformer's own settings in a run's configuration
/// (`"attention": {"compressive": {"segment_length": 256, "compression_rate": 3, "compressed_segments": 3}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressiveSettings {
    /// `s`, positions per segment (and in the cached memory).
    pub segment_length: usize,
    /// `c`, the kernel and stride of the compressing convolution.
    pub compression_rate: usize,
    /// Segments before the memory whose compressions a segment reads.
    pub compressed_segments: usize,
}

impl Settings for CompressiveSettings {
    type Layer = CompressiveAttention;
    const MODEL: ModelCard =
        ModelCard { name: "compressive", title: "Compressive Transformer (Rae et al. 2020)", family: "recurrence", cost: COST };

    fn defaults(_max_length: usize) -> CompressiveSettings {
        let c = CompressiveConfig::new(TransformerXlConfig::new(1, 1));
        CompressiveSettings {
            segment_length: c.segments.segment_length,
            compression_rate: c.compression_rate,
            compressed_segments: c.compressed_segments,
        }
    }

    fn fitted_to(self, positions: usize) -> CompressiveSettings {
        compressive_settings(fit(self.segment_length, positions), self.compression_rate, self.compressed_segments)
    }

    /// Segments of 4, a rate of 2 and one compressed segment: the defaults' segments of 256
    /// would leave a tiny sequence one segment, with no memory to compress, and the
    /// convolution would never run; at 13 positions, segments of 4 give the last one a
    /// compressed segment before its memory, and the reconstruction loss two segments.
    fn tiny(positions: usize) -> CompressiveSettings {
        CompressiveSettings { segment_length: 4, compression_rate: 2, compressed_segments: 1 }.fitted_to(positions)
    }

    fn scaled(self, scale: &Scale) -> CompressiveSettings {
        compressive_settings(scale.length(self.segment_length), self.compression_rate, self.compressed_segments)
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        let (segment_length, compression_rate) = (self.segment_length, self.compression_rate);
        within("segment_length", segment_length, positions)?;
        at_least_one("compression_rate", compression_rate)?;
        match compression_rate > segment_length {
            true => {
                Err(format!("compression_rate {compression_rate} is more than the segment_length {segment_length} it compresses"))
            }
            false => Ok(()),
        }
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.segment_length, self.compression_rate, self.compressed_segments)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> CompressiveAttention {
        CompressiveConfig::new(
            TransformerXlConfig::new(layer.d_model, layer.heads)
                .with_qkv_dim(layer.qkv_dim)
                .with_segment_length(self.segment_length)
                .with_dropout(layer.dropout),
        )
        .with_compression_rate(self.compression_rate)
        .with_compressed_segments(self.compressed_segments)
        .init(device)
    }
}

/// The Compressive Transformer's settings for segments of `segment_length`: a rate no
/// more than the segment it compresses.
fn compressive_settings(segment_length: usize, compression_rate: usize, compressed_segments: usize) -> CompressiveSettings {
    CompressiveSettings { segment_length, compression_rate: compression_rate.min(segment_length), compressed_segments }
}

#[derive(Module, Debug)]
pub struct CompressiveAttention {
    /// The segments' attention over `[compressed, memory, segment]`.
    pub xl: TransformerXlAttention,
    /// The compressing convolution, `[c * d_model] -> [d_model]` per window of a segment.
    pub compression: Linear,
    pub compression_rate: usize,
    pub compressed_segments: usize,
}

impl CompressiveAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward_with(x, padding, &mut Auxiliary::default())
    }

    /// [`CompressiveAttention::forward`]; in training, the attention-reconstruction loss
    /// goes to `auxiliary`.
    pub fn forward_with(&self, x: Tensor<3>, padding: Tensor<2, Bool>, auxiliary: &mut Auxiliary) -> Tensor<3> {
        if self.compressed_segments == 0 {
            return self.xl.forward(x, padding);
        }
        let [batch, len, d_model] = x.dims();
        let s = self.xl.segment_length_for(len);
        let segments = block_count(len, s);
        let c = self.compression_rate.min(s);
        let windows = s.div_ceil(c);
        // The evicted states, segment by segment, padding zeroed, each segment filled up
        // to whole windows: [batch, segments, windows * c, d_model] (the reconstruction
        // loss reads them so).
        let own_padding = padding_blocks(padding, s); // [batch, segments, s]
        let real = own_padding.clone().bool_not().float(); // [batch, segments, s]
        let states = append_zeros(x.clone().detach(), 1, segments * s).reshape([batch, segments, s, d_model])
            * real.clone().unsqueeze_dim::<4>(3);
        let states = append_zeros(states, 2, windows * c);
        let compressed = compress(states.clone(), &self.compression, c); // [batch, segments, windows, d_model]
        let slot_padding =
            empty_windows(own_padding.clone().reshape([batch * segments, s]), c).reshape([batch, segments, windows]);

        // Segment t reads the compressions of t - 1 - g, ..., t - 2, oldest first.
        let back = (2..=self.compressed_segments + 1).rev();
        let earlier_states = Tensor::cat(back.clone().map(|j| shift_blocks(compressed.clone(), 1, -(j as isize))).collect(), 2);
        let earlier_padding = Tensor::cat(back.map(|j| shift_padding(slot_padding.clone(), -(j as isize))).collect(), 2);
        let output = self.xl.attend_segments(x.clone(), own_padding.clone(), Some((earlier_states.detach(), earlier_padding)));

        if x.device().is_autodiff() && segments > 2 {
            // The states themselves (padded queries are zeros, and weigh nothing in the loss).
            let queries = states.clone().narrow(1, 2, segments - 2).narrow(2, 0, s);
            let query_real = real.narrow(1, 2, segments - 2);
            let evicted = states.narrow(1, 0, segments - 2);
            let evicted_padding =
                pad_padding(own_padding.narrow(1, 0, segments - 2).reshape([batch * (segments - 2), s]), windows * c).reshape([
                    batch,
                    segments - 2,
                    windows * c,
                ]);
            let kept = compressed.narrow(1, 0, segments - 2);
            let kept_padding = slot_padding.narrow(1, 0, segments - 2);
            let target = self.content_attention(queries.clone(), evicted, evicted_padding);
            let approximation = self.content_attention(queries, kept, kept_padding);
            auxiliary.losses.push(mean_squared_error(target, approximation, query_real));
        }
        output
    }

    /// The layer's content attention with its weights stopped, per head: `queries: [batch,
    /// segments, s, d_model]` over `memory: [batch, segments, slots, d_model]` (masked
    /// where `padding: [batch, segments, slots]`) -> `[batch, heads, segments, s, d_head]`.
    fn content_attention(&self, queries: Tensor<4>, memory: Tensor<4>, padding: Tensor<3, Bool>) -> Tensor<5> {
        let heads = self.xl.projections.heads;
        let stopped = |linear: &Linear| linear.weight.val().detach().unsqueeze::<4>();
        let per_head = |t: Tensor<4>| split_heads_of_blocks(t, heads);
        let q = per_head(queries.matmul(stopped(&self.xl.projections.query)));
        let k = per_head(memory.clone().matmul(stopped(&self.xl.projections.key)));
        let v = per_head(memory.matmul(stopped(&self.xl.projections.value)));
        let scores = block_scores(q, k).mask_fill(key_mask(padding), MASKED_SCORE);
        softmax(scores, 4).matmul(v)
    }
}

impl AttentionLayer for CompressiveAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }

    fn attend_with(&self, x: Tensor<3>, padding: Tensor<2, Bool>, auxiliary: &mut Auxiliary) -> Tensor<3> {
        self.forward_with(x, padding, auxiliary)
    }
}

/// The mean over the real queries' numbers of `(target - approximation)^2`, both
/// `[batch, heads, segments, s, d_head]`, `query_real: [batch, segments, s]` (1 at real
/// queries) -> `[1]` (zero when no query is real).
fn mean_squared_error(target: Tensor<5>, approximation: Tensor<5>, query_real: Tensor<3>) -> Tensor<1> {
    let [batch, heads, segments, s, d_head] = target.dims();
    let weight = query_real.reshape([batch, 1, segments, s, 1]);
    let count = weight.clone().sum().mul_scalar((heads * d_head) as f64).clamp_min(1.0);
    (target - approximation).powi_scalar(2).mul(weight).sum().div(count)
}

/// Work of one forward ([`super::flops`]): Transformer-XL's with the `n_cm` compressed
/// slots as more keys of every segment, and the compressing convolution (one `[c D] x [c D,
/// D]` product per window, `2 b n D^2` in all); the reconstruction loss's attention is
/// training's alone and not counted.
pub fn forward_flops(shape: &LayerShape, segment_length: usize, compression_rate: usize, compressed_segments: usize) -> f64 {
    let s = segment_length.min(shape.positions).max(1);
    let c = compression_rate.clamp(1, s);
    let slots = compressed_segments * s.div_ceil(c);
    let d_model = shape.d_model as f64;
    let windows = (block_count(shape.positions, s) * s.div_ceil(c)) as f64;
    segment_flops(shape, segment_length, slots) + shape.products(1.0, windows, c as f64 * d_model, d_model)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{
        assert_close, assert_finite_gradients, assert_padding_is_invisible, padding_after, random_input, values,
    };
    use crate::attention::transformer_xl::tests::{LoopKey, relative_attention_in_loops, states_of};
    use burn::module::Param;
    use burn::tensor::Distribution;

    /// With no segment before any query's memory (at most two segments), every compressed
    /// slot is masked and the layer must compute Transformer-XL's attention: this checks
    /// the masking of the earlier slots and their offset in the relative shift.
    #[test]
    fn compressed_slots_of_no_segment_leave_transformer_xl() {
        let device = Device::flex();
        device.seed(131);
        let (d_model, s, len) = (8, 4, 7);
        for compressed_segments in [1, 2] {
            let attention = CompressiveConfig::new(TransformerXlConfig::new(d_model, 2).with_segment_length(s))
                .with_compression_rate(2)
                .with_compressed_segments(compressed_segments)
                .init(&device);
            let (x, padding) = (random_input(2, len, d_model, &device), padding_after(&[len, 3], len, &device));
            let got = values(attention.forward(x.clone(), padding.clone()));
            let what = format!("{compressed_segments} compressed segments, two segments of {s}");
            assert_close(&got, &values(attention.xl.forward(x, padding)), 1e-5, &what);
        }
    }

    /// The definition in loops: each query over the compressed slots of the segments
    /// before its memory (computed here window by window from the convolution's weights),
    /// the memory and its own segment; four segments of 3, the last one short, c = 2.
    #[test]
    fn compressive_attention_equals_its_definition_in_loops() {
        let device = Device::flex();
        device.seed(132);
        let (batch, len, d_model, heads, s, c, g) = (2, 11, 8, 2, 3, 2, 2);
        let real = [11, 8];
        let attention = CompressiveConfig::new(TransformerXlConfig::new(d_model, heads).with_segment_length(s))
            .with_compression_rate(c)
            .with_compressed_segments(g)
            .init(&device);
        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let got = values(attention.forward(x.clone(), padding_after(&real, len, &device)));

        let states = states_of(x);
        let kernel = values(attention.compression.weight.val()); // [c * d_model, d_model]
        let bias = values(attention.compression.bias.as_ref().expect("a convolution has a bias").val());
        let windows = s.div_ceil(c);
        // Slot w of segment t: bias + the kernel over its c positions (zero past the
        // segment or at padding).
        let slot = |b: usize, t: usize, w: usize| -> Vec<f32> {
            (0..d_model)
                .map(|o| {
                    let mut sum = bias[o];
                    for step in 0..c {
                        let (within, position) = (w * c + step, t * s + w * c + step);
                        if within < s && position < real[b] {
                            sum += (0..d_model)
                                .map(|i| kernel[(step * d_model + i) * d_model + o] * states[b][position][i])
                                .sum::<f32>();
                        }
                    }
                    sum
                })
                .collect()
        };
        let keys = |b: usize, i: usize| {
            let (t, a) = (i / s, i % s);
            let slots = g * windows;
            let frame = |c: usize| (slots + s + a) as i64 - c as i64; // distance to key c of [slots, memory, segment]
            let mut keys = Vec::new();
            for (n, back) in (2..=g + 1).rev().enumerate() {
                for w in 0..windows {
                    let exists = t >= back && (t - back) * s + w * c < real[b];
                    let state = if t >= back { slot(b, t - back, w) } else { vec![0.0; d_model] };
                    keys.push(LoopKey { state, distance: frame(n * windows + w), masked: !exists });
                }
            }
            for (k, j) in (t as i64 * s as i64 - s as i64..(t as i64 + 1) * s as i64).enumerate() {
                let inside = j >= 0 && (j as usize) < len;
                let state = if inside { states[b][j as usize].clone() } else { vec![0.0; d_model] };
                keys.push(LoopKey { state, distance: frame(slots + k), masked: !inside || j as usize >= real[b] });
            }
            keys
        };
        let expected = values(relative_attention_in_loops(&attention.xl, &states, keys, &device));
        assert_close(&got, &expected, 1e-4, "Compressive Transformer vs its loops");
    }

    #[test]
    fn compressive_padding_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(133);
        let attention =
            CompressiveConfig::new(TransformerXlConfig::new(8, 2).with_segment_length(2)).with_compression_rate(2).init(&device);
        assert_padding_is_invisible(|x, padding| attention.forward(x, padding), 8, &[5, 9], 12, &device);
    }

    /// With a rate of 1 and the identity as the convolution the compressed memory is the
    /// evicted states themselves, and the reconstruction is perfect; otherwise the loss is
    /// positive and trains the convolution alone.
    #[test]
    fn the_reconstruction_loss_trains_the_compression_alone() {
        let device = Device::flex().autodiff();
        device.seed(134);
        let (d_model, s) = (8, 3);
        let x = Tensor::<3>::random([2, 12, d_model], Distribution::Normal(0.0, 1.0), &device);
        let padding = padding_after(&[12, 9], 12, &device);
        let mut exact = CompressiveConfig::new(TransformerXlConfig::new(d_model, 2).with_segment_length(s))
            .with_compression_rate(1)
            .init(&device);
        exact.compression.weight = Param::from_tensor(Tensor::eye(d_model, &device));
        let mut auxiliary = Auxiliary::default();
        exact.forward_with(x.clone(), padding.clone(), &mut auxiliary);
        assert_close(&values(auxiliary.loss().expect("a reconstruction loss")), &[0.0], 1e-10, "identity compression");

        let lossy = CompressiveConfig::new(TransformerXlConfig::new(d_model, 2).with_segment_length(s))
            .with_compression_rate(3)
            .init(&device);
        let mut auxiliary = Auxiliary::default();
        lossy.forward_with(x, padding, &mut auxiliary);
        let loss = auxiliary.loss().expect("a reconstruction loss");
        assert!(values(loss.clone())[0] > 0.0);
        let grads = loss.backward();
        assert!(lossy.compression.weight.grad(&grads).is_some(), "the convolution learns from it");
        for linear in [&lossy.xl.projections.query, &lossy.xl.projections.key, &lossy.xl.projections.value] {
            assert!(linear.weight.grad(&grads).is_none(), "the attention's weights do not");
        }
    }

    #[test]
    fn compressive_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(135);
        let attention =
            CompressiveConfig::new(TransformerXlConfig::new(8, 2).with_segment_length(2)).with_compression_rate(2).init(&device);
        let x = Tensor::<3>::random([2, 9, 8], Distribution::Normal(0.0, 1.0), &device);
        let mut auxiliary = Auxiliary::default();
        let out = attention.forward_with(x, padding_after(&[9, 6], 9, &device), &mut auxiliary);
        let grads = (out.sum() + auxiliary.loss().expect("a reconstruction loss")).backward();
        // Transformer-XL's seven, the convolution's kernel and bias.
        assert_eq!(assert_finite_gradients(&attention, &grads), 9);
    }
}
