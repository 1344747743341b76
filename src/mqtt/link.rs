//! The connection: polls the event loop, reconnects with capped exponential
//! backoff and jitter (rumqttc has none), and routes events.
//!
//! A broker that keeps sending a packet over our limit (MQTT 3.1.1 cannot be
//! told the limit; the persistent session delivers it again on every connect)
//! would make a reconnect loop: that failure backs off on its own schedule
//! (1 s doubling to 5 min, not reset by a CONNACK), is logged once a minute
//! and shows in health until a command gets through again.

use super::proto::{Client, Loop, Polled};
use super::{LinkState, Topics};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the publisher needs to hear from the connection.
#[derive(Debug)]
pub(super) enum LinkEvent {
    /// `session_present`: the broker kept our session (and, as a rule, its
    /// retained messages: a broker restarted without persistence has neither).
    Connected { session_present: bool },
    /// The connection is gone; the publisher answers once it has stopped
    /// publishing, so nothing it sent can be left in rumqttc's queues.
    Disconnected(tokio::sync::oneshot::Sender<()>),
    /// A publish of ours left with this packet id (in the order we published).
    Sent(u16),
    /// Its PUBACK; `refused`: the broker's reason for refusing it (MQTT 5).
    Acked(u16, Option<String>),
}

/// How often the oversized-packet warning is repeated in the log.
const OVERSIZED_LOG_EVERY: Duration = Duration::from_secs(60);
const OVERSIZED_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(300));

#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    mut eventloop: Loop,
    client: Client,
    topics: Topics,
    state: Arc<LinkState>,
    commands: mpsc::Sender<Box<super::proto::Inbound>>,
    publisher: mpsc::UnboundedSender<LinkEvent>,
    ha: Option<(
        crate::homeassistant::Discovery,
        mpsc::UnboundedSender<super::discovery::Heard>,
    )>,
    ((min, max), own_limit): ((Duration, Duration), u32),
    stop: CancellationToken,
) {
    let mut failures: u32 = 0;
    let mut oversized: u32 = 0;
    let mut oversized_logged: Option<Instant> = None;
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return,
            ev = eventloop.poll() => ev,
        };
        match ev {
            Ok(Polled::ConnAck {
                session_present,
                max_packet,
            }) => {
                failures = 0;
                state
                    .session_present
                    .store(session_present, Ordering::SeqCst);
                state.generation.fetch_add(1, Ordering::SeqCst);
                let limit = max_packet.map_or(own_limit, |m| m.min(own_limit));
                state.send_limit.store(limit, Ordering::Relaxed);
                state.connected.store(true, Ordering::Relaxed);
                *state.last_error.lock().unwrap() = None;
                tracing::info!(
                    session_present,
                    send_limit = limit,
                    "connected to the broker"
                );
                // Always (re)subscribe: harmless when the session kept it.
                // Queued before the publisher hears of the connection, so the
                // SUBSCRIBE goes out before `online`: a cloud that waits for
                // `online` never publishes into a session not yet subscribed.
                if client.try_subscribe(topics.commands_filter()).is_err() {
                    // The queue is full (not expected right after a connect).
                    let (c, filter) = (client.clone(), topics.commands_filter());
                    tokio::spawn(async move {
                        if let Err(e) = c.subscribe(filter).await {
                            tracing::warn!(error = %e, "could not subscribe");
                        }
                    });
                }
                if let Some((disc, _)) = &ha {
                    let listen = [disc.ha_status_topic(), disc.configs_filter()];
                    let cmds = disc.commands.then(|| disc.commands_filter());
                    if client.try_subscribe_ha(&listen, cmds).is_err() {
                        tracing::warn!("could not subscribe to Home Assistant's topics");
                    }
                }
                let _ = publisher.send(LinkEvent::Connected { session_present });
            }
            Ok(Polled::Publish(mut p)) => {
                if let Some((disc, heard)) = &ha {
                    // Home Assistant's status and our own configs (QoS 0,
                    // nothing to ack): never commands.
                    if super::discovery::Announcer::listens_to(disc, &p.topic) {
                        if let Some(h) =
                            super::discovery::Announcer::heard(disc, &p.topic, &p.payload)
                        {
                            let _ = heard.send(h);
                        }
                        continue;
                    }
                }
                p.generation = state.generation.load(Ordering::SeqCst);
                if oversized > 0 {
                    oversized = 0;
                    *state.oversized.lock().unwrap() = None;
                    tracing::info!("commands arrive again after an oversized packet");
                }
                if commands.send(p).await.is_err() {
                    return;
                }
            }
            Ok(Polled::PubAck { pkid, refused }) => {
                let _ = publisher.send(LinkEvent::Acked(pkid, refused));
            }
            Ok(Polled::Sent(pkid)) => {
                let _ = publisher.send(LinkEvent::Sent(pkid));
            }
            Ok(Polled::OurDisconnect) => {
                // Our own orderly disconnect (shutdown).
                if state.connected.swap(false, Ordering::Relaxed) {
                    let (done, _) = tokio::sync::oneshot::channel();
                    let _ = publisher.send(LinkEvent::Disconnected(done));
                }
            }
            Ok(Polled::Other) => {}
            Err(e) => {
                let was = state.connected.swap(false, Ordering::Relaxed);
                *state.last_error.lock().unwrap() = Some(e.message.clone());
                if was {
                    tracing::warn!(error = %e.message, "lost the broker");
                    let (done, wait) = tokio::sync::oneshot::channel();
                    if publisher.send(LinkEvent::Disconnected(done)).is_ok() {
                        let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
                    }
                }
                // The outbox is the one source of what must still go out:
                // drop rumqttc's own copies so nothing is sent twice by it.
                eventloop.forget_pending();
                let d = if e.oversized {
                    oversized += 1;
                    let why = format!(
                        "the broker keeps delivering a packet over mqtt.max_packet_bytes ({own_limit}); \
                         reconnecting with backoff. Use MQTT 5 (mqtt.protocol = \"v5\"), or cap \
                         the broker's message size (Mosquitto: message_size_limit {own_limit})"
                    );
                    if oversized_logged.is_none_or(|t| t.elapsed() >= OVERSIZED_LOG_EVERY) {
                        oversized_logged = Some(Instant::now());
                        tracing::error!(error = %e.message, attempts = oversized, "{why}");
                    }
                    *state.oversized.lock().unwrap() = Some(why);
                    crate::engine::backoff::delay(
                        oversized,
                        OVERSIZED_BACKOFF.0,
                        OVERSIZED_BACKOFF.1,
                    )
                    .max(OVERSIZED_BACKOFF.0)
                } else {
                    failures += 1;
                    crate::engine::backoff::delay(failures, min, max)
                };
                tracing::debug!(error = %e.message, wait_ms = d.as_millis() as u64, "broker unreachable; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(d) => {}
                }
            }
        }
    }
}
