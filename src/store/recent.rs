//! The last events the hub emitted, kept in memory for the installer page
//! (the outbox forgets an event once the broker has it). Fed after each commit,
//! so a rolled-back event is never shown. Events never carry a PIN.

use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// How many events the page can look back on.
const KEEP: usize = 200;

pub struct RecentEvents {
    last: Mutex<VecDeque<Value>>,
    live: broadcast::Sender<Value>,
}

impl Default for RecentEvents {
    fn default() -> Self {
        RecentEvents {
            last: Mutex::new(VecDeque::with_capacity(KEEP)),
            live: broadcast::channel(256).0,
        }
    }
}

impl RecentEvents {
    pub(super) fn extend(&self, events: Vec<Value>) {
        if events.is_empty() {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        for e in events {
            if last.len() == KEEP {
                last.pop_front();
            }
            last.push_back(e.clone());
            let _ = self.live.send(e);
        }
    }

    /// Oldest first.
    pub fn snapshot(&self) -> Vec<Value> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.iter().cloned().collect()
    }

    /// Events committed from now on (a slow reader skips what it missed).
    pub fn subscribe(&self) -> broadcast::Receiver<Value> {
        self.live.subscribe()
    }
}
