//! The broker campaign: Mosquitto restarted again and again in the middle of
//! a stream of creates and deletes, with and without broker persistence.
//! Afterwards no response, event or state is lost: every command has its
//! answer, each code's events arrived in order, and a new subscriber finds
//! every live code's and device's retained state (and none of a deleted one).
//!
//! Without persistence a restarted broker forgets the hub's session (its
//! subscription, its queued commands) and every retained message; a relay
//! lets the cloud resubscribe before the hub is back, as a cloud that is
//! always connected would be. Commands the forgetful broker dropped are sent
//! again by the cloud (same `request_id` and body), as any cloud does with
//! an unanswered command. `LOCKHUB_BROKER_RESTARTS` (default 3) sets the
//! restarts; `scripts/broker-chaos.sh` runs the long campaign (30).

mod support;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::blackbox::*;

const BASE: &str = "lockhub/test-hub";

fn restarts() -> usize {
    std::env::var("LOCKHUB_BROKER_RESTARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// The broker restarts while the cloud is away from the hub: the cloud is
/// subscribed again before the hub may reconnect.
async fn restart(broker: &mut Broker, gate: &Gate, cloud: &Cloud) {
    gate.close();
    let subs = cloud.subscribed.load(Ordering::SeqCst);
    broker.restart();
    wait_for("the cloud resubscribed", 20, || {
        (cloud.subscribed.load(Ordering::SeqCst) > subs).then_some(())
    })
    .await;
    gate.open();
}

/// Every retained message under `{base}/`, as a new subscriber gets them.
async fn retained(port: u16) -> BTreeMap<String, Vec<u8>> {
    let mut o = MqttOptions::new(
        format!("witness-{}", rand::random::<u32>()),
        "127.0.0.1",
        port,
    );
    o.set_clean_session(true);
    o.set_max_packet_size(8 << 20, 8 << 20);
    let (client, mut el) = AsyncClient::new(o, 64);
    let mut got = BTreeMap::new();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_millis(1500) {
        match tokio::time::timeout(Duration::from_millis(200), el.poll()).await {
            Ok(Ok(Event::Incoming(Incoming::ConnAck(_)))) => {
                client
                    .subscribe(format!("{BASE}/#"), QoS::AtLeastOnce)
                    .await
                    .unwrap();
            }
            Ok(Ok(Event::Incoming(Incoming::Publish(p)))) if p.retain => {
                got.insert(p.topic.clone(), p.payload.to_vec());
                quiet_since = Instant::now();
            }
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let _ = client.disconnect().await;
    got
}

async fn campaign(persistence: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let mut broker = Broker::start_with(tmp.path(), persistence);
    let gate = Gate::start(broker.port);
    let restarts = restarts();
    let per_restart = 8;
    // Room on each lock for every code the campaign makes.
    let slots = (restarts + 1) * per_restart + 10;
    let mut daemon = Daemon::new(tmp.path(), gate.port, &sim_locks_with_slots(0, 20, slots));
    daemon.start();
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;
    cloud.wait_online().await;
    cloud.wait_serving().await;

    let mut sent: BTreeMap<String, (&str, Value)> = BTreeMap::new();
    let mut deleted = BTreeSet::new();
    let mut n = 0;
    let started = Instant::now();
    for round in 0..=restarts {
        for _ in 0..per_restart {
            // A delete of a code that is on its locks now and then, else a create.
            let on_lock: Vec<String> = cloud
                .events()
                .iter()
                .filter(|e| e["event_type"] == "access_code.set_on_device")
                .filter_map(|e| e["access_code_id"].as_str().map(str::to_owned))
                .filter(|id| !deleted.contains(id))
                .collect();
            let rid = format!("b{n}");
            n += 1;
            let (command, body) = match on_lock.first() {
                Some(id) if n % 3 == 0 => {
                    deleted.insert(id.clone());
                    (
                        "access_codes/delete",
                        json!({"request_id": rid, "access_code_id": id}),
                    )
                }
                _ => (
                    "access_codes/create_multiple",
                    json!({"request_id": rid, "device_ids": [FRONT, BACK]}),
                ),
            };
            cloud.send_json(command, &body).await;
            sent.insert(rid, (command, body));
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        if round < restarts {
            restart(&mut broker, &gate, &cloud).await;
        }
    }
    // Every command answered; one the forgetful broker dropped is sent again.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let unanswered: Vec<&String> = sent
            .keys()
            .filter(|rid| cloud.on(&format!("responses/{rid}")).is_empty())
            .collect();
        if unanswered.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "unanswered: {unanswered:?}; log:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        if !persistence {
            for rid in sent.keys() {
                if cloud.on(&format!("responses/{rid}")).is_empty() {
                    let (command, body) = &sent[rid];
                    cloud.send_json(command, body).await;
                }
            }
        }
    }
    // The codes the answers made, and which were deleted.
    let mut live = BTreeSet::new();
    for (rid, (command, _)) in &sent {
        let r = cloud.on(&format!("responses/{rid}")).remove(0);
        assert_eq!(r["ok"], true, "{rid}: {r}");
        if *command == "access_codes/create_multiple" {
            for c in r["access_codes"].as_array().unwrap() {
                live.insert(c["access_code_id"].as_str().unwrap().to_owned());
            }
        }
    }
    live.retain(|id| !deleted.contains(id));
    // Each code's events, in order (first copies: QoS 1 may repeat one).
    let wanted = |id: &String| -> Vec<&'static str> {
        if deleted.contains(id) {
            vec![
                "access_code.created",
                "access_code.set_on_device",
                "access_code.deleted",
                "access_code.removed_from_device",
            ]
        } else {
            vec!["access_code.created", "access_code.set_on_device"]
        }
    };
    let all: Vec<&String> = live.iter().chain(deleted.iter()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let by_code = loop {
        let mut seen_ids = HashSet::new();
        let mut by_code: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in cloud.events() {
            if !seen_ids.insert(e["event_id"].as_str().unwrap_or_default().to_owned()) {
                continue;
            }
            if let Some(id) = e["access_code_id"].as_str() {
                by_code
                    .entry(id.to_owned())
                    .or_default()
                    .push(e["event_type"].as_str().unwrap().to_owned());
            }
        }
        let complete = all.iter().all(|id| {
            let got = by_code.get(*id).cloned().unwrap_or_default();
            let want = wanted(id);
            got.iter()
                .filter(|t| want.contains(&t.as_str()))
                .cloned()
                .collect::<Vec<_>>()
                == want
        });
        if complete {
            break by_code;
        }
        if Instant::now() > deadline {
            let bad: Vec<_> = all
                .iter()
                .map(|id| {
                    (
                        id,
                        by_code.get(*id).cloned().unwrap_or_default(),
                        wanted(id),
                    )
                })
                .filter(|(_, got, want)| {
                    got.iter()
                        .filter(|t| want.contains(&t.as_str()))
                        .collect::<Vec<_>>()
                        != want.iter().collect::<Vec<_>>()
                })
                .collect();
            panic!(
                "events lost or out of order: {bad:#?}; log:\n{}",
                daemon.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The retained state after the last restart: every live code (set), every
    // device, no deleted code.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = retained(broker.port).await;
        let code_of = |id: &str| state.get(&format!("{BASE}/access_codes/{id}"));
        let missing: Vec<&String> = live
            .iter()
            .filter(|id| {
                code_of(id)
                    .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                    .is_none_or(|v| v["status"] != "set")
            })
            .collect();
        let stale: Vec<&String> = deleted
            .iter()
            .filter(|id| code_of(id).is_some_and(|p| !p.is_empty()))
            .collect();
        let devices = [FRONT, BACK]
            .iter()
            .all(|d| state.contains_key(&format!("{BASE}/devices/{d}")));
        if missing.is_empty() && stale.is_empty() && devices {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retained state incomplete: missing or not set {missing:?} (first: {:?}), deleted but retained {stale:?}, devices {devices}",
            missing.first().and_then(|id| code_of(id)).map(|p| String::from_utf8_lossy(p).into_owned())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "broker campaign (persistence {persistence}): {restarts} restarts, {} commands, {} codes live, {} deleted, {} codes' events checked, {:.1} s",
        sent.len(),
        live.len(),
        deleted.len(),
        by_code.len(),
        started.elapsed().as_secs_f64()
    );
    daemon.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarts_with_persistence_lose_nothing() {
    campaign(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarts_without_persistence_lose_nothing() {
    campaign(false).await;
}
