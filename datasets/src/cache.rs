//! The prepared-data cache: tokenized splits stored once, loaded instead of re-reading and
//! re-tokenizing the source files.
//!
//! A cache file is a header then a body, all integers little-endian:
//!
//! ```text
//! magic        8 bytes   "LRA-DATA"
//! version      u32       FORMAT_VERSION
//! params_len   u32       then params_len bytes of UTF-8: what made the data
//! body_len     u64
//! sha256       32 bytes  of the body
//! body:
//!   width      u8        bytes per token: 1, 2 or 4 (the narrowest that holds every id)
//!   3 splits (train, validation, test), each:
//!     count    u64       then `count` examples:
//!       label  u32
//!       pair   u8        1 if a second sequence follows the first, else 0
//!       len    u32       then `len` tokens of `width` bytes; again for the second sequence
//! ```
//!
//! `params` is a caller's description of everything that decides the data (source, task
//! length, seed, ...): a cache made with other parameters or another format version is
//! stale, and [`load`] ignores it, as it ignores a corrupt one (wrong checksum, truncated,
//! malformed): the data are then prepared again. [`save`] writes a temporary file in the
//! same folder and renames it into place, so a reader never sees half a cache.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{DataError, Example, Splits};

pub const MAGIC: &[u8; 8] = b"LRA-DATA";
/// Bumped whenever the layout or the meaning of the stored data changes (2: released
/// Pathfinder splits are drawn from the listed images, each cut to the preset's count;
/// 3: Pathfinder images at LRA's sizes are drawn supersampled and resampled, rounded
/// and placed as the original generator does).
pub const FORMAT_VERSION: u32 = 3;

/// Magic, version and params length come first; the body length and checksum after the params.
const FIXED_HEADER: u64 = 8 + 4 + 4;
const BODY_HEADER: u64 = 8 + 32;
/// The smallest example: label, pair flag, an empty sequence's length.
const MIN_EXAMPLE_BYTES: u64 = 4 + 1 + 4;

/// Writes `splits` to `path` with its `params`, atomically (temporary file, then rename).
/// Creates the parent folder if needed.
pub fn save(path: &Path, params: &str, splits: &Splits) -> Result<(), DataError> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(folder).map_err(|e| DataError::io(folder, e))?;
    crate::staging::remove_stale(folder, ".cache");
    let mut temporary = tempfile::Builder::new()
        .prefix(&crate::staging::prefix(".cache"))
        .tempfile_in(folder)
        .map_err(|e| DataError::io(folder, e))?;
    write_cache(temporary.as_file_mut(), params, splits).map_err(|e| DataError::io(path, e))?;
    temporary.as_file().sync_all().map_err(|e| DataError::io(path, e))?;
    temporary.persist(path).map_err(|e| DataError::io(path, e.error))?;
    #[cfg(unix)]
    File::open(folder).and_then(|f| f.sync_all()).map_err(|e| DataError::io(folder, e))?;
    Ok(())
}

/// The splits stored at `path` if it holds a sound cache made with `params`; `Ok(None)` if
/// the file is absent, stale or corrupt. Errors only when the file exists but cannot be read.
pub fn load(path: &Path, params: &str) -> Result<Option<Splits>, DataError> {
    // Absent (a dangling link included) is a cache not yet made; anything else but a
    // regular file (a FIFO would block the run forever) is refused by `open_regular`.
    if std::fs::metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Ok(None);
    }
    let file = crate::files::open_regular(path)?;
    let length = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    if length > crate::files::limit::DATA_CACHE {
        return Err(DataError::in_file(
            path,
            format!("{length} bytes, more than the {} a prepared-data cache may hold", crate::files::limit::DATA_CACHE),
        ));
    }
    read_cache(BufReader::new(file), length, params).map_err(|e| DataError::io(path, e))
}

fn write_cache(file: &mut File, params: &str, splits: &Splits) -> std::io::Result<()> {
    let params_len = u32::try_from(params.len()).map_err(|_| invalid_input("params longer than 4 GiB"))?;
    let (body_len, checksum) = {
        let mut out = BufWriter::new(&mut *file);
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        out.write_all(&params_len.to_le_bytes())?;
        out.write_all(params.as_bytes())?;
        // Body length and checksum are known only after the body: placeholders, filled in below.
        out.write_all(&[0u8; BODY_HEADER as usize])?;
        let mut body = HashingWriter { inner: out, hasher: Sha256::new(), written: 0 };
        write_body(&mut body, splits)?;
        body.inner.flush()?;
        (body.written, body.hasher.finalize())
    };
    file.seek(SeekFrom::Start(FIXED_HEADER + params.len() as u64))?;
    file.write_all(&body_len.to_le_bytes())?;
    file.write_all(&checksum)?;
    file.flush()
}

fn all_examples(splits: &Splits) -> impl Iterator<Item = &Example> {
    splits.train.iter().chain(&splits.validation).chain(&splits.test)
}

fn write_body(out: &mut impl Write, splits: &Splits) -> std::io::Result<()> {
    let largest = all_examples(splits).flat_map(|e| e.tokens.iter().chain(e.second.iter().flatten())).max().copied().unwrap_or(0);
    let width: u8 = match largest {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        _ => 4,
    };
    out.write_all(&[width])?;
    for split in [&splits.train, &splits.validation, &splits.test] {
        out.write_all(&(split.len() as u64).to_le_bytes())?;
        for example in split {
            out.write_all(&example.label.to_le_bytes())?;
            out.write_all(&[example.second.is_some() as u8])?;
            write_sequence(out, &example.tokens, width)?;
            if let Some(second) = &example.second {
                write_sequence(out, second, width)?;
            }
        }
    }
    Ok(())
}

fn write_sequence(out: &mut impl Write, tokens: &[u32], width: u8) -> std::io::Result<()> {
    let len = u32::try_from(tokens.len()).map_err(|_| invalid_input("a sequence longer than 2^32 tokens"))?;
    out.write_all(&len.to_le_bytes())?;
    let mut bytes = Vec::with_capacity(tokens.len() * width as usize);
    for &token in tokens {
        bytes.extend_from_slice(&token.to_le_bytes()[..width as usize]);
    }
    out.write_all(&bytes)
}

fn invalid_input(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message.to_string())
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Why a cache was not loaded.
enum Failure {
    /// Stale, truncated or corrupt: prepare the data again.
    Unusable,
    /// The file could not be read.
    Io(std::io::Error),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        // A file shorter than its header says is a truncated cache, not an I/O failure.
        if e.kind() == std::io::ErrorKind::UnexpectedEof { Failure::Unusable } else { Failure::Io(e) }
    }
}

/// Reads a cache of `length` bytes; `Ok(None)` unless it is sound and made with `params`.
fn read_cache(reader: impl Read, length: u64, params: &str) -> std::io::Result<Option<Splits>> {
    match read_checked(reader, length, params) {
        Ok(splits) => Ok(Some(splits)),
        Err(Failure::Unusable) => Ok(None),
        Err(Failure::Io(e)) => Err(e),
    }
}

fn read_checked(mut reader: impl Read, length: u64, params: &str) -> Result<Splits, Failure> {
    if length < FIXED_HEADER + BODY_HEADER {
        return Err(Failure::Unusable);
    }
    let mut magic = [0u8; 8];
    reader.read_exact(&mut magic)?;
    if &magic != MAGIC || read_u32(&mut reader)? != FORMAT_VERSION {
        return Err(Failure::Unusable);
    }
    let params_len = read_u32(&mut reader)? as u64;
    if params_len != params.len() as u64 {
        return Err(Failure::Unusable);
    }
    let mut stored_params = vec![0u8; params.len()];
    reader.read_exact(&mut stored_params)?;
    if stored_params != params.as_bytes() {
        return Err(Failure::Unusable);
    }
    let body_len = read_u64(&mut reader)?;
    let mut checksum = [0u8; 32];
    reader.read_exact(&mut checksum)?;
    if Some(length) != (FIXED_HEADER + params_len + BODY_HEADER).checked_add(body_len) {
        return Err(Failure::Unusable);
    }
    let mut body = BodyReader { inner: reader.take(body_len), hasher: Sha256::new(), remaining: body_len };
    let splits = read_body(&mut body)?;
    if body.remaining != 0 || body.hasher.finalize().as_slice() != checksum {
        return Err(Failure::Unusable);
    }
    Ok(splits)
}

/// Reads the body, hashing it and counting what is left, so that no count read from the
/// file can make it allocate more than the file could hold.
struct BodyReader<R> {
    inner: R,
    hasher: Sha256,
    remaining: u64,
}

impl<R: Read> BodyReader<R> {
    fn bytes(&mut self, buffer: &mut [u8]) -> Result<(), Failure> {
        if (buffer.len() as u64) > self.remaining {
            return Err(Failure::Unusable);
        }
        self.inner.read_exact(buffer)?;
        self.hasher.update(&*buffer);
        self.remaining -= buffer.len() as u64;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, Failure> {
        let mut b = [0u8; 1];
        self.bytes(&mut b)?;
        Ok(b[0])
    }

    fn u32(&mut self) -> Result<u32, Failure> {
        let mut b = [0u8; 4];
        self.bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, Failure> {
        let mut b = [0u8; 8];
        self.bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn sequence(&mut self, width: usize) -> Result<Vec<u32>, Failure> {
        let len = self.u32()? as u64;
        if len * width as u64 > self.remaining {
            return Err(Failure::Unusable);
        }
        let mut bytes = vec![0u8; len as usize * width];
        self.bytes(&mut bytes)?;
        Ok(bytes
            .chunks_exact(width)
            .map(|chunk| {
                let mut word = [0u8; 4];
                word[..width].copy_from_slice(chunk);
                u32::from_le_bytes(word)
            })
            .collect())
    }
}

fn read_body(body: &mut BodyReader<impl Read>) -> Result<Splits, Failure> {
    let width = match body.u8()? {
        w @ (1 | 2 | 4) => w as usize,
        _ => return Err(Failure::Unusable),
    };
    let mut split = || -> Result<Vec<Example>, Failure> {
        let count = body.u64()?;
        if count > body.remaining / MIN_EXAMPLE_BYTES {
            return Err(Failure::Unusable);
        }
        let mut examples = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let label = body.u32()?;
            let pair = match body.u8()? {
                0 => false,
                1 => true,
                _ => return Err(Failure::Unusable),
            };
            let tokens = body.sequence(width)?;
            let second = if pair { Some(body.sequence(width)?) } else { None };
            examples.push(Example { tokens, second, label });
        }
        Ok(examples)
    };
    Ok(Splits { train: split()?, validation: split()?, test: split()? })
}

fn read_u32(reader: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    reader.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(reader: &mut impl Read) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    reader.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn example(tokens: Vec<u32>, second: Option<Vec<u32>>, label: u32) -> Example {
        Example { tokens, second, label }
    }

    fn sample_splits(largest_token: u32) -> Splits {
        Splits {
            train: vec![example(vec![1, 2, largest_token], None, 0), example(vec![], Some(vec![largest_token, 0]), 1)],
            validation: vec![],
            test: vec![example(vec![7; 5], Some(vec![]), 9)],
        }
    }

    /// The bytes of a cache of [`sample_splits`], via the file writer.
    fn cache_bytes(params: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.bin");
        save(&path, params, &sample_splits(300)).unwrap();
        std::fs::read(path).unwrap()
    }

    /// [`cache_bytes`] with params `"params"`, written once for all property cases.
    fn valid_cache() -> &'static [u8] {
        static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        BYTES.get_or_init(|| cache_bytes("params"))
    }

    fn load_bytes(bytes: &[u8], params: &str) -> Option<Splits> {
        read_cache(bytes, bytes.len() as u64, params).unwrap()
    }

    #[test]
    fn splits_round_trip_at_every_token_width() {
        let dir = tempfile::tempdir().unwrap();
        for largest in [255, 256, 65_535, 65_536, u32::MAX] {
            let path = dir.path().join(format!("nested/{largest}.bin"));
            save(&path, "task=text len=4", &sample_splits(largest)).unwrap();
            assert_eq!(load(&path, "task=text len=4").unwrap(), Some(sample_splits(largest)), "{largest}");
        }
        // The narrowest width: 1 byte per token when every id fits.
        let small = std::fs::read(dir.path().join("nested/255.bin")).unwrap();
        let wide = std::fs::read(dir.path().join("nested/256.bin")).unwrap();
        assert!(small.len() < wide.len());
    }

    #[test]
    fn an_absent_file_is_no_cache() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(&dir.path().join("absent.bin"), "p").unwrap(), None);
    }

    #[test]
    fn a_cache_made_with_other_parameters_or_version_is_stale() {
        let bytes = cache_bytes("seed=1");
        assert!(load_bytes(&bytes, "seed=1").is_some());
        assert_eq!(load_bytes(&bytes, "seed=2"), None);
        assert_eq!(load_bytes(&bytes, "seed=10"), None);
        let mut other_version = bytes.clone();
        other_version[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        assert_eq!(load_bytes(&other_version, "seed=1"), None);
    }

    #[test]
    fn a_changed_body_fails_the_checksum() {
        let mut bytes = cache_bytes("p");
        let last = bytes.len() - 1;
        bytes[last] ^= 1; // a token of the test split: still well-formed, wrong checksum
        assert_eq!(load_bytes(&bytes, "p"), None);
    }

    #[test]
    fn saving_replaces_the_old_cache_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.bin");
        save(&path, "p", &sample_splits(3)).unwrap();
        save(&path, "p", &Splits::default()).unwrap();
        assert_eq!(load(&path, "p").unwrap(), Some(Splits::default()));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["c.bin"]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_are_never_a_cache_and_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            prop_assert_eq!(load_bytes(&bytes, "p"), None);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_header_are_never_a_cache(tail in proptest::collection::vec(any::<u8>(), 0..600)) {
            let header = (FIXED_HEADER + 6 + BODY_HEADER) as usize; // params "params": 6 bytes
            let mut bytes = valid_cache()[..header].to_vec();
            bytes[header - BODY_HEADER as usize..][..8].copy_from_slice(&(tail.len() as u64).to_le_bytes());
            bytes.extend(&tail);
            prop_assert_eq!(load_bytes(&bytes, "params"), None);
        }

        #[test]
        fn every_truncation_is_rejected(cut in 0usize..10_000) {
            let bytes = valid_cache();
            let cut = cut % bytes.len();
            prop_assert_eq!(load_bytes(&bytes[..cut], "params"), None);
        }

        #[test]
        fn every_bit_flip_is_rejected(position in 0usize..10_000, bit in 0u8..8) {
            let mut bytes = valid_cache().to_vec();
            let position = position % bytes.len();
            bytes[position] ^= 1 << bit;
            prop_assert_eq!(load_bytes(&bytes, "params"), None);
        }
    }
}
