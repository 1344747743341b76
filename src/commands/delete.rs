//! `access_codes/delete`: the code is marked deleted (status `removing`) and the
//! engine takes it off the lock; then it is forgotten and its retained state cleared.

use super::update::live_code;
use super::{parse, CmdResult, Ctx};
use crate::model::access_code::NO_SLOT;
use crate::model::{Event, Issue};
use crate::store::Tx;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    access_code_id: String,
}

pub fn run(ctx: &mut Ctx<'_>, tx: &Tx<'_>, fields: Map<String, Value>) -> CmdResult {
    let body: Body = parse::body(fields)?;
    let code = live_code(tx, &body.access_code_id)?;
    let mut doomed = vec![code.clone()];
    // A backup handed out for this code goes with it.
    if let Some(b) = code.pulled_backup_access_code_id.as_deref() {
        if let Some(b) = tx.code(b)?.filter(|b| !b.deleted) {
            doomed.push(b);
        }
    }
    for mut c in doomed {
        c.deleted = true;
        c.retry = Default::default();
        c.raise_warning(Issue::new(
            "being_deleted",
            "the code is being removed from the lock",
            ctx.now,
        ));
        tx.event(&Event::code("access_code.deleted", &c, ctx.now))?;
        if c.slot == NO_SLOT {
            // Never on the lock (or already off it): done at once; the row
            // stays for the retention period only.
            c.finished_at = Some(ctx.now);
            tx.save_code(&c)?;
            tx.publish(&format!("access_codes/{}", c.access_code_id), b"", true)?;
            ctx.touched.insert(c.device_id.clone());
        } else {
            tx.save_code(&c)?;
            ctx.publish_code(tx, &c)?;
        }
    }
    Ok(Map::new())
}
