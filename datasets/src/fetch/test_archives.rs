//! Archives for the fetch tests: a good `.tar` of known files, gzip, a hostile `.tar`
//! written byte by byte, and the names left in a folder. Shared by the tests of `fetch.rs`
//! and of the extraction, so kept out of `fetch.rs`, which the extraction must not import.

use std::io::Write;
use std::path::Path;

pub(super) const GOOD_FILES: [(&str, &[u8]); 3] =
    [("data/a.txt", b"first file\n"), ("data/sub/b.bin", &[0, 1, 2, 255]), ("data/empty", b"")];

/// A `.tar` of [`GOOD_FILES`] (plus a folder entry).
pub(super) fn good_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut folder = tar::Header::new_gnu();
    folder.set_entry_type(tar::EntryType::Directory);
    folder.set_mode(0o755);
    folder.set_size(0);
    builder.append_data(&mut folder, "data/sub/", &[][..]).unwrap();
    for (path, contents) in GOOD_FILES {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, contents).unwrap();
    }
    builder.into_inner().unwrap()
}

pub(super) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A `.tar` with one entry whose raw name (and link target) is written as given,
/// bypassing the builder's own path checks, as a hostile archive would.
pub(super) fn hostile_tar(name: &str, kind: tar::EntryType, link: Option<&str>, contents: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(link) = link {
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(contents.len() as u64);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, contents).unwrap();
    builder.into_inner().unwrap()
}

pub(super) fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}
