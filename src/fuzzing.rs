//! Every parser that takes bytes from outside, behind one face for
//! coverage-guided fuzzing (`fuzz/`, `cargo +nightly fuzz`, `scripts/fuzz.sh`)
//! and for the stable regression test that feeds it the committed corpus
//! (`tests/fuzz_corpus.rs`). A target must never panic, whatever the bytes:
//! a bad input is a typed error. Where a parser sits behind a MAC, the
//! target also seals the input itself and checks it opens to the same bytes.

use crate::drivers::ble::nuki::{crypto as nuki_crypto, frame::Message, keypad};
use crate::drivers::zwave::security::crypto::S2Keys;
use crate::drivers::zwave::security::s2::{self, KeyRing};
use crate::drivers::zwave::security::{crypto as zw_crypto, s0, SecurityClass};
use crate::drivers::zwave::{cc, frame, serialapi};

/// A fuzz target: any bytes, never a panic.
pub type Target = fn(&[u8]);

/// The targets, by name (the fuzz binaries and the corpus folders are named so).
pub const TARGETS: &[(&str, Target)] = &[
    ("command_payload", command_payload),
    ("zwave_serial", zwave_serial),
    ("zwave_cc", zwave_cc),
    ("zwave_s0", zwave_s0),
    ("zwave_s2", zwave_s2),
    ("nuki_message", nuki_message),
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// A command as it comes over MQTT: the first byte picks the command, the
/// rest is the payload, handled end to end on an in-memory store.
pub fn command_payload(data: &[u8]) {
    use crate::commands::{Commands, COMMANDS};
    use crate::engine::clock::{Clock, SystemClock};
    use std::cell::RefCell;
    use std::sync::Arc;
    thread_local! {
        static HUB: RefCell<(Option<Commands>, u32)> = const { RefCell::new((None, 0)) };
    }
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let command = COMMANDS
        .get(pick as usize % (COMMANDS.len() + 1))
        .copied()
        .unwrap_or("access_codes/no_such_command");
    HUB.with(|h| {
        let mut h = h.borrow_mut();
        // A fresh store now and then: stored answers would pile up.
        if h.0.is_none() || h.1 >= 5000 {
            let store = Arc::new(crate::store::Store::open_in_memory().expect("in-memory store"));
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            *h = (
                Some(Commands::new(
                    store,
                    clock,
                    crate::settings::HubSettings::default(),
                    Arc::new(|_: &crate::commands::Woken<'_>| {}),
                )),
                0,
            );
        }
        h.1 += 1;
        let reply = h.0.as_ref().unwrap().execute(command, payload);
        assert!(
            reply.body["ok"].is_boolean(),
            "every command is answered: {}",
            reply.body
        );
    });
}

/// Bytes from the Z-Wave controller: the serial framing, then each frame's
/// Serial API payload as every parser of it reads it, and an application
/// command's command-class payload.
pub fn zwave_serial(data: &[u8]) {
    let mut d = frame::Decoder::new();
    // In two pieces, as reads split them.
    let cut = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    d.push(&data[..cut]);
    while d.next_frame().is_some() {}
    d.push(&data[cut..]);
    while let Some(f) = d.next_frame() {
        if let frame::Frame::Data(df) = f {
            serial_payload(df.func, &df.payload);
        }
    }
    if let Some((&func, rest)) = data.split_first() {
        serial_payload(func, rest);
    }
}

fn serial_payload(func: u8, b: &[u8]) {
    let _ = serialapi::parse_version(b);
    let _ = serialapi::parse_memory_get_id(b);
    let _ = serialapi::parse_capabilities(b);
    let _ = serialapi::parse_init_data(b);
    let _ = serialapi::parse_protocol_info(b);
    let _ = serialapi::parse_node_info(b);
    if let Ok((_, command)) = serialapi::parse_application_command(func, b) {
        zwave_cc(&command);
    }
}

/// A command-class payload from a node, as the driver reads it, and each
/// report parser on its own.
pub fn zwave_cc(b: &[u8]) {
    let _ = cc::Incoming::parse(b);
    let _ = cc::battery::parse_report(b);
    let _ = cc::door_lock::parse_operation_report(b);
    let _ = cc::manufacturer_specific::parse_report(b);
    let _ = cc::notification::parse_report(b);
    let _ = cc::schedule_entry_lock::parse_supported(b);
    let _ = cc::supervision::parse_report(b);
    let _ = cc::supervision::parse_get(b);
    let _ = cc::user_code::parse_report(b);
    let _ = cc::user_code::parse_users_number(b);
    let _ = cc::user_code::parse_checksum(b);
    let _ = cc::user_code::parse_capabilities(b);
    let _ = cc::user_code::parse_extended_report(b);
    let _ = cc::version::parse_report(b);
    let _ = cc::version::parse_cc_report(b);
    let _ = cc::wake_up::parse_interval_report(b);
    let _ = crate::drivers::zwave::security::bootstrap::KexReport::parse(b);
    let _ = crate::drivers::zwave::security::bootstrap::parse_kex_set_echo(b);
    let _ = crate::drivers::zwave::security::bootstrap::parse_public_key_report(b);
    let _ = crate::drivers::zwave::security::bootstrap::parse_network_key_get(b);
    let _ = crate::drivers::zwave::security::bootstrap::parse_transfer_end(b);
}

/// S0: a Message Encapsulation as a node sends it (with a nonce we gave
/// out), the other S0 reports, and the input sealed by us opens to itself.
pub fn zwave_s0(b: &[u8]) {
    let keys = s0::S0Keys::new(&[0x5A; 16]);
    let mut nonces = s0::Nonces::default();
    let rn = nonces.issue(std::time::Duration::from_secs(10));
    let mut frame = b.to_vec();
    // Point the frame at the nonce we gave, as a real one would.
    if frame.len() >= 9 {
        let at = frame.len() - 9;
        frame[at] = rn[0];
    }
    let _ = s0::decapsulate(&keys, &mut nonces, 2, 1, &frame);
    let _ = s0::parse_nonce_report(b);
    let _ = s0::parse_commands_supported(b);
    let rn = nonces.issue(std::time::Duration::from_secs(10));
    let sealed = s0::encapsulate(&keys, 2, 1, &[7; 8], &rn, b);
    if !b.is_empty() {
        assert_eq!(
            s0::decapsulate(&keys, &mut nonces, 2, 1, &sealed).as_deref(),
            Ok(b),
            "S0 opens what it sealed"
        );
    }
}

struct Ring(Vec<(SecurityClass, S2Keys)>);

impl KeyRing for Ring {
    fn keys(&self, class: SecurityClass) -> Option<&S2Keys> {
        self.0.iter().find(|(c, _)| *c == class).map(|(_, k)| k)
    }
}

/// S2: a Message Encapsulation from a node that may carry a SPAN (after our
/// Nonce Report), the other S2 reports, and the input sealed by a peer
/// opens to itself.
pub fn zwave_s2(b: &[u8]) {
    let ring = Ring(vec![
        (
            SecurityClass::S2AccessControl,
            zw_crypto::network_keys(&[0x33; 16]),
        ),
        (
            SecurityClass::S2Authenticated,
            zw_crypto::network_keys(&[0x22; 16]),
        ),
    ]);
    let classes = [
        SecurityClass::S2AccessControl,
        SecurityClass::S2Authenticated,
    ];
    let mut lock = s2::Peer::default();
    lock.nonce_report_sos([0xA5; 16]);
    let _ = lock.decapsulate(&ring, &classes, 1, 2, 7, b);
    let _ = s2::parse_nonce_report(b);
    let _ = s2::parse_commands_supported(b);
    // A fresh pair: the host sealing `b` as a command, the lock opening it.
    let mut lock = s2::Peer::default();
    let report = lock.nonce_report_sos([0xA5; 16]);
    let ei = s2::parse_nonce_report(&report)
        .ok()
        .and_then(|r| r.receiver_ei)
        .expect("our own Nonce Report (SOS) carries our entropy");
    let mut host = s2::Peer::default();
    host.span = s2::Span::RemoteEi(ei);
    if let Ok(f) = host.encapsulate(&ring, classes[0], 1, 2, 7, b, &[], [0x5A; 16]) {
        let o = lock.decapsulate(&ring, &classes, 1, 2, 7, &f);
        assert_eq!(
            o.map(|o| o.command),
            Ok(b.to_vec()),
            "S2 opens what it sealed"
        );
    }
}

/// Nuki: a message from the lock, plain or encrypted (with the key we share),
/// and each keypad reader on what it decodes to; the input sealed as a
/// message's payload opens to itself.
pub fn nuki_message(b: &[u8]) {
    let key = nuki_crypto::SharedKey::from_bytes([0x42; 32]);
    let _ = nuki_crypto::EncryptedHeader::parse(b);
    let opened = key.open(b).map(|m| m.message);
    for msg in [Message::decode(b), opened].into_iter().flatten() {
        let _ = keypad::parse_count(&msg);
        let _ = keypad::parse_code_id(&msg);
        let _ = keypad::parse_entry(&msg);
        // The lock's state and activity log (what the lock sends on its own).
        if let Ok(st) = crate::drivers::ble::nuki::states::parse_states(&msg) {
            let _ = (st.locked(), st.door_open());
        }
        if let Ok(e) = crate::drivers::ble::nuki::states::parse_log_entry(&msg) {
            let _ = (e.keypad(), e.lock_action(), e.door());
        }
        let _ = crate::drivers::ble::nuki::error::NukiError::from_report(&msg.payload);
        if let Ok(encoded) = std::panic::catch_unwind(|| msg.encode()) {
            assert_eq!(
                Message::decode(&encoded)
                    .ok()
                    .as_ref()
                    .map(|m| (&m.command, &m.payload)),
                Some((&msg.command, &msg.payload)),
                "a decoded message encodes back to itself"
            );
        }
    }
    let msg = Message {
        command: 0x0001,
        payload: b.to_vec(),
    };
    let sealed = key.seal(&[9; nuki_crypto::NONCE_LEN], 7, &msg);
    let back = key.open(&sealed).expect("opens what it sealed");
    assert_eq!((back.auth_id, back.message.payload), (7, b.to_vec()));
}
