//! The daemon over a real Mosquitto, measured from outside: publish -> response
//! latency (p50/p99, against a plain broker round trip in the same run),
//! commands per second, memory (idle, and 200 locks x 100 codes), idle wake-ups
//! per second, commands 13 s apart (a property's pace: do its locks' codes
//! stay decoded?), and time to ready with 20,000 codes stored; then the command
//! figures again with 20,000 codes stored, and the store's commits, fsyncs and
//! outbox-delete commits per command (from the daemon's `/metrics`). Floors measured in the same run: a
//! broker round trip and a durable SQLite commit on the same disk (WAL,
//! synchronous=FULL: SQLite syncs each commit itself; the daemon's writer
//! commits with synchronous=NORMAL and fdatasyncs the WAL itself after letting
//! go of the lock, `store::durable`, as durable and one sync shared by what
//! committed meanwhile). Prints figures; never fails on them. Needs mosquitto
//! and a release build of lockhub, built on its own:
//!
//!     cargo build --release --bin lockhub && cargo run --release --example mqtt_bench
//!
//! (Built in one command with the example, lockhub would get the features the
//! dev-dependencies turn on in shared crates: not the binary that ships, and
//! 0.4 MiB more of its data resident, 0.5-1 MiB more RSS at rest.) BENCH_MEMORY_ONLY=1: the memory figures only;
//! BENCH_WAL_COPY=DIR: copies of the database and its WAL half way through each round;
//! BENCH_PROPERTY=1: a property's hub instead (10 locks of 100 codes), commands 13 s apart only;
//! BENCH_HOLD_IDLE_SECS / BENCH_HOLD_SECS: leave the daemon running that long
//! at rest / after the load, to look at it (/proc/PID/smaps).

#[path = "../tests/support/fake_bluez.rs"]
mod fake_bluez;
#[path = "../tests/support/metrics.rs"]
mod metrics;
#[path = "common/proc.rs"]
mod proc;
use proc::{breakdown, cpu_ms, rss_kib, switches, written_bytes};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn lockhub_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("lockhub");
    assert!(bin.exists(), "build lockhub first: cargo build --release");
    bin
}

fn mosquitto(dir: &Path, port: u16) -> Child {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages 1000000\nmax_inflight_messages 0\n")).unwrap();
    let c = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    c
}

fn config(dir: &Path, port: u16, locks: usize, ble: bool) -> PathBuf {
    let mut s = format!(
        "hub_id = \"bench\"\nlog_level = \"{}\"\n[store]\npath = \"{}\"\n[mqtt]\nport = {port}\n[socket]\npath = \"{}\"\n[sim]\nstate_dir = \"{}\"\n",
        std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        dir.join("lockhub.db").display(),
        dir.join("lockhub.sock").display(),
        dir.join("locks").display()
    );
    for i in 0..locks {
        s += &format!("[[sim.locks]]\ndevice_id = \"00000000-0000-4000-8000-{i:012}\"\nname = \"Lock {i}\"\nslots = 150\n");
    }
    if ble {
        // One Nuki, unpaired: the radio, btleplug and D-Bus are up and
        // watching advertisements, as on a hub with BLE on.
        s += &format!(
            "[ble]\nenabled = true\nkeys_file = \"{}\"\nslots_file = \"{}\"\n[[ble.locks]]\naddress = \"{BLE_ADDRESS}\"\nname = \"Nuki\"\n",
            dir.join("ble-keys.json").display(),
            dir.join("ble-slots.json").display()
        );
    }
    let p = dir.join("lockhub.toml");
    std::fs::write(&p, s).unwrap();
    p
}

/// Start the daemon with a NOTIFY_SOCKET of ours; returns it and the time to READY=1.
fn start_daemon(dir: &Path, config: &Path, bus: Option<&str>) -> (Child, Duration) {
    let notify = dir.join("notify.sock");
    let _ = std::fs::remove_file(&notify);
    let sock = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let t = Instant::now();
    let mut cmd = Command::new(lockhub_bin());
    cmd.args(["run", "--config"])
        .arg(config)
        .env("NOTIFY_SOCKET", &notify);
    if let Some(bus) = bus {
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", bus);
    }
    // BENCH_DAEMON_ENV="K=V K=V": for profiling the daemon (LD_PRELOAD of a
    // heap profiler, MALLOC_ARENA_MAX, ...).
    for kv in std::env::var("BENCH_DAEMON_ENV")
        .unwrap_or_default()
        .split_whitespace()
    {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    #[allow(clippy::zombie_processes)] // the caller stops and waits for it
    let child = cmd
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(std::env::temp_dir().join("mqtt_bench_lockhub.log"))
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    loop {
        let n = sock.recv(&mut buf).expect("READY=1 from lockhub");
        if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
            return (child, t.elapsed());
        }
    }
}

fn stop(mut c: Child) {
    unsafe { libc_kill(c.id() as i32, 15) };
    let _ = c.wait();
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// The Nuki the fake BlueZ knows (tests/bluez/fake_nuki.py's default).
const BLE_ADDRESS: &str = "54:D2:72:AA:BB:CC";

/// A private system bus with a fake bluetoothd on it, as the BLE tests run it
/// (tests/support/fake_bluez.rs; needs dbus-daemon and python3-dbusmock:
/// scripts/test-deps-ble.sh), so the daemon runs with BLE on. `None` (and
/// the figures say BLE off) when they are missing. The Nuki is unpaired:
/// nothing connects to it, so its fake lock answers nothing.
fn bluez() -> Option<fake_bluez::FakeBluez> {
    fake_bluez::FakeBluez::start(BLE_ADDRESS, |_, _| fake_bluez::Reply {
        messages: Vec::new(),
        disconnect: true,
    })
    .ok()
}

type Inbox = Arc<Mutex<HashMap<String, Instant>>>;

/// The payloads of responses to request ids starting with `keep-` (the
/// others are only timed).
static KEPT: std::sync::LazyLock<Mutex<HashMap<String, Vec<u8>>>> =
    std::sync::LazyLock::new(Mutex::default);

async fn cloud(port: u16) -> (AsyncClient, Inbox) {
    let mut o = MqttOptions::new("bench-cloud", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(1000);
    o.set_max_packet_size(16 << 20, 16 << 20);
    let (c, mut el) = AsyncClient::new(o, 10_000);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    el.set_network_options(net);
    let inbox: Inbox = Arc::default();
    let i2 = inbox.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    if p.topic.contains("/responses/keep-") {
                        KEPT.lock()
                            .unwrap()
                            .insert(p.topic.clone(), p.payload.to_vec());
                    }
                    i2.lock().unwrap().insert(p.topic.clone(), Instant::now());
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    if let Some(t) = tx.take() {
                        let _ = t.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("cloud client: {e}"),
            }
        }
    });
    c.subscribe("bench/#", QoS::AtLeastOnce).await.unwrap();
    c.subscribe("lockhub/bench/responses/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let _ = rx.await;
    (c, inbox)
}

async fn wait_topic(inbox: &Inbox, topic: &str) -> Instant {
    loop {
        if let Some(t) = inbox.lock().unwrap().get(topic) {
            return *t;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
}

/// The floor of a command's commit: one small durable SQLite transaction
/// (WAL, synchronous=FULL: SQLite syncs the WAL in the commit) in the same
/// directory. Returns the times (ms) of
/// `n` commits one after the other.
fn sqlite_commits(dir: &Path, n: usize) -> Vec<f64> {
    let conn = rusqlite::Connection::open(dir.join("floor.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .unwrap();
    (0..n)
        .map(|_| {
            let t = Instant::now();
            conn.execute("INSERT INTO t (body) VALUES (?1)", [vec![b'x'; 600]])
                .unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

/// The daemon's resident memory at one moment: in all (KiB), as the kernel
/// splits it (anonymous: heap, stacks, SQLite's cache; file-backed: the
/// mapped binary and libraries) and by mapping.
struct Idle {
    rss: u64,
    anon: u64,
    file: u64,
    map: proc::Breakdown,
}

impl Idle {
    fn of(pid: u32) -> Idle {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let get = |k: &str| {
            s.lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0)
        };
        Idle {
            rss: rss_kib(pid),
            anon: get("RssAnon:"),
            file: get("RssFile:"),
            map: breakdown(pid),
        }
    }

    fn print(&self, what: &str) {
        let m = |k: u64| k as f64 / 1024.0;
        println!(
            "  {what:<27}: {:.1} MiB ({:.1} anonymous, {:.1} file-backed)",
            m(self.rss),
            m(self.anon),
            m(self.file)
        );
        println!("    by mapping (MiB)         : {}", self.map.line());
    }
}

/// The WAL file's largest size, sampled every 20 ms while the rounds run.
struct WalWatch(Arc<std::sync::atomic::AtomicU64>);

impl WalWatch {
    fn start(path: PathBuf) -> WalWatch {
        let max = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let m = max.clone();
        std::thread::spawn(move || loop {
            let size = std::fs::metadata(&path).map_or(0, |f| f.len());
            m.fetch_max(size, std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(20));
        });
        WalWatch(max)
    }

    /// The largest size since the last take.
    fn take_max(&self) -> u64 {
        self.0.swap(0, std::sync::atomic::Ordering::Relaxed)
    }
}

/// The daemon's counters from `/metrics` on its socket.
fn metrics(dir: &Path) -> HashMap<String, f64> {
    metrics::read(&dir.join("lockhub.sock"))
}

/// Store counters per command between two `/metrics` reads.
#[derive(Default)]
struct PerCommand {
    commits: f64,
    syncs: f64,
    removals: f64,
}

impl PerCommand {
    fn between(a: &HashMap<String, f64>, b: &HashMap<String, f64>, n: usize) -> PerCommand {
        let d = |k: &str| (b.get(k).unwrap_or(&0.0) - a.get(k).unwrap_or(&0.0)) / n as f64;
        PerCommand {
            commits: d("lockhub_store_commits_total"),
            syncs: d("lockhub_store_syncs_total"),
            removals: d("lockhub_store_outbox_delete_commits_total"),
        }
    }

    fn line(&self) -> String {
        format!(
            "{:.2} commits ({:.2} fsyncs) + {:.2} outbox deletes",
            self.commits, self.syncs, self.removals
        )
    }
}

/// What one round of commands measured.
struct Round {
    lat: Vec<f64>,
    cpu_per_cmd: f64,
    /// KiB the daemon wrote per command in the one-at-a-time half.
    written_per_cmd: f64,
    /// Store commits per command, one at a time and back to back.
    one: PerCommand,
    burst: PerCommand,
    rate: f64,
}

/// Commands as a property's come, minutes apart: the linked group of lock
/// 0's first code (on locks 0-9, 100 codes each by now) renamed with
/// `update_multiple` after a pause of 13 s each time, longer than an idle
/// lock's codes stay decoded after a burst (`store::CACHE_IDLE`, and the
/// 10 s between two looks of a quiet daemon's shedder). A hub whose codes
/// fit `KEEP_CODES` (src/store/locks.rs, [`property`]) keeps them decoded;
/// the main run's 20,000 do not, and each lock's own pass (once a minute)
/// reads its codes again, so its cache passes that mark and is emptied:
/// each command there meets its locks cold. Returns each publish ->
/// response (ms). Adds no code (the main run's locks stay at 100 for the
/// restart's round).
async fn after_pauses(c: &AsyncClient, inbox: &Inbox) -> Vec<f64> {
    let ask = |topic: &str, body: serde_json::Value| {
        let c = c.clone();
        let topic = format!("lockhub/bench/commands/{topic}");
        async move {
            let body = serde_json::to_vec(&body).unwrap();
            let t = Instant::now();
            c.publish(topic, QoS::AtLeastOnce, false, body)
                .await
                .unwrap();
            t
        }
    };
    ask(
        "access_codes/list",
        json!({"request_id": "keep-list", "device_id": "00000000-0000-4000-8000-000000000000"}),
    )
    .await;
    let topic = "lockhub/bench/responses/keep-list";
    wait_topic(inbox, topic).await;
    let listed: serde_json::Value = serde_json::from_slice(&KEPT.lock().unwrap()[topic]).unwrap();
    let key = listed["access_codes"][0]["common_code_key"]
        .as_str()
        .expect("the first code of lock 0 is in a linked group")
        .to_owned();
    let mut lat = Vec::new();
    for i in 0..3 {
        tokio::time::sleep(Duration::from_secs(13)).await;
        let t = ask(
            "access_codes/update_multiple",
            json!({"request_id": format!("keep-p{i}"), "common_code_key": key, "name": format!("Stay {i}")}),
        )
        .await;
        let topic = format!("lockhub/bench/responses/keep-p{i}");
        let got = wait_topic(inbox, &topic).await;
        lat.push((got - t).as_secs_f64() * 1e3);
        let answer: serde_json::Value =
            serde_json::from_slice(&KEPT.lock().unwrap()[&topic]).unwrap();
        assert_eq!(answer["ok"], true, "update_multiple: {answer}");
    }
    lat
}

/// BENCH_PROPERTY=1: a property's hub instead, 10 locks with 100 codes each
/// (100 create_multiple over all ten), then [`after_pauses`]: its codes fit
/// `KEEP_CODES`, so commands minutes apart should find them decoded.
async fn property() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = mosquitto(dir.path(), port);
    let cfg = config(dir.path(), port, 10, false);
    let (daemon, _) = start_daemon(dir.path(), &cfg, None);
    let (c, inbox) = cloud(port).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ids: Vec<String> = (0..10)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    for i in 0..100 {
        let body = json!({"request_id": format!("prop{i}"), "device_ids": ids});
        c.publish(
            "lockhub/bench/commands/access_codes/create_multiple",
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&body).unwrap(),
        )
        .await
        .unwrap();
    }
    wait_topic(&inbox, "lockhub/bench/responses/prop99").await;
    // The load's fan-out done and the cache quiet since.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let paused = after_pauses(&c, &inbox).await;
    stop(daemon);
    stop(broker);
    println!("mqtt_bench (property): lockhub (release) + Mosquitto on loopback, 10 simulated locks of 100 codes");
    println!(
        "  after 13 s pauses          : {} ms  (update_multiple of one group on the 10 locks, 20 s after the load, then 13 s apart)",
        each_ms(&paused)
    );
}

/// Latencies one by one ("3.10, 4.23, 4.59"): too few for percentiles.
fn each_ms(v: &[f64]) -> String {
    v.iter()
        .map(|l| format!("{l:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `n` create_multiple on 10 locks one at a time (publish -> response), then
/// `n` back to back; request ids start with `tag`.
async fn round(
    c: &AsyncClient,
    inbox: &Inbox,
    dir: &Path,
    pid: u32,
    locks: usize,
    tag: &str,
    n: usize,
) -> Round {
    let id = |i: usize| format!("00000000-0000-4000-8000-{i:012}");
    let mut lat = Vec::new();
    let cpu0 = cpu_ms(pid);
    let written0 = written_bytes(pid);
    let m0 = metrics(dir);
    for i in 0..n {
        let ids: Vec<String> = (0..10).map(|k| id((i * 10 + k) % locks)).collect();
        let body =
            serde_json::to_vec(&json!({"request_id": format!("{tag}l{i}"), "device_ids": ids}))
                .unwrap();
        let t = Instant::now();
        c.publish(
            "lockhub/bench/commands/access_codes/create_multiple",
            QoS::AtLeastOnce,
            false,
            body,
        )
        .await
        .unwrap();
        let got = wait_topic(inbox, &format!("lockhub/bench/responses/{tag}l{i}")).await;
        lat.push((got - t).as_secs_f64() * 1e3);
        if i == n / 2 {
            copy_wal(dir, tag);
        }
    }
    let cpu_per_cmd = (cpu_ms(pid) - cpu0) / n as f64;
    let written_per_cmd = (written_bytes(pid) - written0) as f64 / 1024.0 / n as f64;
    let m1 = metrics(dir);
    // Throughput: n more commands published back to back (group commit).
    let t = Instant::now();
    for i in 0..n {
        let ids: Vec<String> = (0..10).map(|k| id((i * 10 + k + 5) % locks)).collect();
        let body =
            serde_json::to_vec(&json!({"request_id": format!("{tag}t{i}"), "device_ids": ids}))
                .unwrap();
        c.publish(
            "lockhub/bench/commands/access_codes/create_multiple",
            QoS::AtLeastOnce,
            false,
            body,
        )
        .await
        .unwrap();
    }
    wait_topic(inbox, &format!("lockhub/bench/responses/{tag}t{}", n - 1)).await;
    let rate = n as f64 / t.elapsed().as_secs_f64();
    // The burst's fan-out and publishing done (no commit for a second; 10 s at most).
    let mut m2 = metrics(dir);
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let m = metrics(dir);
        let still = m.get("lockhub_store_commits_total") == m2.get("lockhub_store_commits_total");
        m2 = m;
        if still {
            break;
        }
    }
    Round {
        lat,
        cpu_per_cmd,
        written_per_cmd,
        one: PerCommand::between(&m0, &m1, n),
        burst: PerCommand::between(&m1, &m2, n),
        rate,
    }
}

/// BENCH_WAL_COPY=DIR: copies of the daemon's database and WAL half way
/// through a round's one-at-a-time half, to DIR/round-first and DIR/round-f,
/// for `scripts/wal-pages.py DB WAL` (what each commit wrote, by table and
/// index). The database copy is not consistent; its page map is what is wanted.
fn copy_wal(dir: &Path, tag: &str) {
    let Some(to) = std::env::var_os("BENCH_WAL_COPY") else {
        return;
    };
    let round = if tag.is_empty() { "first" } else { tag };
    let to = Path::new(&to).join(format!("round-{round}"));
    std::fs::create_dir_all(&to).unwrap();
    let _ = std::fs::copy(dir.join("lockhub.db-wal"), to.join("wal"));
    let _ = std::fs::copy(dir.join("lockhub.db"), to.join("db"));
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::var_os("BENCH_PROPERTY").is_some() {
        property().await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = mosquitto(dir.path(), port);
    let locks = 200;
    let bluez = bluez();
    let bus = bluez.as_ref().map(|b| b.bus.clone());
    let cfg = config(dir.path(), port, locks, bluez.is_some());
    let (daemon, ready_empty) = start_daemon(dir.path(), &cfg, bus.as_deref());
    let ready_at = Instant::now();
    let (c, inbox) = cloud(port).await;
    // Idle twice: 2 s after the cloud connected (the start's allocations,
    // page caches and blocking threads still there), and at rest 15 s after
    // READY=1 (the engine's shedder has given the start's memory back,
    // tokio's idle blocking threads have ended after their 10 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_start = Idle::of(daemon.id());
    tokio::time::sleep(
        (ready_at + Duration::from_secs(15)).saturating_duration_since(Instant::now()),
    )
    .await;
    let idle_rest = Idle::of(daemon.id());
    if let Some(secs) = std::env::var("BENCH_HOLD_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        eprintln!("holding the idle daemon (pid {}) for {secs} s", daemon.id());
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    let ble = if bluez.is_some() {
        "MQTT and BLE on (fake BlueZ)"
    } else {
        "MQTT on, BLE off (no dbus-daemon/python3-dbusmock)"
    };

    // Baseline: a plain QoS 1 round trip through the same broker.
    let mut base = Vec::new();
    for i in 0..300 {
        let topic = format!("bench/echo/{i}");
        let t = Instant::now();
        c.publish(&topic, QoS::AtLeastOnce, false, vec![b'x'; 600])
            .await
            .unwrap();
        let got = wait_topic(&inbox, &topic).await;
        base.push((got - t).as_secs_f64() * 1e3);
    }
    // Publish -> response, one at a time: create_multiple on 10 locks,
    // durable commit; then back to back. 0 -> 20,000 codes.
    let wal = WalWatch::start(dir.path().join("lockhub.db-wal"));
    let first = round(&c, &inbox, dir.path(), daemon.id(), locks, "", 1000).await;
    let wal_first = wal.take_max();
    // 20,000 codes (200 locks x 100): let the locks settle, then memory.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let loaded = Idle::of(daemon.id());
    if std::env::var_os("BENCH_MEMORY_ONLY").is_some() {
        // Memory only: end here, the daemon killed (-9) so that a heap
        // profiler's last snapshot is what was live after the load
        // (BENCH_HOLD_SECS: first leave it running that long, to look at it).
        if let Some(secs) = std::env::var("BENCH_HOLD_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            eprintln!("holding the daemon (pid {}) for {secs} s", daemon.id());
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
        let mut daemon = daemon;
        let _ = daemon.kill();
        let _ = daemon.wait();
        println!("mqtt_bench (memory only): {ble}, {locks} simulated locks");
        idle_start.print("RSS idle, 2 s after ready");
        idle_rest.print("RSS idle, at rest (15 s)");
        loaded.print("RSS 200 locks x 100 codes");
        stop(broker);
        return;
    }
    let s0 = switches(daemon.id());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let wakeups_loaded = (switches(daemon.id()) - s0) as f64 / 10.0;
    let paused = after_pauses(&c, &inbox).await;
    stop(daemon);
    // Restart with 20,000 codes stored: time to READY=1, then idle.
    let (daemon, ready_full) = start_daemon(dir.path(), &cfg, bus.as_deref());
    tokio::time::sleep(Duration::from_secs(15)).await;
    let s0 = switches(daemon.id());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let wakeups_idle = (switches(daemon.id()) - s0) as f64 / 10.0;
    let rss_idle_full = rss_kib(daemon.id());
    let map_idle_full = breakdown(daemon.id());
    // The same figures with 20,000 codes stored (20,000 -> 30,000: 150 a
    // lock, each lock's capacity).
    wal.take_max();
    let full = round(&c, &inbox, dir.path(), daemon.id(), locks, "f", 500).await;
    let wal_full = wal.take_max();
    stop(daemon);
    stop(broker);
    drop(bluez);
    let mut commits = sqlite_commits(dir.path(), 300);
    let commit_rate = 1e3 / (commits.iter().sum::<f64>() / commits.len() as f64);
    let (s50, s99) = (pct(&mut commits.clone(), 0.5), pct(&mut commits, 0.99));

    let (b50, b99) = (pct(&mut base.clone(), 0.5), pct(&mut base, 0.99));
    let figures = |r: &Round| {
        let mut lat = r.lat.clone();
        (pct(&mut lat.clone(), 0.5), pct(&mut lat, 0.99))
    };
    let (l50, l99) = figures(&first);
    let (f50, f99) = figures(&full);
    println!("mqtt_bench: lockhub (release) + Mosquitto on loopback, {locks} simulated locks, commits durable (WAL; the writer fdatasyncs it, store::durable)");
    println!("  floor: broker round trip   : p50 {b50:.2} ms, p99 {b99:.2} ms");
    println!("  floor: durable commit      : p50 {s50:.2} ms, p99 {s99:.2} ms, {commit_rate:.0} commits/s one after the other");
    println!("  publish -> response        : p50 {l50:.2} ms, p99 {l99:.2} ms  (create_multiple on 10 locks, 0 -> 10,000 codes; p99 {:.1}x broker + commit p99)", l99 / (b99 + s99));
    println!(
        "  daemon CPU per command     : {:.2} ms (command + fan-out to 10 locks + publishing)",
        first.cpu_per_cmd
    );
    println!(
        "  written per command        : {:.0} KiB (WAL frames, checkpoint copies, MQTT), {:.0} KiB with 20,000 codes stored",
        first.written_per_cmd, full.written_per_cmd
    );
    println!(
        "  store per command          : {} one at a time, {} back to back; with 20,000 codes: {}, {}",
        first.one.line(),
        first.burst.line(),
        full.one.line(),
        full.burst.line()
    );
    println!("  back-to-back commands      : {:.0} create_multiple/s (10 locks each, 10,000 -> 20,000 codes; {:.2}x the commit floor's rate)", first.rate, first.rate / commit_rate);
    println!("  with 20,000 codes stored   : p50 {f50:.2} ms, p99 {f99:.2} ms, CPU {:.2} ms, {:.0}/s  (vs the first figures: p50 {:.2}x, p99 {:.2}x, CPU {:.2}x, rate 1/{:.2})",
        full.cpu_per_cmd, full.rate, f50 / l50, f99 / l99, full.cpu_per_cmd / first.cpu_per_cmd, first.rate / full.rate);
    // The first lap after the restart (every lock met once, its codes read
    // from SQL) apart from the rest.
    let lap = locks / 10;
    let (c50, c99) = (
        pct(&mut full.lat[..lap].to_vec(), 0.5),
        pct(&mut full.lat[..lap].to_vec(), 0.99),
    );
    let (w50, w99) = (
        pct(&mut full.lat[lap..].to_vec(), 0.5),
        pct(&mut full.lat[lap..].to_vec(), 0.99),
    );
    println!("    first lap, cold locks    : p50 {c50:.2} ms, p99 {c99:.2} ms  (commands 1-{lap}: each lock's first command since the restart)");
    println!("    after it                 : p50 {w50:.2} ms, p99 {w99:.2} ms  (p99 {:.2}x the first figures')", w99 / l99);
    println!("  after 13 s pauses          : {} ms  (update_multiple of one group on 10 locks of 100 codes, 13 s apart: commands at a property's pace, on 200 locks' 20,000 codes)", each_ms(&paused));
    println!(
        "  WAL file at most          : {:.1} MiB (first round), {:.1} MiB (with 20,000 codes stored); checkpointed past 3.9 MiB",
        wal_first as f64 / 1048576.0,
        wal_full as f64 / 1048576.0
    );
    println!("  memory ({ble}):");
    idle_start.print("RSS idle, 2 s after ready");
    idle_rest.print("RSS idle, at rest (15 s)");
    loaded.print("RSS 200 locks x 100 codes");
    println!(
        "  RSS restarted, idle        : {:.1} MiB (20,000 codes stored): {}",
        rss_idle_full as f64 / 1024.0,
        map_idle_full.line()
    );
    println!("  idle wake-ups              : {wakeups_idle:.1}/s (restarted, 20,000 codes), {wakeups_loaded:.1}/s (right after the load)");
    println!(
        "  ready (READY=1)            : {:.0} ms empty, {:.0} ms with 20,000 codes stored",
        ready_empty.as_secs_f64() * 1e3,
        ready_full.as_secs_f64() * 1e3
    );
}
