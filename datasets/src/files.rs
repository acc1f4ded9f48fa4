//! Opening and reading the files a user hands the harness, safely: only a regular file is
//! read (a FIFO would block forever, a device such as `/dev/zero` never end, a folder not
//! read at all), and never more than a bound fit for what the file is. Links to regular
//! files are followed: researchers link their datasets.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::DataError;

/// Bounds on what a file may hold, by kind of file.
pub mod limit {
    /// A run's `config.json` (a few kilobytes).
    pub const CONFIGURATION: u64 = 1 << 20;
    /// A run's `result.json` (a few kilobytes).
    pub const RUN_RECORD: u64 = 1 << 20;
    /// A run's `metrics.csv` (one row per logged step).
    pub const METRICS: u64 = 64 << 20;
    /// A benchmark record (a few hundred cells).
    pub const BENCH_RECORD: u64 = 16 << 20;
    /// A text file of released data (ListOps and AAN TSVs, an IMDb review, Pathfinder
    /// metadata): the largest released one, AAN's training TSV, is under 300 MB.
    pub const DATA_TEXT: u64 = 1 << 30;
    /// A binary file of released data (a CIFAR-10 batch: 30,730,000 bytes; a Pathfinder
    /// PNG: a few kilobytes).
    pub const DATA_BINARY: u64 = 64 << 20;
    /// A prepared-data cache file (`<data>/cache/*.bin`): every split of the largest task
    /// tokenized, AAN's 4,000-token pairs being the largest (about 2.5 GB).
    pub const DATA_CACHE: u64 = 8 << 30;
    /// A downloaded archive (the LRA release is 7.7 GB) or its recorded digest.
    pub const ARCHIVE: u64 = 32 << 30;
    /// A small text file the harness keeps beside its data or jobs (a recorded digest, a
    /// Slurm job record, a child's log read for its last line).
    pub const SMALL_TEXT: u64 = 1 << 20;
    /// A log a child or a Slurm job wrote (read whole to report its end).
    pub const LOG: u64 = 64 << 20;
}

/// A reader of a regular file that fails, rather than ending quietly, once the file
/// proves longer than its bound: a streaming reader stops as [`read_bounded`] does.
#[derive(Debug)]
pub struct Bounded<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // At the bound: one more byte means the file is too large.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    Err(std::io::Error::other(format!("larger than {} bytes, the most a file of its kind may hold", self.limit)))
                }
            };
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// `path` opened as [`open_regular`] does, buffered, and bounded to `limit` bytes: reading
/// past the bound is an error.
pub fn open_bounded(path: &Path, limit: u64) -> Result<std::io::BufReader<Bounded<File>>, DataError> {
    let file = open_regular(path)?;
    Ok(std::io::BufReader::with_capacity(1 << 16, Bounded { inner: file, left: limit, limit }))
}

/// `path` opened for reading, refused unless it is a regular file (after links). The file
/// is opened without blocking, so that a FIFO cannot stall the open itself.
pub fn open_regular(path: &Path) -> Result<File, DataError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| DataError::io(path, e))?;
    let kind = file.metadata().map_err(|e| DataError::io(path, e))?.file_type();
    if !kind.is_file() {
        return Err(DataError::in_file(path, format!("not a regular file (a {}); refusing to read it", describe(kind))));
    }
    #[cfg(unix)]
    {
        // Reads block again, as they do on any regular file.
        use std::os::unix::io::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this function owns, with valid arguments.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
    }
    Ok(file)
}

/// The bytes of the regular file `path`, refused if it holds more than `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, DataError> {
    let mut bytes = Vec::new();
    open_bounded(path, limit)?.read_to_end(&mut bytes).map_err(|e| DataError::io(path, e))?;
    Ok(bytes)
}

/// The text of the regular file `path` (UTF-8), refused if it holds more than `limit`
/// bytes.
pub fn read_text_bounded(path: &Path, limit: u64) -> Result<String, DataError> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|e| {
        DataError::in_file(path, format!("not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()))
    })
}

fn describe(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "FIFO";
        }
        if kind.is_char_device() {
            return "character device";
        }
        if kind.is_block_device() {
            return "block device";
        }
        if kind.is_socket() {
            return "socket";
        }
    }
    if kind.is_dir() { "folder" } else { "file that is not regular" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_read_and_a_larger_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_bounded(&path, 5).unwrap(), b"12345");
        let error = read_bounded(&path, 4).unwrap_err().to_string();
        assert!(error.contains("a.json") && error.contains("larger than 4 bytes"), "{error}");
    }

    #[test]
    fn folders_devices_and_fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let error = read_bounded(dir.path(), 10).unwrap_err().to_string();
        assert!(error.contains("not a regular file (a folder)"), "{error}");
        #[cfg(unix)]
        {
            let error = read_bounded(Path::new("/dev/zero"), 10).unwrap_err().to_string();
            assert!(error.contains("/dev/zero: not a regular file (a character device)"), "{error}");
            let fifo = dir.path().join("fifo");
            let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: mkfifo with a valid, NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
            let error = read_bounded(&fifo, 10).unwrap_err().to_string();
            assert!(error.contains("not a regular file (a FIFO)"), "{error}");
        }
    }

    #[test]
    fn a_bounded_reader_fails_past_its_bound_and_not_at_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tsv");
        std::fs::write(&path, b"12345").unwrap();
        let mut text = String::new();
        open_bounded(&path, 5).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "12345");
        let error = open_bounded(&path, 4).unwrap().read_to_string(&mut String::new()).unwrap_err().to_string();
        assert!(error.contains("larger than 4 bytes"), "{error}");
        #[cfg(unix)]
        {
            let error = open_bounded(Path::new("/dev/zero"), 4).unwrap_err().to_string();
            assert!(error.contains("character device"), "{error}");
        }
    }

    #[test]
    fn a_link_to_a_regular_file_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("data.tsv");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("link.tsv");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, &link).unwrap();
        #[cfg(unix)]
        assert_eq!(read_text_bounded(&link, 10).unwrap(), "x");
    }
}
