//! Why this exists: candle's memory-mapped loader keeps each file mapped while its
//! component is built, and every mapped page it has copied from stays resident, so
//! loading CLIP-G in f32 needs its file size twice over (about 5.6 GB at the peak). This
//! reads each tensor with a positioned read into its own buffer instead: the peak is the
//! weights plus the largest single tensor, and the page cache, which the kernel can drop,
//! holds the rest. Diffusers folders use it as a VarBuilder backend; single-file
//! checkpoints read their (renamed, reshaped) tensors through [`FileTensors::raw`].

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::header::{Header, TensorInfo};
use crate::Result;

/// Tensors of one or more safetensors files (the shards of one component), read on demand.
pub struct FileTensors {
    files: Vec<(File, Header)>,
    /// Tensor name → index into `files`.
    index: HashMap<String, usize>,
}

impl FileTensors {
    /// Opens `paths` and reads their headers (with the checks of [`Header::read`]).
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let headers = paths.iter().map(|p| Header::read(p)).collect::<Result<Vec<_>>>()?;
        Self::with_headers(headers)
    }

    /// Opens the files of headers already read.
    pub fn with_headers(headers: Vec<Header>) -> Result<Self> {
        let mut files = Vec::with_capacity(headers.len());
        let mut index = HashMap::new();
        for (i, header) in headers.into_iter().enumerate() {
            let file = File::open(&header.path).map_err(|source| crate::Error::Io {
                path: header.path.clone(),
                source,
            })?;
            for name in header.tensors.keys() {
                index.insert(name.clone(), i);
            }
            files.push((file, header));
        }
        Ok(Self { files, index })
    }

    /// A VarBuilder over these tensors, converting to `dtype` on `device`.
    pub fn into_var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), dtype, device.clone())
    }

    /// Whether a tensor of this name is in the files.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Where tensor `name` is stored: its file and header entry, its dtype, and its byte
    /// range in the file (checked against its shape).
    fn locate(&self, name: &str) -> candle_core::Result<Stored<'_>> {
        let Some(&i) = self.index.get(name) else {
            return Err(candle_core::Error::CannotFindTensor { path: name.to_string() }.bt());
        };
        let (file, header) = &self.files[i];
        let info = &header.tensors[name];
        let dtype = file_dtype(info, name)?;
        let [a, b] = info.data_offsets;
        let len = info.numel() as usize * dtype.size_in_bytes();
        if b < a || (b - a) as usize != len {
            candle_core::bail!(
                "tensor {name} in {}: {} bytes for shape {:?} {}: the file is corrupt",
                header.path.display(),
                b.saturating_sub(a),
                info.shape,
                info.dtype
            );
        }
        Ok(Stored {
            file,
            header,
            info,
            dtype,
            at: header.data_start + a,
            len,
        })
    }

    /// The bytes, dtype and shape of tensor `name`, as stored.
    pub fn raw(&self, name: &str) -> candle_core::Result<(Vec<u8>, DType, Vec<usize>)> {
        let s = self.locate(name)?;
        let mut buf = vec![0u8; s.len];
        s.read_into(&mut buf, name)?;
        Ok((buf, s.dtype, s.info.shape.clone()))
    }

    /// Tensor `name` in the file's dtype on the CPU, read straight into the tensor's own
    /// buffer (no second copy).
    fn read_tensor(&self, name: &str) -> candle_core::Result<Tensor> {
        let s = self.locate(name)?;
        match s.dtype {
            DType::F32 => s.read_as::<f32>(name),
            DType::F16 => s.read_as::<half::f16>(name),
            DType::BF16 => s.read_as::<half::bf16>(name),
            _ => {
                let mut buf = vec![0u8; s.len];
                s.read_into(&mut buf, name)?;
                Tensor::from_raw_buffer(&buf, s.dtype, &s.info.shape, &Device::Cpu)
            }
        }
    }

    /// Tensor `name` in the file's dtype, on `dev`.
    pub fn load(&self, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        self.read_tensor(name)?.to_device(dev)
    }
}

/// A tensor's place in its file, as [`FileTensors::locate`] found it.
struct Stored<'a> {
    file: &'a File,
    header: &'a Header,
    info: &'a TensorInfo,
    dtype: DType,
    /// Byte offset in the file, and length.
    at: u64,
    len: usize,
}

impl Stored<'_> {
    fn read_into(&self, buf: &mut [u8], name: &str) -> candle_core::Result<()> {
        self.file
            .read_exact_at(buf, self.at)
            .map_err(|e| candle_core::Error::Msg(format!("reading {name} from {}: {e}", self.header.path.display())))
    }

    /// The tensor as elements of `T`, its stored dtype.
    fn read_as<T: candle_core::WithDType>(&self, name: &str) -> candle_core::Result<Tensor> {
        let n = self.len / std::mem::size_of::<T>();
        let mut data = vec![T::from_f64(0.0); n];
        // SAFETY: `data` is `len` bytes long and every bit pattern is a valid f32, f16 or
        // bf16; safetensors stores little-endian, as the CPUs this runs on are.
        let raw = unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast::<u8>(), self.len) };
        self.read_into(raw, name)?;
        Tensor::from_vec(data, self.info.shape.as_slice(), &Device::Cpu)
    }
}

/// `t` when its shape is `want`; otherwise candle's shape error, saying `what`
/// (the message the load errors look for: "shape mismatch").
pub fn expect_shape(t: Tensor, want: Shape, what: impl FnOnce() -> String) -> candle_core::Result<Tensor> {
    if t.shape() == &want {
        return Ok(t);
    }
    Err(candle_core::Error::UnexpectedShape {
        msg: format!("shape mismatch for {}", what()),
        expected: want,
        got: t.shape().clone(),
    }
    .bt())
}

fn file_dtype(info: &TensorInfo, name: &str) -> candle_core::Result<DType> {
    Ok(match info.dtype.as_str() {
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F64" => DType::F64,
        "I64" => DType::I64,
        "U32" => DType::U32,
        "U8" => DType::U8,
        other => candle_core::bail!("tensor {name} has dtype {other}, which Easel cannot load"),
    })
}

impl SimpleBackend for FileTensors {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        expect_shape(self.get_unchecked(name, dtype, dev)?, s, || name.to_string())
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        // Convert on the CPU, then move: one device copy, in the final dtype.
        self.read_tensor(name)?.to_dtype(dtype)?.to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.contains(name)
    }
}
