//! `lra sweep --slurm` against a real Slurm: the tests marked `ignore` need a running
//! cluster (`.ci/slurm-up DIR` starts a single-node one on this machine and prints the
//! `SLURM_CONF` to export; `.ci/run` does so and runs them with `--include-ignored`).

use std::path::Path;
use std::process::{Command, Output};

use lra_harness::records::run_record::{RunRecord, read_record};

fn lra(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lra"));
    command.args(args).current_dir(dir);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the lra binary runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Every run folder's record, with the files beside it.
fn runs(results: &Path) -> Vec<(RunRecord, Vec<String>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(results.join("runs")).unwrap() {
        let dir = entry.unwrap().path();
        let files = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        out.push((read_record(&dir.join("result.json")).expect("every run folder holds a valid record"), files));
    }
    out
}

const SWEEP: [&str; 8] =
    ["sweep", "--slurm", "--preset", "tiny", "--models", "transformer,local", "--tasks", "listops,pathfinder"];

#[test]
fn without_slurm_commands_the_error_says_so_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let empty_path = dir.path().join("bin");
    std::fs::create_dir(&empty_path).unwrap();
    let out = lra(&SWEEP, dir.path(), &[("PATH", empty_path.to_str().unwrap())]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not found on PATH: Slurm's client commands are not installed"), "{}", text(&out));
    assert!(!dir.path().join("results").exists(), "nothing written to the results folder");
}

/// A sweep on a GPU hands Slurm tasks that each ask for a GPU of their own (no --gres
/// given); --devices, which places runs on the GPUs of this machine, is refused beside
/// --slurm. Neither needs Slurm: a dry run only writes the script.
#[test]
fn a_gpu_sweep_on_slurm_asks_for_a_gpu_per_task_and_refuses_devices() {
    let dir = tempfile::tempdir().unwrap();
    let gpu = [
        "sweep",
        "--slurm",
        "--dry-run",
        "--device",
        "wgpu",
        "--preset",
        "tiny",
        "--models",
        "transformer",
        "--tasks",
        "listops",
    ];
    let out = lra(&gpu, dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let script = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(script.lines().any(|l| l == "#SBATCH --gres=\"gpu:1\""), "{script}");
    assert!(!script.contains("--placed-on"), "{script}");
    let given = lra(&[&gpu[..], &["--gres", "gpu:a100:1"]].concat(), dir.path(), &[]);
    assert!(String::from_utf8_lossy(&given.stdout).lines().any(|l| l == "#SBATCH --gres=\"gpu:a100:1\""), "{}", text(&given));

    let elsewhere = tempfile::tempdir().unwrap();
    let out = lra(&[&gpu[..], &["--devices", "0,1"]].concat(), elsewhere.path(), &[]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("--devices 0,1 with --slurm: Slurm places each array task on its own GPU"), "{said}");
    assert!(!elsewhere.path().join("results").exists(), "nothing written to the results folder");
    // A task's one GPU is its device 0: a higher number would name a GPU the task has not.
    let numbered: Vec<&str> = gpu.iter().map(|&word| if word == "wgpu" { "wgpu:2" } else { word }).collect();
    let out = lra(&numbered, elsewhere.path(), &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--device wgpu:2 with --slurm: each array task gets one GPU"), "{}", text(&out));
    assert!(!elsewhere.path().join("results").exists(), "nothing written to the results folder");
}

#[test]
#[ignore = "needs Slurm's client commands (Debian slurm-wlm)"]
fn an_unreachable_controller_gives_a_clear_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("slurm.conf");
    // A controller on a port where nothing listens.
    std::fs::write(
        &conf,
        "ClusterName=nowhere\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=9\nAuthType=auth/none\n\
         NodeName=localhost CPUs=1 State=UNKNOWN\nPartitionName=p Nodes=localhost Default=YES State=UP\n",
    )
    .unwrap();
    let out = lra(&SWEEP, dir.path(), &[("SLURM_CONF", conf.to_str().unwrap())]);
    assert!(!out.status.success());
    assert!(text(&out).contains("the Slurm controller did not answer"), "{}", text(&out));
    assert!(!dir.path().join("results").exists(), "nothing written to the results folder");
}

#[test]
#[ignore = "needs a running Slurm cluster: .ci/slurm-up DIR starts one"]
fn a_sweep_runs_as_a_job_array_and_resubmission_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");

    // First submission, one run made to fail on purpose.
    let first = lra(
        &[&SWEEP[..], &["--wait", "--max-parallel", "2"]].concat(),
        dir.path(),
        &[("LRA_TEST_FAULT", "panic@pathfinder/local")],
    );
    assert!(first.status.success(), "{}", text(&first));
    let job_id = String::from_utf8_lossy(&first.stdout).trim().to_string();
    assert!(!job_id.is_empty() && job_id.chars().all(|c| c.is_ascii_digit()), "the job id is printed: {job_id:?}");
    let recorded = runs(&results);
    assert_eq!(recorded.len(), 8, "2 tasks x (3 seeds of the baseline + 1 of local)");
    for (record, files) in &recorded {
        // Each task's output is kept beside its run.
        assert!(files.iter().any(|f| f.starts_with(&format!("slurm-{job_id}_")) && f.ends_with(".err")), "{files:?}");
        let failed = (record.task.as_str(), record.model.as_str()) == ("pathfinder", "local");
        assert_eq!(record.is_ok(), !failed, "{} {}", record.task, record.model);
    }
    let report = std::fs::read_to_string(dir.path().join("reports/report.md")).unwrap();
    assert!(report.contains("FAIL (panicked"), "{report}");

    // The second call submits exactly the failed run.
    let dry = lra(&[&SWEEP[..], &["--dry-run"]].concat(), dir.path(), &[]);
    assert!(dry.status.success(), "{}", text(&dry));
    let script = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(script.contains("#SBATCH --array=0-0\n"), "{script}");
    let lines: Vec<&str> = script.lines().filter(|l| l.trim_start().starts_with("exec ")).collect();
    assert_eq!(lines.len(), 1, "{script}");
    assert!(lines[0].contains("--rerun-failed"), "{script}");
    // It is handed the failed run's configuration, as the sweep resolved it.
    let handed = lines[0].split_whitespace().skip_while(|w| *w != "--config").nth(1).expect("a --config argument");
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(handed.trim_matches('\'')).unwrap()).unwrap();
    assert_eq!((config["task"]["name"].as_str(), config["model"].as_str()), (Some("pathfinder"), Some("local")), "{script}");

    let second = lra(&[&SWEEP[..], &["--wait"]].concat(), dir.path(), &[]);
    assert!(second.status.success(), "{}", text(&second));
    assert!(text(&second).contains("submitted 1 runs"), "{}", text(&second));
    let recorded = runs(&results);
    assert_eq!(recorded.len(), 8, "every run recorded once");
    assert!(recorded.iter().all(|(r, _)| r.is_ok()));
    let report = std::fs::read_to_string(dir.path().join("reports/report.md")).unwrap();
    assert!(!report.contains("FAIL (panicked"), "{report}");

    // Nothing is missing now: a third call submits nothing.
    let third = lra(&SWEEP, dir.path(), &[]);
    assert!(third.status.success() && text(&third).contains("nothing to submit"), "{}", text(&third));
}
