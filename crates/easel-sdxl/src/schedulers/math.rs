//! Why this exists: every sampler step is a linear combination of whole tensors with
//! scalar coefficients. These helpers do that arithmetic in float32 (as diffusers
//! does, upcasting half-precision latents) on whatever device the tensors live, and
//! return the caller's dtype.

use candle_core::{DType, Tensor};

use crate::{Error, Result};

/// `t` in a dtype fit for scheduler arithmetic: f32 (f64 stays f64).
pub(crate) fn work(t: &Tensor) -> Result<Tensor> {
    Ok(match t.dtype() {
        DType::F32 | DType::F64 => t.clone(),
        _ => t.to_dtype(DType::F32)?,
    })
}

/// `a * x + b * y`, in `x`'s (working) dtype.
pub(crate) fn lincomb(a: f64, x: &Tensor, b: f64, y: &Tensor) -> Result<Tensor> {
    let y = y.to_dtype(x.dtype())?;
    Ok((x.affine(a, 0.0)? + y.affine(b, 0.0)?)?)
}

/// `t` converted to `dtype`.
pub(crate) fn finish(t: Tensor, dtype: DType) -> Result<Tensor> {
    Ok(if t.dtype() == dtype { t } else { t.to_dtype(dtype)? })
}

/// The error for a step index past the schedule.
pub(crate) fn check_index(index: usize, len: usize) -> Result<()> {
    if index >= len {
        return Err(Error::invalid(format!(
            "scheduler step index {index} is past the last of {len} steps"
        )));
    }
    Ok(())
}
