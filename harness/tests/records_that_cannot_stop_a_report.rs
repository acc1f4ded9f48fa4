//! A report that no record can stop: run records, `metrics.csv` files and benchmark
//! records with values out of range, of absurd sizes, or of arbitrary bytes are refused
//! when read, naming the file and the field, and left out of the report, which finishes
//! quickly and is written all the same.
//!
//! The proptests run 256 cases each by default (`PROPTEST_CASES` sets more).

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Value, json};

use lra_harness::records::bench_record;
use lra_harness::records::run_record::{self, check_record, parse_metrics_csv, read_metrics_csv, read_record};

const TRANSFORMER: &str = include_str!("data/result-of-the-transformer-of-an-earlier-version.json");
const BIGBIRD: &str = include_str!("data/result-of-bigbird-of-an-earlier-version.json");
const BENCH: &str = include_str!("data/bench-of-an-earlier-version.json");

/// A valid `metrics.csv`: twenty steps, validated every fifth.
fn metrics_text() -> String {
    let mut text = String::from("step,loss,lr,train_acc,examples_per_s,val_acc\n");
    for step in 1..=20 {
        let val = if step % 5 == 0 { format!("{}", 0.05 * step as f64 / 2.0) } else { String::new() };
        text.push_str(&format!("{step},{},0.001,0.25,300.5,{val}\n", 2.5 - 0.05 * step as f64));
    }
    text
}

fn value(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The error of reading `record` as a run's `result.json`.
fn refusal(record: &Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    write(&path, &serde_json::to_vec(record).unwrap());
    let error = format!("{:#}", read_record(&path).expect_err("an invalid record is refused"));
    assert!(error.contains(&path.display().to_string()), "the error names the file: {error}");
    error
}

#[test]
fn the_records_of_earlier_versions_pass_the_checks() {
    for text in [TRANSFORMER, BIGBIRD] {
        check_record(&serde_json::from_str(text).unwrap()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("b.json"), BENCH.as_bytes());
    bench_record::load(&dir.path().join("b.json")).unwrap();
    assert_eq!(parse_metrics_csv(&metrics_text()).unwrap().len(), 20);
}

/// Each value the probe found entering the tables, or stopping the report, is refused
/// naming its field.
#[test]
fn a_run_record_out_of_range_is_refused_naming_the_field() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("test_accuracy", json!(7.5), "field `test_accuracy`: 7.5 is not a fraction in [0, 1]"),
        ("test_accuracy", json!(-5), "field `test_accuracy`: -5 is not a fraction"),
        ("test_accuracy", json!(1e307), "field `test_accuracy`"),
        ("best_val_accuracy", json!(1.5), "field `best_val_accuracy`"),
        ("task", json!("sudoku"), "field `task`: unknown task `sudoku`"),
        ("preset", json!("huge"), "field `preset`: unknown preset `huge`"),
        ("model", json!("gpt"), "field `model`: unknown model `gpt`"),
        ("model", json!("x".repeat(10_000)), "field `model`: longer than 200 characters"),
        ("wall_seconds", json!(-1.0), "field `wall_seconds`: -1 is negative"),
        ("train_seconds", json!(f64::MAX), ""),
        ("test_examples", json!(u64::MAX), "field `test_examples`: 18446744073709551615 is over the most"),
        ("test_examples", json!(1_000_000_000_000u64), "field `test_examples`"),
        ("test_examples", json!(100), "field `test_majority_rate`: 0.1875 is no share of the 100 examples"),
        ("best_step", json!(21), "field `best_step`: 21 is past the run's 20 steps"),
        ("final_train_loss", json!(-3.0), "field `final_train_loss`"),
        ("train_steps_per_second", json!(-2), "field `train_steps_per_second`"),
        ("mfu", json!(-0.5), "field `mfu`"),
    ];
    for (field, bad, expected) in cases {
        let mut record = value(TRANSFORMER);
        record[field] = bad.clone();
        if expected.is_empty() {
            // f64::MAX is finite: a valid (if absurd) time, read.
            let dir = tempfile::tempdir().unwrap();
            write(&dir.path().join("r.json"), &serde_json::to_vec(&record).unwrap());
            read_record(&dir.path().join("r.json")).unwrap();
            continue;
        }
        let error = refusal(&record);
        assert!(error.contains(expected), "{field} = {bad}: {error}");
    }
}

#[test]
fn metrics_and_benchmark_records_out_of_range_are_refused_naming_the_line_or_cell() {
    let text = metrics_text().replace("5,2.25,0.001,0.25,300.5,0.125", "5,2.25,0.001,7.5,300.5,0.125");
    assert_eq!(parse_metrics_csv(&text).unwrap_err(), "6: field `train_acc`: 7.5 is not a fraction in [0, 1]");
    let text = metrics_text().replace("\n3,", "\n1,");
    assert!(parse_metrics_csv(&text).unwrap_err().starts_with("4: field `step`: 1 does not follow the step 2"));
    // A diverged run logs the loss it diverged to: read, and left out of the plots.
    let text = metrics_text().replace("\n3,2.35,", "\n3,NaN,");
    assert!(parse_metrics_csv(&text).unwrap()[2].loss.is_nan());

    let dir = tempfile::tempdir().unwrap();
    for (path, bad, expected) in [
        ("/measurements/0/model", json!("gpt"), "measurements[0]: field `model`: unknown model `gpt`"),
        ("/measurements/1/length", json!(0), "measurements[1]: field `length`: 0 is not in"),
        ("/lengths/0", json!(u64::MAX), "field `lengths`"),
        ("/batch", json!(0), "field `batch`: 0 is not in"),
        ("/device", json!("d".repeat(300)), "field `device`: longer than 200 characters"),
    ] {
        let mut record = value(BENCH);
        *record.pointer_mut(path).unwrap() = bad;
        let file = dir.path().join("b.json");
        write(&file, &serde_json::to_vec(&record).unwrap());
        let error = format!("{:#}", bench_record::load(&file).unwrap_err());
        assert!(error.contains(expected) && error.contains("b.json"), "{path}: {error}");
    }
    // A cell whose speed is not positive and finite.
    let mut record = value(BENCH);
    record["measurements"][0]["steps_per_second"] = json!(-1.0);
    write(&dir.path().join("b.json"), &serde_json::to_vec(&record).unwrap());
    let error = format!("{:#}", bench_record::load(&dir.path().join("b.json")).unwrap_err());
    assert!(error.contains("field `steps_per_second`: -1 is not a positive finite number"), "{error}");
}

/// A results folder of records at the edges of their ranges (and past them): a speed of
/// 1e307 in two runs, whose mean overflows; the most memory a u64 holds; NaN and 1e300
/// losses; a test split of ten million; beside records refused (accuracy 1e307, 2^64-1
/// examples, model names of 100,000 characters and of 10 MB, a link to `/dev/zero`). The report finishes in seconds,
/// lists what it left out with the field, and writes every file.
#[test]
fn a_report_over_extreme_records_finishes_quickly_and_names_what_it_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let put = |name: &str, record: Value, metrics: Option<String>| {
        let folder = results.join("runs").join(name);
        write(&folder.join("result.json"), &serde_json::to_vec(&record).unwrap());
        if let Some(metrics) = metrics {
            write(&folder.join("metrics.csv"), metrics.as_bytes());
        }
    };
    for (i, base) in [TRANSFORMER, BIGBIRD].into_iter().enumerate() {
        let mut record = value(base);
        record["train_steps_per_second"] = json!(1e307);
        record["peak_memory_bytes"] = json!(u64::MAX);
        (record["test_majority_rate"], record["test_examples"]) = (json!(0.1875), json!(10_000_000));
        let metrics = metrics_text().replace("\n3,2.35,", "\n3,NaN,").replace("\n4,2.3,", "\n4,1e300,");
        put(&format!("extreme{i}"), record, Some(metrics));
    }
    let refused = |name: &str, field: &str, bad: Value| {
        let mut record = value(TRANSFORMER);
        record[field] = bad;
        put(name, record, None);
    };
    refused("accuracy", "test_accuracy", json!(1e307));
    refused("examples", "test_examples", json!(u64::MAX));
    refused("name", "model", json!("m".repeat(100_000)));
    refused("huge", "model", json!("m".repeat(10 << 20)));
    let bad_metrics = results.join("runs").join("metrics");
    put("metrics", value(TRANSFORMER), Some(metrics_text().replace("0.25,300.5", "0.25,-300.5")));
    #[cfg(unix)]
    {
        let linked = results.join("runs").join("linked");
        std::fs::create_dir_all(&linked).unwrap();
        std::os::unix::fs::symlink("/dev/zero", linked.join("result.json")).unwrap();
        std::fs::create_dir_all(results.join("bench")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", results.join("bench").join("zero.json")).unwrap();
    }

    let out = dir.path().join("report");
    let started = Instant::now();
    let written = lra_harness::report::write(&results, &out).unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert_eq!(written.runs, 2, "the two extreme records, and none of those refused");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for expected in [
        "field `test_accuracy`: 1e307 is not a fraction",
        "field `test_examples`: 18446744073709551615 is over the most",
        "field `model`: longer than 200 characters",
        "larger than 1048576 bytes",
        "field `examples_per_s`: -300.5 is negative",
        "not a regular file (a character device)",
    ] {
        assert!(report.contains(expected), "no {expected:?} in the report:\n{report}");
    }
    assert!(report.contains(&bad_metrics.join("metrics.csv").display().to_string()), "{report}");
    // A refused name is not copied into the report: the report stays small.
    assert!(report.len() < 1 << 20, "{} bytes", report.len());
    for file in ["report.html", "table1.csv", "runs.csv", "curves_listops.png", "figure3.svg"] {
        assert!(out.join(file).is_file(), "no {file}");
    }
}

#[test]
fn a_missing_results_folder_is_an_error_and_an_empty_one_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder");
    let error = format!("{:#}", lra_harness::report::write(&missing, &dir.path().join("out")).unwrap_err());
    assert!(error.contains("no-such-folder: no such results folder"), "{error}");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let written = lra_harness::report::write(&empty, &dir.path().join("out")).unwrap();
    assert!(written.files.is_empty());
    assert!(!dir.path().join("out").exists(), "nothing written");
}

/// Replacements a mutation puts in place of a record's value: extremes of every kind.
fn extreme() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(null)),
        Just(json!(true)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(7.5)),
        Just(json!(-5.0)),
        Just(json!(1e307)),
        Just(json!(f64::MAX)),
        Just(json!(f64::MIN_POSITIVE)),
        Just(json!(u64::MAX)),
        Just(json!(1_000_000_000_000u64)),
        Just(json!(i64::MIN)),
        Just(json!("")),
        Just(json!("x".repeat(5000))),
        Just(json!("transformer")),
        Just(json!("failed")),
        Just(json!([])),
        Just(json!({})),
        Just(json!({ "kind": "timed_out", "seconds": -1 })),
        any::<f64>().prop_filter("JSON holds finite numbers", |f| f.is_finite()).prop_map(|f| json!(f)),
        any::<u64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(|s: String| json!(s)),
    ]
}

/// Every value's JSON pointer in `value`, objects' and arrays' own included.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                pointers(child, format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// `base` with up to three of its values replaced or removed.
fn mutated(base: &'static str) -> impl Strategy<Value = Value> {
    let original = value(base);
    let mut all = Vec::new();
    pointers(&original, String::new(), &mut all);
    all.retain(|p| !p.is_empty());
    proptest::collection::vec((0..all.len(), proptest::option::of(extreme())), 1..4).prop_map(move |changes| {
        let mut record = original.clone();
        for (index, replacement) in changes {
            let pointer = &all[index];
            match replacement {
                Some(new) => {
                    if let Some(slot) = record.pointer_mut(pointer) {
                        *slot = new;
                    }
                }
                None => {
                    let (parent, key) = pointer.rsplit_once('/').unwrap();
                    if let Some(Value::Object(map)) = record.pointer_mut(parent) {
                        map.remove(&key.replace("~1", "/").replace("~0", "~"));
                    }
                }
            }
        }
        record
    })
}

/// A `metrics.csv` with up to three of its cells replaced by arbitrary text.
fn mutated_metrics() -> impl Strategy<Value = String> {
    let cell = prop_oneof![
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("-1".to_string()),
        Just("1e307".to_string()),
        Just("18446744073709551616".to_string()),
        Just(String::new()),
        Just("\"".to_string()),
        "[0-9e.,+-]{0,12}",
        ".{0,12}",
    ];
    proptest::collection::vec((0..21usize, 0..6usize, cell), 1..4).prop_map(|changes| {
        let mut lines: Vec<Vec<String>> = metrics_text().lines().map(|l| l.split(',').map(str::to_string).collect()).collect();
        for (line, column, cell) in changes {
            lines[line][column] = cell;
        }
        lines.iter().map(|l| l.join(",") + "\n").collect()
    })
}

/// Reading `bytes` as a run record: a record that passes the checks, or an error naming
/// the file, within a second.
fn read_run_record_bytes(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    write(&path, bytes);
    let started = Instant::now();
    let read = read_record(&path);
    prop_assert!(started.elapsed() < Duration::from_secs(1));
    match read {
        Ok(record) => {
            prop_assert!(check_record(&record).is_ok());
            for accuracy in [record.outcome.test_accuracy, record.outcome.best_val_accuracy].into_iter().flatten() {
                prop_assert!((0.0..=1.0).contains(&accuracy));
            }
            prop_assert!(record.outcome.wall_seconds.is_finite() && record.outcome.wall_seconds >= 0.0);
            prop_assert!(record.outcome.test_examples.is_none_or(|n| n <= run_record::MAX_SPLIT_EXAMPLES));
            prop_assert!(lra_models::model_info(&record.model).is_ok());
        }
        Err(error) => prop_assert!(format!("{error:#}").contains(&path.display().to_string()), "{error:#}"),
    }
    Ok(())
}

fn read_metrics_bytes(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.csv");
    write(&path, bytes);
    let started = Instant::now();
    let read = read_metrics_csv(&path);
    prop_assert!(started.elapsed() < Duration::from_secs(1));
    match read {
        Ok(rows) => {
            for row in rows {
                prop_assert!((0.0..=1.0).contains(&row.train_acc));
                prop_assert!(row.val_acc.is_none_or(|a| (0.0..=1.0).contains(&a)));
                prop_assert!(row.examples_per_s.is_finite() && row.examples_per_s >= 0.0);
            }
        }
        // The file, and for a row the line it is on.
        Err(error) => prop_assert!(format!("{error:#}").contains(&path.display().to_string()), "{error:#}"),
    }
    Ok(())
}

fn read_bench_bytes(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.json");
    write(&path, bytes);
    let started = Instant::now();
    let read = bench_record::load(&path);
    prop_assert!(started.elapsed() < Duration::from_secs(1));
    match read {
        Ok(record) => {
            prop_assert!(bench_record::check(&record).is_ok());
            for m in &record.measurements {
                prop_assert!(m.length >= 1 && lra_models::model_info(&m.model).is_ok());
                prop_assert!(m.steps_per_second.is_none_or(|s| s.is_finite() && s > 0.0));
            }
        }
        Err(error) => prop_assert!(format!("{error:#}").contains(&path.display().to_string()), "{error:#}"),
    }
    Ok(())
}

proptest! {
    #[test]
    fn the_run_record_reader_takes_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        read_run_record_bytes(&bytes)?;
    }

    #[test]
    fn the_run_record_reader_takes_mutated_records(record in prop_oneof![mutated(TRANSFORMER), mutated(BIGBIRD)]) {
        read_run_record_bytes(&serde_json::to_vec(&record).unwrap())?;
    }

    #[test]
    fn the_metrics_reader_takes_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        read_metrics_bytes(&bytes)?;
    }

    #[test]
    fn the_metrics_reader_takes_mutated_files(text in mutated_metrics()) {
        read_metrics_bytes(text.as_bytes())?;
    }

    #[test]
    fn the_benchmark_reader_takes_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        read_bench_bytes(&bytes)?;
    }

    #[test]
    fn the_benchmark_reader_takes_mutated_records(record in mutated(BENCH)) {
        read_bench_bytes(&serde_json::to_vec(&record).unwrap())?;
    }
}

proptest! {
    // Each case renders a whole report: fewer of them.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A results folder of mutated records: the report never panics, finishes in bounded
    /// time, and is written (it lists whatever it left out).
    #[test]
    fn a_report_over_mutated_records_is_written_in_bounded_time(
        transformer in mutated(TRANSFORMER),
        bigbird in mutated(BIGBIRD),
        bench in mutated(BENCH),
        metrics in mutated_metrics(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        write(&results.join("runs/a/result.json"), &serde_json::to_vec(&transformer).unwrap());
        write(&results.join("runs/a/metrics.csv"), metrics.as_bytes());
        write(&results.join("runs/b/result.json"), &serde_json::to_vec(&bigbird).unwrap());
        write(&results.join("runs/b/metrics.csv"), metrics_text().as_bytes());
        write(&results.join("bench/b.json"), &serde_json::to_vec(&bench).unwrap());
        let out = dir.path().join("report");
        let started = Instant::now();
        let written = lra_harness::report::write(&results, &out);
        prop_assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
        let written = written.map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
        prop_assert!(out.join("report.md").is_file() && out.join("report.html").is_file());
        // Each run read or listed as left out.
        let inputs = lra_harness::report::load(&results).unwrap();
        let left_out = inputs.skipped.iter().filter(|(path, _)| path.ends_with("result.json")).count();
        prop_assert_eq!(written.runs, inputs.runs.len());
        prop_assert_eq!(inputs.runs.len() + left_out, 2);
    }
}

/// The plots guard their axes themselves, whatever reaches them past the checks: curves
/// with an accuracy of 1e307 and losses of ±1e308, and Figure 3 with an average accuracy
/// of 1e307 (whose percentage is infinite), are drawn at once without those points.
#[test]
fn the_plots_keep_values_outside_their_axes_out() {
    use lra_harness::records::run_record::MetricsRow;
    use lra_harness::report::{Inputs, Run, plots, tables1};
    let mut record: run_record::RunRecord = serde_json::from_str(TRANSFORMER).unwrap();
    let row = |step: usize, loss: f64, val_acc: Option<f64>| MetricsRow {
        step,
        loss,
        lr: 1e-3,
        train_acc: 0.5,
        examples_per_s: 1.0,
        val_acc,
    };
    let metrics = vec![row(1, 1e308, Some(1e307)), row(2, -1e308, Some(0.5)), row(3, 2.0, Some(-3.0)), row(4, 1.0, None)];
    let started = Instant::now();
    let curves = plots::curves(lra_tasks::Task::Listops, &[&Run { record: record.clone(), metrics }]).unwrap();
    assert!(!curves.svg.is_empty());
    record.outcome.test_accuracy = Some(1e307);
    let inputs = Inputs { runs: vec![Run { record, metrics: Vec::new() }], ..Inputs::default() };
    let tables = tables1(&inputs.runs);
    assert!(plots::figure3(&inputs, &tables).unwrap().is_none(), "no bubble has a place");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}
