//! Why this exists: `easel config show` — every effective value with where it came from
//! (flag, environment variable, which file and table, or the default), secrets masked, so an
//! operator can see what a worker or `easel up` will actually use before starting it.

use std::fmt::Write as _;

use serde::Deserialize;

use crate::duration::Human;
use crate::error::Source;
use crate::file::ConfigFile;
use crate::house::{Config, GpuSelection, WorkerSpec};
use crate::layers::Layers;

/// One effective value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `""` (top level), `worker`, `orchestrator` or `workers.<name>`.
    pub section: String,
    pub key: String,
    /// As shown: secrets masked; `None` when unset.
    pub value: Option<String>,
    /// Where it came from, in words.
    pub origin: String,
}

/// The rows of every section: the worker runtime's settings from `layers`, the orchestrator
/// and its workers from `house`.
pub fn rows(layers: &Layers, house: &Config) -> Vec<Row> {
    let mut out = Vec::new();
    let mut entries = layers.entries();
    entries.sort_by_key(|e| e.key != "data_dir");
    for e in entries {
        let section = if e.key == "data_dir" { "" } else { "worker" };
        out.push(Row {
            section: section.to_string(),
            key: e.key.to_string(),
            value: e.value,
            origin: e.origin.map_or_else(|| "unset".to_string(), |o| o.to_string()),
        });
    }
    let file = layers.file();
    let o = &house.orchestrator;
    let orch = [
        ("listen", Some(o.listen.to_string())),
        ("shutdown_timeout", Some(Human(o.shutdown_timeout).to_string())),
        ("preflight_timeout", Some(Human(o.preflight_timeout).to_string())),
        ("worker_bin", o.worker_bin.as_ref().map(|p| p.display().to_string())),
    ];
    for (key, value) in orch {
        let origin = written(file, &["orchestrator", key]);
        out.push(row("orchestrator", key, value, origin));
    }
    for (i, w) in house.workers.iter().enumerate() {
        out.extend(worker_rows(file, table_index(file, w).unwrap_or(i), w));
    }
    out
}

/// The index in the file of the `[[workers]]` table `w` is (or, for the worker of one GPU,
/// was expanded from).
fn table_index(file: Option<&ConfigFile>, w: &WorkerSpec) -> Option<usize> {
    let name = w.gpu.as_ref().map_or(w.name.as_str(), |slot| slot.table.as_str());
    file?
        .raw
        .get("workers")?
        .as_array()?
        .iter()
        .position(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
}

/// The rows of one worker. One expanded from a `gpus` table also shows its `device`, and
/// its port as the table's plus its offset.
fn worker_rows(file: Option<&ConfigFile>, index: usize, w: &WorkerSpec) -> Vec<Row> {
    let section = format!("workers.{}", w.name);
    let launch = match (&w.kind, &w.command) {
        (Some(k), _) => ("kind", Some(k.clone())),
        (None, c) => ("command", c.as_ref().map(|c| c.join(" "))),
    };
    let device = w.gpu.as_ref().map(|slot| format!("cuda:{}", slot.gpu));
    let values = [
        launch,
        ("device", device),
        ("port", w.port.map(|p| p.to_string())),
        ("priority", Some(w.priority.to_string())),
        ("enabled", Some(w.enabled.to_string())),
        ("start_timeout", Some(Human(w.start_timeout).to_string())),
        ("stop_grace", Some(Human(w.stop_grace).to_string())),
        ("restart.policy", Some(format!("{:?}", w.restart.policy).to_lowercase())),
        ("restart.max_delay", Some(Human(w.restart.max_delay).to_string())),
        ("restart.max_failures", Some(w.restart.max_failures.to_string())),
    ];
    let from_file = file.is_some_and(|f| f.schema.workers.is_some());
    values
        .into_iter()
        .filter(|(key, value)| *key != "device" || value.is_some())
        .map(|(key, value)| {
            let origin = if from_file {
                let path: Vec<&str> = key.split('.').collect();
                match (key, &w.gpu) {
                    ("device", Some(_)) => gpus_origin(file, index),
                    ("port", Some(slot)) if slot.offset > 0 => {
                        format!("{} + {} (gpus)", written_in_worker(file, index, &path), slot.offset)
                    }
                    _ => written_in_worker(file, index, &path),
                }
            } else {
                "the embedded default [[workers]]".to_string()
            };
            row(&section, key, value, origin)
        })
        .collect()
}

/// "<file> [[workers]] #n gpus = [0, 1]": where the device of an expanded worker came from.
fn gpus_origin(file: Option<&ConfigFile>, index: usize) -> String {
    let written = file
        .and_then(|f| f.raw.get("workers"))
        .and_then(|w| w.as_array())
        .and_then(|a| a.get(index))
        .and_then(|e| e.get("gpus"))
        .and_then(|gpus| GpuSelection::deserialize(gpus.clone()).ok());
    match written {
        Some(gpus) => format!("{} gpus = {gpus}", written_in_worker(file, index, &["gpus"])),
        None => written_in_worker(file, index, &["gpus"]),
    }
}

fn row(section: &str, key: &str, value: Option<String>, origin: String) -> Row {
    Row {
        section: section.to_string(),
        key: key.to_string(),
        value,
        origin,
    }
}

/// Whether `table` writes a value at `path` (`["restart", "max_delay"]`).
fn writes(table: &toml::Table, path: &[&str]) -> bool {
    match path {
        [] => false,
        [key] => table.contains_key(*key),
        [head, rest @ ..] => table
            .get(*head)
            .and_then(|v| v.as_table())
            .is_some_and(|t| writes(t, rest)),
    }
}

/// "<file> [table]" when the file writes the key at `path`, else "the default".
fn written(file: Option<&ConfigFile>, path: &[&str]) -> String {
    match file {
        Some(f) if writes(&f.raw, path) => {
            format!("{} [{}]", f.path.display(), path[..path.len() - 1].join("."))
        }
        _ => Source::Default.to_string(),
    }
}

/// "<file> [[workers]] #n" when entry `index` writes the key at `path`, else "the default".
fn written_in_worker(file: Option<&ConfigFile>, index: usize, path: &[&str]) -> String {
    let entry = file
        .and_then(|f| f.raw.get("workers"))
        .and_then(|w| w.as_array())
        .and_then(|a| a.get(index))
        .and_then(|e| e.as_table());
    match (file, entry) {
        (Some(f), Some(e)) if writes(e, path) => format!("{} [[workers]] #{}", f.path.display(), index + 1),
        _ => Source::Default.to_string(),
    }
}

/// A value as TOML writes it: numbers and booleans bare, everything else quoted.
fn toml_value(v: &str) -> String {
    let bare = v.parse::<i64>().is_ok() || v == "true" || v == "false";
    if bare {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

/// The rows as aligned text: one `key = value    # origin` line each, grouped by section.
pub fn render(rows: &[Row], notes: &[String]) -> String {
    let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
    let mut out = String::new();
    let mut section = None;
    for r in rows {
        if section != Some(&r.section) {
            if !r.section.is_empty() {
                let _ = writeln!(out, "\n[{}]", r.section);
            }
            section = Some(&r.section);
        }
        let value = r.value.as_deref().map_or_else(|| "(unset)".to_string(), toml_value);
        let _ = writeln!(out, "{:width$} = {value:32} # {}", r.key, r.origin);
    }
    for n in notes {
        let _ = writeln!(out, "\nnote: {n}");
    }
    out
}
