//! Recurring codes (lockhub's `weekly_schedule`) on simulated locks and
//! paused time: a cleaner's Monday and Wednesday mornings on a lock that
//! cannot hold windows, set and removed by the hub at each window from
//! Sunday to Thursday (the engine's 1 s clock watch makes each paused day
//! cost ~1.7 s of CPU, so not the whole week); the slot held between windows
//! (capacity counts it); on a lock that holds schedules, set once with it.

mod support;

use chrono::{Duration as Cd, TimeZone, Utc};
use serde_json::json;
use std::time::Duration;
use support::core::{keypad, nuki_like, spec, Hub, BACK, FRONT};

async fn run_until(hub: &Hub, t: chrono::DateTime<Utc>) {
    let d = (t - hub.clock.now()).to_std().expect("a later moment");
    hub.run_for(d).await;
}

#[tokio::test(start_paused = true)]
async fn a_weekly_code_is_set_and_removed_at_each_window() {
    // The engine sleeps until the next window changes (an hour at most), so
    // a week of paused time takes a moment.
    let settings = lockhub::settings::HubSettings {
        max_idle_sleep: Duration::from_secs(3600),
        ..Default::default()
    };
    let hub = Hub::start_with(
        std::sync::Arc::new(lockhub::store::Store::open_in_memory().unwrap()),
        vec![
            spec(FRONT, "Front door", keypad(&[4], 2)),
            spec(BACK, "Back door", nuki_like()),
        ],
        settings,
    )
    .await;
    hub.run_for(Duration::from_secs(1)).await;
    // The hub's clock starts on Sunday 2024-11-10, 12:00 UTC (local time here).
    let weekly = json!({"days_of_week": ["monday", "wednesday"], "start_time": "09:00", "end_time": "12:00"});
    let r = hub.cmd(
        "access_codes/create_multiple",
        json!({"device_ids": [FRONT, BACK], "name": "Cleaner", "code": "4817",
               "weekly_schedule": weekly}),
    );
    // The Nuki-like lock needs 6 digits: a code of its own.
    assert_eq!(r["ok"], false, "{r}");
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "name": "Cleaner", "code": "4817", "weekly_schedule": weekly}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let c = &r["access_code"];
    assert_eq!(c["weekly_schedule"], weekly);
    assert_eq!(c["is_scheduled_on_device"], false, "the hub drives it");
    assert_eq!(c["type"], "ongoing");
    let id = c["access_code_id"].as_str().unwrap().to_owned();
    // A bad schedule is refused, naming the field.
    let bad = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "weekly_schedule": {"days_of_week": ["monday"], "start_time": "12:00", "end_time": "09:00"}}),
    );
    assert_eq!(bad["error"]["type"], "invalid_input", "{bad}");
    assert!(bad["error"]["message"]
        .as_str()
        .unwrap()
        .contains("weekly_schedule"));

    // Capacity: the recurring code keeps its slot between windows, so the
    // 2-slot lock takes one more code, not two.
    let other = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "code": "5926"}),
    );
    assert_eq!(other["ok"], true, "{other}");
    let full = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "code": "6137"}),
    );
    assert_eq!(
        full["error"]["type"], "no_space_for_access_code_on_device",
        "{full}"
    );

    let on = |hub: &Hub| hub.slots(FRONT).iter().any(|(_, p)| p == "4817");
    let at = |d: u32, h: u32, m: u32| Utc.with_ymd_and_hms(2024, 11, d, h, m, 0).unwrap();
    hub.run_for(Duration::from_secs(5)).await;
    assert!(!on(&hub), "Sunday: not on the lock");
    assert_eq!(hub.get(&id)["status"], "unset");
    // Monday 2024-11-11 and Wednesday 2024-11-13; on 5 min ahead (set_before_start).
    let checks = [
        (at(11, 8, 50), false),
        (at(11, 8, 56), true),
        (at(11, 11, 59), true),
        (at(11, 12, 1), false),
        (at(12, 10, 0), false),
        (at(13, 8, 54), false),
        (at(13, 9, 30), true),
        (at(13, 12, 1), false),
        (at(14, 10, 0), false),
    ];
    for (t, want) in checks {
        run_until(&hub, t).await;
        assert_eq!(on(&hub), want, "at {t}");
        if want {
            assert_eq!(hub.get(&id)["status"], "set", "at {t}");
        }
    }
    assert!(
        hub.get(&id)["errors"].as_array().unwrap().is_empty(),
        "{}",
        hub.get(&id)
    );
    // Each window: one set and one clear, nothing repeated.
    let applied = hub.sim.state(FRONT).unwrap().applied;
    let mine = |set: bool| {
        applied
            .iter()
            .filter(|op| match op {
                lockhub::drivers::SlotOp::Set(c) => set && c.code.expose() == "4817",
                lockhub::drivers::SlotOp::Clear { .. } => !set,
            })
            .count()
    };
    assert_eq!((mine(true), mine(false)), (2, 2), "{applied:?}");
    // Its slot stays its own between windows: the other code never took it.
    let events = hub.event_types_for(&id);
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "access_code.set_on_device")
            .count(),
        2,
        "{events:?}"
    );

    // On a lock that holds schedules itself: set once, with the schedule.
    let n = hub.cmd(
        "access_codes/create",
        json!({"device_id": BACK, "name": "Cleaner", "weekly_schedule": weekly}),
    );
    assert_eq!(n["access_code"]["is_scheduled_on_device"], true, "{n}");
    hub.run_for(Duration::from_secs(5)).await;
    let held = hub.sim.state(BACK).unwrap();
    let slot = held.slots.values().next().expect("on the lock at once");
    assert_eq!(
        slot.recurring.map(|w| w.to_json()),
        Some(weekly.clone()),
        "the lock holds the schedule"
    );
    run_until(&hub, hub.clock.now() + Cd::hours(12)).await;
    assert_eq!(
        hub.sim.state(BACK).unwrap().applied.len(),
        1,
        "never re-set"
    );
    hub.stop().await;
}
