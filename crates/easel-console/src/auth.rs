//! Why this exists: the console is read-only until an operator logs in with the admin token,
//! and a page on another site must never act through a logged-in browser. Logging in sets an
//! `HttpOnly`, `SameSite=Strict` cookie that carries a MAC keyed by the token (never the token
//! itself: a leaked cookie expires, and rotating the token ends every session). Every POST
//! must come from this origin (`Origin`/`Sec-Fetch-Site`) with the console's own header,
//! which no cross-site form can send; tools may send `Authorization: Bearer <token>` instead.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use crate::App;

/// The session cookie's name.
pub const COOKIE: &str = "easel_console";
/// The header every console POST carries (a cross-site form cannot set it).
pub const CSRF_HEADER: &str = "x-easel-console";
/// How long a login lasts.
const SESSION_SECONDS: u64 = 12 * 3600;

/// Why a request may not act.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `EASEL_ADMIN_TOKEN` is configured.
    Disabled,
    /// Not logged in (or the session expired, or the token changed).
    NotLoggedIn,
    /// A POST that did not come from the console's own page.
    CrossSite,
}

impl Refusal {
    pub fn response(&self) -> Response {
        let (status, message) = match self {
            Refusal::Disabled => (
                StatusCode::FORBIDDEN,
                "actions are disabled: start Easel with EASEL_ADMIN_TOKEN set",
            ),
            Refusal::NotLoggedIn => (
                StatusCode::UNAUTHORIZED,
                "log in with the admin token (EASEL_ADMIN_TOKEN) to do this",
            ),
            Refusal::CrossSite => (
                StatusCode::FORBIDDEN,
                "refused: this request did not come from the console's own page",
            ),
        };
        (status, Json(json!({"ok": false, "message": message}))).into_response()
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn mac(token: &str, nonce: &str, expires: u64) -> String {
    // HMAC takes a key of any length; this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(token.as_bytes()).unwrap_or_else(|_| unreachable!());
    m.update(format!("easel-console-session\n{nonce}\n{expires}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// A new session value for `token`, valid until `expires` (Unix seconds).
pub fn issue(token: &str, expires: u64) -> String {
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    format!("{nonce}.{expires}.{}", mac(token, &nonce, expires))
}

/// Whether `value` is a live session for `token` at `now`.
pub fn valid(token: &str, value: &str, now: u64) -> bool {
    let mut parts = value.split('.');
    let (Some(nonce), Some(expires), Some(given), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(expires) = expires.parse::<u64>() else {
        return false;
    };
    expires > now && constant_time_eq(mac(token, nonce, expires).as_bytes(), given.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie_of<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request carries a live session cookie or the bearer token.
pub fn logged_in(app: &App, headers: &HeaderMap) -> bool {
    let Some(token) = app.console.token() else {
        return false;
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(given) = bearer {
        return constant_time_eq(given.as_bytes(), token.expose().as_bytes());
    }
    cookie_of(headers, COOKIE).is_some_and(|v| valid(token.expose(), v, now_s()))
}

/// Whether a browser request comes from this origin: the console's header, and `Origin`
/// (when sent) naming this host, and `Sec-Fetch-Site` (when sent) saying `same-origin`.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if headers.get(CSRF_HEADER).is_none() {
        return false;
    }
    let host = text(header::HOST);
    let origin_ok = match text(header::ORIGIN) {
        None => true,
        Some(origin) => host.is_some_and(|h| origin == format!("http://{h}") || origin == format!("https://{h}")),
    };
    let site_ok = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|s| s == "same-origin");
    origin_ok && site_ok
}

/// The check of every state-changing route: `Ok` when this request may act.
pub fn may_act(app: &App, headers: &HeaderMap) -> Result<(), Refusal> {
    if app.console.token().is_none() {
        return Err(Refusal::Disabled);
    }
    let bearer = headers.contains_key(header::AUTHORIZATION);
    if !bearer && !same_origin(headers) {
        return Err(Refusal::CrossSite);
    }
    if logged_in(app, headers) {
        Ok(())
    } else {
        Err(Refusal::NotLoggedIn)
    }
}

/// `GET /console/api/session`: whether this browser may act, and whether anyone can.
pub async fn session(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    Json(json!({
        "logged_in": logged_in(&app, &headers),
        "actions_enabled": app.console.token().is_some(),
    }))
    .into_response()
}

#[derive(Deserialize)]
pub struct Login {
    token: String,
}

/// `POST /console/api/login` with `{"token": "..."}`: sets the session cookie.
pub async fn login(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Some(token) = app.console.token() else {
        return Refusal::Disabled.response();
    };
    if !same_origin(&headers) {
        return Refusal::CrossSite.response();
    }
    let Ok(given) = serde_json::from_slice::<Login>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "message": "send {\"token\": \"...\"}"})),
        )
            .into_response();
    };
    if !constant_time_eq(given.token.as_bytes(), token.expose().as_bytes()) {
        tracing::warn!("console: a login with a wrong token was refused");
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"ok": false, "message": "wrong token"})),
        )
            .into_response();
    }
    let value = issue(token.expose(), now_s() + SESSION_SECONDS);
    let cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}");
    (
        [(header::SET_COOKIE, cookie)],
        Json(json!({"ok": true, "message": "logged in"})),
    )
        .into_response()
}

/// `POST /console/api/logout`: drops the cookie.
pub async fn logout(headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return Refusal::CrossSite.response();
    }
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (
        [(header::SET_COOKIE, cookie)],
        Json(json!({"ok": true, "message": "logged out"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_session_is_valid_only_for_its_token_and_until_it_expires() {
        let s = issue("tok", 1000);
        assert!(valid("tok", &s, 999));
        assert!(!valid("tok", &s, 1000), "expired");
        assert!(!valid("other", &s, 10), "another token");
        assert!(!s.contains("tok"), "the cookie never carries the token: {s}");
        let forged = s.replace(".1000.", ".99999.");
        assert!(!valid("tok", &forged, 10), "the expiry is covered by the MAC");
        assert!(!valid("tok", "garbage", 10) && !valid("tok", "a.b.c.d", 10));
    }

    #[test]
    fn a_post_from_another_site_is_not_same_origin() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7870"));
        assert!(!same_origin(&h), "no console header");
        h.insert(CSRF_HEADER, HeaderValue::from_static("1"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:7870"));
        assert!(same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; easel_console=x.y.z; b=2"),
        );
        assert_eq!(cookie_of(&h, COOKIE), Some("x.y.z"));
        assert_eq!(cookie_of(&h, "c"), None);
    }
}
