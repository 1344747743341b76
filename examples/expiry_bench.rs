//! How late does an expired code's removal start, with 200 locks busy?
//! 200 simulated locks with a per-operation radio latency; every lock keeps
//! getting new codes while codes on it expire at staggered times. Prints the
//! lag between each code's ends_at and the start of its removal on the lock.
//!
//!     cargo run --release --example expiry_bench -- [locks] [latency_ms] [seconds]

use chrono::Utc;
use lockhub::drivers::sim::{SimDriver, SimLockSpec};
use lockhub::drivers::SlotOp;
use lockhub::engine::clock::SystemClock;
use lockhub::hub::Hub;
use lockhub::model::Capabilities;
use lockhub::settings::HubSettings;
use lockhub::store::Store;
use rand::Rng;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let locks = *args.first().unwrap_or(&200) as usize;
    let latency = Duration::from_millis(*args.get(1).unwrap_or(&20));
    let seconds = *args.get(2).unwrap_or(&20) as i64;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("bench.db")).unwrap());
    let shutdown = CancellationToken::new();
    let hub = Hub::start(
        store,
        Arc::new(SystemClock),
        HubSettings::default(),
        shutdown.clone(),
    )
    .unwrap();
    let caps = Capabilities {
        supported_code_lengths: vec![4, 5, 6, 7, 8],
        code_constraints: vec![],
        max_active_codes_supported: 250,
        supports_native_scheduling: false,
        supports_backup_access_code_pool: false,
        can_program_online_access_codes: true,
        supports_remote_lock: false,
    };
    let specs: Vec<SimLockSpec> = (0..locks)
        .map(|i| {
            let mut s = SimLockSpec::new(id(i), format!("Lock {i}"), caps.clone());
            s.latency = latency;
            s
        })
        .collect();
    let sim = Arc::new(SimDriver::new(specs, Some(hub.event_sink())));
    hub.add_driver(sim.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Codes that expire during the run: 5 per lock, ends_at spread over the run.
    let t0 = Utc::now();
    let mut rng = rand::thread_rng();
    let mut expiring: HashMap<String, (String, chrono::DateTime<Utc>)> = HashMap::new();
    for i in 0..locks {
        for _ in 0..5 {
            let ends = t0 + chrono::Duration::milliseconds(rng.gen_range(3_000..seconds * 1000));
            let r = hub.handle(&[("access_codes/create", &serde_json::to_vec(&json!({"request_id": uuid::Uuid::new_v4().to_string(), "device_id": id(i), "ends_at": ends.to_rfc3339()})).unwrap())]);
            let c = &r[0].body["access_code"];
            expiring.insert(
                c["access_code_id"].as_str().unwrap().to_owned(),
                (id(i), ends),
            );
        }
    }
    // Keep every lock busy: a new 10-lock group every 50 ms until the end.
    let end = t0 + chrono::Duration::seconds(seconds + 2);
    let mut g = 0usize;
    while Utc::now() < end {
        let ids: Vec<String> = (0..10).map(|k| id((g * 10 + k) % locks)).collect();
        let body = serde_json::to_vec(&json!({"request_id": format!("busy-{g}"), "device_ids": ids, "ends_at": (Utc::now() + chrono::Duration::hours(1)).to_rfc3339()})).unwrap();
        hub.handle(&[("access_codes/create_multiple", &body)]);
        g += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Lag = when the lock started the Clear of that slot - ends_at.
    let mut lags = Vec::new();
    let mut missing = 0;
    for (code_id, (dev, ends)) in &expiring {
        let slot = hub
            .store
            .read(|tx| Ok(tx.code(code_id)?.map(|c| c.slot)))
            .unwrap();
        let st = sim.state(dev).unwrap();
        let started = st
            .applied
            .iter()
            .zip(&st.applied_started)
            .find_map(|(op, at)| match op {
                SlotOp::Clear { slot: s }
                    if Some(*s) == slot
                        && chrono::DateTime::<Utc>::from(*at)
                            >= *ends - chrono::Duration::milliseconds(1) =>
                {
                    Some(*at)
                }
                _ => None,
            });
        match started {
            Some(at) => lags.push(
                (chrono::DateTime::<Utc>::from(at) - *ends)
                    .num_microseconds()
                    .unwrap() as f64
                    / 1000.0,
            ),
            None => missing += 1,
        }
    }
    lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let busy_sets: usize = (0..locks)
        .map(|i| sim.state(&id(i)).unwrap().applied.len())
        .sum();
    println!("expiry_bench: {locks} locks, {} ms per radio operation, {g} busy groups created, {busy_sets} lock operations in all", latency.as_millis());
    println!(
        "  removals measured: {} (not started: {missing})",
        lags.len()
    );
    if !lags.is_empty() {
        println!(
            "  removal start after ends_at: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            pct(&lags, 0.5),
            pct(&lags, 0.99),
            lags[lags.len() - 1]
        );
    }
    shutdown.cancel();
    hub.stopped().await;
}
