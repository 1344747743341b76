//! The installer page in a real headless Chromium (Debian's chromium and its
//! ChromeDriver), served by the real binary on a loopback port behind a
//! password, with a real Mosquitto and the seed's group on two simulated locks.
//! A screenshot goes to target/web-page.png.

mod support;

use serde_json::json;
use std::time::Duration;
use support::blackbox::{free_port, sim_locks, Broker, Cloud, Daemon};
use support::http::request;
use support::webdriver::Browser;

const PASSWORD: &str = "front-desk-2026";

fn hash_password() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lockhub"))
        .args(["web", "hash-password"])
        .env("LOCKHUB_WEB_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installer_page_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let web = format!("127.0.0.1:{}", free_port());
    let extra = format!(
        "{}[web]\nlisten = \"{web}\"\npassword_hash = \"{}\"\n",
        sim_locks(0, 20),
        hash_password()
    );
    let mut daemon = Daemon::new(dir.path(), broker.port, &extra);
    daemon.start();
    let cloud = Cloud::connect(broker.port, "lockhub/test-hub", "web-cloud").await;
    cloud.wait_online().await;

    let starts = chrono::Utc::now() + chrono::Duration::seconds(1);
    let ends = starts + chrono::Duration::days(2);
    cloud
        .send_json(
            "access_codes/create_multiple",
            &json!({
                "request_id": "w-1", "device_ids": [support::blackbox::FRONT, support::blackbox::BACK],
                "name": "Jane's reservation", "starts_at": starts.to_rfc3339(),
                "ends_at": ends.to_rfc3339(), "preferred_code_length": 4,
            }),
        )
        .await;
    let r = cloud.response("w-1", 30).await;
    assert_eq!(r["ok"], true, "{r}");
    let pin = r["access_codes"][0]["code"].as_str().unwrap().to_owned();

    // Without a session the views are refused; what only the socket may do is refused always.
    let no_session = request(&web, "GET", "/v1/devices", &[], vec![]).await;
    assert_eq!(no_session.status, 401, "{}", no_session.text());
    let page = request(&web, "GET", "/", &[], vec![]).await;
    assert_eq!(page.status, 200);
    assert!(!page.text().contains(&pin));

    let browser = Browser::start().await;
    browser.goto(&format!("http://{web}/")).await;
    browser
        .wait_text("#login", 10, |t| t.contains("Log in"))
        .await;

    // A wrong password is refused, and stays refused after a reload.
    browser.type_into("#password", "not-the-password").await;
    browser.click("#login-button").await;
    browser
        .wait_text("#login-result", 10, |t| t.contains("Login refused"))
        .await;
    browser.goto(&format!("http://{web}/")).await;
    browser
        .wait_text("#login", 10, |t| t.contains("Log in"))
        .await;
    assert_eq!(
        browser.text_of("#app").await,
        "",
        "the app showed without a login"
    );
    let cookies = browser.eval("return document.cookie").await;
    assert_eq!(cookies, "", "a refused login set a cookie");

    // The right one shows the demo's locks and codes, PINs masked.
    browser.type_into("#password", PASSWORD).await;
    browser.click("#login-button").await;
    let locks = browser
        .wait_text("#locks", 15, |t| {
            t.contains("Front door") && t.contains("Back door")
        })
        .await;
    assert!(locks.contains("online"), "{locks}");
    let codes = browser
        .wait_text("#codes", 15, |t| {
            t.matches("Jane's reservation").count() == 2
        })
        .await;
    assert!(!codes.contains(&pin), "a PIN on the page: {codes}");
    assert!(
        codes.contains("****") || codes.contains('•') || codes.contains('*'),
        "{codes}"
    );
    // Live events: the locks' set_on_device arrive over server-sent events.
    browser
        .wait_text("#events", 15, |t| t.contains("access_code.set_on_device"))
        .await;
    assert_eq!(browser.text_of("#live").await, "(live)");

    // check-config from the page reads the daemon's own file.
    browser.click("#check-config").await;
    let checked = browser
        .wait_text("#check-config-result", 10, |t| {
            t.contains("ok") || t.contains(':')
        })
        .await;
    assert!(checked.contains("lockhub.toml: ok"), "{checked}");

    let html = browser.source().await;
    assert!(!html.contains(&pin), "a PIN in the page's HTML");
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-page.png");
    browser.screenshot(&shot).await;
    println!("screenshot: {}", shot.display());

    // Over TCP: no commands, no revealed PINs (logged in or not, see below).
    let cmd = request(
        &web,
        "POST",
        "/v1/commands/access_codes/delete",
        &[],
        br#"{"access_code_id":"x"}"#.to_vec(),
    )
    .await;
    assert_eq!(cmd.status, 403, "{}", cmd.text());
    let reveal = request(
        &web,
        "GET",
        "/v1/access_codes?reveal_codes=true",
        &[],
        vec![],
    )
    .await;
    assert_eq!(reveal.status, 403, "{}", reveal.text());

    // Login over plain HTTP: a refusal sets no cookie; the right password does.
    let bad = request(
        &web,
        "POST",
        "/v1/web/login",
        &[("content-type", "application/json")],
        br#"{"password":"nope"}"#.to_vec(),
    )
    .await;
    assert_eq!(bad.status, 401);
    assert!(bad.headers.get("set-cookie").is_none());
    let good = request(
        &web,
        "POST",
        "/v1/web/login",
        &[("content-type", "application/json")],
        json!({"password": PASSWORD}).to_string().into_bytes(),
    )
    .await;
    assert_eq!(good.status, 200, "{}", good.text());
    let set = good
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let session = set.split(';').next().unwrap().to_owned();
    let devices = request(
        &web,
        "GET",
        "/v1/devices",
        &[("cookie", session.as_str())],
        vec![],
    )
    .await;
    assert_eq!(devices.status, 200);
    assert_eq!(devices.json()["devices"].as_array().unwrap().len(), 2);
    let still_no = request(
        &web,
        "GET",
        "/v1/access_codes?reveal_codes=true",
        &[("cookie", session.as_str())],
        vec![],
    )
    .await;
    assert_eq!(still_no.status, 403);

    // The log never holds the password or a session token.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = daemon.log();
    assert!(
        !log.contains(PASSWORD) && !log.contains(&session["lockhub_session=".len()..]),
        "a secret in the log"
    );
    assert!(log.contains("installer page listening"), "{log}");
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

/// On the local socket the page needs no login (the socket's mode decides).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_on_the_socket_needs_no_login() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(dir.path(), broker.port, &sim_locks(0, 10));
    daemon.start();
    let socket = daemon.socket.clone();
    support::blackbox::wait_for("the socket", 15, || socket.exists().then_some(())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = lockhub::status::client::get(&socket, "/v1/web/session")
        .await
        .unwrap();
    assert_eq!(s["login_required"], false);
    assert_eq!(s["logged_in"], true);
    assert_eq!(s["hub_id"], "test-hub");
    let ev = lockhub::status::client::get(&socket, "/v1/events")
        .await
        .unwrap();
    assert!(ev["events"].is_array());
    daemon.terminate();
}
