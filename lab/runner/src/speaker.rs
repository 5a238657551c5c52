//! What announces the service on the lab's DB hosts: primaryd with the lab's own
//! `primaryd.toml` or a copy of it with another check interval or more services, or, for the
//! benchmark's side-by-side runs, ExaBGP with `exabgp-healthcheck` (Debian's `exabgp` package)
//! checking the same MySQL condition with a `mariadb -e` command over the same BGP session.
//!
//! A variant is applied to the loaded topology in memory before `up`: the generated files go to
//! `STATE_ROOT/ID-speaker/NODE/` and are bound over (or beside) the node files; the topology file
//! itself, which containerlab reads, is not touched. `down` removes that folder.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::topo::{Bind, Node, Role, Topology};

/// Where the DB hosts' primaryd config is bound.
const PRIMARYD_TOML: &str = "/etc/primaryd/primaryd.toml";

/// exabgp-healthcheck's check: the condition primaryd checks on MariaDB (docs/health.md), as
/// one shell command: `read_only = 0` and no replication channel whose IO or SQL thread is
/// anything but `No`. Exit 0 when healthy. One new `mariadb` client (a new connection) per
/// check, as the check user, with the password from a client option file.
pub const EXABGP_CHECK: &str = r#"mariadb --defaults-extra-file=/etc/exabgp/check.cnf -B -e 'SELECT @@global.read_only AS read_only; SHOW ALL SLAVES STATUS' | awk -F'\t' '$1 == "read_only" { getline; ro = $1; next } $1 == "Connection_name" { for (i = 1; i <= NF; i++) col[$i] = i; next } $col["Slave_IO_Running"] != "No" || $col["Slave_SQL_Running"] != "No" { running = 1 } END { exit !(ro == "0" && !running) }'"#;

/// The packaged programs the ExaBGP variant needs.
const EXABGP_BINARIES: &[&str] = &["/usr/sbin/exabgp", "/usr/bin/exabgp-healthcheck"];

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum SpeakerKind {
    /// primaryd with the lab's config (checks every 100 ms, 500 ms timeout, rise 1, fall 1).
    Primaryd,
    /// ExaBGP + exabgp-healthcheck at its fastest: interval 1 s, fast-interval 1 s, rise 1,
    /// fall 1, timeout 1 s (it takes whole seconds), --withdraw-on-down.
    ExabgpFast,
    /// ExaBGP + exabgp-healthcheck with its defaults (interval 5 s, fast-interval 1 s, rise 3,
    /// fall 3, timeout 5 s), --withdraw-on-down.
    ExabgpDefault,
    /// primaryd with the lab's config but BFD off: a dead host is found by the BGP hold timer
    /// alone (the benchmark's "host loss" comparison).
    PrimarydNoBfd,
}

impl SpeakerKind {
    pub fn name(self) -> &'static str {
        match self {
            SpeakerKind::Primaryd => "primaryd",
            SpeakerKind::ExabgpDefault => "exabgp-default",
            SpeakerKind::ExabgpFast => "exabgp-fast",
            SpeakerKind::PrimarydNoBfd => "primaryd-no-bfd",
        }
    }

    pub fn is_exabgp(self) -> bool {
        matches!(self, SpeakerKind::ExabgpFast | SpeakerKind::ExabgpDefault)
    }
}

/// A speaker and how it is set up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Speaker {
    pub kind: SpeakerKind,
    /// Check interval: primaryd's `interval_ms`; exabgp-fast's `--interval` and
    /// `--fast-interval`. None: the lab's config (primaryd) or the preset (ExaBGP).
    pub interval_ms: Option<u64>,
    /// Check timeout: primaryd's `timeout_ms`; exabgp-fast's `--timeout`, rounded up to whole
    /// seconds (its option is an integer).
    pub timeout_ms: Option<u64>,
    /// Services on the first DB host (primaryd only): `main` plus copies on the next
    /// addresses of 192.0.2.0/24, all checking the same MariaDB server.
    pub services: usize,
    /// ExaBGP: run it through lab/exabgp/stamped and log at debug level with the BGP messages,
    /// so the timeline has its events with sub-millisecond times. Off for the cost runs.
    pub instrumented: bool,
    /// primaryd's RUST_LOG instead of the topology's (`info`, its default, for the cost runs).
    pub rust_log: Option<String>,
    /// primaryd's `--log-format` (`text`, its default, or `json`).
    #[serde(default)]
    pub log_format: Option<String>,
}

impl Speaker {
    pub fn new(kind: SpeakerKind) -> Speaker {
        Speaker {
            kind,
            interval_ms: None,
            timeout_ms: None,
            services: 1,
            instrumented: true,
            rust_log: None,
            log_format: None,
        }
    }
}

/// The check settings in effect, as applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckSettings {
    pub speaker: SpeakerKind,
    pub interval_ms: f64,
    /// ExaBGP: the interval while rising or falling.
    pub fast_interval_ms: Option<f64>,
    pub timeout_ms: f64,
    pub rise: u32,
    pub fall: u32,
    pub services: usize,
    /// One line for reports.
    pub description: String,
}

/// `{state_root}/{id}-speaker`: the generated node files of a lab.
pub fn files_dir(lab_dir: &Path) -> PathBuf {
    let name = lab_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    lab_dir.with_file_name(format!("{name}-speaker"))
}

fn int(v: Option<&toml::Value>) -> Option<i64> {
    v.and_then(toml::Value::as_integer)
}

fn seconds(ms: u64) -> String {
    let s = format!("{:.3}", ms as f64 / 1000.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The prefixes of service `main` as the DB hosts' speakers announce them, read from the first
/// DB node's bound files: primaryd's first `[[service]]`, or exabgp-healthcheck's `ip =` lines
/// (the ExaBGP variant announces the IPv4 /32 only: exabgp-healthcheck has one next hop for all
/// its prefixes, and an IPv6 route over the IPv4 session needs an IPv6 one).
pub fn announced_prefixes(topo: &Topology) -> Result<Vec<String>> {
    let node = topo
        .with_role(Role::Db)
        .next()
        .context("the topology has no DB node")?;
    let bound = |target: &str| {
        node.binds
            .iter()
            .find(|b| b.target == Path::new(target))
            .map(|b| b.source.clone())
            .with_context(|| format!("{} has no bind at {target}", node.name))
    };
    let prefixes: Vec<String> = if node.env.get("LAB_SPEAKER").map(String::as_str) == Some("exabgp")
    {
        let path = bound("/etc/exabgp/healthcheck.conf")?;
        fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .lines()
            .filter_map(|l| l.strip_prefix("ip = "))
            .map(|p| p.trim().to_string())
            .collect()
    } else {
        let path = bound(PRIMARYD_TOML)?;
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let cfg: toml::Table =
            toml::from_str(&text).with_context(|| format!("{}: not TOML", path.display()))?;
        cfg.get("service")
            .and_then(|s| s.get(0))
            .and_then(|s| s.get("prefixes"))
            .and_then(toml::Value::as_array)
            .with_context(|| format!("{}: no service[0].prefixes", path.display()))?
            .iter()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect()
    };
    if prefixes.is_empty() {
        bail!("{}: its speaker announces no prefix", node.name);
    }
    Ok(prefixes)
}

/// Rewrites the DB nodes of `topo` for `sp`, writing the generated files below `files`.
pub fn apply(topo: &mut Topology, files: &Path, sp: &Speaker) -> Result<CheckSettings> {
    validate(sp)?;
    let lab_src = topo
        .file
        .parent()
        .context("the topology file has no folder")?
        .to_path_buf();
    if files.exists() {
        fs::remove_dir_all(files)?;
    }
    let dbs: Vec<String> = topo.with_role(Role::Db).map(|n| n.name.clone()).collect();
    let mut settings = None;
    for (i, name) in dbs.iter().enumerate() {
        let node = topo
            .nodes
            .iter_mut()
            .find(|n| &n.name == name)
            .expect("a DB node");
        let bi = node
            .binds
            .iter()
            .position(|b| b.target == Path::new(PRIMARYD_TOML))
            .with_context(|| format!("{name} has no bind at {PRIMARYD_TOML}"))?;
        let source = node.binds[bi].source.clone();
        let text = fs::read_to_string(&source)
            .with_context(|| format!("cannot read {}", source.display()))?;
        let mut cfg: toml::Table =
            toml::from_str(&text).with_context(|| format!("{}: not TOML", source.display()))?;
        let dir = files.join(name);
        fs::create_dir_all(&dir)?;
        let s = if sp.kind.is_exabgp() {
            let (conf, hc, s) =
                exabgp_files(&cfg, sp).with_context(|| format!("{name}: {}", source.display()))?;
            bind_exabgp(node, &dir, &lab_src, (conf, hc), sp)?;
            s
        } else {
            let mut s = primaryd_node(node, bi, &mut cfg, &dir, sp, i == 0)?;
            s.description.push_str(&crate::hostloss::bfd_note(&cfg));
            s
        };
        settings.get_or_insert(s);
    }
    settings.context("the topology has no DB node")
}

/// The variant's options that cannot go together, and ExaBGP installed where needed.
fn validate(sp: &Speaker) -> Result<()> {
    if sp.services == 0 || sp.services > 200 {
        bail!("--services: 1..=200");
    }
    if sp.services > 1 && sp.kind.is_exabgp() {
        bail!("more than one service is set up for primaryd only");
    }
    if sp.kind == SpeakerKind::ExabgpDefault
        && (sp.interval_ms.is_some() || sp.timeout_ms.is_some())
    {
        bail!("exabgp-default is exabgp-healthcheck's defaults; set intervals with exabgp-fast");
    }
    if sp.kind.is_exabgp() {
        let missing: Vec<&str> = EXABGP_BINARIES
            .iter()
            .copied()
            .filter(|p| !Path::new(p).exists())
            .collect();
        if !missing.is_empty() {
            bail!(
                "missing {}: install ExaBGP (apt-get install exabgp)",
                missing.join(", ")
            );
        }
    }
    Ok(())
}

/// A DB node running primaryd: its config with the variant's check settings (and, on the
/// first node, the extra services), written to `dir` and bound over the node's.
fn primaryd_node(
    node: &mut Node,
    bi: usize,
    cfg: &mut toml::Table,
    dir: &Path,
    sp: &Speaker,
    first: bool,
) -> Result<CheckSettings> {
    if sp.kind == SpeakerKind::PrimarydNoBfd {
        crate::hostloss::without_bfd(cfg);
    }
    let services = cfg
        .get_mut("service")
        .and_then(toml::Value::as_array_mut)
        .context("no [[service]]")?;
    for s in services.iter_mut() {
        let m = s
            .get_mut("mysql")
            .and_then(toml::Value::as_table_mut)
            .context("a [[service]] without [service.mysql]")?;
        if let Some(v) = sp.interval_ms {
            m.insert("interval_ms".into(), toml::Value::Integer(v as i64));
        }
        if let Some(v) = sp.timeout_ms {
            m.insert("timeout_ms".into(), toml::Value::Integer(v as i64));
        }
    }
    if first && sp.services > 1 {
        add_services(node, services, sp.services)?;
    }
    let path = dir.join("primaryd.toml");
    fs::write(
        &path,
        format!(
            "# generated by primaryd-lab from {}\n{}",
            node.binds[bi].source.display(),
            toml::to_string(&cfg)?
        ),
    )?;
    node.binds[bi].source = path;
    if let Some(f) = &sp.log_format {
        // lab-db-start passes it to primaryd as --log-format.
        node.env.insert("LAB_PRIMARYD_LOG_FORMAT".into(), f.clone());
    }
    if let Some(l) = &sp.rust_log {
        node.env.insert("RUST_LOG".into(), l.clone());
    }
    Ok(primaryd_settings(&cfg["service"][0]["mysql"], sp))
}

/// Services s02.. beside the first, each with its own address on the node's loopback.
fn add_services(node: &mut Node, services: &mut Vec<toml::Value>, count: usize) -> Result<()> {
    let first = services[0].clone();
    for k in 1..count {
        let mut s = first.clone();
        let t = s.as_table_mut().context("[[service]] is not a table")?;
        t.insert("name".into(), format!("s{:02}", k + 1).into());
        let addr = format!("192.0.2.{}", 10 + k);
        t.insert(
            "prefixes".into(),
            toml::Value::Array(vec![format!("{addr}/32").into()]),
        );
        services.push(s);
        node.exec.push(format!("ip addr add {addr}/32 dev lo"));
    }
    Ok(())
}

/// primaryd's check settings, from the first service's `[service.mysql]`.
fn primaryd_settings(m: &toml::Value, sp: &Speaker) -> CheckSettings {
    let (interval, timeout) = (
        int(m.get("interval_ms")).unwrap_or(200),
        int(m.get("timeout_ms")).unwrap_or(1000),
    );
    let (rise, fall) = (
        int(m.get("rise")).unwrap_or(2),
        int(m.get("fall")).unwrap_or(1),
    );
    CheckSettings {
        speaker: sp.kind,
        interval_ms: interval as f64,
        fast_interval_ms: None,
        timeout_ms: timeout as f64,
        rise: rise as u32,
        fall: fall as u32,
        services: sp.services,
        description: format!(
            "primaryd: interval_ms {interval}, timeout_ms {timeout}, rise {rise}, \
             fall {fall}, watch connection {}{}",
            if m.get("watch_connection").and_then(toml::Value::as_bool) == Some(false) {
                "off"
            } else {
                "on"
            },
            if sp.services > 1 {
                format!(", {} services on one server", sp.services)
            } else {
                String::new()
            }
        ),
    }
}

/// A DB node running ExaBGP: the generated exabgp.conf and healthcheck.conf, written to
/// `dir`, and the variant's start script bound into the node.
fn bind_exabgp(
    node: &mut Node,
    dir: &Path,
    lab_src: &Path,
    (conf, hc): (String, String),
    sp: &Speaker,
) -> Result<()> {
    let conf_path = dir.join("exabgp.conf");
    let hc_path = dir.join("healthcheck.conf");
    fs::write(&conf_path, conf)?;
    fs::write(&hc_path, hc)?;
    let mut add = |source: PathBuf, target: &str| {
        node.binds.push(Bind {
            source,
            target: target.into(),
            read_only: true,
        })
    };
    add(conf_path, "/etc/exabgp/exabgp.conf");
    add(hc_path, "/etc/exabgp/healthcheck.conf");
    add(
        lab_src.join("exabgp/start.sh"),
        "/usr/local/sbin/lab-exabgp-start",
    );
    node.env.insert("LAB_SPEAKER".into(), "exabgp".into());
    if sp.instrumented {
        let stamped = lab_src.join("exabgp/stamped");
        add(stamped.clone(), "/usr/local/sbin/exabgp");
        add(stamped, "/usr/local/sbin/exabgp-healthcheck");
        // The API commands, and each UPDATE sent (">> 1 UPDATE(s)"), are debug lines of the
        // "process" and "wire" categories.
        node.env.insert("exabgp_log_level".into(), "DEBUG".into());
        node.env.insert("exabgp_log_packets".into(), "true".into());
    }
    Ok(())
}

/// exabgp.conf (the same BGP session as the node's primaryd.toml, one process running
/// exabgp-healthcheck), healthcheck.conf, and the settings.
fn exabgp_files(cfg: &toml::Table, sp: &Speaker) -> Result<(String, String, CheckSettings)> {
    let prefix = cfg
        .get("service")
        .and_then(|s| s.get(0))
        .and_then(|s| s.get("prefixes"))
        .and_then(|p| p.get(0))
        .and_then(toml::Value::as_str)
        .context("no service[0].prefixes[0]")?;
    let service = cfg["service"][0]
        .get("name")
        .and_then(toml::Value::as_str)
        .unwrap_or("main");
    let conf = exabgp_conf(cfg, sp, prefix)?;
    let mut hc = format!(
        "# exabgp-healthcheck's options (its --config file), generated by primaryd-lab.\n\
         no-syslog\nname = {service}\nip = {prefix}\nwithdraw-on-down\nno-ip-setup\n"
    );
    let settings = exabgp_settings(sp, &mut hc);
    hc.push_str(&format!("command = {EXABGP_CHECK}\n"));
    Ok((conf, hc, settings))
}

/// exabgp.conf: the healthcheck process, and a neighbor per `[[bgp.peer]]`.
fn exabgp_conf(cfg: &toml::Table, sp: &Speaker, prefix: &str) -> Result<String> {
    let bgp = cfg
        .get("bgp")
        .and_then(toml::Value::as_table)
        .context("no [bgp]")?;
    let asn = int(bgp.get("asn")).context("no bgp.asn")?;
    let router_id = bgp
        .get("router_id")
        .and_then(toml::Value::as_str)
        .context("no bgp.router_id")?;
    let hold = int(bgp.get("hold_time")).unwrap_or(9);
    let healthcheck = if sp.instrumented {
        "/usr/local/sbin/exabgp-healthcheck"
    } else {
        "/usr/bin/exabgp-healthcheck"
    };
    let mut conf = format!(
        "# ExaBGP on a lab DB host, generated by primaryd-lab from its primaryd.toml: the same\n\
         # BGP session, and exabgp-healthcheck announcing {prefix} while the check passes.\n\
         process healthcheck {{\n    run {healthcheck} --config /etc/exabgp/healthcheck.conf;\n    \
         encoder text;\n}}\n"
    );
    for p in cfg
        .get("bgp")
        .and_then(|b| b.get("peer"))
        .and_then(toml::Value::as_array)
        .context("no [[bgp.peer]]")?
    {
        let s = |k: &str| p.get(k).and_then(toml::Value::as_str);
        let address = s("address").context("a peer without address")?;
        let local = s("local_address").context("ExaBGP needs the peer's local_address")?;
        let remote = int(p.get("remote_asn")).context("a peer without remote_asn")?;
        let hold = int(p.get("hold_time")).unwrap_or(hold);
        conf.push_str(&format!(
            "neighbor {address} {{\n    router-id {router_id};\n    local-address {local};\n    \
             local-as {asn};\n    peer-as {remote};\n    hold-time {hold};\n    api {{\n        \
             processes [ healthcheck ];\n    }}\n}}\n"
        ));
    }
    Ok(conf)
}

/// exabgp-healthcheck's check settings for the variant (its defaults, or the fastest), with
/// the fast variant's options added to `hc`.
fn exabgp_settings(sp: &Speaker, hc: &mut String) -> CheckSettings {
    if sp.kind == SpeakerKind::ExabgpDefault {
        return CheckSettings {
            speaker: sp.kind,
            interval_ms: 5000.0,
            fast_interval_ms: Some(1000.0),
            timeout_ms: 5000.0,
            rise: 3,
            fall: 3,
            services: 1,
            description: "ExaBGP + exabgp-healthcheck, its defaults: interval 5 s, fast-interval \
                          1 s, rise 3, fall 3, timeout 5 s; --withdraw-on-down"
                .into(),
        };
    }
    let interval = sp.interval_ms.unwrap_or(1000);
    let timeout_s = sp.timeout_ms.unwrap_or(1000).div_ceil(1000).max(1);
    hc.push_str(&format!(
        "interval = {i}\nfast-interval = {i}\nrise = 1\nfall = 1\ntimeout = {timeout_s}\n",
        i = seconds(interval)
    ));
    CheckSettings {
        speaker: sp.kind,
        interval_ms: interval as f64,
        fast_interval_ms: Some(interval as f64),
        timeout_ms: (timeout_s * 1000) as f64,
        rise: 1,
        fall: 1,
        services: 1,
        description: format!(
            "ExaBGP + exabgp-healthcheck, fastest: interval {i} s, fast-interval {i} s, \
             rise 1, fall 1, timeout {timeout_s} s; --withdraw-on-down",
            i = seconds(interval)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_config() -> toml::Table {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../db1/primaryd.toml");
        toml::from_str(&fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn announced_prefixes_follow_the_speaker() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../primaryd.clab.yml");
        let mut topo = crate::topo::load(&file).unwrap();
        assert_eq!(
            announced_prefixes(&topo).unwrap(),
            ["192.0.2.10/32", "2001:db8::10/128"]
        );
        let dir = std::env::temp_dir().join(format!("plab-speaker-test-{}", std::process::id()));
        apply(&mut topo, &dir, &Speaker::new(SpeakerKind::ExabgpFast)).unwrap();
        let got = announced_prefixes(&topo);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got.unwrap(), ["192.0.2.10/32"]);
    }

    #[test]
    fn exabgp_config_follows_the_primaryd_config() {
        let (conf, hc, s) =
            exabgp_files(&lab_config(), &Speaker::new(SpeakerKind::ExabgpFast)).expect("files");
        for want in [
            "neighbor 198.18.1.0 {",
            "local-address 198.18.1.1;",
            "local-as 4200000001;",
            "peer-as 65001;",
            "hold-time 3;",
            "router-id 198.19.0.11;",
            "run /usr/local/sbin/exabgp-healthcheck --config /etc/exabgp/healthcheck.conf;",
        ] {
            assert!(conf.contains(want), "{want} missing from\n{conf}");
        }
        for want in [
            "ip = 192.0.2.10/32\n",
            "withdraw-on-down\n",
            "interval = 1\n",
            "fast-interval = 1\n",
            "rise = 1\n",
            "fall = 1\n",
            "timeout = 1\n",
        ] {
            assert!(hc.contains(want), "{want:?} missing from\n{hc}");
        }
        assert_eq!(
            hc.lines().last(),
            Some(format!("command = {EXABGP_CHECK}").as_str())
        );
        assert_eq!((s.rise, s.fall, s.interval_ms), (1, 1, 1000.0));

        let mut fast = Speaker::new(SpeakerKind::ExabgpFast);
        fast.interval_ms = Some(100);
        fast.timeout_ms = Some(500);
        let (_, hc, s) = exabgp_files(&lab_config(), &fast).unwrap();
        assert!(
            hc.contains("interval = 0.1\n") && hc.contains("timeout = 1\n"),
            "{hc}"
        );
        assert_eq!(s.timeout_ms, 1000.0);

        let (_, hc, s) =
            exabgp_files(&lab_config(), &Speaker::new(SpeakerKind::ExabgpDefault)).unwrap();
        assert!(!hc.contains("interval") && !hc.contains("rise"), "{hc}");
        assert_eq!((s.rise, s.fall, s.interval_ms), (3, 3, 5000.0));
    }
}
