//! The routers' BGP tables for the service prefixes: every path a router holds (not only the
//! best one the kernel gets), who announced it, and with which primaryd marks (docs/safety.md:
//! `ASN:1:TERM` a primary and its term, `ASN:2:0` a fallback, `ASN:3:ROUTER_ID` the announcing
//! host). The split-brain drills check that no router keeps a path to a deposed primary.
//!
//! Read over the routers' own control sockets, the ones `vtysh` and `birdc` use, so a reading
//! costs a fraction of a millisecond and the tables can be polled every few milliseconds: FRR's
//! bgpd vty socket (`show bgp ipv4 unicast 192.0.2.10/32 json`, the command `vtysh -c` sends)
//! and BIRD's control socket (`show route 192.0.2.10/32 all`). The sockets live in each node's
//! private /run, reached through `/proc/PID/root` of the router's daemon.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::lab::Lab;
use crate::topo::Role;
use crate::util::{self, now_ms};

/// primaryd's default `[bgp] community_asn`: the Global Administrator of its marks.
pub const DEFAULT_COMMUNITY_ASN: u32 = 4_200_000_000;
/// Where the DB hosts' primaryd config is bound.
const PRIMARYD_TOML: &str = "/etc/primaryd/primaryd.toml";
/// Time between two readings of one router's table.
pub const POLL: Duration = Duration::from_millis(5);
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// What a path's marks say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Mark {
    /// A primary's announcement (`ASN:1:TERM`; term 0: its host has no term table).
    Primary { term: u32 },
    /// A fallback announcement (`ASN:2:0`): never a primary.
    Fallback,
    /// No primaryd marks (another speaker, or a router that strips large communities).
    Unmarked,
}

/// One path of a router's BGP table, as the router shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPath {
    pub prefix: String,
    /// The neighbour it came from (FRR: its hostname or address; BIRD: the protocol name).
    pub from: String,
    pub as_path: Vec<u32>,
    pub large: Vec<(u32, u32, u32)>,
    pub best: bool,
}

impl RawPath {
    pub fn mark(&self, community_asn: u32) -> Mark {
        let ours = |l1: u32| {
            self.large
                .iter()
                .find(|c| c.0 == community_asn && c.1 == l1)
        };
        if ours(2).is_some() {
            Mark::Fallback
        } else if let Some(c) = ours(1) {
            Mark::Primary { term: c.2 }
        } else {
            Mark::Unmarked
        }
    }

    pub fn router_id(&self, community_asn: u32) -> Option<Ipv4Addr> {
        self.large
            .iter()
            .find(|c| c.0 == community_asn && c.1 == 3)
            .map(|c| Ipv4Addr::from(c.2))
    }
}

/// FRR's `show bgp <afi> unicast <prefix> json` (one or more documents, one per command).
pub fn parse_frr(text: &str) -> Result<Vec<RawPath>> {
    let mut out = Vec::new();
    for doc in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        let doc = doc.context("FRR's JSON")?;
        let Some(prefix) = doc["prefix"].as_str() else {
            // `{}`: the prefix is not in the table.
            continue;
        };
        for p in doc["paths"].as_array().into_iter().flatten() {
            // A path bgpd has flagged removed is awaiting deletion: it is no longer used.
            if p["removed"] == true {
                continue;
            }
            let as_path = p["aspath"]["string"]
                .as_str()
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect();
            let large = p["largeCommunity"]["list"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str().and_then(parse_large))
                .collect();
            let from = p["peer"]["hostname"]
                .as_str()
                .or(p["peer"]["peerId"].as_str())
                .unwrap_or("?")
                .to_string();
            out.push(RawPath {
                prefix: prefix.to_string(),
                from,
                as_path,
                large,
                best: p["bestpath"]["overall"] == true,
            });
        }
    }
    Ok(out)
}

/// `A:B:C`.
fn parse_large(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split(':').map(|x| x.trim().parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// BIRD's `show route <prefix> all`, as birdc prints it (the control socket's reply codes
/// stripped): a route line per path (the first with the prefix, the next indented), then its
/// attribute lines.
pub fn parse_bird(text: &str) -> Vec<RawPath> {
    let mut out: Vec<RawPath> = Vec::new();
    let mut prefix = String::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("BGP.as_path:") {
            if let Some(p) = out.last_mut() {
                p.as_path = rest
                    .split_whitespace()
                    .filter_map(|a| a.parse().ok())
                    .collect();
            }
        } else if let Some(rest) = t.strip_prefix("BGP.large_community:") {
            if let Some(p) = out.last_mut() {
                p.large = rest
                    .split(')')
                    .filter_map(|c| {
                        let c = c.trim().trim_start_matches('(').replace(',', ":");
                        parse_large(&c.replace(' ', ""))
                    })
                    .collect();
            }
        } else if let Some(i) = t.find(" [").filter(|_| !line.starts_with('\t')) {
            // `192.0.2.10/32   unicast [db2 11:57:15.204] * (100) [AS4200000002i]` or, for
            // the next path of the same prefix, `unicast [spine1 ...] (100) [...]`.
            let head: Vec<&str> = t[..i].split_whitespace().collect();
            if head.len() == 2 {
                prefix = head[0].to_string();
            }
            let from = t[i + 2..]
                .split_whitespace()
                .next()
                .unwrap_or("?")
                .to_string();
            let after = t[i..].split_once(']').map(|(_, r)| r).unwrap_or("");
            out.push(RawPath {
                prefix: prefix.clone(),
                from,
                as_path: Vec::new(),
                large: Vec::new(),
                best: after.trim_start().starts_with('*'),
            });
        }
    }
    out
}

/// Which DB host a path leads to: by its router-id mark, else by the origin AS.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    pub community_asn: u32,
    by_router_id: BTreeMap<Ipv4Addr, String>,
    by_asn: BTreeMap<u32, String>,
}

impl Hosts {
    /// From each DB node's bound primaryd.toml (`[bgp] asn`, `router_id`, `community_asn`).
    pub fn of(lab: &Lab) -> Hosts {
        let mut h = Hosts {
            community_asn: DEFAULT_COMMUNITY_ASN,
            ..Default::default()
        };
        for n in lab.topo.with_role(Role::Db) {
            let Some(cfg) = n
                .binds
                .iter()
                .find(|b| b.target == Path::new(PRIMARYD_TOML))
                .and_then(|b| std::fs::read_to_string(&b.source).ok())
                .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
            else {
                continue;
            };
            let bgp = cfg.get("bgp");
            let int = |k: &str| bgp.and_then(|b| b.get(k)).and_then(toml::Value::as_integer);
            if let Some(a) = int("asn").and_then(|a| u32::try_from(a).ok()) {
                h.by_asn.insert(a, n.name.clone());
            }
            if let Some(c) = int("community_asn").and_then(|a| u32::try_from(a).ok()) {
                h.community_asn = c;
            }
            if let Some(r) = bgp
                .and_then(|b| b.get("router_id"))
                .and_then(toml::Value::as_str)
                .and_then(|r| r.parse().ok())
            {
                h.by_router_id.insert(r, n.name.clone());
            }
        }
        h
    }

    pub fn announcer(&self, p: &RawPath) -> Option<String> {
        p.router_id(self.community_asn)
            .and_then(|r| self.by_router_id.get(&r))
            .or_else(|| p.as_path.last().and_then(|a| self.by_asn.get(a)))
            .cloned()
    }

    pub(crate) fn path(&self, p: &RawPath) -> BgpPath {
        BgpPath {
            prefix: p.prefix.clone(),
            announcer: self.announcer(p),
            mark: p.mark(self.community_asn),
            from: p.from.clone(),
            best: p.best,
        }
    }
}

/// A path as the drills read it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct BgpPath {
    pub prefix: String,
    /// The DB host it leads to, when known.
    pub announcer: Option<String>,
    pub mark: Mark,
    pub from: String,
    pub best: bool,
}

impl BgpPath {
    /// A path that makes `host` a destination of the service: anything but a fallback.
    pub fn is_primary_path_to(&self, host: &str) -> bool {
        self.announcer.as_deref() == Some(host) && self.mark != Mark::Fallback
    }

    pub fn describe(&self) -> String {
        let mark = match self.mark {
            Mark::Primary { term } => format!("primary, term {term}"),
            Mark::Fallback => "fallback".into(),
            Mark::Unmarked => "unmarked".into(),
        };
        format!(
            "{} -> {} ({mark}, from {}{})",
            self.prefix,
            self.announcer.as_deref().unwrap_or("?"),
            self.from,
            if self.best { ", best" } else { "" }
        )
    }
}

/// A connection to one router's control socket.
enum Conn {
    Frr(UnixStream),
    Bird(BufReader<UnixStream>),
}

/// Reads one router's paths for the given prefixes.
pub struct Reader {
    router: String,
    socket: PathBuf,
    frr: bool,
    conn: Option<Conn>,
}

impl Reader {
    pub fn new(lab: &Lab, router: &str) -> Result<Reader> {
        let role = lab.topo.node(router).map(|n| n.role);
        let (daemon, path, frr) = match role {
            Some(Role::Frr) => ("bgpd", "run/frr/bgpd.vty", true),
            Some(Role::Bird) => ("bird", "run/bird/bird.ctl", false),
            _ => bail!("{router} is not a router"),
        };
        let pid = util::netns_pids(&lab.netns(router))
            .into_iter()
            .find(|p| util::comm(*p) == daemon)
            .with_context(|| format!("no {daemon} in {router}"))?;
        Ok(Reader {
            router: router.to_string(),
            socket: PathBuf::from(format!("/proc/{pid}/root/{path}")),
            frr,
            conn: None,
        })
    }

    fn connect(&self) -> Result<Conn> {
        let s = UnixStream::connect(&self.socket)
            .with_context(|| format!("{}: connect {}", self.router, self.socket.display()))?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        if self.frr {
            return Ok(Conn::Frr(s));
        }
        let mut r = BufReader::new(s);
        // The greeting: `0001 BIRD 2.0.12 ready.`
        bird_reply(&mut r)?;
        Ok(Conn::Bird(r))
    }

    /// Every path of `prefixes` in the router's BGP table (a failed reading drops the
    /// connection; the next one reconnects).
    pub fn read(&mut self, prefixes: &[String]) -> Result<Vec<RawPath>> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let r = match self.conn.as_mut().expect("connected") {
            Conn::Frr(s) => read_frr(s, prefixes),
            Conn::Bird(r) => read_bird(r, prefixes),
        };
        if r.is_err() {
            self.conn = None;
        }
        r.with_context(|| format!("{}: reading the BGP table", self.router))
    }
}

/// bgpd's vty protocol (as vtysh speaks it): the command and a NUL; the answer, then three NULs
/// and the command's status.
fn read_frr(s: &mut UnixStream, prefixes: &[String]) -> Result<Vec<RawPath>> {
    let mut text = String::new();
    for p in prefixes {
        let afi = if p.contains(':') { "ipv6" } else { "ipv4" };
        s.write_all(format!("show bgp {afi} unicast {p} json\0").as_bytes())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16384];
        while !(buf.len() >= 4 && buf[buf.len() - 4..buf.len() - 1] == [0, 0, 0]) {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                bail!("bgpd closed the vty");
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let status = buf[buf.len() - 1];
        let body = String::from_utf8_lossy(&buf[..buf.len() - 4]);
        // A prefix whose last path is being removed answers `{}` with CMD_WARNING (1): an
        // empty table all the same. Any other status, or text that is not JSON, is an error.
        if status != 0 && !(status == 1 && body.trim_start().starts_with('{')) {
            bail!("bgpd answered status {status}: {}", body.trim());
        }
        text.push_str(&body);
    }
    parse_frr(&text)
}

/// One reply of BIRD's control socket, with the codes stripped; Err for an error code other
/// than "network not found".
fn bird_reply(r: &mut BufReader<UnixStream>) -> Result<String> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            bail!("BIRD closed the control socket");
        }
        let b = line.as_bytes();
        let coded = b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit);
        if !coded {
            // A continuation line: one space, then the text.
            text.push_str(line.strip_prefix(' ').unwrap_or(&line));
            continue;
        }
        let code: u32 = line[..4].parse().unwrap_or(9999);
        text.push_str(&line[5..]);
        if b[4] == b' ' {
            // 8001: "Network not found", an empty table for that prefix.
            if code >= 8000 && code != 8001 {
                bail!("BIRD: {}", line.trim());
            }
            return Ok(text);
        }
    }
}

fn read_bird(r: &mut BufReader<UnixStream>, prefixes: &[String]) -> Result<Vec<RawPath>> {
    let mut out = Vec::new();
    for p in prefixes {
        r.get_mut()
            .write_all(format!("show route {p} all\n").as_bytes())?;
        out.extend(parse_bird(&bird_reply(r)?));
    }
    Ok(out)
}

/// One router's table at one instant: recorded when it differs from the previous reading.
#[derive(Debug, Clone, Serialize)]
pub struct Reading {
    /// Unix ms when the reading was asked for (the answer comes within a millisecond).
    pub t_ms: f64,
    pub router: String,
    pub paths: Vec<BgpPath>,
    /// A reading that failed (the state is then unknown until the next one).
    pub error: Option<String>,
}

/// Polls every router's table every POLL and keeps each change.
pub struct Watch {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    log: Arc<Mutex<Vec<Reading>>>,
    polls: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Watch {
    pub fn start(
        lab: &Lab,
        routers: &[String],
        prefixes: &[String],
        hosts: &Hosts,
    ) -> Result<Watch> {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let polls = Arc::new(Mutex::new(BTreeMap::new()));
        let mut threads = Vec::new();
        for r in routers {
            let mut reader = Reader::new(lab, r)?;
            // The first reading before the watch starts: a socket that cannot be read fails here.
            reader.read(prefixes)?;
            let (stop2, log2, polls2) = (stop.clone(), log.clone(), polls.clone());
            let (prefixes, hosts, router) = (prefixes.to_vec(), hosts.clone(), r.clone());
            threads.push(std::thread::spawn(move || {
                let mut last: Option<(Vec<BgpPath>, Option<String>)> = None;
                while !stop2.load(Ordering::Relaxed) {
                    let t = now_ms();
                    let (paths, error) = match reader.read(&prefixes) {
                        Ok(raw) => {
                            let mut v: Vec<BgpPath> = raw.iter().map(|p| hosts.path(p)).collect();
                            v.sort();
                            (v, None)
                        }
                        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
                    };
                    *polls2.lock().unwrap().entry(router.clone()).or_default() += 1;
                    let now = (paths, error);
                    if last.as_ref() != Some(&now) {
                        log2.lock().unwrap().push(Reading {
                            t_ms: t,
                            router: router.clone(),
                            paths: now.0.clone(),
                            error: now.1.clone(),
                        });
                        last = Some(now);
                    }
                    std::thread::sleep(POLL);
                }
            }));
        }
        Ok(Watch {
            stop,
            threads,
            log,
            polls,
        })
    }

    pub fn snapshot(&self) -> Vec<Reading> {
        self.log.lock().unwrap().clone()
    }

    /// Each router's latest reading.
    pub fn latest(&self) -> BTreeMap<String, Reading> {
        let mut m = BTreeMap::new();
        for r in self.snapshot() {
            m.insert(r.router.clone(), r);
        }
        m
    }

    /// Readings per router so far.
    pub fn polls(&self) -> BTreeMap<String, usize> {
        self.polls.lock().unwrap().clone()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// How long one router kept a path that makes `host` a destination of the service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kept {
    pub router: String,
    /// When the router's last such path went (the first good reading without one); None if
    /// it never had one while watched.
    pub gone_at: Option<f64>,
    /// It still had one at the last good reading.
    pub still: bool,
    /// The longest time the table was not known after `from`: from a failed reading to the
    /// next good one, plus a poll (0 without failures).
    pub blind_ms: f64,
    /// The first failed reading's error.
    pub error: Option<String>,
}

/// Per router, from `readings` (in time order, each router's changes): when the last path to
/// `host` went, looking at readings from `from` on (and the state just before it). A failed
/// reading says nothing about the table: the state is the good readings', and the gaps the
/// failures leave are measured.
pub fn kept(readings: &[Reading], routers: &[String], host: &str, from: f64) -> Vec<Kept> {
    routers
        .iter()
        .map(|r| {
            let mine: Vec<&Reading> = readings.iter().filter(|x| &x.router == r).collect();
            let has = |x: &Reading| x.paths.iter().any(|p| p.is_primary_path_to(host));
            // The state at `from`: the last good reading before it, then every later one.
            let start = mine
                .iter()
                .rposition(|x| x.t_ms <= from && x.error.is_none())
                .unwrap_or(0);
            let window = &mine[start..];
            let good: Vec<&&Reading> = window.iter().filter(|x| x.error.is_none()).collect();
            let mut gone_at = None;
            let mut had = false;
            for (i, x) in good.iter().enumerate() {
                if has(x) {
                    had = true;
                    gone_at = good.get(i + 1).map(|n| n.t_ms);
                }
            }
            let mut blind_ms: f64 = 0.0;
            let mut error = None;
            for (i, x) in window.iter().enumerate() {
                let Some(e) = &x.error else { continue };
                error.get_or_insert_with(|| e.clone());
                let next = window[i + 1..].iter().find(|n| n.error.is_none());
                let until = next.map_or(f64::INFINITY, |n| n.t_ms);
                blind_ms = blind_ms.max(until - x.t_ms + POLL.as_secs_f64() * 1000.0);
            }
            Kept {
                router: r.clone(),
                gone_at: if had { gone_at } else { None },
                still: good.last().is_some_and(|x| has(x)),
                blind_ms,
                error,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tor1 (FRR 8.4) during a double promotion: db1's own path and db2's through the spine.
    const FRR: &str = r#"{
  "prefix":"192.0.2.10/32",
  "paths":[
    {
      "aspath":{"string":"4200000001","length":1},
      "valid":true,
      "bestpath":{"bestpathFromAs":4200000001,"overall":true},
      "largeCommunity":{"string":"4200000000:1:1 4200000000:3:3323133963",
        "list":["4200000000:1:1","4200000000:3:3323133963"]},
      "nexthops":[{"ip":"198.18.1.1","afi":"ipv4"}],
      "peer":{"peerId":"198.18.1.1","routerId":"198.19.0.11","type":"external"}
    },
    {
      "aspath":{"string":"65100 65002 4200000002","length":3},
      "valid":true,
      "largeCommunity":{"string":"4200000000:1:2 4200000000:3:3323133964",
        "list":["4200000000:1:2","4200000000:3:3323133964"]},
      "peer":{"peerId":"198.18.0.0","routerId":"198.19.0.1","hostname":"spine1","type":"external"}
    }
  ]
}
{
}
"#;

    /// tor2 (BIRD 2.0.12), `birdc show route all 192.0.2.10/32`.
    const BIRD: &str = "BIRD 2.0.12 ready.
Table master4:
192.0.2.10/32        unicast [db2 11:57:15.204] * (100) [AS4200000002i]
\tvia 198.18.2.1 on eth2
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 4200000002
\tBGP.next_hop: 198.18.2.1
\tBGP.local_pref: 100
\tBGP.large_community: (4200000000, 1, 2) (4200000000, 3, 3323133964)
                     unicast [spine1 11:57:05.785] (100) [AS4200000001i]
\tvia 198.18.0.2 on eth1
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65100 65001 4200000001
\tBGP.next_hop: 198.18.0.2
\tBGP.local_pref: 100
\tBGP.large_community: (4200000000, 2, 0) (4200000000, 3, 3323133963)
";

    fn hosts() -> Hosts {
        let mut h = Hosts {
            community_asn: DEFAULT_COMMUNITY_ASN,
            ..Default::default()
        };
        h.by_asn.insert(4_200_000_001, "db1".into());
        h.by_asn.insert(4_200_000_002, "db2".into());
        h.by_asn.insert(4_200_000_003, "db3".into());
        h.by_router_id
            .insert("198.19.0.13".parse().unwrap(), "db3".into());
        h
    }

    #[test]
    fn frr_paths_with_their_marks() {
        let p = parse_frr(FRR).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].as_path, [4_200_000_001]);
        assert!(p[0].best && !p[1].best);
        assert_eq!(p[1].from, "spine1");
        assert_eq!(p[0].from, "198.18.1.1");
        let c = DEFAULT_COMMUNITY_ASN;
        assert_eq!(p[0].mark(c), Mark::Primary { term: 1 });
        assert_eq!(p[1].mark(c), Mark::Primary { term: 2 });
        assert_eq!(p[1].router_id(c), Some("198.19.0.12".parse().unwrap()));
        let h = hosts();
        assert_eq!(h.announcer(&p[1]).as_deref(), Some("db2"));
        // Another community ASN: no marks.
        assert_eq!(p[0].mark(65000), Mark::Unmarked);
        assert!(parse_frr("{}").unwrap().is_empty());
        assert!(parse_frr("{ nope").is_err());
    }

    #[test]
    fn bird_paths_with_their_marks() {
        let p = parse_bird(BIRD);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].prefix.as_str(), p[0].from.as_str(), p[0].best),
            ("192.0.2.10/32", "db2", true)
        );
        assert_eq!(
            (p[1].prefix.as_str(), p[1].from.as_str(), p[1].best),
            ("192.0.2.10/32", "spine1", false)
        );
        assert_eq!(p[1].as_path, [65100, 65001, 4_200_000_001]);
        let c = DEFAULT_COMMUNITY_ASN;
        assert_eq!(p[0].mark(c), Mark::Primary { term: 2 });
        // A fallback (issue 12's routes) is never a path to a primary.
        assert_eq!(p[1].mark(c), Mark::Fallback);
        let h = hosts();
        let paths: Vec<BgpPath> = p.iter().map(|x| h.path(x)).collect();
        assert!(paths[0].is_primary_path_to("db2"));
        assert!(!paths[1].is_primary_path_to("db1"));
        assert_eq!(paths[1].announcer.as_deref(), Some("db1"));
        assert!(parse_bird("Table master6:\n").is_empty());
    }

    #[test]
    fn the_router_id_mark_names_the_host_before_the_origin_as() {
        // All DB hosts in one AS: only the router-id mark tells them apart.
        let raw = RawPath {
            prefix: "192.0.2.10/32".into(),
            from: "tor1".into(),
            as_path: vec![65001, 4_200_000_001],
            large: vec![(
                DEFAULT_COMMUNITY_ASN,
                3,
                u32::from(Ipv4Addr::new(198, 19, 0, 13)),
            )],
            best: false,
        };
        assert_eq!(hosts().announcer(&raw).as_deref(), Some("db3"));
        assert_eq!(raw.mark(DEFAULT_COMMUNITY_ASN), Mark::Unmarked);
    }

    fn reading(t: f64, router: &str, to: &[&str]) -> Reading {
        Reading {
            t_ms: t,
            router: router.into(),
            paths: to
                .iter()
                .map(|h| BgpPath {
                    prefix: "192.0.2.10/32".into(),
                    announcer: Some(h.to_string()),
                    mark: Mark::Primary { term: 1 },
                    from: "x".into(),
                    best: false,
                })
                .collect(),
            error: None,
        }
    }

    #[test]
    fn how_long_each_router_kept_the_old_path() {
        let routers = vec!["tor1".to_string(), "spine1".into(), "tor2".into()];
        let r = vec![
            reading(0.0, "tor1", &["db1"]),
            reading(0.0, "spine1", &["db1"]),
            reading(0.0, "tor2", &["db1"]),
            reading(100.0, "tor1", &["db1", "db2"]),
            reading(150.0, "tor1", &["db2"]),
            reading(200.0, "spine1", &["db2"]),
            // tor2 never let it go.
            reading(120.0, "tor2", &["db1", "db2"]),
        ];
        let k = kept(&r, &routers, "db1", 90.0);
        assert_eq!(k[0].gone_at, Some(150.0));
        assert!(!k[0].still);
        assert_eq!(k[1].gone_at, Some(200.0));
        assert_eq!(k[2].gone_at, None);
        assert!(k[2].still);
        // Gone before `from` and never back: no path kept.
        let k = kept(&r, &routers, "db1", 300.0);
        assert_eq!(k[0].gone_at, None);
        assert!(!k[0].still);
        // Back after being gone: the last interval counts.
        let mut r2 = r.clone();
        r2.push(reading(400.0, "tor1", &["db1", "db2"]));
        r2.push(reading(450.0, "tor1", &["db2"]));
        let k = kept(&r2, &routers, "db1", 300.0);
        assert_eq!(k[0].gone_at, Some(450.0));
        assert_eq!((k[0].blind_ms, k[0].error.as_deref()), (0.0, None));
        // A failed reading is no state: the path goes at the next good reading without it,
        // and the blind spot is measured.
        let mut r3 = r.clone();
        r3.retain(|x| x.router != "tor1" || x.t_ms < 100.0);
        let mut failed = reading(120.0, "tor1", &[]);
        failed.error = Some("bgpd closed the vty".into());
        r3.push(failed);
        r3.push(reading(140.0, "tor1", &["db1"]));
        r3.push(reading(160.0, "tor1", &["db2"]));
        let k = kept(&r3, &routers, "db1", 90.0);
        assert_eq!(k[0].gone_at, Some(160.0));
        assert_eq!(k[0].blind_ms, 20.0 + POLL.as_secs_f64() * 1000.0);
        assert_eq!(k[0].error.as_deref(), Some("bgpd closed the vty"));
        // Still failing at the end: blind for good.
        r3.push({
            let mut f = reading(200.0, "tor1", &[]);
            f.error = Some("x".into());
            f
        });
        assert!(kept(&r3, &routers, "db1", 90.0)[0].blind_ms.is_infinite());
    }
}
