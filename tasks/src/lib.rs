//! What each Long Range Arena task is: where its data comes from, its sequence length,
//! vocabulary and classes, and the hyperparameters of each preset.
//!
//! A [`TaskConfig`] is everything about a run that is not the model's code: it is
//! resolved once from (task, preset), may be overridden by a configuration file, and is
//! saved beside the results so the run can be repeated from it.

mod config;
mod data;
mod downsample;
pub mod lra;
mod padding;
mod presets;
mod schedule;
mod task;
pub use config::{ModelConfig, Pooling, Positions, TaskConfig, TrainingConfig};
pub use data::{DataConfig, GENERATED, Limits, PathfinderDifficulty, RELEASED, STAND_IN, released_path};
pub use downsample::{Downsample, Reduce};
pub use padding::{PAD_TOKEN, padded};
pub use schedule::Schedule;
pub use task::{PIXEL_VOCAB, Preset, SweepBenchmark, Task};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_are_cut_or_padded_to_the_length() {
        let padded = |sequence: &[u32], length| padded(sequence, length).collect::<Vec<_>>();
        assert_eq!(padded(&[5, 6, 7], 5), [5, 6, 7, PAD_TOKEN, PAD_TOKEN]);
        assert_eq!(padded(&[5, 6, 7], 2), [5, 6]);
        assert_eq!(padded(&[5, 6, 7], 3), [5, 6, 7]);
        assert_eq!(padded(&[], 2), [PAD_TOKEN, PAD_TOKEN]);
        assert!(padded(&[5], 0).is_empty());
    }

    #[test]
    fn black_pixels_become_padding_and_nothing_else_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = TaskConfig::resolve(Task::Pathfinder, Preset::Tiny);
        let plain = config.prepare(dir.path()).unwrap();
        config.pixel_zero_is_padding = true;
        let padded = config.prepare(dir.path()).unwrap();
        let (mut black, mut lit) = (0, 0);
        for (a, b) in plain.train.iter().chain(&plain.test).zip(padded.train.iter().chain(&padded.test)) {
            assert_eq!(a.label, b.label);
            for (&before, &after) in a.tokens.iter().zip(&b.tokens) {
                if before == 1 {
                    black += 1;
                    assert_eq!(after, PAD_TOKEN);
                } else {
                    lit += 1;
                    assert_eq!(after, before);
                }
            }
        }
        assert!(black > 0 && lit > 0, "{black} black and {lit} lit pixels");
    }

    /// Settings of the CPU tasks that cannot produce a valid task are refused by the
    /// configuration's check, before anything is generated.
    #[test]
    fn cpu_task_settings_that_cannot_work_are_refused_before_generating() {
        let refused = |task, edit: fn(&mut DataConfig)| {
            let mut config = TaskConfig::resolve(task, Preset::Quick);
            config.check_images().unwrap();
            edit(&mut config.data);
            config.check_images().unwrap_err().to_string()
        };
        let error = refused(Task::Text, |d| {
            if let DataConfig::TextGenerated { margin, .. } = d {
                *margin = 12;
            }
        });
        assert!(error.contains("margin 12") && error.contains("words (9)"), "{error}");
        let error = refused(Task::Retrieval, |d| {
            if let DataConfig::RetrievalGenerated { words, .. } = d {
                *words = 11;
            }
        });
        assert!(error.contains("words 11") && error.contains("between 1 and 10"), "{error}");
        let error = refused(Task::Pathfinder, |d| {
            if let DataConfig::PathfinderSmall { contour_length, .. } = d {
                *contour_length = 8;
            }
        });
        assert!(error.contains("8 paddles") && error.contains("size 12"), "{error}");
        let error = refused(Task::Image, |d| {
            if let DataConfig::ImageGenerated { test, .. } = d {
                *test = 0;
            }
        });
        assert!(error.contains("test 0"), "{error}");
        let error = refused(Task::Image, |d| {
            if let DataConfig::ImageGenerated { train, .. } = d {
                *train = usize::MAX;
            }
        });
        assert!(error.contains("at most 10000000 in all"), "{error}");
        let error = refused(Task::Pathfinder, |d| {
            if let DataConfig::PathfinderSmall { count, .. } = d {
                *count = usize::MAX;
            }
        });
        assert!(error.contains("count 18446744073709551615"), "{error}");
    }

    #[test]
    fn downsampled_presets_prepare_images_of_their_max_length() {
        let dir = std::env::temp_dir().join(format!("lra-downsample-{}", std::process::id()));
        let mut config = TaskConfig::resolve(Task::Pathfinder, Preset::Tiny).downsampled(2, Reduce::Mean);
        assert_eq!(config.max_length, 256);
        config.data =
            DataConfig::PathfinderGenerated { seed: 3, size: 32, difficulty: PathfinderDifficulty::Baseline, count: 20 };
        let splits = config.prepare(&dir).unwrap();
        let full = config.data.prepare(1024, &dir).unwrap();
        for (small, large) in splits.train.iter().zip(&full.train) {
            assert_eq!(small.tokens, config.downsample.unwrap().apply(&large.tokens));
            assert_eq!(small.tokens.len(), 256);
            assert_eq!(small.label, large.label);
        }
        // A configuration whose max_length does not match is refused, not truncated.
        config.max_length = 200;
        let err = config.prepare(&dir).unwrap_err().to_string();
        assert!(err.contains("max_length 200"), "{err}");
        // A factor of 0 (possible in a configuration file) is an error, not a division by zero.
        config.downsample = Some(Downsample { side: 32, factor: 0, reduce: Reduce::Max });
        let err = config.prepare(&dir).unwrap_err().to_string();
        assert!(err.contains("factor 0"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
