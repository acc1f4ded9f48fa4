//! `lra gpu-check` through the binary: the smoke sizes on wgpu (a software Vulkan driver
//! where there is no GPU), and the CPU devices refused before anything is written.

use std::process::{Command, Output};

use lra_harness::orchestrate::gpu_check::MODELS;
use lra_harness::records::bench_record::load;
use lra_harness::records::gpu_check::{self, GpuCheckSummary};
use lra_harness::records::run_record::read_record;

fn lra(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lra")).args(args).output().expect("the lra binary runs")
}

/// The whole check at smoke sizes: the summary's two files, the device named, a row per
/// model and length with a measured speed and a positive peak, the two runs finished and
/// recorded under the check's folder, a positive projected sweep, and nothing written
/// outside `--out` but the data cache.
#[test]
fn a_smoke_check_on_wgpu_writes_a_summary_of_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("check");
    let data = dir.path().join("data");
    let output =
        lra(&["gpu-check", "--smoke", "--device", "wgpu", "--out", out.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    let summary: GpuCheckSummary = gpu_check::load(&out.join("summary.json")).unwrap();
    let markdown = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), markdown, "the summary is printed as written");
    assert!(summary.smoke);
    assert_eq!((summary.device.name.as_str(), summary.device.backend.as_str()), ("wgpu", "wgpu"));
    assert!(!summary.device.adapter.is_empty() && !summary.device.adapter.contains("unnamed"), "{:?}", summary.device);
    assert!(markdown.starts_with(&format!("# GPU check: {} (`wgpu`)", summary.device.adapter)), "{markdown}");
    assert!(markdown.contains("**Smoke sizes**"), "{markdown}");
    assert_eq!(summary.environment.git_commit, lra_harness::records::environment::build_commit());

    // One row per model and length, each measured.
    let b = &summary.bench;
    assert_eq!((b.lengths.as_slice(), b.batch), (&[64][..], 2));
    let cells: Vec<(String, usize)> = b.rows.iter().map(|r| (r.model.clone(), r.length)).collect();
    let labels = ["transformer", "linear (as LRA ran it)", "local (as LRA ran it)", "performer (as LRA ran it)"];
    assert_eq!(MODELS.len(), labels.len());
    let expected: Vec<(String, usize)> = labels.iter().map(|m| (m.to_string(), 64)).collect();
    assert_eq!(cells, expected);
    for row in &b.rows {
        assert_eq!(row.status, "ok", "{row:?}");
        assert!(row.steps_per_second.is_some_and(|s| s > 0.0), "{row:?}");
        assert!(row.peak_memory_bytes.is_some_and(|p| p > 0), "{row:?}");
        // Table 2 has no column at length 64.
        assert_eq!(row.published_steps_per_second, None);
    }
    let record = load(std::path::Path::new(b.record.as_ref().unwrap())).unwrap();
    assert!(record.bench_id.starts_with("gpu-check-"), "{}", record.bench_id);
    assert!(std::path::Path::new(b.record.as_ref().unwrap()).starts_with(out.join("results").join("bench")));

    // The quick run (tiny at smoke sizes) finished, and its record says what the summary does.
    let quick = &summary.quick_run;
    assert_eq!((quick.status.as_str(), quick.preset.as_str(), quick.task.as_str()), ("ok", "tiny", "listops"));
    assert_eq!(quick.steps, quick.preset_steps);
    let quick_record = read_record(std::path::Path::new(quick.record.as_ref().unwrap())).unwrap();
    assert_eq!(quick_record.outcome.test_accuracy, quick.test_accuracy);
    assert!(quick.test_accuracy.is_some_and(|a| (0.0..=1.0).contains(&a)), "{quick:?}");

    // The shortened run: 3 steps of the tiny preset, recorded as such (another run id).
    let short = &summary.short_run;
    assert_eq!((short.status.as_str(), short.steps), ("ok", 3), "{short:?}");
    assert!(short.preset_steps > 3);
    let short_record = read_record(std::path::Path::new(short.record.as_ref().unwrap())).unwrap();
    assert_eq!(short_record.config.task.training.steps, 3);
    assert_ne!(Some(&short_record.run_id), quick.run_id.as_ref());
    assert_eq!(short.train_steps_per_second, Some(short_record.outcome.train_steps_per_second));

    // The projection of the tiny sweep, from the shortened run's speed.
    let p = summary.projection.as_ref().expect("a projection");
    assert!(p.seconds > 0.0 && p.seconds.is_finite(), "{p:?}");
    assert_eq!(p.preset, "tiny");
    assert_eq!(p.reference_steps_per_second, short_record.outcome.train_steps_per_second);
    assert_eq!(p.runs, p.per_task.iter().map(|t| t.runs).sum::<usize>());
    assert!(markdown.contains("a projection, not a measurement"), "{markdown}");

    // Nothing beside the summary and the records.
    let mut written: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    written.sort();
    assert_eq!(written, ["results", "summary.json", "summary.md"]);
}

/// The check is for GPUs: a CPU device is refused with the command that measures it, the
/// exit code of bad input (2), and nothing written.
#[test]
fn a_cpu_device_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("check");
    for device in ["flex", "ndarray"] {
        let output = lra(&["gpu-check", "--device", device, "--out", out.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&format!("`lra bench --device {device}`")), "{stderr}");
        assert!(stderr.contains("measures a GPU"), "{stderr}");
        assert!(!out.exists(), "{} was written", out.display());
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Every step past its limit (a second: less than a process takes to compile its kernels):
/// the summary says so of each, the check goes on to the end, and its exit code says that
/// nothing could be measured.
#[test]
fn a_check_whose_every_step_times_out_says_so_and_exits_with_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("check");
    let data = dir.path().join("data");
    let output = lra(&[
        "gpu-check",
        "--smoke",
        "--out",
        out.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--cell-timeout",
        "1",
        "--run-timeout",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing could be measured on wgpu"), "{stderr}");
    let summary = gpu_check::load(&out.join("summary.json")).unwrap();
    assert_eq!(summary.bench.rows.len(), MODELS.len());
    for row in &summary.bench.rows {
        assert_eq!(row.status, "timed out: after 1 s", "{row:?}");
        assert_eq!((row.steps_per_second, row.peak_memory_bytes), (None, None));
    }
    for run in [&summary.quick_run, &summary.short_run] {
        assert!(run.status.starts_with("timed out: after "), "{run:?}");
        assert_eq!(run.train_steps_per_second, None);
    }
    assert_eq!(summary.projection, None);
    let markdown = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(markdown.contains("- transformer at length 64: timed out: after 1 s"), "{markdown}");
    assert!(markdown.contains("Not projected: the shortened run measured no speed (timed out: after "), "{markdown}");
}
