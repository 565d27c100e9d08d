//! Why this exists: the console is tested in a real browser — Debian's Chromium, headless,
//! driven through Debian's ChromeDriver by the W3C WebDriver protocol. The protocol is a
//! handful of JSON-over-HTTP calls, so this small client speaks it with the HTTP client the
//! tests already have instead of pulling in a WebDriver crate. The driver is started on a
//! free loopback port and killed (by its pid) when the client is dropped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The element key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether the browser is installed; in CI (`CI=true`) its absence fails the test.
pub fn available() -> bool {
    let here = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !here {
        assert!(
            std::env::var("CI").map(|v| v != "true").unwrap_or(true),
            "{CHROMIUM} or {CHROMEDRIVER} is missing: in CI scripts/test.sh installs chromium and chromium-driver"
        );
        eprintln!("SKIPPED: install chromium and chromium-driver (scripts/test.sh does) to run the browser tests");
    }
    here
}

/// A browser session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
    pub shots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let http = self.http.clone();
        let _ = self
            .rt
            .block_on(async move { tokio::time::timeout(Duration::from_secs(10), http.delete(url).send()).await });
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium with a fresh profile in `profile`;
    /// screenshots go to `shots`.
    pub fn start(profile: &Path, shots: &Path, port: u16) -> Self {
        std::fs::create_dir_all(shots).unwrap();
        let log = std::fs::File::create(profile.with_extension("driver.log")).unwrap();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start chromedriver");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let mut b = Self {
            driver,
            base,
            session: String::new(),
            http,
            rt,
            shots: shots.to_path_buf(),
        };
        let end = Instant::now() + Duration::from_secs(30);
        while b.raw("GET", "/status", None).is_err() {
            assert!(Instant::now() < end, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1600",
                format!("--user-data-dir={}", profile.display()),
            ]}
        }}});
        let v = b.raw("POST", "/session", Some(caps)).expect("a browser session");
        b.session = v["sessionId"].as_str().expect("a session id").to_owned();
        b
    }

    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or(json!({}))),
        };
        self.rt.block_on(async move {
            let r = req.send().await.map_err(|e| e.to_string())?;
            let ok = r.status().is_success();
            let v: Value = r.json().await.map_err(|e| e.to_string())?;
            if ok {
                Ok(v["value"].clone())
            } else {
                Err(v["value"].to_string())
            }
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.raw(method, &path, body)
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"))
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn eval(&self, script: &str, args: Value) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": args})))
    }

    /// The element `css` selects, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let path = format!("/session/{}/element", self.session);
        let v = self
            .raw("POST", &path, Some(json!({"using": "css selector", "value": css})))
            .ok()?;
        v[ELEMENT].as_str().map(str::to_owned)
    }

    /// Clicks `css` as a person would (a real pointer event).
    pub fn click(&self, css: &str) {
        self.on_element(css, "click", json!({}));
    }

    /// Types `text` into `css`.
    pub fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "value", json!({ "text": text }));
    }

    /// POSTs `/element/{id}/{action}` to the element `css` selects. The page redraws live:
    /// when the element found was replaced before the action reached it ("stale element
    /// reference"), the new one is found and the action sent again, as a person's second
    /// click would land on the redrawn button.
    fn on_element(&self, css: &str, action: &str, body: Value) {
        for _ in 0..50 {
            let id = self.find(css).unwrap_or_else(|| panic!("no element {css}"));
            let path = format!("/session/{}/element/{id}/{action}", self.session);
            match self.raw("POST", &path, Some(body.clone())) {
                Ok(_) => return,
                Err(e) if e.contains("stale element reference") => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("webdriver {action} on {css}: {e}"),
            }
        }
        panic!("{css} was redrawn under every {action} for 2.5 s");
    }

    /// The text of `css`, or `None` if it is not on the page.
    pub fn text(&self, css: &str) -> Option<String> {
        let v = self.eval(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        );
        v.as_str().map(str::to_owned)
    }

    /// Polls `f` every 100 ms until it gives a value, or panics after `limit` with a screenshot.
    pub fn wait<T>(&self, what: &str, limit: Duration, mut f: impl FnMut(&Self) -> Option<T>) -> T {
        let end = Instant::now() + limit;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if Instant::now() > end {
                let shot = self.screenshot(&format!("timeout-{}", what.replace(' ', "-")));
                panic!("timed out waiting for {what} (screenshot {})", shot.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.call("POST", "/window/rect", Some(json!({"width": width, "height": height})));
    }

    /// Saves a screenshot as `<shots>/<name>.png` and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}
