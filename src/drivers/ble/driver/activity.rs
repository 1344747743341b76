//! What a Nuki says about itself, and moving its bolt.
//!
//! Battery first: a Nuki is a battery lock, so lockhub reads its state
//! (Keyturner States, one small exchange) only on a connection it opens
//! anyway (a batch, a lock action), when the lock comes back in range, or
//! when the radio reports that the lock signalled a change; and it reads the
//! activity log only when that state differs from the last seen, and only
//! the entries after the last one it read. The first read after a start
//! only learns where the log ends (nothing older is reported again).
//! Keypad entries carry the keypad code's id: the slot map turns it into
//! lockhub's slot (and so the access code).

use super::{BleDriver, LockEntry};
use crate::drivers::ble::nuki::states::{self, action, trigger, KeyturnerStates, LogEntry};
use crate::drivers::ble::session::{Credentials, Session, SessionError};
use crate::drivers::{DeniedReason, DriverError, LockEvent, LockMethod};

/// Log entries asked for in one request.
const LOG_PAGE: u16 = 20;
/// Most pages read in one go (a lock that logged a storm waits for next time).
const LOG_PAGES: usize = 5;

/// What lockhub last saw of a lock: its state (without the clock) and the
/// newest log index read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Seen {
    state: Option<[u8; 6]>,
    log_index: Option<u32>,
    battery: Option<u8>,
}

fn state_key(s: &KeyturnerStates) -> [u8; 6] {
    [
        s.lock_state,
        s.door_sensor,
        s.last_action,
        s.last_action_trigger,
        s.last_action_status,
        // The critical flag only: a level that drops 2 % is no reason to
        // read the log (the level is reported on its own).
        u8::from(s.battery().critical),
    ]
}

impl BleDriver {
    /// Lock Action; `Ok` once the lock said it is complete.
    pub(super) async fn lock_action(
        &self,
        device_id: &str,
        locked: bool,
    ) -> Result<(), DriverError> {
        let lock = self.entry(device_id)?;
        let _one = lock.busy.lock().await;
        let creds = self.credentials(&lock.address)?;
        let mut conn = self.open(lock, &creds).await?;
        let act = if locked { action::LOCK } else { action::UNLOCK };
        match conn.session.lock_action(act).await {
            Ok(()) => {
                self.observe_on(lock, &creds, &mut conn.session, false)
                    .await;
                self.park(lock, conn).await;
                Ok(())
            }
            Err(SessionError::Lock(e)) => {
                self.park(lock, conn).await;
                Err(e.into())
            }
            Err(e) => {
                // Not retried: the lock may have moved and only its reply was lost.
                conn.session.close().await;
                Err(e.into())
            }
        }
    }

    /// Connects (or reuses a lingering connection) to read what the lock
    /// says now. For a change the lock signalled, or its return in range.
    pub async fn refresh(&self, device_id: &str) -> Result<(), DriverError> {
        let lock = self.entry(device_id)?;
        let _one = lock.busy.lock().await;
        let creds = self.credentials(&lock.address)?;
        let mut conn = self.open(lock, &creds).await?;
        self.observe_on(lock, &creds, &mut conn.session, true).await;
        self.park(lock, conn).await;
        Ok(())
    }

    /// Reads the state, and the log when the state changed (or the lock
    /// `signalled` a change: a wrong code moves nothing); reports both.
    /// Failures only cost the report (the next connection reads again).
    pub(super) async fn observe_on(
        &self,
        lock: &LockEntry,
        creds: &Credentials,
        session: &mut Session,
        signalled: bool,
    ) {
        let s = match session.states().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(address = %lock.address, error = %e, "nuki state not read");
                return;
            }
        };
        let seen = self.seen(&lock.device_id);
        let device_id = lock.device_id.clone();
        // The log's entries (which say how the bolt moved) go before the
        // state (which does not), so a move is reported with its method.
        let bolt = s.locked().map(|locked| LockEvent::DoorLock {
            device_id: device_id.clone(),
            locked,
        });
        let battery = s.battery();
        if battery.percent.is_some() && battery.percent != seen.battery {
            self.emit(LockEvent::Battery {
                device_id: device_id.clone(),
                level: battery.percent.unwrap_or_default(),
            });
        }
        if !signalled && seen.state == Some(state_key(&s)) && seen.log_index.is_some() {
            if let Some(b) = bolt {
                self.emit(b);
            }
            self.note_battery(&device_id, battery.percent);
            return;
        }
        let mut index = seen.log_index;
        let mut news = Vec::new();
        for _ in 0..LOG_PAGES {
            let page = match session.log_entries(index, LOG_PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(address = %lock.address, error = %e, "nuki log not read");
                    if let Some(b) = bolt {
                        self.emit(b);
                    }
                    return;
                }
            };
            let first = index.is_none();
            let full = page.len() >= LOG_PAGE as usize;
            if let Some(last) = page.iter().map(|e| e.index).max() {
                index = Some(last);
            } else if first {
                index = Some(0);
            }
            if !first {
                news.extend(page);
            }
            if first || !full {
                break;
            }
        }
        for e in &news {
            if let Some(ev) = self.log_event(lock, creds, e) {
                self.emit(ev);
            }
        }
        if let Some(b) = bolt {
            self.emit(b);
        }
        if let Some(open) = s.door_open() {
            self.emit(LockEvent::Door {
                device_id: device_id.clone(),
                open,
            });
        }
        // The lock's critical battery flag (the engine reports it once).
        if battery.critical {
            self.emit(LockEvent::BatteryLow {
                device_id: device_id.clone(),
                critical: true,
            });
        }
        self.seen.lock().unwrap().insert(
            device_id,
            Seen {
                state: Some(state_key(&s)),
                log_index: index,
                battery: battery.percent,
            },
        );
    }

    fn note_battery(&self, device_id: &str, percent: Option<u8>) {
        if let Some(seen) = self.seen.lock().unwrap().get_mut(device_id) {
            seen.battery = percent;
        }
    }

    fn seen(&self, device_id: &str) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .get(device_id)
            .copied()
            .unwrap_or_default()
    }

    /// One log entry as the event it stands for (lockhub's own Lock Actions
    /// are reported by the engine).
    fn log_event(&self, lock: &LockEntry, creds: &Credentials, e: &LogEntry) -> Option<LockEvent> {
        let device_id = lock.device_id.clone();
        if let Some(k) = e.keypad() {
            let slot = self
                .slots
                .slots(&lock.address)
                .into_iter()
                .find(|(_, b)| b.id == Some(k.code_id))
                .map(|(slot, _)| slot);
            return match k.status {
                0x00 => Some(LockEvent::Operated {
                    device_id,
                    locked: matches!(k.action, action::LOCK | action::FULL_LOCK),
                    method: LockMethod::Keycode,
                    slot,
                }),
                states::INVALID_CODE => Some(LockEvent::AccessDenied {
                    device_id,
                    reason: DeniedReason::InvalidCode,
                    slot: None,
                }),
                _ => None,
            };
        }
        if let Some((act, trig, status)) = e.lock_action() {
            if status != 0x00 || (trig == trigger::SYSTEM && e.auth_id == creds.auth_id) {
                return None;
            }
            let method = match trig {
                trigger::MANUAL | trigger::BUTTON => LockMethod::Manual,
                trigger::AUTOMATIC | trigger::AUTO_LOCK => LockMethod::Automatic,
                _ => LockMethod::Unknown,
            };
            return Some(LockEvent::Operated {
                device_id,
                locked: matches!(act, action::LOCK | action::FULL_LOCK),
                method,
                slot: None,
            });
        }
        e.door().map(|open| LockEvent::Door { device_id, open })
    }
}
