//! One training loop for every task and model: data -> model -> AdamW with the task's
//! schedule -> periodic validation -> test accuracy of the final weights (LRA's
//! protocol) and of the best-validation weights.

use std::time::{Duration, Instant};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::log_softmax;

use lra_datasets::rng::SeededRng;
use lra_datasets::{Example, Splits};
use lra_models::{Auxiliary, Classifier};
use lra_tasks::TrainingConfig;

use crate::execute::device::OpenDevice;
use crate::execute::memory::{HeapPeak, peak_rss_bytes};
use crate::records::run_config::RunConfig;
use crate::records::run_record::{AuxiliaryRecord, Failure, MetricsRow, Outcome};

/// What the loop reports as it goes (a progress bar, or log lines).
pub trait Progress {
    fn step(&mut self, step: usize, loss: f64, train_acc: f64, steps_per_second: f64);
    fn evaluated(&mut self, step: usize, val_acc: f64, best: f64);
}

/// The AdamW of `training` (its learning rate comes from the schedule at each step).
pub fn optimizer(training: &TrainingConfig) -> AdamWConfig {
    AdamWConfig::new()
        .with_beta_1(training.beta_1 as f32)
        .with_beta_2(training.beta_2 as f32)
        .with_epsilon(training.epsilon as f32)
        .with_weight_decay(training.weight_decay as f32)
}

/// A batch on a device: token ids `[batch, max_length]` (0 = padding), the second
/// sequences of paired tasks, and labels `[batch]`.
pub struct Batch {
    pub tokens: Tensor<2, Int>,
    pub second: Option<Tensor<2, Int>>,
    pub labels: Tensor<1, Int>,
}

/// Token ids of `sequences`, each cut or padded (with 0) to `max_length` as the data
/// export writes them ([`lra_tasks::padded`]).
fn pad(sequences: &[&[u32]], max_length: usize, device: &Device) -> Tensor<2, Int> {
    let mut tokens = Vec::with_capacity(sequences.len() * max_length);
    for sequence in sequences {
        tokens.extend(lra_tasks::padded(sequence, max_length).map(i64::from));
    }
    Tensor::from_data(TensorData::new(tokens, [sequences.len(), max_length]), device)
}

/// `examples` as a batch.
pub fn make_batch(examples: &[&Example], max_length: usize, device: &Device) -> Batch {
    let firsts: Vec<&[u32]> = examples.iter().map(|e| e.tokens.as_slice()).collect();
    let seconds: Option<Vec<&[u32]>> = examples.iter().map(|e| e.second.as_deref()).collect();
    let labels: Vec<i64> = examples.iter().map(|e| e.label as i64).collect();
    Batch {
        tokens: pad(&firsts, max_length, device),
        second: seconds.map(|s| pad(&s, max_length, device)),
        labels: Tensor::from_data(TensorData::new(labels, [examples.len()]), device),
    }
}

/// The model's logits for a batch `[batch, classes]`, one input or two.
pub fn logits(model: &Classifier, batch: &Batch) -> Tensor<2> {
    logits_with_auxiliary(model, batch).0
}

/// [`logits`] and what the model's layers computed besides (auxiliary losses, routing).
pub fn logits_with_auxiliary(model: &Classifier, batch: &Batch) -> (Tensor<2>, Auxiliary) {
    match &batch.second {
        Some(second) => model.forward_pair_with_auxiliary(batch.tokens.clone(), second.clone()),
        None => model.forward_with_auxiliary(batch.tokens.clone()),
    }
}

/// The loss a training step minimises: the task's cross-entropy of `logits` against
/// `labels`, plus the auxiliary losses the forward computed (Switch's load balance, the
/// Compressive Transformer's reconstruction), which train with it. Returns the total, the
/// task's loss and the auxiliary losses' sum, each `[1]`.
pub fn training_loss(
    logits: Tensor<2>,
    auxiliary: &Auxiliary,
    labels: Tensor<1, Int>,
) -> (Tensor<1>, Tensor<1>, Option<Tensor<1>>) {
    let task_loss = cross_entropy(logits, labels);
    let auxiliary_loss = auxiliary.loss();
    let total = match auxiliary_loss.clone() {
        Some(extra) => task_loss.clone() + extra,
        None => task_loss.clone(),
    };
    (total, task_loss, auxiliary_loss)
}

/// The running account of a model's auxiliary losses and routing over the training steps.
#[derive(Default)]
struct AuxiliaryAccount {
    /// Sums over the steps, per Switch layer.
    expert_load: Vec<Vec<f64>>,
    dropped: Vec<f64>,
    steps: usize,
    last_loss: Option<f64>,
}

impl AuxiliaryAccount {
    fn add(&mut self, auxiliary: &Auxiliary, loss: Option<f64>) {
        if self.expert_load.is_empty() {
            self.expert_load = auxiliary.expert_loads.iter().map(|loads| vec![0.0; loads.len()]).collect();
            self.dropped = vec![0.0; auxiliary.dropped.len()];
        }
        for (sums, loads) in self.expert_load.iter_mut().zip(&auxiliary.expert_loads) {
            sums.iter_mut().zip(loads).for_each(|(sum, load)| *sum += load);
        }
        self.dropped.iter_mut().zip(&auxiliary.dropped).for_each(|(sum, dropped)| *sum += dropped);
        self.steps += 1;
        self.last_loss = loss.or(self.last_loss);
    }

    /// The record: means over the steps; `None` for a model with neither.
    fn record(self) -> Option<AuxiliaryRecord> {
        let steps = self.steps.max(1) as f64;
        self.last_loss.map(|final_loss| AuxiliaryRecord {
            final_loss,
            expert_load: self.expert_load.into_iter().map(|sums| sums.into_iter().map(|sum| sum / steps).collect()).collect(),
            dropped: self.dropped.into_iter().map(|sum| sum / steps).collect(),
        })
    }
}

/// Mean cross-entropy of `logits: [batch, classes]` against `labels: [batch]`.
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let batch = labels.dims()[0];
    log_softmax(logits, 1).gather(1, labels.reshape([batch, 1])).neg().mean()
}

/// Number of rows whose largest logit is the label, as a float tensor `[1]`.
fn correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let batch = labels.dims()[0];
    logits.argmax(1).reshape([batch]).equal(labels).float().sum()
}

/// Accuracy of `model` on `examples`, without dropout or gradients.
pub fn accuracy(model: &Classifier, examples: &[Example], max_length: usize, batch_size: usize, device: &Device) -> f64 {
    if examples.is_empty() {
        return 0.0;
    }
    let mut right = 0.0;
    for chunk in examples.chunks(batch_size) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let batch = make_batch(&refs, max_length, device);
        right += correct(logits(model, &batch), batch.labels).into_scalar::<f32>() as f64;
    }
    right / examples.len() as f64
}

/// Scales the gradients so that their global L2 norm is at most `max_norm` (burn's
/// built-in clipping works per tensor; LRA clips the global norm); also returns the norm
/// before clipping.
fn clip_global_norm(model: &Classifier, mut grads: GradientsParams, max_norm: f64) -> (GradientsParams, f64) {
    struct SquaredNorms<'a> {
        grads: &'a GradientsParams,
        parts: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for SquaredNorms<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.parts.push(g.square().sum());
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads.register::<D>(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    let mut norms = SquaredNorms { grads: &grads, parts: Vec::new() };
    model.visit(&mut norms);
    if norms.parts.is_empty() {
        return (grads, 0.0);
    }
    let norm = Tensor::cat(norms.parts, 0).sum().sqrt().into_scalar::<f32>() as f64;
    if norm.is_finite() && norm > max_norm {
        model.visit(&mut Scale { grads: &mut grads, factor: max_norm / (norm + 1e-6) });
    }
    (grads, norm)
}

/// Peak of the device pool's bytes in use, sampled at the points of a step.
struct PoolPeak {
    device: Device,
    peak: u64,
}

impl PoolPeak {
    fn sample(&mut self) {
        if let Some(usage) = self.device.memory_pool_usage() {
            self.peak = self.peak.max(usage.bytes_in_use);
        }
    }
}

/// Trains `config`'s model on `splits` and evaluates it: the outcome and the logged rows.
/// What the run knows beside training (the test split's majority rate and size, the
/// run's whole time) is the run's to fill in.
pub fn train(
    config: &RunConfig,
    splits: &Splits,
    device: &OpenDevice,
    progress: &mut dyn Progress,
) -> (Outcome, Vec<MetricsRow>) {
    let task = &config.task;
    let t = &task.training;
    let plain = device.device.clone();
    let train_device = match t.gradient_checkpointing {
        true => plain.clone().autodiff().gradient_checkpointing(),
        false => plain.clone().autodiff(),
    };
    train_device.seed(config.seed);

    let heap = HeapPeak::start();
    let mut pool = PoolPeak { device: plain.clone(), peak: 0 };
    let mut model = config.classifier_config().init(&train_device);
    let parameters = model.num_params();
    let mut optimizer = optimizer(t).init();

    // Batch order: its own stream of the training seed, reshuffled every epoch.
    let mut order_rng = SeededRng::new(config.seed, u64::from_le_bytes(*b"order\0\0\0"));
    let mut order: Vec<usize> = (0..splits.train.len()).collect();
    let batch_size = t.batch_size.min(splits.train.len()).max(1);
    let mut cursor = order.len(); // forces a shuffle before the first batch

    let mut metrics = Vec::new();
    let mut failure = None;
    let (mut best_val, mut best_step, mut best_model) = (None::<f64>, None, None::<Classifier>);
    let mut timed = Duration::ZERO;
    let mut timed_steps = 0usize;
    let mut window = (0.0f64, 0.0f64, 0usize, Instant::now()); // loss sum, correct, examples, since
    let mut last_loss = None;
    let mut auxiliary_account = AuxiliaryAccount::default();
    let mut steps_done = 0;
    // When the run left chance, by the report's rule on the validation split.
    let (validation_rate, validation_examples) =
        (crate::records::chance::majority_rate(&splits.validation), splits.validation.len());
    let mut left_chance_step = None;

    for step in 1..=t.steps {
        if cursor + batch_size > order.len() {
            order_rng.shuffle(&mut order);
            cursor = 0;
        }
        let examples: Vec<&Example> = order[cursor..cursor + batch_size].iter().map(|&i| &splits.train[i]).collect();
        cursor += batch_size;
        let batch = make_batch(&examples, task.max_length, &train_device);
        let lr = t.schedule.learning_rate(step, t.steps);

        let counted = step > t.warmup_steps_untimed;
        let started = Instant::now();
        let (output, auxiliary) = logits_with_auxiliary(&model, &batch);
        let (loss, task_loss, auxiliary_loss) = training_loss(output.clone(), &auxiliary, batch.labels.clone());
        pool.sample();
        let mut readout = vec![task_loss.detach(), correct(output.detach(), batch.labels)];
        readout.extend(auxiliary_loss.map(Tensor::detach));
        let readout = Tensor::cat(readout, 0);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        pool.sample();
        let grads = match t.gradient_clip_norm {
            Some(max_norm) => {
                let (grads, norm) = clip_global_norm(&model, grads, max_norm);
                // A step with non-finite gradients would poison every weight: the run has
                // diverged even when the loss is still finite.
                if !norm.is_finite() {
                    failure = Some(Failure::GradientNotFinite { step });
                    break;
                }
                grads
            }
            None => grads,
        };
        model = optimizer.step(lr, model, grads);
        // Mechanisms with a schedule of their own (Performer redraws its features).
        model.on_training_step(step);
        pool.sample();
        // Reading the loss waits for the step's work: the clock stops after the device is done.
        let values: Vec<f32> = readout.into_data().iter::<f32>().collect();
        let _ = plain.sync();
        if counted {
            timed += started.elapsed();
            timed_steps += 1;
        }
        steps_done = step;

        let (loss_value, right) = (values[0] as f64, values[1] as f64);
        let auxiliary_value = values.get(2).map(|&value| value as f64);
        if !loss_value.is_finite() || auxiliary_value.is_some_and(|value| !value.is_finite()) {
            failure = Some(Failure::DivergedToNan { step });
            break;
        }
        auxiliary_account.add(&auxiliary, auxiliary_value);
        last_loss = Some(loss_value);
        window.0 += loss_value * batch_size as f64;
        window.1 += right;
        window.2 += batch_size;
        let rate = if timed_steps > 0 { timed_steps as f64 / timed.as_secs_f64() } else { 0.0 };
        progress.step(step, loss_value, right / batch_size as f64, rate);

        let evaluate = step % t.eval_every == 0 || step == t.steps;
        let val_acc = evaluate.then(|| {
            let acc = accuracy(&model.clone().valid(), &splits.validation, task.max_length, t.eval_batch(), &plain);
            if best_val.is_none_or(|b| acc > b) {
                best_val = Some(acc);
                best_step = Some(step);
                best_model = Some(model.clone());
            }
            if left_chance_step.is_none() && crate::records::chance::above_chance(acc, validation_examples, validation_rate) {
                left_chance_step = Some(step);
            }
            progress.evaluated(step, acc, best_val.unwrap_or(acc));
            acc
        });
        if step % t.log_every == 0 || step == t.steps || val_acc.is_some() {
            let seconds = window.3.elapsed().as_secs_f64();
            metrics.push(MetricsRow {
                step,
                loss: window.0 / window.2 as f64,
                lr,
                train_acc: window.1 / window.2 as f64,
                examples_per_s: window.2 as f64 / seconds.max(1e-9),
                val_acc,
            });
            window = (0.0, 0.0, 0, Instant::now());
        }
    }

    let test = |model: &Classifier| accuracy(&model.clone().valid(), &splits.test, task.max_length, t.eval_batch(), &plain);
    // A diverged run reports no accuracy: its last weights are not finite.
    let test_accuracy = (failure.is_none() && steps_done > 0).then(|| test(&model));
    let best_val_test_accuracy = match best_step {
        _ if failure.is_some() => None,
        Some(step) if step == steps_done && test_accuracy.is_some() => test_accuracy,
        _ => best_model.as_ref().map(test),
    };
    let train_seconds = timed.as_secs_f64();
    let steps_per_second = if train_seconds > 0.0 { timed_steps as f64 / train_seconds } else { 0.0 };
    let (peak_memory_bytes, memory_source) = if plain.memory_pool_usage().is_some() {
        (pool.peak, "device memory pool: peak of bytes in use, sampled after forward, backward and optimizer step".to_string())
    } else if heap.is_counting() {
        (heap.peak_above_baseline(), "heap: exact peak of bytes allocated during training, above the prepared data".to_string())
    } else {
        (0, "not measured (no counting allocator in this process)".to_string())
    };
    let outcome = Outcome {
        failure,
        test_accuracy,
        best_val_accuracy: best_val,
        best_step,
        best_val_test_accuracy,
        test_majority_rate: None,
        test_examples: None,
        validation_majority_rate: Some(validation_rate),
        // Without a validation split nothing says whether the run left chance: unknown.
        validation_examples: (validation_examples > 0).then_some(validation_examples),
        left_chance_step,
        final_train_loss: last_loss,
        auxiliary: auxiliary_account.record(),
        steps: steps_done,
        train_seconds,
        wall_seconds: 0.0,
        train_steps_per_second: steps_per_second,
        train_tokens_per_second: steps_per_second * (batch_size * task.max_length) as f64,
        peak_memory_bytes,
        memory_source,
        peak_rss_bytes: peak_rss_bytes(),
        parameters,
    };
    (outcome, metrics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lra_models::ClassifierConfig;

    /// A one-layer classifier and its gradients for one batch, on an autodiff device.
    fn model_and_grads() -> (Classifier, GradientsParams) {
        model_and_grads_on(Device::flex().autodiff())
    }

    /// The CPU backend's random numbers come from one generator per process, which
    /// `Device::seed` resets: tests that seed it and draw from it (initialisation,
    /// dropout) hold this lock, so that tests running beside them cannot draw in between.
    fn seeded() -> std::sync::MutexGuard<'static, ()> {
        static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());
        SEEDED.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn model_and_grads_on(device: Device) -> (Classifier, GradientsParams) {
        let _seeded = seeded();
        device.seed(5);
        let model = ClassifierConfig::new(8, 3, 6, 8, 2, 1, 16, 8, lra_models::Mechanism::Full).init(&device);
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 2, 3, 4, 5, 6, 2, 3, 4, 0, 0, 0], [2, 6]), &device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), &device);
        let loss = cross_entropy(model.forward(tokens), labels);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        (model, grads)
    }

    struct Silent;

    impl Progress for Silent {
        fn step(&mut self, _: usize, _: f64, _: f64, _: f64) {}
        fn evaluated(&mut self, _: usize, _: f64, _: f64) {}
    }

    /// The record's `left_chance_step` is the first logged validation that clears the
    /// validation split's majority rate by the report's test, and the record names the
    /// split it was judged on. A task a one-layer model learns at once (the label is every
    /// token, minus one) leaves chance; one whose validation labels are all one class
    /// (nothing beats guessing it) never does.
    #[test]
    fn the_record_says_when_validation_first_left_chance() {
        let _seeded = seeded();
        use lra_tasks::{Preset, Task};
        let mut config =
            RunConfig::resolve(Task::Listops, Preset::Tiny, "transformer", 0, crate::records::device_name::DeviceName::Flex)
                .unwrap();
        (config.task.training.steps, config.task.training.eval_every) = (40, 5);
        let example = |label: u32| Example { tokens: vec![label + 1; 8], second: None, label };
        let split = |n: u32| -> Vec<Example> { (0..n).map(|i| example(i % 2)).collect() };
        let device = crate::execute::device::open(crate::records::device_name::DeviceName::Flex).unwrap();
        let learnable = Splits { train: split(256), validation: split(100), test: split(100) };
        let constant = Splits { validation: vec![example(1); 100], ..learnable.clone() };
        for (splits, leaves) in [(learnable, true), (constant, false)] {
            let (outcome, metrics) = train(&config, &splits, &device, &mut Silent);
            assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
            let rate = crate::records::chance::majority_rate(&splits.validation);
            assert_eq!((outcome.validation_majority_rate, outcome.validation_examples), (Some(rate), Some(100)));
            let first = metrics
                .iter()
                .find(|row| row.val_acc.is_some_and(|acc| crate::records::chance::above_chance(acc, 100, rate)))
                .map(|row| row.step);
            assert_eq!(outcome.left_chance_step, first, "{metrics:?}");
            assert_eq!(outcome.left_chance_step.is_some(), leaves, "{metrics:?}");
        }
    }

    /// Switch's load balance trains with the task's loss; the Transformer has none.
    #[test]
    fn the_training_loss_adds_the_auxiliary_losses_to_the_tasks() {
        let _seeded = seeded();
        let device = Device::flex().autodiff();
        device.seed(6);
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 2, 3, 4, 5, 6, 2, 3, 4, 0, 0, 0], [2, 6]), &device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), &device);
        for (mechanism, auxiliary_losses) in [(lra_models::Mechanism::Full, false), (lra_models::Mechanism::Switch, true)] {
            let model = ClassifierConfig::new(8, 3, 6, 8, 2, 1, 16, 8, mechanism).init(&device);
            let (logits, auxiliary) = model.forward_with_auxiliary(tokens.clone());
            let (total, task, extra) = training_loss(logits, &auxiliary, labels.clone());
            assert_eq!(extra.is_some(), auxiliary_losses, "{mechanism:?}");
            let sum = task.into_scalar::<f32>() + extra.map_or(0.0, |extra| extra.into_scalar::<f32>());
            assert_eq!(total.into_scalar::<f32>(), sum, "{mechanism:?}");
        }
    }

    /// The global L2 norm of `grads` over `model`'s float parameters, by hand.
    fn norm_by_hand(model: &Classifier, grads: &GradientsParams) -> f64 {
        struct Sum<'a>(&'a GradientsParams, f64);
        impl ModuleVisitor for Sum<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(g) = self.0.get::<D>(param.id) {
                    self.1 += g.into_data().iter::<f32>().map(|v| f64::from(v) * f64::from(v)).sum::<f64>();
                }
            }
        }
        let mut sum = Sum(grads, 0.0);
        model.visit(&mut sum);
        sum.1.sqrt()
    }

    /// Every parameter's gradient, in visiting order.
    fn all_gradients(model: &Classifier, grads: &GradientsParams) -> Vec<Vec<f32>> {
        struct Collect<'a>(&'a GradientsParams, Vec<Vec<f32>>);
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(g) = self.0.get::<D>(param.id) {
                    self.1.push(g.into_data().iter::<f32>().collect());
                }
            }
        }
        let mut collect = Collect(grads, Vec::new());
        model.visit(&mut collect);
        collect.1
    }

    /// Balanced checkpointing recomputes what it does not keep: the gradients are the same
    /// numbers, bit for bit (dropout included: its masks come from the same seeds).
    #[test]
    fn gradient_checkpointing_gives_the_same_gradients() {
        let (model, grads) = model_and_grads_on(Device::flex().autodiff());
        let kept = all_gradients(&model, &grads);
        let (model, grads) = model_and_grads_on(Device::flex().autodiff().gradient_checkpointing());
        let recomputed = all_gradients(&model, &grads);
        assert!(!kept.is_empty());
        assert_eq!(kept, recomputed);
    }

    #[test]
    fn clipping_scales_the_global_norm_down_to_the_limit_and_reports_it() {
        let (model, grads) = model_and_grads();
        let before = norm_by_hand(&model, &grads);
        let (clipped, reported) = clip_global_norm(&model, grads, before / 4.0);
        assert!((reported - before).abs() < 1e-4 * before, "{reported} vs {before}");
        assert!((norm_by_hand(&model, &clipped) - before / 4.0).abs() < 1e-3 * before);
        // Under the limit, nothing changes.
        let (model, grads) = model_and_grads();
        let before = norm_by_hand(&model, &grads);
        let (kept, _) = clip_global_norm(&model, grads, before * 2.0);
        assert!((norm_by_hand(&model, &kept) - before).abs() < 1e-4 * before);
    }

    #[test]
    fn a_non_finite_gradient_gives_a_non_finite_norm_and_is_not_scaled() {
        let (model, mut grads) = model_and_grads();
        let id = model.head_out.weight.id;
        let poisoned = grads.remove::<2>(id).unwrap().mul_scalar(f32::NAN);
        grads.register::<2>(id, poisoned);
        let (_, norm) = clip_global_norm(&model, grads, 1.0);
        assert!(!norm.is_finite());
    }
}
