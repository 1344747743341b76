//! The typed errors a command answers with (`error.type` on the wire).

use serde_json::{json, Value};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidInput,
    UnknownCommand,
    PayloadTooLarge,
    DeviceNotFound,
    AccessCodeNotFound,
    CommonCodeKeyNotFound,
    CannotShareCode,
    DeviceOffline,
    CodeConstraintsViolated,
    DuplicateCodeOnDevice,
    NoSpaceForAccessCodeOnDevice,
    BackupAccessCodePoolEmpty,
    Unauthorized,
    /// The `request_id` was first used with another body (lockhub's addition).
    RequestIdConflict,
    /// The lock cannot do what was asked (e.g. lock remotely): lockhub's addition.
    UnsupportedByDevice,
    /// The lock did not confirm a lock/unlock (it refused, or never
    /// answered): lockhub's addition, on an action attempt's `error`.
    LockDidNotConfirm,
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::UnknownCommand => "unknown_command",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::DeviceNotFound => "device_not_found",
            ErrorKind::AccessCodeNotFound => "access_code_not_found",
            ErrorKind::CommonCodeKeyNotFound => "common_code_key_not_found",
            ErrorKind::CannotShareCode => "cannot_share_code",
            ErrorKind::DeviceOffline => "device_offline",
            ErrorKind::CodeConstraintsViolated => "code_constraints_violated",
            ErrorKind::DuplicateCodeOnDevice => "duplicate_code_on_device",
            ErrorKind::NoSpaceForAccessCodeOnDevice => "no_space_for_access_code_on_device",
            ErrorKind::BackupAccessCodePoolEmpty => "backup_access_code_pool_empty",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::RequestIdConflict => "request_id_conflict",
            ErrorKind::UnsupportedByDevice => "unsupported_by_device",
            ErrorKind::LockDidNotConfirm => "lock_did_not_confirm",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A refused command: a safe message for the wire (never a PIN), the field at
/// fault where there is one, and details (e.g. each device and why).
#[derive(Debug, Clone, PartialEq)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
    pub field: Option<String>,
    pub details: Vec<(String, Value)>,
}

impl CommandError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CommandError {
            kind,
            message: message.into(),
            field: None,
            details: Vec::new(),
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        CommandError {
            field: Some(field.into()),
            ..Self::new(ErrorKind::InvalidInput, message)
        }
    }

    pub fn with_details(mut self, key: &str, value: Value) -> Self {
        self.details.push((key.into(), value));
        self
    }

    pub fn to_response(&self, request_id: Option<&str>) -> Value {
        let mut err = json!({ "type": self.kind.as_str(), "message": self.message });
        if let Some(f) = &self.field {
            err["field"] = json!(f);
        }
        for (k, v) in &self.details {
            err[k.as_str()] = v.clone();
        }
        let mut resp = json!({ "ok": false, "error": err });
        if let Some(id) = request_id {
            resp["request_id"] = json!(id);
        }
        resp
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for CommandError {}
