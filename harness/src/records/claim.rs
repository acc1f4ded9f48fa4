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
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("claim");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if !try_lock(&file).with_context(|| format!("locking {}", path.display()))? {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Ok(Err(holder.trim().to_string()));
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "pid {} on {}", std::process::id(), host.trim())?;
    file.flush()?;
    Ok(Ok(Claim { _file: file }))
}

/// Whether a live process holds the claim of `dir` (without keeping it).
pub fn held_elsewhere(dir: &Path) -> Option<Holder> {
    if !dir.join("claim").is_file() {
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
        assert!(held_elsewhere(&run).is_none());
        assert!(take(&run).unwrap().is_ok());
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
