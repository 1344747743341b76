#![allow(dead_code)]
//! A fake BlueZ on a private D-Bus bus, for the real btleplug code path:
//! `dbus-daemon` with tests/bluez/bus.conf, and python-dbusmock's bluez5
//! template extended by tests/bluez/fake_nuki.py with one Nuki-like device.
//! Its GATT writes are relayed over a Unix socket to a closure in the test
//! (the fake lock), whose replies go back as 20-byte indications.
//!
//! libdbus reads the system-bus address once per process and keeps it, so
//! there is one FakeBluez per test binary: a second `start` is an error.
//! Needs scripts/test-deps-ble.sh (dbus, Debian's python3-dbusmock).

use lockhub::drivers::ble::link::Channel;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the fake lock answers to one write.
pub struct Reply {
    pub messages: Vec<Vec<u8>>,
    /// Drop the connection after indicating the messages.
    pub disconnect: bool,
}

static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub struct FakeBluez {
    pub bus: String,
    daemon: Child,
    mock: Child,
    dir: tempfile::TempDir,
}

const PYTHON: &str = "/usr/bin/python3";

fn missing(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{what} not found: run scripts/test-deps-ble.sh"),
    )
}

impl FakeBluez {
    pub fn start(
        address: &str,
        handler: impl FnMut(Channel, &[u8]) -> Reply + Send + 'static,
    ) -> std::io::Result<FakeBluez> {
        if STARTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other(
                "one fake BlueZ per test binary: libdbus keeps the first system-bus address",
            ));
        }
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bluez");
        let dir = tempfile::tempdir()?;
        let sock = dir.path().join("bus.sock");
        let conf = std::fs::read_to_string(here.join("bus.conf"))?
            .replace("@SOCKET@", sock.to_str().expect("utf-8 temp path"));
        std::fs::write(dir.path().join("bus.conf"), conf)?;
        let daemon = Command::new("dbus-daemon")
            .arg(format!(
                "--config-file={}",
                dir.path().join("bus.conf").display()
            ))
            .arg("--nofork")
            .stdout(Stdio::null())
            .spawn()
            .map_err(|_| missing("dbus-daemon"))?;
        let bus = format!("unix:path={}", sock.display());

        let relay = dir.path().join("relay.sock");
        let listener = UnixListener::bind(&relay)?;
        let handler = Arc::new(Mutex::new(handler));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let handler = handler.clone();
                std::thread::spawn(move || serve(conn, handler));
            }
        });

        let log = std::fs::File::create(dir.path().join("mock.log"))?;
        let mock = Command::new(PYTHON)
            .args(["-m", "dbusmock", "--system", "-t"])
            .arg(here.join("fake_nuki.py"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus)
            .env("FAKENUKI_RELAY", &relay)
            .env("FAKENUKI_ADDRESS", address)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|_| missing(PYTHON))?;
        let mut fake = FakeBluez {
            bus,
            daemon,
            mock,
            dir,
        };
        fake.wait_for_bluez()?;
        // btleplug reads the system bus address from the environment.
        std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &fake.bus);
        Ok(fake)
    }

    fn wait_for_bluez(&mut self) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let owned = Command::new("dbus-send")
                .arg(format!("--bus={}", self.bus))
                .args([
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.bluez",
                ])
                .output()
                .map_err(|_| missing("dbus-send"))?;
            if String::from_utf8_lossy(&owned.stdout).contains("boolean true") {
                return Ok(());
            }
            if let Ok(Some(status)) = self.mock.try_wait() {
                return Err(std::io::Error::other(format!(
                    "the fake BlueZ exited ({status}): {}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(std::io::Error::other(format!(
            "the fake BlueZ did not come up: {}",
            self.log()
        )))
    }

    /// What the mock printed (for failure messages).
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("mock.log")).unwrap_or_default();
        let start = log.char_indices().rev().nth(1999).map_or(0, |(i, _)| i);
        log[start..].to_owned()
    }
}

impl Drop for FakeBluez {
    fn drop(&mut self) {
        let _ = self.mock.kill();
        let _ = self.mock.wait();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// Answers relayed writes on one connection until the mock closes it.
fn serve(
    mut conn: std::os::unix::net::UnixStream,
    handler: Arc<Mutex<impl FnMut(Channel, &[u8]) -> Reply>>,
) {
    loop {
        let mut head = [0u8; 5];
        if conn.read_exact(&mut head).is_err() {
            return;
        }
        let channel = if head[0] == 0 {
            Channel::Pairing
        } else {
            Channel::Keyturner
        };
        let len = u32::from_le_bytes(head[1..5].try_into().unwrap()) as usize;
        let mut data = vec![0u8; len];
        if conn.read_exact(&mut data).is_err() {
            return;
        }
        let reply = (handler.lock().unwrap())(channel, &data);
        let mut out = vec![reply.disconnect as u8];
        out.extend_from_slice(&(reply.messages.len() as u16).to_le_bytes());
        for m in &reply.messages {
            out.extend_from_slice(&(m.len() as u32).to_le_bytes());
            out.extend_from_slice(m);
        }
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}
