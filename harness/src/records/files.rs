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
}
