//! Line reading that a hostile file cannot turn into a panic or an unbounded allocation.

use std::io::{BufRead, Read};

use crate::DataError;

/// Lines of `reader` without their `\n` / `\r\n`, each at most `max_bytes` long and valid
/// UTF-8; a longer or invalid line is an error (the caller adds file and line).
pub fn bounded_lines(reader: impl BufRead, max_bytes: usize) -> impl Iterator<Item = Result<String, DataError>> {
    lines(reader, max_bytes, false)
}

/// As [`bounded_lines`], and a last line without its final newline is an error: every
/// released TSV ends its rows with one, so a file that stops inside a row was cut short (an
/// interrupted copy or download), and its last row would be read truncated.
pub fn complete_lines(reader: impl BufRead, max_bytes: usize) -> impl Iterator<Item = Result<String, DataError>> {
    lines(reader, max_bytes, true)
}

fn lines(reader: impl BufRead, max_bytes: usize, complete: bool) -> impl Iterator<Item = Result<String, DataError>> {
    let mut reader = reader;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut bytes = Vec::new();
        let mut limited = Read::take(&mut reader, max_bytes as u64 + 1);
        match limited.read_until(b'\n', &mut bytes) {
            Err(e) => {
                done = true;
                Some(Err(DataError::new(e.to_string())))
            }
            Ok(0) => None,
            Ok(_) => {
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                    if bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                } else if bytes.len() > max_bytes {
                    done = true;
                    return Some(Err(DataError::new(format!("line longer than {max_bytes} bytes"))));
                } else if complete {
                    done = true;
                    return Some(Err(DataError::new(
                        "the file ends inside this line (no final newline): it was cut short, refusing a truncated row",
                    )));
                }
                Some(
                    String::from_utf8(bytes).map_err(|e| {
                        DataError::new(format!("invalid UTF-8 at byte {} of the line", e.utf8_error().valid_up_to()))
                    }),
                )
            }
        }
    })
}

/// A short, printable excerpt of untrusted text for error messages.
pub fn preview(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut out: String = text.chars().take(MAX_CHARS).flat_map(char::escape_default).collect();
    if text.chars().count() > MAX_CHARS {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_on_newlines_and_strip_carriage_returns() {
        let lines: Vec<String> = bounded_lines("a\r\nb\n\nc".as_bytes(), 10).map(Result::unwrap).collect();
        assert_eq!(lines, ["a", "b", "", "c"]);
    }

    #[test]
    fn an_overlong_line_is_an_error_not_an_allocation() {
        let text = format!("ok\n{}\n", "x".repeat(100));
        let results: Vec<_> = bounded_lines(text.as_bytes(), 50).collect();
        assert!(results[0].is_ok());
        assert!(results[1].as_ref().unwrap_err().message.contains("longer than 50"));
        assert_eq!(results.len(), 2);
    }

    #[test]
    fn a_cut_last_line_is_an_error_only_where_lines_must_be_complete() {
        let results: Vec<_> = complete_lines("a\nb".as_bytes(), 10).collect();
        assert_eq!(results[0].as_ref().unwrap(), "a");
        assert!(results[1].as_ref().unwrap_err().message.contains("no final newline"));
        assert_eq!(complete_lines("a\nb\n".as_bytes(), 10).map(Result::unwrap).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(bounded_lines("a\nb".as_bytes(), 10).map(Result::unwrap).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let results: Vec<_> = bounded_lines(&b"ok\n\xff\xfe\n"[..], 50).collect();
        assert!(results[1].is_err());
    }
}
