//! `locks/lock_door` and `locks/unlock_door`: an action attempt for the
//! engine to carry out. The command is answered when the lock confirms (or
//! fails to): see `Commands::one` for the deferred answer and
//! `engine::actions` for the rest. Refused at once, with a typed error, when
//! the lock cannot move its bolt remotely or is known to be offline.

use super::error::{CommandError, ErrorKind};
use super::{parse, CmdResult, Ctx};
use crate::store::{ActionAttempt, Tx};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    device_id: String,
}

pub fn lock_door(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    attempt(ctx, tx, fields, "LOCK_DOOR")
}

pub fn unlock_door(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    attempt(ctx, tx, fields, "UNLOCK_DOOR")
}

fn attempt(
    ctx: &mut Ctx<'_>,
    tx: &Tx<'_>,
    fields: Map<String, Value>,
    action_type: &str,
) -> CmdResult {
    let body: Body = parse::body(fields)?;
    let Some(d) = tx.device(&body.device_id)? else {
        return Err(CommandError::new(
            ErrorKind::DeviceNotFound,
            format!("unknown device: {}", parse::printable(&body.device_id)),
        )
        .into());
    };
    if !d.info.capabilities.supports_remote_lock {
        return Err(CommandError::new(
            ErrorKind::UnsupportedByDevice,
            "this lock cannot be locked or unlocked remotely (can_remotely_lock is false)",
        )
        .with_details("device_id", Value::from(body.device_id))
        .into());
    }
    if d.presence_known && !d.online {
        return Err(
            CommandError::new(ErrorKind::DeviceOffline, "the lock is offline")
                .with_details("device_id", Value::from(body.device_id))
                .into(),
        );
    }
    ctx.deferred = Some(ActionAttempt {
        action_attempt_id: uuid::Uuid::new_v4().to_string(),
        request_id: String::new(),
        device_id: body.device_id.clone(),
        action_type: action_type.to_owned(),
        status: "pending".into(),
        error: None,
        created_at: ctx.now,
        reply_to: None,
        fingerprint: None,
    });
    ctx.touched.insert(body.device_id);
    Ok(Map::new())
}
