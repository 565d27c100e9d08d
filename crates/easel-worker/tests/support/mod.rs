//! Test support shared by the worker's and the CLI's integration tests: the real services the
//! test script starts (Redis, an S3 server) found through environment variables, and stub
//! servers for what cannot run here — Supabase Storage and the `job-callback` edge function —
//! which enforce the real rules (bearer auth → 401, `application/octet-stream` → 415,
//! duplicate without `x-upsert` → 409, `{Id, Key}` answers; callbacks recorded, 500 on demand),
//! plus an Upstash-REST front for the real Redis.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// How long a test waits for something that should happen within a second or two.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A service URL from the test script, e.g. `EASEL_TEST_REDIS_URL`. In CI (`CI=true`) a
/// missing one fails the test; elsewhere the test is skipped with a message.
pub fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set: in CI the test script (scripts/test.sh) must start the service and export it")
        }
        _ => {
            eprintln!("SKIPPED: {var} is not set; run ./scripts/test.sh to start the services this test needs");
            None
        }
    }
}

/// A name no other test uses (queues, buckets, job ids).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{:08x}", std::process::id(), rand::random::<u32>())
}

/// Polls `f` until it returns `Some`, or panics after [`DEADLINE`] naming `what`.
pub async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One stored object.
#[derive(Clone, Debug)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub content_type: String,
}

/// One recorded callback request.
#[derive(Clone, Debug)]
pub struct Callback {
    pub body: Value,
    pub raw: String,
    pub headers: BTreeMap<String, String>,
}

#[derive(Default)]
struct StubState {
    key: String,
    objects: Mutex<BTreeMap<String, Object>>,
    uploads: Mutex<Vec<(String, BTreeMap<String, String>)>>,
    storage_failures: Mutex<u32>,
    storage_down_until: Mutex<Option<Instant>>,
    callbacks: Mutex<Vec<Callback>>,
    /// Signed-URL tokens: token → (`bucket/path`, expiry).
    signed: Mutex<BTreeMap<String, (String, Instant)>>,
    callback_failures: Mutex<u32>,
    callback_attempts: Mutex<u32>,
    images: Mutex<BTreeMap<String, Vec<u8>>>,
    changed: Notify,
}

/// A Supabase stand-in: Storage REST, the `job-callback` function, and static reference images.
#[derive(Clone)]
pub struct SupabaseStub {
    pub url: String,
    pub key: String,
    state: Arc<StubState>,
}

impl SupabaseStub {
    /// Starts the stub on a loopback port; `key` is the service key it accepts.
    pub async fn start(key: &str) -> Self {
        Self::start_at(key, std::net::Ipv4Addr::LOCALHOST.into()).await
    }

    /// Starts the stub on a free port of `ip`.
    pub async fn start_at(key: &str, ip: std::net::IpAddr) -> Self {
        let state = Arc::new(StubState {
            key: key.to_string(),
            ..Default::default()
        });
        let app = Router::new()
            .route("/storage/v1/object/{bucket}/{*path}", post(upload))
            .route("/storage/v1/object/sign/{bucket}/{*path}", post(sign).get(signed))
            .route("/functions/v1/job-callback", post(callback))
            .route("/images/{name}", get(image))
            .with_state(state.clone());
        let url = serve_at(app, ip).await;
        Self {
            url,
            key: key.to_string(),
            state,
        }
    }

    /// The next `n` uploads answer 503.
    pub fn fail_storage(&self, n: u32) {
        *self.state.storage_failures.lock().unwrap() = n;
    }

    /// Every upload answers 503 for `d` from now (an outage, however many retries come).
    pub fn fail_storage_for(&self, d: Duration) {
        *self.state.storage_down_until.lock().unwrap() = Some(Instant::now() + d);
    }

    /// The next `n` callbacks answer 500.
    pub fn fail_callbacks(&self, n: u32) {
        *self.state.callback_failures.lock().unwrap() = n;
    }

    /// Stored objects by `bucket/path`.
    pub fn objects(&self) -> BTreeMap<String, Object> {
        self.state.objects.lock().unwrap().clone()
    }

    /// Upload requests (`bucket/path`, headers) in arrival order, failed ones included.
    pub fn uploads(&self) -> Vec<(String, BTreeMap<String, String>)> {
        self.state.uploads.lock().unwrap().clone()
    }

    /// Callbacks answered 200, in order.
    pub fn callbacks(&self) -> Vec<Callback> {
        self.state.callbacks.lock().unwrap().clone()
    }

    /// Callback requests received, failed ones included.
    pub fn callback_attempts(&self) -> u32 {
        *self.state.callback_attempts.lock().unwrap()
    }

    /// Serves `bytes` at `{url}/images/{name}`.
    pub fn add_image(&self, name: &str, bytes: Vec<u8>) -> String {
        self.state.images.lock().unwrap().insert(name.to_string(), bytes);
        format!("{}/images/{name}", self.url)
    }

    /// Waits until a callback for `job_id` was delivered; returns it.
    pub async fn callback_for(&self, job_id: &str) -> Callback {
        let found = || self.callbacks().into_iter().find(|c| c.body["job_id"] == job_id);
        let start = Instant::now();
        loop {
            let notified = self.state.changed.notified();
            if let Some(c) = found() {
                return c;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no callback for job {job_id}; got {:?}",
                self.callbacks()
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }
}

fn headers_map(h: &HeaderMap) -> BTreeMap<String, String> {
    h.iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect()
}

fn authorized(state: &StubState, h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(format!("Bearer {}", state.key).as_str())
}

fn storage_error(status: StatusCode, error: &str, message: &str) -> Response {
    let body = json!({"statusCode": status.as_u16().to_string(), "error": error, "message": message});
    (status, Json(body)).into_response()
}

async fn upload(
    State(s): State<Arc<StubState>>,
    Path((bucket, path)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = format!("{bucket}/{path}");
    s.uploads.lock().unwrap().push((key.clone(), headers_map(&headers)));
    if !authorized(&s, &headers) {
        return storage_error(StatusCode::UNAUTHORIZED, "Unauthorized", "Invalid JWT");
    }
    {
        let down = s.storage_down_until.lock().unwrap().is_some_and(|t| Instant::now() < t);
        let mut f = s.storage_failures.lock().unwrap();
        if down || *f > 0 {
            *f = f.saturating_sub(1);
            return storage_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "storage is restarting",
            );
        }
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if ct.is_empty() || ct == "application/octet-stream" {
        return storage_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_mime_type",
            "mime type application/octet-stream is not supported",
        );
    }
    let upsert = headers.get("x-upsert").and_then(|v| v.to_str().ok()) == Some("true");
    let mut objects = s.objects.lock().unwrap();
    if objects.contains_key(&key) && !upsert {
        return storage_error(StatusCode::CONFLICT, "Duplicate", "The resource already exists");
    }
    objects.insert(
        key.clone(),
        Object {
            bytes: body.to_vec(),
            content_type: ct,
        },
    );
    drop(objects);
    s.changed.notify_waiters();
    Json(json!({"Id": format!("{:032x}", rand::random::<u128>()), "Key": key})).into_response()
}

/// `POST /storage/v1/object/sign/{bucket}/{path}` with `{"expiresIn": seconds}`: Supabase's
/// signed URL (service key required; the object must exist).
async fn sign(
    State(s): State<Arc<StubState>>,
    Path((bucket, path)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&s, &headers) {
        return storage_error(StatusCode::UNAUTHORIZED, "Unauthorized", "Invalid JWT");
    }
    let expires = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["expiresIn"].as_u64())
        .filter(|e| *e > 0);
    let Some(expires) = expires else {
        return storage_error(StatusCode::BAD_REQUEST, "Invalid Input", "expiresIn is required");
    };
    let key = format!("{bucket}/{path}");
    if !s.objects.lock().unwrap().contains_key(&key) {
        return storage_error(StatusCode::BAD_REQUEST, "not_found", "Object not found");
    }
    let token = format!("{:032x}", rand::random::<u128>());
    let until = Instant::now() + Duration::from_secs(expires);
    s.signed.lock().unwrap().insert(token.clone(), (key, until));
    Json(json!({"signedURL": format!("/object/sign/{bucket}/{path}?token={token}")})).into_response()
}

/// `GET /storage/v1/object/sign/{bucket}/{path}?token=...`: the object, for a live token of it.
async fn signed(
    State(s): State<Arc<StubState>>,
    Path((bucket, path)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<BTreeMap<String, String>>,
) -> Response {
    let key = format!("{bucket}/{path}");
    let live = q
        .get("token")
        .and_then(|t| s.signed.lock().unwrap().get(t).cloned())
        .is_some_and(|(k, until)| k == key && Instant::now() < until);
    if !live {
        return storage_error(StatusCode::BAD_REQUEST, "InvalidJWT", "invalid signature");
    }
    match s.objects.lock().unwrap().get(&key) {
        Some(o) => ([("content-type", o.content_type.clone())], o.bytes.clone()).into_response(),
        None => storage_error(StatusCode::BAD_REQUEST, "not_found", "Object not found"),
    }
}

async fn callback(State(s): State<Arc<StubState>>, headers: HeaderMap, body: Bytes) -> Response {
    *s.callback_attempts.lock().unwrap() += 1;
    if !authorized(&s, &headers) {
        return (StatusCode::UNAUTHORIZED, "unauthorized").into_response();
    }
    {
        let mut f = s.callback_failures.lock().unwrap();
        if *f > 0 {
            *f -= 1;
            return (StatusCode::INTERNAL_SERVER_ERROR, "edge function crashed").into_response();
        }
    }
    let raw = String::from_utf8_lossy(&body).into_owned();
    let Ok(parsed) = serde_json::from_str::<Value>(&raw) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    s.callbacks.lock().unwrap().push(Callback {
        body: parsed,
        raw,
        headers: headers_map(&headers),
    });
    s.changed.notify_waiters();
    (StatusCode::OK, Json(json!({"success": true}))).into_response()
}

async fn image(State(s): State<Arc<StubState>>, Path(name): Path<String>) -> Response {
    match s.images.lock().unwrap().get(&name) {
        Some(b) => ([("content-type", "image/png")], b.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, "no such image").into_response(),
    }
}

/// Serves `app` on a free loopback port; returns its base URL.
pub async fn serve(app: Router) -> String {
    serve_at(app, std::net::Ipv4Addr::LOCALHOST.into()).await
}

/// Serves `app` on a free port of `ip` (loopback, or a test's own network-namespace bridge).
pub async fn serve_at(app: Router, ip: std::net::IpAddr) -> String {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind a port");
    let addr: SocketAddr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// An Upstash-REST front for a real Redis: `POST /` with a JSON array command and
/// `Authorization: Bearer <token>`, answering `{"result": ...}` or `{"error": ...}` as Upstash does.
pub async fn upstash_front(redis_url: &str, token: &str) -> String {
    let client = redis::Client::open(redis_url).expect("redis url");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test Redis");
    let state = Arc::new((conn, token.to_string()));
    let app = Router::new().route("/", post(upstash_cmd)).with_state(state);
    serve(app).await
}

async fn upstash_cmd(
    State(s): State<Arc<(redis::aio::MultiplexedConnection, String)>>,
    headers: HeaderMap,
    Json(args): Json<Vec<String>>,
) -> Response {
    let bearer = format!("Bearer {}", s.1);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "Unauthorized"}))).into_response();
    }
    let Some((name, rest)) = args.split_first() else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "empty command"}))).into_response();
    };
    let mut conn = s.0.clone();
    // Upstash answers bulk strings base64-encoded when asked (`Upstash-Encoding: base64`).
    let b64 = headers.get("upstash-encoding").and_then(|v| v.to_str().ok()) == Some("base64");
    match redis::cmd(name).arg(rest).query_async::<redis::Value>(&mut conn).await {
        Ok(v) => Json(json!({"result": to_json(v, b64)})).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e.to_string()}))).into_response(),
    }
}

fn to_json(v: redis::Value, b64: bool) -> Value {
    use base64::Engine as _;
    let text = |b: &[u8]| {
        if b64 {
            json!(base64::engine::general_purpose::STANDARD.encode(b))
        } else {
            json!(String::from_utf8_lossy(b))
        }
    };
    match v {
        redis::Value::Nil => Value::Null,
        redis::Value::Int(i) => json!(i),
        redis::Value::BulkString(b) => text(&b),
        redis::Value::SimpleString(s) => text(s.as_bytes()),
        redis::Value::Okay => text(b"OK"),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            Value::Array(items.into_iter().map(|i| to_json(i, b64)).collect())
        }
        other => json!(format!("{other:?}")),
    }
}

/// A small PNG for reference-image tests.
pub fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encode png");
    out.into_inner()
}

/// A free loopback port (bound then released), never one this test binary handed out
/// before: the kernel may give a just-released port again.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}
