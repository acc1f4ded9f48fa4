//! Every registered model computes on wgpu what it computes on the CPU.
//!
//! The CPU backends take fused kernels of this crate where they have them (the attention
//! softmax, GELU, layer norm: see [`crate::cpu`]); wgpu, and so every GPU, takes burn's
//! composed ops. A tiny classifier of each model, in each of its forms, is built once on
//! `flex` and moved to `wgpu` with the same weights; the same tokens then give the same
//! logits, loss and gradient of every parameter on both, to the tolerances below. Dropout
//! is off, and what a layer would draw at every pass (the paper's Reformer: rotations;
//! LRA's Performer: the seed of its features) is drawn once on the CPU and handed to both
//! ([`Classifier::draw_once`]); what layers draw at initialisation (Performer's features,
//! BigBird's random blocks) moves with the weights.
//!
//! Without a GPU, wgpu runs on a software Vulkan driver (Mesa's lavapipe), which runs the
//! same kernels as a GPU. `cargo test --release -p lra-models cross_backend -- --nocapture`
//! prints every model's largest differences.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::tensor::{DeviceKind, Gradients};

use crate::MODELS;
use crate::attention::{Mechanism, MechanismSettings};
use crate::classifier::{Classifier, ClassifierConfig};
use crate::classifier_checks::{TINY_LEN, tiny_lra_settings_that_fit, tiny_tokens};

/// The largest difference of the logits and the loss allowed, relative to their largest
/// magnitude (at least 1): f32 sums taken in another order differ in their last bits, a
/// few ulps of the values summed (measured: at most 8e-7).
const LOGIT_TOLERANCE: f32 = 1e-5;

/// The largest difference of a parameter's gradient allowed, relative to that gradient's
/// largest magnitude (at least 1e-3, below which a gradient is all rounding). Measured: at
/// most 3e-5 (Memory Compressed, Hyena, S4D: its convolution by FFT on the CPU, chunk by
/// chunk on wgpu), for every model. S4D, S5 and LRU take the exact GELU of
/// [`crate::activation::gelu_erf`] on both devices: burn's own `gelu` is differentiated
/// exactly on flex but by the tanh form's derivative on wgpu, which put their gradients up
/// to 1.1e-2 apart.
const GRADIENT_TOLERANCE: f32 = 1e-4;

/// The two devices' results for one model in one form.
struct Compared {
    /// The loss on wgpu, printed in full so that two builds (with kernel fusion and
    /// without) can be compared.
    gpu_loss: f32,
    logits: f32,
    loss: f32,
    /// The parameter whose gradient differs most, relative to its largest magnitude.
    gradient: (String, f32),
    parameters: usize,
}

#[test]
fn every_registered_model_in_each_form_computes_on_wgpu_what_it_computes_on_the_cpu() {
    let gpu = Device::wgpu_options().device_kind(DeviceKind::DefaultDevice).init().expect(
        "wgpu needs a Vulkan, Metal or DX12 adapter; without a GPU install Mesa's software driver \
         (Debian: apt-get install mesa-vulkan-drivers)",
    );
    let gpu = gpu.autodiff();
    let mut failures = Vec::new();
    println!(
        "{:<18} {:<6} {:>14} {:>10} {:>10} {:>10}  parameter",
        "model", "form", "loss on wgpu", "logits", "loss", "gradient"
    );
    for model in MODELS {
        let mut forms = vec![("paper", MechanismSettings::tiny(model.mechanism, TINY_LEN + 1))];
        if model.mechanism.lra_variant().is_some() {
            forms.push(("lra", tiny_lra_settings_that_fit(model.mechanism)));
        }
        for (form, settings) in forms {
            let compared = compare(model.mechanism, settings, &gpu);
            println!(
                "{:<18} {form:<6} {:>14.9} {:>10.2e} {:>10.2e} {:>10.2e}  {} (of {})",
                model.name,
                compared.gpu_loss,
                compared.logits,
                compared.loss,
                compared.gradient.1,
                compared.gradient.0,
                compared.parameters
            );
            if compared.logits > LOGIT_TOLERANCE || compared.loss > LOGIT_TOLERANCE || compared.gradient.1 > GRADIENT_TOLERANCE {
                failures.push(format!("{} ({form})", model.name));
            }
        }
    }
    assert!(failures.is_empty(), "differ between flex and wgpu beyond the tolerances: {failures:?}");
}

/// One forward and backward of the tiny classifier of `mechanism` with `settings`, built on
/// the CPU and copied to `gpu`.
fn compare(mechanism: Mechanism, settings: MechanismSettings, gpu: &Device) -> Compared {
    let cpu = Device::flex().autodiff();
    cpu.seed(29);
    let config = ClassifierConfig::new(10, 3, TINY_LEN, 16, 2, 1, 32, 16, mechanism)
        .with_dropout(0.0)
        .with_attention_dropout(0.0)
        .with_settings(Some(settings));
    let mut on_cpu = config.init(&cpu);
    on_cpu.draw_once();

    let run = |model: &Classifier, device: &Device| {
        let (tokens, labels) = tiny_tokens(device);
        let (logits, auxiliary) = model.forward_with_auxiliary(tokens);
        let loss = CrossEntropyLossConfig::new().init(device).forward(logits.clone(), labels);
        let loss = match auxiliary.loss() {
            Some(auxiliary) => loss + auxiliary,
            None => loss,
        };
        let grads = loss.backward();
        (values(logits), values(loss), gradients(model, &grads))
    };
    // The CPU's pass first: parameters are initialised at first use, on the device they are
    // on then, and the copy must take the CPU's values (`fork` keeps them trainable).
    let (cpu_logits, cpu_loss, cpu_grads) = run(&on_cpu, &cpu);
    let on_gpu = on_cpu.fork(gpu);
    let (gpu_logits, gpu_loss, gpu_grads) = run(&on_gpu, gpu);

    let names: Vec<&String> = cpu_grads.iter().map(|(name, _)| name).collect();
    assert_eq!(names, gpu_grads.iter().map(|(name, _)| name).collect::<Vec<_>>(), "{mechanism:?}: parameters with gradients");
    let gradient = cpu_grads
        .iter()
        .zip(&gpu_grads)
        .map(|((name, a), (_, b))| (name.clone(), relative_difference(a, b, 1e-3)))
        .fold((String::new(), 0.0f32), |worst, this| if this.1 > worst.1 { this } else { worst });
    Compared {
        gpu_loss: gpu_loss[0],
        logits: relative_difference(&cpu_logits, &gpu_logits, 1.0),
        loss: relative_difference(&cpu_loss, &gpu_loss, 1.0),
        gradient,
        parameters: cpu_grads.len(),
    }
}

/// `max |a - b| / max(max |a|, floor)`; NaN anywhere gives infinity.
fn relative_difference(a: &[f32], b: &[f32], floor: f32) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(floor, |m, x| m.max(x.abs()));
    let worst = a.iter().zip(b).fold(0.0f32, |m, (x, y)| if (x - y).is_nan() { f32::INFINITY } else { m.max((x - y).abs()) });
    worst / scale
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 values")
}

/// Every float parameter's gradient, by path, in the module's order.
fn gradients(model: &Classifier, grads: &Gradients) -> Vec<(String, Vec<f32>)> {
    struct Collect<'a> {
        grads: &'a Gradients,
        path: Vec<String>,
        found: Vec<(String, Vec<f32>)>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = param.grad(self.grads) {
                self.found.push((self.path.join("."), values(grad)));
            }
        }
    }
    let mut collect = Collect { grads, path: Vec::new(), found: Vec::new() };
    model.visit(&mut collect);
    collect.found
}
