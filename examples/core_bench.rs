//! Core benchmark: N linked groups across M zero-latency simulated locks.
//! Prints commands per second (planned and committed), codes per second
//! reconciled onto the locks, and peak memory. Never fails on timing.
//!
//!     cargo run --release --example core_bench -- [groups] [locks] [group_size]

use lockhub::commands::Commands;
use lockhub::drivers::sim::{SimDriver, SimLockSpec};
use lockhub::engine::clock::{Clock, SystemClock};
use lockhub::engine::Engine;
use lockhub::model::Capabilities;
use lockhub::settings::HubSettings;
use lockhub::store::Store;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let groups = *args.first().unwrap_or(&1000);
    let locks = *args.get(1).unwrap_or(&200);
    let size = *args.get(2).unwrap_or(&10);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("bench.db")).unwrap());
    let specs: Vec<SimLockSpec> = (0..locks)
        .map(|i| {
            SimLockSpec::new(
                format!("00000000-0000-4000-8000-{i:012}"),
                format!("Lock {i}"),
                Capabilities {
                    supported_code_lengths: vec![4, 5, 6, 7, 8],
                    code_constraints: vec![],
                    max_active_codes_supported: 250,
                    supports_native_scheduling: false,
                    supports_backup_access_code_pool: false,
                    can_program_online_access_codes: true,
                    supports_remote_lock: false,
                },
            )
        })
        .collect();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let sim = Arc::new(SimDriver::new(specs, Some(tx)));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let shutdown = CancellationToken::new();
    let settings = HubSettings::default();
    let engine = Engine::new(
        store.clone(),
        clock.clone(),
        settings.clone(),
        shutdown.clone(),
    );
    engine.start(rx).unwrap();
    let commands_only = std::env::var_os("BENCH_COMMANDS_ONLY").is_some();
    if commands_only {
        // Devices known, no reconcilers: the command path alone.
        use lockhub::drivers::LockDriver;
        store
            .write(|tx| {
                for d in futures::executor::block_on(sim.devices()) {
                    tx.upsert_device(&d)?;
                    tx.set_slots_known(&d.device_id, true)?;
                }
                Ok::<_, lockhub::store::StoreError>(())
            })
            .unwrap();
    } else {
        engine.add_driver(sim.clone()).await.unwrap();
    }
    let commands = Commands::new(store.clone(), clock.clone(), settings, engine.waker());
    // Let the start-up slot reads finish.
    while !commands_only
        && !store
            .read(|tx| Ok(tx.devices()?.iter().all(|d| d.slots_known)))
            .unwrap()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let rss_before = peak_rss_kib();
    let t0 = Instant::now();
    let mut lat = Vec::with_capacity(groups);
    // Group commit: the ingest hands over whatever commands are waiting, up to this many.
    let batch: usize = std::env::var("BENCH_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(16);
    let bodies: Vec<Vec<u8>> = (0..groups)
        .map(|g| {
            let ids: Vec<String> = (0..size).map(|k| format!("00000000-0000-4000-8000-{:012}", (g * size + k) % locks)).collect();
            serde_json::to_vec(&json!({"request_id": format!("b-{g}"), "device_ids": ids, "name": format!("Guest {g}")})).unwrap()
        })
        .collect();
    for chunk in bodies.chunks(batch) {
        let cmds: Vec<(&str, &[u8])> = chunk
            .iter()
            .map(|b| ("access_codes/create_multiple", b.as_slice()))
            .collect();
        let t = Instant::now();
        let replies = commands.execute_many(&cmds);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        for r in replies {
            assert_eq!(r.body["ok"], true, "{}", r.body);
            lat.push(ms);
        }
    }
    let planned = t0.elapsed();
    if commands_only {
        println!("commands only (group commit of up to {batch}): {:.0} create_multiple/s, median {:.2} ms per batch", groups as f64 / planned.as_secs_f64(), median(&mut lat.clone()));
        return;
    }
    let total = groups * size;
    loop {
        let on: usize = (0..locks)
            .map(|i| {
                sim.state(&format!("00000000-0000-4000-8000-{i:012}"))
                    .unwrap()
                    .slots
                    .len()
            })
            .sum();
        if on >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reconciled = t0.elapsed();
    println!("core_bench: {groups} groups x {size} locks over {locks} simulated locks ({total} codes), durable commits (WAL, synchronous=FULL), group commit of up to {batch}");
    println!(
        "  commands  : {:.0} create_multiple/s, median {:.2} ms, p99 {:.2} ms per command",
        groups as f64 / planned.as_secs_f64(),
        median(&mut lat.clone()),
        {
            let mut l = lat.clone();
            l.sort_by(|a, b| a.partial_cmp(b).unwrap());
            l[(l.len() * 99 / 100).min(l.len() - 1)]
        }
    );
    println!(
        "  planned   : {:.0} codes/s",
        total as f64 / planned.as_secs_f64()
    );
    println!(
        "  reconciled: {:.0} codes/s onto the locks (all {total} set after {:.2} s)",
        total as f64 / reconciled.as_secs_f64(),
        reconciled.as_secs_f64()
    );
    println!(
        "  peak RSS  : {:.1} MiB (before the load: {:.1} MiB)",
        peak_rss_kib() as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    shutdown.cancel();
    engine.stopped().await;
}
