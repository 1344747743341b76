//! Who waits for which report: a Get's answer or a Supervision Report is
//! handed to the first waiter that matches node, class, command and filter
//! (and, while bootstrapping, the security class it arrived in).

use super::cc::Incoming;
use super::security::SecurityClass;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Which report a waiter wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Filter {
    Any,
    /// Byte 2 equals this (user id of a v1 report, class of a version report).
    Byte2(u8),
    /// Supervision session id.
    Session(u8),
    /// The big-endian u16 at this offset (a 16-bit user id or slot).
    U16At(usize, u16),
}

struct Waiter {
    id: u64,
    node: u8,
    cc: u8,
    cmd: u8,
    filter: Filter,
    /// Only a report that arrived in this security class (bootstrapping).
    class: Option<SecurityClass>,
    tx: oneshot::Sender<Vec<u8>>,
}

#[derive(Default)]
pub(super) struct Waiters {
    next: AtomicU64,
    list: Mutex<Vec<Waiter>>,
}

impl Waiters {
    pub(super) fn add(
        &self,
        node: u8,
        cc: u8,
        cmd: u8,
        filter: Filter,
    ) -> (u64, oneshot::Receiver<Vec<u8>>) {
        self.add_in(node, cc, cmd, filter, None)
    }

    /// [`Waiters::add`] for a report that must arrive in `class`.
    pub(super) fn add_in(
        &self,
        node: u8,
        cc: u8,
        cmd: u8,
        filter: Filter,
        class: Option<SecurityClass>,
    ) -> (u64, oneshot::Receiver<Vec<u8>>) {
        let (tx, rx) = oneshot::channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.list.lock().unwrap().push(Waiter {
            id,
            node,
            cc,
            cmd,
            filter,
            class,
            tx,
        });
        (id, rx)
    }

    pub(super) fn remove(&self, id: u64) {
        self.list.lock().unwrap().retain(|w| w.id != id);
    }

    /// Hands `cmd` to the first waiter that wants it; false when none does.
    pub(super) fn deliver(&self, node: u8, command: &[u8], arrived: SecurityClass) -> bool {
        let Some((cc, cmd)) = Incoming::key(command) else {
            return false;
        };
        let mut list = self.list.lock().unwrap();
        let pos = list.iter().position(|w| {
            w.node == node
                && w.cc == cc
                && w.cmd == cmd
                && w.class.is_none_or(|c| c == arrived)
                && match w.filter {
                    Filter::Any => true,
                    Filter::Byte2(b) => command.get(2) == Some(&b),
                    Filter::Session(s) => command.get(2).map(|b| b & 0x3F) == Some(s),
                    Filter::U16At(at, v) => command.get(at..at + 2) == Some(&v.to_be_bytes()[..]),
                }
        });
        match pos {
            Some(i) => {
                let w = list.swap_remove(i);
                let _ = w.tx.send(command.to_vec());
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_match_by_node_command_and_filter() {
        let w = Waiters::default();
        let (_a, mut rx_a) = w.add(2, 0x63, 0x03, Filter::Byte2(5));
        let (b, _rx_b) = w.add(3, 0x80, 0x03, Filter::Any);
        let none = SecurityClass::None;
        assert!(!w.deliver(2, &[0x63, 0x03, 6, 1], none), "other user id");
        assert!(!w.deliver(4, &[0x80, 0x03, 50], none), "other node");
        assert!(w.deliver(2, &[0x63, 0x03, 5, 1, b'1', b'2', b'3', b'4'], none));
        assert_eq!(rx_a.try_recv().unwrap()[2], 5);
        w.remove(b);
        assert!(!w.deliver(3, &[0x80, 0x03, 50], none));
        let (_c, _rx_c) = w.add_in(3, 0x9F, 0x06, Filter::Any, Some(SecurityClass::Temporary));
        assert!(
            !w.deliver(3, &[0x9F, 0x06, 1], none),
            "plaintext is not the temp-key answer"
        );
        assert!(w.deliver(3, &[0x9F, 0x06, 1], SecurityClass::Temporary));
        let (_d, _rx_d) = w.add(3, 0x83, 0x0C, Filter::U16At(6, 300));
        assert!(
            !w.deliver(3, &[0x83, 0x0C, 0, 0, 1, 1, 0x01, 0x2B], none),
            "other slot"
        );
        assert!(w.deliver(3, &[0x83, 0x0C, 0, 0, 1, 1, 0x01, 0x2C], none));
        assert!(!w.deliver(3, &[0x83, 0x0C, 0], none), "too short to say");
    }
}
