//! Pairing a Nuki from the installer page: the same "Authorize App" as
//! `lockhub ble pair`, run as a job whose steps the page shows as they happen.
//! It opens its own handle on the Bluetooth adapter (BlueZ serves several),
//! so it needs nothing from the running Nuki driver.

use crate::drivers::ble::btle::BtleRadio;
use crate::drivers::ble::keys::FileKeyStore;
use crate::drivers::ble::nuki::keypad::SecurityPin;
use crate::drivers::ble::pair::{pair_with_progress, PairOptions};
use crate::jobs::JobHandle;
use std::path::PathBuf;
use std::time::Duration;

/// What pairing needs from `[ble]`.
#[derive(Debug, Clone)]
pub struct BlePairer {
    pub adapter: Option<String>,
    pub keys_file: PathBuf,
    pub timeout: Duration,
}

impl BlePairer {
    /// `None` unless `[ble] enabled`.
    pub fn of(cfg: &crate::config::Config) -> Option<Self> {
        cfg.ble.enabled.then(|| BlePairer {
            adapter: cfg.ble.adapter().map(str::to_owned),
            keys_file: cfg.ble.keys_file.clone(),
            timeout: Duration::from_secs(20),
        })
    }

    /// Pair with `address`; every step goes to `job`, the outcome ends it.
    pub async fn run(self, job: JobHandle, address: String, name: String, pin: SecurityPin) {
        let outcome = async {
            job.progress("opening the Bluetooth adapter");
            let radio = BtleRadio::open(self.adapter.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let keys = FileKeyStore::new(&self.keys_file);
            let opts = PairOptions {
                name,
                security_pin: pin,
                timeout: self.timeout,
            };
            let auth_id = pair_with_progress(&radio, &address, &keys, &opts, &|l| job.progress(l))
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(format!(
                "paired with {address} (authorization {auth_id}); keys in {}. Add it under [[ble.locks]] and restart lockhub.",
                self.keys_file.display()
            ))
        }
        .await;
        match &outcome {
            Ok(_) => tracing::info!(%address, "installer page: paired"),
            Err(e) => tracing::warn!(%address, error = %e, "installer page: pairing failed"),
        }
        job.finish(outcome);
    }
}
