//! Commands in: as many as are waiting (up to `max_batch`) go through the hub
//! in one transaction; each is acked to the broker only after that commit.
//!
//! What only the transport knows is checked here: a retained command publish
//! is refused (the broker would hand it to every new subscription), and an
//! MQTT 5 Response Topic is honoured only when it is one we can publish on and
//! not one of our own command topics.

use super::proto::{Client, Inbound};
use super::{topic, Topics};
use crate::commands::{CommandError, Request};
use crate::hub::Hub;
use crate::store::ReplyTo;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Longest Correlation Data carried back (it is stored with the answer).
const MAX_CORRELATION: usize = 1024;

/// A command with what the transport decided about it.
struct Prepared {
    command: String,
    payload: bytes::Bytes,
    reply_to: Option<ReplyTo>,
    refused: Option<CommandError>,
}

fn prepare(topics: &Topics, p: &Inbound) -> Prepared {
    let mut refused = None;
    if p.retain {
        refused = Some(CommandError::invalid(
            "retain",
            "command publishes must not be retained (the broker would deliver them again to every new subscription); publish with retain = false",
        ));
    }
    let mut reply_to = None;
    if let Some(rt) = &p.response_topic {
        let own = rt.starts_with(&format!("{}/commands/", topics.base));
        match topic::publishable(rt) {
            Ok(())
                if !own
                    && p.correlation
                        .as_ref()
                        .is_none_or(|c| c.len() <= MAX_CORRELATION) =>
            {
                reply_to = Some(ReplyTo {
                    topic: rt.clone(),
                    correlation: p.correlation.as_ref().map(|c| c.to_vec()),
                });
            }
            Ok(()) if own => {
                refused.get_or_insert(CommandError::invalid(
                    "response_topic",
                    "the Response Topic must not be one of the hub's command topics",
                ));
            }
            Ok(()) => {
                refused.get_or_insert(CommandError::invalid(
                    "correlation_data",
                    format!("Correlation Data longer than {MAX_CORRELATION} bytes"),
                ));
            }
            Err(e) => {
                refused.get_or_insert(CommandError::invalid(
                    "response_topic",
                    format!("the Response Topic cannot be published on: {e}"),
                ));
            }
        }
    }
    Prepared {
        command: topics.command(&p.topic).unwrap_or("").to_owned(),
        payload: p.payload.clone(),
        reply_to,
        refused,
    }
}

pub(super) async fn run(
    client: Client,
    hub: Arc<Hub>,
    topics: Topics,
    mut rx: mpsc::Receiver<Box<Inbound>>,
    max_batch: usize,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = rx.recv() => match p { Some(p) => p, None => return },
        };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let hub2 = hub.clone();
        let prepared: Vec<Prepared> = batch.iter().map(|p| prepare(&topics, p)).collect();
        let started = std::time::Instant::now();
        // SQLite work off the async threads.
        let handled = tokio::task::spawn_blocking(move || {
            let requests: Vec<Request<'_>> = prepared
                .iter()
                .map(|p| Request {
                    command: &p.command,
                    payload: &p.payload,
                    reply_to: p.reply_to.as_ref(),
                    refused: p.refused.as_ref(),
                    local: false,
                })
                .collect();
            hub2.handle_requests(&requests)
        })
        .await;
        match handled {
            Ok(replies)
                if !replies
                    .iter()
                    .any(|r| r.body["error"]["type"] == "internal") =>
            {
                for p in &batch {
                    if let Err(e) = client.ack(p).await {
                        tracing::warn!(error = %e, "could not ack a command; the broker will deliver it again");
                    }
                }
                tracing::debug!(
                    commands = batch.len(),
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "commands committed and acked"
                );
            }
            // Not committed: no ack, so the broker delivers them again.
            _ => tracing::error!(
                commands = batch.len(),
                "commands not committed; left unacked for redelivery"
            ),
        }
    }
}
