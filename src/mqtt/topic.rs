//! What a broker accepts as a topic to publish on. Mosquitto closes the
//! connection of a client that publishes a topic with a wildcard, a NUL, a
//! control character or a Unicode noncharacter (its UTF-8 check), so nothing
//! like that is ever handed to the client: one such row would take the link
//! down on every reconnect.

use crate::commands::is_noncharacter;

/// Why a topic cannot be published on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("the topic is empty")]
    Empty,
    #[error("the topic is {0} bytes; MQTT allows 65535")]
    TooLong(usize),
    #[error("the topic holds a wildcard ('+' or '#')")]
    Wildcard,
    #[error("the topic holds a control character or a Unicode noncharacter")]
    Unprintable,
    #[error("the topic starts with '$' (reserved for the broker)")]
    Reserved,
}

/// Check a topic we are about to publish on.
pub fn publishable(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > 65_535 {
        return Err(TopicError::TooLong(topic.len()));
    }
    if topic.starts_with('$') {
        return Err(TopicError::Reserved);
    }
    if topic.contains(['+', '#']) {
        return Err(TopicError::Wildcard);
    }
    if topic.chars().any(|c| c.is_control() || is_noncharacter(c)) {
        return Err(TopicError::Unprintable);
    }
    Ok(())
}

/// The bytes a QoS 1 PUBLISH of this size takes on the wire, with margin for
/// the packet id, the length fields and MQTT 5 properties.
pub fn packet_size(topic: &str, payload: usize, correlation: usize) -> usize {
    1 + 4 + 2 + topic.len() + 2 + 4 + if correlation > 0 { 3 + correlation } else { 0 } + payload
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_brokers_refuse_is_refused() {
        assert!(publishable("lockhub/h/responses/r-1").is_ok());
        assert!(publishable("lockhub/h/responses/é日本").is_ok());
        for bad in [
            "",
            "a/+/b",
            "a/#",
            "a\u{0}b",
            "a\u{1f}",
            "a\u{FFFF}",
            "a\u{FDD0}",
            "a\u{10FFFF}",
            "$SYS/x",
        ] {
            assert!(publishable(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            publishable(&"a".repeat(70_000)),
            Err(TopicError::TooLong(70_000))
        );
    }
}
