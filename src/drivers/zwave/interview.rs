//! The node interview: what a lock is and what it can do. It reads, and
//! never writes a slot: codes already on a lock stay there (read_slots
//! returns them and the engine treats them as unmanaged).
//!
//! Interviews of different locks run at the same time; each one's frames
//! queue for the radio like any other, and its waits for reports overlap
//! with the others' traffic.

use super::cc::{self, id, user_code};
use super::node::{Filter, Inner, NodeFacts};
use super::security::{s0, s2, SecurityClass};
use super::serialapi::{self, func, update, Listening};
use crate::drivers::DriverError;
use std::sync::Arc;

/// Why an interview stopped early (it is tried again when the node speaks).
#[derive(Debug, thiserror::Error)]
pub enum InterviewError {
    #[error("the node sleeps; waiting for its wake-up")]
    Asleep,
    #[error("the node did not send its node information")]
    NoNodeInfo,
    #[error("{0}")]
    Driver(#[from] DriverError),
    #[error("controller: {0}")]
    Session(#[from] super::session::SessionError),
    #[error("controller answer: {0}")]
    Parse(#[from] serialapi::ParseError),
    #[error("node answer: {0}")]
    Cc(#[from] cc::CcError),
}

impl Inner {
    /// Interviews `node` unless that is already under way; announces it as
    /// `Discovered` when it is a lock.
    pub(super) async fn interview(self: Arc<Self>, node: u8) {
        let lock = match self.with_node(node, |n| {
            if n.interviewing {
                None
            } else {
                n.interviewing = true;
                Some(n.op_lock.clone())
            }
        }) {
            Some(Some(l)) => l,
            _ => return,
        };
        let guard = lock.lock().await;
        let result = self.run_interview(node).await;
        drop(guard);
        self.with_node(node, |n| n.interviewing = false);
        match result {
            Ok(Some(facts)) => {
                self.with_node(node, |n| n.facts = Some(facts));
                tracing::info!(node, "z-wave lock interviewed");
                self.announce(node);
            }
            Ok(None) => {
                tracing::info!(node, "z-wave node is not a lock; ignored");
                self.nodes.lock().unwrap().remove(&node);
            }
            Err(e) => tracing::warn!(node, error = %e, "z-wave interview incomplete"),
        }
    }

    async fn run_interview(
        self: &Arc<Self>,
        node: u8,
    ) -> Result<Option<NodeFacts>, InterviewError> {
        let pi = self
            .session
            .request(func::GET_NODE_PROTOCOL_INFO, vec![node])
            .await?;
        let Some(pi) = serialapi::parse_protocol_info(&pi)? else {
            return Ok(None);
        };
        let awake = self
            .with_node(node, |n| {
                n.listening = pi.listening;
                n.awake
            })
            .unwrap_or(false);
        if pi.listening == Listening::Sleeping && !awake {
            return Err(InterviewError::Asleep);
        }
        let nif = self.session.request_node_info(node).await?;
        if nif.first() != Some(&update::NODE_INFO_RECEIVED) {
            self.mark_offline(node);
            return Err(InterviewError::NoNodeInfo);
        }
        self.mark_alive(node);
        let (_, mut classes) = serialapi::parse_node_info(&nif)?;
        // The security class first: every secure-only command after it goes
        // in that class (and its reports are believed only in it).
        let (security, secure_ccs) = self.probe_security(node, &classes).await;
        for cc in &secure_ccs {
            if !classes.contains(cc) {
                classes.push(*cc);
            }
        }
        if !classes.contains(&id::USER_CODE) {
            return Ok(None);
        }
        let mut f = NodeFacts {
            classes,
            security,
            ..Default::default()
        };
        if f.supports(id::MANUFACTURER_SPECIFIC) {
            let r = self
                .request(
                    node,
                    cc::manufacturer_specific::get(),
                    (id::MANUFACTURER_SPECIFIC, cc::manufacturer_specific::REPORT),
                    Filter::Any,
                )
                .await?;
            f.manufacturer = Some(cc::manufacturer_specific::parse_report(&r)?);
        }
        if f.supports(id::VERSION) {
            for class in [id::USER_CODE, id::SCHEDULE_ENTRY_LOCK, id::SUPERVISION] {
                if !f.supports(class) {
                    continue;
                }
                let r = self
                    .request(
                        node,
                        cc::version::cc_get(class),
                        (id::VERSION, cc::version::CC_REPORT),
                        Filter::Byte2(class),
                    )
                    .await?;
                let (c, v) = cc::version::parse_cc_report(&r)?;
                f.versions.insert(c, v);
            }
        }
        let r = self
            .request(
                node,
                user_code::users_number_get(),
                (id::USER_CODE, user_code::USERS_NUMBER_REPORT),
                Filter::Any,
            )
            .await?;
        f.users = user_code::parse_users_number(&r)?;
        if f.version(id::USER_CODE) >= 2 {
            let r = self
                .request(
                    node,
                    user_code::capabilities_get(),
                    (id::USER_CODE, user_code::CAPABILITIES_REPORT),
                    Filter::Any,
                )
                .await?;
            f.uc_caps = Some(user_code::parse_capabilities(&r)?);
        }
        if f.supports(id::SCHEDULE_ENTRY_LOCK) {
            let r = self
                .request(
                    node,
                    cc::schedule_entry_lock::supported_get(),
                    (
                        id::SCHEDULE_ENTRY_LOCK,
                        cc::schedule_entry_lock::SUPPORTED_REPORT,
                    ),
                    Filter::Any,
                )
                .await?;
            let supported = cc::schedule_entry_lock::parse_supported(&r)?;
            f.year_day_slots = supported.year_day_slots;
            f.week_day_slots = supported.week_day_slots;
        }
        // State worth reporting, not needed to serve the lock: ask without
        // waiting (a lock that never answers costs no timeout); the
        // dispatcher turns the reports into DoorLock / Battery events.
        if f.supports(id::DOOR_LOCK) {
            if let Err(e) = self.send(node, cc::door_lock::operation_get()).await {
                tracing::debug!(node, error = %e, "door lock state not asked");
            }
        }
        if f.supports(id::BATTERY) {
            if let Err(e) = self.send(node, cc::battery::get()).await {
                tracing::debug!(node, error = %e, "battery level not asked");
            }
        }
        Ok(Some(f))
    }

    /// Finds the node's highest granted security class and the command
    /// classes it supports only there: Commands Supported Get in each S2
    /// class we hold a key for, highest first (a node answers with its list
    /// only in its highest class), then S0. The answer is handed to the
    /// security layer at once.
    async fn probe_security(
        self: &Arc<Self>,
        node: u8,
        classes: &[u8],
    ) -> (SecurityClass, Vec<u8>) {
        let s2_cc = classes.contains(&id::SECURITY_S2);
        let s0_cc = classes.contains(&id::SECURITY_S0);
        if !s2_cc && !s0_cc {
            self.security
                .set_node(node, SecurityClass::None, Vec::new());
            return (SecurityClass::None, Vec::new());
        }
        if !self.security.has_keys() {
            tracing::warn!(
                node,
                "the lock speaks Security S0/S2 but lockhub has no network keys"
            );
            self.security
                .set_node(node, SecurityClass::None, Vec::new());
            return (SecurityClass::None, Vec::new());
        }
        let mut found: Option<(SecurityClass, Vec<u8>)> = None;
        if s2_cc {
            for class in SecurityClass::S2 {
                let r = self
                    .request_in(
                        node,
                        s2::commands_supported_get(),
                        (id::SECURITY_S2, s2::cmd::COMMANDS_SUPPORTED_REPORT),
                        Filter::Any,
                        Some(class),
                    )
                    .await;
                match r {
                    Ok(r) => {
                        let ccs = s2::parse_commands_supported(&r);
                        let answered_with_list = !ccs.is_empty();
                        if found.is_none() || answered_with_list {
                            found = Some((class, ccs));
                        }
                        if answered_with_list {
                            break;
                        }
                    }
                    Err(e) => tracing::debug!(node, class = %class, error = %e, "no S2 answer"),
                }
            }
        }
        if found.is_none() && s0_cc {
            match self
                .request_in(
                    node,
                    s0::commands_supported_get(),
                    (id::SECURITY_S0, s0::cmd::COMMANDS_SUPPORTED_REPORT),
                    Filter::Any,
                    Some(SecurityClass::S0Legacy),
                )
                .await
            {
                Ok(r) => found = Some((SecurityClass::S0Legacy, s0::parse_commands_supported(&r))),
                Err(e) => tracing::debug!(node, error = %e, "no S0 answer"),
            }
        }
        let (class, ccs) = found.unwrap_or_else(|| {
            tracing::warn!(
                node,
                "the lock speaks Security S0/S2 but answered under none of lockhub's keys (another network's keys file?)"
            );
            (SecurityClass::None, Vec::new())
        });
        tracing::info!(node, security_class = %class, "z-wave security class");
        self.security.set_node(node, class, ccs.clone());
        (class, ccs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CodeConstraint;

    fn facts(keys: &str) -> NodeFacts {
        let mut f = NodeFacts {
            classes: vec![id::USER_CODE, id::SCHEDULE_ENTRY_LOCK, id::VERSION],
            users: 30,
            year_day_slots: 2,
            week_day_slots: 0,
            ..Default::default()
        };
        f.versions.insert(id::USER_CODE, 2);
        f.uc_caps = Some(user_code::Capabilities {
            keys: keys.into(),
            ..Default::default()
        });
        f
    }

    #[test]
    fn capabilities_from_facts() {
        let c = facts("0123456789").capabilities();
        assert_eq!(c.supported_code_lengths, vec![4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(c.max_active_codes_supported, 30);
        assert!(c.supports_native_scheduling);
        assert!(c.code_constraints.is_empty());
        assert_eq!(
            facts("123456789").capabilities().code_constraints,
            vec![CodeConstraint::NoZeros]
        );
        assert_eq!(
            facts("1234567").capabilities().code_constraints,
            vec![CodeConstraint::CannotContain089]
        );
        assert_eq!(
            facts("123456").capabilities().code_constraints,
            vec![CodeConstraint::CannotContain0789]
        );
        let mut no_sched = facts("0123456789");
        no_sched.year_day_slots = 0;
        assert!(!no_sched.capabilities().supports_native_scheduling);
    }
}
