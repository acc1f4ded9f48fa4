//! Routing Transformer: attention within clusters found by online k-means.
//!
//! Paper: Roy, Saffar, Vaswani, Grangier, "Efficient Content-Based Sparse Attention with
//! Routing Transformers", TACL 2021.
//! Family: learnable pattern (clustering).
//! Cost: O(n w + n k) time and memory per head in the sequence length n, with k clusters of
//! w = ceil(n / k) tokens; with the paper's k = sqrt(n), O(n^1.5).
//!
//! Half the heads (rounded down) attend locally, the other half route (Section 4):
//! - local heads: blocks of `w` positions, each attending to its own block and the blocks
//!   on either side;
//! - routing heads: queries and keys share one projection (the query's), so that a token
//!   meets the tokens it is close to. Each head has `k` centroids; the unit-length shared
//!   vectors are compared with them (cosine), and every centroid takes its `w` closest
//!   tokens ("balanced" top-w, as the paper's code), which attend among themselves by
//!   softmax attention. A token's output is the mean over the clusters that took it; a
//!   token no cluster took gets zero from these heads.
//! - the centroids are not trained by gradient: after each training step, each moves
//!   toward the mean of the unit vectors nearest to it, `mu <- lambda mu + (1 - lambda)
//!   mean`, with `lambda = 0.999` (Section 4.1, online mini-batch k-means), and is brought
//!   back to unit length. Where a step encodes twice (Retrieval's pairs), its last encoding
//!   moves them.
//!
//! Padding: padded tokens are never taken by a cluster unless the clusters need more
//! tokens than there are real ones, and padded keys are masked wherever they are taken, so
//! what padding holds never reaches a real token. The number of positions does, as in the
//! paper's code: the cluster size `w` is the padded length over `k`, so a sequence routes
//! differently when padded to another length.

use std::sync::{Arc, Mutex};

use burn::module::Initializer;
use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use serde::{Deserialize, Serialize};

use super::blocks::{Blocks, block_attention, block_count, neighbour_blocks, unblock};
use super::flops::LayerShape;
use super::heads::{HeadProjections, MASKED_SCORE};
use super::layer::{AttentionLayer, LayerSizes};
use super::settings::{ModelCard, Scale, Settings, at_least_one, fit};

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n^1.5) time, O(n^1.5) memory (k = sqrt(n) clusters of n / k)";

#[derive(Config, Debug)]
pub struct RoutingAttentionConfig {
    pub d_model: usize,
    pub heads: usize,
    /// Longest sequence: the default number of clusters is its square root.
    pub max_length: usize,
    /// Width of queries, keys and values (split among the heads); `d_model` when absent.
    #[config(default = "None")]
    pub qkv_dim: Option<usize>,
    /// Dropout on the attention weights.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// `k`, the clusters of each routing head; `sqrt(max_length)` when absent.
    #[config(default = "None")]
    pub clusters: Option<usize>,
    /// `lambda`, the centroids' decay in their moving average.
    #[config(default = 0.999)]
    pub ema_decay: f64,
}

impl RoutingAttentionConfig {
    /// The clusters: as given, or the paper's `sqrt(n)`.
    pub fn resolved_clusters(&self) -> usize {
        self.clusters.unwrap_or_else(|| ((self.max_length as f64).sqrt().round() as usize).max(1))
    }

    pub fn init(&self, device: &Device) -> RoutingAttention {
        let qkv_dim = self.qkv_dim.unwrap_or(self.d_model);
        let routing_heads = self.heads - self.heads / 2;
        let d_head = qkv_dim / self.heads.max(1);
        let centroids: Tensor<3> =
            Initializer::Normal { mean: 0.0, std: 1.0 }.init([routing_heads, self.resolved_clusters(), d_head], device).val();
        RoutingAttention {
            projections: HeadProjections::new(self.d_model, qkv_dim, self.heads, device),
            centroids: unit_length(centroids),
            dropout: DropoutConfig::new(self.dropout).init(),
            ema_decay: self.ema_decay,
            moved: Arc::new(Mutex::new(None)),
        }
    }
}

/// The Routing Transformer's own settings in a run's configuration
/// (`"attention": {"routing": {"clusters": 32, "ema_decay": 0.999}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingSettings {
    /// `k`, the clusters of each routing head.
    pub clusters: usize,
    /// `lambda`, the centroids' decay in their moving average.
    pub ema_decay: f64,
}

impl Settings for RoutingSettings {
    type Layer = RoutingAttention;
    const MODEL: ModelCard = ModelCard {
        name: "routing",
        title: "Routing Transformer (Roy et al. 2021)",
        family: "learnable pattern (clustering)",
        cost: COST,
    };

    fn defaults(max_length: usize) -> RoutingSettings {
        let c = RoutingAttentionConfig::new(1, 1, max_length);
        RoutingSettings { clusters: c.resolved_clusters(), ema_decay: c.ema_decay }
    }

    fn fitted_to(self, positions: usize) -> RoutingSettings {
        RoutingSettings { clusters: fit(self.clusters, positions), ..self }
    }

    /// The paper's `sqrt(n)` clusters, of the new length.
    fn scaled(self, scale: &Scale) -> RoutingSettings {
        RoutingSettings { clusters: RoutingAttentionConfig::new(1, 1, scale.to).resolved_clusters(), ..self }
    }

    fn check(&self, positions: usize) -> Result<(), String> {
        let (clusters, ema_decay) = (self.clusters, self.ema_decay);
        at_least_one("clusters", clusters)?;
        if clusters > positions {
            return Err(format!("clusters {clusters} is more than the {positions} tokens of the sequence"));
        }
        match (0.0..1.0).contains(&ema_decay) {
            true => Ok(()),
            false => Err(format!("ema_decay must be at least 0 and below 1, not {ema_decay}")),
        }
    }

    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        forward_flops(shape, self.clusters)
    }

    fn init(&self, layer: &LayerSizes, device: &Device) -> RoutingAttention {
        RoutingAttentionConfig::new(layer.d_model, layer.heads, layer.max_length)
            .with_qkv_dim(layer.qkv_dim)
            .with_clusters(Some(self.clusters))
            .with_ema_decay(self.ema_decay)
            .with_dropout(layer.dropout)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct RoutingAttention {
    pub projections: HeadProjections,
    /// `[routing heads, k, d_head]`, unit length; moved by their moving average, not by
    /// gradient.
    pub centroids: Tensor<3>,
    pub dropout: Dropout,
    pub ema_decay: f64,
    /// The centroids after the last training forward, applied after its step.
    #[module(skip)]
    pub moved: Arc<Mutex<Option<Tensor<3>>>>,
}

impl RoutingAttention {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [_, len, _] = x.dims();
        let (q, k, v) = self.projections.project(x); // [batch, heads, len, d_head]
        let heads = self.projections.heads;
        let local_heads = heads / 2;
        let [routing_heads, clusters, _] = self.centroids.dims();
        let window = len.div_ceil(clusters).max(1);
        let mut parts = Vec::new();
        if local_heads > 0 {
            let narrow = |t: &Tensor<4>| t.clone().narrow(1, 0, local_heads);
            let blocks = Blocks::new(narrow(&q), narrow(&k), narrow(&v), padding.clone(), window);
            let keys = neighbour_blocks(blocks.keys.clone(), 1);
            let values = neighbour_blocks(blocks.values.clone(), 1);
            let context = block_attention(blocks.queries.clone(), keys, values, blocks.neighbour_key_mask(1), &self.dropout);
            parts.push(unblock(context, len));
        }
        let shared = q.narrow(1, local_heads, routing_heads); // queries and keys alike
        let values = v.narrow(1, local_heads, routing_heads);
        parts.push(self.route(shared, values, padding, window));
        self.projections.combine(Tensor::cat(parts, 1))
    }

    /// The routing heads: `shared, v: [batch, routing heads, len, d_head]` -> the mean over
    /// the clusters that took each token of its attention among them, `[batch, routing
    /// heads, len, d_head]`.
    fn route(&self, shared: Tensor<4>, v: Tensor<4>, padding: Tensor<2, Bool>, window: usize) -> Tensor<4> {
        let [batch, heads, len, d_head] = shared.dims();
        let clusters = self.centroids.dims()[1];
        let device = shared.device();
        let unit = unit_length(shared.clone().detach());
        // Cosine of every token to every centroid, padding never preferred.
        let similarity = unit.clone().matmul(self.centroids.clone().unsqueeze::<4>().swap_dims(2, 3)); // [batch, heads, len, k]
        let padded = padding.clone().reshape([batch, 1, len, 1]);
        let similarity = similarity.mask_fill(padded.clone(), MASKED_SCORE);
        if shared.device().is_autodiff() {
            self.move_centroids(unit, similarity.clone(), padded);
        }
        let (_, taken) = similarity.swap_dims(2, 3).topk_with_indices(window, 3); // [batch, heads, k, w]
        let taken = taken.reshape([batch, heads, clusters * window]);
        let rows = taken.clone().unsqueeze_dim::<4>(3).expand([batch, heads, clusters * window, d_head]);
        let queries = shared.gather(2, rows.clone()).reshape([batch, heads, clusters, window, d_head]);
        let values = v.gather(2, rows.clone()).reshape([batch, heads, clusters, window, d_head]);
        let key_padding = padding
            .reshape([batch, 1, len])
            .expand([batch, heads, len])
            .int()
            .gather(2, taken.clone())
            .equal_elem(1)
            .reshape([batch, heads, clusters, 1, window]);
        let context = block_attention(queries.clone(), queries, values, key_padding, &self.dropout);
        let context = context.reshape([batch, heads, clusters * window, d_head]);
        let summed = Tensor::<4>::zeros([batch, heads, len, d_head], &device).scatter(2, rows, context, IndexingUpdateOp::Add);
        let ones = Tensor::<4>::ones([batch, heads, clusters * window, 1], &device);
        let counts = Tensor::<4>::zeros([batch, heads, len, 1], &device).scatter(
            2,
            taken.unsqueeze_dim::<4>(3),
            ones,
            IndexingUpdateOp::Add,
        );
        summed.div(counts.clamp_min(1.0))
    }

    /// One step of online k-means: each centroid's moving average toward the mean of the
    /// real unit vectors nearest to it, brought back to unit length; kept until the step
    /// ends ([`RoutingAttention::apply_moved_centroids`]).
    fn move_centroids(&self, unit: Tensor<4>, similarity: Tensor<4>, padded: Tensor<4, Bool>) {
        let [batch, heads, len, clusters] = similarity.dims();
        let d_head = unit.dims()[3];
        let shape = [batch, heads, len, clusters];
        let nearest = similarity.argmax(3).expand(shape); // [batch, heads, len, k]
        let ids = Tensor::<1, Int>::arange(0..clusters as i64, &unit.device()).reshape([1, 1, 1, clusters]).expand(shape);
        let assigned = nearest.equal(ids).float().mask_fill(padded, 0.0); // one-hot of the nearest, real tokens
        let sums = assigned.clone().swap_dims(2, 3).matmul(unit).sum_dim(0).reshape([heads, clusters, d_head]);
        let counts = assigned.sum_dim(2).sum_dim(0).reshape([heads, clusters, 1]);
        let means = sums.div(counts.clone().clamp_min(1.0));
        let current = self.centroids.clone().detach();
        let averaged = current.clone().mul_scalar(self.ema_decay) + means.mul_scalar(1.0 - self.ema_decay);
        let moved = unit_length(current.mask_where(counts.greater_elem(0.0).expand([heads, clusters, d_head]), averaged));
        *self.moved.lock().expect("the centroids' lock") = Some(moved);
    }

    /// After a training step: the centroids its forward moved. Returns whether they moved.
    pub fn apply_moved_centroids(&mut self) -> bool {
        let moved = self.moved.lock().expect("the centroids' lock").take();
        match moved {
            Some(centroids) => {
                self.centroids = centroids;
                true
            }
            None => false,
        }
    }
}

impl AttentionLayer for RoutingAttention {
    fn attend(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.forward(x, padding)
    }

    fn on_training_step(&mut self, _step: usize) -> bool {
        self.apply_moved_centroids()
    }
}

/// `x / |x|` along the last dimension (zero vectors stay zero).
fn unit_length<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let norm = x.clone().powi_scalar(2).sum_dim(D - 1).sqrt().clamp_min(1e-6);
    x.div(norm)
}

/// Work of one forward ([`super::flops`]): the projections; the local heads' share of
/// queries over three blocks of `w`; the routing heads' share of the `k w` taken queries
/// over the `w` of their cluster; and every token against the `k` centroids of each
/// routing head.
pub fn forward_flops(shape: &LayerShape, clusters: usize) -> f64 {
    let heads = shape.heads.max(1);
    let local = (heads / 2) as f64 / heads as f64;
    let clusters = clusters.max(1);
    let window = shape.positions.div_ceil(clusters).max(1);
    let filled = (block_count(shape.positions, window) * window) as f64;
    let taken = (clusters * window) as f64;
    let routing_heads = (heads - heads / 2) as f64;
    shape.projections(shape.n())
        + local * shape.attend(filled, 3.0 * window as f64)
        + (1.0 - local) * shape.attend(taken, window as f64)
        + shape.products(routing_heads, shape.n(), shape.d_head(), clusters as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{
        Rows, assert_close, assert_equals_full_attention, assert_finite_gradients, assert_padding_content_is_invisible, attend,
        dot, padding_after, values,
    };
    use burn::module::Param;
    use burn::tensor::{Distribution, TensorData};

    /// One cluster of every token, in both heads: full attention with the keys projected
    /// as the queries (the routing head shares them; here the local head's key projection
    /// is made the same).
    #[test]
    fn one_cluster_with_shared_keys_is_full_attention() {
        let device = Device::flex();
        device.seed(141);
        let mut attention = RoutingAttentionConfig::new(8, 2, 6).with_clusters(Some(1)).init(&device);
        attention.projections.key.weight = Param::from_tensor(attention.projections.query.weight.val());
        let forward = |x, padding| attention.forward(x, padding);
        assert_equals_full_attention(forward, &attention.projections, 8, &device, "one cluster vs full attention");
    }

    /// The routing head in loops: each centroid takes its `w` most similar real tokens
    /// (by cosine, from the weights here), they attend among themselves with shared keys,
    /// and each token averages over the clusters that took it.
    #[test]
    fn routing_heads_attend_within_their_clusters_as_the_loops_say() {
        let device = Device::flex();
        device.seed(142);
        let (batch, len, d_model, heads, k) = (2, 9, 8, 2, 3);
        let real = [9, 6];
        let attention = RoutingAttentionConfig::new(d_model, heads, len).with_clusters(Some(k)).init(&device);
        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        let padding = padding_after(&real, len, &device);
        let got = values(attention.forward(x.clone(), padding.clone()));

        let (q, kk, v) = attention.projections.project(x);
        let (q, kk, v) = (Rows::of(q), Rows::of(kk), Rows::of(v));
        let d = q.d();
        let centroids = values(attention.centroids.clone());
        let w = len.div_ceil(k);
        let scale = 1.0 / (d as f32).sqrt();
        let context = Rows::build([batch, heads, len, d], |b, h, i| {
            if h == 0 {
                // The local head: blocks of w, each with its neighbours.
                let block = i / w;
                let keys: Vec<usize> = (block.saturating_sub(1) * w..((block + 2) * w).min(len)).collect();
                let key_rows: Vec<&[f32]> = keys.iter().map(|&j| kk.row(b, h, j)).collect();
                let vals: Vec<&[f32]> = keys.iter().map(|&j| v.row(b, h, j)).collect();
                let masked: Vec<bool> = keys.iter().map(|&j| j >= real[b]).collect();
                return attend(q.row(b, h, i), &key_rows, &vals, scale, &masked, MASKED_SCORE);
            }
            let norm = |row: &[f32]| row.iter().map(|t| t * t).sum::<f32>().sqrt().max(1e-6);
            let mut sum = vec![0.0f32; d];
            let mut taken_by = 0;
            for c in 0..k {
                let centroid = &centroids[c * d..(c + 1) * d];
                let mut order: Vec<usize> = (0..len).collect();
                let similarity = |j: usize| match j < real[b] {
                    true => dot(q.row(b, h, j), centroid) / norm(q.row(b, h, j)),
                    false => MASKED_SCORE,
                };
                order.sort_by(|&a, &z| similarity(z).total_cmp(&similarity(a)));
                let cluster = &order[..w];
                if !cluster.contains(&i) {
                    continue;
                }
                taken_by += 1;
                let key_rows: Vec<&[f32]> = cluster.iter().map(|&j| q.row(b, h, j)).collect();
                let vals: Vec<&[f32]> = cluster.iter().map(|&j| v.row(b, h, j)).collect();
                let masked: Vec<bool> = cluster.iter().map(|&j| j >= real[b]).collect();
                let out = attend(q.row(b, h, i), &key_rows, &vals, scale, &masked, MASKED_SCORE);
                sum.iter_mut().zip(out).for_each(|(s, o)| *s += o);
            }
            sum.into_iter().map(|s| s / taken_by.max(1) as f32).collect()
        });
        let expected = values(attention.projections.combine(context.tensor(&device)));
        // Real tokens only: padded ones may be taken by a cluster that ran out of real ones.
        for (b, &r) in real.iter().enumerate() {
            let row = |t: &[f32]| t[b * len * d_model..(b * len + r) * d_model].to_vec();
            assert_close(&row(&got), &row(&expected), 1e-4, "routing vs its loops");
        }
    }

    #[test]
    fn what_padding_holds_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(143);
        let attention = RoutingAttentionConfig::new(8, 2, 10).with_clusters(Some(3)).init(&device);
        assert_padding_content_is_invisible(|x, padding| attention.forward(x, padding), 8, &[3, 7], 10, &device);
    }

    /// Two well separated groups of vectors and two centroids between them: one training
    /// forward and its step move each centroid toward the mean of its group.
    #[test]
    fn centroids_move_toward_the_vectors_assigned_to_them() {
        let device = Device::flex().autodiff();
        device.seed(144);
        let (d_model, len) = (4, 8);
        let mut attention = RoutingAttentionConfig::new(d_model, 1, len).with_clusters(Some(2)).with_ema_decay(0.5).init(&device);
        // One routing head; the query projection is the identity, so the shared vectors
        // are the inputs.
        attention.projections.query.weight = Param::from_tensor(Tensor::eye(d_model, &device));
        let start = [[0.8f32, 0.6, 0.0, 0.0], [0.0, 0.0, 0.6, 0.8]];
        attention.centroids = Tensor::from_data(TensorData::new(start.concat(), [1, 2, d_model]), &device);
        // Group A along the first axis, group B along the fourth.
        let rows: Vec<f32> = (0..len)
            .flat_map(|i| if i % 2 == 0 { [1.0, 0.05 * i as f32, 0.0, 0.0] } else { [0.0, 0.0, 0.05 * i as f32, 1.0] })
            .collect();
        let x = Tensor::<3>::from_data(TensorData::new(rows, [1, len, d_model]), &device);
        let _ = attention.forward(x, padding_after(&[len], len, &device));
        assert!(attention.apply_moved_centroids(), "a training forward moves the centroids");
        let moved = values(attention.centroids.clone());
        let toward = [[1.0f32, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
        for c in 0..2 {
            let cosine = |centroid: &[f32]| dot(centroid, &toward[c]);
            assert!(
                cosine(&moved[c * 4..c * 4 + 4]) > cosine(&start[c]),
                "centroid {c}: {:?} from {:?}",
                &moved[c * 4..c * 4 + 4],
                start[c]
            );
            let length = dot(&moved[c * 4..c * 4 + 4], &moved[c * 4..c * 4 + 4]).sqrt();
            assert!((length - 1.0).abs() < 1e-5, "unit length, not {length}");
        }
        assert!(!attention.apply_moved_centroids(), "nothing more to apply");
    }

    #[test]
    fn routing_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(145);
        let attention = RoutingAttentionConfig::new(8, 2, 9).with_clusters(Some(3)).init(&device);
        let x = Tensor::<3>::random([2, 9, 8], Distribution::Normal(0.0, 1.0), &device);
        let grads = attention.forward(x, padding_after(&[9, 5], 9, &device)).sum().backward();
        assert_eq!(assert_finite_gradients(&attention, &grads), 4);
    }
}
