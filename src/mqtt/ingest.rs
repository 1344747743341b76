//! Commands in: as many as are waiting (up to `max_batch`) go through the hub
//! in one transaction; each is acked to the broker only after that commit.
//!
//! When the store cannot be written (a full disk, an I/O error, a read-only
//! remount) nothing is acked. Each such command is answered
//! `storage_unavailable` at once, published directly (the outbox is in the
//! store), and held here in arrival order; the ingest retries their commit
//! itself with backoff, and commands arriving meanwhile queue behind them, so
//! the hub is never deaf: the broker, which stops delivering at its in-flight
//! limit of unacked messages and redelivers only on a new connection, gets
//! its acks as soon as the store takes the commits. A command is acked only
//! on the connection it arrived on (a packet id means nothing on another);
//! one held across a reconnect is redelivered by the broker and answered from
//! the store as a replay, so nothing is applied twice. A command still waiting
//! here when the link comes back with its session kept is skipped: the broker
//! delivers it again on the new connection (without a session it is not
//! redelivered, so it is committed).
//!
//! What only the transport knows is checked here: a retained command publish
//! is refused (the broker would hand it to every new subscription), and an
//! MQTT 5 Response Topic is honoured only when it is one we can publish on and
//! not one of our own command topics.

use super::proto::{Client, Inbound};
use super::publisher::Direct;
use super::{topic, LinkState, Topics};
use crate::commands::{CommandError, Reply, Request};
use crate::homeassistant::Discovery;
use crate::hub::Hub;
use crate::store::ReplyTo;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Retrying held commands: from this, doubling up to [`HOLD_RETRY_MAX`].
const HOLD_RETRY_BASE: Duration = Duration::from_millis(250);
const HOLD_RETRY_MAX: Duration = Duration::from_secs(10);

/// Longest Correlation Data carried back (it is stored with the answer).
const MAX_CORRELATION: usize = 1024;

/// A command with what the transport decided about it.
#[derive(Clone)]
struct Prepared {
    command: String,
    payload: bytes::Bytes,
    reply_to: Option<ReplyTo>,
    refused: Option<CommandError>,
    /// Home Assistant's lock command, let in unsigned (`[homeassistant] commands`).
    unsigned: bool,
}

/// A `LOCK` / `UNLOCK` on a Home Assistant lock entity's command topic, as
/// the public command it stands for (`locks/lock_door` / `unlock_door`, a
/// fresh `request_id`: its answer goes to `responses/ha-...`). Only when Home
/// Assistant may command the hub, so never a way around signing unless the
/// configuration says so.
fn prepare_ha(disc: &Discovery, p: &Inbound) -> Option<Prepared> {
    let device_id = disc.command_device(&p.topic)?;
    let action = crate::homeassistant::action(&p.payload);
    let request_id = format!("ha-{}", uuid::Uuid::new_v4());
    let body = serde_json::json!({ "request_id": request_id, "device_id": device_id });
    let mut refused = None;
    if p.retain {
        refused = Some(CommandError::invalid(
            "retain",
            "Home Assistant's lock commands must not be retained",
        ));
    }
    if action.is_none() {
        refused.get_or_insert(CommandError::invalid(
            "payload",
            "a Home Assistant lock command is LOCK or UNLOCK",
        ));
    }
    Some(Prepared {
        command: action
            .unwrap_or(crate::homeassistant::Action::Lock)
            .command()
            .to_owned(),
        payload: serde_json::to_vec(&body).unwrap_or_default().into(),
        reply_to: None,
        refused,
        unsigned: true,
    })
}

fn prepare(topics: &Topics, ha: Option<&Discovery>, p: &Inbound) -> Prepared {
    if let Some(prepared) = ha.filter(|d| d.commands).and_then(|d| prepare_ha(d, p)) {
        return prepared;
    }
    let mut refused = None;
    if p.retain {
        refused = Some(CommandError::invalid(
            "retain",
            "command publishes must not be retained (the broker would deliver them again to every new subscription); publish with retain = false",
        ));
    }
    let mut reply_to = None;
    if let Some(rt) = &p.response_topic {
        let own = rt.starts_with(&format!("{}/commands/", topics.base));
        match topic::publishable(rt) {
            Ok(())
                if !own
                    && p.correlation
                        .as_ref()
                        .is_none_or(|c| c.len() <= MAX_CORRELATION) =>
            {
                reply_to = Some(ReplyTo {
                    topic: rt.clone(),
                    correlation: p.correlation.as_ref().map(|c| c.to_vec()),
                });
            }
            Ok(()) if own => {
                refused.get_or_insert(CommandError::invalid(
                    "response_topic",
                    "the Response Topic must not be one of the hub's command topics",
                ));
            }
            Ok(()) => {
                refused.get_or_insert(CommandError::invalid(
                    "correlation_data",
                    format!("Correlation Data longer than {MAX_CORRELATION} bytes"),
                ));
            }
            Err(e) => {
                refused.get_or_insert(CommandError::invalid(
                    "response_topic",
                    format!("the Response Topic cannot be published on: {e}"),
                ));
            }
        }
    }
    Prepared {
        command: topics.command(&p.topic).unwrap_or("").to_owned(),
        payload: p.payload.clone(),
        reply_to,
        refused,
        unsigned: false,
    }
}

/// A command received and not yet committed.
struct Pending {
    inbound: Box<Inbound>,
    prepared: Prepared,
}

/// How a commit attempt went.
enum Outcome {
    /// Committed (each command's answer is in the outbox) and acked.
    Committed,
    /// The store cannot be written: nothing committed; the commands come back
    /// with the store's error.
    StorageFault(Vec<Pending>, String),
    /// Another failure: left unacked for the broker to deliver again.
    Failed,
}

struct Ingest {
    client: Client,
    hub: Arc<Hub>,
    link: Arc<LinkState>,
    direct: mpsc::UnboundedSender<Direct>,
    topics: Topics,
}

impl Ingest {
    /// Whether the broker delivers `p` again on the current connection (it
    /// came on an older one and the session was kept): then this copy is
    /// left alone, so a backlog from a flapping link is not worked twice.
    fn redelivered(&self, p: &Pending) -> bool {
        p.inbound.generation != self.link.generation.load(Ordering::SeqCst)
            && self.link.session_present.load(Ordering::SeqCst)
    }

    /// Commit `batch` in one transaction; ack each only after the commit.
    async fn commit(&self, batch: Vec<Pending>) -> Outcome {
        let hub = self.hub.clone();
        let prepared: Vec<Prepared> = batch.iter().map(|p| p.prepared.clone()).collect();
        let started = std::time::Instant::now();
        // SQLite work off the async threads.
        let handled = tokio::task::spawn_blocking(move || {
            let requests: Vec<Request<'_>> = prepared
                .iter()
                .map(|p| Request {
                    command: &p.command,
                    payload: &p.payload,
                    reply_to: p.reply_to.as_ref(),
                    refused: p.refused.as_ref(),
                    local: p.unsigned,
                })
                .collect();
            hub.handle_requests(&requests)
        })
        .await;
        let replies = match handled {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, commands = batch.len(), "command handling failed; left unacked for redelivery");
                return Outcome::Failed;
            }
        };
        if let Some(fault) = replies
            .iter()
            .find(|r| error_type(r) == "storage_unavailable")
        {
            let why = fault.body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let why = self
                .hub
                .engine
                .store_trouble
                .lock()
                .unwrap()
                .clone()
                .unwrap_or(why);
            // Answer each command now (the outbox cannot take it); the real
            // answer follows once it is committed.
            for (p, r) in batch.iter().zip(&replies) {
                self.answer_directly(p, r);
            }
            return Outcome::StorageFault(batch, short(&why));
        }
        if replies.iter().any(|r| error_type(r) == "internal") {
            tracing::error!(
                commands = batch.len(),
                "commands not committed; left unacked for redelivery"
            );
            return Outcome::Failed;
        }
        let generation = self.link.generation.load(Ordering::SeqCst);
        let mut stale = 0;
        for p in &batch {
            if p.inbound.generation != generation {
                // Its connection is gone: the broker delivers it again, and
                // the store answers that copy as a replay.
                stale += 1;
                continue;
            }
            if let Err(e) = self.client.ack(&p.inbound).await {
                tracing::warn!(error = %e, "could not ack a command; the broker will deliver it again");
            }
        }
        tracing::debug!(
            commands = batch.len(),
            not_acked_from_an_old_connection = stale,
            elapsed_us = started.elapsed().as_micros() as u64,
            "commands committed and acked"
        );
        Outcome::Committed
    }

    fn answer_directly(&self, p: &Pending, r: &Reply) {
        let (topic, correlation) = match &p.prepared.reply_to {
            Some(rt) => (rt.topic.clone(), rt.correlation.clone()),
            None => (self.topics.under(&r.topic), None),
        };
        let _ = self.direct.send(Direct {
            topic,
            payload: serde_json::to_vec(&r.body).unwrap_or_default(),
            correlation,
        });
    }
}

fn error_type(r: &Reply) -> &str {
    r.body["error"]["type"].as_str().unwrap_or("")
}

/// The store's error, short enough for health.
fn short(why: &str) -> String {
    why.chars().take(200).collect()
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    client: Client,
    hub: Arc<Hub>,
    topics: Topics,
    link: Arc<LinkState>,
    mut rx: mpsc::Receiver<Box<Inbound>>,
    direct: mpsc::UnboundedSender<Direct>,
    (max_batch, ha): (usize, Option<Discovery>),
    shutdown: CancellationToken,
) {
    let ingest = Ingest {
        client,
        hub: hub.clone(),
        link,
        direct,
        topics: topics.clone(),
    };
    // Held commands, in arrival order; the next retry and how many failed.
    let mut held: VecDeque<Pending> = VecDeque::new();
    let mut failures: u32 = 0;
    let mut retry_at = tokio::time::Instant::now();
    loop {
        let arrived = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = rx.recv() => match p { Some(p) => Some(p), None => return },
            _ = tokio::time::sleep_until(retry_at), if !held.is_empty() => None,
        };
        let retrying = arrived.is_none();
        let mut batch: Vec<Pending> = match arrived {
            Some(first) => {
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let batch = batch.into_iter().map(|inbound| Pending {
                    prepared: prepare(&topics, ha.as_ref(), &inbound),
                    inbound,
                });
                if !held.is_empty() {
                    // Behind the held ones (order matters: a create, then its
                    // delete); answered now, committed with them.
                    let why = hub.held.get().map(|(_, w)| w).unwrap_or_default();
                    for p in batch {
                        ingest.answer_directly(&p, &held_reply(&p));
                        held.push_back(p);
                    }
                    hub.held.set(held.len(), &why);
                    continue;
                }
                batch.collect()
            }
            None => {
                let n = held.len().min(max_batch);
                held.drain(..n).collect()
            }
        };
        let before = batch.len();
        batch.retain(|p| !ingest.redelivered(p));
        if batch.len() < before {
            tracing::debug!(
                skipped = before - batch.len(),
                "commands from an older connection left to their redelivery"
            );
        }
        if batch.is_empty() {
            if held.is_empty() {
                hub.held.clear();
                failures = 0;
            }
            continue;
        }
        match ingest.commit(batch).await {
            Outcome::StorageFault(back, why) => {
                // Back at the front, in order.
                for p in back.into_iter().rev() {
                    held.push_front(p);
                }
                failures += 1;
                let wait = crate::engine::backoff::delay(failures, HOLD_RETRY_BASE, HOLD_RETRY_MAX)
                    .max(HOLD_RETRY_BASE);
                retry_at = tokio::time::Instant::now() + wait;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::error!(held = held.len(), error = %why, retry_in_ms = wait.as_millis() as u64, "the store cannot be written: commands answered storage_unavailable and held (not acked); retrying their commit");
                }
                hub.held.set(held.len(), &why);
            }
            Outcome::Committed | Outcome::Failed if retrying || !held.is_empty() => {
                if held.is_empty() {
                    tracing::info!(
                        attempts = failures,
                        "the store took the held commands again; all committed and acked"
                    );
                    failures = 0;
                    hub.held.clear();
                } else {
                    hub.held.set(
                        held.len(),
                        &hub.held.get().map(|(_, w)| w).unwrap_or_default(),
                    );
                    retry_at = tokio::time::Instant::now();
                }
            }
            Outcome::Committed | Outcome::Failed => {}
        }
    }
}

/// The answer a command queued behind held ones gets at once.
fn held_reply(p: &Pending) -> Reply {
    crate::commands::unstored_answer(&p.prepared.payload, &CommandError::storage_unavailable())
}
