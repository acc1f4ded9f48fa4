//! Fuzzing of every reader of released or prepared data, through the files as the harness
//! opens them: arbitrary bytes and mutations (a byte changed, a cut, bytes inserted) of
//! small valid inputs. Each case must end promptly with data or with an error that names
//! the file read (and the line, where the format has lines); a panic fails the case.

use std::path::Path;
use std::time::{Duration, Instant};

use lra_datasets::pathfinder::{read_release, write_release};
use lra_datasets::{DataError, Example, Splits, aan, cache, cifar, imdb, listops};
use proptest::prelude::*;

const LISTOPS: &str = "Source\tTarget\n( [MAX 2 9 ] )\t9\n[MIN 3 ( [SM 4 5 ] ) ]\t3\n[MED 1 2 3 ]\t2\n";
const AAN: &str = "1\ta\tb\tfirst paper text\tsecond paper\n0.0\tc\td\tthird\tfourth one\n";

/// A mutation of valid bytes: change one byte, cut the file, or insert bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set(at, byte)),
        any::<usize>().prop_map(Mutation::Cut),
        (any::<usize>(), proptest::collection::vec(prop_oneof![Just(b'\t'), Just(b'\n'), Just(b' '), any::<u8>()], 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
    ]
}

fn mutate(valid: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    for m in mutations {
        match m {
            Mutation::Set(at, byte) if !bytes.is_empty() => {
                let at = at % bytes.len();
                bytes[at] = *byte;
            }
            Mutation::Cut(at) => bytes.truncate(at % (bytes.len() + 1)),
            Mutation::Insert(at, inserted) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, inserted.iter().copied());
            }
            Mutation::Set(..) => {}
        }
    }
    bytes
}

/// Runs a read and checks its end: prompt, and an error located in `file` (with a line
/// when `lines`), or inside `root` for readers of folders.
fn check<T>(root: &Path, file: Option<&Path>, lines: bool, read: impl FnOnce() -> Result<T, DataError>) -> Option<T> {
    let started = Instant::now();
    let outcome = read();
    assert!(started.elapsed() < Duration::from_secs(5), "a read took {:?}", started.elapsed());
    match outcome {
        Ok(value) => Some(value),
        Err(error) => {
            let path = error.path.as_deref().unwrap_or_else(|| panic!("error names no file: {error}"));
            match file {
                Some(file) => assert_eq!(path, file, "{error}"),
                None => assert!(path.starts_with(root), "{error}"),
            }
            if lines {
                assert!(error.line.is_some_and(|l| l >= 1), "error names no line: {error}");
            }
            assert!(error.to_string().starts_with(&path.display().to_string()), "{error}");
            None
        }
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn listops_case(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "basic_train.tsv", bytes);
    // A read error that is not about a line (e.g. the file's size) names no line; every
    // error of a TSV this small is about one.
    if let Some(samples) = check(dir.path(), Some(&path), true, || listops::read_tsv(&path)) {
        for sample in samples {
            assert_eq!(listops::evaluate(&sample.source).unwrap(), sample.target);
        }
    }
}

fn aan_case(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "new_aan_pairs.train.tsv", bytes);
    let pairs = check(dir.path(), Some(&path), true, || aan::read_tsv(&path));
    let examples = check(dir.path(), Some(&path), true, || aan::read_examples(&path, 16));
    // Both readers agree on what the file holds.
    assert_eq!(pairs.as_ref().map(Vec::len), examples.as_ref().map(Vec::len));
    for pair in pairs.into_iter().flatten() {
        assert!(pair.label <= 1 && !pair.text1.trim().is_empty() && !pair.text2.trim().is_empty());
    }
}

fn metadata_case(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let images: Vec<(Vec<u8>, u8)> = (0..4u8).map(|i| (vec![i + 1; 16], i % 2)).collect();
    write_release(dir.path(), &images, 4, 4).unwrap();
    let metadata = write(&dir.path().join("metadata"), "0.npy", bytes);
    let started = Instant::now();
    let outcome = read_release(dir.path(), 4);
    assert!(started.elapsed() < Duration::from_secs(5), "a read took {:?}", started.elapsed());
    match outcome {
        // Each image at most once: no image can land in two splits.
        Ok(release) => assert!(release.images.len() <= 4, "{} images from 4 files", release.images.len()),
        Err(error) => {
            let text = error.to_string();
            let path = error.path.as_deref().unwrap_or_else(|| panic!("error names no file: {text}"));
            if path == metadata {
                // Errors in the metadata name its line.
                assert!(error.line.is_some(), "{text}");
            } else {
                // Errors in an image name the image and the metadata line listing it.
                assert!(path.starts_with(dir.path()) && text.contains("0.npy:"), "{text}");
            }
        }
    }
}

fn valid_metadata() -> Vec<u8> {
    (0..4).map(|i| format!("imgs/0 sample_{i}.png {i} {} 6 2 8\n", i % 2)).collect::<String>().into_bytes()
}

fn cifar_case(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "data_batch_1.bin", bytes);
    if let Some(examples) = check(dir.path(), Some(&path), false, || cifar::read_batch(&path)) {
        assert_eq!(examples.len(), cifar::RECORDS_PER_BATCH);
        assert!(examples.iter().all(|e| e.label < cifar::CLASSES && e.tokens.len() == cifar::PIXELS));
    }
}

fn imdb_case(reviews: &[Vec<u8>]) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("aclImdb");
    for (i, review) in reviews.iter().enumerate() {
        let folder = root.join("test").join(if i % 2 == 0 { "pos" } else { "neg" });
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(format!("{i}_1.txt")), review).unwrap();
    }
    if let Some(examples) = check(&root, None, false, || imdb::read_split(&root, "test", 32)) {
        assert_eq!(examples.len(), reviews.len());
        assert!(examples.iter().all(|e| !e.tokens.is_empty() && e.tokens.len() <= 32));
    }
}

fn sample_splits() -> Splits {
    let example = |tokens: Vec<u32>, second: Option<Vec<u32>>, label| Example { tokens, second, label };
    Splits {
        train: vec![example(vec![1, 2, 300], None, 0), example(vec![], Some(vec![70_000, 0]), 1)],
        validation: vec![example(vec![5], None, 3)],
        test: vec![example(vec![7; 5], Some(vec![]), 9)],
    }
}

fn cache_case(mutations: &[Mutation]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("task.bin");
    cache::save(&path, "params", &sample_splits()).unwrap();
    let valid = std::fs::read(&path).unwrap();
    let bytes = mutate(&valid, mutations);
    std::fs::write(&path, &bytes).unwrap();
    // A cache is trusted only whole: it loads as it was saved, or is no cache at all.
    if let Some(Some(splits)) = check(dir.path(), Some(&path), false, || cache::load(&path, "params")) {
        assert_eq!(splits, sample_splits());
        assert_eq!(bytes, valid);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn listops_tsv_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        listops_case(&bytes);
    }

    #[test]
    fn listops_tsv_mutations(mutations in proptest::collection::vec(mutation(), 1..4)) {
        listops_case(&mutate(LISTOPS.as_bytes(), &mutations));
    }

    #[test]
    fn aan_tsv_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        aan_case(&bytes);
    }

    #[test]
    fn aan_tsv_mutations(mutations in proptest::collection::vec(mutation(), 1..4)) {
        aan_case(&mutate(AAN.as_bytes(), &mutations));
    }

    #[test]
    fn pathfinder_metadata_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        metadata_case(&bytes);
    }

    #[test]
    fn pathfinder_metadata_mutations(mutations in proptest::collection::vec(mutation(), 1..4)) {
        metadata_case(&mutate(&valid_metadata(), &mutations));
    }

    #[test]
    fn cifar_batch_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..8_000)) {
        cifar_case(&bytes);
    }

    #[test]
    fn prepared_cache_mutations(mutations in proptest::collection::vec(mutation(), 0..3)) {
        cache_case(&mutations);
    }
}

proptest! {
    // A tree of files per case: fewer cases.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn imdb_review_folder_arbitrary_reviews(
        reviews in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 2..6)
    ) {
        imdb_case(&reviews);
    }
}

proptest! {
    // A whole batch (30 MB) per case: few cases, each a mutation of a valid batch.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn cifar_batch_mutations(mutations in proptest::collection::vec(mutation(), 1..3)) {
        let valid: Vec<u8> = (0..cifar::RECORDS_PER_BATCH)
            .flat_map(|i| {
                let mut record = vec![(i % 251) as u8; cifar::RECORD_BYTES];
                record[0] = (i % 10) as u8;
                record
            })
            .collect();
        cifar_case(&mutate(&valid, &mutations));
    }
}
