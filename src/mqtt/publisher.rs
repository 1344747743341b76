//! The outbox to the broker, in order, QoS 1. A row is deleted only when its
//! PUBACK arrives; while the broker is away rows stay, and on every connect
//! the hub says `online` and republishes its retained device state first.

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
const WINDOW: usize = 48;

/// Bookkeeping of one connection's in-flight rows.
#[derive(Default)]
struct InFlight {
    /// Outbox ids (or `None` for announcements) in publish order, waiting for their packet id.
    unsent: VecDeque<Option<i64>>,
    by_pkid: HashMap<u16, Option<i64>>,
    /// The last outbox id handed to the client.
    after: i64,
}

impl InFlight {
    fn len(&self) -> usize {
        self.unsent.len() + self.by_pkid.len()
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
        if connected && fl.len() < WINDOW {
            match hub.outbox_peek(fl.after, WINDOW - fl.len()) {
                Ok(rows) if !rows.is_empty() => {
                    for r in rows {
                        fl.after = r.id;
                        fl.unsent.push_back(Some(r.id));
                        if client.publish(topics.under(&r.topic), QoS::AtLeastOnce, r.retain, r.payload).await.is_err() {
                            break;
                        }
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "could not read the outbox"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = hub.outbox_changed(), if connected => {}
            ev = link.recv() => match ev {
                None => return,
                Some(LinkEvent::Connected) => {
                    connected = true;
                    fl = InFlight::default();
                    announce(&client, &hub, &topics, &mut fl).await;
                }
                Some(LinkEvent::Disconnected(done)) => {
                    connected = false;
                    // Unacknowledged rows are still in the outbox: sent again on reconnect.
                    fl = InFlight::default();
                    let _ = done.send(());
                }
                Some(LinkEvent::Sent(pkid)) => {
                    if let Some(id) = fl.unsent.pop_front() {
                        fl.by_pkid.insert(pkid, id);
                    }
                }
                Some(LinkEvent::Acked(pkid)) => {
                    if let Some(Some(id)) = fl.by_pkid.remove(&pkid) {
                        if let Err(e) = hub.outbox_remove(&[id]) {
                            tracing::error!(error = %e, "could not delete a delivered outbox row");
                        }
                    }
                }
            }
        }
    }
    // Orderly stop: give what is in flight a moment, say offline, disconnect.
    if connected {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while fl.len() > 0 {
            match tokio::time::timeout_at(deadline, link.recv()).await {
                Ok(Some(LinkEvent::Sent(pkid))) => {
                    if let Some(id) = fl.unsent.pop_front() {
                        fl.by_pkid.insert(pkid, id);
                    }
                }
                Ok(Some(LinkEvent::Acked(pkid))) => {
                    if let Some(Some(id)) = fl.by_pkid.remove(&pkid) {
                        let _ = hub.outbox_remove(&[id]);
                    }
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        let _ = client.publish(topics.status(), QoS::AtLeastOnce, true, OFFLINE.to_vec()).await;
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

/// `online` and the retained device state, first thing on every connect.
async fn announce(client: &AsyncClient, hub: &Hub, topics: &Topics, fl: &mut InFlight) {
    fl.unsent.push_back(None);
    let _ = client.publish(topics.status(), QoS::AtLeastOnce, true, online_payload(hub)).await;
    match hub.retained_state() {
        Ok(state) => {
            for (topic, payload) in state {
                fl.unsent.push_back(None);
                let _ = client.publish(topics.under(&topic), QoS::AtLeastOnce, true, payload).await;
            }
        }
        Err(e) => tracing::error!(error = %e, "could not read the retained state"),
    }
}
