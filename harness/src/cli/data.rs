//! `lra data generate|inspect|preview|stats|export|fetch`: the data side of the harness.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use lra_datasets::pathfinder::{HISTOGRAM_BINS, LIT_THRESHOLDS, PathfinderConfig, SourceStats, Summary};
use lra_datasets::{DataError, Example, Splits, aan, fetch, listops, pathfinder};
use lra_tasks::{DataConfig, Task, TaskConfig};

use crate::cli::args::{DataAction, DataArgs, StatsArgs};
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
        DataAction::Stats(args) => stats(args),
        DataAction::Export { data, format, out, examples } => match format.as_str() {
            "npy" => export_npy(&resolve(data)?, &data.data, out, *examples),
            "tsv" if examples.is_some() => bail!("--examples is for --format npy; the TSV export writes every example"),
            "tsv" => export_tsv(&resolve(data)?, &data.data, out),
            _ => bail!("unknown export format `{format}`; the formats are: npy, tsv"),
        },
        DataAction::Fetch { name, data, url } => fetch_archive(name, data, url.as_deref()),
    }
}

/// Images `lra data stats` generates when --count is absent: enough for means to a few
/// per cent, in seconds.
const DEFAULT_STATS_COUNT: usize = 1000;

/// `lra data stats`: per-image statistics of this generator's images or of a folder in
/// the released layout, printed as a table and, with --json, written as JSON.
fn stats(args: &StatsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (source, stats) = match (&args.released, args.size, args.task) {
        (Some(dir), Some(size), _) => {
            let stats = pathfinder::released_stats(dir, size, args.count)
                .with_context(|| format!("measuring the released images in {} (--size {size})", dir.display()))?;
            let source = serde_json::json!({ "released": dir.display().to_string(), "size": size });
            (source, stats)
        }
        (None, _, Some(task)) => {
            let (generator, seed, difficulty) = stats_generator(task, args)?;
            let count = args.count.unwrap_or(DEFAULT_STATS_COUNT);
            let stats = pathfinder::generated_stats(&generator, seed, count)
                .with_context(|| format!("measuring {count} generated {} images", task.name()))?;
            let source = serde_json::json!({
                "task": task.name(),
                "preset": args.preset.name(),
                "difficulty": difficulty,
                "contour_length": generator.contour_length,
                "seed": seed,
                "size": generator.size,
            });
            (source, stats)
        }
        _ => bail!("give --task pathfinder|pathx (this generator's images) or --released DIR --size 32|64|128"),
    };
    let seconds = started.elapsed().as_secs_f64();
    print!("{}", stats_table(&describe_source(&source), &stats, seconds));
    if let Some(path) = &args.json {
        let mut json = stats_json(&stats);
        json["source"] = source;
        let mut bytes = serde_json::to_vec_pretty(&json)?;
        bytes.push(b'\n');
        write_atomically(path, &bytes)?;
        println!("written to {}", path.display());
    }
    Ok(())
}

/// The generator settings `args` name: the preset's Pathfinder data, at --difficulty when
/// given; with the seed and the difficulty's name (`cpu grid` for the CPU Pathfinder).
fn stats_generator(task: Task, args: &StatsArgs) -> anyhow::Result<(PathfinderConfig, u64, String)> {
    if !matches!(task, Task::Pathfinder | Task::Pathx) {
        bail!("--task {}: statistics are of Pathfinder images; the tasks are pathfinder and pathx", task.name());
    }
    let config = TaskConfig::resolve(task, args.preset);
    let seed = args.seed.or(config.data.seed()).unwrap_or(0);
    match config.data {
        DataConfig::PathfinderGenerated { size, difficulty, .. } => {
            let size = args.size.unwrap_or(size);
            let difficulty = args.difficulty.unwrap_or(difficulty.generator());
            let name = match difficulty {
                pathfinder::Difficulty::Baseline => "baseline",
                pathfinder::Difficulty::Nine => "9",
                pathfinder::Difficulty::Fourteen => "14",
            };
            Ok((PathfinderConfig::lra(size, difficulty)?, seed, name.to_string()))
        }
        DataConfig::PathfinderSmall { size, contour_length, distractors, .. } => {
            if let Some(asked) = args.size {
                bail!(
                    "--size {asked} picks a size of LRA's generator; the {} preset's {} data is the CPU grid \
                     ({size}x{size}): use --preset lra for LRA's settings",
                    args.preset.name(),
                    task.name()
                );
            }
            if args.difficulty.is_some() {
                bail!(
                    "--difficulty sets the contour length of LRA's generator; the {} preset's {} data is the CPU grid \
                     ({size}x{size}, contours of {contour_length} paddles): use --preset lra for LRA's settings",
                    args.preset.name(),
                    task.name()
                );
            }
            Ok((PathfinderConfig::cpu(size, contour_length, distractors)?, seed, "cpu grid".to_string()))
        }
        other => bail!("the {} preset's {} data is not generated ({})", args.preset.name(), task.name(), other.source_label()),
    }
}

/// One line naming the measured images.
fn describe_source(source: &serde_json::Value) -> String {
    match source.get("released") {
        Some(dir) => format!("released images in {}", dir.as_str().unwrap_or_default()),
        None => {
            let difficulty = match source["difficulty"].as_str().unwrap_or_default() {
                "cpu grid" => "the CPU grid".to_string(),
                name => format!("difficulty {name}"),
            };
            format!(
                "{} generator ({} preset, {difficulty}: contours of {} paddles, seed {})",
                source["task"].as_str().unwrap_or_default(),
                source["preset"].as_str().unwrap_or_default(),
                source["contour_length"],
                source["seed"]
            )
        }
    }
}

/// The statistics as a table: one row per statistic (mean, std, min, median, max over
/// images), the histograms, and how dashes and markers were told apart.
fn stats_table(source: &str, s: &SourceStats, seconds: f64) -> String {
    let mut out = String::new();
    let skipped = match s.skipped_empty {
        0 => String::new(),
        n => format!(" ({n} all-black left out)"),
    };
    out.push_str(&format!(
        "{source}: {} images of {}x{}{skipped}, label 1 in {:.1}% ({:.1} s)\n",
        s.images,
        s.size,
        s.size,
        100.0 * s.label_one_share,
        seconds
    ));
    out.push_str(&format!("  {:<38} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "statistic", "mean", "std", "min", "median", "max"));
    let mut row = |name: String, summary: Option<&Summary>, decimals: usize| match summary {
        Some(x) => out.push_str(&format!(
            "  {name:<38} {:>9.decimals$} {:>9.decimals$} {:>9.decimals$} {:>9.decimals$} {:>9.decimals$}\n",
            x.mean, x.std, x.min, x.median, x.max
        )),
        None => out.push_str(&format!("  {name:<38} {:>9}\n", "none")),
    };
    let counted = |what: &str, summary: &Option<Summary>| format!("{what} ({})", summary.map_or(0, |x| x.count));
    row("dashes per image".into(), Some(&s.dashes), 2);
    row("dash size (px), median per image".into(), s.dash_size_median.as_ref(), 2);
    row("dash size (px), mean per image".into(), s.dash_size_mean.as_ref(), 2);
    row(counted("dash size (px), all dashes", &s.dash_size), s.dash_size.as_ref(), 2);
    for (threshold, summary) in LIT_THRESHOLDS.iter().zip(&s.lit_fractions) {
        row(format!("lit fraction > {threshold}"), Some(summary), 4);
    }
    row("grey levels per image".into(), Some(&s.grey_levels), 2);
    row("markers found per image".into(), Some(&s.markers_found), 2);
    row(counted("marker size (px), markers", &s.marker_size), s.marker_size.as_ref(), 2);
    row(counted("marker distance (px), images", &s.marker_distance), s.marker_distance.as_ref(), 2);
    let width = 256 / HISTOGRAM_BINS;
    let bins: Vec<String> =
        (0..HISTOGRAM_BINS).map(|b| format!("{:>7}", format!("{}-{}", b * width, b * width + width - 1))).collect();
    let shares = |h: &[f64]| h.iter().map(|v| format!("{v:>7.4}")).collect::<Vec<_>>().join(" ");
    out.push_str(&format!("  grey-level histogram (share of pixels) {}\n", bins.join(" ")));
    out.push_str(&format!("    all pixels                           {}\n", shares(&s.histogram)));
    out.push_str(&format!("    non-black pixels                     {}\n", shares(&s.histogram_non_black)));
    out.push_str(&format!(
        "  dashes: 8-connected components > {} without the markers'; markers: opening of the pixels >= {} by a disc of {} \
         pixels, the two largest\n",
        pathfinder::DASH_THRESHOLD,
        s.detector.threshold,
        s.detector.element.len()
    ));
    out
}

/// A summary as JSON; `null` where there is none.
fn summary_json(summary: Option<&Summary>) -> serde_json::Value {
    match summary {
        Some(x) => serde_json::json!({
            "count": x.count, "mean": x.mean, "std": x.std, "min": x.min, "median": x.median, "max": x.max,
        }),
        None => serde_json::Value::Null,
    }
}

/// The statistics as JSON (without their source, which the caller adds).
fn stats_json(s: &SourceStats) -> serde_json::Value {
    let width = 256 / HISTOGRAM_BINS;
    let lit: serde_json::Map<String, serde_json::Value> =
        LIT_THRESHOLDS.iter().zip(&s.lit_fractions).map(|(t, x)| (format!("gt_{t}"), summary_json(Some(x)))).collect();
    serde_json::json!({
        "size": s.size,
        "images": s.images,
        "skipped_all_black": s.skipped_empty,
        "label_one_share": s.label_one_share,
        "dashes_per_image": summary_json(Some(&s.dashes)),
        "dash_size_median_per_image": summary_json(s.dash_size_median.as_ref()),
        "dash_size_mean_per_image": summary_json(s.dash_size_mean.as_ref()),
        "dash_size_all_dashes": summary_json(s.dash_size.as_ref()),
        "lit_fraction": lit,
        "grey_levels_per_image": summary_json(Some(&s.grey_levels)),
        "histogram_bins": (0..HISTOGRAM_BINS).map(|b| format!("{}-{}", b * width, b * width + width - 1)).collect::<Vec<_>>(),
        "histogram_all_pixels": s.histogram,
        "histogram_non_black": s.histogram_non_black,
        "markers_found_per_image": summary_json(Some(&s.markers_found)),
        "marker_size_pixels": summary_json(s.marker_size.as_ref()),
        "marker_distance_pixels": summary_json(s.marker_distance.as_ref()),
        "method": {
            "dash_threshold": pathfinder::DASH_THRESHOLD,
            "marker_threshold": s.detector.threshold,
            "marker_element_pixels": s.detector.element.len(),
        },
    })
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
