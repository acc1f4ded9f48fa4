//! Images as examples, and LRA's 80/10/10 split of them: shared by the generator and the
//! release reader, so kept out of `pathfinder.rs`, which its children must not import.

use crate::{Example, Splits};

/// An image as a model input: one token per pixel, its gray value (vocabulary 256).
pub fn to_example(pixels: &[u8], label: u8) -> Example {
    Example { tokens: pixels.iter().map(|&p| p as u32).collect(), second: None, label: label as u32 }
}

pub fn to_examples(images: &[(Vec<u8>, u8)]) -> Vec<Example> {
    images.iter().map(|(pixels, label)| to_example(pixels, *label)).collect()
}

/// The sizes of LRA's 80/10/10 split of `n` Pathfinder images, `[train, validation,
/// test]`: 80% and 10% rounded down, the test split the rest.
pub fn split_counts(n: usize) -> [usize; 3] {
    let train = n * 8 / 10;
    let validation = n / 10;
    [train, validation, n - train - validation]
}

/// The LRA split of a Pathfinder dataset ([`split_counts`]): the first 80% train, the next
/// 10% validation, the rest test, in the order given.
pub fn split_80_10_10(mut examples: Vec<Example>) -> Splits {
    let [train_count, validation_count, _] = split_counts(examples.len());
    let test = examples.split_off(train_count + validation_count);
    let validation = examples.split_off(train_count);
    Splits { train: examples, validation, test }
}
