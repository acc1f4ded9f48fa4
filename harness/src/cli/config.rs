//! `lra config`: the configuration a run would resolve to, or with `--explain` each value
//! beside its source.

use crate::cli::args::ConfigArgs;
use crate::cli::run::resolve_config;
use crate::records::files::json_bytes;
use crate::records::run_config::explain;

/// `lra config`: the resolved configuration, as the run's `config.json` would hold it,
/// or with `--explain` each value beside where it comes from.
pub fn config_command(args: &ConfigArgs) -> anyhow::Result<()> {
    let config = resolve_config(&args.choice)?;
    if !args.explain {
        print!("{}", String::from_utf8(json_bytes(&config)?)?);
        return Ok(());
    }
    let explained = explain(&config)?;
    let width = explained.values.iter().map(|v| v.path.len() + v.value.len() + 3).max().unwrap_or(0);
    for value in &explained.values {
        println!("{:<width$}  {}", format!("{} = {}", value.path, value.value), value.source);
    }
    if !explained.differences.is_empty() {
        println!("\nWhere this differs from LRA's released code, beyond the values above:");
        for (path, why) in &explained.differences {
            println!("- {path}: {why}");
        }
    }
    Ok(())
}
