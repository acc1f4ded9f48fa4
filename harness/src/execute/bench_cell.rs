//! One benchmark cell measured in this process (what `lra bench-cell`, the child of `lra
//! bench`, runs): the time and peak memory of a training step, or of one attention layer,
//! of one model at one length.

use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};

use lra_datasets::rng::SeededRng;
use lra_models::{AttentionConfig, Auxiliary, ClassifierConfig, MechanismSettings, Pooling, Positions};
use lra_tasks::TaskConfig;

use std::time::{Duration, Instant};

use crate::execute::device::open;
use crate::execute::memory::HeapPeak;
use crate::execute::train::training_loss;
use crate::records::bench_record::{CellSpec, Measurement, Scope, cell_settings, scope_refusal, table2_task};
use crate::records::machine::Utilisation;

/// Measures one cell in this process (the child side of `lra bench`).
pub fn measure_cell(spec: &CellSpec) -> anyhow::Result<Measurement> {
    if let Some(refusal) = scope_refusal(&spec.model, spec.scope)? {
        anyhow::bail!(refusal);
    }
    let info = lra_models::model_info(&spec.model).map_err(anyhow::Error::msg)?;
    let opened = open(spec.device).map_err(anyhow::Error::msg)?;
    let plain = opened.device.clone();
    let device = plain.clone().autodiff();
    device.seed(0);
    let mut rng = SeededRng::new(0, spec.length as u64);
    let heap = HeapPeak::start();
    let mut pool_peak = 0u64;
    let mut sample_pool = || {
        if let Some(usage) = plain.memory_pool_usage() {
            pool_peak = pool_peak.max(usage.bytes_in_use);
        }
    };
    let (b, n) = (spec.batch, spec.length);
    // A step pools by a CLS vector before the n tokens.
    let positions = n + usize::from(spec.scope == Scope::Step);
    let settings = cell_settings(&spec.model, spec.variant, positions)?;
    let task = table2_task();
    let mut durations = Vec::new();
    let step_flops = match spec.scope {
        Scope::Step => {
            let config = step_model(&task, info.mechanism, n, &settings);
            let mut model = config.init(&device);
            let mut optimizer = crate::execute::train::optimizer(&task.training).init();
            for step in 0..spec.warmup_steps + spec.timed_steps {
                // Bytes 1..vocab (0 is padding), and the task's labels.
                let tokens: Vec<i64> = (0..b * n).map(|_| 1 + rng.below(task.vocab_size as u64 - 1) as i64).collect();
                let labels: Vec<i64> = (0..b).map(|_| rng.below(task.classes as u64) as i64).collect();
                let tokens = Tensor::<2, Int>::from_data(TensorData::new(tokens, [b, n]), &device);
                let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), &device);
                let _ = plain.sync();
                let started = Instant::now();
                // The step training takes, its auxiliary losses included.
                let (logits, auxiliary) = model.forward_with_auxiliary(tokens);
                let (loss, _, _) = training_loss(logits, &auxiliary, labels);
                sample_pool();
                let loss_value = loss.clone().detach();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                sample_pool();
                model = optimizer.step(1e-4, model, grads);
                sample_pool();
                // Reading the loss and synchronising: the clock stops when the device is done.
                let _ = loss_value.into_scalar::<f32>();
                let _ = plain.sync();
                if step >= spec.warmup_steps {
                    durations.push(started.elapsed());
                }
            }
            config.training_step_flops(b)
        }
        Scope::Layer => {
            let config = layer_config(&task, info.mechanism, n, &settings);
            let layer = config.init(&device);
            let padding = Tensor::<2, Bool>::full([b, n], false, &device);
            let d_model = task.model.d_model;
            for step in 0..spec.warmup_steps + spec.timed_steps {
                let x = Tensor::<3>::random([b, n, d_model], Distribution::Normal(0.0, 1.0), &device).require_grad();
                let _ = plain.sync();
                let started = Instant::now();
                let mut auxiliary = Auxiliary::default();
                let out = layer.forward_with(x.clone(), padding.clone(), &mut auxiliary).sum();
                sample_pool();
                let total = match auxiliary.loss() {
                    Some(extra) => out + extra,
                    None => out,
                };
                let grads = total.backward();
                sample_pool();
                let _ = x.grad(&grads).map(|g| g.into_data());
                let _ = plain.sync();
                if step >= spec.warmup_steps {
                    durations.push(started.elapsed());
                }
            }
            // The layer's forward, and its backward (two forwards' worth).
            3.0 * config.forward_flops(b)
        }
    };
    let step_seconds = durations.iter().map(Duration::as_secs_f64).sum::<f64>() / durations.len().max(1) as f64;
    let (peak, source) = if plain.memory_pool_usage().is_some() {
        (pool_peak, "device memory pool (peak bytes in use)")
    } else {
        (heap.peak_above_baseline(), "heap (exact peak bytes allocated)")
    };
    Ok(Measurement {
        model: spec.model.clone(),
        attention: Some(settings),
        length: n,
        failure: None,
        step_seconds: Some(step_seconds),
        steps_per_second: Some(1.0 / step_seconds),
        tokens_per_second: Some((b * n) as f64 / step_seconds),
        peak_memory_bytes: Some(peak),
        memory_source: Some(source.into()),
        relative_speed: None,
        relative_memory: None,
        utilisation: Utilisation::of(
            step_flops,
            Some(1.0 / step_seconds),
            crate::records::machine::peak_of(spec.device, &opened.adapter).as_ref(),
        ),
    })
}

/// The model a step cell trains: LRA's Text classifier ([`table2_task`]) at `n` tokens,
/// with the mechanism's `settings` measured.
fn step_model(task: &TaskConfig, mechanism: lra_models::Mechanism, n: usize, settings: &MechanismSettings) -> ClassifierConfig {
    let m = &task.model;
    ClassifierConfig::new(task.vocab_size, task.classes, n, m.d_model, m.heads, m.layers, m.d_ff, m.d_head_mlp, mechanism)
        .with_settings(Some(settings.clone()))
        .with_pooling(Pooling::Cls)
        .with_positions(Positions::Sinusoidal)
}

/// The layer a layer cell times, at `n` positions, without dropout.
fn layer_config(task: &TaskConfig, mechanism: lra_models::Mechanism, n: usize, settings: &MechanismSettings) -> AttentionConfig {
    let m = &task.model;
    AttentionConfig::new(m.d_model, m.heads, mechanism, n).with_settings(Some(settings.clone())).with_dropout(0.0)
}
