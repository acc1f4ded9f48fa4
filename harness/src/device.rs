//! The devices a run can use, chosen by name at run time.

use serde::{Deserialize, Serialize};

use burn::prelude::*;

/// A device name on the command line and in configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceName {
    /// burn's pure-Rust CPU backend (the default: fastest CPU backend here).
    Flex,
    /// The ndarray CPU backend (deprecated in burn, kept for comparison).
    Ndarray,
    /// wgpu: Vulkan, Metal or DX12, whatever adapter the system offers (also
    /// software Vulkan, e.g. Mesa's lavapipe).
    Wgpu,
}

impl DeviceName {
    pub const ALL: [DeviceName; 3] = [DeviceName::Flex, DeviceName::Ndarray, DeviceName::Wgpu];

    pub fn name(self) -> &'static str {
        match self {
            DeviceName::Flex => "flex",
            DeviceName::Ndarray => "ndarray",
            DeviceName::Wgpu => "wgpu",
        }
    }

    pub fn parse(name: &str) -> Result<DeviceName, String> {
        DeviceName::ALL.into_iter().find(|d| d.name() == name).ok_or_else(|| {
            let names: Vec<&str> = DeviceName::ALL.iter().map(|d| d.name()).collect();
            format!("unknown device `{name}`; the devices are: {}", names.join(", "))
        })
    }

    /// Whether its memory lives in a device pool (GPU) rather than the process heap.
    pub fn has_memory_pool(self) -> bool {
        self == DeviceName::Wgpu
    }
}

/// A ready device and a name for its adapter.
#[derive(Debug, Clone)]
pub struct OpenDevice {
    pub device: Device,
    pub adapter: String,
}

/// Opens the device, or says why it is not available (no panic: wgpu is probed with
/// its fallible initialisation before any tensor touches it).
pub fn open(name: DeviceName) -> Result<OpenDevice, String> {
    match name {
        DeviceName::Flex => Ok(OpenDevice { device: Device::flex(), adapter: "CPU (flex)".into() }),
        #[allow(deprecated)]
        DeviceName::Ndarray => Ok(OpenDevice { device: Device::ndarray(), adapter: "CPU (ndarray)".into() }),
        DeviceName::Wgpu => {
            let device = wgpu_device()?;
            let adapter = device.identity().map(|i| i.name).unwrap_or_else(|| "wgpu (unnamed adapter)".into());
            Ok(OpenDevice { device, adapter })
        }
    }
}

/// The wgpu device, initialised once per process (burn's runtime can be set up only once).
fn wgpu_device() -> Result<Device, String> {
    static WGPU: std::sync::OnceLock<Result<Device, String>> = std::sync::OnceLock::new();
    WGPU.get_or_init(|| {
        Device::wgpu_options().init().map_err(|e| {
            format!(
                "device `wgpu` is not available: {e}. It needs a Vulkan, Metal or DX12 adapter; on Linux without a GPU, \
                 install a software Vulkan driver (Debian: `apt-get install mesa-vulkan-drivers`), or use --device flex"
            )
        })
    })
    .clone()
}
