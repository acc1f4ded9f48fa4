//! `lra report`: the comparison report of a results folder.

use std::process::ExitCode;

use crate::cli::args::ReportArgs;

pub fn report(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let written = crate::report::write(&args.results, &args.out)?;
    if written.files.is_empty() {
        eprintln!(
            "report: {} holds no run or benchmark record (runs/*/result.json, bench/*.json): nothing written",
            args.results.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "report written to {} ({} runs, {} failed, {} files)",
        args.out.display(),
        written.runs,
        written.failed_runs,
        written.files.len()
    );
    Ok(ExitCode::SUCCESS)
}
