//! Every value of the golden vectors (generated with zwave-js 15.29; a copy
//! of shared/reference/zwave-security/golden-vectors.json is in tests/data)
//! reproduced by lockhub's own S0/S2 code: CKDF, temporary keys, SPAN (nonce
//! PRK, MEI, the first three nonces), a whole S2 frame, S0 keys and a whole
//! S0 frame. The frames are also opened again by the receiving side's code.

use lockhub::drivers::zwave::security::s2::{KeyRing, Peer, Span};
use lockhub::drivers::zwave::security::{crypto, s0, SecurityClass};
use serde_json::Value;

fn golden() -> Value {
    serde_json::from_str(include_str!("data/zwave-security-golden-vectors.json")).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    let s = v.as_str().expect("hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn arr<const N: usize>(v: &Value) -> [u8; N] {
    bytes(v).try_into().expect("length")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn ckdf_network_key() {
    let g = &golden()["ckdf_network_key"];
    let k = crypto::network_keys(&arr(&g["pnk"]));
    assert_eq!(hex(&k.key_ccm), g["keyCCM"]);
    assert_eq!(hex(&k.personalization), g["personalizationString"]);
    assert_eq!(hex(&k.key_mpan), g["keyMPAN"]);
}

#[test]
fn ckdf_temp_key() {
    let g = &golden()["ckdf_temp_key"];
    let prk = crypto::temp_prk(
        &arr(&g["ecdhSharedSecret"]),
        &arr(&g["pubKeyA_including"]),
        &arr(&g["pubKeyB_joining"]),
    );
    assert_eq!(hex(&prk), g["prk"]);
    let t = crypto::temp_keys(&prk);
    assert_eq!(hex(&t.key_ccm), g["tempKeyCCM"]);
    assert_eq!(hex(&t.personalization), g["tempPersonalizationString"]);
}

#[test]
fn span_nonce_prk_mei_and_first_nonces() {
    let g = &golden()["span"];
    assert_eq!(g["securityClass"], "S2_AccessControl");
    let prk = crypto::nonce_prk(&arr(&g["senderEI"]), &arr(&g["receiverEI"]));
    assert_eq!(hex(&prk), g["noncePRK"]);
    let mei = crypto::mei(&prk);
    assert_eq!(hex(&mei), g["MEI"]);
    // The S2_AccessControl key of the mock network (0x33 x 16).
    let keys = crypto::network_keys(&[0x33; 16]);
    let mut drbg = crypto::CtrDrbg::new(&mei, &keys.personalization);
    let nonces: Vec<String> = (0..3).map(|_| hex(&drbg.next_nonce())).collect();
    let want: Vec<String> = g["first3Nonces13"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(nonces, want);
}

struct Ring(crypto::S2Keys);
impl KeyRing for Ring {
    fn keys(&self, class: SecurityClass) -> Option<&crypto::S2Keys> {
        (class == SecurityClass::S2AccessControl).then_some(&self.0)
    }
}

#[test]
fn s2_message_encapsulation_frame() {
    let all = golden();
    let g = &all["s2_message_encapsulation"];
    let span = &all["span"];
    let home_id = u32::from_be_bytes(arr(&g["homeId"]));
    let (src, dst) = (
        g["sender"].as_u64().unwrap() as u8,
        g["receiver"].as_u64().unwrap() as u8,
    );
    let ring = Ring(crypto::network_keys(&[0x33; 16]));
    let frame = bytes(&g["frame"]);
    // The host's side: the receiver's entropy input arrived in its Nonce
    // Report; the frame carries ours in the SPAN extension.
    let mut host = Peer::default();
    host.span = Span::RemoteEi(arr(&span["receiverEI"]));
    host.set_next_sequence(frame[2]);
    let built = host
        .encapsulate(
            &ring,
            SecurityClass::S2AccessControl,
            src,
            dst,
            home_id,
            &bytes(&g["plaintext"]),
            &[],
            arr(&span["senderEI"]),
        )
        .unwrap();
    assert_eq!(hex(&built), g["frame"]);
    // The AAD is the frame's header with addresses, home id and length.
    let aad = bytes(&g["aad"]);
    assert_eq!(&aad[..2], &[src, dst]);
    assert_eq!(&aad[2..6], &home_id.to_be_bytes());
    assert_eq!(u16::from_be_bytes([aad[6], aad[7]]) as usize, frame.len());
    assert_eq!(&aad[8..], &frame[2..2 + aad.len() - 8]);
    assert_eq!(
        hex(&arr::<13>(&span["first3Nonces13"][0])),
        g["nonce"],
        "the frame used the SPAN's first nonce"
    );
    // The lock's side opens it from its own entropy input.
    let mut lock = Peer::default();
    lock.span = Span::LocalEi(arr(&span["receiverEI"]));
    let opened = lock
        .decapsulate(
            &ring,
            &[SecurityClass::S2AccessControl],
            src,
            dst,
            home_id,
            &frame,
        )
        .unwrap();
    assert_eq!(hex(&opened.command), g["plaintext"]);
    assert_eq!(opened.class, SecurityClass::S2AccessControl);
}

#[test]
fn s0_keys_and_frame() {
    let all = golden();
    let g = &all["s0"];
    let keys = s0::S0Keys::new(&arr(&g["networkKey"]));
    let (auth, enc) = crypto::s0_keys(&arr(&g["networkKey"]));
    assert_eq!(hex(&auth), g["authKey"]);
    assert_eq!(hex(&enc), g["encryptionKey"]);
    let plaintext = bytes(&g["plaintext_with_frame_control"]);
    assert_eq!(plaintext[0], 0x00, "frame control: not sequenced");
    let frame = s0::encapsulate(
        &keys,
        1,
        3,
        &arr(&g["senderNonce"]),
        &arr(&g["receiverNonce"]),
        &plaintext[1..],
    );
    assert_eq!(hex(&frame), g["frame_1_to_3"]);
    let z = &all["zero_temp_s0_key"];
    let (auth, enc) = crypto::s0_keys(&[0; 16]);
    assert_eq!(hex(&auth), z["authKey"]);
    assert_eq!(hex(&enc), z["encryptionKey"]);
}
