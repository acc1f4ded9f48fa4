//! What machine and software a run used, for its record.

use serde::{Deserialize, Serialize};

use crate::records::device_name::build_features;
use crate::records::machine::{Peak, compute_threads, cores};

/// The machine and software a run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub cpu: String,
    pub cores: usize,
    /// The threads the run computed on ([`compute_threads`]); absent in records of
    /// earlier versions, which used every core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    pub memory_bytes: u64,
    pub os: String,
    pub device_adapter: String,
    /// The GPU driver, CUDA and NVRTC versions of a CUDA run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_driver: Option<DriverInfo>,
    /// The cargo features the binary was built with that change what devices do
    /// (`cuda`, `fusion`); absent in records of earlier versions.
    #[serde(default)]
    pub build_features: Vec<String>,
    /// The device's peak f32 rate and how it was derived (the denominator of MFU); absent
    /// where none can be derived, and in records of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak: Option<Peak>,
    pub burn_version: String,
    pub git_commit: String,
    pub lra_version: String,
}

/// What a CUDA run's record says of the software under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverInfo {
    /// The NVIDIA kernel driver (`/proc/driver/nvidia/version`), e.g. `550.54.15`.
    pub driver_version: Option<String>,
    /// The CUDA version the driver supports (`cuDriverGetVersion`), e.g. `12.4`.
    pub cuda_driver_api: Option<String>,
    /// The NVRTC that compiles the kernels (`nvrtcVersion`), e.g. `12.4`.
    pub nvrtc_version: Option<String>,
    /// The toolkit whose headers the kernels are compiled against.
    pub toolkit_path: Option<String>,
}

/// The burn release this harness is built against (pinned in the workspace Cargo.toml;
/// a test checks Cargo.lock agrees).
pub const BURN_VERSION: &str = "0.22.1";

pub fn capture(device_adapter: &str, gpu_driver: Option<&DriverInfo>, peak: Option<Peak>) -> Environment {
    let mut system = sysinfo::System::new();
    system.refresh_cpu_all();
    system.refresh_memory();
    let cpu = system
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "unknown CPU".into());
    Environment {
        cpu,
        cores: cores(),
        threads: Some(compute_threads()),
        memory_bytes: system.total_memory(),
        os: sysinfo::System::long_os_version().unwrap_or_else(|| std::env::consts::OS.to_string()),
        device_adapter: device_adapter.to_string(),
        gpu_driver: gpu_driver.cloned(),
        build_features: build_features().into_iter().map(String::from).collect(),
        peak,
        burn_version: BURN_VERSION.to_string(),
        git_commit: build_commit().to_string(),
        lra_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// The commit this binary was built from (stamped by build.rs).
pub fn build_commit() -> &'static str {
    env!("LRA_BUILD_COMMIT")
}

#[cfg(test)]
mod tests {
    /// The stamp is the state of the checkout that this test binary was built from, which
    /// is the checkout's state now (the test runs right after its build).
    #[test]
    fn the_commit_is_stamped_at_build_time_and_matches_the_checkout() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let git = |args: &[&str]| {
            std::process::Command::new("git").arg("-C").arg(dir).args(args).output().ok().filter(|o| o.status.success())
        };
        let stamped = env!("LRA_BUILD_COMMIT");
        match git(&["rev-parse", "HEAD"]) {
            Some(out) => {
                let head = String::from_utf8_lossy(&out.stdout).trim().to_string();
                assert_eq!(stamped.trim_end_matches("+dirty"), head);
            }
            None => assert_eq!(stamped, "unknown"),
        }
    }

    #[test]
    fn burn_version_constant_matches_the_lock_file() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        let entry = lock.split("[[package]]").find(|p| p.contains("\nname = \"burn\"\n")).expect("burn is in Cargo.lock");
        assert!(entry.contains(&format!("version = \"{}\"", super::BURN_VERSION)), "{entry}");
    }
}
