//! `devices/list` and `devices/get`, and the device's public form (also the
//! retained `{base}/devices/{id}` state).

use super::error::{CommandError, ErrorKind};
use super::{data, parse, CmdResult, Ctx};
use crate::store::{DeviceRow, StoreError, Tx};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The device as the cloud sees it.
pub fn device_json(tx: &Tx<'_>, d: &DeviceRow) -> Result<Value, StoreError> {
    let caps = &d.info.capabilities;
    let mut used: std::collections::BTreeSet<u32> =
        tx.reserved_slots(&d.info.device_id)?.into_iter().collect();
    let observed = tx.observed(&d.info.device_id)?;
    let managed = used.clone();
    let unmanaged = observed
        .iter()
        .filter(|s| !managed.contains(&s.slot))
        .count();
    used.extend(observed.iter().map(|s| s.slot));
    let total = caps.max_active_codes_supported as usize;
    let mut v = json!({
        "device_id": d.info.device_id,
        "name": d.info.name,
        "driver": d.info.driver.as_str(),
        "address": d.info.address,
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
        "slots": { "used": used.len(), "free": total.saturating_sub(used.len()), "unmanaged": unmanaged },
        "warnings": match tx.clock_untrusted_since()? {
            Some(t) => json!([{"warning_code": "clock_untrusted", "message": "the hub's clock is not trusted: no time-driven change until it is right", "created_at": crate::model::access_code::ts(t)}]),
            None => json!([]),
        },
        "errors": if d.online || !d.presence_known { json!([]) } else { json!([{"error_code": "device_offline", "message": "the lock is offline", "is_device_error": true}]) },
    });
    if let Some(class) = &d.info.security_class {
        // lockhub's addition (Z-Wave locks only).
        v["security_class"] = json!(class);
    }
    Ok(v)
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
