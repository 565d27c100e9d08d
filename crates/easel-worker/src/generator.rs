//! Why this exists: the worker reaches the engine only through [`Generator`], a small
//! blocking trait (call it from `spawn_blocking`), so the whole job pipeline — queues,
//! storage, callbacks, shutdown — runs in tests with [`FakeGenerator`] in milliseconds, and
//! the real [`crate::SdxlGenerator`] is one adapter among possible others.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use image::{Rgb, RgbImage};

use crate::contract::ErrorKind;

/// What to generate (validated by the job contract).
#[derive(Clone, Debug)]
pub struct GenerationSpec {
    pub prompt: String,
    /// `None`: no negative prompt at all.
    pub negative_prompt: Option<String>,
    pub steps: u32,
    pub guidance: f64,
    pub width: u32,
    pub height: u32,
    pub num_images: u32,
    /// Image `i` uses `seed + i`.
    pub seed: u64,
    pub init: Option<InitSpec>,
    /// Parse the prompt as A1111-style weighted text (`(word:1.3)`, `[word]`, `BREAK`) with
    /// prompts longer than 77 tokens in chunks; set when the job enables compel.
    pub weighted_prompt: bool,
    /// Set to stop the generation at its next check (a cancel, a timeout); the generator
    /// then fails with [`Cause::Cancelled`].
    pub cancel: easel_sdxl::cancel::Cancel,
}

/// Image-to-image input, already fitted to the spec's size.
#[derive(Clone, Debug)]
pub struct InitSpec {
    pub image: RgbImage,
    pub strength: f64,
}

/// One generated image and the parameters text for its PNG.
#[derive(Clone, Debug)]
pub struct GeneratedImage {
    pub rgb: RgbImage,
    /// A1111-style `parameters` text written into the PNG.
    pub parameters: String,
}

/// What a generator says about itself.
#[derive(Clone, Debug)]
pub struct GeneratorInfo {
    /// Model name for logs.
    pub name: String,
    /// Preset image side to use instead of the contract's 1024 (the tiny model's 64), or `None`.
    pub preset_side: Option<u32>,
    /// `cpu`, `cuda:0`, ...
    pub device: String,
    /// Whether `weighted_prompt` is honoured (the SDXL engine does; the fake does not).
    pub weighted_prompts: bool,
}

/// Memory figures for `/memory/status`, in GB.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryReport {
    pub total_gb: f64,
    pub allocated_gb: f64,
    pub available_gb: f64,
}

/// Why a generator failed.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    /// Loading failed with only a message (a crashed loader, a poisoned lock).
    #[error("cannot load the model: {0}")]
    Load(String),
    /// Generating failed with only a message.
    #[error("generation failed: {0}")]
    Generate(String),
    /// The engine failed: at which `stage`, what kind of `cause`, and the engine's own
    /// typed error as `source` (for the SDXL engine an `easel_sdxl::Error`).
    #[error("{stage}: {source}")]
    Engine {
        stage: Stage,
        cause: Cause,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Which step of a generator's work failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Load,
    Generate,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Load => "cannot load the model",
            Stage::Generate => "generation failed",
        })
    }
}

/// What went wrong, as far as the generator can tell (the adapter classifies its engine's
/// errors into these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The job asked for something invalid (size, steps, strength, an unreadable init image).
    BadInput,
    /// The model's files are missing, unreadable, corrupt or inconsistent.
    BadModel,
    /// The model or the job needs something the engine does not implement.
    Unsupported,
    /// The job was cancelled before it finished.
    Cancelled,
    /// The accelerator (or the host) ran out of memory.
    OutOfMemory,
    /// The device failed (driver, CUDA runtime).
    Device,
    /// Anything else (an engine bug).
    Internal,
}

impl Cause {
    /// A short name for logs and metrics; `cancelled` is the `error_type` the callback
    /// contract reserves for cancelled jobs.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::BadInput => "bad_input",
            Cause::BadModel => "bad_model",
            Cause::Unsupported => "unsupported",
            Cause::Cancelled => "cancelled",
            Cause::OutOfMemory => "out_of_memory",
            Cause::Device => "device_error",
            Cause::Internal => "internal",
        }
    }
}

impl GeneratorError {
    /// What went wrong; a failure known only by its message is [`Cause::Internal`].
    pub fn cause(&self) -> Cause {
        match self {
            GeneratorError::Engine { cause, .. } => *cause,
            GeneratorError::Load(_) | GeneratorError::Generate(_) => Cause::Internal,
        }
    }

    /// The failed callback's kind for this failure: bad input is the sender's to fix
    /// (`validation_error`); a cancel, memory, device or model failure is named as such; the
    /// rest is the engine's (`generation_error`).
    pub fn job_error_kind(&self) -> ErrorKind {
        match self.cause() {
            Cause::BadInput => ErrorKind::Validation,
            Cause::BadModel => ErrorKind::Model,
            Cause::Cancelled => ErrorKind::Cancelled,
            Cause::OutOfMemory => ErrorKind::OutOfMemory,
            Cause::Device => ErrorKind::Device,
            Cause::Unsupported | Cause::Internal => ErrorKind::Generation,
        }
    }
}

/// An image generator. Methods block; the worker calls them from `spawn_blocking` and
/// serialises them (one job, load or unload at a time).
pub trait Generator: Send + Sync {
    /// Name, preset size override and device.
    fn info(&self) -> GeneratorInfo;
    /// Whether the model is in memory.
    fn is_loaded(&self) -> bool;
    /// Loads the model (no-op when loaded).
    fn load(&self) -> Result<(), GeneratorError>;
    /// Frees the model (no-op when unloaded). A later `generate` loads it again.
    fn unload(&self) -> Result<(), GeneratorError>;
    /// Generates `spec.num_images` images; `progress(step, total)` after each step.
    fn generate(
        &self,
        spec: &GenerationSpec,
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<Vec<GeneratedImage>, GeneratorError>;
    /// Accelerator memory, zeros on CPU.
    fn memory(&self) -> MemoryReport {
        MemoryReport::default()
    }
}

/// A fast fake for tests and demos: solid-colour images derived from the seed, after an
/// optional delay (to hold a job "in flight" in shutdown and crash tests).
pub struct FakeGenerator {
    delay: Duration,
    step_delay: Duration,
    loaded: AtomicBool,
}

impl FakeGenerator {
    /// A fake that takes `delay` per job.
    pub fn new(delay: Duration) -> Self {
        Self {
            delay,
            step_delay: Duration::ZERO,
            loaded: AtomicBool::new(false),
        }
    }

    /// A fake that takes `step` per denoising step (a long job is slow, a short one fast).
    pub fn per_step(step: Duration) -> Self {
        Self {
            step_delay: step,
            ..Self::new(Duration::ZERO)
        }
    }
}

impl Generator for FakeGenerator {
    fn info(&self) -> GeneratorInfo {
        GeneratorInfo {
            name: "fake".into(),
            preset_side: Some(64),
            device: "cpu".into(),
            weighted_prompts: false,
        }
    }

    fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    fn load(&self) -> Result<(), GeneratorError> {
        self.loaded.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn unload(&self) -> Result<(), GeneratorError> {
        self.loaded.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn generate(
        &self,
        spec: &GenerationSpec,
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<Vec<GeneratedImage>, GeneratorError> {
        self.load()?;
        // The delay is spread over the steps, so progress and cancellation behave as in the engine.
        let steps = spec.steps.max(1);
        for step in 1..=steps {
            if spec.cancel.is_cancelled() {
                return Err(GeneratorError::Engine {
                    stage: Stage::Generate,
                    cause: Cause::Cancelled,
                    source: format!("cancelled after {} of {steps} steps", step - 1).into(),
                });
            }
            std::thread::sleep(self.delay / steps + self.step_delay);
            progress(step, steps);
        }
        let images = (0..spec.num_images)
            .map(|i| fake_image(spec, spec.seed.wrapping_add(i as u64)))
            .collect();
        Ok(images)
    }
}

fn fake_image(spec: &GenerationSpec, seed: u64) -> GeneratedImage {
    let b = seed.to_le_bytes();
    let rgb = RgbImage::from_pixel(spec.width, spec.height, Rgb([b[0], b[1], b[2]]));
    let parameters = format!(
        "{}\nSteps: {}, Seed: {seed}, Size: {}x{}, Model: fake",
        spec.prompt, spec.steps, spec.width, spec.height
    );
    GeneratedImage { rgb, parameters }
}
