//! Staging files and folders (a cache being written, an archive being unpacked) carry the
//! writer's process id in their names, so that what an interrupted writer left behind
//! (Ctrl-C, SIGKILL, a power cut) is recognised and removed by the next one, while a
//! writer still alive beside it keeps its own.

use std::path::Path;

/// A staging name prefix for this process: `<kind>-<pid>-`.
pub fn prefix(kind: &str) -> String {
    format!("{kind}-{}-", std::process::id())
}

/// Removes the entries of `folder` named `<kind>-<pid>-...` whose process is gone;
/// returns how many it removed. Where liveness cannot be told (no `/proc`), nothing is
/// removed.
pub fn remove_stale(folder: &Path, kind: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(folder) else { return 0 };
    let head = format!("{kind}-");
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&head)) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if alive(pid) != Some(false) {
            continue;
        }
        let path = entry.path();
        let gone = match path.is_dir() {
            true => std::fs::remove_dir_all(&path),
            false => std::fs::remove_file(&path),
        };
        if gone.is_ok() {
            eprintln!("removed {}, left by an interrupted process {pid}", path.display());
            removed += 1;
        }
    }
    removed
}

/// Whether process `pid` is alive; `None` when this system cannot tell.
fn alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    proc.join("self").exists().then(|| proc.join(pid.to_string()).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_dead_processes_left_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A pid above the kernel's limit (2^22) never runs.
        let dead = dir.path().join(".cache-4999999-abc");
        let dead_folder = dir.path().join(".extracting-4999999-xyz");
        let mine = dir.path().join(format!("{}abc", prefix(".cache")));
        let unrelated = dir.path().join(".cache-notapid");
        std::fs::write(&dead, b"x").unwrap();
        std::fs::create_dir_all(dead_folder.join("inner")).unwrap();
        std::fs::write(&mine, b"x").unwrap();
        std::fs::write(&unrelated, b"x").unwrap();
        assert_eq!(remove_stale(dir.path(), ".cache"), 1);
        assert_eq!(remove_stale(dir.path(), ".extracting"), 1);
        assert!(!dead.exists() && !dead_folder.exists());
        assert!(mine.exists() && unrelated.exists());
    }
}
