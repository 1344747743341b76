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
    #[error("paired, but the lock rejects the security PIN; the keys were not kept (pair again with the right PIN: that also removes the authorization \"{0}\" if the lock still lists it)")]
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
///
/// No authorization lockhub made is ever forgotten on the lock: one whose
/// security PIN check fails is removed again (with the PIN given, or that of
/// an earlier pairing); if the lock will not let it go, its id is kept in the
/// key store and removed by the next pairing with the right PIN, which also
/// removes the authorization it replaces.
pub async fn pair_with_progress(
    radio: &dyn Radio,
    address: &str,
    keys: &dyn KeyStore,
    opts: &PairOptions,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<u32, PairError> {
    let address = address.to_uppercase();
    let previous = keys.get(&address)?;
    progress(&format!("connecting to {address}"));
    let link = tokio::time::timeout(opts.timeout, radio.connect(&address))
        .await
        .unwrap_or(Err(LinkError::Timeout))?;
    progress("connected; exchanging keys (the lock must be in pairing mode)");
    let mut session = Session::new(link, opts.timeout, None);
    let app_id = rand::random::<u32>();
    let nonce: [u8; 32] = rand::random();
    let (mut pairing, mut out) = Pairing::new(PrivateKey::generate(), app_id, &opts.name, nonce)?;
    let paired = async {
        loop {
            let reply = session.exchange_plain(&out).await?;
            match pairing.on_message(&reply)? {
                Step::Send(m) => out = m,
                Step::Paired { auth_id, key } => break Ok::<_, PairError>((auth_id, key)),
            }
        }
    }
    .await;
    session.close().await;
    let (auth_id, key) = match paired {
        Ok(p) => p,
        Err(e) => {
            // The lock may have stored us though the last reply was lost.
            if let Some((auth_id, key)) = pairing.unconfirmed() {
                let creds = Credentials {
                    auth_id,
                    key,
                    security_pin: opts.security_pin,
                };
                undo(radio, &address, keys, opts, previous, creds).await?;
            }
            return Err(e);
        }
    };
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
    let mut session = connect(radio, &address, opts, creds.clone()).await?;
    let listed = session.list_codes().await;
    if let Err(e) = listed {
        session.close().await;
        let e = match e {
            SessionError::Lock(NukiError::BadPin) => PairError::WrongSecurityPin(opts.name.clone()),
            e => e.into(),
        };
        progress("the check failed; removing the new authorization from the lock");
        undo(radio, &address, keys, opts, previous, creds).await?;
        return Err(e);
    }
    progress("the security PIN is right; storing the keys");
    let mut stored = NukiCredentials {
        auth_id,
        shared_key: key,
        security_pin: Some(opts.security_pin),
        leftover: Vec::new(),
    };
    keys.put(&address, &stored)?;
    // What an earlier pairing left on the lock goes now.
    let replaced: Vec<u32> = previous
        .map(|p| std::iter::once(p.auth_id).chain(p.leftover).collect())
        .unwrap_or_default();
    for old in replaced.into_iter().filter(|&a| a != auth_id) {
        match session.remove_authorization(old).await {
            Ok(()) | Err(SessionError::Lock(NukiError::BadParameter)) => {
                progress(&format!("removed lockhub's earlier authorization {old}"));
            }
            Err(e) => {
                tracing::warn!(%address, auth_id = old, error = %e, "could not remove an earlier authorization; kept for the next pairing");
                stored.leftover.push(old);
            }
        }
    }
    session.close().await;
    if !stored.leftover.is_empty() {
        keys.put(&address, &stored)?;
    }
    Ok(auth_id)
}

async fn connect(
    radio: &dyn Radio,
    address: &str,
    opts: &PairOptions,
    creds: Credentials,
) -> Result<Session, PairError> {
    let link = tokio::time::timeout(opts.timeout, radio.connect(address))
        .await
        .unwrap_or(Err(LinkError::Timeout))?;
    Ok(Session::new(link, opts.timeout, Some(creds)))
}

/// Takes a new authorization whose check failed off the lock: through itself
/// (the PIN given may be right, the check failing for another reason), else
/// through an earlier pairing's. When neither can, its id is kept for the
/// next pairing (in the earlier entry, or as an entry with no PIN, which the
/// driver does not use).
async fn undo(
    radio: &dyn Radio,
    address: &str,
    keys: &dyn KeyStore,
    opts: &PairOptions,
    previous: Option<NukiCredentials>,
    new: Credentials,
) -> Result<(), PairError> {
    let earlier = previous.as_ref().and_then(|p| {
        Some(Credentials {
            auth_id: p.auth_id,
            key: p.shared_key.clone(),
            security_pin: p.security_pin?,
        })
    });
    for via in std::iter::once(new.clone()).chain(earlier) {
        let Ok(mut session) = connect(radio, address, opts, via).await else {
            continue;
        };
        let removed = session.remove_authorization(new.auth_id).await;
        session.close().await;
        if removed.is_ok() {
            tracing::info!(%address, auth_id = new.auth_id, "removed the authorization whose check failed");
            return Ok(());
        }
    }
    tracing::warn!(%address, auth_id = new.auth_id, "the lock keeps an authorization lockhub could not remove; the next pairing removes it");
    let kept = match previous {
        Some(mut p) => {
            p.leftover.push(new.auth_id);
            p
        }
        None => NukiCredentials {
            auth_id: new.auth_id,
            shared_key: new.key,
            security_pin: None,
            leftover: Vec::new(),
        },
    };
    keys.put(address, &kept)?;
    Ok(())
}
