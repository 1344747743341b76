//! Recurring codes (lockhub's `weekly_schedule`) on simulated locks and
//! paused time: a cleaner's Monday and Wednesday mornings on a lock that
//! cannot hold windows, set and removed by the hub at each window from
//! Sunday to Thursday (the engine's 1 s clock watch makes each paused day
//! cost ~1.7 s of CPU, so not the whole week); the slot held between windows
//! (capacity counts it); on a lock that holds schedules, set once with it.
//! Local time is the configured zone: a Vienna cleaner's 07:30 across both
//! DST changes of 2027. `update` / `update_multiple` change or clear a schedule.

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

/// A cleaner's Monday-to-Friday 07:30-16:00 in Europe/Vienna, hub-driven
/// (the keypad holds no schedules), from a Friday to the Monday after the
/// weekend the clocks change: on the lock from 07:25 local (5 min ahead) to
/// 16:00 local on both sides, whatever the UTC offset.
async fn cleaner_across_dst(base: &str, fri: &str, mon: &str, fri_offset: i64, mon_offset: i64) {
    let settings = lockhub::settings::HubSettings {
        max_idle_sleep: Duration::from_secs(3600),
        timezone: jiff::tz::TimeZone::get("Europe/Vienna").unwrap(),
        ..Default::default()
    };
    let t = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Utc)
    };
    let hub = Hub::start_with_at(
        std::sync::Arc::new(lockhub::store::Store::open_in_memory().unwrap()),
        vec![spec(FRONT, "Front door", keypad(&[4], 2))],
        settings,
        t(base),
    )
    .await;
    hub.run_for(Duration::from_secs(1)).await;
    let weekly = json!({"days_of_week": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                        "start_time": "07:30", "end_time": "16:00"});
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "name": "Cleaner", "code": "4817", "weekly_schedule": weekly}),
    );
    assert_eq!(r["access_code"]["is_scheduled_on_device"], false, "{r}");
    let on = |hub: &Hub| hub.slots(FRONT).iter().any(|(_, p)| p == "4817");
    // Local wall-clock time on a day, as UTC with that day's offset.
    let local = |day: &str, hm: &str, offset: i64| t(&format!("{day}T{hm}:00+0{offset}:00"));
    let checks = [
        (local(fri, "07:24", fri_offset), false),
        (local(fri, "07:26", fri_offset), true),
        (local(fri, "15:59", fri_offset), true),
        (local(fri, "16:01", fri_offset), false),
        (local(mon, "07:24", mon_offset), false),
        (local(mon, "07:26", mon_offset), true),
        (local(mon, "15:59", mon_offset), true),
        (local(mon, "16:01", mon_offset), false),
    ];
    for (at, want) in checks {
        run_until(&hub, at).await;
        assert_eq!(on(&hub), want, "at {at} (UTC)");
    }
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn weekly_windows_follow_local_time_into_summer_time() {
    // Vienna goes from CET (+1) to CEST (+2) on Sunday 2027-03-28.
    cleaner_across_dst("2027-03-26T04:00:00Z", "2027-03-26", "2027-03-29", 1, 2).await;
}

#[tokio::test(start_paused = true)]
async fn weekly_windows_follow_local_time_out_of_summer_time() {
    // And back from CEST (+2) to CET (+1) on Sunday 2027-10-31.
    cleaner_across_dst("2027-10-29T03:00:00Z", "2027-10-29", "2027-11-01", 2, 1).await;
}

/// `access_codes/update` and `update_multiple` change a code's schedule or
/// clear it (`null`), and the locks follow: the hub-driven code goes on or
/// off by the new windows, the lock that holds schedules gets the new one.
#[tokio::test(start_paused = true)]
async fn update_changes_and_clears_a_weekly_schedule() {
    let hub = Hub::start(vec![
        spec(FRONT, "Front door", keypad(&[4], 2)),
        spec(BACK, "Back door", nuki_like()),
    ])
    .await;
    hub.run_for(Duration::from_secs(1)).await;
    // Sunday 2024-11-10 12:00 UTC (the hub's local time is UTC here).
    let monday = json!({"days_of_week": ["monday"], "start_time": "09:00", "end_time": "12:00"});
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "name": "Cleaner", "code": "4817", "weekly_schedule": monday}),
    );
    let id = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let on = |hub: &Hub| hub.slots(FRONT).iter().any(|(_, p)| p == "4817");
    hub.run_for(Duration::from_secs(5)).await;
    assert!(!on(&hub), "Sunday: not in a window");

    // A bad schedule: refused, naming the field; nothing changed.
    for bad in [
        json!({"days_of_week": ["sunday"], "start_time": "18:00", "end_time": "12:00"}),
        json!({"days_of_week": "sunday", "start_time": "12:00", "end_time": "18:00"}),
        json!(42),
    ] {
        let r = hub.cmd(
            "access_codes/update",
            json!({"access_code_id": id, "weekly_schedule": bad, "name": "Renamed"}),
        );
        assert_eq!(r["error"]["type"], "invalid_input", "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("weekly_schedule"),
            "{r}"
        );
    }
    assert_eq!(hub.get(&id)["weekly_schedule"], monday);
    assert_eq!(hub.get(&id)["name"], "Cleaner");

    // Sundays from 11:00: a window open now, so the code goes on at once.
    let sunday = json!({"days_of_week": ["sunday"], "start_time": "11:00", "end_time": "18:00"});
    let r = hub.cmd(
        "access_codes/update",
        json!({"access_code_id": id, "weekly_schedule": sunday}),
    );
    assert_eq!(r["ok"], true, "{r}");
    hub.run_for(Duration::from_secs(5)).await;
    assert!(on(&hub), "the new window is open");
    let c = hub.get(&id);
    assert_eq!(c["weekly_schedule"], sunday);
    assert_eq!(c["status"], "set", "{c}");
    assert!(hub
        .event_types_for(&id)
        .contains(&"access_code.changed".to_owned()));
    // It goes at 18:00 as the new schedule says.
    run_until(&hub, Utc.with_ymd_and_hms(2024, 11, 10, 18, 1, 0).unwrap()).await;
    assert!(!on(&hub), "after the new window");
    // Cleared: an ongoing code, on the lock at once and for good.
    let r = hub.cmd(
        "access_codes/update",
        json!({"access_code_id": id, "weekly_schedule": null}),
    );
    assert_eq!(r["ok"], true, "{r}");
    hub.run_for(Duration::from_secs(5)).await;
    assert!(on(&hub), "no schedule: always on");
    assert_eq!(hub.get(&id)["weekly_schedule"], json!(null));
    run_until(&hub, Utc.with_ymd_and_hms(2024, 11, 11, 13, 0, 0).unwrap()).await;
    assert!(on(&hub), "Monday after the old window: still on");
    // Leaving the field out leaves it as it is.
    let r = hub.cmd(
        "access_codes/update",
        json!({"access_code_id": id, "name": "Cleaner B"}),
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(hub.get(&id)["weekly_schedule"], json!(null));

    // A group on the lock that holds schedules: update_multiple re-programs it.
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": BACK, "name": "Staff", "common_code_key": "staff",
               "weekly_schedule": monday}),
    );
    assert_eq!(r["access_code"]["is_scheduled_on_device"], true, "{r}");
    let staff = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    hub.run_for(Duration::from_secs(5)).await;
    let held = |hub: &Hub| {
        let s = hub.sim.state(BACK).unwrap();
        let slot = s.slots.values().next().cloned().expect("on the lock");
        slot.recurring.map(|w| w.to_json())
    };
    assert_eq!(held(&hub), Some(monday.clone()));
    let r = hub.cmd(
        "access_codes/update_multiple",
        json!({"common_code_key": "staff",
               "weekly_schedule": {"days_of_week": ["monday"], "start_time": "25:00", "end_time": "26:00"}}),
    );
    assert_eq!(r["error"]["type"], "invalid_input", "{r}");
    let weekdays = json!({"days_of_week": ["tuesday", "thursday"], "start_time": "10:00", "end_time": "11:30"});
    let r = hub.cmd(
        "access_codes/update_multiple",
        json!({"common_code_key": "staff", "weekly_schedule": weekdays}),
    );
    assert_eq!(r["ok"], true, "{r}");
    hub.run_for(Duration::from_secs(5)).await;
    assert_eq!(
        held(&hub),
        Some(weekdays.clone()),
        "the lock holds the new one"
    );
    assert_eq!(hub.get(&staff)["weekly_schedule"], weekdays);
    let r = hub.cmd(
        "access_codes/update_multiple",
        json!({"common_code_key": "staff", "weekly_schedule": null}),
    );
    assert_eq!(r["ok"], true, "{r}");
    hub.run_for(Duration::from_secs(5)).await;
    assert_eq!(
        held(&hub),
        None,
        "the lock holds the code without a schedule"
    );
    let c = hub.get(&staff);
    assert_eq!(c["weekly_schedule"], json!(null));
    assert_eq!(c["is_scheduled_on_device"], false, "{c}");
    assert_eq!(c["status"], "set", "{c}");
    hub.stop().await;
}
