//! Crash recovery at library level: everything dropped mid-fan-out (the
//! runtime with it, so in-flight operations stop at an await point), the store
//! reopened from its file, and the engine must reach the right state on every
//! lock with no operation applied twice.

mod support;

use lockhub::drivers::sim::{SimDriver, SimLockSpec};
use lockhub::drivers::SlotOp;
use lockhub::settings::HubSettings;
use lockhub::store::Store;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use support::core::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

fn lock_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

#[test]
fn crash_mid_fan_out_then_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lockhub.db");
    let specs: Vec<SimLockSpec> = (0..10)
        .map(|i| {
            let mut s = spec(&lock_id(i), &format!("Lock {i}"), keypad(&[4, 5, 6], 50));
            s.latency = Duration::from_millis(100);
            s
        })
        .collect();
    let sim = Arc::new(SimDriver::new(specs, None));
    let ids: Vec<String> = (0..10).map(lock_id).collect();

    // Phase 1: accept 6 groups, let the fan-out run part way, then crash.
    let expected: HashMap<String, Vec<(u32, String)>> = {
        let rt = runtime();
        rt.block_on(async {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            sim.set_sink(tx);
            let store = Arc::new(Store::open(&db).unwrap());
            let hub = Hub::start_on(store, sim.clone(), rx, HubSettings::default()).await;
            let mut codes = Vec::new();
            for g in 0..6 {
                let r = hub.cmd(
                    "access_codes/create_multiple",
                    json!({"device_ids": ids, "name": format!("Group {g}")}),
                );
                assert_eq!(r["ok"], true, "{r}");
                codes.extend(r["access_codes"].as_array().unwrap().iter().cloned());
            }
            // Delete one code of the first group before it is done.
            let doomed = codes[0]["access_code_id"].as_str().unwrap().to_owned();
            assert_eq!(
                hub.cmd("access_codes/delete", json!({"access_code_id": doomed}))["ok"],
                true
            );
            hub.run_for(Duration::from_millis(350)).await;
            let done: usize = ids.iter().map(|d| sim.state(d).unwrap().slots.len()).sum();
            assert!(
                done > 0 && done < 59,
                "crash lands mid-fan-out ({done} codes placed)"
            );
            // What each lock must end up with.
            let mut want: HashMap<String, Vec<(u32, String)>> = HashMap::new();
            for c in codes
                .iter()
                .filter(|c| c["access_code_id"] != doomed.as_str())
            {
                let slot = hub
                    .store
                    .read(|tx| {
                        Ok(tx
                            .code(c["access_code_id"].as_str().unwrap())?
                            .unwrap()
                            .slot)
                    })
                    .unwrap();
                want.entry(c["device_id"].as_str().unwrap().to_owned())
                    .or_default()
                    .push((slot, c["code"].as_str().unwrap().to_owned()));
            }
            want
        })
        // The runtime drops here: every task stops wherever it was.
    };

    // Phase 2: restart on the same file and the same (still powered) locks.
    let rt = runtime();
    rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        sim.set_sink(tx);
        let store = Arc::new(Store::open(&db).unwrap());
        let hub = Hub::start_on(store, sim.clone(), rx, HubSettings::default()).await;
        hub.run_for(Duration::from_secs(30)).await;
        for id in &ids {
            let mut want = expected[id].clone();
            want.sort();
            assert_eq!(hub.slots(id), want, "lock {id} ends right");
            // No operation applied twice: each code was set once, in one slot.
            let sets: Vec<(u32, String)> = sim
                .state(id)
                .unwrap()
                .applied
                .iter()
                .filter_map(|op| match op {
                    SlotOp::Set(c) => Some((c.slot, c.code.expose().to_owned())),
                    SlotOp::Clear { .. } => None,
                })
                .collect();
            let unique: std::collections::HashSet<_> = sets.iter().collect();
            assert_eq!(
                unique.len(),
                sets.len(),
                "lock {id}: a set was applied twice: {sets:?}"
            );
        }
        let statuses: Vec<String> = hub.cmd(
            "access_codes/list",
            json!({"device_id": ids[3], "request_id": "after-restart"}),
        )["access_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["status"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(statuses.len(), 6);
        assert!(statuses.iter().all(|s| s == "set"), "{statuses:?}");
        hub.stop().await;
    });
}
