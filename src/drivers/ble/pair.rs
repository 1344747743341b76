//! Pairing with a Nuki in pairing mode ("Authorize App", section 9 of the
//! spec) over any [`Radio`], then checking the security PIN with a harmless
//! keypad listing before anything is stored. Keys go to the [`KeyStore`]
//! only; nothing here logs a key or the PIN.

use super::keys::{KeyStore, KeyStoreError, NukiCredentials};
use super::link::{LinkError, Radio};
use super::nuki::keypad::SecurityPin;
use super::nuki::pairing::{Pairing, PairingError, Step};
use super::nuki::{NukiError, PrivateKey};
use super::session::{Credentials, Session, SessionError};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct PairOptions {
    /// How the lock lists lockhub among its users (up to 32 bytes).
    pub name: String,
    pub security_pin: SecurityPin,
    /// Bounds the connect and each reply.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("pairing failed: {0} (is the lock in pairing mode? hold its button for 5 s)")]
    Pairing(#[from] PairingError),
    #[error("paired, but the lock rejects the security PIN; nothing was stored (remove the authorization \"{0}\" in the Nuki app and pair again with the right PIN)")]
    WrongSecurityPin(String),
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
}

/// Pairs with the lock at `address` and stores its credentials; returns the
/// authorization id the lock gave lockhub.
pub async fn pair(
    radio: &dyn Radio,
    address: &str,
    keys: &dyn KeyStore,
    opts: &PairOptions,
) -> Result<u32, PairError> {
    pair_with_progress(radio, address, keys, opts, &|_| {}).await
}

/// [`pair`], saying each step as it begins (for a person watching: the CLI,
/// the installer page). The lines never hold a key or the PIN.
pub async fn pair_with_progress(
    radio: &dyn Radio,
    address: &str,
    keys: &dyn KeyStore,
    opts: &PairOptions,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<u32, PairError> {
    let address = address.to_uppercase();
    progress(&format!("connecting to {address}"));
    let link = tokio::time::timeout(opts.timeout, radio.connect(&address))
        .await
        .unwrap_or(Err(LinkError::Timeout))?;
    progress("connected; exchanging keys (the lock must be in pairing mode)");
    let mut session = Session::new(link, opts.timeout, None);
    let app_id = rand::random::<u32>();
    let nonce: [u8; 32] = rand::random();
    let (mut pairing, mut out) = Pairing::new(PrivateKey::generate(), app_id, &opts.name, nonce)?;
    let (auth_id, key) = loop {
        let reply = session.exchange_plain(&out).await?;
        match pairing.on_message(&reply)? {
            Step::Send(m) => out = m,
            Step::Paired { auth_id, key } => break (auth_id, key),
        }
    };
    session.close().await;
    tracing::info!(%address, auth_id, "paired with the nuki");
    progress(&format!(
        "paired: the lock gave authorization {auth_id}; checking the security PIN"
    ));

    // A keypad listing proves the security PIN before it is kept.
    let creds = Credentials {
        auth_id,
        key: key.clone(),
        security_pin: opts.security_pin,
    };
    let link = tokio::time::timeout(opts.timeout, radio.connect(&address))
        .await
        .unwrap_or(Err(LinkError::Timeout))?;
    let mut session = Session::new(link, opts.timeout, Some(creds));
    let listed = session.list_codes().await;
    session.close().await;
    match listed {
        Ok(_) => {}
        Err(SessionError::Lock(NukiError::BadPin)) => {
            return Err(PairError::WrongSecurityPin(opts.name.clone()))
        }
        Err(e) => return Err(e.into()),
    }
    progress("the security PIN is right; storing the keys");
    keys.put(
        &address,
        &NukiCredentials {
            auth_id,
            shared_key: key,
            security_pin: Some(opts.security_pin),
        },
    )?;
    Ok(auth_id)
}
