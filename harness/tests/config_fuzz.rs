//! Fuzzing the configuration reader: arbitrary bytes, and a valid `config.json` mutated
//! (bytes flipped, cut, spliced; numbers replaced by extremes), fed to `RunConfig::load`
//! through a file. Whatever the input: no panic, a bounded time, and either a
//! configuration that validates or an error that names the file.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use lra_harness::records::device_name::DeviceName;
use lra_harness::records::run_config::RunConfig;
use lra_tasks::{Preset, Task};

/// The cases of each property (the inputs tried per reader).
const CASES: u32 = 1024;

/// A valid configuration of each task, as `config.json` holds it.
fn valid_texts() -> Vec<Vec<u8>> {
    Task::ALL
        .iter()
        .map(|&task| {
            let config = RunConfig::resolve(task, Preset::Tiny, "transformer", 0, DeviceName::Flex).unwrap();
            serde_json::to_vec_pretty(&config).unwrap()
        })
        .collect()
}

/// Loads `bytes` from a file and checks the outcome.
fn check_load(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzzed-config.json");
    std::fs::write(&path, bytes).unwrap();
    let started = Instant::now();
    let loaded = std::panic::catch_unwind(|| RunConfig::load(&path));
    prop_assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    match loaded {
        Err(_) => prop_assert!(false, "RunConfig::load panicked"),
        Ok(Ok(config)) => prop_assert!(config.validate().is_ok()),
        Ok(Err(error)) => {
            let why = format!("{error:#}");
            prop_assert!(why.contains("fuzzed-config.json"), "{}", why);
            prop_assert!(why.len() < 4000, "{} characters", why.len());
        }
    }
    Ok(())
}

/// A mutation of a valid text.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, byte: u8 },
    Cut { at: usize },
    Splice { at: usize, bytes: Vec<u8> },
    Number { nth: usize, value: &'static str },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let extremes = prop::sample::select(vec![
        "0",
        "-1",
        "1e308",
        "-1e308",
        "18446744073709551615",
        "18446744073709551616",
        "1e9",
        "0.5",
        "2.0",
        "-0.0",
        "1000000000000",
        "null",
        "\"x\"",
        "[]",
        "{}",
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Cut { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 0..16)).prop_map(|(at, bytes)| Mutation::Splice { at, bytes }),
        (any::<usize>(), extremes).prop_map(|(nth, value)| Mutation::Number { nth, value }),
    ]
}

/// `text` with `mutations` applied in turn.
fn mutate(mut text: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let len = text.len().max(1);
        match mutation {
            Mutation::Flip { at, byte } if !text.is_empty() => text[at % len] = *byte,
            Mutation::Flip { .. } => {}
            Mutation::Cut { at } => text.truncate(at % len),
            Mutation::Splice { at, bytes } => {
                let at = at % len.min(text.len() + 1);
                text.splice(at..at, bytes.iter().copied());
            }
            Mutation::Number { nth, value } => {
                // The nth run of digits (with its sign) becomes the value.
                let runs: Vec<(usize, usize)> = {
                    let mut runs = Vec::new();
                    let mut i = 0;
                    while i < text.len() {
                        if text[i].is_ascii_digit() {
                            let start = if i > 0 && text[i - 1] == b'-' { i - 1 } else { i };
                            let mut end = i;
                            while end < text.len() && (text[end].is_ascii_digit() || b".eE+-".contains(&text[end])) {
                                end += 1;
                            }
                            runs.push((start, end));
                            i = end;
                        } else {
                            i += 1;
                        }
                    }
                    runs
                };
                if let Some(&(start, end)) = runs.get(nth % runs.len().max(1)) {
                    text.splice(start..end, value.bytes());
                }
            }
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_read_without_panic_and_refused_naming_the_file(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        check_load(&bytes)?;
    }

    #[test]
    fn mutated_valid_configurations_validate_or_are_refused_naming_the_file(
        which in 0..Task::ALL.len(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let text = mutate(valid_texts()[which].clone(), &mutations);
        check_load(&text)?;
    }
}

/// The unmutated texts load: the mutations start from valid configurations.
#[test]
fn the_texts_mutated_are_valid_configurations() {
    let dir = tempfile::tempdir().unwrap();
    for text in valid_texts() {
        let path = dir.path().join("config.json");
        std::fs::write(&path, &text).unwrap();
        RunConfig::load(&path).unwrap();
    }
}
