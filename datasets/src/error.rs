//! Errors that name what was wrong and where: `path:line: what was expected, what was found`.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem with input data, located as precisely as the format allows.
#[derive(Debug, thiserror::Error)]
pub struct DataError {
    pub path: Option<PathBuf>,
    /// 1-based line (text formats) or record (binary formats) number.
    pub line: Option<usize>,
    pub message: String,
}

impl DataError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { path: None, line: None, message: message.into() }
    }

    pub fn at(path: &Path, line: usize, message: impl Into<String>) -> Self {
        Self { path: Some(path.to_path_buf()), line: Some(line), message: message.into() }
    }

    pub fn in_file(path: &Path, message: impl Into<String>) -> Self {
        Self { path: Some(path.to_path_buf()), line: None, message: message.into() }
    }

    pub fn io(path: &Path, error: std::io::Error) -> Self {
        Self::in_file(path, error.to_string())
    }

    /// Locates an error raised without a place (e.g. by a parser of one line).
    pub fn located(mut self, path: &Path, line: usize) -> Self {
        self.path.get_or_insert_with(|| path.to_path_buf());
        self.line.get_or_insert(line);
        self
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.line) {
            (Some(path), Some(line)) => write!(f, "{}:{}: {}", path.display(), line, self.message),
            (Some(path), None) => write!(f, "{}: {}", path.display(), self.message),
            _ => f.write_str(&self.message),
        }
    }
}
