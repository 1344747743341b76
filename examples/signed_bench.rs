//! The cost of signed commands: publish -> response latency through a real
//! Mosquitto, the same daemon binary in `[auth] mode = "off"` and `"signed"`,
//! in the same run (p50, p99, and the ratio), plus the verification alone in
//! process. Prints figures; never fails on them. Needs mosquitto and a
//! release build of lockhub:
//!
//!     cargo build --release && cargo run --release --example signed_bench [n]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FRONT: &str = "8e94044d-a4d1-4691-9f7e-e97d3e8a0b73";

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

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

fn stop(mut c: Child) {
    let _ = Command::new("kill").arg(c.id().to_string()).status();
    let _ = c.wait();
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn sign(key: &SigningKey, cmd: &str, body: serde_json::Value, jti: usize) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"aud": "bench", "cmd": cmd, "iat": now, "exp": now + 600, "jti": format!("j{jti}"), "body": body});
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "EdDSA", "kid": "k1"}).to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    format!("{input}.{}", b64(&key.sign(input.as_bytes()).to_bytes())).into_bytes()
}

type Inbox = Arc<Mutex<HashMap<String, Instant>>>;

async fn cloud(port: u16) -> (AsyncClient, Inbox) {
    let mut o = MqttOptions::new("bench-cloud", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    let (c, mut el) = AsyncClient::new(o, 1000);
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
                    i2.lock().unwrap().insert(p.topic.clone(), Instant::now());
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    if let Some(t) = tx.take() {
                        let _ = t.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    c.subscribe("lockhub/bench/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let _ = rx.await;
    (c, inbox)
}

async fn wait_topic(inbox: &Inbox, topic: &str) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(t) = inbox.lock().unwrap().get(topic) {
            return *t;
        }
        assert!(Instant::now() < deadline, "no answer on {topic}");
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

/// Publish -> response latencies (ms) of `n` devices/get, one at a time.
async fn run(dir: &Path, signed: Option<&SigningKey>, n: usize) -> Vec<f64> {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"),
    )
    .unwrap();
    let broker = spawn(Command::new("mosquitto").arg("-c").arg(&conf));
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut toml = format!(
        "hub_id = \"bench\"\nlog_level = \"warn\"\n[store]\npath = \"{}\"\n[mqtt]\nport = {port}\n[socket]\nenabled = false\n[[sim.locks]]\ndevice_id = \"{FRONT}\"\nname = \"Front door\"\n",
        dir.join("lockhub.db").display()
    );
    if let Some(k) = signed {
        let keys = dir.join("keys.json");
        std::fs::write(&keys, json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": b64(k.verifying_key().as_bytes())}]}).to_string()).unwrap();
        toml += &format!(
            "[auth]\nmode = \"signed\"\ntrusted_keys_file = \"{}\"\n",
            keys.display()
        );
    }
    let cfg = dir.join("lockhub.toml");
    std::fs::write(&cfg, toml).unwrap();
    let (c, inbox) = cloud(port).await;
    let daemon = spawn(
        Command::new(lockhub_bin())
            .args(["run", "--config"])
            .arg(&cfg),
    );
    wait_topic(&inbox, "lockhub/bench/status").await;
    // Signed before the clock starts: the cloud's cost is not the hub's.
    let payloads: Vec<Vec<u8>> = (0..n + 50)
        .map(|i| {
            let body = json!({"request_id": format!("r{i}"), "device_id": FRONT});
            match signed {
                Some(k) => sign(k, "devices/get", body, i),
                None => serde_json::to_vec(&body).unwrap(),
            }
        })
        .collect();
    let mut lat = Vec::new();
    for (i, p) in payloads.into_iter().enumerate() {
        let t = Instant::now();
        c.publish(
            "lockhub/bench/commands/devices/get",
            QoS::AtLeastOnce,
            false,
            p,
        )
        .await
        .unwrap();
        let got = wait_topic(&inbox, &format!("lockhub/bench/responses/r{i}")).await;
        if i >= 50 {
            lat.push((got - t).as_secs_f64() * 1e3);
        }
    }
    stop(daemon);
    stop(broker);
    lat
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let key = SigningKey::from_bytes(&[42; 32]);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut off = run(d1.path(), None, n).await;
    let mut signed = run(d2.path(), Some(&key), n).await;

    // The verification alone, in process (what the hub adds per command).
    let kdir = tempfile::tempdir().unwrap();
    let keys = kdir.path().join("keys.json");
    std::fs::write(&keys, json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": b64(key.verifying_key().as_bytes())}]}).to_string()).unwrap();
    let trust = lockhub::auth::Trust::open("bench", &keys).unwrap();
    let p = sign(
        &key,
        "devices/get",
        json!({"request_id": "x", "device_id": FRONT}),
        0,
    );
    let now = chrono::Utc::now().timestamp();
    let mut verify_us: Vec<f64> = (0..2000)
        .map(|_| {
            let t = Instant::now();
            trust.verify("devices/get", &p, now).unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();

    let (o50, o99) = (pct(&mut off, 0.5), pct(&mut off, 0.99));
    let (s50, s99) = (pct(&mut signed, 0.5), pct(&mut signed, 0.99));
    println!("publish -> response, devices/get, {n} sequential commands each, same run:");
    println!("  auth off     p50 {o50:.3} ms  p99 {o99:.3} ms");
    println!("  auth signed  p50 {s50:.3} ms  p99 {s99:.3} ms");
    println!(
        "  signed / off p50 x{:.2}  p99 x{:.2}",
        s50 / o50,
        s99 / o99
    );
    println!(
        "verification alone (Trust::verify, in process): median {:.1} us, p99 {:.1} us",
        pct(&mut verify_us, 0.5),
        pct(&mut verify_us, 0.99)
    );
}
