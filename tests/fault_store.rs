//! A damaged or read-only store at start, and recovery from the periodic
//! online backup with `lockhub store restore`, with the real binary.

mod support;

use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::blackbox::*;

const BASE: &str = "lockhub/test-hub";

/// Run the daemon to its end (it must refuse to start); its exit code and log.
fn run_to_exit(d: &mut Daemon) -> (Option<i32>, String) {
    d.start();
    for _ in 0..200 {
        if !d.alive() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!d.alive(), "the daemon should refuse to start");
    let (status, _) = d.terminate_exited();
    (status.code(), d.log())
}

/// Overwrite the middle of a database file with noise (a bad SD card sector).
fn damage(db: &Path) {
    // Everything in the main file first (as after a clean stop).
    rusqlite::Connection::open(db)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let mut bytes = std::fs::read(db).unwrap();
    assert!(
        bytes.len() >= 4 * 4096,
        "a database of several pages: {}",
        bytes.len()
    );
    // Every page after the first two: the tables' b-trees.
    for b in &mut bytes[2 * 4096..] {
        *b = 0x5a;
    }
    std::fs::write(db, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_named_and_the_backup_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(dir.path(), broker.port, &sim_locks(0, 0));
    let db = daemon.dir.join("lockhub.db");
    let backup = Path::new(&format!("{}.backup", db.display())).to_owned();
    std::fs::write(
        &daemon.config,
        std::fs::read_to_string(&daemon.config)
            .unwrap()
            .replace("[store]\n", "[store]\nbackup_every = 1\n"),
    )
    .unwrap();
    daemon.start();
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;
    cloud.wait_online().await;
    cloud.wait_serving().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        cloud
            .send_json(
                "access_codes/create_multiple",
                &json!({"request_id": format!("c{i}"), "device_ids": [FRONT, BACK], "name": format!("Guest {i} with a longer name to fill pages")}),
            )
            .await;
    }
    for i in 0..20 {
        let r = cloud.response(&format!("c{i}"), 15).await;
        assert_eq!(r["ok"], true, "{r}");
        ids.push(
            r["access_codes"][0]["access_code_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Wait for a backup that holds them (one a second).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(backup.exists(), "the periodic backup is there");
    assert!(lockhub::store::backup::check_file(&backup).is_ok());
    let (status, _) = daemon.terminate();
    assert!(status.success());

    damage(&db);
    let (code, log) = run_to_exit(&mut daemon);
    assert_eq!(
        code,
        Some(lockhub::store::backup::EXIT_STORE_DAMAGED),
        "{log}"
    );
    assert!(
        log.contains(&db.display().to_string()) && log.contains("damaged"),
        "the message names the file: {log}"
    );
    assert!(log.contains("lockhub store restore"), "and says what to do");
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/lockhub.service"
    ))
    .unwrap();
    let prevent = unit
        .lines()
        .find(|l| l.starts_with("RestartPreventExitStatus="))
        .expect("RestartPreventExitStatus= in the unit");
    assert!(prevent.split(['=', ' ']).any(|c| c == "65"), "{prevent}");

    let out = Command::new(env!("CARGO_BIN_EXE_lockhub"))
        .args(["store", "restore", "--config"])
        .arg(&daemon.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("restored") && text.contains("kept as"),
        "{text}"
    );

    daemon.start();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        daemon.alive(),
        "starts on the restored store: {}",
        daemon.log()
    );
    cloud
        .send_json(
            "access_codes/list",
            &json!({"request_id": "after", "device_id": FRONT}),
        )
        .await;
    let r = cloud.response("after", 15).await;
    let listed: Vec<String> = r["access_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["access_code_id"].as_str().unwrap().to_owned())
        .collect();
    for id in &ids {
        assert!(listed.contains(id), "code {id} is back");
    }
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn garbage_instead_of_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::new(dir.path(), free_port(), &sim_locks(0, 0));
    std::fs::write(
        daemon.dir.join("lockhub.db"),
        "not a database at all\n".repeat(500),
    )
    .unwrap();
    let (code, log) = run_to_exit(&mut daemon);
    assert_eq!(
        code,
        Some(lockhub::store::backup::EXIT_STORE_DAMAGED),
        "{log}"
    );
    assert!(
        log.contains("lockhub.db") && log.contains("damaged"),
        "{log}"
    );
}

#[test]
fn a_read_only_store_gets_one_message_naming_it() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("ro");
    std::fs::create_dir_all(&mnt).unwrap();
    let mount = |args: &[&str]| {
        let ok = Command::new("mount").args(args).status().unwrap().success();
        assert!(ok, "mount {args:?}");
    };
    mount(&[
        "-t",
        "tmpfs",
        "-o",
        "size=8m",
        "tmpfs",
        mnt.to_str().unwrap(),
    ]);
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let mut daemon = Daemon::new(dir.path(), free_port(), &sim_locks(0, 0));
    let db = mnt.join("lockhub.db");
    let conf = std::fs::read_to_string(&daemon.config).unwrap();
    let old = format!("path = \"{}\"", daemon.dir.join("lockhub.db").display());
    std::fs::write(
        &daemon.config,
        conf.replace(&old, &format!("path = \"{}\"", db.display())),
    )
    .unwrap();
    // A first run creates the store, then the disk is remounted read-only.
    daemon.start();
    for _ in 0..100 {
        if db.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    daemon.terminate();
    mount(&["-o", "remount,ro", mnt.to_str().unwrap()]);
    let (code, log) = run_to_exit(&mut daemon);
    assert_eq!(
        code,
        Some(lockhub::store::backup::EXIT_STORE_READ_ONLY),
        "{log}"
    );
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("read-only")).collect();
    assert!(
        lines.iter().any(|l| l.contains(&db.display().to_string())),
        "names the file: {log}"
    );
}
