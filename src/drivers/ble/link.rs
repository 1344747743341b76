//! The seam between the Nuki protocol and a radio: a [`Radio`] connects to a
//! lock by its BLE address and hands back a [`Link`] that writes whole
//! messages to a characteristic and yields indication pieces as they come.
//! btleplug is one radio ([`super::btle`]); an in-process fake lock with
//! injected faults is another ([`super::memory`]), so everything above this
//! line is tested without Bluetooth.

use crate::drivers::DriverError;
use async_trait::async_trait;
use uuid::Uuid;

/// Pairing service (advertised while the lock is in pairing mode).
pub const PAIRING_SERVICE: Uuid = Uuid::from_u128(0xa92ee100_5501_11e4_916c_0800200c9a66);
/// Pairing general data input/output: unencrypted messages.
pub const PAIRING_GDIO: Uuid = Uuid::from_u128(0xa92ee101_5501_11e4_916c_0800200c9a66);
/// Keyturner service.
pub const KEYTURNER_SERVICE: Uuid = Uuid::from_u128(0xa92ee200_5501_11e4_916c_0800200c9a66);
/// Keyturner user-specific data input/output: encrypted messages.
pub const KEYTURNER_USDIO: Uuid = Uuid::from_u128(0xa92ee202_5501_11e4_916c_0800200c9a66);

/// Which characteristic a message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Unencrypted pairing messages.
    Pairing,
    /// Encrypted keyturner commands.
    Keyturner,
}

impl Channel {
    pub fn uuid(self) -> Uuid {
        match self {
            Channel::Pairing => PAIRING_GDIO,
            Channel::Keyturner => KEYTURNER_USDIO,
        }
    }

    pub fn from_uuid(u: Uuid) -> Option<Channel> {
        match u {
            PAIRING_GDIO => Some(Channel::Pairing),
            KEYTURNER_USDIO => Some(Channel::Keyturner),
            _ => None,
        }
    }
}

/// What went wrong below the protocol. Never carries payload bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("no lock with address {0} is in range")]
    NotFound(String),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("the lock does not offer the Nuki characteristics")]
    MissingCharacteristic,
    #[error("the connection dropped")]
    Disconnected,
    #[error("the lock did not answer in time")]
    Timeout,
    #[error("the Bluetooth adapter failed: {0}")]
    Adapter(String),
}

impl From<LinkError> for DriverError {
    fn from(e: LinkError) -> DriverError {
        match e {
            LinkError::NotFound(_) | LinkError::Connect(_) | LinkError::Disconnected => {
                DriverError::Offline
            }
            LinkError::Timeout => DriverError::Timeout,
            LinkError::MissingCharacteristic => {
                DriverError::Failed("the device is not a Nuki smart lock".into())
            }
            LinkError::Adapter(m) => DriverError::Failed(format!("Bluetooth adapter: {m}")),
        }
    }
}

/// A Bluetooth adapter (or a stand-in for one).
#[async_trait]
pub trait Radio: Send + Sync + 'static {
    /// Connects to the lock, resolves its services and subscribes to
    /// indications on both channels before returning, so no reply to the
    /// first write can be missed.
    async fn connect(&self, address: &str) -> Result<Box<dyn Link>, LinkError>;

    /// Addresses of devices as they advertise (a lock in range again), where
    /// the radio can tell.
    fn advertisements(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }

    /// Addresses of locks that signalled a change of their state or log
    /// (read then), where the radio can tell. The btleplug radio cannot yet
    /// (it would need the Nuki beacon's change flag).
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }

    /// Whether the adapter is usable (`Some(true)`), absent or lost
    /// (`Some(false)`: every link ended, the locks are out of reach until
    /// they advertise again), or not known yet, where the radio can tell.
    fn adapter_up(&self) -> Option<tokio::sync::watch::Receiver<Option<bool>>> {
        None
    }
}

/// One open connection to one lock.
#[async_trait]
pub trait Link: Send {
    /// Writes one whole message (the radio splits it as the MTU needs).
    async fn write(&mut self, channel: Channel, bytes: &[u8]) -> Result<(), LinkError>;
    /// The next indication piece, in arrival order. `Err(Disconnected)` once
    /// the connection is gone; the caller applies its own timeout.
    async fn next_piece(&mut self) -> Result<(Channel, Vec<u8>), LinkError>;
    /// Closes the connection (also done on drop, less politely).
    async fn close(&mut self);
}
