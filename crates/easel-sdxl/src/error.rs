//! Why this exists: one error type for the engine, so every failure names the bad
//! input (a path, a value, a config key) and says what to do about it.

use std::path::PathBuf;

/// Everything the engine can fail with. Messages are meant for the person running
/// Easel: each says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the model needs is absent.
    #[error("missing model file {path}: {hint}")]
    MissingFile { path: PathBuf, hint: String },

    /// A path given as a model is no model at all (a folder of images, a text file).
    #[error("{path} is not a model: {why}")]
    NotAModel { path: PathBuf, why: String },

    /// A file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A `config.json` (or similar) is malformed or describes something unsupported.
    #[error("bad config {path}: {msg}")]
    Config { path: PathBuf, msg: String },

    /// A weights file is corrupt, truncated, or lacks a tensor the model needs.
    #[error("bad weights in {path}: {msg}")]
    Weights { path: PathBuf, msg: String },

    /// The model or a request asks for something this engine does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// The request's [`crate::cancel::Cancel`] was set; `done` of `total` steps had run.
    #[error("generation cancelled after {done} of {total} steps")]
    Cancelled { done: usize, total: usize },

    /// A generation request has an invalid parameter.
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// An init image could not be decoded.
    #[error("cannot use image {path}: {msg}")]
    Image { path: PathBuf, msg: String },

    /// A tensor operation failed (shape mismatch, device error, out of memory).
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidRequest`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidRequest(msg.into())
    }
}
