//! The names of the two models every other is read against: the baseline and the
//! control. Kept out of `lib.rs`, which re-exports them, because their own files
//! (`attention/full.rs`, `bag/settings.rs`), below it, name them in their `MODEL` cards.

/// The name of the baseline every efficient model is compared with.
pub const BASELINE: &str = "transformer";

/// The name of the control model: the encoder without attention or positions, mean
/// pooled (a bag of token features). Its row shows what each task gives away without
/// relating positions; reports label it as a control, not as a contender.
pub const CONTROL: &str = "bag";
