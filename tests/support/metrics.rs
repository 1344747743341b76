//! The daemon's `/metrics` on its Unix socket, read with a plain HTTP/1.1 GET
//! (blocking: for a test or a bench between steps, not inside a busy loop).
//! Included by the benches with `#[path]`, so it needs nothing else of support.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

/// Every sample of lockhub's own (`lockhub_*`), by its name with labels.
pub fn read(socket: &Path) -> HashMap<String, f64> {
    let mut s = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: lockhub\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| l.starts_with("lockhub_"))
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

/// One sample; panics naming it when the daemon does not report it.
pub fn one(socket: &Path, name: &str) -> f64 {
    let all = read(socket);
    *all.get(name)
        .unwrap_or_else(|| panic!("/metrics has no {name}; it has {:?}", all.keys()))
}
