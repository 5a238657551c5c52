//! Socket options BGP sessions need and tokio does not offer: TCP MD5 signatures (RFC 2385,
//! Linux `TCP_MD5SIG`) and GTSM (RFC 5082: send with TTL 255, drop what arrives below 254),
//! plus the addresses of the interface a session runs over (for next hops).

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use super::fsm::InterfaceAddresses;

/// Linux `TCP_MD5SIG_MAXKEYLEN`.
pub const MD5_MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` from linux/tcp.h (not in the libc crate).
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MD5_MAX_KEY_LEN],
}

fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size passed; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn sockaddr_storage(addr: IpAddr) -> libc::sockaddr_storage {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    match addr {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
        }
        IpAddr::V6(a) => {
            // SAFETY: as above.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.octets();
        }
    }
    storage
}

/// Signs (and requires signatures on) every segment to/from `peer` with `key`. On a listening
/// socket it must be set before the peer's SYN arrives, once per peer.
pub fn set_md5_key(fd: &impl AsRawFd, peer: IpAddr, key: &str) -> io::Result<()> {
    let bytes = key.as_bytes();
    if bytes.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP MD5 key longer than {MD5_MAX_KEY_LEN} bytes"),
        ));
    }
    let mut sig = TcpMd5Sig {
        addr: sockaddr_storage(peer),
        flags: 0,
        prefixlen: 0,
        keylen: bytes.len() as u16,
        ifindex: 0,
        key: [0; MD5_MAX_KEY_LEN],
    };
    sig.key[..bytes.len()].copy_from_slice(bytes);
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig)
}

/// IPv6 sockets accept only IPv6, so an IPv4 listener on the same port can coexist.
pub fn set_ipv6_only(fd: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &on)
}

/// Our packets leave with TTL (hop limit) 255, the first half of GTSM. Listeners get it so
/// the SYN-ACK to a GTSM peer passes its check too.
pub fn set_send_ttl_255(fd: &impl AsRawFd, family: IpAddr) -> io::Result<()> {
    let send: libc::c_int = 255;
    match family {
        IpAddr::V4(_) => setsockopt(fd, libc::IPPROTO_IP, libc::IP_TTL, &send),
        IpAddr::V6(_) => setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &send),
    }
}

/// GTSM for a directly connected peer: our packets leave with TTL 255, and the kernel drops
/// the peer's packets that arrive with less than 254 (RFC 5082).
pub fn set_ttl_security(fd: &impl AsRawFd, family: IpAddr) -> io::Result<()> {
    set_send_ttl_255(fd, family)?;
    set_min_ttl_254(fd, family)
}

/// Makes a listener keep each connection's SYN, so [`syn_ttl`] can check GTSM before a byte
/// of the connection is read.
pub fn set_save_syn(fd: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_SAVE_SYN, &on)
}

/// The TTL (IPv4) or hop limit (IPv6) the peer's SYN arrived with, on a connection accepted
/// by a listener with [`set_save_syn`]. None if the kernel kept no SYN.
pub fn syn_ttl(fd: &impl AsRawFd) -> Option<u8> {
    let mut buf = [0u8; 512];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: buf and len describe a writable buffer; the kernel writes at most len bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_SAVED_SYN,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    let syn = buf.get(..len as usize)?;
    match syn.first()? >> 4 {
        4 => syn.get(8).copied(),
        6 => syn.get(7).copied(),
        _ => None,
    }
}

/// The kernel drops whatever arrives with TTL (hop limit) below 254, the SYN included when set
/// on a listener.
pub fn set_min_ttl_254(fd: &impl AsRawFd, family: IpAddr) -> io::Result<()> {
    let min: libc::c_int = 254;
    match family {
        IpAddr::V4(_) => setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &min),
        IpAddr::V6(_) => setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &min),
    }
}

/// Addresses of the interface that holds `local` (the session's own address): its first IPv4
/// address and its first global IPv6 address. Empty when nothing matches.
pub fn interface_addresses(local: IpAddr) -> InterfaceAddresses {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return InterfaceAddresses::default();
    };
    let addrs: Vec<_> = addrs.collect();
    let ip_of = |a: &nix::ifaddrs::InterfaceAddress| -> Option<IpAddr> {
        let s = a.address.as_ref()?;
        if let Some(v4) = s.as_sockaddr_in() {
            return Some(IpAddr::V4(v4.ip()));
        }
        s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
    };
    let Some(name) = addrs
        .iter()
        .find(|a| ip_of(a) == Some(local))
        .map(|a| a.interface_name.clone())
    else {
        return InterfaceAddresses::default();
    };
    let mut out = InterfaceAddresses::default();
    for a in addrs.iter().filter(|a| a.interface_name == name) {
        match ip_of(a) {
            Some(IpAddr::V4(v4)) if out.ipv4.is_none() => out.ipv4 = Some(v4),
            Some(IpAddr::V6(v6))
                if out.ipv6_global.is_none()
                    && !v6.is_unicast_link_local()
                    && !v6.is_loopback() =>
            {
                out.ipv6_global = Some(v6)
            }
            _ => {}
        }
    }
    out
}

pub fn interface_index(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name)
        .map_err(|e| io::Error::other(format!("interface {name}: {e}")))
}

/// The socket address to connect to: link-local peers need their interface as scope.
pub fn peer_socket_addr(
    address: IpAddr,
    port: u16,
    interface: Option<&str>,
) -> io::Result<SocketAddr> {
    match (address, interface) {
        (IpAddr::V6(a), Some(ifname)) => {
            let index = interface_index(ifname)?;
            let addr = std::net::SocketAddrV6::new(a, port, 0, index);
            Ok(SocketAddr::V6(addr))
        }
        _ => Ok(SocketAddr::new(address, port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_key_is_accepted_by_the_kernel_and_overlong_keys_are_refused() {
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_md5_key(&s, "127.0.0.1".parse().unwrap(), "s3cret").unwrap();
        let long = "x".repeat(81);
        assert!(set_md5_key(&s, "127.0.0.1".parse().unwrap(), &long).is_err());
    }

    #[test]
    fn ttl_security_sets_ttl_255() {
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_ttl_security(&s, "127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(s.ttl().unwrap(), 255);
    }

    #[test]
    fn the_ttl_of_an_accepted_connections_syn_is_read() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_save_syn(&l).unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        // Loopback connections leave with the default TTL (64) unless told otherwise.
        assert_eq!(syn_ttl(&s), Some(c.ttl().unwrap() as u8));

        let l2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = std::net::TcpStream::connect(l2.local_addr().unwrap()).unwrap();
        let (s2, _) = l2.accept().unwrap();
        assert_eq!(syn_ttl(&s2), None, "no SYN kept without set_save_syn");
    }

    #[test]
    fn loopback_interface_addresses_are_found() {
        let a = interface_addresses("127.0.0.1".parse().unwrap());
        assert_eq!(a.ipv4, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(a.ipv6_global, None, "::1 is not a global next hop");
        assert_eq!(
            interface_addresses("192.0.2.254".parse().unwrap()),
            InterfaceAddresses::default()
        );
    }
}
