//! Test support: starts the project's pinned zwave-js mock controller
//! (`tests/zwave-mock`, three locks: nodes 2 and 3 listening, node 4 FLiRS;
//! other configs in `mocks/` change what the locks do) on loopback ports and talks to its control channel. Used by the
//! integration tests and the benchmark; needs node and `npm ci` in
//! `tests/zwave-mock` (scripts/test-deps-zwave.sh does both).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// The network keys of the secure mock configs (`mocks/secure-locks.cjs`
/// and the configs built on it), in the keys file's format.
pub const SECURE_MOCK_KEYS: &str = r#"{
  "S0_Legacy": "0102030405060708090a0b0c0d0e0f10",
  "S2_Unauthenticated": "11111111111111111111111111111111",
  "S2_Authenticated": "22222222222222222222222222222222",
  "S2_AccessControl": "33333333333333333333333333333333"
}"#;

/// Why the mock could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("cannot start node: {0} (run scripts/test-deps-zwave.sh)")]
    Spawn(std::io::Error),
    #[error("mock harness missing at {0} (run scripts/test-deps-zwave.sh)")]
    Missing(PathBuf),
    #[error("the mock exited or did not get ready: {0}")]
    NotReady(String),
    #[error("control channel: {0}")]
    Control(String),
}

/// A running mock controller; killed when dropped.
pub struct MockController {
    child: Child,
    /// Every line the mock printed (its behaviours log what they do).
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The Serial API port (host side).
    pub port: u16,
    /// The control channel (line JSON).
    pub ctrl_port: u16,
}

impl MockController {
    /// The pinned harness in this repository.
    pub fn harness_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zwave-mock")
    }

    /// Starts the mock with the three-lock config and waits until it listens.
    pub fn start() -> Result<MockController, MockError> {
        Self::start_with("mocks/locks.cjs")
    }

    /// Starts the mock with another config of the harness (e.g.
    /// `mocks/sleepy.cjs`: node 4 sleeps).
    pub fn start_with(config: &str) -> Result<MockController, MockError> {
        let dir = Self::harness_dir();
        if !dir.join("node_modules/zwave-js").exists() {
            return Err(MockError::Missing(dir));
        }
        let mut child = Command::new("node")
            .current_dir(&dir)
            .args(["zw-mock-launch.cjs", "--config", config, "--port", "0"])
            .env("ZW_CTRL_PORT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(MockError::Spawn)?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            // Keep reading so the mock never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut port, mut ctrl_port) = (None, None);
        while port.is_none() || ctrl_port.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(MockError::NotReady("no ready line within 30 s".into()));
                }
            };
            if let Some(p) = line.split("ZWMOCK_READY port=").nth(1) {
                port = p.trim().parse().ok();
            }
            if let Some(p) = line.split("Control channel on 127.0.0.1:").nth(1) {
                ctrl_port = p.trim().parse().ok();
            }
        }
        Ok(MockController {
            child,
            log,
            port: port.expect("port"),
            ctrl_port: ctrl_port.expect("control port"),
        })
    }

    /// The lines the mock printed so far that contain `pattern`.
    pub fn log_lines(&self, pattern: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(pattern))
            .cloned()
            .collect()
    }

    /// The mock's log lines containing `pattern`, once there are at least
    /// `n` of them (or what there is after `within`): the mock writes its log
    /// on its own time, after the frames it logs are answered.
    pub async fn wait_log(&self, pattern: &str, n: usize, within: Duration) -> Vec<String> {
        let until = Instant::now() + within;
        loop {
            let lines = self.log_lines(pattern);
            if lines.len() >= n || Instant::now() >= until {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `tcp://127.0.0.1:PORT`, for [`super::ZwaveConfig::port`].
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Sends one control command and returns the mock's one-line answer.
    pub async fn control(&self, cmd: serde_json::Value) -> Result<String, MockError> {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.ctrl_port))
            .await
            .map_err(|e| MockError::Control(e.to_string()))?;
        let line = format!("{cmd}\n");
        s.write_all(line.as_bytes())
            .await
            .map_err(|e| MockError::Control(e.to_string()))?;
        let mut r = tokio::io::BufReader::new(s);
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut answer))
            .await
            .map_err(|_| MockError::Control("no answer".into()))?
            .map_err(|e| MockError::Control(e.to_string()))?;
        let answer = answer.trim().to_owned();
        if answer.starts_with("error") || answer == "unknown cmd" {
            return Err(MockError::Control(answer));
        }
        Ok(answer)
    }

    /// The codes a mock lock holds: slot -> code, from the `state` command.
    pub async fn codes(
        &self,
        node: u8,
    ) -> Result<std::collections::BTreeMap<u32, String>, MockError> {
        let raw = self
            .control(serde_json::json!({"cmd": "state", "node": node}))
            .await?;
        let pairs: Vec<(String, serde_json::Value)> =
            serde_json::from_str(&raw).map_err(|e| MockError::Control(e.to_string()))?;
        let mut out = std::collections::BTreeMap::new();
        for (k, v) in pairs {
            let Some(slot) = k.strip_prefix("UserCode_userCode_") else {
                continue;
            };
            let Ok(slot) = slot.parse() else { continue };
            if let Some(code) = mock_code(&v) {
                out.insert(slot, code);
            }
        }
        Ok(out)
    }
}

impl MockController {
    /// The PIN codes a mock User Credential lock holds: PIN slot -> (owner
    /// user, code), from the `state` command (`mocks/user-credential.cjs`).
    pub async fn credentials(
        &self,
        node: u8,
    ) -> Result<std::collections::BTreeMap<u32, (u32, String)>, MockError> {
        let raw = self
            .control(serde_json::json!({"cmd": "state", "node": node, "prefix": "UserCredential_cred_1_"}))
            .await?;
        let pairs: Vec<(String, serde_json::Value)> =
            serde_json::from_str(&raw).map_err(|e| MockError::Control(e.to_string()))?;
        let mut out = std::collections::BTreeMap::new();
        for (k, v) in pairs {
            let Some(Ok(slot)) = k.strip_prefix("UserCredential_cred_1_").map(str::parse) else {
                continue;
            };
            let user = v["userId"].as_u64().unwrap_or(0) as u32;
            if let Some(code) = mock_code(&v["credentialData"]) {
                out.insert(slot, (user, code));
            }
        }
        Ok(out)
    }
}

/// A code as the mock keeps it: a string, or a byte array serialised as
/// `{"0": 49, "1": 50, ...}`.
fn mock_code(v: &serde_json::Value) -> Option<String> {
    let code = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(m) => {
            let mut bytes: Vec<(usize, u8)> = m
                .iter()
                .filter_map(|(k, b)| Some((k.parse().ok()?, b.as_u64()? as u8)))
                .collect();
            bytes.sort();
            bytes.into_iter().map(|(_, b)| b as char).collect()
        }
        _ => return None,
    };
    (!code.is_empty()).then_some(code)
}

impl Drop for MockController {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
