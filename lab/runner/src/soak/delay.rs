//! Delay on a DB host's uplink without `sch_netem` (this machine's kernel has no netem, and
//! nftables' own `queue` expression is missing too): iptables' NFQUEUE target (iptables-nft's
//! xtables target, which this kernel has) hands every packet in and out of the interface to a
//! thread of the runner inside the host's network namespace, which gives each one back
//! (accept) `delay` after it arrived, in the order they came. `--queue-bypass` and fail-open:
//! with the thread gone or its queue full, packets pass undelayed; they are never dropped
//! here, so this fault is delay alone (loss is `uplink-loss`).

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nfq::{Message, Queue, Verdict};

use crate::util;

/// The queue number inside the host's namespace (queues are per namespace).
const QUEUE: u16 = 7;
/// Room for everything a lab host sends and receives in the longest delay.
const QUEUE_LEN: u32 = 16_384;
/// How often held packets are looked at: the delay's precision.
const TICK: Duration = Duration::from_millis(1);

/// Packets of one interface held for a while, both ways, until [`Delay::stop`].
pub(crate) struct Delay {
    netns: String,
    iface: String,
    stop: Arc<AtomicBool>,
    relay: Option<JoinHandle<Result<u64>>>,
}

impl Delay {
    /// Holds the packets of `iface` in namespace `netns` (a lab host's: `Lab::netns`).
    pub fn start(netns: &str, iface: &str, delay: Duration) -> Result<Delay> {
        let ns = File::open(format!("/run/netns/{netns}")).context("open the namespace")?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = mpsc::channel();
        let stop2 = stop.clone();
        let relay = std::thread::Builder::new()
            .name(format!("delay-{netns}"))
            .spawn(move || relay(&ns, delay, &stop2, &ready_tx))?;
        let mut d = Delay {
            netns: netns.to_string(),
            iface: iface.to_string(),
            stop,
            relay: Some(relay),
        };
        // The rules only once the queue is bound: a queued packet with nobody bound would
        // pass undelayed (bypass), which would make the fault a no-op, not a hazard.
        if ready.recv_timeout(Duration::from_secs(5)).is_err() {
            let why = d
                .end()
                .err()
                .map_or("no answer in 5 s".to_string(), |e| format!("{e:#}"));
            bail!("the delay queue did not bind: {why}");
        }
        if let Err(e) = d.rules("-I") {
            let _ = d.end();
            return Err(e);
        }
        Ok(d)
    }

    /// Removes the rules, then gives back every packet still held; how many were delayed.
    pub fn stop(mut self) -> Result<u64> {
        self.end()
    }

    fn end(&mut self) -> Result<u64> {
        let rules = self.rules("-D");
        self.stop.store(true, Ordering::SeqCst);
        let delayed = match self.relay.take() {
            Some(h) => h
                .join()
                .map_err(|_| anyhow!("the delay relay panicked"))
                .and_then(|r| r),
            None => Ok(0),
        };
        // The relay's error first: it says why the rules had nothing to do.
        let delayed = delayed?;
        rules?;
        Ok(delayed)
    }

    /// Inserts (`-I`) or deletes (`-D`) the NFQUEUE rules, IPv4 and IPv6, both ways.
    fn rules(&self, op: &str) -> Result<()> {
        let queue = QUEUE.to_string();
        let mut first_error = None;
        for tool in ["iptables", "ip6tables"] {
            for (chain, dir) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
                let r = util::ip(&[
                    "netns",
                    "exec",
                    &self.netns,
                    tool,
                    "-w",
                    op,
                    chain,
                    dir,
                    &self.iface,
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    &queue,
                    "--queue-bypass",
                ]);
                if let Err(e) = r {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Delay {
    fn drop(&mut self) {
        if self.relay.is_some() {
            let _ = self.end();
        }
    }
}

/// The thread: bound to the queue in the host's namespace, it accepts each packet `delay`
/// after it came until told to stop, then accepts the rest at once.
fn relay(ns: &File, delay: Duration, stop: &AtomicBool, ready: &mpsc::Sender<()>) -> Result<u64> {
    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
    let mut q = Queue::open().context("open a netfilter queue socket")?;
    q.bind(QUEUE).context("bind the queue")?;
    // Metadata only: the verdict needs the packet's id, not its bytes.
    q.set_copy_range(QUEUE, 0)?;
    q.set_fail_open(QUEUE, true)?;
    q.set_queue_max_len(QUEUE, QUEUE_LEN)?;
    q.set_nonblocking(true);
    let _ = ready.send(());
    let mut held: VecDeque<(Instant, Message)> = VecDeque::new();
    let mut delayed = 0u64;
    let result = loop {
        if stop.load(Ordering::SeqCst) {
            break Ok(());
        }
        if let Err(e) = take(&mut q, &mut held, delay, &mut delayed) {
            break Err(e);
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            let (_, m) = held.pop_front().expect("a held packet");
            q.verdict(m)?;
        }
        std::thread::sleep(TICK);
    };
    for (_, m) in held.drain(..) {
        q.verdict(m)?;
    }
    let _ = q.unbind(QUEUE);
    result.map(|()| delayed)
}

/// Every packet waiting in the queue, held until `delay` from now.
fn take(
    q: &mut Queue,
    held: &mut VecDeque<(Instant, Message)>,
    delay: Duration,
    delayed: &mut u64,
) -> Result<()> {
    loop {
        match q.recv() {
            Ok(mut m) => {
                m.set_verdict(Verdict::Accept);
                held.push_back((Instant::now() + delay, m));
                *delayed += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e).context("read the queue"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpStream};

    use super::*;

    /// Two namespaces joined by a veth pair (198.18.250.0/31), removed on drop.
    struct Pair {
        a: String,
        b: String,
    }

    impl Pair {
        fn new() -> Pair {
            testkit::require_root("the delay test builds network namespaces");
            let id = std::process::id();
            let p = Pair {
                a: format!("pdly{id}a"),
                b: format!("pdly{id}b"),
            };
            for ns in [&p.a, &p.b] {
                util::ip(&["netns", "add", ns]).expect("netns add");
            }
            let setup = [
                format!(
                    "link add veth-a netns {} type veth peer name veth-b netns {}",
                    p.a, p.b
                ),
                format!("-n {} addr add 198.18.250.0/31 dev veth-a", p.a),
                format!("-n {} addr add 198.18.250.1/31 dev veth-b", p.b),
                format!("-n {} link set veth-a up", p.a),
                format!("-n {} link set veth-b up", p.b),
            ];
            for cmd in setup {
                let args: Vec<&str> = cmd.split_whitespace().collect();
                util::ip(&args).expect(&cmd);
            }
            p
        }

        /// The shortest of three TCP connects from a to a closed port of b: the SYN out and
        /// the RST back, so twice a one-way delay.
        fn connect_ms(&self) -> f64 {
            let ns = File::open(format!("/run/netns/{}", self.a)).expect("open netns");
            std::thread::spawn(move || {
                nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                let to: SocketAddr = "198.18.250.1:9".parse().expect("address");
                (0..3)
                    .map(|_| {
                        let t = Instant::now();
                        let r = TcpStream::connect_timeout(&to, Duration::from_secs(3));
                        let e = r.expect_err("nothing listens on port 9");
                        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
                        t.elapsed().as_secs_f64() * 1000.0
                    })
                    .fold(f64::INFINITY, f64::min)
            })
            .join()
            .expect("the connecting thread")
        }

        fn nfqueue_rules(&self) -> usize {
            let out = util::ip(&["netns", "exec", &self.a, "iptables", "-S"]).expect("iptables -S");
            out.lines().filter(|l| l.contains("NFQUEUE")).count()
        }
    }

    impl Drop for Pair {
        fn drop(&mut self) {
            for ns in [&self.a, &self.b] {
                let _ = util::ip(&["netns", "del", ns]);
            }
        }
    }

    #[test]
    fn packets_wait_the_delay_both_ways_and_pass_at_once_after_it() {
        let p = Pair::new();
        let before = p.connect_ms();
        let delay = Delay::start(&p.a, "veth-a", Duration::from_millis(100)).expect("start");
        assert_eq!(p.nfqueue_rules(), 2, "one rule each way");
        let during = p.connect_ms();
        let packets = delay.stop().expect("stop");
        let after = p.connect_ms();
        assert!(before < 50.0, "{before} ms before the delay");
        // The SYN held on its way out, the RST on its way in: 2 x 100 ms.
        assert!(
            (200.0..400.0).contains(&during),
            "{during} ms with 100 ms each way"
        );
        assert!(after < 50.0, "{after} ms after the delay");
        assert!(packets >= 6, "{packets} packets delayed (3 SYNs, 3 RSTs)");
        assert_eq!(p.nfqueue_rules(), 0, "the rules are removed");
    }
}
