//! `access_codes/get` and `access_codes/list`: read-only.

use super::error::CommandError;
use super::update::live_code;
use super::{code_json, data, parse, plan, CmdResult, Ctx};
use crate::store::Tx;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetBody {
    access_code_id: String,
}

pub fn get(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: GetBody = parse::body(fields)?;
    let code = live_code(tx, &body.access_code_id)?;
    Ok(data(
        "access_code",
        code_json(tx, &code, ctx.now, ctx.settings, true)?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListBody {
    device_id: Option<String>,
    access_code_ids: Option<Vec<String>>,
}

/// Codes of one device, or the codes named (unknown ids are simply absent, as in
/// a search); one of the two is required.
pub fn list(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: ListBody = parse::body(fields)?;
    let codes = match (&body.device_id, &body.access_code_ids) {
        (Some(d), None) => {
            plan::devices(tx, std::slice::from_ref(d))?;
            tx.codes_for_device(d)?
        }
        (None, Some(ids)) => {
            if ids.len() > 1000 {
                return Err(CommandError::invalid(
                    "access_code_ids",
                    "at most 1000 ids per request",
                )
                .into());
            }
            let mut v = Vec::new();
            for id in ids {
                v.extend(tx.code(id)?);
            }
            v
        }
        _ => {
            return Err(CommandError::invalid(
                "device_id",
                "give exactly one of device_id or access_code_ids",
            )
            .into());
        }
    };
    let out: Vec<Value> = codes
        .iter()
        .filter(|c| !c.deleted)
        .map(|c| code_json(tx, c, ctx.now, ctx.settings, true))
        .collect::<Result<_, _>>()?;
    Ok(data("access_codes", Value::Array(out)))
}
