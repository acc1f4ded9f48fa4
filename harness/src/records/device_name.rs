//! The devices a run can name, as the command line, `config.json` and the records write
//! them: plain names, with no backend behind them (opening one is
//! [`crate::execute::device`]'s).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A device on the command line and in configurations: `flex`, `ndarray`, `wgpu` (the
/// system's preferred adapter), `wgpu:N` (the N-th discrete GPU), `cuda` (= `cuda:0`) or
/// `cuda:N`. Written in `config.json` by its [`Display`](fmt::Display) name, so it is part
/// of the run id (`cuda` and `cuda:0` are one name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceName {
    /// burn's pure-Rust CPU backend (the default: fastest CPU backend here).
    Flex,
    /// The ndarray CPU backend (deprecated in burn, kept for comparison).
    Ndarray,
    /// wgpu: Vulkan, Metal or DX12 (also software Vulkan, e.g. Mesa's lavapipe). `None`:
    /// the adapter wgpu prefers; `Some(n)`: the n-th discrete GPU.
    Wgpu(Option<usize>),
    /// An NVIDIA GPU through CUDA, by its driver index.
    Cuda(usize),
}

/// The backends a device name can select, and what a build needs for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Flex,
    Ndarray,
    Wgpu,
    Cuda,
}

impl Backend {
    pub const ALL: [Backend; 4] = [Backend::Flex, Backend::Ndarray, Backend::Wgpu, Backend::Cuda];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        }
    }

    /// Whether this binary was built with the backend.
    pub fn compiled_in(self) -> bool {
        match self {
            Backend::Flex | Backend::Ndarray | Backend::Wgpu => true,
            Backend::Cuda => cfg!(feature = "cuda"),
        }
    }
}

/// Whether an adapter, by the name its driver gives, is a software renderer: the CPU
/// running the GPU's kernels (Mesa's llvmpipe/lavapipe, Google's SwiftShader, Microsoft's
/// WARP). Its device memory is what a GPU would hold for the same kernels; its times are
/// the CPU's, so benchmarks give no speed ratios for it.
pub fn is_software_renderer(adapter: &str) -> bool {
    let adapter = adapter.to_ascii_lowercase();
    ["llvmpipe", "lavapipe", "swiftshader", "software rasterizer", "basic render driver"].iter().any(|n| adapter.contains(n))
}

/// The cargo features this binary was built with that change what devices do (kernel
/// fusion changes how the GPU backends compute, so records name it).
pub fn build_features() -> Vec<&'static str> {
    let mut features = vec!["flex", "ndarray", "wgpu"];
    if cfg!(feature = "cuda") {
        features.push("cuda");
    }
    if cfg!(feature = "fusion") {
        features.push("fusion");
    }
    features
}

impl DeviceName {
    pub fn backend(self) -> Backend {
        match self {
            DeviceName::Flex => Backend::Flex,
            DeviceName::Ndarray => Backend::Ndarray,
            DeviceName::Wgpu(_) => Backend::Wgpu,
            DeviceName::Cuda(_) => Backend::Cuda,
        }
    }

    /// Whether the device is a GPU (wgpu or CUDA): one run at a time computes on it.
    pub fn is_gpu(self) -> bool {
        matches!(self.backend(), Backend::Wgpu | Backend::Cuda)
    }

    /// The name with the device number wherever there is one: `cuda:0` for `cuda`, which
    /// [`Display`](fmt::Display) writes `cuda` (configurations keep that name, and their run
    /// ids with it). What a record says a run was placed on.
    pub fn exact(self) -> String {
        match self {
            DeviceName::Cuda(n) => format!("cuda:{n}"),
            other => other.to_string(),
        }
    }

    /// Says whether a run whose configuration names `self` may compute on `placed`: a
    /// device of the same backend (a sweep places a `cuda` run on any `cuda:N`; the
    /// configuration, and the run id, stay the same wherever it runs).
    pub fn check_placement(self, placed: DeviceName) -> Result<(), String> {
        match self.backend() == placed.backend() {
            true => Ok(()),
            false => Err(format!(
                "`{}` is not a device of the configuration's backend (its device is `{self}`): a run is placed on a \
                 device of its own backend",
                placed.exact()
            )),
        }
    }

    pub fn parse(name: &str) -> Result<DeviceName, String> {
        let unknown = || {
            format!("unknown device `{name}`; the devices are: flex, ndarray, wgpu, wgpu:N (the N-th discrete GPU), cuda, cuda:N")
        };
        let (backend, index) = match name.split_once(':') {
            Some((backend, index)) => {
                let index = index
                    .parse::<usize>()
                    .map_err(|_| format!("device `{name}`: the part after `:` must be a device number (e.g. `{backend}:1`)"))?;
                (backend, Some(index))
            }
            None => (name, None),
        };
        match (backend, index) {
            ("flex", None) => Ok(DeviceName::Flex),
            ("ndarray", None) => Ok(DeviceName::Ndarray),
            ("wgpu", index) => Ok(DeviceName::Wgpu(index)),
            ("cuda", index) => Ok(DeviceName::Cuda(index.unwrap_or(0))),
            ("flex" | "ndarray", Some(_)) => Err(format!("device `{name}`: the CPU backends take no device number")),
            _ => Err(unknown()),
        }
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceName::Flex => f.write_str("flex"),
            DeviceName::Ndarray => f.write_str("ndarray"),
            DeviceName::Wgpu(None) => f.write_str("wgpu"),
            DeviceName::Wgpu(Some(n)) => write!(f, "wgpu:{n}"),
            DeviceName::Cuda(0) => f.write_str("cuda"),
            DeviceName::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceName {
    type Err = String;

    fn from_str(name: &str) -> Result<DeviceName, String> {
        DeviceName::parse(name)
    }
}

impl Serialize for DeviceName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DeviceName, D::Error> {
        let name = String::deserialize(deserializer)?;
        DeviceName::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_as_they_print_and_cuda_is_cuda_0() {
        for (text, name) in [
            ("flex", DeviceName::Flex),
            ("ndarray", DeviceName::Ndarray),
            ("wgpu", DeviceName::Wgpu(None)),
            ("wgpu:1", DeviceName::Wgpu(Some(1))),
            ("cuda", DeviceName::Cuda(0)),
            ("cuda:3", DeviceName::Cuda(3)),
        ] {
            assert_eq!(DeviceName::parse(text), Ok(name));
            assert_eq!(name.to_string(), text);
            let json = serde_json::to_string(&name).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<DeviceName>(&json).unwrap(), name);
        }
        assert_eq!(DeviceName::parse("cuda:0"), Ok(DeviceName::Cuda(0)));
        assert_eq!(DeviceName::Cuda(0).to_string(), "cuda");
    }

    #[test]
    fn exact_names_carry_the_device_number_and_placements_keep_the_backend() {
        assert_eq!(DeviceName::Cuda(0).exact(), "cuda:0");
        assert_eq!(DeviceName::Cuda(3).exact(), "cuda:3");
        assert_eq!(DeviceName::Wgpu(None).exact(), "wgpu");
        assert_eq!(DeviceName::Wgpu(Some(1)).exact(), "wgpu:1");
        for name in [DeviceName::Flex, DeviceName::Wgpu(None), DeviceName::Wgpu(Some(2)), DeviceName::Cuda(5)] {
            assert_eq!(DeviceName::parse(&name.exact()), Ok(name));
        }
        assert_eq!(DeviceName::Cuda(0).check_placement(DeviceName::Cuda(3)), Ok(()));
        assert_eq!(DeviceName::Wgpu(None).check_placement(DeviceName::Wgpu(Some(1))), Ok(()));
        assert_eq!(DeviceName::Flex.check_placement(DeviceName::Flex), Ok(()));
        let refused = DeviceName::Wgpu(None).check_placement(DeviceName::Cuda(1)).unwrap_err();
        assert!(refused.contains("`cuda:1`") && refused.contains("`wgpu`"), "{refused}");
        assert!(DeviceName::Flex.check_placement(DeviceName::Ndarray).is_err());
        assert!(DeviceName::Cuda(0).is_gpu() && DeviceName::Wgpu(None).is_gpu() && !DeviceName::Flex.is_gpu());
    }

    #[test]
    fn software_renderers_are_told_from_gpus_by_their_adapter_names() {
        for software in ["llvmpipe (LLVM 15.0.6, 256 bits)", "SwiftShader Device (Subzero)", "Microsoft Basic Render Driver"] {
            assert!(is_software_renderer(software), "{software}");
        }
        for gpu in ["NVIDIA H100 80GB HBM3", "AMD Radeon RX 7900 XTX (RADV NAVI31)", "Apple M2 Max", "CPU (flex)"] {
            assert!(!is_software_renderer(gpu), "{gpu}");
        }
    }

    #[test]
    fn bad_names_say_what_is_wrong() {
        assert!(DeviceName::parse("tpu").unwrap_err().contains("the devices are: flex, ndarray, wgpu"));
        assert!(DeviceName::parse("cuda:x").unwrap_err().contains("device number"));
        assert!(DeviceName::parse("flex:1").unwrap_err().contains("no device number"));
        assert!(serde_json::from_str::<DeviceName>("\"gpu\"").unwrap_err().to_string().contains("unknown device `gpu`"));
    }
}
