//! The kill campaign: the real `lockhub` binary, a real Mosquitto, simulated
//! locks that keep their slots (and an operation log) on disk, and SIGKILLs
//! at random, seeded moments of a stream of mixed creates, updates and
//! deletes. After each restart every acknowledged command's effect is there;
//! at the end every lock holds exactly the live codes' PINs (no deleted code
//! left, no PIN filed as a stranger's), and no operation was carried out twice.
//!
//! `LOCKHUB_KILLS` (default 30) and `LOCKHUB_SEED` (default: random, printed)
//! tune it; `scripts/chaos.sh` runs the long campaign.

mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};
use support::blackbox::*;

const BASE: &str = "lockhub/test-hub";

/// What the cloud believes, from the answers it got.
#[derive(Debug, Clone)]
struct Code {
    device_id: String,
    pin: String,
    deleted: bool,
}

#[derive(Debug, Clone)]
struct Sent {
    request_id: String,
    command: &'static str,
    body: Value,
    /// The code an update or delete is about.
    target: Option<String>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Apply the answer to one command to the cloud's model.
fn absorb(codes: &mut BTreeMap<String, Code>, recent: &mut Vec<String>, sent: &Sent, r: &Value) {
    if r["ok"] != true {
        return;
    }
    match sent.command {
        "access_codes/create_multiple" => {
            for c in r["access_codes"].as_array().unwrap() {
                recent.push(c["access_code_id"].as_str().unwrap().to_owned());
                if recent.len() > 8 {
                    recent.remove(0);
                }
                codes.insert(
                    c["access_code_id"].as_str().unwrap().to_owned(),
                    Code {
                        device_id: c["device_id"].as_str().unwrap().to_owned(),
                        pin: c["code"].as_str().unwrap().to_owned(),
                        deleted: false,
                    },
                );
            }
        }
        "access_codes/update" => {
            let c = codes.get_mut(sent.target.as_ref().unwrap()).unwrap();
            c.pin = sent.body["code"].as_str().unwrap().to_owned();
        }
        "access_codes/delete" => {
            codes
                .get_mut(sent.target.as_ref().unwrap())
                .unwrap()
                .deleted = true;
        }
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_campaign() {
    let kills: usize = env_or("LOCKHUB_KILLS", 30);
    let seed: u64 = env_or("LOCKHUB_SEED", rand::random());
    println!("kill campaign: {kills} kills, seed {seed} (LOCKHUB_SEED={seed} to repeat)");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();

    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(dir.path(), broker.port, &sim_locks(2, 60));
    let devices: Vec<String> = [FRONT.to_string(), BACK.to_string()]
        .into_iter()
        .chain((0..2).map(lock_id))
        .collect();
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;

    let mut codes: BTreeMap<String, Code> = BTreeMap::new();
    let mut pending: Vec<Sent> = Vec::new();
    let mut recent: Vec<String> = Vec::new();
    let mut n = 0u64;
    let mut answered = 0usize;
    let fail = |daemon: &Daemon, msg: String| -> ! {
        let log = daemon.log();
        let tail: String = log
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        panic!("seed {seed}: {msg}\n--- daemon log tail ---\n{tail}");
    };

    for round in 0..=kills {
        daemon.start();
        if round == 0 {
            // The broker keeps lockhub's session (and queues its commands
            // while it is down) from its first subscription on.
            cloud.wait_online().await;
            cloud.wait_serving().await;
        }
        // Answers that came in (redelivered commands are answered first).
        let collect = |pending: &mut Vec<Sent>,
                       codes: &mut BTreeMap<String, Code>,
                       recent: &mut Vec<String>| {
            let mut got = 0;
            while let Some(first) = pending.first() {
                let Some(r) = cloud.on(&format!("responses/{}", first.request_id)).pop() else {
                    break;
                };
                let s = pending.remove(0);
                absorb(codes, recent, &s, &r);
                got += 1;
            }
            got
        };
        if round == kills {
            break;
        }
        // The effects of every answered command are there after the restart.
        if round > 0 && round % 5 == 0 {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !pending.is_empty() && Instant::now() < deadline {
                answered += collect(&mut pending, &mut codes, &mut recent);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if !pending.is_empty() {
                fail(
                    &daemon,
                    format!("round {round}: unanswered {:?}", pending[0].request_id),
                );
            }
            for d in &devices {
                n += 1;
                let rid = format!("l-{n}");
                cloud
                    .send_json(
                        "access_codes/list",
                        &json!({"request_id": rid, "device_id": d}),
                    )
                    .await;
                let r = cloud.response(&rid, 20).await;
                let listed: HashMap<String, String> = r["access_codes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| {
                        (
                            c["access_code_id"].as_str().unwrap().to_owned(),
                            c["code"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect();
                for (id, c) in codes.iter().filter(|(_, c)| c.device_id == *d) {
                    match (c.deleted, listed.get(id)) {
                        (false, Some(pin)) if *pin == c.pin => {}
                        (true, None) => {}
                        (true, Some(_)) => {} // still being removed
                        (deleted, got) => fail(
                            &daemon,
                            format!(
                                "round {round}: code {id} (deleted: {deleted}) listed as {got:?}"
                            ),
                        ),
                    }
                }
            }
        }
        answered += collect(&mut pending, &mut codes, &mut recent);
        // A burst of mixed commands, then a kill at a random moment.
        let burst = rng.gen_range(2..7);
        for _ in 0..burst {
            // Act on codes answered a moment ago too: their sets may be in flight.
            answered += collect(&mut pending, &mut codes, &mut recent);
            n += 1;
            let request_id = format!("r-{n}");
            let busy: BTreeSet<String> = pending.iter().filter_map(|s| s.target.clone()).collect();
            let mut live: Vec<String> = recent
                .iter()
                .filter(|id| !codes[*id].deleted && !busy.contains(*id))
                .cloned()
                .collect();
            // Mostly codes answered a moment ago: their sets are in flight.
            if live.is_empty() || rng.gen_bool(0.3) {
                live = codes
                    .iter()
                    .filter(|(id, c)| !c.deleted && !busy.contains(*id))
                    .map(|(id, _)| id.clone())
                    .collect();
            }
            let pick = rng.gen_range(0..10);
            let sent = if live.is_empty() || pick < 4 {
                let k = rng.gen_range(1..=devices.len());
                let mut ids = devices.clone();
                for i in 0..devices.len() {
                    ids.swap(i, rng.gen_range(0..devices.len()));
                }
                ids.truncate(k);
                Sent {
                    command: "access_codes/create_multiple",
                    body: json!({"request_id": request_id, "device_ids": ids, "name": format!("Guest {n}")}),
                    request_id,
                    target: None,
                }
            } else if pick < 7 {
                let id = live[rng.gen_range(0..live.len())].clone();
                let pin = format!("{:06}", rng.gen_range(100_000..999_999));
                Sent {
                    command: "access_codes/update",
                    body: json!({"request_id": request_id, "access_code_id": id, "code": pin}),
                    request_id,
                    target: Some(id),
                }
            } else {
                let id = live[rng.gen_range(0..live.len())].clone();
                Sent {
                    command: "access_codes/delete",
                    body: json!({"request_id": request_id, "access_code_id": id}),
                    request_id,
                    target: Some(id),
                }
            };
            cloud.send_json(sent.command, &sent.body).await;
            pending.push(sent);
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..80))).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..400))).await;
        if !daemon.alive() {
            fail(&daemon, format!("round {round}: the daemon died by itself"));
        }
        daemon.kill9();
    }

    // The last start: every command answered, every lock right.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        while let Some(first) = pending.first() {
            let Some(r) = cloud.on(&format!("responses/{}", first.request_id)).pop() else {
                break;
            };
            let s = pending.remove(0);
            absorb(&mut codes, &mut recent, &s, &r);
            answered += 1;
        }
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            fail(
                &daemon,
                format!("never answered: {:?}", pending[0].request_id),
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let want: HashMap<&str, BTreeSet<String>> = devices
        .iter()
        .map(|d| {
            (
                d.as_str(),
                codes
                    .values()
                    .filter(|c| c.device_id == *d && !c.deleted)
                    .map(|c| c.pin.clone())
                    .collect(),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: HashMap<&str, BTreeSet<String>> = devices
            .iter()
            .map(|d| {
                (
                    d.as_str(),
                    replay_lock_log(&daemon.locks_dir(), d)
                        .0
                        .into_values()
                        .collect(),
                )
            })
            .collect();
        if got == want {
            break;
        }
        if Instant::now() > deadline {
            let diff: Vec<String> = devices
                .iter()
                .filter(|d| got[d.as_str()] != want[d.as_str()])
                .map(|d| {
                    let extra: Vec<_> = got[d.as_str()].difference(&want[d.as_str()]).collect();
                    let missing: Vec<_> = want[d.as_str()].difference(&got[d.as_str()]).collect();
                    format!(
                        "{d}: on the lock but not wanted {extra:?}, wanted but missing {missing:?}"
                    )
                })
                .collect();
            fail(&daemon, format!("locks did not end right: {diff:#?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for d in &devices {
        let (_, twice) = replay_lock_log(&daemon.locks_dir(), d);
        if !twice.is_empty() {
            fail(
                &daemon,
                format!("lock {d}: operations applied twice: {twice:?}"),
            );
        }
    }
    let strangers = cloud
        .events()
        .iter()
        .filter(|e| e["event_type"] == "access_code.unmanaged.created")
        .count();
    if strangers > 0 {
        fail(
            &daemon,
            format!("{strangers} of lockhub's PINs filed as strangers' codes"),
        );
    }
    let live = codes.values().filter(|c| !c.deleted).count();
    println!(
        "kill campaign: {kills} kills, {answered} commands answered, {live} codes live, {} deleted, {:.1} s (seed {seed})",
        codes.len() - live,
        started.elapsed().as_secs_f64()
    );
    daemon.terminate();
}
