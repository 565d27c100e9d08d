//! Test helper: a diffusers folder (the bundled tiny model, or the full-size random one)
//! written as one single-file checkpoint in the original (LDM) key layout, by inverting
//! Easel's own key map — for the tiny model, the files `scripts/make_checkpoint_refs.py`
//! wrote with its independent mapping and diffusers' `from_single_file` loaded; `digest`
//! proves both are the same bytes. Shared by two test binaries.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use easel_sdxl::checkpoint::{folder_key_maps, Source, CLIP_G_PREFIX, CLIP_L_PREFIX};
use sha2::{Digest, Sha256};

pub fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/tiny-sdxl")
}

/// A component's weights: the plain file, else the fp16 variant.
fn folder_tensors(dir: &Path, sub: &str, stem: &str) -> HashMap<String, Tensor> {
    let plain = dir.join(sub).join(format!("{stem}.safetensors"));
    let path = if plain.is_file() {
        plain
    } else {
        dir.join(sub).join(format!("{stem}.fp16.safetensors"))
    };
    candle_core::safetensors::load(&path, &Device::Cpu).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every tensor of the folder `dir` under its single-file key, in `dtype` (buffers excepted).
pub fn ldm_tensors(dir: &Path, dtype: DType) -> HashMap<String, Tensor> {
    let parts = folder_key_maps(dir).unwrap();
    let mut out = HashMap::new();
    let mut thirds: HashMap<String, [Option<Tensor>; 3]> = HashMap::new();
    for (sub, stem, map) in parts {
        for (name, t) in folder_tensors(dir, sub, stem) {
            let name = if sub == "text_encoder" && !name.starts_with("text_model.") {
                format!("text_model.{name}")
            } else {
                name
            };
            match map
                .source(&name)
                .unwrap_or_else(|| panic!("{sub}: no single-file key for {name}"))
            {
                Source::Renamed(k) => drop(out.insert(k, t)),
                Source::ConvAsLinear(k) => {
                    let (o, i) = t.dims2().unwrap();
                    out.insert(k, t.reshape((o, i, 1, 1)).unwrap());
                }
                Source::Transposed(k) => drop(out.insert(k, t.t().unwrap().contiguous().unwrap())),
                Source::Third { key, index } => thirds.entry(key).or_default()[index] = Some(t),
            }
        }
    }
    for (key, parts) in thirds {
        let parts: Vec<Tensor> = parts.into_iter().map(|p| p.expect("q, k and v all present")).collect();
        out.insert(key, Tensor::cat(&parts, 0).unwrap());
    }
    let mut out: HashMap<String, Tensor> = out.into_iter().map(|(k, t)| (k, t.to_dtype(dtype).unwrap())).collect();
    // What real files also carry, which loaders must ignore (as the Python script writes them).
    let ids = Tensor::arange(0i64, 77, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    out.insert(format!("{CLIP_L_PREFIX}text_model.embeddings.position_ids"), ids);
    out.insert(
        format!("{CLIP_G_PREFIX}logit_scale"),
        Tensor::new(4.6052f32, &Device::Cpu).unwrap(),
    );
    out
}

/// Writes the tiny model as a single file in `dtype` to `out/tiny_<dtype>.safetensors`.
pub fn write_single_file(out: &Path, dtype: DType) -> PathBuf {
    write_folder_as_single_file(&tiny_dir(), out, dtype)
}

/// Writes the diffusers folder `dir` as `out/tiny_<dtype>.safetensors`-style single file.
pub fn write_folder_as_single_file(dir: &Path, out: &Path, dtype: DType) -> PathBuf {
    let path = out.join(format!("tiny_{}.safetensors", dtype.as_str()));
    candle_core::safetensors::save(&ldm_tensors(dir, dtype), &path).unwrap();
    path
}

/// The script's digest: sha256 over sorted keys of key, torch dtype, shape, raw bytes.
pub fn digest(path: &Path) -> String {
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }.unwrap();
    let mut tensors = st.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (name, view) in tensors {
        let dtype = match DType::try_from(view.dtype()).unwrap() {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            other => panic!("unexpected dtype {other:?}"),
        };
        let shape: Vec<String> = view.shape().iter().map(|d| d.to_string()).collect();
        h.update(name.as_bytes());
        h.update(dtype.as_bytes());
        h.update(format!("[{}]", shape.join(", ")).as_bytes());
        h.update(view.data());
    }
    hex::encode(h.finalize())
}
