//! Planning steps shared by several commands: time windows, what a lock
//! already holds, slots, names as a lock shows them, backup pools.

use super::error::{CommandError, ErrorKind};
use super::{parse, CommandFailed, Ctx};
use crate::model::{AccessCode, Capabilities, Event, Pin, Retry, TimeWindow};
use crate::pin;
use crate::store::{DeviceRow, Tx};
use chrono::{DateTime, Utc};

/// The window of a new code from the request's `starts_at`/`ends_at`.
///
/// - neither: an ongoing code;
/// - both: a time-bound code; `ends_at` must be after `starts_at` and in the future;
/// - only `ends_at`: time-bound, starting now;
/// - only `starts_at`: refused (a start with no end is not a time window; send
///   neither for an ongoing code).
pub fn window(
    starts_at: Option<&str>,
    ends_at: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<TimeWindow>, CommandError> {
    let starts = starts_at
        .map(|s| parse::timestamp("starts_at", s))
        .transpose()?;
    let ends = ends_at
        .map(|s| parse::timestamp("ends_at", s))
        .transpose()?;
    match (starts, ends) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(CommandError::invalid(
            "ends_at",
            "starts_at needs an ends_at (omit both for an ongoing code)",
        )),
        (s, Some(e)) => checked(
            TimeWindow {
                starts_at: s.unwrap_or(now),
                ends_at: e,
            },
            now,
        )
        .map(Some),
    }
}

/// `ends_at` after `starts_at` and in the future.
pub fn checked(w: TimeWindow, now: DateTime<Utc>) -> Result<TimeWindow, CommandError> {
    if w.ends_at <= w.starts_at {
        return Err(CommandError::invalid(
            "ends_at",
            "ends_at must be after starts_at",
        ));
    }
    if w.ends_at <= now {
        return Err(CommandError::invalid(
            "ends_at",
            "ends_at must be in the future",
        ));
    }
    Ok(w)
}

/// Look up every device; unknown ones are named all at once.
pub fn devices(tx: &Tx<'_>, ids: &[String]) -> Result<Vec<DeviceRow>, CommandFailed> {
    let mut found = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    for id in ids {
        match tx.device(id)? {
            Some(d) => found.push(d),
            None => missing.push(id.clone()),
        }
    }
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|m| parse::printable(m)).collect();
        return Err(CommandError::new(
            ErrorKind::DeviceNotFound,
            format!("unknown device(s): {}", names.join(", ")),
        )
        .with_details("device_ids", serde_json::json!(names))
        .into());
    }
    Ok(found)
}

/// Every PIN on a lock or promised to it: what the lock reported (managed or
/// not) and lockhub's live codes not yet there. `except` leaves one code out.
pub fn codes_on_lock(
    tx: &Tx<'_>,
    device_id: &str,
    except: Option<&str>,
) -> Result<Vec<Pin>, CommandFailed> {
    Ok(tx.pins_on_lock(device_id, except)?)
}

/// The PINs a lock held within `settings.pin_reuse` (keyed hashes), which
/// lockhub never chooses again for it.
pub fn recent_pins(
    tx: &Tx<'_>,
    device_id: &str,
    now: DateTime<Utc>,
    settings: &crate::settings::HubSettings,
) -> Result<pin::RecentPins, CommandFailed> {
    Ok(tx.recent_pins(device_id, now - settings.pin_reuse)?)
}

/// PINs a code the cloud gives must not be: those of every code on the lock
/// now or still to go on it (whatever its time: a removal that runs late must
/// never meet the same PIN going on), and every code the lock holds (managed
/// or not). Codes that ended and are off the lock no longer count. `except`
/// leaves one code out.
pub fn pins_in_use(
    tx: &Tx<'_>,
    device_id: &str,
    now: DateTime<Utc>,
    timing: &crate::model::Timing,
    except: Option<&str>,
) -> Result<Vec<Pin>, CommandFailed> {
    Ok(tx.lock_view(device_id, |codes, observed| {
        let mut pins: Vec<Pin> = codes
            .iter()
            .filter(|c| Some(c.access_code_id.as_str()) != except)
            .filter(|c| c.slot_need(now, timing).is_some())
            .map(|c| c.code.clone())
            .collect();
        let own_slot = except
            .and_then(|e| codes.iter().find(|c| c.access_code_id == e))
            .map(|c| c.slot)
            .filter(|s| *s != crate::model::access_code::NO_SLOT);
        pins.extend(
            observed
                .iter()
                .filter(|s| Some(s.slot) != own_slot)
                .map(|s| s.code.clone()),
        );
        pins
    })?)
}

/// The name as the lock can show it: cut to its length limit.
pub fn appearance(name: Option<&str>, caps: &Capabilities) -> Option<String> {
    let name = name?;
    Some(match caps.name_max_length() {
        Some(max) => name.chars().take(max as usize).collect(),
        None => name.to_owned(),
    })
}

/// Keep `pool_size` unassigned backup codes on a lock that supports a pool.
pub fn fill_backup_pool(
    ctx: &mut Ctx<'_>,
    tx: &Tx<'_>,
    device: &DeviceRow,
) -> Result<(), CommandFailed> {
    if !device.info.capabilities.supports_backup_access_code_pool {
        return Ok(());
    }
    let id = &device.info.device_id;
    let spare = tx.lock_view(id, |codes, _| {
        codes
            .iter()
            .filter(|c| c.is_backup && c.backup_for.is_none() && !c.deleted)
            .count()
    })? as u32;
    let timing = ctx.settings.timing();
    let recent = recent_pins(tx, id, ctx.now, ctx.settings)?;
    for _ in spare..ctx.settings.backup_pool_size {
        // A spare is on the lock for ever: only where that never overflows it.
        let demand = super::capacity::LockDemand::load(tx, device, ctx.now, &timing, &[])?;
        if demand.overflow(&[(ctx.now, None)]).is_some() {
            break;
        }
        let existing = codes_on_lock(tx, id, None)?;
        let mut view = pin::LockView::new(&device.info.capabilities, &existing);
        view.recent = Some(&recent);
        let Ok(code) = pin::choose_for_lock(&mut rand::rngs::OsRng, None, &view) else {
            break;
        };
        let backup = new_code(
            ctx.now,
            id,
            crate::model::access_code::NO_SLOT,
            code,
            None,
            Some("backup"),
            &device.info.capabilities,
            None,
            Defaults::backup(),
            &ctx.settings.timing(),
        );
        tx.insert_code(&backup)?;
        tx.event(&Event::code("access_code.created", &backup, ctx.now).with("is_backup", true))?;
        ctx.publish_code(tx, &backup)?;
    }
    Ok(())
}

/// The request flags a new code carries.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub allow_external_modification: bool,
    pub prefer_native_scheduling: bool,
    pub attempt_for_offline_device: bool,
    pub use_backup_access_code_pool: bool,
    pub is_backup: bool,
}

impl Defaults {
    fn backup() -> Self {
        Defaults {
            allow_external_modification: false,
            prefer_native_scheduling: false,
            attempt_for_offline_device: true,
            use_backup_access_code_pool: false,
            is_backup: true,
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn new_code(
    now: DateTime<Utc>,
    device_id: &str,
    slot: u32,
    code: Pin,
    common_code_key: Option<String>,
    name: Option<&str>,
    caps: &Capabilities,
    window: Option<TimeWindow>,
    flags: Defaults,
    timing: &crate::model::Timing,
) -> AccessCode {
    let mut code = AccessCode {
        // Time-ordered (UUIDv7): a new code's id goes at the right edge of the
        // id index, not into a random leaf (one page written per command,
        // not one per code).
        access_code_id: uuid::Uuid::now_v7().to_string(),
        device_id: device_id.to_owned(),
        name: name.map(str::to_owned),
        appearance_name: appearance(name, caps),
        code,
        common_code_key,
        window,
        created_at: now,
        slot,
        is_backup: flags.is_backup,
        backup_for: None,
        pulled_backup_access_code_id: None,
        allow_external_modification: flags.allow_external_modification,
        prefer_native_scheduling: flags.prefer_native_scheduling,
        attempt_for_offline_device: flags.attempt_for_offline_device,
        use_backup_access_code_pool: flags.use_backup_access_code_pool,
        is_scheduled_on_device: window.is_some()
            && flags.prefer_native_scheduling
            && caps.supports_native_scheduling,
        errors: Vec::new(),
        warnings: Vec::new(),
        deleted: false,
        removed_at_lock: false,
        reported_status: None,
        retry: Retry::default(),
        ever_set: false,
        weekly: None,
        finished_at: None,
    };
    // Nothing is on the lock yet: this is the status the cloud is told first.
    code.reported_status = Some(code.status(None, now, timing));
    code
}

/// Makes `code` recurring on `weekly` (or not, `None`: then
/// `is_scheduled_on_device` stays as its window alone decides). The lock holds the
/// schedule itself where it can take this many weekdays (and the window, if
/// any) and the request did not ask otherwise; else lockhub sets and removes
/// the code at each window (`is_scheduled_on_device` false).
pub fn set_weekly(
    code: &mut AccessCode,
    weekly: Option<crate::model::WeeklySchedule>,
    device: &crate::model::DeviceInfo,
) {
    let Some(w) = weekly else {
        code.weekly = None;
        return;
    };
    let caps = &device.capabilities;
    // A Z-Wave user's week-day and year-day schedules are alternatives (the
    // code opens in any of them), so there a bounded weekly code is hub-driven.
    let bounded_ok = code.window.is_none()
        || (caps.supports_native_scheduling && device.driver != crate::model::DriverKind::Zwave);
    code.weekly = Some(w);
    code.is_scheduled_on_device = code.prefer_native_scheduling
        && bounded_ok
        && device.native_weekly_days >= w.day_count() as u8;
}
