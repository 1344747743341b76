//! Commands on the lock's users rather than its keypad, which need the
//! security PIN like keypad commands do (section 5).

use super::frame::{Command, Message};
use super::keypad::{put_auth, SecurityPin};

/// 0x0008 Remove Authorization Entry: `authorization id u32 | nonce | PIN`.
/// lockhub sends it for its own authorizations only: one that pairing left
/// behind, or one replaced by pairing again.
pub fn remove_authorization(auth_id: u32, nonce: &[u8; 32], pin: SecurityPin) -> Message {
    let mut p = auth_id.to_le_bytes().to_vec();
    put_auth(&mut p, nonce, pin);
    Message::new(Command::RemoveAuthorizationEntry, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_per_spec() {
        let m = remove_authorization(0x0102_0304, &[9; 32], SecurityPin(0x1234));
        assert_eq!(m.command, 0x0008);
        assert_eq!(&m.payload[..4], &[4, 3, 2, 1]);
        assert_eq!(&m.payload[4..36], &[9; 32]);
        assert_eq!(&m.payload[36..], &[0x34, 0x12]);
    }
}
