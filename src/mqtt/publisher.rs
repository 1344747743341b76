//! The outbox to the broker, QoS 1. Two lanes, each in id order: responses
//! (someone is waiting) before events and state (each code's events keep their
//! order). A row is deleted only after its PUBACK, in batches (one commit per
//! burst, not one per message); while the broker is away rows stay, and on
//! every connect the hub says `online` and republishes its device state first.

use super::link::LinkEvent;
use super::{online_payload, Topics, OFFLINE};
use crate::hub::Hub;
use rumqttc::{AsyncClient, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most rows published and not yet acknowledged.
const WINDOW: usize = 64;
/// Acknowledged rows deleted together.
const DELETE_BATCH: usize = 128;

/// Bookkeeping of one connection's in-flight rows.
#[derive(Default)]
struct InFlight {
    /// Outbox ids (or `None` for announcements) in publish order, waiting for their packet id.
    unsent: VecDeque<Option<i64>>,
    by_pkid: HashMap<u16, Option<i64>>,
    /// The last outbox id handed to the client, per lane.
    after: [i64; 2],
    /// Delivered rows not yet deleted.
    acked: Vec<i64>,
}

impl InFlight {
    fn len(&self) -> usize {
        self.unsent.len() + self.by_pkid.len()
    }

    fn on_link(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Sent(pkid) => {
                if let Some(id) = self.unsent.pop_front() {
                    self.by_pkid.insert(pkid, id);
                }
            }
            LinkEvent::Acked(pkid) => {
                if let Some(Some(id)) = self.by_pkid.remove(&pkid) {
                    self.acked.push(id);
                }
            }
            LinkEvent::Connected | LinkEvent::Disconnected(_) => {
                unreachable!("handled by the caller")
            }
        }
    }

    /// Delete what the broker has (losing a delete only re-sends a row).
    fn flush(&mut self, hub: &Hub) {
        if self.acked.is_empty() {
            return;
        }
        if let Err(e) = hub.outbox_remove(&self.acked) {
            tracing::error!(error = %e, "could not delete delivered outbox rows");
        }
        self.acked.clear();
    }
}

pub(super) async fn run(
    client: AsyncClient,
    hub: Arc<Hub>,
    topics: Topics,
    mut link: mpsc::UnboundedReceiver<LinkEvent>,
    shutdown: CancellationToken,
    link_stop: CancellationToken,
) {
    let mut connected = false;
    let mut fl = InFlight::default();
    loop {
        if connected && fl.len() < WINDOW && fill(&client, &hub, &topics, &mut fl).await {
            continue;
        }
        fl.flush(&hub);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = hub.outbox_changed(), if connected => {}
            ev = link.recv() => {
                let Some(ev) = ev else { return };
                let mut next = Some(ev);
                // Take the whole burst before touching the store again.
                while let Some(ev) = next.take() {
                    match ev {
                        LinkEvent::Connected => {
                            connected = true;
                            fl = InFlight::default();
                            announce(&client, &hub, &topics, &mut fl).await;
                        }
                        LinkEvent::Disconnected(done) => {
                            fl.flush(&hub);
                            connected = false;
                            // Unacknowledged rows are still in the outbox: sent again on reconnect.
                            fl = InFlight::default();
                            let _ = done.send(());
                        }
                        other => fl.on_link(other),
                    }
                    if fl.acked.len() >= DELETE_BATCH {
                        fl.flush(&hub);
                    }
                    next = link.try_recv().ok();
                }
            }
        }
    }
    // Orderly stop: give what is in flight a moment, say offline, disconnect.
    if connected {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while fl.len() > 0 {
            match tokio::time::timeout_at(deadline, link.recv()).await {
                Ok(Some(ev @ (LinkEvent::Sent(_) | LinkEvent::Acked(_)))) => fl.on_link(ev),
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        fl.flush(&hub);
        let _ = client
            .publish(topics.status(), QoS::AtLeastOnce, true, OFFLINE.to_vec())
            .await;
        let _ = client.disconnect().await;
        // Let the link carry the last packets out.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(ev) = link.recv().await {
                if let LinkEvent::Disconnected(done) = ev {
                    let _ = done.send(());
                    break;
                }
            }
        })
        .await;
    }
    link_stop.cancel();
}

/// Hand rows to the client: responses first. Returns whether any went out.
async fn fill(client: &AsyncClient, hub: &Hub, topics: &Topics, fl: &mut InFlight) -> bool {
    for lane in [0u8, 1] {
        let room = WINDOW - fl.len();
        if room == 0 {
            return true;
        }
        match hub.outbox_peek_lane(lane, fl.after[lane as usize], room) {
            Ok(rows) if !rows.is_empty() => {
                for r in rows {
                    fl.after[lane as usize] = r.id;
                    fl.unsent.push_back(Some(r.id));
                    if client
                        .publish(
                            topics.under(&r.topic),
                            QoS::AtLeastOnce,
                            r.retain,
                            r.payload,
                        )
                        .await
                        .is_err()
                    {
                        return false;
                    }
                }
                return true;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "could not read the outbox");
                return false;
            }
        }
    }
    false
}

/// `online` and the retained device state, first thing on every connect.
async fn announce(client: &AsyncClient, hub: &Hub, topics: &Topics, fl: &mut InFlight) {
    fl.unsent.push_back(None);
    let _ = client
        .publish(topics.status(), QoS::AtLeastOnce, true, online_payload(hub))
        .await;
    match hub.retained_state() {
        Ok(state) => {
            for (topic, payload) in state {
                fl.unsent.push_back(None);
                let _ = client
                    .publish(topics.under(&topic), QoS::AtLeastOnce, true, payload)
                    .await;
            }
        }
        Err(e) => tracing::error!(error = %e, "could not read the retained state"),
    }
}
