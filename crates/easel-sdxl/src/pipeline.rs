//! Why this exists: text-to-image and image-to-image exactly as diffusers'
//! `StableDiffusionXLPipeline` / `StableDiffusionXLImg2ImgPipeline` run them, so the same
//! weights, prompt and noise give the same image.
//!
//! Flow: validate → encode prompt (penultimate states of both encoders, concatenated;
//! pooled CLIP-G embedding; zeros for an absent negative prompt when the model says
//! `force_zeros_for_empty_prompt`) → initial latents (given, or drawn; img2img: encode,
//! sample, scale, add noise at the start step) → per step: scale input, UNet on
//! [uncond, cond], guidance, scheduler step → decode one image at a time.

use candle_core::{DType, Tensor};

use crate::cancel::Cancel;
use crate::model::SdxlModel;
use crate::noise::NoiseSource;
use crate::prompt::PromptMode;
use crate::schedulers::{self, SchedulerKind};
use crate::unet::UNetCond;
use crate::{Error, Result};

/// Largest batch one request may ask for.
pub const MAX_BATCH: usize = 6;
/// Largest number of denoising steps (the schedulers' training steps).
pub const MAX_STEPS: usize = 1000;
/// Largest image side in pixels (memory grows with the square of it).
pub const MAX_SIDE: usize = 4096;
/// Pixels per latent of every SDXL VAE: the factor sizes are checked against before a model
/// is loaded (the loaded model's own factor is checked again by [`SdxlModel::validate`]).
pub const SDXL_SCALE_FACTOR: usize = 8;

/// Checks one image side: a positive multiple of `f` up to [`MAX_SIDE`]; the message
/// suggests the nearest side that is.
pub fn validate_side(name: &str, v: usize, f: usize) -> Result<()> {
    if v == 0 || !v.is_multiple_of(f) || v > MAX_SIDE {
        let nearest = ((v + f / 2) / f).clamp(1, MAX_SIDE / f) * f;
        let (down, up) = (v / f * f, v / f * f + f);
        // Half-way between two valid sides (60 with a factor of 8): both are as near.
        let hint = if down > 0 && up <= MAX_SIDE && v - down == up - v {
            format!("{down} or {up}")
        } else {
            nearest.to_string()
        };
        return Err(Error::invalid(format!(
            "{name} {v} is not a positive multiple of {f} up to {MAX_SIDE}: try {hint}"
        )));
    }
    Ok(())
}

/// Checks the counts of a request that need no model: steps, batch size, guidance.
pub fn validate_counts(steps: usize, num_images: usize, guidance: f64) -> Result<()> {
    if steps == 0 || steps > MAX_STEPS {
        return Err(Error::invalid(format!(
            "steps must be between 1 and {MAX_STEPS}, got {steps}"
        )));
    }
    if !(1..=MAX_BATCH).contains(&num_images) {
        return Err(Error::invalid(format!(
            "num_images must be between 1 and {MAX_BATCH}, got {num_images}"
        )));
    }
    if !guidance.is_finite() || guidance < 0.0 {
        return Err(Error::invalid(format!(
            "guidance must be a finite number ≥ 0, got {guidance}"
        )));
    }
    Ok(())
}

/// Checks an image-to-image strength: in (0, 1], and leaving at least one denoising step.
pub fn validate_strength(steps: usize, strength: f64) -> Result<()> {
    if !(strength > 0.0 && strength <= 1.0) {
        return Err(Error::invalid(format!("strength must be in (0, 1], got {strength}")));
    }
    if img2img_start(steps, strength) >= steps {
        return Err(Error::invalid(format!(
            "strength {strength} with {steps} steps runs no denoising step: raise the strength or the steps"
        )));
    }
    Ok(())
}

/// An init image for image-to-image.
#[derive(Clone, Debug)]
pub struct InitImage {
    /// [1, 3, H, W] in [-1, 1], H and W equal to the request's size.
    pub pixels: Tensor,
    /// How much to change it: 0 < strength ≤ 1 (1 ignores the image).
    pub strength: f64,
}

/// One generation request.
#[derive(Clone, Debug)]
pub struct GenerateRequest {
    pub prompt: String,
    /// `None` means "no negative prompt" (zeros for SDXL), `Some("")` encodes "".
    pub negative_prompt: Option<String>,
    pub steps: usize,
    pub guidance: f64,
    pub width: usize,
    pub height: usize,
    pub num_images: usize,
    pub seed: u64,
    pub scheduler: SchedulerKind,
    pub init_image: Option<InitImage>,
    /// Initial latents [B, 4, h, w], used as diffusers' `latents=` argument.
    pub latents: Option<Tensor>,
    /// How prompt text is read: plain (diffusers, the default) or A1111 weighting.
    pub prompt_mode: PromptMode,
    /// Set it to stop the generation at its next check (before each UNet step, before the
    /// VAE decode, between images); the call then returns [`crate::Error::Cancelled`].
    pub cancel: Option<Cancel>,
}

impl GenerateRequest {
    /// A request with diffusers-like defaults at the given size.
    pub fn new(prompt: impl Into<String>, width: usize, height: usize) -> Self {
        Self {
            prompt: prompt.into(),
            negative_prompt: None,
            steps: 30,
            guidance: 5.0,
            width,
            height,
            num_images: 1,
            seed: 0,
            scheduler: SchedulerKind::default(),
            init_image: None,
            latents: None,
            prompt_mode: PromptMode::Plain,
            cancel: None,
        }
    }
}

/// Progress of a generation, passed to the caller after every step.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub step: usize,
    pub total: usize,
}

/// The result of a generation.
pub struct Generated {
    /// [B, 3, H, W] in [0, 1].
    pub images: Tensor,
    /// The final latents [B, 4, h, w] (before the VAE).
    pub latents: Tensor,
}

/// Text conditioning for the UNet, in the order [uncond, cond] when guided.
pub struct PromptEmbeds {
    pub context: Tensor,
    pub pooled: Tensor,
}

impl SdxlModel {
    /// Checks a request against this model, with a message saying how to fix it.
    pub fn validate(&self, req: &GenerateRequest) -> Result<()> {
        let f = self.vae_scale_factor();
        validate_side("width", req.width, f)?;
        validate_side("height", req.height, f)?;
        validate_counts(req.steps, req.num_images, req.guidance)?;
        if let Some(init) = &req.init_image {
            self.validate_init(req, init)?;
        }
        if let Some(l) = &req.latents {
            let want = [req.num_images, self.latent_channels(), req.height / f, req.width / f];
            if l.dims() != want {
                return Err(Error::invalid(format!(
                    "latents have shape {:?}; this request needs {want:?}",
                    l.dims()
                )));
            }
        }
        Ok(())
    }

    fn validate_init(&self, req: &GenerateRequest, init: &InitImage) -> Result<()> {
        validate_strength(req.steps, init.strength)?;
        let (_, c, h, w) = init.pixels.dims4()?;
        if c != 3 || h != req.height || w != req.width {
            return Err(Error::invalid(format!(
                "init image is {w}x{h} with {c} channels; the request is {}x{} RGB",
                req.width, req.height
            )));
        }
        if req.latents.is_some() {
            return Err(Error::invalid("initial latents and an init image cannot be combined"));
        }
        Ok(())
    }

    /// Encodes the prompt (and negative prompt when `guided`) for `batch` images, as
    /// diffusers' `encode_prompt` (plain prompts; see `encode_prompt_with` for A1111 mode).
    pub fn encode_prompt(
        &self,
        prompt: &str,
        negative: Option<&str>,
        guided: bool,
        batch: usize,
    ) -> Result<PromptEmbeds> {
        self.encode_prompt_with(crate::PromptMode::Plain, prompt, negative, guided, batch)
    }

    /// One prompt through both encoders: ([1, 77, D1+D2], [1, P]).
    pub fn encode_text(&self, text: &str) -> Result<(Tensor, Tensor)> {
        let dev = &self.device;
        let ids1 = Tensor::new(self.tokenizer.encode_padded(text), dev)?.unsqueeze(0)?;
        let ids2 = Tensor::new(self.tokenizer_2.encode_padded(text), dev)?.unsqueeze(0)?;
        let o1 = self.text_encoder.forward(&ids1)?;
        let o2 = self.text_encoder_2.forward(&ids2)?;
        let pooled = o2
            .text_embeds
            .ok_or_else(|| Error::Unsupported("text_encoder_2 has no projection".into()))?;
        Ok((Tensor::cat(&[o1.penultimate, o2.penultimate], 2)?, pooled))
    }

    /// Two texts encoded as one batch of two (each encoder runs once, its GEMMs on twice
    /// the rows): the same as [`Self::encode_text`] on each, in half the passes.
    pub fn encode_text_pair(&self, a: &str, b: &str) -> Result<[(Tensor, Tensor); 2]> {
        let dev = &self.device;
        let ids = |t: &crate::tokenizer::ClipTokenizer| -> Result<Tensor> {
            let (ra, rb) = (t.encode_padded(a), t.encode_padded(b));
            let n = ra.len();
            if rb.len() != n {
                return Err(Error::Unsupported(
                    "the two texts tokenized to different lengths".into(),
                ));
            }
            Ok(Tensor::from_vec([ra, rb].concat(), (2, n), dev)?)
        };
        let o1 = self.text_encoder.forward(&ids(&self.tokenizer)?)?;
        let o2 = self.text_encoder_2.forward(&ids(&self.tokenizer_2)?)?;
        let pooled = o2
            .text_embeds
            .ok_or_else(|| Error::Unsupported("text_encoder_2 has no projection".into()))?;
        let ctx = Tensor::cat(&[o1.penultimate, o2.penultimate], 2)?;
        let row = |i: usize| -> Result<(Tensor, Tensor)> { Ok((ctx.narrow(0, i, 1)?, pooled.narrow(0, i, 1)?)) };
        Ok([row(0)?, row(1)?])
    }

    /// SDXL's `time_ids` for a size: (h, w, 0, 0, h, w), one row per batch element.
    pub fn time_ids(&self, req: &GenerateRequest, rows: usize) -> Result<Tensor> {
        let (h, w) = (req.height as f32, req.width as f32);
        Ok(Tensor::new(&[h, w, 0.0, 0.0, h, w], &self.device)?
            .unsqueeze(0)?
            .repeat((rows, 1))?)
    }

    /// Runs a request to the end; `on_step` is called after each denoising step.
    pub fn generate(
        &self,
        req: &GenerateRequest,
        noise: &mut dyn NoiseSource,
        on_step: &mut dyn FnMut(Progress),
    ) -> Result<Generated> {
        let latents = self.denoise(req, noise, on_step)?;
        let b = latents.dim(0)?;
        let mut images = Vec::with_capacity(b);
        for i in 0..b {
            check(req, req.steps, req.steps)?;
            images.push(self.vae.latents_to_image(&latents.narrow(0, i, 1)?)?);
        }
        Ok(Generated {
            images: Tensor::cat(&images, 0)?,
            latents,
        })
    }

    /// Final latents [B, 4, h, w] to images [B, 3, H, W] in [0, 1], one image at a time
    /// (the VAE's activations at full resolution dominate memory).
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let b = latents.dim(0)?;
        let mut images = Vec::with_capacity(b);
        for i in 0..b {
            images.push(self.vae.latents_to_image(&latents.narrow(0, i, 1)?)?);
        }
        Ok(Tensor::cat(&images, 0)?)
    }

    /// The denoising loop; returns the final latents.
    pub fn denoise(
        &self,
        req: &GenerateRequest,
        noise: &mut dyn NoiseSource,
        on_step: &mut dyn FnMut(Progress),
    ) -> Result<Tensor> {
        self.validate(req)?;
        let emb = self.encode_request(req)?;
        self.denoise_checked(req, &emb, noise, on_step)
    }

    /// The request's prompt (and negative prompt when guided) encoded for its batch, in
    /// its prompt mode: what `denoise_embedded` expects.
    pub fn encode_request(&self, req: &GenerateRequest) -> Result<PromptEmbeds> {
        self.encode_prompt_with(
            req.prompt_mode,
            &req.prompt,
            req.negative_prompt.as_deref(),
            req.guidance > 1.0,
            req.num_images,
        )
    }

    /// The denoising loop with the prompt already encoded (by `encode_request`); returns
    /// the final latents.
    pub fn denoise_embedded(
        &self,
        req: &GenerateRequest,
        emb: &PromptEmbeds,
        noise: &mut dyn NoiseSource,
        on_step: &mut dyn FnMut(Progress),
    ) -> Result<Tensor> {
        self.validate(req)?;
        self.denoise_checked(req, emb, noise, on_step)
    }

    fn denoise_checked(
        &self,
        req: &GenerateRequest,
        emb: &PromptEmbeds,
        noise: &mut dyn NoiseSource,
        on_step: &mut dyn FnMut(Progress),
    ) -> Result<Tensor> {
        let guided = req.guidance > 1.0;
        let b = req.num_images;
        let rows = if guided { 2 * b } else { b };
        let time_ids = self.time_ids(req, rows)?;
        let mut sched = schedulers::build(req.scheduler, &self.scheduler_config, req.steps)?;
        let (start, mut latents) = self.initial_latents(req, sched.as_ref(), noise)?;
        let timesteps = sched.timesteps().to_vec();
        let cond = UNetCond {
            context: &emb.context,
            text_embeds: Some(&emb.pooled),
            time_ids: Some(&time_ids),
        };
        let total = timesteps.len() - start;
        for (done, (i, &t)) in timesteps.iter().enumerate().skip(start).enumerate() {
            check(req, done, total)?;
            let input = if guided {
                Tensor::cat(&[&latents, &latents], 0)?
            } else {
                latents.clone()
            };
            let input = sched.scale_model_input(&input, i)?;
            let eps = self.unet.forward(&input, t, &cond)?;
            let eps = if guided { guide(&eps, b, req.guidance)? } else { eps };
            latents = sched.step(&eps, i, &latents, noise)?;
            on_step(Progress { step: done + 1, total });
        }
        Ok(latents)
    }

    /// Text-to-image: given or drawn latents × init sigma, from step 0. Image-to-image:
    /// the encoded image noised to the start step.
    fn initial_latents(
        &self,
        req: &GenerateRequest,
        sched: &dyn schedulers::Scheduler,
        noise: &mut dyn NoiseSource,
    ) -> Result<(usize, Tensor)> {
        let f = self.vae_scale_factor();
        let shape = [req.num_images, self.latent_channels(), req.height / f, req.width / f];
        if let Some(init) = &req.init_image {
            let start = img2img_start(req.steps, init.strength);
            // The encoder is deterministic: encode once, then draw one posterior sample per image.
            let pixels = init.pixels.to_device(&self.device)?.to_dtype(DType::F32)?;
            let dist = self.vae.encode(&pixels)?.repeat(req.num_images)?;
            let x0 = self.vae.scale_latents(&dist.sample(noise)?)?;
            let n = noise.randn(&shape, &self.device)?;
            return Ok((start, sched.add_noise(&x0, &n, start)?));
        }
        let latents = match &req.latents {
            Some(l) => l.to_device(&self.device)?.to_dtype(DType::F32)?,
            None => noise.randn(&shape, &self.device)?,
        };
        Ok((0, (latents * sched.init_noise_sigma())?))
    }
}

/// [`Error::Cancelled`] if the request's flag is set.
fn check(req: &GenerateRequest, done: usize, total: usize) -> Result<()> {
    match &req.cancel {
        Some(c) if c.is_cancelled() => Err(Error::Cancelled { done, total }),
        _ => Ok(()),
    }
}

/// Classifier-free guidance: `uncond + g · (cond − uncond)` over [uncond; cond].
fn guide(eps: &Tensor, b: usize, g: f64) -> Result<Tensor> {
    let uncond = eps.narrow(0, 0, b)?;
    let cond = eps.narrow(0, b, b)?;
    Ok((&uncond + ((cond - &uncond)? * g)?)?)
}

/// The first step index of image-to-image, as diffusers' `get_timesteps`.
pub fn img2img_start(steps: usize, strength: f64) -> usize {
    let init = ((steps as f64 * strength) as usize).min(steps);
    steps - init
}
