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
pub const MODELS: &[ModelInfo] = &[
    ModelInfo {
        name: "transformer",
        title: "Transformer (Vaswani et al. 2017)",
        family: "full attention (baseline)",
        cost: "O(n^2) time, O(n^2) memory",
        mechanism: Mechanism::Full,
    },
    ModelInfo {
        name: "linformer",
        title: "Linformer (Wang et al. 2020)",
        family: "low rank",
        cost: "O(n k) time and memory, k = 256",
        mechanism: Mechanism::Linformer,
    },
    ModelInfo {
        name: "performer",
        title: "Performer, FAVOR+ (Choromanski et al. 2021)",
        family: "kernel",
        cost: "O(n m) time and memory, m = 256",
        mechanism: Mechanism::Performer,
    },
    ModelInfo {
        name: "linear",
        title: "Linear Transformer (Katharopoulos et al. 2020)",
        family: "kernel",
        cost: "O(n) time, O(n) memory",
        mechanism: Mechanism::Linear,
    },
    ModelInfo {
        name: "nystromformer",
        title: "Nyströmformer (Xiong et al. 2021)",
        family: "low rank",
        cost: "O(n m) time and memory, m = 64",
        mechanism: Mechanism::Nystromformer,
    },
    ModelInfo {
        name: "synthesizer",
        title: "Synthesizer, factorised random (Tay et al. 2021)",
        family: "learnable weights",
        cost: "O(n^2) time, O(n^2) memory",
        mechanism: Mechanism::Synthesizer,
    },
    ModelInfo {
        name: "luna",
        title: "Luna-256 (Ma et al. 2021)",
        family: "memory",
        cost: "O(n l) time and memory, l = 256",
        mechanism: Mechanism::Luna,
    },
    ModelInfo {
        name: "fnet",
        title: "FNet (Lee-Thorp et al. 2022)",
        family: "token mixing",
        cost: "O(n^2) time and memory (matmul DFT)",
        mechanism: Mechanism::Fnet,
    },
    ModelInfo {
        name: "s4d",
        title: "S4D, diagonal state space (Gu et al. 2022)",
        family: "recurrence (state space)",
        cost: "O(n^1.5) time, O(n) memory",
        mechanism: Mechanism::S4d,
    },
];

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
