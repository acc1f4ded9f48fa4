//! The data a run trains, validates and tests on, as NumPy arrays that any framework reads
//! (`lra data export --format npy`):
//!
//! ```text
//! <split>_inputs.npy    int32 [examples, max_length]  token ids as the model sees them, 0 = padding
//! <split>_inputs2.npy   int32 [examples, max_length]  the second documents (Retrieval only)
//! <split>_labels.npy    int64 [examples]
//! task.json             task, preset, sizes, data source and seed, the data configuration
//! ```
//!
//! for the splits `train`, `validation` and `test`. The token ids are the prepared splits
//! ([`TaskConfig::prepare`]: images shrunk and black pixels made padding where the task
//! says so) cut or padded by [`lra_tasks::padded`], as training batches are.
//!
//! The folder appears whole or not at all: every file is written into a staging folder
//! beside it (`.exporting-<pid>-...`), synced, and the staging folder is then renamed to
//! the folder's name; an earlier export there is swapped out at that moment and removed.
//! A staging folder that an interrupted export left is removed by the next export beside it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

use lra_datasets::{Example, Splits, npy, staging};
use lra_tasks::{DataConfig, Downsample, PAD_TOKEN, Preset, Task, TaskConfig};

use crate::records::files::json_bytes;

/// The splits, in the order and with the names of the files.
pub const SPLITS: [&str; 3] = ["train", "validation", "test"];
/// The arrays written per split: inputs, the second inputs of paired tasks, labels.
const ARRAYS: [&str; 3] = ["inputs", "inputs2", "labels"];
pub const DESCRIPTION: &str = "task.json";
/// What staging folders beside the export are called (see [`staging`]).
const STAGING: &str = ".exporting";

/// Examples written per split: train, validation, test.
pub type Counts = [usize; 3];

/// `task.json`: what the arrays are and where they came from.
#[derive(Serialize)]
struct Description<'a> {
    task: Task,
    preset: Preset,
    /// Columns of the inputs: every sequence is cut or padded to it.
    max_length: usize,
    /// Token ids are below this.
    vocab_size: usize,
    /// Labels are below this.
    classes: usize,
    /// Whether an example is two documents (`<split>_inputs2.npy` holds the second).
    paired: bool,
    padding_token: u32,
    /// As the run record's `data_source`.
    data_source: &'static str,
    /// The seed the data was drawn or split with; null for releases of fixed splits.
    data_seed: Option<u64>,
    /// As `task.data` in a run's `config.json`.
    data: &'a DataConfig,
    pixel_zero_is_padding: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    downsample: Option<Downsample>,
    examples: Examples,
    /// `--examples`: at most this many of each split were written, the first ones; null
    /// when the splits are whole.
    examples_limit: Option<usize>,
}

#[derive(Serialize)]
struct Examples {
    train: usize,
    validation: usize,
    test: usize,
}

/// Whether `name` is a file an export writes.
fn is_export_file(name: &str) -> bool {
    name == DESCRIPTION || SPLITS.iter().any(|split| ARRAYS.iter().any(|array| name == format!("{split}_{array}.npy")))
}

/// Refuses, before any data is prepared, an `out` that an export cannot take: a file, or
/// a folder holding anything but an earlier export's files (an earlier export is replaced
/// whole, so nothing else may be in it).
pub fn check_out(out: &Path) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::metadata(out) else { return Ok(()) };
    if !meta.is_dir() {
        bail!("--out {} is a file; the export writes a folder: give a new or empty folder, or an earlier export", out.display());
    }
    let entries = std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", out.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if !is_file || !is_export_file(&name) {
            bail!(
                "--out {} holds {name}, which an export does not write; give a new or empty folder, or an earlier export (it is replaced whole)",
                out.display()
            );
        }
    }
    Ok(())
}

/// Writes the first `limit` examples (all when `None`) of each of `splits`, which are
/// `config`'s prepared splits, into the folder `out` as `.npy` arrays and `task.json`;
/// returns how many examples of each split it wrote.
pub fn write_npy(config: &TaskConfig, splits: &Splits, limit: Option<usize>, out: &Path) -> anyhow::Result<Counts> {
    check_out(out)?;
    let chosen: Vec<&[Example]> = [&splits.train, &splits.validation, &splits.test]
        .into_iter()
        .map(|split| &split[..limit.map_or(split.len(), |n| n.min(split.len()))])
        .collect();
    check_tokens(config, &chosen)?;
    let out = absolute(out)?;
    let parent = out.parent().with_context(|| format!("--out {}: the export needs a folder of its own", out.display()))?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    staging::remove_stale(parent, STAGING);
    // Removed when dropped: an error on the way leaves nothing behind.
    let staged = tempfile::Builder::new()
        .prefix(&staging::prefix(STAGING))
        .tempdir_in(parent)
        .with_context(|| format!("creating a staging folder in {}", parent.display()))?;
    let mut counts = [0; 3];
    for ((name, examples), count) in SPLITS.iter().zip(&chosen).zip(&mut counts) {
        write_split(config, name, examples, staged.path())?;
        *count = examples.len();
    }
    let description = Description {
        task: config.name,
        preset: config.preset,
        max_length: config.max_length,
        vocab_size: config.vocab_size,
        classes: config.classes,
        paired: config.name.paired(),
        padding_token: PAD_TOKEN,
        data_source: config.data.source_label(),
        data_seed: config.data.seed(),
        data: &config.data,
        pixel_zero_is_padding: config.pixel_zero_is_padding,
        downsample: config.downsample,
        examples: Examples { train: counts[0], validation: counts[1], test: counts[2] },
        examples_limit: limit,
    };
    write_synced(&staged.path().join(DESCRIPTION), |file| Ok(file.write_all(&json_bytes(&description)?)?))?;
    sync_folder(staged.path())?;
    put_in_place(staged, &out)?;
    Ok(counts)
}

/// The arrays of one split.
fn write_split(config: &TaskConfig, split: &str, examples: &[Example], folder: &Path) -> anyhow::Result<()> {
    let length = config.max_length;
    let inputs = |sequence: fn(&Example) -> Option<&[u32]>, array: &str| -> anyhow::Result<()> {
        let path = folder.join(format!("{split}_{array}.npy"));
        let rows: Vec<&[u32]> = examples
            .iter()
            .enumerate()
            .map(|(i, e)| sequence(e).with_context(|| format!("example {i} of the {split} split has no second document")))
            .collect::<anyhow::Result<_>>()?;
        // Every id fits an i32: `check_tokens` made sure.
        let values = rows.into_iter().flat_map(|row| lra_tasks::padded(row, length)).map(|token| token as i32);
        write_synced(&path, |file| Ok(npy::write(file, &[examples.len(), length], values)?))
    };
    inputs(|e| Some(e.tokens.as_slice()), "inputs")?;
    if config.name.paired() {
        inputs(|e| e.second.as_deref(), "inputs2")?;
    }
    let labels = examples.iter().map(|e| i64::from(e.label));
    write_synced(&folder.join(format!("{split}_labels.npy")), |file| Ok(npy::write(file, &[examples.len()], labels)?))
}

/// Refuses token ids that int32 cannot hold (no task's vocabulary comes near; a bug or a
/// hand-edited source could), before anything is written.
fn check_tokens(config: &TaskConfig, splits: &[&[Example]]) -> anyhow::Result<()> {
    for (name, examples) in SPLITS.iter().zip(splits) {
        for (i, example) in examples.iter().enumerate() {
            let sequences = std::iter::once(&example.tokens).chain(&example.second);
            if let Some(&token) = sequences.flatten().find(|&&t| i32::try_from(t).is_err()) {
                bail!(
                    "{} data: example {i} of the {name} split holds token {token}, which int32 cannot hold",
                    config.name.name()
                );
            }
        }
    }
    Ok(())
}

/// Writes `path` through `write`, then flushes and syncs it.
fn write_synced(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut buffered = BufWriter::new(file);
    write(&mut buffered).with_context(|| format!("writing {}", path.display()))?;
    let file = buffered.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {}", path.display()))?;
    file.sync_all().with_context(|| format!("syncing {}", path.display()))
}

/// Makes a folder's entries (files created, renamed) durable.
fn sync_folder(folder: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    File::open(folder).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", folder.display()))?;
    #[cfg(not(unix))]
    let _ = folder;
    Ok(())
}

/// `out` made absolute, through its links when it exists, so that the staging folder is
/// its real neighbour (a rename cannot cross file systems) and a link to a folder stays a
/// link.
fn absolute(out: &Path) -> anyhow::Result<PathBuf> {
    if out.exists() {
        return std::fs::canonicalize(out).with_context(|| format!("resolving {}", out.display()));
    }
    std::path::absolute(out).with_context(|| format!("resolving {}", out.display()))
}

/// Renames the staging folder to `out`, swapping out the earlier export (or empty folder)
/// there, which [`check_out`] allowed.
fn put_in_place(staged: tempfile::TempDir, out: &Path) -> anyhow::Result<()> {
    let parent = out.parent().expect("an absolute path below the root");
    if out.exists() {
        // Named as staging, so that an interruption between the renames leaves it to the
        // next export's clean-up.
        let aside = PathBuf::from(format!("{}-replaced", staged.path().display()));
        std::fs::rename(out, &aside).with_context(|| format!("moving the earlier {} aside", out.display()))?;
        if let Err(error) = std::fs::rename(staged.path(), out) {
            std::fs::rename(&aside, out).ok();
            return Err(error).with_context(|| format!("renaming {} to {}", staged.path().display(), out.display()));
        }
        if let Err(error) = std::fs::remove_dir_all(&aside) {
            eprintln!("could not remove the earlier export, moved to {}: {error}", aside.display());
        }
    } else {
        std::fs::rename(staged.path(), out)
            .with_context(|| format!("renaming {} to {}", staged.path().display(), out.display()))?;
    }
    // The staging folder is `out` now: nothing is left to clean up.
    let _ = staged.keep();
    sync_folder(parent)
}
