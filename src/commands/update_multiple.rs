//! `access_codes/update_multiple`: a new window, name and/or (lockhub's own)
//! `weekly_schedule` and `max_uses` for every code of a linked group (late checkout, early
//! check-in, a cleaner's new days). It supersedes whatever was
//! still pending for them: the engine reconciles toward the new desired state.

use super::error::{CommandError, ErrorKind};
use super::{parse, plan, update, CmdResult, Ctx};
use crate::model::TimeWindow;
use crate::store::Tx;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    common_code_key: String,
    starts_at: Option<String>,
    ends_at: Option<String>,
    name: Option<String>,
    /// lockhub's own: a new recurring schedule, or `null` to clear it.
    #[serde(default, deserialize_with = "parse::present")]
    weekly_schedule: Option<Value>,
    /// lockhub's own: a new use limit for each code, or `null` for none.
    #[serde(default, deserialize_with = "parse::present")]
    max_uses: Option<Value>,
}

pub fn run(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: Body = parse::body(fields)?;
    if body.starts_at.is_none()
        && body.ends_at.is_none()
        && body.name.is_none()
        && body.weekly_schedule.is_none()
        && body.max_uses.is_none()
    {
        return Err(CommandError::invalid(
            "common_code_key",
            "nothing to update: give starts_at, ends_at, name, weekly_schedule or max_uses",
        )
        .into());
    }
    let name = parse::opt_name("name", body.name.as_deref())?;
    let weekly = body
        .weekly_schedule
        .as_ref()
        .map(parse::weekly_schedule)
        .transpose()?;
    let use_limit = parse::use_limit(None, body.max_uses.as_ref())?;
    let starts = parse::opt_timestamp("starts_at", body.starts_at.as_deref())?;
    let ends = parse::opt_timestamp("ends_at", body.ends_at.as_deref())?;
    let codes: Vec<_> = tx
        .codes_by_key(&body.common_code_key)?
        .into_iter()
        .filter(|c| !c.deleted)
        .collect();
    if codes.is_empty() {
        return Err(CommandError::new(
            ErrorKind::CommonCodeKeyNotFound,
            format!(
                "no access codes with common_code_key {}",
                parse::printable(&body.common_code_key)
            ),
        )
        .with_details(
            "common_code_key",
            Value::String(parse::printable(&body.common_code_key)),
        )
        .into());
    }
    // Validate the new window against every code before changing any.
    let mut windows = Vec::with_capacity(codes.len());
    for c in &codes {
        let w = match (starts, ends, c.window) {
            (None, None, w) => w,
            (s, Some(e), w) => Some(TimeWindow {
                starts_at: s.or(w.map(|w| w.starts_at)).unwrap_or(ctx.now),
                ends_at: e,
            }),
            (Some(s), None, Some(w)) => Some(TimeWindow {
                starts_at: s,
                ends_at: w.ends_at,
            }),
            (Some(_), None, None) => {
                return Err(CommandError::invalid(
                    "ends_at",
                    "an ongoing code needs ends_at to become time-bound",
                )
                .into())
            }
        };
        windows.push(w.map(|w| plan::checked(w, ctx.now)).transpose()?);
    }
    for (c, w) in codes.into_iter().zip(windows) {
        let changes = update::Changes {
            name: name.as_ref().map(|n| Some(n.clone())),
            window: Some(w),
            new_pin: None,
            weekly,
            use_limit,
        };
        update::apply_changes(ctx, tx, c, changes)?;
    }
    Ok(Map::new())
}
