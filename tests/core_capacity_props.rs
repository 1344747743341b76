//! Property: for random calendars on a lock, a create is refused with
//! `no_space_for_access_code_on_device` if and only if, at some minute of the
//! new code's time on the lock, the codes due then (unmanaged ones included)
//! would exceed the lock's slots; the refusal names the first such minute.
//! The model counts minute by minute, independently of lockhub's sweep.

use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use lockhub::commands::Commands;
use lockhub::drivers::SlotCode;
use lockhub::engine::clock::SystemClock;
use lockhub::model::{Capabilities, DeviceInfo, DriverKind, Pin};
use lockhub::settings::HubSettings;
use lockhub::store::{Store, StoreError};
use proptest::prelude::*;
use serde_json::json;
use std::sync::Arc;

const LOCK: &str = "00000000-0000-4000-8000-000000000001";

/// A request: `None` an ongoing code, else (start hour, length in hours).
type Req = Option<(i64, i64)>;

fn request() -> impl Strategy<Value = Req> {
    prop_oneof![
        1 => Just(None),
        8 => (0i64..120, 1i64..40).prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn refused_iff_some_minute_overflows(
        capacity in 1u32..4,
        unmanaged in 0u32..2,
        reqs in proptest::collection::vec(request(), 1..14),
    ) {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let caps = Capabilities {
            supported_code_lengths: vec![6],
            code_constraints: vec![],
            max_active_codes_supported: capacity,
            supports_native_scheduling: false,
            supports_backup_access_code_pool: false,
            can_program_online_access_codes: true,
            supports_remote_lock: false,
        };
        store.write(|tx| {
            tx.upsert_device(&DeviceInfo { device_id: LOCK.into(), name: "L".into(), driver: DriverKind::Sim, address: "sim".into(), security_class: None, native_weekly_days: 0, capabilities: caps.clone() })?;
            for s in 1..=unmanaged {
                tx.set_observed(LOCK, s, Some(&SlotCode { slot: s, code: Pin::new(format!("97531{s}")), name: None, window: None, recurring: None }))?;
            }
            Ok::<_, StoreError>(())
        }).unwrap();
        let commands = Commands::new(store.clone(), Arc::new(SystemClock), HubSettings::default(), Arc::new(|_: &lockhub::commands::Woken<'_>| {}));
        // Hours from a base a day ahead, so the real clock moving on does not matter.
        let base = (Utc::now() + Span::days(1)).duration_trunc(Span::hours(1)).unwrap();
        let lead = Span::minutes(5);
        // Accepted needs: [from, until) in minutes from base; until None = for ever.
        let mut accepted: Vec<(i64, Option<i64>)> = Vec::new();
        for (n, req) in reqs.iter().enumerate() {
            let mut body = json!({"request_id": format!("q{n}"), "device_id": LOCK});
            let need = match req {
                None => (-24 * 60, None),
                Some((h, len)) => {
                    let s: DateTime<Utc> = base + Span::hours(*h);
                    body["starts_at"] = json!(s.to_rfc3339());
                    body["ends_at"] = json!((s + Span::hours(*len)).to_rfc3339());
                    (h * 60 - lead.num_minutes(), Some((h + len) * 60))
                }
            };
            // The model: the first minute of the new need at which demand exceeds capacity.
            let last = need.1.unwrap_or(200 * 60);
            let first_over = (need.0.max(-24 * 60)..last).find(|&m| {
                let due = accepted.iter().filter(|(f, u)| *f <= m && u.is_none_or(|u| m < u)).count();
                unmanaged as usize + due + 1 > capacity as usize
            });
            let r = commands.execute("access_codes/create", &serde_json::to_vec(&body).unwrap()).body;
            match first_over {
                None => {
                    prop_assert_eq!(&r["ok"], &json!(true), "request {}: {:?} -> {}", n, req, r);
                    accepted.push(need);
                }
                Some(m) => {
                    prop_assert_eq!(&r["error"]["type"], &json!("no_space_for_access_code_on_device"), "request {}: {:?} -> {}", n, req, r);
                    // An ongoing code's need starts now: the model's minute is a stand-in then.
                    if req.is_some() && m >= 0 {
                        let at = lockhub::model::access_code::ts(base + Span::minutes(m));
                        prop_assert_eq!(&r["error"]["devices"][0]["overflows_at"], &json!(at), "{}", r);
                    }
                }
            }
        }
    }
}
