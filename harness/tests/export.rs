//! `lra data export --format npy` end to end: the binary writes, and a reader written here
//! from NumPy's description of the `.npy` format (not the writer's code) reads back what a
//! run's batches hold; bad input is refused with exit code 2 and nothing written.

use std::path::Path;
use std::process::{Command, Output};

use lra_datasets::Example;
use lra_harness::execute::device::open;
use lra_harness::execute::train::make_batch;
use lra_harness::records::device_name::DeviceName;
use lra_tasks::{Preset, Task, TaskConfig};

fn lra(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lra")).args(args).output().expect("the lra binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `lra data export --format npy` of `task` at `tiny` from the data folder `data` into `out`.
fn export(task: &str, data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["data", "export", "--task", task, "--preset", "tiny", "--format", "npy"];
    args.extend(["--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    lra(&args)
}

/// An array as a `.npy` file holds it.
#[derive(Debug)]
struct Npy {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// The text after `key` in a header dict, spaces skipped.
fn after<'a>(header: &'a str, key: &str) -> &'a str {
    let at = header.find(&format!("'{key}':")).unwrap_or_else(|| panic!("no {key} in {header:?}"));
    header[at + key.len() + 3..].trim_start()
}

/// Reads a `.npy` file by the format's description: the magic string `\x93NUMPY`, a major
/// and a minor version byte, the header's length (a little-endian u16 in version 1, u32
/// in 2 and 3), the header (an ASCII Python dict literal with the keys descr,
/// fortran_order and shape, padded with spaces and ended by a newline so that the data
/// starts at a multiple of 64 bytes), then the data.
fn read_npy(path: &Path) -> Npy {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}: magic", path.display());
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
        _ => panic!("{}: version {major}.{minor}", path.display()),
    };
    assert_eq!(minor, 0, "{}", path.display());
    let data_start = start + header_len;
    assert_eq!(data_start % 64, 0, "{}: the data starts at {data_start}", path.display());
    let header = std::str::from_utf8(&bytes[start..data_start]).unwrap();
    assert!(header.is_ascii() && header.ends_with('\n'), "{header:?}");
    let dict = header.trim_end();
    assert!(dict.starts_with('{') && dict.ends_with('}'), "{header:?}");
    let quoted = after(dict, "descr");
    let quote = quoted.chars().next().unwrap();
    assert!(quote == '\'' || quote == '"', "{header:?}");
    let descr = quoted[1..].split(quote).next().unwrap().to_string();
    let fortran_order = match after(dict, "fortran_order") {
        rest if rest.starts_with("False") => false,
        rest if rest.starts_with("True") => true,
        _ => panic!("{header:?}"),
    };
    let tuple = after(dict, "shape");
    assert!(tuple.starts_with('('), "{header:?}");
    let inside = &tuple[1..tuple.find(')').unwrap()];
    let shape: Vec<usize> = inside.split(',').map(str::trim).filter(|d| !d.is_empty()).map(|d| d.parse().unwrap()).collect();
    Npy { descr, fortran_order, shape, data: bytes[data_start..].to_vec() }
}

impl Npy {
    fn check(&self, descr: &str, shape: &[usize], item_bytes: usize) {
        assert_eq!((self.descr.as_str(), self.fortran_order, self.shape.as_slice()), (descr, false, shape));
        assert_eq!(self.data.len(), shape.iter().product::<usize>() * item_bytes, "{shape:?}");
    }

    fn int32(&self, shape: &[usize]) -> Vec<i64> {
        self.check("<i4", shape, 4);
        self.data.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap()) as i64).collect()
    }

    fn int64(&self, shape: &[usize]) -> Vec<i64> {
        self.check("<i8", shape, 8);
        self.data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect()
    }
}

/// The configuration an export (or a run) resolves from this data folder.
fn resolved(task: Task, data: &Path) -> TaskConfig {
    let mut config = TaskConfig::resolve(task, Preset::Tiny);
    config.data = config.data.prefer_released(data);
    config
}

const SPLITS: [&str; 3] = ["train", "validation", "test"];

fn split<'a>(splits: &'a lra_datasets::Splits, name: &str) -> &'a [Example] {
    match name {
        "train" => &splits.train,
        "validation" => &splits.validation,
        _ => &splits.test,
    }
}

/// The token ids `sequences` hold, each cut or padded with 0 to `length`: computed here,
/// as the format of the export promises them.
fn padded_rows<'a>(sequences: impl Iterator<Item = &'a [u32]>, length: usize) -> Vec<i64> {
    let mut rows = Vec::new();
    for sequence in sequences {
        let mut row: Vec<i64> = sequence.iter().take(length).map(|&t| t as i64).collect();
        row.resize(length, 0);
        rows.extend(row);
    }
    rows
}

/// The entries of `folder`, sorted.
fn listing(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(folder).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn every_task_exports_what_its_runs_train_validate_and_test_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let device = open(DeviceName::Flex).unwrap().device;
    for task in [Task::Listops, Task::Text, Task::Retrieval, Task::Image, Task::Pathfinder] {
        let out = dir.path().join(task.name());
        let output = export(task.name(), &data, &out, &[]);
        assert!(output.status.success(), "{}: {}", task.name(), stderr(&output));
        let config = resolved(task, &data);
        let splits = config.prepare(&data).unwrap();
        let length = config.max_length;
        let mut expected_files = vec!["task.json".to_string()];
        for name in SPLITS {
            let examples = split(&splits, name);
            let n = examples.len();
            assert!(n > 0, "{} {name}", task.name());
            let inputs = read_npy(&out.join(format!("{name}_inputs.npy"))).int32(&[n, length]);
            assert_eq!(inputs, padded_rows(examples.iter().map(|e| e.tokens.as_slice()), length), "{} {name}", task.name());
            let labels = read_npy(&out.join(format!("{name}_labels.npy"))).int64(&[n]);
            assert_eq!(labels, examples.iter().map(|e| e.label as i64).collect::<Vec<_>>(), "{} {name}", task.name());
            // What a training or evaluation batch of the same examples holds.
            let refs: Vec<&Example> = examples.iter().collect();
            let batch = make_batch(&refs, length, &device);
            assert_eq!(batch.tokens.into_data().iter::<i64>().collect::<Vec<_>>(), inputs, "{} {name}", task.name());
            assert_eq!(batch.labels.into_data().iter::<i64>().collect::<Vec<_>>(), labels, "{} {name}", task.name());
            expected_files.extend([format!("{name}_inputs.npy"), format!("{name}_labels.npy")]);
            if task.paired() {
                let seconds = examples.iter().map(|e| e.second.as_deref().unwrap());
                let inputs2 = read_npy(&out.join(format!("{name}_inputs2.npy"))).int32(&[n, length]);
                assert_eq!(inputs2, padded_rows(seconds, length), "{name}");
                assert_eq!(batch.second.unwrap().into_data().iter::<i64>().collect::<Vec<_>>(), inputs2, "{name}");
                expected_files.push(format!("{name}_inputs2.npy"));
            }
        }
        expected_files.sort();
        assert_eq!(listing(&out), expected_files, "{}", task.name());
        let description: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("task.json")).unwrap()).unwrap();
        assert_eq!(description["task"], task.name());
        assert_eq!(description["preset"], "tiny");
        assert_eq!(description["max_length"], length);
        assert_eq!(description["vocab_size"], config.vocab_size);
        assert_eq!(description["classes"], config.classes);
        assert_eq!(description["paired"], task.paired());
        assert_eq!(description["padding_token"], 0);
        assert_eq!(description["data_source"], config.data.source_label());
        assert_eq!(description["data_seed"], serde_json::json!(config.data.seed()));
        assert_eq!(description["data"], serde_json::to_value(&config.data).unwrap(), "as config.json holds it");
        assert_eq!(description["examples"]["train"], splits.train.len());
        assert_eq!(description["examples_limit"], serde_json::Value::Null);
    }
    // Nothing but the exports lands beside them: no staging folder is left.
    let mut expected = vec!["data", "image", "listops", "pathfinder", "retrieval", "text"];
    expected.sort();
    assert_eq!(listing(dir.path()), expected);
}

#[test]
fn examples_keeps_the_first_of_each_split_and_an_export_replaces_an_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("out"));
    // A Retrieval export first: its second inputs must not outlive it.
    let output = export("retrieval", &data, &out, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(out.join("train_inputs2.npy").exists());
    let output = export("listops", &data, &out, &["--examples", "3"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let config = resolved(Task::Listops, &data);
    let splits = config.prepare(&data).unwrap();
    for name in SPLITS {
        let first: Vec<&Example> = split(&splits, name).iter().take(3).collect();
        let inputs = read_npy(&out.join(format!("{name}_inputs.npy"))).int32(&[3, config.max_length]);
        assert_eq!(inputs, padded_rows(first.iter().map(|e| e.tokens.as_slice()), config.max_length));
        let labels = read_npy(&out.join(format!("{name}_labels.npy"))).int64(&[3]);
        assert_eq!(labels, first.iter().map(|e| e.label as i64).collect::<Vec<_>>());
        assert!(!out.join(format!("{name}_inputs2.npy")).exists(), "the earlier export's {name}_inputs2.npy is gone");
    }
    let description: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("task.json")).unwrap()).unwrap();
    assert_eq!((description["task"].as_str(), description["examples_limit"].as_u64()), (Some("listops"), Some(3)));
    assert_eq!(description["examples"]["test"], 3);
    assert_eq!(listing(dir.path()), ["data", "out"], "no staging folder left");
}

/// Every refusal: exit code 2, the reason on stderr, and nothing written to --out.
fn assert_refused(output: &Output, needles: &[&str], out: &Path, before: Option<&[String]>) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    match before {
        None => assert!(!out.exists(), "{} was written: {err}", out.display()),
        Some(listing_before) => assert_eq!(listing(out), listing_before, "{err}"),
    }
    let staging: Vec<String> = listing(out.parent().unwrap()).into_iter().filter(|name| name.starts_with(".exporting")).collect();
    assert!(staging.is_empty(), "{staging:?}");
}

#[test]
fn released_files_configured_but_not_there_are_refused_saying_what_to_fetch() {
    // A released folder that is there, but without its files (an unpacking stopped
    // half-way, a copy left incomplete): the data is the release's, which cannot be read.
    for (task, folder, archive) in [
        ("text", "aclImdb", "lra data fetch imdb"),
        ("image", "cifar-10-batches-bin", "lra data fetch cifar10"),
        ("listops", "lra_release/listops-1000", "lra data fetch lra"),
        ("retrieval", "lra_release/tsv_data", "lra data fetch lra"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (data, out) = (dir.path().join("data"), dir.path().join("out"));
        std::fs::create_dir_all(data.join(folder)).unwrap();
        let top = folder.split('/').next().unwrap();
        let output = export(task, &data, &out, &[]);
        assert_refused(&output, &[archive, &data.join(top).display().to_string(), "not all there"], &out, None);
    }
}

#[test]
fn bad_formats_counts_and_folders_are_refused_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    let unknown = lra(&["data", "export", "--task", "listops", "--format", "parquet", "--out", out.to_str().unwrap()]);
    assert_refused(&unknown, &["unknown export format `parquet`", "the formats are: npy, tsv"], &out, None);
    let zero = export("listops", &data, &out, &["--examples", "0"]);
    assert_refused(&zero, &["--examples", "at least 1"], &out, None);
    let tsv = lra(&["data", "export", "--task", "listops", "--format", "tsv", "--out", out.to_str().unwrap(), "--examples", "2"]);
    assert_refused(&tsv, &["--examples is for --format npy"], &out, None);
    // An --out that is a file is left as it was.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"mine").unwrap();
    let output = export("listops", &data, &file, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("is a file"), "{}", stderr(&output));
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    // A folder holding anything an export does not write is not replaced.
    let folder = dir.path().join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("notes.txt"), b"mine").unwrap();
    std::fs::write(folder.join("task.json"), b"{}").unwrap();
    let before = listing(&folder);
    let output = export("listops", &data, &folder, &[]);
    assert_refused(&output, &["holds notes.txt"], &folder, Some(&before));
    assert_eq!(std::fs::read(folder.join("task.json")).unwrap(), b"{}");
}
