//! `access_codes/generate_code` (a PIN the lock would accept now, nothing
//! stored) and `access_codes/report_device_constraints` (an integrator reports
//! the lengths a lock really takes; PIN choice uses them at once, and they
//! outlive the driver's own report at every start).

use super::error::{CommandError, ErrorKind};
use super::{data, devices, parse, plan, CmdResult, Ctx};
use crate::pin::{self, LockView};
use crate::store::{ReportedConstraints, Tx};
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateBody {
    device_id: String,
}

/// `{ generated_code: { device_id, code } }`: a code the lock accepts, clashing
/// with nothing on it or promised to it, and none it held recently.
pub fn generate(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: GenerateBody = parse::body(fields)?;
    let device = plan::devices(tx, std::slice::from_ref(&body.device_id))?.remove(0);
    let id = &device.info.device_id;
    let existing = plan::codes_on_lock(tx, id, None)?;
    let recent = plan::recent_pins(tx, id, ctx.now, ctx.settings)?;
    let mut view = LockView::new(&device.info.capabilities, &existing);
    view.recent = Some(&recent);
    let code = pin::choose_for_lock(&mut rand::rngs::OsRng, None, &view).map_err(|r| {
        CommandError::new(
            ErrorKind::CodeConstraintsViolated,
            format!("device {id}: {r}"),
        )
    })?;
    Ok(data(
        "generated_code",
        json!({ "device_id": id, "code": code.expose() }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    device_id: String,
    supported_code_lengths: Option<Vec<Value>>,
    min_code_length: Option<Value>,
    max_code_length: Option<Value>,
}

/// A whole number of digits lockhub can put in a code (the create body's
/// rule: 4 to 9; the public API allows reports up to 20, which no code
/// lockhub makes could use).
fn length(field: &str, v: &Value) -> Result<u8, CommandError> {
    v.as_f64()
        .filter(|n| n.fract() == 0.0)
        .filter(|n| (pin::MIN_CODE_LENGTH as f64..=pin::MAX_CODE_LENGTH as f64).contains(n))
        .map(|n| n as u8)
        .ok_or_else(|| {
            CommandError::invalid(
                field,
                format!(
                    "{field}: code lengths are whole numbers from {} to {} (lockhub's codes)",
                    pin::MIN_CODE_LENGTH,
                    pin::MAX_CODE_LENGTH
                ),
            )
        })
}

pub fn report(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: ReportBody = parse::body(fields)?;
    let device = plan::devices(tx, std::slice::from_ref(&body.device_id))?.remove(0);
    let mut lengths: Vec<u8> = match (
        &body.supported_code_lengths,
        &body.min_code_length,
        &body.max_code_length,
    ) {
        (Some(list), None, None) => {
            if list.is_empty() {
                return Err(CommandError::invalid(
                    "supported_code_lengths",
                    "supported_code_lengths must name at least one length",
                )
                .into());
            }
            list.iter()
                .map(|v| length("supported_code_lengths", v))
                .collect::<Result<_, _>>()?
        }
        (None, min, max) if min.is_some() || max.is_some() => {
            let lo = min
                .as_ref()
                .map(|v| length("min_code_length", v))
                .transpose()?
                .unwrap_or(pin::MIN_CODE_LENGTH as u8);
            let hi = max
                .as_ref()
                .map(|v| length("max_code_length", v))
                .transpose()?
                .unwrap_or(pin::MAX_CODE_LENGTH as u8);
            if lo > hi {
                return Err(CommandError::invalid(
                    "max_code_length",
                    "max_code_length must not be below min_code_length",
                )
                .into());
            }
            (lo..=hi).collect()
        }
        (Some(_), _, _) => {
            return Err(CommandError::invalid(
                "supported_code_lengths",
                "give supported_code_lengths, or min_code_length/max_code_length, not both",
            )
            .into())
        }
        _ => {
            return Err(CommandError::invalid(
                "supported_code_lengths",
                "give supported_code_lengths, or min_code_length and/or max_code_length",
            )
            .into())
        }
    };
    lengths.sort_unstable();
    lengths.dedup();
    let id = device.info.device_id.clone();
    tx.set_reported_constraints(
        &id,
        &ReportedConstraints {
            supported_code_lengths: lengths,
        },
    )?;
    // The lock's retained state shows the lengths now in force.
    devices::queue_device_state(tx, &id)?;
    ctx.touched.insert(id);
    Ok(Map::new())
}
