//! Accepts BGP connections (passive peers, and peers that connect while we connect to them)
//! and hands each to its peer's session. Connections from addresses that are not configured
//! peers are closed at once.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::socket;
use crate::config::PeerConfig;

/// Where a peer's incoming connections go.
pub struct PeerInbox {
    pub name: String,
    pub address: IpAddr,
    /// Interface index of a link-local peer (its scope), so fe80::1 on two links differ.
    pub scope: Option<u32>,
    pub tx: mpsc::Sender<TcpStream>,
}

/// Binds every listen address, with the TCP MD5 keys of all peers of its family installed
/// first (the kernel checks the SYN) and TTL 255 if any of them uses GTSM (the minimum TTL is
/// set per accepted connection). IPv6 listeners are IPv6-only, so "0.0.0.0:179" and
/// "[::]:179" can both be configured.
pub fn bind(
    addrs: &[SocketAddr],
    peers: &[(&PeerConfig, Option<&str>)],
) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for addr in addrs {
        let sock = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => {
                let s = TcpSocket::new_v6()?;
                socket::set_ipv6_only(&s)?;
                s
            }
        };
        sock.set_reuseaddr(true)?;
        // A reload binds the new listener before the old one is gone.
        sock.set_reuseport(true)?;
        let family: Vec<&(&PeerConfig, Option<&str>)> = peers
            .iter()
            .filter(|(p, _)| p.address.is_ipv4() == addr.is_ipv4())
            .collect();
        if family.iter().any(|(p, _)| p.ttl_security) {
            // GTSM: SYN-ACKs leave with TTL 255, and each SYN's TTL is checked on accept.
            socket::set_send_ttl_255(&sock, addr.ip())?;
            socket::set_save_syn(&sock)?;
        }
        if !family.is_empty() && family.iter().all(|(p, _)| p.ttl_security) {
            // Every peer of the family uses GTSM: the kernel can drop low-TTL SYNs itself.
            socket::set_min_ttl_254(&sock, addr.ip())?;
        }
        for (peer, key) in family {
            if let Some(key) = key {
                socket::set_md5_key(&sock, peer.address, key).map_err(|e| {
                    io::Error::other(format!("MD5 key for peer {}: {e}", peer.name))
                })?;
            }
        }
        sock.bind(*addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        listeners.push(sock.listen(128)?);
        info!(%addr, "listening for BGP connections");
    }
    Ok(listeners)
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Accepts until the listener fails; returns the error. `inboxes` changes on reload.
pub async fn run(
    listener: TcpListener,
    inboxes: watch::Receiver<std::sync::Arc<Vec<PeerInbox>>>,
) -> io::Error {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(v) => v,
            Err(e) if is_transient(&e) => {
                debug!("accept: {e}");
                continue;
            }
            Err(e) => return e,
        };
        let ip = unmapped(from.ip());
        let scope = match from {
            SocketAddr::V6(a) if a.scope_id() != 0 => Some(a.scope_id()),
            _ => None,
        };
        let inboxes = std::sync::Arc::clone(&inboxes.borrow());
        let inbox = inboxes
            .iter()
            .find(|p| p.address == ip && (p.scope.is_none() || p.scope == scope));
        match inbox {
            Some(p) => {
                if p.tx.try_send(stream).is_err() {
                    debug!(peer = %p.name, "incoming connection dropped: one is already pending");
                }
            }
            None => {
                warn!(%from, "BGP connection from an address that is not a configured peer: closed")
            }
        }
    }
}

/// Errors of one connection that do not mean the listener is broken.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
