//! `access_codes/create_multiple` and `access_codes/create`: one code per lock,
//! sharing one PIN where the locks allow it.

use super::capacity::{self, LockDemand};
use super::error::{CommandError, ErrorKind};
use super::plan::{self, Defaults};
use super::{code_json, data, parse, CmdResult, CommandFailed, Ctx};
use crate::model::access_code::NO_SLOT;
use crate::model::{AccessCode, Event, Issue, Pin};
use crate::pin::{self, LockView, Refusal};
use crate::store::{DeviceRow, Tx};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Behavior {
    #[default]
    Throw,
    CreateRandomCode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    device_ids: Vec<String>,
    name: Option<String>,
    /// A `Pin`: a wrong type is refused without echoing the value.
    code: Option<Pin>,
    preferred_code_length: Option<Value>,
    behavior_when_code_cannot_be_shared: Option<Behavior>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    attempt_for_offline_device: Option<bool>,
    allow_external_modification: Option<bool>,
    is_external_modification_allowed: Option<bool>,
    prefer_native_scheduling: Option<bool>,
    use_backup_access_code_pool: Option<bool>,
    /// The public API's `/access_codes/create` fields beyond the seed's:
    /// honoured where the locks can, else refused naming the field.
    common_code_key: Option<String>,
    is_one_time_use: Option<bool>,
    is_offline_access_code: Option<bool>,
    use_offline_access_code: Option<bool>,
    max_time_rounding: Option<String>,
    sync: Option<bool>,
    /// lockhub's own: a recurring weekly schedule (`model::weekly`).
    weekly_schedule: Option<Value>,
    /// lockhub's own: removed after this many unlocks the lock reports
    /// (`is_one_time_use` is 1).
    max_uses: Option<Value>,
}

/// Fields of the public API that lockhub's locks cannot honour (offline
/// codes, synchronous answers) are refused when asked for, never ignored.
fn check_unsupported(body: &Body) -> Result<(), CommandError> {
    const OFFLINE: &str = "lockhub's locks take online access codes only (offline codes need a lock with an offline code algorithm); send false or leave it out";
    for (field, v) in [
        ("is_offline_access_code", body.is_offline_access_code),
        ("use_offline_access_code", body.use_offline_access_code),
    ] {
        if v == Some(true) {
            return Err(CommandError::invalid(field, format!("{field}: {OFFLINE}")));
        }
    }
    if let Some(r) = &body.max_time_rounding {
        // Online codes keep their exact times: no rounding is within any maximum.
        if !matches!(r.as_str(), "1hour" | "1day" | "1h" | "1d") {
            return Err(CommandError::invalid(
                "max_time_rounding",
                "max_time_rounding must be one of 1hour, 1day, 1h, 1d",
            ));
        }
    }
    if body.sync == Some(true) {
        return Err(CommandError::invalid(
            "sync",
            "sync: lockhub answers once the code is stored, before it reaches the lock; follow access_code.set_on_device (send false or leave it out)",
        ));
    }
    if let Some(k) = &body.common_code_key {
        if k.is_empty() || k.chars().count() > 255 || k.chars().any(char::is_control) {
            return Err(CommandError::invalid(
                "common_code_key",
                "common_code_key must be 1 to 255 characters, without control characters",
            ));
        }
    }
    Ok(())
}

pub fn create_multiple(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: Body = parse::body(fields)?;
    let codes = plan(ctx, tx, body, true)?;
    let out: Vec<Value> = codes
        .iter()
        .map(|c| code_json(tx, c, ctx.now, ctx.settings, true))
        .collect::<Result<_, _>>()?;
    Ok(data("access_codes", Value::Array(out)))
}

/// The single-lock form: `device_id` instead of `device_ids`, and no
/// `common_code_key` (a lone code links to nothing).
pub fn create(ctx: &mut Ctx<'_>, tx: &Tx<'_>, mut fields: Map<String, Value>) -> CmdResult {
    if fields.contains_key("device_ids") {
        return Err(CommandError::invalid(
            "device_ids",
            "unknown field 'device_ids'; access_codes/create takes device_id",
        )
        .into());
    }
    match fields.remove("device_id") {
        Some(Value::String(id)) => {
            fields.insert("device_ids".into(), json!([id]));
        }
        Some(_) => {
            return Err(CommandError::invalid("device_id", "device_id must be a string").into())
        }
        None => return Err(CommandError::invalid("device_id", "device_id is required").into()),
    }
    let body: Body = parse::body(fields)?;
    let codes = plan(ctx, tx, body, false)?;
    Ok(data(
        "access_code",
        code_json(tx, &codes[0], ctx.now, ctx.settings, true)?,
    ))
}

fn preferred_length(v: Option<&Value>) -> Result<Option<u8>, CommandError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let bad = || {
        CommandError::invalid(
            "preferred_code_length",
            format!(
                "preferred_code_length must be a whole number from {} to {}",
                pin::MIN_CODE_LENGTH,
                pin::MAX_CODE_LENGTH
            ),
        )
    };
    let n = v.as_f64().ok_or_else(bad)?;
    if n.fract() != 0.0 || n < pin::MIN_CODE_LENGTH as f64 || n > pin::MAX_CODE_LENGTH as f64 {
        return Err(bad());
    }
    Ok(Some(n as u8))
}

/// One lock's part in the plan.
struct Member {
    device: DeviceRow,
    /// Every PIN on the lock or promised to it: a chosen PIN avoids them all.
    existing: Vec<Pin>,
    /// PINs of codes on the lock or still to go on it: a PIN the cloud gives
    /// must not be one of them (`plan::pins_in_use`).
    in_use: Vec<Pin>,
    /// PINs the lock held recently (hashes): never chosen again.
    recent: pin::RecentPins,
    /// The new code, without its PIN yet.
    draft: AccessCode,
}

impl Member {
    /// The lock as PIN choice sees it.
    fn view(&self) -> LockView<'_> {
        let mut v = LockView::new(&self.device.info.capabilities, &self.existing);
        v.recent = Some(&self.recent);
        v
    }

    /// The lock as a given PIN is checked against.
    fn given_view(&self) -> LockView<'_> {
        LockView::new(&self.device.info.capabilities, &self.in_use)
    }
}

fn refusal_details(members: &[Member], refusals: &[(usize, Refusal)]) -> Value {
    Value::Array(
        refusals
            .iter()
            .map(|(i, r)| {
                json!({
                    "device_id": members[*i].device.info.device_id,
                    "error_code": r.error_code(),
                    "reason": r.to_string(),
                })
            })
            .collect(),
    )
}

fn plan(
    ctx: &mut Ctx<'_>,
    tx: &Tx<'_>,
    body: Body,
    linked: bool,
) -> Result<Vec<AccessCode>, CommandFailed> {
    // ---- validate every field before looking at a lock ----
    if body.device_ids.is_empty() {
        return Err(CommandError::invalid(
            "device_ids",
            "device_ids must name at least one device",
        )
        .into());
    }
    let max = ctx.settings.max_devices_per_request;
    if body.device_ids.len() > max {
        return Err(CommandError::invalid(
            "device_ids",
            format!("at most {max} devices per request"),
        )
        .into());
    }
    let mut seen = HashSet::new();
    for id in &body.device_ids {
        if !seen.insert(id) {
            return Err(CommandError::invalid(
                "device_ids",
                format!("device {} is named twice", parse::printable(id)),
            )
            .into());
        }
    }
    check_unsupported(&body)?;
    // Removed from the lock after its first use (or its `max_uses`th), as
    // the lock reports them.
    let use_limit =
        parse::use_limit(body.is_one_time_use, body.max_uses.as_ref())?.applied_to(None);
    let name = parse::opt_name("name", body.name.as_deref())?;
    if let Some(code) = &body.code {
        pin::validate_syntax(code.expose()).map_err(|m| CommandError::invalid("code", m))?;
    }
    let preferred = preferred_length(body.preferred_code_length.as_ref())?;
    let window = plan::window(body.starts_at.as_deref(), body.ends_at.as_deref(), ctx.now)?;
    let weekly = match &body.weekly_schedule {
        Some(v) => parse::weekly_schedule(v)?,
        None => None,
    };
    let allow_ext = parse::external_modification(
        body.allow_external_modification,
        body.is_external_modification_allowed,
    )?
    .unwrap_or(false);
    let behavior = body.behavior_when_code_cannot_be_shared.unwrap_or_default();
    let flags = Defaults {
        allow_external_modification: allow_ext,
        prefer_native_scheduling: body.prefer_native_scheduling.unwrap_or(true),
        attempt_for_offline_device: body.attempt_for_offline_device.unwrap_or(true),
        use_backup_access_code_pool: body.use_backup_access_code_pool.unwrap_or(false),
        is_backup: false,
    };

    // ---- the locks ----
    let devices = plan::devices(tx, &body.device_ids)?;
    if !flags.attempt_for_offline_device {
        let offline: Vec<&str> = devices
            .iter()
            .filter(|d| !d.online)
            .map(|d| d.info.device_id.as_str())
            .collect();
        if !offline.is_empty() {
            return Err(CommandError::new(
                ErrorKind::DeviceOffline,
                format!(
                    "offline or not heard from yet: {} (attempt_for_offline_device is false)",
                    offline.join(", ")
                ),
            )
            .with_details("device_ids", json!(offline))
            .into());
        }
    }
    let timing = ctx.settings.timing();
    let members: Vec<Member> = devices
        .into_iter()
        .map(|d| {
            let id = d.info.device_id.clone();
            let mut draft = plan::new_code(
                ctx.now,
                &id,
                crate::model::access_code::NO_SLOT,
                Pin::new(""),
                None,
                name.as_deref(),
                &d.info.capabilities,
                window,
                flags,
                &timing,
            );
            if weekly.is_some() {
                plan::set_weekly(&mut draft, weekly, &d.info);
                draft.reported_status = Some(draft.status(None, ctx.now, &timing));
            }
            Ok(Member {
                existing: plan::codes_on_lock(tx, &id, None)?,
                in_use: plan::pins_in_use(tx, &id, ctx.now, &timing, None)?,
                recent: plan::recent_pins(tx, &id, ctx.now, ctx.settings)?,
                device: d,
                draft,
            })
        })
        .collect::<Result<_, CommandFailed>>()?;

    // ---- a group named by the caller: its codes share one PIN ----
    let group_pin = match &body.common_code_key {
        Some(k) => {
            let live: Vec<AccessCode> = tx
                .codes_by_key(k)?
                .into_iter()
                .filter(|c| !c.deleted)
                .collect();
            match (live.first(), &body.code) {
                (Some(c), Some(given)) if c.code.expose() != given.expose() => {
                    return Err(CommandError::invalid(
                        "code",
                        "the codes of this common_code_key have another code; leave code out to join the group",
                    )
                    .into())
                }
                (Some(c), _) => Some(c.code.clone()),
                (None, _) => None,
            }
        }
        None => None,
    };
    let given = body.code.clone().or(group_pin);

    // ---- the PIN for each lock ----
    let views: Vec<LockView<'_>> = members.iter().map(Member::view).collect();
    let mut rng = rand::rngs::OsRng;
    let mut pins: Vec<Option<Pin>> = vec![None; members.len()];
    let mut own_code: Vec<bool> = vec![false; members.len()];
    let refusals: Vec<(usize, Refusal)> = match &given {
        Some(code) => {
            let shared = code.clone();
            members
                .iter()
                .map(Member::given_view)
                .enumerate()
                .filter_map(|(i, v)| match pin::check(code.expose(), &v) {
                    Ok(()) => {
                        pins[i] = Some(shared.clone());
                        None
                    }
                    Err(r) => Some((i, r)),
                })
                .collect()
        }
        None => match pin::choose_for_group(&mut rng, preferred, &views) {
            Ok(p) => {
                pins.iter_mut().for_each(|slot| *slot = Some(p.clone()));
                Vec::new()
            }
            Err(refusals) => {
                // The locks not in the way still share one PIN.
                let blocked: HashSet<usize> = refusals.iter().map(|(i, _)| *i).collect();
                let rest: Vec<usize> = (0..members.len())
                    .filter(|i| !blocked.contains(i))
                    .collect();
                if behavior == Behavior::CreateRandomCode && !rest.is_empty() {
                    let rest_views: Vec<LockView<'_>> = rest.iter().map(|&i| views[i]).collect();
                    if let Ok(p) = pin::choose_for_group(&mut rng, preferred, &rest_views) {
                        rest.iter().for_each(|&i| pins[i] = Some(p.clone()));
                    }
                }
                refusals
            }
        },
    };
    if !refusals.is_empty() {
        match behavior {
            Behavior::Throw => {
                let kind = match &given {
                    Some(_) if refusals.iter().all(|(_, r)| *r == Refusal::DuplicateCode) => {
                        ErrorKind::DuplicateCodeOnDevice
                    }
                    Some(_) => ErrorKind::CodeConstraintsViolated,
                    None => ErrorKind::CannotShareCode,
                };
                let who: Vec<String> = refusals
                    .iter()
                    .map(|(i, r)| format!("{}: {}", members[*i].device.info.device_id, r))
                    .collect();
                return Err(CommandError::new(
                    kind,
                    format!("the code cannot be shared: {}", who.join("; ")),
                )
                .with_details("devices", refusal_details(&members, &refusals))
                .into());
            }
            Behavior::CreateRandomCode => {}
        }
    }
    // create_random_code: every lock still without a PIN gets one of its own.
    let mut failed = Vec::new();
    for i in 0..members.len() {
        if pins[i].is_some() {
            continue;
        }
        let mut existing = members[i].existing.clone();
        existing.extend(pins.iter().flatten().cloned());
        let mut view = LockView::new(&members[i].device.info.capabilities, &existing);
        view.recent = Some(&members[i].recent);
        match pin::choose_for_lock(&mut rng, preferred, &view) {
            Ok(p) => {
                pins[i] = Some(p);
                own_code[i] = true;
            }
            Err(r) => failed.push((i, r)),
        }
    }
    if !failed.is_empty() {
        return Err(CommandError::new(
            ErrorKind::CannotShareCode,
            "some locks cannot take any code lockhub can choose",
        )
        .with_details("devices", refusal_details(&members, &failed))
        .into());
    }

    // ---- slots over time: refused only where a moment would overflow ----
    let mut overflows = Vec::new();
    for m in &members {
        if let Some(need) = m.draft.slot_need(ctx.now, &timing) {
            let demand = LockDemand::load(tx, &m.device, ctx.now, &timing, &[])?;
            overflows.extend(demand.overflow(&[need]));
        }
    }
    if !overflows.is_empty() {
        return Err(capacity::refusal(&overflows).into());
    }

    // ---- write ----
    let key = body.common_code_key.clone().or_else(|| {
        (linked && body.code.is_none())
            .then(|| format!("auto_set_by_create_multiple_{}", uuid::Uuid::new_v4()))
    });
    let mut created = Vec::with_capacity(members.len());
    for (i, m) in members.into_iter().enumerate() {
        let mut code = m.draft;
        code.code = pins[i].clone().expect("every lock has a PIN by now");
        code.common_code_key = key.clone();
        if own_code[i] {
            code.raise_warning(Issue::new(
                "unknown_issue_with_access_code",
                "this lock could not share the group's code and was given a code of its own",
                ctx.now,
            ));
        }
        if m.device.slots_known {
            // Due now: its slot now, in this transaction (`slots::at_creation`).
            let capacity = m.device.info.capabilities.max_active_codes_supported;
            let slot = tx.lock_view(&code.device_id, |codes, observed| {
                crate::engine::slots::at_creation(
                    codes, &code, observed, capacity, ctx.now, &timing,
                )
            })?;
            if let Some(slot) = slot {
                code.slot = slot;
            }
        }
        tx.insert_code(&code)?;
        if let Some(d) = code.desired(ctx.now, &timing).filter(|d| d.slot != NO_SLOT) {
            // Its PIN goes out next: recorded as issued in this commit, so the
            // lock's reconciler sends it without a commit of its own first.
            tx.note_issued_ahead(&code.device_id, d.slot, &d.code)?;
            ctx.issued.push(super::Intent {
                device_id: code.device_id.clone(),
                slot: d.slot,
                pin: d.code,
            });
        }
        if let Some(n) = use_limit {
            tx.set_use_limit(&code.access_code_id, n)?;
        }
        tx.event(&Event::code("access_code.created", &code, ctx.now))?;
        ctx.publish_code(tx, &code)?;
        if flags.use_backup_access_code_pool {
            plan::fill_backup_pool(ctx, tx, &m.device)?;
        }
        created.push(code);
    }
    Ok(created)
}
