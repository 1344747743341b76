//! Home Assistant MQTT discovery against the real Mosquitto the test starts,
//! with the daemon in-process (`daemon::start`: its simulated locks can be
//! moved at the lock). Home Assistant's side is a plain MQTT client on
//! `homeassistant/#`, checking every config against the keys Home
//! Assistant's MQTT lock, sensor and binary_sensor documentation lists
//! (required ones, unique_id, availability, device block), publishing
//! commands and its birth message as Home Assistant does.

mod support;

use lockhub::config::{Config, Sources};
use lockhub::daemon::{self, Running};
use lockhub::drivers::LockMethod;
use rumqttc::QoS;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;
use support::blackbox::{wait_for, Broker, Cloud, BACK, FRONT};
use tokio_util::sync::CancellationToken;

const HUB: &str = "ha-hub";
const BASE: &str = "lockhub/ha-hub";
const HA: &str = "homeassistant";

struct Hub {
    running: Option<Running>,
    shutdown: CancellationToken,
}

impl Hub {
    async fn start(dir: &Path, port: u16, locks: &[(&str, &str)], extra: &str) -> Hub {
        let mut toml = format!(
            "hub_id = \"{HUB}\"\n\n[store]\npath = \"{}\"\nbackup_every = 0\n\n[mqtt]\nport = {port}\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\n[socket]\npath = \"{}\"\n\n",
            dir.join("lockhub.db").display(),
            dir.join("lockhub.sock").display(),
        );
        for (id, name) in locks {
            toml += &format!(
                "[[sim.locks]]\ndevice_id = \"{id}\"\nname = \"{name}\"\nsupported_code_lengths = [4]\nlatency_ms = 20\n\n"
            );
        }
        toml += extra;
        let file = dir.join("lockhub.toml");
        std::fs::write(&file, toml).unwrap();
        let cfg = Config::load(&Sources {
            file: Some(file),
            overrides: vec![],
        })
        .unwrap();
        let shutdown = CancellationToken::new();
        let running = daemon::start(&cfg, shutdown.clone()).await.unwrap();
        Hub {
            running: Some(running),
            shutdown,
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    fn sim(&self) -> &lockhub::drivers::sim::SimDriver {
        self.running().sim.as_deref().unwrap()
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        self.running.take().unwrap().stop().await;
    }
}

/// The last payload Home Assistant's side holds per config topic (empty:
/// cleared), and how many arrived in all.
fn configs(ha: &Cloud) -> (BTreeMap<String, Value>, usize) {
    let seen = ha.seen.lock().unwrap();
    let mut last = BTreeMap::new();
    let mut n = 0;
    for (topic, payload, _) in seen.iter().filter(|(t, _, _)| t.ends_with("/config")) {
        n += 1;
        let v = if payload.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(payload).unwrap_or_else(|e| panic!("{topic}: not JSON ({e})"))
        };
        last.insert(topic.clone(), v);
    }
    (last, n)
}

fn live(c: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    c.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Keys Home Assistant's MQTT docs list for each platform (the ones lockhub
/// could use): anything else is a typo Home Assistant would refuse.
fn allowed(platform: &str) -> HashSet<&'static str> {
    let mut k: HashSet<&str> = [
        "name",
        "unique_id",
        "device",
        "origin",
        "availability",
        "availability_mode",
        "qos",
        "state_topic",
        "value_template",
        "json_attributes_topic",
        "json_attributes_template",
        "icon",
        "entity_category",
        "enabled_by_default",
        "encoding",
    ]
    .into();
    match platform {
        "lock" => k.extend([
            "command_topic",
            "command_template",
            "payload_lock",
            "payload_unlock",
            "payload_open",
            "state_locked",
            "state_unlocked",
            "state_locking",
            "state_unlocking",
            "state_jammed",
            "optimistic",
            "retain",
        ]),
        "sensor" => k.extend([
            "device_class",
            "unit_of_measurement",
            "state_class",
            "expire_after",
            "force_update",
            "suggested_display_precision",
        ]),
        "binary_sensor" => k.extend([
            "device_class",
            "payload_on",
            "payload_off",
            "expire_after",
            "force_update",
            "off_delay",
        ]),
        other => panic!("lockhub announced an unexpected platform {other}"),
    }
    k
}

/// One config checked against Home Assistant's documented schema.
fn check_config(topic: &str, c: &Value, pins: &[String]) {
    let parts: Vec<&str> = topic.split('/').collect();
    assert_eq!(parts.len(), 5, "{topic}");
    assert_eq!(parts[0], HA);
    assert_eq!(parts[2], "lockhub_ha-hub", "{topic}: node id");
    let id_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
    };
    assert!(id_ok(parts[2]) && id_ok(parts[3]), "{topic}: ids");
    let platform = parts[1];
    let obj = c
        .as_object()
        .unwrap_or_else(|| panic!("{topic}: not an object"));
    let ok = allowed(platform);
    for k in obj.keys() {
        assert!(
            ok.contains(k.as_str()),
            "{topic}: {k} is not a {platform} option"
        );
    }
    assert!(
        c["unique_id"].as_str().is_some_and(|u| !u.is_empty()),
        "{topic}: unique_id"
    );
    assert!(
        c.get("name").is_some(),
        "{topic}: name (null: the device's)"
    );
    assert_eq!(c["origin"]["name"], "lockhub", "{topic}: origin");
    let dev = &c["device"];
    assert!(
        dev["identifiers"].as_array().is_some_and(|i| !i.is_empty()),
        "{topic}: device.identifiers"
    );
    assert!(dev["name"].is_string(), "{topic}: device.name");
    for k in dev.as_object().unwrap().keys() {
        assert!(
            [
                "identifiers",
                "name",
                "manufacturer",
                "model",
                "sw_version",
                "via_device",
                "connections",
                "hw_version"
            ]
            .contains(&k.as_str()),
            "{topic}: device.{k}"
        );
    }
    assert!(
        c["state_topic"]
            .as_str()
            .is_some_and(|t| t.starts_with(BASE)),
        "{topic}: state_topic under the hub's base"
    );
    if let Some(av) = c.get("availability") {
        let av = av.as_array().expect("availability is a list");
        assert!(!av.is_empty());
        assert!(
            av.iter().any(|a| a["topic"] == format!("{BASE}/status")),
            "{topic}: availability follows the hub's status"
        );
        for a in av {
            assert!(a["topic"].is_string(), "{topic}: availability.topic");
            assert_eq!(a["payload_available"], "online");
            assert_eq!(a["payload_not_available"], "offline");
        }
    }
    match platform {
        "lock" => {
            // The MQTT lock requires command_topic.
            assert!(c["command_topic"].is_string(), "{topic}: command_topic");
            assert_eq!(c["payload_lock"], "LOCK");
            assert_eq!(c["payload_unlock"], "UNLOCK");
            assert!(c["value_template"]
                .as_str()
                .unwrap()
                .contains("properties.locked"));
            assert_eq!(c["state_locked"], "LOCKED");
            assert_eq!(c["state_unlocked"], "UNLOCKED");
            assert_eq!(c["availability_mode"], "all");
            assert_eq!(c["availability"].as_array().unwrap().len(), 2);
            assert!(dev["via_device"].is_string());
        }
        "sensor" if c["device_class"] == "battery" => {
            assert_eq!(c["unit_of_measurement"], "%");
            assert!(c["value_template"]
                .as_str()
                .unwrap()
                .contains("battery_level"));
        }
        "sensor" => {
            assert!(
                c["state_topic"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{BASE}/last_code_used/")),
                "{topic}"
            );
        }
        "binary_sensor" => {
            assert!(c["payload_on"].is_string() && c["payload_off"].is_string());
            assert!(["lock", "connectivity"].contains(&c["device_class"].as_str().unwrap()));
        }
        _ => unreachable!(),
    }
    let text = c.to_string();
    assert!(!text.contains("\"code\""), "{topic}: a code field");
    for pin in pins {
        assert!(!text.contains(pin.as_str()), "{topic}: a PIN");
    }
}

fn check_all(c: &BTreeMap<String, Value>, pins: &[String]) {
    let mut uids = HashSet::new();
    for (topic, v) in c {
        check_config(topic, v, pins);
        assert!(
            uids.insert(v["unique_id"].as_str().unwrap().to_owned()),
            "{topic}: unique_id repeated"
        );
    }
}

/// The lock entity's config of `id`, by platform.
fn entity(c: &BTreeMap<String, Value>, platform: &str, id: &str) -> Option<Value> {
    c.get(&format!("{HA}/{platform}/lockhub_ha-hub/{id}/config"))
        .cloned()
}

async fn wait_configs(ha: &Cloud, n: usize) -> BTreeMap<String, Value> {
    wait_for(&format!("{n} live configs"), 20, || {
        let (c, _) = configs(ha);
        let l = live(&c);
        (l.len() == n).then_some(l)
    })
    .await
}

/// Renders each `(template, payload)` as Home Assistant's MQTT entities do:
/// Jinja2 (Python's, the engine Home Assistant uses; `scripts/test-deps-ha.sh`
/// installs it) in a sandbox, with `value` and `value_json`.
fn render(cases: &[(&str, &Value)]) -> Vec<String> {
    const SCRIPT: &str = r#"
import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
env = ImmutableSandboxedEnvironment()
out = []
for t, v in json.load(sys.stdin):
    out.append(env.from_string(t).render(value=v, value_json=json.loads(v)))
print(json.dumps(out))
"#;
    use std::io::Write;
    let input: Vec<(&str, String)> = cases.iter().map(|(t, v)| (*t, v.to_string())).collect();
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test-deps-ha.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&input).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "a template did not render (Jinja2 installed?)"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn template<'a>(c: &'a Value, key: &str) -> &'a str {
    c[key].as_str().unwrap_or_else(|| panic!("no {key} in {c}"))
}

/// What `{base}/devices/{id}` holds last.
fn device(cloud: &Cloud, id: &str) -> Value {
    cloud
        .on(&format!("devices/{id}"))
        .pop()
        .unwrap_or(Value::Null)
}

async fn wait_locked(cloud: &Cloud, id: &str, locked: bool) {
    wait_for(&format!("{id} locked = {locked}"), 15, || {
        (device(cloud, id)["properties"]["locked"] == locked).then_some(())
    })
    .await
}

/// A broker with Home Assistant's side and the cloud's listening on it.
struct Site {
    _dir: tempfile::TempDir,
    broker: Broker,
    ha: Cloud,
    cloud: Cloud,
    hub_dir: std::path::PathBuf,
}

async fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let ha = Cloud::connect(broker.port, HA, "home-assistant").await;
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;
    let hub_dir = dir.path().join("hub");
    std::fs::create_dir_all(&hub_dir).unwrap();
    Site {
        _dir: dir,
        broker,
        ha,
        cloud,
        hub_dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_appear_follow_their_state_take_commands_and_go_when_removed() {
    let site = site().await;
    let (broker, ha, cloud, hub_dir) = (&site.broker, &site.ha, &site.cloud, &site.hub_dir);
    let hub = Hub::start(
        hub_dir,
        broker.port,
        &[(FRONT, "Front door"), (BACK, "Back door")],
        "[homeassistant]\nenabled = true\n",
    )
    .await;
    cloud.wait_serving().await;

    // The hub and three entities per lock, each valid.
    let c = wait_configs(ha, 7).await;
    check_all(&c, &[]);
    let bytes: usize = c.values().map(|v| v.to_string().len()).sum();
    println!(
        "discovery: {} configs for 2 locks, {bytes} bytes of payload in all",
        c.len()
    );
    let lock = entity(&c, "lock", FRONT).expect("the front door as a lock entity");
    assert_eq!(lock["device"]["name"], "Front door");
    assert_eq!(lock["device"]["manufacturer"], "lockhub");
    assert_eq!(lock["device"]["via_device"], "lockhub_ha-hub");
    assert_eq!(lock["state_topic"], format!("{BASE}/devices/{FRONT}"));
    let hub_entity = entity(&c, "binary_sensor", "hub").expect("the hub's entity");
    assert_eq!(hub_entity["device"]["identifiers"][0], "lockhub_ha-hub");
    // Every entity's unique_id names its lock: stable across restarts.
    assert_eq!(lock["unique_id"], format!("lockhub_ha-hub_{FRONT}_lock"));

    // Home Assistant's view of the hub's payloads: nothing reported yet is
    // unknown (`None`), the lock and the hub are available.
    let battery = entity(&c, "sensor", &format!("{FRONT}_battery")).unwrap();
    let last_sensor = entity(&c, "sensor", &format!("{FRONT}_last_code")).unwrap();
    let front = wait_for("the front door's state", 10, || {
        let d = device(cloud, FRONT);
        (d["properties"]["online"] == true).then_some(d)
    })
    .await;
    let status = cloud.on("status").pop().unwrap();
    let av = &lock["availability"];
    assert_eq!(
        render(&[
            (template(&lock, "value_template"), &front),
            (template(&battery, "value_template"), &front),
            (template(&av[0], "value_template"), &status),
            (template(&av[1], "value_template"), &front),
            (template(&hub_entity, "value_template"), &status),
        ]),
        ["None", "None", "online", "online", "online"]
    );
    hub.sim().report_battery(FRONT, 57);
    let front = wait_for("the battery level", 10, || {
        let d = device(cloud, FRONT);
        d["properties"].get("battery_level").is_some().then_some(d)
    })
    .await;
    assert_eq!(
        render(&[(template(&battery, "value_template"), &front)]),
        ["57"]
    );

    // A named code, used at the keypad: the last-code sensor gets its name, never the PIN.
    let r = {
        cloud
            .send_json(
                "access_codes/create",
                &json!({"request_id": "c-1", "device_id": FRONT, "name": "Jane's reservation"}),
            )
            .await;
        cloud.response("c-1", 10).await
    };
    assert_eq!(r["ok"], true, "{r}");
    let pin = r["access_code"]["code"].as_str().unwrap().to_owned();
    let slot = wait_for("the code on the lock", 15, || {
        hub.sim()
            .state(FRONT)
            .unwrap()
            .slots
            .values()
            .find(|s| s.code.expose() == pin)
            .map(|s| s.slot)
    })
    .await;
    hub.sim().operate(FRONT, true, LockMethod::Manual, None);
    wait_locked(cloud, FRONT, true).await;
    hub.sim().keypad_unlock(FRONT, slot);
    wait_locked(cloud, FRONT, false).await;
    let last = wait_for("last code used", 10, || {
        cloud.on(&format!("last_code_used/{FRONT}")).pop()
    })
    .await;
    assert_eq!(last["name"], "Jane's reservation");
    assert_eq!(last["is_managed"], true);
    assert_eq!(last["access_code_id"], r["access_code"]["access_code_id"]);
    assert!(!last.to_string().contains(&pin), "{last}");
    let unlocked = device(cloud, FRONT);
    assert_eq!(
        render(&[
            (template(&last_sensor, "value_template"), &last),
            (template(&lock, "value_template"), &unlocked),
        ]),
        ["Jane's reservation", "UNLOCKED"]
    );
    // Retained: a subscriber that comes later is told at once.
    let late = Cloud::connect(broker.port, BASE, "late-cloud").await;
    let kept = wait_for("last_code_used retained", 10, || {
        late.on(&format!("last_code_used/{FRONT}")).pop()
    })
    .await;
    assert_eq!(kept, last);

    // Home Assistant's command reaches the lock through locks/lock_door.
    let command_topic = lock["command_topic"].as_str().unwrap().to_owned();
    ha.client
        .publish(&command_topic, QoS::AtLeastOnce, false, "LOCK")
        .await
        .unwrap();
    wait_locked(cloud, FRONT, true).await;
    assert!(hub.sim().state(FRONT).unwrap().locked);
    assert_eq!(
        render(&[(template(&lock, "value_template"), &device(cloud, FRONT))]),
        ["LOCKED"]
    );
    let moved = wait_for("lock.locked by lockhub", 10, || {
        cloud
            .events()
            .into_iter()
            .rfind(|e| e["event_type"] == "lock.locked" && e["method"] == "seamapi")
    })
    .await;
    assert_eq!(moved["device_id"], FRONT);
    ha.client
        .publish(&command_topic, QoS::AtLeastOnce, false, "UNLOCK")
        .await
        .unwrap();
    wait_locked(cloud, FRONT, false).await;
    assert!(!hub.sim().state(FRONT).unwrap().locked);
    // Not one of ours: answered as refused, the lock untouched.
    ha.client
        .publish(&command_topic, QoS::AtLeastOnce, false, "OPEN")
        .await
        .unwrap();
    let refused = wait_for("the refusal of OPEN", 10, || {
        cloud.seen.lock().unwrap().iter().find_map(|(t, p, _)| {
            let v: Value = serde_json::from_slice(p).ok()?;
            (t.starts_with(&format!("{BASE}/responses/ha-")) && v["ok"] == false).then_some(v)
        })
    })
    .await;
    assert_eq!(refused["error"]["type"], "invalid_input", "{refused}");
    assert!(!hub.sim().state(FRONT).unwrap().locked);

    // Home Assistant going away (its last will) is no command and changes nothing.
    ha.client
        .publish(format!("{HA}/status"), QoS::AtLeastOnce, false, "offline")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cloud.on("responses/_invalid").is_empty());

    // Home Assistant restarted: its birth message brings every config again.
    let (_, before) = configs(ha);
    ha.client
        .publish(format!("{HA}/status"), QoS::AtLeastOnce, false, "online")
        .await
        .unwrap();
    wait_for("every config again", 10, || {
        (configs(ha).1 >= before + 7).then_some(())
    })
    .await;
    let c = live(&configs(ha).0);
    assert_eq!(c.len(), 7);
    check_all(&c, std::slice::from_ref(&pin));

    // The back door taken out of the configuration: its entities go, also
    // for a Home Assistant that subscribes only afterwards.
    hub.stop().await;
    let hub = Hub::start(
        hub_dir,
        broker.port,
        &[(FRONT, "Front door")],
        "[homeassistant]\nenabled = true\n",
    )
    .await;
    wait_for("the back door's configs cleared", 20, || {
        let (c, _) = configs(ha);
        c.iter()
            .filter(|(t, _)| t.contains(BACK))
            .all(|(_, v)| v.is_null())
            .then_some(())
    })
    .await;
    let late = Cloud::connect(broker.port, HA, "home-assistant-2").await;
    let c = wait_configs(&late, 4).await;
    assert!(c.keys().all(|t| !t.contains(BACK)), "{c:?}");
    assert!(entity(&c, "lock", FRONT).is_some());
    check_all(&c, std::slice::from_ref(&pin));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_mode_takes_no_unsigned_command_from_home_assistant() {
    let site = site().await;
    let (broker, ha, cloud, hub_dir) = (&site.broker, &site.ha, &site.cloud, &site.hub_dir);
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let x = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        key.verifying_key().as_bytes(),
    );
    let keys = hub_dir.join("trusted-keys.json");
    std::fs::write(
        &keys,
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": x}]}).to_string(),
    )
    .unwrap();
    let signed = format!(
        "[auth]\nmode = \"signed\"\ntrusted_keys_file = \"{}\"\n\n[homeassistant]\nenabled = true\n",
        keys.display()
    );
    let hub = Hub::start(hub_dir, broker.port, &[(FRONT, "Front door")], &signed).await;
    cloud.wait_online().await;

    // State only: the bolt is a binary_sensor of class lock, no entity has a command topic.
    let c = wait_configs(ha, 4).await;
    check_all(&c, &[]);
    assert!(entity(&c, "lock", FRONT).is_none());
    let bolt = entity(&c, "binary_sensor", FRONT).expect("the bolt, state only");
    assert_eq!(bolt["device_class"], "lock");
    assert!(c.values().all(|v| v.get("command_topic").is_none()));

    hub.sim().operate(FRONT, true, LockMethod::Manual, None);
    wait_locked(cloud, FRONT, true).await;
    // `on` means unlocked for a binary_sensor of class lock.
    assert_eq!(
        render(&[(template(&bolt, "value_template"), &device(cloud, FRONT))]),
        ["OFF"]
    );
    // Whatever Home Assistant (or anyone) publishes where a command topic would be is ignored.
    let topic = format!("{BASE}/homeassistant/{FRONT}/set");
    ha.client
        .publish(&topic, QoS::AtLeastOnce, false, "UNLOCK")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        hub.sim().state(FRONT).unwrap().locked,
        "an unsigned command moved the bolt"
    );
    assert_eq!(device(cloud, FRONT)["properties"]["locked"], true);
    assert_eq!(cloud.count_prefix("responses/ha-"), 0);

    // The integrator's explicit choice: `commands = true` lets Home Assistant in.
    hub.stop().await;
    let hub = Hub::start(
        hub_dir,
        broker.port,
        &[(FRONT, "Front door")],
        &format!("{signed}commands = true\n"),
    )
    .await;
    let c = wait_for("the lock entity", 20, || {
        let l = live(&configs(ha).0);
        (entity(&l, "lock", FRONT).is_some() && entity(&l, "binary_sensor", FRONT).is_none())
            .then_some(l)
    })
    .await;
    check_all(&c, &[]);
    ha.client
        .publish(&topic, QoS::AtLeastOnce, false, "UNLOCK")
        .await
        .unwrap();
    wait_locked(cloud, FRONT, false).await;
    hub.stop().await;
}
