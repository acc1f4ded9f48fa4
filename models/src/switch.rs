//! Switch Transformer: a feed-forward layer of experts, one chosen per token.
//!
//! Paper: Fedus, Zoph, Shazeer, "Switch Transformers: Scaling to Trillion Parameter Models
//! with Simple and Efficient Sparsity", JMLR 2022 (arXiv 2021).
//! Family: sparse experts (conditional computation).
//! Cost: attention is full, O(n^2); the feed-forward layer costs one expert's work per
//! token, O(n d d_ff) however many experts, with E times the parameters.
//!
//! Each block's feed-forward layer becomes `E` experts, each the dense layer of the other
//! models (`Dense -> GELU -> Dense`). A router `W_r: [d_model, E]` gives every token the
//! probabilities `p = softmax(x W_r)`; the token goes to its most probable expert alone
//! (top-1, Section 2.1) and that expert's output is scaled by its probability, through
//! which the router learns. Each expert takes at most `capacity = ceil(capacity_factor *
//! tokens / E)` tokens of the batch (Section 2.2), first come first served in the batch's
//! order (sequence by sequence, position by position); the tokens beyond it are dropped:
//! the layer gives them zero and they pass through the residual connection. The
//! load-balancing loss `alpha * E * sum_i f_i P_i` (eq. 4-6), with `f_i` the fraction of
//! tokens routed to expert `i` and `P_i` the mean router probability of expert `i`, is
//! added to the training loss; `alpha = 0.01`, as the paper.
//!
//! Padding: padded tokens are never routed and do not count in `f`, `P` or the capacity.
//! The capacity is shared by the batch's real tokens, so which tokens are dropped can
//! depend on the other sequences of the batch (as in the paper); with a capacity that
//! holds every token (`capacity_factor >= E`), real tokens' outputs do not depend on
//! padding.

use burn::module::Initializer;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::{IndexingUpdateOp, TensorData};
use serde::{Deserialize, Serialize};

use crate::attention::flops::LayerShape;
use crate::attention::heads::dense;
use crate::attention::layer::LayerSizes;
use crate::attention::settings::{ModelCard, Settings, at_least_one};
use crate::auxiliary::Auxiliary;
use crate::feed_forward::DenseFeedForward;

/// The registry's one-line summary of the cost above (`lra list models`, the report).
pub const COST: &str = "O(n^2) time, O(n^2) memory (full attention; one expert's feed-forward work per token)";

#[derive(Config, Debug)]
pub struct SwitchConfig {
    pub d_model: usize,
    pub d_ff: usize,
    /// `E`, the experts of each feed-forward layer.
    #[config(default = 4)]
    pub experts: usize,
    /// The share of an even split each expert can take (the paper trains with 1.0-1.25).
    #[config(default = 1.25)]
    pub capacity_factor: f64,
    /// `alpha`, the weight of the load-balancing loss.
    #[config(default = 0.01)]
    pub load_balance_weight: f64,
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl SwitchConfig {
    pub fn init(&self, device: &Device) -> SwitchFeedForward {
        SwitchFeedForward {
            // A small router, as the paper's scaled-down initialisation (Section 2.4).
            router: dense(self.d_model, self.experts, Initializer::Normal { mean: 0.0, std: 0.02 }, device),
            experts: (0..self.experts).map(|_| DenseFeedForward::new(self.d_model, self.d_ff, self.dropout, device)).collect(),
            capacity_factor: self.capacity_factor,
            load_balance_weight: self.load_balance_weight,
        }
    }
}

/// The Switch Transformer's own settings in a run's configuration
/// (`"attention": {"switch": {"experts": 4, ...}}`): the experts of each feed-forward
/// layer; its blocks attend in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchSettings {
    /// `E`, the experts of each feed-forward layer.
    pub experts: usize,
    /// The share of an even split of the batch's tokens each expert can take.
    pub capacity_factor: f64,
    /// `alpha`, the weight of the load-balancing loss.
    pub load_balance_weight: f64,
}

impl SwitchSettings {
    /// The experts' layer these settings describe, for a block of width `d_model` whose
    /// experts are dense layers `d_model -> d_ff -> d_model` with `dropout` inside.
    pub fn config(&self, d_model: usize, d_ff: usize, dropout: f64) -> SwitchConfig {
        SwitchConfig::new(d_model, d_ff)
            .with_experts(self.experts)
            .with_capacity_factor(self.capacity_factor)
            .with_load_balance_weight(self.load_balance_weight)
            .with_dropout(dropout)
    }
}

impl Settings for SwitchSettings {
    type Layer = crate::attention::full_layer::FullAttention;
    const MODEL: ModelCard = ModelCard {
        name: "switch",
        title: "Switch Transformer, top-1 experts (Fedus et al. 2021)",
        family: "sparse experts",
        cost: COST,
    };
    const CHANGE_OUTSIDE_ATTENTION: Option<&'static str> = Some("the feed-forward layer (experts)");

    fn defaults(_max_length: usize) -> SwitchSettings {
        // The sizes do not enter any default; these stand in for them.
        let c = SwitchConfig::new(1, 1);
        SwitchSettings { experts: c.experts, capacity_factor: c.capacity_factor, load_balance_weight: c.load_balance_weight }
    }

    fn check(&self, _positions: usize) -> Result<(), String> {
        at_least_one("experts", self.experts)?;
        let SwitchSettings { capacity_factor, load_balance_weight, .. } = *self;
        if !(capacity_factor > 0.0 && capacity_factor.is_finite()) {
            return Err(format!(
                "capacity_factor must be positive, not {capacity_factor}: with no capacity every token is dropped"
            ));
        }
        match load_balance_weight >= 0.0 && load_balance_weight.is_finite() {
            true => Ok(()),
            false => Err(format!("load_balance_weight must be zero or more, not {load_balance_weight}")),
        }
    }

    // Its blocks attend in full; its experts are the block's feed-forward layer, one
    // expert's work per token (`ClassifierConfig::training_step_flops`).
    fn forward_flops(&self, shape: &LayerShape) -> f64 {
        crate::attention::full::forward_flops(shape)
    }

    // The experts replace the block's feed-forward layer; each block attends in full.
    fn init(&self, layer: &LayerSizes, device: &Device) -> crate::attention::full_layer::FullAttention {
        crate::attention::full::FullSettings.init(layer, device)
    }
}

#[derive(Module, Debug)]
pub struct SwitchFeedForward {
    /// `W_r: [d_model, E]`.
    pub router: Linear,
    pub experts: Vec<DenseFeedForward>,
    pub capacity_factor: f64,
    pub load_balance_weight: f64,
}

impl SwitchFeedForward {
    /// `x: [batch, len, d_model]`, `padding: [batch, len]` -> `[batch, len, d_model]`; the
    /// load-balancing loss and the experts' loads go to `auxiliary`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>, auxiliary: &mut Auxiliary) -> Tensor<3> {
        let [batch, len, d_model] = x.dims();
        let device = x.device();
        let experts = self.experts.len();
        let tokens = x.reshape([batch * len, d_model]);
        let probabilities = softmax(self.router.forward(tokens.clone()), 1); // [tokens, E]
        let (gate, choice) = probabilities.clone().max_dim_with_indices(1); // [tokens, 1] each
        let padding_column = padding.reshape([batch * len, 1]);
        let real_column = padding_column.clone().bool_not().float(); // [tokens, 1], 1 at real tokens
        // One read from the device: each token's expert, -1 at padding (never routed).
        let choice: Vec<i64> = choice.mask_fill(padding_column, -1i64).into_data().iter::<i64>().collect();

        let real_tokens = choice.iter().filter(|&&expert| expert >= 0).count();
        let capacity = (self.capacity_factor * real_tokens as f64 / experts as f64).ceil() as usize;
        let mut routed = vec![Vec::new(); experts];
        let mut chosen = vec![0usize; experts];
        for (token, &expert) in choice.iter().enumerate().filter(|(_, expert)| **expert >= 0) {
            let expert = expert as usize;
            chosen[expert] += 1;
            if routed[expert].len() < capacity {
                routed[expert].push(token as i64);
            }
        }

        let mut output = Tensor::<2>::zeros([batch * len, d_model], &device);
        for (expert, tokens_of) in self.experts.iter().zip(routed.iter()) {
            if tokens_of.is_empty() {
                continue;
            }
            let index = Tensor::<1, Int>::from_data(TensorData::new(tokens_of.clone(), [tokens_of.len()]), &device);
            let expert_output = expert.forward(tokens.clone().select(0, index.clone())) * gate.clone().select(0, index.clone());
            output = output.select_assign(0, index, expert_output, IndexingUpdateOp::Add);
        }

        // The load-balancing loss over the real tokens (eq. 4-6): f_i counts the router's
        // choices (before the capacity), P_i its probabilities.
        let share = |count: usize| count as f64 / real_tokens.max(1) as f64;
        let loads: Vec<f64> = chosen.iter().map(|&c| share(c)).collect();
        let mean_probability = (probabilities * real_column).sum_dim(0).reshape([experts]).div_scalar(real_tokens.max(1) as f64);
        let fractions =
            Tensor::<1>::from_data(TensorData::new(loads.iter().map(|&f| f as f32).collect::<Vec<f32>>(), [experts]), &device);
        let balance = (fractions * mean_probability).sum().mul_scalar(self.load_balance_weight * experts as f64);
        auxiliary.losses.push(balance);
        auxiliary.expert_loads.push(loads);
        let kept: usize = routed.iter().map(Vec::len).sum();
        auxiliary.dropped.push(share(real_tokens - kept));
        output.reshape([batch, len, d_model])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attention::checks::{assert_close, assert_finite_gradients_but_idle, padding_after, values};
    use burn::module::Param;
    use burn::tensor::Distribution;

    #[test]
    fn one_expert_is_the_dense_feed_forward_layer() {
        let device = Device::flex();
        device.seed(121);
        let switch = SwitchConfig::new(8, 16).with_experts(1).with_dropout(0.0).init(&device);
        let x = Tensor::<3>::random([2, 5, 8], Distribution::Normal(0.0, 1.0), &device);
        let padding = padding_after(&[5, 3], 5, &device);
        let mut auxiliary = Auxiliary::default();
        let got = values(switch.forward(x.clone(), padding, &mut auxiliary));
        // Every real token goes to the one expert with probability 1; padding gets zero.
        let dense = values(switch.experts[0].forward(x));
        let expected: Vec<f32> =
            dense.iter().enumerate().map(|(i, &v)| if (i / 8) % 5 >= [5, 3][i / 40] { 0.0 } else { v }).collect();
        assert_close(&got, &expected, 1e-6, "Switch with one expert vs the dense layer");
        assert_eq!(auxiliary.expert_loads, [vec![1.0]]);
        assert_eq!(auxiliary.dropped, [0.0]);
        // alpha * E * f P = 0.01 * 1 * 1 * 1.
        assert_close(&values(auxiliary.loss().unwrap()), &[0.01], 1e-6, "the balance loss of one expert");
    }

    /// Routing by hand: a router that sends each token to the expert its first two
    /// features favour, a capacity of 3 per expert (first come first served), the gate
    /// scaling each output, and the loss from the counts and probabilities.
    #[test]
    fn tokens_go_to_their_most_probable_expert_within_its_capacity() {
        let device = Device::flex();
        device.seed(122);
        let mut switch = SwitchConfig::new(2, 4).with_experts(2).with_capacity_factor(1.0).with_dropout(0.0).init(&device);
        switch.router.weight =
            Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [2, 2]), &device));
        // Five real tokens: four prefer expert 0, one expert 1; capacity ceil(5 / 2) = 3.
        let rows = [[2.0f32, 0.0], [1.0, 0.5], [0.0, 3.0], [3.0, 1.0], [1.5, 0.0], [9.0, 9.0]];
        let x = Tensor::<3>::from_data(TensorData::new(rows.concat(), [1, 6, 2]), &device);
        let mut auxiliary = Auxiliary::default();
        let got = values(switch.forward(x.clone(), padding_after(&[5], 6, &device), &mut auxiliary));
        let softmax2 = |a: f32, b: f32| (a.exp() / (a.exp() + b.exp()), b.exp() / (a.exp() + b.exp()));
        let mut expected = Vec::new();
        let mut taken = [0usize; 2];
        for (t, row) in rows.iter().enumerate() {
            let (p0, p1) = softmax2(row[0], row[1]);
            let (expert, gate) = if p0 >= p1 { (0, p0) } else { (1, p1) };
            let token = Tensor::<2>::from_data(TensorData::new(row.to_vec(), [1, 2]), &device);
            let kept = t < 5 && taken[expert] < 3;
            if kept {
                taken[expert] += 1;
            }
            let out = values(switch.experts[expert].forward(token));
            expected.extend(out.iter().map(|v| if kept { v * gate } else { 0.0 }));
        }
        assert_close(&got, &expected, 1e-5, "routed outputs");
        assert_eq!(auxiliary.expert_loads, [vec![0.8, 0.2]]);
        assert_eq!(auxiliary.dropped, [0.2]); // the fourth token for expert 0
        let mean_p0 = rows[..5].iter().map(|r| softmax2(r[0], r[1]).0).sum::<f32>() / 5.0;
        let loss = 0.01 * 2.0 * (0.8 * mean_p0 + 0.2 * (1.0 - mean_p0));
        assert_close(&values(auxiliary.loss().unwrap()), &[loss], 1e-6, "the balance loss");
    }

    /// With room for every token (capacity factor E), nothing is dropped and a token's
    /// output is its expert's alone: padding, and the other sequences, change nothing.
    #[test]
    fn with_room_for_every_token_padding_does_not_change_real_tokens() {
        let device = Device::flex();
        device.seed(124);
        let switch = SwitchConfig::new(8, 16).with_experts(3).with_capacity_factor(3.0).with_dropout(0.0).init(&device);
        let forward = |x, padding| switch.forward(x, padding, &mut Auxiliary::default());
        crate::attention::checks::assert_padding_is_invisible(forward, 8, &[3, 7], 10, &device);
    }

    #[test]
    fn switch_gradients_are_finite_for_every_parameter() {
        let device = Device::flex().autodiff();
        device.seed(123);
        let switch = SwitchConfig::new(8, 16).with_experts(2).with_capacity_factor(2.0).init(&device);
        let x = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let mut auxiliary = Auxiliary::default();
        let out = switch.forward(x, padding_after(&[7, 4], 7, &device), &mut auxiliary);
        let grads = (out.sum() + auxiliary.loss().unwrap()).backward();
        // The router's kernel and bias, and each busy expert's two kernels and biases (an
        // expert no token chose has no gradient in this step).
        let idle: Vec<String> = auxiliary.expert_loads[0]
            .iter()
            .enumerate()
            .filter(|(_, load)| **load == 0.0)
            .map(|(expert, _)| format!("experts.{expert}."))
            .collect();
        assert_eq!(assert_finite_gradients_but_idle(&switch, &grads, &idle), 2 + 4 * (2 - idle.len()));
    }
}
