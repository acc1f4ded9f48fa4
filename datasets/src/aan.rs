//! Retrieval: citation links in the ACL Anthology Network (Radev et al. 2013), as the LRA
//! document-matching task.
//!
//! The release holds `lra_release/tsv_data/new_aan_pairs.{train,eval,test}.tsv`: no header,
//! one pair per line, 5 tab-separated columns `label, id1, id2, text1, text2`; label 1
//! when the two papers are linked by a citation, 0 otherwise. The official pipeline reads
//! the columns with no quoting (a `"` is an ordinary character), the label as a float
//! cast to an integer, and encodes each text by taking its first 10,000 **bytes**
//! (`s.numpy()[:10000]` on a byte string), byte-encoding them ([`crate::bytes`]) and
//! keeping the first `max_length` tokens (4,000 in the official configuration).
//!
//! A pair becomes `Example { tokens: text1, second: Some(text2), label }`. Lines must be
//! UTF-8 (the release is), at most [`MAX_LINE_BYTES`] long; blank lines are skipped.

use std::io::{BufRead, Write};
use std::path::Path;

use crate::text::{complete_lines, preview};
use crate::{DataError, Example, Splits, bytes};

/// One line of the released TSVs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub label: u32,
    pub id1: String,
    pub id2: String,
    pub text1: String,
    pub text2: String,
}

/// Bytes of each text the official pipeline keeps before encoding.
pub const TEXT_CUT_BYTES: usize = 10_000;

/// Longest line accepted: two full papers are a few hundred kilobytes; a line beyond this
/// is not an AAN pair and is refused before it fills memory.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// The file names of the three splits, as released.
pub const SPLIT_FILES: [&str; 3] = ["new_aan_pairs.train.tsv", "new_aan_pairs.eval.tsv", "new_aan_pairs.test.tsv"];

/// The parsed columns of one line, borrowing its text.
struct Columns<'a> {
    label: u32,
    id1: &'a str,
    id2: &'a str,
    text1: &'a str,
    text2: &'a str,
}

fn parse_line(line: &str) -> Result<Columns<'_>, String> {
    let fields: Vec<&str> = line.splitn(6, '\t').collect();
    if fields.len() != 5 {
        let found = if fields.len() == 6 { "more".to_string() } else { fields.len().to_string() };
        return Err(format!("expected 5 tab-separated columns (label, id1, id2, text1, text2), found {found}"));
    }
    // The official reader parses the label as a float and casts it: "1" and "1.0" are 1.
    let label = match fields[0].trim().parse::<f64>() {
        Ok(0.0) => 0,
        Ok(1.0) => 1,
        _ => {
            return Err(format!("label: expected 0 or 1, found `{}`", preview(fields[0])));
        }
    };
    // An empty document would train as a pair of padding: the release has none, so one is a
    // damaged row, refused rather than counted (a count nobody reads corrupts the benchmark).
    for (name, text) in [("text1 (column 4)", fields[3]), ("text2 (column 5)", fields[4])] {
        if text.trim().is_empty() {
            return Err(format!("{name} is empty: an AAN pair needs both documents"));
        }
    }
    Ok(Columns { label, id1: fields[1], id2: fields[2], text1: fields[3], text2: fields[4] })
}

/// Token ids of one text: its first [`TEXT_CUT_BYTES`] bytes, encoded, cut to `max_length`.
pub fn encode_text(text: &str, max_length: usize) -> Vec<u32> {
    let kept = &text.as_bytes()[..text.len().min(TEXT_CUT_BYTES)];
    bytes::encode(kept, max_length)
}

/// Calls `each` on every non-blank line's columns; errors carry file and line.
fn for_each_line(
    reader: impl BufRead,
    path: &Path,
    max_line_bytes: usize,
    mut each: impl FnMut(Columns<'_>),
) -> Result<(), DataError> {
    for (index, line) in complete_lines(reader, max_line_bytes).enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| e.located(path, number))?;
        if line.trim().is_empty() {
            continue;
        }
        each(parse_line(&line).map_err(|message| DataError::at(path, number, message))?);
    }
    Ok(())
}

/// Reads a released TSV into pairs (whole texts; for inspection and export).
pub fn read_tsv(path: &Path) -> Result<Vec<Pair>, DataError> {
    read_tsv_from(crate::files::open_bounded(path, crate::files::limit::DATA_TEXT)?, path)
}

/// As [`read_tsv`], from any reader; `path` names the source in errors.
pub fn read_tsv_from(reader: impl BufRead, path: &Path) -> Result<Vec<Pair>, DataError> {
    let mut pairs = Vec::new();
    for_each_line(reader, path, MAX_LINE_BYTES, |c| {
        pairs.push(Pair {
            label: c.label,
            id1: c.id1.to_string(),
            id2: c.id2.to_string(),
            text1: c.text1.to_string(),
            text2: c.text2.to_string(),
        })
    })?;
    Ok(pairs)
}

/// Reads a released TSV straight into examples, keeping only the tokens (the texts are
/// dropped line by line, so the training file never sits in memory whole).
pub fn read_examples(path: &Path, max_length: usize) -> Result<Vec<Example>, DataError> {
    read_examples_from(crate::files::open_bounded(path, crate::files::limit::DATA_TEXT)?, path, max_length)
}

/// As [`read_examples`], from any reader; `path` names the source in errors.
pub fn read_examples_from(reader: impl BufRead, path: &Path, max_length: usize) -> Result<Vec<Example>, DataError> {
    read_examples_limited(reader, path, max_length, MAX_LINE_BYTES)
}

fn read_examples_limited(
    reader: impl BufRead,
    path: &Path,
    max_length: usize,
    max_line_bytes: usize,
) -> Result<Vec<Example>, DataError> {
    let mut examples = Vec::new();
    for_each_line(reader, path, max_line_bytes, |c| {
        examples.push(Example {
            tokens: encode_text(c.text1, max_length),
            second: Some(encode_text(c.text2, max_length)),
            label: c.label,
        })
    })?;
    Ok(examples)
}

/// Reads the three released files of `folder` (`tsv_data`): train, eval (validation), test.
pub fn read_splits(folder: &Path, max_length: usize) -> Result<Splits, DataError> {
    let [train, validation, test] = SPLIT_FILES.map(|name| folder.join(name));
    Ok(Splits {
        train: read_examples(&train, max_length)?,
        validation: read_examples(&validation, max_length)?,
        test: read_examples(&test, max_length)?,
    })
}

/// Writes pairs in the released format. A field holding a tab or a line break cannot be
/// written in this format and is an `InvalidInput` error naming the pair and the field.
pub fn write_tsv(out: &mut impl Write, pairs: &[Pair]) -> std::io::Result<()> {
    for (index, pair) in pairs.iter().enumerate() {
        let fields = [("id1", &pair.id1), ("id2", &pair.id2), ("text1", &pair.text1), ("text2", &pair.text2)];
        for (name, value) in fields {
            if value.contains(['\t', '\n', '\r']) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("pair {}: {name} holds a tab or line break, which the TSV format cannot carry", index + 1),
                ));
            }
        }
        if pair.label > 1 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("pair {}: label {} is not 0 or 1", index + 1, pair.label),
            ));
        }
        writeln!(out, "{}\t{}\t{}\t{}\t{}", pair.label, pair.id1, pair.id2, pair.text1, pair.text2)?;
    }
    Ok(())
}

/// The pair an example encodes (e.g. a synthetic stand-in, for export): its two token
/// sequences decoded back to text. Errors if the example has no second sequence or its
/// bytes are not UTF-8.
pub fn pair_from_example(example: &Example, id1: &str, id2: &str) -> Result<Pair, DataError> {
    let second = example.second.as_ref().ok_or_else(|| DataError::new("a retrieval example needs two sequences"))?;
    let text = |tokens: &[u32], which: &str| {
        String::from_utf8(bytes::decode(tokens))
            .map_err(|e| DataError::new(format!("{which}: not UTF-8 at byte {}", e.utf8_error().valid_up_to())))
    };
    Ok(Pair {
        label: example.label,
        id1: id1.to_string(),
        id2: id2.to_string(),
        text1: text(&example.tokens, "text1")?,
        text2: text(second, "text2")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(label: u32, text1: &str, text2: &str) -> Pair {
        Pair { label, id1: "P01-1001".into(), id2: "W02-2002".into(), text1: text1.into(), text2: text2.into() }
    }

    #[test]
    fn tsv_round_trips() {
        let pairs = vec![pair(1, "a \"quoted\" text", "another"), pair(0, "é ü", "x")];
        let mut out = Vec::new();
        write_tsv(&mut out, &pairs).unwrap();
        assert_eq!(read_tsv_from(&out[..], Path::new("t.tsv")).unwrap(), pairs);
    }

    #[test]
    fn examples_hold_both_texts_as_bytes_plus_one() {
        let line = "1\tid1\tid2\tab\tcde\n";
        let examples = read_examples_from(line.as_bytes(), Path::new("t.tsv"), 100).unwrap();
        assert_eq!(
            examples,
            vec![Example {
                tokens: vec![b'a' as u32 + 1, b'b' as u32 + 1],
                second: Some(vec![b'c' as u32 + 1, b'd' as u32 + 1, b'e' as u32 + 1]),
                label: 1
            }]
        );
    }

    #[test]
    fn float_labels_are_read_as_the_official_reader_casts_them() {
        let text = "1.0\ta\tb\tx\ty\n0\ta\tb\tx\ty\n0.0\ta\tb\tx\ty\n";
        let labels: Vec<u32> = read_tsv_from(text.as_bytes(), Path::new("t.tsv")).unwrap().iter().map(|p| p.label).collect();
        assert_eq!(labels, [1, 0, 0]);
    }

    #[test]
    fn texts_are_cut_to_10000_bytes_then_to_the_maximum_length() {
        let long = "x".repeat(12_000);
        assert_eq!(encode_text(&long, 20_000).len(), TEXT_CUT_BYTES);
        assert_eq!(encode_text(&long, 4_000).len(), 4_000);
        assert_eq!(encode_text("short", 4_000).len(), 5);
    }

    #[test]
    fn malformed_lines_name_the_file_and_line() {
        let cases: [(&[u8], usize, &str); 5] = [
            (b"1\ta\tb\tx\ty\n1\ta\tb\tx\n", 2, "found 4"),
            (b"1\ta\tb\tx\ty\tz\n", 1, "found more"),
            (b"\n2\ta\tb\tx\ty\n", 2, "label: expected 0 or 1, found `2`"),
            (b"yes\ta\tb\tx\ty\n", 1, "label"),
            (b"1\ta\tb\t\xff\ty\n", 1, "UTF-8"),
        ];
        for (text, line, needle) in cases {
            let err = read_examples_from(text, Path::new("new_aan_pairs.eval.tsv"), 10).unwrap_err();
            let shown = err.to_string();
            assert!(shown.starts_with(&format!("new_aan_pairs.eval.tsv:{line}: ")), "{shown}");
            assert!(shown.contains(needle), "{shown}");
        }
    }

    #[test]
    fn an_overlong_line_is_an_error_naming_its_line() {
        let text = format!("1\ta\tb\tx\ty\n1\ta\tb\t{}\ty\n", "x".repeat(200));
        let err = read_examples_limited(text.as_bytes(), Path::new("t.tsv"), 10, 100).unwrap_err();
        assert!(err.to_string().starts_with("t.tsv:2: line longer than 100 bytes"), "{err}");
    }

    #[test]
    fn the_writer_refuses_fields_the_format_cannot_carry() {
        for bad in [pair(1, "a\tb", "c"), pair(1, "a", "b\nc"), pair(2, "a", "b")] {
            assert!(write_tsv(&mut Vec::new(), &[bad]).is_err());
        }
    }

    #[test]
    fn examples_convert_back_to_pairs() {
        let original = pair(1, "first text", "second text");
        let example =
            Example { tokens: encode_text(&original.text1, 100), second: Some(encode_text(&original.text2, 100)), label: 1 };
        assert_eq!(pair_from_example(&example, "P01-1001", "W02-2002").unwrap(), original);
        assert!(pair_from_example(&Example { second: None, ..example }, "a", "b").is_err());
    }

    #[test]
    fn splits_are_read_from_the_released_file_names() {
        let dir = tempfile::tempdir().unwrap();
        for (i, name) in SPLIT_FILES.iter().enumerate() {
            let pairs: Vec<Pair> = (0..=i).map(|k| pair((k % 2) as u32, "t1", "t2")).collect();
            write_tsv(&mut std::fs::File::create(dir.path().join(name)).unwrap(), &pairs).unwrap();
        }
        let splits = read_splits(dir.path(), 4000).unwrap();
        assert_eq!((splits.train.len(), splits.validation.len(), splits.test.len()), (1, 2, 3));
        std::fs::remove_file(dir.path().join(SPLIT_FILES[2])).unwrap();
        let err = read_splits(dir.path(), 4000).unwrap_err();
        assert!(err.to_string().contains("new_aan_pairs.test.tsv"), "{err}");
    }
}
