//! The padding token and the padding of sequences: the task configuration pads with it and
//! the harness's batches and data export pad through [`padded`]; kept out of `lib.rs` so
//! that no module of the crate imports the crate root.

/// The token of padding: sequences are padded with it, and the encoders mask it.
pub const PAD_TOKEN: u32 = 0;

/// `sequence` as the model sees it: cut to `max_length` tokens, or padded to it with
/// [`PAD_TOKEN`]. Training batches and the data export both go through this, so what
/// another framework reads is what the model was given.
pub fn padded(sequence: &[u32], max_length: usize) -> impl Iterator<Item = u32> + '_ {
    let kept = &sequence[..sequence.len().min(max_length)];
    kept.iter().copied().chain(std::iter::repeat_n(PAD_TOKEN, max_length - kept.len()))
}
