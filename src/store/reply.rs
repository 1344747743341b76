//! Answers bound to their request: the fingerprint of the body a `request_id`
//! first came with, and answers addressed to an MQTT 5 Response Topic.

use super::{Result, Tx};
use rusqlite::{params, OptionalExtension};

/// Where an answer goes when the sender named a Response Topic (MQTT 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    /// Absolute topic, checked by the MQTT side before it gets here.
    pub topic: String,
    pub correlation: Option<Vec<u8>>,
}

pub(super) fn from_row(topic: Option<String>, correlation: Option<Vec<u8>>) -> Option<ReplyTo> {
    topic.map(|topic| ReplyTo { topic, correlation })
}

impl Tx<'_> {
    /// Queue an answer: on `reply_to` when given, else on `topic` (under `{base}`).
    pub fn publish_reply(
        &self,
        topic: &str,
        payload: &[u8],
        reply_to: Option<&ReplyTo>,
    ) -> Result<()> {
        let Some(r) = reply_to else {
            return self.publish(topic, payload, false);
        };
        self.tx
            .prepare_cached(
                "INSERT INTO outbox (topic, payload, retain, lane, reply_topic, correlation)
                 VALUES (?1, ?2, 0, 0, ?3, ?4)",
            )?
            .execute(params![
                topic,
                self.sealer.seal_blob("outbox.payload", payload),
                r.topic,
                r.correlation
            ])?;
        self.wrote_outbox.set(true);
        Ok(())
    }

    /// The fingerprint of the body `request_id` was first answered for
    /// (`None` also for answers stored before fingerprints existed).
    pub fn request_fingerprint(&self, request_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .tx
            .prepare_cached("SELECT fingerprint FROM requests WHERE request_id = ?1")?
            .query_row([request_id], |r| r.get::<_, Option<Vec<u8>>>(0))
            .optional()?
            .flatten())
    }
}
