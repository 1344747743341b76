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
    IncludeOptions, Included, InclusionError, PinRequest, PinSource, Progress,
};
use crate::drivers::zwave::ZwaveDriver;
use crate::jobs::JobHandle;
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

/// An inclusion waiting for its PIN. `outcome` is there when the one who
/// started it waits for the answer (the blocking route); a job finishes by
/// itself.
struct Waiting {
    pin: oneshot::Sender<String>,
    outcome: Option<oneshot::Receiver<Outcome>>,
}

/// The Z-Wave driver (once its controller answers) and the inclusion that
/// waits for a PIN, if any. Made at start whenever `[zwave] port` is set, so
/// the routes exist while the controller is still missing: they say so until
/// [`ZwaveAdmin::connected`].
pub struct ZwaveAdmin {
    driver: Mutex<Option<ZwaveDriver>>,
    waiting: Mutex<Option<Waiting>>,
}

impl ZwaveAdmin {
    pub fn new() -> Arc<ZwaveAdmin> {
        Arc::new(ZwaveAdmin {
            driver: Mutex::new(None),
            waiting: Mutex::new(None),
        })
    }

    /// The controller answered: inclusion and exclusion can start.
    pub fn connected(&self, driver: ZwaveDriver) {
        *self.driver.lock().unwrap() = Some(driver);
    }

    fn driver(&self) -> Result<ZwaveDriver, Box<Response>> {
        self.driver.lock().unwrap().clone().ok_or_else(|| {
            Box::new(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "zwave_unavailable",
                "the Z-Wave controller does not answer yet (lockhub retries; see lockhub status)"
                    .into(),
            ))
        })
    }

    /// Start an inclusion as `job`: its steps are the job's lines, a DSK PIN
    /// it needs is the job's input (answered with [`ZwaveAdmin::give_pin`]),
    /// and the job ends with the outcome.
    pub fn start_include(
        self: &Arc<Self>,
        job: JobHandle,
        pin: Option<String>,
        timeout_secs: Option<u64>,
    ) -> Result<(), Box<Response>> {
        let driver = self.driver()?;
        if self.waiting.lock().unwrap().is_some() {
            return Err(Box::new(failed(InclusionError::Busy)));
        }
        let (ask_tx, mut ask_rx) = mpsc::channel::<PinRequest>(1);
        let say = job.clone();
        let opts = IncludeOptions {
            timeout: timeout_of(timeout_secs),
            pin: match pin {
                Some(p) => PinSource::Given(p),
                None => PinSource::Ask(ask_tx),
            },
            progress: Progress::new(move |l| say.progress(l)),
        };
        let admin = self.clone();
        let asking = job.clone();
        tokio::spawn(async move {
            if let Some(req) = ask_rx.recv().await {
                // Waiting before asking: a PIN sent the moment the job asks finds it.
                let dsk = req.dsk.clone();
                *admin.waiting.lock().unwrap() = Some(Waiting {
                    pin: req.reply,
                    outcome: None,
                });
                asking.ask(
                    &format!(
                        "the lock's DSK is {dsk}: enter its first five digits (the PIN on the lock's label)"
                    ),
                    json!({ "dsk_pin": dsk }),
                );
            }
        });
        let admin = self.clone();
        tokio::spawn(async move {
            let outcome = driver.include(opts).await;
            admin.waiting.lock().unwrap().take();
            job.finish(match outcome {
                Ok(inc) => Ok(included_line(&inc)),
                Err(e) => Err(e.to_string()),
            });
        });
        Ok(())
    }

    /// Start an exclusion as `job`.
    pub fn start_exclude(
        self: &Arc<Self>,
        job: JobHandle,
        timeout_secs: Option<u64>,
    ) -> Result<(), Box<Response>> {
        let driver = self.driver()?;
        tokio::spawn(async move {
            let say = job.clone();
            let progress = Progress::new(move |l| say.progress(l));
            let outcome = driver.exclude(timeout_of(timeout_secs), &progress).await;
            job.finish(match outcome {
                Ok(0) => Ok("excluded a lock that belonged to no network".into()),
                Ok(node) => Ok(format!("excluded node {node}")),
                Err(e) => Err(e.to_string()),
            });
        });
        Ok(())
    }

    /// Hand the DSK PIN to the inclusion waiting for it; the outcome when the
    /// one who started it waits for it (the blocking route), else `None` (the
    /// job says the rest).
    async fn give_pin(&self, pin: String) -> Result<Option<Outcome>, Box<Response>> {
        let Some(w) = self.waiting.lock().unwrap().take() else {
            return Err(Box::new(error(
                StatusCode::CONFLICT,
                "no_inclusion",
                "no inclusion is waiting for a PIN".into(),
            )));
        };
        let _ = w.pin.send(pin);
        Ok(match w.outcome {
            Some(rx) => Some(
                rx.await
                    .unwrap_or(Err(InclusionError::Failed("inclusion task"))),
            ),
            None => None,
        })
    }
}

/// How a finished inclusion reads (the CLI prints it as it is).
fn included_line(inc: &Included) -> String {
    let mut line = format!(
        "included node {} as {} (security class {})",
        inc.node_id, inc.device_id, inc.security_class
    );
    if let Some(note) = &inc.note {
        line += &format!("\nnote: {note}");
    }
    line
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
    let driver = match a.driver() {
        Ok(d) => d,
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
        progress: Progress::none(),
    };
    let (out_tx, mut out_rx) = oneshot::channel();
    tokio::spawn(async move {
        let _ = out_tx.send(driver.include(opts).await);
    });
    tokio::select! {
        outcome = &mut out_rx => answer(outcome.unwrap_or(Err(InclusionError::Failed("inclusion task")))),
        Some(req) = ask_rx.recv() => {
            let dsk = req.dsk.clone();
            *a.waiting.lock().unwrap() = Some(Waiting { pin: req.reply, outcome: Some(out_rx) });
            Json(json!({"ok": true, "state": "pin_needed", "dsk": dsk})).into_response()
        }
    }
}

/// The body of a PIN answer; a bad one is refused without quoting it.
pub fn parse_pin(body: &[u8]) -> Result<String, Box<Response>> {
    serde_json::from_slice::<PinBody>(body)
        .map(|b| b.pin)
        .map_err(|_| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                "invalid_input",
                "send {\"pin\": \"12345\"}".into(),
            ))
        })
}

async fn include_pin(State(a): State<Arc<ZwaveAdmin>>, body: axum::body::Bytes) -> Response {
    let pin = match parse_pin(&body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    give_pin_route(&a, pin).await
}

/// Answer a PIN handed over: the outcome when its starter waits for it, else
/// that it was given (the job says the rest).
pub async fn give_pin_route(a: &ZwaveAdmin, pin: String) -> Response {
    match a.give_pin(pin).await {
        Ok(Some(outcome)) => answer(outcome),
        Ok(None) => Json(json!({"ok": true, "state": "pin_given"})).into_response(),
        Err(r) => *r,
    }
}

/// The body of an include or exclude started as a job.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct JobBody {
    pub pin: Option<String>,
    pub timeout_secs: Option<u64>,
}

/// A job's body (empty: the defaults); a bad one is refused without quoting it.
pub fn parse_job(body: &[u8]) -> Result<JobBody, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(JobBody::default());
    }
    serde_json::from_slice(body).map_err(|_| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "send {\"timeout_secs\": 60, \"pin\": \"12345\" (optional)}".into(),
        ))
    })
}

async fn exclude(State(a): State<Arc<ZwaveAdmin>>, body: axum::body::Bytes) -> Response {
    let body: ExcludeBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let driver = match a.driver() {
        Ok(d) => d,
        Err(r) => return *r,
    };
    match driver
        .exclude(timeout_of(body.timeout_secs), &Progress::none())
        .await
    {
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
