//! Text: IMDb movie reviews (Maas et al. 2011) at the byte level, as the LRA Text task.
//!
//! The released archive `aclImdb_v1.tar.gz` holds `aclImdb/{train,test}/{pos,neg}/*.txt`,
//! 12,500 reviews per folder; a review in `pos` has label 1, in `neg` label 0. The
//! official pipeline reads them through `tfds` (`imdb_reviews`), which takes each file's
//! raw bytes with leading and trailing ASCII whitespace stripped (Python's
//! `bytes.strip()`), and encodes them with the byte encoder of [`crate::bytes`],
//! truncated to the task length (1,000 in the official configuration).
//!
//! Files are read as bytes, exactly as the official pipeline does: a review that is not
//! valid UTF-8 is not an error, its bytes are its tokens.
//!
//! Order: the files of each split are listed in file-name order (byte order, `neg` before
//! `pos`), then shuffled with the seeded stream, so the order depends only on the files
//! and the seed, never on the file system's listing.
//!
//! Splits: IMDb has no validation split. The official code used the test split for both
//! validation and test; [`Validation::TestSplit`] (the default) does the same, so that
//! numbers compare with LRA's. [`Validation::HeldOutFromTrain`] instead holds out a
//! seeded share of the training reviews, for model selection that never sees the test set.

use std::path::{Path, PathBuf};

use crate::rng::SeededRng;
use crate::{DataError, Example, Splits, bytes};

/// Where the validation examples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// The test split, as the official code did (validation and test are the same examples).
    TestSplit,
    /// The last `percent` % of the shuffled training reviews; training keeps the rest.
    HeldOutFromTrain { percent: u32 },
}

/// How to read the reviews.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdbConfig {
    /// Tokens kept per review (the official Text task: 1,000).
    pub max_length: usize,
    pub validation: Validation,
    /// Seed of the shuffles.
    pub seed: u64,
}

impl Default for ImdbConfig {
    fn default() -> Self {
        Self { max_length: 1000, validation: Validation::TestSplit, seed: 0 }
    }
}

/// The largest review accepted: the longest IMDb review is about 14 KB; a file far beyond
/// that is not a review and is refused before it fills memory.
pub const MAX_REVIEW_BYTES: u64 = 1 << 20;

const TRAIN_STREAM: u64 = 0x696d_6462_7472; // "imdbtr"
const TEST_STREAM: u64 = 0x696d_6462_7465; // "imdbte"

/// Reads `root` (the `aclImdb` folder) into tokenized, shuffled splits.
pub fn read(root: &Path, config: &ImdbConfig) -> Result<Splits, DataError> {
    let mut train = read_split(root, "train", config.max_length)?;
    let mut test = read_split(root, "test", config.max_length)?;
    SeededRng::new(config.seed, TRAIN_STREAM).shuffle(&mut train);
    SeededRng::new(config.seed, TEST_STREAM).shuffle(&mut test);
    let validation = match config.validation {
        Validation::TestSplit => test.clone(),
        Validation::HeldOutFromTrain { percent } => {
            if !(1..=50).contains(&percent) {
                return Err(DataError::new(format!("imdb: the held-out validation share must be 1-50 %, found {percent} %")));
            }
            let held_out = train.len() * percent as usize / 100;
            train.split_off(train.len() - held_out)
        }
    };
    Ok(Splits { train, validation, test })
}

/// The reviews of one split (`train` or `test`) in file-name order, `neg` then `pos`.
pub fn read_split(root: &Path, split: &str, max_length: usize) -> Result<Vec<Example>, DataError> {
    let mut examples = Vec::new();
    for (folder, label) in [("neg", 0), ("pos", 1)] {
        let dir = root.join(split).join(folder);
        for path in review_files(&dir)? {
            let text = read_review(&path)?;
            examples.push(Example { tokens: bytes::encode(strip_ascii_whitespace(&text), max_length), second: None, label });
        }
    }
    Ok(examples)
}

/// The `*.txt` files of `dir`, sorted by name; an error if there is none.
fn review_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        DataError::in_file(dir, format!("{e}; expected a folder of reviews `aclImdb/{{train,test}}/{{pos,neg}}/*.txt`"))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        // Every `*.txt` entry is a review, whatever it is on disk: a dangling link, a device or
        // a folder is refused when read, never skipped, so no review is lost unnoticed.
        if path.extension().is_some_and(|ext| ext == "txt") {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(DataError::in_file(dir, "no review (*.txt) in this folder"));
    }
    files.sort();
    Ok(files)
}

fn read_review(path: &Path) -> Result<Vec<u8>, DataError> {
    let text = crate::files::read_bounded(path, MAX_REVIEW_BYTES)
        .map_err(|e| DataError::in_file(path, format!("{}: not an IMDb review", e.message)))?;
    // An empty review would train as padding alone under its folder's label: the release
    // has none, so one is damage (a failed copy), refused rather than kept.
    if strip_ascii_whitespace(&text).is_empty() {
        return Err(DataError::in_file(path, "empty review (only whitespace): not an IMDb review"));
    }
    Ok(text)
}

/// Python's `bytes.strip()`: space, `\t`, `\n`, `\r`, `\x0b`, `\x0c` at both ends.
fn strip_ascii_whitespace(text: &[u8]) -> &[u8] {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let start = text.iter().position(|b| !is_space(b)).unwrap_or(text.len());
    let end = text.iter().rposition(|b| !is_space(b)).map_or(start, |i| i + 1);
    &text[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small `aclImdb` tree: `n` reviews per folder, review `i` of a folder reads
    /// `"<folder> review <i>"`.
    fn write_tree(root: &Path, n: usize) {
        for split in ["train", "test"] {
            for folder in ["pos", "neg"] {
                let dir = root.join(split).join(folder);
                std::fs::create_dir_all(&dir).unwrap();
                for i in 0..n {
                    std::fs::write(dir.join(format!("{i}_7.txt")), format!("{split} {folder} review {i}\n")).unwrap();
                }
            }
        }
    }

    fn text_of(example: &Example) -> String {
        String::from_utf8(bytes::decode(&example.tokens)).unwrap()
    }

    #[test]
    fn labels_follow_the_folder_and_tokens_are_the_stripped_bytes_plus_one() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), 3);
        let train = read_split(dir.path(), "train", 100).unwrap();
        assert_eq!(train.len(), 6);
        // File-name order, neg first: 0_7, 1_7, 2_7.
        assert_eq!(text_of(&train[0]), "train neg review 0");
        assert_eq!(text_of(&train[5]), "train pos review 2");
        for example in &train {
            let expected = if text_of(example).contains(" pos ") { 1 } else { 0 };
            assert_eq!(example.label, expected);
            assert_eq!(example.second, None);
        }
        assert_eq!(train[0].tokens[0], b't' as u32 + 1);
    }

    #[test]
    fn reviews_are_truncated_to_the_maximum_length() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), 1);
        let train = read_split(dir.path(), "train", 5).unwrap();
        assert!(train.iter().all(|e| e.tokens.len() == 5));
        assert_eq!(text_of(&train[0]), "train");
    }

    #[test]
    fn stripping_matches_python_bytes_strip() {
        assert_eq!(strip_ascii_whitespace(b" \t\x0b\x0cab c\r\n"), b"ab c");
        assert_eq!(strip_ascii_whitespace(b"   "), b"");
        assert_eq!(strip_ascii_whitespace(b""), b"");
    }

    #[test]
    fn invalid_utf8_is_read_as_bytes() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), 1);
        std::fs::write(dir.path().join("train/pos/0_7.txt"), b"ok \xff\xfe").unwrap();
        let train = read_split(dir.path(), "train", 100).unwrap();
        assert_eq!(train[1].tokens, vec![b'o' as u32 + 1, b'k' as u32 + 1, b' ' as u32 + 1, 0x100, 0xff]);
    }

    #[test]
    fn the_same_seed_gives_the_same_order_and_another_seed_another() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), 10);
        let config = ImdbConfig { max_length: 100, ..Default::default() };
        let a = read(dir.path(), &config).unwrap();
        assert_eq!(a, read(dir.path(), &config).unwrap());
        let b = read(dir.path(), &ImdbConfig { seed: 1, ..config.clone() }).unwrap();
        assert_ne!(a.train, b.train);
        // A shuffle: the same examples in another order.
        let sorted = |mut v: Vec<Example>| {
            v.sort_by(|x, y| x.tokens.cmp(&y.tokens));
            v
        };
        assert_eq!(sorted(a.train.clone()), sorted(read_split(dir.path(), "train", 100).unwrap()));
        assert_ne!(a.train, read_split(dir.path(), "train", 100).unwrap());
    }

    #[test]
    fn official_validation_is_the_test_split() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), 4);
        let splits = read(dir.path(), &ImdbConfig { max_length: 100, ..Default::default() }).unwrap();
        assert_eq!(splits.train.len(), 8);
        assert_eq!(splits.validation, splits.test);
        assert!(splits.test.iter().all(|e| text_of(e).starts_with("test ")));
    }

    #[test]
    fn held_out_validation_is_a_disjoint_share_of_train() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), 10);
        let config = ImdbConfig { max_length: 100, validation: Validation::HeldOutFromTrain { percent: 25 }, seed: 3 };
        let splits = read(dir.path(), &config).unwrap();
        assert_eq!(splits.validation.len(), 5);
        assert_eq!(splits.train.len(), 15);
        assert!(splits.validation.iter().all(|v| text_of(v).starts_with("train ") && !splits.train.contains(v)));
        assert!(splits.test.iter().all(|e| text_of(e).starts_with("test ")));
        let bad = ImdbConfig { validation: Validation::HeldOutFromTrain { percent: 0 }, ..config };
        assert!(read(dir.path(), &bad).is_err());
    }

    #[test]
    fn a_missing_or_empty_folder_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), 1);
        std::fs::remove_dir_all(dir.path().join("test/neg")).unwrap();
        let err = read(dir.path(), &ImdbConfig::default()).unwrap_err();
        assert!(err.to_string().contains("test/neg"), "{err}");
        std::fs::create_dir(dir.path().join("test/neg")).unwrap();
        let err = read(dir.path(), &ImdbConfig::default()).unwrap_err();
        assert!(err.to_string().contains("test/neg") && err.to_string().contains("no review"), "{err}");
    }

    #[test]
    fn an_oversized_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), 1);
        let big = dir.path().join("train/pos/0_7.txt");
        std::fs::write(&big, vec![b'x'; MAX_REVIEW_BYTES as usize + 1]).unwrap();
        let err = read_split(dir.path(), "train", 10).unwrap_err();
        assert_eq!(err.path.as_deref(), Some(big.as_path()));
    }
}
