//! Who is on the other end of the socket: the kernel's peer credentials
//! (SO_PEERCRED), not anything the client says. Root and the service's own
//! user may do everything; members of `socket.group` may read (PINs masked);
//! anyone else is refused.

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::UnixListener;

/// The credentials of the process that connected.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
}

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(c) => Peer {
                uid: c.uid(),
                gid: c.gid(),
            },
            // Unknown: no uid is ours, so nothing is allowed.
            Err(_) => Peer {
                uid: u32::MAX,
                gid: u32::MAX,
            },
        }
    }
}

/// What a peer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Root or the service user: commands and revealed PINs.
    Admin,
    /// A member of `socket.group`: the read-only views, PINs masked.
    Reader,
    None,
}

/// The rule, fixed at start: the service's uid and the reading group's gid.
#[derive(Debug, Clone)]
pub struct Access {
    pub service_uid: u32,
    pub group: Option<(String, u32)>,
    /// The socket file belongs to `group` and grants others nothing, so the
    /// kernel let only root, the service user and the group's members connect.
    pub file_gated: bool,
}

/// The uid (and gid) a peer from outside our user namespace appears as
/// (`PrivateUsers=yes` maps only root and the service user).
pub const OVERFLOW_ID: u32 = 65534;

impl Access {
    /// The service is the process itself; `group` is looked up by name (a
    /// missing group leaves only root and the service user).
    pub fn new(group: &str) -> Access {
        let group = if group.is_empty() {
            None
        } else {
            match nix::unistd::Group::from_name(group) {
                Ok(Some(g)) => Some((group.to_owned(), g.gid.as_raw())),
                Ok(None) => {
                    tracing::warn!(group, "socket.group does not exist: only root and the service user may use the socket");
                    None
                }
                Err(e) => {
                    tracing::warn!(group, error = %e, "socket.group cannot be looked up: only root and the service user may use the socket");
                    None
                }
            }
        };
        Access {
            service_uid: nix::unistd::geteuid().as_raw(),
            group,
            file_gated: false,
        }
    }

    pub fn role(&self, peer: &Peer) -> Role {
        if peer.uid == 0 || peer.uid == self.service_uid {
            return Role::Admin;
        }
        match &self.group {
            Some((_, gid)) if peer.gid == *gid || member(peer.uid, peer.gid, *gid) => Role::Reader,
            // Under PrivateUsers every other user looks like this; the socket's
            // file permissions already limited who could connect to the group.
            Some(_) if peer.uid == OVERFLOW_ID && self.file_gated => Role::Reader,
            _ => Role::None,
        }
    }
}

/// Whether the user `uid` (primary group `gid`) is in group `want`, by the
/// group database (the peer's own process may not be visible in /proc).
fn member(uid: u32, gid: u32, want: u32) -> bool {
    let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return false;
    };
    nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(gid))
        .map(|gs| gs.iter().any(|g| g.as_raw() == want))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32) -> Peer {
        Peer { uid, gid }
    }

    #[test]
    fn root_and_the_service_user_are_admins_the_group_reads() {
        let mut a = Access {
            service_uid: 999,
            group: Some(("readers".into(), 4242)),
            file_gated: false,
        };
        assert_eq!(a.role(&peer(0, 0)), Role::Admin);
        assert_eq!(a.role(&peer(999, 5)), Role::Admin);
        assert_eq!(a.role(&peer(1234, 4242)), Role::Reader);
        assert_eq!(a.role(&peer(u32::MAX, u32::MAX)), Role::None);
        assert_eq!(a.role(&peer(OVERFLOW_ID, OVERFLOW_ID)), Role::None);
        // PrivateUsers: others appear as the overflow id; the file let only the group in.
        a.file_gated = true;
        assert_eq!(a.role(&peer(OVERFLOW_ID, OVERFLOW_ID)), Role::Reader);
        let none = Access {
            service_uid: 999,
            group: None,
            file_gated: true,
        };
        assert_eq!(none.role(&peer(1234, 4242)), Role::None);
        assert_eq!(none.role(&peer(OVERFLOW_ID, OVERFLOW_ID)), Role::None);
    }
}
