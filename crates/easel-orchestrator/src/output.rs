//! Why this exists: a worker's stdout and stderr, re-emitted line by line with the
//! worker's name in front, so that several workers' logs interleave readably and a crash
//! message is never lost in a buffer. Flow: one pump task per pipe reads up to a newline
//! (or `MAX_LINE_BYTES`), hands the line to a [`LineSink`] and remembers the last few
//! lines in a `Tail`, which the supervisor quotes in a failure's reason.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinHandle;

/// A longer line is cut here: a worker printing megabytes without a newline must not
/// make the orchestrator buffer them.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// Lines of recent output kept per worker for failure reasons.
const TAIL_LINES: usize = 5;
/// Characters of the last output line quoted in a reason.
const REASON_QUOTE_CHARS: usize = 300;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Where workers' output lines go.
pub trait LineSink: Send + Sync + 'static {
    /// One complete line (without its newline) from `worker`.
    fn line(&self, worker: &str, stream: Stream, line: &str);
}

/// The orchestrator's own stdout and stderr, each line as `[name] line`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdioSink;

impl LineSink for StdioSink {
    fn line(&self, worker: &str, stream: Stream, line: &str) {
        // A closed stdout (e.g. `easel up | head`) must not take the workers down.
        let _ = match stream {
            Stream::Stdout => writeln!(std::io::stdout().lock(), "[{worker}] {line}"),
            Stream::Stderr => writeln!(std::io::stderr().lock(), "[{worker}] {line}"),
        };
    }
}

/// The last few lines a worker printed (both pipes).
#[derive(Debug, Default)]
pub(crate) struct Tail {
    lines: Mutex<VecDeque<String>>,
}

impl Tail {
    fn push(&self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let mut lines = self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line.to_owned());
    }

    /// `"; last output: …"` for a reason, or nothing if the worker printed nothing.
    pub(crate) fn quote(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match lines.back() {
            Some(line) => {
                let cut: String = line.chars().take(REASON_QUOTE_CHARS).collect();
                format!("; last output: {cut}")
            }
            None => String::new(),
        }
    }
}

/// Starts a task that copies `reader` line by line to `sink` and `tail` until EOF.
pub(crate) fn pump<R>(
    reader: R,
    worker: Arc<str>,
    stream: Stream,
    sink: Arc<dyn LineSink>,
    tail: Arc<Tail>,
) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        read_lines(reader, |line| {
            tail.push(line);
            sink.line(&worker, stream, line);
        })
        .await;
    })
}

/// Calls `on_line` for each line of `reader`; a last line without newline counts too.
async fn read_lines<R: AsyncRead + Unpin>(reader: R, mut on_line: impl FnMut(&str)) {
    let mut reader = BufReader::new(reader);
    let mut line: Vec<u8> = Vec::new();
    while let Ok(buf) = reader.fill_buf().await {
        if buf.is_empty() {
            break;
        }
        let (taken, complete) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let content = if complete { &buf[..taken - 1] } else { buf };
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        line.extend_from_slice(&content[..content.len().min(room)]);
        reader.consume(taken);
        if complete {
            emit(&mut line, &mut on_line);
        }
    }
    if !line.is_empty() {
        emit(&mut line, &mut on_line);
    }
}

fn emit(line: &mut Vec<u8>, on_line: &mut impl FnMut(&str)) {
    let text = String::from_utf8_lossy(line);
    on_line(text.strip_suffix('\r').unwrap_or(&text));
    line.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        read_lines(input, |l| out.push(l.to_owned())).await;
        out
    }

    #[tokio::test]
    async fn splits_lines_keeps_the_unterminated_last_one_and_drops_cr() {
        assert_eq!(lines_of(b"one\r\ntwo\n\nthree").await, ["one", "two", "", "three"]);
    }

    #[tokio::test]
    async fn cuts_overlong_lines_and_survives_bad_utf8() {
        let mut input = vec![b'x'; MAX_LINE_BYTES * 3];
        input.extend_from_slice(b"\n\xff ok\n");
        let lines = lines_of(&input).await;
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert_eq!(lines[1], "\u{fffd} ok");
    }

    #[test]
    fn the_tail_quotes_the_last_non_empty_line() {
        let tail = Tail::default();
        assert_eq!(tail.quote(), "");
        for line in ["a", "b", "", "  "] {
            tail.push(line);
        }
        assert_eq!(tail.quote(), "; last output: b");
    }
}
