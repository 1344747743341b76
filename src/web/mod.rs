//! The installer page: one static HTML page (no build step) over the hub's own
//! JSON views, with live events as server-sent events and a few actions
//! (check the config file). It is served on the local socket with everything
//! else, and, when `[web] listen` is set, on TCP behind a password ([`auth`]).
//!
//! Over TCP nothing can change a code or reveal a PIN: `/v1/commands/*` and
//! `reveal_codes` stay on the socket, whose file permissions decide who may use them.

pub mod auth;
pub mod pairing;

use crate::hub::Hub;
use crate::mqtt::LinkState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The page itself: HTML, CSS and plain JavaScript in one file.
const PAGE: &str = include_str!("page.html");

/// What the page knows of the daemon, and the actions it can start. One per
/// daemon, shared by the socket and TCP (a job started on one is seen on both).
#[derive(Clone, Default)]
pub struct PageInfo {
    pub hub_id: String,
    /// The config file the daemon was started with (for check-config).
    pub config_file: Option<PathBuf>,
    /// `None` without `[ble] enabled`.
    pub ble: Option<pairing::BlePairer>,
    /// `None` without `[zwave] port`.
    pub zwave: Option<Arc<crate::status::zwave::ZwaveAdmin>>,
    pub jobs: Arc<crate::jobs::Jobs>,
}

impl PageInfo {
    pub fn of(cfg: &crate::config::Config) -> Self {
        PageInfo {
            hub_id: cfg.hub_id.clone(),
            config_file: cfg.source_file.clone(),
            ble: pairing::BlePairer::of(cfg),
            zwave: None,
            jobs: Arc::default(),
        }
    }
}

#[derive(Clone)]
struct WebCtx {
    hub: Arc<Hub>,
    info: PageInfo,
    /// `None` on the socket (no login there).
    auth: Option<Arc<auth::Auth>>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("web.listen {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}

async fn recent_events(State(c): State<WebCtx>) -> Response {
    Json(json!({ "events": c.hub.store.recent_events.snapshot() })).into_response()
}

/// Every event as it commits, one SSE `event` each (the page's live list).
async fn event_stream(State(c): State<WebCtx>) -> Response {
    let rx = c.hub.store.recent_events.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(v) => {
                    let ev = SseEvent::default().event("event").data(v.to_string());
                    return Some((Ok::<_, std::convert::Infallible>(ev), rx));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Load the daemon's config file again and say whether it passes (what
/// `lockhub check-config` would say; the running daemon is not changed).
async fn check_config(State(c): State<WebCtx>) -> Response {
    let Some(file) = c.info.config_file.clone() else {
        return Json(
            json!({"ok": true, "message": "running on built-in defaults (no config file)"}),
        )
        .into_response();
    };
    let r = tokio::task::spawn_blocking(move || {
        crate::config::Config::load(&crate::config::Sources {
            file: Some(file.clone()),
            overrides: Vec::new(),
        })
        .map(|_| format!("{}: ok", file.display()))
        .map_err(|e| e.to_string())
    })
    .await;
    match r {
        Ok(Ok(m)) => Json(json!({"ok": true, "message": m})).into_response(),
        Ok(Err(m)) => Json(json!({"ok": false, "message": m})).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PairBody {
    address: String,
    /// Read straight into the masked type: never echoed, never logged.
    security_pin: u16,
    #[serde(default)]
    name: Option<String>,
}

fn refuse(status: StatusCode, error: &str, message: String) -> Response {
    (status, Json(json!({"error": error, "message": message}))).into_response()
}

/// Start pairing a Nuki in pairing mode; answers with the job to follow.
async fn ble_pair(State(c): State<WebCtx>, body: axum::body::Bytes) -> Response {
    let Some(pairer) = c.info.ble.clone() else {
        return refuse(
            StatusCode::CONFLICT,
            "ble_disabled",
            "Bluetooth is off: set [ble] enabled = true and restart lockhub".into(),
        );
    };
    let b: PairBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        // serde's message could quote the PIN's text: say only what is expected.
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_input",
                "send {\"address\": \"54:D2:72:AA:BB:CC\", \"security_pin\": <0-65535>, \"name\": optional}".into(),
            )
        }
    };
    if !crate::config::is_ble_address(&b.address) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!(
                "address: {} is not a BLE address (54:D2:72:AA:BB:CC)",
                b.address
            ),
        );
    }
    let name = b.name.unwrap_or_else(|| "lockhub".into());
    if name.is_empty() || name.len() > 32 {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "name: 1 to 32 bytes".into(),
        );
    }
    let pin = crate::drivers::ble::nuki::keypad::SecurityPin(b.security_pin);
    let job = c.info.jobs.start("ble.pair");
    let job_id = job.id().to_owned();
    job.progress(&format!("pairing with {}", b.address.to_uppercase()));
    tokio::spawn(pairer.run(job, b.address, name, pin));
    (StatusCode::ACCEPTED, Json(json!({"job_id": job_id}))).into_response()
}

/// The Z-Wave admin, or the answer saying there is no Z-Wave.
fn zwave_admin(c: &WebCtx) -> Result<Arc<crate::status::zwave::ZwaveAdmin>, Box<Response>> {
    c.info.zwave.clone().ok_or_else(|| {
        Box::new(refuse(
            StatusCode::CONFLICT,
            "zwave_disabled",
            "no Z-Wave controller is configured: set [zwave] port and restart lockhub".into(),
        ))
    })
}

/// Start a Z-Wave job of `kind` with `start`; answers with the job to follow.
fn zwave_job(
    c: &WebCtx,
    body: &[u8],
    start: impl FnOnce(
        &Arc<crate::status::zwave::ZwaveAdmin>,
        &Arc<crate::jobs::Jobs>,
        crate::status::zwave::JobBody,
    ) -> Result<String, Box<Response>>,
) -> Response {
    let admin = match zwave_admin(c) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let b = match crate::status::zwave::parse_job(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    // A refusal (no controller yet, busy) is the answer; no job is made.
    match start(&admin, &c.info.jobs, b) {
        Ok(job_id) => (StatusCode::ACCEPTED, Json(json!({"job_id": job_id}))).into_response(),
        Err(r) => *r,
    }
}

/// Start including a Z-Wave lock (the job's input asks for the DSK PIN when
/// the lock needs one).
async fn zwave_include(State(c): State<WebCtx>, body: axum::body::Bytes) -> Response {
    zwave_job(&c, &body, |admin, jobs, b| {
        admin.start_include(jobs, b.pin, b.timeout_secs)
    })
}

/// The DSK PIN an inclusion job asked for.
async fn zwave_include_pin(State(c): State<WebCtx>, body: axum::body::Bytes) -> Response {
    let admin = match zwave_admin(&c) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let pin = match crate::status::zwave::parse_pin(&body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    crate::status::zwave::give_pin_route(&admin, pin)
}

async fn zwave_exclude(State(c): State<WebCtx>, body: axum::body::Bytes) -> Response {
    zwave_job(&c, &body, |admin, jobs, b| {
        admin.start_exclude(jobs, b.timeout_secs)
    })
}

async fn job(
    State(c): State<WebCtx>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match c.info.jobs.view(&id) {
        Some(v) => Json(v).into_response(),
        None => refuse(
            StatusCode::NOT_FOUND,
            "job_not_found",
            format!("no job {id}"),
        ),
    }
}

/// A job's lines so far, then each new one as it comes, then its end (the stream closes).
async fn job_events(
    State(c): State<WebCtx>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    use crate::jobs::{JobState, JobUpdate};
    let Some((seen, rx)) = c.info.jobs.follow(&id) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "job_not_found",
            format!("no job {id}"),
        );
    };
    let last = seen.lines.len().saturating_sub(1);
    let mut first: Vec<JobUpdate> = seen
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| JobUpdate {
            job_id: id.clone(),
            state: JobState::Running,
            line: Some(l.clone()),
            // What it waits for came with its last line.
            input: if i == last { seen.input.clone() } else { None },
            message: None,
        })
        .collect();
    if seen.state != JobState::Running {
        first.push(JobUpdate {
            job_id: id.clone(),
            state: seen.state,
            line: None,
            input: None,
            message: seen.message.clone(),
        });
    }
    let done = seen.state != JobState::Running;
    let to_sse = |u: &JobUpdate| {
        Ok::<_, std::convert::Infallible>(
            SseEvent::default()
                .event("progress")
                .data(serde_json::to_string(u).unwrap_or_default()),
        )
    };
    let backlog = futures::stream::iter(first.iter().map(to_sse).collect::<Vec<_>>());
    let live = futures::stream::unfold((rx, done), move |(mut rx, done)| async move {
        if done {
            return None;
        }
        loop {
            match rx.recv().await {
                Ok(u) => {
                    let end = u.state != JobState::Running;
                    return Some((to_sse(&u), (rx, end)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures::StreamExt;
    Sse::new(backlog.chain(live))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Who is asking: on TCP, the session (if any); on the socket, always the admin.
async fn session(State(c): State<WebCtx>, headers: HeaderMap) -> Response {
    let login_required = c.auth.is_some();
    let logged_in = match &c.auth {
        None => true,
        Some(a) => cookie(&headers).is_some_and(|t| a.valid(&t)),
    };
    Json(json!({
        "login_required": login_required,
        "logged_in": logged_in,
        "hub_id": c.info.hub_id,
        "ble": c.info.ble.is_some(),
        "zwave": c.info.zwave.is_some(),
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
struct LoginBody {
    password: String,
}

async fn login(State(c): State<WebCtx>, body: axum::body::Bytes) -> Response {
    let Some(a) = c.auth.clone() else {
        return Json(json!({"ok": true})).into_response();
    };
    let Ok(LoginBody { password }) = serde_json::from_slice::<LoginBody>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "message": "send {\"password\": \"...\"}"})),
        )
            .into_response();
    };
    let r = tokio::task::spawn_blocking(move || a.login(&password)).await;
    match r {
        Ok(Ok(token)) => (
            [(
                header::SET_COOKIE,
                format!(
                    "{}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                    auth::COOKIE,
                    token.cookie_value(),
                    auth::SESSION_LIFETIME.as_secs()
                ),
            )],
            Json(json!({"ok": true})),
        )
            .into_response(),
        Ok(Err(e)) => {
            // Slow every refusal down, so guessing is slow even below the lockout.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            tracing::warn!(reason = ?e, "installer page: login refused");
            let message = match e {
                auth::LoginError::WrongPassword => "wrong password",
                auth::LoginError::TooManyAttempts => "too many failed logins; wait a minute",
            };
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"ok": false, "message": message})),
            )
                .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn logout(State(c): State<WebCtx>, headers: HeaderMap) -> Response {
    if let (Some(a), Some(t)) = (&c.auth, cookie(&headers)) {
        a.logout(&t);
    }
    (
        [(
            header::SET_COOKIE,
            format!(
                "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
                auth::COOKIE
            ),
        )],
        Json(json!({"ok": true})),
    )
        .into_response()
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == auth::COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// TCP only: everything but the page and the login needs a session, and
/// what only the socket may do is refused outright.
async fn guard(State(c): State<WebCtx>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let socket_only = path.starts_with("/v1/commands/")
        || req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "reveal_codes=true"));
    if socket_only {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": "socket_only", "message": "commands and reveal_codes are only served on the local socket"})),
        )
            .into_response();
    }
    let open = matches!(
        path,
        "/" | "/v1/web/session" | "/v1/web/login" | "/v1/web/logout"
    );
    let ok = open
        || c.auth
            .as_ref()
            .is_some_and(|a| cookie(req.headers()).is_some_and(|t| a.valid(&t)));
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized", "message": "log in first"})),
        )
            .into_response();
    }
    next.run(req).await
}

fn routes(ctx: WebCtx) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/v1/events", get(recent_events))
        .route("/v1/events/stream", get(event_stream))
        .route("/v1/web/check_config", post(check_config))
        .route("/v1/ble/pair", post(ble_pair))
        .route("/v1/web/zwave/include", post(zwave_include))
        .route("/v1/web/zwave/include/pin", post(zwave_include_pin))
        .route("/v1/web/zwave/exclude", post(zwave_exclude))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/jobs/{id}/events", get(job_events))
        .route("/v1/web/session", get(session))
        .route("/v1/web/login", post(login))
        .route("/v1/web/logout", post(logout))
        .with_state(ctx)
}

/// The page's routes on the local socket (no login: the socket's mode decides).
pub fn socket_routes(hub: Arc<Hub>, info: PageInfo) -> Router {
    routes(WebCtx {
        hub,
        info,
        auth: None,
    })
}

/// Serve the page, and the socket's read-only views, on `addr` behind the password.
pub async fn serve_tcp(
    addr: &str,
    password_hash: &str,
    hub: Arc<Hub>,
    link: Option<Arc<LinkState>>,
    info: PageInfo,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, WebError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
    let ctx = WebCtx {
        hub: hub.clone(),
        info,
        auth: Some(Arc::new(auth::Auth::new(password_hash))),
    };
    let app = crate::status::views_router(hub, link)
        .merge(routes(ctx.clone()))
        .layer(axum::middleware::from_fn_with_state(ctx, guard));
    tracing::info!(%addr, "installer page listening");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "installer page stopped");
        }
    }))
}
