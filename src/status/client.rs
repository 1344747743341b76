//! The CLI's side of the socket: `lockhub status|devices|codes` as tables.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach lockhub at {path}: {source} (is the daemon running? try --socket)")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the daemon answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the daemon's answer is not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// One HTTP/1.1 connection to the daemon's socket.
async fn connect(
    socket: &Path,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| ClientError::Connect {
            path: socket.display().to_string(),
            source,
        })?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// GET `path_and_query` from the daemon's socket, as JSON.
pub async fn get(socket: &Path, path_and_query: &str) -> Result<Value, ClientError> {
    let mut sender = connect(socket).await?;
    let req = hyper::Request::get(path_and_query)
        .header("host", "lockhub")
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    if status != 200 {
        return Err(ClientError::Status {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    Ok(serde_json::from_slice(&body)?)
}

/// POST `body` (JSON) to `path` on the daemon's socket; the status and the
/// JSON answer (errors are JSON too).
pub async fn post(socket: &Path, path: &str, body: &Value) -> Result<(u16, Value), ClientError> {
    let mut sender = connect(socket).await?;
    let req = hyper::Request::post(path)
        .header("host", "lockhub")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid request");
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok((status, v)),
        Err(_) => Err(ClientError::Status {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }),
    }
}

/// Columns from rows of JSON: each cell the value at a key (nested with '.').
pub fn table(rows: &[Value], columns: &[(&str, &str)]) -> String {
    let cell = |row: &Value, key: &str| -> String {
        let v = key.split('.').fold(row, |v, k| &v[k]);
        match v {
            Value::Null => "-".into(),
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.get("error_code")
                        .or(x.get("warning_code"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        }
    };
    let data: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(_, k)| cell(r, k)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            data.iter()
                .map(|r| r[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
            + "\n"
    };
    let mut out = line(columns.iter().map(|(h, _)| h.to_string()).collect());
    for r in data {
        out += &line(r);
    }
    out
}
