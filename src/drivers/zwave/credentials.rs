//! A User Credential lock's PIN codes as lockhub's slots: lockhub slot N is
//! PIN credential slot N, owned by user N when lockhub puts it there (a PIN
//! someone else enrolled keeps its owner). The lock answers every Set with a
//! User or Credential Report, so no Supervision and no read-back are needed
//! to know a Set landed; the PIN credential checksum tells whether a re-read
//! can be skipped, and confirms remembered PINs a lock keeps only as hashes. Same radio discipline as `slots` (one op at a time under
//! the node's lock, Gets retried by `retry`, Sets not).

use super::cc::user_credential::{self as uc, credential_report as cr, user_report as ur};
use super::cc::{self, id};
use super::node::{Filter, Inner, NodeFacts, Walk};
use super::quirks;
use crate::drivers::{DriverError, SlotOp};
use crate::model::Pin;
use std::sync::Arc;

fn failed(e: cc::CcError) -> DriverError {
    DriverError::Failed(e.to_string())
}

/// Offsets of the 16-bit slot in a Credential Report and the user id in a
/// User Report (class and command bytes included).
const CREDENTIAL_SLOT_AT: usize = 6;
const USER_ID_AT: usize = 8;

/// The lock's PIN credential checksum.
pub(super) async fn lock_checksum(inner: &Arc<Inner>, node: u8) -> Result<u16, DriverError> {
    let r = inner
        .get(
            node,
            uc::credential_checksum_get(),
            (id::USER_CREDENTIAL, uc::CREDENTIAL_CHECKSUM_REPORT),
            Filter::Byte2(uc::TYPE_PIN),
        )
        .await?;
    Ok(uc::parse_credential_checksum(&r).map_err(failed)?.1)
}

/// Walks the PIN slots from `walk.next` on, from credential to next
/// credential (only the occupied ones cost a frame); on an error `walk`
/// holds what was read and where to go on (`slots::read_locked` resumes it,
/// and skips the walk where the checksum matches). A PIN the lock does not
/// read back (it keeps a hash) marks the lock as hiding codes.
pub(super) async fn walk(
    inner: &Arc<Inner>,
    node: u8,
    facts: &NodeFacts,
    walk: &mut Walk,
) -> Result<(), DriverError> {
    let slots_max = facts.users as u32;
    while walk.next != 0 && walk.next <= slots_max {
        let slot = walk.next;
        let b = inner
            .get(
                node,
                uc::credential_get(slot),
                (id::USER_CREDENTIAL, uc::CREDENTIAL_REPORT),
                Filter::U16At(CREDENTIAL_SLOT_AT, slot as u16),
            )
            .await?;
        let r = uc::parse_credential_report(&b).map_err(failed)?;
        let code = inner
            .with_node(node, |n| {
                if r.occupied() && !r.read_back && !n.masked {
                    tracing::info!(
                        node,
                        "the lock keeps PINs it does not read back: verified by checksum from now on"
                    );
                    n.masked = true;
                }
                quirks::resolve(
                    r.occupied(),
                    r.code.clone(),
                    !r.read_back,
                    n.written.get(&slot),
                )
            })
            .flatten();
        match code {
            Some(code) => {
                walk.found.insert(slot, code);
                walk.owners.insert(slot, r.user);
            }
            None => {
                walk.found.remove(&slot);
                walk.owners.remove(&slot);
            }
        }
        walk.next = match r.next {
            (uc::TYPE_PIN, next) if next > slot => next,
            _ => 0,
        };
    }
    Ok(())
}

/// Puts one op on the lock and keeps the owners and the cache in step.
pub(super) async fn apply_one(
    inner: &Arc<Inner>,
    node: u8,
    facts: &NodeFacts,
    op: &SlotOp,
) -> Result<(), DriverError> {
    let slot = op.slot();
    let owner = inner
        .with_node(node, |n| n.owners.get(&slot).copied())
        .flatten();
    match op {
        SlotOp::Set(c) => {
            let user = match owner {
                Some(u) => u,
                None => {
                    let name = c.name.as_deref().unwrap_or("");
                    let max = facts
                        .credentials
                        .as_ref()
                        .map_or(0, |f| f.users.max_name_len);
                    add_user(inner, node, slot, name, max).await?;
                    slot
                }
            };
            let operation = if owner.is_some() {
                uc::op::MODIFY
            } else {
                uc::op::ADD
            };
            let r = set_credential(inner, node, operation, user, slot, &c.code).await?;
            let r = match r.report_type {
                // The cache was stale: the other operation is the right one.
                cr::ADD_REJECTED_OCCUPIED if r.user != 0 => {
                    set_credential(inner, node, uc::op::MODIFY, r.user, slot, &c.code).await?
                }
                cr::MODIFY_REJECTED_EMPTY => {
                    add_user(inner, node, slot, "", 0).await?;
                    set_credential(inner, node, uc::op::ADD, slot, slot, &c.code).await?
                }
                _ => r,
            };
            match r.report_type {
                cr::ADDED | cr::MODIFIED | cr::UNCHANGED => {
                    let owner = if r.user != 0 { r.user } else { user };
                    inner.with_node(node, |n| n.owners.insert(slot, owner));
                    inner.remember(node, op);
                    Ok(())
                }
                other => Err(refusal(slot, other)),
            }
        }
        SlotOp::Clear { .. } => {
            let user = owner.unwrap_or(slot);
            let r = inner
                .request(
                    node,
                    uc::credential_delete(user, slot).map_err(failed)?,
                    (id::USER_CREDENTIAL, uc::CREDENTIAL_REPORT),
                    Filter::U16At(CREDENTIAL_SLOT_AT, slot as u16),
                )
                .await?;
            let r = uc::parse_credential_report(&r).map_err(failed)?;
            if r.report_type != cr::DELETED {
                return Err(refusal(slot, r.report_type));
            }
            if user == slot {
                // lockhub's own user for this slot goes with its PIN.
                let r = inner
                    .request(
                        node,
                        uc::user_delete(slot).map_err(failed)?,
                        (id::USER_CREDENTIAL, uc::USER_REPORT),
                        Filter::U16At(USER_ID_AT, slot as u16),
                    )
                    .await?;
                let r = uc::parse_user_report(&r).map_err(failed)?;
                if r.report_type != ur::DELETED {
                    tracing::info!(
                        node,
                        slot,
                        report = r.report_type,
                        "the lock kept the user of a deleted PIN"
                    );
                }
            }
            inner.with_node(node, |n| n.owners.remove(&slot));
            inner.remember(node, op);
            Ok(())
        }
    }
}

/// Adds user `user` (already there is fine: it owns nothing of ours yet).
async fn add_user(
    inner: &Arc<Inner>,
    node: u8,
    user: u32,
    name: &str,
    max_name_len: u8,
) -> Result<(), DriverError> {
    let r = inner
        .request(
            node,
            uc::user_set(uc::op::ADD, user, name, max_name_len).map_err(failed)?,
            (id::USER_CREDENTIAL, uc::USER_REPORT),
            Filter::U16At(USER_ID_AT, user as u16),
        )
        .await?;
    match uc::parse_user_report(&r).map_err(failed)?.report_type {
        ur::ADDED | ur::UNCHANGED | ur::ADD_REJECTED_OCCUPIED => Ok(()),
        other => Err(DriverError::Failed(format!(
            "the lock refused user {user} (user report type {other})"
        ))),
    }
}

async fn set_credential(
    inner: &Arc<Inner>,
    node: u8,
    operation: u8,
    user: u32,
    slot: u32,
    code: &Pin,
) -> Result<uc::CredentialReport, DriverError> {
    let r = inner
        .request(
            node,
            uc::credential_set(operation, user, slot, code).map_err(failed)?,
            (id::USER_CREDENTIAL, uc::CREDENTIAL_REPORT),
            Filter::U16At(CREDENTIAL_SLOT_AT, slot as u16),
        )
        .await?;
    uc::parse_credential_report(&r).map_err(failed)
}

/// The driver error for a Credential Report that says no.
fn refusal(slot: u32, report_type: u8) -> DriverError {
    match report_type {
        cr::DUPLICATE => DriverError::DuplicateCode,
        cr::DUPLICATE_ADMIN => {
            DriverError::CodeRejected("the code is the lock's admin code".into())
        }
        cr::MANUFACTURER_RULES => {
            DriverError::CodeRejected("the lock's security rules refuse the code".into())
        }
        cr::WRONG_USER => DriverError::Failed(format!(
            "PIN slot {slot} belongs to a user lockhub did not expect"
        )),
        other => DriverError::Failed(format!(
            "the lock answered PIN slot {slot} with credential report type {other}"
        )),
    }
}
