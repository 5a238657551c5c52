//! The host's refusal (nftables) and reset (sock_diag) against the kernel, without BGP: a DB
//! namespace with the service addresses on `lo` and a server listening on them, a client
//! namespace on a link beside it ([`testkit::Net`]; the link's namespace runs no router here).
//! The nftables table has a name unique to this process and lives in the DB namespace, which
//! the lab removes with everything in it, also on failure.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use primaryd::host::refuse::Refuser;
use primaryd::host::reset;
use testkit::{in_ns, run_ok, Net};

const PORT: u16 = 33061;
const V4: &str = "192.0.2.10";
const V6: &str = "2001:db8::10";
/// "At once": an RST comes back within a round trip; this only bounds a loaded machine.
const AT_ONCE: Duration = Duration::from_millis(500);
/// How long a client waits before calling an answer silence.
const PATIENCE: Duration = Duration::from_secs(3);

fn enter(ns: &str) {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns file");
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

/// A dual-stack listener on [::]:PORT in the DB namespace that keeps what it accepts, until
/// dropped.
struct Server {
    stop: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(ns: &str) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (ns, s, a) = (ns.to_string(), stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            enter(&ns);
            let l = TcpListener::bind(("::", PORT)).expect("bind [::]");
            l.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((c, _)) => a.lock().unwrap().push(c),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        });
        ready.recv().expect("listener up");
        Server {
            stop,
            accepted,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.accepted.lock().unwrap().clear();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn addr(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), PORT)
}

/// Connects from the client namespace: Ok(stream), or the error and how long it took.
fn connect(client_ns: &str, ip: &str) -> Result<TcpStream, (ErrorKind, Duration)> {
    in_ns(client_ns, || {
        let t = Instant::now();
        TcpStream::connect_timeout(&addr(ip), PATIENCE).map_err(|e| (e.kind(), t.elapsed()))
    })
}

/// Writes to an established connection (the packet that meets the refusal) and reads: the
/// error the client gets, and when.
fn poke(stream: &mut TcpStream) -> (ErrorKind, Duration) {
    let t = Instant::now();
    if let Err(e) = stream.write_all(b"ping") {
        return (e.kind(), t.elapsed());
    }
    listen(stream, t)
}

/// Only reads (the RST comes by itself): the error the client gets, and when.
fn listen(stream: &mut TcpStream, t: Instant) -> (ErrorKind, Duration) {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(0) => (ErrorKind::UnexpectedEof, t.elapsed()),
        Ok(_) => panic!("the server never writes"),
        Err(e) => (e.kind(), t.elapsed()),
    }
}

#[test]
fn refused_addresses_answer_every_packet_with_a_reset_and_reset_cuts_established_connections() {
    let mut net = Net::new();
    let link = net.add_link();
    let (db, client) = (net.db_ns.clone(), link.router_ns.clone());
    run_ok(std::process::Command::new("ip").args([
        "-n",
        &client,
        "route",
        "add",
        &format!("{V4}/32"),
        "via",
        &link.db_v4,
    ]));
    run_ok(std::process::Command::new("ip").args([
        "-n",
        &client,
        "-6",
        "route",
        "add",
        &format!("{V6}/128"),
        "via",
        &link.db_v6,
    ]));
    let server = Server::start(&db);
    let refuser = Refuser::new(&format!("pdtest{}", std::process::id()));
    let addrs: Vec<IpAddr> = vec![V4.parse().unwrap(), V6.parse().unwrap()];

    // Open: both families connect.
    let mut before: Vec<TcpStream> = [V4, V6]
        .iter()
        .map(|ip| connect(&client, ip).unwrap_or_else(|e| panic!("{ip}: {e:?}")))
        .collect();

    // Refused: a new connection is refused at once, an established one is reset at its next
    // packet; the listener itself is untouched.
    in_ns(&db, || refuser.install(&addrs)).expect("install");
    assert_eq!(in_ns(&db, || refuser.refused()).unwrap(), addrs);
    for ip in [V4, V6] {
        let (kind, took) = connect(&client, ip).expect_err("refused");
        eprintln!("{ip}: SYN while refused: {kind:?} after {took:?}");
        assert_eq!(kind, ErrorKind::ConnectionRefused, "{ip}");
        assert!(took < AT_ONCE, "{ip}: {took:?}");
    }
    for (s, ip) in before.iter_mut().zip([V4, V6]) {
        let (kind, took) = poke(s);
        eprintln!("{ip}: established connection while refused: {kind:?} after {took:?}");
        assert_eq!(kind, ErrorKind::ConnectionReset, "{ip}");
        assert!(took < AT_ONCE, "{ip}: {took:?}");
    }

    // Open again (idempotent: twice), then refused again without touching the other family.
    in_ns(&db, || refuser.open(&addrs)).expect("open");
    in_ns(&db, || refuser.open(&addrs)).expect("open again");
    assert!(in_ns(&db, || refuser.refused()).unwrap().is_empty());
    let mut v4 = connect(&client, V4).expect("open v4");
    let mut v6 = connect(&client, V6).expect("open v6");

    // Reset: the server's sockets on the service addresses are destroyed (the IPv4 one is an
    // AF_INET6 socket with a mapped address: the listener is dual-stack), the listener stays.
    assert_eq!(in_ns(&db, reset::facility), Ok(()));
    let outcome = in_ns(&db, || reset::reset(&addrs)).expect("reset");
    eprintln!("reset: {outcome:?}");
    assert!(outcome.reset >= 2, "{outcome:?}");
    let t = Instant::now();
    for (s, ip) in [(&mut v4, V4), (&mut v6, V6)] {
        let (kind, took) = listen(s, t);
        assert_eq!(kind, ErrorKind::ConnectionReset, "{ip}");
        assert!(took < AT_ONCE, "{ip}: {took:?}");
    }
    assert!(connect(&client, V4).is_ok(), "the listener survived");
    // Nothing of another address is touched.
    let other: Vec<IpAddr> = vec!["192.0.2.11".parse().unwrap()];
    assert_eq!(in_ns(&db, || reset::reset(&other)).unwrap().reset, 0);
    drop(server);
}
