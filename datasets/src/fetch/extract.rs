//! Unpacking a `.tar.gz` or `.tar` into a temporary folder beside the target, renamed into
//! place once every entry is written; entries that could land outside it are refused.

use std::fs::File;
use std::io::{BufRead, Read};
use std::path::{Component, Path, PathBuf};

use crate::DataError;

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
pub(super) fn extract(archive: &Path, target: &Path, max_bytes: u64) -> Result<(), DataError> {
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

    let mut file = crate::files::open_bounded(archive, crate::files::limit::ARCHIVE)?;
    // The gzip magic bytes, peeked in the buffer without consuming them. A read error here
    // is left to the tar reader, which reads the same file next and reports it.
    let gzipped = file.fill_buf().is_ok_and(|head| head.starts_with(&[0x1f, 0x8b]));
    let reader: Box<dyn Read> = if gzipped { Box::new(flate2::bufread::GzDecoder::new(file)) } else { Box::new(file) };
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
    use super::super::test_archives::{good_tar, gzip, hostile_tar, names_in};
    use super::*;

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
}
