//! Why this exists: the adapter from the worker's [`Generator`] trait to the `easel-sdxl`
//! engine — loading (a diffusers folder, or the bundled tiny model), unloading for
//! `/memory/unload`, and turning a [`GenerationSpec`] into an engine request with per-image
//! seeds and A1111 parameters for each PNG. Nothing else in the worker names the engine.
//!
//! The bundled tiny model (random weights, native 64×64) would take minutes per job at the
//! contract's 1024×1024 on a small CPU (measured: over 10 minutes for one 15-step image on
//! 2 cores, against 0.9 s at 64×64), so with it the presets default to the model's native
//! size; jobs that set `width`/`height` still get exactly that. Real checkpoints keep 1024.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use easel_sdxl::device::{default_dtype, parse_dtype, DeviceSpec};
use easel_sdxl::noise::SeededNoise;
use easel_sdxl::pipeline::{GenerateRequest, InitImage, Progress};
use easel_sdxl::{images, metadata, LoadOptions, PromptMode, SdxlModel};

use crate::config::ConfigError;
use crate::generator::{Cause, GeneratedImage, GenerationSpec, Generator, GeneratorError, GeneratorInfo, Stage};

/// The tiny model's native side, used until it is loaded and says so itself.
const TINY_SIDE: u32 = 64;

/// The SDXL engine behind the [`Generator`] trait.
pub struct SdxlGenerator {
    model_dir: Option<PathBuf>,
    device: DeviceSpec,
    dtype: Option<candle_core::DType>,
    /// Run candle's own CPU ops instead of Easel's kernels (`EASEL_CANDLE_KERNELS`).
    candle_kernels: bool,
    model: Mutex<Option<SdxlModel>>,
    native_side: AtomicU32,
}

impl SdxlGenerator {
    /// A generator for `model_dir` (the bundled tiny model when `None`) on `device`.
    pub fn new(model_dir: Option<PathBuf>, device: &str, dtype: Option<&str>) -> Result<Self, ConfigError> {
        let device: DeviceSpec = device
            .parse()
            .map_err(|e| ConfigError::Unusable(format!("EASEL_DEVICE: {e}")))?;
        let dtype = dtype
            .map(parse_dtype)
            .transpose()
            .map_err(|e| ConfigError::Unusable(format!("EASEL_DTYPE: {e}")))?;
        if let Some(path) = &model_dir {
            let single_file = path.is_file() && path.extension().is_some_and(|e| e == "safetensors");
            if !single_file && !path.join("model_index.json").is_file() {
                return Err(ConfigError::Unusable(format!(
                    "EASEL_MODEL {} is neither a diffusers folder (no model_index.json) nor a single .safetensors checkpoint: point it at one, or unset it for the bundled tiny model",
                    path.display()
                )));
            }
        }
        Ok(Self {
            model_dir,
            device,
            dtype,
            candle_kernels: false,
            model: Mutex::new(None),
            native_side: AtomicU32::new(TINY_SIDE),
        })
    }

    /// The same generator running candle's own CPU ops (for comparing them with Easel's).
    pub fn with_candle_kernels(mut self, on: bool) -> Self {
        self.candle_kernels = on;
        self
    }

    fn is_tiny(&self) -> bool {
        self.model_dir.is_none()
    }

    fn load_model(&self) -> Result<SdxlModel, GeneratorError> {
        let device = self.device.open().map_err(|e| engine_error(Stage::Load, e))?;
        let dtype = self.dtype.unwrap_or_else(|| default_dtype(&device));
        let opts = LoadOptions {
            device,
            dtype,
            candle_kernels: self.candle_kernels,
            ..Default::default()
        };
        let model = match &self.model_dir {
            Some(path) => SdxlModel::load_path(path, &opts),
            None => SdxlModel::load_tiny(&opts),
        };
        model.map_err(|e| engine_error(Stage::Load, e))
    }

    fn with_model<T>(&self, f: impl FnOnce(&SdxlModel) -> Result<T, GeneratorError>) -> Result<T, GeneratorError> {
        let mut guard = self
            .model
            .lock()
            .map_err(|_| GeneratorError::Generate("model lock poisoned".into()))?;
        if guard.is_none() {
            let model = self.load_model()?;
            self.native_side.store(model.default_size() as u32, Ordering::SeqCst);
            *guard = Some(model);
        }
        match guard.as_ref() {
            Some(model) => f(model),
            None => Err(GeneratorError::Load("model vanished while loading".into())),
        }
    }
}

impl Generator for SdxlGenerator {
    fn info(&self) -> GeneratorInfo {
        let name = match &self.model_dir {
            Some(d) => d.display().to_string(),
            None => "tiny-sdxl (bundled, random weights)".into(),
        };
        let preset_side = self.is_tiny().then(|| self.native_side.load(Ordering::SeqCst));
        GeneratorInfo {
            name,
            preset_side,
            device: self.device.to_string(),
            weighted_prompts: true,
        }
    }

    fn is_loaded(&self) -> bool {
        self.model.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    fn load(&self) -> Result<(), GeneratorError> {
        self.with_model(|_| Ok(()))
    }

    fn unload(&self) -> Result<(), GeneratorError> {
        let mut guard = self
            .model
            .lock()
            .map_err(|_| GeneratorError::Load("model lock poisoned".into()))?;
        *guard = None;
        Ok(())
    }

    fn generate(
        &self,
        spec: &GenerationSpec,
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<Vec<GeneratedImage>, GeneratorError> {
        self.with_model(|model| run(model, spec, progress))
    }
}

fn run(
    model: &SdxlModel,
    spec: &GenerationSpec,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<Vec<GeneratedImage>, GeneratorError> {
    let err = |e: easel_sdxl::Error| engine_error(Stage::Generate, e);
    let req = request(model, spec).map_err(err)?;
    let mut noise = SeededNoise::new(req.seed, req.num_images);
    let out = model
        .generate(&req, &mut noise, &mut |p: Progress| {
            progress(p.step as u32, p.total as u32)
        })
        .map_err(err)?;
    let rgb = images::to_rgb(&out.images).map_err(err)?;
    let images = rgb
        .into_iter()
        .enumerate()
        .map(|(i, rgb)| GeneratedImage {
            rgb,
            parameters: metadata::parameters(&req, i, model.name()),
        })
        .collect();
    Ok(images)
}

/// An engine error kept whole, with its cause classified.
fn engine_error(stage: Stage, e: easel_sdxl::Error) -> GeneratorError {
    GeneratorError::Engine {
        stage,
        cause: cause(&e),
        source: Box::new(e),
    }
}

/// What kind of failure an engine error is.
fn cause(e: &easel_sdxl::Error) -> Cause {
    use easel_sdxl::Error as E;
    match e {
        E::InvalidRequest(_) | E::Image { .. } => Cause::BadInput,
        E::MissingFile { .. } | E::NotAModel { .. } | E::Io { .. } | E::Config { .. } | E::Weights { .. } => {
            Cause::BadModel
        }
        E::Unsupported(_) => Cause::Unsupported,
        E::Cancelled { .. } => Cause::Cancelled,
        E::Tensor(t) => tensor_cause(t),
    }
}

/// A failed tensor operation: candle reports allocation failures and driver errors only
/// in their text (`CUDA_ERROR_OUT_OF_MEMORY`, "out of memory").
fn tensor_cause(e: &candle_core::Error) -> Cause {
    let text = e.to_string().to_ascii_lowercase();
    if text.contains("out of memory") || text.contains("out_of_memory") || text.contains("alloc") {
        Cause::OutOfMemory
    } else if text.contains("cuda") || text.contains("driver") {
        Cause::Device
    } else {
        Cause::Internal
    }
}

fn request(model: &SdxlModel, spec: &GenerationSpec) -> easel_sdxl::Result<GenerateRequest> {
    let mut req = GenerateRequest::new(spec.prompt.clone(), spec.width as usize, spec.height as usize);
    req.negative_prompt = spec.negative_prompt.clone();
    req.steps = spec.steps as usize;
    req.guidance = spec.guidance;
    req.num_images = spec.num_images as usize;
    req.seed = spec.seed;
    req.cancel = Some(spec.cancel.clone());
    req.prompt_mode = if spec.weighted_prompt {
        PromptMode::A1111
    } else {
        PromptMode::Plain
    };
    if let Some(init) = &spec.init {
        let img = images::fit(init.image.clone(), spec.width, spec.height);
        req.init_image = Some(InitImage {
            pixels: images::to_tensor(&img, model.device())?,
            strength: init.strength,
        });
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ErrorKind;

    fn spec(width: u32) -> GenerationSpec {
        GenerationSpec {
            prompt: "a lighthouse".into(),
            negative_prompt: None,
            steps: 1,
            guidance: 5.0,
            width,
            height: 64,
            num_images: 1,
            seed: 1,
            init: None,
            weighted_prompt: false,
            cancel: easel_sdxl::cancel::Cancel::new(),
        }
    }

    #[test]
    fn a_bad_request_keeps_the_engine_error_and_is_the_senders_to_fix() {
        let g = SdxlGenerator::new(None, "cpu", None).unwrap();
        let err = g.generate(&spec(63), &mut |_, _| {}).unwrap_err();
        assert_eq!(err.cause(), Cause::BadInput);
        assert_eq!(err.job_error_kind(), ErrorKind::Validation);
        assert!(err.to_string().starts_with("generation failed: "), "{err}");
        let source = std::error::Error::source(&err).expect("the engine error is the source");
        let engine = source.downcast_ref::<easel_sdxl::Error>().expect("typed engine error");
        assert!(matches!(engine, easel_sdxl::Error::InvalidRequest(_)), "{engine:?}");
    }

    #[test]
    fn a_broken_model_folder_is_a_bad_model_failure() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model_index.json"), "{}").unwrap();
        let g = SdxlGenerator::new(Some(dir.path().into()), "cpu", None).unwrap();
        let err = g.load().unwrap_err();
        assert_eq!(err.cause(), Cause::BadModel);
        assert_eq!(err.job_error_kind(), ErrorKind::Model);
        assert!(
            err.to_string().starts_with("cannot load the model: missing model file"),
            "{err}"
        );
    }

    #[test]
    fn engine_causes_are_told_apart() {
        let cases = [
            (easel_sdxl::Error::Cancelled { done: 2, total: 9 }, Cause::Cancelled),
            (easel_sdxl::Error::Unsupported("flow".into()), Cause::Unsupported),
            (
                candle_core::Error::Msg("DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into()).into(),
                Cause::OutOfMemory,
            ),
            (
                candle_core::Error::Msg("CUDA_ERROR_LAUNCH_FAILED".into()).into(),
                Cause::Device,
            ),
            (
                candle_core::Error::Msg("shape mismatch in add".into()).into(),
                Cause::Internal,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(cause(&e), want, "{e}");
        }
    }
}
