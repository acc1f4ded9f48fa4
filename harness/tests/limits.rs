//! What cannot fit in memory, through the binary: a configuration whose step cannot fit
//! is refused before its run folder exists; an allocation that fails in training leaves
//! a failed record (out of memory) instead of a backtrace and no record; a huge value on
//! the command line is quoted short.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use lra_harness::records::run_record::{Failure, read_record};

fn lra(args: &[&str], fault: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lra"));
    // As a user runs it: std prints a backtrace on an allocation failure only when asked.
    command.args(args).stdin(Stdio::null()).env_remove("RUST_BACKTRACE");
    match fault {
        Some(fault) => command.env("LRA_TEST_FAULT", fault),
        None => command.env_remove("LRA_TEST_FAULT"),
    };
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The run folders under `results`.
fn run_dirs(results: &Path) -> Vec<std::path::PathBuf> {
    let Ok(runs) = std::fs::read_dir(results.join("runs")) else { return Vec::new() };
    runs.map(|entry| entry.unwrap().path()).collect()
}

#[test]
fn an_allocation_that_fails_in_training_leaves_a_failed_record_of_kind_out_of_memory() {
    let root = tempfile::tempdir().unwrap();
    let (results, data) = (root.path().join("results"), root.path().join("data"));
    let (results_arg, data_arg) = (results.to_str().unwrap(), data.to_str().unwrap());
    let args = ["run", "--task", "listops", "--model", "transformer", "--preset", "tiny", "--quiet"];
    let output = lra(&[&args[..], &["--results", results_arg, "--data", data_arg]].concat(), Some("oom@listops/transformer"));
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
    let dirs = run_dirs(&results);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let record = read_record(&dirs[0].join("result.json")).unwrap_or_else(|e| panic!("{e:#}\n{stderr}"));
    assert!(matches!(record.outcome.failure, Some(Failure::OutOfMemory { .. })), "{:?}", record.outcome.failure);
    assert_eq!(record.status(), "failed");
    // Nothing staged is left beside it.
    let left: Vec<_> = std::fs::read_dir(&dirs[0])
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".writing-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Run again without the fault, it trains and replaces the failed record.
    let again = lra(&[&args[..], &["--results", results_arg, "--data", data_arg, "--rerun-failed"]].concat(), None);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(read_record(&dirs[0].join("result.json")).unwrap().is_ok());
}

#[test]
fn a_configuration_that_cannot_fit_in_memory_is_refused_before_its_run_folder_exists() {
    let root = tempfile::tempdir().unwrap();
    let (results, data) = (root.path().join("results"), root.path().join("data"));
    let resolved = lra(&["config", "--task", "listops", "--model", "transformer", "--preset", "tiny"], None);
    assert!(resolved.status.success(), "{}", text(&resolved.stderr));
    let mut json: serde_json::Value = serde_json::from_slice(&resolved.stdout).unwrap();
    // Within every size's own bound, far beyond any machine together.
    json["task"]["training"]["batch_size"] = (1u64 << 20).into();
    json["task"]["model"]["d_ff"] = (1u64 << 18).into();
    let path = root.path().join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    let output = lra(
        &["run", "--quiet", "--config", path.to_str().unwrap(), "--results", results.to_str().unwrap(), "--data"]
            .into_iter()
            .chain([data.to_str().unwrap()])
            .collect::<Vec<_>>(),
        None,
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot fit in memory") && stderr.contains("GiB"), "{stderr}");
    assert!(run_dirs(&results).is_empty(), "{:?}", run_dirs(&results));
}

#[test]
fn a_huge_value_on_the_command_line_is_quoted_short() {
    // One argument may hold 128 KiB on Linux.
    let huge = "z".repeat(100_000);
    for args in [vec!["run", "--task", huge.as_str()], vec!["config", "--task", "listops", "--model", huge.as_str()]] {
        let output = lra(&args, None);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{}", &stderr[..stderr.len().min(500)]);
        assert!(
            stderr.len() < 2000 && stderr.contains("characters cut"),
            "{} bytes: {}",
            stderr.len(),
            &stderr[..stderr.len().min(500)]
        );
    }
}

/// A configuration file with a one-megabyte string (in a file below the 1 MiB bound of
/// configurations) gives an error of a few hundred characters that names the file and
/// says how much was cut, wherever the string stands: a model name, a value, a key.
#[test]
fn a_megabyte_value_in_a_configuration_file_gives_a_short_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = lra(&["config", "--task", "listops", "--model", "transformer", "--preset", "tiny"], None);
    let text = text(&config.stdout);
    let huge = "x".repeat(1_000_000);
    let path = dir.path().join("config.json");
    for changed in [
        text.replacen("\"transformer\"", &format!("\"{huge}\""), 1),
        text.replacen("\"pooling\": \"", &format!("\"pooling\": \"{huge}"), 1),
        text.replacen("\"seed\"", &format!("\"{huge}\""), 1),
    ] {
        assert_ne!(changed, text);
        std::fs::write(&path, &changed).unwrap();
        let output = lra(&["config", "--config", path.to_str().unwrap()], None);
        let stderr = self::text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{}", &stderr[..stderr.len().min(500)]);
        assert!(stderr.len() < 1200, "{} bytes: {}", stderr.len(), &stderr[..stderr.len().min(2000)]);
        assert!(stderr.contains("config.json") && stderr.contains("characters cut)"), "{stderr}");
    }
}
