//! Why this exists: candle's CPU backend loses to PyTorch on the three operations that
//! dominate SDXL on a CPU (see SDXL-NOTES.md): 3×3 convolution (im2col builds a column
//! matrix nine times the input), GroupNorm (several unfused passes), and attention (the
//! score matrix as separate tensors, scalar softmax), and it computes GELU with a scalar erf
//! and linear layers on 3-D input as broadcast batched matmuls. These are Easel's own f32 CPU
//! kernels for them; every other device and dtype goes through candle unchanged.
//!
//! Each kernel is a candle custom op, so it composes with ordinary tensors. The hot loops
//! are written once as plain Rust and compiled three times — for the baseline target, with
//! AVX2+FMA and with AVX-512 — and the best the CPU has is selected at run time (`simd!`,
//! [`isa`]), so one generic x86-64 binary uses the vector units of every machine.

pub mod activation;
pub mod attention;
pub mod conv;
pub mod group_norm;
pub mod isa;
pub mod linear;
pub(crate) mod math;
mod padded;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod timing;
mod winograd;

use candle_core::{CpuStorage, DType, Layout, Result, Tensor};
use gemm::Parallelism;

/// Whether `t` is an f32 tensor on the CPU, the case these kernels handle.
pub fn cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// Set when candle's own CPU ops should run instead of these kernels (for comparison).
static CANDLE_OPS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether layers use these kernels (the default) rather than candle's own CPU ops.
pub fn enabled() -> bool {
    !CANDLE_OPS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Chooses candle's own CPU ops (`true`) or these kernels (`false`) for every layer of the
/// process; set by loading a model from `LoadOptions::candle_kernels`.
pub(crate) fn use_candle_ops(on: bool) {
    CANDLE_OPS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Number of worker threads for the kernels (candle's setting: `RAYON_NUM_THREADS` or the cores).
pub(crate) fn threads() -> usize {
    candle_core::utils::get_num_threads().max(1)
}

/// GEMM parallelism over all kernel threads.
pub(crate) fn all_threads() -> Parallelism {
    match threads() {
        1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// The f32 data of a contiguous operand of `op`.
pub(crate) fn contiguous<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let all = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&all[a..b]),
        None => candle_core::bail!("{op}: operands must be contiguous"),
    }
}

/// A GEMM operand: first element, row stride and column stride (in elements).
#[derive(Clone, Copy)]
pub(crate) struct Operand(pub *const f32, pub isize, pub isize);

/// `dst = (dst if accumulate) + scale · lhs · rhs` for an m × k lhs and k × n rhs; dst is
/// row-major with row stride `dst_rs`.
///
/// # Safety
/// Every pointer with its strides must address valid memory for the given sizes, and
/// `dst` must not be written by anyone else meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: Operand,
    rhs: Operand,
    scale: f32,
    par: Parallelism,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.0,
            lhs.2,
            lhs.1,
            rhs.0,
            rhs.2,
            rhs.1,
            1.0,
            scale,
            false,
            false,
            false,
            par,
        )
    }
}

/// Runs `$body` (an expression using only `#[inline(always)]` helpers) compiled for the
/// instruction set [`isa`] selects: AVX-512, AVX2+FMA, or the baseline target.
macro_rules! simd {
    ($body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
            unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            match $crate::kernels::isa::selected() {
                // SAFETY: `selected` only names instruction sets this CPU has.
                $crate::kernels::isa::Isa::Avx512 => unsafe { avx512(|| $body) },
                // SAFETY: as above.
                $crate::kernels::isa::Isa::Avx2 => unsafe { avx2(|| $body) },
                $crate::kernels::isa::Isa::Baseline => $body,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $body
        }
    }};
}
pub(crate) use simd;

/// A raw pointer that may be shared between the threads of one kernel call, each thread
/// writing a disjoint part of the buffer.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}
// SAFETY: kernels only write disjoint ranges through it while the owner outlives the scope.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
