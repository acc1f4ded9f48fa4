//! Fetching the released archives: download over HTTP(S), resume, verify, extract.
//!
//! [`fetch`] downloads an archive into `<archive>.part`, resuming an interrupted transfer
//! with an HTTP `Range` request from the partial file's length (also across runs), renames
//! it to `<archive>` once complete, checks its SHA-256 against the caller's digest, and
//! unpacks it (`.tar.gz` or `.tar`, told apart by the gzip magic bytes) into a temporary
//! folder beside the target that is renamed into place only when every entry is written.
//! A failure at any step leaves no target folder behind; an archive whose digest does not
//! match is deleted, so the next try downloads it again.
//!
//! Extraction refuses, and fails on, any entry that could land outside the target:
//! absolute paths, `..` components, symbolic or hard links whose target is absolute or
//! climbs with `..` (a link may only point down, so no chain of links can climb out),
//! and device or FIFO entries.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::DataError;

mod download;
mod extract;
mod paths;
#[cfg(test)]
mod test_archives;
#[cfg(test)]
mod test_server;

use download::download;
use extract::extract;
use paths::with_suffix;

/// A public archive the harness knows how to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownArchive {
    /// The name given on the command line (`lra data fetch <name>`).
    pub name: &'static str,
    pub url: &'static str,
    pub file_name: &'static str,
    /// The published SHA-256, lowercase hex; `None` where none is published.
    pub sha256: Option<&'static str>,
    /// The size in bytes, where published.
    pub size: Option<u64>,
    pub description: &'static str,
    /// The top-level folders the archive unpacks to: the only ones moved into the data
    /// folder (anything else in an archive, e.g. a planted `prepared/` cache, is dropped).
    pub top_level: &'static [&'static str],
    /// A bound on the unpacked bytes (the archive's own size with room to spare):
    /// unpacking stops past it, so that a decompression or sparse-file bomb cannot fill
    /// the disk.
    pub max_unpacked_bytes: u64,
}

/// The three archives of the released LRA data.
///
/// Digests: IMDb's and CIFAR-10's are those TensorFlow Datasets records for the same URLs
/// (`tensorflow_datasets/datasets/imdb_reviews/checksums.tsv` and
/// `tensorflow_datasets/url_checksums/cifar10.txt`). The LRA release publishes no
/// digest, and none is recorded by TensorFlow Datasets or the LRA repositories, so
/// its entry has none: fetching it cannot verify the bytes, and [`fetch`] reports the
/// digest it computed so that a user can record it.
pub const KNOWN_ARCHIVES: [KnownArchive; 3] = [
    KnownArchive {
        name: "lra",
        url: "https://storage.googleapis.com/long-range-arena/lra_release.gz",
        file_name: "lra_release.gz",
        sha256: None,
        size: None,
        description: "the LRA release (ListOps, AAN retrieval TSVs, Pathfinder), a gzipped tar of about 7.7 GB",
        top_level: &["lra_release"],
        max_unpacked_bytes: 48 << 30,
    },
    KnownArchive {
        name: "imdb",
        url: "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
        file_name: "aclImdb_v1.tar.gz",
        sha256: Some("c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"),
        size: Some(84_125_825),
        description: "IMDb movie reviews (aclImdb v1), for the Text task",
        top_level: &["aclImdb"],
        max_unpacked_bytes: 1 << 30,
    },
    KnownArchive {
        name: "cifar10",
        url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        file_name: "cifar-10-binary.tar.gz",
        sha256: Some("c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"),
        size: Some(170_052_171),
        description: "CIFAR-10, binary version, for the Image task",
        top_level: &["cifar-10-batches-bin"],
        max_unpacked_bytes: 1 << 30,
    },
];

/// The known archive called `name`.
pub fn known_archive(name: &str) -> Option<&'static KnownArchive> {
    KNOWN_ARCHIVES.iter().find(|archive| archive.name == name)
}

/// What [`fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The archive's SHA-256, lowercase hex.
    pub sha256: String,
    /// Whether it was checked against an expected digest (false when none was given).
    pub verified: bool,
    pub archive_bytes: u64,
}

/// Downloads `url` to `archive` (unless a complete download is already there), checks its
/// SHA-256 against `expected_sha256` (64 hex digits; `None` skips the check), and unpacks
/// it into `target`, which must not exist yet, at most `max_unpacked_bytes` of it.
/// `progress(downloaded, total)` is called as bytes arrive; `total` is `None` when the
/// server does not say.
pub fn fetch(
    url: &str,
    expected_sha256: Option<&str>,
    archive: &Path,
    target: &Path,
    max_unpacked_bytes: u64,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Fetched, DataError> {
    let expected = expected_sha256.map(parse_digest).transpose()?;
    if target.exists() {
        return Err(DataError::in_file(target, "already exists; remove it to fetch the data again"));
    }
    if !archive.is_file() {
        download(url, archive, progress)?;
    }
    let sha256 = sha256_of_file(archive)?;
    if let Some(expected) = &expected
        && &sha256 != expected
    {
        // A wrong archive is useless: remove it so that the next try downloads afresh.
        let _ = std::fs::remove_file(archive);
        return Err(DataError::in_file(
            archive,
            format!("SHA-256 is {sha256}, expected {expected}: the download is corrupt or not the published file; deleted"),
        ));
    }
    extract(archive, target, max_unpacked_bytes)?;
    let archive_bytes = std::fs::metadata(archive).map_err(|e| DataError::io(archive, e))?.len();
    Ok(Fetched { sha256, verified: expected.is_some(), archive_bytes })
}

/// Where the digest of an archive without a published one is remembered after its first
/// fetch: `<archive>.sha256`.
pub fn first_seen_digest_path(archive: &Path) -> PathBuf {
    with_suffix(archive, ".sha256")
}

/// The digest an archive must have: the published one, else the one its first fetch
/// recorded beside it, else none (the first fetch).
pub fn expected_digest(known: &KnownArchive, archive: &Path) -> Result<Option<String>, DataError> {
    if let Some(published) = known.sha256 {
        return Ok(Some(published.to_string()));
    }
    let record = first_seen_digest_path(archive);
    if std::fs::symlink_metadata(&record).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Ok(None);
    }
    let text = crate::files::read_text_bounded(&record, crate::files::limit::SMALL_TEXT)?;
    parse_digest(&text).map(Some).map_err(|e| DataError::in_file(&record, e.to_string()))
}

/// Records `sha256` as the digest later fetches of `archive` must match.
pub fn remember_digest(archive: &Path, sha256: &str) -> Result<(), DataError> {
    let record = first_seen_digest_path(archive);
    std::fs::write(&record, format!("{sha256}\n")).map_err(|e| DataError::io(&record, e))
}

/// What [`install`] did with each top-level entry of an unpacked archive.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Installed {
    /// Moved into the data folder.
    pub moved: Vec<String>,
    /// Expected, but the data folder already holds one: kept as it is.
    pub kept: Vec<String>,
    /// Not among the expected folders: left in the staging folder, removed with it.
    pub dropped: Vec<String>,
}

/// Moves the archive's expected top-level folders from `staging` into `data_dir` (a folder
/// already there is kept). Anything else the archive holds is left in `staging`, to be
/// removed with it.
pub fn install(staging: &Path, data_dir: &Path, top_level: &[&str]) -> Result<Installed, DataError> {
    let (mut moved, mut kept, mut dropped) = (Vec::new(), Vec::new(), Vec::new());
    for entry in std::fs::read_dir(staging).map_err(|e| DataError::io(staging, e))? {
        let entry = entry.map_err(|e| DataError::io(staging, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !top_level.contains(&name.as_str()) {
            dropped.push(name);
            continue;
        }
        let destination = data_dir.join(&name);
        if destination.exists() {
            kept.push(name);
        } else {
            std::fs::rename(entry.path(), &destination).map_err(|e| DataError::io(&destination, e))?;
            moved.push(name);
        }
    }
    if moved.is_empty() && kept.is_empty() {
        return Err(DataError::in_file(
            staging,
            format!("the archive holds none of the folders expected ({})", top_level.join(", ")),
        ));
    }
    Ok(Installed { moved, kept, dropped })
}

fn parse_digest(digest: &str) -> Result<String, DataError> {
    let digest = digest.trim().to_ascii_lowercase();
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DataError::new(format!("`{digest}` is not a SHA-256 digest (64 hexadecimal digits)")));
    }
    Ok(digest)
}

/// The SHA-256 of a file, lowercase hex.
fn sha256_of_file(path: &Path) -> Result<String, DataError> {
    let mut file = crate::files::open_bounded(path, crate::files::limit::ARCHIVE)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::test_archives::{GOOD_FILES, good_tar, gzip, hostile_tar, names_in};
    use super::test_server::{Serving, serve};

    use super::*;

    fn digest(bytes: &[u8]) -> String {
        Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The files under `root`, relative, with their contents.
    fn files_under(root: &Path) -> Vec<(String, Vec<u8>)> {
        let mut found = Vec::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                    found.push((relative, std::fs::read(&path).unwrap()));
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn a_good_archive_is_downloaded_verified_and_extracted_exactly() {
        let archive_bytes = gzip(&good_tar());
        let server = serve(archive_bytes.clone(), Serving::Whole, 1);
        let dir = tempfile::tempdir().unwrap();
        let (archive, target) = (dir.path().join("downloads/a.tar.gz"), dir.path().join("data"));
        let mut last = (0, None);
        let fetched = fetch(&server.url, Some(&digest(&archive_bytes)), &archive, &target, 1 << 20, &mut |done, total| {
            last = (done, total)
        })
        .unwrap();
        assert_eq!(
            fetched,
            Fetched { sha256: digest(&archive_bytes), verified: true, archive_bytes: archive_bytes.len() as u64 }
        );
        let n = archive_bytes.len() as u64;
        assert_eq!(last, (n, Some(n)));
        let expected: Vec<(String, Vec<u8>)> = {
            let mut files: Vec<_> = GOOD_FILES.iter().map(|(p, c)| (p.to_string(), c.to_vec())).collect();
            files.sort();
            files
        };
        assert_eq!(files_under(&target), expected);
        assert_eq!(names_in(dir.path()), ["data", "downloads"]); // no staging folder left
        assert_eq!(names_in(&dir.path().join("downloads")), ["a.tar.gz"]); // no partial file left
    }

    /// Serves `served` where the archive `expected` was published: the checksum must fail
    /// and nothing may be left behind.
    fn assert_refused_by_checksum(served: Vec<u8>, expected: &[u8]) {
        let server = serve(served, Serving::Whole, 1);
        let dir = tempfile::tempdir().unwrap();
        let (archive, target) = (dir.path().join("a.tar.gz"), dir.path().join("data"));
        let err = fetch(&server.url, Some(&digest(expected)), &archive, &target, 1 << 20, &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("SHA-256"), "{err}");
        assert!(names_in(dir.path()).is_empty(), "left behind: {:?}", names_in(dir.path()));
    }

    #[test]
    fn a_truncated_archive_fails_the_checksum_and_leaves_no_target() {
        let archive_bytes = gzip(&good_tar());
        assert_refused_by_checksum(archive_bytes[..archive_bytes.len() / 2].to_vec(), &archive_bytes);
    }

    #[test]
    fn a_tampered_archive_fails_the_checksum_and_leaves_no_target() {
        let archive_bytes = gzip(&good_tar());
        let mut tampered = archive_bytes.clone();
        let middle = tampered.len() / 2;
        tampered[middle] ^= 0x40;
        assert_refused_by_checksum(tampered, &archive_bytes);
    }

    #[test]
    fn an_interrupted_download_resumes_from_the_partial_length() {
        let archive_bytes = gzip(&good_tar());
        let server = serve(archive_bytes.clone(), Serving::DropFirstHalfway, 2);
        let dir = tempfile::tempdir().unwrap();
        let (archive, target) = (dir.path().join("a.tar.gz"), dir.path().join("data"));
        fetch(&server.url, Some(&digest(&archive_bytes)), &archive, &target, 1 << 20, &mut |_, _| {}).unwrap();
        let half = archive_bytes.len() / 2;
        assert_eq!(*server.ranges.lock().unwrap(), [None, Some(format!("bytes={half}-"))]);
        assert_eq!(std::fs::read(&archive).unwrap(), archive_bytes);
        assert_eq!(files_under(&target).len(), GOOD_FILES.len());
    }

    #[test]
    fn entries_that_would_land_outside_the_target_are_refused_and_nothing_is_written() {
        let cases = [
            hostile_tar("../evil.txt", tar::EntryType::Regular, None, b"escaped"),
            hostile_tar("data/../../evil.txt", tar::EntryType::Regular, None, b"escaped"),
            hostile_tar("/tmp/lra-evil.txt", tar::EntryType::Regular, None, b"escaped"),
            hostile_tar("data/link", tar::EntryType::Symlink, Some("../../evil.txt"), b""),
            hostile_tar("data/link", tar::EntryType::Symlink, Some("/etc/passwd"), b""),
            hostile_tar("data/hard", tar::EntryType::Link, Some("../evil.txt"), b""),
        ];
        for (i, tar_bytes) in cases.into_iter().enumerate() {
            let archive_bytes = gzip(&tar_bytes);
            let server = serve(archive_bytes.clone(), Serving::Whole, 1);
            let dir = tempfile::tempdir().unwrap();
            let work = dir.path().join("work");
            let (archive, target) = (work.join("a.tar.gz"), work.join("data"));
            let err = fetch(&server.url, Some(&digest(&archive_bytes)), &archive, &target, 1 << 20, &mut |_, _| {}).unwrap_err();
            assert!(err.to_string().contains("outside the target folder"), "case {i}: {err}");
            assert_eq!(names_in(dir.path()), ["work"], "case {i}");
            assert_eq!(names_in(&work), ["a.tar.gz"], "case {i}: only the verified archive remains");
            assert!(!Path::new("/tmp/lra-evil.txt").exists());
        }
    }

    #[test]
    fn a_download_without_an_expected_digest_reports_the_one_it_computed() {
        let archive_bytes = gzip(&good_tar());
        let server = serve(archive_bytes.clone(), Serving::Whole, 1);
        let dir = tempfile::tempdir().unwrap();
        let fetched =
            fetch(&server.url, None, &dir.path().join("a.tgz"), &dir.path().join("data"), 1 << 20, &mut |_, _| {}).unwrap();
        assert_eq!((fetched.sha256, fetched.verified), (digest(&archive_bytes), false));
        assert!(
            fetch("http://127.0.0.1:9/x", Some("abc"), &dir.path().join("b"), &dir.path().join("c"), 1 << 20, &mut |_, _| {})
                .unwrap_err()
                .to_string()
                .contains("not a SHA-256")
        );
    }

    #[test]
    fn the_known_archives_have_unique_names_and_well_formed_digests() {
        for (i, archive) in KNOWN_ARCHIVES.iter().enumerate() {
            assert_eq!(known_archive(archive.name), Some(&KNOWN_ARCHIVES[i]));
            assert!(archive.url.ends_with(archive.file_name));
            if let Some(sha256) = archive.sha256 {
                assert_eq!(parse_digest(sha256).unwrap(), sha256);
            }
        }
        assert_eq!(known_archive("mnist"), None);
    }

    #[test]
    fn only_the_expected_folders_are_installed_so_an_archive_cannot_plant_a_cache() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, data) = (dir.path().join("staging"), dir.path().join("data"));
        for folder in ["lra_release/listops", "prepared", "aclImdb"] {
            std::fs::create_dir_all(staging.join(folder)).unwrap();
        }
        std::fs::write(staging.join("prepared/0123.bin"), b"planted").unwrap();
        std::fs::create_dir_all(data.join("aclImdb")).unwrap();
        let installed = install(&staging, &data, &["lra_release", "aclImdb"]).unwrap();
        let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            installed,
            Installed { moved: names(&["lra_release"]), kept: names(&["aclImdb"]), dropped: names(&["prepared"]) }
        );
        assert!(data.join("lra_release/listops").is_dir() && !data.join("prepared").exists());
        let err = install(&staging, &data, &["cifar-10-batches-bin"]).unwrap_err().to_string();
        assert!(err.contains("none of the folders expected"), "{err}");
    }

    #[test]
    fn an_archive_without_a_published_digest_must_match_its_first_fetch() {
        let dir = tempfile::tempdir().unwrap();
        let lra = known_archive("lra").unwrap();
        let archive = dir.path().join("downloads").join(lra.file_name);
        std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
        assert_eq!(expected_digest(lra, &archive).unwrap(), None, "the first fetch has nothing to match");
        let first = digest(b"the first archive");
        remember_digest(&archive, &first).unwrap();
        assert_eq!(expected_digest(lra, &archive).unwrap(), Some(first));
        let imdb = known_archive("imdb").unwrap();
        assert_eq!(expected_digest(imdb, &archive).unwrap().as_deref(), imdb.sha256);
    }
}
