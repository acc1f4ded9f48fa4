use std::process::ExitCode;

use clap::Parser;

use lra_harness::cli::{Cli, Command};
use lra_harness::measure::CountingAllocator;

// Counting every heap allocation gives the CPU backends' exact peak memory.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn main() -> ExitCode {
    lra_harness::measure::reuse_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => lra_harness::run::run_command(&args),
        Command::Config(args) => lra_harness::config::config_command(&args).map(|()| ExitCode::SUCCESS),
        Command::Sweep(args) => lra_harness::commands::sweep(&args),
        Command::Bench(args) => lra_harness::commands::bench(&args),
        Command::BenchCell(args) => lra_harness::commands::bench_cell(&args),
        Command::Report(args) => lra_harness::commands::report(&args),
        Command::Data { action } => lra_harness::data::command(&action).map(|()| ExitCode::SUCCESS),
        Command::List { what } => lra_harness::list::list(what).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
