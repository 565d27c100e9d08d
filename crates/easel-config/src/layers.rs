//! Why this exists: every setting is resolved once, in the order flags > environment
//! (ourvidz names and `EASEL_*`) > `easel.toml` > defaults, and keeps the origin of its value
//! so errors and `easel config show` can say where it came from. Old integer spellings
//! (`poll_ms`, `EASEL_LEASE_TTL_SECS`, ...) are converted to durations with a deprecation note.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::duration;
use crate::error::{ConfigError, Source};
use crate::file::ConfigFile;
use crate::home::{self, process_env};
use crate::secret::Secret;
use crate::settings::{self, Default, Kind, Setting, SETTINGS};

/// Reads one environment variable; empty values count as unset.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Settings after layering, still as text, each with its origin.
#[derive(Debug, Default, Clone)]
pub struct Layers {
    values: BTreeMap<&'static str, (String, Source)>,
    notes: Vec<String>,
    file: Option<ConfigFile>,
}

/// One row of `easel config show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: &'static str,
    /// The value as shown: secrets masked, passwords in URLs masked; `None` when unset.
    pub value: Option<String>,
    pub origin: Option<Source>,
}

impl Layers {
    /// Layers `flags` over the environment (`env`) over `file` over defaults.
    pub fn resolve(flags: &[(&str, String)], env: Env, file: Option<ConfigFile>) -> Result<Self, ConfigError> {
        if let Some((k, _)) = flags.iter().find(|(k, _)| settings::find(k).is_none()) {
            return Err(ConfigError::UnknownFlag(k.to_string()));
        }
        let mut layers = Self {
            file,
            ..Self::default()
        };
        for set in SETTINGS {
            if let Some((text, source)) = layers.pick(set, flags, env) {
                let text = if set.kind == Kind::Path {
                    absolute(&text, &source, layers.file.as_ref())
                } else {
                    text
                };
                layers.values.insert(set.key, (text, source));
            }
        }
        Ok(layers.with_defaults(env))
    }

    /// Layers over the process environment and the `easel.toml` that `config_file`,
    /// `$EASEL_CONFIG` or the working directory names. Deprecation notes are logged.
    pub fn from_process(flags: &[(&str, String)], config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let file = match home::config_file(config_file, &process_env) {
            Some(p) => Some(ConfigFile::read(&p)?),
            None => None,
        };
        let layers = Self::resolve(flags, &process_env, file)?;
        for note in &layers.notes {
            tracing::warn!("{note}");
        }
        Ok(layers)
    }

    fn pick(&mut self, set: &Setting, flags: &[(&str, String)], env: Env) -> Option<(String, Source)> {
        if let Some((_, v)) = flags.iter().find(|(k, _)| *k == set.key) {
            return Some((v.clone(), Source::Flag));
        }
        if let Some((name, v)) = set.env.iter().find_map(|n| env(n).map(|v| (*n, v))) {
            return Some((v, Source::Env(name)));
        }
        if let Some(old) = set.legacy {
            if let Some(v) = env(old.env) {
                let text = legacy_text(&v, old.unit);
                self.deprecated(old.env, &format!("{}=\"{text}\"", set.env[0]));
                return Some((text, Source::Env(old.env)));
            }
        }
        let file = self.file.as_ref()?;
        let at = |table| Source::File {
            path: file.path.clone(),
            table,
        };
        if set.top_level {
            if let Some(v) = file.schema.data_dir.as_ref().filter(|_| set.key == "data_dir") {
                return Some((v.display().to_string(), at("")));
            }
        }
        if let Some(v) = file.worker_value(set.key) {
            let (v, source) = (v.to_string(), at("worker"));
            if set.top_level {
                let how = format!("{} = {v:?} at the top of the file", set.key);
                self.deprecated(&format!("[worker] {}", set.key), &how);
            }
            return Some((v, source));
        }
        if let Some(old) = set.legacy {
            if let Some(v) = file.worker_value(old.key) {
                let text = legacy_text(v, old.unit);
                let source = at("worker");
                self.deprecated(&format!("[worker] {}", old.key), &format!("{} = \"{text}\"", set.key));
                return Some((text, source));
            }
        }
        None
    }

    fn deprecated(&mut self, old: &str, new: &str) {
        self.notes.push(format!("{old} is deprecated: write {new} instead"));
    }

    /// Fills in the defaults of settings no layer set (the data home from the same `env`).
    fn with_defaults(mut self, env: Env) -> Self {
        for set in SETTINGS {
            if self.values.contains_key(set.key) {
                continue;
            }
            let text = match set.default {
                Default::None => continue,
                Default::Text(t) => t.to_string(),
                Default::Port(p) => p.to_string(),
                Default::DataHome => match home::platform_data_home(env) {
                    Some(p) => p.display().to_string(),
                    None => continue,
                },
            };
            self.values.insert(set.key, (text, Source::Default));
        }
        self
    }

    /// Deprecation notes collected while layering (logged by the worker, shown by `config show`).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The `easel.toml` read, if any.
    pub fn file(&self) -> Option<&ConfigFile> {
        self.file.as_ref()
    }

    /// The value of `key`, if set anywhere (defaults included).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str())
    }

    /// The value of a setting that has a default (empty only if the caller names a key
    /// without one).
    pub fn text(&self, key: &str) -> &str {
        self.get(key).unwrap_or("")
    }

    /// Where `key`'s value came from.
    pub fn source(&self, key: &str) -> Source {
        self.values.get(key).map(|(_, s)| s.clone()).unwrap_or(Source::Default)
    }

    /// An error about `key`'s value, naming its origin; secrets redacted.
    pub fn invalid(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            setting: key.to_string(),
            value: shown(key, self.get(key).unwrap_or("")),
            origin: self.source(key),
            problem: problem.into(),
        }
    }

    /// A secret setting.
    pub fn secret(&self, key: &str) -> Option<Secret> {
        self.get(key).map(Secret::new)
    }

    /// A number (port, count, address...) parsed from text.
    pub fn number<T: std::str::FromStr>(&self, key: &str, what: &str) -> Result<T, ConfigError> {
        self.text(key)
            .trim()
            .parse()
            .map_err(|_| self.invalid(key, format!("is not {what}")))
    }

    /// A whole number greater than zero.
    pub fn positive<T: std::str::FromStr + PartialOrd + std::default::Default>(
        &self,
        key: &str,
    ) -> Result<T, ConfigError> {
        let v: T = self.number(key, "a positive whole number")?;
        if v <= T::default() {
            return Err(self.invalid(key, "must be greater than zero"));
        }
        Ok(v)
    }

    /// A boolean (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`).
    pub fn flag(&self, key: &str) -> Result<bool, ConfigError> {
        match self.text(key).to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            _ => Err(self.invalid(key, "is not a boolean: use true or false")),
        }
    }

    /// A duration (`"500ms"`, `"30s"`, `"15m"`, `"7d"`, or a number of seconds).
    pub fn duration(&self, key: &str) -> Result<Duration, ConfigError> {
        duration::parse(self.text(key)).map_err(|e| self.invalid(key, format!("is not a duration: {e}")))
    }

    /// Every setting with its effective value and origin, for `easel config show`.
    pub fn entries(&self) -> Vec<Entry> {
        SETTINGS
            .iter()
            .map(|s| Entry {
                key: s.key,
                value: self.get(s.key).map(|v| shown(s.key, v)),
                origin: self.values.get(s.key).map(|(_, o)| o.clone()),
            })
            .collect()
    }
}

/// An old integer value with its unit appended (`"2000"` in ms becomes `"2000ms"`).
fn legacy_text(value: &str, unit: &str) -> String {
    let v = value.trim();
    if v.chars().all(|c| c.is_ascii_digit()) && !v.is_empty() {
        format!("{v}{unit}")
    } else {
        v.to_string()
    }
}

/// A value as it may be shown: secrets masked, a password inside a URL masked.
fn shown(key: &str, value: &str) -> String {
    if settings::find(key).is_some_and(|s| s.kind == Kind::Secret) {
        return crate::secret::mask(value);
    }
    crate::secret::mask_url_password(value)
}

/// A path setting made absolute: relative to the file that named it, else the working dir.
fn absolute(text: &str, source: &Source, file: Option<&ConfigFile>) -> String {
    let base = match (source, file) {
        (Source::File { .. }, Some(f)) => Some(f.dir()),
        _ => None,
    };
    home::absolute(Path::new(text), base.as_deref()).display().to_string()
}
