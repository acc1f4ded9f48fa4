//! burn modules for the Long Range Arena: the attention mechanisms (one file each in
//! [`attention`]), the encoder block and the classifier around them.
//!
//! The crate knows nothing of files, tasks or the command line: it turns token ids into
//! class logits, given a [`ClassifierConfig`].

pub mod attention;
pub mod classifier;
pub mod encoder;

pub use attention::{AttentionConfig, Mechanism};
pub use classifier::{Classifier, ClassifierConfig, Pooling, Positions};

/// A model the harness can train: a name on the command line and the attention it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    /// Name on the command line (`--model`).
    pub name: &'static str,
    /// The paper's name for the model.
    pub title: &'static str,
    /// Family in the taxonomy of "Efficient Transformers: A Survey" (Tay et al.).
    pub family: &'static str,
    /// Time and memory of one attention layer in the sequence length n.
    pub cost: &'static str,
    pub mechanism: Mechanism,
}

/// Every model, in the order the harness lists and sweeps them.
pub const MODELS: &[ModelInfo] = &[ModelInfo {
    name: "transformer",
    title: "Transformer (Vaswani et al. 2017)",
    family: "full attention (baseline)",
    cost: "O(n^2) time, O(n^2) memory",
    mechanism: Mechanism::Full,
}];

/// The model called `name`, or an error listing the valid names.
pub fn model_info(name: &str) -> Result<&'static ModelInfo, String> {
    MODELS.iter().find(|m| m.name == name).ok_or_else(|| {
        let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
        format!("unknown model `{name}`; the models are: {}", names.join(", "))
    })
}

pub fn check_model_name(name: &str) -> Result<(), String> {
    model_info(name).map(|_| ())
}
