use std::process::ExitCode;

use clap::Parser;

use lra_harness::cli::args::Cli;
use lra_harness::execute::memory::CountingAllocator;

// Counting every heap allocation gives the CPU backends' exact peak memory.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn main() -> ExitCode {
    lra_harness::execute::memory::reuse_freed_memory();
    let cli = Cli::parse();
    match lra_harness::cli::dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
