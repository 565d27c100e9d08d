//! Why this exists: reading a raw queue payload the way producers really write it. The id
//! decides everything downstream — with a readable id a job always gets a terminal callback,
//! without one it is dead-lettered — so the id is read first and on its own, and every other
//! field is kept as raw JSON for [`super::spec`] to check (so a bad field becomes a `failed`
//! callback, never a parse crash). Legacy aliases: `jobId`/`job_id` for `id`, `jobType` for
//! `type`, `userId` for `user_id`. A `null` value means the field is absent.

use serde_json::{Map, Value};

/// The id fields, in the order they are tried.
const ID_FIELDS: [&str; 3] = ["id", "jobId", "job_id"];
/// The longest id accepted (ids are UUIDs; this only stops absurd input reaching logs and paths).
const MAX_ID_CHARS: usize = 256;

/// A payload whose job id could be read; every other field is still unchecked JSON.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The job id, as the callback's `job_id` echoes it.
    pub id: String,
    /// The whole payload as an object.
    pub fields: Map<String, Value>,
}

/// A payload the strict parser cannot read. With `id: None` it goes to the dead-letter list
/// with this reason; with an id (read by the lenient scan) it gets a `failed` callback.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Unreadable {
    pub reason: String,
    /// The top-level job id, when the lenient scan could read it.
    pub id: Option<String>,
}

/// Reads the id (and keeps the rest) from a raw payload.
pub fn parse(raw: &str) -> Result<Envelope, Unreadable> {
    let value: Value = serde_json::from_str(raw).map_err(|e| Unreadable {
        reason: format!("payload is not valid JSON ({e}); push a JSON object"),
        id: lenient_id(raw),
    })?;
    let Value::Object(fields) = value else {
        return Err(unreadable(format!(
            "payload is JSON {} but must be an object",
            kind_of(&value)
        )));
    };
    let id = id_field(&fields)?;
    Ok(Envelope { id, fields })
}

fn id_field(fields: &Map<String, Value>) -> Result<String, Unreadable> {
    let found = ID_FIELDS
        .iter()
        .find_map(|k| fields.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)));
    let Some((name, value)) = found else {
        return Err(unreadable(
            "payload has no job id: set \"id\" (or the legacy \"jobId\") to the job's id",
        ));
    };
    match value {
        Value::String(s) if !s.trim().is_empty() && s.chars().count() <= MAX_ID_CHARS => Ok(s.clone()),
        Value::String(s) if s.trim().is_empty() => Err(unreadable(format!("\"{name}\" is an empty string"))),
        Value::String(_) => Err(unreadable(format!(
            "\"{name}\" is longer than {MAX_ID_CHARS} characters"
        ))),
        other => Err(unreadable(format!(
            "\"{name}\" is {} but must be a string",
            kind_of(other)
        ))),
    }
}

fn unreadable(reason: impl Into<String>) -> Unreadable {
    Unreadable {
        reason: reason.into(),
        id: None,
    }
}

/// The top-level id of a payload the strict parser refused, read by [`super::lenient`] with the
/// same field order and rules as [`parse`].
fn lenient_id(raw: &str) -> Option<String> {
    let found = super::lenient::top_level_strings(raw, &ID_FIELDS)?;
    let id = ID_FIELDS
        .iter()
        .find_map(|f| found.iter().find(|(k, _)| k == f).map(|(_, v)| v.clone()))?;
    (!id.trim().is_empty() && id.chars().count() <= MAX_ID_CHARS).then_some(id)
}

/// The job id of a raw payload, strictly or by the lenient scan.
pub fn read_id(raw: &str) -> Result<String, Unreadable> {
    match parse(raw) {
        Ok(env) => Ok(env.id),
        Err(Unreadable { id: Some(id), .. }) => Ok(id),
        Err(e) => Err(e),
    }
}

/// "a number", "an array", ... for messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Envelope {
    /// The first non-null field among `names` (a field and its legacy aliases).
    pub fn field(&self, names: &[&str]) -> Option<&Value> {
        names.iter().find_map(|n| self.fields.get(*n).filter(|v| !v.is_null()))
    }

    /// The job type as written, if it is a string (for the failure callback's `job_type`).
    pub fn job_type_text(&self) -> Option<String> {
        self.field(&["type", "jobType"])
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_id_aliases_are_read() {
        assert_eq!(parse(r#"{"jobId":"a"}"#).unwrap().id, "a");
        assert_eq!(parse(r#"{"job_id":"b"}"#).unwrap().id, "b");
        assert_eq!(parse(r#"{"id":null,"jobId":"c"}"#).unwrap().id, "c");
    }

    #[test]
    fn payloads_without_a_readable_id_say_why() {
        for (raw, why) in [
            ("not json", "not valid JSON"),
            ("[1]", "an array"),
            ("\"{}\"", "a string but must be an object"),
            (r#"{"prompt":"x"}"#, "no job id"),
            (r#"{"id":null}"#, "no job id"),
            (r#"{"id":""}"#, "empty"),
            (r#"{"id":7}"#, "a number"),
        ] {
            let e = parse(raw).unwrap_err();
            assert!(e.reason.contains(why), "{raw}: {}", e.reason);
        }
    }
}
