//! Why this exists: `easel status` asks a running orchestrator over HTTP; this is the
//! asking, kept beside the server so the two agree on the shape of [`StatusReport`].

use std::time::Duration;

use crate::error::{Error, Result};
use crate::status::StatusReport;

/// A local orchestrator answers in milliseconds; a busy machine gets a few seconds.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET http://<addr>/status`, parsed. `addr` is `host:port` (an `http://` prefix is accepted).
pub async fn fetch_status(addr: &str) -> Result<StatusReport> {
    let addr = addr.trim_start_matches("http://").trim_end_matches('/');
    let response = crate::http::get(addr, "/status", STATUS_TIMEOUT)
        .await
        .map_err(|source| Error::Unreachable {
            addr: addr.to_owned(),
            source,
        })?;
    if response.status != 200 {
        return Err(Error::BadStatus {
            addr: addr.to_owned(),
            status: response.status,
            body: response.body.trim().to_owned(),
        });
    }
    serde_json::from_str(&response.body).map_err(|source| Error::NotAStatusReport {
        addr: addr.to_owned(),
        source,
    })
}
