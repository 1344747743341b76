//! Black-box test parts: a real Mosquitto on a free loopback port, the built
//! `lockhub` binary as a child process, and a "cloud" MQTT client.
#![allow(dead_code)]

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Mosquitto of the test's own, persistent across its restarts unless
/// started with [`Broker::start_with`]`(dir, false)`.
pub struct Broker {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    persistence: bool,
}

impl Broker {
    pub fn start(dir: &Path) -> Broker {
        Self::start_with(dir, true)
    }

    /// `persistence`: whether sessions, queued and retained messages survive a restart.
    pub fn start_with(dir: &Path, persistence: bool) -> Broker {
        let mut b = Broker {
            port: free_port(),
            dir: dir.join("broker"),
            child: None,
            persistence,
        };
        std::fs::create_dir_all(&b.dir).unwrap();
        b.spawn();
        b
    }

    /// `user root`: started as root (as in CI), Mosquitto otherwise drops to
    /// the `mosquitto` user, cannot write its persistence file in the test's
    /// directory and silently keeps nothing across a restart (ignored when
    /// not root).
    fn spawn(&mut self) {
        let conf = self.dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence {}\npersistence_location {}/\nautosave_interval 1\nmax_queued_messages 100000\nmessage_size_limit 0\nuser root\n",
                self.port,
                self.persistence,
                self.dir.display()
            ),
        )
        .unwrap();
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("mosquitto (run scripts/test-deps.sh)");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("mosquitto did not listen on {}", self.port);
    }

    /// Stop (SIGTERM: it saves its persistence) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The lockhub daemon as a child process with a config of the test's own.
pub struct Daemon {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
}

pub const FRONT: &str = "8e94044d-a4d1-4691-9f7e-e97d3e8a0b73";
pub const BACK: &str = "d87eea5d-71c6-4633-a966-396c5ac51177";

/// Simulated locks for a daemon's config: the seed's two doors plus `extra`
/// more, each with `latency_ms` per operation.
pub fn sim_locks(extra: usize, latency_ms: u64) -> String {
    sim_locks_with_slots(extra, latency_ms, 100)
}

/// [`sim_locks`] with `slots` slots each.
pub fn sim_locks_with_slots(extra: usize, latency_ms: u64, slots: usize) -> String {
    let mut s = String::new();
    let mut lock = |id: &str, name: &str| {
        s += &format!("[[sim.locks]]\ndevice_id = \"{id}\"\nname = \"{name}\"\nsupported_code_lengths = [4, 5, 6]\nslots = {slots}\nlatency_ms = {latency_ms}\n\n");
    };
    lock(FRONT, "Front door");
    lock(BACK, "Back door");
    for i in 0..extra {
        lock(
            &format!("00000000-0000-4000-8000-{i:012}"),
            &format!("Lock {i}"),
        );
    }
    s
}

pub fn lock_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

impl Daemon {
    pub fn new(dir: &Path, broker_port: u16, extra_toml: &str) -> Daemon {
        let store = dir.join("daemon").join("lockhub.db");
        Self::with_store(dir, broker_port, &store, extra_toml)
    }

    /// [`Daemon::new`] with the store at `store` (on a small tmpfs, say).
    pub fn with_store(dir: &Path, broker_port: u16, store: &Path, extra_toml: &str) -> Daemon {
        let dir = dir.join("daemon");
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("lockhub.sock");
        let config = dir.join("lockhub.toml");
        std::fs::write(
            &config,
            format!(
                "hub_id = \"test-hub\"\nworkspace_id = \"6ba7b810-9dad-41d1-80b4-00c04fd430c8\"\nlog_level = \"debug\"\n\n[store]\npath = \"{}\"\n\n[mqtt]\nport = {broker_port}\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\n[socket]\npath = \"{}\"\n\n[engine]\nretry_base_ms = 200\nretry_max_secs = 2\n\n[sim]\nstate_dir = \"{}\"\n\n{extra_toml}",
                store.display(),
                socket.display(),
                dir.join("locks").display(),
            ),
        )
        .unwrap();
        Daemon {
            dir,
            config,
            socket,
            child: None,
        }
    }

    pub fn start(&mut self) {
        self.start_env(&[]);
    }

    /// Start with extra environment variables (libfaketime's, for example).
    pub fn start_env(&mut self, env: &[(&str, String)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("lockhub.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lockhub"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn,lockhub=debug")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start lockhub");
        self.child = Some(child);
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }

    /// SIGTERM; returns the exit status and how long the stop took.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut c = self.child.take().expect("running");
        let t = std::time::Instant::now();
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let status = c.wait().unwrap();
        (status, t.elapsed())
    }

    /// The exit status of a daemon that already ended by itself.
    pub fn terminate_exited(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut c = self.child.take().expect("started");
        let t = std::time::Instant::now();
        let status = c.wait().unwrap();
        (status, t.elapsed())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("lockhub.log")).unwrap_or_default()
    }

    pub fn locks_dir(&self) -> PathBuf {
        self.dir.join("locks")
    }

    /// `GET /v1/health` on the socket, once it answers.
    pub async fn health(&self) -> Value {
        wait_for("the socket", 20, || self.socket.exists().then_some(())).await;
        for _ in 0..100 {
            if let Ok(v) = lockhub::status::client::get(&self.socket, "/v1/health").await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no health answer");
    }
}

/// A simulated lock's operation log (in `dir`) replayed: its slots, and every
/// operation that did nothing because the lock already was in that state (an
/// operation applied twice).
pub fn replay_lock_log(
    dir: &Path,
    id: &str,
) -> (std::collections::BTreeMap<u32, String>, Vec<String>) {
    let (_, ops) = lockhub::drivers::sim::SimDriver::read_persisted(dir, id).unwrap();
    let mut slots = std::collections::BTreeMap::new();
    let mut twice = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match &op.code {
            Some(pin) => {
                if slots.get(&op.slot) == Some(pin) {
                    twice.push(format!("op {i}: set slot {} again", op.slot));
                }
                slots.insert(op.slot, pin.clone());
            }
            None => {
                if slots.remove(&op.slot).is_none() {
                    twice.push(format!("op {i}: cleared empty slot {}", op.slot));
                }
            }
        }
    }
    (slots, twice)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The cloud: publishes commands and records everything under `{base}/`.
#[derive(Clone)]
pub struct Cloud {
    pub client: AsyncClient,
    pub base: String,
    pub seen: Seen,
    /// SUBACKs received: one per (re)connect once its subscription is in place.
    pub subscribed: Arc<std::sync::atomic::AtomicUsize>,
}

/// Every publish received: topic, payload, retained.
pub type Seen = Arc<Mutex<Vec<(String, Vec<u8>, bool)>>>;

impl Cloud {
    pub async fn connect(port: u16, base: &str, id: &str) -> Cloud {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_clean_session(false);
        o.set_max_packet_size(8 * 1024 * 1024, 8 * 1024 * 1024);
        let (client, mut el) = AsyncClient::new(o, 1024);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        el.set_network_options(net);
        let seen: Seen = Arc::default();
        let subscribed: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let subs = subscribed.clone();
        let s = seen.clone();
        let c = client.clone();
        let filter = format!("{base}/#");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        let c = c.clone();
                        let f = filter.clone();
                        tokio::spawn(async move { c.subscribe(f, QoS::AtLeastOnce).await });
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        subs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if let Some(t) = ready_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        s.lock()
                            .unwrap()
                            .push((p.topic.clone(), p.payload.to_vec(), p.retain))
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(10), ready_rx).await;
        Cloud {
            client,
            base: base.to_owned(),
            seen,
            subscribed,
        }
    }

    /// Waits for the daemon's retained `online` status.
    pub async fn wait_online(&self) {
        wait_for("hub online", 15, || {
            self.on("status")
                .into_iter()
                .find(|s| s["state"] == "online")
        })
        .await;
    }

    /// Waits until the daemon answers a command: its retained `online` can
    /// come before its command subscription is in place on a first connect
    /// (the broker drops what arrives before).
    pub async fn wait_serving(&self) {
        for i in 0..30 {
            let rid = format!("ready-{i}");
            self.send_json("devices/list", &serde_json::json!({"request_id": rid}))
                .await;
            for _ in 0..50 {
                if !self.on(&format!("responses/{rid}")).is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("the daemon never answered a command");
    }

    pub async fn send(&self, command: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(
                format!("{}/commands/{command}", self.base),
                QoS::AtLeastOnce,
                false,
                payload.into(),
            )
            .await
            .unwrap();
    }

    pub async fn send_json(&self, command: &str, body: &Value) {
        self.send(command, serde_json::to_vec(body).unwrap()).await
    }

    /// Everything received on `{base}/{rel}`, in order, as JSON (empty payload -> Null).
    pub fn on(&self, rel: &str) -> Vec<Value> {
        let t = format!("{}/{rel}", self.base);
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(topic, _, _)| *topic == t)
            .map(|(_, p, _)| {
                if p.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(p).unwrap_or(Value::Null)
                }
            })
            .collect()
    }

    pub fn events(&self) -> Vec<Value> {
        self.on("events")
    }

    pub fn count_prefix(&self, rel_prefix: &str) -> usize {
        let t = format!("{}/{rel_prefix}", self.base);
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(topic, _, _)| topic.starts_with(&t))
            .count()
    }

    /// Wait for the response to `request_id`.
    pub async fn response(&self, request_id: &str, secs: u64) -> Value {
        let rel = format!("responses/{request_id}");
        wait_for(&format!("response {request_id}"), secs, || {
            self.on(&rel).into_iter().next()
        })
        .await
    }
}

pub async fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback TCP relay in front of the broker that the test can close: a
/// closed gate drops every connection through it and every new one at once
/// (so, say, the cloud resubscribes after a broker restart before the hub
/// is back).
pub struct Gate {
    pub port: u16,
    open: Arc<std::sync::atomic::AtomicBool>,
    epoch: Arc<std::sync::atomic::AtomicU64>,
}

impl Gate {
    /// Must be called within a tokio runtime.
    pub fn start(to_port: u16) -> Gate {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let epoch = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (o, e) = (open.clone(), epoch.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !o.load(Ordering::SeqCst) {
                    continue;
                }
                let (o, e) = (o.clone(), e.clone());
                let mine = e.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", to_port)).await
                    else {
                        return;
                    };
                    let _ = outbound.set_nodelay(true);
                    let _ = inbound.set_nodelay(true);
                    let closed = async {
                        while o.load(Ordering::SeqCst) && e.load(Ordering::SeqCst) == mine {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = closed => {}
                    }
                });
            }
        });
        Gate { port, open, epoch }
    }

    pub fn close(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Prints the daemon's log lines that mention one of `words` if the test
/// fails while it is held; `std::mem::forget` it once the test passed.
pub struct DumpLog {
    pub log: PathBuf,
    pub words: &'static [&'static str],
}

impl Daemon {
    /// A [`DumpLog`] of this daemon's lines that mention one of `words`.
    pub fn dump_on_panic(&self, words: &'static [&'static str]) -> DumpLog {
        DumpLog {
            log: self.dir.join("lockhub.log"),
            words,
        }
    }
}

impl Drop for DumpLog {
    fn drop(&mut self) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log
            .lines()
            .filter(|l| self.words.iter().any(|w| l.contains(w)))
            .collect();
        eprintln!(
            "--- daemon log (lines with {:?}) ---\n{}",
            self.words,
            tail[tail.len().saturating_sub(60)..].join("\n")
        );
    }
}
