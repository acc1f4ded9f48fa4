//! `lra data stats` end to end: the binary measures generated images the same way twice
//! for one seed, measures a folder in the released layout exactly as the same images
//! generated, and refuses bad input with exit code 2, naming the flag or the file.

use std::path::Path;
use std::process::{Command, Output};

use lra_datasets::pathfinder::{Difficulty, PathfinderConfig, generate_images, write_release};

fn lra(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lra")).args(args).output().expect("the lra binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `lra data stats` with `args` and `--json path`; the JSON it wrote.
fn stats_json(args: &[&str], path: &Path) -> serde_json::Value {
    let mut all = vec!["data", "stats"];
    all.extend_from_slice(args);
    all.extend(["--json", path.to_str().unwrap()]);
    let out = lra(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    for row in ["dashes per image", "lit fraction > 192", "marker distance (px)", "non-black pixels"] {
        assert!(table.contains(row), "{row} missing from:\n{table}");
    }
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every number of the statistics (the summaries' fields and the histograms), in order.
fn numbers(value: &serde_json::Value, out: &mut Vec<f64>) {
    match value {
        serde_json::Value::Number(n) => out.push(n.as_f64().unwrap()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| numbers(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| numbers(v, out)),
        _ => {}
    }
}

#[test]
fn generated_statistics_are_finite_and_the_same_twice_for_one_seed() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--task", "pathfinder", "--count", "12", "--seed", "3"];
    let first = stats_json(&args, &dir.path().join("a.json"));
    let second = stats_json(&args, &dir.path().join("b.json"));
    assert_eq!(first, second);
    assert_eq!(first["images"], 12);
    assert_eq!(first["source"]["seed"], 3);
    assert_eq!(first["source"]["contour_length"], 14);
    let share = first["label_one_share"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&share), "{share}");
    let mut all = Vec::new();
    numbers(&first, &mut all);
    assert!(all.len() > 50 && all.iter().all(|v| v.is_finite()), "{all:?}");
    assert_eq!(first["markers_found_per_image"]["mean"], 2.0);

    let other = stats_json(&["--task", "pathfinder", "--count", "12", "--seed", "4"], &dir.path().join("c.json"));
    assert_ne!(other["dashes_per_image"], first["dashes_per_image"]);
    let easy = stats_json(&["--task", "pathfinder", "--count", "12", "--difficulty", "baseline"], &dir.path().join("d.json"));
    assert_eq!(easy["source"]["contour_length"], 6);
}

#[test]
fn a_released_folder_measures_as_the_same_images_generated() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    let config = PathfinderConfig::lra(32, Difficulty::Fourteen).unwrap();
    write_release(&release, &generate_images(&config, 3, 12).unwrap(), 32, 5).unwrap();
    let mut released = stats_json(&["--released", release.to_str().unwrap(), "--size", "32"], &dir.path().join("r.json"));
    let mut generated = stats_json(&["--task", "pathfinder", "--count", "12", "--seed", "3"], &dir.path().join("g.json"));
    assert_eq!(released["source"]["released"], release.display().to_string());
    released["source"] = serde_json::Value::Null;
    generated["source"] = serde_json::Value::Null;
    assert_eq!(released, generated);
    let some = stats_json(&["--released", release.to_str().unwrap(), "--size", "32", "--count", "4"], &dir.path().join("s.json"));
    assert_eq!(some["images"], 4);
}

#[test]
fn bad_input_is_refused_naming_the_flag_or_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    let config = PathfinderConfig::lra(32, Difficulty::Fourteen).unwrap();
    write_release(&release, &generate_images(&config, 3, 3).unwrap(), 32, 5).unwrap();
    let release = release.to_str().unwrap();
    let not_a_release = dir.path().to_str().unwrap();
    let cases: [(&[&str], &[&str]); 10] = [
        (&["--released", not_a_release, "--size", "32"], &[not_a_release, "no metadata/ folder"]),
        (&["--released", release, "--size", "128"], &["sample_0.png", "expected 128x128", "--size 128"]),
        (&["--released", release, "--size", "48"], &["--size", "32, 64 or 128"]),
        (&["--released", release], &["--size"]),
        (&["--task", "pathfinder", "--count", "0"], &["--count", "at least 1"]),
        (&["--task", "text"], &["--task text", "pathfinder and pathx"]),
        (&["--task", "pathfinder", "--difficulty", "7"], &["--difficulty", "baseline (6), 9 or 14"]),
        (&["--task", "pathfinder", "--preset", "quick", "--difficulty", "9"], &["--difficulty", "--preset lra"]),
        (&["--task", "pathfinder", "--preset", "quick", "--size", "64"], &["--size 64", "CPU grid", "--preset lra"]),
        (&["--task", "pathx", "--size", "100"], &["--size", "32, 64 or 128"]),
    ];
    for (args, needles) in cases {
        let mut all = vec!["data", "stats"];
        all.extend_from_slice(args);
        let out = lra(&all);
        let error = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {error}");
        assert!(!error.contains("panicked"), "{args:?}: {error}");
        for needle in needles {
            assert!(error.contains(needle), "{args:?}: `{needle}` missing from: {error}");
        }
    }
}
