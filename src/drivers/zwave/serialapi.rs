//! Serial API function ids and the controller's answers, parsed into types.
//! Byte layouts follow the Z-Wave Host API specification (checked against
//! zwave-js's serial API messages).

/// Serial API function ids used by the driver.
pub mod func {
    pub const GET_INIT_DATA: u8 = 0x02;
    pub const APPLICATION_COMMAND_HANDLER: u8 = 0x04;
    pub const GET_CONTROLLER_CAPABILITIES: u8 = 0x05;
    pub const GET_CAPABILITIES: u8 = 0x07;
    pub const SEND_DATA: u8 = 0x13;
    pub const GET_VERSION: u8 = 0x15;
    pub const MEMORY_GET_ID: u8 = 0x20;
    pub const GET_NODE_PROTOCOL_INFO: u8 = 0x41;
    pub const APPLICATION_UPDATE: u8 = 0x49;
    pub const ADD_NODE_TO_NETWORK: u8 = 0x4A;
    pub const REMOVE_NODE_FROM_NETWORK: u8 = 0x4B;
    pub const REQUEST_NODE_INFO: u8 = 0x60;
    pub const BRIDGE_APPLICATION_COMMAND_HANDLER: u8 = 0xA8;
}

/// ApplicationUpdate status bytes.
pub mod update {
    pub const NODE_INFO_RECEIVED: u8 = 0x84;
    pub const NODE_INFO_REQUEST_FAILED: u8 = 0x81;
}

/// ACK | AUTO_ROUTE | EXPLORE: ask for a routed ACK, let the stick find routes.
pub const TX_OPTIONS: u8 = 0x25;

/// The transmit status in a SendData callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Ok,
    /// The node did not acknowledge: asleep, dead, out of range.
    NoAck,
    /// The controller could not transmit (jammed channel, busy).
    Fail,
    Other(u8),
}

impl TxStatus {
    pub fn from_byte(b: u8) -> Self {
        match b {
            0x00 => TxStatus::Ok,
            0x01 => TxStatus::NoAck,
            0x02 => TxStatus::Fail,
            x => TxStatus::Other(x),
        }
    }
}

/// Why a controller answer could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {len} bytes")]
pub struct ParseError {
    pub what: &'static str,
    pub len: usize,
}

fn need(what: &'static str, b: &[u8], n: usize) -> Result<(), ParseError> {
    if b.len() < n {
        Err(ParseError { what, len: b.len() })
    } else {
        Ok(())
    }
}

/// GetVersion: the library's version string and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerVersion {
    pub version: String,
    pub library_type: u8,
}

pub fn parse_version(b: &[u8]) -> Result<ControllerVersion, ParseError> {
    need("GetVersion response", b, 13)?;
    let end = b[..12].iter().position(|&c| c == 0).unwrap_or(12);
    Ok(ControllerVersion {
        version: String::from_utf8_lossy(&b[..end]).into_owned(),
        library_type: b[12],
    })
}

/// MemoryGetId: the network's home id and the controller's own node id.
pub fn parse_memory_get_id(b: &[u8]) -> Result<(u32, u8), ParseError> {
    need("MemoryGetId response", b, 5)?;
    Ok((u32::from_be_bytes([b[0], b[1], b[2], b[3]]), b[4]))
}

/// GetCapabilities: the stick's maker and product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialApiCapabilities {
    pub app_version: u8,
    pub app_revision: u8,
    pub manufacturer_id: u16,
    pub product_type: u16,
    pub product_id: u16,
}

pub fn parse_capabilities(b: &[u8]) -> Result<SerialApiCapabilities, ParseError> {
    need("GetCapabilities response", b, 8)?;
    Ok(SerialApiCapabilities {
        app_version: b[0],
        app_revision: b[1],
        manufacturer_id: u16::from_be_bytes([b[2], b[3]]),
        product_type: u16::from_be_bytes([b[4], b[5]]),
        product_id: u16::from_be_bytes([b[6], b[7]]),
    })
}

/// GetInitData: the node ids in the network (a bitmask, node 1 = bit 0).
pub fn parse_init_data(b: &[u8]) -> Result<Vec<u8>, ParseError> {
    need("GetInitData response", b, 3)?;
    let n = b[2] as usize;
    need("GetInitData response", b, 3 + n)?;
    let mut nodes = Vec::new();
    for (i, byte) in b[3..3 + n].iter().enumerate() {
        for bit in 0..8 {
            if byte & (1 << bit) != 0 {
                nodes.push((i * 8 + bit + 1) as u8);
            }
        }
    }
    Ok(nodes)
}

/// How a node listens, which decides how to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listening {
    /// Always on (mains powered).
    Always,
    /// FLiRS: wakes every 250 ms / 1000 ms for a beam; reachable any time, slowly.
    Frequent,
    /// Sleeps; reachable only after it sends a Wake Up Notification.
    Sleeping,
}

/// GetNodeProtocolInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolInfo {
    pub listening: Listening,
    pub basic: u8,
    pub generic: u8,
    pub specific: u8,
}

pub fn parse_protocol_info(b: &[u8]) -> Result<Option<ProtocolInfo>, ParseError> {
    need("GetNodeProtocolInfo response", b, 6)?;
    if b[4] == 0 {
        // Generic class 0: no such node.
        return Ok(None);
    }
    let listening = if b[0] & 0x80 != 0 {
        Listening::Always
    } else if b[1] & 0x60 != 0 {
        Listening::Frequent
    } else {
        Listening::Sleeping
    };
    Ok(Some(ProtocolInfo {
        listening,
        basic: b[3],
        generic: b[4],
        specific: b[5],
    }))
}

/// A node information frame from ApplicationUpdate: the command classes the
/// node supports (those before the 0xEF "controlled" mark).
pub fn parse_node_info(b: &[u8]) -> Result<(u8, Vec<u8>), ParseError> {
    need("ApplicationUpdate", b, 3)?;
    let node = b[1];
    let len = b[2] as usize;
    need("ApplicationUpdate", b, 3 + len)?;
    let body = &b[3..3 + len];
    // basic, generic, specific, then classes.
    let classes = body
        .iter()
        .skip(3)
        .copied()
        .take_while(|&c| c != 0xEF)
        .collect();
    Ok((node, classes))
}

/// A command a node sent: from ApplicationCommandHandler (0x04) or its bridge
/// variant (0xA8).
pub fn parse_application_command(func_id: u8, b: &[u8]) -> Result<(u8, Vec<u8>), ParseError> {
    let (src, len_at) = match func_id {
        func::APPLICATION_COMMAND_HANDLER => (1, 2),
        func::BRIDGE_APPLICATION_COMMAND_HANDLER => (2, 3),
        _ => {
            return Err(ParseError {
                what: "application command",
                len: b.len(),
            })
        }
    };
    need("application command", b, len_at + 1)?;
    let len = b[len_at] as usize;
    need("application command", b, len_at + 1 + len)?;
    Ok((b[src], b[len_at + 1..len_at + 1 + len].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_init_data_node_list() {
        let mut b = vec![0x09, 0x08, 29];
        let mut mask = [0u8; 29];
        mask[0] = 0b0000_1111; // nodes 1..4
        mask[1] = 0b0000_0001; // node 9
        b.extend_from_slice(&mask);
        b.extend_from_slice(&[0x07, 0x00]);
        assert_eq!(parse_init_data(&b).unwrap(), vec![1, 2, 3, 4, 9]);
        assert!(parse_init_data(&[0x09, 0x08, 29, 0]).is_err());
    }

    #[test]
    fn parses_memory_get_id_and_version() {
        assert_eq!(
            parse_memory_get_id(&[0xC0, 0xFF, 0xEE, 0x01, 0x01]).unwrap(),
            (0xC0FFEE01, 1)
        );
        let mut v = b"Z-Wave 7.21\0".to_vec();
        v.push(0x01);
        let cv = parse_version(&v).unwrap();
        assert_eq!(cv.version, "Z-Wave 7.21");
        assert_eq!(cv.library_type, 1);
        assert!(parse_version(b"Z-Wave").is_err());
    }

    #[test]
    fn parses_capabilities() {
        let b = [1, 2, 0x00, 0x86, 0x00, 0x01, 0x00, 0x5A, 0xFF];
        let c = parse_capabilities(&b).unwrap();
        assert_eq!(c.manufacturer_id, 0x0086);
        assert_eq!(c.product_id, 0x005A);
    }

    #[test]
    fn parses_protocol_info_listening_modes() {
        let always = parse_protocol_info(&[0xD3, 0x9C, 0x01, 0x04, 0x40, 0x03])
            .unwrap()
            .unwrap();
        assert_eq!(always.listening, Listening::Always);
        assert_eq!(always.generic, 0x40);
        let flirs = parse_protocol_info(&[0x53, 0xDC, 0x01, 0x04, 0x40, 0x03])
            .unwrap()
            .unwrap();
        assert_eq!(flirs.listening, Listening::Frequent);
        let sleepy = parse_protocol_info(&[0x53, 0x9C, 0x01, 0x04, 0x40, 0x03])
            .unwrap()
            .unwrap();
        assert_eq!(sleepy.listening, Listening::Sleeping);
        assert_eq!(parse_protocol_info(&[0, 0, 0, 0, 0, 0]).unwrap(), None);
    }

    #[test]
    fn parses_node_info_classes_before_mark() {
        let b = [
            0x84, 0x02, 0x08, 0x04, 0x40, 0x03, 0x86, 0x72, 0x63, 0xEF, 0x20,
        ];
        let (node, classes) = parse_node_info(&b).unwrap();
        assert_eq!(node, 2);
        assert_eq!(classes, vec![0x86, 0x72, 0x63]);
        assert!(parse_node_info(&[0x84, 0x02, 0x09, 0x04]).is_err());
    }

    #[test]
    fn parses_application_commands() {
        let b = [0x00, 0x03, 0x03, 0x80, 0x03, 0x5A, 0x00];
        assert_eq!(
            parse_application_command(0x04, &b).unwrap(),
            (3, vec![0x80, 0x03, 0x5A])
        );
        let b = [0x00, 0x01, 0x04, 0x02, 0x80, 0x03];
        assert_eq!(
            parse_application_command(0xA8, &b).unwrap(),
            (4, vec![0x80, 0x03])
        );
        assert!(parse_application_command(0x04, &[0x00, 0x03, 0x05, 0x80]).is_err());
    }
}
