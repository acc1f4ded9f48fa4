//! The `lra` harness: command line, devices, training loop, measuring, run records.

pub mod cli;
pub mod config;
pub mod device;
pub mod environment;
pub mod list;
pub mod measure;
pub mod record;
pub mod run;
pub mod train;
