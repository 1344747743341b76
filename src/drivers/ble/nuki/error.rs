//! What can go wrong talking to a Nuki, and how it maps onto lockhub's
//! [`DriverError`] (so the engine knows what to retry).

use crate::drivers::DriverError;

/// The bytes from the lock did not form a valid message. Never carries
/// payload bytes (they may hold a PIN or a key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("message too short: {len} bytes, need at least {min}")]
    TooShort { len: usize, min: usize },
    #[error("bad CRC: got {got:#06x}, computed {want:#06x}")]
    BadCrc { got: u16, want: u16 },
    #[error("length field says {declared} bytes, got {actual}")]
    BadLength { declared: usize, actual: usize },
    #[error("could not decrypt: wrong key or tampered message")]
    DecryptFailed,
    #[error("authorization id {inner} inside differs from {outer} outside")]
    AuthIdMismatch { outer: u32, inner: u32 },
    #[error("unexpected command {got:#06x}, expected {expected:#06x}")]
    UnexpectedCommand { got: u16, expected: u16 },
    #[error("bad payload for command {command:#06x}: {reason}")]
    BadPayload { command: u16, reason: &'static str },
}

/// An error code the lock sent back in an Error Report (0x0012), section 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NukiError {
    #[error("the lock reports a bad CRC")]
    BadCrc,
    #[error("the lock reports a bad length")]
    BadLength,
    #[error("the lock reports an unknown error")]
    Unknown,
    #[error("the lock is not in pairing mode")]
    NotPairing,
    #[error("the lock rejected our authenticator")]
    BadAuthenticator,
    #[error("the lock rejected a pairing parameter")]
    PairingBadParameter,
    #[error("the lock has no room for another user")]
    MaxUser,
    #[error("not authorized")]
    NotAuthorized,
    #[error("wrong security PIN")]
    BadPin,
    #[error("the lock rejected the nonce")]
    BadNonce,
    #[error("the lock rejected a parameter")]
    BadParameter,
    #[error("invalid authorization id")]
    InvalidAuthId,
    #[error("the authorization is disabled")]
    Disabled,
    #[error("too many wrong PIN attempts")]
    TooManyPinAttempts,
    #[error("too many keypad codes")]
    TooManyEntries,
    #[error("the keypad code already exists")]
    CodeAlreadyExists,
    #[error("the keypad code is invalid")]
    CodeInvalid,
    #[error("the lock is busy")]
    Busy,
    #[error("lock error code {0:#04x}")]
    Other(u8),
}

impl NukiError {
    pub fn from_code(code: u8) -> NukiError {
        use NukiError::*;
        match code {
            0xFD => BadCrc,
            0xFE => BadLength,
            0xFF => Unknown,
            0x10 => NotPairing,
            0x11 => BadAuthenticator,
            0x12 => PairingBadParameter,
            0x13 => MaxUser,
            0x20 => NotAuthorized,
            0x21 => BadPin,
            0x22 => BadNonce,
            0x23 => BadParameter,
            0x24 => InvalidAuthId,
            0x25 => Disabled,
            0x28 => TooManyPinAttempts,
            0x29 => TooManyEntries,
            0x2A => CodeAlreadyExists,
            0x2B => CodeInvalid,
            0x45 => Busy,
            other => Other(other),
        }
    }

    /// The error an Error Report's payload (code, then the command) names;
    /// an empty report counts as "unknown".
    pub fn from_report(payload: &[u8]) -> NukiError {
        NukiError::from_code(*payload.first().unwrap_or(&0xFF))
    }

    pub fn code(self) -> u8 {
        use NukiError::*;
        match self {
            BadCrc => 0xFD,
            BadLength => 0xFE,
            Unknown => 0xFF,
            NotPairing => 0x10,
            BadAuthenticator => 0x11,
            PairingBadParameter => 0x12,
            MaxUser => 0x13,
            NotAuthorized => 0x20,
            BadPin => 0x21,
            BadNonce => 0x22,
            BadParameter => 0x23,
            InvalidAuthId => 0x24,
            Disabled => 0x25,
            TooManyPinAttempts => 0x28,
            TooManyEntries => 0x29,
            CodeAlreadyExists => 0x2A,
            CodeInvalid => 0x2B,
            Busy => 0x45,
            Other(c) => c,
        }
    }
}

impl From<NukiError> for DriverError {
    /// Code errors are final for that code; garbled transfers (CRC, length,
    /// nonce) and a busy lock are worth another try; a wrong security PIN or
    /// a revoked authorization needs a human, so it is final too.
    fn from(e: NukiError) -> DriverError {
        use NukiError::*;
        match e {
            CodeAlreadyExists => DriverError::DuplicateCode,
            CodeInvalid => DriverError::CodeRejected("the lock rejected the code".into()),
            TooManyEntries => DriverError::NoSpace,
            BadCrc | BadLength | BadNonce | Busy => DriverError::Busy,
            BadPin => DriverError::Failed("wrong security PIN configured for the lock".into()),
            other => DriverError::Failed(other.to_string()),
        }
    }
}

impl From<ProtocolError> for DriverError {
    /// A reply that does not parse: typed, so the device shows it; retried
    /// with the lock's backoff (a garbled transfer may come right).
    fn from(e: ProtocolError) -> DriverError {
        DriverError::Protocol(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for c in 0..=255u8 {
            assert_eq!(NukiError::from_code(c).code(), c);
        }
    }

    #[test]
    fn keypad_errors_map_to_driver_errors() {
        assert_eq!(
            DriverError::from(NukiError::from_code(0x2A)),
            DriverError::DuplicateCode
        );
        assert_eq!(
            DriverError::from(NukiError::from_code(0x29)),
            DriverError::NoSpace
        );
        assert!(matches!(
            DriverError::from(NukiError::from_code(0x2B)),
            DriverError::CodeRejected(_)
        ));
        assert!(DriverError::from(NukiError::from_code(0x22)).is_transient());
        let pin = DriverError::from(NukiError::from_code(0x21));
        assert!(!pin.is_transient());
        assert!(matches!(pin, DriverError::Failed(_)));
    }
}
