//! The report's plots, drawn once per backend: SVG (for reading) and PNG (for embedding).
//!
//! One file per figure ([`figure3`], [`scaling`], [`curves`]); what they all draw with is
//! in [`draw`].

mod curves;
mod draw;
mod figure3;
mod scaling;
#[cfg(test)]
mod tests;

pub use curves::curves;
pub use draw::Figure;
pub use figure3::figure3;
pub use scaling::scaling;
