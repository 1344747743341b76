#![allow(dead_code)]
//! A fake BlueZ on a private D-Bus bus, for the real btleplug code path:
//! `dbus-daemon` with tests/bluez/bus.conf, and python-dbusmock's bluez5
//! template extended by tests/bluez/fake_nuki.py with one Nuki-like device.
//! Its GATT writes are relayed over a Unix socket to a closure in the test
//! (the fake lock), whose replies go back as 20-byte indications.
//!
//! The fake bluetoothd is a process of its own on the bus: a test can start
//! the bus without it, kill it and start another (a bluetoothd restart).
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

/// What a freshly started bluetoothd knows of the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// Its device object is there at once (a lock BlueZ has cached).
    Known,
    /// It appears only once a discovery starts, as a lock BlueZ has not
    /// cached does after a restart of bluetoothd.
    Empty,
}

pub struct FakeBluez {
    pub bus: String,
    daemon: Child,
    /// The fake bluetoothd (python-dbusmock), a process of its own so a test
    /// can kill it and start another; `None` while it is not running.
    mock: Option<Child>,
    address: String,
    relay: std::path::PathBuf,
    dir: tempfile::TempDir,
}

const PYTHON: &str = "/usr/bin/python3";

fn missing(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{what} not found: run scripts/test-deps-ble.sh"),
    )
}

fn here() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bluez")
}

impl FakeBluez {
    /// The private bus with bluetoothd on it, the lock known.
    pub fn start(
        address: &str,
        handler: impl FnMut(Channel, &[u8]) -> Reply + Send + 'static,
    ) -> std::io::Result<FakeBluez> {
        let mut fake = Self::bus_only(address, handler)?;
        fake.start_bluez(Cache::Known)?;
        Ok(fake)
    }

    /// The private bus and the fake lock, without bluetoothd (a hub whose
    /// Bluetooth service has not started): [`FakeBluez::start_bluez`] later.
    pub fn bus_only(
        address: &str,
        handler: impl FnMut(Channel, &[u8]) -> Reply + Send + 'static,
    ) -> std::io::Result<FakeBluez> {
        if STARTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other(
                "one fake BlueZ per test binary: libdbus keeps the first system-bus address",
            ));
        }
        let dir = tempfile::tempdir()?;
        let sock = dir.path().join("bus.sock");
        let conf = std::fs::read_to_string(here().join("bus.conf"))?
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
        let fake = FakeBluez {
            bus,
            daemon,
            mock: None,
            address: address.to_owned(),
            relay,
            dir,
        };
        fake.wait_for_bus()?;
        // btleplug reads the system bus address from the environment.
        std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &fake.bus);
        Ok(fake)
    }

    /// Starts a fake bluetoothd (a new process, with a new unique name on the
    /// bus) and waits until it owns `org.bluez`.
    pub fn start_bluez(&mut self, cache: Cache) -> std::io::Result<()> {
        assert!(self.mock.is_none(), "bluetoothd is running already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mock.log"))?;
        let mock = Command::new(PYTHON)
            .args(["-m", "dbusmock", "--system", "-t"])
            .arg(here().join("fake_nuki.py"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus)
            .env("FAKENUKI_RELAY", &self.relay)
            .env("FAKENUKI_ADDRESS", &self.address)
            .env(
                "FAKENUKI_ON_DISCOVERY",
                if cache == Cache::Empty { "1" } else { "0" },
            )
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|_| missing(PYTHON))?;
        self.mock = Some(mock);
        self.wait_for_bluez()
    }

    /// Kills the fake bluetoothd (SIGKILL, as a crash) and waits until its
    /// name is gone from the bus.
    pub fn kill_bluez(&mut self) {
        if let Some(mut m) = self.mock.take() {
            let _ = m.kill();
            let _ = m.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.bluez_on_bus().unwrap_or(false) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Removes the adapter (and the lock's device object) from the running
    /// bluetoothd, as unplugging a USB adapter does.
    pub fn unplug_adapter(&self) {
        self.mock_call("UnplugAdapter");
    }

    /// Adds the adapter again; the lock appears once a discovery starts.
    pub fn plug_adapter(&self) {
        self.mock_call("PlugAdapter");
    }

    fn mock_call(&self, method: &str) {
        let out = Command::new("dbus-send")
            .arg(format!("--bus={}", self.bus))
            .args(["--print-reply", "--dest=org.bluez", "/"])
            .arg(format!("org.bluez.Mock.{method}"))
            .output()
            .expect("dbus-send");
        assert!(
            out.status.success(),
            "{method}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    fn bluez_on_bus(&self) -> std::io::Result<bool> {
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
        Ok(String::from_utf8_lossy(&owned.stdout).contains("boolean true"))
    }

    fn wait_for_bus(&self) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(self.bus.trim_start_matches("unix:path=")).exists() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("the private D-Bus did not come up"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn wait_for_bluez(&mut self) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.bluez_on_bus()? {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.mock.as_mut().map(|m| m.try_wait()) {
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
        if let Some(mut m) = self.mock.take() {
            let _ = m.kill();
            let _ = m.wait();
        }
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
