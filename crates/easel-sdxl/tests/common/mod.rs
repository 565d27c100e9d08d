//! Shared helpers for the parity tests: the bundled tiny model loaded once, diffusers'
//! recorded references, and closeness checks with stated tolerances.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use easel_sdxl::{LoadOptions, SdxlModel};

/// Tolerance for one layer or component in f32 (relative to the reference's scale).
pub const LAYER_TOL: f32 = 1e-4;
/// Tolerance for a whole pipeline in f32.
pub const PIPELINE_TOL: f32 = 1e-3;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The tiny model, loaded once per test binary.
pub fn tiny() -> &'static SdxlModel {
    static MODEL: OnceLock<SdxlModel> = OnceLock::new();
    MODEL.get_or_init(|| SdxlModel::load_tiny(&LoadOptions::default()).expect("the bundled tiny model loads"))
}

/// diffusers' recorded tensors and their settings.
pub struct Refs {
    pub tensors: HashMap<String, Tensor>,
    pub json: serde_json::Value,
}

impl Refs {
    pub fn get(&self, name: &str) -> Tensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("reference tensor {name} missing"))
            .clone()
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

pub fn tiny_refs() -> &'static Refs {
    static REFS: OnceLock<Refs> = OnceLock::new();
    REFS.get_or_init(|| {
        load_refs(
            &fixtures().join("tiny_refs.safetensors"),
            &fixtures().join("tiny_refs.json"),
        )
    })
}

pub fn load_refs(tensors: &std::path::Path, json: &std::path::Path) -> Refs {
    let tensors = candle_core::safetensors::load(tensors, &Device::Cpu).expect("reference tensors load");
    let json =
        serde_json::from_slice(&std::fs::read(json).expect("reference json reads")).expect("reference json parses");
    Refs { tensors, json }
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    max_abs(&(a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap()).unwrap())
}

/// Largest absolute value.
pub fn max_abs(a: &Tensor) -> f32 {
    a.to_dtype(DType::F32)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Asserts `got` equals `want` within `tol × max(1, max|want|)`.
pub fn assert_close(name: &str, got: &Tensor, want: &Tensor, tol: f32) {
    let scale = max_abs(want).max(1.0);
    let err = max_abs_diff(got, want);
    eprintln!(
        "{name}: max abs err {err:.3e} (scale {scale:.2}, tol {:.1e})",
        tol * scale
    );
    assert!(
        err <= tol * scale,
        "{name}: max abs error {err:e} exceeds {tol:e} × {scale}"
    );
}
