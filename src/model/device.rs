//! Device choice: CUDA when it is compiled in and present, otherwise the CPU, always with the
//! reason said out loud.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceRequest {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceRequest {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("`{s}` is not a device: use auto, cpu, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => write!(f, "auto"),
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The device in use and why it was chosen.
#[derive(Debug, Clone)]
pub struct DeviceChoice {
    pub device: Device,
    pub reason: String,
}

impl DeviceChoice {
    pub fn label(&self) -> String {
        match &self.device {
            Device::Cuda(_) => "cuda".to_string(),
            Device::Cpu => "cpu".to_string(),
            other => format!("{other:?}"),
        }
    }
}

pub fn cuda_compiled_in() -> bool {
    cfg!(feature = "cuda")
}

pub fn select(request: DeviceRequest) -> Result<DeviceChoice> {
    match request {
        DeviceRequest::Cpu => Ok(DeviceChoice {
            device: Device::Cpu,
            reason: "CPU requested".into(),
        }),
        DeviceRequest::Cuda(n) => {
            if !cuda_compiled_in() {
                return Err(Error::Device(format!(
                    "cuda:{n} requested, but this binary was built without CUDA; rebuild with \
                     `cargo build --release --features cuda` or use --device cpu"
                )));
            }
            Device::new_cuda(n)
                .map(|device| DeviceChoice {
                    device,
                    reason: format!("cuda:{n} requested"),
                })
                .map_err(|e| Error::Device(format!("cuda:{n} could not be opened: {e}")))
        }
        DeviceRequest::Auto => {
            if !cuda_compiled_in() {
                return Ok(DeviceChoice {
                    device: Device::Cpu,
                    reason: "CPU: this build has no CUDA support (build with --features cuda)"
                        .into(),
                });
            }
            match Device::new_cuda(0) {
                Ok(device) => Ok(DeviceChoice {
                    device,
                    reason: "CUDA device 0 found".into(),
                }),
                Err(e) => Ok(DeviceChoice {
                    device: Device::Cpu,
                    reason: format!("CPU: CUDA is compiled in but device 0 is unavailable ({e})"),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_requests() {
        assert_eq!("auto".parse(), Ok(DeviceRequest::Auto));
        assert_eq!("cuda".parse(), Ok(DeviceRequest::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceRequest::Cuda(3)));
        assert!("gpu".parse::<DeviceRequest>().is_err());
        assert!("cuda:x".parse::<DeviceRequest>().is_err());
    }

    #[test]
    fn auto_always_yields_a_device_with_a_reason() {
        let choice = select(DeviceRequest::Auto).unwrap();
        assert!(!choice.reason.is_empty());
        if !cuda_compiled_in() {
            assert!(choice.device.is_cpu());
            let err = select(DeviceRequest::Cuda(0)).unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
