//! The `lra` harness: command line, devices, training loop, measuring, run records.

pub mod bench;
pub mod chance;
pub mod child;
pub mod claim;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod device;
pub mod environment;
pub mod export;
pub mod list;
pub mod measure;
pub mod peak;
pub mod record;
pub mod report;
pub mod run;
pub mod slurm;
pub mod sweep;
pub mod train;
