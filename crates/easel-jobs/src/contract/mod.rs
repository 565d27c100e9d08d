//! Why this exists: the ourvidz job contract (`shared/docs/COMPAT-OURVIDZ.md`) in one place:
//! what a producer may push, how it is read (legacy aliases, `null` as absent), the presets
//! it is merged over, the checks it must pass, and the callback bodies the edge function reads.
//!
//! Flow: [`envelope::parse`] (raw JSON → [`Envelope`], or [`Unreadable`] when no id can be
//! read) → [`spec::JobSpec::from_envelope`] (presets, validation → a [`JobSpec`] or a
//! [`JobError`]) → after the job, [`wire`] builds the terminal callback body.

pub mod envelope;
pub mod lenient;
pub mod preset;
pub mod spec;
pub mod wire;

pub use envelope::{parse, read_id, Envelope, Unreadable};
pub use preset::{JobType, DEFAULT_NEGATIVE_PROMPT};
pub use spec::{JobSpec, ReferenceSpec};

/// Why a job failed, as the failure callback's `metadata.error_type` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The payload is readable but a field is missing, `null` where required, or out of bounds.
    Validation,
    /// `type` is not a job type this worker runs.
    UnsupportedJobType,
    /// The img2img reference image could not be fetched or decoded.
    ReferenceImage,
    /// The engine failed.
    Generation,
    /// No image could be uploaded.
    Storage,
    /// The job was delivered more times than allowed without finishing (the worker died each time).
    DeliveryLimit,
    /// Someone cancelled the job (`easel jobs cancel`, `POST /jobs/{id}/cancel`).
    Cancelled,
    /// The job ran past its time limit.
    Timeout,
    /// The accelerator (or the host) ran out of memory.
    OutOfMemory,
    /// The device failed (driver, CUDA runtime).
    Device,
    /// The model's files are missing, unreadable or inconsistent.
    Model,
}

impl ErrorKind {
    /// The `error_type` string in the failure callback.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Validation => "validation_error",
            ErrorKind::UnsupportedJobType => "unsupported_job_type",
            ErrorKind::ReferenceImage => "reference_image_error",
            ErrorKind::Generation => "generation_error",
            ErrorKind::Storage => "storage_error",
            ErrorKind::DeliveryLimit => "delivery_limit_exceeded",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Timeout => "timeout",
            ErrorKind::OutOfMemory => "out_of_memory",
            ErrorKind::Device => "device_error",
            ErrorKind::Model => "model_error",
        }
    }
}

/// A job that cannot be completed: its kind and a message for the person who sent it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    pub kind: ErrorKind,
    pub message: String,
}

impl JobError {
    /// A job error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A validation error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }
}
