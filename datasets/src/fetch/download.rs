//! Downloading over HTTP(S) into `<destination>.part`, resuming an interrupted transfer
//! with a `Range` request from the partial file's length, retried a few times.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::DataError;

/// Attempts per download: an interrupted transfer resumes where it stopped.
const MAX_ATTEMPTS: u32 = 4;

/// Downloads `url` to `destination` through `<destination>.part`, resuming from the
/// partial file's length, retrying an interrupted transfer; renames the partial file to
/// `destination` when complete. Returns the number of bytes of the file.
pub(super) fn download(url: &str, destination: &Path, progress: &mut dyn FnMut(u64, Option<u64>)) -> Result<u64, DataError> {
    if let Some(folder) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|e| DataError::io(folder, e))?;
    }
    let partial = super::paths::with_suffix(destination, ".part");
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

#[cfg(test)]
mod tests {
    use super::super::test_server::{Serving, serve};
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn a_server_that_refuses_is_not_retried_and_the_error_says_to_use_a_mirror() {
        // One request answered: a retry would find the server gone and fail otherwise.
        let server = serve(Vec::new(), Serving::Forbidden, 1);
        let dir = tempfile::tempdir().unwrap();
        let err = download(&server.url, &dir.path().join("a.gz"), &mut |_, _| {}).unwrap_err().to_string();
        assert!(err.contains("HTTP 403") && err.contains("--url"), "{err}");
        assert_eq!(server.ranges.lock().unwrap().len(), 1, "one request, not retried");
    }
}
