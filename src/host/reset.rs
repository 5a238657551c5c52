//! Resets the TCP connections whose local address is one of a service's addresses, through the
//! kernel's sock_diag `SOCK_DESTROY` (what `ss -K` does): the kernel aborts each socket and
//! sends its peer an RST, so a client pooled on the old primary gets an error at once instead
//! of waiting out its read timeout on a connection nobody will answer again.
//!
//! The sockets are found with one dump per family (AF_INET, AF_INET6) and matched here by
//! local address: an IPv4 service address also matches `::ffff:a.b.c.d` on a dual-stack
//! listener's sockets. Listening and TIME_WAIT sockets are never touched (the server's own
//! listener must survive). Needs CAP_NET_ADMIN and a kernel built with
//! `CONFIG_INET_DIAG_DESTROY`; [`facility`] tells whether both are there.
//!
//! Blocking (netlink I/O): the daemon runs it on a thread of its own with a deadline.

use std::net::IpAddr;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::{SockDiagDestroy, SockDiagMessage};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};

/// Enough for a dump datagram (the kernel fills up to a page or so per read).
const RECV_BUFFER: usize = 64 * 1024;
/// CAP_NET_ADMIN's bit in the capability sets.
const CAP_NET_ADMIN: u32 = 12;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ResetError {
    #[error("netlink: {0}")]
    Io(String),
    #[error("the kernel cannot destroy sockets (CONFIG_INET_DIAG_DESTROY is off: EOPNOTSUPP)")]
    Unsupported,
    #[error("no privilege to destroy sockets (primaryd needs CAP_NET_ADMIN: EPERM)")]
    NoPrivilege,
    #[error("malformed netlink answer: {0}")]
    Malformed(String),
}

/// What one reset did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Sockets destroyed.
    pub reset: u64,
    /// Sockets that were gone by the time we asked (closed meanwhile): not an error.
    pub gone: u64,
}

/// Sockets in these states are aborted: everything that has or is getting a peer. Not
/// LISTEN (the server's listener) and not TIME_WAIT (nothing left to reset).
fn states() -> StateFlags {
    StateFlags::all() - StateFlags::LISTEN - StateFlags::TIME_WAIT - StateFlags::CLOSE
}

/// Whether `local` is one of `addrs`, an IPv4 address also in its IPv4-mapped IPv6 form.
pub fn matches(local: IpAddr, addrs: &[IpAddr]) -> bool {
    let local = match local {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    addrs.contains(&local)
}

/// Resets every TCP connection whose local address is in `addrs`. Stops at the first refusal
/// of the facility (unsupported, no privilege); other sockets vanishing meanwhile are counted
/// as `gone`.
pub fn reset(addrs: &[IpAddr]) -> Result<Outcome, ResetError> {
    let mut out = Outcome::default();
    if addrs.is_empty() {
        return Ok(out);
    }
    let nl = Netlink::open()?;
    for family in [AF_INET, AF_INET6] {
        let wanted = |ip: IpAddr| matches(ip, addrs);
        let ids = nl.dump(family, wanted)?;
        for id in ids {
            match nl.destroy(family, id)? {
                Destroyed::Yes => out.reset += 1,
                Destroyed::Gone => out.gone += 1,
            }
        }
    }
    Ok(out)
}

/// Whether sockets can be reset here: Ok, or why not (said at start-up and in `show
/// services`). Asks the kernel to destroy a socket that cannot exist (all zero): ENOENT means
/// the facility is built in; then the process's effective capabilities must hold CAP_NET_ADMIN.
pub fn facility() -> Result<(), ResetError> {
    let nl = Netlink::open()?;
    match nl.destroy(AF_INET, SocketId::new_v4()) {
        Ok(_) => {}
        Err(ResetError::NoPrivilege) => return Err(ResetError::NoPrivilege),
        Err(e) => return Err(e),
    }
    if !has_net_admin() {
        return Err(ResetError::NoPrivilege);
    }
    Ok(())
}

/// CAP_NET_ADMIN in the effective set (`CapEff` in /proc/self/status).
fn has_net_admin() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

enum Destroyed {
    Yes,
    Gone,
}

struct Netlink {
    socket: Socket,
    seq: std::cell::Cell<u32>,
}

impl Netlink {
    fn open() -> Result<Netlink, ResetError> {
        let io = |e: std::io::Error| ResetError::Io(e.to_string());
        let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(io)?;
        socket.bind_auto().map_err(io)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(io)?;
        Ok(Netlink {
            socket,
            seq: std::cell::Cell::new(1),
        })
    }

    fn send<T: NetlinkSerializable>(&self, flags: u16, payload: T) -> Result<u32, ResetError>
    where
        NetlinkPayload<T>: From<T>,
    {
        let seq = self.seq.get();
        self.seq.set(seq.wrapping_add(1));
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(payload));
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|e| ResetError::Io(e.to_string()))?;
        Ok(seq)
    }

    /// Reads datagrams and hands every message of sequence `seq` to `each` until it returns
    /// true (done).
    fn receive(
        &self,
        seq: u32,
        mut each: impl FnMut(NetlinkPayload<SockDiagMessage>) -> Result<bool, ResetError>,
    ) -> Result<(), ResetError> {
        let mut buf = vec![0u8; RECV_BUFFER];
        loop {
            let n = self
                .socket
                .recv(&mut &mut buf[..], 0)
                .map_err(|e| ResetError::Io(e.to_string()))?;
            let mut at = 0;
            while at < n {
                let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&buf[at..n])
                    .map_err(|e| ResetError::Malformed(e.to_string()))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(ResetError::Malformed("zero-length message".into()));
                }
                at += len;
                if msg.header.sequence_number != seq {
                    continue;
                }
                if each(msg.payload)? {
                    return Ok(());
                }
            }
        }
    }

    /// The ids of the TCP sockets of `family` whose local address `wanted` accepts.
    fn dump(
        &self,
        family: u8,
        wanted: impl Fn(IpAddr) -> bool,
    ) -> Result<Vec<SocketId>, ResetError> {
        let seq = self.send(
            NLM_F_REQUEST | NLM_F_DUMP,
            SockDiagMessage::InetRequest(request(family, empty_id(family))),
        )?;
        let mut ids = Vec::new();
        self.receive(seq, |payload| match payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                if wanted(r.header.socket_id.source_address) {
                    ids.push(r.header.socket_id.clone());
                }
                Ok(false)
            }
            NetlinkPayload::Done(_) => Ok(true),
            NetlinkPayload::Error(e) => Err(errno(e.code.map_or(0, |c| -c.get()))),
            _ => Ok(false),
        })?;
        Ok(ids)
    }

    fn destroy(&self, family: u8, id: SocketId) -> Result<Destroyed, ResetError> {
        let seq = self.send(
            NLM_F_REQUEST | NLM_F_ACK,
            SockDiagDestroy::new(SockDiagMessage::InetRequest(request(family, id))),
        )?;
        let mut result = Err(ResetError::Malformed("no answer".into()));
        self.receive(seq, |payload| match payload {
            NetlinkPayload::Error(e) => {
                result = match e.code.map_or(0, |c| -c.get()) {
                    0 => Ok(Destroyed::Yes),
                    libc::ENOENT => Ok(Destroyed::Gone),
                    n => Err(errno(n)),
                };
                Ok(true)
            }
            NetlinkPayload::Done(_) => Ok(true),
            _ => Ok(false),
        })?;
        result
    }
}

fn errno(n: i32) -> ResetError {
    match n {
        libc::EOPNOTSUPP => ResetError::Unsupported,
        libc::EPERM | libc::EACCES => ResetError::NoPrivilege,
        n => ResetError::Io(std::io::Error::from_raw_os_error(n).to_string()),
    }
}

fn empty_id(family: u8) -> SocketId {
    if family == AF_INET {
        SocketId::new_v4()
    } else {
        SocketId::new_v6()
    }
}

fn request(family: u8, socket_id: SocketId) -> InetRequest {
    InetRequest {
        family,
        protocol: IPPROTO_TCP,
        extensions: ExtensionFlags::empty(),
        states: states(),
        socket_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_addresses_match_their_mapped_form_and_nothing_else() {
        let addrs: Vec<IpAddr> = vec![
            "192.0.2.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ];
        for yes in ["192.0.2.10", "::ffff:192.0.2.10", "2001:db8::10"] {
            assert!(matches(yes.parse().unwrap(), &addrs), "{yes}");
        }
        for no in [
            "192.0.2.11",
            "::ffff:192.0.2.11",
            "2001:db8::11",
            "::192.0.2.10",
        ] {
            assert!(!matches(no.parse().unwrap(), &addrs), "{no}");
        }
    }

    #[test]
    fn listeners_and_time_wait_are_never_destroyed() {
        let s = states();
        assert!(!s.contains(StateFlags::LISTEN));
        assert!(!s.contains(StateFlags::TIME_WAIT));
        for st in [
            StateFlags::ESTABLISHED,
            StateFlags::SYN_RECV,
            StateFlags::CLOSE_WAIT,
            StateFlags::FIN_WAIT1,
        ] {
            assert!(s.contains(st));
        }
    }
}
