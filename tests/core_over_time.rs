//! Codes over months, on paused time: slots are taken only while a code must
//! be on its lock and freed once it is off, so small locks serve stay after
//! stay; refusals come only where a moment really overflows; old codes are
//! purged and the store stays small.

mod support;

use chrono::{DateTime, Duration as Span, Utc};
use lockhub::settings::HubSettings;
use lockhub::store::Store;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use support::core::*;

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Paused time has no wall-clock steps to notice: let the engine sleep until
/// its next boundary (a year of 60 s naps would only cost test time).
fn settings() -> HubSettings {
    HubSettings {
        max_idle_sleep: Duration::from_secs(6 * 3600),
        ..Default::default()
    }
}

/// What the publisher would do: take every row (events kept for the checks)
/// and delete it as delivered, so the outbox does not grow as it would without
/// a broker.
fn drain(hub: &Hub, events: &mut Vec<Value>) {
    loop {
        let rows = hub.store.outbox_peek(0, 10_000).unwrap();
        if rows.is_empty() {
            return;
        }
        for r in &rows {
            if r.topic == "events" {
                events.push(serde_json::from_slice(&r.payload).unwrap());
            }
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        hub.store.outbox_remove(&ids).unwrap();
    }
}

async fn run_until(hub: &Hub, t: DateTime<Utc>) {
    let d = t - hub.clock.now();
    if let Ok(d) = d.to_std() {
        hub.run_for(d).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_hundred_stays_one_after_another_on_a_three_slot_lock() {
    let hub = Hub::start_with(
        Arc::new(Store::open_in_memory().unwrap()),
        vec![spec(FRONT, "Front", keypad(&[4], 3))],
        settings(),
    )
    .await;
    // The whole calendar up front: a stay holds no slot until it is due.
    let day0 = base_time()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        + Span::days(1);
    let mut stays = Vec::new();
    for i in 0..100 {
        let start = day0 + Span::days(2 * i) + Span::hours(15);
        let end = start + Span::hours(44); // checkout 11:00 two days later
        let r = hub.cmd(
            "access_codes/create",
            json!({"device_id": FRONT, "name": format!("Stay {i}"), "starts_at": iso(start), "ends_at": iso(end)}),
        );
        assert_eq!(r["ok"], true, "stay {i}: {r}");
        stays.push((
            r["access_code"]["access_code_id"]
                .as_str()
                .unwrap()
                .to_owned(),
            r["access_code"]["code"].as_str().unwrap().to_owned(),
            start,
            end,
        ));
    }
    assert!(hub.slots(FRONT).is_empty(), "nothing on the lock yet");
    let mut events = Vec::new();
    let mut most = 0;
    for (id, pin, start, end) in &stays {
        run_until(&hub, *start + Span::hours(1)).await;
        let on: Vec<String> = hub.slots(FRONT).into_iter().map(|(_, p)| p).collect();
        assert_eq!(on, vec![pin.clone()], "only this stay's PIN during it");
        assert_eq!(hub.get(id)["status"], "set");
        most = most.max(on.len());
        run_until(&hub, *end + Span::minutes(1)).await;
        assert!(hub.slots(FRONT).is_empty(), "removed at checkout");
        drain(&hub, &mut events);
    }
    assert_eq!(most, 1);
    for (id, ..) in &stays {
        let types: Vec<&str> = events
            .iter()
            .filter(|e| e["access_code_id"] == id.as_str())
            .map(|e| e["event_type"].as_str().unwrap())
            .collect();
        assert!(
            types.contains(&"access_code.set_on_device")
                && types.contains(&"access_code.removed_from_device"),
            "{id}: {types:?}"
        );
    }
    // Every PIN differs: none was handed out twice on this lock.
    let pins: BTreeSet<&String> = stays.iter().map(|(_, p, ..)| p).collect();
    assert_eq!(pins.len(), 100);
    // The lock's operation log: each stay set once and cleared once.
    let st = hub.sim.state(FRONT).unwrap();
    assert_eq!(st.applied.len(), 200, "{:?}", st.applied.len());
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_booking_calendar_weeks_ahead_fits_a_small_lock() {
    // The case: 6 stays, no two overlapping, loaded weeks ahead, on a
    // 3-slot lock; then one that overlaps a moment where 3 are due is refused,
    // naming that moment.
    let hub = Hub::start_with(
        Arc::new(Store::open_in_memory().unwrap()),
        vec![spec(FRONT, "Front", keypad(&[4], 3))],
        settings(),
    )
    .await;
    let w0 = base_time() + Span::days(21);
    for i in 0..6 {
        let s = w0 + Span::days(3 * i);
        let r = hub.cmd(
            "access_codes/create",
            json!({"device_id": FRONT, "starts_at": iso(s), "ends_at": iso(s + Span::days(2))}),
        );
        assert_eq!(r["ok"], true, "stay {i}: {r}");
    }
    // Two ongoing codes take two slots for ever; the third slot serves the stays.
    for _ in 0..2 {
        let r = hub.cmd("access_codes/create", json!({"device_id": FRONT}));
        assert_eq!(r["ok"], true, "{r}");
    }
    // A third ongoing code would overflow at the first stay's start.
    let r = hub.cmd("access_codes/create", json!({"device_id": FRONT}));
    assert_eq!(
        r["error"]["type"], "no_space_for_access_code_on_device",
        "{r}"
    );
    let at = lockhub::model::access_code::ts(w0 - Span::minutes(5));
    assert_eq!(r["error"]["devices"][0]["overflows_at"], at.as_str(), "{r}");
    assert_eq!(r["error"]["devices"][0]["device_id"], FRONT);
    assert!(r["error"]["message"].as_str().unwrap().contains(&at), "{r}");
    // A code between two stays fits.
    let gap = w0 + Span::days(2) + Span::hours(1);
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "starts_at": iso(gap), "ends_at": iso(gap + Span::hours(12))}),
    );
    assert_eq!(r["ok"], true, "{r}");
    // Extending it over the next stay is refused; the code is unchanged.
    let id = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = hub.cmd(
        "access_codes/update",
        json!({"access_code_id": id, "ends_at": iso(gap + Span::days(1))}),
    );
    assert_eq!(
        r["error"]["type"], "no_space_for_access_code_on_device",
        "{r}"
    );
    assert_eq!(
        hub.get(&id)["ends_at"],
        lockhub::model::access_code::ts(gap + Span::hours(12))
    );
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_ended_code_extended_later_takes_a_slot_again() {
    let hub = Hub::start_with(
        Arc::new(Store::open_in_memory().unwrap()),
        vec![spec(FRONT, "Front", keypad(&[4], 1))],
        settings(),
    )
    .await;
    let s = base_time() + Span::hours(1);
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "starts_at": iso(s), "ends_at": iso(s + Span::hours(2))}),
    );
    let a = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pin = r["access_code"]["code"].as_str().unwrap().to_owned();
    run_until(&hub, s + Span::hours(3)).await;
    assert!(hub.slots(FRONT).is_empty());
    // The one slot serves another stay now.
    let s2 = hub.clock.now() + Span::hours(1);
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "starts_at": iso(s2), "ends_at": iso(s2 + Span::hours(2))}),
    );
    assert_eq!(r["ok"], true, "{r}");
    // Extending the ended code into the other's time is refused...
    let r = hub.cmd(
        "access_codes/update",
        json!({"access_code_id": a, "ends_at": iso(s2 + Span::hours(1))}),
    );
    assert_eq!(
        r["error"]["type"], "no_space_for_access_code_on_device",
        "{r}"
    );
    // ...and after it, accepted: the code goes on the lock again.
    let later = s2 + Span::hours(3);
    let r = hub.cmd(
        "access_codes/update",
        json!({"access_code_id": a, "starts_at": iso(later), "ends_at": iso(later + Span::hours(2))}),
    );
    assert_eq!(r["ok"], true, "{r}");
    run_until(&hub, later + Span::minutes(30)).await;
    assert_eq!(hub.slots(FRONT), vec![(1, pin)]);
    assert_eq!(hub.get(&a)["status"], "set");
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn natively_scheduled_stays_months_ahead_do_not_sit_on_the_lock() {
    const NUKI: &str = "5a1e0d1b-0000-4000-8000-00000000000a";
    let mut caps = nuki_like();
    caps.max_active_codes_supported = 2;
    let hub = Hub::start_with(
        Arc::new(Store::open_in_memory().unwrap()),
        vec![spec(NUKI, "Nuki", caps)],
        settings(),
    )
    .await;
    // Ten stays over three months on a 2-slot Nuki: accepted, none on the lock yet.
    for i in 0..10 {
        let s = base_time() + Span::days(10 + 9 * i);
        let r = hub.cmd(
            "access_codes/create",
            json!({"device_id": NUKI, "starts_at": iso(s), "ends_at": iso(s + Span::days(3))}),
        );
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["access_code"]["is_scheduled_on_device"], true);
    }
    hub.run_for(Duration::from_secs(3600)).await;
    assert!(hub.sim.state(NUKI).unwrap().slots.is_empty());
    // Within 24 h of the first start it is programmed, with its window.
    run_until(&hub, base_time() + Span::days(10) - Span::hours(23)).await;
    let st = hub.sim.state(NUKI).unwrap();
    assert_eq!(st.slots.len(), 1);
    assert!(st.slots.values().next().unwrap().window.is_some());
    hub.stop().await;
}

/// One lock's calendar: access_code_id -> (PIN, starts_at, ends_at).
type Calendar = BTreeMap<String, (String, DateTime<Utc>, DateTime<Utc>)>;

/// One lock's view of the calendar: the PINs that should be on it at `t`.
fn due_pins(codes: &Calendar, t: DateTime<Utc>) -> BTreeSet<String> {
    codes
        .values()
        .filter(|(_, s, e)| *s - Span::minutes(5) <= t && t < *e)
        .map(|(p, ..)| p.clone())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_year_of_a_busy_calendar_on_ten_locks() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lockhub.db");
    let store = Arc::new(Store::open(&db).unwrap());
    let ids: Vec<String> = (0..10)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    let specs = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            spec(
                id,
                &format!("Lock {i}"),
                keypad(&[4, 6], 2 + (i as u32 % 3)),
            )
        })
        .collect();
    let hub = Hub::start_with(store, specs, settings()).await;
    let day0 = base_time()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        + Span::days(1);
    let at = |d: i64, h: i64| day0 + Span::days(d) + Span::hours(h);
    // Each lock: a stay every 2 or 3 days (15:00 to 11:00), booked 60 days ahead;
    // every 4th stay gets a late checkout (14:00) on its last morning.
    let mut next_start: Vec<i64> = (0..10).map(|i| i as i64 % 3).collect();
    let mut calendar: Vec<Calendar> = vec![BTreeMap::new(); 10];
    let mut late: Vec<(i64, String, usize, DateTime<Utc>)> = Vec::new();
    let mut events = Vec::new();
    let (mut created, mut refused_probes, mut late_checkouts) = (0, 0, 0);
    let mut sizes: Vec<(u64, u64)> = Vec::new();
    // The audit chain keeps `audit_retention` (180 days) of rows: it grows
    // for half a year, then stays flat; it is checked on its own below.
    let mut audit: Vec<u64> = Vec::new();
    let mut n = 0usize;
    for day in 0..365 {
        run_until(&hub, at(day, 0)).await;
        // Book everything starting within the next 60 days.
        for l in 0..10 {
            while next_start[l] <= day + 60 {
                let d = next_start[l];
                let len = 2 + (n % 2) as i64;
                let (s, e) = (at(d, 15), at(d + len, 11));
                let r = hub.cmd("access_codes/create", json!({"device_id": ids[l], "name": format!("Guest {n}"), "starts_at": iso(s), "ends_at": iso(e)}));
                assert_eq!(r["ok"], true, "day {day} lock {l}: {r}");
                let id = r["access_code"]["access_code_id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let pin = r["access_code"]["code"].as_str().unwrap().to_owned();
                if n % 4 == 0 {
                    late.push((d + len, id.clone(), l, e));
                }
                calendar[l].insert(id, (pin, s, e));
                created += 1;
                n += 1;
                next_start[l] = d + len;
            }
        }
        // Late checkouts asked on the morning they apply.
        run_until(&hub, at(day, 9)).await;
        for (d, id, l, e) in late.iter().filter(|x| x.0 == day) {
            let new_end = *e + Span::hours(3);
            let r = hub.cmd(
                "access_codes/update",
                json!({"access_code_id": id, "ends_at": iso(new_end)}),
            );
            assert_eq!(r["ok"], true, "late checkout day {d}: {r}");
            calendar[*l].get_mut(id).unwrap().2 = new_end;
            late_checkouts += 1;
        }
        // Once a month, real overflows: on the 2-slot lock 0, extra codes over
        // 12:00-18:00 are added until one would overflow; that one is refused,
        // naming the first moment (the model below says which), the others fit.
        if day % 30 == 7 {
            let (ps, pe) = (at(day, 12), at(day, 18));
            let mut probes: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
            let mut accepted = Vec::new();
            loop {
                let demand_at = |t: DateTime<Utc>| {
                    due_pins(&calendar[0], t).len()
                        + probes.iter().filter(|(s, e)| *s <= t && t < *e).count()
                        + 1
                };
                let moments: BTreeSet<DateTime<Utc>> = std::iter::once(ps - Span::minutes(5))
                    .chain(calendar[0].values().map(|(_, s, _)| *s - Span::minutes(5)))
                    .filter(|t| *t >= ps - Span::minutes(5) && *t < pe)
                    .collect();
                let expect = moments.into_iter().find(|t| demand_at(*t) > 2);
                let r = hub.cmd(
                    "access_codes/create",
                    json!({"device_id": ids[0], "starts_at": iso(ps), "ends_at": iso(pe)}),
                );
                match expect {
                    Some(t) => {
                        assert_eq!(
                            r["error"]["type"], "no_space_for_access_code_on_device",
                            "day {day}: {r}"
                        );
                        assert_eq!(
                            r["error"]["devices"][0]["overflows_at"],
                            lockhub::model::access_code::ts(t),
                            "day {day}: {r}"
                        );
                        refused_probes += 1;
                        break;
                    }
                    None => {
                        assert_eq!(r["ok"], true, "day {day}: no moment overflows: {r}");
                        accepted.push(
                            r["access_code"]["access_code_id"]
                                .as_str()
                                .unwrap()
                                .to_owned(),
                        );
                        probes.push((ps - Span::minutes(5), pe));
                    }
                }
            }
            for id in accepted {
                assert_eq!(
                    hub.cmd("access_codes/delete", json!({"access_code_id": id}))["ok"],
                    true
                );
            }
        }
        // Every lock holds exactly what is due, mid-stay and after check-in.
        for h in [12, 16] {
            run_until(&hub, at(day, h)).await;
            for l in 0..10 {
                let on: BTreeSet<String> = hub.slots(&ids[l]).into_iter().map(|(_, p)| p).collect();
                assert_eq!(
                    on,
                    due_pins(&calendar[l], at(day, h)),
                    "day {day} {h}:00 lock {l}"
                );
            }
        }
        drain(&hub, &mut events);
        if day % 30 == 29 {
            let main = std::fs::metadata(&db).unwrap().len();
            let wal = std::fs::metadata(db.with_extension("db-wal"))
                .map(|m| m.len())
                .unwrap_or(0);
            let (audit_rows, audit_bytes) = hub.store.read(|tx| tx.audit_size()).unwrap();
            eprintln!("day {day}: database {main} bytes (audit chain: {audit_rows} rows, {audit_bytes} bytes), WAL {wal} bytes");
            audit.push(audit_bytes);
            sizes.push((main, wal));
        }
    }
    assert!(created > 1400, "{created} stays");
    assert!(late_checkouts > 300);
    assert!(
        refused_probes >= 6,
        "{refused_probes} real overflows refused"
    );
    // No failure of any kind on the way.
    assert!(
        !events.iter().any(|e| {
            let t = e["event_type"].as_str().unwrap();
            t.contains("failed") || t.contains("delay")
        }),
        "{:?}",
        events
            .iter()
            .filter(|e| e["event_type"].as_str().unwrap().contains("fail"))
            .take(3)
            .collect::<Vec<_>>()
    );
    // Retention: only codes live now, booked ahead, or finished within 30 days remain.
    let counts = hub.store.read(|tx| tx.table_counts()).unwrap();
    let rows: BTreeMap<&str, u64> = counts.into_iter().collect();
    eprintln!("after a year: {rows:?}, {created} stays, sizes {sizes:?}");
    assert!(rows["access_codes"] < 10 * (60 + 31) / 2 + 50, "{rows:?}");
    assert!(rows["requests"] < 10 * 8 * 2 + 100, "{rows:?}");
    assert!(rows["pin_history"] <= created as u64, "{rows:?}");
    // The store stays bounded: the database file under 2 MiB and not growing
    // after the first months (freed pages are reused), the WAL under the size
    // at which the writer empties it (`store::checkpoint`: 4000 pages of 4 KiB
    // plus headers, and one look of 8 commits). The checkpoint thread copies
    // past 1000 pages, but a sample may land while its copy is pending (it
    // did in CI: 1111 pages).
    let (peak_db, peak_wal) = sizes
        .iter()
        .fold((0, 0), |(a, b), (m, w)| (a.max(*m), b.max(*w)));
    assert!(peak_db < 2 * 1024 * 1024, "{sizes:?}");
    assert!(peak_wal < 4064 * 4120, "{sizes:?}");
    let without_audit = |i: usize| sizes[i].0.saturating_sub(audit[i]);
    let last = sizes.len() - 1;
    assert!(
        without_audit(last) <= without_audit(1) + without_audit(1) / 10,
        "no growth besides the audit chain: {sizes:?}, audit bytes {audit:?}"
    );
    eprintln!("the audit chain's bytes month by month: {audit:?}");
    // Pruned past 180 days: months 8 to 12 hold no more than month 7 (+10%).
    assert!(
        audit[last] <= audit[6] + audit[6] / 10,
        "the audit chain keeps growing past its retention: {audit:?}"
    );
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn ended_and_deleted_codes_are_kept_thirty_days_then_purged_with_only_hashes_left() {
    let hub = Hub::start_with(
        Arc::new(Store::open_in_memory().unwrap()),
        vec![spec(FRONT, "Front", keypad(&[4], 3))],
        settings(),
    )
    .await;
    let s = base_time() + Span::hours(1);
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "starts_at": iso(s), "ends_at": iso(s + Span::hours(20))}),
    );
    let ended = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ended_pin = r["access_code"]["code"].as_str().unwrap().to_owned();
    let r = hub.cmd("access_codes/create", json!({"device_id": FRONT}));
    let deleted = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted_pin = r["access_code"]["code"].as_str().unwrap().to_owned();
    run_until(&hub, s + Span::hours(2)).await;
    assert_eq!(hub.slots(FRONT).len(), 2);
    assert_eq!(
        hub.cmd("access_codes/delete", json!({"access_code_id": deleted}))["ok"],
        true
    );
    run_until(&hub, s + Span::hours(21)).await;
    assert!(hub.slots(FRONT).is_empty());
    // Within the retention period the ended code is still there: a late
    // checkout or an audit finds it.
    run_until(&hub, s + Span::days(29)).await;
    assert_eq!(hub.get(&ended)["status"], "unset");
    let count = || hub.store.read(|tx| tx.count_codes()).unwrap();
    assert_eq!(count(), 2, "both kept 30 days");
    // After it, both are gone; only keyed hashes of their PINs remain.
    run_until(&hub, s + Span::days(32)).await;
    assert_eq!(count(), 0);
    let r = hub.cmd("access_codes/get", json!({"access_code_id": ended}));
    assert_eq!(r["error"]["type"], "access_code_not_found");
    let recent = hub
        .store
        .read(|tx| tx.recent_pins(FRONT, hub.clock.now() - Span::days(365)))
        .unwrap();
    assert!(recent.held(&ended_pin) && recent.held(&deleted_pin));
    assert_eq!(recent.len(), 2);
    // The history is not kept for ever either.
    run_until(&hub, s + Span::days(367)).await;
    assert_eq!(hub.store.read(|tx| tx.count_pin_history()).unwrap(), 0);
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_given_pin_may_repeat_a_finished_stays_but_never_a_live_ones() {
    let hub = Hub::start_with(
        Arc::new(Store::open_in_memory().unwrap()),
        vec![spec(FRONT, "Front", keypad(&[4], 3))],
        settings(),
    )
    .await;
    let s = base_time() + Span::hours(1);
    let r = hub.cmd("access_codes/create", json!({"device_id": FRONT, "code": "4826", "starts_at": iso(s), "ends_at": iso(s + Span::hours(2))}));
    assert_eq!(r["ok"], true, "{r}");
    // A future stay with the same PIN is refused while the first is live...
    let later = s + Span::days(2);
    let body = json!({"device_id": FRONT, "code": "4826", "starts_at": iso(later), "ends_at": iso(later + Span::hours(2))});
    let r = hub.cmd("access_codes/create", body.clone());
    assert_eq!(r["error"]["type"], "duplicate_code_on_device", "{r}");
    // ...and accepted once it ended and left the lock (the owner's PIN, again).
    run_until(&hub, s + Span::hours(3)).await;
    assert!(hub.slots(FRONT).is_empty());
    let r = hub.cmd("access_codes/create", body);
    assert_eq!(r["ok"], true, "{r}");
    hub.stop().await;
}
