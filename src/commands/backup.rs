//! `access_codes/pull_backup_access_code`: hand out a spare code already on the
//! lock for a code that failed. The backup lasts until the original's `ends_at`.

use super::error::{CommandError, ErrorKind};
use super::update::live_code;
use super::{code_json, data, parse, plan, CmdResult, Ctx};
use crate::model::{Event, Issue, TimeWindow};
use crate::store::Tx;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    access_code_id: String,
}

pub fn pull(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: Body = parse::body(fields)?;
    let mut original = live_code(tx, &body.access_code_id)?;
    if let Some(b) = original.pulled_backup_access_code_id.as_deref() {
        // Already pulled: the same backup again.
        let backup = live_code(tx, b)?;
        return Ok(data(
            "access_code",
            code_json(tx, &backup, ctx.now, ctx.settings, true)?,
        ));
    }
    if !original.use_backup_access_code_pool || original.is_backup {
        return Err(CommandError::invalid(
            "access_code_id",
            "this code was not created with use_backup_access_code_pool",
        )
        .into());
    }
    let device = plan::devices(tx, std::slice::from_ref(&original.device_id))?.remove(0);
    let on_lock: Vec<u32> = tx
        .observed(&original.device_id)?
        .iter()
        .map(|s| s.slot)
        .collect();
    // Prefer a spare already on the lock: it works the moment it is handed out.
    let mut spares: Vec<_> = tx
        .codes_for_device(&original.device_id)?
        .into_iter()
        .filter(|c| c.is_backup && c.backup_for.is_none() && !c.deleted)
        .collect();
    spares.sort_by_key(|c| !on_lock.contains(&c.slot));
    let Some(mut backup) = spares.into_iter().next() else {
        return Err(CommandError::new(
            ErrorKind::BackupAccessCodePoolEmpty,
            format!(
                "no backup code is available on device {}",
                original.device_id
            ),
        )
        .into());
    };
    backup.backup_for = Some(original.access_code_id.clone());
    backup.name = original.name.clone();
    backup.appearance_name = plan::appearance(original.name.as_deref(), &device.info.capabilities);
    backup.window = original.window.map(|w| TimeWindow {
        starts_at: ctx.now.min(w.starts_at),
        ends_at: w.ends_at,
    });
    backup.is_scheduled_on_device = false;
    backup.common_code_key = None;
    let observed = tx.observed_slot(&backup.device_id, backup.slot)?;
    backup.reported_status =
        Some(backup.status(observed.as_ref(), ctx.now, &ctx.settings.timing()));
    tx.save_code(&backup)?;
    original.pulled_backup_access_code_id = Some(backup.access_code_id.clone());
    original.raise_warning(Issue::new(
        "using_backup_access_code",
        format!(
            "a backup code ({}) was pulled for this code",
            backup.access_code_id
        ),
        ctx.now,
    ));
    tx.save_code(&original)?;
    tx.event(
        &Event::code("access_code.backup_access_code_pulled", &original, ctx.now)
            .with("backup_access_code_id", backup.access_code_id.clone()),
    )?;
    ctx.publish_code(tx, &original)?;
    ctx.publish_code(tx, &backup)?;
    plan::fill_backup_pool(ctx, tx, &device)?;
    Ok(data(
        "access_code",
        code_json(tx, &backup, ctx.now, ctx.settings, true)?,
    ))
}
