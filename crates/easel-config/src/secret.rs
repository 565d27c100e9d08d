//! Why this exists: keys, tokens and URLs with passwords travel through the settings; they
//! must never reach a log line, an error message or `easel config show`.

use std::fmt;

/// A secret value (a key or token). Its `Debug` never shows the value; use [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// How `easel config show` prints it: the first two characters and the length.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// A masked rendering of a secret: enough to tell two values apart, not enough to use one.
pub fn mask(value: &str) -> String {
    let head: String = value.chars().take(2).collect();
    if value.chars().count() <= 8 {
        return "****".to_string();
    }
    format!("{head}****({} chars)", value.chars().count())
}

/// `redis://user:pass@host` becomes `redis://user:****@host`.
pub fn mask_url_password(value: &str) -> String {
    let Some(scheme_end) = value.find("://").map(|i| i + 3) else {
        return value.to_string();
    };
    let rest = &value[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return value.to_string();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    let masked = if userinfo.contains(':') {
        format!("{user}:****")
    } else {
        "****".to_string()
    };
    format!("{}{masked}{}", &value[..scheme_end], &rest[at..])
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_debug_nor_mask_shows_the_value() {
        let s = Secret::new("sk-live-0123456789abcdef");
        assert!(!format!("{s:?}").contains("0123456789"));
        assert!(!s.masked().contains("0123456789"));
        assert_eq!(mask("short"), "****");
    }
}
