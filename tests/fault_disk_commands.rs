//! Commands on a full disk, black box: the real binary and a real Mosquitto,
//! the store alone on a 16 MiB tmpfs the test mounts (needs root; CI runs as
//! root), filled in the middle of a stream of fan-out commands.
//!
//! Every command is answered (`storage_unavailable` first, published without
//! the store), none is acked or lost: the hub holds them and commits them
//! itself once space returns, with no restart and no new connection, so it
//! is never deaf (Mosquitto stops delivering at its in-flight limit). Health
//! and `lockhub status` say degraded meanwhile; the locks end with every
//! code, none set twice.

mod support;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::Command;
use std::time::Duration;
use support::blackbox::*;

const BASE: &str = "lockhub/test-hub";
/// Commands sent after the first storage_unavailable answer: more than
/// Mosquitto's in-flight limit (20), so a deaf hub would show.
const AFTER_FAULT: usize = 40;
/// At most this many commands before the disk fills (and the slots they need).
const MAX_COMMANDS: usize = 400;

struct Unmount(std::path::PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn fill(path: &std::path::Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0u8; 512]).is_ok() {}
    let _ = f.sync_all();
}

/// The commands answered `storage_unavailable` at least once.
fn refused(cloud: &Cloud) -> BTreeSet<String> {
    let prefix = format!("{BASE}/responses/");
    cloud
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, p, _)| {
            t.starts_with(&prefix)
                && serde_json::from_slice::<Value>(p)
                    .is_ok_and(|r| r["error"]["type"] == "storage_unavailable")
        })
        .map(|(t, _, _)| t[prefix.len()..].to_owned())
        .collect()
}

fn last_answer(cloud: &Cloud, rid: &str) -> Option<Value> {
    cloud.on(&format!("responses/{rid}")).pop()
}

fn ops(daemon: &Daemon) -> usize {
    [FRONT, BACK]
        .iter()
        .map(|d| {
            lockhub::drivers::sim::SimDriver::read_persisted(&daemon.locks_dir(), d)
                .map(|(_, ops)| ops.len())
                .unwrap_or(0)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_a_full_disk_are_answered_held_and_applied_once() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&disk)
        .status()
        .unwrap()
        .success());
    let _unmount = Unmount(disk.clone());
    let broker = Broker::start(tmp.path());
    let mut daemon = Daemon::with_store(
        tmp.path(),
        broker.port,
        &disk.join("lockhub.db"),
        &sim_locks_with_slots(0, 150, MAX_COMMANDS + 50),
    );
    daemon.start();
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;
    cloud.wait_online().await;
    cloud.wait_serving().await;

    let create = |i: usize| json!({"request_id": format!("d{i}"), "device_ids": [FRONT, BACK], "preferred_code_length": 6});
    let mut sent = 0;
    for i in 0..10 {
        cloud
            .send_json("access_codes/create_multiple", &create(i))
            .await;
        sent += 1;
    }
    // Mid fan-out: the disk fills; commands keep coming until one is refused
    // (SQLite's WAL may absorb a few first), then AFTER_FAULT more.
    wait_for("the first answers and lock operations", 30, || {
        (last_answer(&cloud, "d9").is_some() && ops(&daemon) > 0).then_some(())
    })
    .await;
    let placed = ops(&daemon);
    assert!(placed < 20, "the disk fills mid fan-out ({placed} placed)");
    fill(&disk.join("filler"));
    let mut first_fault = None;
    while sent < MAX_COMMANDS {
        cloud
            .send_json("access_codes/create_multiple", &create(sent))
            .await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
        if first_fault.is_none() {
            first_fault = refused(&cloud).into_iter().next();
        }
        if first_fault.is_some() {
            break;
        }
    }
    let first_fault = first_fault.unwrap_or_else(|| {
        panic!(
            "no storage_unavailable answer in {sent} commands on a full disk; log:\n{}",
            daemon.log()
        )
    });
    let sent_on_full = sent;
    let extra: Vec<usize> = (0..AFTER_FAULT).map(|k| sent + k).collect();
    for i in &extra {
        cloud
            .send_json("access_codes/create_multiple", &create(*i))
            .await;
    }
    sent += AFTER_FAULT;
    // Answered while the disk is full: every command the broker delivered
    // (at least up to its in-flight limit) has its storage_unavailable answer.
    let refused = wait_for("storage_unavailable answers", 20, || {
        let n = refused(&cloud).len();
        (n >= 20).then_some(n)
    })
    .await;
    let h = daemon.health().await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(h["commands_held"].as_u64().unwrap() > 0, "{h}");
    let status = Command::new(env!("CARGO_BIN_EXE_lockhub"))
        .args(["status", "--socket"])
        .arg(&daemon.socket)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("degraded") && status.contains("commands_held"),
        "lockhub status: {status}"
    );
    // No radio work the store cannot record: the engine backs off.
    let before = ops(&daemon);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = ops(&daemon) - before;
    assert!(
        during <= 2 * lockhub::engine::MAX_BATCH,
        "{during} lock operations in 5 s of full disk"
    );

    // Space returns: everything resumes, no restart, nothing lost.
    std::fs::remove_file(disk.join("filler")).unwrap();
    wait_for("an ok answer to every command", 90, || {
        (0..sent)
            .all(|i| last_answer(&cloud, &format!("d{i}")).is_some_and(|r| r["ok"] == true))
            .then_some(())
    })
    .await;
    let mut want: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for i in 0..sent {
        let r = last_answer(&cloud, &format!("d{i}")).unwrap();
        let codes = r["access_codes"].as_array().unwrap();
        assert_eq!(codes.len(), 2, "{r}");
        for c in codes {
            assert!(ids.insert(c["access_code_id"].as_str().unwrap().to_owned()));
            let d = if c["device_id"] == FRONT { FRONT } else { BACK };
            want.entry(d)
                .or_default()
                .insert(c["code"].as_str().unwrap().to_owned());
        }
    }
    wait_for("every code on its lock", 120, || {
        [FRONT, BACK]
            .iter()
            .all(|d| {
                let (slots, _) = replay_lock_log(&daemon.locks_dir(), d);
                slots.into_values().collect::<BTreeSet<_>>() == want[d]
            })
            .then_some(())
    })
    .await;
    for d in [FRONT, BACK] {
        let (_, twice) = replay_lock_log(&daemon.locks_dir(), d);
        assert!(twice.is_empty(), "lock {d}: applied twice: {twice:?}");
    }
    let h = wait_for_health_ok(&daemon).await;
    assert_eq!(h["commands_held"], 0, "{h}");
    assert!(
        daemon
            .log()
            .contains("the store took the held commands again"),
        "the held commands were committed by the hub itself"
    );
    println!(
        "full disk: first refused {first_fault}, {sent_on_full} sent before the burst, {sent} commands in all, {refused} answered storage_unavailable, {during} lock operations in 5 s of full disk"
    );
}

async fn wait_for_health_ok(daemon: &Daemon) -> Value {
    for _ in 0..200 {
        let h = daemon.health().await;
        if h["status"] == "ok" {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health never ok again: {}", daemon.health().await);
}
