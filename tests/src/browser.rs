//! A real headless Chromium, driven over WebDriver by a private chromedriver on a free port.
//!
//! Chromium runs with a fresh profile and without its background networking (this machine's
//! network is closed to it), and is stopped with its session when the guard drops.

use crate::free_port;
use crate::http::call;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A browser session; closed on drop.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a `width`×`height` window.
    pub fn start(width: u32, height: u32) -> Browser {
        assert!(
            Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
            "Chromium is missing: apt-get install chromium chromium-driver (tests/run does)"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromedriver");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !call(addr, "GET", "/status", None, Duration::from_secs(2))
            .is_ok_and(|r| r.json()["value"]["ready"] == true)
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let args = serde_json::json!([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--lang=en-GB",
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ]);
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let created = browser.command("POST", "/session", Some(caps));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        browser
    }

    fn command(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let body = body.map(|b| b.to_string());
        let reply = call(
            self.addr,
            method,
            path,
            body.as_deref(),
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let json = reply.json();
        assert!(
            reply.status == 200,
            "WebDriver {method} {path}: {}",
            reply.body
        );
        json["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens `url` (and waits for its load event).
    pub fn goto(&self, url: &str) {
        self.command(
            "POST",
            &self.session_path("/url"),
            Some(serde_json::json!({ "url": url })),
        );
    }

    /// Reloads the page.
    pub fn reload(&self) {
        self.command(
            "POST",
            &self.session_path("/refresh"),
            Some(serde_json::json!({})),
        );
    }

    /// The value of `script` (a function body, so it ends in `return …`) run in the page.
    pub fn eval(&self, script: &str) -> serde_json::Value {
        self.command(
            "POST",
            &self.session_path("/execute/sync"),
            Some(serde_json::json!({ "script": script, "args": [] })),
        )
    }

    /// Runs `script` until it returns something other than null or false, at most `within`.
    pub fn wait_for(&self, script: &str, within: Duration) -> Option<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let v = self.eval(script);
            if !v.is_null() && v != false {
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.command("GET", &self.session_path("/screenshot"), None);
        let png = decode_base64(b64.as_str().unwrap_or_default());
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is no PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = call(
                self.addr,
                "DELETE",
                &self.session_path(""),
                None,
                Duration::from_secs(10),
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where tests leave files for people to look at: `target/test-artifacts/`.
pub fn artifact(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/test-artifacts
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    target.join("test-artifacts").join(name)
}

fn decode_base64(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
