//! Unencrypted Nuki messages: `command id (u16 LE) | payload | CRC (u16 LE)`.
//!
//! The same layout is the plaintext (PDATA) of an encrypted message, prefixed
//! there by the 4-byte authorization id.

use super::error::ProtocolError;

/// CRC-CCITT, polynomial 0x1021, initial value 0xFFFF, no reflection
/// ("CRC-16/IBM-3740"), as section 3.4 of the API asks.
const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// The CRC of `data` as the lock computes it.
pub fn crc(data: &[u8]) -> u16 {
    CRC.checksum(data)
}

/// Command identifiers lockhub uses (section 5 of the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Command {
    RequestData = 0x0001,
    PublicKey = 0x0003,
    Challenge = 0x0004,
    AuthorizationAuthenticator = 0x0005,
    AuthorizationData = 0x0006,
    AuthorizationId = 0x0007,
    KeyturnerStates = 0x000C,
    LockAction = 0x000D,
    Status = 0x000E,
    ErrorReport = 0x0012,
    AuthorizationIdConfirmation = 0x001E,
    RequestLogEntries = 0x0031,
    LogEntry = 0x0032,
    LogEntryCount = 0x0033,
    AddKeypadCode = 0x0041,
    KeypadCodeId = 0x0042,
    KeypadCodeCount = 0x0044,
    RequestKeypadCodes = 0x0043,
    KeypadCode = 0x0045,
    UpdateKeypadCode = 0x0046,
    RemoveKeypadCode = 0x0047,
}

impl Command {
    pub fn from_u16(v: u16) -> Option<Command> {
        use Command::*;
        Some(match v {
            0x0001 => RequestData,
            0x0003 => PublicKey,
            0x0004 => Challenge,
            0x0005 => AuthorizationAuthenticator,
            0x0006 => AuthorizationData,
            0x0007 => AuthorizationId,
            0x000C => KeyturnerStates,
            0x000D => LockAction,
            0x000E => Status,
            0x0012 => ErrorReport,
            0x001E => AuthorizationIdConfirmation,
            0x0031 => RequestLogEntries,
            0x0032 => LogEntry,
            0x0033 => LogEntryCount,
            0x0041 => AddKeypadCode,
            0x0042 => KeypadCodeId,
            0x0043 => RequestKeypadCodes,
            0x0044 => KeypadCodeCount,
            0x0045 => KeypadCode,
            0x0046 => UpdateKeypadCode,
            0x0047 => RemoveKeypadCode,
            _ => return None,
        })
    }
}

/// One decoded message. The command is kept as a raw `u16` so that messages
/// lockhub does not know yet still decode (and can be reported as such).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub command: u16,
    pub payload: Vec<u8>,
}

// Payloads carry PINs and keys: Debug shows only the command and the length.
impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("command", &format_args!("{:#06x}", self.command))
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl Message {
    pub fn new(command: Command, payload: impl Into<Vec<u8>>) -> Message {
        Message {
            command: command as u16,
            payload: payload.into(),
        }
    }

    /// `command | payload | crc`, ready for an unencrypted characteristic.
    pub fn encode(&self) -> Vec<u8> {
        encode_with_prefix(&[], self)
    }

    /// Parses `command | payload | crc`, checking the CRC.
    pub fn decode(bytes: &[u8]) -> Result<Message, ProtocolError> {
        let (prefix, msg) = decode_with_prefix(bytes, 0)?;
        debug_assert!(prefix.is_empty());
        Ok(msg)
    }
}

/// Encodes `prefix | command | payload | crc` where the CRC covers the prefix
/// too (the authorization id of encrypted messages is part of the CRC).
pub(crate) fn encode_with_prefix(prefix: &[u8], msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 4 + msg.payload.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(&msg.command.to_le_bytes());
    out.extend_from_slice(&msg.payload);
    let c = crc(&out);
    out.extend_from_slice(&c.to_le_bytes());
    out
}

/// The inverse of [`encode_with_prefix`].
pub(crate) fn decode_with_prefix(
    bytes: &[u8],
    prefix_len: usize,
) -> Result<(Vec<u8>, Message), ProtocolError> {
    if bytes.len() < prefix_len + 4 {
        return Err(ProtocolError::TooShort {
            len: bytes.len(),
            min: prefix_len + 4,
        });
    }
    let (body, crc_bytes) = bytes.split_at(bytes.len() - 2);
    let got = u16::from_le_bytes([crc_bytes[0], crc_bytes[1]]);
    let want = crc(body);
    if got != want {
        return Err(ProtocolError::BadCrc { got, want });
    }
    let (prefix, rest) = body.split_at(prefix_len);
    Ok((
        prefix.to_vec(),
        Message {
            command: u16::from_le_bytes([rest[0], rest[1]]),
            payload: rest[2..].to_vec(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Worked examples of section 9 ("Authorize App").
    #[test]
    fn request_public_key_matches_spec() {
        let m = Message::new(Command::RequestData, 0x0003u16.to_le_bytes());
        assert_eq!(m.encode(), hex("0100 0300 27A7"));
    }

    #[test]
    fn status_complete_decodes() {
        let m = Message::decode(&hex("0E00 00 9DD7")).unwrap();
        assert_eq!(m.command, Command::Status as u16);
        assert_eq!(m.payload, vec![0x00]);
    }

    #[test]
    fn public_key_from_lock_decodes() {
        let bytes =
            hex("0300 2FE57DA347CD62431528DAAC5FBB290730FF F684AFC4CFC2ED90995F58CB3B74 9DB9");
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(m.command, Command::PublicKey as u16);
        assert_eq!(m.payload.len(), 32);
    }

    #[test]
    fn bad_crc_is_rejected() {
        let mut bytes = hex("0E00 00 9DD7");
        bytes[2] ^= 1;
        assert!(matches!(
            Message::decode(&bytes),
            Err(ProtocolError::BadCrc { .. })
        ));
        assert!(matches!(
            Message::decode(&[0x0E]),
            Err(ProtocolError::TooShort { .. })
        ));
    }

    #[test]
    fn debug_hides_payload() {
        let m = Message::new(Command::AddKeypadCode, vec![0xAB; 8]);
        let s = format!("{m:?}");
        assert!(s.contains("0x0041") && !s.contains("171"), "{s}");
    }
}
