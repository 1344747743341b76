//! `Pin`: a PIN that cannot end up in a log line by accident.
//!
//! `Debug` and `Display` print a mask; the digits are reachable only through
//! [`Pin::expose`], which makes every place that handles the real value easy to find.

use serde::{de, Deserialize, Deserializer, Serialize};
use std::fmt;
use std::sync::Arc;

/// A keypad code (digits only). Serializes as the plain string because the
/// public API returns it; never formats as the plain string. Deserializing
/// anything but a string fails with an error that does not repeat the value
/// (serde's own would: `invalid type: integer `80516273``).
///
/// Shared, not copied: the command path gathers every PIN of each lock it
/// touches (100 to 150 on a full lock) to check a new one against, and a
/// clone is a count going up rather than an allocation and a copy.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pin(Arc<str>);

impl Serialize for Pin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Pin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `any`, not `string`: serde_json answers a non-string to `deserialize_string`
        // itself, with the value in the message.
        d.deserialize_any(PinVisitor)
    }
}

/// Accepts strings; every other visit fails without naming the value.
struct PinVisitor;

fn not_a_string<E: de::Error>() -> E {
    E::custom("must be a string of digits (the value given is not repeated)")
}

macro_rules! refuse {
    ($($name:ident: $t:ty),*) => {
        $(fn $name<E: de::Error>(self, _: $t) -> Result<Pin, E> { Err(not_a_string()) })*
    };
}

impl<'de> de::Visitor<'de> for PinVisitor {
    type Value = Pin;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string of digits")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Pin, E> {
        Ok(Pin(v.into()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Pin, E> {
        Ok(Pin(v.into()))
    }

    refuse!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_i128: i128,
        visit_u128: u128, visit_f64: f64, visit_char: char, visit_bytes: &[u8]);

    fn visit_unit<E: de::Error>(self) -> Result<Pin, E> {
        Err(not_a_string())
    }

    fn visit_none<E: de::Error>(self) -> Result<Pin, E> {
        Err(not_a_string())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Pin, A::Error> {
        Err(not_a_string())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Pin, A::Error> {
        Err(not_a_string())
    }
}

impl Pin {
    pub fn new(digits: impl Into<String>) -> Self {
        Pin(digits.into().into())
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

    #[test]
    fn a_wrong_type_is_refused_without_its_value() {
        let back: Pin = serde_json::from_str("\"5974\"").unwrap();
        assert_eq!(back.expose(), "5974");
        for bad in [
            "80516273",
            "-80516273",
            "8051.6273",
            "[8051]",
            "{\"a\":8051}",
            "true",
        ] {
            let e = serde_json::from_str::<Pin>(bad).unwrap_err().to_string();
            assert!(!e.contains("8051") && !e.contains("6273"), "{bad}: {e}");
        }
        let e = serde_json::from_value::<Pin>(serde_json::json!(80516273))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("8051"), "{e}");
    }
}
