//! The access code as lockhub keeps it, and its public JSON form (the public
//! API's access_code object, validated against the published schema in tests).

use super::{Pin, TimeWindow, WeeklySchedule};
use crate::drivers::SlotCode;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// An error or a warning attached to an access code (public `errors[]` / `warnings[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    /// `error_code` or `warning_code` in the public form.
    pub code: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    /// For external modifications: `modified` or `removed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<String>,
}

impl Issue {
    pub fn new(code: &str, message: impl Into<String>, at: DateTime<Utc>) -> Self {
        Issue {
            code: code.into(),
            message: message.into(),
            created_at: at,
            change_type: None,
        }
    }

    /// Device-level errors carry `is_device_error`; the rest `is_access_code_error`.
    fn error_json(&self) -> Value {
        let mut v = json!({
            "error_code": self.code,
            "message": self.message,
            "created_at": ts(self.created_at),
        });
        if matches!(self.code.as_str(), "device_offline" | "device_removed") {
            v["is_device_error"] = json!(true);
        } else {
            v["is_access_code_error"] = json!(true);
        }
        if let Some(c) = &self.change_type {
            v["change_type"] = json!(c);
        }
        v
    }

    fn warning_json(&self) -> Value {
        let mut v = json!({
            "warning_code": self.code,
            "message": self.message,
            "created_at": ts(self.created_at),
        });
        if let Some(c) = &self.change_type {
            v["change_type"] = json!(c);
        }
        v
    }
}

/// RFC 3339 with milliseconds and `Z`, as the public API writes timestamps.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Public status of a code on its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Setting,
    Set,
    Unset,
    Removing,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Setting => "setting",
            Status::Set => "set",
            Status::Unset => "unset",
            Status::Removing => "removing",
            Status::Unknown => "unknown",
        }
    }
}

/// One access code on one lock, with everything lockhub needs to keep it right.
///
/// Its serde form is the store's sealed body only (the public form is
/// [`AccessCode::to_public`]): short keys, and a field at its default left
/// out. With every key spelled out and every default written, a body was
/// 800 bytes (1.1 KB sealed), three to a 4 KiB page: the rows a command adds
/// were the largest part of the pages it wrote, and reading a lock cold
/// meant parsing them all. The long names still read (`alias`): bodies
/// written before change form at their next save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessCode {
    #[serde(rename = "id", alias = "access_code_id")]
    pub access_code_id: String,
    #[serde(rename = "dev", alias = "device_id")]
    pub device_id: String,
    #[serde(
        rename = "n",
        alias = "name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// The name as the lock shows it (fitted to the lock's limits).
    #[serde(
        rename = "an",
        alias = "appearance_name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub appearance_name: Option<String>,
    #[serde(rename = "c", alias = "code")]
    pub code: Pin,
    #[serde(
        rename = "k",
        alias = "common_code_key",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub common_code_key: Option<String>,
    #[serde(
        rename = "w",
        alias = "window",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<TimeWindow>,
    #[serde(rename = "t", alias = "created_at")]
    pub created_at: DateTime<Utc>,
    /// The slot reserved for this code on its lock.
    #[serde(rename = "s", alias = "slot")]
    pub slot: u32,
    #[serde(
        rename = "b",
        alias = "is_backup",
        default,
        skip_serializing_if = "is_false"
    )]
    pub is_backup: bool,
    /// For a backup code handed out: the code it stands in for.
    #[serde(
        rename = "bf",
        alias = "backup_for",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub backup_for: Option<String>,
    /// For an original code: the backup pulled for it.
    #[serde(
        rename = "pb",
        alias = "pulled_backup_access_code_id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pulled_backup_access_code_id: Option<String>,
    #[serde(
        rename = "aem",
        alias = "allow_external_modification",
        default,
        skip_serializing_if = "is_false"
    )]
    pub allow_external_modification: bool,
    #[serde(
        rename = "pns",
        alias = "prefer_native_scheduling",
        default,
        skip_serializing_if = "is_false"
    )]
    pub prefer_native_scheduling: bool,
    #[serde(
        rename = "afo",
        alias = "attempt_for_offline_device",
        default,
        skip_serializing_if = "is_false"
    )]
    pub attempt_for_offline_device: bool,
    #[serde(
        rename = "ubp",
        alias = "use_backup_access_code_pool",
        default,
        skip_serializing_if = "is_false"
    )]
    pub use_backup_access_code_pool: bool,
    /// The lock holds the window itself (native scheduling in use).
    #[serde(
        rename = "sod",
        alias = "is_scheduled_on_device",
        default,
        skip_serializing_if = "is_false"
    )]
    pub is_scheduled_on_device: bool,
    #[serde(
        rename = "e",
        alias = "errors",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub errors: Vec<Issue>,
    #[serde(
        rename = "wa",
        alias = "warnings",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub warnings: Vec<Issue>,
    /// Deleted by the cloud: removed from the lock, then forgotten.
    #[serde(
        rename = "d",
        alias = "deleted",
        default,
        skip_serializing_if = "is_false"
    )]
    pub deleted: bool,
    /// Removed at the lock and honoured (external modification allowed): not put back.
    #[serde(
        rename = "r",
        alias = "removed_at_lock",
        default,
        skip_serializing_if = "is_false"
    )]
    pub removed_at_lock: bool,
    /// The status last reported upstream (to notice transitions).
    #[serde(
        rename = "rs",
        alias = "reported_status",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reported_status: Option<Status>,
    /// Retry bookkeeping for the pending operation on this code's slot.
    #[serde(
        rename = "re",
        alias = "retry",
        default,
        skip_serializing_if = "Retry::is_idle"
    )]
    pub retry: Retry,
    /// lockhub has put this code on the lock at least once.
    #[serde(
        rename = "es",
        alias = "ever_set",
        default,
        skip_serializing_if = "is_false"
    )]
    pub ever_set: bool,
    /// lockhub's recurring codes: open only on these weekdays and times of
    /// day (within `window` if set). Held by the lock where it can
    /// (`is_scheduled_on_device`), else set and removed by lockhub at each window.
    #[serde(
        rename = "wk",
        alias = "weekly",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub weekly: Option<WeeklySchedule>,
    /// When the code was last done with its lock for good (ended or deleted,
    /// and off the lock): the retention clock starts here. Cleared when an
    /// update makes the code due again.
    #[serde(
        rename = "f",
        alias = "finished_at",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub finished_at: Option<DateTime<Utc>>,
}

/// No slot: a code holds slot `NO_SLOT` until it is due on its lock, and again
/// once it has left it (slots are numbered from 1).
pub const NO_SLOT: u32 = 0;

fn is_false(b: &bool) -> bool {
    !*b
}

/// Where the pending operation on a code stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the first attempt of the current pending operation failed.
    pub failing_since: Option<DateTime<Utc>>,
    /// A final error stopped the operation; not retried until something changes.
    pub gave_up: bool,
}

impl Retry {
    /// Nothing pending has failed (the default).
    pub fn is_idle(&self) -> bool {
        *self == Retry::default()
    }
}

/// When codes go on their locks ahead of `starts_at`.
#[derive(Debug, Clone)]
pub struct Timing {
    /// A code lockhub times itself goes on the lock this long before `starts_at`.
    pub set_before_start: chrono::Duration,
    /// A natively scheduled code (the lock holds its window) is programmed
    /// this long before `starts_at` at the earliest, so that stays months
    /// ahead do not sit on the lock.
    pub native_schedule_horizon: chrono::Duration,
    /// The property's time zone (`model::zone`), in which weekly schedules
    /// are written: each window at its own UTC offset across DST changes.
    pub timezone: jiff::tz::TimeZone,
}

impl Timing {
    /// The defaults: 5 minutes ahead for lockhub-timed codes, 24 hours for
    /// natively scheduled ones.
    pub fn new(set_before_start: chrono::Duration) -> Self {
        Timing {
            set_before_start,
            native_schedule_horizon: chrono::Duration::hours(24),
            timezone: jiff::tz::TimeZone::UTC,
        }
    }
}

impl AccessCode {
    /// From when a time-bound code must be on its lock: `starts_at` minus the
    /// lead (`set_before_start`, or `native_schedule_horizon` when the lock
    /// holds the window). `None` for an ongoing code (always).
    pub fn on_lock_from(&self, timing: &Timing) -> Option<DateTime<Utc>> {
        let w = self.window?;
        Some(if self.is_scheduled_on_device {
            w.starts_at - timing.native_schedule_horizon
        } else {
            w.starts_at - timing.set_before_start
        })
    }

    /// The code is done with its lock for good: deleted and off the lock (its
    /// row is kept only for retention).
    pub fn is_finished_deleted(&self) -> bool {
        self.deleted && self.slot == NO_SLOT && self.finished_at.is_some()
    }

    /// The span during which this code needs a slot on its lock, from `now` on:
    /// `[from, until)`, `until` `None` meaning for ever. A code holding a slot
    /// needs it from now until its window ends, or (when it is past its end or
    /// deleted, but still in the slot) for a moment longer. `None`: no slot
    /// needed from now on.
    pub fn slot_need(
        &self,
        now: DateTime<Utc>,
        timing: &Timing,
    ) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
        let moment = chrono::Duration::milliseconds(1);
        let base = if self.deleted || self.removed_at_lock {
            None
        } else {
            match self.window {
                None => Some((now, None)),
                Some(w) => Some((
                    self.on_lock_from(timing).unwrap_or(w.starts_at).max(now),
                    Some(w.ends_at),
                )),
            }
        };
        let need = if self.slot != NO_SLOT {
            match base {
                Some((_, until)) => (now, until.map(|u| u.max(now + moment))),
                None => (now, Some(now + moment)),
            }
        } else {
            base?
        };
        match need.1 {
            Some(u) if u <= need.0 => None,
            _ => Some(need),
        }
    }

    /// A recurring code lockhub itself sets and removes at each window.
    pub fn is_hub_driven_weekly(&self) -> bool {
        self.weekly.is_some() && !self.is_scheduled_on_device
    }

    /// Within the code's life: not deleted, and inside its window (from its
    /// lead on) if it has one.
    fn alive(&self, now: DateTime<Utc>, timing: &Timing) -> bool {
        if self.deleted || self.removed_at_lock {
            return false;
        }
        match (&self.window, self.on_lock_from(timing)) {
            (Some(w), Some(from)) => now >= from && now < w.ends_at,
            _ => true,
        }
    }

    /// Should this code be on the lock at `now`, and with which window? A
    /// hub-driven weekly code is, during each of its windows (from
    /// `set_before_start` ahead); one the lock holds, for its whole life.
    pub fn desired(&self, now: DateTime<Utc>, timing: &Timing) -> Option<SlotCode> {
        self.wanted_on_lock(now, timing).then(|| self.content())
    }

    /// What its slot holds while the code is on the lock.
    pub fn content(&self) -> SlotCode {
        SlotCode {
            slot: self.slot,
            code: self.code.clone(),
            name: self.appearance_name.clone(),
            window: self.window_on_device(),
            recurring: self.weekly_on_device(),
        }
    }

    fn window_on_device(&self) -> Option<TimeWindow> {
        self.window.filter(|_| self.is_scheduled_on_device)
    }

    fn weekly_on_device(&self) -> Option<WeeklySchedule> {
        self.weekly.filter(|_| self.is_scheduled_on_device)
    }

    /// Whether a slot holds this code: `same_content(&self.content(),
    /// observed)` without building the content (a copy of the name). Every
    /// pass over a lock asks it of each code.
    pub fn held_by(&self, observed: &SlotCode) -> bool {
        self.code == observed.code
            && self.window_on_device() == observed.window
            && self.weekly_on_device() == observed.recurring
            && (observed.name.is_none() || self.appearance_name == observed.name)
    }

    /// Whether [`AccessCode::desired`] is `Some`, without building it (the
    /// slot step and capacity ask this of every code of a lock).
    pub fn wanted_on_lock(&self, now: DateTime<Utc>, timing: &Timing) -> bool {
        self.alive(now, timing)
            && match self.weekly {
                Some(s) if !self.is_scheduled_on_device => s
                    .current(now, timing.set_before_start, &timing.timezone)
                    .is_some(),
                _ => true,
            }
    }

    /// Does the code keep a slot on its lock at `now`? While it should be on
    /// the lock, and a recurring code for its whole life, between its windows
    /// too: each window then finds its slot (see `commands::capacity`).
    pub fn needs_slot(&self, now: DateTime<Utc>, timing: &Timing) -> bool {
        self.wanted_on_lock(now, timing) || (self.is_hub_driven_weekly() && self.alive(now, timing))
    }

    /// The next moment a hub-driven weekly code goes on or comes off its lock.
    pub fn next_weekly_change(&self, now: DateTime<Utc>, timing: &Timing) -> Option<DateTime<Utc>> {
        let s = self
            .weekly
            .filter(|_| self.is_hub_driven_weekly() && !self.deleted)?;
        s.next_change(now, timing.set_before_start, &timing.timezone)
    }

    /// Status derived from what should be and what is on the lock.
    pub fn status(
        &self,
        observed: Option<&SlotCode>,
        now: DateTime<Utc>,
        timing: &Timing,
    ) -> Status {
        match (self.wanted_on_lock(now, timing), observed) {
            (true, Some(o)) if self.held_by(o) => match &self.window {
                Some(w) if now < w.starts_at => Status::Unset,
                _ => Status::Set,
            },
            (true, _) => Status::Setting,
            (false, Some(o)) if o.code == self.code => Status::Removing,
            (false, _) => Status::Unset,
        }
    }

    /// The public access_code object. The PIN is included only when `reveal_code`.
    pub fn to_public(
        &self,
        observed: Option<&SlotCode>,
        now: DateTime<Utc>,
        timing: &Timing,
        workspace_id: &str,
        reveal_code: bool,
    ) -> Value {
        let status = self.status(observed, now, timing);
        let mut v = json!({
            "access_code_id": self.access_code_id,
            "device_id": self.device_id,
            "workspace_id": workspace_id,
            "name": self.name,
            "appearance": { "name": self.appearance_name },
            "code": if reveal_code { Some(self.code.expose().to_owned()) } else { None },
            "common_code_key": self.common_code_key,
            "type": if self.window.is_some() { "time_bound" } else { "ongoing" },
            "starts_at": self.window.map(|w| ts(w.starts_at)),
            "ends_at": self.window.map(|w| ts(w.ends_at)),
            "created_at": ts(self.created_at),
            "status": status.as_str(),
            "errors": self.errors.iter().map(Issue::error_json).collect::<Vec<_>>(),
            "warnings": self.warnings.iter().map(Issue::warning_json).collect::<Vec<_>>(),
            "pending_mutations": self.pending_mutations(observed, now, timing, reveal_code),
            "is_managed": true,
            "is_external_modification_allowed": self.allow_external_modification,
            "is_scheduled_on_device": self.is_scheduled_on_device,
            "is_waiting_for_code_assignment": false,
            "is_backup": self.is_backup,
            "is_backup_access_code_available": self.use_backup_access_code_pool
                && self.pulled_backup_access_code_id.is_none()
                && !self.is_backup,
            "pulled_backup_access_code_id": self.pulled_backup_access_code_id,
            "is_offline_access_code": false,
            "is_one_time_use": false,
            // lockhub's own: recurring weekly windows (docs/mqtt-api.md).
            "weekly_schedule": self.weekly.map(|w| w.to_json()),
        });
        if !reveal_code {
            v.as_object_mut().unwrap().remove("code");
            v["code"] = Value::Null;
        }
        v
    }

    /// What lockhub is still pushing to the lock for this code.
    fn pending_mutations(
        &self,
        observed: Option<&SlotCode>,
        now: DateTime<Utc>,
        timing: &Timing,
        reveal_code: bool,
    ) -> Vec<Value> {
        let since = ts(self.retry.failing_since.unwrap_or(self.created_at));
        let desired = self.desired(now, timing);
        let mut out = Vec::new();
        match (&desired, observed) {
            (None, Some(o)) if o.code == self.code => out.push(json!({
                "mutation_code": "deleting",
                "message": "removing the code from the lock",
                "created_at": since,
            })),
            (None, _) => {
                if let (Some(w), false, false) = (&self.window, self.deleted, self.removed_at_lock)
                {
                    if now < w.starts_at {
                        out.push(json!({
                            "mutation_code": "deferring_creation",
                            "message": "the code goes on the lock shortly before its window opens",
                            "created_at": ts(self.created_at),
                            "scheduled_at": ts(self.on_lock_from(timing).unwrap_or(w.starts_at)),
                        }));
                    }
                }
            }
            (Some(_), None) => out.push(json!({
                "mutation_code": "creating",
                "message": "putting the code on the lock",
                "created_at": since,
            })),
            (Some(d), Some(o)) => {
                let mask = |p: &crate::model::Pin| reveal_code.then(|| p.expose().to_owned());
                if d.code != o.code {
                    out.push(json!({
                        "mutation_code": "updating_code",
                        "message": "changing the code on the lock",
                        "created_at": since,
                        "from": { "code": mask(&o.code) },
                        "to": { "code": mask(&d.code) },
                    }));
                }
                if d.name != o.name && o.name.is_some() {
                    out.push(json!({
                        "mutation_code": "updating_name",
                        "message": "changing the name on the lock",
                        "created_at": since,
                        "from": { "name": o.name },
                        "to": { "name": d.name },
                    }));
                }
                if d.window != o.window {
                    out.push(json!({
                        "mutation_code": "updating_time_frame",
                        "message": "changing the time window on the lock",
                        "created_at": since,
                        "from": { "starts_at": o.window.map(|w| ts(w.starts_at)), "ends_at": o.window.map(|w| ts(w.ends_at)) },
                        "to": { "starts_at": d.window.map(|w| ts(w.starts_at)), "ends_at": d.window.map(|w| ts(w.ends_at)) },
                    }));
                }
            }
        }
        out
    }

    /// lockhub has put this code on its lock at least once (so a different
    /// PIN found in its slot is a change to *our* code, not a stranger's).
    pub fn was_set_once(&self) -> bool {
        self.ever_set
    }

    pub fn has_error(&self, code: &str) -> bool {
        self.errors.iter().any(|e| e.code == code)
    }

    pub fn has_warning(&self, code: &str) -> bool {
        self.warnings.iter().any(|e| e.code == code)
    }

    /// Add an error once (an existing one keeps its first `created_at`).
    pub fn raise_error(&mut self, issue: Issue) -> bool {
        if self.has_error(&issue.code) {
            return false;
        }
        self.errors.push(issue);
        true
    }

    pub fn raise_warning(&mut self, issue: Issue) -> bool {
        if self.has_warning(&issue.code) {
            return false;
        }
        self.warnings.push(issue);
        true
    }

    pub fn clear_error(&mut self, code: &str) {
        self.errors.retain(|e| e.code != code);
    }

    pub fn clear_warning(&mut self, code: &str) {
        self.warnings.retain(|e| e.code != code);
    }
}

/// Does the lock hold what lockhub wants there? Names are compared only where
/// the lock reports one (many keypads store no names).
pub fn same_content(desired: &SlotCode, observed: &SlotCode) -> bool {
    desired.code == observed.code
        && desired.window == observed.window
        && desired.recurring == observed.recurring
        && (observed.name.is_none() || desired.name == observed.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_780_000_000 + s, 123_456_000).unwrap()
    }

    /// A code with every field away from its default.
    fn everything() -> AccessCode {
        AccessCode {
            access_code_id: "5f0c5a4e-8d0b-4c9e-9a51-1f6f2d5b7c31".into(),
            device_id: "00000000-0000-4000-8000-000000000007".into(),
            name: Some("Guest 12".into()),
            appearance_name: Some("Guest12".into()),
            code: Pin::new("59741"),
            common_code_key: Some("ccc-1".into()),
            window: Some(TimeWindow {
                starts_at: at(0),
                ends_at: at(86_400),
            }),
            created_at: at(-60),
            slot: 12,
            is_backup: true,
            backup_for: Some("a".into()),
            pulled_backup_access_code_id: Some("b".into()),
            allow_external_modification: true,
            prefer_native_scheduling: true,
            attempt_for_offline_device: true,
            use_backup_access_code_pool: true,
            is_scheduled_on_device: true,
            errors: vec![Issue::new("failed_to_set_on_device", "no", at(1))],
            warnings: vec![Issue {
                change_type: Some("modified".into()),
                ..Issue::new("code_modified_external_to_seam", "changed", at(2))
            }],
            deleted: true,
            removed_at_lock: true,
            reported_status: Some(Status::Setting),
            retry: Retry {
                attempts: 3,
                next_attempt_at: Some(at(3)),
                failing_since: Some(at(4)),
                gave_up: true,
            },
            ever_set: true,
            weekly: Some(WeeklySchedule {
                days: 0b0011111,
                start_time: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                end_time: chrono::NaiveTime::from_hms_opt(17, 30, 0).unwrap(),
            }),
            finished_at: Some(at(5)),
        }
    }

    /// A body as lockhub wrote it before the short keys: every field, by
    /// its name.
    fn long_form(c: &AccessCode) -> serde_json::Value {
        json!({
            "access_code_id": c.access_code_id,
            "device_id": c.device_id,
            "name": c.name,
            "appearance_name": c.appearance_name,
            "code": c.code.expose(),
            "common_code_key": c.common_code_key,
            "window": c.window,
            "created_at": c.created_at,
            "slot": c.slot,
            "is_backup": c.is_backup,
            "backup_for": c.backup_for,
            "pulled_backup_access_code_id": c.pulled_backup_access_code_id,
            "allow_external_modification": c.allow_external_modification,
            "prefer_native_scheduling": c.prefer_native_scheduling,
            "attempt_for_offline_device": c.attempt_for_offline_device,
            "use_backup_access_code_pool": c.use_backup_access_code_pool,
            "is_scheduled_on_device": c.is_scheduled_on_device,
            "errors": c.errors,
            "warnings": c.warnings,
            "deleted": c.deleted,
            "removed_at_lock": c.removed_at_lock,
            "reported_status": c.reported_status,
            "retry": c.retry,
            "ever_set": c.ever_set,
            "weekly": c.weekly,
            "finished_at": c.finished_at,
        })
    }

    /// A fresh code as a create_multiple stores it (defaults left), with
    /// the ids, names and times of a real one.
    fn fresh() -> AccessCode {
        let all = everything();
        AccessCode {
            access_code_id: all.access_code_id,
            device_id: all.device_id,
            name: all.name,
            appearance_name: all.appearance_name,
            common_code_key: all.common_code_key,
            created_at: all.created_at,
            ..crate::engine::plan::tests::code(all.slot, "59741", all.window)
        }
    }

    #[test]
    fn a_body_round_trips_and_one_written_before_the_short_keys_still_reads() {
        for c in [everything(), fresh()] {
            let body = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<AccessCode>(&body).unwrap(), c);
            let old = long_form(&c).to_string();
            assert_eq!(
                serde_json::from_str::<AccessCode>(&old).unwrap(),
                c,
                "{old}"
            );
        }
    }

    #[test]
    fn a_fresh_code_body_is_less_than_half_its_long_form() {
        let c = fresh();
        let (short, long) = (
            serde_json::to_string(&c).unwrap().len(),
            long_form(&c).to_string().len(),
        );
        assert!(short * 2 < long, "{short} bytes vs {long} spelled out");
    }
}
