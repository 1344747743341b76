//! PINs at rest: the database file (and its WAL) of a real run, grepped for
//! every PIN the run created, holds none; the daemon still reads them back
//! after a restart (the key file, 0600, made on first start).

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use support::blackbox::*;

const BASE: &str = "lockhub/test-hub";

/// Long PINs, so a match in the file is a PIN and not a stretch of a UUID or
/// a timestamp.
fn locks() -> String {
    let mut s = String::new();
    for (id, name) in [(FRONT, "Front door"), (BACK, "Back door")] {
        s += &format!("[[sim.locks]]\ndevice_id = \"{id}\"\nname = \"{name}\"\nsupported_code_lengths = [8, 9]\nslots = 50\n\n");
    }
    s
}

fn pins_of(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "code" {
                    if let Some(p) = x.as_str() {
                        out.insert(p.to_owned());
                    }
                }
                pins_of(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| pins_of(x, out)),
        _ => {}
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_file_holds_no_pin() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(dir.path(), broker.port, &locks());
    daemon.start();
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;
    cloud.wait_online().await;
    let mut pins = BTreeSet::new();
    for g in 0..5 {
        cloud
            .send_json("access_codes/create_multiple", &json!({"request_id": format!("g{g}"), "device_ids": [FRONT, BACK], "preferred_code_length": 8, "name": format!("Stay {g}")}))
            .await;
    }
    cloud
        .send_json(
            "access_codes/create",
            &json!({"request_id": "own", "device_id": FRONT, "code": "80516273"}),
        )
        .await;
    for id in ["g0", "g1", "g2", "g3", "g4", "own"] {
        let r = cloud.response(id, 10).await;
        assert_eq!(r["ok"], true, "{r}");
        pins_of(&r, &mut pins);
    }
    // A PIN changed, and one deleted: the old values must not linger either.
    let own = cloud.on("responses/own")[0]["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    cloud
        .send_json(
            "access_codes/update",
            &json!({"request_id": "upd", "access_code_id": own, "code": "912345678"}),
        )
        .await;
    assert_eq!(cloud.response("upd", 10).await["ok"], true);
    pins.insert("912345678".into());
    let g4 = cloud.on("responses/g4")[0]["access_codes"][0]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    cloud
        .send_json(
            "access_codes/delete",
            &json!({"request_id": "del", "access_code_id": g4}),
        )
        .await;
    assert_eq!(cloud.response("del", 10).await["ok"], true);
    // Every code on its lock (the slots table holds them too), answers stored.
    wait_for("codes set", 20, || {
        (cloud
            .events()
            .iter()
            .filter(|e| e["event_type"] == "access_code.set_on_device")
            .count()
            >= 11)
            .then_some(())
    })
    .await;
    cloud
        .send_json(
            "access_codes/list",
            &json!({"request_id": "list", "device_id": FRONT}),
        )
        .await;
    let listed = cloud.response("list", 10).await;
    pins_of(&listed, &mut pins);
    assert!(pins.len() >= 6, "{pins:?}");
    assert!(pins.iter().all(|p| p.len() >= 8), "{pins:?}");

    // While running (WAL not checkpointed) and after an orderly stop.
    let files = |d: &Daemon| -> Vec<(String, Vec<u8>)> {
        ["lockhub.db", "lockhub.db-wal"]
            .iter()
            .filter_map(|f| {
                std::fs::read(d.dir.join(f))
                    .ok()
                    .map(|b| (f.to_string(), b))
            })
            .collect()
    };
    for round in ["running", "stopped"] {
        if round == "stopped" {
            daemon.terminate();
        }
        let fs = files(&daemon);
        assert!(!fs.is_empty());
        for (name, bytes) in &fs {
            for p in &pins {
                assert!(
                    !contains(bytes, p.as_bytes()),
                    "{round}: PIN {p} found in {name}"
                );
            }
        }
    }
    // The key: 0600, and the daemon reads its PINs back after a restart.
    let key = daemon.dir.join("lockhub.db.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read(&key).unwrap().len(), 32);
    daemon.start();
    wait_for("socket back", 15, || daemon.socket.exists().then_some(())).await;
    let revealed = loop {
        if let Ok(v) =
            lockhub::status::client::get(&daemon.socket, "/v1/access_codes?reveal_codes=true").await
        {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let mut back = BTreeSet::new();
    pins_of(&revealed, &mut back);
    assert!(back.contains("912345678"), "{revealed}");
    assert!(back.is_subset(&pins), "{back:?} vs {pins:?}");
    // The same database with another key: refused by name, not misread.
    daemon.terminate();
    std::fs::remove_file(&key).unwrap();
    daemon.start();
    wait_for("refusal to start", 15, || (!daemon.alive()).then_some(())).await;
    assert!(
        daemon.log().contains("sealed with a key that is not at"),
        "{}",
        daemon.log()
    );
}
