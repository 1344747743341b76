//! Remote lock/unlock: carrying out the action attempts `locks/lock_door` and
//! `locks/unlock_door` recorded, one lock at a time and in the order they
//! came, and answering each command once its lock confirmed (or did not).
//!
//! An attempt is not carried out once it is older than [`MAX_AGE`] (after a
//! restart, say): unlocking a door minutes after it was asked is worse than
//! saying it was not done. Everything an attempt ends with (its status, the
//! command's answer, `lock.locked` / `lock.unlocked` with `method: seamapi`,
//! the device's state) is one transaction.

use super::observe::bolt_event;
use super::Engine;
use crate::commands::{action_reply, ErrorKind};
use crate::drivers::{DriverError, LockMethod};
use crate::model::Event;
use crate::store::{ActionAttempt, StoreError, Tx};
use std::sync::Arc;
use std::time::Duration;

/// Longest an attempt may wait before it is carried out.
pub const MAX_AGE: chrono::Duration = chrono::Duration::seconds(60);

/// Longest lockhub waits for a lock to confirm a lock/unlock.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a move lockhub made (or a report that said how the bolt moved)
/// explains a later report of the same move that does not say how.
pub(super) const SAME_MOVE: Duration = Duration::from_secs(10);

/// A lock/unlock lockhub is carrying out: the lock may report the bolt's
/// move before it confirms the command, and that report is the same move.
#[derive(Debug, Clone, Copy)]
pub(super) struct InFlight {
    locked: bool,
    /// The lock reported the move while lockhub waited for its answer.
    seen: bool,
}

impl Engine {
    /// The bolt of `device_id` moved (to `locked`) and that was reported with
    /// its method.
    pub(super) fn note_move(&self, device_id: &str, locked: bool) {
        self.moves
            .lock()
            .unwrap()
            .insert(device_id.to_owned(), (locked, tokio::time::Instant::now()));
    }

    /// Whether a move to `locked` was reported (or made) moments ago, or is
    /// the one lockhub is making right now (then noted as seen: the attempt's
    /// end tells of it).
    pub(super) fn moved_recently(&self, device_id: &str, locked: bool) -> bool {
        if let Some(f) = self.moving.lock().unwrap().get_mut(device_id) {
            if f.locked == locked {
                f.seen = true;
                return true;
            }
        }
        self.moves
            .lock()
            .unwrap()
            .get(device_id)
            .is_some_and(|(l, at)| *l == locked && at.elapsed() < SAME_MOVE)
    }

    /// Waits for attempts (woken by commands, and once a second for ones
    /// left by a previous run) and starts one worker per lock that has some.
    pub(super) async fn action_loop(self: Arc<Self>) {
        // No timer: the first pass picks up what an earlier run left, and every
        // new attempt comes with a wake (`notify_one` keeps one for a loop that
        // is busy). A timer here cost a store read a second: 31 million over a
        // year on paused time.
        loop {
            let pending = match self.store.read(|tx| tx.pending_action_attempts()) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read pending lock actions");
                    Vec::new()
                }
            };
            for a in pending {
                let fresh = self.acting.lock().unwrap().insert(a.device_id.clone());
                if fresh {
                    let me = self.clone();
                    self.tasks
                        .spawn(async move { me.act_on(a.device_id).await });
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = self.actions_due.notified() => {}
            }
        }
    }

    /// Carries out one lock's pending attempts, oldest first.
    async fn act_on(self: Arc<Self>, device_id: String) {
        loop {
            let next = self.store.read(|tx| {
                Ok(tx
                    .pending_action_attempts()?
                    .into_iter()
                    .find(|a| a.device_id == device_id))
            });
            let Ok(Some(a)) = next else { break };
            let locked = a.action_type == "LOCK_DOOR";
            self.moving.lock().unwrap().insert(
                device_id.clone(),
                InFlight {
                    locked,
                    seen: false,
                },
            );
            let outcome = self.carry_out(&a).await;
            let seen = self
                .moving
                .lock()
                .unwrap()
                .remove(&device_id)
                .is_some_and(|f| f.seen);
            if let Err(e) = self.store.write(|tx| self.finish(tx, &a, &outcome, seen)) {
                tracing::error!(action_attempt_id = %a.action_attempt_id, error = %e, "could not record a lock action");
                break;
            }
            if self.shutdown.is_cancelled() {
                break;
            }
        }
        self.acting.lock().unwrap().remove(&device_id);
        // One may have come while the last was being recorded.
        self.actions_due.notify_one();
    }

    async fn carry_out(&self, a: &ActionAttempt) -> Result<(), (ErrorKind, String)> {
        let locked = a.action_type == "LOCK_DOOR";
        if self.clock.now() - a.created_at > MAX_AGE {
            return Err((
                ErrorKind::LockDidNotConfirm,
                "not carried out: the request waited too long (was the hub restarted?)".into(),
            ));
        }
        let Some(driver) = self.driver_for(&a.device_id) else {
            return Err((
                ErrorKind::DeviceOffline,
                "no radio serves this lock right now".into(),
            ));
        };
        let r = tokio::select! {
            r = tokio::time::timeout(CONFIRM_TIMEOUT, driver.set_locked(&a.device_id, locked)) => r,
            _ = self.shutdown.cancelled() => {
                return Err((ErrorKind::LockDidNotConfirm, "the hub stopped before the lock confirmed".into()));
            }
        };
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(DriverError::Offline)) => {
                Err((ErrorKind::DeviceOffline, "the lock is offline".into()))
            }
            Ok(Err(DriverError::Unsupported(m))) => Err((ErrorKind::UnsupportedByDevice, m)),
            Ok(Err(e)) => Err((ErrorKind::LockDidNotConfirm, e.to_string())),
            Err(_) => Err((
                ErrorKind::LockDidNotConfirm,
                "the lock did not confirm in time".into(),
            )),
        }
    }

    fn finish(
        &self,
        tx: &Tx<'_>,
        a: &ActionAttempt,
        outcome: &Result<(), (ErrorKind, String)>,
        seen: bool,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let locked = a.action_type == "LOCK_DOOR";
        let mut done = a.clone();
        match outcome {
            Ok(()) => {
                done.status = "success".into();
                tracing::info!(device_id = %a.device_id, action = %a.action_type, "lock confirmed the action");
            }
            Err((kind, message)) => {
                done.status = "error".into();
                done.error = Some((kind.as_str().to_owned(), message.clone()));
                tracing::info!(device_id = %a.device_id, action = %a.action_type, error = %message, "lock action failed");
            }
        }
        tx.finish_action_attempt(
            &a.action_attempt_id,
            done.error.as_ref().map(|(t, m)| (t.as_str(), m.as_str())),
        )?;
        let body = serde_json::to_string(&action_reply(&done))?;
        let command = if locked {
            "locks/lock_door"
        } else {
            "locks/unlock_door"
        };
        tx.save_response(&a.request_id, command, &body, a.fingerprint.as_deref(), now)?;
        tx.publish_reply(
            &format!("responses/{}", a.request_id),
            body.as_bytes(),
            a.reply_to.as_ref(),
        )?;
        if outcome.is_ok() {
            self.note_move(&a.device_id, locked);
            tx.set_locked(&a.device_id, locked, now)?;
            tx.event(
                &Event::device(bolt_event(locked), &a.device_id, now)
                    .with("method", LockMethod::Seamapi.as_str())
                    .with("action_attempt_id", a.action_attempt_id.clone()),
            )?;
            self.publish_device(tx, &a.device_id)?;
        } else if seen {
            // The lock reported the bolt's move, yet did not confirm the
            // command: it moved, and lockhub cannot say it was its doing.
            self.note_move(&a.device_id, locked);
            tx.event(
                &Event::device(bolt_event(locked), &a.device_id, now)
                    .with("method", LockMethod::Unknown.as_str()),
            )?;
        }
        tx.audit(
            "lock_action",
            &serde_json::json!({"device_id": a.device_id, "action_type": a.action_type, "status": done.status}),
            now,
        )?;
        Ok(())
    }
}
