//! The `lra` binary end to end: what a user types, what lands on disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lra_harness::execute::device::open;
use lra_harness::execute::train::train;
use lra_harness::records::device_name::DeviceName;
use lra_harness::records::run_config::RunConfig;
use lra_harness::records::run_record::{RunRecord, read_metrics_csv, read_record};
use lra_tasks::{Preset, Task};

mod common;
use common::Silent;

fn lra(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lra")).args(args).output().expect("the lra binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The one run folder under `results`.
fn only_run(results: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(results.join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.into_iter().next().unwrap()
}

/// A tiny ListOps run recording under `results`, its data prepared under `results/data`
/// (not in the working directory).
fn tiny_run(results: &Path, extra: &[&str]) -> Output {
    let data = results.join("data");
    let (results, data) = (results.to_str().unwrap(), data.to_str().unwrap());
    let mut args = vec![
        "run",
        "--task",
        "listops",
        "--model",
        "transformer",
        "--preset",
        "tiny",
        "--seed",
        "1",
        "--results",
        results,
        "--data",
        data,
        "--quiet",
    ];
    args.extend_from_slice(extra);
    lra(&args)
}

#[test]
fn a_tiny_run_writes_its_three_files_and_repeats_bit_for_bit() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let out = tiny_run(first.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tiny_run(second.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    let (a, b) = (only_run(first.path()), only_run(second.path()));
    assert_eq!(a.file_name(), b.file_name(), "the same configuration has the same run id");
    for file in ["config.json", "metrics.csv", "result.json"] {
        assert!(a.join(file).is_file(), "{file} missing");
    }
    // The loss curve and the accuracies are identical, bit for bit (throughput is not).
    assert_eq!(curve(&a), curve(&b));
    assert!(!curve(&a).is_empty());
    let (ra, rb) = (read_record(&a.join("result.json")).unwrap(), read_record(&b.join("result.json")).unwrap());
    assert_eq!(ra.status(), "ok");
    assert_eq!(
        (ra.outcome.test_accuracy, ra.outcome.best_val_accuracy, ra.outcome.final_train_loss),
        (rb.outcome.test_accuracy, rb.outcome.best_val_accuracy, rb.outcome.final_train_loss)
    );
    check_record(&ra);
    assert_eq!(ra.placed_on.as_deref(), Some("flex"), "a run records the device it computed on");

    // The saved configuration repeats the run into the same folder name.
    let third = tempfile::tempdir().unwrap();
    let config = a.join("config.json");
    let out = lra(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--results",
        third.path().to_str().unwrap(),
        "--data",
        third.path().join("data").to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = only_run(third.path());
    assert_eq!(c.file_name(), a.file_name());
    assert_eq!(curve(&c), curve(&a));
}

/// The metrics of a run folder without the timing column: step, loss, lr, train and
/// validation accuracy, as exact bit patterns.
fn curve(run: &Path) -> Vec<(usize, u64, u64, u64, Option<u64>)> {
    read_metrics_csv(&run.join("metrics.csv"))
        .unwrap()
        .into_iter()
        .map(|m| (m.step, m.loss.to_bits(), m.lr.to_bits(), m.train_acc.to_bits(), m.val_acc.map(f64::to_bits)))
        .collect()
}

fn check_record(record: &RunRecord) {
    assert_eq!(
        (record.task.as_str(), record.model.as_str(), record.preset.as_str(), record.seed),
        ("listops", "transformer", "tiny", 1)
    );
    assert_eq!(record.outcome.steps, 20);
    for accuracy in [
        record.outcome.test_accuracy.unwrap(),
        record.outcome.best_val_accuracy.unwrap(),
        record.outcome.test_majority_rate.unwrap(),
    ] {
        assert!((0.0..=1.0).contains(&accuracy));
    }
    assert!(
        record.outcome.train_steps_per_second > 0.0
            && record.outcome.train_tokens_per_second > record.outcome.train_steps_per_second
    );
    assert!(record.outcome.peak_memory_bytes > 0, "the counting allocator measured nothing");
    assert!(record.outcome.memory_source.starts_with("heap"));
    assert!(record.outcome.parameters > 0);
    assert_eq!(record.data_source, "generated");
    assert_eq!(record.environment.burn_version, "0.22.1");
    // The step's operations are the configuration's count; the rate and MFU follow from
    // the measured speed and the recorded peak.
    let work = record.utilisation;
    assert_eq!(work.step_flops, Some(record.config.step_flops()));
    let achieved = work.achieved_flops_per_second.unwrap();
    assert!((achieved - work.step_flops.unwrap() * record.outcome.train_steps_per_second).abs() <= 1e-9 * achieved);
    match &record.environment.peak {
        // serde_json reads a float back to within one unit in the last place.
        Some(peak) => assert!((work.mfu.unwrap() - achieved / peak.flops_per_second).abs() <= 1e-12 * work.mfu.unwrap()),
        None => assert_eq!(work.mfu, None),
    }
}

#[test]
fn a_finished_configuration_is_not_run_twice_without_force() {
    let results = tempfile::tempdir().unwrap();
    assert!(tiny_run(results.path(), &[]).status.success());
    let record = only_run(results.path()).join("result.json");
    let written = std::fs::metadata(&record).unwrap().modified().unwrap();
    let out = tiny_run(results.path(), &[]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("already holds a record"), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&record).unwrap().modified().unwrap(), written);
}

#[test]
fn a_record_of_another_commit_is_kept_unless_stale_records_are_rerun() {
    let results = tempfile::tempdir().unwrap();
    assert!(tiny_run(results.path(), &[]).status.success());
    let path = only_run(results.path()).join("result.json");
    let mut record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let current = record["environment"]["git_commit"].clone();
    record["environment"]["git_commit"] = "an-older-commit".into();
    std::fs::write(&path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    let kept = tiny_run(results.path(), &["--rerun-failed"]);
    assert!(stderr(&kept).contains("already holds a record"), "{}", stderr(&kept));
    let rerun = tiny_run(results.path(), &["--rerun-stale"]);
    assert!(rerun.status.success() && !stderr(&rerun).contains("already holds"), "{}", stderr(&rerun));
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(record["environment"]["git_commit"], current);
}

#[test]
fn two_processes_given_one_configuration_train_it_once() {
    let results = tempfile::tempdir().unwrap();
    let (first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(|| tiny_run(results.path(), &[]));
        let b = scope.spawn(|| tiny_run(results.path(), &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let trained = |out: &Output| out.status.success() && stdout(out).contains("recorded in");
    // One trains; the other finds the claim held (exit 3) or, starting after it, the record.
    let (winner, other) =
        if trained(&first) && !stderr(&first).contains("already holds") { (first, second) } else { (second, first) };
    assert!(trained(&winner), "{}", stderr(&winner));
    let left = other.status.code() == Some(3) && stderr(&other).contains("another process is training this configuration");
    let found = other.status.success() && stderr(&other).contains("already holds a record");
    assert!(left || found, "{:?}: {}", other.status, stderr(&other));
    assert_eq!(std::fs::read_dir(results.path().join("runs")).unwrap().count(), 1);
}

#[test]
fn unknown_names_are_errors_that_list_the_valid_ones() {
    let cases: [(&[&str], &str); 5] = [
        (&["run", "--task", "listopz", "--model", "transformer"], "the tasks are: listops"),
        (&["run", "--task", "listops", "--model", "transformr"], "the models are: transformer"),
        (&["run", "--task", "listops", "--model", "transformer", "--preset", "huge"], "the presets are: tiny, quick, lra"),
        (&["run", "--task", "listops", "--model", "transformer", "--device", "tpu"], "the devices are: flex, ndarray, wgpu"),
        (&["run", "--model", "transformer"], "needs --task and --model"),
    ];
    for (args, needle) in cases {
        let out = lra(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// A CUDA device this binary cannot use: built without the feature, no driver here, or
/// (on a machine with a GPU) a device number past the last. One line naming what is wrong,
/// a non-zero exit, and nothing under --results, from every command that takes a device.
#[test]
fn a_cuda_device_that_cannot_run_here_is_refused_before_anything_is_written() {
    let has_driver = Path::new("/proc/driver/nvidia/version").exists();
    let (device, needle) = match (cfg!(feature = "cuda"), has_driver) {
        (false, _) => ("cuda", "--features gpu"),
        (true, false) => ("cuda", "NVIDIA driver"),
        (true, true) => ("cuda:4096", "CUDA device(s)"),
    };
    let results = tempfile::tempdir().unwrap();
    let r = results.path().to_str().unwrap();
    let commands: [&[&str]; 3] = [
        &["run", "--task", "listops", "--model", "transformer", "--preset", "tiny", "--device", device, "--results", r],
        &["sweep", "--preset", "tiny", "--tasks", "listops", "--models", "transformer", "--device", device, "--results", r],
        &["bench", "--lengths", "64", "--models", "transformer", "--device", device, "--results", r],
    ];
    for args in commands {
        let out = lra(args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert_eq!(std::fs::read_dir(results.path()).unwrap().count(), 0, "{args:?} wrote under --results");
    }
    let listed = lra(&["list", "devices"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let cuda = stdout(&listed).lines().find(|l| l.starts_with("cuda ")).map(str::to_string).unwrap_or_default();
    let expected = if has_driver && cfg!(feature = "cuda") { "available" } else { "not " };
    assert!(cuda.contains(expected), "{}", stdout(&listed));
}

/// The GPUs of a sweep (--devices) and the device of a run (--placed-on): every
/// contradiction refused with one line naming the flags and values, a non-zero exit, and
/// nothing written under --results; no GPU is needed to refuse them.
#[test]
fn device_lists_and_placements_that_contradict_the_device_are_refused_before_anything_is_written() {
    let results = tempfile::tempdir().unwrap();
    let r = results.path().to_str().unwrap();
    let sweep = |more: &[&str]| -> Vec<String> {
        ["sweep", "--preset", "tiny", "--tasks", "listops", "--models", "transformer", "--results", r]
            .iter()
            .chain(more)
            .map(|s| s.to_string())
            .collect()
    };
    let cases: [(Vec<String>, &[&str]); 8] = [
        (sweep(&["--device", "flex", "--devices", "0,1"]), &["--devices 0,1", "--device flex computes on the CPU"]),
        (sweep(&["--device", "ndarray", "--devices", "0"]), &["--devices 0", "--device ndarray"]),
        (sweep(&["--device", "cuda:3", "--devices", "0,1"]), &["--device cuda:3 and --devices 0,1"]),
        (sweep(&["--device", "wgpu:1", "--devices", "0,1"]), &["--device wgpu:1 and --devices 0,1"]),
        (sweep(&["--device", "wgpu", "--devices", "0,1,0"]), &["--devices 0,1,0", "device 0 is named twice"]),
        (sweep(&["--device", "wgpu", "--devices", ""]), &["--devices"]),
        (sweep(&["--device", "wgpu", "--devices", "1,0", "--jobs", "3"]), &["--jobs 3", "2 GPU(s)", "wgpu:1, wgpu:0"]),
        (
            ["run", "--task", "listops", "--model", "transformer", "--preset", "tiny", "--results", r, "--placed-on", "cuda:1"]
                .map(String::from)
                .to_vec(),
            &["--placed-on cuda:1", "its device is `flex`"],
        ),
    ];
    for (args, words) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_lra")).args(&args).output().unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        for word in words {
            assert!(err.contains(word), "{args:?}: {word:?} not in {err}");
        }
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(std::fs::read_dir(results.path()).unwrap().count(), 0, "{args:?} wrote under --results");
    }
}

#[test]
fn an_unknown_field_in_a_configuration_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = RunConfig::resolve(Task::Listops, Preset::Tiny, "transformer", 1, DeviceName::Flex).unwrap();
    let mut json: serde_json::Value = serde_json::to_value(&config).unwrap();
    json["task"]["training"]["learning_rate_typo"] = serde_json::json!(0.1);
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let results = dir.path().join("results");
    let out = lra(&["run", "--config", path.to_str().unwrap(), "--results", results.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown field `learning_rate_typo`"), "{err}");
    assert!(err.contains("config.json:"), "{err}");
    assert!(!results.exists(), "nothing is written for a bad configuration");
}

#[test]
fn one_training_step_on_wgpu_gives_a_finite_loss_and_a_pool_peak() {
    let mut config = RunConfig::resolve(Task::Listops, Preset::Tiny, "transformer", 1, DeviceName::Wgpu(None)).unwrap();
    config.task.training.steps = 1;
    config.task.training.warmup_steps_untimed = 0;
    let device = open(DeviceName::Wgpu(None)).expect("wgpu must be available (install mesa-vulkan-drivers without a GPU)");
    let data = tempfile::tempdir().unwrap();
    let splits = config.task.data.prepare(config.task.max_length, data.path()).unwrap();
    let (outcome, _) = train(&config, &splits, &device, &mut Silent);
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert!(outcome.final_train_loss.is_some_and(f64::is_finite));
    assert!(outcome.peak_memory_bytes > 0);
    assert!(outcome.memory_source.starts_with("device memory pool"), "{}", outcome.memory_source);
}

/// Every `result.json` under `results`, parsed (a torn or invalid record fails here).
fn records(results: &Path) -> Vec<RunRecord> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(results.join("runs")).unwrap() {
        let path = entry.unwrap().path().join("result.json");
        if path.exists() {
            out.push(read_record(&path).unwrap());
        }
    }
    out
}

#[test]
fn a_sweep_records_every_run_and_reports_a_failure_without_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let (results, reports, data) = (dir.path().join("results"), dir.path().join("reports"), dir.path().join("data"));
    let out = Command::new(env!("CARGO_BIN_EXE_lra"))
        .args(["sweep", "--preset", "tiny", "--models", "transformer,local,linear", "--tasks", "listops,pathfinder"])
        .args(["--results", results.to_str().unwrap(), "--out", reports.to_str().unwrap(), "--data", data.to_str().unwrap()])
        .env("LRA_TEST_FAULT", "panic@pathfinder/local")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let records = records(&results);
    assert_eq!(records.len(), 10, "2 tasks x (3 seeds of the baseline + 2 models)");
    let mut transformer_seeds: Vec<(&str, u64)> =
        records.iter().filter(|r| r.model == "transformer").map(|r| (r.task.as_str(), r.seed)).collect();
    transformer_seeds.sort();
    assert_eq!(
        transformer_seeds,
        [("listops", 0), ("listops", 1), ("listops", 2), ("pathfinder", 0), ("pathfinder", 1), ("pathfinder", 2)]
    );
    assert!(records.iter().filter(|r| r.model != "transformer").all(|r| r.seed == 0), "one seed of every other model");
    // Every run that trained says whether and when it left chance.
    assert!(records.iter().filter(|r| r.is_ok()).all(|r| r.outcome.left_chance_known()));
    let failed: Vec<&RunRecord> = records.iter().filter(|r| !r.is_ok()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].task.as_str(), failed[0].model.as_str()), ("pathfinder", "local"));
    assert!(failed[0].outcome.failure.as_ref().unwrap().to_string().contains("panicked"));

    let report = std::fs::read_to_string(reports.join("report.md")).unwrap();
    assert!(report.contains("FAIL (panicked"), "{report}");
    for file in ["report.html", "table1.csv", "table2.csv", "runs.csv", "curves_listops.png"] {
        assert!(reports.join(file).is_file(), "{file} missing");
    }
    // The baseline's three seeds give each task its noise floor.
    assert!(report.contains("| transformer seed spread (sample std; ‡ within twice it) |"), "{report}");
    // Figure 3 plots the models with a result on every averaged task, and explains its
    // absence otherwise.
    assert!(
        reports.join("figure3.png").is_file() != report.contains("Figure 3 is left out"),
        "Figure 3 is either drawn or its absence explained"
    );
    let html = std::fs::read_to_string(reports.join("report.html")).unwrap();
    assert!(html.contains("data:image/png;base64,"), "plots are embedded");
    // The sweep ends with the step benchmark of its models (Table 2), the Transformer first.
    let bench = bench_records(&results);
    assert_eq!(bench.len(), 1);
    let cells: Vec<(&str, u64)> = bench[0]["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["model"].as_str().unwrap(), m["length"].as_u64().unwrap()))
        .collect();
    assert_eq!(cells, [("transformer", 32), ("transformer", 64), ("local", 32), ("local", 64), ("linear", 32), ("linear", 64)]);
    assert!(report.contains("Table 2"), "{report}");

    // A second sweep finds everything recorded and runs nothing.
    let out = lra(&[
        "sweep",
        "--preset",
        "tiny",
        "--models",
        "transformer,local,linear",
        "--tasks",
        "listops,pathfinder",
        "--results",
        results.to_str().unwrap(),
        "--no-report",
        "--print-commands",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty(), "nothing is pending");
    assert!(stderr(&out).contains("kept 1 failed records"), "{}", stderr(&out));

    // --retry-failed runs the failed configuration again (no fault now) and replaces its record.
    let out = lra(&[
        "sweep",
        "--preset",
        "tiny",
        "--models",
        "local",
        "--tasks",
        "pathfinder",
        "--results",
        results.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--no-report",
        "--no-bench",
        "--retry-failed",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 to run"), "{}", stderr(&out));
    let after_retry = self::records(&results);
    assert_eq!(after_retry.len(), 10);
    assert!(after_retry.iter().all(RunRecord::is_ok), "the retried run succeeded and replaced the failure");
}

#[test]
fn a_run_that_dies_without_a_record_is_recorded_by_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let (results, data) = (dir.path().join("results"), dir.path().join("data"));
    let out = Command::new(env!("CARGO_BIN_EXE_lra"))
        .args(["sweep", "--preset", "tiny", "--models", "transformer", "--tasks", "listops", "--seeds", "1"])
        .args(["--no-report", "--no-bench"])
        .args(["--results", results.to_str().unwrap(), "--data", data.to_str().unwrap()])
        .env("LRA_TEST_FAULT", "abort@listops/transformer")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let records = records(&results);
    assert_eq!(records.len(), 1);
    let failure = records[0].outcome.failure.as_ref().expect("recorded as failed").to_string();
    assert!(failure.contains("aborted") && failure.contains("LRA_TEST_FAULT"), "{failure}");
}

#[test]
fn a_sweep_killed_at_any_point_and_restarted_records_every_run_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (results, data) = (dir.path().join("results"), dir.path().join("data"));
    let sweep = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lra"));
        command.args([
            "sweep",
            "--preset",
            "tiny",
            "--models",
            "transformer",
            "--tasks",
            "listops",
            "--seeds",
            "5",
            "--no-report",
        ]);
        command.args(["--results", results.to_str().unwrap(), "--data", data.to_str().unwrap()]);
        command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        command
    };
    // Killed at four points of its progress (not moments, which a slower or faster machine
    // would shift): the first run started; two, then four records written; the benchmark
    // that ends the sweep started.
    let count = |folder: &str, file: &str| {
        std::fs::read_dir(results.join(folder))
            .map(|entries| entries.flatten().filter(|e| file.is_empty() || e.path().join(file).exists()).count())
            .unwrap_or(0)
    };
    let points: [(&str, &dyn Fn() -> bool); 4] = [
        ("a run started", &|| count("runs", "") >= 1),
        ("two records written", &|| count("runs", "result.json") >= 2),
        ("four records written", &|| count("runs", "result.json") >= 4),
        ("the benchmark started", &|| count("bench", "") >= 1),
    ];
    for (point, reached) in points {
        let mut child = sweep().spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while !reached() {
            assert!(child.try_wait().unwrap().is_none(), "the sweep ended before {point}");
            assert!(std::time::Instant::now() < deadline, "no {point} within 300 s");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Its children die with it (a run still held would be left to them).
        common::wait_until_gone(&results);
        // Whatever was written so far is whole.
        for record in records(&results) {
            assert!(record.is_ok());
        }
    }
    assert!(sweep().status().unwrap().success());
    let records = records(&results);
    assert_eq!(records.len(), 5, "every seed recorded once");
    let mut seeds: Vec<u64> = records.iter().map(|r| r.seed).collect();
    seeds.sort();
    assert_eq!(seeds, [0, 1, 2, 3, 4]);
    // The benchmark that ends the sweep is one record, each cell measured once.
    let bench = bench_records(&results);
    assert_eq!(bench.len(), 1);
    let lengths: Vec<u64> = bench[0]["measurements"].as_array().unwrap().iter().map(|m| m["length"].as_u64().unwrap()).collect();
    assert_eq!(lengths, [32, 64]);
}

/// Every benchmark record under `results/bench/`, parsed.
fn bench_records(results: &std::path::Path) -> Vec<serde_json::Value> {
    let Ok(entries) = std::fs::read_dir(results.join("bench")) else { return Vec::new() };
    entries.map(|e| serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).expect("valid JSON")).collect()
}

#[test]
fn every_task_trains_end_to_end_at_the_tiny_preset() {
    let dir = tempfile::tempdir().unwrap();
    let (results, data) = (dir.path().join("results"), dir.path().join("data"));
    // Path-X has 16,384 tokens: a linear-cost model keeps the test small.
    let cases = [
        ("listops", "transformer", "generated"),
        ("text", "transformer", "synthetic stand-in"),
        ("retrieval", "transformer", "synthetic stand-in"),
        ("image", "transformer", "synthetic stand-in"),
        ("pathfinder", "transformer", "generated"),
        ("pathx", "linear", "generated"),
    ];
    for (task, model, source) in cases {
        let out = lra(&["run", "--task", task, "--model", model, "--preset", "tiny", "--quiet"]
            .into_iter()
            .chain(["--results", results.to_str().unwrap(), "--data", data.to_str().unwrap()])
            .collect::<Vec<_>>());
        assert!(out.status.success(), "{task}: {}", stderr(&out));
        if source == "synthetic stand-in" {
            assert!(stderr(&out).contains("synthetic stand-in"), "{task}: the console must say so");
        }
    }
    let records = records(&results);
    assert_eq!(records.len(), cases.len());
    for (task, model, source) in cases {
        let record = records.iter().find(|r| r.task == task).unwrap();
        assert_eq!((record.model.as_str(), record.data_source.as_str(), record.status()), (model, source, "ok"), "{task}");
        assert!(record.outcome.final_train_loss.is_some_and(f64::is_finite), "{task}");
    }
}
