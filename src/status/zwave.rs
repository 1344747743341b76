//! The socket's Z-Wave network management (lockhub's addition): inclusion
//! and exclusion while the daemon owns the controller.
//!
//! - `POST /v1/zwave/include` `{"pin": "12345"?, "timeout_secs": 60?}`: waits
//!   for a lock in inclusion mode and bootstraps it. Answers `{"ok": true,
//!   "state": "done", "included": {...}}`, or, when an S2 Authenticated /
//!   Access Control lock needs its DSK PIN and none was given, `{"ok": true,
//!   "state": "pin_needed", "dsk": "?????-....."}`; the inclusion then waits
//!   for `POST /v1/zwave/include/pin` `{"pin": "12345"}`, which answers as a
//!   finished include does.
//! - `POST /v1/zwave/exclude` `{"timeout_secs": 60?}`: `{"ok": true,
//!   "node_id": N}`.
//!
//! A PIN is never logged or echoed.

use crate::drivers::zwave::inclusion::{
    IncludeOptions, Included, InclusionError, PinRequest, PinSource,
};
use crate::drivers::zwave::ZwaveDriver;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

type Outcome = Result<Included, InclusionError>;

/// An inclusion waiting for its PIN.
struct Waiting {
    pin: oneshot::Sender<String>,
    outcome: oneshot::Receiver<Outcome>,
}

/// The Z-Wave driver and the inclusion that waits for a PIN, if any.
pub struct ZwaveAdmin {
    driver: ZwaveDriver,
    waiting: Mutex<Option<Waiting>>,
}

impl ZwaveAdmin {
    pub fn new(driver: ZwaveDriver) -> Arc<ZwaveAdmin> {
        Arc::new(ZwaveAdmin {
            driver,
            waiting: Mutex::new(None),
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct IncludeBody {
    pin: Option<String>,
    timeout_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    pin: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExcludeBody {
    timeout_secs: Option<u64>,
}

fn error(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        Json(json!({"ok": false, "error": {"type": kind, "message": message}})),
    )
        .into_response()
}

fn answer(outcome: Outcome) -> Response {
    match outcome {
        Ok(inc) => Json(json!({"ok": true, "state": "done", "included": inc})).into_response(),
        Err(e) => failed(e),
    }
}

fn failed(e: InclusionError) -> Response {
    let (status, kind) = match &e {
        InclusionError::Busy => (StatusCode::CONFLICT, "busy"),
        InclusionError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        InclusionError::BadPin => (StatusCode::BAD_REQUEST, "invalid_input"),
        InclusionError::Failed(_) | InclusionError::Driver(_) => {
            (StatusCode::BAD_GATEWAY, "inclusion_failed")
        }
    };
    error(status, kind, e.to_string())
}

fn timeout_of(secs: Option<u64>) -> Duration {
    Duration::from_secs(secs.unwrap_or(60).clamp(1, 600))
}

/// The body (empty: the defaults), or the answer to a bad one.
fn parse<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            e.to_string(),
        ))
    })
}

async fn include(State(a): State<Arc<ZwaveAdmin>>, body: axum::body::Bytes) -> Response {
    let body: IncludeBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if a.waiting.lock().unwrap().is_some() {
        return failed(InclusionError::Busy);
    }
    let (ask_tx, mut ask_rx) = mpsc::channel::<PinRequest>(1);
    let pin = match body.pin {
        Some(p) => PinSource::Given(p),
        None => PinSource::Ask(ask_tx),
    };
    let opts = IncludeOptions {
        timeout: timeout_of(body.timeout_secs),
        pin,
    };
    let driver = a.driver.clone();
    let (out_tx, mut out_rx) = oneshot::channel();
    tokio::spawn(async move {
        let _ = out_tx.send(driver.include(opts).await);
    });
    tokio::select! {
        outcome = &mut out_rx => answer(outcome.unwrap_or(Err(InclusionError::Failed("inclusion task")))),
        Some(req) = ask_rx.recv() => {
            let dsk = req.dsk.clone();
            *a.waiting.lock().unwrap() = Some(Waiting { pin: req.reply, outcome: out_rx });
            Json(json!({"ok": true, "state": "pin_needed", "dsk": dsk})).into_response()
        }
    }
}

async fn include_pin(State(a): State<Arc<ZwaveAdmin>>, body: axum::body::Bytes) -> Response {
    let body: PinBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_input", e.to_string()),
    };
    let Some(w) = a.waiting.lock().unwrap().take() else {
        return error(
            StatusCode::CONFLICT,
            "no_inclusion",
            "no inclusion is waiting for a PIN".into(),
        );
    };
    let _ = w.pin.send(body.pin);
    answer(
        w.outcome
            .await
            .unwrap_or(Err(InclusionError::Failed("inclusion task"))),
    )
}

async fn exclude(State(a): State<Arc<ZwaveAdmin>>, body: axum::body::Bytes) -> Response {
    let body: ExcludeBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    match a.driver.exclude(timeout_of(body.timeout_secs)).await {
        Ok(node) => Json(json!({"ok": true, "node_id": node})).into_response(),
        Err(e) => failed(e),
    }
}

/// The routes above, for the local socket.
pub fn routes(admin: Arc<ZwaveAdmin>) -> Router {
    Router::new()
        .route("/v1/zwave/include", post(include))
        .route("/v1/zwave/include/pin", post(include_pin))
        .route("/v1/zwave/exclude", post(exclude))
        .with_state(admin)
}
