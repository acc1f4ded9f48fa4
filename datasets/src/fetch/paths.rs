//! The paths beside an archive (`<archive>.part` while it downloads, `<archive>.sha256`
//! for its first-seen digest): shared by `fetch.rs` and the download, so kept out of
//! `fetch.rs`, which its children must not import.

use std::path::{Path, PathBuf};

/// `path` with `suffix` appended to its file name (`a.tar.gz` -> `a.tar.gz.part`).
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}
