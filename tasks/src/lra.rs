//! LRA's configuration as its released code ran it, per task and per model, and where
//! each value comes from (google-research/long-range-arena; paths below are under its
//! `lra_benchmarks/`).
//!
//! The task's own values at `lra` (the Transformer's configuration of the task) are in
//! [`crate::presets`]; [`task_settings`] says where each comes from. [`model_settings`]
//! holds what differs per model: the values of the per-model config files, and the
//! defaults inside each model's code, since a config key that `train.py` never hands to
//! the model has no effect (the model's default ran). Where we differ from LRA on
//! purpose, the entry says why ([`Origin::Ours`]).

use crate::Task;

/// Where a value of the `lra` preset comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A file of LRA's released code, `path:line` under `lra_benchmarks/`.
    Lra(&'static str),
    /// Ours, differing from LRA on purpose: why.
    Ours(&'static str),
}

/// One value of a run's configuration at `lra`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Dotted path in `config.json`: `task.model.layers`, `attention.local.block_size`.
    pub path: &'static str,
    /// The value as JSON; `None` where the configuration already holds the value (the
    /// entry then only says where it comes from, or how we differ).
    pub value: Option<&'static str>,
    pub origin: Origin,
}

/// A value set by LRA's code.
const fn lra(path: &'static str, value: &'static str, source: &'static str) -> Setting {
    Setting { path, value: Some(value), origin: Origin::Lra(source) }
}

/// A value the task's configuration already holds, and the LRA file it comes from.
const fn from(path: &'static str, source: &'static str) -> Setting {
    Setting { path, value: None, origin: Origin::Lra(source) }
}

/// A value of ours where LRA's differs or could not run, and why.
const fn ours(path: &'static str, value: &'static str, why: &'static str) -> Setting {
    Setting { path, value: Some(value), origin: Origin::Ours(why) }
}

/// A difference from LRA that no value of the configuration can express.
const fn differs(path: &'static str, why: &'static str) -> Setting {
    Setting { path, value: None, origin: Origin::Ours(why) }
}

/// Where the task's own values at `lra` come from, and where we differ on purpose.
pub fn task_settings(task: Task) -> Vec<Setting> {
    let mut settings = match task {
        Task::Listops => vec![
            from("task.max_length", "listops/configs/base_listops_config.py:40"),
            from("task.model.d_model", "listops/configs/base_listops_config.py:45"),
            from("task.model.heads", "listops/configs/base_listops_config.py:46"),
            from("task.model.layers", "listops/configs/base_listops_config.py:47"),
            from("task.model.qkv_dim", "listops/configs/base_listops_config.py:48"),
            from("task.model.d_ff", "listops/configs/base_listops_config.py:49"),
            from("task.model.d_head_mlp", "models/layers/common_layers.py:191 (the head's width is mlp_dim)"),
            from("task.model.pooling", "models/transformer/transformer.py:113 (listops/train.py does not forward pooling_mode)"),
            from("task.training.batch_size", "listops/configs/base_listops_config.py:22"),
            from("task.training.eval_every", "listops/configs/base_listops_config.py:23"),
            from("task.training.steps", "listops/configs/base_listops_config.py:24"),
            from("task.training.schedule.base", "listops/configs/base_listops_config.py:26"),
            from("task.training.schedule.warmup", "utils/train_utils.py:97 (listops/train.py:216 passes no warmup)"),
            from("task.training.weight_decay", "listops/configs/base_listops_config.py:27"),
            from("task.data.train", "data/listops.py:28"),
            from("task.data.validation", "data/listops.py:31"),
            from("task.data.test", "data/listops.py:34"),
            from("task.data.max_depth", "data/listops.py:37"),
            from("task.data.max_args", "data/listops.py:40"),
            from("task.data.max_length", "data/listops.py:43"),
            from("task.data.min_length", "data/listops.py:46"),
        ],
        Task::Text => vec![
            from("task.max_length", "text_classification/configs/base_tc_config.py:43"),
            from("task.model.d_model", "text_classification/configs/base_tc_config.py:45"),
            from("task.model.heads", "text_classification/configs/base_tc_config.py:46"),
            from("task.model.layers", "text_classification/configs/base_tc_config.py:47"),
            from("task.model.qkv_dim", "text_classification/configs/base_tc_config.py:48"),
            from("task.model.d_ff", "text_classification/configs/base_tc_config.py:49"),
            from("task.model.d_head_mlp", "models/layers/common_layers.py:191 (the head's width is mlp_dim)"),
            from("task.model.pooling", "text_classification/configs/base_tc_config.py:41"),
            from("task.training.batch_size", "text_classification/configs/base_tc_config.py:23"),
            from("task.training.eval_every", "text_classification/configs/base_tc_config.py:24"),
            from("task.training.steps", "text_classification/configs/base_tc_config.py:25"),
            from("task.training.schedule.base", "text_classification/configs/base_tc_config.py:27"),
            from("task.training.schedule.warmup", "text_classification/configs/base_tc_config.py:40"),
            from("task.training.weight_decay", "text_classification/configs/base_tc_config.py:28"),
        ],
        Task::Retrieval => vec![
            from("task.max_length", "matching/configs/base_match_config.py:41"),
            from("task.model.d_model", "matching/configs/base_match_config.py:46"),
            from("task.model.heads", "matching/configs/base_match_config.py:47"),
            from("task.model.layers", "matching/configs/base_match_config.py:48"),
            from("task.model.qkv_dim", "matching/configs/base_match_config.py:49"),
            from("task.model.d_ff", "matching/configs/base_match_config.py:50"),
            from("task.model.d_head_mlp", "models/layers/common_layers.py:191 (the head's width is mlp_dim)"),
            from("task.model.pooling", "matching/configs/base_match_config.py:43"),
            from("task.training.batch_size", "matching/configs/base_match_config.py:23"),
            from("task.training.eval_every", "matching/configs/base_match_config.py:24"),
            from("task.training.steps", "matching/configs/base_match_config.py:25"),
            from("task.training.schedule.base", "matching/configs/base_match_config.py:27"),
            from("task.training.schedule.warmup", "matching/configs/base_match_config.py:40 (longer than the run, as released)"),
            from("task.training.weight_decay", "matching/configs/base_match_config.py:28"),
        ],
        Task::Image => vec![
            from("task.model.layers", "image/configs/cifar10/transformer_base.py:24"),
            from("task.model.pooling", "image/configs/cifar10/transformer_base.py:25"),
            from("task.model.d_model", "image/configs/cifar10/transformer_base.py:26"),
            from("task.model.d_ff", "image/configs/cifar10/transformer_base.py:27"),
            from("task.model.d_head_mlp", "image/configs/cifar10/transformer_base.py:27 (the head's width is mlp_dim)"),
            from("task.model.heads", "image/configs/cifar10/transformer_base.py:28"),
            from("task.model.qkv_dim", "image/configs/cifar10/transformer_base.py:29"),
            from("task.model.dropout", "image/configs/cifar10/base_cifar10_config.py:52"),
            from("task.model.attention_dropout", "image/configs/cifar10/base_cifar10_config.py:53"),
            from("task.model.positions", "image/configs/cifar10/base_cifar10_config.py:55"),
            from("task.training.batch_size", "image/configs/cifar10/base_cifar10_config.py:27"),
            from("task.training.eval_every", "image/configs/cifar10/base_cifar10_config.py:28"),
            from("task.training.steps", "image/configs/cifar10/base_cifar10_config.py:29"),
            from("task.training.weight_decay", "image/configs/cifar10/base_cifar10_config.py:31"),
            from("task.training.gradient_clip_norm", "image/configs/cifar10/base_cifar10_config.py:32"),
            from("task.training.schedule.base", "image/configs/cifar10/base_cifar10_config.py:40"),
            from("task.training.schedule.warmup", "image/configs/cifar10/base_cifar10_config.py:42"),
            from("task.data.validation", "image/input_pipeline.py:65-67 (train[90%:])"),
            from("task.pixel_zero_is_padding", "models/transformer/transformer.py:148 (inputs > 0)"),
        ],
        Task::Pathfinder => vec![
            from("task.model.layers", "image/configs/pathfinder32/transformer_base.py:24"),
            from("task.model.heads", "image/configs/pathfinder32/transformer_base.py:25"),
            from("task.model.d_model", "image/configs/pathfinder32/transformer_base.py:26"),
            from("task.model.dropout", "image/configs/pathfinder32/transformer_base.py:27"),
            from("task.model.qkv_dim", "image/configs/pathfinder32/transformer_base.py:28"),
            from("task.model.d_ff", "image/configs/pathfinder32/transformer_base.py:29"),
            from("task.model.d_head_mlp", "image/configs/pathfinder32/transformer_base.py:29 (the head's width is mlp_dim)"),
            from("task.model.attention_dropout", "image/configs/pathfinder32/base_pathfinder32_config.py:53"),
            from("task.model.pooling", "image/configs/pathfinder32/base_pathfinder32_config.py:54"),
            from("task.model.positions", "image/configs/pathfinder32/base_pathfinder32_config.py:55"),
            from("task.training.batch_size", "image/configs/pathfinder32/base_pathfinder32_config.py:26"),
            from("task.training.eval_every", "image/configs/pathfinder32/base_pathfinder32_config.py:27"),
            from("task.training.steps", "image/configs/pathfinder32/base_pathfinder32_config.py:28"),
            from("task.training.weight_decay", "image/configs/pathfinder32/base_pathfinder32_config.py:30"),
            from("task.training.gradient_clip_norm", "image/configs/pathfinder32/base_pathfinder32_config.py:31"),
            from("task.training.schedule.base", "image/configs/pathfinder32/base_pathfinder32_config.py:39"),
            from("task.training.schedule.warmup", "image/configs/pathfinder32/base_pathfinder32_config.py:41"),
            from("task.data.count", "image/configs/pathfinder32/base_pathfinder32_config.py:19-20 (160,000 + 20,000 + 20,000)"),
            from("task.pixel_zero_is_padding", "models/transformer/transformer.py:148 (inputs > 0)"),
        ],
        Task::Pathx => vec![
            from("task.model.layers", "image/configs/pathfinder128/base_pathfinder128_config.py:46"),
            from("task.model.heads", "image/configs/pathfinder128/base_pathfinder128_config.py:47"),
            from("task.model.d_model", "image/configs/pathfinder128/base_pathfinder128_config.py:48"),
            from("task.model.dropout", "image/configs/pathfinder128/base_pathfinder128_config.py:49"),
            from("task.model.qkv_dim", "image/configs/pathfinder128/base_pathfinder128_config.py:51"),
            from("task.model.d_ff", "image/configs/pathfinder128/base_pathfinder128_config.py:52"),
            from(
                "task.model.d_head_mlp",
                "image/configs/pathfinder128/base_pathfinder128_config.py:52 (the head's width is mlp_dim)",
            ),
            from("task.model.attention_dropout", "image/configs/pathfinder128/base_pathfinder128_config.py:53"),
            from("task.model.pooling", "image/configs/pathfinder128/base_pathfinder128_config.py:54"),
            from("task.model.positions", "image/configs/pathfinder128/base_pathfinder128_config.py:55"),
            from("task.training.batch_size", "image/configs/pathfinder128/base_pathfinder128_config.py:26"),
            from("task.training.eval_every", "image/configs/pathfinder128/base_pathfinder128_config.py:27"),
            from("task.training.steps", "image/configs/pathfinder128/base_pathfinder128_config.py:28"),
            from("task.training.weight_decay", "image/configs/pathfinder128/base_pathfinder128_config.py:30"),
            from("task.training.gradient_clip_norm", "image/configs/pathfinder128/base_pathfinder128_config.py:31"),
            from("task.training.schedule.base", "image/configs/pathfinder128/base_pathfinder128_config.py:39"),
            from("task.training.schedule.warmup", "image/configs/pathfinder128/base_pathfinder128_config.py:41"),
            from("task.pixel_zero_is_padding", "models/transformer/transformer.py:148 (inputs > 0)"),
        ],
    };
    let (optimiser, factors) = match task {
        Task::Listops => ("listops/train.py:73-77", "utils/train_utils.py:95 (listops/train.py:216 passes no factors)"),
        Task::Text => ("text_classification/train.py:74-75", "text_classification/configs/base_tc_config.py:39"),
        Task::Retrieval => ("matching/train.py:75-76", "matching/configs/base_match_config.py:39"),
        Task::Image => ("image/train.py:71-72", "image/configs/cifar10/base_cifar10_config.py:41"),
        Task::Pathfinder => ("image/train.py:71-72", "image/configs/pathfinder32/base_pathfinder32_config.py:40"),
        Task::Pathx => ("image/train.py:71-72", "image/configs/pathfinder128/base_pathfinder128_config.py:40"),
    };
    settings.extend([
        from("task.training.beta_1", optimiser),
        from("task.training.beta_2", optimiser),
        from("task.training.epsilon", optimiser),
        from("task.training.schedule.kind", factors),
    ]);
    match task {
        Task::Image | Task::Pathfinder | Task::Pathx => {
            settings.push(from("task.max_length", "image/train.py:336-341 (max_len = height * width)"))
        }
        _ => {}
    }
    if matches!(task, Task::Pathfinder | Task::Pathx) {
        settings
            .push(from("task.data.difficulty", "image/task_registry.py:32-36, 62-66 (pathfinder32_hard, pathfinder128_hard)"));
    }
    // Sequence tasks: dropout and positions are the encoders' defaults (no config sets them).
    if matches!(task, Task::Listops | Task::Text | Task::Retrieval) {
        settings.extend([
            from("task.model.dropout", "models/transformer/transformer.py:109"),
            from("task.model.attention_dropout", "models/transformer/transformer.py:110"),
            from("task.model.positions", "models/layers/common_layers.py:111-114 (learn_pos_emb is never set)"),
        ]);
    }
    settings.extend(shared_differences(task));
    settings
}

/// Where we differ from LRA's code for every model of `task`.
fn shared_differences(task: Task) -> Vec<Setting> {
    let mut settings = vec![differs(
        "task.model.pooling",
        "MEAN pooling here averages the real tokens only; LRA's averages every position, padding included \
             (models/layers/common_layers.py:181-182)",
    )];
    match task {
        Task::Text => settings.push(differs(
            "task.data",
            "validation is 10% of the training reviews (seeded); LRA validated on the IMDb test split, the split it \
             reports (text_classification/input_pipeline.py:44-47), which selects on the test set",
        )),
        Task::Retrieval => settings.push(differs(
            "task.model",
            "LRA's released Retrieval cannot run (matching/train.py:199-200 calls a single-input encoder with two \
             documents); ours is the paper's siamese encoder with the head over [u, v, u * v, u - v]",
        )),
        Task::Image | Task::Pathfinder | Task::Pathx => settings.push(differs(
            "task.pixel_zero_is_padding",
            "LRA's CLS vector takes the padding mask of the first pixel (models/transformer/transformer.py:166-167); \
             ours is never padding",
        )),
        Task::Listops => {}
    }
    if matches!(task, Task::Image | Task::Pathfinder | Task::Pathx) {
        settings.push(differs(
            "task.training.schedule",
            "LRA's cosine runs over all the steps, offset by the warm-up (utils/train_utils.py:123-149), so it ends \
             near but not at zero; ours decays over the steps after the warm-up, to zero",
        ));
    }
    settings
}

/// How the `quick` preset's CPU form of `task` departs from LRA's task, and why: each
/// is a task designed for a few hundred steps on a CPU, measured to be learnable there
/// while needing what LRA's task needs (`lra config --explain` lists them).
pub fn cpu_form(task: Task) -> Vec<Setting> {
    let mut settings = vec![differs(
        "task.model.positions",
        "the CPU task's own positions, not the model's LRA ones: a CPU form is designed with them (the image task \
         stays at chance with learned positions in its budget)",
    )];
    match task {
        Task::Listops => settings.extend([
            differs(
                "task.data",
                "short expressions (depth 4, at most 5 arguments, 11-63 tokens) in place of LRA's 500-2,000: the \
                 same hierarchical evaluation, in a budget of a few hundred steps",
            ),
            differs("task.training.schedule", "cosine at 3e-3 for 300 steps of 32 (1e-3 for 200: 26.6%)"),
        ]),
        Task::Text => settings.extend([
            differs(
                "task.data",
                "generated, not IMDb: 128-byte documents of filler words with 9 sentiment words planted at random \
                 word positions; the label is the majority sentiment (leads of 1 to 9 words), so no tenth of a \
                 document decides it. LRA's reviews need 20k steps at batch 32 for 64%",
            ),
            differs("task.max_length", "128 bytes (LRA: 1,000; its appendix treats the length as free)"),
            differs("task.training.schedule", "cosine at 3e-3 for 200 steps: 1e-3 learns too slowly in the budget"),
        ]),
        Task::Retrieval => settings.extend([
            differs(
                "task.data",
                "generated, not AAN: pairs of 128-byte documents, each with six words of one of four topics; the \
                 label says whether the two share their topic, which neither document alone decides",
            ),
            differs("task.max_length", "128 bytes per document (LRA: 4,000)"),
            differs("task.training.schedule", "cosine at 3e-3 for 200 steps"),
        ]),
        Task::Image => settings.extend([
            differs(
                "task.data",
                "generated, not CIFAR-10: ten shapes of exactly eight pixels at one of four grey levels on a 12x12 \
                 black square, so the pixel histogram says nothing about the class and the shape must be read from \
                 pixels on different rows (datasets/src/shapes.rs)",
            ),
            differs("task.training.schedule", "cosine at 3e-3 for 400 steps of 32: at 1e-3 the image task stays near chance"),
        ]),
        Task::Pathfinder => settings.extend([
            differs(
                "task.data",
                "generated on a 12x12 grid, not 32x32: Pathfinder-32's generator (dashes of 2 pixels) with target \
                 contours of 3 paddles and one distractor snake; still two equal targets in every image, so positives \
                 and negatives have the same pixel statistics. At 32x32 (or shrunk to 16x16) every model stays at \
                 chance in a CPU budget",
            ),
            differs("task.max_length", "144 pixels (LRA: 1,024)"),
            differs("task.training.schedule", "cosine at 3e-3 for 600 steps of 32 (LRA: 1e-3 for 62k steps of 512)"),
        ]),
        Task::Pathx => settings.push(differs("task.data", "400 images of the hard difficulty: a smoke test, not a task")),
    }
    settings
}

/// What LRA's released code ran for `model` on `task` beyond the task's own values:
/// the defaults inside the model's code, then the model's config file (later entries
/// win where both set a path).
pub fn model_settings(task: Task, model: &str) -> Vec<Setting> {
    let mut settings = model_code(task, model);
    settings.extend(config_files(task, model));
    settings.extend(decisions(task, model));
    settings.extend(model_fixed(model));
    settings
}

/// The values a model's own code fixes whatever its configuration says, and why. Every
/// preset's configuration holds them (not only `lra`'s), and a configuration that says
/// otherwise is refused, so that it says what the model computes.
pub fn model_fixed(model: &str) -> Vec<Setting> {
    match model {
        // The control's classifier (models/src/bag.rs, ClassifierConfig::computed).
        "bag" => vec![
            ours(
                "task.model.pooling",
                "\"mean\"",
                "the control has no attention, so a CLS vector would see no token: it pools by the mean of the real \
                 tokens, whatever the task's pooling (models/src/bag.rs)",
            ),
            ours(
                "task.model.positions",
                "\"none\"",
                "the control adds no positions: a bag of token features, to show what a task gives away without \
                 relating positions (models/src/bag.rs)",
            ),
        ],
        _ => Vec::new(),
    }
}

/// The settings each model's code fixes (its defaults, which no `train.py` overrides).
fn model_code(task: Task, model: &str) -> Vec<Setting> {
    let no_attention_dropout = |source| lra("task.model.attention_dropout", "0.0", source);
    // What each mechanism's lra variant computes is in its file under models/src/attention/.
    let variant = |mechanism: &'static str, source: &'static str| lra(mechanism, "\"lra\"", source);
    match model {
        "local" => vec![
            variant("attention.local.variant", "models/local/local_attention.py:228-413 (strided blocks)"),
            lra("attention.local.block_size", "50", "models/local/local.py:114"),
        ],
        "sparse" => vec![
            variant("attention.sparse.variant", "models/sparse_transformer/sparse_attention.py:63-95 (one causal union)"),
            lra("attention.sparse.stride", "50", "utils/train_utils.py:75-78 (Fixed1Pattern(block_size=50))"),
            lra("attention.sparse.summary", "10", "utils/train_utils.py:75-78 (Fixed2Pattern(block_size=50, c=10))"),
        ],
        "longformer" => vec![
            variant("attention.longformer.variant", "models/longformer/longformer_attention.py:59-66 (255 left, 256 right)"),
            lra("attention.longformer.window", "256", "models/longformer/longformer.py:99 (a window of 512)"),
            lra("attention.longformer.global_tokens", "0", "models/longformer/longformer.py:100 (global_mask=None)"),
        ],
        "linformer" => vec![
            variant("attention.linformer.variant", "models/linformer/linformer_attention.py:127-164 (one shared E)"),
            lra("attention.linformer.projected_length", "16", "models/linformer/linformer_attention.py:47"),
        ],
        "reformer" => vec![
            variant("attention.reformer.variant", "models/reformer/reformer_attention.py:97-339"),
            lra("attention.reformer.hash_rounds", "1", "models/reformer/reformer_attention.py:244"),
            lra("attention.reformer.buckets", "10", "models/reformer/reformer_attention.py:245"),
            lra(
                "attention.reformer.chunk_size",
                "10",
                "models/reformer/reformer_attention.py:242 (chunk_len, the unit it pads to; lines 145, 176-178 cut \
                 hash_rounds x buckets chunks)",
            ),
            no_attention_dropout("models/reformer/reformer_attention.py:335-336 (no dropout)"),
        ],
        "sinkhorn" => vec![
            variant("attention.sinkhorn.variant", "models/sinkhorn_transformer/sinkhorn_attention.py:340-506"),
            lra("attention.sinkhorn.block_size", "50", "models/sinkhorn_transformer/sinkhorn_transformer.py:114"),
            lra(
                "attention.sinkhorn.sinkhorn_iterations",
                "0",
                "models/sinkhorn_transformer/sinkhorn_attention.py:217, 380 (sort_activation='softmax': no iterations)",
            ),
            lra("attention.sinkhorn.temperature", "1.0", "models/sinkhorn_transformer/sinkhorn_attention.py:380"),
            lra("task.model.pooling", "\"mean\"", "models/sinkhorn_transformer/sinkhorn_transformer.py:117"),
        ],
        "synthesizer" => vec![
            variant("attention.synthesizer.variant", "models/synthesizer/synthesizer.py:38-39 (ignore_dot_product=False)"),
            lra("attention.synthesizer.kind", "\"random\"", "models/synthesizer/synthesizer.py:39, 117 (synthesizer_mode)"),
        ],
        "bigbird" => vec![
            variant("attention.bigbird.variant", "models/bigbird/bigbird_attention.py:24-654"),
            lra("attention.bigbird.block_size", "64", "models/bigbird/bigbird.py:20"),
            lra("attention.bigbird.window_blocks", "3", "models/bigbird/bigbird_attention.py:210-217"),
            lra("attention.bigbird.random_blocks", "3", "models/bigbird/bigbird_attention.py:415"),
            lra(
                "attention.bigbird.global_blocks",
                "1",
                "models/bigbird/bigbird_attention.py:171-179, 297-306 (the first block and the last)",
            ),
            no_attention_dropout("models/bigbird/bigbird_attention.py:633-640 (no dropout on the sparse path)"),
        ],
        "linear" => vec![
            variant("attention.linear.variant", "models/linear_transformer/linear_attention.py:137-142 (padding unmasked)"),
            no_attention_dropout("models/linear_transformer/linear_attention.py:53-56 (dropout deleted)"),
        ],
        "performer" if task == Task::Listops => vec![
            variant("attention.performer.variant", "models/performer/performer_attention.py:550-705"),
            lra("attention.performer.kernel", "\"softmax\"", "listops/configs/performer_base.py:25"),
            lra("attention.performer.features", "2", "listops/configs/performer_base.py:25-27"),
            lra("attention.performer.redraw_every", "1", "models/performer/performer_attention.py:579-584 (every call)"),
            no_attention_dropout("models/performer/performer_attention.py:550-705 (dropout unused)"),
        ],
        "performer" => vec![
            variant("attention.performer.variant", "models/performer/performer_attention.py:550-705"),
            lra("attention.performer.kernel", "\"relu\"", "models/performer/performer.py:31 (generalized, deterministic)"),
            no_attention_dropout("models/performer/performer_attention.py:550-705 (dropout unused)"),
        ],
        "transformer" => Vec::new(),
        "bag" => vec![differs(
            "model",
            "the control, not in LRA's release: the task's Transformer configuration with no attention and no positions, \
             mean-pooled",
        )],
        _ => vec![differs("model", "not in LRA's release: the task's Transformer configuration, our mechanism")],
    }
}

/// Values LRA's code implies but cannot run as released, and what we chose.
fn decisions(task: Task, model: &str) -> Vec<Setting> {
    match (task, model) {
        // LRA's Reformer replaces the configured width by the input's
        // (models/reformer/reformer_attention.py:301).
        (Task::Image | Task::Pathfinder, "reformer") => {
            vec![lra("task.model.qkv_dim", "64", "models/reformer/reformer_attention.py:301 (qkv = emb_dim)")]
        }
        (Task::Pathx, "reformer") => {
            vec![lra("task.model.qkv_dim", "32", "models/reformer/reformer_attention.py:301 (qkv = emb_dim)")]
        }
        (Task::Text | Task::Retrieval | Task::Image, "sinkhorn") => vec![ours(
            "task.model.pooling",
            "\"mean\"",
            "LRA hands CLS pooling to its Sinkhorn, which refuses it (models/sinkhorn_transformer/\
             sinkhorn_transformer.py:194-200): MEAN, the only pooling it supports",
        )],
        (Task::Image, "bigbird") => vec![ours(
            "task.model.heads",
            "4",
            "image/configs/cifar10/bigbird_base.py:28 sets `num_head = 4`, a typo that stops the run; 4 heads, as meant",
        )],
        _ => Vec::new(),
    }
}

/// The values of the per-model config files of the image tasks
/// (`image/configs/<task>/<model>_base.py`, over the task's `base_*_config.py`) that
/// differ from the task's Transformer.
fn config_files(task: Task, model: &str) -> Vec<Setting> {
    match (task, model) {
        (Task::Image, "local") => vec![
            lra("attention.local.block_size", "64", "image/configs/cifar10/local_base.py:23"),
            lra("task.model.heads", "2", "image/configs/cifar10/local_base.py:28"),
            lra("task.model.pooling", "\"mean\"", "image/configs/cifar10/local_base.py:29"),
        ],
        (Task::Image, "longformer") => vec![
            lra("task.model.layers", "4", "image/configs/cifar10/longformer_base.py:23"),
            lra("task.model.heads", "4", "image/configs/cifar10/longformer_base.py:27"),
            lra("task.model.pooling", "\"mean\"", "image/configs/cifar10/longformer_base.py:28"),
        ],
        (Task::Image, "reformer") => vec![
            lra("task.model.layers", "4", "image/configs/cifar10/reformer_base.py:23"),
            lra("task.model.d_model", "64", "image/configs/cifar10/reformer_base.py:24"),
            lra("task.model.qkv_dim", "32", "image/configs/cifar10/reformer_base.py:25"),
            lra("task.model.d_ff", "64", "image/configs/cifar10/reformer_base.py:26"),
            lra("task.model.d_head_mlp", "64", "image/configs/cifar10/reformer_base.py:26"),
        ],
        (Task::Image, "sinkhorn") => vec![
            lra("task.model.d_model", "32", "image/configs/cifar10/base_cifar10_config.py:47"),
            lra("task.model.heads", "1", "image/configs/cifar10/base_cifar10_config.py:48"),
            lra("task.model.qkv_dim", "32", "image/configs/cifar10/base_cifar10_config.py:50"),
            lra("task.model.d_ff", "64", "image/configs/cifar10/base_cifar10_config.py:51"),
            lra("task.model.d_head_mlp", "64", "image/configs/cifar10/base_cifar10_config.py:51"),
            lra("attention.sinkhorn.block_size", "64", "image/configs/cifar10/sinkhorn_base.py:23"),
            lra("task.model.dropout", "0.1", "image/configs/cifar10/sinkhorn_base.py:26"),
            lra("task.training.weight_decay", "0.7", "image/configs/cifar10/sinkhorn_base.py:25"),
        ],
        (Task::Image, "bigbird") => vec![lra("attention.bigbird.block_size", "64", "image/configs/cifar10/bigbird_base.py:23")],
        (Task::Pathfinder, "local") => vec![
            lra("attention.local.block_size", "64", "image/configs/pathfinder32/local_base.py:23"),
            lra("task.model.layers", "2", "image/configs/pathfinder32/local_base.py:25"),
            lra("task.model.d_model", "64", "image/configs/pathfinder32/local_base.py:27"),
            lra("task.model.dropout", "0.1", "image/configs/pathfinder32/local_base.py:28"),
            lra("task.model.qkv_dim", "32", "image/configs/pathfinder32/local_base.py:29"),
            lra("task.model.d_ff", "64", "image/configs/pathfinder32/local_base.py:30"),
            lra("task.model.d_head_mlp", "64", "image/configs/pathfinder32/local_base.py:30"),
        ],
        (Task::Pathfinder, "sparse") => vec![
            lra("task.model.layers", "1", "image/configs/pathfinder32/sparse_transformer_base.py:24"),
            lra("task.model.heads", "8", "image/configs/pathfinder32/sparse_transformer_base.py:25"),
        ],
        (Task::Pathfinder, "longformer") => vec![
            lra("task.model.layers", "2", "image/configs/pathfinder32/longformer_base.py:24"),
            lra("task.model.heads", "2", "image/configs/pathfinder32/longformer_base.py:25"),
            lra("task.model.dropout", "0.1", "image/configs/pathfinder32/longformer_base.py:27"),
        ],
        (Task::Pathfinder, "linformer") => vec![
            lra("task.model.layers", "1", "image/configs/pathfinder32/linformer_base.py:24"),
            lra("task.model.heads", "2", "image/configs/pathfinder32/linformer_base.py:28"),
        ],
        (Task::Pathfinder, "reformer") => vec![
            lra("task.model.layers", "2", "image/configs/pathfinder32/reformer_base.py:24"),
            lra("task.model.heads", "8", "image/configs/pathfinder32/reformer_base.py:25"),
            lra("task.model.d_model", "64", "image/configs/pathfinder32/reformer_base.py:26"),
            lra("task.model.qkv_dim", "32", "image/configs/pathfinder32/reformer_base.py:28"),
            lra("task.model.d_ff", "64", "image/configs/pathfinder32/reformer_base.py:29"),
            lra("task.model.d_head_mlp", "64", "image/configs/pathfinder32/reformer_base.py:29"),
        ],
        (Task::Pathfinder, "sinkhorn") => vec![
            lra("attention.sinkhorn.block_size", "64", "image/configs/pathfinder32/sinkhorn_base.py:23"),
            lra("task.model.layers", "2", "image/configs/pathfinder32/sinkhorn_base.py:25"),
            lra("task.model.d_ff", "64", "image/configs/pathfinder32/sinkhorn_base.py:30"),
            lra("task.model.d_head_mlp", "64", "image/configs/pathfinder32/sinkhorn_base.py:30"),
        ],
        (Task::Pathfinder, "synthesizer") => vec![
            lra("task.model.layers", "2", "image/configs/pathfinder32/synthesizer_base.py:25"),
            lra("task.model.d_model", "64", "image/configs/pathfinder32/synthesizer_base.py:27"),
            lra("task.model.qkv_dim", "32", "image/configs/pathfinder32/synthesizer_base.py:29"),
            lra("task.model.d_ff", "64", "image/configs/pathfinder32/synthesizer_base.py:30"),
            lra("task.model.d_head_mlp", "64", "image/configs/pathfinder32/synthesizer_base.py:30"),
        ],
        (Task::Pathfinder, "bigbird") => vec![
            lra("attention.bigbird.block_size", "64", "image/configs/pathfinder32/bigbird_base.py:23"),
            lra("task.model.heads", "2", "image/configs/pathfinder32/bigbird_base.py:26"),
            lra("task.model.d_model", "64", "image/configs/pathfinder32/bigbird_base.py:27"),
            lra("task.model.qkv_dim", "32", "image/configs/pathfinder32/bigbird_base.py:29"),
            lra("task.model.d_ff", "64", "image/configs/pathfinder32/bigbird_base.py:30"),
            lra("task.model.d_head_mlp", "64", "image/configs/pathfinder32/bigbird_base.py:30"),
        ],
        (Task::Pathfinder, "linear") => vec![
            lra("task.model.layers", "1", "image/configs/pathfinder32/linear_transformer_base.py:24"),
            lra("task.model.heads", "2", "image/configs/pathfinder32/linear_transformer_base.py:25"),
            lra("task.model.d_model", "128", "image/configs/pathfinder32/linear_transformer_base.py:26"),
            lra("task.model.qkv_dim", "64", "image/configs/pathfinder32/linear_transformer_base.py:28"),
            lra("task.model.d_ff", "128", "image/configs/pathfinder32/linear_transformer_base.py:29"),
            lra("task.model.d_head_mlp", "128", "image/configs/pathfinder32/linear_transformer_base.py:29"),
        ],
        (Task::Pathfinder, "performer") => vec![lra("task.model.heads", "8", "image/configs/pathfinder32/performer_base.py:25")],
        _ => Vec::new(),
    }
}
