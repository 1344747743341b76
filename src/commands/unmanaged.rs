//! Unmanaged access codes, as the public API has them: codes on a lock that
//! lockhub did not put there (set at the keypad, or there before lockhub).
//! `access_codes/unmanaged/list`, `/get`, `/convert_to_managed`, `/update`
//! (`is_managed: true` converts) and `/delete` (removes the code from the lock).
//! Each is answered with unmanaged access_code objects (`is_managed: false`,
//! `status: set`); ids are given when lockhub first sees a code (`store::lifetime`).

use super::error::{CommandError, ErrorKind};
use super::{data, parse, plan, CmdResult, CommandFailed, Ctx};
use crate::drivers::SlotCode;
use crate::model::access_code::{ts, NO_SLOT};
use crate::model::{AccessCode, Event, Issue, Retry};
use crate::store::{Tx, UnmanagedRow};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// An unmanaged code as lockhub sees it now.
struct Unmanaged {
    row: UnmanagedRow,
    content: SlotCode,
}

/// The public unmanaged access_code object (the PIN included: the lock
/// reported it, and command answers carry PINs as for managed codes).
fn public(u: &Unmanaged, workspace_id: &str) -> Value {
    let w = u.content.window;
    json!({
        "access_code_id": u.row.access_code_id,
        "device_id": u.row.device_id,
        "workspace_id": workspace_id,
        "name": u.content.name,
        "code": u.content.code.expose(),
        "type": if w.is_some() { "time_bound" } else { "ongoing" },
        "starts_at": w.map(|w| ts(w.starts_at)),
        "ends_at": w.map(|w| ts(w.ends_at)),
        "created_at": u.row.created_at,
        "status": "set",
        "errors": [],
        "warnings": [],
        "is_managed": false,
        "dormakaba_oracode_metadata": null,
    })
}

/// Every unmanaged code on a lock now: slots holding a code no lockhub code
/// owns. Each gets its id here if the engine has not given one yet.
fn on_lock(ctx: &Ctx<'_>, tx: &Tx<'_>, device_id: &str) -> Result<Vec<Unmanaged>, CommandFailed> {
    let owned: BTreeSet<u32> = tx
        .codes_for_device(device_id)?
        .iter()
        .map(|c| c.slot)
        .filter(|s| *s != NO_SLOT)
        .collect();
    let mut out = Vec::new();
    for content in tx.observed(device_id)? {
        if owned.contains(&content.slot) {
            continue;
        }
        let row = tx.ensure_unmanaged(device_id, content.slot, ctx.now)?;
        out.push(Unmanaged { row, content });
    }
    Ok(out)
}

fn not_found(what: &str) -> CommandFailed {
    CommandError::new(
        ErrorKind::AccessCodeNotFound,
        format!("no unmanaged access code {}", parse::printable(what)),
    )
    .into()
}

/// One unmanaged code by id (it must still be on its lock, unmanaged).
fn by_id(ctx: &Ctx<'_>, tx: &Tx<'_>, id: &str) -> Result<Unmanaged, CommandFailed> {
    let Some(row) = tx.unmanaged_by_id(id)? else {
        return Err(not_found(id));
    };
    on_lock(ctx, tx, &row.device_id)?
        .into_iter()
        .find(|u| u.row.access_code_id == id)
        .ok_or_else(|| not_found(id))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListBody {
    device_id: String,
}

pub fn list(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: ListBody = parse::body(fields)?;
    plan::devices(tx, std::slice::from_ref(&body.device_id))?;
    let ws = ctx.settings.workspace_id.clone();
    let out: Vec<Value> = on_lock(ctx, tx, &body.device_id)?
        .iter()
        .map(|u| public(u, &ws))
        .collect();
    Ok(data("access_codes", Value::Array(out)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetBody {
    access_code_id: Option<String>,
    device_id: Option<String>,
    code: Option<String>,
}

/// By `access_code_id`, or by `device_id` and `code`.
pub fn get(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: GetBody = parse::body(fields)?;
    let u = match (&body.access_code_id, &body.device_id, &body.code) {
        (Some(id), None, None) => by_id(ctx, tx, id)?,
        (None, Some(d), Some(code)) => {
            plan::devices(tx, std::slice::from_ref(d))?;
            on_lock(ctx, tx, d)?
                .into_iter()
                .find(|u| u.content.code.expose() == code)
                .ok_or_else(|| not_found("with that code on the device"))?
        }
        _ => {
            return Err(CommandError::invalid(
                "access_code_id",
                "give access_code_id, or device_id and code",
            )
            .into())
        }
    };
    Ok(data("access_code", public(&u, &ctx.settings.workspace_id)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConvertBody {
    access_code_id: String,
    is_external_modification_allowed: Option<bool>,
    allow_external_modification: Option<bool>,
    /// The public API's switch of a code between workspaces; a hub has one
    /// workspace, so there is nothing to force (accepted either way).
    force: Option<bool>,
    /// lockhub's addition: link the converted code to a group (its PIN must
    /// be the group's), so `update_multiple` moves it with the others.
    common_code_key: Option<String>,
}

/// The managed code that takes over an unmanaged one, keeping its id, slot,
/// PIN, name and window. It is already on the lock.
fn adopt(
    ctx: &Ctx<'_>,
    tx: &Tx<'_>,
    u: &Unmanaged,
    allow_ext: bool,
) -> Result<AccessCode, CommandFailed> {
    let device = plan::devices(tx, std::slice::from_ref(&u.row.device_id))?.remove(0);
    let caps = &device.info.capabilities;
    let created_at = chrono::DateTime::parse_from_rfc3339(&u.row.created_at)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or(ctx.now);
    let mut c = AccessCode {
        access_code_id: u.row.access_code_id.clone(),
        device_id: u.row.device_id.clone(),
        name: u.content.name.clone(),
        appearance_name: u.content.name.clone(),
        code: u.content.code.clone(),
        common_code_key: None,
        window: u.content.window,
        created_at,
        slot: u.content.slot,
        is_backup: false,
        backup_for: None,
        pulled_backup_access_code_id: None,
        allow_external_modification: allow_ext,
        prefer_native_scheduling: u.content.window.is_some(),
        attempt_for_offline_device: true,
        use_backup_access_code_pool: false,
        is_scheduled_on_device: u.content.window.is_some() && caps.supports_native_scheduling,
        errors: Vec::new(),
        warnings: Vec::new(),
        deleted: false,
        removed_at_lock: false,
        reported_status: None,
        retry: Retry::default(),
        ever_set: true,
        weekly: None,
        finished_at: None,
    };
    c.reported_status = Some(c.status(Some(&u.content), ctx.now, &ctx.settings.timing()));
    Ok(c)
}

pub fn convert_to_managed(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: ConvertBody = parse::body(fields)?;
    let _ = body.force;
    let allow = parse::external_modification(
        body.allow_external_modification,
        body.is_external_modification_allowed,
    )?
    .unwrap_or(false);
    convert(ctx, tx, &body.access_code_id, allow, body.common_code_key)?;
    Ok(Map::new())
}

fn convert(
    ctx: &mut Ctx<'_>,
    tx: &Tx<'_>,
    id: &str,
    allow: bool,
    key: Option<String>,
) -> Result<AccessCode, CommandFailed> {
    let u = by_id(ctx, tx, id)?;
    let mut c = adopt(ctx, tx, &u, allow)?;
    if let Some(k) = key {
        let group: Vec<AccessCode> = tx
            .codes_by_key(&k)?
            .into_iter()
            .filter(|g| !g.deleted)
            .collect();
        if group.iter().any(|g| g.code != c.code) {
            return Err(CommandError::invalid(
                "common_code_key",
                "the codes of this common_code_key have another code",
            )
            .into());
        }
        if group.iter().any(|g| g.device_id == c.device_id) {
            return Err(CommandError::invalid(
                "common_code_key",
                "this group already has a code on this device",
            )
            .into());
        }
        c.common_code_key = Some(k);
    }
    tx.forget_unmanaged(&u.row.device_id, u.row.slot)?;
    tx.insert_code(&c)?;
    tx.event(&Event::code(
        "access_code.unmanaged.converted_to_managed",
        &c,
        ctx.now,
    ))?;
    ctx.publish_code(tx, &c)?;
    Ok(c)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    access_code_id: String,
    is_managed: bool,
    is_external_modification_allowed: Option<bool>,
    allow_external_modification: Option<bool>,
    force: Option<bool>,
}

/// `is_managed: true` converts the code; `false` leaves it as it is.
pub fn update(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: UpdateBody = parse::body(fields)?;
    let _ = body.force;
    let allow = parse::external_modification(
        body.allow_external_modification,
        body.is_external_modification_allowed,
    )?
    .unwrap_or(false);
    if body.is_managed {
        convert(ctx, tx, &body.access_code_id, allow, None)?;
    } else {
        by_id(ctx, tx, &body.access_code_id)?;
    }
    Ok(Map::new())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    access_code_id: String,
}

/// Removes the code from its lock: lockhub takes it over as a deleted code, so
/// the engine clears its slot like any removal (events `access_code.deleted`,
/// then `access_code.removed_from_device`, with the same `access_code_id`).
pub fn delete(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: DeleteBody = parse::body(fields)?;
    let u = by_id(ctx, tx, &body.access_code_id)?;
    let mut c = adopt(ctx, tx, &u, false)?;
    c.deleted = true;
    c.raise_warning(Issue::new(
        "being_deleted",
        "the code is being removed from the lock",
        ctx.now,
    ));
    c.reported_status = Some(c.status(Some(&u.content), ctx.now, &ctx.settings.timing()));
    tx.forget_unmanaged(&u.row.device_id, u.row.slot)?;
    tx.insert_code(&c)?;
    tx.event(&Event::code("access_code.deleted", &c, ctx.now))?;
    ctx.publish_code(tx, &c)?;
    Ok(Map::new())
}
