//! Parsing and validation of whole config files: every problem named by its key.

use super::*;
use crate::bgp::message::{Community, LargeCommunity};

const GOOD: &str = r#"
[bgp]
asn = 4200000011
router_id = "198.19.0.11"
hold_time = 9

[[bgp.peer]]
name = "tor1"
address = "198.18.1.0"
remote_asn = 65001

[[service]]
name = "main"
prefixes = ["192.0.2.10/32"]
[service.mysql]
socket = "/run/mysqld/mysqld.sock"
user = "primaryd"
"#;

fn problems(text: &str) -> Vec<String> {
    parse(text)
        .expect_err("config should be rejected")
        .iter()
        .map(|p| p.to_string())
        .collect()
}

#[test]
fn good_config_parses_with_defaults() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.bgp.asn, 4_200_000_011);
    assert_eq!(c.bgp.peers[0].port, 179);
    assert_eq!(c.bgp.peers[0].hold_time, 9);
    let m = &c.services[0].mysql;
    assert_eq!(m.interval, Duration::from_millis(200));
    assert_eq!(m.timeout, Duration::from_millis(1000));
    assert_eq!((m.rise, m.fall), (2, 1));
    assert_eq!(
        m.endpoint,
        MysqlEndpoint::Socket("/run/mysqld/mysqld.sock".into())
    );
}

#[test]
fn unknown_key_is_named_with_its_path() {
    let text = GOOD.replace("remote_asn = 65001", "remote_asn = 65001\nremote_as = 1");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("bgp.peer[0].remote_as: "), "{p:?}");
    assert!(p[0].contains("unknown field"), "{p:?}");
}

#[test]
fn unknown_top_level_section_is_rejected() {
    let p = problems(&format!("{GOOD}\n[bfd]\nlisten = \"x\"\n"));
    assert!(p[0].starts_with("bfd: "), "{p:?}");
}

#[test]
fn wrong_type_names_key() {
    let p = problems(&GOOD.replace("asn = 4200000011", "asn = \"x\""));
    assert!(p[0].starts_with("bgp.asn: "), "{p:?}");
}

#[test]
fn validation_reports_every_problem() {
    let text = GOOD
        .replace("asn = 4200000011", "asn = 4294967296")
        .replace("hold_time = 9", "hold_time = 2")
        .replace("\"192.0.2.10/32\"", "\"192.0.2.0/24\", \"nope\"")
        .replace(
            "user = \"primaryd\"",
            "user = \"primaryd\"\nrise = 0\nfall = 0\ninterval_ms = 0\ntimeout_ms = -1",
        );
    let p = problems(&text);
    let keys: Vec<&str> = p.iter().map(|s| s.split(": ").next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "bgp.asn",
            "bgp.hold_time",
            "service[0].prefixes[0]",
            "service[0].prefixes[1]",
            "service[0].mysql.interval_ms",
            "service[0].mysql.timeout_ms",
            "service[0].mysql.rise",
            "service[0].mysql.fall",
        ],
        "{p:#?}"
    );
}

#[test]
fn hold_time_zero_and_three_are_accepted() {
    for h in [0, 3, 65535] {
        let c = parse(&GOOD.replace("hold_time = 9", &format!("hold_time = {h}"))).unwrap();
        assert_eq!(c.bgp.hold_time, h as u16);
    }
}

#[test]
fn two_byte_and_four_byte_asn() {
    for a in [1u32, 65535, 65536, 4_294_967_295] {
        let c = parse(&GOOD.replace("4200000011", &a.to_string())).unwrap();
        assert_eq!(c.bgp.asn, a);
    }
    assert!(problems(&GOOD.replace("4200000011", "0"))[0].starts_with("bgp.asn"));
    assert!(problems(&GOOD.replace("4200000011", "23456"))[0].starts_with("bgp.asn"));
}

#[test]
fn socket_and_host_are_exclusive() {
    let text = GOOD.replace("user = ", "host = \"127.0.0.1\"\nuser = ");
    assert_eq!(
        problems(&text),
        ["service[0].mysql: set either socket or host, not both"]
    );
    let text = GOOD.replace(
        "socket = \"/run/mysqld/mysqld.sock\"",
        "host = \"127.0.0.1\"\nport = 3307",
    );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.services[0].mysql.endpoint,
        MysqlEndpoint::Tcp {
            host: "127.0.0.1".into(),
            port: 3307
        }
    );
}

#[test]
fn same_prefix_in_two_services_is_rejected() {
    let second = GOOD
        .split("[[service]]")
        .nth(1)
        .unwrap()
        .replace("\"main\"", "\"other\"");
    let p = problems(&format!("{GOOD}\n[[service]]{second}"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("service[1].prefixes: 192.0.2.10/32 is already announced"));
}

#[test]
fn ipv4_and_ipv6_host_routes_are_accepted_and_nothing_wider() {
    let both = GOOD.replace(
        "\"192.0.2.10/32\"",
        "\"192.0.2.10/32\", \"2001:db8::10/128\"",
    );
    assert_eq!(parse(&both).unwrap().services[0].prefixes.len(), 2);
    let p = problems(&GOOD.replace("\"192.0.2.10/32\"", "\"2001:db8::/64\""));
    assert!(p[0].contains("not a host route"), "{p:?}");
}

#[test]
fn route_attributes_parse_and_bad_ones_name_their_key() {
    let attrs = r#"communities = ["65001:100", "0:65535"]
large_communities = ["4200000001:1:2"]
med = 50
local_pref = 200
as_path_prepend = 2
next_hop_ipv4 = "198.18.1.1"
next_hop_ipv6 = "2001:db8:1::1"
[service.mysql]"#;
    let a = parse(&GOOD.replace("[service.mysql]", attrs))
        .unwrap()
        .services[0]
        .attributes
        .clone();
    assert_eq!(
        a.communities,
        [Community(65001 << 16 | 100), Community(65535)]
    );
    let large = LargeCommunity {
        global: 4_200_000_001,
        local1: 1,
        local2: 2,
    };
    assert_eq!(a.large_communities, [large]);
    assert_eq!(
        (a.med, a.local_pref, a.as_path_prepend),
        (Some(50), Some(200), 2)
    );
    assert_eq!(a.next_hop_ipv6, Some("2001:db8:1::1".parse().unwrap()));

    let bad = r#"communities = ["65536:1"]
large_communities = ["1:2"]
med = -1
as_path_prepend = 17
next_hop_ipv6 = "198.18.1.1"
[service.mysql]"#;
    let keys: Vec<String> = problems(&GOOD.replace("[service.mysql]", bad))
        .iter()
        .map(|p| p.split(": ").next().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "service[0].communities[0]",
            "service[0].large_communities[0]",
            "service[0].as_path_prepend",
            "service[0].med",
            "service[0].next_hop_ipv6",
        ]
    );
}

#[test]
fn peer_options_parse_with_defaults_and_rules() {
    let c = parse(GOOD).unwrap();
    let p = &c.bgp.peers[0];
    assert!(!p.passive && !p.ttl_security);
    assert_eq!(p.max_prefixes, DEFAULT_MAX_PREFIXES);
    assert!(c.bgp.listen.is_empty());

    let options = r#"remote_asn = 65001
passive = true
ttl_security = true
max_prefixes = 5
max_prefixes_restart_s = 10
md5_password_file = "/x""#;
    let text = GOOD.replace("remote_asn = 65001", options);
    assert_eq!(
        problems(&text),
        ["bgp.peer[0].passive: a passive peer needs [bgp] listen to accept its connection"]
    );
    let listen = "hold_time = 9\nlisten = [\"0.0.0.0:179\", \"[::]:1179\"]";
    let c = parse(&text.replace("hold_time = 9", listen)).unwrap();
    let p = &c.bgp.peers[0];
    assert!(p.passive && p.ttl_security);
    assert_eq!(p.max_prefixes, 5);
    assert_eq!(p.max_prefixes_restart, Duration::from_secs(10));
    assert_eq!(c.bgp.listen.len(), 2);

    let text = GOOD.replace("address = \"198.18.1.0\"", "address = \"fe80::1\"");
    assert_eq!(
        problems(&text),
        ["bgp.peer[0].interface: required with a link-local peer address"]
    );
    let text = text.replace("\"fe80::1\"", "\"fe80::1\"\ninterface = \"eth0\"");
    let c = parse(&text).unwrap();
    assert_eq!(c.bgp.peers[0].interface.as_deref(), Some("eth0"));
}

#[test]
fn two_peers_at_one_address_and_relative_secret_paths_are_refused() {
    let second = "[[bgp.peer]]\nname = \"tor2\"\naddress = \"198.18.1.0\"\nremote_asn = 65002\n";
    let text = GOOD.replace("[[service]]", &format!("{second}\n[[service]]"));
    assert_eq!(
        problems(&text),
        ["bgp.peer[1].address: 198.18.1.0 is already the address of peer \"tor1\""]
    );
    // The same link-local address on two links is two routers.
    let ll = |n: &str, i: &str| {
        format!("[[bgp.peer]]\nname = \"{n}\"\naddress = \"fe80::1\"\ninterface = \"{i}\"\nremote_asn = 65001\n")
    };
    let text = GOOD.replace(
        "[[service]]",
        &format!("{}{}\n[[service]]", ll("a", "eth0"), ll("b", "eth1")),
    );
    assert!(parse(&text).is_ok());

    let text = GOOD
        .replace(
            "remote_asn = 65001",
            "remote_asn = 65001\nmd5_password_file = \"tor1.key\"",
        )
        .replace(
            "socket = \"/run/mysqld/mysqld.sock\"",
            "socket = \"mysqld.sock\"\npassword_file = \"mysql.pass\"",
        );
    assert_eq!(
        problems(&text),
        [
            "bgp.peer[0].md5_password_file: \"tor1.key\" is not an absolute path",
            "service[0].mysql.socket: \"mysqld.sock\" is not an absolute path",
            "service[0].mysql.password_file: \"mysql.pass\" is not an absolute path",
        ]
    );
}

#[test]
fn md5_keys_the_kernel_would_refuse_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("tor1.key");
    let text = GOOD.replace(
        "remote_asn = 65001",
        &format!(
            "remote_asn = 65001\nmd5_password_file = {:?}",
            key.display().to_string()
        ),
    );
    let c = parse(&text).unwrap();
    for (content, len) in [("x".repeat(81), 81), (String::new(), 0)] {
        std::fs::write(&key, format!("{content}\n")).unwrap();
        let p = c.read_secrets().unwrap_err();
        assert_eq!(p[0].key, "bgp.peer[0].md5_password_file");
        assert_eq!(
            p[0].problem,
            format!(
                "the key in {} is {len} bytes: TCP MD5 keys are 1..=80 bytes",
                key.display()
            )
        );
    }
    std::fs::write(&key, "x".repeat(80)).unwrap();
    assert_eq!(
        c.read_secrets().unwrap().md5[0].as_ref().map(String::len),
        Some(80)
    );
}

#[test]
fn a_directory_is_not_a_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = GOOD.replace(
        "user = \"primaryd\"",
        &format!(
            "user = \"primaryd\"\npassword_file = {:?}",
            dir.path().display().to_string()
        ),
    );
    let p = parse(&text).unwrap().read_secrets().unwrap_err();
    assert_eq!(
        p[0].problem,
        format!(
            "refusing {}: is a directory, not a file",
            dir.path().display()
        )
    );
}

#[test]
fn unreadable_password_file_is_a_problem_of_its_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "s3cret\nignored\n").unwrap();
    let mode = |m: u32| std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(m));
    mode(0o600).unwrap();
    let text = GOOD.replace(
        "user = \"primaryd\"",
        &format!(
            "user = \"primaryd\"\npassword_file = {:?}",
            pass.display().to_string()
        ),
    );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.read_secrets().unwrap().mysql,
        [Some("s3cret".to_string())]
    );
    // Readable by group or others: refused, naming the file and its mode.
    for m in [0o640, 0o604, 0o644] {
        mode(m).unwrap();
        let p = c.read_secrets().unwrap_err();
        assert_eq!(p[0].key, "service[0].mysql.password_file");
        assert_eq!(
            p[0].problem,
            format!(
                "refusing {}: mode {m:04o} gives group or others access (chmod 600 it)",
                pass.display()
            )
        );
    }
    mode(0o400).unwrap();
    assert!(c.read_secrets().is_ok());
    std::fs::remove_file(&pass).unwrap();
    let p = c.read_secrets().unwrap_err();
    assert_eq!(p[0].key, "service[0].mysql.password_file");
    assert!(p[0].problem.contains("cannot read"), "{p:?}");
}

#[test]
fn control_section_defaults_and_paths() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.control, ControlConfig::default());
    assert_eq!(c.control.state_dir, PathBuf::from("/var/lib/primaryd"));
    let text = format!("{GOOD}\n[control]\nstate_dir = \"/srv/pd\"\nsocket = \"/run/pd.sock\"\n");
    let c = parse(&text).unwrap();
    assert_eq!(c.control.state_dir, PathBuf::from("/srv/pd"));
    assert_eq!(c.control.socket, PathBuf::from("/run/pd.sock"));
    let p = problems(&format!(
        "{GOOD}\n[control]\nstate_dir = \"rel\"\nfoo = 1\n"
    ));
    assert!(p[0].starts_with("control.foo: "), "{p:?}");
    let p = problems(&format!("{GOOD}\n[control]\nstate_dir = \"rel\"\n"));
    assert_eq!(p, ["control.state_dir: \"rel\" is not an absolute path"]);
    let c = parse(&format!("{GOOD}\n[control]\nsocket_group = \"dba\"\n")).unwrap();
    assert_eq!(c.control.socket_group.as_deref(), Some("dba"));
    assert_eq!(c.control.max_clients, 64);
    let c = parse(&format!("{GOOD}\n[control]\nmax_clients = 8\n")).unwrap();
    assert_eq!(c.control.max_clients, 8);
    let p = problems(&format!("{GOOD}\n[control]\nmax_clients = 0\n"));
    assert_eq!(p, ["control.max_clients: 0 is invalid: must be 1..=10000"]);
}

#[test]
fn metrics_listen_is_optional_and_checked() {
    assert_eq!(parse(GOOD).unwrap().metrics.listen, None);
    let c = parse(&format!("{GOOD}\n[metrics]\nlisten = \"127.0.0.1:9479\"\n")).unwrap();
    assert_eq!(c.metrics.listen, Some("127.0.0.1:9479".parse().unwrap()));
    let p = problems(&format!("{GOOD}\n[metrics]\nlisten = \"9479\"\n"));
    assert!(p[0].starts_with("metrics.listen: "), "{p:?}");
}

#[test]
fn service_health_keys_parse_with_defaults() {
    let c = parse(GOOD).unwrap();
    let s = &c.services[0];
    assert_eq!(s.role, Role::Primary);
    assert_eq!((s.disable_file.as_ref(), s.manage_addresses), (None, false));
    let m = &s.mysql;
    assert_eq!(m.max_lag, Duration::from_secs(30));
    assert_eq!(m.min_up_interval, Duration::ZERO);
    assert_eq!((m.write_probe_table.as_ref(), m.tls.as_ref()), (None, None));
    assert!(m.watch_connection);
    assert_eq!(
        MysqlConfig::new(m.endpoint.clone(), m.user.clone()),
        m.clone()
    );

    let text = GOOD
        .replace(
            "[service.mysql]",
            "disable_file = \"/etc/primaryd/main.disabled\"\nmanage_addresses = true\n\
             [service.mysql]",
        )
        .replace(
            "user = \"primaryd\"",
            "user = \"primaryd\"\nmin_up_interval_ms = 5000\n\
             write_probe_table = \"primaryd.heartbeat\"\nwatch_connection = false",
        );
    let s = parse(&text).unwrap().services.remove(0);
    assert_eq!(
        s.disable_file,
        Some(PathBuf::from("/etc/primaryd/main.disabled"))
    );
    assert!(s.manage_addresses);
    assert_eq!(s.mysql.min_up_interval, Duration::from_secs(5));
    assert_eq!(
        s.mysql.write_probe_table.as_ref().map(|t| t.to_string()),
        Some("primaryd.heartbeat".to_string())
    );
    assert!(!s.mysql.watch_connection);
}

#[test]
fn replica_role_and_its_keys() {
    let replica = GOOD.replace(
        "prefixes = [\"192.0.2.10/32\"]",
        "prefixes = [\"192.0.2.10/32\"]\nrole = \"replica\"",
    );
    let s = parse(&replica).unwrap().services.remove(0);
    assert_eq!(s.role, Role::Replica);
    let lag = replica.replace("user = \"primaryd\"", "user = \"primaryd\"\nmax_lag_s = 5");
    assert_eq!(
        parse(&lag).unwrap().services[0].mysql.max_lag,
        Duration::from_secs(5)
    );
    // Keys that make no sense for the role are refused, naming the role.
    let p = problems(&GOOD.replace("user = \"primaryd\"", "user = \"primaryd\"\nmax_lag_s = 5"));
    assert_eq!(
        p,
        ["service[0].mysql.max_lag_s: only valid with role = \"replica\""]
    );
    let p = problems(&replica.replace(
        "user = \"primaryd\"",
        "user = \"primaryd\"\nwrite_probe_table = \"primaryd.heartbeat\"\nmax_lag_s = -1",
    ));
    assert_eq!(
        p,
        [
            "service[0].mysql.max_lag_s: -1 is invalid: must be 0..=86400 seconds",
            "service[0].mysql.write_probe_table: only valid with role = \"primary\" \
             (a replica is read-only)"
        ]
    );
    let p = problems(&GOOD.replace(
        "prefixes = [\"192.0.2.10/32\"]",
        "prefixes = [\"192.0.2.10/32\"]\nrole = \"reader\"",
    ));
    assert_eq!(
        p,
        ["service[0].role: \"reader\" is not a role (\"primary\" or \"replica\")"]
    );
}

#[test]
fn bad_health_keys_name_their_key() {
    let text = GOOD
        .replace("name = \"main\"", "name = \"a/b\"")
        .replace(
            "[service.mysql]",
            "disable_file = \"relative\"\n[service.mysql]",
        )
        .replace(
            "user = \"primaryd\"",
            "user = \"primaryd\"\nmin_up_interval_ms = -5\n\
             write_probe_table = \"heartbeat\"\ntls = true\ntls_ca_file = \"ca.pem\"",
        );
    let keys: Vec<String> = problems(&text)
        .iter()
        .map(|p| p.split(": ").next().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "service[0].name",
            "service[0].disable_file",
            "service[0].mysql.min_up_interval_ms",
            "service[0].mysql.write_probe_table",
            "service[0].mysql.tls",
            "service[0].mysql.tls_ca_file",
        ]
    );
    let p = problems(&GOOD.replace(
        "user = \"primaryd\"",
        "user = \"primaryd\"\ntls_ca_file = \"/ca.pem\"",
    ));
    assert_eq!(
        p,
        ["service[0].mysql.tls_ca_file: only valid with tls = true"]
    );
    for bad in ["x.y.z", "db.", ".t", "db.t-1", "db.`t`"] {
        let t = GOOD.replace(
            "user = \"primaryd\"",
            &format!("user = \"primaryd\"\nwrite_probe_table = {bad:?}"),
        );
        assert!(problems(&t)[0].contains("is not DATABASE.TABLE"), "{bad}");
    }
}

#[test]
fn term_table_for_primaries_only() {
    let with = |text: &str, t: &str| {
        text.replace(
            "user = \"primaryd\"",
            &format!("user = \"primaryd\"\nterm_table = {t:?}"),
        )
    };
    let s = parse(&with(GOOD, "primaryd.term"))
        .unwrap()
        .services
        .remove(0);
    assert_eq!(
        s.mysql.term_table.map(|t| t.to_string()).as_deref(),
        Some("primaryd.term")
    );
    assert!(problems(&with(GOOD, "term"))[0]
        .starts_with("service[0].mysql.term_table: \"term\" is not DATABASE.TABLE"));
    let replica = GOOD.replace(
        "prefixes = [\"192.0.2.10/32\"]",
        "prefixes = [\"192.0.2.10/32\"]\nrole = \"replica\"",
    );
    assert_eq!(
        problems(&with(&replica, "primaryd.term")),
        [
            "service[0].mysql.term_table: only valid with role = \"primary\" \
          (a replica is read-only)"
        ]
    );
}

#[test]
fn tls_over_tcp() {
    let text = GOOD.replace(
        "socket = \"/run/mysqld/mysqld.sock\"",
        "host = \"db1.example\"\ntls = true\ntls_ca_file = \"/etc/primaryd/ca.pem\"\n\
         tls_skip_hostname_check = true",
    );
    let tls = parse(&text).unwrap().services[0].mysql.tls.clone();
    assert_eq!(
        tls,
        Some(TlsConfig {
            ca_file: Some(PathBuf::from("/etc/primaryd/ca.pem")),
            skip_hostname_check: true
        })
    );
}

#[test]
fn load_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, GOOD.replace("hold_time = 9", "hold_time = 1")).unwrap();
    let msg = load(&f).unwrap_err().to_string();
    assert_eq!(
        msg,
        format!(
            "{}:5:13: bgp.hold_time: 1 is invalid: must be 0 or 3..=65535 seconds",
            f.display()
        )
    );
}
