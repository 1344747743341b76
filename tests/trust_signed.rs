//! Signed commands, black box: the real binary in `[auth] mode = "signed"`
//! against a Mosquitto the test starts. The cloud signs with the Python
//! example of docs/signing.md (the `cryptography` package), run as written;
//! the forged and broken cases are built here with ed25519-dalek.

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use rand::RngCore;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::blackbox::*;
use support::trust::*;

const BASE: &str = "lockhub/test-hub";
const HUB: &str = "test-hub";

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn new_key() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    SigningKey::from_bytes(&seed)
}

fn public_jwk(k: &SigningKey, kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(k.verifying_key().as_bytes())})
}

fn write_keys(path: &Path, keys: &[(&SigningKey, &str)]) {
    let set = json!({"keys": keys.iter().map(|(k, kid)| public_jwk(k, kid)).collect::<Vec<_>>()});
    // Write then rename, as an operator's tooling would (never a half file).
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, set.to_string()).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// The Python example from docs/signing.md, as a file.
fn python_signer(dir: &Path) -> PathBuf {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/signing.md")).unwrap();
    let start = doc
        .find("```python\n")
        .expect("a python block in docs/signing.md")
        + 10;
    let end = start + doc[start..].find("```").unwrap();
    let f = dir.join("sign.py");
    std::fs::write(&f, &doc[start..end]).unwrap();
    f
}

fn python(script: &Path, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test-deps-trust.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sign.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A JWS signed here, with the claims given.
fn forge(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "EdDSA", "kid": kid});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    format!("{input}.{}", b64(&key.sign(input.as_bytes()).to_bytes()))
}

fn claims(cmd: &str, body: Value) -> Value {
    let t = now();
    json!({"aud": HUB, "cmd": cmd, "iat": t, "exp": t + 300, "jti": uuid::Uuid::new_v4().to_string(), "body": body})
}

/// The `_invalid` answer carrying `request_id`.
async fn refusal(cloud: &Cloud, request_id: &str) -> Value {
    wait_for(&format!("refusal of {request_id}"), 10, || {
        cloud
            .on("responses/_invalid")
            .into_iter()
            .find(|r| r["request_id"] == request_id)
    })
    .await
}

struct Setup {
    dir: tempfile::TempDir,
    _broker: Broker,
    daemon: Daemon,
    cloud: Cloud,
    keys: PathBuf,
    signer: PathBuf,
    k1: SigningKey,
    k1_file: PathBuf,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(dir.path(), broker.port, &sim_locks(0, 0));
    let keys = dir.path().join("trusted-keys.json");
    let k1 = new_key();
    let signer = python_signer(dir.path());
    // k1's private JWK, for the Python signer.
    let k1_file = dir.path().join("k1.json");
    let mut private = public_jwk(&k1, "k1");
    private["d"] = json!(b64(k1.as_bytes()));
    std::fs::write(&k1_file, private.to_string()).unwrap();
    write_keys(&keys, &[(&k1, "k1")]);
    drop_in(
        &daemon.config,
        "50-auth",
        &format!(
            "[auth]\nmode = \"signed\"\ntrusted_keys_file = \"{}\"\n",
            keys.display()
        ),
    );
    daemon.start();
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;
    cloud.wait_online().await;
    Setup {
        dir,
        _broker: broker,
        daemon,
        cloud,
        keys,
        signer,
        k1,
        k1_file,
    }
}

impl Setup {
    /// Signed by the docs' Python example with a private JWK file.
    fn sign(&self, jwk: &Path, cmd: &str, body: &Value) -> String {
        python(
            &self.signer,
            &[jwk.to_str().unwrap(), HUB, cmd],
            &body.to_string(),
        )
    }

    /// The codes on the front door, asked with a signed list.
    async fn codes_on_front(&self, id: &str) -> usize {
        let jws = self.sign(
            &self.k1_file,
            "access_codes/list",
            &json!({"request_id": id, "device_id": FRONT}),
        );
        self.cloud.send("access_codes/list", jws).await;
        let r = self.cloud.response(id, 10).await;
        assert_eq!(r["ok"], true, "{r}");
        r["access_codes"].as_array().unwrap().len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_commands_work_and_every_forgery_is_refused() {
    let s = setup().await;
    let cloud = &s.cloud;
    // Signed by the Python example: works.
    let good = s.sign(
        &s.k1_file,
        "access_codes/create",
        &json!({"request_id": "ok-1", "device_id": FRONT}),
    );
    cloud.send("access_codes/create", good.clone()).await;
    let r = cloud.response("ok-1", 10).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(s.codes_on_front("count-0").await, 1);

    let create = |id: &str| json!({"request_id": id, "device_id": FRONT});
    let foreign = new_key();
    let mut tampered = {
        let jws = s.sign(&s.k1_file, "access_codes/create", &create("tampered"));
        let parts: Vec<String> = jws.split('.').map(str::to_owned).collect();
        let mut c: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        c["body"]["name"] = json!("changed after signing");
        format!(
            "{}.{}.{}",
            parts[0],
            b64(c.to_string().as_bytes()),
            parts[2]
        )
    };
    let t = now();
    let mut cases: Vec<(&str, String, &str)> = vec![
        ("unsigned", create("unsigned").to_string(), "must be signed"),
        (
            "foreign",
            forge(
                &foreign,
                "k1",
                &claims("access_codes/create", create("foreign")),
            ),
            "does not verify",
        ),
        (
            "unknown-kid",
            forge(
                &s.k1,
                "k9",
                &claims("access_codes/create", create("unknown-kid")),
            ),
            "no trusted key",
        ),
        (
            "other-hub",
            {
                let mut c = claims("access_codes/create", create("other-hub"));
                c["aud"] = json!("other-hub");
                forge(&s.k1, "k1", &c)
            },
            "aud",
        ),
        (
            "wrong-command",
            forge(
                &s.k1,
                "k1",
                &claims("devices/list", create("wrong-command")),
            ),
            "cmd",
        ),
        (
            "expired",
            {
                let mut c = claims("access_codes/create", create("expired"));
                c["iat"] = json!(t - 400);
                c["exp"] = json!(t - 100);
                forge(&s.k1, "k1", &c)
            },
            "expired",
        ),
        (
            "ahead",
            {
                let mut c = claims("access_codes/create", create("ahead"));
                c["iat"] = json!(t + 400);
                c["exp"] = json!(t + 500);
                forge(&s.k1, "k1", &c)
            },
            "ahead",
        ),
        (
            "long-lived",
            {
                let mut c = claims("access_codes/create", create("long-lived"));
                c["exp"] = json!(t + 3600);
                forge(&s.k1, "k1", &c)
            },
            "lifetime",
        ),
    ];
    cases.push(("tampered", std::mem::take(&mut tampered), "does not verify"));
    for (_, payload, _) in &cases {
        cloud.send("access_codes/create", payload.clone()).await;
    }
    // Replayed: the first command's very payload again.
    cloud.send("access_codes/create", good.clone()).await;
    for (id, _, why) in &cases {
        let r = refusal(cloud, id).await;
        assert_eq!(r["error"]["type"], "unauthorized", "{id}: {r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains(why),
            "{id}: {r}"
        );
    }
    let replay = refusal(cloud, "ok-1").await;
    assert_eq!(replay["error"]["type"], "unauthorized", "{replay}");
    assert!(
        replay["error"]["message"].as_str().unwrap().contains("jti"),
        "{replay}"
    );
    // Nothing changed: no answer on their own topics, still one code.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (id, _, _) in &cases {
        assert!(
            cloud.on(&format!("responses/{id}")).is_empty(),
            "{id} was answered as a command"
        );
    }
    assert_eq!(cloud.on("responses/ok-1").len(), 1);
    assert_eq!(s.codes_on_front("count-1").await, 1);

    // The used jti outlives a restart.
    let mut daemon = s.daemon;
    daemon.terminate();
    daemon.start();
    cloud.send("access_codes/create", good).await;
    wait_for("replay refused after a restart", 15, || {
        (cloud
            .on("responses/_invalid")
            .iter()
            .filter(|r| r["request_id"] == "ok-1")
            .count()
            == 2)
            .then_some(())
    })
    .await;
    assert_eq!(cloud.on("responses/ok-1").len(), 1);
    assert!(daemon.alive());
    drop(s.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_two_then_one() {
    let s = setup().await;
    // A second key, made by the Python example (keygen, public).
    let k2_file = s.dir.path().join("k2.json");
    std::fs::write(&k2_file, python(&s.signer, &["keygen", "k2"], "")).unwrap();
    let k2_public: Value = serde_json::from_str(&python(
        &s.signer,
        &["public", k2_file.to_str().unwrap()],
        "",
    ))
    .unwrap();
    let set = json!({"keys": [public_jwk(&s.k1, "k1"), k2_public]});
    let tmp = s.keys.with_extension("tmp");
    std::fs::write(&tmp, set.to_string()).unwrap();
    std::fs::rename(&tmp, &s.keys).unwrap();
    // Both keys work.
    for (file, id) in [(&s.k1_file, "by-k1"), (&k2_file, "by-k2")] {
        let jws = s.sign(file, "devices/list", &json!({"request_id": id}));
        s.cloud.send("devices/list", jws).await;
        assert_eq!(s.cloud.response(id, 10).await["ok"], true, "{id}");
    }
    // Then only k2: k1 is refused, k2 still works (no restart).
    let set = json!({"keys": [set["keys"][1].clone()]});
    std::fs::write(&tmp, set.to_string()).unwrap();
    std::fs::rename(&tmp, &s.keys).unwrap();
    let jws = s.sign(
        &s.k1_file,
        "devices/list",
        &json!({"request_id": "by-k1-after"}),
    );
    s.cloud.send("devices/list", jws).await;
    let r = refusal(&s.cloud, "by-k1-after").await;
    assert_eq!(r["error"]["type"], "unauthorized", "{r}");
    let jws = s.sign(
        &k2_file,
        "devices/list",
        &json!({"request_id": "by-k2-after"}),
    );
    s.cloud.send("devices/list", jws).await;
    assert_eq!(s.cloud.response("by-k2-after", 10).await["ok"], true);
    assert!(
        s.daemon.log().contains("trusted keys changed; reloaded"),
        "{}",
        s.daemon.log()
    );
}
