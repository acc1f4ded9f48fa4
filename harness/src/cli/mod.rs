//! The command line layer: clap's types ([`args`]) and one handler per subcommand, each
//! turning its arguments into plain specifications for the layers below. Nothing below
//! imports this layer.

pub mod args;
pub mod bench;
pub mod config;
pub mod data;
pub mod errors;
pub mod gpu_check;
pub mod list;
pub mod report;
pub mod run;
pub mod sweep;

use std::process::ExitCode;

use args::{Cli, Command};

/// Runs the subcommand `cli` names; its exit code, or the error to print.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run_command(&args),
        Command::Config(args) => config::config_command(&args).map(|()| ExitCode::SUCCESS),
        Command::Sweep(args) => sweep::sweep(&args),
        Command::Bench(args) => bench::bench(&args),
        Command::BenchCell(args) => bench::bench_cell(&args),
        Command::Report(args) => report::report(&args),
        Command::GpuCheck(args) => gpu_check::gpu_check(&args),
        Command::Data { action } => data::command(&action).map(|()| ExitCode::SUCCESS),
        Command::List { what } => list::list(what).map(|()| ExitCode::SUCCESS),
    }
}
