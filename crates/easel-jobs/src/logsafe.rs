//! Why this exists: job ids, user ids and reasons come from producers, and a value with CR/LF
//! or terminal escapes written raw into a log line can forge a line or rewrite the terminal.
//! [`Safe`] displays any text with control characters escaped (`\r`, `\n`, `\u{1b}`, ...), and
//! [`quoted`] gives it in double quotes for messages that are sent back to the producer.

use std::fmt;

/// Displays a producer-supplied string with every control character escaped.
pub struct Safe<'a>(pub &'a str);

impl fmt::Display for Safe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_fmt(format_args!("{c}"))?;
            }
        }
        Ok(())
    }
}

/// `s` in double quotes with control characters and quotes escaped, cut to 200 characters.
pub fn quoted(s: &str) -> String {
    const SHOWN: usize = 200;
    let cut: String = s.chars().take(SHOWN).collect();
    let more = if s.chars().count() > SHOWN { "…" } else { "" };
    format!("\"{}{more}\"", Safe(&cut).to_string().replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_escapes_cannot_start_a_new_log_line() {
        let shown = Safe("job\r\n2026-01-01 INFO forged\u{1b}[2J").to_string();
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        assert_eq!(shown, "job\\r\\n2026-01-01 INFO forged\\u{1b}[2J");
        assert_eq!(quoted("a\"b"), "\"a\\\"b\"");
        assert_eq!(Safe("plain ünïcode").to_string(), "plain ünïcode");
    }
}
