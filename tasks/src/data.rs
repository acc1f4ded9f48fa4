//! Where a task's examples come from, and the prepared-data cache in front of them.
//!
//! A task resolves to its generator or synthetic stand-in; when the released files are
//! found under the data folder they replace it (always preferred), and the variant
//! chosen is part of the configuration, so the run record says which data was used and
//! the run id differs between them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use lra_datasets::pathfinder::{self, Difficulty, PathfinderConfig};
use lra_datasets::standin::SplitSizes;
use lra_datasets::{DataError, Splits, aan, cache, cifar, imdb, listops, shapes, standin};

/// How many examples of each split to keep (all when `None`): smaller presets train on
/// the first examples of the released splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub train: Option<usize>,
    pub validation: Option<usize>,
    pub test: Option<usize>,
}

/// Where a task's examples come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// The ListOps generator (see `lra_datasets::listops`).
    ListopsGenerated {
        /// Seed of the data, separate from the training seed: every run of a task at
        /// one preset sees the same examples.
        seed: u64,
        max_depth: usize,
        max_args: usize,
        min_length: usize,
        max_length: usize,
        train: usize,
        validation: usize,
        test: usize,
    },
    /// `lra_release/listops-1000/basic_{train,val,test}.tsv`.
    ListopsReleased { limits: Limits },
    /// The aclImdb folders (`aclImdb/{train,test}/{pos,neg}`). Validation is the last
    /// `validation_percent` % of the shuffled training reviews; absent (configurations
    /// of earlier versions), the test split, as in the official code, which then selects
    /// on the split it reports.
    TextReleased {
        seed: u64,
        limits: Limits,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        validation_percent: Option<u32>,
    },
    /// A synthetic stand-in for IMDb: sentiment words scattered through long documents.
    TextStandIn { seed: u64, train: usize, validation: usize, test: usize },
    /// `lra_release/tsv_data/new_aan_pairs.{train,eval,test}.tsv`.
    RetrievalReleased { limits: Limits },
    /// A synthetic stand-in for AAN: document pairs that do or do not share a topic.
    RetrievalStandIn { seed: u64, train: usize, validation: usize, test: usize },
    /// The CIFAR-10 binary batches (`cifar-10-batches-bin/`), in grayscale.
    ImageReleased { limits: Limits },
    /// A synthetic stand-in for CIFAR-10: 32x32 drawn shapes in 10 classes.
    ImageStandIn { seed: u64, train: usize, validation: usize, test: usize },
    /// The Pathfinder generator at LRA's settings for `size` (32, 64 or 128 = Path-X);
    /// `count` images split 80/10/10.
    PathfinderGenerated { seed: u64, size: usize, difficulty: PathfinderDifficulty, count: usize },
    /// The CPU text task (`quick`): byte documents with `words` sentiment words planted,
    /// the majority leading by `margin` or more (see `lra_datasets::standin::sentiment_text`).
    TextGenerated { seed: u64, words: usize, margin: usize, train: usize, validation: usize, test: usize },
    /// The CPU retrieval task (`quick`): document pairs about one of `topics` topics, each
    /// holding `words` words of its topic; label 1 when they share it
    /// (`lra_datasets::standin::topic_pairs`).
    RetrievalGenerated { seed: u64, topics: usize, words: usize, train: usize, validation: usize, test: usize },
    /// The CPU image task (`quick`): ten shapes of eight lit pixels on `side` x `side`
    /// black, at one of `levels` grey levels (`lra_datasets::shapes`).
    ImageGenerated { seed: u64, side: usize, levels: usize, train: usize, validation: usize, test: usize },
    /// The CPU Pathfinder (`quick`): the Pathfinder-32 generator on a small grid with short
    /// contours (`lra_datasets::pathfinder::PathfinderConfig::cpu`), `count` images split
    /// 80/10/10.
    PathfinderSmall { seed: u64, size: usize, contour_length: usize, distractors: usize, count: usize },
    /// `lra_release/pathfinder<size>/<difficulty>/` (empty images left out), split
    /// 80/10/10 after a shuffle seeded by `seed`.
    PathfinderReleased { seed: u64, size: usize, difficulty: PathfinderDifficulty, limits: Limits },
}

/// Contour length of Pathfinder images: 6 (`baseline`), 9 or 14 (LRA's "hard", the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathfinderDifficulty {
    Baseline,
    #[serde(rename = "9")]
    Nine,
    #[serde(rename = "14")]
    Fourteen,
}

impl PathfinderDifficulty {
    /// The generator's (and the release's) form of the difficulty.
    pub fn generator(self) -> Difficulty {
        match self {
            PathfinderDifficulty::Baseline => Difficulty::Baseline,
            PathfinderDifficulty::Nine => Difficulty::Nine,
            PathfinderDifficulty::Fourteen => Difficulty::Fourteen,
        }
    }
}

/// The value of `data_source` in run records.
pub const GENERATED: &str = "generated";
pub const RELEASED: &str = "released files";
pub const STAND_IN: &str = "synthetic stand-in";

impl DataConfig {
    /// The same data drawn from another seed: generators and stand-ins take it, and so do
    /// the released files that are split with a seed (IMDb's validation hold-out,
    /// Pathfinder's shuffle before the 80/10/10 split); the ListOps, AAN and CIFAR-10
    /// releases, whose splits are fixed files, do not.
    pub fn with_seed(mut self, new_seed: u64) -> DataConfig {
        if let Some(seed) = self.seed_mut() {
            *seed = new_seed;
        }
        self
    }

    /// The seed the data is drawn or split with; `None` for the releases whose splits are
    /// fixed files (ListOps, AAN, CIFAR-10).
    pub fn seed(&self) -> Option<u64> {
        self.clone().seed_mut().copied()
    }

    /// Where the seed of the data is, for the sources that have one.
    fn seed_mut(&mut self) -> Option<&mut u64> {
        match self {
            DataConfig::ListopsGenerated { seed, .. }
            | DataConfig::TextReleased { seed, .. }
            | DataConfig::TextStandIn { seed, .. }
            | DataConfig::TextGenerated { seed, .. }
            | DataConfig::RetrievalGenerated { seed, .. }
            | DataConfig::ImageGenerated { seed, .. }
            | DataConfig::RetrievalStandIn { seed, .. }
            | DataConfig::ImageStandIn { seed, .. }
            | DataConfig::PathfinderGenerated { seed, .. }
            | DataConfig::PathfinderSmall { seed, .. }
            | DataConfig::PathfinderReleased { seed, .. } => Some(seed),
            DataConfig::ListopsReleased { .. } | DataConfig::RetrievalReleased { .. } | DataConfig::ImageReleased { .. } => None,
        }
    }

    /// The archive of `lra data fetch` that holds this data's released files, for released
    /// data (to say what to fetch when they are missing).
    pub fn released_archive(&self) -> Option<&'static str> {
        match self {
            DataConfig::ListopsReleased { .. } | DataConfig::RetrievalReleased { .. } | DataConfig::PathfinderReleased { .. } => {
                Some("lra")
            }
            DataConfig::TextReleased { .. } => Some("imdb"),
            DataConfig::ImageReleased { .. } => Some("cifar10"),
            DataConfig::ListopsGenerated { .. }
            | DataConfig::TextStandIn { .. }
            | DataConfig::RetrievalStandIn { .. }
            | DataConfig::ImageStandIn { .. }
            | DataConfig::TextGenerated { .. }
            | DataConfig::RetrievalGenerated { .. }
            | DataConfig::ImageGenerated { .. }
            | DataConfig::PathfinderGenerated { .. }
            | DataConfig::PathfinderSmall { .. } => None,
        }
    }

    /// The run record's `data_source`.
    pub fn source_label(&self) -> &'static str {
        match self {
            DataConfig::ListopsGenerated { .. }
            | DataConfig::PathfinderGenerated { .. }
            | DataConfig::PathfinderSmall { .. }
            | DataConfig::TextGenerated { .. }
            | DataConfig::RetrievalGenerated { .. }
            | DataConfig::ImageGenerated { .. } => GENERATED,
            DataConfig::ListopsReleased { .. }
            | DataConfig::TextReleased { .. }
            | DataConfig::RetrievalReleased { .. }
            | DataConfig::ImageReleased { .. }
            | DataConfig::PathfinderReleased { .. } => RELEASED,
            DataConfig::TextStandIn { .. } | DataConfig::RetrievalStandIn { .. } | DataConfig::ImageStandIn { .. } => STAND_IN,
        }
    }

    /// The released variant of this data when its files are under `data_dir`, keeping
    /// the preset's split sizes as limits; otherwise `self` unchanged.
    pub fn prefer_released(self, data_dir: &Path) -> DataConfig {
        let limits = self.sizes_as_limits();
        let found = |relative: &str| released_path(data_dir, relative).is_some();
        match self {
            DataConfig::ListopsGenerated { .. } if found(LISTOPS_DIR) => DataConfig::ListopsReleased { limits },
            DataConfig::TextStandIn { seed, .. } if found(IMDB_DIR) => {
                DataConfig::TextReleased { seed, limits, validation_percent: Some(TEXT_VALIDATION_PERCENT) }
            }
            DataConfig::RetrievalStandIn { .. } if found(AAN_DIR) => DataConfig::RetrievalReleased { limits },
            DataConfig::ImageStandIn { .. } if found(CIFAR_DIR) => DataConfig::ImageReleased { limits },
            DataConfig::PathfinderGenerated { seed, size, difficulty, .. } if found(&pathfinder_dir(size, difficulty)) => {
                DataConfig::PathfinderReleased { seed, size, difficulty, limits }
            }
            other => other,
        }
    }

    fn sizes_as_limits(&self) -> Limits {
        match *self {
            DataConfig::ListopsGenerated { train, validation, test, .. }
            | DataConfig::TextStandIn { train, validation, test, .. }
            | DataConfig::RetrievalStandIn { train, validation, test, .. }
            | DataConfig::ImageStandIn { train, validation, test, .. }
            | DataConfig::TextGenerated { train, validation, test, .. }
            | DataConfig::RetrievalGenerated { train, validation, test, .. }
            | DataConfig::ImageGenerated { train, validation, test, .. } => {
                Limits { train: Some(train), validation: Some(validation), test: Some(test) }
            }
            DataConfig::PathfinderGenerated { count, .. } | DataConfig::PathfinderSmall { count, .. } => {
                let [train, validation, test] = pathfinder::split_counts(count);
                Limits { train: Some(train), validation: Some(validation), test: Some(test) }
            }
            DataConfig::ListopsReleased { limits }
            | DataConfig::TextReleased { limits, .. }
            | DataConfig::RetrievalReleased { limits }
            | DataConfig::ImageReleased { limits }
            | DataConfig::PathfinderReleased { limits, .. } => limits,
        }
    }

    /// Whether this is a source of `task`'s examples (ListOps data for ListOps, 32x32
    /// Pathfinder for Pathfinder, ...).
    pub fn serves(&self, task: crate::Task) -> bool {
        use crate::Task;
        match self {
            DataConfig::ListopsGenerated { .. } | DataConfig::ListopsReleased { .. } => task == Task::Listops,
            DataConfig::TextReleased { .. } | DataConfig::TextStandIn { .. } | DataConfig::TextGenerated { .. } => {
                task == Task::Text
            }
            DataConfig::RetrievalReleased { .. }
            | DataConfig::RetrievalStandIn { .. }
            | DataConfig::RetrievalGenerated { .. } => task == Task::Retrieval,
            DataConfig::ImageReleased { .. } | DataConfig::ImageStandIn { .. } | DataConfig::ImageGenerated { .. } => {
                task == Task::Image
            }
            DataConfig::PathfinderGenerated { size, .. } | DataConfig::PathfinderReleased { size, .. } => {
                (task == Task::Pathfinder && *size == 32) || (task == Task::Pathx && *size == 128)
            }
            DataConfig::PathfinderSmall { .. } => task == Task::Pathfinder,
        }
    }

    /// Pixels of each image this source gives, for image sources.
    pub fn pixels(&self) -> Option<usize> {
        match self {
            DataConfig::ImageReleased { .. } | DataConfig::ImageStandIn { .. } => Some(cifar::PIXELS),
            DataConfig::ImageGenerated { side, .. } => Some(side * side),
            DataConfig::PathfinderGenerated { size, .. }
            | DataConfig::PathfinderReleased { size, .. }
            | DataConfig::PathfinderSmall { size, .. } => Some(size * size),
            _ => None,
        }
    }

    /// How to get the released files of this task, for messages about stand-ins.
    pub fn how_to_fetch(&self) -> Option<&'static str> {
        match self {
            DataConfig::TextStandIn { .. } => Some("lra data fetch imdb (or put aclImdb/ under --data)"),
            DataConfig::RetrievalStandIn { .. } => Some("lra data fetch lra (or put lra_release/ under --data)"),
            DataConfig::ImageStandIn { .. } => Some("lra data fetch cifar10 (or put cifar-10-batches-bin/ under --data)"),
            _ => None,
        }
    }

    /// Produces the tokenized splits, sequences cut to `max_length`, through the cache in
    /// `data_dir/prepared/` (a stale or corrupt cache file is rebuilt, never used).
    pub fn prepare(&self, max_length: usize, data_dir: &Path) -> Result<Splits, DataError> {
        self.prepare_reporting(max_length, data_dir).map(|(splits, _)| splits)
    }

    /// As [`DataConfig::prepare`], also saying whether the splits came from the cache.
    pub fn prepare_reporting(&self, max_length: usize, data_dir: &Path) -> Result<(Splits, bool), DataError> {
        // Released files are fingerprinted: a folder completed or replaced since the cache
        // was written makes another key.
        let params = format!("{self:?} max_length={max_length} inputs={}", self.released_fingerprint(data_dir));
        let digest: String = Sha256::digest(params.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect();
        let path = data_dir.join("prepared").join(format!("{digest}.bin"));
        if let Some(splits) = cache::load(&path, &params)? {
            return Ok((splits, true));
        }
        let splits = self.build(max_length, data_dir)?;
        cache::save(&path, &params, &splits)?;
        Ok((splits, false))
    }

    /// The ListOps generator's settings and seed, for generated ListOps.
    pub fn listops_generator(&self) -> Option<(listops::GeneratorConfig, u64)> {
        match *self {
            DataConfig::ListopsGenerated { seed, max_depth, max_args, min_length, max_length, train, validation, test } => {
                let config = listops::GeneratorConfig { max_depth, max_args, min_length, max_length, train, validation, test };
                Some((config, seed))
            }
            _ => None,
        }
    }

    /// Refuses generator settings that cannot work or would exhaust the machine, before
    /// anything is prepared.
    pub fn check(&self) -> Result<(), DataError> {
        self.check_counts()?;
        if let Some((config, _)) = self.listops_generator() {
            listops::check_config(&config).map_err(|e| DataError::new(format!("data: {}", e.message)))?;
        }
        let in_data = |e: DataError| DataError::new(format!("data: {}", e.message));
        if let DataConfig::ImageGenerated { side, levels, .. } = *self {
            shapes::check(side, levels).map_err(in_data)?;
        }
        if let DataConfig::PathfinderSmall { size, contour_length, distractors, count, .. } = *self {
            PathfinderConfig::cpu(size, contour_length, distractors).map_err(in_data)?;
            if !(10..=listops::MAX_EXAMPLES).contains(&count) {
                return Err(DataError::new(format!(
                    "data: count {count} must be between 10 (an image in every split of 80/10/10) and {}",
                    listops::MAX_EXAMPLES
                )));
            }
        }
        if let DataConfig::TextGenerated { train, validation, test, .. }
        | DataConfig::RetrievalGenerated { train, validation, test, .. }
        | DataConfig::ImageGenerated { train, validation, test, .. } = *self
        {
            let total = train.checked_add(validation).and_then(|n| n.checked_add(test));
            if train == 0 || validation == 0 || test == 0 || total.is_none_or(|n| n > listops::MAX_EXAMPLES) {
                return Err(DataError::new(format!(
                    "data: every split needs examples, at most {} in all (train {train}, validation {validation}, test \
                     {test})",
                    listops::MAX_EXAMPLES
                )));
            }
        }
        Ok(())
    }

    /// Refuses counts of examples that no split can hold: every variant's counts and
    /// limits at most `listops::MAX_EXAMPLES` in all (a count of 10^12 would only allocate
    /// absurdly), a validation share of the IMDb training reviews in 1-99 %.
    pub fn check_counts(&self) -> Result<(), DataError> {
        let max = listops::MAX_EXAMPLES;
        let refuse = |what: String| {
            Err(DataError::new(format!("data: {what} must be at most {max} examples in all (listops::MAX_EXAMPLES)")))
        };
        match *self {
            DataConfig::TextStandIn { train, validation, test, .. }
            | DataConfig::RetrievalStandIn { train, validation, test, .. }
            | DataConfig::ImageStandIn { train, validation, test, .. } => {
                let total = train.checked_add(validation).and_then(|n| n.checked_add(test));
                if train == 0 || validation == 0 || test == 0 || total.is_none_or(|n| n > max) {
                    return Err(DataError::new(format!(
                        "data: every split needs examples, at most {max} in all (train {train}, validation {validation}, \
                         test {test})"
                    )));
                }
            }
            DataConfig::PathfinderGenerated { count, .. } if !(10..=max).contains(&count) => {
                return Err(DataError::new(format!(
                    "data: count {count} must be between 10 (an image in every split of 80/10/10) and {max}"
                )));
            }
            DataConfig::ListopsReleased { limits }
            | DataConfig::TextReleased { limits, .. }
            | DataConfig::RetrievalReleased { limits }
            | DataConfig::ImageReleased { limits }
            | DataConfig::PathfinderReleased { limits, .. } => {
                for (name, value) in [("train", limits.train), ("validation", limits.validation), ("test", limits.test)] {
                    if let Some(value) = value.filter(|&v| v > max) {
                        return refuse(format!("limits.{name} {value}"));
                    }
                }
            }
            _ => {}
        }
        if let DataConfig::TextReleased { validation_percent: Some(percent), .. } = *self
            && !(1..=99).contains(&percent)
        {
            return Err(DataError::new(format!("data: validation_percent must be between 1 and 99, found {percent}")));
        }
        Ok(())
    }

    /// Refuses planted-word settings that documents of `max_length` bytes cannot hold (a
    /// margin above the word count, more words than fit), before anything is generated.
    pub fn check_documents(&self, max_length: usize) -> Result<(), DataError> {
        let in_data = |e: DataError| DataError::new(format!("data: {}", e.message));
        match *self {
            DataConfig::TextGenerated { words, margin, .. } => {
                standin::Sentiment { words, margin }.check(max_length).map_err(in_data)
            }
            DataConfig::RetrievalGenerated { topics, words, .. } => {
                standin::check_topic_pairs(max_length, topics, words).map_err(in_data)
            }
            _ => Ok(()),
        }
    }

    /// The released folder these splits are read from, if any.
    fn released_root(&self, data_dir: &Path) -> Option<PathBuf> {
        let relative = match self {
            DataConfig::ListopsReleased { .. } => LISTOPS_DIR.to_string(),
            DataConfig::TextReleased { .. } => IMDB_DIR.to_string(),
            DataConfig::RetrievalReleased { .. } => AAN_DIR.to_string(),
            DataConfig::ImageReleased { .. } => CIFAR_DIR.to_string(),
            DataConfig::PathfinderReleased { size, difficulty, .. } => pathfinder_dir(*size, *difficulty),
            _ => return None,
        };
        released_path(data_dir, &relative)
    }

    /// A digest of the released files' names, sizes and modification times (`none` for
    /// generated and stand-in data).
    pub fn released_fingerprint(&self, data_dir: &Path) -> String {
        let Some(root) = self.released_root(data_dir) else { return "none".into() };
        let mut entries = Vec::new();
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            let Ok(listing) = std::fs::read_dir(&folder) else { continue };
            for entry in listing.flatten() {
                let path = entry.path();
                let Ok(meta) = std::fs::metadata(&path) else { continue };
                if meta.is_dir() {
                    folders.push(path);
                } else {
                    let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                    let relative = path.strip_prefix(&root).unwrap_or(&path).display().to_string();
                    entries.push(format!("{relative}\t{}\t{}", meta.len(), modified.map_or(0, |d| d.as_nanos())));
                }
            }
        }
        entries.sort();
        let digest = Sha256::digest(entries.join("\n").as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// Produces the splits without the cache.
    pub fn build(&self, max_length: usize, data_dir: &Path) -> Result<Splits, DataError> {
        let released = |relative: &str| {
            released_path(data_dir, relative).ok_or_else(|| {
                DataError::in_file(&data_dir.join(relative), "released files not found (looked here and under lra_release/)")
            })
        };
        let splits = match self {
            DataConfig::ListopsGenerated { .. } => {
                let (config, seed) = self.listops_generator().expect("generated ListOps");
                listops::to_splits(listops::generate_samples(&config, seed)?)?
            }
            DataConfig::ListopsReleased { limits } => {
                let dir = released(LISTOPS_DIR)?;
                let read = |name: &str| -> Result<Vec<listops::Sample>, DataError> { listops::read_tsv(&dir.join(name)) };
                let samples = [read("basic_train.tsv")?, read("basic_val.tsv")?, read("basic_test.tsv")?];
                limit(listops::to_splits(samples)?, limits)
            }
            DataConfig::TextReleased { seed, limits, validation_percent } => {
                let validation = match *validation_percent {
                    Some(percent) => imdb::Validation::HeldOutFromTrain { percent },
                    None => imdb::Validation::TestSplit,
                };
                let config = imdb::ImdbConfig { max_length, validation, seed: *seed };
                limit(imdb::read(&released(IMDB_DIR)?, &config)?, limits)
            }
            DataConfig::TextStandIn { seed, train, validation, test } => {
                standin::text(SplitSizes { train: *train, validation: *validation, test: *test }, max_length, *seed)?
            }
            DataConfig::TextGenerated { seed, words, margin, train, validation, test } => standin::sentiment_text(
                SplitSizes { train: *train, validation: *validation, test: *test },
                max_length,
                *seed,
                standin::Sentiment { words: *words, margin: *margin },
            )?,
            DataConfig::RetrievalGenerated { seed, topics, words, train, validation, test } => standin::topic_pairs(
                SplitSizes { train: *train, validation: *validation, test: *test },
                max_length,
                *seed,
                *topics,
                *words,
            )?,
            DataConfig::ImageGenerated { seed, side, levels, train, validation, test } => shift_pixels(shapes::shapes(
                SplitSizes { train: *train, validation: *validation, test: *test },
                *side,
                *levels,
                *seed,
            )?),
            DataConfig::RetrievalReleased { limits } => limit(aan::read_splits(&released(AAN_DIR)?, max_length)?, limits),
            DataConfig::RetrievalStandIn { seed, train, validation, test } => {
                standin::retrieval(SplitSizes { train: *train, validation: *validation, test: *test }, max_length, *seed)?
            }
            DataConfig::ImageReleased { limits } => shift_pixels(limit(cifar::read_splits(&released(CIFAR_DIR)?)?, limits)),
            DataConfig::ImageStandIn { seed, train, validation, test } => {
                shift_pixels(standin::image(SplitSizes { train: *train, validation: *validation, test: *test }, *seed)?)
            }
            DataConfig::PathfinderGenerated { seed, size, difficulty, count } => {
                let config = PathfinderConfig::lra(*size, difficulty.generator())?;
                shift_pixels(pathfinder::generated_splits(&config, *seed, *count as u64)?)
            }
            DataConfig::PathfinderSmall { seed, size, contour_length, distractors, count } => {
                let config = PathfinderConfig::cpu(*size, *contour_length, *distractors)?;
                shift_pixels(pathfinder::generated_splits(&config, *seed, *count as u64)?)
            }
            DataConfig::PathfinderReleased { seed, size, difficulty, limits } => {
                let dir = released(&pathfinder_dir(*size, *difficulty))?;
                let limits = [limits.train, limits.validation, limits.test];
                shift_pixels(pathfinder::released_splits(&dir, *size, *seed, limits)?)
            }
        };
        Ok(truncate(splits, max_length))
    }
}

/// The share of IMDb's training reviews held out for validation, so that no choice is
/// made on the test split.
pub const TEXT_VALIDATION_PERCENT: u32 = 10;

const LISTOPS_DIR: &str = "lra_release/listops-1000";
const IMDB_DIR: &str = "aclImdb";
const AAN_DIR: &str = "lra_release/tsv_data";
const CIFAR_DIR: &str = "cifar-10-batches-bin";

fn pathfinder_dir(size: usize, difficulty: PathfinderDifficulty) -> String {
    format!("lra_release/pathfinder{size}/{}", difficulty.generator().release_folder())
}

/// `data_dir/relative`, or the same under the doubled `lra_release/lra_release/` that the
/// LRA archive unpacks to.
pub fn released_path(data_dir: &Path, relative: &str) -> Option<PathBuf> {
    let direct = data_dir.join(relative);
    if direct.exists() {
        return Some(direct);
    }
    let nested = relative.strip_prefix("lra_release/").map(|rest| data_dir.join("lra_release/lra_release").join(rest))?;
    nested.exists().then_some(nested)
}

fn limit(mut splits: Splits, limits: &Limits) -> Splits {
    for (split, max) in
        [(&mut splits.train, limits.train), (&mut splits.validation, limits.validation), (&mut splits.test, limits.test)]
    {
        if let Some(max) = max {
            split.truncate(max);
        }
    }
    splits
}

fn truncate(mut splits: Splits, max_length: usize) -> Splits {
    for example in splits.train.iter_mut().chain(&mut splits.validation).chain(&mut splits.test) {
        example.tokens.truncate(max_length);
        if let Some(second) = &mut example.second {
            second.truncate(max_length);
        }
    }
    splits
}

fn shift_pixels(mut splits: Splits) -> Splits {
    for example in splits.train.iter_mut().chain(&mut splits.validation).chain(&mut splits.test) {
        for token in &mut example.tokens {
            *token += 1;
        }
    }
    splits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_of_released_data_follows_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let config = DataConfig::ImageReleased { limits: Limits { train: None, validation: None, test: None } };
        let batches = dir.path().join(CIFAR_DIR);
        std::fs::create_dir_all(&batches).unwrap();
        std::fs::write(batches.join("data_batch_1.bin"), b"abc").unwrap();
        let first = config.released_fingerprint(dir.path());
        assert_eq!(first, config.released_fingerprint(dir.path()), "the same files, the same key");
        // The folder completed with another file, then a file replaced by a longer one.
        std::fs::write(batches.join("test_batch.bin"), b"def").unwrap();
        let completed = config.released_fingerprint(dir.path());
        assert_ne!(completed, first);
        std::fs::write(batches.join("test_batch.bin"), b"defg").unwrap();
        assert_ne!(config.released_fingerprint(dir.path()), completed);
        let generated = DataConfig::ListopsGenerated {
            seed: 0,
            max_depth: 2,
            max_args: 3,
            min_length: 1,
            max_length: 10,
            train: 1,
            validation: 1,
            test: 1,
        };
        assert_eq!(generated.released_fingerprint(dir.path()), "none");
    }

    /// Every variant's counts of examples are bounded as ListOps' are: a trillion examples
    /// is refused, naming the count and the bound, before anything is generated or read.
    #[test]
    fn every_variants_counts_of_examples_are_bounded() {
        let huge = 1_000_000_000_000usize;
        let limits = Limits { train: Some(huge), validation: None, test: None };
        let refused = [
            DataConfig::TextStandIn { seed: 0, train: huge, validation: 1, test: 1 },
            DataConfig::RetrievalStandIn { seed: 0, train: 1, validation: huge, test: 1 },
            DataConfig::ImageStandIn { seed: 0, train: 1, validation: 1, test: huge },
            DataConfig::PathfinderGenerated { seed: 0, size: 32, difficulty: PathfinderDifficulty::Fourteen, count: huge },
            DataConfig::ListopsReleased { limits },
            DataConfig::TextReleased { seed: 0, limits, validation_percent: None },
            DataConfig::RetrievalReleased { limits },
            DataConfig::ImageReleased { limits },
            DataConfig::PathfinderReleased { seed: 0, size: 32, difficulty: PathfinderDifficulty::Fourteen, limits },
            DataConfig::TextGenerated { seed: 0, words: 3, margin: 1, train: huge, validation: 1, test: 1 },
        ];
        for config in refused {
            let why = config.check().unwrap_err().message;
            assert!(why.contains(&huge.to_string()) && why.contains(&listops::MAX_EXAMPLES.to_string()), "{config:?}: {why}");
        }
        let percent = DataConfig::TextReleased { seed: 0, limits: Limits::default(), validation_percent: Some(100) };
        assert!(percent.check().unwrap_err().message.contains("validation_percent must be between 1 and 99, found 100"));
        // The bound itself passes.
        let at_bound = Limits { train: Some(listops::MAX_EXAMPLES), validation: None, test: None };
        DataConfig::ListopsReleased { limits: at_bound }.check().unwrap();
        DataConfig::TextStandIn { seed: 0, train: 8, validation: 1, test: 1 }.check().unwrap();
    }
}
