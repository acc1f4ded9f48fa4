//! The devices a run can use, chosen by name at run time.
//!
//! `flex` and `ndarray` (CPU) and `wgpu` are in every build; `cuda` only in a binary built
//! with the `cuda` feature (or `gpu`, which adds kernel fusion). Whether a device is usable is
//! decided by [`check`] before anything is written: a device that was not compiled in, a
//! missing driver or a missing CUDA toolkit is an error naming what to install, not a panic
//! in the middle of a run.

use burn::prelude::*;

use crate::records::device_name::{Backend, DeviceName, build_features};
use crate::records::environment::DriverInfo;

/// A ready device, a name for its adapter, and what the record says of its driver.
#[derive(Debug, Clone)]
pub struct OpenDevice {
    pub device: Device,
    pub adapter: String,
    /// The GPU driver and CUDA versions, for a CUDA device.
    pub driver: Option<DriverInfo>,
}

/// Says whether `name` can be used here, without opening it where opening could panic:
/// the build has its backend, the driver is there and sees the device, and (CUDA) the
/// toolkit that compiles kernels at run time is installed. Called before a run, sweep or
/// benchmark writes anything.
pub fn check(name: DeviceName) -> Result<(), String> {
    check_built(name)?;
    match name {
        DeviceName::Flex | DeviceName::Ndarray => Ok(()),
        DeviceName::Wgpu(_) => wgpu_device(name).map(|_| ()),
        DeviceName::Cuda(index) => cuda::check(index),
    }
}

/// Says whether this binary has `name`'s backend (all a submitting host can know of a
/// device on the cluster's nodes).
pub fn check_built(name: DeviceName) -> Result<(), String> {
    match name.backend().compiled_in() {
        true => Ok(()),
        false => Err(format!(
            "device `{name}`: this lra binary was built without the `{}` feature; rebuild with \
             `cargo build --release --features gpu` (CUDA and kernel fusion) or `--features cuda`",
            name.backend().name()
        )),
    }
}

/// How many CUDA devices the driver reports (those CUDA_VISIBLE_DEVICES leaves, numbered
/// from 0): the devices a sweep on `cuda` places its runs on when `--devices` does not
/// name them. An error says why none can be counted (no `cuda` feature, no driver).
pub fn cuda_device_count() -> Result<usize, String> {
    check_built(DeviceName::Cuda(0))?;
    cuda::count()
}

/// Opens the device, or says why it is not available (no panic: see [`check`]).
pub fn open(name: DeviceName) -> Result<OpenDevice, String> {
    check(name)?;
    match name {
        DeviceName::Flex => Ok(OpenDevice { device: Device::flex(), adapter: "CPU (flex)".into(), driver: None }),
        #[allow(deprecated)]
        DeviceName::Ndarray => Ok(OpenDevice { device: Device::ndarray(), adapter: "CPU (ndarray)".into(), driver: None }),
        DeviceName::Wgpu(_) => {
            let device = wgpu_device(name)?;
            Ok(OpenDevice { adapter: adapter_name(&device, "wgpu"), device, driver: None })
        }
        DeviceName::Cuda(index) => cuda::open(index),
    }
}

fn adapter_name(device: &Device, backend: &str) -> String {
    device.identity().map(|i| i.name).unwrap_or_else(|| format!("{backend} (unnamed adapter)"))
}

/// The wgpu device, initialised once per process: burn's wgpu runtime can be set up only
/// once, so a second, different wgpu name in one process is refused.
fn wgpu_device(name: DeviceName) -> Result<Device, String> {
    static WGPU: std::sync::OnceLock<(DeviceName, Result<Device, String>)> = std::sync::OnceLock::new();
    let (first, device) = WGPU.get_or_init(|| {
        let kind = match name {
            DeviceName::Wgpu(Some(n)) => DeviceKind::DiscreteGpu(n),
            _ => DeviceKind::DefaultDevice,
        };
        let device = Device::wgpu_options().device_kind(kind).init().map_err(|e| {
            format!(
                "device `{name}` is not available: {e}. It needs a Vulkan, Metal or DX12 adapter; on Linux without a GPU, \
                 install a software Vulkan driver (Debian: `apt-get install mesa-vulkan-drivers`), or use --device flex"
            )
        });
        (name, device)
    });
    if *first != name {
        return Err(format!("device `{name}`: this process already uses `{first}`, and wgpu is set up once per process"));
    }
    device.clone()
}

/// The loaded NVIDIA kernel driver's version, from
/// `NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ...`.
fn kernel_driver_version() -> Option<String> {
    let text = std::fs::read_to_string("/proc/driver/nvidia/version").ok()?;
    let line = text.lines().find(|l| l.starts_with("NVRM version"))?;
    let after = line.split("Kernel Module").nth(1)?;
    after.split_whitespace().next().map(str::to_string)
}

/// What is known of the driver under `device`, in words: for CUDA, the kernel driver,
/// CUDA and NVRTC versions; for every GPU backend, what the runtime compiles kernels for
/// (for wgpu, the adapter's vendor and device ids) and, where an NVIDIA kernel driver is
/// loaded, its version (wgpu reports no driver version of its own).
pub fn driver_words(device: &OpenDevice) -> String {
    let mut parts = Vec::new();
    match &device.driver {
        Some(info) => {
            let known = |value: &Option<String>| value.clone().unwrap_or_else(|| "unknown".into());
            parts.push(format!(
                "NVIDIA driver {}, CUDA {} (driver API), NVRTC {}, toolkit {}",
                known(&info.driver_version),
                known(&info.cuda_driver_api),
                known(&info.nvrtc_version),
                known(&info.toolkit_path)
            ));
        }
        None => match kernel_driver_version() {
            Some(version) => parts.push(format!("NVIDIA kernel driver {version}")),
            None => parts.push("no driver version reported".into()),
        },
    }
    if let Some(identity) = device.device.identity() {
        parts.push(format!("kernels compiled for `{}`", identity.fingerprint));
        if let Some(pci) = identity.physical.and_then(|p| p.pci_address) {
            parts.push(format!("PCI {pci}"));
        }
    }
    parts.join("; ")
}

/// What `lra list devices` prints: each backend, whether it is built in, and the devices
/// present now.
pub fn describe_all() -> Vec<String> {
    let mut lines = vec![format!("this binary was built with: {}", build_features().join(", "))];
    for backend in Backend::ALL {
        let opened = |name, hint: &str| match open(name) {
            Ok(device) => format!("available: {}{hint}", device.adapter),
            Err(why) => format!("not available: {why}"),
        };
        let line = match backend {
            Backend::Flex => opened(DeviceName::Flex, ""),
            Backend::Ndarray => opened(DeviceName::Ndarray, ""),
            Backend::Wgpu => opened(DeviceName::Wgpu(None), " (`wgpu:N` picks the N-th discrete GPU)"),
            Backend::Cuda => cuda::describe(),
        };
        lines.push(format!("{:<8} {line}", backend.name()));
    }
    lines
}

#[cfg(feature = "cuda")]
mod cuda {
    //! CUDA through burn's `cuda` backend. cudarc loads the driver (`libcuda`) and NVRTC at
    //! run time, and cubecl compiles every kernel with NVRTC against the toolkit's headers;
    //! each of the three missing makes cubecl panic at first use, so each is asked for here.

    use std::path::PathBuf;

    use burn::tensor::{Device, DeviceType};

    use super::{DriverInfo, OpenDevice};

    fn driver_present() -> bool {
        // SAFETY: only tries to dlopen the library's candidate names.
        unsafe { cudarc::driver::sys::is_culib_present() }
    }

    fn nvrtc_present() -> bool {
        // SAFETY: as above.
        unsafe { cudarc::nvrtc::sys::is_culib_present() }
    }

    /// The toolkit's header folder, where cubecl looks for it (`CUDA_PATH`, else
    /// `/usr/local/cuda`, `/opt/cuda`, `/usr`).
    fn toolkit_headers() -> Result<PathBuf, String> {
        let Some(root) = cubecl::cuda::install::cuda_path() else {
            return Err("the CUDA toolkit is not installed: kernels are compiled at run time and need its headers; \
                        install it (e.g. the `cuda-toolkit` package) or set CUDA_PATH to its folder"
                .into());
        };
        let include = root.join("include");
        // The headers the generated kernels include (half precision types among them).
        match include.join("cuda_fp16.h").is_file() {
            true => Ok(include),
            false => Err(format!(
                "the CUDA toolkit at {} has no headers ({} is missing): install the toolkit's development headers \
                 or set CUDA_PATH to a complete toolkit",
                root.display(),
                include.join("cuda_fp16.h").display()
            )),
        }
    }

    fn devices() -> Vec<Device> {
        if !driver_present() {
            return Vec::new();
        }
        Device::enumerate(DeviceType::Cuda).into_iter().collect()
    }

    pub fn count() -> Result<usize, String> {
        match driver_present() {
            true => Ok(devices().len()),
            false => Err("device `cuda`: the NVIDIA driver (libcuda.so) is not installed or not on the library path; \
                          install the driver, or use --device flex"
                .into()),
        }
    }

    pub fn check(index: usize) -> Result<(), String> {
        if !driver_present() {
            return Err(format!(
                "device `cuda:{index}`: the NVIDIA driver (libcuda.so) is not installed or not on the library path; \
                 install the driver, or use --device flex"
            ));
        }
        let count = devices().len();
        if index >= count {
            return Err(format!("device `cuda:{index}`: the driver sees {count} CUDA device(s) (numbered from 0)"));
        }
        if !nvrtc_present() {
            return Err(format!(
                "device `cuda:{index}`: NVRTC (libnvrtc.so, part of the CUDA toolkit) is not on the library path; \
                 install the toolkit or add its lib64 folder to LD_LIBRARY_PATH"
            ));
        }
        toolkit_headers().map(|_| ()).map_err(|why| format!("device `cuda:{index}`: {why}"))
    }

    pub fn open(index: usize) -> Result<OpenDevice, String> {
        let device = Device::cuda(index);
        Ok(OpenDevice { adapter: super::adapter_name(&device, "cuda"), device, driver: Some(driver_info()) })
    }

    pub fn describe() -> String {
        if !driver_present() {
            return "not available: the NVIDIA driver (libcuda.so) is not installed".into();
        }
        let devices = devices();
        if devices.is_empty() {
            return "not available: the driver sees no CUDA device".into();
        }
        let names: Vec<String> =
            devices.iter().enumerate().map(|(i, d)| format!("cuda:{i} {}", super::adapter_name(d, "cuda"))).collect();
        let ready = match check(0) {
            Ok(()) => String::new(),
            Err(why) => format!("; but {why}"),
        };
        let info = driver_info();
        format!(
            "available: {} (driver {}, CUDA {}){ready}",
            names.join(", "),
            info.driver_version.as_deref().unwrap_or("unknown"),
            info.cuda_driver_api.as_deref().unwrap_or("unknown")
        )
    }

    fn driver_info() -> DriverInfo {
        let driver_api = driver_present().then(|| {
            let mut version = 0;
            // SAFETY: the library is present; the call writes one int.
            let ok = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) };
            (ok == cudarc::driver::sys::CUresult::CUDA_SUCCESS).then(|| format!("{}.{}", version / 1000, version % 1000 / 10))
        });
        let nvrtc = nvrtc_present().then(|| {
            let (mut major, mut minor) = (0, 0);
            // SAFETY: the library is present; the call writes two ints.
            let ok = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
            (ok == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS).then(|| format!("{major}.{minor}"))
        });
        DriverInfo {
            driver_version: super::kernel_driver_version(),
            cuda_driver_api: driver_api.flatten(),
            nvrtc_version: nvrtc.flatten(),
            toolkit_path: cubecl::cuda::install::cuda_path().map(|p| p.display().to_string()),
        }
    }
}

#[cfg(not(feature = "cuda"))]
mod cuda {
    //! Without the `cuda` feature, [`super::check`] refuses a CUDA device before any of these.

    use super::OpenDevice;

    pub fn check(index: usize) -> Result<(), String> {
        Err(format!("device `cuda:{index}`: this lra binary was built without the `cuda` feature"))
    }

    pub fn open(index: usize) -> Result<OpenDevice, String> {
        Err(check(index).unwrap_err())
    }

    pub fn count() -> Result<usize, String> {
        Err("this lra binary was built without the `cuda` feature".into())
    }

    pub fn describe() -> String {
        "not built in: rebuild with `cargo build --release --features gpu` (the build needs no CUDA toolkit \
         but downloads LLVM from github.com once; running needs the NVIDIA driver and the toolkit)"
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::device_name::DeviceName;

    /// Without the feature the refusal names it; with it, on a machine without an NVIDIA
    /// driver, the refusal names the driver. Neither panics.
    #[test]
    fn cuda_is_refused_with_what_to_install_when_it_cannot_run() {
        let has_driver = std::path::Path::new("/proc/driver/nvidia/version").exists();
        match (cfg!(feature = "cuda"), has_driver) {
            (false, _) => assert!(check(DeviceName::Cuda(0)).unwrap_err().contains("--features gpu")),
            (true, false) => assert!(check(DeviceName::Cuda(0)).unwrap_err().contains("NVIDIA driver")),
            (true, true) => assert!(check(DeviceName::Cuda(1 << 20)).unwrap_err().contains("CUDA device(s)")),
        }
    }
}
