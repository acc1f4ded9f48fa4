//! `lra bench` and `lra bench-cell`: the benchmark's models and settings from the command
//! line, handed to [`crate::orchestrate::bench`] (and, in each child,
//! [`crate::execute::bench_cell`]).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use crate::cli::args::{BenchArgs, BenchCellArgs};
use crate::execute::bench_cell::measure_cell;
use crate::orchestrate::bench::{self, BenchSpec};
use crate::orchestrate::sweep::current_exe;
use crate::records::bench_record::{CellSpec, Scope, bench_dir, describe, scope_refusal};

pub fn model_names(requested: &Option<Vec<String>>) -> anyhow::Result<Vec<String>> {
    match requested {
        Some(names) => {
            for name in names {
                lra_models::check_model_name(name).map_err(anyhow::Error::msg)?;
            }
            Ok(names.clone())
        }
        None => Ok(lra_models::MODELS.iter().map(|m| m.name.to_string()).collect()),
    }
}

/// What `lra bench` with `args` measures, of `models`.
pub fn bench_spec(args: &BenchArgs, models: Vec<String>) -> BenchSpec {
    BenchSpec {
        models,
        lengths: args.lengths.clone(),
        batch: args.batch,
        device: args.device,
        scope: args.scope,
        variant: args.variant,
        warmup_steps: args.warmup_steps,
        timed_steps: args.timed_steps,
        cell_timeout: Duration::from_secs_f64(args.cell_timeout),
        budget: args.budget.map(Duration::from_secs_f64),
    }
}

/// The models `lra bench` measures at `scope`: those named, refused where the scope
/// cannot time them; all otherwise, less those it cannot (said on stderr).
fn bench_models(requested: &Option<Vec<String>>, scope: Scope) -> anyhow::Result<Vec<String>> {
    let mut models = Vec::new();
    for name in model_names(requested)? {
        match scope_refusal(&name, scope)? {
            Some(refusal) if requested.is_some() => bail!("--models {name}: {refusal}"),
            Some(refusal) => eprintln!("bench: {name} left out: {refusal}"),
            None => models.push(name),
        }
    }
    Ok(models)
}

/// Ratios are to the Transformer: measure it first.
pub fn transformer_first(models: &mut Vec<String>) {
    if let Some(i) = models.iter().position(|m| m == lra_models::BASELINE) {
        let t = models.remove(i);
        models.insert(0, t);
    }
}

pub fn bench(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if args.lengths.is_empty() || args.lengths.contains(&0) || args.batch == 0 || args.timed_steps == 0 {
        bail!("--lengths, --batch and --timed-steps must be positive");
    }
    crate::execute::device::check(args.device).map_err(anyhow::Error::msg)?;
    let mut models = bench_models(&args.models, args.scope)?;
    transformer_first(&mut models);
    let spec = bench_spec(args, models);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let record = bench::run(&current_exe()?, &spec, &args.results, command, None)?;
    println!("benchmark {} ({} measurements):", record.bench_id, record.measurements.len());
    for m in &record.measurements {
        println!("{}", describe(m, record.software_rendered()));
    }
    println!("recorded in {}", bench_dir(&args.results).join(format!("{}.json", record.bench_id)).display());
    Ok(ExitCode::SUCCESS)
}

pub fn bench_cell(args: &BenchCellArgs) -> anyhow::Result<ExitCode> {
    let spec = CellSpec {
        model: args.model.clone(),
        length: args.length,
        batch: args.batch,
        device: args.device,
        scope: args.scope,
        variant: args.variant,
        warmup_steps: args.warmup_steps,
        timed_steps: args.timed_steps,
    };
    let measurement = measure_cell(&spec)?;
    println!("{}", serde_json::to_string(&measurement)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_benchmark_of_every_model_leaves_out_those_whose_layers_are_the_transformers_or_absent() {
        let all: Vec<&str> = lra_models::MODELS.iter().map(|m| m.name).collect();
        let step = bench_models(&None, Scope::Step).unwrap();
        assert_eq!(step, all);
        let layer = bench_models(&None, Scope::Layer).unwrap();
        let left_out: Vec<&str> = all.iter().copied().filter(|m| !layer.iter().any(|l| l == m)).collect();
        assert_eq!(left_out, ["funnel", "perceiver", "switch", lra_models::CONTROL]);
        let named = bench_models(&Some(vec!["local".into(), "funnel".into()]), Scope::Layer).unwrap_err();
        assert!(named.to_string().starts_with("--models funnel: funnel changes the stack"), "{named}");
        let control = bench_models(&Some(vec![lra_models::CONTROL.into()]), Scope::Layer).unwrap_err();
        assert!(control.to_string().starts_with("--models bag: bag has no attention layer"), "{control}");
    }
}
