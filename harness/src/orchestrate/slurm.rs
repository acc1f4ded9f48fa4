//! `lra sweep --slurm`: the sweep's missing runs handed to Slurm as one job array.
//!
//! One array task per run, each an `lra run ...` writing into the one shared results
//! folder (records are written atomically under per-run folders, so concurrent tasks
//! cannot corrupt each other's). The script states the binary, the results and the data
//! folder as absolute paths, and sends each task's stdout and stderr into its run's folder.
//! A run is missing when it has no record or a failed one; calling again submits only
//! those, so a sweep cut by preemption or node failures is finished by calling again.
//!
//! Each submission is remembered (`results/slurm/<name>.json`: the job id and the run of
//! each array task). A task Slurm still lists (pending or running) is not submitted again;
//! a task that ended without a record (Slurm killed it: its time limit, memory, a node)
//! gets a failed record with the cause, from `sacct` where accounting is on, else from what
//! Slurm wrote into the task's output file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, bail};
use lra_datasets::files::{limit, read_bounded, read_text_bounded};
use serde::{Deserialize, Serialize};

use crate::orchestrate::sweep::{Recorded, recorded, run_arguments, shell_line};
use crate::records::device_name::DeviceName;
use crate::records::files::{write_atomically, write_json_atomically};
use crate::records::run_config::RunConfig;
use crate::records::run_record::{self, Failure, RunRecord};

/// The `sbatch` settings of the array.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// Time limit per task, in Slurm's formats (`MM`, `HH:MM:SS`, `D-HH`).
    pub time: Option<String>,
    pub cpus_per_task: Option<usize>,
    /// Memory per task, in Slurm's formats (`4G`, `4000M`).
    pub memory: Option<String>,
    pub gres: Option<String>,
    /// At most this many tasks at once (`--array=...%K`).
    pub max_parallel: Option<usize>,
}

/// The generic resources each task asks for: `gres` where given (`none`: none, and no
/// `--gres` line), else one GPU (`gpu:1`) for a GPU device. Without it a task gets no GPU, or, where Slurm does not fence the
/// devices, sees every GPU of its node and computes on the first, beside every other task
/// there; with it Slurm gives each task a GPU of its own, which the task sees as device 0
/// (CUDA_VISIBLE_DEVICES), so that the configuration's `cuda` is that GPU.
pub fn gres_of(device: DeviceName, gres: Option<String>) -> Option<String> {
    match gres {
        Some(gres) if gres == "none" => None,
        Some(gres) => Some(gres),
        None => device.is_gpu().then(|| "gpu:1".to_string()),
    }
}

/// A run of the sweep that has no successful record yet.
#[derive(Debug, Clone)]
pub struct MissingRun {
    pub config: RunConfig,
    /// Its record exists but says it failed: rerun with `--rerun-failed` (a record finished meanwhile by another process is kept).
    pub failed_before: bool,
}

/// The runs of `configs` without a successful record in `results`, but those in `in_flight`
/// (run ids of tasks Slurm still lists).
pub fn missing_runs(results: &Path, configs: Vec<RunConfig>, in_flight: &HashSet<String>) -> Vec<MissingRun> {
    configs
        .into_iter()
        .filter(|config| !in_flight.contains(&run_record::run_id(config)))
        .filter_map(|config| match recorded(results, &config) {
            Recorded::Ok | Recorded::Stale => None,
            Recorded::No => Some(MissingRun { config, failed_before: false }),
            // A failure, or an unreadable record (a record is written whole, so this is
            // not a run in progress): run it again.
            Recorded::Failed => Some(MissingRun { config, failed_before: true }),
        })
        .collect()
}

/// Absolute paths for everything the script names: tasks may start in another folder,
/// on another node.
pub struct Paths {
    pub exe: PathBuf,
    pub results: PathBuf,
    pub data: PathBuf,
}

impl Paths {
    /// Refuses paths that could end a directive line of the script (see [`check_value`]).
    pub fn check(&self) -> anyhow::Result<()> {
        for (name, path) in [("the lra binary", &self.exe), ("--results", &self.results), ("--data", &self.data)] {
            check_value(name, &path.display().to_string())?;
        }
        Ok(())
    }

    pub fn resolve(exe: &Path, results: &Path, data: &Path) -> anyhow::Result<Paths> {
        let absolute = |p: &Path| std::path::absolute(p).with_context(|| format!("resolving {}", p.display()));
        Ok(Paths {
            exe: exe.canonicalize().context("resolving the lra binary")?,
            results: absolute(results)?,
            data: absolute(data)?,
        })
    }
}

/// The job-array script: `#SBATCH` lines, then one `case` branch per array task.
pub fn script(runs: &[MissingRun], paths: &Paths, options: &SlurmOptions, name: &str) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let throttle = options.max_parallel.map(|k| format!("%{k}")).unwrap_or_default();
    s += &format!("#SBATCH --job-name=lra-{name}\n");
    s += &format!("#SBATCH --array=0-{}{throttle}\n", runs.len().saturating_sub(1));
    // The wrapper's own output (before a task reaches its run folder) beside this script.
    s += &format!(
        "#SBATCH --output={}\n",
        quote(&paths.results.join("slurm").join(format!("{name}-%A_%a.out")).display().to_string())
    );
    if let Some(p) = &options.partition {
        s += &format!("#SBATCH --partition={}\n", quote(p));
    }
    if let Some(t) = &options.time {
        s += &format!("#SBATCH --time={}\n", quote(t));
    }
    if let Some(n) = options.cpus_per_task {
        s += &format!("#SBATCH --cpus-per-task={n}\n");
    }
    if let Some(m) = &options.memory {
        s += &format!("#SBATCH --mem={}\n", quote(m));
    }
    if let Some(g) = &options.gres {
        s += &format!("#SBATCH --gres={}\n", quote(g));
    }
    s += &format!(
        "#\n# Written by `lra sweep --slurm`: {} runs of one sweep.\n# lra binary: {}\n# results:    {}\n# data:       {}\n",
        runs.len(),
        paths.exe.display(),
        paths.results.display(),
        paths.data.display()
    );
    s += "# Each task's stdout and stderr go to slurm-<job>_<task>.{out,err} in its run folder.\nset -euo pipefail\n\n";
    s += "case \"$SLURM_ARRAY_TASK_ID\" in\n";
    for (i, run) in runs.iter().enumerate() {
        let dir = run_record::run_dir(&paths.results, &run_record::run_id(&run.config));
        let recorded = if run.failed_before { Recorded::Failed } else { Recorded::No };
        // No placement: Slurm gives each task its own GPU, which the task sees as device 0.
        let args = run_arguments(&run.config, recorded, &paths.results, &paths.data, None);
        // Literal parts in single quotes; only the job id is expanded.
        let log = |ext: &str| {
            let prefix = dir.join("slurm-").display().to_string();
            format!("{}\"${{SLURM_ARRAY_JOB_ID}}\"{}", single_quote(&prefix), single_quote(&format!("_{i}.{ext}")))
        };
        s += &format!(
            "  {i})  # {} {} seed {}\n    mkdir -p {}\n    exec {} >{} 2>{} ;;\n",
            run.config.task.name.name(),
            run.config.model,
            run.config.seed,
            single_quote(&dir.display().to_string()),
            shell_line(&paths.exe, &args),
            log("out"),
            log("err"),
        );
    }
    s += "  *) echo \"lra: no run for array task $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\nesac\n";
    s
}

/// Double-quotes an `#SBATCH` value (read by sbatch, not by bash), whose `%A`-style
/// patterns must stay; [`SlurmOptions::check`] and [`Paths::check`] refuse what could end
/// the value or the line.
fn quote(word: &str) -> String {
    format!("\"{word}\"")
}

/// Single-quotes a word for bash: nothing inside it is expanded or run.
fn single_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Refuses a value that would end an `#SBATCH` line or its quotes: a control character
/// (a newline drops every directive after it) or a double quote.
fn check_value(name: &str, value: &str) -> anyhow::Result<()> {
    if let Some(c) = value.chars().find(|c| c.is_control() || *c == '"') {
        bail!("{name} {value:?}: a job script value may not hold {c:?}");
    }
    Ok(())
}

impl SlurmOptions {
    /// Refuses directive values that could end their line (see [`check_value`]).
    pub fn check(&self) -> anyhow::Result<()> {
        for (name, value) in
            [("--partition", &self.partition), ("--time", &self.time), ("--mem", &self.memory), ("--gres", &self.gres)]
        {
            if let Some(value) = value {
                check_value(name, value)?;
            }
        }
        Ok(())
    }
}

/// Checks that Slurm can take a job here: `sbatch` present and the controller answering.
pub fn check_available() -> anyhow::Result<()> {
    let output = run_tool("sinfo", &["--noheader", "--format=%P"])?;
    if !output.status.success() {
        bail!(
            "the Slurm controller did not answer (`sinfo` failed: {}); is slurmctld running, and does SLURM_CONF or \
             /etc/slurm/slurm.conf name it?",
            last_words(&output)
        );
    }
    run_tool("sbatch", &["--version"])?;
    Ok(())
}

/// Writes the script as `results/slurm/<name>.sh` and submits it; returns the job id and
/// the script's path. If `sbatch` refuses it, the script is removed again.
pub fn submit(script_text: &str, results: &Path, name: &str) -> anyhow::Result<(String, PathBuf)> {
    let path = script_path(results, name);
    write_atomically(&path, script_text.as_bytes())?;
    let output = run_tool("sbatch", &["--parsable", &path.display().to_string()])?;
    if !output.status.success() {
        std::fs::remove_file(&path).ok();
        bail!("sbatch refused the job array: {}", last_words(&output));
    }
    // `--parsable` prints `<job id>` or `<job id>;<cluster>`.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let id = stdout.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed no job id: {stdout:?}");
    }
    Ok((id, path))
}

/// Where the script of the submission `name` goes.
pub fn script_path(results: &Path, name: &str) -> PathBuf {
    results.join("slurm").join(format!("{name}.sh"))
}

/// Waits until Slurm no longer lists any task of job `id`.
pub fn wait_for(id: &str, poll: Duration) -> anyhow::Result<()> {
    let mut failures = 0;
    loop {
        let output = run_tool("squeue", &["--noheader", "--jobs", id, "--format=%i"])?;
        if output.status.success() {
            failures = 0;
            if String::from_utf8_lossy(&output.stdout).trim().is_empty() {
                return Ok(());
            }
        } else {
            // Finished jobs can briefly be unknown to squeue ("Invalid job id"): done.
            let words = last_words(&output);
            if words.contains("Invalid job id") {
                return Ok(());
            }
            failures += 1;
            if failures >= 10 {
                bail!("squeue kept failing while waiting for job {id}: {words}");
            }
        }
        std::thread::sleep(poll);
    }
}

/// A submitted job array: its id and the run id of each task, by array index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub job_id: String,
    pub runs: Vec<String>,
}

/// Where the submission `name` is remembered.
fn submission_path(results: &Path, name: &str) -> PathBuf {
    results.join("slurm").join(format!("{name}.json"))
}

/// Remembers the submission `name` of `runs` as job `job_id`.
pub fn save_submission(results: &Path, name: &str, job_id: &str, runs: &[MissingRun]) -> anyhow::Result<()> {
    let submission =
        Submission { job_id: job_id.to_string(), runs: runs.iter().map(|run| run_record::run_id(&run.config)).collect() };
    write_json_atomically(&submission_path(results, name), &submission)
}

/// Every submission remembered under `results` (unreadable files are skipped).
pub fn submissions(results: &Path) -> Vec<Submission> {
    let Ok(entries) = std::fs::read_dir(results.join("slurm")) else { return Vec::new() };
    entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .filter_map(|path| serde_json::from_slice(&read_bounded(&path, limit::SMALL_TEXT).ok()?).ok())
        .collect()
}

/// Slurm's query commands, by name or path (tests give stand-ins).
#[derive(Debug, Clone)]
pub struct Tools {
    pub squeue: String,
    pub sacct: String,
}

impl Default for Tools {
    fn default() -> Self {
        Tools { squeue: "squeue".into(), sacct: "sacct".into() }
    }
}

/// The array indices of job `id` that Slurm still lists (pending, running, ...); none
/// when squeue does not know the job or cannot be run.
fn listed_tasks(tools: &Tools, id: &str) -> HashSet<usize> {
    let Ok(output) = run_tool(&tools.squeue, &["--noheader", "--array", "--jobs", id, "--format=%i"]) else {
        return HashSet::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().strip_prefix(id)?.strip_prefix('_')?.parse().ok())
        .collect()
}

/// The run ids of every remembered task Slurm still lists: submitting them again would run
/// them twice.
pub fn in_flight(results: &Path, tools: &Tools) -> HashSet<String> {
    submissions(results)
        .into_iter()
        .flat_map(|submission| {
            let listed = listed_tasks(tools, &submission.job_id);
            submission.runs.into_iter().enumerate().filter(move |(i, _)| listed.contains(i)).map(|(_, run)| run)
        })
        .collect()
}

/// Why Slurm ended task `index` of job `id`, from `sacct` (`None` without accounting).
fn accounted_end(tools: &Tools, id: &str, index: usize) -> Option<(String, f64)> {
    let task = format!("{id}_{index}");
    let output =
        run_tool(&tools.sacct, &["--noheader", "--parsable2", "--allocations", "--jobs", &task, "--format=State,ElapsedRaw"])
            .ok()
            .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text.lines().find(|l| !l.trim().is_empty())?.split('|');
    let state = fields.next()?.split_whitespace().next()?.to_string();
    let seconds = fields.next().and_then(|s| s.trim().parse().ok()).unwrap_or(0.0);
    Some((state, seconds))
}

/// The failure of a task that ended without a record: Slurm's state where accounted, else
/// what Slurm wrote into its output file (`CANCELLED ... DUE TO TIME LIMIT`, an
/// `oom_kill` event), else its last line.
fn lost_cause(accounted: Option<(String, f64)>, output: &str, seconds: f64) -> Failure {
    let last = crate::orchestrate::child::last_line(output);
    match accounted {
        Some((state, seconds)) => match state.as_str() {
            "TIMEOUT" | "DEADLINE" => Failure::TimedOut { seconds },
            "OUT_OF_MEMORY" => Failure::OutOfMemory { detail: format!("Slurm: OUT_OF_MEMORY; last output: {last}") },
            other => Failure::Crashed { detail: format!("Slurm: {other}, without a record; last output: {last}") },
        },
        None if output.contains("DUE TO TIME LIMIT") => Failure::TimedOut { seconds },
        None if output.contains("oom_kill") || output.contains("Exceeded job memory limit") => {
            Failure::OutOfMemory { detail: format!("Slurm killed the task for memory; last output: {last}") }
        }
        None => Failure::Crashed {
            detail: format!("the Slurm task ended without a record (no accounting to say why); last output: {last}"),
        },
    }
}

/// Gives every task of a remembered submission that Slurm no longer lists, that started
/// (its run folder holds `config.json`) and left no record, a failed record with the
/// cause; returns the run ids recorded so.
pub fn record_lost(results: &Path, tools: &Tools) -> anyhow::Result<Vec<String>> {
    let mut recorded_lost = Vec::new();
    for submission in submissions(results) {
        let listed = listed_tasks(tools, &submission.job_id);
        for (index, run_id) in submission.runs.iter().enumerate() {
            let dir = run_record::run_dir(results, run_id);
            if listed.contains(&index)
                || dir.join("result.json").exists()
                || crate::records::claim::held_elsewhere(&dir).is_some()
            {
                continue;
            }
            let Ok(config) = RunConfig::load(&dir.join("config.json")) else { continue };
            // The task's stdout, then its stderr (where slurmstepd says why it cancelled).
            let file = |ext: &str| dir.join(format!("slurm-{}_{index}.{ext}", submission.job_id));
            let out = file("out");
            let output = ["out", "err"].map(|ext| read_text_bounded(&file(ext), limit::LOG).unwrap_or_default()).join("\n");
            let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
            let seconds = match (modified(&dir.join("config.json")), modified(&out)) {
                (Some(start), Some(end)) => end.duration_since(start).map(|d| d.as_secs_f64()).unwrap_or(0.0),
                _ => 0.0,
            };
            let failure = lost_cause(accounted_end(tools, &submission.job_id, index), &output, seconds);
            let record = RunRecord::failed(&config, failure, seconds);
            write_json_atomically(&dir.join("result.json"), &record)?;
            recorded_lost.push(run_id.clone());
        }
    }
    Ok(recorded_lost)
}

fn run_tool(tool: &str, args: &[&str]) -> anyhow::Result<Output> {
    Command::new(tool).args(args).output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!(
            "`{tool}` was not found on PATH: Slurm's client commands are not installed here (`--dry-run` writes the \
             script without submitting it)"
        ),
        _ => anyhow::Error::new(e).context(format!("running {tool}")),
    })
}

/// The last non-empty line of a tool's stderr (or stdout), for error messages.
fn last_words(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    stderr.lines().chain(stdout.lines()).rfind(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::device_name::DeviceName;
    use lra_tasks::{Preset, Task};

    fn runs() -> Vec<MissingRun> {
        ["transformer", "linear"]
            .iter()
            .enumerate()
            .map(|(i, model)| MissingRun {
                config: RunConfig::resolve(Task::Listops, Preset::Tiny, model, 0, DeviceName::Flex).unwrap(),
                failed_before: i == 1,
            })
            .collect()
    }

    #[test]
    fn the_script_has_one_task_per_run_throttled_with_absolute_paths_and_logs_beside_each_run() {
        let paths = Paths { exe: "/opt/lra/bin/lra".into(), results: "/shared/my results".into(), data: "/shared/data".into() };
        let options = SlurmOptions {
            partition: Some("gpu".into()),
            time: Some("01:00:00".into()),
            cpus_per_task: Some(4),
            memory: Some("8G".into()),
            gres: Some("gpu:1".into()),
            max_parallel: Some(3),
        };
        let runs = runs();
        let text = script(&runs, &paths, &options, "sweep-1");
        for line in [
            "#SBATCH --array=0-1%3",
            "#SBATCH --partition=\"gpu\"",
            "#SBATCH --time=\"01:00:00\"",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --mem=\"8G\"",
            "#SBATCH --gres=\"gpu:1\"",
            "#SBATCH --output=\"/shared/my results/slurm/sweep-1-%A_%a.out\"",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        for (i, run) in runs.iter().enumerate() {
            let dir = format!("/shared/my results/runs/{}", run_record::run_id(&run.config));
            let branch: Vec<&str> = text.lines().skip_while(|l| !l.starts_with(&format!("  {i})"))).take(3).collect();
            assert!(branch[1].contains(&format!("mkdir -p '{dir}'")), "{branch:?}");
            let config = format!("/shared/my results/configs/{}.json", run_record::run_id(&run.config));
            assert!(branch[2].starts_with(&format!("    exec /opt/lra/bin/lra run --config '{config}'")), "{branch:?}");
            assert!(branch[2].contains("--results '/shared/my results' --data /shared/data"), "{branch:?}");
            assert!(branch[2].contains(&format!(">'{dir}/slurm-'\"${{SLURM_ARRAY_JOB_ID}}\"'_{i}.out'")), "{branch:?}");
            // A run that failed before reruns with --rerun-failed: its failed record must not make it skip.
            assert_eq!(branch[2].contains("--rerun-failed"), run.failed_before, "{branch:?}");
        }
        // Bash accepts it.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("script.sh");
        std::fs::write(&file, &text).unwrap();
        let status = Command::new("bash").arg("-n").arg(&file).status().unwrap();
        assert!(status.success());
    }

    #[test]
    fn paths_run_nothing_in_the_script_and_values_that_would_end_a_line_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A results folder whose name holds a command substitution, a quote and a backtick.
        let results = dir.path().join("r$(touch pwned)'x`touch pwned2`");
        let paths = Paths { exe: "/bin/true".into(), results: results.clone(), data: dir.path().join("data") };
        let runs = runs();
        let text = script(&runs, &paths, &SlurmOptions::default(), "sweep-1");
        let file = dir.path().join("script.sh");
        std::fs::write(&file, &text).unwrap();
        for task in 0..runs.len() {
            let status = Command::new("bash")
                .arg(&file)
                .current_dir(dir.path())
                .env("SLURM_ARRAY_TASK_ID", task.to_string())
                .env("SLURM_ARRAY_JOB_ID", "7")
                .status()
                .unwrap();
            assert!(status.success(), "task {task}");
        }
        assert!(!dir.path().join("pwned").exists() && !dir.path().join("pwned2").exists(), "{text}");
        // The run folders were made under the literal name, with the task's log inside.
        let run_dir = run_record::run_dir(&results, &run_record::run_id(&runs[0].config));
        assert!(run_dir.join("slurm-7_0.out").is_file());
        // A newline would end the directive block: refused, naming the option.
        let bad = SlurmOptions { time: Some("1:00:00\n#SBATCH --mem=1T".into()), ..SlurmOptions::default() };
        assert!(bad.check().unwrap_err().to_string().contains("--time"));
        let bad_paths = Paths { results: "/tmp/a\nb".into(), ..paths };
        assert!(bad_paths.check().unwrap_err().to_string().contains("--results"));
    }

    /// A sweep on a GPU asks for one GPU per array task unless --gres says otherwise, and
    /// hands no task a placement: Slurm gives each its own GPU, its device 0.
    #[test]
    fn each_task_of_a_gpu_sweep_asks_for_a_gpu_of_its_own() {
        assert_eq!(gres_of(DeviceName::Cuda(0), None).as_deref(), Some("gpu:1"));
        assert_eq!(gres_of(DeviceName::Wgpu(None), None).as_deref(), Some("gpu:1"));
        assert_eq!(gres_of(DeviceName::Flex, None), None, "a CPU sweep asks for no GPU");
        assert_eq!(gres_of(DeviceName::Cuda(0), Some("gpu:a100:1".into())).as_deref(), Some("gpu:a100:1"));
        assert_eq!(gres_of(DeviceName::Wgpu(None), Some("none".into())), None, "e.g. wgpu on a software Vulkan");

        let paths = Paths { exe: "/opt/lra/bin/lra".into(), results: "/shared/results".into(), data: "/shared/data".into() };
        let gpu_runs: Vec<MissingRun> = ["transformer", "linear"]
            .iter()
            .map(|model| MissingRun {
                config: RunConfig::resolve(Task::Listops, Preset::Tiny, model, 0, DeviceName::Cuda(0)).unwrap(),
                failed_before: false,
            })
            .collect();
        let options = SlurmOptions { gres: gres_of(DeviceName::Cuda(0), None), ..SlurmOptions::default() };
        let text = script(&gpu_runs, &paths, &options, "sweep-2");
        assert_eq!(text.lines().filter(|l| l.starts_with("#SBATCH --gres")).collect::<Vec<_>>(), ["#SBATCH --gres=\"gpu:1\""]);
        assert!(!text.contains("--placed-on"), "{text}");
        let cpu = SlurmOptions { gres: gres_of(DeviceName::Flex, None), ..SlurmOptions::default() };
        assert!(!script(&runs(), &paths, &cpu, "sweep-3").contains("--gres"));
    }

    #[test]
    fn missing_runs_are_the_absent_and_the_failed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let configs: Vec<RunConfig> = runs().into_iter().map(|r| r.config).collect();
        let failed = RunRecord::failed(&configs[1], run_record::Failure::Panicked { message: "boom".into() }, 1.0);
        let failed_path = run_record::result_path(dir.path(), &configs[1]);
        write_json_atomically(&failed_path, &failed).unwrap();
        let missing = missing_runs(dir.path(), configs.clone(), &HashSet::new());
        assert_eq!(missing.len(), 2);
        assert!(!missing[0].failed_before && missing[1].failed_before);
    }

    /// A stand-in for a Slurm command: a script printing `output`.
    fn stand_in(dir: &Path, name: &str, output: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn tasks_slurm_still_lists_are_not_submitted_again_and_killed_ones_get_a_failed_record_with_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        let configs: Vec<RunConfig> = ["transformer", "linear", "local", "sparse", "performer"]
            .iter()
            .map(|m| RunConfig::resolve(Task::Listops, Preset::Tiny, m, 0, DeviceName::Flex).unwrap())
            .collect();
        let runs: Vec<MissingRun> = configs.iter().map(|c| MissingRun { config: c.clone(), failed_before: false }).collect();
        save_submission(&results, "sweep-1", "77", &runs).unwrap();
        // Tasks 0 and 1 are pending or running; 2, 3 and 4 ended; 2 and 3 had started
        // (their config.json is there), 4 never did.
        let squeue = stand_in(dir.path(), "squeue", "77_0\n77_1");
        for (i, out) in [(2, "slurmstepd: error: *** JOB 77 ON n1 CANCELLED AT 2026 DUE TO TIME LIMIT ***"), (3, "training")] {
            let run = run_record::run_dir(&results, &run_record::run_id(&configs[i]));
            write_json_atomically(&run.join("config.json"), &configs[i]).unwrap();
            std::fs::write(run.join(format!("slurm-77_{i}.err")), out).unwrap();
        }
        let no_accounting = stand_in(dir.path(), "sacct", "");
        let tools = Tools { squeue: squeue.clone(), sacct: no_accounting };
        let flying = in_flight(&results, &tools);
        assert_eq!(flying, [0, 1].iter().map(|&i| run_record::run_id(&configs[i])).collect());
        let missing = missing_runs(&results, configs.clone(), &flying);
        assert_eq!(missing.len(), 3, "the two listed tasks are not submitted again");

        let lost = record_lost(&results, &tools).unwrap();
        assert_eq!(lost, [2, 3].iter().map(|&i| run_record::run_id(&configs[i])).collect::<Vec<_>>());
        let failure =
            |i: usize| run_record::read_record(&run_record::result_path(&results, &configs[i])).unwrap().outcome.failure.unwrap();
        assert!(matches!(failure(2), Failure::TimedOut { .. }), "{:?}", failure(2));
        assert!(matches!(failure(3), Failure::Crashed { ref detail } if detail.contains("no accounting")), "{:?}", failure(3));
        assert!(!run_record::result_path(&results, &configs[4]).exists(), "a task that never started is resubmitted instead");

        // Where accounting is on, Slurm's state says why.
        std::fs::remove_file(run_record::result_path(&results, &configs[3])).unwrap();
        let accounted = Tools { squeue, sacct: stand_in(dir.path(), "sacct-oom", "OUT_OF_MEMORY|42") };
        record_lost(&results, &accounted).unwrap();
        assert!(
            matches!(failure(3), Failure::OutOfMemory { ref detail } if detail.contains("OUT_OF_MEMORY")),
            "{:?}",
            failure(3)
        );
    }
}
