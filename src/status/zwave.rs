//! Z-Wave network management (lockhub's addition): inclusion and exclusion
//! while the daemon owns the controller, each as a job (`crate::jobs`) that
//! the installer page and `lockhub zwave include | exclude` follow. The
//! routes are the page's (`POST /v1/web/zwave/include`, `.../include/pin`,
//! `.../exclude`, in `crate::web`); this module starts the jobs.
//!
//! A request that cannot start (no controller answering yet, an inclusion
//! already waiting for its PIN) is refused at once with a typed error and
//! leaves no job behind; once started, a job ends with its outcome.
//!
//! A PIN is never logged or echoed.

use crate::drivers::zwave::inclusion::{
    IncludeOptions, Included, InclusionError, PinRequest, PinSource, Progress,
};
use crate::drivers::zwave::ZwaveDriver;
use crate::jobs::JobHandle;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// An inclusion waiting for its PIN.
struct Waiting {
    pin: oneshot::Sender<String>,
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

    /// Start an inclusion as a new job of `jobs` (its id is returned): its
    /// steps are the job's lines, a DSK PIN it needs is the job's input
    /// (answered with [`give_pin_route`]), and the job ends with the
    /// outcome. Refused, with no job made, while the controller does not
    /// answer or another inclusion waits for its PIN.
    pub fn start_include(
        self: &Arc<Self>,
        jobs: &Arc<crate::jobs::Jobs>,
        pin: Option<String>,
        timeout_secs: Option<u64>,
    ) -> Result<String, Box<Response>> {
        let driver = self.driver()?;
        if self.waiting.lock().unwrap().is_some() {
            return Err(Box::new(failed(InclusionError::Busy)));
        }
        let job = jobs.start("zwave.include");
        let job_id = job.id().to_owned();
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
                *admin.waiting.lock().unwrap() = Some(Waiting { pin: req.reply });
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
        Ok(job_id)
    }

    /// Start an exclusion as a new job of `jobs` (its id is returned);
    /// refused, with no job made, while the controller does not answer.
    pub fn start_exclude(
        self: &Arc<Self>,
        jobs: &Arc<crate::jobs::Jobs>,
        timeout_secs: Option<u64>,
    ) -> Result<String, Box<Response>> {
        let driver = self.driver()?;
        let job: JobHandle = jobs.start("zwave.exclude");
        let job_id = job.id().to_owned();
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
        Ok(job_id)
    }

    /// Hand the DSK PIN to the inclusion waiting for it (its job says the rest).
    fn give_pin(&self, pin: String) -> Result<(), Box<Response>> {
        let Some(w) = self.waiting.lock().unwrap().take() else {
            return Err(Box::new(error(
                StatusCode::CONFLICT,
                "no_inclusion",
                "no inclusion is waiting for a PIN".into(),
            )));
        };
        let _ = w.pin.send(pin);
        Ok(())
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    pin: String,
}

fn error(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        Json(json!({"ok": false, "error": {"type": kind, "message": message}})),
    )
        .into_response()
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

/// Answer a PIN handed over: given (the job says the rest), or why not.
pub fn give_pin_route(a: &ZwaveAdmin, pin: String) -> Response {
    match a.give_pin(pin) {
        Ok(()) => Json(json!({"ok": true, "state": "pin_given"})).into_response(),
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn refusal(r: Result<String, Box<Response>>) -> (StatusCode, serde_json::Value) {
        let r = *r.expect_err("refused");
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_refused_job_is_an_answer_and_no_job() {
        let admin = ZwaveAdmin::new();
        let jobs = Arc::new(crate::jobs::Jobs::default());
        let (status, body) = refusal(admin.start_include(&jobs, None, None)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["type"], "zwave_unavailable", "{body}");
        let (status, body) = refusal(admin.start_exclude(&jobs, None)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["type"], "zwave_unavailable", "{body}");
        assert!(jobs.is_empty(), "a refusal left {} job entries", jobs.len());
        // A PIN with no inclusion waiting is refused too, with its own type.
        let r = give_pin_route(&admin, "12345".into());
        assert_eq!(r.status(), StatusCode::CONFLICT);
    }
}
