//! A full disk mid fan-out (a small tmpfs the test mounts; needs root): the
//! engine stops radio work it cannot record and backs off, says so, and once
//! space returns every code reaches its lock with nothing applied twice.

mod support;

use lockhub::commands::Commands;
use lockhub::drivers::sim::SimDriver;
use lockhub::drivers::SlotOp;
use lockhub::engine::clock::{Clock, TokioClock};
use lockhub::engine::Engine;
use lockhub::settings::HubSettings;
use lockhub::store::Store;
use serde_json::json;
use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use support::core::{base_time, keypad, spec, BACK, FRONT};
use tokio_util::sync::CancellationToken;

struct Unmount(std::path::PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn fill(path: &std::path::Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn full_disk_mid_fan_out_then_freed() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&disk)
        .status()
        .unwrap()
        .success());
    let _unmount = Unmount(disk.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let specs = [FRONT, BACK]
            .iter()
            .map(|id| {
                let mut s = spec(id, id, keypad(&[4, 5, 6], 100));
                s.latency = Duration::from_millis(100);
                s
            })
            .collect();
        let sim = Arc::new(SimDriver::new(specs, Some(tx)));
        let store = Arc::new(Store::open(&disk.join("lockhub.db")).unwrap());
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(base_time()));
        let shutdown = CancellationToken::new();
        let engine = Engine::new(
            store.clone(),
            clock,
            HubSettings::default(),
            shutdown.clone(),
        );
        engine.start(rx).unwrap();
        engine.add_driver(sim.clone()).await.unwrap();
        let commands = Commands::new(
            store.clone(),
            engine.clock(),
            HubSettings::default(),
            engine.waker(),
        );
        for i in 0..12 {
            let r = commands
                .execute(
                    "access_codes/create_multiple",
                    &serde_json::to_vec(
                        &json!({"request_id": format!("c{i}"), "device_ids": [FRONT, BACK]}),
                    )
                    .unwrap(),
                )
                .body;
            assert_eq!(r["ok"], true, "{r}");
        }
        tokio::time::sleep(Duration::from_millis(450)).await;
        let placed = sim.state(FRONT).unwrap().applied.len();
        assert!(placed < 12, "the disk fills mid fan-out ({placed} placed)");
        fill(&disk.join("filler"));
        let before: usize = [FRONT, BACK]
            .iter()
            .map(|d| sim.state(d).unwrap().applied.len())
            .sum();
        tokio::time::sleep(Duration::from_secs(60)).await;
        let during: usize = [FRONT, BACK]
            .iter()
            .map(|d| sim.state(d).unwrap().applied.len())
            .sum::<usize>()
            - before;
        assert!(
            during <= 2 * lockhub::engine::MAX_BATCH,
            "no radio work it cannot record: {during} operations in a minute of full disk"
        );
        assert!(
            engine.store_trouble.lock().unwrap().is_some(),
            "the engine says the store fails"
        );

        std::fs::remove_file(disk.join("filler")).unwrap();
        tokio::time::sleep(Duration::from_secs(600)).await;
        for d in [FRONT, BACK] {
            let st = sim.state(d).unwrap();
            assert_eq!(
                st.slots.len(),
                12,
                "lock {d}: every code on once space returned"
            );
            let sets: Vec<(u32, String)> = st
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
                "lock {d}: a set applied twice: {sets:?}"
            );
        }
        assert!(engine.store_trouble.lock().unwrap().is_none());
        shutdown.cancel();
        engine.stopped().await;
    });
}
