//! Why this exists: `easel.toml` is one file with one schema — a top-level `data_dir`,
//! `[worker]` (the worker runtime's settings), `[orchestrator]` and `[[workers]]` — read the
//! same way by every command. Unknown keys anywhere are errors that name the line and, for
//! `[worker]`, the key that was probably meant.

use std::path::{Path, PathBuf};

use crate::error::ConfigError;
use crate::house::{self, Config, Origin, Schema};

/// A read and checked `easel.toml`.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Where it was read from.
    pub path: PathBuf,
    pub schema: Schema,
    /// The file as a plain table (to tell a value written in it from a default). Parsed
    /// apart from `schema`: deserialising the schema from this table would lose the line
    /// numbers of toml's errors.
    pub raw: toml::Table,
}

impl ConfigFile {
    /// Reads and checks the file at `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks TOML text that came from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let schema = house::parse_schema(text, &path.display().to_string())?;
        let raw = text.parse::<toml::Table>().unwrap_or_default();
        Ok(Self {
            path: path.to_path_buf(),
            schema,
            raw,
        })
    }

    /// A `[worker]` value as text.
    pub fn worker_value(&self, key: &str) -> Option<&str> {
        self.schema.worker_values.get(key).map(String::as_str)
    }

    /// The orchestrator's view of this file.
    pub fn orchestrator(&self) -> Result<Config, ConfigError> {
        Config::from_schema(self.schema.clone(), Origin::File(self.path.clone()))
    }

    /// The directory relative paths in this file are taken from.
    pub fn dir(&self) -> PathBuf {
        let parent = self.path.parent().unwrap_or(Path::new("."));
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse(text, Path::new("/etc/easel/easel.toml"))
    }

    #[test]
    fn one_file_holds_every_section() {
        let f = parse("data_dir = \"d\"\n[worker]\nlease_ttl = \"30s\"\n[orchestrator]\nshutdown_timeout = \"2m\"\n[[workers]]\nname = \"a\"\nkind = \"sdxl\"\n").unwrap();
        assert_eq!(f.worker_value("lease_ttl"), Some("30s"));
        assert_eq!(f.schema.data_dir, Some(PathBuf::from("d")));
        assert_eq!(f.schema.workers.as_ref().map(Vec::len), Some(1));
        assert_eq!(f.dir(), PathBuf::from("/etc/easel"));
    }

    #[test]
    fn unknown_worker_keys_are_errors_with_a_suggestion() {
        let err = parse("[worker]\nlease_tll = \"30s\"\n").unwrap_err().to_string();
        assert!(
            err.contains("lease_tll") && err.contains("did you mean lease_ttl"),
            "{err}"
        );
        let err = parse("colour = 1\n").unwrap_err().to_string();
        assert!(err.contains("colour") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn old_integer_keys_are_still_accepted() {
        assert_eq!(
            parse("[worker]\npoll_ms = 5\n").unwrap().worker_value("poll_ms"),
            Some("5")
        );
    }
}
