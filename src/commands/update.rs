//! `access_codes/update`: change one code (PIN, name, window, flags,
//! `is_one_time_use`, and lockhub's `weekly_schedule` and `max_uses`: a new
//! one, or `null` to clear it). Changing the PIN of a linked code takes it
//! out of its group.

use super::error::{CommandError, ErrorKind};
use super::{capacity, parse, plan, CmdResult, CommandFailed, Ctx};
use crate::model::{AccessCode, Event, Pin, TimeWindow, WeeklySchedule};
use crate::pin::{self, LockView, Refusal};
use crate::store::Tx;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CodeType {
    Ongoing,
    TimeBound,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    access_code_id: String,
    /// A `Pin`: a wrong type is refused without echoing the value.
    code: Option<Pin>,
    name: Option<String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    #[serde(rename = "type")]
    code_type: Option<CodeType>,
    allow_external_modification: Option<bool>,
    is_external_modification_allowed: Option<bool>,
    attempt_for_offline_device: Option<bool>,
    prefer_native_scheduling: Option<bool>,
    use_backup_access_code_pool: Option<bool>,
    is_one_time_use: Option<bool>,
    /// lockhub's own: a new recurring schedule, or `null` to clear it.
    #[serde(default, deserialize_with = "parse::present")]
    weekly_schedule: Option<Value>,
    /// lockhub's own: a new use limit, or `null` for none.
    #[serde(default, deserialize_with = "parse::present")]
    max_uses: Option<Value>,
}

/// What one update does to the code's fields; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct Changes {
    pub name: Option<Option<String>>,
    pub window: Option<Option<TimeWindow>>,
    pub new_pin: Option<Pin>,
    /// A new weekly schedule, or `Some(None)` to make the code non-recurring.
    pub weekly: Option<Option<WeeklySchedule>>,
    /// A new number of unlocks after which the code goes (or none).
    pub use_limit: parse::UseLimit,
}

pub fn not_found(id: &str) -> CommandFailed {
    CommandError::new(
        ErrorKind::AccessCodeNotFound,
        format!("no access code {}", parse::printable(id)),
    )
    .with_details("access_code_id", Value::String(parse::printable(id)))
    .into()
}

/// A live (not deleted) code by id.
pub fn live_code(tx: &Tx<'_>, id: &str) -> Result<AccessCode, CommandFailed> {
    match tx.code(id)? {
        Some(c) if !c.deleted => Ok(c),
        _ => Err(not_found(id)),
    }
}

pub fn run(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: Body = parse::body(fields)?;
    let mut code = live_code(tx, &body.access_code_id)?;
    let name = parse::opt_name("name", body.name.as_deref())?;
    let weekly = body
        .weekly_schedule
        .as_ref()
        .map(parse::weekly_schedule)
        .transpose()?;
    let use_limit = parse::use_limit(body.is_one_time_use, body.max_uses.as_ref())?;

    let window = match body.code_type {
        Some(CodeType::Ongoing) => {
            if body.starts_at.is_some() || body.ends_at.is_some() {
                return Err(CommandError::invalid(
                    "type",
                    "an ongoing code has no starts_at or ends_at",
                )
                .into());
            }
            Some(None)
        }
        _ => {
            let starts = parse::opt_timestamp("starts_at", body.starts_at.as_deref())?;
            let ends = parse::opt_timestamp("ends_at", body.ends_at.as_deref())?;
            match (starts, ends) {
                (None, None)
                    if body.code_type == Some(CodeType::TimeBound) && code.window.is_none() =>
                {
                    return Err(
                        CommandError::invalid("ends_at", "a time_bound code needs ends_at").into(),
                    )
                }
                (None, None) => None,
                (s, e) => {
                    let starts_at = s.or(code.window.map(|w| w.starts_at)).unwrap_or(ctx.now);
                    let Some(ends_at) = e.or(code.window.map(|w| w.ends_at)) else {
                        return Err(
                            CommandError::invalid("ends_at", "starts_at needs an ends_at").into(),
                        );
                    };
                    Some(Some(plan::checked(
                        TimeWindow { starts_at, ends_at },
                        ctx.now,
                    )?))
                }
            }
        }
    };

    let new_pin = match &body.code {
        Some(c) if c != &code.code => {
            pin::validate_syntax(c.expose()).map_err(|m| CommandError::invalid("code", m))?;
            let device = plan::devices(tx, std::slice::from_ref(&code.device_id))?.remove(0);
            let existing = plan::codes_on_lock(tx, &code.device_id, Some(&code.access_code_id))?;
            let view = LockView::new(&device.info.capabilities, &existing);
            if let Err(r) = pin::check(c.expose(), &view) {
                let kind = if r == Refusal::DuplicateCode {
                    ErrorKind::DuplicateCodeOnDevice
                } else {
                    ErrorKind::CodeConstraintsViolated
                };
                return Err(
                    CommandError::new(kind, format!("device {}: {r}", code.device_id)).into(),
                );
            }
            Some(c.clone())
        }
        _ => None,
    };

    if let Some(v) = parse::external_modification(
        body.allow_external_modification,
        body.is_external_modification_allowed,
    )? {
        code.allow_external_modification = v;
    }
    if let Some(v) = body.attempt_for_offline_device {
        code.attempt_for_offline_device = v;
    }
    if let Some(v) = body.prefer_native_scheduling {
        code.prefer_native_scheduling = v;
    }
    if let Some(v) = body.use_backup_access_code_pool {
        code.use_backup_access_code_pool = v;
    }
    let changes = Changes {
        name: name.map(Some),
        window,
        new_pin,
        weekly,
        use_limit,
    };
    apply_changes(ctx, tx, code, changes)?;
    Ok(Map::new())
}

/// Apply a new name / window / PIN / weekly schedule to one code, with its
/// events and state.
pub fn apply_changes(
    ctx: &mut Ctx<'_>,
    tx: &Tx<'_>,
    mut code: AccessCode,
    changes: Changes,
) -> Result<(), CommandFailed> {
    let Changes {
        name,
        window,
        new_pin,
        weekly,
        use_limit,
    } = changes;
    let device = plan::devices(tx, std::slice::from_ref(&code.device_id))?.remove(0);
    let caps = &device.info.capabilities;
    let timing = ctx.settings.timing();
    // Slots over time: a change to when the code needs a slot (its window, its
    // scheduling, a code due again) must fit its lock at every moment; other
    // changes are never refused for space.
    let stored_need = tx
        .code(&code.access_code_id)?
        .and_then(|c| c.slot_need(ctx.now, &timing));
    let fits = |code: &AccessCode| -> Result<(), CommandFailed> {
        if code.slot_need(ctx.now, &timing) != stored_need {
            if let Some(o) = capacity::check_code(tx, &device, code, stored_need, ctx.now, &timing)?
            {
                return Err(capacity::refusal(&[o]).into());
            }
        }
        Ok(())
    };
    let mut changed = Vec::new();
    if let Some(n) = name.filter(|n| *n != code.name) {
        code.appearance_name = plan::appearance(n.as_deref(), caps);
        code.name = n;
        changed.push("access_code.name_changed");
    }
    if let Some(w) = window.filter(|w| *w != code.window) {
        code.window = w;
        changed.push("access_code.time_frame_changed");
    }
    if let Some(p) = new_pin {
        if code.ever_set {
            // The old PIN was on the lock: never chosen for it again for a while.
            tx.record_pin_held(&code.device_id, &code.code, ctx.now)?;
        }
        code.code = p;
        code.common_code_key = None;
        changed.push("access_code.code_changed");
    }
    code.is_scheduled_on_device =
        code.window.is_some() && code.prefer_native_scheduling && caps.supports_native_scheduling;
    // A new schedule (or none) is a change of the code: lockhub's own, so
    // `access_code.changed` alone tells it.
    let weekly_changed = weekly.is_some_and(|w| w != code.weekly);
    // A recurring code decides by its schedule and the new window: held by
    // the lock (the driver re-programs it) or driven by the hub.
    let weekly = weekly.unwrap_or(code.weekly);
    plan::set_weekly(&mut code, weekly, &device.info);
    let limit_changed = set_use_limit(tx, &code.access_code_id, use_limit)?;
    if changed.is_empty() && !weekly_changed {
        fits(&code)?;
        tx.save_code(&code)?;
        if limit_changed {
            // Counted by the hub, nothing on the lock changes.
            tx.event(&Event::code("access_code.changed", &code, ctx.now))?;
            ctx.publish_code(tx, &code)?;
        }
        return Ok(());
    }
    // A new desired state supersedes the pending operation and its failures.
    code.retry = Default::default();
    for e in [
        "failed_to_set_on_device",
        "failed_to_issue",
        "failed_to_update",
        "access_code_inactive",
    ] {
        code.clear_error(e);
    }
    code.removed_at_lock = false;
    // A code due again (an ended stay extended) takes a slot again later.
    fits(&code)?;
    if code.slot_need(ctx.now, &timing).is_some() {
        code.finished_at = None;
    }
    let observed = tx.observed_slot(&code.device_id, code.slot)?;
    code.reported_status = Some(code.status(observed.as_ref(), ctx.now, &ctx.settings.timing()));
    tx.save_code(&code)?;
    tx.event(&Event::code("access_code.changed", &code, ctx.now))?;
    for e in changed {
        tx.event(&Event::code(e, &code, ctx.now))?;
    }
    Ok(ctx.publish_code(tx, &code)?)
}

/// A new use limit for the code: whether it changed. A limit the code has
/// already reached (its `use_count`) is refused: the code would have to go
/// at once, and an update never deletes a code.
fn set_use_limit(tx: &Tx<'_>, id: &str, asked: parse::UseLimit) -> Result<bool, CommandFailed> {
    let current = tx.use_limit(id)?;
    let new = asked.applied_to(current);
    if new == current {
        return Ok(false);
    }
    match new {
        Some(n) => {
            let used = tx.code_use_count(id)?;
            if used >= n {
                return Err(CommandError::invalid(
                    "max_uses",
                    format!("access code {} was already used {used} times: a limit of {n} would remove it now (delete it instead, or give a larger max_uses)", parse::printable(id)),
                )
                .into());
            }
            tx.set_use_limit(id, n)?;
        }
        None => tx.clear_use_limit(id)?,
    }
    Ok(true)
}
