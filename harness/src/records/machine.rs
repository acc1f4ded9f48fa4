//! The machine a run computes on: its cores, the threads the CPU backends use, and the
//! device's peak f32 rate, the denominator of model FLOPs utilisation (MFU), with how
//! it was derived (recorded beside it, so a reader can judge the figure).
//!
//! A CPU's peak is computed from what the machine says of itself: cores x clock x f32
//! lanes per vector x FMA units per core x 2 operations per fused multiply-add. The number
//! of FMA units is not something a program can ask, so it is assumed (two, as on server
//! cores since Skylake and Zen 2); the clock is the nominal one. A GPU's peak is its
//! maker's published FP32 figure (not the tensor-core one: training here is in f32).

use serde::{Deserialize, Serialize};

use crate::records::device_name::{Backend, DeviceName};

/// The cores this process may run on (1 where the system will not say).
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The threads the CPU backends compute on: `RAYON_NUM_THREADS` where it is set (a sweep
/// running several jobs sets it for each run, so that they share the cores instead of
/// fighting over them), at most the cores; every core otherwise.
pub fn compute_threads() -> usize {
    let cores = cores();
    let set = std::env::var("RAYON_NUM_THREADS").ok().and_then(|value| value.trim().parse::<usize>().ok());
    set.filter(|&threads| threads > 0).map_or(cores, |threads| threads.min(cores))
}

/// A peak rate and how it was derived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    pub flops_per_second: f64,
    pub derivation: String,
}

/// FMA units per core assumed for CPUs.
const FMA_UNITS: f64 = 2.0;

/// Published FP32 (non-tensor-core) peaks of common NVIDIA GPUs, in TFLOP/s, by a part of
/// the name the driver reports (the more specific names first).
const PUBLISHED_GPU_TFLOPS: &[(&str, f64)] = &[
    ("H200", 67.0),
    ("H100 PCIe", 51.2),
    ("H100", 67.0),
    ("A100", 19.5),
    ("L40S", 91.6),
    ("L40", 90.5),
    ("L4", 30.3),
    ("A10", 31.2),
    ("RTX A6000", 38.7),
    ("RTX 4090", 82.6),
    ("RTX 3090", 35.6),
    ("V100", 15.7),
    ("T4", 8.1),
];

/// The peak of `device` (whose adapter is named `adapter`), where it can be derived.
pub fn peak_of(device: DeviceName, adapter: &str) -> Option<Peak> {
    match device.backend() {
        Backend::Flex | Backend::Ndarray => cpu(),
        Backend::Wgpu | Backend::Cuda => gpu(adapter),
    }
}

fn cpu() -> Option<Peak> {
    // The cores the run computes on: all of them, or its share in a sweep of several jobs.
    let cores = compute_threads();
    let mhz = clock_mhz().filter(|&f| f > 0)?;
    let (lanes, isa) = vector_lanes();
    let per_fma = if has_fma() { 2.0 } else { 1.0 };
    let flops = cores as f64 * mhz as f64 * 1e6 * lanes as f64 * FMA_UNITS * per_fma;
    Some(Peak {
        flops_per_second: flops,
        derivation: format!(
            "{cores} cores x {:.2} GHz x {lanes} f32 lanes ({isa}) x {FMA_UNITS} FMA units x {per_fma} operations per FMA \
             = {:.1} GFLOP/s (the FMA units per core are assumed, not detected; the clock is the nominal one)",
            mhz as f64 / 1000.0,
            flops / 1e9
        ),
    })
}

/// The first core's clock as the system reports it, in MHz.
fn clock_mhz() -> Option<u64> {
    let mut system = sysinfo::System::new();
    system.refresh_cpu_all();
    system.cpus().first().map(|c| c.frequency())
}

/// The widest f32 vector this CPU has, and its name.
fn vector_lanes() -> (usize, &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return (16, "AVX-512");
        }
        if std::arch::is_x86_feature_detected!("avx") {
            return (8, "AVX");
        }
        (4, "SSE")
    }
    #[cfg(target_arch = "aarch64")]
    {
        (4, "NEON")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        (1, "scalar")
    }
}

fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(target_arch = "aarch64")]
    {
        true
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

fn gpu(adapter: &str) -> Option<Peak> {
    let (name, tflops) = PUBLISHED_GPU_TFLOPS.iter().find(|(name, _)| adapter.contains(name))?;
    Some(Peak {
        flops_per_second: tflops * 1e12,
        derivation: format!("NVIDIA's published FP32 (non-tensor-core) peak of the {name}: {tflops} TFLOP/s"),
    })
}

/// The work of one step and the rate at which it was done, in a run record or a
/// benchmark cell (their fields, flattened).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Utilisation {
    /// Operations of one step (a training step, or a layer's forward and backward),
    /// counted from the configuration (`lra_models::attention::flops`); absent in records
    /// of earlier versions.
    #[serde(default)]
    pub step_flops: Option<f64>,
    /// `step_flops` times the steps per second.
    #[serde(default)]
    pub achieved_flops_per_second: Option<f64>,
    /// Model FLOPs utilisation: the achieved rate over the device's peak (the record's
    /// `environment.peak`, which says how it was derived).
    #[serde(default)]
    pub mfu: Option<f64>,
}

impl Utilisation {
    /// `step_flops` done at `steps_per_second` (none or 0: not measured) on a device of
    /// peak `peak`.
    pub fn of(step_flops: f64, steps_per_second: Option<f64>, peak: Option<&Peak>) -> Utilisation {
        let achieved = steps_per_second.filter(|&s| s > 0.0).map(|s| step_flops * s);
        Utilisation {
            step_flops: Some(step_flops),
            achieved_flops_per_second: achieved,
            mfu: achieved.zip(peak).map(|(rate, peak)| rate / peak.flops_per_second),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_peak_is_the_product_its_derivation_states() {
        let Some(peak) = peak_of(DeviceName::Flex, "CPU (flex)") else {
            // A machine whose clock is not reported has no derivable peak: nothing to check.
            assert_eq!(clock_mhz().unwrap_or(0), 0);
            return;
        };
        let cores = compute_threads() as f64;
        let (lanes, _) = vector_lanes();
        let per_core = peak.flops_per_second / cores / lanes as f64 / FMA_UNITS;
        // What is left is the clock times 1 or 2 operations per FMA: a plausible clock.
        assert!((0.5e9..=12e9).contains(&per_core), "{}", peak.derivation);
        assert!(peak.derivation.contains(&format!("{} f32 lanes", lanes)), "{}", peak.derivation);
    }

    #[test]
    fn gpu_peaks_are_found_by_name_the_most_specific_first() {
        assert_eq!(peak_of(DeviceName::Cuda(0), "NVIDIA H100 PCIe").unwrap().flops_per_second, 51.2e12);
        assert_eq!(peak_of(DeviceName::Cuda(0), "NVIDIA H100 80GB HBM3").unwrap().flops_per_second, 67.0e12);
        assert!(peak_of(DeviceName::Wgpu(None), "llvmpipe (LLVM 15.0.6, 256 bits)").is_none());
        let h200 = peak_of(DeviceName::Cuda(0), "NVIDIA H200");
        assert_eq!(Utilisation::of(33.5e12, Some(1.0), h200.as_ref()).mfu, Some(0.5));
        let unmeasured = Utilisation::of(1e9, Some(0.0), h200.as_ref());
        assert_eq!((unmeasured.achieved_flops_per_second, unmeasured.mfu), (None, None));
    }
}
