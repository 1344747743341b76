//! The node interview: what a lock is and what it can do. It reads, and
//! never writes a slot: codes already on a lock stay there (read_slots
//! returns them and the engine treats them as unmanaged).
//!
//! Interviews of different locks run at the same time; each one's frames
//! queue for the radio like any other, and its waits for reports overlap
//! with the others' traffic.

use super::cc::{self, id, user_code, user_credential};
use super::node::{CredentialFacts, Filter, Inner, NodeFacts};
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
                // Its clock right after (the announcement does not wait; a
                // window sent meanwhile sets the clock first).
                let i = self.clone();
                self.interviews
                    .spawn(async move { i.ensure_clock(node).await });
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
        if !classes.contains(&id::USER_CODE) && !classes.contains(&id::USER_CREDENTIAL) {
            return Ok(None);
        }
        let mut f = NodeFacts {
            clock: super::lock_clock::ClockKind::among(&classes),
            classes,
            security,
            quirks: self.config.quirks_of(node),
            ..Default::default()
        };
        if f.supports(id::MANUFACTURER_SPECIFIC) {
            let r = self
                .get(
                    node,
                    cc::manufacturer_specific::get(),
                    (id::MANUFACTURER_SPECIFIC, cc::manufacturer_specific::REPORT),
                    Filter::Any,
                )
                .await?;
            f.manufacturer = Some(cc::manufacturer_specific::parse_report(&r)?);
        }
        if f.supports(id::VERSION) {
            for class in [
                id::USER_CODE,
                id::USER_CREDENTIAL,
                id::SCHEDULE_ENTRY_LOCK,
                id::SUPERVISION,
            ] {
                if !f.supports(class) {
                    continue;
                }
                let r = self
                    .get(
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
        // A lock that speaks User Credential is driven by it (its User Code,
        // if any, is the old view of the same PINs).
        if f.supports(id::USER_CREDENTIAL) {
            f.credentials = self.credential_facts(node).await?;
            if let Some(c) = &f.credentials {
                f.users = c.users.users.min(c.pin.slots);
            }
        }
        if f.credentials.is_none() {
            if !f.supports(id::USER_CODE) {
                tracing::info!(node, "User Credential lock without PIN codes: not served");
                return Ok(None);
            }
            self.user_code_facts(node, &mut f).await?;
        }
        if f.supports(id::SCHEDULE_ENTRY_LOCK) {
            let r = self
                .get(
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

    /// Users and PIN codes of a User Credential lock; `None` when it holds
    /// no PIN codes.
    async fn credential_facts(
        self: &Arc<Self>,
        node: u8,
    ) -> Result<Option<CredentialFacts>, InterviewError> {
        let r = self
            .get(
                node,
                user_credential::user_capabilities_get(),
                (
                    id::USER_CREDENTIAL,
                    user_credential::USER_CAPABILITIES_REPORT,
                ),
                Filter::Any,
            )
            .await?;
        let users = user_credential::parse_user_capabilities(&r)?;
        let r = self
            .get(
                node,
                user_credential::credential_capabilities_get(),
                (
                    id::USER_CREDENTIAL,
                    user_credential::CREDENTIAL_CAPABILITIES_REPORT,
                ),
                Filter::Any,
            )
            .await?;
        let caps = user_credential::parse_credential_capabilities(&r)?;
        Ok(caps.pin().map(|pin| CredentialFacts {
            users,
            pin: pin.clone(),
            checksum: caps.checksum,
        }))
    }

    /// Users, keys and v2 abilities of a User Code lock.
    async fn user_code_facts(
        self: &Arc<Self>,
        node: u8,
        f: &mut NodeFacts,
    ) -> Result<(), InterviewError> {
        let r = self
            .get(
                node,
                user_code::users_number_get(),
                (id::USER_CODE, user_code::USERS_NUMBER_REPORT),
                Filter::Any,
            )
            .await?;
        f.users = user_code::parse_users_number(&r)?;
        if f.version(id::USER_CODE) >= 2 {
            let r = self
                .get(
                    node,
                    user_code::capabilities_get(),
                    (id::USER_CODE, user_code::CAPABILITIES_REPORT),
                    Filter::Any,
                )
                .await?;
            f.uc_caps = Some(user_code::parse_capabilities(&r)?);
        }
        Ok(())
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
            classes: vec![
                id::USER_CODE,
                id::SCHEDULE_ENTRY_LOCK,
                id::VERSION,
                id::TIME_PARAMETERS,
            ],
            users: 30,
            year_day_slots: 2,
            clock: super::super::lock_clock::ClockKind::TimeParameters,
            week_day_slots: 0,
            ..Default::default()
        };
        f.versions.insert(id::USER_CODE, 2);
        f.versions.insert(id::SCHEDULE_ENTRY_LOCK, 3);
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
        // Windows need a clock lockhub sets, with a date, and the time zone.
        use super::super::lock_clock::ClockKind;
        for clock in [ClockKind::None, ClockKind::Clock] {
            let mut f = facts("0123456789");
            f.clock = clock;
            assert!(!f.capabilities().supports_native_scheduling, "{clock:?}");
        }
        let mut v1 = facts("0123456789");
        v1.versions.insert(id::SCHEDULE_ENTRY_LOCK, 1);
        assert!(
            !v1.capabilities().supports_native_scheduling,
            "no time offset"
        );
    }

    #[test]
    fn lengths_and_supervision_from_the_lock_then_config() {
        use crate::drivers::zwave::LockQuirks;
        let mut f = facts("0123456789");
        f.classes.push(id::SUPERVISION);
        f.quirks = LockQuirks {
            code_lengths: Some((4, 6)),
            supervision: Some(false),
            ..Default::default()
        };
        assert_eq!(
            f.capabilities().supported_code_lengths,
            vec![4, 5, 6],
            "config's"
        );
        assert!(!f.supervise(true), "config says no");
        f.quirks.supervision = None;
        assert!(f.supervise(true) && !f.supervise(false));
        // A User Credential lock says its lengths itself; those win.
        f.credentials = Some(CredentialFacts {
            pin: user_credential::CredentialType {
                credential_type: user_credential::TYPE_PIN,
                slots: 20,
                min_len: 6,
                max_len: 8,
                max_hash_len: 0,
            },
            ..Default::default()
        });
        let c = f.capabilities();
        assert_eq!(c.supported_code_lengths, vec![6, 7, 8]);
        assert!(
            !c.supports_native_scheduling,
            "year-day slots are User Code's"
        );
        f.quirks.code_lengths = None;
        f.credentials = None;
        assert_eq!(f.code_lengths(), 4..=10, "User Code's own");
    }
}
