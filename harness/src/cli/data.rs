//! `lra data generate|inspect|preview|export|fetch`: the data side of the harness.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use lra_datasets::{DataError, Example, Splits, aan, fetch, listops, pathfinder};
use lra_tasks::{DataConfig, Task, TaskConfig};

use crate::cli::args::{DataAction, DataArgs};
use crate::execute::export;
use crate::records::files::write_atomically;

/// The task configuration the data options name, released files preferred.
fn resolve(args: &DataArgs) -> anyhow::Result<TaskConfig> {
    let mut config = TaskConfig::resolve(args.task, args.preset);
    if let Some(seed) = args.seed {
        config.data = config.data.with_seed(seed);
    }
    config.data = config.data.prefer_released(&args.data);
    Ok(config)
}

/// The task's splits (through the cache) and whether they came from it; errors say which
/// task's data failed.
fn prepare_reporting(config: &TaskConfig, data_dir: &Path) -> anyhow::Result<(Splits, bool)> {
    config.prepare_reporting(data_dir).with_context(|| format!("preparing the {} data", config.name.name()))
}

/// As [`prepare_reporting`], the splits alone.
fn prepare(config: &TaskConfig, data_dir: &Path) -> anyhow::Result<Splits> {
    prepare_reporting(config, data_dir).map(|(splits, _)| splits)
}

pub fn command(action: &DataAction) -> anyhow::Result<()> {
    match action {
        DataAction::Generate(args) => {
            let config = resolve(args)?;
            let started = Instant::now();
            let (splits, from_cache) = prepare_reporting(&config, &args.data)?;
            let seconds = started.elapsed().as_secs_f64();
            let n = splits.train.len() + splits.validation.len() + splits.test.len();
            println!(
                "{} ({}, {}): {} train / {} validation / {} test examples {} in {:.1} s ({:.0} examples/s); cache under {}",
                config.name.name(),
                config.preset.name(),
                config.data.source_label(),
                splits.train.len(),
                splits.validation.len(),
                splits.test.len(),
                if from_cache { "read from the cache" } else { "prepared and cached" },
                seconds,
                n as f64 / seconds.max(1e-9),
                args.data.join("prepared").display()
            );
            Ok(())
        }
        DataAction::Inspect(args) => {
            let config = resolve(args)?;
            let splits = prepare(&config, &args.data)?;
            println!(
                "{} ({}, {}), max_length {}:",
                config.name.name(),
                config.preset.name(),
                config.data.source_label(),
                config.max_length
            );
            for (name, split) in [("train", &splits.train), ("validation", &splits.validation), ("test", &splits.test)] {
                println!("  {}", describe_split(name, split, config.classes));
            }
            if let Some(skipped) = skipped_by_design(&config.data) {
                println!("  skipped by design: {skipped}");
            }
            Ok(())
        }
        DataAction::Preview { data, count, columns, out } => {
            let config = resolve(data)?;
            let size = match config.image_side() {
                Some(side) => side,
                None => bail!("preview draws images; {} is not an image task (pathfinder, pathx, image)", config.name.name()),
            };
            let splits = prepare(&config, &data.data)?;
            // Tokens are pixel values + 1 (0 is padding).
            let images: Vec<(Vec<u8>, u8)> = splits
                .train
                .iter()
                .take(*count)
                .map(|e| (e.tokens.iter().map(|&t| t.saturating_sub(1) as u8).collect(), e.label as u8))
                .collect();
            let png = pathfinder::preview_png(images.iter().map(|(p, l)| (p.as_slice(), *l)), size, *columns, config.classes)?;
            let out = out.clone().unwrap_or_else(|| PathBuf::from(format!("{}-preview.png", config.name.name())));
            write_atomically(&out, &png)?;
            println!(
                "{} samples of {} ({}) with their labels written to {}",
                images.len(),
                config.name.name(),
                config.data.source_label(),
                out.display()
            );
            Ok(())
        }
        DataAction::Export { data, format, out, examples } => match format.as_str() {
            "npy" => export_npy(&resolve(data)?, &data.data, out, *examples),
            "tsv" if examples.is_some() => bail!("--examples is for --format npy; the TSV export writes every example"),
            "tsv" => export_tsv(&resolve(data)?, &data.data, out),
            _ => bail!("unknown export format `{format}`; the formats are: npy, tsv"),
        },
        DataAction::Fetch { name, data, url } => fetch_archive(name, data, url.as_deref()),
    }
}

/// What the reader of a released data set leaves out on purpose, and why. Anything else
/// odd in released files (a cut row, an empty document, a short batch, an image listed
/// twice) is refused with its file and line, never skipped.
fn skipped_by_design(data: &DataConfig) -> Option<&'static str> {
    match data {
        DataConfig::ListopsReleased { .. } => Some("blank lines of the TSVs (they hold no sample)"),
        DataConfig::RetrievalReleased { .. } => Some("blank lines of the TSVs (they hold no pair)"),
        DataConfig::TextReleased { .. } => {
            Some("entries of aclImdb/{train,test}/{pos,neg}/ not named *.txt (not reviews); every *.txt is read or refused")
        }
        DataConfig::PathfinderReleased { .. } => Some(
            "all-black images (one in the release, pathfinder32/curv_baseline/imgs/0/sample_172.png: no path to \
             judge) and blank metadata lines",
        ),
        _ => None,
    }
}

fn describe_split(name: &str, split: &[Example], classes: usize) -> String {
    if split.is_empty() {
        return format!("{name:<10} 0 examples");
    }
    let mut lengths: Vec<usize> = split.iter().map(|e| e.tokens.len()).collect();
    lengths.sort_unstable();
    let mean = lengths.iter().sum::<usize>() as f64 / lengths.len() as f64;
    let at = |q: f64| lengths[((lengths.len() - 1) as f64 * q).round() as usize];
    let mut counts = vec![0usize; classes];
    for e in split {
        if let Some(c) = counts.get_mut(e.label as usize) {
            *c += 1;
        }
    }
    let balance: Vec<String> =
        counts.iter().enumerate().map(|(c, n)| format!("{c}: {:.1}%", 100.0 * *n as f64 / split.len() as f64)).collect();
    format!(
        "{name:<10} {:>7} examples; length min {} / median {} / mean {:.1} / p95 {} / max {}; labels {}",
        split.len(),
        lengths[0],
        at(0.5),
        mean,
        at(0.95),
        lengths[lengths.len() - 1],
        balance.join(", ")
    )
}

/// Writes ListOps or Retrieval in the released TSV format.
fn export_tsv(config: &TaskConfig, data_dir: &Path, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    match (&config.name, &config.data) {
        (Task::Listops, DataConfig::ListopsGenerated { .. }) => {
            let (generator, seed) = config.data.listops_generator().expect("generated ListOps");
            let splits = listops::generate_samples(&generator, seed)?;
            for (name, samples) in ["basic_train.tsv", "basic_val.tsv", "basic_test.tsv"].iter().zip(&splits) {
                let mut bytes = Vec::new();
                listops::write_tsv(&mut bytes, samples)?;
                write_atomically(&out.join(name), &bytes)?;
            }
        }
        (Task::Retrieval, _) => {
            let splits = prepare(config, data_dir)?;
            for (name, split) in aan::SPLIT_FILES.iter().zip([&splits.train, &splits.validation, &splits.test]) {
                let pairs = split
                    .iter()
                    .enumerate()
                    .map(|(i, e)| aan::pair_from_example(e, &format!("{name}:{i}:a"), &format!("{name}:{i}:b")))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut bytes = Vec::new();
                aan::write_tsv(&mut bytes, &pairs)?;
                write_atomically(&out.join(name), &bytes)?;
            }
        }
        (Task::Listops, _) => {
            bail!("the ListOps data here is already the released TSVs (under {}): copy them", data_dir.display())
        }
        (other, _) => bail!("TSV export is for listops and retrieval; {} has no TSV format in the release", other.name()),
    }
    println!("{} ({}) written to {} in the released TSV format", config.name.name(), config.data.source_label(), out.display());
    Ok(())
}

/// Writes what a run of `config` trains, validates and tests on as `.npy` arrays into the
/// folder `out` (see [`export`]). Generated and stand-in data is prepared here when the
/// cache does not hold it yet, as `lra run` would; released files that are configured but
/// not all there are refused, saying what to fetch. Nothing is written to `out` unless
/// the whole export is.
fn export_npy(config: &TaskConfig, data_dir: &Path, out: &Path, examples: Option<usize>) -> anyhow::Result<()> {
    export::check_out(out)?;
    if let Some(how) = config.data.how_to_fetch() {
        eprintln!(
            "note: the released {} data is not under {}: exporting the synthetic stand-in that runs train on here. For the real data: {how}",
            config.name.name(),
            data_dir.display()
        );
    }
    let splits = config.prepare(data_dir).map_err(|error| not_there(config, data_dir, error))?;
    let [train, validation, test] = export::write_npy(config, &splits, examples, out)?;
    println!(
        "{} ({}, {}): {train} train / {validation} validation / {test} test examples of {} tokens written to {} (.npy arrays and {})",
        config.name.name(),
        config.preset.name(),
        config.data.source_label(),
        config.max_length,
        out.display(),
        export::DESCRIPTION
    );
    Ok(())
}

/// The error of preparing `config`'s data; where released files it reads are missing,
/// it says what to fetch (and that a folder already there is kept by a fetch).
fn not_there(config: &TaskConfig, data_dir: &Path, error: DataError) -> anyhow::Error {
    let task = config.name.name();
    let missing = error.path.as_deref().is_some_and(|path| !path.exists());
    let archive = config.data.released_archive().and_then(fetch::known_archive);
    let (true, Some(archive)) = (missing, archive) else {
        return anyhow::Error::new(error).context(format!("preparing the {task} data"));
    };
    let folders: Vec<String> = archive.top_level.iter().map(|f| data_dir.join(f).display().to_string()).collect();
    let fallback = TaskConfig::resolve(config.name, config.preset).data.source_label();
    anyhow::anyhow!(
        "the released {task} files are not all there ({error}): move {} away and run `lra data fetch {} --data {}` \
         (a fetch keeps a folder already there); without the folder, the {fallback} data is exported",
        folders.join(" and "),
        archive.name,
        data_dir.display()
    )
}

/// Downloads (from `url`, the official address when absent) and unpacks a released archive
/// into the data folder.
fn fetch_archive(name: &str, data_dir: &Path, url: Option<&str>) -> anyhow::Result<()> {
    let Some(archive) = fetch::known_archive(name) else {
        let names: Vec<&str> = fetch::KNOWN_ARCHIVES.iter().map(|a| a.name).collect();
        bail!("unknown archive `{name}`; the archives are: {}", names.join(", "));
    };
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let download = data_dir.join("downloads").join(archive.file_name);
    let staging = data_dir.join(format!(".unpacking-{name}"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("removing the unfinished {}", staging.display()))?;
    }
    let bar = ProgressBar::new(archive.size.unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("fetching {}", archive.file_name));
    let expected = fetch::expected_digest(archive, &download)?;
    let fetched = fetch::fetch(
        url.unwrap_or(archive.url),
        expected.as_deref(),
        &download,
        &staging,
        archive.max_unpacked_bytes,
        &mut |done, total| {
            if let Some(total) = total {
                bar.set_length(total);
            }
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    // Only the archive's own top-level folders move into place; a folder already there is kept.
    let installed = fetch::install(&staging, data_dir, archive.top_level);
    std::fs::remove_dir_all(&staging).ok();
    let fetch::Installed { kept, dropped, .. } = installed?;
    if expected.is_none() {
        fetch::remember_digest(&download, &fetched.sha256)?;
    }
    for name in kept {
        eprintln!("{} already exists: kept as it is", data_dir.join(name).display());
    }
    if !dropped.is_empty() {
        eprintln!("left out of the data folder, not part of the {name} data: {}", dropped.join(", "));
    }
    let check = match (fetched.verified, archive.sha256) {
        (true, Some(_)) => "SHA-256 verified against the published digest".to_string(),
        (true, None) => "SHA-256 verified against the one recorded at its first fetch".to_string(),
        (false, _) => format!(
            "no published SHA-256: recorded in {} so that later fetches, from any mirror, must match it",
            fetch::first_seen_digest_path(&download).display()
        ),
    };
    let mut out = std::io::stdout();
    writeln!(
        out,
        "{name}: {} bytes, sha256 {} ({check}); unpacked into {}",
        fetched.archive_bytes,
        fetched.sha256,
        data_dir.display()
    )?;
    Ok(())
}
