//! A command's fan-out is group-committed (issue 14): the results of every
//! lock it touched share the engine's commits (and the codes take their
//! slots and record their PINs as issued in the command's own),
//! instead of a durable commit (an fsync) per lock and step. On a durable
//! store, paused time.

mod support;

use lockhub::settings::HubSettings;
use lockhub::store::Store;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::core::*;

fn lock(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// Ten keypad locks on a durable store in `dir`, and their ids.
async fn ten_locks(dir: &tempfile::TempDir) -> (Hub, Arc<Store>, Vec<String>) {
    let store = Arc::new(Store::open(&dir.path().join("hub.db")).unwrap());
    let ids: Vec<String> = (0..10).map(lock).collect();
    let hub = Hub::start_with(
        store.clone(),
        ids.iter()
            .map(|id| spec(id, "Lock", keypad(&[4, 5, 6], 30)))
            .collect(),
        HubSettings::default(),
    )
    .await;
    (hub, store, ids)
}

#[tokio::test(start_paused = true)]
async fn a_fan_out_to_ten_locks_shares_its_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, store, ids) = ten_locks(&dir).await;
    // Every lock read once (start-up), then quiet.
    hub.run_for(Duration::from_secs(10)).await;
    let (commits, syncs) = (store.commits(), store.syncs());

    let r = hub.cmd("access_codes/create_multiple", json!({ "device_ids": ids }));
    assert_eq!(r["ok"], true, "{r}");
    // Due at once, on locks already read: each code took its slot in the
    // command's own commit (`slots::at_creation`), before the engine ran.
    for c in r["access_codes"].as_array().unwrap() {
        let id = c["access_code_id"].as_str().unwrap();
        let stored = store.read(|tx| tx.code(id)).unwrap().unwrap();
        assert!(stored.slot > 0, "{id} has no slot yet");
        // ... and its PIN was recorded as issued there in the same commit,
        // so no lock commits an intent of its own before sending it.
        let issued = store.read(|tx| tx.issued(&stored.device_id)).unwrap();
        assert!(
            issued.iter().any(|(slot, _)| *slot == stored.slot),
            "{id}'s PIN is not recorded as issued in slot {}: {issued:?}",
            stored.slot
        );
    }
    hub.run_for(Duration::from_secs(10)).await;

    // Everything went out: each code on its lock, set_on_device for each.
    for c in r["access_codes"].as_array().unwrap() {
        let device = c["device_id"].as_str().unwrap();
        let pin = c["code"].as_str().unwrap();
        assert!(
            hub.slots(device).iter().any(|(_, p)| p == pin),
            "the code is on {device}"
        );
    }
    let set = hub
        .events()
        .iter()
        .filter(|e| e["event_type"] == "access_code.set_on_device")
        .count();
    assert_eq!(set, 10);

    // The command's commit (with the slots and the PIN intents), then the
    // fan-out's results, the ten locks' in one commit (a commit a lock once
    // took per step: 10 slot steps alone, 13 commits in all; then 3, with
    // the intents committed by the engine).
    let commits = store.commits() - commits;
    eprintln!("{commits} commits");
    assert!(
        commits <= 2,
        "{commits} commits for one command and its fan-out to 10 locks"
    );
    // Every commit was made durable, one fsync each at most (shared when
    // commits come while one is under way).
    let syncs = store.syncs() - syncs;
    assert!(
        syncs >= 1 && syncs <= commits,
        "{syncs} syncs, {commits} commits"
    );
}

/// The retained `devices/{id}` rows in the outbox, by topic, with their row ids
/// (a retained row queued again replaces the one before it: a new id).
fn device_states(store: &Store) -> std::collections::BTreeMap<String, i64> {
    store
        .outbox_peek(0, 1_000_000)
        .unwrap()
        .into_iter()
        .filter(|r| r.topic.starts_with("devices/"))
        .map(|r| (r.topic, r.id))
        .collect()
}

/// A fan-out that leaves every lock's device object as it was (new PINs in
/// the same slots) queues no device state: it queued the same ten bodies
/// again, one per lock, for every such command.
#[tokio::test(start_paused = true)]
async fn a_fan_out_that_changes_no_lock_queues_no_device_state() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, store, ids) = ten_locks(&dir).await;
    hub.run_for(Duration::from_secs(10)).await;
    let quiet = device_states(&store);
    assert_eq!(quiet.len(), 10, "{quiet:?}");

    // A new code on each lock: one more slot used, a new state for each.
    let r = hub.cmd("access_codes/create_multiple", json!({ "device_ids": ids }));
    assert_eq!(r["ok"], true, "{r}");
    hub.run_for(Duration::from_secs(10)).await;
    let created = device_states(&store);
    for (topic, row) in &created {
        assert_ne!(*row, quiet[topic], "no new state for {topic}");
    }

    // Each code's PIN changed in place: the locks' objects are as they were.
    let codes = r["access_codes"].as_array().unwrap();
    for (i, c) in codes.iter().enumerate() {
        let u = hub.cmd(
            "access_codes/update",
            json!({ "access_code_id": c["access_code_id"], "code": format!("{}", 4100 + i) }),
        );
        assert_eq!(u["ok"], true, "{u}");
    }
    hub.run_for(Duration::from_secs(10)).await;
    for (i, c) in codes.iter().enumerate() {
        let device = c["device_id"].as_str().unwrap();
        assert!(
            hub.slots(device)
                .iter()
                .any(|(_, p)| *p == format!("{}", 4100 + i)),
            "the new PIN is on {device}"
        );
    }
    let requeued: Vec<_> = device_states(&store)
        .into_iter()
        .filter(|(topic, row)| created[topic] != *row)
        .collect();
    assert!(
        requeued.is_empty(),
        "{} unchanged device states queued again: {requeued:?}",
        requeued.len()
    );
}
