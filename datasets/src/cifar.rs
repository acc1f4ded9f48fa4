//! Image: CIFAR-10 (Krizhevsky 2009) in grayscale, one token per pixel, as the LRA Image task.
//!
//! The binary release `cifar-10-binary.tar.gz` unpacks to `cifar-10-batches-bin/` with
//! `data_batch_{1..5}.bin` (50,000 training images) and `test_batch.bin` (10,000). Each
//! file is a run of 3,073-byte records: one label byte (0-9), then the red, green and blue
//! planes of a 32x32 image, 1,024 bytes each, row by row.
//!
//! Grayscale: the official pipeline applies `tf.image.rgb_to_grayscale` to the `uint8`
//! image and casts the result to integers. That function converts the pixel to float32 in
//! [0, 1] (`x * (1/255)`), takes the weighted sum with 0.2989, 0.5870, 0.1140, and converts
//! back to `uint8` by multiplying by 255.5 and **truncating** (`convert_image_dtype`). So a
//! gray value is `trunc(255.5 * (0.2989 r + 0.5870 g + 0.1140 b) / 255)`, computed here in
//! float32 in the same order: neither plain rounding (pure green gives 149, not 150) nor
//! plain truncation (white gives 255, not 254). A float32 sum on other hardware may round
//! differently for the rare value that falls within a float32 step of an integer.
//!
//! Tokens are the 1,024 gray values row by row (vocabulary 256, no padding). Splits as the
//! official code names them: train = the first 90 % of the training records, validation =
//! the last 10 %, test = `test_batch.bin`. The records are taken in file order
//! (`data_batch_1` to `_5`), so validation is exactly `data_batch_5`. The official code
//! sliced `tfds`'s copy, whose preparation shuffles the records, so its validation images
//! are another 5,000 (a different, equally random draw of the same training set).

use std::io::Read;
use std::path::Path;

use crate::{DataError, Example, Splits};

pub const SIDE: usize = 32;
pub const PIXELS: usize = SIDE * SIDE;
/// One label byte and three colour planes.
pub const RECORD_BYTES: usize = 1 + 3 * PIXELS;
pub const CLASSES: u32 = 10;
/// Records in each batch file of the release.
pub const RECORDS_PER_BATCH: usize = 10_000;
/// Gray values 0-255.
pub const VOCAB_SIZE: usize = 256;

pub const TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
pub const TEST_FILE: &str = "test_batch.bin";

/// The class names, by label.
pub const CLASS_NAMES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// `tf.image.rgb_to_grayscale` on one `uint8` pixel (see the module documentation).
pub fn grayscale(red: u8, green: u8, blue: u8) -> u8 {
    let to_unit = |x: u8| x as f32 * (1.0f32 / 255.0);
    let gray = to_unit(red) * 0.2989f32 + to_unit(green) * 0.5870f32 + to_unit(blue) * 0.1140f32;
    // `as` truncates towards zero (and saturates, though the weights sum below 1).
    (gray * 255.5f32) as u8
}

/// The example of one record: label byte then R, G, B planes. The caller has checked
/// the length; `None` if the label is not 0-9.
fn record_to_example(record: &[u8; RECORD_BYTES]) -> Option<Example> {
    let label = record[0] as u32;
    if label >= CLASSES {
        return None;
    }
    let (red, rest) = record[1..].split_at(PIXELS);
    let (green, blue) = rest.split_at(PIXELS);
    let tokens = (0..PIXELS).map(|i| grayscale(red[i], green[i], blue[i]) as u32).collect();
    Some(Example { tokens, second: None, label })
}

/// Reads one batch file.
pub fn read_batch(path: &Path) -> Result<Vec<Example>, DataError> {
    let examples = read_batch_from(crate::files::open_bounded(path, crate::files::limit::DATA_BINARY)?, path)?;
    // A short batch (an empty or cut file whose size is a multiple of a record) would just
    // shrink the split, and the benchmark with it, without a word.
    if examples.len() != RECORDS_PER_BATCH {
        return Err(DataError::in_file(
            path,
            format!("holds {} records; a CIFAR-10 batch holds exactly {RECORDS_PER_BATCH}", examples.len()),
        ));
    }
    Ok(examples)
}

/// As [`read_batch`], from any reader; `path` names the source in errors. Errors carry
/// the 1-based record number: a final record shorter than 3,073 bytes (the file's size is
/// not a multiple of the record size), or a label above 9.
pub fn read_batch_from(mut reader: impl Read, path: &Path) -> Result<Vec<Example>, DataError> {
    let mut examples = Vec::new();
    let mut record = [0u8; RECORD_BYTES];
    loop {
        let number = examples.len() + 1;
        if number > RECORDS_PER_BATCH {
            // A batch holds 10,000 records; a file that goes on is not one (a link to /dev/zero).
            let more = fill(&mut reader, &mut record[..1]).map_err(|e| DataError::at(path, number, e.to_string()))?;
            if more > 0 {
                return Err(DataError::at(path, number, format!("more than {RECORDS_PER_BATCH} records: not a CIFAR-10 batch")));
            }
            return Ok(examples);
        }
        let filled = fill(&mut reader, &mut record).map_err(|e| DataError::at(path, number, e.to_string()))?;
        if filled == 0 {
            return Ok(examples);
        }
        if filled < RECORD_BYTES {
            return Err(DataError::at(
                path,
                number,
                format!("record holds {filled} of {RECORD_BYTES} bytes: the file's size is not a multiple of {RECORD_BYTES}"),
            ));
        }
        let example = record_to_example(&record)
            .ok_or_else(|| DataError::at(path, number, format!("label byte is {}, expected a class 0-9", record[0])))?;
        examples.push(example);
    }
}

/// Reads until `buffer` is full or the input ends; the number of bytes read.
fn fill(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The number of training records kept for training: 90 %, rounded to nearest.
pub fn train_count(training_records: usize) -> usize {
    (training_records * 9 + 5) / 10
}

/// Reads `folder` (`cifar-10-batches-bin`) into the three splits.
pub fn read_splits(folder: &Path) -> Result<Splits, DataError> {
    let mut train = Vec::new();
    for name in TRAIN_FILES {
        train.extend(read_batch(&folder.join(name))?);
    }
    let validation = train.split_off(train_count(train.len()));
    let test = read_batch(&folder.join(TEST_FILE))?;
    Ok(Splits { train, validation, test })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record whose every pixel is the colour `(r, g, b)`, except pixel `(row, col)`
    /// which is white, to pin the layout.
    fn record(label: u8, (r, g, b): (u8, u8, u8), white_at: (usize, usize)) -> Vec<u8> {
        let mut bytes = vec![label];
        for value in [r, g, b] {
            let mut plane = vec![value; PIXELS];
            plane[white_at.0 * SIDE + white_at.1] = 255;
            bytes.extend(plane);
        }
        bytes
    }

    #[test]
    fn a_batch_that_never_ends_is_refused_after_its_ten_thousand_records() {
        let path = Path::new("data_batch_1.bin");
        // /dev/zero is an endless run of valid records of class 0.
        let endless = std::io::repeat(0);
        let err = read_batch_from(endless, path).unwrap_err().to_string();
        assert!(err.contains("more than 10000 records") && err.contains(":10001"), "{err}");
        let exact: Vec<u8> = std::iter::repeat_n(record(3, (1, 2, 3), (0, 0)), RECORDS_PER_BATCH).flatten().collect();
        assert_eq!(read_batch_from(exact.as_slice(), path).unwrap().len(), RECORDS_PER_BATCH);
    }

    #[test]
    fn grayscale_matches_tensorflow_on_known_pixels() {
        assert_eq!(grayscale(0, 0, 0), 0);
        // 0.9999 * 255.5 = 255.47: truncation of the weighted sum alone would give 254.
        assert_eq!(grayscale(255, 255, 255), 255);
        // 0.5870 * 255.5 = 149.98: rounding the weighted sum (149.69) would give 150.
        assert_eq!(grayscale(0, 255, 0), 149);
        assert_eq!(grayscale(255, 0, 0), 76); // 76.37
        assert_eq!(grayscale(0, 0, 255), 29); // 29.13
        assert_eq!(grayscale(128, 128, 128), 128); // 128.25
    }

    #[test]
    fn grayscale_agrees_with_the_exact_formula_away_from_integer_boundaries() {
        for r in (0..=255u32).step_by(5) {
            for g in (0..=255u32).step_by(3) {
                for b in (0..=255u32).step_by(7) {
                    let exact = 255.5 * (0.2989 * r as f64 + 0.5870 * g as f64 + 0.1140 * b as f64) / 255.0;
                    if (exact - exact.round()).abs() > 1e-3 {
                        assert_eq!(grayscale(r as u8, g as u8, b as u8) as f64, exact.trunc(), "{r} {g} {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn records_become_labelled_row_major_gray_images() {
        let mut bytes = record(3, (0, 255, 0), (2, 5));
        bytes.extend(record(9, (0, 0, 0), (31, 31)));
        let examples = read_batch_from(&bytes[..], Path::new("data_batch_1.bin")).unwrap();
        assert_eq!(examples.len(), 2);
        assert_eq!(examples[0].label, 3);
        assert_eq!(examples[0].tokens.len(), PIXELS);
        assert_eq!(examples[0].tokens[0], 149);
        assert_eq!(examples[0].tokens[2 * SIDE + 5], 255);
        assert_eq!(examples[1].tokens[PIXELS - 1], 255);
        assert_eq!(examples[1].tokens[0], 0);
        assert!(examples.iter().all(|e| e.second.is_none()));
    }

    #[test]
    fn a_truncated_file_names_the_file_and_the_incomplete_record() {
        let mut bytes = record(1, (1, 2, 3), (0, 0));
        bytes.extend(&record(1, (1, 2, 3), (0, 0))[..100]);
        let err = read_batch_from(&bytes[..], Path::new("data_batch_2.bin")).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("data_batch_2.bin:2: record holds 100 of 3073 bytes"), "{shown}");
    }

    #[test]
    fn a_label_above_nine_names_the_file_and_record() {
        let mut bytes = record(0, (1, 2, 3), (0, 0));
        bytes.extend(record(0, (1, 2, 3), (0, 0)));
        bytes.extend(record(10, (1, 2, 3), (0, 0)));
        let err = read_batch_from(&bytes[..], Path::new("test_batch.bin")).unwrap_err();
        assert!(err.to_string().starts_with("test_batch.bin:3: label byte is 10"), "{err}");
    }

    #[test]
    fn splits_take_the_last_tenth_of_training_records_for_validation() {
        let dir = tempfile::tempdir().unwrap();
        // Whole batches (a short one is refused): file f's records have label f, except the
        // last record of each file, which has label 9, to pin the order within a file.
        for (f, name) in TRAIN_FILES.iter().enumerate() {
            let mut bytes: Vec<u8> = record(f as u8, (9, 9, 9), (0, 0)).repeat(RECORDS_PER_BATCH - 1);
            bytes.extend(record(9, (9, 9, 9), (0, 0)));
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        std::fs::write(dir.path().join(TEST_FILE), record(7, (0, 0, 0), (0, 0)).repeat(RECORDS_PER_BATCH)).unwrap();
        let splits = read_splits(dir.path()).unwrap();
        assert_eq!((splits.train.len(), splits.validation.len(), splits.test.len()), (45_000, 5_000, 10_000));
        // Validation is the second half of data_batch_5, in file order.
        assert!(splits.validation[..4_999].iter().all(|e| e.label == 4));
        assert_eq!(splits.validation[4_999].label, 9);
        assert_eq!(splits.train[9_999].label, 9);
        assert_eq!(splits.train[44_999].label, 4);
        assert!(splits.test.iter().all(|e| e.label == 7));
        assert_eq!(train_count(50_000), 45_000);
        std::fs::remove_file(dir.path().join(TEST_FILE)).unwrap();
        assert!(read_splits(dir.path()).unwrap_err().to_string().contains(TEST_FILE));
    }
}
