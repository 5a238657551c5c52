//! What the daemon needs from this host to start, checked the same way by `--check`,
//! start-up and reload, so `--check` never passes a config the daemon then refuses: the
//! control socket's group exists and its path is free for a socket; link-local peers'
//! interfaces exist; `[bgp] listen` and `[metrics] listen` addresses are configured here.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::FileTypeExt;

use super::{Config, ConfigProblem};
use crate::health::address;

pub(super) fn check(config: &Config) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let mut bad = |key: String, problem: String| problems.push(ConfigProblem::new(key, problem));
    if let Some(group) = &config.control.socket_group {
        match nix::unistd::Group::from_name(group) {
            Ok(Some(_)) => {}
            Ok(None) => bad(
                "control.socket_group".into(),
                format!("group {group:?} does not exist"),
            ),
            Err(e) => bad(
                "control.socket_group".into(),
                format!("cannot look up group {group:?}: {e}"),
            ),
        }
    }
    let socket = &config.control.socket;
    if let Ok(meta) = std::fs::symlink_metadata(socket) {
        if !meta.file_type().is_socket() {
            bad(
                "control.socket".into(),
                format!("{} exists and is not a socket", socket.display()),
            );
        }
    }
    for (i, peer) in config.bgp.peers.iter().enumerate() {
        if let Some(ifname) = &peer.interface {
            if let Err(e) = nix::net::if_::if_nametoindex(ifname.as_str()) {
                bad(
                    format!("bgp.peer[{i}].interface"),
                    format!("no interface {ifname:?} here ({e})"),
                );
            }
        }
    }
    // Addresses that cannot be listed leave the binds to fail at start-up, as before.
    if let Ok(local) = address::local_addresses() {
        let missing = |a: &SocketAddr| !a.ip().is_unspecified() && !local.contains(&a.ip());
        let listens = config.bgp.listen.iter().enumerate();
        for (i, a) in listens.filter(|(_, a)| missing(a)) {
            bad(format!("bgp.listen[{i}]"), not_local(a.ip()));
        }
        if let Some(a) = config.metrics.listen.filter(missing) {
            bad("metrics.listen".into(), not_local(a.ip()));
        }
    }
    problems
}

fn not_local(ip: IpAddr) -> String {
    format!("{ip} is not an address of this host: nothing could listen there")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_config;

    fn service() -> Config {
        let mut c = test_config(
            "[[service]]\nname = \"main\"\nprefixes = [\"192.0.2.10/32\"]\n\
             [service.mysql]\nsocket = \"/run/mysqld/mysqld.sock\"\nuser = \"primaryd\"\n",
        );
        let dir = std::env::temp_dir().join(format!("primaryd-host-{}", std::process::id()));
        c.control.socket = dir.join("none.sock");
        c
    }

    fn keys(c: &Config) -> Vec<String> {
        check(c).iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn what_start_up_would_refuse_is_named() {
        assert!(keys(&service()).is_empty());

        let mut c = service();
        c.control.socket_group = Some("no-such-group-primaryd".into());
        assert_eq!(
            keys(&c),
            ["control.socket_group: group \"no-such-group-primaryd\" does not exist"]
        );

        let mut c = service();
        let file = tempfile::NamedTempFile::new().unwrap();
        c.control.socket = file.path().to_path_buf();
        assert_eq!(
            keys(&c),
            [format!(
                "control.socket: {} exists and is not a socket",
                file.path().display()
            )]
        );

        let mut c = service();
        c.bgp.peers[0].address = "fe80::1".parse().unwrap();
        c.bgp.peers[0].interface = Some("nosuchif0".into());
        // 192.0.2.0/24 (TEST-NET-1) is never configured outside the labs' namespaces.
        c.bgp.listen = vec![
            "0.0.0.0:179".parse().unwrap(),
            "192.0.2.254:179".parse().unwrap(),
        ];
        c.metrics.listen = Some("127.0.0.1:9479".parse().unwrap());
        let k = keys(&c);
        assert_eq!(k.len(), 2, "{k:?}");
        assert!(k[0].starts_with("bgp.peer[0].interface: no interface \"nosuchif0\" here"));
        assert_eq!(
            k[1],
            "bgp.listen[1]: 192.0.2.254 is not an address of this host: nothing could listen there"
        );
    }
}
