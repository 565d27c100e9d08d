//! Why this exists: a payload the strict JSON parser refuses (nested deeper than its recursion
//! limit, a number out of `f64` range, a lone UTF-16 surrogate) may still carry a readable
//! top-level job id, and a job with a readable id must get a `failed` callback saying why,
//! not vanish into the dead-letter list. This is a small, non-recursive scan of the top-level
//! object only: it reads keys and string values, skips every other value by counting brackets
//! (so no depth can exhaust the stack), and gives up on anything it does not understand.

/// The string values of the top-level `fields`, in the order found, from `raw`; `None` when
/// `raw` is not an object it can scan. Where the scan breaks (a truncated payload, a syntax
/// error), what was found before the break is kept.
pub fn top_level_strings(raw: &str, fields: &[&str]) -> Option<Vec<(String, String)>> {
    let mut s = Scanner {
        b: raw.as_bytes(),
        i: 0,
    };
    s.ws();
    s.expect(b'{')?;
    let mut found = Vec::new();
    match scan_members(&mut s, fields, &mut found) {
        None if found.is_empty() => None,
        _ => Some(found),
    }
}

fn scan_members(s: &mut Scanner<'_>, fields: &[&str], found: &mut Vec<(String, String)>) -> Option<()> {
    loop {
        s.ws();
        match s.peek()? {
            b'}' => return Some(()),
            b',' => {
                s.i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key = s.string()?;
        s.ws();
        s.expect(b':')?;
        s.ws();
        if fields.contains(&key.as_str()) && s.peek()? == b'"' {
            let value = s.string()?;
            found.push((key, value));
        } else {
            s.skip_value()?;
        }
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A JSON string at the cursor, escapes decoded; a lone surrogate becomes U+FFFD.
    fn string(&mut self) -> Option<String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode()?,
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                _ => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.i..self.i + 4)?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    }

    fn unicode(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) && self.b.get(self.i..self.i + 2) == Some(b"\\u") {
            let save = self.i;
            self.i += 2;
            let lo = self.hex4()?;
            if (0xDC00..0xE000).contains(&lo) {
                return char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
            }
            self.i = save;
        }
        Some(char::from_u32(hi).unwrap_or('\u{FFFD}'))
    }

    /// Skips one value of any depth, without recursion.
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string_raw()?;
                    if depth == 0 {
                        return Some(());
                    }
                    continue;
                }
                b'[' | b'{' => depth += 1,
                b']' | b'}' if depth > 0 => depth -= 1,
                b',' | b'}' | b']' if depth == 0 => return Some(()),
                _ => {}
            }
            self.i += 1;
            if depth == 0 && matches!(self.peek(), Some(b',' | b'}')) {
                return Some(());
            }
        }
    }

    /// Skips a string without decoding it (its content may be anything).
    fn string_raw(&mut self) -> Option<()> {
        self.expect(b'"')?;
        loop {
            match self.peek()? {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                _ => self.i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: [&str; 1] = ["id"];

    #[test]
    fn the_id_is_read_past_values_the_strict_parser_refuses() {
        let deep = format!(r#"{{"config":{}1{},"id":"j1"}}"#, "[".repeat(5000), "]".repeat(5000));
        for raw in [
            deep.as_str(),
            r#"{"steps":1e400,"id":"j2"}"#,
            r#"{"prompt":"\ud800","id":"j3"}"#,
            r#"{"id":"j4","x":{"a":[1,{"b":"}"}]}}"#,
        ] {
            let got = top_level_strings(raw, &ID).expect("scanned");
            assert_eq!(got.len(), 1, "{raw:.60}");
            assert!(got[0].1.starts_with('j'), "{got:?}");
        }
    }

    #[test]
    fn nested_ids_and_non_objects_are_not_read() {
        assert_eq!(top_level_strings(r#"{"a":{"id":"inner"}}"#, &ID), Some(vec![]));
        assert_eq!(top_level_strings("[1]", &ID), None);
        assert_eq!(top_level_strings(r#"{"id":"unterminated"#, &ID), None);
        let cut = top_level_strings(r#"{"id":"j5","type":"sdx"#, &ID).unwrap();
        assert_eq!(
            cut,
            vec![("id".to_string(), "j5".to_string())],
            "a truncated payload keeps its id"
        );
        let lone = top_level_strings(r#"{"id":"a\ud800b"}"#, &ID).unwrap();
        assert_eq!(lone[0].1, "a\u{FFFD}b");
    }
}
