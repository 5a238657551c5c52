//! The open-file limit. Many systems start services with a soft `RLIMIT_NOFILE` of 1024 and a
//! far higher hard limit; primaryd raises the soft limit to the hard one at start-up, and
//! gives control clients only what is left after a reserve for everything else (sessions,
//! checks, address listings, the metrics endpoint), so local clients can never starve the
//! health checks of file descriptors.

use std::io;

/// File descriptors kept for the daemon's own work, whatever `[control] max_clients` says:
/// listeners, BGP sessions (two while a collision is resolved), MySQL connections (check and
/// watch), the netlink socket of each address listing, files being read, metrics scrapes.
pub const BASE_RESERVE: u64 = 64;
/// Per peer and per service, on top of the base.
pub const PER_PEER: u64 = 4;
pub const PER_SERVICE: u64 = 8;

/// What [`raise_nofile`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFile {
    pub before: u64,
    pub soft: u64,
    pub hard: u64,
}

fn get() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. An infinite hard limit is capped at
/// the kernel's `nr_open` (setting more fails), 1048576 if that cannot be read.
pub fn raise_nofile() -> io::Result<NoFile> {
    let lim = get()?;
    let before = lim.rlim_cur;
    let mut target = lim.rlim_max;
    if target == libc::RLIM_INFINITY {
        target = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if target > before {
        let new = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `new` is a valid rlimit; the kernel copies it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let now = get()?;
    Ok(NoFile {
        before: before as u64,
        soft: now.rlim_cur as u64,
        hard: now.rlim_max as u64,
    })
}

/// Pure: how many control clients may be connected at once under a soft limit of `soft`
/// file descriptors: the configured maximum, or less when the reserve would not fit (never
/// below one, so `primaryctl` works at all).
pub fn control_client_budget(soft: u64, wanted: usize, peers: usize, services: usize) -> usize {
    let reserve = BASE_RESERVE + PER_PEER * peers as u64 + PER_SERVICE * services as u64;
    let spare = soft.saturating_sub(reserve);
    (wanted as u64).min(spare).max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_clients_get_what_the_reserve_leaves() {
        // Plenty of descriptors: the configured maximum.
        assert_eq!(control_client_budget(20000, 64, 2, 1), 64);
        // 1024 - (64 + 2*4 + 1*8) = 944.
        assert_eq!(control_client_budget(1024, 5000, 2, 1), 944);
        // A tiny limit still lets one client in.
        assert_eq!(control_client_budget(32, 64, 2, 1), 1);
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        // Start one below the hard limit (harmless to the other tests of this process).
        let lim = get().unwrap();
        if lim.rlim_max != libc::RLIM_INFINITY && lim.rlim_max > 1 {
            let lower = libc::rlimit {
                rlim_cur: lim.rlim_max - 1,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: a valid rlimit.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lower) }, 0);
        }
        let n = raise_nofile().unwrap();
        assert!(n.soft >= n.before);
        let lim = get().unwrap();
        assert_eq!(lim.rlim_cur as u64, n.soft);
        if lim.rlim_max != libc::RLIM_INFINITY {
            assert_eq!(n.soft, n.hard);
        }
    }
}
