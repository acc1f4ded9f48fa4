//! `lra sweep`: every (task, model, seed) as its own `lra run` child process, so that a
//! panic, an out-of-memory kill or a divergence in one run is recorded as that run's
//! failure and the sweep goes on; resumable, since a run whose `result.json` exists is
//! skipped and a record is only ever written whole.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use lra_models::Variant;
use lra_tasks::{Preset, Task};

use crate::orchestrate::child;
use crate::records::claim;
use crate::records::device_name::{Backend, DeviceName};
use crate::records::files::write_json_atomically;
use crate::records::run_config::RunConfig;
use crate::records::run_record::{self, Failure, RunRecord};

/// Seeds of the baseline in a sweep that does not say how many (`--seeds`): enough for
/// its spread over seeds, the report's noise floor, at a third of what every model's would
/// cost.
pub const BASELINE_SEEDS: u64 = 3;

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub preset: Preset,
    pub tasks: Vec<Task>,
    pub models: Vec<String>,
    /// Seeds of every (task, model), `0..N`; when absent, [`BASELINE_SEEDS`] of the
    /// baseline and one of every other model ([`SweepSpec::seeds_of`]).
    pub seeds: Option<u64>,
    pub device: DeviceName,
    pub data_dir: PathBuf,
    /// The form of the mechanisms that have more than one; the preset's (`lra`) when absent.
    pub variant: Option<Variant>,
}

impl SweepSpec {
    /// How many seeds (`0..N`) of `model` the sweep runs.
    pub fn seeds_of(&self, model: &str) -> u64 {
        self.seeds.unwrap_or(if model == lra_models::BASELINE { BASELINE_SEEDS } else { 1 })
    }
}

/// The configurations of a sweep, in order: task, then model, then seed.
pub fn plan(spec: &SweepSpec) -> anyhow::Result<Vec<RunConfig>> {
    let mut configs = Vec::new();
    for &task in &spec.tasks {
        for model in &spec.models {
            for seed in 0..spec.seeds_of(model) {
                let mut config = RunConfig::resolve(task, spec.preset, model, seed, spec.device)?.prefer_released(&spec.data_dir);
                if let Some(variant) = spec.variant.filter(|_| config.attention.variant().is_some()) {
                    config = config.with_variant(variant)?;
                }
                configs.push(config);
            }
        }
    }
    Ok(configs)
}

/// Removes what writers killed mid-write left in `results` (their staging files, named
/// after their process); returns how many.
pub fn remove_stale_staging(results: &Path) -> usize {
    let mut folders = vec![results.to_path_buf(), results.join("bench")];
    if let Ok(runs) = std::fs::read_dir(results.join("runs")) {
        // A run folder planted as a link is not the results folder's to clean: what it points
        // to is left alone (the run itself is refused when it is taken).
        let real = |entry: &std::fs::DirEntry| entry.file_type().is_ok_and(|t| !t.is_symlink());
        folders.extend(runs.flatten().filter(real).map(|entry| entry.path()));
    }
    folders.iter().map(|folder| lra_datasets::staging::remove_stale(folder, ".writing")).sum()
}

/// What `results` holds for `config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    No,
    Ok,
    /// A failure (or a record that cannot be read, which counts as one).
    Failed,
    /// A finished record written by another version of the code than this binary.
    Stale,
}

/// What `results` holds for `config`.
pub fn recorded(results: &Path, config: &RunConfig) -> Recorded {
    let path = run_record::result_path(results, config);
    if !path.is_file() {
        return Recorded::No;
    }
    match run_record::read_record(&path) {
        Ok(record) if record.is_ok() && record.environment.git_commit != crate::records::environment::build_commit() => {
            Recorded::Stale
        }
        Ok(record) if record.is_ok() => Recorded::Ok,
        _ => Recorded::Failed,
    }
}

/// Where the sweep hands a child its resolved configuration:
/// `results/configs/<run-id>.json` ([`hand_over`] writes it).
pub fn handed_config_path(results: &Path, config: &RunConfig) -> PathBuf {
    results.join("configs").join(format!("{}.json", run_record::run_id(config)))
}

/// Writes `config` where [`run_arguments`] points the child, so that the child runs the
/// configuration the sweep resolved and nothing else: resolving again from flags could
/// differ (the data folder may have gained the released files meanwhile) and the run id
/// with it.
pub fn hand_over(config: &RunConfig, results: &Path) -> anyhow::Result<()> {
    let path = handed_config_path(results, config);
    if let Some(configs) = path.parent() {
        crate::records::files::create_real_dir(configs, 1)?;
    }
    write_json_atomically(&path, config)
}

/// The `lra run` arguments that run `config` (handed over by [`hand_over`]) into
/// `results`, where it has `recorded` (a failed or stale record is replaced; one finished
/// meanwhile by another process is kept).
pub fn run_arguments(config: &RunConfig, recorded: Recorded, results: &Path, data_dir: &Path) -> Vec<String> {
    let mut arguments = vec![
        "run".into(),
        "--config".into(),
        handed_config_path(results, config).display().to_string(),
        "--results".into(),
        results.display().to_string(),
        "--data".into(),
        data_dir.display().to_string(),
        "--quiet".into(),
    ];
    match recorded {
        Recorded::Failed => arguments.push("--rerun-failed".into()),
        Recorded::Stale => arguments.push("--rerun-stale".into()),
        Recorded::No | Recorded::Ok => {}
    }
    arguments
}

/// A shell-safe rendering of a command line.
pub fn shell_line(program: &Path, args: &[String]) -> String {
    std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .map(|word| {
            if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c)) {
                word
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How one child run ended.
#[derive(Debug)]
pub enum RunEnd {
    /// The run's record, and how long the child took.
    Recorded { record: Box<RunRecord>, seconds: f64 },
    /// Another live process holds the run's claim (another sweep, a Slurm task): left to it.
    Elsewhere { holder: claim::Holder },
}

/// Runs `config` in a child process (`exe run ...`), its output appended to the run's
/// `run.log`. When the child dies without writing `result.json` (killed, aborted, past
/// `timeout`), the sweep writes the failed record itself, with the cause.
pub fn run_child(
    exe: &Path,
    config: &RunConfig,
    recorded: Recorded,
    results: &Path,
    data_dir: &Path,
    timeout: Option<Duration>,
    threads: Option<usize>,
) -> anyhow::Result<RunEnd> {
    let started = Instant::now();
    let run_id = run_record::run_id(config);
    let dir = run_record::run_dir(results, &run_id);
    crate::records::files::create_real_dir(&dir, 2)?;
    let log_path = dir.join("run.log");
    let mut log_options = std::fs::OpenOptions::new();
    log_options.create(true).append(true);
    // A `run.log` planted as a link would have the child's output appended to its target.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        log_options.custom_flags(libc::O_NOFOLLOW);
    }
    let log = log_options.open(&log_path).with_context(|| format!("opening {} (a link is refused)", log_path.display()))?;
    let result_path = dir.join("result.json");
    if let Some(holder) = claim::held_elsewhere(&dir) {
        return Ok(RunEnd::Elsewhere { holder });
    }
    hand_over(config, results)?;
    let arguments = run_arguments(config, recorded, results, data_dir);
    let replaced = std::fs::metadata(&result_path).and_then(|m| m.modified()).ok();
    let oom = child::OomWatch::start();
    let mut command = Command::new(exe);
    command.args(arguments).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    if let Some(threads) = threads {
        command.env("RAYON_NUM_THREADS", threads.to_string());
    }
    let mut child = child::prepare(&mut command).spawn().with_context(|| format!("starting {}", exe.display()))?;
    let status = child::wait(&mut child, started, timeout)?;
    // The child wrote its own record (even if the time ran out as it did so): keep it.
    let written = std::fs::metadata(&result_path).and_then(|m| m.modified()).ok().filter(|m| Some(*m) != replaced);
    let record = match status {
        _ if written.is_some() => run_record::read_record(&result_path)?,
        // The child found the run recorded (by another process, after this one looked).
        Some(status) if status.success() && result_path.is_file() => run_record::read_record(&result_path)?,
        Some(status) if status.code() == Some(i32::from(crate::execute::run::EXIT_CLAIMED)) => {
            let holder = child::last_line_of(&log_path);
            return Ok(RunEnd::Elsewhere { holder });
        }
        Some(status) => {
            let failure = child::classify(status, &child::last_line_of(&log_path), oom.fired());
            let record = RunRecord::failed(config, failure, started.elapsed().as_secs_f64());
            write_json_atomically(&result_path, &record)?;
            record
        }
        None => {
            let seconds = started.elapsed().as_secs_f64();
            let record = RunRecord::failed(config, Failure::TimedOut { seconds }, seconds);
            write_json_atomically(&result_path, &record)?;
            record
        }
    };
    Ok(RunEnd::Recorded { record: Box::new(record), seconds: started.elapsed().as_secs_f64() })
}

/// What [`run_all`] did.
#[derive(Debug, Default)]
pub struct Ran {
    /// The records of the runs it ran.
    pub records: Vec<RunRecord>,
    /// Runs left to the live process that holds their claim.
    pub elsewhere: usize,
}

/// Runs at once when `--jobs` is not given: on the CPU backends two where there are two
/// cores or more. The runs a CPU sweeps are small, and one thread does more per core than
/// two (a quick Text run: 35.8 s on one thread, 25.1 s on two, the same numbers), so two
/// runs on a core each finish sooner than one on both. One at a time on a GPU, which a
/// second run would share.
pub fn default_jobs(device: DeviceName) -> usize {
    match device.backend() {
        Backend::Flex | Backend::Ndarray => crate::records::machine::cores().min(2),
        Backend::Wgpu | Backend::Cuda => 1,
    }
}

/// The threads each run of a sweep of `jobs` at a time computes on: an equal share of the
/// cores when several run at once (more threads than cores only slow every run down),
/// unless the user chose them (`RAYON_NUM_THREADS` set); `None`: the run's own default.
pub fn threads_per_run(jobs: usize, user_set: bool) -> Option<usize> {
    (jobs > 1 && !user_set).then(|| (crate::records::machine::cores() / jobs).max(1))
}

/// Runs every configuration not yet recorded, `jobs` at a time.
pub fn run_all(
    exe: &Path,
    pending: Vec<(RunConfig, Recorded)>,
    results: &Path,
    data_dir: &Path,
    jobs: usize,
    timeout: Option<Duration>,
    show_progress: bool,
) -> anyhow::Result<Ran> {
    let total = pending.len();
    let queue = Mutex::new(VecDeque::from(pending));
    let finished = Mutex::new(Vec::new());
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let elsewhere = std::sync::atomic::AtomicUsize::new(0);
    let multi = MultiProgress::new();
    if !show_progress {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let bar = multi.add(ProgressBar::new(total as u64));
    bar.set_style(
        ProgressStyle::with_template("sweep [{bar:30}] {pos}/{len} runs | {msg} | {elapsed} elapsed, ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("0 failed");
    let say = |line: String| {
        if show_progress {
            bar.println(line);
        } else {
            eprintln!("{line}");
        }
    };
    let errors = Mutex::new(Vec::new());
    let threads = threads_per_run(jobs, std::env::var_os("RAYON_NUM_THREADS").is_some());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let Some((config, recorded)) = queue.lock().expect("queue lock").pop_front() else { break };
                    match run_child(exe, &config, recorded, results, data_dir, timeout, threads) {
                        Ok(RunEnd::Elsewhere { holder }) => {
                            let what = format!("{} {} seed {}", config.task.name.name(), config.model, config.seed);
                            say(format!("LEFT {what}: another process is training it ({holder})"));
                            elsewhere.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(RunEnd::Recorded { record, seconds }) => {
                            let r = &record;
                            let what = format!("{} {} seed {}", r.task, r.model, r.seed);
                            match &r.outcome.failure {
                                None => say(format!(
                                    "ok   {what}: test accuracy {:.4} ({:.0} s)",
                                    r.outcome.test_accuracy.unwrap_or(f64::NAN),
                                    seconds
                                )),
                                Some(f) => {
                                    let n = failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                                    bar.set_message(format!("{n} failed"));
                                    say(format!("FAIL {what}: {f}"));
                                }
                            }
                            finished.lock().expect("results lock").push(*record);
                        }
                        Err(error) => errors.lock().expect("errors lock").push(format!("{:#}", error)),
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish();
    let errors = errors.into_inner().expect("errors lock");
    if !errors.is_empty() {
        anyhow::bail!("the sweep could not run some configurations:\n{}", errors.join("\n"));
    }
    Ok(Ran { records: finished.into_inner().expect("results lock"), elsewhere: elsewhere.into_inner() })
}

/// The `lra` binary to start children with.
pub fn current_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("finding the lra binary to run children with")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn staging_left_behind_is_removed_but_not_through_a_linked_run_folder() {
        let dir = tempfile::tempdir().unwrap();
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        let stale = format!(".writing-{dead}-x");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join(&stale), b"not ours").unwrap();
        let results = dir.path().join("results");
        std::fs::create_dir_all(results.join("runs").join("real")).unwrap();
        std::fs::write(results.join("runs").join("real").join(&stale), b"ours").unwrap();
        std::os::unix::fs::symlink(&elsewhere, results.join("runs").join("linked")).unwrap();
        assert_eq!(remove_stale_staging(&results), 1);
        assert!(!results.join("runs").join("real").join(&stale).exists());
        assert_eq!(std::fs::read(elsewhere.join(&stale)).unwrap(), b"not ours");
    }

    #[test]
    fn several_jobs_share_the_cores_unless_the_user_chose_the_threads() {
        let cores = crate::records::machine::cores();
        assert_eq!(threads_per_run(1, false), None, "one run at a time takes every core");
        for jobs in 2..=2 * cores {
            let threads = threads_per_run(jobs, false).expect("several runs get a share");
            assert!(threads >= 1, "{jobs} jobs: never fewer than one thread");
            assert!(jobs > cores || threads * jobs <= cores, "{jobs} jobs of {threads} threads on {cores} cores");
            assert!(jobs > cores || (threads + 1) * jobs > cores, "{jobs} jobs leave a whole share unused");
        }
        assert_eq!(threads_per_run(2, true), None, "RAYON_NUM_THREADS set by the user stands");
        assert!(default_jobs(DeviceName::Flex) <= cores, "never more runs at once than cores");
        assert_eq!(default_jobs(DeviceName::Wgpu(None)), 1, "a GPU is not shared");
    }

    /// Without `--seeds` the baseline runs on three seeds, for the report's noise floor,
    /// and every other model on one; `--seeds N` gives every model N.
    #[test]
    fn the_baseline_runs_on_three_seeds_unless_the_seeds_are_given() {
        let spec = |seeds| SweepSpec {
            preset: Preset::Tiny,
            tasks: vec![Task::Listops, Task::Text],
            models: vec!["local".into(), lra_models::BASELINE.into(), "linear".into()],
            seeds,
            device: DeviceName::Flex,
            data_dir: PathBuf::from("no-data-here"),
            variant: None,
        };
        let runs = |seeds| -> Vec<(String, String, u64)> {
            plan(&spec(seeds)).unwrap().into_iter().map(|c| (c.task.name.name().to_string(), c.model.clone(), c.seed)).collect()
        };
        let expected = |task: &str, seeds: &[(&str, u64)]| -> Vec<(String, String, u64)> {
            seeds.iter().flat_map(|&(model, n)| (0..n).map(move |seed| (task.to_string(), model.to_string(), seed))).collect()
        };
        let default = [("local", 1), ("transformer", 3), ("linear", 1)];
        assert_eq!(runs(None), [expected("listops", &default), expected("text", &default)].concat());
        let two = [("local", 2), ("transformer", 2), ("linear", 2)];
        assert_eq!(runs(Some(2)), [expected("listops", &two), expected("text", &two)].concat());
        assert_eq!(runs(Some(1)).len(), 6, "--seeds 1 runs the baseline once too");
    }

    #[test]
    fn a_record_the_child_wrote_is_kept_even_when_its_time_ran_out() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        let config = RunConfig::resolve(Task::Listops, Preset::Tiny, "transformer", 0, DeviceName::Flex).unwrap();
        let mut written = RunRecord::failed(&config, Failure::Crashed { detail: "the child's own record".into() }, 1.0);
        written.outcome.failure = None;
        let template = dir.path().join("record.json");
        write_json_atomically(&template, &written).unwrap();
        // A child that writes its record, then overstays the time limit.
        let result = run_record::result_path(&results, &config);
        let script = dir.path().join("child.sh");
        std::fs::write(&script, format!("#!/bin/sh\ncp '{}' '{}'\nsleep 5\n", template.display(), result.display())).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let end =
            run_child(&script, &config, Recorded::No, &results, dir.path(), Some(Duration::from_millis(1500)), None).unwrap();
        let RunEnd::Recorded { record, .. } = end else { panic!("{end:?}") };
        assert!(record.is_ok(), "{:?}", record.outcome.failure);
        assert!(run_record::read_record(&result).unwrap().is_ok(), "the written record is not overwritten");
    }

    /// The child gets the configuration the sweep resolved, as a file, and no flag it could
    /// resolve again.
    #[test]
    fn a_child_is_handed_the_resolved_configuration_itself() {
        let dir = tempfile::tempdir().unwrap();
        let config = RunConfig::resolve(Task::Listops, Preset::Tiny, "local", 3, DeviceName::Flex)
            .unwrap()
            .with_variant(Variant::Paper)
            .unwrap();
        hand_over(&config, dir.path()).unwrap();
        let path = dir.path().join("configs").join(format!("{}.json", run_record::run_id(&config)));
        assert_eq!(RunConfig::load(&path).unwrap(), config);
        let arguments = run_arguments(&config, Recorded::No, dir.path(), Path::new("d"));
        assert_eq!(arguments[..3], ["run".to_string(), "--config".into(), path.display().to_string()]);
        for flag in ["--task", "--model", "--preset", "--seed", "--variant", "--device"] {
            assert!(!arguments.iter().any(|a| a == flag), "{flag} in {arguments:?}");
        }
    }

    #[test]
    fn a_child_replaces_a_failed_or_stale_record_and_nothing_else() {
        let config = RunConfig::resolve(Task::Listops, Preset::Tiny, "local", 0, DeviceName::Flex).unwrap();
        let flags = |recorded| {
            let arguments = run_arguments(&config, recorded, Path::new("r"), Path::new("d"));
            arguments.into_iter().filter(|a| a.starts_with("--rerun")).collect::<Vec<_>>()
        };
        assert_eq!(flags(Recorded::Failed), ["--rerun-failed"]);
        assert_eq!(flags(Recorded::Stale), ["--rerun-stale"]);
        assert!(flags(Recorded::No).is_empty() && flags(Recorded::Ok).is_empty());
    }
}
