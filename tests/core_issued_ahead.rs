//! A command records a new code's PIN as issued ahead of its send
//! (`store::issued::Ahead`). A code deleted before its lock was reached is
//! forgotten: the lock is not asked to clear a slot that never held it. A PIN
//! once handed to the driver may be on the lock, whatever the answer, and is
//! cleared. On paused time.

mod support;

use lockhub::drivers::sim::Fault;
use lockhub::drivers::SlotOp;
use serde_json::json;
use std::time::Duration;
use support::core::*;

const LOCK: &str = "00000000-0000-4000-8000-000000000001";

async fn hub() -> Hub {
    let hub = Hub::start(vec![spec(LOCK, "Front", keypad(&[4], 30))]).await;
    // Read once (start-up), then quiet.
    hub.run_for(Duration::from_secs(10)).await;
    hub
}

fn create(hub: &Hub) -> String {
    let r = hub.cmd(
        "access_codes/create_multiple",
        json!({ "device_ids": [LOCK] }),
    );
    assert_eq!(r["ok"], true, "{r}");
    r["access_codes"][0]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn delete(hub: &Hub, id: &str) {
    let r = hub.cmd("access_codes/delete", json!({ "access_code_id": id }));
    assert_eq!(r["ok"], true, "{r}");
}

fn applied(hub: &Hub) -> Vec<SlotOp> {
    hub.sim.state(LOCK).unwrap().applied
}

#[tokio::test(start_paused = true)]
async fn a_code_deleted_before_its_lock_was_reached_leaves_the_lock_alone() {
    let hub = hub().await;
    let before = applied(&hub).len();
    // No await between the two: the engine has not run.
    let id = create(&hub);
    assert_eq!(hub.store.ahead.len(), 1, "the PIN is noted ahead");
    delete(&hub, &id);
    hub.run_for(Duration::from_secs(30)).await;

    assert_eq!(
        applied(&hub)[before..],
        [],
        "the lock was asked to do something for a code it never got"
    );
    assert!(hub.slots(LOCK).is_empty());
    assert!(hub.store.read(|tx| tx.issued(LOCK)).unwrap().is_empty());
    assert!(hub.store.ahead.is_empty());
    let events = hub.event_types_for(&id);
    assert!(
        events.contains(&"access_code.deleted".to_owned()),
        "{events:?}"
    );
    assert!(
        !events.contains(&"access_code.removed_from_device".to_owned()),
        "{events:?}"
    );
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_pin_handed_to_the_lock_is_cleared_even_when_its_answer_was_lost() {
    let hub = hub().await;
    hub.sim.inject(LOCK, [Fault::LostReply]);
    let id = create(&hub);
    // The engine sends it; the lock sets it, its answer never comes.
    hub.run_for(Duration::from_millis(500)).await;
    assert_eq!(hub.slots(LOCK).len(), 1, "the lock holds the PIN");
    assert!(hub.store.ahead.is_empty(), "handed: no longer unsent");
    delete(&hub, &id);
    hub.run_for(Duration::from_secs(300)).await;

    assert!(
        hub.slots(LOCK).is_empty(),
        "the PIN stayed on the lock: {:?}",
        hub.slots(LOCK)
    );
    assert!(hub.store.read(|tx| tx.issued(LOCK)).unwrap().is_empty());
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_code_set_then_deleted_is_cleared_once() {
    let hub = hub().await;
    let id = create(&hub);
    hub.run_for(Duration::from_secs(5)).await;
    let before = applied(&hub).len();
    delete(&hub, &id);
    hub.run_for(Duration::from_secs(30)).await;
    let after = &applied(&hub)[before..];
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(matches!(after[0], SlotOp::Clear { .. }), "{after:?}");
    assert!(hub.slots(LOCK).is_empty());
    hub.stop().await;
}
