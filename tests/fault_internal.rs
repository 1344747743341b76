//! A command that fails on the hub's side for a reason other than the
//! storage, black box: the real binary and a real Mosquitto. The fault is
//! put into the store itself (a SQLite trigger that refuses every new code
//! row for the back door, as a damaged table or a bug would), so a command
//! touching the back door fails inside its transaction.
//!
//! Each such command gets a typed `internal` answer on its response topic,
//! nothing of it is applied (a create on both doors leaves no code on the
//! front door either), the commands batched with it commit as usual, and the
//! link stays up: more failing commands than Mosquitto's in-flight limit (20)
//! do not make the hub deaf, and no reconnect happens. Once the fault is
//! repaired the same request_id runs afresh.

mod support;

use serde_json::{json, Value};
use support::blackbox::*;

const BASE: &str = "lockhub/test-hub";
/// Failing commands in a row: more than Mosquitto's in-flight limit (20).
const FAILING: usize = 30;

fn online_announcements(cloud: &Cloud) -> usize {
    cloud
        .on("status")
        .iter()
        .filter(|s| s["state"] == "online")
        .count()
}

async fn create_front(cloud: &Cloud, request_id: &str) {
    cloud
        .send_json(
            "access_codes/create",
            &json!({"request_id": request_id, "device_id": FRONT, "name": request_id}),
        )
        .await;
}

async fn create_both(cloud: &Cloud, request_id: &str) {
    cloud
        .send_json(
            "access_codes/create_multiple",
            &json!({"request_id": request_id, "device_ids": [FRONT, BACK], "name": request_id}),
        )
        .await;
}

/// The names of the codes lockhub keeps for `device_id`, sorted.
async fn names_on(cloud: &Cloud, device_id: &str) -> Vec<String> {
    let rid = format!("list-{}", uuid::Uuid::new_v4());
    cloud
        .send_json(
            "access_codes/list",
            &json!({"request_id": rid, "device_id": device_id}),
        )
        .await;
    let list = cloud.response(&rid, 15).await;
    let mut names: Vec<String> = list["access_codes"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|c| c["name"].as_str().unwrap_or("").to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_is_answered_internal_and_costs_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(dir.path(), broker.port, &sim_locks(0, 0));
    // A first run makes the store; the fault goes in while the hub is stopped.
    daemon.start();
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;
    cloud.wait_online().await;
    cloud.wait_serving().await;
    daemon.terminate();
    let db = daemon.dir.join("lockhub.db");
    let sql = rusqlite::Connection::open(&db).unwrap();
    sql.execute_batch(&format!(
        "CREATE TRIGGER injected_fault BEFORE INSERT ON access_codes WHEN NEW.device_id = '{BACK}'
         BEGIN SELECT RAISE(ABORT, 'injected fault: the row cannot be written'); END;"
    ))
    .unwrap();
    let online_before = online_announcements(&cloud) + 1;
    daemon.start();
    wait_for("the hub online again", 15, || {
        (online_announcements(&cloud) == online_before).then_some(())
    })
    .await;
    cloud.wait_serving().await;

    // One stream: good commands around more failing ones than the broker
    // keeps in flight unacked.
    create_front(&cloud, "ok-a").await;
    for i in 0..FAILING {
        create_both(&cloud, &format!("both-{i}")).await;
        if i == FAILING / 2 {
            create_front(&cloud, "ok-b").await;
        }
    }
    create_front(&cloud, "ok-c").await;

    for rid in ["ok-a", "ok-b", "ok-c"] {
        let r = cloud.response(rid, 30).await;
        assert_eq!(r["ok"], true, "{rid}: {r}\n{}", daemon.log());
    }
    for i in 0..FAILING {
        let rid = format!("both-{i}");
        let r = cloud.response(&rid, 30).await;
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["request_id"], rid.as_str(), "{r}");
        assert_eq!(r["error"]["type"], "internal", "{r}");
        let answers = cloud.on(&format!("responses/{rid}")).len();
        assert_eq!(answers, 1, "{rid} answered once, not redelivered");
    }

    // Nothing of the failing ones applied, on either door.
    assert_eq!(names_on(&cloud, FRONT).await, ["ok-a", "ok-b", "ok-c"]);
    assert!(names_on(&cloud, BACK).await.is_empty());
    assert!(daemon.alive());
    assert_eq!(
        online_announcements(&cloud),
        online_before,
        "the link stayed up (no reconnect announced)"
    );
    let log = daemon.log();
    assert!(
        log.contains("command failed with an internal error"),
        "the cause is logged"
    );

    // Repaired: the same request_id runs afresh (the failure was not stored).
    sql.execute_batch("DROP TRIGGER injected_fault;").unwrap();
    create_both(&cloud, "both-0").await;
    let r: Value = wait_for("both-0 again", 30, || {
        cloud.on("responses/both-0").into_iter().nth(1)
    })
    .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["access_codes"].as_array().unwrap().len(), 2, "{r}");
    let (status, _) = daemon.terminate();
    assert!(status.success());
}
