//! `lra run`: one configuration from the command line (or a configuration file), run by
//! [`crate::execute::run`] into its run folder.

use std::process::ExitCode;

use anyhow::bail;

use crate::cli::args::{RunArgs, RunChoice};
use crate::execute::run::{EXIT_CLAIMED, EXIT_RUN_FAILED, Executed, Replace, execute};
use crate::records::device_name::DeviceName;
use crate::records::run_config::RunConfig;
use crate::records::run_record;

/// The configuration a `lra run` (or `lra config`) command line asks for.
pub fn resolve_config(args: &RunChoice) -> anyhow::Result<RunConfig> {
    let device = args.device;
    let mut config = match &args.config {
        Some(path) => {
            if args.task.is_some() || args.model.is_some() || args.preset.is_some() || args.variant.is_some() {
                bail!("--config gives the task, model, preset and variant; pass only --seed or --device beside it");
            }
            RunConfig::load(path)?
        }
        None => {
            let (Some(task), Some(model)) = (args.task, &args.model) else {
                bail!("`lra run` needs --task and --model (or --config FILE); see `lra list tasks` and `lra list models`");
            };
            let preset = args.preset.unwrap_or_default();
            let config = RunConfig::resolve(task, preset, model, 0, DeviceName::Flex)?.prefer_released(&args.data);
            match args.variant {
                Some(variant) => config.with_variant(variant)?,
                None => config,
            }
        }
    };
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if let Some(device) = device {
        config.device = device;
    }
    config.validate()?;
    Ok(config)
}

pub fn run_command(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = resolve_config(&args.choice)?;
    let replace = match (args.force, args.rerun_stale, args.rerun_failed) {
        (true, _, _) => Replace::Always,
        (false, true, _) => Replace::FailedOrStale,
        (false, false, true) => Replace::Failed,
        (false, false, false) => Replace::Never,
    };
    let placed_on = args.placed_on.unwrap_or(config.device);
    config.device.check_placement(placed_on).map_err(|why| anyhow::anyhow!("--placed-on {}: {why}", placed_on.exact()))?;
    let record = match execute(&config, placed_on, &args.results, &args.choice.data, replace, args.quiet)? {
        Executed::Recorded(record) => *record,
        Executed::Elsewhere(holder) => {
            eprintln!("another process is training this configuration ({holder}); nothing done");
            return Ok(ExitCode::from(EXIT_CLAIMED));
        }
    };
    let dir = run_record::run_dir(&args.results, &record.run_id);
    match &record.outcome.failure {
        None => {
            println!(
                "{} {} seed {}: test accuracy {:.4} (final weights; best validation {:.4} at step {}, whose test accuracy is {:.4}), {:.2} steps/s, peak memory {:.1} MiB",
                record.task,
                record.model,
                record.seed,
                record.outcome.test_accuracy.unwrap_or(f64::NAN),
                record.outcome.best_val_accuracy.unwrap_or(f64::NAN),
                record.outcome.best_step.unwrap_or(0),
                record.outcome.best_val_test_accuracy.unwrap_or(f64::NAN),
                record.outcome.train_steps_per_second,
                record.outcome.peak_memory_bytes as f64 / (1 << 20) as f64,
            );
            println!("recorded in {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Some(failure) => {
            eprintln!("run failed: {failure}; recorded in {}", dir.display());
            Ok(ExitCode::from(EXIT_RUN_FAILED))
        }
    }
}
