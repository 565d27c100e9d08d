//! Why this exists: turning an [`Envelope`] into a [`JobSpec`] the worker can run, or a
//! [`JobError`] whose message tells the producer exactly which field was wrong and what is
//! accepted. Every bound is a named constant with its reason.
//!
//! Easel's deliberate differences from the Python worker (see the contract): `num_images` is
//! 1..=6 (others fail instead of silently becoming 1); seed `0` is a real seed; a given
//! `negative_prompt` is honoured; `exact_copy_mode` runs at least one denoising step.

use serde_json::{Map, Value};

use super::envelope::{kind_of, Envelope};
use super::preset::{merge, JobType, DEFAULT_NEGATIVE_PROMPT};
use super::ErrorKind;
use super::JobError;

/// Smallest image side: below this SDXL's latents are too small to mean anything.
pub const MIN_SIDE: u32 = 64;
/// Largest image side: 2048² is SDXL's practical limit and already 4× the memory of 1024².
pub const MAX_SIDE: u32 = 2048;
/// Sides must be multiples of the VAE's 8× downsampling.
pub const SIDE_MULTIPLE: u32 = 8;
/// Most steps a job may ask for: SDXL gains nothing past ~100; long jobs are bounded by their
/// time limit and can be cancelled, so the cap only stops nonsense.
pub const MAX_STEPS: u32 = 200;
/// Largest guidance scale: beyond 30 images are saturated noise.
pub const MAX_GUIDANCE: f64 = 30.0;
/// Images per job, as the engine's batch limit.
pub const MAX_IMAGES: u32 = 6;
/// Longest prompt (and negative prompt) in characters: CLIP reads 77 tokens; this stops abuse.
pub const MAX_PROMPT_CHARS: usize = 4000;
/// Longest job id or user id: both become storage path segments (ids are UUIDs, 36 characters).
pub const MAX_SEGMENT_CHARS: usize = 128;
/// Longest time limit a job may ask for (`config.timeout_secs`): two hours.
pub const MAX_TIMEOUT_SECS: u64 = 7200;
/// img2img strength when the job gives none.
pub const DEFAULT_STRENGTH: f64 = 0.5;
/// img2img strength for `exact_copy_mode` (a light touch), raised to reach one step.
pub const EXACT_COPY_STRENGTH: f64 = 0.05;

/// A reference image for image-to-image.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceSpec {
    pub url: String,
    /// The strength actually used (raised so that at least one step runs).
    pub strength: f64,
    /// Denoising steps that will run: `floor(steps × strength)`, at least 1.
    pub effective_steps: u32,
    pub exact_copy: bool,
}

/// A validated job, ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSpec {
    pub id: String,
    pub job_type: JobType,
    pub user_id: String,
    pub prompt: String,
    /// The prompt given to the engine (with compel weights appended when enabled).
    pub final_prompt: String,
    /// The negative prompt used (`None` only if the job sent an empty one).
    pub negative_prompt: Option<String>,
    pub steps: u32,
    pub guidance: f64,
    pub width: u32,
    pub height: u32,
    pub num_images: u32,
    pub seed: u64,
    pub reference: Option<ReferenceSpec>,
    pub compel_enabled: bool,
    pub compel_weights: Option<String>,
    /// `config.timeout_secs`: this job's own time limit (else the worker's per-type default).
    pub timeout_secs: Option<u64>,
}

impl JobSpec {
    /// Validates `env` against the contract; `side` is the generator's preset size override.
    pub fn from_envelope(env: &Envelope, side: Option<u32>) -> Result<Self, JobError> {
        path_segment("id", &env.id)?;
        let job_type = job_type(env)?;
        let user_id = user_id(env)?;
        let prompt = text(env, &["prompt"], "prompt")?.ok_or_else(|| missing("prompt", "a string (may be empty)"))?;
        let config = merge(job_type.preset(side), object(env, "config")?);
        let metadata = object(env, "metadata")?.cloned().unwrap_or_default();
        let (compel_enabled, compel_weights) = compel(env)?;
        let steps = bounded_int(&config, "num_inference_steps", 1, MAX_STEPS as u64)? as u32;
        let spec = Self {
            id: env.id.clone(),
            job_type,
            user_id,
            final_prompt: final_prompt(&prompt, compel_enabled, compel_weights.as_deref()),
            prompt,
            negative_prompt: negative_prompt(&config)?,
            steps,
            guidance: guidance(&config)?,
            width: side_of(&config, "width")?,
            height: side_of(&config, "height")?,
            num_images: bounded_int(&config, "num_images", 1, MAX_IMAGES as u64)? as u32,
            seed: seed(&config)?.unwrap_or_else(random_seed),
            reference: reference(&metadata, steps)?,
            compel_enabled,
            compel_weights,
            timeout_secs: timeout(&config)?,
        };
        Ok(spec)
    }
}

fn job_type(env: &Envelope) -> Result<JobType, JobError> {
    let t = text(env, &["type", "jobType"], "type")?
        .ok_or_else(|| missing("type", "sdxl_image_fast or sdxl_image_high"))?;
    JobType::from_wire(&t).ok_or_else(|| {
        JobError::new(
            ErrorKind::UnsupportedJobType,
            format!("job type {t:?} is not supported by the SDXL worker: use sdxl_image_fast or sdxl_image_high"),
        )
    })
}

fn user_id(env: &Envelope) -> Result<String, JobError> {
    let u = text(env, &["user_id", "userId"], "user_id")?.ok_or_else(|| missing("user_id", "the user's id"))?;
    path_segment("user_id", &u)?;
    Ok(u)
}

/// Whether `s` can be one storage path segment as it is: 1 to [`MAX_SEGMENT_CHARS`] of
/// `A-Z a-z 0-9 . _ -`, and not `.` or `..`. Anything else could leave the job's folder
/// (`..`, `/`), be cut or reinterpreted by an HTTP path (`#`, `?`, `%`) or a log line (CR, LF).
pub fn is_path_segment(s: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    (1..=MAX_SEGMENT_CHARS).contains(&s.len()) && s != "." && s != ".." && s.chars().all(allowed)
}

fn path_segment(field: &str, value: &str) -> Result<(), JobError> {
    if is_path_segment(value) {
        return Ok(());
    }
    Err(JobError::invalid(format!(
        "{field} {} cannot be a storage path segment: use 1 to {MAX_SEGMENT_CHARS} of the characters \
         A-Z a-z 0-9 . _ - (not \".\" or \"..\"); nothing was stored",
        crate::logsafe::quoted(value)
    )))
}

fn missing(field: &str, what: &str) -> JobError {
    JobError::invalid(format!("payload has no \"{field}\" (or it is null): set it to {what}"))
}

/// A string field (first of `names`), `None` when absent or null.
fn text(env: &Envelope, names: &[&str], label: &str) -> Result<Option<String>, JobError> {
    match env.field(names) {
        None => Ok(None),
        Some(Value::String(s)) if s.chars().count() > MAX_PROMPT_CHARS => Err(JobError::invalid(format!(
            "\"{label}\" is {} characters long; the limit is {MAX_PROMPT_CHARS}",
            s.chars().count()
        ))),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(JobError::invalid(format!(
            "\"{label}\" is {} but must be a string",
            kind_of(other)
        ))),
    }
}

/// An object field; `null` or absent is `None`.
fn object<'a>(env: &'a Envelope, name: &str) -> Result<Option<&'a Map<String, Value>>, JobError> {
    match env.field(&[name]) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(JobError::invalid(format!(
            "\"{name}\" is {} but must be an object",
            kind_of(other)
        ))),
    }
}

fn compel(env: &Envelope) -> Result<(bool, Option<String>), JobError> {
    let enabled = match env.field(&["compel_enabled"]) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(JobError::invalid(format!(
                "\"compel_enabled\" is {} but must be true or false",
                kind_of(other)
            )))
        }
    };
    let weights = text(env, &["compel_weights"], "compel_weights")?.filter(|w| !w.trim().is_empty());
    Ok((enabled, weights))
}

/// Python concatenates `prompt + " " + compel_weights`; Easel does the same (as text).
fn final_prompt(prompt: &str, enabled: bool, weights: Option<&str>) -> String {
    match (enabled, weights) {
        (true, Some(w)) if prompt.is_empty() => w.to_string(),
        (true, Some(w)) => format!("{prompt} {w}"),
        _ => prompt.to_string(),
    }
}

/// A whole number from a JSON number (integral) or a numeric string.
fn as_int(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e18)
                    .map(|f| f as i128)
            }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

fn bounded_int(config: &Map<String, Value>, key: &str, min: u64, max: u64) -> Result<u64, JobError> {
    let v = config
        .get(key)
        .ok_or_else(|| JobError::invalid(format!("config.{key} is missing")))?;
    match as_int(v) {
        Some(n) if n >= min as i128 && n <= max as i128 => Ok(n as u64),
        Some(n) => Err(JobError::invalid(format!(
            "config.{key} is {n}; it must be between {min} and {max}"
        ))),
        None => Err(JobError::invalid(format!(
            "config.{key} is {v} but must be a whole number between {min} and {max}"
        ))),
    }
}

fn timeout(config: &Map<String, Value>) -> Result<Option<u64>, JobError> {
    match config.get("timeout_secs") {
        None | Some(Value::Null) => Ok(None),
        Some(_) => bounded_int(config, "timeout_secs", 1, MAX_TIMEOUT_SECS).map(Some),
    }
}

fn side_of(config: &Map<String, Value>, key: &str) -> Result<u32, JobError> {
    let side = bounded_int(config, key, MIN_SIDE as u64, MAX_SIDE as u64)? as u32;
    if !side.is_multiple_of(SIDE_MULTIPLE) {
        let down = side / SIDE_MULTIPLE * SIDE_MULTIPLE;
        return Err(JobError::invalid(format!(
            "config.{key} is {side}; it must be a multiple of {SIDE_MULTIPLE}: try {down} or {}",
            down + SIDE_MULTIPLE
        )));
    }
    Ok(side)
}

fn guidance(config: &Map<String, Value>) -> Result<f64, JobError> {
    let v = config.get("guidance_scale").cloned().unwrap_or(Value::Null);
    match as_float(&v) {
        Some(g) if (0.0..=MAX_GUIDANCE).contains(&g) => Ok(g),
        _ => Err(JobError::invalid(format!(
            "config.guidance_scale is {v}; it must be a number between 0 and {MAX_GUIDANCE}"
        ))),
    }
}

fn seed(config: &Map<String, Value>) -> Result<Option<u64>, JobError> {
    let Some(v) = config.get("seed").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match as_int(v) {
        Some(n) if (0..=u64::MAX as i128).contains(&n) => Ok(Some(n as u64)),
        _ => Err(JobError::invalid(format!(
            "config.seed is {v}; it must be a whole number ≥ 0 (or null for a random seed)"
        ))),
    }
}

/// A random seed from the thread's cryptographically seeded RNG (Python used the clock).
fn random_seed() -> u64 {
    u64::from(rand::random::<u32>())
}

fn negative_prompt(config: &Map<String, Value>) -> Result<Option<String>, JobError> {
    match config.get("negative_prompt") {
        None | Some(Value::Null) => Ok(Some(DEFAULT_NEGATIVE_PROMPT.to_string())),
        Some(Value::String(s)) if s.chars().count() > MAX_PROMPT_CHARS => Err(JobError::invalid(format!(
            "config.negative_prompt is longer than {MAX_PROMPT_CHARS} characters"
        ))),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(JobError::invalid(format!(
            "config.negative_prompt is {} but must be a string",
            kind_of(other)
        ))),
    }
}

fn reference(metadata: &Map<String, Value>, steps: u32) -> Result<Option<ReferenceSpec>, JobError> {
    let url = match metadata.get("reference_image_url") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => {
            return Err(JobError::invalid(format!(
                "metadata.reference_image_url is {} but must be a URL string",
                kind_of(other)
            )))
        }
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(JobError::invalid(format!(
            "metadata.reference_image_url {url:?} must be an http:// or https:// URL"
        )));
    }
    let exact_copy = match metadata.get("exact_copy_mode") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(JobError::invalid(format!(
                "metadata.exact_copy_mode is {} but must be a boolean",
                kind_of(other)
            )))
        }
    };
    let asked = if exact_copy {
        EXACT_COPY_STRENGTH
    } else {
        strength(metadata)?
    };
    let (strength, effective_steps) = at_least_one_step(asked, steps);
    Ok(Some(ReferenceSpec {
        url,
        strength,
        effective_steps,
        exact_copy,
    }))
}

fn strength(metadata: &Map<String, Value>) -> Result<f64, JobError> {
    let read = |key: &str| -> Result<Option<f64>, JobError> {
        match metadata.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match as_float(v) {
                Some(f) if (0.0..=1.0).contains(&f) => Ok(Some(f)),
                _ => Err(JobError::invalid(format!(
                    "metadata.{key} is {v}; it must be a number between 0 and 1"
                ))),
            },
        }
    };
    if let Some(d) = read("denoise_strength")? {
        return Ok(d);
    }
    Ok(read("reference_strength")?.map(|r| 1.0 - r).unwrap_or(DEFAULT_STRENGTH))
}

/// Raises `strength` to the smallest value that runs one step, as diffusers counts steps
/// (`floor(steps × strength)`); returns it with the number of steps that will run.
pub fn at_least_one_step(strength: f64, steps: u32) -> (f64, u32) {
    let run = |s: f64| ((steps as f64) * s).floor() as u32;
    if run(strength) >= 1 {
        return (strength, run(strength).min(steps));
    }
    let min = ((1.0 / steps as f64) * 1e6).ceil() / 1e6;
    let min = if run(min) >= 1 { min } else { min + 1e-6 };
    (min.min(1.0), 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::parse;

    fn spec(raw: &str) -> Result<JobSpec, JobError> {
        JobSpec::from_envelope(&parse(raw).unwrap(), None)
    }

    #[test]
    fn a_minimal_job_gets_the_preset_and_default_negative_prompt() {
        let s = spec(r#"{"id":"j","type":"sdxl_image_fast","prompt":"p","user_id":"u"}"#).unwrap();
        assert_eq!(
            (s.steps, s.guidance, s.width, s.height, s.num_images),
            (15, 6.0, 1024, 1024, 1)
        );
        assert_eq!(s.negative_prompt.as_deref(), Some(DEFAULT_NEGATIVE_PROMPT));
        assert!(s.reference.is_none());
    }

    #[test]
    fn legacy_aliases_and_nulls_are_accepted() {
        let raw = r#"{"jobId":"j","jobType":"sdxl_image_high","prompt":"","userId":"u","config":null,"metadata":null,
                      "compel_enabled":null,"compel_weights":null}"#;
        let s = spec(raw).unwrap();
        assert_eq!(
            (s.job_type, s.user_id.as_str(), s.steps),
            (JobType::SdxlImageHigh, "u", 25)
        );
    }

    #[test]
    fn seed_zero_is_a_real_seed_and_numeric_strings_are_read() {
        let s = spec(r#"{"id":"j","type":"sdxl_image_fast","prompt":"p","user_id":"u","config":{"seed":0}}"#).unwrap();
        assert_eq!(s.seed, 0);
        let s =
            spec(r#"{"id":"j","type":"sdxl_image_fast","prompt":"p","user_id":"u","config":{"seed":"42"}}"#).unwrap();
        assert_eq!(s.seed, 42);
    }

    #[test]
    fn compel_weights_are_appended_to_the_prompt() {
        let raw = r#"{"id":"j","type":"sdxl_image_fast","prompt":"a cat","user_id":"u","compel_enabled":true,
                      "compel_weights":"(cat:1.3)"}"#;
        assert_eq!(spec(raw).unwrap().final_prompt, "a cat (cat:1.3)");
    }

    #[test]
    fn every_bound_is_enforced_with_a_message_naming_the_field() {
        for (config, needle) in [
            (r#"{"num_images":7}"#, "config.num_images is 7"),
            (r#"{"num_images":0}"#, "config.num_images is 0"),
            (r#"{"num_images":"three"}"#, "config.num_images"),
            (r#"{"num_inference_steps":0}"#, "num_inference_steps"),
            (r#"{"num_inference_steps":1000}"#, "num_inference_steps"),
            (r#"{"guidance_scale":-1}"#, "guidance_scale"),
            (r#"{"guidance_scale":"high"}"#, "guidance_scale"),
            (r#"{"width":1020}"#, "multiple of 8: try 1016 or 1024"),
            (r#"{"height":8}"#, "config.height"),
            (r#"{"width":4096}"#, "config.width"),
            (r#"{"seed":-1}"#, "config.seed"),
            (r#"{"seed":1.5}"#, "config.seed"),
            (r#"{"negative_prompt":5}"#, "negative_prompt"),
        ] {
            let raw = format!(r#"{{"id":"j","type":"sdxl_image_fast","prompt":"p","user_id":"u","config":{config}}}"#);
            let e = spec(&raw).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Validation, "{config}");
            assert!(e.message.contains(needle), "{config}: {}", e.message);
        }
    }

    #[test]
    fn img2img_strength_falls_back_and_exact_copy_runs_one_step() {
        let base = r#"{"id":"j","type":"sdxl_image_fast","prompt":"p","user_id":"u","metadata":"#;
        let s = spec(&format!(
            r#"{base}{{"reference_image_url":"https://x/y.png","reference_strength":0.2}}}}"#
        ))
        .unwrap();
        assert!((s.reference.unwrap().strength - 0.8).abs() < 1e-9);
        let s = spec(&format!(
            r#"{base}{{"reference_image_url":"https://x/y.png","exact_copy_mode":true}}}}"#
        ))
        .unwrap();
        let r = s.reference.unwrap();
        assert_eq!(r.effective_steps, 1);
        assert!(((15.0 * r.strength).floor() as u32) >= 1);
        let e = spec(&format!(r#"{base}{{"reference_image_url":"file:///etc/passwd"}}}}"#)).unwrap_err();
        assert!(e.message.contains("http://"));
    }

    #[test]
    fn unknown_types_and_bad_user_ids_fail_clearly() {
        let e = spec(r#"{"id":"j","type":"video","prompt":"p","user_id":"u"}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnsupportedJobType);
        let e = spec(r#"{"id":"j","type":"sdxl_image_fast","prompt":"p","user_id":"../etc"}"#).unwrap_err();
        assert!(e.message.contains("user_id"));
    }

    #[test]
    fn ids_that_are_not_safe_path_segments_are_refused() {
        let long = "a".repeat(MAX_SEGMENT_CHARS + 1);
        let bad = [
            "..",
            ".",
            "a/b",
            "../../evil-bucket/x",
            "a#b",
            "a?b",
            "a%2fb",
            "a\\nb",
            "a b",
            "é",
            &long,
        ];
        for id in bad {
            for (id_field, user) in [(id, "u"), ("j", id)] {
                let raw =
                    serde_json::json!({"id": id_field, "type": "sdxl_image_fast", "prompt": "p", "user_id": user});
                let e = spec(&raw.to_string()).unwrap_err();
                assert_eq!(e.kind, ErrorKind::Validation, "{id:?}");
                assert!(e.message.contains("path segment"), "{id:?}: {}", e.message);
            }
        }
        for ok in [
            "550e8400-e29b-41d4-a716-446655440000",
            "job_1.v2",
            "...",
            &"a".repeat(MAX_SEGMENT_CHARS),
        ] {
            assert!(is_path_segment(ok), "{ok}");
        }
    }

    #[test]
    fn one_step_is_always_reached() {
        for steps in 1..=MAX_STEPS {
            for s in [0.0, 0.001, 0.05, 0.5, 1.0] {
                let (strength, run) = at_least_one_step(s, steps);
                assert!(
                    run >= 1 && ((steps as f64) * strength).floor() as u32 >= 1,
                    "{steps} {s}"
                );
                assert!(strength <= 1.0);
            }
        }
    }
}
