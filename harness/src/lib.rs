//! The `lra` harness, in layers from the top down; each layer uses only the layers below it
//! (and the crates `lra_tasks`, `lra_models`, `lra_datasets`), and no file imports another
//! that imports it back (a test walks the sources to keep it so):
//!
//! - [`cli`]: the command line: clap's types, and one handler per subcommand that turns
//!   arguments into plain specifications for the layers below;
//! - [`orchestrate`]: many runs or measurements, each in a child process: the sweep, its
//!   Slurm form, the benchmark's grid of cells;
//! - [`execute`]: one run or one measurement in this process, on a device: training, a
//!   benchmark cell, memory measurement, data export;
//! - [`report`]: the comparison report, from the records alone;
//! - [`records`]: what the results folder holds and how it is written: the run
//!   configuration, the run and benchmark records, the environment, claims.

pub mod cli;
pub mod execute;
pub mod orchestrate;
pub mod records;
pub mod report;
