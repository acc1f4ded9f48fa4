//! A sweep killed at any moment and started again, and two sweeps over one folder: every
//! configuration ends trained and recorded exactly once, nothing is left running, and no
//! staging file stays behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;
use common::wait_until_gone;

const MODELS: &str = "transformer,linear,local,sparse";

fn sweep(results: &Path, data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lra"));
    command
        .args(["sweep", "--preset", "tiny", "--tasks", "listops", "--models", MODELS, "--seeds", "3", "--results"])
        .arg(results)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(results.join("report"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Every run folder, with the count of trainings started and finished in its log.
fn trainings(results: &Path) -> Vec<(PathBuf, usize, usize)> {
    let Ok(runs) = std::fs::read_dir(results.join("runs")) else { return Vec::new() };
    runs.map(|entry| {
        let dir = entry.unwrap().path();
        let log = std::fs::read_to_string(dir.join("run.log")).unwrap_or_default();
        let started = log.lines().filter(|l| l.starts_with("[run ") && l.ends_with("] training")).count();
        let finished = log.lines().filter(|l| l.starts_with("[run ") && l.ends_with("] recorded")).count();
        (dir, started, finished)
    })
    .collect()
}

/// Files a writer stages before renaming (`.writing-*`, `.cache-*`, `.extracting-*`).
fn staging_left(folder: &Path) -> Vec<PathBuf> {
    let mut left = Vec::new();
    let mut folders = vec![folder.to_path_buf()];
    while let Some(dir) = folders.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if [".writing-", ".cache-", ".extracting-"].iter().any(|p| name.starts_with(p)) {
                left.push(path.clone());
            }
            if path.is_dir() {
                folders.push(path);
            }
        }
    }
    left
}

fn assert_every_run_recorded_once(results: &Path) {
    let runs = trainings(results);
    assert_eq!(runs.len(), 12, "{runs:?}");
    for (dir, _, finished) in &runs {
        // Once, or not at all where a kill fell between the record's rename and the line
        // that says so: never twice.
        assert!(*finished <= 1, "{} was trained to its record {finished} times", dir.display());
        let record = lra_harness::records::run_record::read_record(&dir.join("result.json")).unwrap();
        assert!(record.is_ok(), "{}: {:?}", dir.display(), record.outcome.failure);
    }
}

#[test]
fn a_sweep_killed_at_ten_moments_and_restarted_records_every_run_once_and_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (results, data) = (root.path().join("results"), root.path().join("data"));
    // Each restart is killed after a short while, so that the sweep (12 runs, a benchmark
    // of 8 cells and the report: some seconds on a 2-core machine) gets through its runs
    // and into its benchmark kill by kill; fixed, so that a failure can be replayed.
    let moments_ms = [150, 250, 350, 200, 300, 400, 175, 275, 375, 450];
    let mut killed_running = 0;
    for wait in moments_ms {
        let mut child: Child = sweep(&results, &data).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(wait));
        if child.try_wait().unwrap().is_none() {
            killed_running += 1;
        }
        let _ = child.kill();
        child.wait().unwrap();
        wait_until_gone(&results);
    }
    assert!(killed_running >= 8, "only {killed_running} of the 10 kills caught the sweep running");
    eprintln!("{killed_running} of 10 kills caught the sweep running; trainings started per run: {:?}", {
        let mut started: Vec<usize> = trainings(&results).iter().map(|(_, s, _)| *s).collect();
        started.sort_unstable();
        started
    });
    let status = sweep(&results, &data).status().unwrap();
    assert!(status.success(), "the last sweep: {status}");
    wait_until_gone(&results);
    assert_every_run_recorded_once(&results);
    assert!(results.join("report").join("report.md").is_file());
    assert_eq!(staging_left(root.path()), Vec::<PathBuf>::new());
}

#[test]
fn two_sweeps_over_one_folder_train_each_configuration_once() {
    let root = tempfile::tempdir().unwrap();
    let (results, data) = (root.path().join("results"), root.path().join("data"));
    let mut first = sweep(&results, &data).arg("--no-bench").spawn().unwrap();
    let mut second = sweep(&results, &data).arg("--no-bench").spawn().unwrap();
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());
    for (dir, started, _) in trainings(&results) {
        assert_eq!(started, 1, "{} was trained {started} times", dir.display());
    }
    assert_every_run_recorded_once(&results);
}
