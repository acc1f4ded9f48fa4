//! A run's claim: an exclusive lock on `runs/<run-id>/claim`, held by the process that
//! trains the run for as long as it does. Two sweeps over one results folder, or a sweep
//! beside a Slurm array, then share the work instead of training a configuration twice.
//! The lock is the kernel's (`flock`): it goes with the process, however it dies, so no
//! claim is ever left stale. The file stays (removing it could let a second process lock a
//! new file while a third still holds the old one); it names the last holder.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::Context;

/// A held claim; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct Claim {
    _file: File,
}

/// Who holds a claim, as the holder wrote it.
pub type Holder = String;

/// Takes the claim of the run folder `dir` (created if missing): `Ok(Err(holder))` when a
/// live process holds it.
pub fn take(dir: &Path) -> anyhow::Result<Result<Claim, Holder>> {
    crate::records::files::create_real_dir(dir, 2)?;
    let path = dir.join("claim");
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    // A claim planted as a link would have its target, anywhere, truncated and overwritten
    // below: the link itself is refused (O_NOFOLLOW), and so is anything but a regular file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let mut file = options.open(&path).map_err(|e| {
        let linked = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if linked {
            anyhow::anyhow!("{} is a symbolic link: refusing to take it as the run's claim (remove the link)", path.display())
        } else {
            anyhow::anyhow!("opening {}: {e}", path.display())
        }
    })?;
    if !file.metadata().with_context(|| format!("opening {}", path.display()))?.is_file() {
        anyhow::bail!("{} is not a regular file: refusing to take it as the run's claim", path.display());
    }
    if !try_lock(&file).with_context(|| format!("locking {}", path.display()))? {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Ok(Err(holder.trim().to_string()));
    }
    let host = lra_datasets::files::read_text_bounded(Path::new("/proc/sys/kernel/hostname"), 4096).unwrap_or_default();
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "pid {} on {}", std::process::id(), host.trim())?;
    file.flush()?;
    Ok(Ok(Claim { _file: file }))
}

/// Whether a live process holds the claim of `dir` (without keeping it).
pub fn held_elsewhere(dir: &Path) -> Option<Holder> {
    let claim = std::fs::symlink_metadata(dir.join("claim"));
    if !claim.is_ok_and(|m| m.is_file()) {
        return None;
    }
    match take(dir) {
        Ok(Err(holder)) => Some(holder),
        _ => None,
    }
}

#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: a plain system call on a descriptor this function's caller owns.
    let done = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if done == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        // A file system without locks (some network mounts): run unguarded rather than not
        // at all, and say what that risks.
        Some(libc::ENOLCK | libc::EOPNOTSUPP | libc::ENOSYS) => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                eprintln!(
                    "warning: this file system takes no locks ({error}): two sweeps over one results folder may train \
                     a configuration twice"
                )
            });
            Ok(true)
        }
        _ => Err(error),
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_excludes_others_until_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("runs").join("abc");
        let first = take(&run).unwrap().expect("a free claim");
        // A second open file description is a second holder, as another process is.
        let holder = take(&run).unwrap().expect_err("the claim is held");
        assert!(holder.starts_with(&format!("pid {}", std::process::id())), "{holder}");
        assert!(held_elsewhere(&run).is_some());
        drop(first);
        // Released, though not always at once: a process that another test forks while a
        // claim is open inherits its lock until its exec closes it (the file is opened
        // close-on-exec), so each check waits out such a moment, up to a second.
        let eventually = |check: &dyn Fn() -> bool| {
            (0..50).any(|_| {
                check() || {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    false
                }
            })
        };
        assert!(eventually(&|| held_elsewhere(&run).is_none()), "the claim is still held after it was dropped");
        assert!(eventually(&|| take(&run).unwrap().is_ok()), "the claim cannot be taken again after it was dropped");
    }

    #[cfg(unix)]
    #[test]
    fn a_claim_that_is_a_link_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("precious.txt");
        std::fs::write(&outside, b"keep me").unwrap();
        let run = dir.path().join("results").join("runs").join("abc");
        std::fs::create_dir_all(&run).unwrap();
        std::os::unix::fs::symlink(&outside, run.join("claim")).unwrap();
        let error = take(&run).unwrap_err().to_string();
        assert!(error.contains("claim is a symbolic link"), "{error}");
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep me");
        // A dangling link is refused too, and nothing is created at its target.
        let dangling = dir.path().join("results").join("runs").join("def");
        std::fs::create_dir_all(&dangling).unwrap();
        let nowhere = dir.path().join("nowhere");
        std::os::unix::fs::symlink(&nowhere, dangling.join("claim")).unwrap();
        assert!(take(&dangling).is_err());
        assert!(!nowhere.exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_run_folder_that_is_a_link_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let runs = dir.path().join("results").join("runs");
        std::fs::create_dir_all(&runs).unwrap();
        std::os::unix::fs::symlink(&elsewhere, runs.join("abc")).unwrap();
        let error = take(&runs.join("abc")).unwrap_err().to_string();
        assert!(error.contains("abc is a symbolic link"), "{error}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    #[test]
    fn a_claim_dies_with_its_process() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        // A child process takes the lock (flock(1) on a descriptor the shell keeps as it
        // becomes `sleep`) and is killed while holding it.
        let claim = run.join("claim");
        let script = format!("exec 9>>'{}' && flock -x 9 && exec sleep 30", claim.display());
        let mut child = std::process::Command::new("sh").args(["-c", &script]).spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while held_elsewhere(&run).is_none() {
            assert!(std::time::Instant::now() < deadline, "the child never took the claim");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let claim = take(&run).unwrap().expect("the claim went with its holder");
        drop(claim);
    }
}
