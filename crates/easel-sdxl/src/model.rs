//! Why this exists: one loaded SDXL model — both tokenizers and text encoders, the
//! UNet, the VAE and the scheduler config — built from a diffusers folder or from the
//! bundled tiny model, with every architecture number read from its config files.
//! Text-to-image and image-to-image share this one set of weights.
//! A single-file checkpoint loads through the same path ([`SdxlModel::load_path`]): it is a
//! source whose weights are renamed on the fly (`checkpoint`).
//!
//! Where [`SdxlModel`]'s API lives, one file per part:
//! - this file: loading ([`SdxlModel::load_dir`], [`SdxlModel::load_path`],
//!   [`SdxlModel::load_tiny`]) and what a loaded model is (name, device, dtype, sizes,
//!   its tokenizers and components);
//! - `pipeline.rs`: generation — validate, encode the prompt, denoise, decode;
//! - `prompt/encode.rs`: prompt encoding by mode (A1111 weighting, long prompts) and the
//!   [`crate::PromptReport`] of what a prompt became;
//! - `lora/apply.rs`: applying and removing LoRAs.
//!
//! The fields are private to the engine; the methods above are the whole surface.

use candle_core::{DType, Device};

use crate::clip::ClipTextEncoder;
use crate::components::Components;
use crate::config::{ClipConfig, PipelineConfig, UNetConfig, VaeConfig};
use crate::loader::{read_json, DirSource};
use crate::lora::base::Recorded;
use crate::lora::state::LoraState;
use crate::schedulers::SchedulerConfig;
use crate::tokenizer::ClipTokenizer;
use crate::unet::UNet;
use crate::vae::Vae;
use crate::weights::Variant;
use crate::Result;

/// How to load a model.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub device: Device,
    pub dtype: DType,
    pub variant: Variant,
    /// For single-file checkpoints: a diffusers folder whose configs (and tokenizers, when
    /// it has them) describe the file, instead of Easel's shipped SDXL-base configs.
    pub config_dir: Option<std::path::PathBuf>,
    /// Run candle's own CPU ops instead of Easel's kernels, for comparing the two (the
    /// CLI and worker set it from the `candle_kernels` setting, `EASEL_CANDLE_KERNELS=1`). The choice is process-wide:
    /// the last model loaded sets it.
    pub candle_kernels: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
            variant: Variant::Auto,
            config_dir: None,
            candle_kernels: false,
        }
    }
}

/// A loaded SDXL model.
pub struct SdxlModel {
    pub(crate) tokenizer: ClipTokenizer,
    pub(crate) tokenizer_2: ClipTokenizer,
    pub(crate) text_encoder: ClipTextEncoder,
    pub(crate) text_encoder_2: ClipTextEncoder,
    pub(crate) unet: UNet,
    pub(crate) vae: Vae,
    pub(crate) unet_config: UNetConfig,
    pub(crate) scheduler_config: SchedulerConfig,
    pub(crate) pipeline_config: PipelineConfig,
    pub(crate) device: Device,
    pub(crate) dtype: DType,
    /// Where it came from, for logs and PNG metadata.
    pub(crate) name: String,
    /// The base tensors of the UNet and text encoders, for applying and removing LoRAs.
    pub(crate) lora: LoraState,
}

impl SdxlModel {
    /// Loads a diffusers folder.
    pub fn load_dir(path: &std::path::Path, opts: &LoadOptions) -> Result<Self> {
        if !path.is_dir() {
            return Err(crate::Error::MissingFile {
                path: path.to_path_buf(),
                hint: "pass a diffusers model folder (with model_index.json)".into(),
            });
        }
        Self::load(&DirSource::new(path), opts)
    }

    /// Loads a diffusers folder or a single-file SDXL checkpoint (`.safetensors`, original
    /// key layout; its configs are Easel's SDXL-base ones unless `opts.config_dir` names a folder).
    pub fn load_path(path: &std::path::Path, opts: &LoadOptions) -> Result<Self> {
        if path.is_file() {
            let file = crate::checkpoint::SingleFile::open(path, opts.config_dir.as_deref())?;
            return Self::load(&file, opts);
        }
        if !path.is_dir() {
            return Err(crate::Error::MissingFile {
                path: path.to_path_buf(),
                hint: "pass a diffusers model folder (with model_index.json) or a single-file SDXL checkpoint (.safetensors)"
                    .into(),
            });
        }
        Self::load(&DirSource::new(path), opts)
    }

    /// Loads the bundled tiny model (random weights: its images are abstract).
    pub fn load_tiny(opts: &LoadOptions) -> Result<Self> {
        Self::load(&crate::tiny::TINY_SDXL, opts)
    }

    /// Loads every component from `src`.
    fn load(parts: &dyn Components, opts: &LoadOptions) -> Result<Self> {
        let src = parts.files();
        crate::device::check_dtype(&opts.device, opts.dtype)?;
        crate::kernels::use_candle_ops(opts.candle_kernels);
        let pipeline_config: PipelineConfig = read_json(src, "model_index.json")?;
        let unet_config: UNetConfig = read_json(src, "unet/config.json")?;
        unet_config.validate()?;
        let vae_config: VaeConfig = read_json(src, "vae/config.json")?;
        vae_config.validate()?;
        let sched_bytes = src.read("scheduler/scheduler_config.json")?;
        let sched_path = std::path::PathBuf::from(format!("{}/scheduler/scheduler_config.json", src.describe()));
        let scheduler_config = SchedulerConfig::from_json(&sched_bytes, &sched_path)?;
        let (dev, dt) = (&opts.device, opts.dtype);
        // The SDXL VAE overflows in fp16 (black images); diffusers upcasts it when the
        // config says `force_upcast`. bf16 has the range and stays.
        let vae_dtype = if dt == DType::F16 && vae_config.force_upcast {
            DType::F32
        } else {
            dt
        };
        let recorded: [Recorded; 3] = Default::default();
        // CLIP-G is about two thirds of the weights: it loads on a thread of its own while
        // this one loads the rest (reading and converting weights is CPU-bound once the
        // files are in the page cache). Each thread holds one tensor in flight at most, so
        // the peak memory is the same.
        let (vae, unet, (text_encoder, te1_config), (text_encoder_2, te2_config), (tokenizer, tokenizer_2)) =
            std::thread::scope(|scope| -> Result<_> {
                let clip_g = scope.spawn(|| {
                    timed("text_encoder_2", || {
                        load_clip(parts, "text_encoder_2", true, opts, &recorded[2])
                    })
                });
                let rest = (|| -> Result<_> {
                    let vae = timed("vae", || {
                        let w = parts.weights("vae", "diffusion_pytorch_model", &opts.variant, vae_dtype)?;
                        Vae::new(&vae_config, w.var_builder(vae_dtype, dev)?).map_err(|e| w.error(e))
                    })?;
                    let unet = timed("unet", || {
                        let w = parts.weights("unet", "diffusion_pytorch_model", &opts.variant, dt)?;
                        UNet::new(&unet_config, recorded[0].wrap(w.var_builder(dt, dev)?)).map_err(|e| w.error(e))
                    })?;
                    let te1 = timed("text_encoder", || {
                        load_clip(parts, "text_encoder", false, opts, &recorded[1])
                    })?;
                    let tokenizers = timed("tokenizers", || {
                        Ok((parts.tokenizer("tokenizer")?, parts.tokenizer("tokenizer_2")?))
                    })?;
                    Ok((vae, unet, te1, tokenizers))
                })();
                let te2 = clip_g.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                let (vae, unet, te1, tokenizers) = rest?;
                Ok((vae, unet, te1, te2?, tokenizers))
            })?;
        Ok(Self {
            tokenizer,
            tokenizer_2,
            text_encoder,
            text_encoder_2,
            unet,
            vae,
            unet_config,
            scheduler_config,
            pipeline_config,
            device: dev.clone(),
            dtype: dt,
            name: src.describe(),
            lora: LoraState::new(recorded, te1_config, te2_config),
        })
    }

    /// Where the model came from (a path, or "the bundled tiny model"), for logs and PNG metadata.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device its weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype of its weights (the VAE may run in f32 when fp16 would overflow).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The scheduler config of the model (`scheduler/scheduler_config.json`).
    pub fn scheduler_config(&self) -> &SchedulerConfig {
        &self.scheduler_config
    }

    /// The first tokenizer (CLIP ViT-L's).
    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }

    /// The second tokenizer (OpenCLIP ViT-bigG's).
    pub fn tokenizer_2(&self) -> &ClipTokenizer {
        &self.tokenizer_2
    }

    /// The first text encoder, for checking it on its own ([`crate::parts`]).
    pub fn text_encoder(&self) -> &ClipTextEncoder {
        &self.text_encoder
    }

    /// The second text encoder (with the pooled projection).
    pub fn text_encoder_2(&self) -> &ClipTextEncoder {
        &self.text_encoder_2
    }

    /// The UNet, for checking one forward on its own ([`crate::parts`]).
    pub fn unet(&self) -> &UNet {
        &self.unet
    }

    /// The VAE, for checking decode and encode on their own ([`crate::parts`]).
    pub fn vae(&self) -> &Vae {
        &self.vae
    }

    /// Pixels per latent (8 for SDXL).
    pub fn vae_scale_factor(&self) -> usize {
        self.vae.config().scale_factor()
    }

    /// The default image side: the UNet's `sample_size` × the VAE factor (1024 for SDXL).
    pub fn default_size(&self) -> usize {
        self.unet_config.sample_size.unwrap_or(128) * self.vae_scale_factor()
    }

    /// Latent channels the UNet expects.
    pub fn latent_channels(&self) -> usize {
        self.unet_config.in_channels
    }
}

/// Runs `f`, logging how long component `what` took to load (debug level).
fn timed<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let start = std::time::Instant::now();
    let out = f();
    tracing::debug!(component = what, secs = start.elapsed().as_secs_f64(), "loaded");
    out
}

fn load_clip(
    parts: &dyn Components,
    sub: &str,
    projection: bool,
    opts: &LoadOptions,
    record: &Recorded,
) -> Result<(ClipTextEncoder, ClipConfig)> {
    let cfg: ClipConfig = read_json(parts.files(), &format!("{sub}/config.json"))?;
    cfg.validate()?;
    let w = parts.weights(sub, "model", &opts.variant, opts.dtype)?;
    let vb = record.wrap(w.var_builder(opts.dtype, &opts.device)?);
    let encoder = ClipTextEncoder::new(&cfg, projection, vb).map_err(|e| w.error(e))?;
    Ok((encoder, cfg))
}
