//! Locking and unlocking a lock's door (Door Lock Operation Set).
//!
//! Supervised where the lock supports Supervision (its Success is the
//! confirmation); otherwise the Set is followed by an Operation Get, waited
//! on while the lock reports it is still moving (v3+ target mode and
//! duration), and the bolt's reported mode is the answer.

use super::cc::{door_lock, id};
use super::node::{Filter, Inner};
use super::slots::{prepare, release};
use crate::drivers::DriverError;
use std::sync::Arc;

/// Most Gets sent to see the bolt arrive (each after the duration it names).
const MAX_GETS: usize = 3;

pub(super) async fn set_locked(
    inner: &Arc<Inner>,
    node: u8,
    locked: bool,
) -> Result<(), DriverError> {
    let (guard, facts) = prepare(inner, node).await?;
    let result = async {
        if !facts.supports(id::DOOR_LOCK) {
            return Err(DriverError::Unsupported(
                "the lock has no Door Lock command class".into(),
            ));
        }
        let supervise = inner.config.use_supervision && facts.supports(id::SUPERVISION);
        let confirmed = inner
            .send_set(node, door_lock::operation_set(locked), supervise)
            .await
            .map_err(|e| match e {
                // `send_set` words a supervised failure for codes.
                DriverError::CodeRejected(_) => {
                    DriverError::Failed("the lock reported it could not move the bolt".into())
                }
                e => e,
            })?;
        if confirmed {
            return Ok(());
        }
        for _ in 0..MAX_GETS {
            let r = inner
                .request(
                    node,
                    door_lock::operation_get(),
                    (id::DOOR_LOCK, door_lock::OPERATION_REPORT),
                    Filter::Any,
                )
                .await?;
            let r = door_lock::parse_operation_report(&r)
                .map_err(|e| DriverError::Failed(e.to_string()))?;
            if r.locked() == Some(locked) {
                return Ok(());
            }
            match r.target {
                Some((target, duration))
                    if door_lock::OperationReport {
                        mode: target,
                        target: None,
                    }
                    .locked()
                        == Some(locked)
                        && duration != 0 =>
                {
                    // Still moving there: look again once it should have arrived.
                    let secs = door_lock::duration_secs(duration).min(30);
                    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
                }
                _ => break,
            }
        }
        Err(DriverError::Failed(format!(
            "the lock reports the door still {}",
            if locked { "unlocked" } else { "locked" }
        )))
    }
    .await;
    release(inner, node).await;
    drop(guard);
    result
}
