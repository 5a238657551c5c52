//! The service addresses on this host. Traffic routed to a service address is accepted only
//! where the address is configured locally (on `lo`, the anycast convention), so announcing
//! a prefix whose address is missing would blackhole it: such a service is withdrawn.
//!
//! Checked at every check with getifaddrs(3) (one netlink dump, microseconds), like
//! anycast-healthchecker does. Optionally ([`add_to_lo`]) primaryd adds missing addresses to
//! `lo` at start-up with `ip addr add` and leaves them there at exit.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;

use ipnetwork::IpNetwork;

/// Every address configured on any local interface, in this network namespace.
pub fn local_addresses() -> Result<BTreeSet<IpAddr>, nix::Error> {
    Ok(nix::ifaddrs::getifaddrs()?
        .filter_map(|ifa| {
            let a = ifa.address?;
            if let Some(v4) = a.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect())
}

/// Pure: the prefixes' addresses that are not in `local`, in prefix order.
pub fn missing(prefixes: &[IpNetwork], local: &BTreeSet<IpAddr>) -> Vec<IpAddr> {
    prefixes
        .iter()
        .map(|p| p.ip())
        .filter(|a| !local.contains(a))
        .collect()
}

/// Pure: the reason a service with these addresses missing is withdrawn.
pub fn missing_reason(missing: &[IpAddr]) -> Option<String> {
    match missing {
        [] => None,
        [one] => Some(format!(
            "address {one} not configured on any local interface"
        )),
        many => Some(format!(
            "addresses {} not configured on any local interface",
            many.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The gate a check applies: `None` when every address is configured, else why not. When
/// the addresses cannot be listed, that is the reason (fail closed).
pub fn check(prefixes: &[IpNetwork]) -> Option<String> {
    match local_addresses() {
        Ok(local) => missing_reason(&missing(prefixes, &local)),
        Err(e) => Some(format!("cannot list local addresses: {e}")),
    }
}

/// Adds each missing prefix address to `lo` as a host route (`ip addr add A/32 dev lo`,
/// `/128` for IPv6). Returns what was added; an error names the address and what `ip` said.
/// Addresses already present (on any interface) are left alone.
pub fn add_to_lo(prefixes: &[IpNetwork]) -> Result<Vec<IpAddr>, String> {
    let local = local_addresses().map_err(|e| format!("cannot list local addresses: {e}"))?;
    let mut added = Vec::new();
    for addr in missing(prefixes, &local) {
        let host = match addr {
            IpAddr::V4(_) => format!("{addr}/32"),
            IpAddr::V6(_) => format!("{addr}/128"),
        };
        let out = Command::new("ip")
            .args(["addr", "add", &host, "dev", "lo"])
            .output()
            .map_err(|e| format!("cannot run `ip addr add {host} dev lo`: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`ip addr add {host} dev lo` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        added.push(addr);
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNetwork> {
        s.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn missing_addresses_in_prefix_order() {
        let local: BTreeSet<IpAddr> = ["127.0.0.1", "192.0.2.10", "::1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let p = nets(&["192.0.2.10/32", "2001:db8::10/128", "192.0.2.11/32"]);
        let m = missing(&p, &local);
        assert_eq!(
            m,
            [
                "2001:db8::10".parse::<IpAddr>().unwrap(),
                "192.0.2.11".parse().unwrap()
            ]
        );
        assert_eq!(
            missing_reason(&m).unwrap(),
            "addresses 2001:db8::10, 192.0.2.11 not configured on any local interface"
        );
        assert_eq!(
            missing_reason(&m[1..]).unwrap(),
            "address 192.0.2.11 not configured on any local interface"
        );
        assert_eq!(missing_reason(&missing(&p[..1], &local)), None);
    }

    #[test]
    fn loopback_is_always_local() {
        let local = local_addresses().unwrap();
        assert!(local.contains(&"127.0.0.1".parse().unwrap()), "{local:?}");
        assert_eq!(check(&nets(&["127.0.0.1/32"])), None);
        // 192.0.2.0/24 (TEST-NET-1) is never configured outside the labs' namespaces.
        assert_eq!(
            check(&nets(&["192.0.2.254/32"])).as_deref(),
            Some("address 192.0.2.254 not configured on any local interface")
        );
    }
}
