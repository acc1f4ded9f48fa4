//! The classifier learns a label that only positions reveal.

use lra_datasets::{Example, Splits};
use lra_harness::execute::device::open;
use lra_harness::execute::train::train;
use lra_harness::records::device_name::DeviceName;
use lra_harness::records::run_config::RunConfig;
use lra_tasks::{Positions, Preset, Schedule, Task};

mod common;
use common::Silent;

/// One marker token among 31 identical ones; the label says whether the marker is in the
/// first half. Every example holds the same tokens, so a model blind to positions stays at
/// 50%. The model is the quick Pathfinder one (d 32, one layer, mean pooling). Sinusoidal
/// positions carry the rule from the first step; learned ones (initialised at 0.02 beside
/// token embeddings at 1, as LRA does) must first grow. Measured with 64 tokens: sinusoidal
/// 100% after 300 steps, learned 50% after 300 and 100% after 1,500, which is why the pixel
/// tasks stay at chance in the short `quick` runs.
#[test]
fn a_label_that_only_positions_reveal_is_learned_by_both_position_encodings() {
    let length = 32;
    let marker_at = |position: usize| {
        let mut tokens = vec![2u32; length];
        tokens[position] = 3;
        Example { tokens, second: None, label: u32::from(position < length / 2) }
    };
    let every_position: Vec<Example> = (0..length).map(marker_at).collect();
    let splits = Splits {
        train: (0..8).flat_map(|_| every_position.clone()).collect(),
        validation: every_position.clone(),
        test: every_position,
    };
    let device = open(DeviceName::Flex).unwrap();
    let accuracy = |positions: Positions, steps: usize| {
        let mut config = RunConfig::resolve(Task::Pathfinder, Preset::Quick, "transformer", 0, DeviceName::Flex).unwrap();
        config.task.max_length = length;
        config.task.model.positions = positions;
        config.task.training.steps = steps;
        config.task.training.eval_every = steps;
        config.task.training.warmup_steps_untimed = 1;
        config.task.training.schedule = Schedule::Cosine { base: 1e-3, warmup: steps / 10 };
        let (outcome, _) = train(&config, &splits, &device, &mut Silent);
        assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
        outcome.test_accuracy.unwrap()
    };
    assert_eq!(accuracy(Positions::Sinusoidal, 200), 1.0);
    assert_eq!(accuracy(Positions::Learned, 800), 1.0);
}
