//! Clients never hang (issue 12), end to end: two DB hosts behind one router (FRR with
//! `frr defaults datacenter` multipath, and BIRD), a client namespace, IPv4 and IPv6
//! ([`testkit::Pair`]). What is asserted is what the router and the client see:
//!
//! - the router's best (and only multipath) route is the primary's, over the other host's
//!   fallback, which is there too (prepended, GRACEFUL_SHUTDOWN, the fallback mark);
//! - when the primary withdraws, its pooled connection is reset and a SYN to the service
//!   address gets an RST at once (never silence), from the refusing hosts;
//! - the other host's promotion moves the route, and clients connect there;
//! - neither host's conflict rules take the other's fallback for a second primary.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use testkit::{in_ns, tcp_connect, Pair, PairRouter};

const V4: &str = "192.0.2.10";
const V6: &str = "2001:db8::10";
/// An RST comes back within a round trip; this only bounds a loaded machine.
const AT_ONCE: Duration = Duration::from_millis(500);
/// A client's patience: longer than any answer, so silence shows as a timeout.
const PATIENCE: Duration = Duration::from_secs(3);

fn service(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 3306)
}

fn prefix(ip: &str) -> String {
    if ip.contains(':') {
        format!("{ip}/128")
    } else {
        format!("{ip}/32")
    }
}

/// `/metrics` of the primaryd in namespace `ns`, port `port` on its loopback.
fn metrics(ns: &str, port: u16) -> String {
    in_ns(ns, || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("metrics endpoint");
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    })
}

/// The value of a metric line that starts with `series`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Every connect attempt gets an answer at once: accepted or refused, never silence. Returns
/// the first accepted stream; refusals are counted.
#[track_caller]
fn connect_until_accepted(pair: &Pair, ip: &str) -> (TcpStream, u32) {
    let mut refused = 0;
    let stream = pair.wait_for(&format!("{ip}:3306 accepts"), || {
        let (r, took) = tcp_connect(&pair.client_ns, service(ip), PATIENCE);
        assert!(took < AT_ONCE, "{ip}: answer after {took:?}: {r:?}");
        match r {
            Ok(s) => Some(s),
            Err(ErrorKind::ConnectionRefused) => {
                refused += 1;
                None
            }
            Err(e) => panic!("{ip}: {e:?} after {took:?}"),
        }
    });
    (stream, refused)
}

/// A SYN now: refused (RST), and how fast.
#[track_caller]
fn assert_refused_at_once(pair: &Pair, ip: &str) -> Duration {
    let (r, took) = tcp_connect(&pair.client_ns, service(ip), PATIENCE);
    assert_eq!(
        r.err(),
        Some(ErrorKind::ConnectionRefused),
        "{ip}: after {took:?}"
    );
    assert!(took < AT_ONCE, "{ip}: refused after {took:?}");
    took
}

/// The client's pooled connection is reset by the host (not left waiting).
#[track_caller]
fn assert_reset(stream: &mut TcpStream, ip: &str) -> Duration {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    // MariaDB's greeting first; then the reset (or an EOF if the server closed first).
    loop {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => continue,
            Ok(_) => panic!("{ip}: closed, not reset, after {:?}", t.elapsed()),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return t.elapsed(),
            Err(e) => panic!("{ip}: {e:?} after {:?}", t.elapsed()),
        }
    }
}

/// What the router holds for one prefix.
#[derive(Debug)]
struct Seen {
    /// Next hops of the installed route (all of them, for a multipath route).
    kernel_via: Vec<String>,
    /// (next hop, AS path length, fallback) of every BGP path; the best first.
    paths: Vec<(String, usize, bool)>,
}

fn seen(pair: &Pair, kind: PairRouter, ip: &str) -> Seen {
    let p = prefix(ip);
    let route = match kind {
        PairRouter::Frr => pair.frr().kernel_route(&p),
        PairRouter::Bird => pair.bird().kernel_route(&p),
    };
    let kernel_via = route
        .map(|r| {
            let w: Vec<&str> = r.split_whitespace().collect();
            w.windows(2)
                .filter(|x| x[0] == "via")
                .map(|x| x[1].trim_start_matches("inet6").to_string())
                .collect()
        })
        .unwrap_or_default();
    let fallback_mark = |large: &[String]| large.iter().any(|c| c.ends_with(":2:0"));
    let paths = match kind {
        PairRouter::Frr => {
            let mut ps = pair.frr().paths(&p);
            ps.sort_by_key(|x| !x.best);
            ps.iter()
                .map(|x| {
                    let len = x.segments.iter().map(|(_, a)| a.len()).sum();
                    (
                        x.peer.clone().unwrap_or_default(),
                        len,
                        fallback_mark(&x.large_communities),
                    )
                })
                .collect()
        }
        PairRouter::Bird => {
            let mut rs: Vec<_> = pair
                .bird()
                .routes()
                .into_iter()
                .filter(|r| r.prefix == p)
                .collect();
            rs.sort_by_key(|r| !r.primary);
            rs.iter()
                .map(|r| {
                    let path = r.attr("BGP.as_path").unwrap_or("");
                    let large = r.attr("BGP.large_community").unwrap_or("");
                    (
                        r.protocol.clone(),
                        path.split_whitespace().count(),
                        large.contains(", 2, 0)"),
                    )
                })
                .collect()
        }
    };
    Seen { kernel_via, paths }
}

/// The route leads to DB host `n` only (its primary route is best, the only multipath next
/// hop), and the other host's fallback is in the table beside it.
fn only_primary_of(pair: &Pair, kind: PairRouter, ip: &str, n: u8) -> bool {
    let s = seen(pair, kind, ip);
    let via_ok = match (kind, ip.contains(':')) {
        (_, false) => s.kernel_via == [format!("198.18.{n}.1")],
        (_, true) => s.kernel_via == [format!("2001:db8:{n}::1")],
    };
    let best_ok = s.paths.first().is_some_and(|(_, len, fb)| !fb && *len <= 2);
    let fallback_beside = s.paths.iter().skip(1).any(|(_, len, fb)| *fb && *len >= 11);
    via_ok && best_ok && fallback_beside
}

/// Only fallbacks: every path is marked.
fn only_fallbacks(pair: &Pair, kind: PairRouter, ip: &str) -> bool {
    let s = seen(pair, kind, ip);
    s.paths.len() == 2 && s.paths.iter().all(|(_, _, fb)| *fb)
}

fn failover(kind: PairRouter) {
    let mut pair = Pair::new(kind);
    let db1 = pair.add_mariadb(0, false);
    let db2 = pair.add_mariadb(1, true);
    // A user for any host: the server then keeps a remote client's connection open through
    // its handshake (connect_timeout, 10 s) instead of closing it at once.
    for db in [&db1, &db2] {
        db.sql("CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'app-pw'");
    }
    let pd1 = pair.start_primaryd(0, &db1);
    let pd2 = pair.start_primaryd(1, &db2);

    // db1 is the primary: its route wins at the router over db2's fallback, for both families.
    for ip in [V4, V6] {
        pair.wait_for(
            &format!("{ip}: db1's route is the only one used, db2's fallback beside it"),
            || only_primary_of(&pair, kind, ip, 1).then_some(()),
        );
        eprintln!("{kind:?} {ip}: {:?}", seen(&pair, kind, ip));
    }
    if kind == PairRouter::Frr {
        // FRR lowers a GRACEFUL_SHUTDOWN route's LOCAL_PREF to 0 (RFC 8326) by itself.
        let fb = pair
            .frr()
            .paths(&prefix(V4))
            .into_iter()
            .find(|p| !p.best)
            .filter(|p| p.communities.iter().any(|c| c == "gracefulShutdown"))
            .unwrap_or_else(|| {
                panic!(
                    "the fallback carries GRACEFUL_SHUTDOWN: {:#?}",
                    pair.frr().paths(&prefix(V4))
                )
            });
        eprintln!("FRR: the fallback path: {fb:?}");
        assert_eq!(fb.local_pref, Some(0), "{fb:?}");
    }
    if kind == PairRouter::Bird {
        // BIRD leaves LOCAL_PREF alone; the documented filter sets 0 on GRACEFUL_SHUTDOWN.
        let fb = pair
            .bird()
            .routes()
            .into_iter()
            .find(|r| r.prefix == prefix(V4) && r.protocol == "db2")
            .expect("db2's fallback");
        assert_eq!(fb.attr("BGP.local_pref"), Some("0"), "{fb:?}");
    }
    // Clients reach db1 (writable, open); the fallback host refuses.
    let (mut pooled4, _) = connect_until_accepted(&pair, V4);
    let (mut pooled6, _) = connect_until_accepted(&pair, V6);
    in_ns(&pair.db_ns[1].clone(), || {
        // From db2 itself (lo is never refused) the server answers; refusal is for the network.
        let _ = TcpStream::connect_timeout(&service(V4), PATIENCE).expect("local client on db2");
    });
    assert!(
        !pd2.log().contains("event=\"conflict\"") && !pd2.log().contains("withdrawn: conflict")
    );

    // db1 fails (read_only): its pooled connections are reset at once, and every SYN is
    // refused at once while only fallbacks are announced.
    let failed = Instant::now();
    db1.set_read_only(true);
    let r4 = assert_reset(&mut pooled4, V4);
    let r6 = assert_reset(&mut pooled6, V6);
    eprintln!(
        "{kind:?}: read_only on db1: pooled connections reset after {r4:?} (v4), {r6:?} (v6)"
    );
    for ip in [V4, V6] {
        pair.wait_for(&format!("{ip}: only fallbacks"), || {
            only_fallbacks(&pair, kind, ip).then_some(())
        });
        let took = assert_refused_at_once(&pair, ip);
        eprintln!("{kind:?} {ip}: SYN with only fallbacks announced: RST after {took:?}");
    }
    eprintln!(
        "{kind:?}: fallbacks only {:?} after the fault",
        failed.elapsed()
    );
    // The clients see their RST before the daemon counts the reset job's report.
    pair.wait_for("db1 counts the two connections it reset", || {
        let m1 = metrics(&pair.db_ns[0].clone(), 9100);
        let resets = metric(&m1, "primaryd_connections_reset_total{service=\"main\"}");
        (resets.unwrap_or(0.0) >= 2.0).then_some(())
    });
    assert!(pd1.log().contains("connections reset"), "{}", pd1.log());

    // db2 is promoted: its route wins, and clients connect there; every attempt on the way
    // was answered at once.
    db2.set_read_only(false);
    for ip in [V4, V6] {
        pair.wait_for(&format!("{ip}: db2's route is the only one used"), || {
            only_primary_of(&pair, kind, ip, 2).then_some(())
        });
        let (_s, refused) = connect_until_accepted(&pair, ip);
        eprintln!("{kind:?} {ip}: db2 accepts (after {refused} refused attempts)");
    }
    // The kernel opens before the daemon reads its job's report, so the gauge can trail the
    // first accepted connection by a scheduling delay: wait for it, then read the rest.
    let m2 = pair.wait_for("db2 reports its refusal lifted", || {
        let m = metrics(&pair.db_ns[1].clone(), 9200);
        (metric(&m, "primaryd_service_refused{service=\"main\"}") == Some(0.0)).then_some(m)
    });
    assert_eq!(
        metric(&m2, "primaryd_conflict{service=\"main\"}"),
        Some(0.0),
        "{m2}"
    );
    let m1 = metrics(&pair.db_ns[0].clone(), 9100);
    assert_eq!(
        metric(&m1, "primaryd_service_fallback{service=\"main\"}"),
        Some(1.0),
        "{m1}"
    );
    assert_eq!(
        metric(&m1, "primaryd_conflict{service=\"main\"}"),
        Some(0.0),
        "{m1}"
    );
    pd1.assert_running();
    pd2.assert_running();
}

#[test]
fn frr_multipath_the_primary_always_wins_and_clients_are_refused_never_left_hanging() {
    failover(PairRouter::Frr);
}

#[test]
fn bird_the_primary_always_wins_and_clients_are_refused_never_left_hanging() {
    failover(PairRouter::Bird);
}
