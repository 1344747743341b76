//! The outbox to the broker, QoS 1. Two lanes, each in id order: responses
//! (someone is waiting) before events and state (each code's events keep their
//! order). A row is deleted only after its PUBACK, in batches (one commit per
//! burst, not one per message); while the broker is away rows stay, and on
//! every connect the hub says `online` and republishes its device state first
//! (and every code's, when the broker kept no session). With Home Assistant
//! discovery on, its configs follow (`super::discovery`): they are rebuilt
//! from the device list, not queued, and go again on Home Assistant's birth
//! message and when a lock is added or goes on or off line.
//!
//! No row may block the outbox. Before a row is handed to the client its
//! topic is checked (a topic the broker refuses makes Mosquitto close the
//! connection) and its size is checked against the broker's limit; a row that
//! fails is dropped (an answer too large is replaced by a small error answer).
//! A PUBACK with a refusal (MQTT 5) counts as delivered. Against what no check
//! foresees: rows in flight when the link drops become suspects, sent one at
//! a time on the next connections; a suspect alone in flight when the link
//! drops again, [`STRIKES`] times, is dropped.

use super::discovery::{Announcer, Heard};
use super::link::LinkEvent;
use super::proto::Client;
use super::{online_payload, topic, LinkState, Topics, OFFLINE};
use crate::hub::Hub;
use crate::store::OutboxRow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most rows published and not yet acknowledged.
const WINDOW: usize = 64;
/// Acknowledged rows deleted together.
const DELETE_BATCH: usize = 128;
/// Longest an acknowledged row waits for its delete (fewer, larger deletes
/// while messages flow; a lost delete only sends a delivered row again).
const DELETE_DELAY: Duration = Duration::from_millis(100);
/// Times a row may be alone in flight when the link drops before it is dropped.
const STRIKES: u32 = 3;

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

    /// The outbox rows in flight.
    fn rows(&self) -> Vec<i64> {
        self.unsent
            .iter()
            .chain(self.by_pkid.values())
            .flatten()
            .copied()
            .collect()
    }

    fn on_link(&mut self, ev: LinkEvent) -> Option<i64> {
        match ev {
            LinkEvent::Sent(pkid) => {
                if let Some(id) = self.unsent.pop_front() {
                    self.by_pkid.insert(pkid, id);
                }
                None
            }
            LinkEvent::Acked(pkid, refused) => {
                let id = self.by_pkid.remove(&pkid).flatten();
                if let Some(why) = refused {
                    // Delivered as far as it ever will be: sending it again
                    // would be refused again.
                    tracing::error!(outbox_id = ?id, reason = %why, "the broker refused a message; dropped");
                }
                if let Some(id) = id {
                    self.acked.push(id);
                }
                id
            }
            LinkEvent::Connected { .. } | LinkEvent::Disconnected(_) => {
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

/// Rows suspected of taking the link down, across connections.
#[derive(Default)]
struct Suspects {
    ids: HashSet<i64>,
    strikes: HashMap<i64, u32>,
}

impl Suspects {
    /// The link dropped with `in_flight` rows unacknowledged. Returns a row to drop.
    fn link_lost(&mut self, in_flight: &[i64]) -> Option<i64> {
        self.ids.extend(in_flight);
        if let [only] = in_flight {
            let n = self.strikes.entry(*only).or_default();
            *n += 1;
            if *n >= STRIKES {
                self.forget(*only);
                return Some(*only);
            }
        }
        None
    }

    fn forget(&mut self, id: i64) {
        self.ids.remove(&id);
        self.strikes.remove(&id);
    }

    fn max(&self) -> Option<i64> {
        self.ids.iter().max().copied()
    }
}

/// An answer that cannot go through the outbox (the store cannot be
/// written): published once if the broker is there, never stored.
#[derive(Debug)]
pub(super) struct Direct {
    /// Absolute.
    pub topic: String,
    pub payload: Vec<u8>,
    pub correlation: Option<Vec<u8>>,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    client: Client,
    hub: Arc<Hub>,
    topics: Topics,
    state: Arc<LinkState>,
    (mut link, mut direct): (
        mpsc::UnboundedReceiver<LinkEvent>,
        mpsc::UnboundedReceiver<Direct>,
    ),
    mut ha: Option<(Announcer, mpsc::UnboundedReceiver<Heard>)>,
    shutdown: CancellationToken,
    link_stop: CancellationToken,
) {
    // Locks added, or going on or off line, change what Home Assistant is told.
    let mut device_events = ha.as_ref().map(|_| hub.store.recent_events.subscribe());
    // So do drivers starting: a lock kept in the store that no running
    // driver serves any more is announced only until its driver runs.
    let mut drivers = ha.as_ref().map(|_| hub.engine.drivers_watch());
    let mut direct_open = true;
    let mut connected = false;
    let mut fl = InFlight::default();
    let mut suspects = Suspects::default();
    // When the oldest acknowledged row not yet deleted must be.
    let mut delete_by: Option<tokio::time::Instant> = None;
    let out = Out {
        client: &client,
        hub: &hub,
        topics: &topics,
        state: &state,
    };
    loop {
        if connected && out.fill(&mut fl, &mut suspects).await {
            continue;
        }
        if fl.len() == 0 {
            // Nothing more in flight: the burst is over.
            fl.flush(&hub);
        }
        if fl.acked.is_empty() {
            delete_by = None;
        } else if delete_by.is_none() {
            delete_by = Some(tokio::time::Instant::now() + DELETE_DELAY);
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(delete_by.unwrap_or_else(tokio::time::Instant::now)), if delete_by.is_some() => {
                fl.flush(&hub);
                delete_by = None;
            }
            _ = hub.outbox_changed(), if connected => {}
            h = heard(&mut ha) => match h {
                Some(h) if connected => {
                    if let Some((ann, _)) = ha.as_mut() {
                        out.ha_heard(&mut fl, ann, h).await;
                    }
                }
                Some(_) => {}
                None => ha = None,
            },
            _ = drivers_started(&mut drivers) => {
                if connected {
                    if let Some((ann, _)) = ha.as_mut() {
                        out.ha_announce(&mut fl, ann).await;
                    }
                }
            }
            changed = devices_changed(&mut device_events) => {
                if changed && connected {
                    if let Some((ann, _)) = ha.as_mut() {
                        out.ha_announce(&mut fl, ann).await;
                    }
                }
            }
            d = direct.recv(), if direct_open => match d {
                None => direct_open = false,
                Some(d) if connected => out.direct(&mut fl, d).await,
                Some(d) => tracing::debug!(topic = %d.topic.escape_debug(), "broker away: a direct answer not sent (the command stays held)"),
            },
            ev = link.recv() => {
                let Some(ev) = ev else { return };
                let mut next = Some(ev);
                // Take the whole burst before touching the store again.
                while let Some(ev) = next.take() {
                    match ev {
                        LinkEvent::Connected { session_present } => {
                            connected = true;
                            fl = InFlight::default();
                            out.announce(&mut fl, !session_present).await;
                            if let Some((ann, _)) = ha.as_mut() {
                                ann.announced.clear();
                                out.ha_announce(&mut fl, ann).await;
                            }
                        }
                        LinkEvent::Disconnected(done) => {
                            fl.flush(&hub);
                            connected = false;
                            if let Some(id) = suspects.link_lost(&fl.rows()) {
                                tracing::error!(outbox_id = id, strikes = STRIKES, "a message took the broker link down every time it was sent alone; dropped");
                                if let Err(e) = hub.outbox_remove(&[id]) {
                                    tracing::error!(error = %e, "could not drop the message");
                                }
                            }
                            // Unacknowledged rows are still in the outbox: sent again on reconnect.
                            fl = InFlight::default();
                            let _ = done.send(());
                        }
                        other => {
                            if let Some(id) = fl.on_link(other) {
                                suspects.forget(id);
                            }
                        }
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
                Ok(Some(ev @ (LinkEvent::Sent(_) | LinkEvent::Acked(..)))) => {
                    fl.on_link(ev);
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        fl.flush(&hub);
        let _ = client
            .publish(topics.status(), true, OFFLINE.to_vec(), None)
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

/// The next thing Home Assistant's side said (`None`: that side is gone;
/// never ready without discovery).
async fn heard(ha: &mut Option<(Announcer, mpsc::UnboundedReceiver<Heard>)>) -> Option<Heard> {
    match ha {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Waits until another driver starts serving (never, without discovery).
async fn drivers_started(drivers: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    match drivers {
        Some(rx) => {
            if rx.changed().await.is_err() {
                *drivers = None;
            }
        }
        None => std::future::pending().await,
    }
}

/// Waits for committed events; true when one of them changes which locks
/// are announced or how (added, connected, disconnected). A lagging reader
/// (it missed some) says true.
async fn devices_changed(
    events: &mut Option<tokio::sync::broadcast::Receiver<serde_json::Value>>,
) -> bool {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let Some(rx) = events else {
        return std::future::pending().await;
    };
    let mut changed = match rx.recv().await {
        Ok(e) => is_device_change(&e),
        Err(RecvError::Lagged(_)) => true,
        Err(RecvError::Closed) => {
            *events = None;
            return false;
        }
    };
    // The whole burst at once: one announcement for many events.
    loop {
        match rx.try_recv() {
            Ok(e) => changed |= is_device_change(&e),
            Err(TryRecvError::Lagged(_)) => changed = true,
            Err(_) => break,
        }
    }
    changed
}

fn is_device_change(e: &serde_json::Value) -> bool {
    matches!(
        e["event_type"].as_str(),
        Some("device.added" | "device.connected" | "device.disconnected")
    )
}

/// What a row becomes on the wire, once checked.
enum Outgoing {
    Send {
        topic: String,
        payload: Vec<u8>,
        correlation: Option<Vec<u8>>,
        /// State rows are retained (an answer on a Response Topic never is).
        retain: bool,
    },
    /// Can never be delivered: dropped, with the reason logged.
    Drop(String),
}

struct Out<'a> {
    client: &'a Client,
    hub: &'a Hub,
    topics: &'a Topics,
    state: &'a LinkState,
}

impl Out<'_> {
    fn limit(&self) -> usize {
        self.state.send_limit.load(Ordering::Relaxed) as usize
    }

    /// Check a row against what the broker accepts.
    fn check(&self, r: OutboxRow) -> Outgoing {
        let (topic, correlation) = match r.reply_to {
            Some(rt) => (rt.topic, rt.correlation),
            None => (self.topics.under(&r.topic), None),
        };
        if let Err(e) = topic::publishable(&topic) {
            return Outgoing::Drop(format!("{e}: {}", topic.escape_debug()));
        }
        let corr = correlation.as_ref().map_or(0, Vec::len);
        let limit = self.limit();
        let retain = r.retain && correlation.is_none();
        if topic::packet_size(&topic, r.payload.len(), corr) <= limit {
            return Outgoing::Send {
                topic,
                payload: r.payload,
                correlation,
                retain,
            };
        }
        // An answer too large for the broker: the caller still gets one.
        if let Some(request_id) = r.topic.strip_prefix("responses/") {
            let small = serde_json::json!({
                "request_id": request_id,
                "ok": false,
                "error": {
                    "type": "payload_too_large",
                    "message": format!("the answer is {} bytes; the broker accepts packets up to {limit}", r.payload.len()),
                },
            });
            let payload = serde_json::to_vec(&small).unwrap_or_default();
            if topic::packet_size(&topic, payload.len(), corr) <= limit {
                tracing::warn!(
                    request_id,
                    bytes = r.payload.len(),
                    limit,
                    "answer too large for the broker; a payload_too_large answer goes instead"
                );
                return Outgoing::Send {
                    topic,
                    payload,
                    correlation,
                    retain: false,
                };
            }
        }
        Outgoing::Drop(format!(
            "{} bytes on {} exceed the broker's limit of {limit}",
            r.payload.len(),
            topic.escape_debug()
        ))
    }

    /// Hand rows to the client: responses first. Returns whether any went out.
    /// While there are suspects, one row at a time, each after the last is acked.
    async fn fill(&self, fl: &mut InFlight, suspects: &mut Suspects) -> bool {
        let probing = suspects.max().is_some();
        if probing && fl.len() > 0 {
            return false;
        }
        let mut room = WINDOW.saturating_sub(fl.len());
        if probing {
            room = 1;
        }
        if room == 0 {
            return false;
        }
        let mut rows = Vec::new();
        for lane in [0u8, 1] {
            match self
                .hub
                .outbox_peek_lane(lane, fl.after[lane as usize], room)
            {
                Ok(got) if !got.is_empty() => {
                    rows = got.into_iter().map(|r| (lane, r)).collect();
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "could not read the outbox");
                    return false;
                }
            }
        }
        // Only what is on disk goes out: the commits this read may include
        // are synced by their writers, usually by now (`store::durable`).
        if !rows.is_empty() {
            let written = self.hub.outbox_written();
            self.hub.outbox_durable(written).await;
        }
        if probing {
            // Past every suspect (they were delivered or superseded): back to the window.
            if rows.iter().all(|(_, r)| Some(r.id) > suspects.max()) {
                suspects.ids.clear();
            }
        }
        if rows.is_empty() {
            return false;
        }
        let mut dropped = Vec::new();
        let mut closed = false;
        for (lane, r) in rows {
            fl.after[lane as usize] = r.id;
            let id = r.id;
            match self.check(r) {
                Outgoing::Drop(why) => {
                    tracing::error!(outbox_id = id, reason = %why, "a message the broker cannot accept; dropped");
                    dropped.push(id);
                }
                Outgoing::Send {
                    topic,
                    payload,
                    correlation,
                    retain,
                } => {
                    fl.unsent.push_back(Some(id));
                    if self
                        .client
                        .publish(topic, retain, payload, correlation)
                        .await
                        .is_err()
                    {
                        fl.unsent.pop_back();
                        closed = true;
                        break;
                    }
                }
            }
        }
        if !dropped.is_empty() {
            if let Err(e) = self.hub.outbox_remove(&dropped) {
                tracing::error!(error = %e, "could not drop undeliverable outbox rows");
            }
        }
        !closed
    }

    /// Publish an answer the outbox could not take (its row has no id: a
    /// lost one is not sent again; the held command's real answer follows).
    async fn direct(&self, fl: &mut InFlight, d: Direct) {
        let what = "a direct answer";
        self.unqueued(fl, what, d.topic, false, d.payload, d.correlation)
            .await;
    }

    /// Publish something that is no outbox row (a direct answer, Home
    /// Assistant's configs), checked as rows are; a lost one is not sent again
    /// by the publisher (it is answered again, or announced again).
    async fn unqueued(
        &self,
        fl: &mut InFlight,
        what: &str,
        topic: String,
        retain: bool,
        payload: Vec<u8>,
        correlation: Option<Vec<u8>>,
    ) {
        let corr = correlation.as_ref().map_or(0, Vec::len);
        if topic::publishable(&topic).is_err()
            || topic::packet_size(&topic, payload.len(), corr) > self.limit()
        {
            tracing::error!(topic = %topic.escape_debug(), "{what} the broker cannot accept; not published");
            return;
        }
        fl.unsent.push_back(None);
        if self
            .client
            .publish(topic, retain, payload, correlation)
            .await
            .is_err()
        {
            fl.unsent.pop_back();
        }
    }

    /// A Home Assistant config (or its clearing), retained.
    async fn retained(&self, fl: &mut InFlight, topic: String, payload: Vec<u8>) {
        let what = "a Home Assistant config";
        self.unqueued(fl, what, topic, true, payload, None).await;
    }

    /// Every config Home Assistant should have, retained; the ones announced
    /// earlier on this connection and no longer wanted are cleared.
    async fn ha_announce(&self, fl: &mut InFlight, ann: &mut Announcer) {
        let configs = ann.current(self.hub).await;
        let now: HashSet<String> = configs.iter().map(|c| c.topic.clone()).collect();
        let gone: Vec<String> = ann.announced.difference(&now).cloned().collect();
        for topic in gone {
            tracing::info!(topic = %topic, "a lock left: its Home Assistant entity is removed");
            self.retained(fl, topic, Vec::new()).await;
        }
        let n = configs.len();
        for c in configs {
            let payload = serde_json::to_vec(&c.payload).unwrap_or_default();
            self.retained(fl, c.topic, payload).await;
        }
        tracing::debug!(configs = n, "Home Assistant discovery announced");
        ann.announced = now;
    }

    async fn ha_heard(&self, fl: &mut InFlight, ann: &mut Announcer, h: Heard) {
        match h {
            Heard::Birth => {
                tracing::info!("Home Assistant is online: announcing the locks again");
                self.ha_announce(fl, ann).await;
            }
            Heard::Config { topic, empty } => {
                if empty || ann.announced.contains(&topic) {
                    return;
                }
                // Not announced now: a retained config from before (a lock
                // removed while the hub was away) or a kind no longer used.
                let wanted = ann.current(self.hub).await;
                if wanted.iter().any(|c| c.topic == topic) {
                    return;
                }
                tracing::info!(topic = %topic, "a stale Home Assistant config is removed");
                self.retained(fl, topic, Vec::new()).await;
            }
        }
    }

    /// `online` and the retained device state, first thing on every connect;
    /// every live code's retained state too when the broker kept no session
    /// (restarted without persistence: its retained messages are gone). Rows
    /// still in the outbox follow, so the last state published is the newest.
    async fn announce(&self, fl: &mut InFlight, codes_too: bool) {
        fl.unsent.push_back(None);
        let _ = self
            .client
            .publish(self.topics.status(), true, online_payload(self.hub), None)
            .await;
        let mut state = self.hub.retained_state();
        if codes_too {
            if let Ok(s) = &mut state {
                match self.hub.retained_codes() {
                    Ok(codes) => s.extend(codes),
                    Err(e) => {
                        tracing::error!(error = %e, "could not read the codes' retained state")
                    }
                }
            }
        }
        match state {
            Ok(state) => {
                for (rel, payload) in state {
                    let topic = self.topics.under(&rel);
                    if topic::publishable(&topic).is_err()
                        || topic::packet_size(&topic, payload.len(), 0) > self.limit()
                    {
                        tracing::error!(topic = %topic.escape_debug(), "device state the broker cannot accept; not published");
                        continue;
                    }
                    fl.unsent.push_back(None);
                    let _ = self.client.publish(topic, true, payload, None).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "could not read the retained state"),
        }
    }
}
