//! Why this exists: a `GET` can fail at each step of [`super::get`] (connect, send, read,
//! parse), and a caller may care which: a readiness probe treats them all as "not yet",
//! `easel status` tells the operator nobody answers. Each variant names its step and
//! keeps the I/O error as its source; the address is the caller's to add.

use std::io;
use std::time::Duration;

use crate::duration::Human;

/// Why a `GET` got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The whole exchange took longer than allowed.
    #[error("no answer within {}", Human(*.timeout))]
    Timeout {
        /// The limit.
        timeout: Duration,
    },

    /// The TCP connection could not be opened (nothing listens there, most often).
    #[error("cannot connect")]
    Connect {
        /// The socket's error.
        #[source]
        source: io::Error,
    },

    /// The request could not be written.
    #[error("cannot send the request")]
    Send {
        /// The socket's error.
        #[source]
        source: io::Error,
    },

    /// The answer could not be read to its end.
    #[error("cannot read the answer")]
    Read {
        /// The socket's error.
        #[source]
        source: io::Error,
    },

    /// The answer was longer than the client accepts.
    #[error("answer larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },

    /// The answer has no end of headers (`\r\n\r\n`).
    #[error("the answer is not HTTP (no header end)")]
    NoHeaderEnd,

    /// The first line is not `HTTP/1.x <code> ...`.
    #[error("the answer is not HTTP: {status_line:?}")]
    NotHttp {
        /// The first line as received.
        status_line: String,
    },

    /// A chunked body ends before its last (empty) chunk.
    #[error("truncated chunked body (it ends before its last chunk)")]
    TruncatedChunks,

    /// A chunk size line is not hexadecimal.
    #[error("bad chunk size {size:?} in a chunked body")]
    BadChunkSize {
        /// The size as received.
        size: String,
    },

    /// A chunk is shorter than its size line says.
    #[error("truncated chunked body (a chunk of {size} bytes ends early)")]
    TruncatedChunk {
        /// The size its size line announced.
        size: usize,
    },
}
