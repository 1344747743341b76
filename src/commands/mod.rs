//! Commands: parse, validate, plan, and commit each command's whole effect,
//! with its response, in ONE transaction. Nothing here touches a radio: the
//! engine is woken for the locks a command changed.
//!
//! Every input gets an answer. A payload too broken to carry a usable
//! `request_id` is answered on `responses/_invalid`; everything else on
//! `responses/{request_id}`, and that response is stored so a replay of the
//! same `request_id` returns it again and changes nothing.

mod backup;
pub mod capacity;
mod constraints;
mod create;
mod delete;
mod devices;
mod error;
mod fingerprint;
mod locks;
mod parse;
mod plan;
mod read;
mod unmanaged;
mod update;
mod update_multiple;

pub use devices::{battery_state, battery_status, device_json, queue_device_state};
pub use error::{CommandError, ErrorKind};
pub use parse::{check_request_id, is_noncharacter, scan_request_id};

use crate::engine::clock::Clock;
use crate::model::AccessCode;
use crate::settings::HubSettings;
use crate::store::{ReplyTo, Store, StoreError, Tx};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The commands lockhub answers, as named in topics and on the socket.
pub const COMMANDS: &[&str] = &[
    "access_codes/create_multiple",
    "access_codes/update_multiple",
    "access_codes/create",
    "access_codes/update",
    "access_codes/delete",
    "access_codes/get",
    "access_codes/list",
    "access_codes/pull_backup_access_code",
    "access_codes/generate_code",
    "access_codes/report_device_constraints",
    "access_codes/unmanaged/list",
    "access_codes/unmanaged/get",
    "access_codes/unmanaged/convert_to_managed",
    "access_codes/unmanaged/update",
    "access_codes/unmanaged/delete",
    "devices/list",
    "devices/get",
    "locks/lock_door",
    "locks/unlock_door",
];

/// Longest `request_id` accepted (it becomes part of a topic).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Called after a commit with what it changed.
pub type Waker = Arc<dyn Fn(&Woken<'_>) + Send + Sync>;

/// What a commit tells the engine.
pub struct Woken<'a> {
    /// Devices whose desired state changed.
    pub devices: &'a [String],
    /// PINs the commit recorded as about to go to a slot (`store::issued`),
    /// so the lock's reconciler need not commit them again before sending.
    pub issued: &'a [Intent],
}

/// A PIN recorded in `store::issued` for a lock's slot.
#[derive(Debug, Clone)]
pub struct Intent {
    pub device_id: String,
    pub slot: u32,
    pub pin: crate::model::Pin,
}

/// The command side of the hub.
pub struct Commands {
    pub store: Arc<Store>,
    pub clock: Arc<dyn Clock>,
    pub settings: HubSettings,
    waker: Waker,
}

/// What one command's planning needs besides the transaction.
pub(crate) struct Ctx<'a> {
    pub now: DateTime<Utc>,
    pub settings: &'a HubSettings,
    /// Devices whose locks must be reconciled after the commit.
    pub touched: BTreeSet<String>,
    /// PINs recorded in `store::issued` by the commands that stood.
    pub issued: Vec<Intent>,
    /// An action attempt the command started: its answer waits for the lock
    /// (`engine::actions` sends it), so none is stored or sent now.
    pub deferred: Option<crate::store::ActionAttempt>,
}

impl Ctx<'_> {
    /// Save a code and queue its retained state (PIN masked unless configured).
    pub fn publish_code(&mut self, tx: &Tx<'_>, code: &AccessCode) -> Result<(), StoreError> {
        publish_code_state(tx, code, self.now, self.settings)?;
        self.touched.insert(code.device_id.clone());
        Ok(())
    }
}

/// Queue the retained state of one code.
pub fn publish_code_state(
    tx: &Tx<'_>,
    code: &AccessCode,
    now: DateTime<Utc>,
    settings: &HubSettings,
) -> Result<(), StoreError> {
    let observed = tx.observed_slot(&code.device_id, code.slot)?;
    let mut body = code.to_public(
        observed.as_ref(),
        now,
        &settings.timing(),
        &settings.workspace_id,
        settings.publish_codes,
    );
    with_last_use(tx, code, &mut body)?;
    let topic = format!("access_codes/{}", code.access_code_id);
    let payload = serde_json::to_vec(&body)?;
    if settings.publish_codes {
        tx.publish(&topic, &payload, true)
    } else {
        // The PIN masked: nothing in it to seal.
        tx.publish_public(&topic, &payload, true)
    }
}

/// The public form of a code as stored now (the PIN included when `reveal`).
pub fn code_json(
    tx: &Tx<'_>,
    code: &AccessCode,
    now: DateTime<Utc>,
    settings: &HubSettings,
    reveal: bool,
) -> Result<Value, StoreError> {
    let observed = tx.observed_slot(&code.device_id, code.slot)?;
    let mut body = code.to_public(
        observed.as_ref(),
        now,
        &settings.timing(),
        &settings.workspace_id,
        reveal,
    );
    with_last_use(tx, code, &mut body)?;
    Ok(body)
}

/// `last_used_at` (lockhub's addition): when the lock last reported an
/// unlock with this code; `null` until it has. `is_one_time_use`, and
/// lockhub's use counts: `max_uses` (`null`: no limit) and `use_count`
/// (the unlocks the lock reported with it).
fn with_last_use(tx: &Tx<'_>, code: &AccessCode, body: &mut Value) -> Result<(), StoreError> {
    let id = &code.access_code_id;
    let limit = tx.use_limit(id)?;
    body["last_used_at"] = json!(tx.code_last_used(id)?);
    body["is_one_time_use"] = json!(limit == Some(1));
    body["max_uses"] = json!(limit);
    body["use_count"] = json!(tx.code_use_count(id)?);
    Ok(())
}

/// A command as it arrived, with what its transport knows about it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub command: &'a str,
    pub payload: &'a [u8],
    /// Answer there instead of `responses/{request_id}` (an MQTT 5 Response Topic).
    pub reply_to: Option<&'a ReplyTo>,
    /// Refused by the transport before it is read (a retained publish, a bad
    /// Response Topic): answered with this error, nothing changed, nothing stored.
    pub refused: Option<&'a CommandError>,
    /// Not signed even in signed mode: from the local socket (whose peer
    /// credentials were checked), or Home Assistant's lock command where
    /// `[homeassistant] commands = true` lets it in.
    pub local: bool,
}

impl<'a> Request<'a> {
    pub fn new(command: &'a str, payload: &'a [u8]) -> Self {
        Request {
            command,
            payload,
            reply_to: None,
            refused: None,
            local: false,
        }
    }
}

/// A response, ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// `responses/{request_id}` or `responses/_invalid`.
    pub topic: String,
    pub body: Value,
}

impl Commands {
    pub fn new(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        settings: HubSettings,
        waker: Waker,
    ) -> Self {
        store.set_workspace_id(&settings.workspace_id);
        Commands {
            store,
            clock,
            settings,
            waker,
        }
    }

    /// Handle one command end to end: its effect and its response are committed
    /// (the response queued in the outbox) when this returns.
    pub fn execute(&self, command: &str, payload: &[u8]) -> Reply {
        self.execute_many(&[(command, payload)])
            .pop()
            .expect("one reply per command")
    }

    /// Handle several commands in ONE transaction (group commit): each runs in
    /// its own savepoint, so a refused one leaves nothing behind while the others
    /// commit together, with one fsync for all. Replies come in order.
    pub fn execute_many(&self, batch: &[(&str, &[u8])]) -> Vec<Reply> {
        let requests: Vec<Request<'_>> = batch.iter().map(|(c, p)| Request::new(c, p)).collect();
        self.execute_requests(&requests)
    }

    /// [`Commands::execute_many`] with what the transport knows of each command.
    ///
    /// A batch whose transaction fails for a reason other than the storage
    /// (a command hitting a bug or a damaged row) is run again one command
    /// per transaction, so the others commit as if alone; a command that fails
    /// by itself too is answered `internal`, unstored (nothing of it was
    /// applied, and a retry with the same `request_id` runs afresh).
    pub fn execute_requests(&self, batch: &[Request<'_>]) -> Vec<Reply> {
        let e = match self.commit(batch) {
            Ok(replies) => return replies,
            Err(e) => e,
        };
        if e.is_storage_fault() {
            // Nothing was committed, so nothing is acked (the MQTT ingest
            // holds the commands and retries them).
            tracing::error!(error = %e, commands = batch.len(), "store failed while handling commands");
            return batch.iter().map(|req| uncommitted(req, &e)).collect();
        }
        if batch.len() > 1 {
            tracing::warn!(error = %e, commands = batch.len(), "a command batch failed (not the storage): each command again in its own transaction");
        }
        batch
            .iter()
            .map(|req| {
                let why = if batch.len() == 1 {
                    e.to_string()
                } else {
                    match self.commit(std::slice::from_ref(req)) {
                        Ok(mut r) => return r.remove(0),
                        Err(e) if e.is_storage_fault() => return uncommitted(req, &e),
                        Err(e) => e.to_string(),
                    }
                };
                let request_id = parse::scan_request_id(req.payload)
                    .filter(|id| parse::check_request_id(id).is_ok())
                    .unwrap_or_default();
                tracing::error!(error = %why, command = parse::printable(req.command), request_id, "command failed with an internal error; nothing of it applied, answered internal");
                unstored_answer(req.payload, &internal_error())
            })
            .collect()
    }

    /// Runs `batch` in one transaction; wakes the locks it changed.
    fn commit(&self, batch: &[Request<'_>]) -> Result<Vec<Reply>, StoreError> {
        let mut ctx = Ctx {
            now: self.clock.now(),
            settings: &self.settings,
            touched: BTreeSet::new(),
            issued: Vec::new(),
            deferred: None,
        };
        let replies = self.store.write_urgent(|tx| {
            batch
                .iter()
                .map(|req| self.one(&mut ctx, tx, req))
                .collect::<Result<Vec<Reply>, StoreError>>()
        })?;
        let touched: Vec<String> = ctx.touched.into_iter().collect();
        if !touched.is_empty() {
            (self.waker)(&Woken {
                devices: &touched,
                issued: &ctx.issued,
            });
        }
        Ok(replies)
    }

    /// One command inside the batch's transaction.
    fn one(&self, ctx: &mut Ctx<'_>, tx: &Tx<'_>, req: &Request<'_>) -> Result<Reply, StoreError> {
        let now = ctx.now;
        let command = req.command;
        // An answer that is not stored: nothing happened, so a corrected retry runs.
        let answer = |request_id: Option<&str>, err: &CommandError| -> Result<Reply, StoreError> {
            let resp = err.to_response(request_id);
            let topic = match request_id {
                Some(id) => format!("responses/{id}"),
                None => "responses/_invalid".to_string(),
            };
            tx.publish_reply(&topic, &serde_json::to_vec(&resp)?, req.reply_to)?;
            Ok(Reply { topic, body: resp })
        };
        // Signed mode: the signature, the claims and the jti first; the body
        // inside is then handled as in off mode.
        let verified;
        let mut payload = req.payload;
        if let (Some(trust), false) = (&self.settings.trust, req.local) {
            let unauthorized =
                |request_id: Option<&str>, message: &str| -> Result<Reply, StoreError> {
                    tracing::info!(command, reason = message, "unauthorized command");
                    let err = CommandError::new(ErrorKind::Unauthorized, message);
                    let resp = err.to_response(request_id);
                    let topic = "responses/_invalid".to_string();
                    tx.publish_reply(&topic, &serde_json::to_vec(&resp)?, req.reply_to)?;
                    Ok(Reply { topic, body: resp })
                };
            if payload.len() > self.settings.max_payload_bytes.saturating_mul(2) {
                return unauthorized(None, "payload too large");
            }
            verified = match trust.verify(command, payload, now.timestamp()) {
                Ok(v) => v,
                Err(r) => return unauthorized(r.request_id.as_deref(), &r.message),
            };
            if tx.jti_used(&verified.jti, now.timestamp())? {
                let id = serde_json::from_slice::<Value>(&verified.body)
                    .ok()
                    .and_then(|b| b["request_id"].as_str().map(str::to_owned))
                    .filter(|id| parse::check_request_id(id).is_ok());
                return unauthorized(
                    id.as_deref(),
                    "jti was already used: a signed command is accepted once",
                );
            }
            tx.remember_jti(&verified.jti, verified.exp, now.timestamp())?;
            payload = &verified.body;
        }
        let body = match parse::envelope(payload, self.settings.max_payload_bytes) {
            Ok(b) => b,
            Err((request_id, err)) => {
                tracing::info!(error = %err.message, "unusable command payload");
                return answer(request_id.as_deref(), &err);
            }
        };
        if let Some(err) = req.refused {
            tracing::info!(request_id = body.request_id, command, error = %err.message, "command refused by its transport");
            return answer(Some(&body.request_id), err);
        }
        let request_id = body.request_id;
        let topic = format!("responses/{request_id}");
        let print = fingerprint::of(command, &body.fields);
        if let Some(stored) = tx.response(&request_id)? {
            if tx
                .request_fingerprint(&request_id)?
                .is_some_and(|first| first != print)
            {
                let err = CommandError::new(
                    ErrorKind::RequestIdConflict,
                    "this request_id was first used with another command or body; use a new request_id",
                )
                .with_details("request_id", json!(request_id));
                tracing::info!(request_id, command, "request_id reused with another body");
                return answer(Some(&request_id), &err);
            }
            // A replay: send the first answer again, change nothing.
            tx.publish_reply(&topic, stored.as_bytes(), req.reply_to)?;
            tracing::debug!(
                request_id,
                command,
                "replayed request answered from the store"
            );
            return Ok(Reply {
                topic,
                body: serde_json::from_str(&stored)?,
            });
        }
        if let Some(a) = tx.action_attempt_for_request(&request_id)? {
            // A lock/unlock still waiting for its lock: its answer comes then
            // (to where this replay asks).
            tx.set_action_reply(&a.action_attempt_id, req.reply_to, &print)?;
            return Ok(pending_reply(&topic, &request_id, &a));
        }
        let mut touched = BTreeSet::new();
        std::mem::swap(&mut touched, &mut ctx.touched);
        let issued_before = ctx.issued.len();
        tx.savepoint()?;
        let resp = match self.route(command, body.fields, ctx, tx) {
            Ok(data) => {
                if !ctx.touched.is_empty() {
                    // The audit chain: a command that changed something (no PIN).
                    tx.audit(
                        "command",
                        &json!({"request_id": request_id, "command": command, "device_ids": ctx.touched}),
                        ctx.now,
                    )?;
                }
                tx.release()?;
                touched.append(&mut ctx.touched);
                if let Some(mut a) = ctx.deferred.take() {
                    a.request_id = request_id.clone();
                    a.reply_to = req.reply_to.cloned();
                    a.fingerprint = Some(print);
                    tx.insert_action_attempt(&a)?;
                    ctx.touched = touched;
                    return Ok(pending_reply(&topic, &request_id, &a));
                }
                let mut resp = Map::new();
                resp.insert("request_id".into(), json!(request_id));
                resp.insert("ok".into(), json!(true));
                resp.extend(data);
                Value::Object(resp)
            }
            Err(CommandFailed::Store(e)) => return Err(e),
            Err(CommandFailed::Command(err)) => {
                // Roll back whatever the command wrote; keep only its answer.
                tx.rollback_to()?;
                ctx.deferred = None;
                ctx.issued.truncate(issued_before);
                tracing::info!(request_id, command, error = %err.message, kind = err.kind.as_str(), "command refused");
                err.to_response(Some(&request_id))
            }
        };
        ctx.touched = touched;
        let text = serde_json::to_string(&resp)?;
        tx.save_response(&request_id, command, &text, Some(&print), now)?;
        tx.publish_reply(&topic, text.as_bytes(), req.reply_to)?;
        Ok(Reply { topic, body: resp })
    }

    fn route(
        &self,
        command: &str,
        body: Map<String, Value>,
        ctx: &mut Ctx<'_>,
        tx: &Tx<'_>,
    ) -> Result<Map<String, Value>, CommandFailed> {
        match command {
            "access_codes/create_multiple" => create::create_multiple(ctx, tx, body),
            "access_codes/create" => create::create(ctx, tx, body),
            "access_codes/update_multiple" => update_multiple::run(ctx, tx, body),
            "access_codes/update" => update::run(ctx, tx, body),
            "access_codes/delete" => delete::run(ctx, tx, body),
            "access_codes/get" => read::get(ctx, tx, body),
            "access_codes/list" => read::list(ctx, tx, body),
            "access_codes/pull_backup_access_code" => backup::pull(ctx, tx, body),
            "access_codes/generate_code" => constraints::generate(ctx, tx, body),
            "access_codes/report_device_constraints" => constraints::report(ctx, tx, body),
            "access_codes/unmanaged/list" => unmanaged::list(ctx, tx, body),
            "access_codes/unmanaged/get" => unmanaged::get(ctx, tx, body),
            "access_codes/unmanaged/convert_to_managed" => {
                unmanaged::convert_to_managed(ctx, tx, body)
            }
            "access_codes/unmanaged/update" => unmanaged::update(ctx, tx, body),
            "access_codes/unmanaged/delete" => unmanaged::delete(ctx, tx, body),
            "devices/list" => devices::list(ctx, tx, body),
            "devices/get" => devices::get(ctx, tx, body),
            "locks/lock_door" => locks::lock_door(ctx, tx, body),
            "locks/unlock_door" => locks::unlock_door(ctx, tx, body),
            other => Err(CommandError::new(
                ErrorKind::UnknownCommand,
                format!(
                    "unknown command '{}'; known: {}",
                    parse::printable(other),
                    COMMANDS.join(", ")
                ),
            )
            .into()),
        }
    }
}

/// The answer to a command whose transaction could not commit: not stored
/// (the store is what failed). A storage fault (disk full, I/O error,
/// read-only) is `storage_unavailable`; anything else `internal`.
fn uncommitted(req: &Request<'_>, e: &StoreError) -> Reply {
    let err = if e.is_storage_fault() {
        CommandError::storage_unavailable()
    } else {
        internal_error()
    };
    unstored_answer(req.payload, &err)
}

/// What a command that failed on the hub's side is told; the cause is in the
/// hub's log only (it could quote stored data).
pub fn internal_error() -> CommandError {
    CommandError::new(
        ErrorKind::Internal,
        "the hub failed to carry out this command (an internal error, logged on the hub); nothing of it was applied; retry later",
    )
}

/// An answer that is not stored, on `responses/{request_id}` when the payload
/// names a usable one (else `responses/_invalid`).
pub fn unstored_answer(payload: &[u8], err: &CommandError) -> Reply {
    let request_id =
        parse::scan_request_id(payload).filter(|id| parse::check_request_id(id).is_ok());
    Reply {
        topic: match &request_id {
            Some(id) => format!("responses/{id}"),
            None => "responses/_invalid".into(),
        },
        body: err.to_response(request_id.as_deref()),
    }
}

/// The immediate answer to a lock/unlock whose real answer waits for the
/// lock: only the caller that waits on this call sees it (the local socket);
/// nothing is queued for the broker or stored until the lock confirms.
fn pending_reply(topic: &str, request_id: &str, a: &crate::store::ActionAttempt) -> Reply {
    Reply {
        topic: topic.to_owned(),
        body: json!({"request_id": request_id, "ok": true, "action_attempt": a.to_public()}),
    }
}

/// The answer to a finished lock/unlock: `ok` with the action attempt, or
/// its typed error beside it.
pub fn action_reply(a: &crate::store::ActionAttempt) -> Value {
    let mut body = json!({"request_id": a.request_id, "ok": a.status == "success", "action_attempt": a.to_public()});
    if let Some((t, m)) = &a.error {
        body["error"] = json!({"type": t, "message": m});
    }
    body
}

/// Why a command's transaction did not commit.
#[derive(Debug)]
pub(crate) enum CommandFailed {
    Command(CommandError),
    Store(StoreError),
}

impl From<CommandError> for CommandFailed {
    fn from(e: CommandError) -> Self {
        CommandFailed::Command(e)
    }
}

impl From<StoreError> for CommandFailed {
    fn from(e: StoreError) -> Self {
        CommandFailed::Store(e)
    }
}

impl From<serde_json::Error> for CommandFailed {
    fn from(e: serde_json::Error) -> Self {
        CommandFailed::Store(StoreError::Corrupt(e))
    }
}

pub(crate) type CmdResult = Result<Map<String, Value>, CommandFailed>;

/// `{key: value}` as a response's data.
pub(crate) fn data(key: &str, value: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(key.into(), value);
    m
}
