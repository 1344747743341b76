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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessCode {
    pub access_code_id: String,
    pub device_id: String,
    pub name: Option<String>,
    /// The name as the lock shows it (fitted to the lock's limits).
    pub appearance_name: Option<String>,
    pub code: Pin,
    pub common_code_key: Option<String>,
    pub window: Option<TimeWindow>,
    pub created_at: DateTime<Utc>,
    /// The slot reserved for this code on its lock.
    pub slot: u32,
    pub is_backup: bool,
    /// For a backup code handed out: the code it stands in for.
    pub backup_for: Option<String>,
    /// For an original code: the backup pulled for it.
    pub pulled_backup_access_code_id: Option<String>,
    pub allow_external_modification: bool,
    pub prefer_native_scheduling: bool,
    pub attempt_for_offline_device: bool,
    pub use_backup_access_code_pool: bool,
    /// The lock holds the window itself (native scheduling in use).
    pub is_scheduled_on_device: bool,
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
    /// Deleted by the cloud: removed from the lock, then forgotten.
    pub deleted: bool,
    /// Removed at the lock and honoured (external modification allowed): not put back.
    pub removed_at_lock: bool,
    /// The status last reported upstream (to notice transitions).
    pub reported_status: Option<Status>,
    /// Retry bookkeeping for the pending operation on this code's slot.
    #[serde(default)]
    pub retry: Retry,
    /// lockhub has put this code on the lock at least once.
    #[serde(default)]
    pub ever_set: bool,
    /// lockhub's recurring codes: open only on these weekdays and times of
    /// day (within `window` if set). Held by the lock where it can
    /// (`is_scheduled_on_device`), else set and removed by lockhub at each window.
    #[serde(default)]
    pub weekly: Option<WeeklySchedule>,
    /// When the code was last done with its lock for good (ended or deleted,
    /// and off the lock): the retention clock starts here. Cleared when an
    /// update makes the code due again.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
}

/// No slot: a code holds slot `NO_SLOT` until it is due on its lock, and again
/// once it has left it (slots are numbered from 1).
pub const NO_SLOT: u32 = 0;

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
