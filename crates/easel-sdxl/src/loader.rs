//! Why this exists: a model is a set of files (configs, tokenizer files, weights) that
//! may live in a diffusers folder on disk or be compiled into the binary (the bundled
//! tiny model). [`ModelSource`] hides which, so every component loads the same way.
//! This is the bottom layer of loading: it only yields bytes, paths and whether a file
//! exists; what is built from them (configs, tokenizers, weights) lives above it.

use std::borrow::Cow;
use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Where a model's files come from. Paths are relative to the model root and use `/`.
pub trait ModelSource: Send + Sync {
    /// A human-readable name for errors ("the bundled tiny model", a path).
    fn describe(&self) -> String;
    /// Reads a whole file; [`Error::MissingFile`] if it is absent.
    fn read(&self, rel: &str) -> Result<Cow<'_, [u8]>>;
    /// Whether a file exists.
    fn exists(&self, rel: &str) -> bool;
    /// The on-disk path of a file, when there is one (weights are read from it).
    fn path(&self, rel: &str) -> Option<PathBuf>;
    /// The contents of a file compiled into the binary, when it is one.
    fn static_bytes(&self, _rel: &str) -> Option<&'static [u8]> {
        None
    }
}

/// Reads and parses the JSON file `rel` of a source (a `config.json`, an index).
pub(crate) fn read_json<T: DeserializeOwned>(src: &dyn ModelSource, rel: &str) -> Result<T> {
    let bytes = src.read(rel)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path: PathBuf::from(format!("{}/{rel}", src.describe())),
        msg: format!("{e}; the file should be a diffusers/transformers config.json"),
    })
}

/// The path to show in errors for `rel` in a source.
pub(crate) fn shown_path(src: &dyn ModelSource, rel: &str) -> PathBuf {
    src.path(rel)
        .unwrap_or_else(|| PathBuf::from(format!("{}: {rel}", src.describe())))
}

/// A diffusers folder on disk.
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    /// A source rooted at `root` (not checked here: loading reports what is missing).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

impl ModelSource for DirSource {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn read(&self, rel: &str) -> Result<Cow<'_, [u8]>> {
        let path = self.root.join(rel);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Cow::Owned(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::MissingFile {
                path,
                hint: "is this a diffusers model folder (model_index.json, unet/, vae/, \
                       text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/)?"
                    .into(),
            }),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    fn exists(&self, rel: &str) -> bool {
        self.root.join(rel).is_file()
    }

    fn path(&self, rel: &str) -> Option<PathBuf> {
        Some(self.root.join(rel))
    }
}

/// The `(relative path, contents)` table of files under `assets/<dir>/`, compiled in.
macro_rules! embed_assets {
    ($dir:literal, [$($rel:literal),* $(,)?]) => {
        &[$(($rel, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $dir, "/", $rel)) as &[u8])),*]
    };
}
pub(crate) use embed_assets;

/// Files compiled into the binary.
pub struct EmbeddedSource {
    name: &'static str,
    files: &'static [(&'static str, &'static [u8])],
}

impl EmbeddedSource {
    /// A source over `files` (relative path, contents).
    pub const fn new(name: &'static str, files: &'static [(&'static str, &'static [u8])]) -> Self {
        Self { name, files }
    }

    /// The contents of `rel`, borrowed for the life of the program.
    pub fn get(&self, rel: &str) -> Option<&'static [u8]> {
        self.files.iter().find(|(p, _)| *p == rel).map(|(_, b)| *b)
    }
}

impl ModelSource for EmbeddedSource {
    fn describe(&self) -> String {
        self.name.to_string()
    }

    fn read(&self, rel: &str) -> Result<Cow<'_, [u8]>> {
        self.get(rel).map(Cow::Borrowed).ok_or_else(|| Error::MissingFile {
            path: PathBuf::from(rel),
            hint: format!("{} does not contain it", self.name),
        })
    }

    fn exists(&self, rel: &str) -> bool {
        self.get(rel).is_some()
    }

    fn path(&self, _rel: &str) -> Option<PathBuf> {
        None
    }

    fn static_bytes(&self, rel: &str) -> Option<&'static [u8]> {
        self.get(rel)
    }
}
