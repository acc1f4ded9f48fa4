//! LRA's published figures (Tay et al., ICLR 2021, Tables 1 and 2; later rows from the
//! S4 paper's Table 10 and the LRA tables of the later models' own papers), shown beside ours
//! and always labelled as published.

/// Test accuracy (%) per task, in the order ListOps, Text, Retrieval, Image, Pathfinder,
/// Path-X; `None` is FAIL. `our_name` is the harness's model name where it has the model.
pub struct PublishedAccuracy {
    pub row: &'static str,
    pub our_name: Option<&'static str>,
    pub source: &'static str,
    pub accuracy: [Option<f64>; 6],
}

const LRA: &str = "LRA paper, Table 1";
const S4: &str = "S4 paper, Table 10";
const LRU: &str = "LRU paper (Orvieto et al., ICML 2023), its LRA table";
/// S5's LRA table (the paper's Table 1): the figures agree with the results Papers with Code
/// extracted from the paper and with its abstract (87.4% on average, 98.5% on Path-X).
const S5: &str = "S5 paper (Smith et al., ICLR 2023), Table 1";
const MEGA: &str = "Mega paper (Ma et al., ICLR 2023), Table 2";

pub const TABLE1: &[PublishedAccuracy] = &[
    PublishedAccuracy {
        row: "Transformer",
        our_name: Some(lra_models::BASELINE),
        source: LRA,
        accuracy: [Some(36.37), Some(64.27), Some(57.46), Some(42.44), Some(71.40), None],
    },
    PublishedAccuracy {
        row: "Local Attention",
        our_name: Some("local"),
        source: LRA,
        accuracy: [Some(15.82), Some(52.98), Some(53.39), Some(41.46), Some(66.63), None],
    },
    PublishedAccuracy {
        row: "Sparse Trans.",
        our_name: Some("sparse"),
        source: LRA,
        accuracy: [Some(17.07), Some(63.58), Some(59.59), Some(44.24), Some(71.71), None],
    },
    PublishedAccuracy {
        row: "Longformer",
        our_name: Some("longformer"),
        source: LRA,
        accuracy: [Some(35.63), Some(62.85), Some(56.89), Some(42.22), Some(69.71), None],
    },
    PublishedAccuracy {
        row: "Linformer",
        our_name: Some("linformer"),
        source: LRA,
        accuracy: [Some(35.70), Some(53.94), Some(52.27), Some(38.56), Some(76.34), None],
    },
    PublishedAccuracy {
        row: "Reformer",
        our_name: Some("reformer"),
        source: LRA,
        accuracy: [Some(37.27), Some(56.10), Some(53.40), Some(38.07), Some(68.50), None],
    },
    PublishedAccuracy {
        row: "Sinkhorn Trans.",
        our_name: Some("sinkhorn"),
        source: LRA,
        accuracy: [Some(33.67), Some(61.20), Some(53.83), Some(41.23), Some(67.45), None],
    },
    PublishedAccuracy {
        row: "Synthesizer",
        our_name: Some("synthesizer"),
        source: LRA,
        accuracy: [Some(36.99), Some(61.68), Some(54.67), Some(41.61), Some(69.45), None],
    },
    PublishedAccuracy {
        row: "BigBird",
        our_name: Some("bigbird"),
        source: LRA,
        accuracy: [Some(36.05), Some(64.02), Some(59.29), Some(40.83), Some(74.87), None],
    },
    PublishedAccuracy {
        row: "Linear Trans.",
        our_name: Some("linear"),
        source: LRA,
        accuracy: [Some(16.13), Some(65.90), Some(53.09), Some(42.34), Some(75.30), None],
    },
    PublishedAccuracy {
        row: "Performer",
        our_name: Some("performer"),
        source: LRA,
        accuracy: [Some(18.01), Some(65.40), Some(53.82), Some(42.77), Some(77.05), None],
    },
    PublishedAccuracy {
        row: "FNet",
        our_name: Some("fnet"),
        source: S4,
        accuracy: [Some(35.33), Some(65.11), Some(59.61), Some(38.67), Some(77.80), None],
    },
    PublishedAccuracy {
        row: "Nyströmformer",
        our_name: Some("nystromformer"),
        source: S4,
        accuracy: [Some(37.15), Some(65.52), Some(79.56), Some(41.58), Some(70.94), None],
    },
    PublishedAccuracy {
        row: "Luna-256",
        our_name: Some("luna"),
        source: S4,
        accuracy: [Some(37.25), Some(64.57), Some(79.29), Some(47.38), Some(77.72), None],
    },
    PublishedAccuracy {
        row: "S4 (updated; not S4D)",
        our_name: None,
        source: S4,
        accuracy: [Some(59.60), Some(86.82), Some(90.90), Some(88.65), Some(94.20), Some(96.35)],
    },
    PublishedAccuracy {
        row: "LRU",
        our_name: Some("lru"),
        source: LRU,
        accuracy: [Some(60.2), Some(89.4), Some(89.9), Some(89.0), Some(95.1), Some(94.2)],
    },
    PublishedAccuracy {
        row: "S5",
        our_name: Some("s5"),
        source: S5,
        accuracy: [Some(62.15), Some(89.31), Some(91.40), Some(88.00), Some(95.33), Some(98.58)],
    },
    // Mega with full attention: this harness runs Mega-chunk by default (the row below);
    // `"chunk": null` in its settings gives this form.
    PublishedAccuracy {
        row: "Mega",
        our_name: None,
        source: MEGA,
        accuracy: [Some(63.14), Some(90.43), Some(91.25), Some(90.44), Some(96.01), Some(97.98)],
    },
    PublishedAccuracy {
        row: "Mega-chunk",
        our_name: Some("mega"),
        source: MEGA,
        accuracy: [Some(58.76), Some(90.19), Some(90.97), Some(85.80), Some(94.41), Some(93.81)],
    },
];

/// LRA's chance rates (%), same task order; Path-X is binary.
pub const CHANCE: [f64; 6] = [10.0, 50.0, 50.0, 10.0, 50.0, 50.0];

/// Table 2: steps per second at 1K, 2K, 3K, 4K and peak memory (GB) per device, byte-level
/// Text, batch 32, on 4x4 TPU v3. Sparse Transformer and Longformer were not timed.
pub struct PublishedSpeed {
    pub row: &'static str,
    pub our_name: &'static str,
    pub steps_per_second: [f64; 4],
    pub memory_gb: [f64; 4],
}

pub const TABLE2_LENGTHS: [usize; 4] = [1024, 2048, 3072, 4096];

pub const TABLE2: &[PublishedSpeed] = &[
    PublishedSpeed {
        row: "Transformer",
        our_name: lra_models::BASELINE,
        steps_per_second: [8.1, 4.9, 2.3, 1.4],
        memory_gb: [0.85, 2.65, 5.51, 9.48],
    },
    PublishedSpeed {
        row: "Local Attention",
        our_name: "local",
        steps_per_second: [9.2, 8.4, 7.4, 7.4],
        memory_gb: [0.42, 0.76, 1.06, 1.37],
    },
    PublishedSpeed {
        row: "Linformer",
        our_name: "linformer",
        steps_per_second: [9.3, 9.1, 8.5, 7.7],
        memory_gb: [0.37, 0.55, 0.99, 0.99],
    },
    PublishedSpeed {
        row: "Reformer",
        our_name: "reformer",
        steps_per_second: [4.4, 2.2, 1.5, 1.1],
        memory_gb: [0.48, 0.99, 1.53, 2.28],
    },
    PublishedSpeed {
        row: "Sinkhorn Trans.",
        our_name: "sinkhorn",
        steps_per_second: [9.1, 7.9, 6.6, 5.3],
        memory_gb: [0.47, 0.83, 1.13, 1.48],
    },
    PublishedSpeed {
        row: "Synthesizer",
        our_name: "synthesizer",
        steps_per_second: [8.7, 5.7, 6.6, 1.9],
        memory_gb: [0.65, 1.98, 4.09, 6.99],
    },
    PublishedSpeed {
        row: "BigBird",
        our_name: "bigbird",
        steps_per_second: [7.4, 3.9, 2.7, 1.5],
        memory_gb: [0.77, 1.49, 2.18, 2.88],
    },
    PublishedSpeed {
        row: "Linear Trans.",
        our_name: "linear",
        steps_per_second: [9.1, 9.3, 8.6, 7.8],
        memory_gb: [0.37, 0.57, 0.80, 1.03],
    },
    PublishedSpeed {
        row: "Performer",
        our_name: "performer",
        steps_per_second: [9.5, 9.4, 8.7, 8.0],
        memory_gb: [0.37, 0.59, 0.82, 1.06],
    },
];

/// LRA's Table 1 row of `model`, a model's name or its label in the report: both forms of
/// a mechanism ("as LRA ran it", "as in the paper") stand beside the one published figure.
pub fn accuracy_of(model: &str) -> Option<&'static PublishedAccuracy> {
    let name = crate::records::run_record::model_of_label(model);
    TABLE1.iter().find(|p| p.our_name == Some(name))
}

/// LRA's Table 2 row of `model` (a name or a label, as [`accuracy_of`]).
pub fn speed_of(model: &str) -> Option<&'static PublishedSpeed> {
    let name = crate::records::run_record::model_of_label(model);
    TABLE2.iter().find(|p| p.our_name == name)
}

/// The published speed-up and memory ratio of `model` (a name or a label) over the
/// Transformer at `length`.
pub fn relative(model: &str, length: usize) -> Option<(f64, f64)> {
    let i = TABLE2_LENGTHS.iter().position(|&l| l == length)?;
    let row = speed_of(model)?;
    let base = speed_of(lra_models::BASELINE)?;
    Some((row.steps_per_second[i] / base.steps_per_second[i], row.memory_gb[i] / base.memory_gb[i]))
}
