//! Files written for a user, each written atomically: a reader sees the old file or the
//! new one, never half of one.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced,
/// then renamed over `path`, so a reader sees the old file or the new one, never half.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Named after this process, so that what a killed writer left is removed by the next.
    lra_datasets::staging::remove_stale(dir, ".writing");
    // The temporary file is created new (O_EXCL, a random name: a planted link there fails
    // the creation), and the rename replaces a link planted at `path` instead of following it.
    let mut temp = tempfile::Builder::new()
        .prefix(&lra_datasets::staging::prefix(".writing"))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    temp.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
    temp.as_file().sync_all().with_context(|| format!("syncing {}", path.display()))?;
    temp.persist(path).with_context(|| format!("renaming into {}", path.display()))?;
    // The rename is durable once the folder that holds it is.
    #[cfg(unix)]
    std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

/// Creates the folder `dir` (and those above it), `levels` folders below the results
/// folder (`runs/<id>`: 2; `bench`, `configs`: 1), and refuses it, naming it, if any of
/// those folders is a symbolic link: a `runs/<id>`, `bench` or `configs` folder planted as
/// a link would send what the harness writes there (claims, logs, records) outside the
/// results folder. The results folder itself, above these, may be a link (researchers
/// link their storage).
pub fn create_real_dir(dir: &Path, levels: usize) -> anyhow::Result<()> {
    refuse_linked(dir, levels)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    refuse_linked(dir, levels)
}

/// Refuses `dir` if it or any of the `levels - 1` folders above it is a symbolic link
/// (see [`create_real_dir`]).
pub fn refuse_linked(dir: &Path, levels: usize) -> anyhow::Result<()> {
    for folder in dir.ancestors().take(levels).filter(|p| !p.as_os_str().is_empty()) {
        if std::fs::symlink_metadata(folder).is_ok_and(|m| m.file_type().is_symlink()) {
            anyhow::bail!(
                "{} is a symbolic link: refusing to write through it, outside the results folder (remove the link)",
                folder.display()
            );
        }
    }
    Ok(())
}

pub fn write_json_atomically(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    write_atomically(path, &json_bytes(value)?)
}

/// `value` as the harness writes JSON files: pretty, with a final newline.
pub fn json_bytes(value: &impl Serialize) -> anyhow::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_the_file_and_leave_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("result.json");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_at_the_final_name_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.json");
        std::fs::write(&outside, b"precious").unwrap();
        let results = dir.path().join("results");
        std::fs::create_dir_all(&results).unwrap();
        let path = results.join("result.json");
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        write_atomically(&path, b"record").unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&path).unwrap(), b"record");
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_folder_is_refused_naming_it_and_a_linked_results_folder_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let results = dir.path().join("results");
        std::fs::create_dir_all(results.join("runs")).unwrap();
        let run = results.join("runs").join("abc");
        std::os::unix::fs::symlink(&elsewhere, &run).unwrap();
        let error = create_real_dir(&run, 2).unwrap_err().to_string();
        assert!(error.contains("runs/abc is a symbolic link"), "{error}");
        let configs = results.join("configs");
        std::os::unix::fs::symlink(&elsewhere, &configs).unwrap();
        let error = create_real_dir(&configs, 1).unwrap_err().to_string();
        assert!(error.contains("configs is a symbolic link"), "{error}");
        // The results folder may be a link, for the folders two levels below it and one.
        let linked_results = dir.path().join("linked-results");
        std::os::unix::fs::symlink(&results, &linked_results).unwrap();
        create_real_dir(&linked_results.join("runs").join("def"), 2).unwrap();
        create_real_dir(&linked_results.join("bench"), 1).unwrap();
        assert!(results.join("runs").join("def").is_dir() && results.join("bench").is_dir());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }
}
