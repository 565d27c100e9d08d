//! Why this exists: the model code loads weights by diffusers names through candle's
//! `VarBuilder`; a single-file checkpoint stores them under other names and sometimes in
//! another shape. [`LdmBackend`] is a VarBuilder backend over the file (read tensor by
//! tensor, [`FileTensors`], as diffusers folders are) that answers each diffusers name
//! through the component's [`KeyMap`]: renames and reshapes use the bytes read (a 1×1
//! conv read as a linear, one third of a fused q/k/v tensor). Only OpenCLIP's
//! `text_projection` is transposed.

use std::sync::Arc;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use super::keymap::{KeyMap, Source};
use crate::reader::{expect_shape, FileTensors};

/// One component's view of a single-file checkpoint.
pub struct LdmBackend {
    file: Arc<FileTensors>,
    map: Arc<KeyMap>,
}

impl LdmBackend {
    /// A VarBuilder producing `dtype` tensors on `device` from `file` through `map`.
    pub fn var_builder(file: Arc<FileTensors>, map: Arc<KeyMap>, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Self { file, map }), dtype, device.clone())
    }

    fn source(&self, name: &str) -> candle_core::Result<Source> {
        self.map
            .source(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.to_string() }.bt())
    }

    /// Loads the diffusers tensor `name` in the file's dtype.
    fn load(&self, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        match self.source(name)? {
            Source::Renamed(key) => self.file.load(&key, dev),
            Source::Transposed(key) => self.file.load(&key, dev)?.t()?.contiguous(),
            Source::ConvAsLinear(key) => {
                let (bytes, dtype, shape) = self.file.raw(&key)?;
                match shape.as_slice() {
                    [o, i, 1, 1] => Tensor::from_raw_buffer(&bytes, dtype, &[*o, *i], dev),
                    other => Err(unexpected(&key, "a 1×1 convolution", other)),
                }
            }
            Source::Third { key, index } => {
                let (bytes, dtype, mut shape) = self.file.raw(&key)?;
                let rows = shape.first().copied().unwrap_or(0);
                if rows == 0 || !rows.is_multiple_of(3) {
                    return Err(unexpected(&key, "a fused q/k/v tensor with 3·n rows", &shape));
                }
                shape[0] = rows / 3;
                let part = bytes.len() / 3;
                Tensor::from_raw_buffer(&bytes[index * part..(index + 1) * part], dtype, &shape, dev)
            }
        }
    }
}

fn unexpected(key: &str, what: &str, shape: &[usize]) -> candle_core::Error {
    candle_core::Error::Msg(format!("{key} should be {what} but has shape {shape:?}"))
}

impl SimpleBackend for LdmBackend {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self.load(name, dev)?.to_dtype(dtype)?;
        let key = self.source(name)?.key().to_string();
        expect_shape(t, s, || format!("{name} (checkpoint key {key})"))
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.load(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map.source(name).is_some_and(|s| self.file.contains(s.key()))
    }
}
