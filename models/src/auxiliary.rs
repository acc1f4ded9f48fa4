//! What a training forward computes besides the logits: the auxiliary losses of the
//! models that train a part of themselves on a loss of their own (Switch's load balance,
//! the Compressive Transformer's attention reconstruction), and what Switch's routers did.

use burn::prelude::*;

/// Collected layer by layer during a forward ([`crate::Classifier::forward_with_auxiliary`]).
#[derive(Debug, Default)]
pub struct Auxiliary {
    /// Each layer's auxiliary loss, already weighted, `[1]` each: their sum is added to the
    /// task's loss.
    pub losses: Vec<Tensor<1>>,
    /// Per Switch layer, the fraction of the real tokens its router sent to each expert.
    pub expert_loads: Vec<Vec<f64>>,
    /// Per Switch layer, the fraction of the real tokens over their expert's capacity
    /// (they pass through the residual connection only).
    pub dropped: Vec<f64>,
}

impl Auxiliary {
    /// The sum of the auxiliary losses, `[1]`; `None` when no layer has one.
    pub fn loss(&self) -> Option<Tensor<1>> {
        self.losses.iter().cloned().reduce(|sum, loss| sum + loss)
    }
}
