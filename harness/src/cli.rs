//! The command line: `lra run | list | data`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "lra",
    version,
    about = "Train and compare efficient Transformers on the Long Range Arena"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train one model on one task and write its run record.
    Run(RunArgs),
    /// List models, tasks, presets or devices.
    List {
        #[arg(value_enum)]
        what: ListWhat,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Task name (`lra list tasks`); required unless --config is given.
    #[arg(long)]
    pub task: Option<String>,
    /// Model name (`lra list models`); required unless --config is given.
    #[arg(long)]
    pub model: Option<String>,
    /// Preset: tiny, quick (default) or lra.
    #[arg(long)]
    pub preset: Option<String>,
    /// Training seed (initialisation, dropout, batch order).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Device: flex (default), ndarray or wgpu.
    #[arg(long)]
    pub device: Option<String>,
    /// A run's config.json to repeat; --seed and --device given beside it override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Results folder.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Run again even when the folder already holds a finished record of this configuration.
    #[arg(long)]
    pub force: bool,
    /// No progress bar (one line per evaluation instead).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ListWhat {
    Models,
    Tasks,
    Presets,
    Devices,
}
