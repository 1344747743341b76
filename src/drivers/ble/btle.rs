//! The real radio: btleplug (BlueZ over D-Bus on Linux) behind [`Radio`].
//!
//! The adapter scans for as long as the radio lives, so locks are found by
//! address without a scan per connection and their advertisements tell the
//! driver a lock is back in range. A connection resolves services and
//! subscribes to both Nuki characteristics before the first write.

use super::link::{Channel, Link, LinkError, Radio, KEYTURNER_SERVICE, PAIRING_SERVICE};
use async_trait::async_trait;
use btleplug::api::{
    Central, CentralEvent, Characteristic, Manager as _, Peripheral as _, ScanFilter,
    ValueNotification, WriteType,
};
use btleplug::platform::{Adapter, Manager, Peripheral, PeripheralId};
use futures::stream::{BoxStream, StreamExt};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often to look again for a lock that has not advertised yet.
const FIND_POLL: Duration = Duration::from_millis(100);

pub struct BtleRadio {
    adapter: Adapter,
    seen: broadcast::Sender<String>,
    /// Peripherals whose connection dropped, so a link ends at once rather
    /// than at its reply timeout.
    gone: broadcast::Sender<PeripheralId>,
}

fn connect_err(e: btleplug::Error) -> LinkError {
    LinkError::Connect(e.to_string())
}

fn adapter_err(e: btleplug::Error) -> LinkError {
    LinkError::Adapter(e.to_string())
}

impl BtleRadio {
    /// Opens the adapter whose description contains `adapter` (or the first
    /// one) and starts scanning.
    pub async fn open(adapter: Option<&str>) -> Result<BtleRadio, LinkError> {
        let manager = Manager::new().await.map_err(adapter_err)?;
        let mut chosen = None;
        for a in manager.adapters().await.map_err(adapter_err)? {
            let info = a.adapter_info().await.unwrap_or_default();
            if adapter.is_none_or(|want| info.contains(want)) {
                chosen = Some(a);
                break;
            }
        }
        let adapter = chosen.ok_or_else(|| LinkError::Adapter("no Bluetooth adapter".into()))?;
        let events = adapter.events().await.map_err(adapter_err)?;
        // Only Nukis (normal and pairing mode): fewer events, fewer wake-ups.
        let filter = ScanFilter {
            services: vec![KEYTURNER_SERVICE, PAIRING_SERVICE],
        };
        adapter.start_scan(filter).await.map_err(adapter_err)?;
        let (seen, _) = broadcast::channel(64);
        let (gone, _) = broadcast::channel(16);
        tokio::spawn(watch(adapter.clone(), events, seen.clone(), gone.clone()));
        Ok(BtleRadio {
            adapter,
            seen,
            gone,
        })
    }

    async fn find(&self, address: &str) -> Result<Peripheral, LinkError> {
        loop {
            for p in self.adapter.peripherals().await.map_err(adapter_err)? {
                if p.address().to_string().eq_ignore_ascii_case(address) {
                    return Ok(p);
                }
            }
            // The caller's connect timeout ends the search.
            tokio::time::sleep(FIND_POLL).await;
        }
    }
}

/// Announces the address of every peripheral that advertises, and every
/// dropped connection.
async fn watch(
    adapter: Adapter,
    mut events: std::pin::Pin<Box<dyn futures::Stream<Item = CentralEvent> + Send>>,
    seen: broadcast::Sender<String>,
    gone: broadcast::Sender<PeripheralId>,
) {
    while let Some(ev) = events.next().await {
        let id = match ev {
            CentralEvent::DeviceDiscovered(id) | CentralEvent::DeviceUpdated(id) => id,
            CentralEvent::DeviceDisconnected(id) => {
                let _ = gone.send(id);
                continue;
            }
            _ => continue,
        };
        if let Ok(p) = adapter.peripheral(&id).await {
            let _ = seen.send(p.address().to_string());
        }
    }
}

#[async_trait]
impl Radio for BtleRadio {
    async fn connect(&self, address: &str) -> Result<Box<dyn Link>, LinkError> {
        let p = self.find(address).await?;
        if !p.is_connected().await.unwrap_or(false) {
            p.connect().await.map_err(connect_err)?;
        }
        p.discover_services().await.map_err(connect_err)?;
        let mut chars = HashMap::new();
        for c in p.characteristics() {
            if let Some(ch) = Channel::from_uuid(c.uuid) {
                chars.insert(ch, c);
            }
        }
        if chars.is_empty() {
            let _ = p.disconnect().await;
            return Err(LinkError::MissingCharacteristic);
        }
        let gone = self.gone.subscribe();
        // The stream first, then subscribe: nothing sent after can be missed.
        let notes = p.notifications().await.map_err(connect_err)?;
        for c in chars.values() {
            p.subscribe(c).await.map_err(connect_err)?;
        }
        Ok(Box::new(BtleLink {
            p,
            chars,
            notes: Box::pin(notes),
            gone,
            closed: false,
        }))
    }

    fn advertisements(&self) -> Option<broadcast::Receiver<String>> {
        Some(self.seen.subscribe())
    }
}

struct BtleLink {
    p: Peripheral,
    chars: HashMap<Channel, Characteristic>,
    notes: BoxStream<'static, ValueNotification>,
    gone: broadcast::Receiver<PeripheralId>,
    closed: bool,
}

impl Drop for BtleLink {
    /// A link dropped without `close` still lets the lock go.
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let p = self.p.clone();
            rt.spawn(async move {
                let _ = p.disconnect().await;
            });
        }
    }
}

#[async_trait]
impl Link for BtleLink {
    async fn write(&mut self, channel: Channel, bytes: &[u8]) -> Result<(), LinkError> {
        let c = self
            .chars
            .get(&channel)
            .ok_or(LinkError::MissingCharacteristic)?;
        match self.p.write(c, bytes, WriteType::WithResponse).await {
            Ok(()) => Ok(()),
            Err(e) if self.p.is_connected().await.unwrap_or(false) => {
                Err(LinkError::Adapter(e.to_string()))
            }
            Err(_) => Err(LinkError::Disconnected),
        }
    }

    async fn next_piece(&mut self) -> Result<(Channel, Vec<u8>), LinkError> {
        let me = self.p.id();
        loop {
            tokio::select! {
                n = self.notes.next() => match n {
                    Some(n) => {
                        if let Some(ch) = Channel::from_uuid(n.uuid) {
                            return Ok((ch, n.value));
                        }
                    }
                    None => return Err(LinkError::Disconnected),
                },
                id = self.gone.recv() => match id {
                    Ok(id) if id == me => return Err(LinkError::Disconnected),
                    Err(broadcast::error::RecvError::Closed) => return Err(LinkError::Disconnected),
                    _ => {}
                },
            }
        }
    }

    async fn close(&mut self) {
        self.closed = true;
        for c in self.chars.values() {
            let _ = self.p.unsubscribe(c).await;
        }
        let _ = self.p.disconnect().await;
    }
}
