//! Serial API framing: SOF data frames, the single-byte ACK/NAK/CAN, the XOR
//! checksum, and a decoder that resynchronises on garbage.
//!
//! A data frame is `SOF LEN TYPE FUNC PAYLOAD.. CHK`, where LEN counts the bytes
//! after itself (TYPE, FUNC, payload and the checksum) and CHK is 0xFF XORed
//! with every byte from LEN to the last payload byte.

/// Start of a data frame.
pub const SOF: u8 = 0x01;
/// The other side took the frame.
pub const ACK: u8 = 0x06;
/// The other side saw a broken frame: send it again.
pub const NAK: u8 = 0x15;
/// The other side was sending at the same time: back off and send again.
pub const CAN: u8 = 0x18;

/// Whether a data frame is a request (either way) or the response to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    Request = 0x00,
    Response = 0x01,
}

/// One Serial API data frame, without its framing bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFrame {
    pub kind: FrameType,
    pub func: u8,
    pub payload: Vec<u8>,
}

impl DataFrame {
    pub fn request(func: u8, payload: Vec<u8>) -> Self {
        DataFrame {
            kind: FrameType::Request,
            func,
            payload,
        }
    }

    /// The bytes on the wire, SOF to checksum.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let len = self.payload.len() + 3;
        if len > u8::MAX as usize {
            return Err(FrameError::TooLong(self.payload.len()));
        }
        let mut out = Vec::with_capacity(len + 2);
        out.push(SOF);
        out.push(len as u8);
        out.push(self.kind as u8);
        out.push(self.func);
        out.extend_from_slice(&self.payload);
        out.push(checksum(&out[1..]));
        Ok(out)
    }
}

/// 0xFF XOR every byte given (LEN through the last payload byte).
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0xFF, |acc, b| acc ^ b)
}

/// What the decoder found in the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Ack,
    Nak,
    Can,
    Data(DataFrame),
    /// A complete frame whose checksum or type was wrong: answer with NAK.
    Corrupt,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("payload of {0} bytes does not fit one Serial API frame")]
    TooLong(usize),
}

/// Turns a byte stream into frames. Bytes that start no frame are skipped
/// (counted in `skipped`), so the stream resynchronises on the next SOF.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Garbage bytes dropped so far (for diagnostics).
    pub skipped: u64,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            let first = *self.buf.first()?;
            match first {
                ACK => {
                    self.buf.remove(0);
                    return Some(Frame::Ack);
                }
                NAK => {
                    self.buf.remove(0);
                    return Some(Frame::Nak);
                }
                CAN => {
                    self.buf.remove(0);
                    return Some(Frame::Can);
                }
                SOF => {
                    if self.buf.len() < 2 {
                        return None;
                    }
                    let len = self.buf[1] as usize;
                    if len < 3 {
                        // Cannot be a frame: the SOF was garbage.
                        self.buf.remove(0);
                        self.skipped += 1;
                        continue;
                    }
                    if self.buf.len() < len + 2 {
                        return None;
                    }
                    let raw: Vec<u8> = self.buf.drain(..len + 2).collect();
                    let chk = raw[len + 1];
                    let kind = match raw[2] {
                        0x00 => Some(FrameType::Request),
                        0x01 => Some(FrameType::Response),
                        _ => None,
                    };
                    return Some(match kind {
                        Some(kind) if checksum(&raw[1..=len]) == chk => Frame::Data(DataFrame {
                            kind,
                            func: raw[3],
                            payload: raw[4..=len].to_vec(),
                        }),
                        _ => Frame::Corrupt,
                    });
                }
                _ => {
                    self.buf.remove(0);
                    self.skipped += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_get_init_data_request() {
        // The well-known GetInitData request: 01 03 00 02 FE.
        let f = DataFrame::request(0x02, vec![]);
        assert_eq!(f.encode().unwrap(), vec![0x01, 0x03, 0x00, 0x02, 0xFE]);
        // GetVersion: 01 03 00 15 E9
        let f = DataFrame::request(0x15, vec![]);
        assert_eq!(f.encode().unwrap(), vec![0x01, 0x03, 0x00, 0x15, 0xE9]);
    }

    #[test]
    fn encodes_send_data() {
        // SendData to node 2: Battery Get, tx options 0x25, callback 1.
        let f = DataFrame::request(0x13, vec![0x02, 0x02, 0x80, 0x02, 0x25, 0x01]);
        let bytes = f.encode().unwrap();
        assert_eq!(&bytes[..4], &[0x01, 0x09, 0x00, 0x13]);
        assert_eq!(*bytes.last().unwrap(), checksum(&bytes[1..bytes.len() - 1]));
        assert_eq!(*bytes.last().unwrap(), 0x43);
    }

    #[test]
    fn rejects_oversized_payload() {
        let f = DataFrame::request(0x13, vec![0; 253]);
        assert_eq!(f.encode(), Err(FrameError::TooLong(253)));
    }

    #[test]
    fn decodes_ack_frame_and_split_input() {
        let mut d = Decoder::new();
        let frame = DataFrame {
            kind: FrameType::Response,
            func: 0x13,
            payload: vec![0x01],
        };
        let bytes = frame.encode().unwrap();
        d.push(&[ACK]);
        d.push(&bytes[..3]);
        assert_eq!(d.next_frame(), Some(Frame::Ack));
        assert_eq!(d.next_frame(), None);
        d.push(&bytes[3..]);
        assert_eq!(d.next_frame(), Some(Frame::Data(frame)));
        assert_eq!(d.next_frame(), None);
    }

    #[test]
    fn resyncs_after_garbage_and_flags_bad_checksum() {
        let mut d = Decoder::new();
        let good = DataFrame::request(0x04, vec![0x00, 0x02, 0x02, 0x80, 0x03]);
        let mut bad = good.encode().unwrap();
        let n = bad.len();
        bad[n - 1] ^= 0x55;
        d.push(&[0xAA, 0x00, 0x42]);
        d.push(&bad);
        d.push(&[0x01, 0x01]); // SOF with an impossible length
        d.push(&good.encode().unwrap());
        d.push(&[NAK, CAN]);
        assert_eq!(d.next_frame(), Some(Frame::Corrupt));
        assert_eq!(d.next_frame(), Some(Frame::Data(good)));
        assert_eq!(d.next_frame(), Some(Frame::Nak));
        assert_eq!(d.next_frame(), Some(Frame::Can));
        assert_eq!(d.skipped, 5);
    }

    #[test]
    fn unknown_frame_type_is_corrupt() {
        let mut d = Decoder::new();
        let mut raw = vec![0x01, 0x03, 0x07, 0x02];
        raw.push(checksum(&raw[1..]));
        d.push(&raw);
        assert_eq!(d.next_frame(), Some(Frame::Corrupt));
    }
}
