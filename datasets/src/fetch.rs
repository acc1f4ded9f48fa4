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

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::DataError;

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
    let mut name = archive.file_name().unwrap_or_default().to_os_string();
    name.push(".sha256");
    archive.with_file_name(name)
}

/// The digest an archive must have: the published one, else the one its first fetch
/// recorded beside it, else none (the first fetch).
pub fn expected_digest(known: &KnownArchive, archive: &Path) -> Result<Option<String>, DataError> {
    if let Some(published) = known.sha256 {
        return Ok(Some(published.to_string()));
    }
    let record = first_seen_digest_path(archive);
    match std::fs::read_to_string(&record) {
        Ok(text) => parse_digest(&text).map(Some).map_err(|e| DataError::in_file(&record, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DataError::io(&record, e)),
    }
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
pub fn sha256_of_file(path: &Path) -> Result<String, DataError> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
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

/// Attempts per download: an interrupted transfer resumes where it stopped.
const MAX_ATTEMPTS: u32 = 4;

/// The partial download beside `destination`.
pub fn partial_path(destination: &Path) -> PathBuf {
    let mut name = destination.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    destination.with_file_name(name)
}

/// Downloads `url` to `destination` through `<destination>.part`, resuming from the
/// partial file's length, retrying an interrupted transfer; renames the partial file to
/// `destination` when complete. Returns the number of bytes of the file.
pub fn download(url: &str, destination: &Path, progress: &mut dyn FnMut(u64, Option<u64>)) -> Result<u64, DataError> {
    if let Some(folder) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|e| DataError::io(folder, e))?;
    }
    let partial = partial_path(destination);
    let agent = agent_for(url);
    let mut attempt = 1;
    loop {
        match download_attempt(&agent, url, &partial, progress) {
            Ok(bytes) => {
                std::fs::rename(&partial, destination).map_err(|e| DataError::io(destination, e))?;
                return Ok(bytes);
            }
            Err(Attempt::Retry(_)) if attempt < MAX_ATTEMPTS => {
                std::thread::sleep(Duration::from_millis(200 * attempt as u64));
                attempt += 1;
            }
            Err(Attempt::Retry(message)) => {
                return Err(DataError::in_file(
                    &partial,
                    format!("{url}: {message} ({MAX_ATTEMPTS} attempts; run again to resume from this partial file)"),
                ));
            }
            Err(Attempt::Fail(error)) => return Err(error),
        }
    }
}

enum Attempt {
    /// A transfer that may succeed if tried again (connection dropped, timeout).
    Retry(String),
    Fail(DataError),
}

fn agent_for(url: &str) -> ureq::Agent {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"].iter().any(|p| url.starts_with(p));
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("lra-harness/", env!("CARGO_PKG_VERSION")));
    if loopback {
        // A local server is never reached through the environment's proxy.
        config = config.proxy(None);
    }
    config.build().new_agent()
}

/// One request: appends to the partial file from its current length.
fn download_attempt(
    agent: &ureq::Agent,
    url: &str,
    partial: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<u64, Attempt> {
    let io_fail = |e: std::io::Error| Attempt::Fail(DataError::io(partial, e));
    let mut have = match std::fs::metadata(partial) {
        Ok(metadata) => metadata.len(),
        Err(_) => 0,
    };
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(|e| match e {
        ureq::Error::BadUri(_) | ureq::Error::HostNotFound => Attempt::Fail(DataError::new(format!("{url}: {e}"))),
        ureq::Error::StatusCode(status @ 400..=499) => Attempt::Fail(refused(url, status)),
        other => Attempt::Retry(other.to_string()),
    })?;
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
    let total = match response.status().as_u16() {
        206 => {
            let range = header("content-range").unwrap_or_default();
            let (start, total) = parse_content_range(&range).ok_or_else(|| {
                Attempt::Fail(DataError::new(format!("{url}: partial response with a bad Content-Range `{range}`")))
            })?;
            if start != have {
                return Err(Attempt::Fail(DataError::new(format!(
                    "{url}: asked for bytes from {have}, the server sent them from {start}"
                ))));
            }
            total.or(content_length.map(|n| have + n))
        }
        200 => {
            // The server ignored the range (or there was none): start over.
            have = 0;
            content_length
        }
        416 => {
            // Nothing left to send from `have`: complete if that is the whole file,
            // otherwise the partial file is not a prefix of it; start over.
            let range = header("content-range").unwrap_or_default();
            let total = range.strip_prefix("bytes */").and_then(|t| t.trim().parse::<u64>().ok());
            if total == Some(have) {
                progress(have, total);
                return Ok(have);
            }
            std::fs::remove_file(partial).map_err(io_fail)?;
            return Err(Attempt::Retry("the partial download does not fit the file; starting over".into()));
        }
        // A refusal is not a dropped connection: trying again does not help.
        status @ 400..=499 => return Err(Attempt::Fail(refused(url, status))),
        status => {
            return Err(Attempt::Fail(DataError::new(format!("{url}: HTTP status {status}"))));
        }
    };
    let mut file = OpenOptions::new().create(true).append(true).open(partial).map_err(io_fail)?;
    if have == 0 {
        file.set_len(0).map_err(io_fail)?;
    }
    let mut body = response.into_body().into_reader();
    let mut buffer = vec![0u8; 1 << 16];
    progress(have, total);
    loop {
        let n = match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                file.flush().map_err(io_fail)?;
                return Err(Attempt::Retry(format!("transfer interrupted after {have} bytes: {e}")));
            }
        };
        file.write_all(&buffer[..n]).map_err(io_fail)?;
        have += n as u64;
        progress(have, total);
    }
    file.sync_all().map_err(io_fail)?;
    match total {
        Some(total) if have != total => Err(Attempt::Retry(format!("transfer ended at {have} of {total} bytes"))),
        _ => Ok(have),
    }
}

/// A server's refusal, and what to do about it.
fn refused(url: &str, status: u16) -> DataError {
    DataError::new(format!(
        "{url}: the server refused the download (HTTP {status}); fetch it from a mirror with `--url URL` (its SHA-256 \
         is checked all the same) or put the unpacked files under the data folder yourself"
    ))
}

/// `bytes <start>-<end>/<total>` -> `(start, total)`; total `*` is unknown.
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = if total.trim() == "*" { None } else { Some(total.trim().parse().ok()?) };
    Some((start.trim().parse().ok()?, total))
}

/// The path of an archive entry relative to the target, or `None` if it is absolute or
/// has a `..` component. `.` components are dropped.
fn contained_path(path: &Path) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(relative)
}

/// Unpacks `archive` (`.tar.gz` or `.tar`) into `target`, which must not exist: into a
/// temporary folder beside it first, renamed to `target` once every entry is written.
/// Past `max_bytes` of unpacked contents, it stops and fails.
pub fn extract(archive: &Path, target: &Path, max_bytes: u64) -> Result<(), DataError> {
    if target.exists() {
        return Err(DataError::in_file(target, "already exists; not extracting over it"));
    }
    let folder = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(folder).map_err(|e| DataError::io(folder, e))?;
    crate::staging::remove_stale(folder, ".extracting");
    let staging = tempfile::Builder::new()
        .prefix(&crate::staging::prefix(".extracting"))
        .tempdir_in(folder)
        .map_err(|e| DataError::io(folder, e))?;

    let mut file = BufReader::new(File::open(archive).map_err(|e| DataError::io(archive, e))?);
    let mut magic = [0u8; 2];
    let gzipped = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let reader: Box<dyn Read> =
        if gzipped { Box::new(flate2::read::GzDecoder::new(BufReader::new(file))) } else { Box::new(BufReader::new(file)) };
    unpack(tar::Archive::new(reader), staging.path(), max_bytes).map_err(|message| DataError::in_file(archive, message))?;
    // Only now does the target appear; on any error above, `staging` is removed on drop.
    std::fs::rename(staging.keep(), target).map_err(|e| DataError::io(target, e))?;
    Ok(())
}

/// Writes every entry under `root`, refusing entries that would land outside it.
fn unpack(mut archive: tar::Archive<impl Read>, root: &Path, max_bytes: u64) -> Result<(), String> {
    let entries = archive.entries().map_err(|e| format!("not a tar archive: {e}"))?;
    let mut unpacked = 0u64;
    for (index, entry) in entries.enumerate() {
        let number = index + 1;
        let mut entry = entry.map_err(|e| format!("entry {number}: {e}"))?;
        let raw_path = entry.path().map_err(|e| format!("entry {number}: {e}"))?.into_owned();
        let shown = raw_path.display().to_string();
        let relative = contained_path(&raw_path)
            .ok_or_else(|| format!("entry {number} `{shown}` would land outside the target folder; refused"))?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        if relative.as_os_str().is_empty() {
            if kind.is_dir() {
                continue; // `./`, the root itself
            }
            return Err(format!("entry {number} `{shown}` has no file name"));
        }
        let destination = root.join(&relative);
        let write_error = |e: std::io::Error| format!("entry {number} `{shown}`: {e}");
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        if kind.is_dir() {
            std::fs::create_dir_all(&destination).map_err(write_error)?;
        } else if kind.is_file() || kind.is_gnu_sparse() {
            let mut out = File::create(&destination).map_err(write_error)?;
            // At most what is left of the bound, plus one byte to tell that it was passed.
            let left = max_bytes.saturating_sub(unpacked);
            unpacked += std::io::copy(&mut (&mut entry).take(left.saturating_add(1)), &mut out).map_err(write_error)?;
            if unpacked > max_bytes {
                return Err(format!(
                    "entry {number} `{shown}`: the archive unpacks to more than {max_bytes} bytes, more than it can hold; refused"
                ));
            }
        } else if kind.is_symlink() || kind.is_hard_link() {
            let link = entry
                .link_name()
                .map_err(write_error)?
                .ok_or_else(|| format!("entry {number} `{shown}`: a link without a target"))?
                .into_owned();
            let link_target = contained_path(&link).filter(|p| !p.as_os_str().is_empty()).ok_or_else(|| {
                format!("entry {number} `{shown}` links to `{}`, outside the target folder; refused", link.display())
            })?;
            if kind.is_hard_link() {
                // A hard link's target is relative to the archive's root.
                std::fs::hard_link(root.join(&link_target), &destination).map_err(write_error)?;
            } else {
                make_symlink(&link_target, &destination).map_err(write_error)?;
            }
        } else {
            return Err(format!("entry {number} `{shown}` is a {kind:?} entry, which data archives never hold; refused"));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn make_symlink(link_target: &Path, destination: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(link_target, destination)
}

#[cfg(not(unix))]
fn make_symlink(_link_target: &Path, _destination: &Path) -> std::io::Result<()> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "symbolic links are only unpacked on Unix"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader as StdBufReader};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// How the test server answers.
    #[derive(Clone, Copy, PartialEq)]
    enum Serving {
        Whole,
        /// The first response announces the whole length but stops halfway and hangs up.
        DropFirstHalfway,
    }

    /// A loopback HTTP server for `body`, answering at most `max_requests` GETs (with an
    /// optional `Range: bytes=N-`); records each request's Range header.
    struct Server {
        url: String,
        ranges: Arc<Mutex<Vec<Option<String>>>>,
    }

    fn serve(body: Vec<u8>, serving: Serving, max_requests: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/archive.tar.gz", listener.local_addr().unwrap());
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&ranges);
        std::thread::spawn(move || {
            for (index, stream) in listener.incoming().take(max_requests).enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = StdBufReader::new(stream.try_clone().unwrap());
                let mut range = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("range")
                    {
                        range = Some(value.trim().to_string());
                    }
                }
                seen.lock().unwrap().push(range.clone());
                let start = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(0);
                let len = body.len();
                let (head, payload) = if start == 0 {
                    (format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n"), &body[..])
                } else if start < len {
                    let head = format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{len}\r\nContent-Length: {}\r\n",
                        len - 1,
                        len - start
                    );
                    (head, &body[start..])
                } else {
                    (
                        format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n"),
                        &[][..],
                    )
                };
                let sent =
                    if serving == Serving::DropFirstHalfway && index == 0 { &payload[..payload.len() / 2] } else { payload };
                let _ = stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes());
                let _ = stream.write_all(sent);
                let _ = stream.flush();
                // Dropping the stream closes the connection (mid-body for the dropped response).
            }
        });
        Server { url, ranges }
    }

    fn digest(bytes: &[u8]) -> String {
        Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
    }

    const GOOD_FILES: [(&str, &[u8]); 3] =
        [("data/a.txt", b"first file\n"), ("data/sub/b.bin", &[0, 1, 2, 255]), ("data/empty", b"")];

    /// A `.tar` of [`GOOD_FILES`] (plus a folder entry).
    fn good_tar() -> Vec<u8> {
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

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// A `.tar` with one entry whose raw name (and link target) is written as given,
    /// bypassing the builder's own path checks, as a hostile archive would.
    fn hostile_tar(name: &str, kind: tar::EntryType, link: Option<&str>, contents: &[u8]) -> Vec<u8> {
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

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
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
    fn plain_tar_archives_and_links_that_stay_inside_are_extracted() {
        let mut bytes = good_tar();
        // Drop the two zero blocks that end the archive, append a link, end it again.
        bytes.truncate(bytes.len() - 1024);
        bytes.extend(hostile_tar("data/link", tar::EntryType::Symlink, Some("sub/b.bin"), b""));
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar");
        std::fs::write(&archive, &bytes).unwrap();
        let target = dir.path().join("out");
        extract(&archive, &target, 1 << 20).unwrap();
        assert_eq!(std::fs::read(target.join("data/a.txt")).unwrap(), b"first file\n");
        #[cfg(unix)]
        assert_eq!(std::fs::read(target.join("data/link")).unwrap(), [0, 1, 2, 255]);
        assert!(extract(&archive, &target, 1 << 20).unwrap_err().to_string().contains("already exists"));
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
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
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

    /// A tar of one file of `size` zero bytes, gzipped: a few kilobytes that unpack to `size`.
    fn zero_bomb(size: usize) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(size as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, "lra_release/zeros.bin", std::io::repeat(0).take(size as u64)).unwrap();
        gzip(&builder.into_inner().unwrap())
    }

    #[test]
    fn an_archive_that_unpacks_past_its_bound_is_refused_and_leaves_nothing() {
        let bomb = zero_bomb(4 << 20);
        assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("bomb.tar.gz");
        std::fs::write(&archive, &bomb).unwrap();
        let err = extract(&archive, &dir.path().join("out"), 1 << 20).unwrap_err().to_string();
        assert!(err.contains("more than 1048576 bytes"), "{err}");
        assert_eq!(names_in(dir.path()), ["bomb.tar.gz"], "no target, no staging");
        // Within its bound, the same archive unpacks.
        extract(&archive, &dir.path().join("out"), 4 << 20).unwrap();
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

    #[test]
    fn a_server_that_refuses_is_not_retried_and_the_error_says_to_use_a_mirror() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/lra_release.gz", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = String::new();
            let mut reader = StdBufReader::new(stream.try_clone().unwrap());
            while reader.read_line(&mut request).unwrap() > 2 && !request.ends_with("\r\n\r\n") {}
            stream.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let err = download(&url, &dir.path().join("a.gz"), &mut |_, _| {}).unwrap_err().to_string();
        assert!(err.contains("HTTP 403") && err.contains("--url"), "{err}");
    }
}
