//! Why this exists: turns the user's `--device` and `--dtype` words into candle's
//! device and dtype, with errors that say what is accepted.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};

use crate::{Error, Result};

/// Where tensors live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(DeviceSpec::Cuda(i)),
                _ => Err(Error::invalid(format!(
                    "unknown device `{s}`: use `cpu`, `cuda` or `cuda:N`"
                ))),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device; CUDA needs a binary built with the `cuda` feature.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(i) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(Error::Unsupported(
                        "this binary was built without CUDA: rebuild with `--features cuda` (see scripts/build-cuda.sh) or use `--device cpu`"
                            .into(),
                    ));
                }
                Device::new_cuda(i).map_err(|e| Error::Unsupported(format!("cannot open CUDA device {i}: {e}")))
            }
        }
    }
}

/// Parses `f32`, `f16`/`fp16`/`half`, `bf16`.
pub fn parse_dtype(s: &str) -> Result<DType> {
    match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "fp32" | "float32" => Ok(DType::F32),
        "f16" | "fp16" | "float16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(Error::invalid(format!("unknown dtype `{other}`: use f32, f16 or bf16"))),
    }
}

/// Refuses dtypes the device cannot compute in (candle's CPU backend has no bf16 matmul).
pub fn check_dtype(device: &Device, dtype: DType) -> Result<()> {
    match dtype {
        DType::F32 | DType::F16 if device.is_cpu() => Ok(()),
        DType::BF16 if device.is_cpu() => Err(Error::Unsupported(
            "bf16 is not supported on CPU (no bf16 matrix multiply there): use --dtype f32 (or f16)".into(),
        )),
        DType::F32 | DType::F16 | DType::BF16 => Ok(()),
        other => Err(Error::invalid(format!(
            "dtype {other:?} cannot run a model: use f32, f16 or bf16"
        ))),
    }
}

/// The default dtype for a device: f32 on CPU (half precision is slow there), bf16 on GPU.
pub fn default_dtype(device: &Device) -> DType {
    if device.is_cpu() {
        DType::F32
    } else {
        DType::BF16
    }
}
