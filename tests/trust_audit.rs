//! The audit chain of a real run: every applied command and every write to
//! a lock is a row, no row holds a PIN, and `lockhub audit verify` names a row
//! edited or deleted with the sqlite3 shell, the newest ones included (the
//! anchor outside the database).

mod support;

use serde_json::{json, Value};
use std::process::Command;
use support::blackbox::*;

const BASE: &str = "lockhub/test-hub";

fn verify(daemon: &Daemon) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lockhub"))
        .args(["audit", "verify", "--config"])
        .arg(&daemon.config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn sqlite(db: &std::path::Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 (scripts/test-deps-trust.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_chain_names_an_edited_and_a_deleted_row() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut locks = String::new();
    for (id, name) in [(FRONT, "Front door"), (BACK, "Back door")] {
        locks += &format!("[[sim.locks]]\ndevice_id = \"{id}\"\nname = \"{name}\"\nsupported_code_lengths = [8]\nslots = 20\n\n");
    }
    let mut daemon = Daemon::new(dir.path(), broker.port, &locks);
    daemon.start();
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;
    cloud.wait_online().await;
    cloud
        .send_json(
            "access_codes/create_multiple",
            &json!({"request_id": "a1", "device_ids": [FRONT, BACK], "preferred_code_length": 8}),
        )
        .await;
    let r = cloud.response("a1", 10).await;
    let pin = r["access_codes"][0]["code"].as_str().unwrap().to_owned();
    let first = r["access_codes"][0]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    cloud
        .send_json(
            "access_codes/update",
            &json!({"request_id": "a2", "access_code_id": first, "code": "80516273"}),
        )
        .await;
    assert_eq!(cloud.response("a2", 10).await["ok"], true);
    cloud
        .send_json(
            "access_codes/list",
            &json!({"request_id": "a3", "device_id": FRONT}),
        )
        .await;
    cloud.response("a3", 10).await;
    // Every write landed on the locks.
    wait_for("three sets", 20, || {
        (cloud
            .events()
            .iter()
            .filter(|e| e["event_type"] == "access_code.set_on_device")
            .count()
            >= 3)
            .then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    daemon.terminate();

    let db = daemon.dir.join("lockhub.db");
    let rows: Vec<Value> = sqlite(&db, "SELECT json_object('seq', seq, 'kind', kind, 'detail', json(detail)) FROM audit ORDER BY seq")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "command").count(),
        2,
        "create and update, not the list: {rows:?}"
    );
    assert!(
        kinds.iter().filter(|k| **k == "lock_write").count() >= 3,
        "{rows:?}"
    );
    let all = sqlite(&db, "SELECT * FROM audit");
    for p in [pin.as_str(), "80516273"] {
        assert!(!all.contains(p), "PIN {p} in the audit table");
    }
    let (ok, text) = verify(&daemon);
    assert!(ok, "{text}");
    assert!(text.contains("intact"), "{text}");

    // Edit one row: named.
    let edited = rows[1]["seq"].as_i64().unwrap();
    sqlite(&db, &format!("UPDATE audit SET detail = replace(detail, '\"ok\":true', '\"ok\":false') WHERE seq = {edited}"));
    sqlite(&db, &format!("UPDATE audit SET detail = detail || ' ' WHERE seq = {edited} AND detail NOT LIKE '%\"ok\":false%'"));
    let (ok, text) = verify(&daemon);
    assert!(!ok, "{text}");
    assert!(text.contains(&format!("row {edited}: edited")), "{text}");
    assert_eq!(text.matches(": edited").count(), 1, "only that row: {text}");

    // Delete another: named too.
    let deleted = rows[3]["seq"].as_i64().unwrap();
    sqlite(&db, &format!("DELETE FROM audit WHERE seq = {deleted}"));
    let (ok, text) = verify(&daemon);
    assert!(!ok, "{text}");
    assert!(text.contains(&format!("row {edited}: edited")), "{text}");
    assert!(text.contains(&format!("row {deleted}: deleted")), "{text}");

    // Delete the newest rows: the anchor the daemon left outside the database
    // at shutdown names them.
    let newest = rows.last().unwrap()["seq"].as_i64().unwrap();
    assert!(
        daemon.dir.join("lockhub.db.audit-head").exists(),
        "no anchor"
    );
    sqlite(
        &db,
        &format!("DELETE FROM audit WHERE seq >= {}", newest - 1),
    );
    let (ok, text) = verify(&daemon);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "rows {} to {newest}: deleted from the end",
            newest - 1
        )),
        "{text}"
    );
}
