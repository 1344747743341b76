//! What locks report on their own: online/offline, how the bolt moved (and
//! with which code), refusals at the keypad, the door sensor, tampering,
//! battery, and slots that changed at the lock. A changed slot of a managed code is an
//! external modification: honoured (warning) or put back (error, then re-set)
//! as the code's `is_external_modification_allowed` says.

use super::Engine;
use crate::commands::battery_state;
use crate::drivers::{LockEvent, LockMethod, SlotCode, SlotRead};
use crate::model::{Event, Issue};
use crate::store::{StoreError, Tx};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

/// Battery level under which `device.low_battery` is reported (once per crossing).
const LOW_BATTERY: u8 = 20;

/// Record one lock event. Returns whether the lock's reconciler should run.
pub(super) fn lock_event(engine: &Engine, tx: &Tx<'_>, ev: &LockEvent) -> Result<bool, StoreError> {
    let now = engine.clock.now();
    let id = ev.device_id();
    if tx.device(id)?.is_none() {
        tracing::debug!(
            device_id = id,
            "event from a lock lockhub does not know; ignored"
        );
        return Ok(false);
    }
    match ev {
        LockEvent::Discovered(_) => Ok(true),
        LockEvent::Online { .. } => {
            // Only a lock coming back wakes its reconciler (and ends its
            // backoff): a radio that says "online" at every advertisement
            // must not turn a failing lock's backoff into a loop.
            let back = tx.set_device_online(id, true)?;
            if back {
                tx.event(&Event::device("device.connected", id, now))?;
                engine.publish_device(tx, id)?;
            }
            Ok(back)
        }
        LockEvent::Offline { .. } => {
            if tx.set_device_online(id, false)? {
                tx.event(&Event::device("device.disconnected", id, now))?;
                engine.publish_device(tx, id)?;
            }
            Ok(false)
        }
        LockEvent::Operated {
            locked,
            method,
            slot,
            ..
        } => {
            let changed = tx.set_locked(id, *locked, now)?;
            // A radio report of the move lockhub itself just made (or one the
            // lock's own state report already told) is the same move.
            if *method == LockMethod::Unknown && engine.moved_recently(id, *locked) {
                if changed {
                    engine.publish_device(tx, id)?;
                }
                return Ok(false);
            }
            engine.note_move(id, *locked);
            let mut e = Event::device(bolt_event(*locked), id, now).with("method", method.as_str());
            let mut used = None;
            if let Some(slot) = slot {
                let managed = name_code(tx, &mut e, id, *slot)?;
                if !*locked {
                    last_code_used(tx, id, &e, managed.as_ref(), now)?;
                }
                if let Some(c) = managed {
                    if !*locked {
                        let uses = tx.set_code_used(&c.access_code_id, now)?;
                        crate::commands::publish_code_state(tx, &c, now, &engine.settings)?;
                        used = Some((c, uses));
                    }
                }
            }
            tx.event(&e)?;
            if changed {
                engine.publish_device(tx, id)?;
            }
            // A code with a use limit goes at its last use (`is_one_time_use`:
            // the first; lockhub's `max_uses`: the Nth the lock reported).
            match used {
                Some((c, uses)) if !c.deleted => match tx.use_limit(&c.access_code_id)? {
                    Some(max) if uses >= max => {
                        used_up(engine, tx, c, max, now)?;
                        Ok(true)
                    }
                    _ => Ok(false),
                },
                _ => Ok(false),
            }
        }
        LockEvent::AccessDenied { reason, slot, .. } => {
            let mut e =
                Event::device("lock.access_denied", id, now).with("reason", reason.as_str());
            if let Some(slot) = slot {
                name_code(tx, &mut e, id, *slot)?;
            }
            tx.event(&e)?;
            Ok(false)
        }
        LockEvent::Door { open, .. } => {
            if tx.set_door_open(id, *open, now)? {
                let ev = if *open {
                    "lock.door_opened"
                } else {
                    "lock.door_closed"
                };
                tx.event(&Event::device(ev, id, now))?;
                engine.publish_device(tx, id)?;
            }
            Ok(false)
        }
        LockEvent::Tampered { .. } => {
            tx.event(&Event::device("device.tampered", id, now))?;
            Ok(false)
        }
        LockEvent::SlotChanged { slot, code, .. } => {
            absorb(engine, tx, id, *slot, code.as_ref(), now)?;
            tx.confirm_slot(id, *slot, code.as_ref().map(|c| &c.code))?;
            engine.publish_device(tx, id)?;
            Ok(true)
        }
        LockEvent::SlotsMayHaveChanged { .. } => {
            tx.set_slots_known(id, false)?;
            Ok(true)
        }
        LockEvent::Battery { level, .. } => {
            let level = (*level).min(100);
            let before = tx.device(id)?.and_then(|d| d.battery_level);
            let warning = tx.lock_state(id)?.battery_warning;
            // A level of 20 % or more ends the lock's own warning (new batteries).
            let clears = warning.is_some() && level >= LOW_BATTERY;
            if before == Some(level) && !clears {
                return Ok(false);
            }
            tx.set_device_battery(id, level)?;
            if clears {
                tx.set_battery_warning(id, None, now)?;
            }
            let after = if clears { None } else { warning.as_deref() };
            battery_events(
                tx,
                id,
                now,
                Some(level),
                battery_state(before, warning.as_deref()),
                battery_state(Some(level), after),
            )?;
            engine.publish_device(tx, id)?;
            Ok(false)
        }
        LockEvent::BatteryLow { critical, .. } => {
            let new = if *critical { "critical" } else { "low" };
            let warning = tx.lock_state(id)?.battery_warning;
            // Said again (locks repeat it at each operation), or less than
            // the lock already said: nothing new.
            if warning.as_deref() == Some(new) || warning.as_deref() == Some("critical") {
                return Ok(false);
            }
            let level = tx.device(id)?.and_then(|d| d.battery_level);
            tx.set_battery_warning(id, Some(new), now)?;
            battery_events(
                tx,
                id,
                now,
                level,
                battery_state(level, warning.as_deref()),
                battery_state(level, Some(new)),
            )?;
            engine.publish_device(tx, id)?;
            Ok(false)
        }
        LockEvent::DoorLock { locked, .. } => {
            let before = tx.lock_state(id)?.locked;
            if before == Some(*locked) {
                return Ok(false);
            }
            tx.set_locked(id, *locked, now)?;
            // The bolt moved and nothing said how: `method: unknown`, unless
            // a report that said how came just before (or this is the first
            // the lock told of its bolt: state, not a move).
            if before.is_some() && !engine.moved_recently(id, *locked) {
                engine.note_move(id, *locked);
                tx.event(
                    &Event::device(bolt_event(*locked), id, now)
                        .with("method", LockMethod::Unknown.as_str()),
                )?;
            }
            engine.publish_device(tx, id)?;
            Ok(false)
        }
    }
}

/// A code opened its lock for the last time its limit allows (one use for
/// `is_one_time_use`, `max_uses` for lockhub's use counts): it goes, as
/// `access_codes/delete` would take it (the reconciler clears its slot).
fn used_up(
    engine: &Engine,
    tx: &Tx<'_>,
    mut c: crate::model::AccessCode,
    max_uses: u32,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    c.deleted = true;
    c.retry = Default::default();
    let (message, reason) = if max_uses == 1 {
        (
            "a one-time code was used: it is being removed from the lock".to_owned(),
            "one_time_use",
        )
    } else {
        (
            format!(
                "the code was used {max_uses} times (max_uses): it is being removed from the lock"
            ),
            "max_uses",
        )
    };
    c.raise_warning(Issue::new("being_deleted", message, now));
    tracing::info!(access_code_id = %c.access_code_id, max_uses, "code used up; removing it");
    tx.event(&Event::code("access_code.deleted", &c, now).with("reason", reason))?;
    engine.commit_code(tx, &mut c, now)
}

/// `device.battery_status_changed` when the battery's status changed, and
/// `device.low_battery` once when it became low or critical; the level (0 to
/// 1) where the lock ever reported one, else `null` (a warning alone).
fn battery_events(
    tx: &Tx<'_>,
    id: &str,
    now: DateTime<Utc>,
    level: Option<u8>,
    before: Option<&'static str>,
    after: Option<&'static str>,
) -> Result<(), StoreError> {
    let Some(status) = after.filter(|a| Some(*a) != before) else {
        return Ok(());
    };
    let fraction = level.map(|l| f64::from(l) / 100.0);
    tx.event(
        &Event::device("device.battery_status_changed", id, now)
            .with("battery_level", fraction)
            .with("battery_status", status),
    )?;
    let low = |s: Option<&str>| matches!(s, Some("low" | "critical"));
    if low(after) && !low(before) {
        tx.event(
            &Event::device("device.low_battery", id, now)
                .with("battery_level", fraction)
                .with("battery_status", status),
        )?;
    }
    Ok(())
}

pub(super) fn bolt_event(locked: bool) -> &'static str {
    if locked {
        "lock.locked"
    } else {
        "lock.unlocked"
    }
}

/// Puts the code in `slot` on the event: a managed code's `access_code_id`
/// and `common_code_key`, or an unmanaged code's id (`access_code_is_managed`
/// says which). Returns the managed code.
/// `last_code_used/{id}` (retained; lockhub's addition): the code
/// that last opened the lock, by id and name, never its PIN.
fn last_code_used(
    tx: &Tx<'_>,
    id: &str,
    e: &Event,
    managed: Option<&crate::model::AccessCode>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut body = serde_json::json!({
        "device_id": id,
        "access_code_id": e.access_code_id,
        "name": managed.and_then(|c| c.name.clone()),
        "is_managed": managed.is_some(),
        "used_at": crate::model::access_code::ts(now),
    });
    if managed.is_none() {
        body["slot"] = e.extra.get("slot").cloned().unwrap_or_default();
    }
    tx.set_last_code_used(id, &body, now)?;
    tx.publish(
        &format!("last_code_used/{id}"),
        &serde_json::to_vec(&body)?,
        true,
    )
}

fn name_code(
    tx: &Tx<'_>,
    e: &mut Event,
    id: &str,
    slot: u32,
) -> Result<Option<crate::model::AccessCode>, StoreError> {
    match tx
        .codes_for_device(id)?
        .into_iter()
        .find(|c| c.slot == slot)
    {
        Some(c) => {
            e.access_code_id = Some(c.access_code_id.clone());
            e.common_code_key = c.common_code_key.clone();
            e.extra
                .insert("access_code_is_managed".into(), serde_json::json!(true));
            Ok(Some(c))
        }
        None => {
            e.extra.insert("slot".into(), serde_json::json!(slot));
            e.extra
                .insert("is_managed".into(), serde_json::json!(false));
            e.extra
                .insert("access_code_is_managed".into(), serde_json::json!(false));
            if let Some(u) = tx.unmanaged_in_slot(id, slot)? {
                e.access_code_id = Some(u.access_code_id);
            }
            Ok(None)
        }
    }
}

/// An unmanaged code appeared in, changed in, or left a slot: it gets an id
/// when first seen, and its events carry that id (`access_code_id`).
fn unmanaged_changed(
    tx: &Tx<'_>,
    id: &str,
    slot: u32,
    was: bool,
    is: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if was {
        // Gone, or replaced by another code: the old one is removed.
        if let Some(u) = tx.unmanaged_in_slot(id, slot)? {
            tx.forget_unmanaged(id, slot)?;
            let mut e = Event::device("access_code.unmanaged.removed", id, now).with("slot", slot);
            e.access_code_id = Some(u.access_code_id);
            tx.event(&e)?;
        }
    }
    if is {
        tx.forget_unmanaged(id, slot)?;
        let u = tx.ensure_unmanaged(id, slot, now)?;
        let mut e = Event::device("access_code.unmanaged.created", id, now).with("slot", slot);
        e.access_code_id = Some(u.access_code_id);
        tx.event(&e)?;
    }
    Ok(())
}

/// Everything a lock reported when its slots were read. A read that
/// stopped part way tells only of the slots it read: the others stay as
/// lockhub last knew them, and the lock's slots are not known yet.
pub(super) fn absorb_read(
    engine: &Engine,
    tx: &Tx<'_>,
    id: &str,
    read: &SlotRead,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let slots = &read.slots;
    let mut known: BTreeSet<u32> = tx.observed(id)?.iter().map(|s| s.slot).collect();
    known.extend(tx.issued(id)?.into_iter().map(|(slot, _)| slot));
    let reported: BTreeSet<u32> = slots.iter().map(|s| s.slot).collect();
    for slot in known.union(&reported).filter(|s| read.knows(**s)) {
        let content = slots.iter().find(|s| s.slot == *slot);
        absorb(engine, tx, id, *slot, content, now)?;
        // What the lock holds is now known: other PINs lockhub may have put there are gone.
        tx.confirm_slot(id, *slot, content.map(|c| &c.code))?;
    }
    if read.partial.is_none() {
        tx.set_slots_known(id, true)?;
    }
    engine.publish_device(tx, id)
}

/// One slot's content as the lock reports it, compared with what lockhub knew.
fn absorb(
    engine: &Engine,
    tx: &Tx<'_>,
    id: &str,
    slot: u32,
    content: Option<&SlotCode>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let before = tx.observed(id)?.into_iter().find(|s| s.slot == slot);
    if before.as_ref().map(|b| (&b.code, &b.window)) == content.map(|c| (&c.code, &c.window)) {
        return Ok(());
    }
    let owner = tx
        .codes_for_device(id)?
        .into_iter()
        .find(|c| c.slot == slot);
    // A PIN lockhub sent to this slot (perhaps for a code since changed or
    // deleted, or just before a crash): its own, never a stranger's.
    let issued = match content {
        Some(x) => tx.was_issued(id, slot, &x.code)?,
        None => false,
    };
    let Some(mut c) = owner else {
        tx.set_observed(id, slot, content)?;
        if issued {
            // No code wants it any more: the engine takes it off (`Issued::settle`).
            tracing::info!(
                slot,
                "found a PIN lockhub had put on the lock; taking it off"
            );
            return Ok(());
        }
        if let Some(b) = &before {
            // The lock held this PIN: never chosen for it again for a while.
            tx.record_pin_held(id, &b.code, now)?;
        }
        return unmanaged_changed(tx, id, slot, before.is_some(), content.is_some(), now);
    };
    let timing = engine.settings.timing();
    let ours = content.is_some_and(|x| x.code == c.code) || issued;
    let landed = match (c.wanted_on_lock(now, &timing), content) {
        (true, Some(x)) => c.held_by(x),
        (false, None) => true,
        _ => false,
    };
    if landed || ours || (content.is_none() && !c.ever_set) {
        // Our own operation (perhaps one that landed just before a crash), or
        // a stranger leaving a slot we reserved.
        tx.set_observed(id, slot, content)?;
        if ours && !c.ever_set {
            c.ever_set = true;
            engine.commit_code(tx, &mut c, now)?;
        }
        return Ok(());
    }
    if !c.ever_set {
        // A stranger's code sits in the slot we reserved: our code gives the
        // slot up and takes another when the slot step next runs.
        tx.set_observed(id, slot, content)?;
        tracing::info!(
            slot,
            "reserved slot held a code lockhub did not set; moving"
        );
        c.slot = crate::model::access_code::NO_SLOT;
        unmanaged_changed(tx, id, slot, false, content.is_some(), now)?;
        return engine.commit_code(tx, &mut c, now);
    }
    // Changed at the lock itself.
    let change_type = if content.is_none() {
        "removed"
    } else {
        "modified"
    };
    let ev = if content.is_none() {
        "access_code.deleted_external_to_seam"
    } else {
        "access_code.modified_external_to_seam"
    };
    tx.set_observed(id, slot, content)?;
    tx.event(&Event::code(ev, &c, now))?;
    if c.allow_external_modification {
        match content {
            None => c.removed_at_lock = true,
            Some(x) => {
                tx.record_pin_held(id, &c.code, now)?;
                c.code = x.code.clone();
            }
        }
        let mut w = Issue::new(
            "external_modification_in_effect",
            format!("the code was {change_type} at the lock; lockhub keeps the change"),
            now,
        );
        w.change_type = Some(change_type.into());
        c.clear_warning("external_modification_in_effect");
        c.raise_warning(w);
    } else {
        let mut e = Issue::new(
            "conflicting_external_modification",
            format!("the code was {change_type} at the lock; lockhub puts it back"),
            now,
        );
        e.change_type = Some(change_type.into());
        c.clear_error("conflicting_external_modification");
        c.raise_error(e);
        c.retry = Default::default();
    }
    tracing::info!(slot, access_code_id = %c.access_code_id, change_type, "code changed at the lock");
    engine.commit_code(tx, &mut c, now)
}
