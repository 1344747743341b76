//! Debian's headless Chromium driven through its ChromeDriver (W3C WebDriver
//! over HTTP on a loopback port): what a person sees and clicks on a page.
#![allow(dead_code)]

use super::http::request;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Panics, naming the installer script, when chromium or chromedriver is missing.
    pub async fn start() -> Browser {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing (scripts/test-deps-web.sh installs it)"
            );
        }
        let port = super::blackbox::free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = format!("127.0.0.1:{port}");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1280,1000",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let r = request(
            &addr,
            "POST",
            "/session",
            &[("content-type", "application/json")],
            caps.to_string().into_bytes(),
        )
        .await;
        let v = r.json();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {}", r.text()))
            .to_owned();
        Browser {
            driver,
            addr,
            session,
            _profile: profile,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let body = if method == "GET" {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let r = request(
            &self.addr,
            method,
            &path,
            &[("content-type", "application/json")],
            body,
        )
        .await;
        let v = r.json();
        assert!(r.status == 200, "WebDriver {method} {path}: {}", r.text());
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    /// The element matching a CSS selector (panics if none).
    pub async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call("POST", &format!("/element/{e}/click"), json!({}))
            .await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Run JavaScript in the page and return its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// The visible text of the element matching `css` ("" while hidden).
    pub async fn text_of(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.call("GET", &format!("/element/{e}/text"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until `css`'s visible text satisfies `ok`; returns it.
    pub async fn wait_text(&self, css: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self.text_of(css).await;
            if ok(&t) {
                return t;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{css} never matched; last text: {t:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The whole page's HTML as it is now.
    pub async fn source(&self) -> String {
        self.call("GET", "/source", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let v = self.call("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 PNG"))
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End the session first: ChromeDriver then quits the browser (killing
        // the driver alone would leave Chromium running).
        use std::io::{Read, Write};
        if let Ok(mut c) = std::net::TcpStream::connect(&self.addr) {
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                c,
                "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session, self.addr
            );
            let _ = c.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The `[web]` section that serves the page on a free loopback port behind
/// `password` (hashed by the built binary, as an installer would), and that
/// address.
pub fn web_section(password: &str) -> (String, String) {
    let hash = Command::new(env!("CARGO_BIN_EXE_lockhub"))
        .args(["web", "hash-password"])
        .env("LOCKHUB_WEB_PASSWORD", password)
        .output()
        .unwrap();
    let hash = String::from_utf8(hash.stdout).unwrap();
    let addr = format!("127.0.0.1:{}", super::blackbox::free_port());
    let section = format!(
        "[web]\nlisten = \"{addr}\"\npassword_hash = \"{}\"\n",
        hash.trim()
    );
    (addr, section)
}

/// Wait for the page at `addr`, open it in a new browser and log in.
pub async fn logged_in(addr: &str, password: &str) -> Browser {
    super::blackbox::wait_for("the page", 20, || {
        std::net::TcpStream::connect(addr).is_ok().then_some(())
    })
    .await;
    let browser = Browser::start().await;
    browser.goto(&format!("http://{addr}/")).await;
    browser
        .wait_text("#login", 10, |t| t.contains("Log in"))
        .await;
    browser.type_into("#password", password).await;
    browser.click("#login-button").await;
    browser
}
