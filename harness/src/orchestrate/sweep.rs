//! `lra sweep`: every (task, model, seed) as its own `lra run` child process, so that a
//! panic, an out-of-memory kill or a divergence in one run is recorded as that run's
//! failure and the sweep goes on; resumable, since a run whose `result.json` exists is
//! skipped and a record is only ever written whole.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex};
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

/// The tasks a sweep runs when it is not told which: all but Path-X (16,384 tokens), which
/// only runs when asked for: no model learns it in a CPU budget (LRA reports FAIL for every
/// model), and full attention alone needs gigabytes per example there.
pub fn default_tasks() -> Vec<Task> {
    Task::ALL.into_iter().filter(|t| *t != Task::Pathx).collect()
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
/// meanwhile by another process is kept), on the device it is `placed_on` where a sweep
/// over GPUs placed it (`--placed-on`, the exact device: the configuration keeps the
/// sweep's device, so that the run id does not depend on where the run was placed).
pub fn run_arguments(
    config: &RunConfig,
    recorded: Recorded,
    results: &Path,
    data_dir: &Path,
    placed_on: Option<DeviceName>,
) -> Vec<String> {
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
    if let Some(device) = placed_on {
        arguments.extend(["--placed-on".into(), device.exact()]);
    }
    match recorded {
        Recorded::Failed => arguments.push("--rerun-failed".into()),
        Recorded::Stale => arguments.push("--rerun-stale".into()),
        Recorded::No | Recorded::Ok => {}
    }
    arguments
}

/// The `lra run` line of each of `pending` (`--print-commands`), placed on the devices of
/// `slots` in turn: run as many at once as there are slots, in order, and no two lines
/// running together share a device.
pub fn command_lines(
    exe: &Path,
    pending: &[(RunConfig, Recorded)],
    results: &Path,
    data_dir: &Path,
    slots: &[Option<DeviceName>],
) -> Vec<String> {
    let placed = |i: usize| slots.get(i % slots.len().max(1)).copied().flatten();
    pending
        .iter()
        .enumerate()
        .map(|(i, (config, recorded))| shell_line(exe, &run_arguments(config, *recorded, results, data_dir, placed(i))))
        .collect()
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

/// Runs `config` in a child process (`exe run ...`), on the device it is `placed_on` where
/// it has one of its own, its output appended to the run's `run.log`. When the child dies
/// without writing `result.json` (killed, aborted, past `timeout`), the sweep writes the
/// failed record itself, with the cause and the placement.
#[allow(clippy::too_many_arguments)]
pub fn run_child(
    exe: &Path,
    config: &RunConfig,
    recorded: Recorded,
    results: &Path,
    data_dir: &Path,
    placed_on: Option<DeviceName>,
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
    let arguments = run_arguments(config, recorded, results, data_dir, placed_on);
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
            let record = match placed_on {
                Some(device) => record.placed_on(device),
                None => record,
            };
            write_json_atomically(&result_path, &record)?;
            record
        }
        None => {
            let seconds = started.elapsed().as_secs_f64();
            let record = RunRecord::failed(config, Failure::TimedOut { seconds }, seconds);
            let record = match placed_on {
                Some(device) => record.placed_on(device),
                None => record,
            };
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

/// Runs at once when `--jobs` is not given, on `gpus` GPUs (none for a CPU device): on the
/// CPU backends two where there are two cores or more. The runs a CPU sweeps are small,
/// and one thread does more per core than two (a quick Text run: 35.8 s on one thread,
/// 25.1 s on two, the same numbers), so two runs on a core each finish sooner than one on
/// both. On GPUs one per device, which a second run would share.
pub fn default_jobs(device: DeviceName, gpus: usize) -> usize {
    match device.backend() {
        Backend::Flex | Backend::Ndarray => crate::records::machine::cores().min(2),
        Backend::Wgpu | Backend::Cuda => gpus.max(1),
    }
}

/// The GPUs a sweep on `device` places its runs on, one run on each at a time: those
/// `--devices` names (`indices`); else, for `cuda`, every device the driver reports
/// (`count`, asked only then); else the sweep's device alone. `numbered`: whether
/// `--device` named a device number (`cuda:3`, `cuda:0`), which then is the one device.
/// Empty for a CPU device, which its runs share, each on its share of the cores. An error
/// names the flags and values at fault.
pub fn placements(
    device: DeviceName,
    numbered: bool,
    indices: Option<&[usize]>,
    count: impl FnOnce() -> Result<usize, String>,
) -> Result<Vec<DeviceName>, String> {
    let listed = |indices: &[usize]| indices.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let Some(indices) = indices else {
        return match device {
            DeviceName::Flex | DeviceName::Ndarray => Ok(Vec::new()),
            DeviceName::Cuda(_) if !numbered => match count()? {
                0 => Err(format!("--device {device}: the driver reports no CUDA device")),
                n => Ok((0..n).map(DeviceName::Cuda).collect()),
            },
            // `wgpu` alone is the system's adapter: one device.
            DeviceName::Wgpu(_) | DeviceName::Cuda(_) => Ok(vec![device]),
        };
    };
    if !device.is_gpu() {
        return Err(format!(
            "--devices {}: --device {device} computes on the CPU, where there are no devices to name; --jobs sets how \
             many runs share it",
            listed(indices)
        ));
    }
    if numbered {
        return Err(format!(
            "--device {} and --devices {}: both name device numbers; give --device {} with --devices",
            device.exact(),
            listed(indices),
            device.backend().name()
        ));
    }
    if indices.is_empty() {
        return Err("--devices: no device named".into());
    }
    for (i, index) in indices.iter().enumerate() {
        if indices[..i].contains(index) {
            return Err(format!(
                "--devices {}: device {index} is named twice (one run at a time computes on a device)",
                listed(indices)
            ));
        }
    }
    match device {
        DeviceName::Cuda(_) => {
            let count = count()?;
            if let Some(index) = indices.iter().find(|&&index| index >= count) {
                return Err(format!(
                    "--devices {}: there is no cuda:{index}; the driver reports {count} CUDA device(s), numbered from 0",
                    listed(indices)
                ));
            }
            Ok(indices.iter().map(|&index| DeviceName::Cuda(index)).collect())
        }
        _ => Ok(indices.iter().map(|&index| DeviceName::Wgpu(Some(index))).collect()),
    }
}

/// Runs at once: `jobs` (`--jobs`) where given, else [`default_jobs`]. On GPUs
/// (`placements`) at most one per device: a second run on one would share it.
pub fn jobs_of(jobs: Option<usize>, device: DeviceName, placements: &[DeviceName]) -> Result<usize, String> {
    match jobs {
        None => Ok(default_jobs(device, placements.len())),
        Some(0) => Err("--jobs 0: at least one run must run at a time".into()),
        Some(jobs) if !placements.is_empty() && jobs > placements.len() => Err(format!(
            "--jobs {jobs}: more runs at once than the {} GPU(s) they are placed on ({}); two runs would share a device \
             (--devices names the devices)",
            placements.len(),
            placements.iter().map(|d| d.exact()).collect::<Vec<_>>().join(", ")
        )),
        Some(jobs) => Ok(jobs),
    }
}

/// The slots of a sweep of `jobs` runs at once, one per run that runs: on GPUs the first
/// `jobs` of `placements`, each the device its run computes on; on the CPU (no placements)
/// `jobs` slots without a device, the runs computing on the configuration's own.
pub fn slots(jobs: usize, placements: &[DeviceName]) -> Vec<Option<DeviceName>> {
    match placements.is_empty() {
        true => vec![None; jobs.max(1)],
        false => placements.iter().take(jobs.max(1)).copied().map(Some).collect(),
    }
}

/// Slots that runs take one each while they run and give back as they end, whatever the
/// end (a success, a failure, a time-out, an error): the devices of a sweep over several
/// GPUs, so that no two runs compute on one device at once. A slot given back goes behind
/// the free ones, so that every slot is taken in turn.
#[derive(Debug)]
pub struct Slots<T> {
    free: Mutex<VecDeque<T>>,
    given_back: Condvar,
}

impl<T> Slots<T> {
    pub fn new(slots: impl IntoIterator<Item = T>) -> Slots<T> {
        Slots { free: Mutex::new(slots.into_iter().collect()), given_back: Condvar::new() }
    }

    /// A free slot, once there is one; held until the [`Taken`] is dropped.
    pub fn take(&self) -> Taken<'_, T> {
        let mut free = self.free.lock().expect("slots lock");
        loop {
            if let Some(slot) = free.pop_front() {
                return Taken { slots: self, slot: Some(slot) };
            }
            free = self.given_back.wait(free).expect("slots lock");
        }
    }
}

/// A slot taken from [`Slots`], given back when dropped (also as a panic unwinds).
#[derive(Debug)]
pub struct Taken<'a, T> {
    slots: &'a Slots<T>,
    slot: Option<T>,
}

impl<T> std::ops::Deref for Taken<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.slot.as_ref().expect("a taken slot is held until dropped")
    }
}

impl<T> Drop for Taken<'_, T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            // A poisoned lock still holds the slots: the slot goes back all the same.
            let mut free = self.slots.free.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            free.push_back(slot);
            self.slots.given_back.notify_one();
        }
    }
}

/// The threads each run of a sweep of `jobs` at a time computes on: an equal share of the
/// cores when several run at once (more threads than cores only slow every run down),
/// unless the user chose them (`RAYON_NUM_THREADS` set); `None`: the run's own default.
pub fn threads_per_run(jobs: usize, user_set: bool) -> Option<usize> {
    (jobs > 1 && !user_set).then(|| (crate::records::machine::cores() / jobs).max(1))
}

/// Runs every configuration not yet recorded, one per slot at a time ([`slots`]): each
/// run takes a free slot and computes on its device, if it has one, until it ends.
pub fn run_all(
    exe: &Path,
    pending: Vec<(RunConfig, Recorded)>,
    results: &Path,
    data_dir: &Path,
    slots: Vec<Option<DeviceName>>,
    timeout: Option<Duration>,
    show_progress: bool,
) -> anyhow::Result<Ran> {
    let jobs = slots.len().max(1);
    let slots = Slots::new(slots);
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
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let Some((config, recorded)) = queue.lock().expect("queue lock").pop_front() else { break };
                    // Held until the child has ended, however it ends.
                    let slot = slots.take();
                    let ended = run_child(exe, &config, recorded, results, data_dir, *slot, timeout, threads);
                    drop(slot);
                    match ended {
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
        assert!(default_jobs(DeviceName::Flex, 0) <= cores, "never more runs at once than cores");
        assert_eq!(default_jobs(DeviceName::Wgpu(None), 1), 1, "a GPU is not shared");
        assert_eq!(default_jobs(DeviceName::Cuda(0), 8), 8, "one run per GPU");
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
        let end = run_child(&script, &config, Recorded::No, &results, dir.path(), None, Some(Duration::from_millis(1500)), None)
            .unwrap();
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
        let arguments = run_arguments(&config, Recorded::No, dir.path(), Path::new("d"), None);
        assert_eq!(arguments[..3], ["run".to_string(), "--config".into(), path.display().to_string()]);
        for flag in ["--task", "--model", "--preset", "--seed", "--variant", "--device"] {
            assert!(!arguments.iter().any(|a| a == flag), "{flag} in {arguments:?}");
        }
    }

    /// The GPUs of a sweep: those --devices names, else every CUDA device the driver
    /// reports, else the one --device names; every contradiction refused, naming the flags.
    #[test]
    fn a_sweep_is_placed_on_the_named_gpus_or_every_cuda_device_and_bad_lists_are_refused() {
        use DeviceName::{Cuda, Flex, Wgpu};
        let four = || Ok(4);
        let not_asked = || -> Result<usize, String> { panic!("the devices are not counted here") };
        assert_eq!(placements(Cuda(0), false, None, four), Ok((0..4).map(Cuda).collect()));
        assert_eq!(placements(Cuda(0), true, None, not_asked), Ok(vec![Cuda(0)]), "cuda:0 is one device");
        assert_eq!(placements(Cuda(2), true, None, not_asked), Ok(vec![Cuda(2)]));
        assert_eq!(placements(Cuda(0), false, Some(&[3, 1]), four), Ok(vec![Cuda(3), Cuda(1)]));
        assert_eq!(placements(Wgpu(None), false, None, not_asked), Ok(vec![Wgpu(None)]), "the system's adapter");
        assert_eq!(placements(Wgpu(Some(1)), true, None, not_asked), Ok(vec![Wgpu(Some(1))]));
        assert_eq!(placements(Wgpu(None), false, Some(&[1, 0]), not_asked), Ok(vec![Wgpu(Some(1)), Wgpu(Some(0))]));
        assert_eq!(placements(Flex, false, None, not_asked), Ok(vec![]), "the CPU is shared");
        assert_eq!(placements(Cuda(0), false, None, || Err("no driver".into())), Err("no driver".into()));

        let refused = |device, numbered, indices: &[usize], words: &[&str]| {
            let why = placements(device, numbered, Some(indices), four).unwrap_err();
            for word in words {
                assert!(why.contains(word), "{word:?} not in {why:?}");
            }
        };
        refused(Flex, false, &[0, 1], &["--devices 0,1", "--device flex", "CPU"]);
        refused(DeviceName::Ndarray, false, &[0], &["--devices 0", "--device ndarray"]);
        refused(Cuda(3), true, &[0, 1], &["--device cuda:3 and --devices 0,1", "--device cuda with --devices"]);
        refused(Wgpu(Some(1)), true, &[0], &["--device wgpu:1 and --devices 0"]);
        refused(Cuda(0), false, &[0, 1, 0], &["--devices 0,1,0", "device 0 is named twice"]);
        refused(Wgpu(None), false, &[], &["--devices: no device named"]);
        refused(Cuda(0), false, &[0, 4], &["--devices 0,4", "no cuda:4", "4 CUDA device(s)"]);
        let none = placements(Cuda(0), false, None, || Ok(0)).unwrap_err();
        assert!(none.contains("no CUDA device"), "{none}");

        // Runs at once: one per GPU unless fewer are asked for; never more.
        let gpus: Vec<DeviceName> = (0..4).map(Cuda).collect();
        assert_eq!(jobs_of(None, Cuda(0), &gpus), Ok(4));
        assert_eq!(jobs_of(Some(2), Cuda(0), &gpus), Ok(2));
        assert_eq!(jobs_of(None, Wgpu(None), &[Wgpu(None)]), Ok(1));
        let more = jobs_of(Some(5), Cuda(0), &gpus).unwrap_err();
        assert!(more.contains("--jobs 5") && more.contains("4 GPU(s)") && more.contains("cuda:3"), "{more}");
        assert!(jobs_of(Some(2), Wgpu(None), &[Wgpu(None)]).unwrap_err().contains("--jobs 2"));
        assert!(jobs_of(Some(0), Flex, &[]).unwrap_err().contains("--jobs 0"));
        assert_eq!(jobs_of(Some(5), Flex, &[]), Ok(5), "CPU runs share the cores");
        assert_eq!(slots(2, &gpus), [Some(Cuda(0)), Some(Cuda(1))]);
        assert_eq!(slots(4, &gpus).len(), 4);
        assert_eq!(slots(3, &[]), [None, None, None]);
    }

    /// Many threads taking and giving back K slots: a slot is never held twice at once,
    /// every slot is used, K are held at once, and a slot is given back when its holder
    /// panics.
    #[test]
    fn a_slot_is_held_by_one_thread_at_a_time_and_given_back_however_its_run_ends() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const K: usize = 3;
        let pool = Slots::new(0..K);
        let holders: Vec<AtomicUsize> = (0..K).map(|_| AtomicUsize::new(0)).collect();
        let uses: Vec<AtomicUsize> = (0..K).map(|_| AtomicUsize::new(0)).collect();
        let (held, most_held) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..40 {
                        let slot = pool.take();
                        assert_eq!(holders[*slot].fetch_add(1, Ordering::SeqCst), 0, "slot {} held twice", *slot);
                        uses[*slot].fetch_add(1, Ordering::SeqCst);
                        let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                        most_held.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(300));
                        held.fetch_sub(1, Ordering::SeqCst);
                        holders[*slot].fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(uses.iter().all(|n| n.load(Ordering::SeqCst) > 0), "every slot used: {uses:?}");
        assert_eq!(uses.iter().map(|n| n.load(Ordering::SeqCst)).sum::<usize>(), 8 * 40);
        assert_eq!(most_held.load(Ordering::SeqCst), K, "all slots held at once, never more");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _slot = pool.take();
            panic!("a run that panics holding its slot");
        }));
        assert!(panicked.is_err());
        assert_eq!(pool.free.lock().unwrap().len(), K, "the slot came back");
        let all: Vec<usize> = (0..K).map(|_| *pool.take()).collect();
        assert_eq!(all.len(), K);
    }

    /// A sweep of N runs over K devices, through the real orchestration with a stand-in
    /// `lra` that logs when it starts and ends on the device it was handed: never two runs
    /// on one device at once, a device taken again only once its run ended (also a run
    /// that failed, and one killed past its time), every device used, K runs at once, and
    /// each record naming the device its run was placed on.
    #[test]
    fn a_sweep_over_k_devices_runs_k_at_once_and_never_two_on_one_device() {
        const K: usize = 3;
        let timeout = Duration::from_millis(1500);
        let dir = tempfile::tempdir().unwrap();
        let (results, log) = (dir.path().join("results"), dir.path().join("log"));
        // Every run fails (exit 1) after 0.3 s but Linear's, which overstays the time limit.
        let script = dir.path().join("lra.sh");
        let text = format!(
            r#"#!/bin/sh
device=none
while [ $# -gt 0 ]; do
  case "$1" in
    --placed-on) device="$2"; shift ;;
    --config) config="$2"; shift ;;
  esac
  shift
done
run=$(basename "$config" .json)
echo "start $device $run $(date +%s%N)" >> '{log}'
if grep -q '"model": *"linear"' "$config"; then sleep 10; fi
sleep 0.3
echo "end $device $run $(date +%s%N)" >> '{log}'
exit 1
"#,
            log = log.display()
        );
        std::fs::write(&script, text).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let devices: Vec<DeviceName> = (0..K).map(|i| DeviceName::Wgpu(Some(i))).collect();
        // The long runs first: a device given back before its run ended would be taken again
        // while that run goes on.
        let configs: Vec<RunConfig> = [("linear", 0..2), ("transformer", 0..5)]
            .into_iter()
            .flat_map(|(model, seeds)| seeds.map(move |seed| (model, seed)))
            .map(|(model, seed)| RunConfig::resolve(Task::Listops, Preset::Tiny, model, seed, DeviceName::Wgpu(None)).unwrap())
            .collect();
        let pending = configs.iter().map(|c| (c.clone(), Recorded::No)).collect();
        let ran = run_all(&script, pending, &results, dir.path(), slots(K, &devices), Some(timeout), false).unwrap();

        let text = std::fs::read_to_string(&log).unwrap();
        let at = |word: &str| -> Vec<(String, String, u128)> {
            text.lines()
                .filter_map(|line| {
                    let parts: Vec<&str> = line.split(' ').collect();
                    (parts[0] == word).then(|| (parts[1].to_string(), parts[2].to_string(), parts[3].parse().unwrap()))
                })
                .collect()
        };
        let (starts, ends) = (at("start"), at("end"));
        assert_eq!(
            starts.len(),
            configs.len(),
            "one start per run:
{text}"
        );
        let exact: Vec<String> = devices.iter().map(|d| d.exact()).collect();
        let mut placed = std::collections::HashMap::new();
        for (device, run, _) in &starts {
            assert!(exact.contains(device), "a run on {device}, not one of {exact:?}");
            assert!(placed.insert(run.clone(), device.clone()).is_none(), "{run} started twice");
        }
        // Each run's time on its device: to its end, or (killed) at least to its time limit.
        let killed_after = timeout.as_nanos() - Duration::from_millis(250).as_nanos();
        let intervals: Vec<(String, u128, u128)> = starts
            .iter()
            .map(|(device, run, start)| {
                let end = ends.iter().find(|(_, r, _)| r == run).map_or(start + killed_after, |(_, _, end)| *end);
                (device.clone(), *start, end)
            })
            .collect();
        for device in &exact {
            let mut on: Vec<&(String, u128, u128)> = intervals.iter().filter(|(d, _, _)| d == device).collect();
            assert!(
                !on.is_empty(),
                "{device} never used:
{text}"
            );
            on.sort_by_key(|(_, start, _)| *start);
            for pair in on.windows(2) {
                assert!(
                    pair[1].1 >= pair[0].2,
                    "two runs on {device} at once:
{text}"
                );
            }
        }
        let most_at_once = intervals
            .iter()
            .map(|(_, start, _)| intervals.iter().filter(|(_, s, e)| s <= start && start < e).count())
            .max()
            .unwrap();
        assert_eq!(
            most_at_once, K,
            "{K} runs at once:
{text}"
        );
        assert_eq!(ran.records.len(), configs.len());
        for record in &ran.records {
            assert_eq!(record.device, "wgpu", "the configuration keeps the sweep's device");
            assert_eq!(record.placed_on.as_ref(), placed.get(&record.run_id), "{}", record.run_id);
            let timed_out = matches!(record.outcome.failure, Some(Failure::TimedOut { .. }));
            assert_eq!(timed_out, record.model == "linear", "{:?}", record.outcome.failure);
        }
    }

    #[test]
    fn a_child_is_told_the_exact_device_it_is_placed_on() {
        let config = RunConfig::resolve(Task::Listops, Preset::Tiny, "local", 0, DeviceName::Cuda(0)).unwrap();
        let arguments = |placed| run_arguments(&config, Recorded::No, Path::new("r"), Path::new("d"), placed);
        let placed = arguments(Some(DeviceName::Cuda(3)));
        let at = placed.iter().position(|a| a == "--placed-on").expect("--placed-on given");
        assert_eq!(placed[at + 1], "cuda:3");
        assert_eq!(arguments(Some(DeviceName::Cuda(0)))[at + 1], "cuda:0", "the number, even the first");
        assert!(!arguments(None).iter().any(|a| a == "--placed-on"));
        // The handed configuration, and the run id, are those of the sweep's device.
        assert_eq!(placed[2], handed_config_path(Path::new("r"), &config).display().to_string());
    }

    /// The printed commands take the devices in turn; on the CPU they name none.
    #[test]
    fn printed_commands_are_placed_on_the_devices_in_turn() {
        let pending: Vec<(RunConfig, Recorded)> = (0..5)
            .map(|seed| {
                (RunConfig::resolve(Task::Listops, Preset::Tiny, "local", seed, DeviceName::Cuda(0)).unwrap(), Recorded::No)
            })
            .collect();
        let gpus = slots(2, &[DeviceName::Cuda(1), DeviceName::Cuda(3), DeviceName::Cuda(0)]);
        let lines = command_lines(Path::new("lra"), &pending, Path::new("r"), Path::new("d"), &gpus);
        let placed: Vec<&str> = lines.iter().map(|line| line.split("--placed-on ").nth(1).unwrap_or("none")).collect();
        assert_eq!(placed, ["cuda:1", "cuda:3", "cuda:1", "cuda:3", "cuda:1"]);
        for ((config, _), line) in pending.iter().zip(&lines) {
            assert!(line.contains(&handed_config_path(Path::new("r"), config).display().to_string()), "{line}");
        }
        let cpu = command_lines(Path::new("lra"), &pending, Path::new("r"), Path::new("d"), &slots(2, &[]));
        assert!(cpu.iter().all(|line| !line.contains("--placed-on")), "{cpu:?}");
    }

    #[test]
    fn a_child_replaces_a_failed_or_stale_record_and_nothing_else() {
        let config = RunConfig::resolve(Task::Listops, Preset::Tiny, "local", 0, DeviceName::Flex).unwrap();
        let flags = |recorded| {
            let arguments = run_arguments(&config, recorded, Path::new("r"), Path::new("d"), None);
            arguments.into_iter().filter(|a| a.starts_with("--rerun")).collect::<Vec<_>>()
        };
        assert_eq!(flags(Recorded::Failed), ["--rerun-failed"]);
        assert_eq!(flags(Recorded::Stale), ["--rerun-stale"]);
        assert!(flags(Recorded::No).is_empty() && flags(Recorded::Ok).is_empty());
    }
}
