//! `Pin`: a PIN that cannot end up in a log line by accident.
//!
//! `Debug` and `Display` print a mask; the digits are reachable only through
//! [`Pin::expose`], which makes every place that handles the real value easy to find.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A keypad code (digits only). Serializes as the plain string because the
/// public API returns it; never formats as the plain string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pin(String);

impl Pin {
    pub fn new(digits: impl Into<String>) -> Self {
        Pin(digits.into())
    }

    /// The digits themselves. Call only to put the code on a lock, compare it,
    /// store it or return it to the cloud; never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The PIN with all but nothing shown: `****` of the same length.
    pub fn masked(&self) -> String {
        "*".repeat(self.0.len())
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({})", self.masked())
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_digits() {
        let p = Pin::new("5974");
        assert_eq!(format!("{p}"), "****");
        assert_eq!(format!("{p:?}"), "Pin(****)");
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"5974\"");
    }
}
