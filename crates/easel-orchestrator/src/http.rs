//! Why this exists: the orchestrator only ever needs `GET` on loopback (a worker's
//! `/readyz`, another orchestrator's `/status`), so it speaks HTTP/1.0 over a raw TCP
//! stream instead of linking an HTTP client. Flow: connect → send one request with
//! `Connection: close` → read to EOF (bounded) → split status line, headers and body
//! (de-chunking if the server chunked anyway).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod error;

pub use error::HttpError;

/// Answers larger than this are refused: `/status` of a hundred workers is a few KiB.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// A response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body, decoded lossily as UTF-8.
    pub body: String,
}

/// `GET http://<addr><path>` within `timeout`; `addr` is `host:port`.
pub async fn get(addr: &str, path: &str, timeout: Duration) -> Result<Response, HttpError> {
    match tokio::time::timeout(timeout, exchange(addr, path)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout { timeout }),
    }
}

async fn exchange(addr: &str, path: &str) -> Result<Response, HttpError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|source| HttpError::Connect { source })?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|source| HttpError::Send { source })?;
    let mut raw = Vec::new();
    let limit = u64::try_from(MAX_RESPONSE_BYTES + 1).unwrap_or(u64::MAX);
    (&mut stream)
        .take(limit)
        .read_to_end(&mut raw)
        .await
        .map_err(|source| HttpError::Read { source })?;
    if raw.len() > MAX_RESPONSE_BYTES {
        return Err(HttpError::TooLarge {
            limit: MAX_RESPONSE_BYTES,
        });
    }
    parse(&raw)
}

/// Parses a complete HTTP/1.x response.
fn parse(raw: &[u8]) -> Result<Response, HttpError> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(HttpError::NoHeaderEnd)?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| HttpError::NotHttp {
            status_line: status_line.to_owned(),
        })?;
    let chunked = lines.any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    let body = if chunked { dechunk(body)? } else { body.to_vec() };
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    loop {
        let end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(HttpError::TruncatedChunks)?;
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| HttpError::BadChunkSize {
            size: size_hex.to_owned(),
        })?;
        data = &data[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or(HttpError::TruncatedChunk { size })?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or(HttpError::TruncatedChunk { size })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_plain_response() {
        let r = parse(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 8\r\n\r\nloading\n").unwrap();
        assert_eq!(
            r,
            Response {
                status: 503,
                body: "loading\n".into()
            }
        );
    }

    #[test]
    fn parses_a_chunked_response() {
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(r.body, "abcde");
    }

    #[test]
    fn refuses_what_is_not_http() {
        let err = parse(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap_err();
        assert!(matches!(&err, HttpError::NotHttp { status_line } if status_line == "SSH-2.0-OpenSSH"));
        assert!(err.to_string().contains("not HTTP: \"SSH-2.0-OpenSSH\""), "{err}");
        assert!(matches!(parse(b"garbage"), Err(HttpError::NoHeaderEnd)));
    }

    #[test]
    fn a_broken_chunked_body_says_how() {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let with = |body: &[u8]| parse(&[head.as_slice(), body].concat());
        assert!(matches!(with(b"zz\r\nab\r\n0\r\n\r\n"), Err(HttpError::BadChunkSize { size }) if size == "zz"));
        assert!(matches!(with(b"5\r\nab"), Err(HttpError::TruncatedChunk { size: 5 })));
        assert!(matches!(with(b"2\r\nab\r\n"), Err(HttpError::TruncatedChunks)));
    }

    #[tokio::test]
    async fn a_closed_port_is_reported() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = get(&addr, "/readyz", Duration::from_secs(2)).await.unwrap_err();
        assert!(matches!(err, HttpError::Connect { .. }), "{err:?}");
        let shown = crate::Chain(&err).to_string();
        assert!(shown.starts_with("cannot connect: "), "{shown}");
    }
}
