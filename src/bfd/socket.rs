//! UDP sockets of single-hop BFD (RFC 5881): one receiving socket per address family on port
//! 3784 that reports each packet's TTL / hop limit, and one sending socket per session, bound
//! to its own source port in 49152-65535 and sending with TTL 255.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, SockaddrStorage,
};

use super::packet::{SOURCE_PORTS, TTL};

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn udp(family: IpAddr) -> io::Result<OwnedFd> {
    let af = match family {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    socket(
        af,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(io_err)
}

fn bind_to(fd: &OwnedFd, addr: SocketAddr) -> io::Result<()> {
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(io_err)
}

/// The receiving socket of a family: `addr` (normally the unspecified address and port
/// 3784), reporting the TTL / hop limit of every packet. Non-blocking.
pub fn bind_receiver(addr: SocketAddr) -> io::Result<UdpSocket> {
    let fd = udp(addr.ip())?;
    match addr {
        SocketAddr::V4(_) => setsockopt(&fd, sockopt::Ipv4RecvTtl, &true),
        SocketAddr::V6(_) => setsockopt(&fd, sockopt::Ipv6V6Only, &true)
            .and_then(|()| setsockopt(&fd, sockopt::Ipv6RecvHopLimit, &true)),
    }
    .map_err(io_err)?;
    bind_to(&fd, addr).map_err(|e| io::Error::new(e.kind(), format!("UDP {addr}: {e}")))?;
    Ok(UdpSocket::from(fd))
}

/// A session's sending socket: bound to `local` (or the unspecified address of the peer's
/// family) and a free port in 49152-65535, tried from `start`; TTL / hop limit 255.
/// Non-blocking.
pub fn bind_sender(peer: IpAddr, local: Option<IpAddr>, start: u16) -> io::Result<UdpSocket> {
    let ip = local.unwrap_or(match peer {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    let fd = udp(peer)?;
    let ttl = libc::c_int::from(TTL);
    match peer {
        IpAddr::V4(_) => setsockopt(&fd, sockopt::Ipv4Ttl, &ttl),
        IpAddr::V6(_) => setsockopt(&fd, sockopt::Ipv6Ttl, &ttl),
    }
    .map_err(io_err)?;
    let (first, last) = (*SOURCE_PORTS.start(), *SOURCE_PORTS.end());
    let span = u32::from(last - first) + 1;
    let offset = u32::from(start.wrapping_sub(first)) % span;
    for i in 0..span {
        let port = first + ((offset + i) % span) as u16;
        match bind_to(&fd, SocketAddr::new(ip, port)) {
            Ok(()) => return Ok(UdpSocket::from(fd)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("UDP {ip}:{port}: {e}"))),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free UDP source port in {first}-{last} on {ip}"),
    ))
}

/// One received datagram.
pub struct Datagram {
    pub len: usize,
    pub from: SocketAddr,
    /// The TTL / hop limit it arrived with, when the kernel reported it.
    pub ttl: Option<u8>,
}

/// Receives one datagram (non-blocking: `WouldBlock` when there is none).
pub fn receive(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Datagram> {
    let mut cmsg = nix::cmsg_space!(libc::c_int, libc::c_int);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_TRUNC,
    )
    .map_err(io_err)?;
    let mut ttl = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => {
                    ttl = u8::try_from(t).ok();
                }
                _ => {}
            }
        }
    }
    let from = msg
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
                .or_else(|| {
                    a.as_sockaddr_in6()
                        .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
                })
        })
        .ok_or_else(|| io::Error::other("datagram without a source address"))?;
    Ok(Datagram {
        len: msg.bytes,
        from,
        ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_datagrams_report_their_ttl_and_senders_use_255() {
        let rx = bind_receiver("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = rx.local_addr().unwrap();
        let tx = bind_sender(to.ip(), None, 50000).unwrap();
        let port = tx.local_addr().unwrap().port();
        assert!(SOURCE_PORTS.contains(&port), "{port}");
        tx.send_to(b"hello", to).unwrap();
        let mut buf = [0u8; 64];
        let d = loop {
            match receive(&rx, &mut buf) {
                Ok(d) => break d,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..d.len], b"hello");
        assert_eq!(d.ttl, Some(255));
        assert_eq!(d.from.port(), tx.local_addr().unwrap().port());
        // A socket with the default TTL (64) is visibly not a neighbour's.
        let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
        plain.send_to(b"x", to).unwrap();
        let d = loop {
            if let Ok(d) = receive(&rx, &mut buf) {
                break d;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_ne!(d.ttl, Some(255));
    }

    #[test]
    fn sender_ports_are_distinct_and_in_range() {
        let a = bind_sender("127.0.0.1".parse().unwrap(), None, 65535).unwrap();
        let b = bind_sender("127.0.0.1".parse().unwrap(), None, 65535).unwrap();
        let (pa, pb) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        assert_ne!(pa, pb);
        assert!(SOURCE_PORTS.contains(&pa) && SOURCE_PORTS.contains(&pb));
    }
}
