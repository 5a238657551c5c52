//! The refusal rule with real packets: a TCP connection to the service address from a DB
//! host's ToR, sent out of the ToR's interface towards that host (SO_BINDTODEVICE: the kernel
//! then takes the address as on-link, whatever its routes say, and the host answers ARP for
//! the address on its `lo`). A host that is not the announced primary must answer with a
//! reset; the primary must accept.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::time::Duration;

use crate::lab::Lab;

/// What a connection attempt met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Accepted,
    /// A TCP reset (ECONNREFUSED).
    Refused,
    /// Nothing within the timeout.
    Silence,
    /// Another error (errno).
    Error(i32),
}

const TIMEOUT: Duration = Duration::from_millis(1000);

/// Connects to `addr:port` from inside `router`'s network namespace, out of `iface`.
pub(crate) fn connect_from(
    lab: &Lab,
    router: &str,
    iface: &str,
    addr: Ipv4Addr,
    port: u16,
) -> Answer {
    let path = format!("/run/netns/{}", lab.netns(router));
    let iface = iface.to_string();
    // A thread of its own enters the namespace; the runner's other threads stay where they are.
    std::thread::spawn(move || {
        let ns = File::open(&path).map_err(|e| e.raw_os_error().unwrap_or(-1))?;
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| e as i32)?;
        Ok::<Answer, i32>(connect(&iface, addr, port))
    })
    .join()
    .unwrap_or(Err(-1))
    .unwrap_or_else(Answer::Error)
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

fn connect(iface: &str, addr: Ipv4Addr, port: u16) -> Answer {
    // SAFETY: plain socket calls on a descriptor this function owns and closes.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Answer::Error(errno());
        }
        let answer = attempt(fd, iface, addr, port);
        libc::close(fd);
        answer
    }
}

/// # Safety
/// `fd` is an open, non-blocking TCP socket.
unsafe fn attempt(fd: i32, iface: &str, addr: Ipv4Addr, port: u16) -> Answer {
    let dev = iface.as_bytes();
    if libc::setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_BINDTODEVICE,
        dev.as_ptr().cast(),
        dev.len() as libc::socklen_t,
    ) != 0
    {
        return Answer::Error(errno());
    }
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    let r = libc::connect(
        fd,
        (&sa as *const libc::sockaddr_in).cast(),
        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
    );
    if r != 0 && errno() != libc::EINPROGRESS {
        return classify(errno());
    }
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    if libc::poll(&mut p, 1, TIMEOUT.as_millis() as i32) == 0 {
        return Answer::Silence;
    }
    let mut err: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    if libc::getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ERROR,
        (&mut err as *mut i32).cast(),
        &mut len,
    ) != 0
    {
        return Answer::Error(errno());
    }
    classify(err)
}

fn classify(err: i32) -> Answer {
    match err {
        0 => Answer::Accepted,
        libc::ECONNREFUSED => Answer::Refused,
        e => Answer::Error(e),
    }
}
