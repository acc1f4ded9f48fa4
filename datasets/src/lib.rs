//! Long Range Arena data, with no knowledge of models or training.
//!
//! Everything here works on bytes, files and token ids: the seeded generators
//! (ListOps, Pathfinder), the readers and writers of the released file formats, the
//! tokenizers that turn a sample into token ids, and the `.npy` writer that exports them.
//! Errors name the file and line.

pub mod aan;
pub mod bytes;
pub mod cache;
pub mod cifar;
pub mod error;
pub mod fetch;
pub mod files;
pub mod imdb;
pub mod listops;
pub mod npy;
pub mod parallel;
pub mod pathfinder;
pub mod rng;
pub mod shapes;
pub mod staging;
pub mod standin;
pub mod text;

pub use error::DataError;

/// One labelled example of token ids, before padding: one sequence, or two for the
/// paired tasks (Retrieval).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub tokens: Vec<u32>,
    /// The second sequence of a pair; `None` for single-sequence tasks.
    pub second: Option<Vec<u32>>,
    pub label: u32,
}

/// The three splits of a prepared task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Splits {
    pub train: Vec<Example>,
    pub validation: Vec<Example>,
    pub test: Vec<Example>,
}
