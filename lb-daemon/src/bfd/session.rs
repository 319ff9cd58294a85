//! The BFD IO: one task runs every session of one address family around the pure
//! [`Session`]. Receive on UDP 3784 (RFC 5881) with `IP_MINTTL` / `IPV6_MINHOPCOUNT` 255
//! so that the kernel discards anything that crossed a router (GTSM, RFC 5082); send
//! from a source port in 49152-65535 with TTL / hop limit 255; jittered TX (RFC 5880
//! 6.8.7). Each session's status goes out on a watch channel (tracking, status, metrics).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

use super::fsm::{jittered_us, Diag, Session, State, Timers};
use super::packet::{Control, DropReason};

/// RFC 5881: single-hop control packets.
pub const CONTROL_PORT: u16 = 3784;
/// RFC 5881 section 4: the source port range.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

/// One configured session (keepalived's `bfd_instance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    pub name: String,
    pub neighbor: IpAddr,
    pub source: Option<IpAddr>,
    pub timers: Timers,
    pub passive: bool,
    /// TTL / hop limit of sent packets (keepalived `ttl`, default 255 / 64).
    pub ttl: u8,
}

/// What status and metrics show of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    pub name: String,
    pub neighbor: IpAddr,
    pub state: State,
    pub remote_discr: u32,
    pub tx_interval_us: Option<u32>,
    pub rx_interval_us: u32,
    pub detection_time_us: Option<u64>,
    pub last_down: Option<Diag>,
    pub transitions: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}

/// The task's shared view: sessions by name, drops by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub sessions: Vec<SessionStatus>,
    pub drops: HashMap<&'static str, u64>,
}

struct Running {
    spec: SessionSpec,
    fsm: Session,
    tx: UdpSocket,
    next_tx: Instant,
    detect_at: Option<Instant>,
    transitions: u64,
    packets_in: u64,
    packets_out: u64,
}

fn random_u32(rng: &SystemRandom) -> u32 {
    let mut b = [0u8; 4];
    // SystemRandom only fails without a kernel RNG; then any non-zero value serves.
    if rng.fill(&mut b).is_err() {
        return 0x5eed_0001;
    }
    u32::from_ne_bytes(b)
}

fn rand01(rng: &SystemRandom) -> f64 {
    f64::from(random_u32(rng)) / (f64::from(u32::MAX) + 1.0)
}

fn set_min_ttl(sock: &Socket, v6: bool) -> io::Result<()> {
    let value: libc::c_int = 255;
    let (level, name) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT)
    } else {
        (libc::IPPROTO_IP, libc::IP_MINTTL)
    };
    // SAFETY: a valid fd and a c_int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The receive socket: `bind`:3784, GTSM.
pub fn bind_receiver(bind: IpAddr, port: u16) -> io::Result<UdpSocket> {
    let v6 = bind.is_ipv6();
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let sock = Socket::new(domain, Type::DGRAM, Some(SockProtocol::UDP))?;
    if v6 {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    set_min_ttl(&sock, v6)?;
    sock.set_nonblocking(true)?;
    sock.bind(&SocketAddr::new(bind, port).into())?;
    UdpSocket::from_std(sock.into())
}

/// A session's send socket: a source port in 49152-65535, TTL / hop limit `ttl`.
fn bind_sender(spec: &SessionSpec, rng: &SystemRandom) -> io::Result<UdpSocket> {
    let v6 = spec.neighbor.is_ipv6();
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let any: IpAddr = if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let source = spec.source.unwrap_or(any);
    let span = u32::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let start = random_u32(rng) % span;
    for i in 0..span {
        let port = SOURCE_PORTS.start() + ((start + i) % span) as u16;
        let sock = Socket::new(domain, Type::DGRAM, Some(SockProtocol::UDP))?;
        if v6 {
            sock.set_only_v6(true)?;
            sock.set_unicast_hops_v6(u32::from(spec.ttl))?;
        } else {
            sock.set_ttl_v4(u32::from(spec.ttl))?;
        }
        sock.set_nonblocking(true)?;
        match sock.bind(&SocketAddr::new(source, port).into()) {
            Ok(()) => return UdpSocket::from_std(sock.into()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free BFD source port in 49152-65535",
    ))
}

fn status(r: &Running) -> SessionStatus {
    SessionStatus {
        name: r.spec.name.clone(),
        neighbor: r.spec.neighbor,
        state: r.fsm.state,
        remote_discr: r.fsm.remote_discr,
        tx_interval_us: r.fsm.tx_interval_us(),
        rx_interval_us: r.fsm.rx_interval_us(),
        detection_time_us: r.fsm.detection_time_us(),
        last_down: r.fsm.last_down,
        transitions: r.transitions,
        packets_in: r.packets_in,
        packets_out: r.packets_out,
    }
}

async fn send(r: &mut Running, port: u16) {
    let pkt = r.fsm.build().encode();
    match r
        .tx
        .send_to(&pkt, SocketAddr::new(r.spec.neighbor, port))
        .await
    {
        Ok(_) => r.packets_out += 1,
        Err(e) => tracing::debug!(bfd = %r.spec.name, error = %e, "BFD send failed"),
    }
}

fn schedule_tx(r: &mut Running, now: Instant, rng: &SystemRandom) {
    r.next_tx = match r.fsm.tx_interval_us() {
        Some(us) => {
            now + Duration::from_micros(u64::from(jittered_us(
                us,
                r.spec.timers.multiplier,
                rand01(rng),
            )))
        }
        // Nothing periodic: look again in a second (a passive session that heard nothing).
        None => now + Duration::from_secs(1),
    };
}

fn arm_detection(r: &mut Running, now: Instant) {
    r.detect_at = r
        .fsm
        .detection_time_us()
        .map(|us| now + Duration::from_micros(us));
}

/// Runs `specs` (one address family) until the receiver fails; `port` is 3784 except in
/// tests. Every change of state or counters is published on `out`.
pub async fn run(
    specs: Vec<SessionSpec>,
    receiver: UdpSocket,
    port: u16,
    out: watch::Sender<Snapshot>,
) -> io::Result<()> {
    // The sender lives as long as the task: the set never changes.
    let (_keep, specs) = watch::channel(specs);
    run_dynamic(specs, receiver, port, out).await
}

/// Starts one session: a random non-zero discriminator, its own send socket.
fn start_session(spec: SessionSpec, rng: &SystemRandom, now: Instant) -> io::Result<Running> {
    let mut discr = random_u32(rng);
    if discr == 0 {
        discr = 1;
    }
    let tx = bind_sender(&spec, rng)?;
    let fsm = Session::new(spec.timers, spec.passive, discr);
    let mut r = Running {
        spec,
        fsm,
        tx,
        next_tx: now,
        detect_at: None,
        transitions: 0,
        packets_in: 0,
        packets_out: 0,
    };
    schedule_tx(&mut r, now, rng);
    // The first packet goes out at once (jittered only afterwards).
    r.next_tx = now;
    Ok(r)
}

/// Brings the running sessions to `wanted`: an unchanged session keeps running untouched
/// (state, discriminator, counters), a changed one restarts, a removed one stops. A
/// session whose socket cannot be opened is logged and left out.
fn reconcile(sessions: &mut Vec<Running>, wanted: &[SessionSpec], rng: &SystemRandom) {
    let now = Instant::now();
    let mut old: Vec<Running> = std::mem::take(sessions);
    for spec in wanted {
        if let Some(pos) = old.iter().position(|r| &r.spec == spec) {
            sessions.push(old.swap_remove(pos));
            continue;
        }
        let name = spec.name.clone();
        match start_session(spec.clone(), rng, now) {
            Ok(r) => {
                tracing::info!(bfd = %name, neighbor = %spec.neighbor, "BFD session started");
                sessions.push(r);
            }
            Err(e) => tracing::warn!(bfd = %name, error = %e, "BFD session not started"),
        }
    }
    for r in old {
        tracing::info!(bfd = %r.spec.name, "BFD session stopped");
    }
}

/// [`run`] with a set of sessions that may change (a reload): see [`reconcile`].
pub async fn run_dynamic(
    mut specs: watch::Receiver<Vec<SessionSpec>>,
    receiver: UdpSocket,
    port: u16,
    out: watch::Sender<Snapshot>,
) -> io::Result<()> {
    let rng = SystemRandom::new();
    let mut sessions = Vec::new();
    let first = specs.borrow_and_update().clone();
    reconcile(&mut sessions, &first, &rng);
    let mut specs_open = true;
    let mut drops: HashMap<&'static str, u64> = HashMap::new();
    let publish = |sessions: &[Running], drops: &HashMap<&'static str, u64>| {
        out.send_replace(Snapshot {
            sessions: sessions.iter().map(status).collect(),
            drops: drops.clone(),
        });
    };
    publish(&sessions, &drops);
    let mut buf = [0u8; 512];
    loop {
        let deadline = sessions
            .iter()
            .flat_map(|r| std::iter::once(r.next_tx).chain(r.detect_at))
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            changed = specs.changed(), if specs_open => {
                if changed.is_err() {
                    specs_open = false;
                    continue;
                }
                let wanted = specs.borrow_and_update().clone();
                reconcile(&mut sessions, &wanted, &rng);
                publish(&sessions, &drops);
            }
            got = receiver.recv_from(&mut buf) => {
                let (len, from) = got?;
                let now = Instant::now();
                // RFC 5881 section 4 binds senders to 49152-65535; keepalived 2.2.7 sends
                // from any ephemeral port (32768-60999 by default), so only port 0, which
                // no sender can use, is refused.
                let verdict = if from.port() == 0 {
                    Err(DropReason::BadSourcePort)
                } else {
                    Control::decode(&buf[..len])
                };
                let pkt = match verdict {
                    Ok(p) => p,
                    Err(reason) => {
                        *drops.entry(reason.label()).or_default() += 1;
                        publish(&sessions, &drops);
                        continue;
                    }
                };
                let from_ip = canonical(from.ip());
                let Some(r) = sessions.iter_mut().find(|r| r.spec.neighbor == from_ip) else {
                    *drops.entry(DropReason::NoSession.label()).or_default() += 1;
                    continue;
                };
                match r.fsm.receive(&pkt) {
                    Ok(rx) => {
                        r.packets_in += 1;
                        if let Some(c) = rx.change {
                            r.transitions += 1;
                            tracing::info!(bfd = %r.spec.name, neighbor = %r.spec.neighbor,
                                from = c.from.name(), to = c.to.name(), diag = c.diag.label(),
                                "BFD session state change");
                            schedule_tx(r, now, &rng);
                        }
                        arm_detection(r, now);
                        if rx.reply_now {
                            send(r, port).await;
                        }
                        publish(&sessions, &drops);
                    }
                    Err(reason) => {
                        *drops.entry(reason.label()).or_default() += 1;
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                let now = Instant::now();
                let mut changed = false;
                for r in sessions.iter_mut() {
                    if r.detect_at.is_some_and(|d| d <= now) {
                        r.detect_at = None;
                        if let Some(c) = r.fsm.expire() {
                            r.transitions += 1;
                            changed = true;
                            tracing::info!(bfd = %r.spec.name, neighbor = %r.spec.neighbor,
                                from = c.from.name(), to = c.to.name(), diag = c.diag.label(),
                                "BFD session state change");
                        }
                    }
                    if r.next_tx <= now {
                        if r.fsm.tx_interval_us().is_some() {
                            send(r, port).await;
                        }
                        schedule_tx(r, now, &rng);
                    }
                }
                if changed {
                    publish(&sessions, &drops);
                }
            }
        }
    }
}

/// An IPv4-mapped IPv6 source compares as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timers = crate::bfd::fsm::TEST_TIMERS;

    fn spec(name: &str, neighbor: &str, source: &str) -> SessionSpec {
        SessionSpec {
            name: name.into(),
            neighbor: neighbor.parse().unwrap(),
            source: Some(source.parse().unwrap()),
            timers: T,
            passive: false,
            ttl: 255,
        }
    }

    /// Receivers on 127.0.0.1 and 127.0.0.2 sharing a free port. A port found free can
    /// be taken before it is bound (another test's sender picks from the same range:
    /// AddrInUse in CI, stop 28): then another is tried.
    fn receivers() -> (UdpSocket, UdpSocket, u16) {
        for _ in 0..50 {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = probe.local_addr().unwrap().port();
            drop(probe);
            let pair = bind_receiver("127.0.0.1".parse().unwrap(), port).and_then(|ra| {
                bind_receiver("127.0.0.2".parse().unwrap(), port).map(|rb| (ra, rb))
            });
            match pair {
                Ok((ra, rb)) => return (ra, rb, port),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => panic!("binding BFD receivers: {e}"),
            }
        }
        panic!("no free port for two BFD receivers in 50 tries");
    }

    async fn wait_for(rx: &mut watch::Receiver<Snapshot>, state: State) {
        wait_until(rx, |s| s.state == state).await;
    }

    async fn wait_until(rx: &mut watch::Receiver<Snapshot>, ok: impl Fn(&SessionStatus) -> bool) {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if rx.borrow().sessions.first().is_some_and(&ok) {
                    return;
                }
                rx.changed().await.unwrap();
            }
        })
        .await
        .expect("BFD state reached");
    }

    /// A reload: an unchanged session keeps running (still Up, its transitions kept), a
    /// new one starts beside it, a changed one restarts, a removed one stops.
    #[tokio::test]
    async fn a_new_set_keeps_unchanged_sessions_running() {
        let (ra, rb, port) = receivers();
        let (ta, mut wa) = watch::channel(Snapshot::default());
        let (tb, mut wb) = watch::channel(Snapshot::default());
        // Reconciliation, not timing, is tested: 100 ms x 10, so that a loaded machine's
        // pause (the whole suite runs beside this on two cores) never takes `a` down.
        let slow = |mut s: SessionSpec| {
            s.timers = Timers {
                min_rx_us: 100_000,
                min_tx_us: 100_000,
                ..T
            };
            s.timers.multiplier = 10;
            s
        };
        let a_spec = slow(spec("a", "127.0.0.2", "127.0.0.1"));
        let (set, specs) = watch::channel(vec![a_spec.clone()]);
        let a = tokio::spawn(run_dynamic(specs, ra, port, ta));
        let b = tokio::spawn(run(
            vec![slow(spec("b", "127.0.0.1", "127.0.0.2"))],
            rb,
            port,
            tb,
        ));
        wait_for(&mut wa, State::Up).await;
        wait_for(&mut wb, State::Up).await;
        let before = wa.borrow().sessions[0].transitions;
        set.send_replace(vec![
            a_spec.clone(),
            slow(spec("c", "127.0.0.3", "127.0.0.1")),
        ]);
        tokio::time::timeout(Duration::from_secs(5), async {
            while wa.borrow().sessions.len() != 2 {
                wa.changed().await.unwrap();
            }
        })
        .await
        .expect("c started");
        {
            let snap = wa.borrow();
            assert_eq!(snap.sessions[0].name, "a");
            assert_eq!(snap.sessions[0].state, State::Up, "a untouched");
            assert_eq!(snap.sessions[0].transitions, before, "a untouched");
            assert_eq!(snap.sessions[1].state, State::Down, "c is new");
        }
        // `b` stops first: a restarted passive `a` then never hears from it and stays at
        // 0 transitions. With `b` talking, the fresh session left 0 within ~100 ms, and a
        // test task paused that long saw only the later snapshot (CI, stop 27).
        b.abort();
        let mut changed = a_spec.clone();
        changed.passive = true;
        set.send_replace(vec![changed]);
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                {
                    let snap = wa.borrow();
                    if snap.sessions.len() == 1 && snap.sessions[0].transitions == 0 {
                        return;
                    }
                }
                wa.changed().await.unwrap();
            }
        })
        .await
        .expect("a restarted, c stopped");
        a.abort();
    }

    /// Two sessions over loopback (127.0.0.1 <-> 127.0.0.2, a free port) come Up,
    /// negotiate 10 ms, and one goes Down by detection when the other stops.
    #[tokio::test]
    async fn two_tasks_come_up_over_loopback_and_detect_a_stop() {
        let (ra, rb, port) = receivers();
        let (ta, mut wa) = watch::channel(Snapshot::default());
        let (tb, mut wb) = watch::channel(Snapshot::default());
        let a = tokio::spawn(run(vec![spec("a", "127.0.0.2", "127.0.0.1")], ra, port, ta));
        let b = tokio::spawn(run(vec![spec("b", "127.0.0.1", "127.0.0.2")], rb, port, tb));
        wait_for(&mut wa, State::Up).await;
        wait_for(&mut wb, State::Up).await;
        // The neighbor's 10 ms desired TX arrives with its first packets once Up.
        wait_until(&mut wa, |s| s.detection_time_us == Some(30_000)).await;
        {
            let s = &wa.borrow().sessions[0];
            assert_ne!(s.remote_discr, 0);
            assert_eq!(s.tx_interval_us, Some(10_000));
            assert_eq!(s.detection_time_us, Some(30_000));
        }
        b.abort();
        wait_for(&mut wa, State::Down).await;
        assert_eq!(
            wa.borrow().sessions[0].last_down,
            Some(Diag::ControlDetectionExpired)
        );
        a.abort();
    }
}

/// Interop with keepalived 2.2.7's own BFD process, in two namespaces joined by a veth.
#[cfg(test)]
mod keepalived_interop {
    use super::*;
    use crate::netns::{veth, Netns};
    use std::process::{Command, Stdio};

    fn keepalived_log_has(path: &std::path::Path, needle: &str) -> bool {
        keepalived_log_count(path, needle) > 0
    }

    fn keepalived_log_count(path: &std::path::Path, needle: &str) -> usize {
        std::fs::read_to_string(path).map_or(0, |s| s.matches(needle).count())
    }

    #[test]
    fn sessions_with_keepalived_come_up_go_down_on_a_cut_and_recover() {
        let ka = Netns::new("bfdk").unwrap();
        let us = Netns::new("bfdu").unwrap();
        veth(&ka, "ka0", &us, "us0").unwrap();
        ka.ip(&["addr", "add", "10.77.0.1/24", "dev", "ka0"])
            .unwrap();
        us.ip(&["addr", "add", "10.77.0.2/24", "dev", "us0"])
            .unwrap();
        let dir = std::env::temp_dir().join(crate::netns::unique_name("bfdk"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("keepalived.conf");
        std::fs::write(
            &conf,
            "global_defs {\n  router_id bfdk\n}\n\
             bfd_instance lb {\n  neighbor_ip 10.77.0.2\n  source_ip 10.77.0.1\n  \
             min_rx 10\n  min_tx 10\n  multiplier 3\n}\n",
        )
        .unwrap();
        let log = dir.join("keepalived.log");
        let file = std::fs::File::create(&log).unwrap();
        let p = |n: &str| dir.join(n).display().to_string();
        let argv = [
            "keepalived".to_string(),
            "-n".into(),
            "-l".into(),
            "-D".into(),
            "-f".into(),
            conf.display().to_string(),
            "-p".into(),
            p("k.pid"),
            "-r".into(),
            p("v.pid"),
            "-c".into(),
            p("c.pid"),
            "-b".into(),
            p("b.pid"),
        ];
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let _k = ka
            .spawn_with(
                &argv,
                Stdio::from(file.try_clone().unwrap()),
                Stdio::from(file),
            )
            .unwrap();
        let us_name = us.name().to_string();
        let log2 = log.clone();
        us.run(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let rx = bind_receiver("10.77.0.2".parse().unwrap(), CONTROL_PORT).unwrap();
                let (tx, mut w) = watch::channel(Snapshot::default());
                let spec = SessionSpec {
                    name: "keepalived".into(),
                    neighbor: "10.77.0.1".parse().unwrap(),
                    source: Some("10.77.0.2".parse().unwrap()),
                    timers: Timers {
                        min_rx_us: 10_000,
                        min_tx_us: 10_000,
                        idle_tx_us: 1_000_000,
                        multiplier: 3,
                    },
                    passive: false,
                    ttl: 255,
                };
                let task = tokio::spawn(run(vec![spec], rx, CONTROL_PORT, tx));
                let state_is = |w: &watch::Receiver<Snapshot>, s: State| {
                    w.borrow().sessions.first().map(|x| x.state) == Some(s)
                };
                let wait = |w: &mut watch::Receiver<Snapshot>, s: State| {
                    let mut w = w.clone();
                    async move {
                        tokio::time::timeout(Duration::from_secs(30), async {
                            while !state_is(&w, s) {
                                w.changed().await.unwrap();
                            }
                        })
                        .await
                        .unwrap_or_else(|_| panic!("our session never reached {s:?}"));
                    }
                };
                wait(&mut w, State::Up).await;
                // keepalived's side, from its log.
                tokio::time::timeout(Duration::from_secs(10), async {
                    while !keepalived_log_has(&log2, "(lb) Entering Up state") {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "keepalived never Up: {}",
                        std::fs::read_to_string(&log2).unwrap_or_default()
                    )
                });
                let st = w.borrow().sessions[0].clone();
                assert_ne!(st.remote_discr, 0);
                // Cut the link.
                let ip = |args: &[&str]| {
                    let ok = Command::new("ip")
                        .args(["-n", &us_name])
                        .args(args)
                        .status()
                        .unwrap()
                        .success();
                    assert!(ok, "ip {args:?}");
                };
                ip(&["link", "set", "us0", "down"]);
                wait(&mut w, State::Down).await;
                assert_eq!(
                    w.borrow().sessions[0].last_down,
                    Some(Diag::ControlDetectionExpired)
                );
                tokio::time::timeout(Duration::from_secs(10), async {
                    while !keepalived_log_has(&log2, "(lb) Entering Down state") {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
                .await
                .expect("keepalived's session went Down");
                // Restore.
                ip(&["link", "set", "us0", "up"]);
                wait(&mut w, State::Up).await;
                tokio::time::timeout(Duration::from_secs(10), async {
                    while keepalived_log_count(&log2, "(lb) Entering Up state") < 2 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
                .await
                .expect("keepalived's session came Up again");
                task.abort();
            });
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
