//! The local socket decides by the kernel's peer credentials: a second, real
//! uid in `socket.group` may read (PINs masked) but not command or reveal; a
//! uid outside it cannot use the socket. Needs root (to create the users);
//! skipped with a message otherwise.

mod support;

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use support::blackbox::*;
use support::trust::*;

const BASE: &str = "lockhub/test-hub";

/// Users and a group of this test's own, removed at the end.
struct Accounts {
    group: String,
    reader: String,
    outsider: String,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Accounts {
    fn create() -> Accounts {
        let tag = std::process::id() % 100_000;
        let a = Accounts {
            group: format!("lhsock{tag}"),
            reader: format!("lhread{tag}"),
            outsider: format!("lhout{tag}"),
        };
        run(Command::new("groupadd").arg(&a.group));
        run(Command::new("useradd").args([
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "-G",
            &a.group,
            &a.reader,
        ]));
        run(Command::new("useradd").args([
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            &a.outsider,
        ]));
        a
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in [&self.reader, &self.outsider] {
            let _ = Command::new("userdel").arg(u).output();
        }
        let _ = Command::new("groupdel").arg(&self.group).output();
    }
}

/// `curl` over the socket as `user` (with the user's groups, as a login
/// would give them): the HTTP status (0: could not connect) and the body.
fn curl_as(
    user: &str,
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        user,
        "--regid",
        user,
        "--init-groups",
        "curl",
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "--unix-socket",
    ])
    .arg(socket)
    .args(["-X", method]);
    if let Some(b) = body {
        c.args(["-H", "content-type: application/json", "--data", b]);
    }
    c.arg(format!("http://lockhub{path}"));
    let out = c.output().expect("setpriv and curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_uid_in_the_group_reads_but_cannot_command_or_reveal() {
    if nix::unistd::geteuid().as_raw() != 0 {
        eprintln!("SKIPPED: creating the test's users needs root");
        return;
    }
    let accounts = Accounts::create();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(dir.path(), broker.port, &sim_locks(0, 0));
    drop_in(
        &daemon.config,
        "50-socket",
        &format!("[socket]\ngroup = \"{}\"\n", accounts.group),
    );
    // The other users must reach the socket's directory.
    for d in [dir.path(), &daemon.dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    daemon.start();
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;
    cloud.wait_online().await;
    cloud
        .send_json(
            "access_codes/create",
            &json!({"request_id": "s1", "device_id": FRONT}),
        )
        .await;
    let pin = cloud.response("s1", 10).await["access_code"]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let sock = daemon.socket.clone();
    let meta = std::fs::metadata(&sock).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        meta.gid(),
        nix::unistd::Group::from_name(&accounts.group)
            .unwrap()
            .unwrap()
            .gid
            .as_raw(),
        "the socket belongs to socket.group"
    );
    assert_eq!(meta.mode() & 0o777, 0o660);

    let blocking = tokio::task::spawn_blocking(move || {
        let r = &accounts.reader;
        // The reader: every view, PINs masked.
        let (code, body) = curl_as(r, &sock, "GET", "/v1/health", None);
        assert_eq!(code, 200, "{body}");
        let (code, body) = curl_as(r, &sock, "GET", "/v1/access_codes", None);
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["access_codes"][0]["code"].is_null(), "{v}");
        assert!(!body.contains(&pin));
        // ... but no PINs and no commands.
        let (code, body) = curl_as(r, &sock, "GET", "/v1/access_codes?reveal_codes=true", None);
        assert_eq!(code, 403, "{body}");
        assert!(!body.contains(&pin));
        let (code, body) = curl_as(
            r,
            &sock,
            "POST",
            "/v1/commands/access_codes/create",
            Some(&json!({"request_id": "by-reader", "device_id": BACK}).to_string()),
        );
        assert_eq!(code, 403, "{body}");
        // The outsider cannot even connect (0660, group-owned).
        let (code, _) = curl_as(&accounts.outsider, &sock, "GET", "/v1/health", None);
        assert!(code == 0 || code == 403, "outsider got {code}");
        // Root may do everything.
        let (code, body) = curl_as(
            "root",
            &sock,
            "GET",
            "/v1/access_codes?reveal_codes=true",
            None,
        );
        assert_eq!(code, 200, "{body}");
        assert!(body.contains(&pin));
        let (code, body) = curl_as(
            "root",
            &sock,
            "POST",
            "/v1/commands/access_codes/create",
            Some(&json!({"request_id": "by-root", "device_id": BACK}).to_string()),
        );
        assert_eq!(code, 200, "{body}");
        accounts
    });
    let accounts = blocking.await.unwrap();
    // The reader's POST changed nothing.
    cloud
        .send_json(
            "access_codes/list",
            &json!({"request_id": "l1", "device_id": BACK}),
        )
        .await;
    assert_eq!(
        cloud.response("l1", 10).await["access_codes"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "only root's create landed"
    );
    assert!(daemon.log().contains("refused by peer credentials"));
    drop(accounts);
}
