//! The unit's exposure as systemd scores it (`systemd-analyze security
//! --offline=true`), and what the install needs of it.

use std::path::Path;
use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/lockhub.service");
const SERIAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/zwave-serial.conf");

/// The overall exposure of a unit file, or `None` when systemd-analyze is absent.
fn exposure(unit: &Path) -> Option<(f64, String)> {
    let out = match Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
    {
        Ok(o) => o,
        Err(_) => return None,
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure in:\n{text}"));
    let value = line
        .split(':')
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unreadable: {line}"));
    Some((value, text))
}

#[test]
fn the_unit_exposure_is_at_most_one() {
    let Some((value, text)) = exposure(Path::new(UNIT)) else {
        eprintln!(
            "SKIPPED: systemd-analyze is not installed (scripts/test-deps-trust.sh installs it)"
        );
        return;
    };
    assert!(value <= 1.0, "exposure {value}:\n{text}");
    // With the USB stick drop-in the unit opens the serial devices again: reported, and bounded.
    let dir = tempfile::tempdir().unwrap();
    let combined = dir.path().join("lockhub.service");
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let unit = unit.split("[Install]").next().unwrap().to_owned();
    std::fs::write(&combined, unit + &std::fs::read_to_string(SERIAL).unwrap()).unwrap();
    let (with_serial, text) = exposure(&combined).unwrap();
    println!("exposure: {value} (unit), {with_serial} (with zwave-serial.conf)");
    assert!(
        with_serial <= 1.5,
        "with the serial drop-in {with_serial}:\n{text}"
    );
}

#[test]
fn the_unit_never_stops_restarting_and_can_read_its_config() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for want in [
        "StartLimitIntervalSec=0",
        "UMask=0077",
        "User=lockhub",
        "Group=lockhub",
    ] {
        assert!(lines.contains(&want), "{want} missing");
    }
    // ConfigurationDirectory= would make /etc/lockhub root:root 0750, unreadable to the service.
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("ConfigurationDirectory")),
        "{unit}"
    );
    // The broker is reachable: the IP allow list names at least localhost.
    assert!(lines.contains(&"IPAddressDeny=any") && lines.contains(&"IPAddressAllow=localhost"));
}
