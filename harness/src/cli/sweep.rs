//! `lra sweep`: the grid of runs from the command line, handed to
//! [`crate::orchestrate::sweep`] (or [`crate::orchestrate::slurm`]), then the benchmark and
//! the report.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use lra_models::Variant;
use lra_tasks::{Preset, SweepBenchmark};

use crate::cli::args::SweepArgs;
use crate::cli::bench::{model_names, transformer_first};
use crate::orchestrate::bench::{self, BenchSpec};
use crate::orchestrate::slurm;
use crate::orchestrate::sweep::{self, SweepSpec};
use crate::records::bench_record::Scope;
use crate::records::device_name::{Backend, DeviceName};

pub fn sweep(args: &SweepArgs) -> anyhow::Result<ExitCode> {
    let preset = args.preset;
    let tasks = match &args.tasks {
        Some(tasks) => tasks.clone(),
        None => sweep::default_tasks(),
    };
    let spec = SweepSpec {
        preset,
        tasks,
        models: model_names(&args.models)?,
        seeds: args.seeds,
        device: args.device.name,
        data_dir: args.data.clone(),
        variant: args.variant,
    };
    if spec.seeds == Some(0) {
        bail!("--seeds must be at least 1");
    }
    if let (true, Some(devices)) = (args.slurm, &args.devices) {
        let listed = devices.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        bail!(
            "--devices {listed} with --slurm: Slurm places each array task on its own GPU (--gres gpu:1 by default), \
             which the task sees as device 0; leave --devices out, and --max-parallel sets how many run at once"
        );
    }
    let numbered_past_first = matches!(spec.device, DeviceName::Cuda(1..) | DeviceName::Wgpu(Some(1..)));
    if args.slurm && args.gres.is_none() && numbered_past_first {
        let backend = spec.device.backend().name();
        bail!(
            "--device {} with --slurm: each array task gets one GPU (--gres gpu:1), which it sees as {backend}:0; \
             give --device {backend}, or --gres for more GPUs per task",
            spec.device.exact()
        );
    }
    // Locally the devices must be usable here (checked once the flags are); on Slurm they
    // are the nodes', so only the build is checked (the binary is the one the nodes run).
    let (placements, jobs) = match args.slurm {
        true => {
            crate::execute::device::check_built(spec.device).map_err(anyhow::Error::msg)?;
            (Vec::new(), 1)
        }
        false => {
            let placements = sweep::placements(
                spec.device,
                args.device.numbered,
                args.devices.as_deref(),
                crate::execute::device::cuda_device_count,
            )
            .map_err(anyhow::Error::msg)?;
            let jobs = sweep::jobs_of(args.jobs, spec.device, &placements).map_err(anyhow::Error::msg)?;
            check_devices(spec.device, &placements)?;
            (placements, jobs)
        }
    };
    let configs = sweep::plan(&spec)?;
    sweep::remove_stale_staging(&args.results);
    if args.slurm {
        return sweep_on_slurm(args, configs);
    }
    let total = configs.len();
    let (mut pending, mut kept_failures, mut kept_stale) = (Vec::new(), 0, 0);
    for config in configs {
        let recorded = sweep::recorded(&args.results, &config);
        match recorded {
            sweep::Recorded::No => pending.push((config, recorded)),
            sweep::Recorded::Failed if args.retry_failed => pending.push((config, recorded)),
            sweep::Recorded::Failed => kept_failures += 1,
            sweep::Recorded::Stale if args.rerun_stale => pending.push((config, recorded)),
            sweep::Recorded::Stale => kept_stale += 1,
            sweep::Recorded::Ok => {}
        }
    }
    if kept_failures > 0 {
        eprintln!("sweep: kept {kept_failures} failed records (--retry-failed runs them again)");
    }
    if kept_stale > 0 {
        eprintln!(
            "sweep: kept {kept_stale} records of another commit than this binary's ({}); the report warns where a table \
             mixes commits (--rerun-stale runs them again)",
            crate::records::environment::build_commit()
        );
    }
    let exe = sweep::current_exe()?;
    let slots = sweep::slots(jobs, &placements);
    if args.print_commands {
        for (config, _) in &pending {
            sweep::hand_over(config, &args.results)?;
        }
        for line in sweep::command_lines(&exe, &pending, &args.results, &args.data, &slots) {
            println!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("sweep: {total} runs, {} already recorded, {} to run", total - pending.len(), pending.len());
    if !placements.is_empty() && !pending.is_empty() {
        let on: Vec<String> = slots.iter().flatten().map(|device| device.exact()).collect();
        match on.len() {
            1 => eprintln!("sweep: one run at a time, on {}", on[0]),
            n => eprintln!("sweep: {n} runs at a time, one on each of {}", on.join(", ")),
        }
    }

    let timeout = args.run_timeout.map(Duration::from_secs_f64);
    let ran = sweep::run_all(&exe, pending, &args.results, &args.data, slots, timeout, std::io::stderr().is_terminal())?;
    let failed = ran.records.iter().filter(|r| !r.is_ok()).count();
    eprintln!("sweep: ran {} runs, {failed} failed", ran.records.len());
    if ran.elsewhere > 0 {
        eprintln!("sweep: left {} runs to the other processes training them (run the sweep again once they end)", ran.elsewhere);
    }
    if !args.no_bench {
        let bench = sweep_bench(preset, spec.models.clone(), spec.device, spec.variant.unwrap_or(Variant::Lra));
        let command = bench.command(&args.results);
        eprintln!("sweep: benchmarking training steps at lengths {:?}, batch {}", bench.lengths, bench.batch);
        // A fixed name per (preset, device): a restarted sweep finishes the same record.
        let id = format!("sweep-{}-step-{}-b{}", preset.name(), bench.device.to_string().replace(':', ""), bench.batch);
        bench::run(&exe, &bench, &args.results, command, Some(id))?;
    }
    if !args.no_report {
        write_sweep_report(args)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks, as far as this process can before anything is written, that the sweep's
/// device (`device`) and the GPUs its runs are placed on can run here.
fn check_devices(device: DeviceName, placements: &[DeviceName]) -> anyhow::Result<()> {
    let checked = match device.backend() {
        Backend::Flex | Backend::Ndarray => vec![device],
        Backend::Cuda => placements.to_vec(),
        // wgpu is set up once per process, on one device: the first is checked here, the
        // others by their own runs (a run that cannot open its device is recorded as
        // failed, with the reason, before it writes anything else).
        Backend::Wgpu => placements.iter().take(1).copied().collect(),
    };
    for device in checked {
        crate::execute::device::check(device).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

/// The report at the end of a sweep, from everything in its results folder.
fn write_sweep_report(args: &SweepArgs) -> anyhow::Result<()> {
    let written = crate::report::write(&args.results, &args.out)?;
    if written.files.is_empty() {
        eprintln!("report: nothing recorded in {} yet: no report written", args.results.display());
        return Ok(());
    }
    eprintln!("report: {} ({} runs, {} failed)", args.out.join("report.html").display(), written.runs, written.failed_runs);
    Ok(())
}

/// `lra sweep --slurm`: submit the missing runs as one job array (or print its script).
fn sweep_on_slurm(args: &SweepArgs, configs: Vec<crate::records::run_config::RunConfig>) -> anyhow::Result<ExitCode> {
    if args.max_parallel == Some(0) || args.cpus_per_task == Some(0) {
        bail!("--max-parallel and --cpus-per-task must be at least 1");
    }
    let total = configs.len();
    let tools = slurm::Tools::default();
    // Where Slurm answers: tasks it killed before they wrote a record get one, with the
    // cause, and tasks it still lists are left to it.
    let slurm_answers = !args.dry_run && slurm::check_available().is_ok();
    if slurm_answers {
        let lost = slurm::record_lost(&args.results, &tools)?;
        if !lost.is_empty() {
            eprintln!("sweep: {} runs ended in Slurm without a record (killed): recorded as failed with the cause", lost.len());
        }
    }
    let in_flight = if slurm_answers { slurm::in_flight(&args.results, &tools) } else { Default::default() };
    if !in_flight.is_empty() {
        eprintln!("sweep: {} runs are pending or running in Slurm: not submitted again", in_flight.len());
    }
    let missing = slurm::missing_runs(&args.results, configs.clone(), &in_flight);
    let failed_before = missing.iter().filter(|r| r.failed_before).count();
    eprintln!(
        "sweep: {total} runs, {} recorded, {} missing ({failed_before} of them failed before)",
        total - missing.len(),
        missing.len()
    );
    if missing.is_empty() {
        eprintln!("sweep: nothing to submit");
        if args.wait && !args.no_report {
            write_sweep_report(args)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let options = slurm::SlurmOptions {
        partition: args.partition.clone(),
        time: args.time.clone(),
        cpus_per_task: args.cpus_per_task,
        memory: args.mem.clone(),
        gres: slurm::gres_of(args.device.name, args.gres.clone()),
        max_parallel: args.max_parallel,
    };
    let paths = slurm::Paths::resolve(&sweep::current_exe()?, &args.results, &args.data)?;
    options.check()?;
    paths.check()?;
    let name = format!(
        "sweep-{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
    );
    let script = slurm::script(&missing, &paths, &options, &name);
    let hand_over = || missing.iter().try_for_each(|run| sweep::hand_over(&run.config, &paths.results));
    if args.dry_run {
        hand_over()?;
        let path = slurm::script_path(&paths.results, &name);
        crate::records::files::write_atomically(&path, script.as_bytes())?;
        eprintln!("sweep: job script for {} runs written to {} (not submitted)", missing.len(), path.display());
        print!("{script}");
        return Ok(ExitCode::SUCCESS);
    }
    // Before anything is written: a missing Slurm leaves the results folder untouched.
    slurm::check_available()?;
    hand_over()?;
    let (id, path) = slurm::submit(&script, &paths.results, &name)?;
    slurm::save_submission(&paths.results, &name, &id, &missing)?;
    eprintln!("sweep: submitted {} runs as Slurm job array {id} ({})", missing.len(), path.display());
    println!("{id}");
    if args.wait {
        slurm::wait_for(&id, Duration::from_secs(2))?;
        slurm::record_lost(&args.results, &tools)?;
        let still_missing = slurm::missing_runs(&args.results, configs, &std::collections::HashSet::new());
        eprintln!("sweep: job {id} finished; {} of {total} runs missing or failed", still_missing.len());
        if !args.no_report {
            write_sweep_report(args)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The step benchmark a sweep ends with, of the sizes its preset decides
/// ([`Preset::sweep_benchmark`]).
fn sweep_bench(preset: Preset, mut models: Vec<String>, device: DeviceName, variant: Variant) -> BenchSpec {
    let SweepBenchmark { lengths, batch, timed_steps, cell_timeout_seconds } = preset.sweep_benchmark();
    transformer_first(&mut models);
    BenchSpec {
        models,
        lengths,
        batch,
        device,
        scope: Scope::Step,
        variant,
        warmup_steps: 1,
        timed_steps,
        cell_timeout: Duration::from_secs_f64(cell_timeout_seconds),
        budget: None,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::args::{Cli, Command};
    use crate::cli::bench::bench_spec;

    /// The command a sweep records for its benchmark measures that benchmark: parsed back,
    /// it gives the same specification.
    #[test]
    fn a_sweeps_benchmark_command_parses_back_to_its_specification() {
        let results = std::path::Path::new("/tmp/some results");
        for preset in [Preset::Tiny, Preset::Quick, Preset::Lra] {
            let spec = sweep_bench(preset, vec!["local".into(), "transformer".into()], DeviceName::Flex, Variant::Paper);
            let command = spec.command(results);
            let words: Vec<&str> = command.split(" --results ").next().unwrap().split(' ').collect();
            let Command::Bench(args) = Cli::try_parse_from(words).unwrap().command else { panic!("{command}") };
            assert_eq!(bench_spec(&args, args.models.clone().unwrap()), spec, "{command}");
            assert!(command.ends_with(" --results /tmp/some results"), "{command}");
        }
    }
}
