use std::process::ExitCode;

use clap::Parser;

use lra_harness::cli::args::Cli;
use lra_harness::cli::errors::clip_quotes_in;
use lra_harness::execute::memory::CountingAllocator;

// Counting every heap allocation gives the CPU backends' exact peak memory.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn main() -> ExitCode {
    lra_harness::execute::memory::reuse_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap quotes a refused value whole ('...', and our parsers' `...`): cut it, as
        // our own errors are cut.
        Err(error) if error.use_stderr() => {
            eprint!("{}", clip_quotes_in(&error.render().to_string(), &['\'', '`']));
            return ExitCode::from(2);
        }
        Err(help) => help.exit(),
    };
    match lra_harness::cli::dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            // Every error quotes at most a few hundred characters of a value it refuses.
            eprintln!("error: {}", clip_quotes_in(&format!("{error:#}"), &['`', '"']));
            ExitCode::from(2)
        }
    }
}
