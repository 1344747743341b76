//! `devices/list` and `devices/get`, and the device's public form (also the
//! retained `{base}/devices/{id}` state).

use super::error::{CommandError, ErrorKind};
use super::{data, parse, CmdResult, Ctx};
use crate::model::access_code::ts;
use crate::model::DriverKind;
use crate::store::{DeviceRow, StoreError, Tx};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The public device object's `device_type` for a lock lockhub serves.
/// The public list has `nuki_lock`; it has no type for a Z-Wave lock reached
/// directly or for a simulated one, so lockhub adds `zwave_lock` and
/// `simulated_lock` (documented in docs/mqtt-api.md).
fn device_type(d: &DeviceRow) -> &'static str {
    match d.info.driver {
        DriverKind::Ble => "nuki_lock",
        DriverKind::Zwave => "zwave_lock",
        DriverKind::Sim => "simulated_lock",
    }
}

fn model(d: &DeviceRow) -> Value {
    let (display, maker) = match d.info.driver {
        DriverKind::Ble => ("Nuki Smart Lock", "Nuki"),
        DriverKind::Zwave => ("Z-Wave lock", "Z-Wave"),
        DriverKind::Sim => ("Simulated lock", "lockhub"),
    };
    json!({ "display_name": display, "manufacturer_display_name": maker })
}

/// The public `battery.status` for a level in percent: under 10 critical,
/// under 20 (where `device.low_battery` fires) low, 95 and above full.
pub fn battery_status(percent: u8) -> &'static str {
    match percent {
        0..=9 => "critical",
        10..=19 => "low",
        20..=94 => "good",
        _ => "full",
    }
}

/// The battery's public status from its last level and the lock's own
/// warning (`low` / `critical`, without a level), whichever is worse; `None`
/// when the lock never said either.
pub fn battery_state(level: Option<u8>, warning: Option<&str>) -> Option<&'static str> {
    const ORDER: [&str; 4] = ["critical", "low", "good", "full"];
    let rank = |s: &str| ORDER.iter().position(|o| *o == s);
    let from_level = level.map(battery_status);
    let from_warning = warning.and_then(|w| rank(w).map(|i| ORDER[i]));
    match (from_level, from_warning) {
        (Some(a), Some(b)) => Some(if rank(b) < rank(a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The device as the cloud sees it: the public device object (`device_id`,
/// `device_type`, `display_name`, `workspace_id`, `created_at`, `errors`,
/// `warnings`, `is_managed`, `capabilities_supported`,
/// `can_program_online_access_codes`, `properties`, `location`,
/// `custom_metadata`), plus lockhub's own keys (`driver`, `address`, `slots`)
/// and, for one release, the keys of the first form (`name`, `online`,
/// `battery_level` in percent, `capabilities`), deprecated.
pub fn device_json(tx: &Tx<'_>, d: &DeviceRow) -> Result<Value, StoreError> {
    let caps = &d.info.capabilities;
    let id = &d.info.device_id;
    let (unmanaged, used) = tx.lock_view(id, |codes, observed| {
        let managed: std::collections::BTreeSet<u32> = codes
            .iter()
            .map(|c| c.slot)
            .filter(|s| *s != crate::model::access_code::NO_SLOT)
            .collect();
        let unmanaged = observed
            .iter()
            .filter(|s| !managed.contains(&s.slot))
            .count();
        let mut used = managed.clone();
        used.extend(observed.iter().map(|s| s.slot));
        (unmanaged, used)
    })?;
    let total = caps.max_active_codes_supported as usize;
    let (created_at, offline_since) = tx.device_times(id)?;
    let created_at = created_at.unwrap_or_else(|| ts(chrono::DateTime::<Utc>::UNIX_EPOCH));
    // A lock no driver has spoken for since the start is not known to be online.
    let online = d.online && d.presence_known;
    let mut properties = json!({
        "online": online,
        "name": d.info.name,
        "appearance": { "name": d.info.name },
        "model": model(d),
        "code_constraints": caps.code_constraints,
        "supported_code_lengths": caps.supported_code_lengths,
        "max_active_codes_supported": caps.max_active_codes_supported,
        "supports_backup_access_code_pool": caps.supports_backup_access_code_pool,
        "online_access_codes_enabled": online && caps.can_program_online_access_codes,
        "offline_access_codes_enabled": false,
        "has_native_entry_events": false,
    });
    // The bolt and the door sensor as the lock last reported them; absent
    // until it has (`door_open` only on locks with a door sensor).
    let state = tx.lock_state(id)?;
    if let Some(locked) = state.locked {
        properties["locked"] = json!(locked);
    }
    if let Some(open) = state.door_open {
        properties["door_open"] = json!(open);
    }
    let mut supported = vec!["access_code", "lock"];
    if let Some(b) = d.battery_level {
        let level = f64::from(b.min(100)) / 100.0;
        properties["battery_level"] = json!(level);
        let status = battery_state(Some(b), state.battery_warning.as_deref());
        properties["battery"] = json!({ "level": level, "status": status });
        supported.push("battery");
    }
    let mut errors = if d.online || !d.presence_known {
        json!([])
    } else {
        json!([{
            "error_code": "device_offline",
            "message": "the lock is offline",
            "is_device_error": true,
            "created_at": offline_since.unwrap_or_else(|| created_at.clone()),
        }])
    };
    // lockhub's own: a lock that answers in a form lockhub cannot read.
    if let Some(f) = tx.device_fault(id)? {
        errors.as_array_mut().expect("an array").push(json!({
            "error_code": f.code,
            "message": f.message,
            "is_device_error": true,
            "created_at": ts(f.since),
        }));
    }
    let warnings = match tx.clock_untrusted_since()? {
        Some(t) => {
            json!([{"warning_code": "clock_untrusted", "message": "the hub's clock is not trusted: no time-driven change until it is right", "created_at": ts(t)}])
        }
        None => json!([]),
    };
    let mut v = json!({
        "device_id": id,
        "device_type": device_type(d),
        "display_name": d.info.name,
        "workspace_id": tx.workspace_id(),
        "created_at": created_at,
        "errors": errors,
        "warnings": warnings,
        "is_managed": true,
        "capabilities_supported": supported,
        "can_program_online_access_codes": caps.can_program_online_access_codes,
        "can_program_offline_access_codes": false,
        "can_remotely_lock": caps.supports_remote_lock,
        "can_remotely_unlock": caps.supports_remote_lock,
        "properties": properties,
        "location": null,
        "custom_metadata": {},
        // lockhub's own
        "driver": d.info.driver.as_str(),
        "address": d.info.address,
        "slots": { "used": used.len(), "free": total.saturating_sub(used.len()), "unmanaged": unmanaged },
        // deprecated: the first form, kept for one release
        "name": d.info.name,
        // `null`: no driver has said yet whether the lock is reachable.
        "online": if d.presence_known { json!(d.online) } else { Value::Null },
        "battery_level": d.battery_level,
        "capabilities": {
            "supported_code_lengths": caps.supported_code_lengths,
            "code_constraints": caps.code_constraints,
            "max_active_codes_supported": caps.max_active_codes_supported,
            "supports_native_scheduling": caps.supports_native_scheduling,
            "supports_backup_access_code_pool": caps.supports_backup_access_code_pool,
            "can_program_online_access_codes": caps.can_program_online_access_codes,
        },
    });
    if let Some(class) = &d.info.security_class {
        // lockhub's addition (Z-Wave locks only).
        v["security_class"] = json!(class);
    }
    Ok(v)
}

/// Queue a lock's retained `{base}/devices/{id}` state as it stands now
/// (nothing when it is the body last queued, or the lock is unknown).
pub fn queue_device_state(tx: &Tx<'_>, device_id: &str) -> Result<(), StoreError> {
    if let Some(d) = tx.device(device_id)? {
        let body = device_json(tx, &d)?;
        tx.publish_device_state(device_id, &serde_json::to_vec(&body)?)?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListBody {}

pub fn list(_ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let _: ListBody = parse::body(fields)?;
    let out: Vec<Value> = tx
        .devices()?
        .iter()
        .map(|d| device_json(tx, d))
        .collect::<Result<_, _>>()?;
    Ok(data("devices", Value::Array(out)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetBody {
    device_id: String,
}

pub fn get(_ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: GetBody = parse::body(fields)?;
    let Some(d) = tx.device(&body.device_id)? else {
        return Err(CommandError::new(
            ErrorKind::DeviceNotFound,
            format!("unknown device: {}", parse::printable(&body.device_id)),
        )
        .into());
    };
    Ok(data("device", device_json(tx, &d)?))
}
