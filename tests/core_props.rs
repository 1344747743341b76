//! Property tests at the command level: `throw` never leaves partial state,
//! and every code created fits its lock.

use lockhub::commands::Commands;
use lockhub::engine::clock::SystemClock;
use lockhub::model::{Capabilities, CodeConstraint, DeviceInfo, DriverKind};
use lockhub::settings::HubSettings;
use lockhub::store::{Store, StoreError};
use proptest::prelude::*;
use serde_json::json;
use std::sync::Arc;

fn constraint() -> impl Strategy<Value = CodeConstraint> {
    use CodeConstraint::*;
    prop_oneof![
        Just(NoZeros),
        Just(CannotStartWith12),
        Just(NoTripleConsecutiveInts),
        Just(NoAscendingOrDescendingSequence),
        Just(AtLeastThreeUniqueDigits),
        Just(NoAllSameDigits),
        Just(CannotContain089),
        Just(CannotContain0789),
        Just(UniqueFirstFourDigits),
    ]
}

fn lock() -> impl Strategy<Value = Capabilities> {
    (
        proptest::collection::btree_set(4u8..=8, 1..3),
        proptest::collection::vec(constraint(), 0..3),
        1u32..4,
    )
        .prop_map(|(l, c, slots)| Capabilities {
            supported_code_lengths: l.into_iter().collect(),
            code_constraints: c,
            max_active_codes_supported: slots,
            supports_native_scheduling: false,
            supports_backup_access_code_pool: false,
            can_program_online_access_codes: true,
            supports_remote_lock: false,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn throw_is_all_or_nothing(
        locks in proptest::collection::vec(lock(), 1..5),
        requests in proptest::collection::vec((proptest::option::of("[0-9]{4,8}"), proptest::option::of(4u8..=8), any::<bool>()), 1..8),
    ) {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let ids: Vec<String> = (0..locks.len()).map(|i| format!("00000000-0000-4000-8000-{i:012}")).collect();
        store.write(|tx| {
            for (id, caps) in ids.iter().zip(&locks) {
                tx.upsert_device(&DeviceInfo { device_id: id.clone(), name: id.clone(), driver: DriverKind::Sim, address: id.clone(), capabilities: caps.clone(), security_class: None, native_weekly_days: 0 })?;
            }
            Ok::<_, StoreError>(())
        }).unwrap();
        let commands = Commands::new(store.clone(), Arc::new(SystemClock), HubSettings::default(), Arc::new(|_: &lockhub::commands::Woken<'_>| {}));
        for (n, (code, preferred, random)) in requests.into_iter().enumerate() {
            let before_codes = store.read(|tx| tx.count_codes()).unwrap();
            let before_rows = store.outbox_len().unwrap();
            let mut body = json!({"request_id": format!("p{n}"), "device_ids": ids});
            if let Some(c) = &code { body["code"] = json!(c); }
            if let Some(p) = preferred { body["preferred_code_length"] = json!(p); }
            if random { body["behavior_when_code_cannot_be_shared"] = json!("create_random_code"); }
            let r = commands.execute("access_codes/create_multiple", &serde_json::to_vec(&body).unwrap()).body;
            if r["ok"] == true {
                let created = r["access_codes"].as_array().unwrap();
                prop_assert_eq!(created.len(), ids.len());
                // Every code fits its lock.
                for (c, caps) in created.iter().zip(&locks) {
                    let pin = c["code"].as_str().unwrap();
                    prop_assert!(caps.supported_code_lengths.contains(&(pin.len() as u8)));
                    for k in &caps.code_constraints {
                        prop_assert!(lockhub::pin::satisfies(pin, k), "{} breaks {:?}", pin, k);
                    }
                }
                if !random {
                    let first = created[0]["code"].clone();
                    prop_assert!(created.iter().all(|c| c["code"] == first), "throw: one PIN for all");
                }
            } else {
                prop_assert_eq!(store.read(|tx| tx.count_codes()).unwrap(), before_codes, "nothing created: {}", r);
                prop_assert_eq!(store.outbox_len().unwrap(), before_rows + 1, "only the answer queued: {}", r);
            }
        }
        // No two live codes on one lock share a PIN.
        for id in &ids {
            let pins = store.read(|tx| tx.pins_on_lock(id, None)).unwrap();
            let codes = store.read(|tx| tx.codes_for_device(id)).unwrap();
            prop_assert_eq!(pins.len(), codes.len());
        }
    }
}
