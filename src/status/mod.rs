//! The local socket: HTTP/1.1 over a Unix socket, for the people and tools on
//! the hub itself (and for local control while the cloud link is down).
//!
//! `GET /v1/health`, `/v1/devices`, `/v1/access_codes` (PINs masked unless
//! `?reveal_codes=true`), `/v1/queue`, `/metrics`; `POST /v1/commands/{command}`
//! takes the same bodies as MQTT and answers with the same response. `GET /`
//! is the installer page ([`crate::web`]).
//!
//! Who may do what is decided by the peer's credentials ([`peer`]): members of
//! `socket.group` may GET (PINs masked); only root or the service user may POST
//! or reveal PINs.

pub mod client;
pub mod peer;
pub mod zwave;

use crate::hub::Hub;
use crate::mqtt::LinkState;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Ctx {
    hub: Arc<Hub>,
    link: Option<Arc<LinkState>>,
}

/// The peer's role against what the request asks; refused with 403 before any handler runs.
async fn authorize(
    State(access): State<Arc<peer::Access>>,
    axum::extract::ConnectInfo(who): axum::extract::ConnectInfo<peer::Peer>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let role = access.role(&who);
    let reveal = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.starts_with("reveal_codes=") && kv != "reveal_codes=false")
    });
    let needs_admin = req.method() != axum::http::Method::GET || reveal;
    let allowed = match role {
        peer::Role::Admin => true,
        peer::Role::Reader => !needs_admin,
        peer::Role::None => false,
    };
    if !allowed {
        tracing::info!(uid = who.uid, method = %req.method(), path = req.uri().path(), "socket request refused by peer credentials");
        let message = if role == peer::Role::Reader {
            "only root or the service user may send commands or reveal PINs"
        } else {
            "only members of socket.group, root or the service user may use this socket"
        };
        return (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({"error": "forbidden", "message": message})),
        )
            .into_response();
    }
    next.run(req).await
}

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "status socket request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(serde_json::json!({"error": "internal", "message": "the hub's store failed"})),
    )
        .into_response()
}

async fn health(State(c): State<Ctx>) -> Response {
    let link = c.link.as_ref().map(|l| l.is_connected());
    let mut h = c.hub.health(link);
    if let Some(l) = &c.link {
        if let Some(e) = l.last_error.lock().unwrap().clone() {
            h["broker_last_error"] = serde_json::json!(e);
        }
        if let Some(p) = l.problem() {
            h["broker_problem"] = serde_json::json!(p);
            h["status"] = serde_json::json!("degraded");
        }
    }
    Json(h).into_response()
}

async fn devices(State(c): State<Ctx>) -> Response {
    c.hub
        .devices_json()
        .map(|v| Json(v).into_response())
        .unwrap_or_else(internal)
}

#[derive(Deserialize)]
struct CodesQuery {
    #[serde(default)]
    reveal_codes: bool,
}

async fn codes(State(c): State<Ctx>, Query(q): Query<CodesQuery>) -> Response {
    c.hub
        .codes_json(q.reveal_codes)
        .map(|v| Json(v).into_response())
        .unwrap_or_else(internal)
}

async fn queue(State(c): State<Ctx>) -> Response {
    c.hub
        .queue_json()
        .map(|v| Json(v).into_response())
        .unwrap_or_else(internal)
}

async fn metrics(State(c): State<Ctx>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        c.hub.metrics_text(),
    )
        .into_response()
}

async fn command(State(c): State<Ctx>, Path(command): Path<String>, body: Bytes) -> Response {
    let hub = c.hub.clone();
    let reply = tokio::task::spawn_blocking(move || {
        // Local commands are trusted by the socket's peer credentials, not signed.
        let req = crate::commands::Request {
            local: true,
            ..crate::commands::Request::new(&command, &body)
        };
        hub.handle_requests(&[req]).remove(0)
    })
    .await;
    match reply {
        Ok(r) => {
            let status = if r.body["ok"] == true {
                StatusCode::OK
            } else if r.body["error"]["type"] == "internal" {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::BAD_REQUEST
            };
            (status, Json(r.body)).into_response()
        }
        Err(e) => internal(e),
    }
}

/// The socket's routes plus the installer page ([`crate::web`]), every one
/// behind the peer-credential check.
pub fn router(
    hub: Arc<Hub>,
    link: Option<Arc<LinkState>>,
    access: peer::Access,
    page: crate::web::PageInfo,
) -> Router {
    views_router(hub.clone(), link)
        .merge(crate::web::socket_routes(hub, page))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            authorize,
        ))
}

/// The JSON views and the command route (the TCP page reuses these behind its login).
pub fn views_router(hub: Arc<Hub>, link: Option<Arc<LinkState>>) -> Router {
    let limit = hub.commands.settings.max_payload_bytes;
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/devices", get(devices))
        .route("/v1/access_codes", get(codes))
        .route("/v1/queue", get(queue))
        .route("/metrics", get(metrics))
        .route("/v1/commands/{*command}", post(command))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Ctx { hub, link })
}

/// Bind the socket (replacing a stale one), set its mode and its group (so
/// the group's members can connect), and serve until `shutdown`.
pub async fn bind(
    path: &std::path::Path,
    mode: u32,
    access: &mut peer::Access,
) -> Result<tokio::net::UnixListener, SocketError> {
    let err = |source| SocketError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(err)?;
    if let Some((name, gid)) = &access.group {
        match std::os::unix::fs::chown(path, None, Some(*gid)) {
            Ok(()) => access.file_gated = mode & 0o007 == 0,
            Err(e) => {
                tracing::warn!(group = %name, error = %e, "cannot give the socket to socket.group; its members cannot connect")
            }
        }
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    Ok(listener)
}

/// Serve until `shutdown`.
pub async fn serve(
    listener: tokio::net::UnixListener,
    hub: Arc<Hub>,
    link: Option<Arc<LinkState>>,
    access: peer::Access,
    page: crate::web::PageInfo,
    shutdown: CancellationToken,
) {
    let app = router(hub, link, access, page).into_make_service_with_connect_info::<peer::Peer>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "status socket stopped");
    }
}
