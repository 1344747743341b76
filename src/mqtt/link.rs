//! The connection: polls rumqttc's event loop, reconnects with capped
//! exponential backoff and jitter (rumqttc has none), and routes events.

use super::{LinkState, Topics};
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, Outgoing, Publish, QoS};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the publisher needs to hear from the connection.
#[derive(Debug)]
pub(super) enum LinkEvent {
    Connected,
    /// The connection is gone; the publisher answers once it has stopped
    /// publishing, so nothing it sent can be left in rumqttc's queues.
    Disconnected(tokio::sync::oneshot::Sender<()>),
    /// A publish of ours left with this packet id (in the order we published).
    Sent(u16),
    Acked(u16),
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    mut eventloop: EventLoop,
    client: AsyncClient,
    topics: Topics,
    state: Arc<LinkState>,
    commands: mpsc::Sender<Publish>,
    publisher: mpsc::UnboundedSender<LinkEvent>,
    (min, max): (Duration, Duration),
    stop: CancellationToken,
) {
    let mut failures: u32 = 0;
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return,
            ev = eventloop.poll() => ev,
        };
        match ev {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                failures = 0;
                state.connected.store(true, Ordering::Relaxed);
                *state.last_error.lock().unwrap() = None;
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                // Always (re)subscribe: harmless when the session kept it.
                let filter = topics.commands_filter();
                let c = client.clone();
                tokio::spawn(async move {
                    if let Err(e) = c.subscribe(filter, QoS::AtLeastOnce).await {
                        tracing::warn!(error = %e, "could not subscribe");
                    }
                });
                let _ = publisher.send(LinkEvent::Connected);
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                if commands.send(p).await.is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Incoming::PubAck(a))) => {
                let _ = publisher.send(LinkEvent::Acked(a.pkid));
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let _ = publisher.send(LinkEvent::Sent(pkid));
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                // Our own orderly disconnect (shutdown).
                if state.connected.swap(false, Ordering::Relaxed) {
                    let (done, _) = tokio::sync::oneshot::channel();
                    let _ = publisher.send(LinkEvent::Disconnected(done));
                }
            }
            Ok(_) => {}
            Err(e) => {
                let was = state.connected.swap(false, Ordering::Relaxed);
                *state.last_error.lock().unwrap() = Some(e.to_string());
                if was {
                    tracing::warn!(error = %e, "lost the broker");
                    let (done, wait) = tokio::sync::oneshot::channel();
                    if publisher.send(LinkEvent::Disconnected(done)).is_ok() {
                        let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
                    }
                }
                // The outbox is the one source of what must still go out:
                // drop rumqttc's own copies so nothing is sent twice by it.
                eventloop.clean();
                eventloop.pending.clear();
                failures += 1;
                let d = crate::engine::backoff::delay(failures, min, max);
                tracing::debug!(error = %e, wait_ms = d.as_millis() as u64, "broker unreachable; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(d) => {}
                }
            }
        }
    }
}
