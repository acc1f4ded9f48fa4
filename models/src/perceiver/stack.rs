//! The latent array and running the encoder's blocks as a Perceiver, and counting their
//! positions: what the classifier's stack calls. Kept out of `perceiver.rs`, whose tests
//! build whole classifiers, and apart from the settings, which sit below the registry that
//! the encoder's blocks hold.

use burn::module::{Initializer, Param};
use burn::prelude::*;

use crate::encoder::EncoderBlock;

/// The latent array, `[m, d_model]`, drawn as the paper's code (a normal of scale 0.02).
pub fn init_latents(latents: usize, d_model: usize, device: &Device) -> Param<Tensor<2>> {
    Initializer::Normal { mean: 0.0, std: 0.02 }.init([latents, d_model], device)
}

/// Whether block `index` reads the sequence (its keys and values), rather than attending
/// among the latents: the first block alone, the paper's single cross-attend.
pub fn reads_sequence(index: usize) -> bool {
    index == 0
}

/// Runs `blocks` as a Perceiver: the first cross-attends from `latents: [m, d_model]` to
/// `x: [batch, len, d_model]` (`padding: [batch, len]`), the others are latent
/// self-attention -> the final latents `[batch, m, d_model]`.
pub fn encode(blocks: &[EncoderBlock], latents: Tensor<2>, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
    let [batch, _, d_model] = x.dims();
    let m = latents.dims()[0];
    let mut z = latents.unsqueeze::<3>().expand([batch, m, d_model]);
    let no_padding = Tensor::<2, Bool>::full([batch, m], false, &x.device());
    for (index, block) in blocks.iter().enumerate() {
        z = match reads_sequence(index) {
            true => block.forward_cross(z, x.clone(), padding.clone()),
            false => block.forward(z, no_padding.clone()),
        };
    }
    z
}

/// The query and key positions of each block's attention, for counting its work: the
/// `latents` queries over the sequence's `positions` in the block that reads it, over
/// the latents in the others.
pub fn block_positions(latents: usize, layers: usize, positions: usize) -> Vec<(usize, usize)> {
    (0..layers).map(|index| (latents, if reads_sequence(index) { positions } else { latents })).collect()
}
