//! Commands in: as many as are waiting (up to `max_batch`) go through the hub
//! in one transaction; each is acked to the broker only after that commit.

use super::Topics;
use crate::hub::Hub;
use rumqttc::{AsyncClient, Publish};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(super) async fn run(
    client: AsyncClient,
    hub: Arc<Hub>,
    topics: Topics,
    mut rx: mpsc::Receiver<Publish>,
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
        let topics2 = topics.clone();
        let publishes = batch.clone();
        let started = std::time::Instant::now();
        // SQLite work off the async threads.
        let handled = tokio::task::spawn_blocking(move || {
            let items: Vec<(String, bytes::Bytes)> = publishes
                .iter()
                .map(|p| {
                    let command = topics2.command(&p.topic).unwrap_or("").to_owned();
                    (command, p.payload.clone())
                })
                .collect();
            let refs: Vec<(&str, &[u8])> = items
                .iter()
                .map(|(c, b)| (c.as_str(), b.as_ref()))
                .collect();
            hub2.handle(&refs)
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
