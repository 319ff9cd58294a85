//! The soak's client load, from the client's namespace: short request/response
//! connections to each service's VIP (the lab backends' line protocol: one line in, one
//! line `<backend> <client>` out) every 20 ms, and long-lived connections that ask every
//! 500 ms. Every outcome is recorded with its time, to be judged against the fault
//! windows afterwards.

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{lab::addressing, schedule::Service};

const REQUEST_EVERY: Duration = Duration::from_millis(20);
/// A short request's connect and read timeouts.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a short request can take: one started this long before a fault can still
/// fail because of it.
pub const REQUEST_MAX: Duration = CONNECT_TIMEOUT.saturating_add(READ_TIMEOUT);
const ASK_EVERY: Duration = Duration::from_millis(500);
/// Long-lived connections per service.
pub const LONG_LIVED: usize = 4;

/// A short request's outcome.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub service: Service,
    pub ok: bool,
    pub error: Option<String>,
}

/// A long-lived connection that broke: when, on which backend, after how long.
#[derive(Debug, Clone)]
pub struct Broken {
    pub at: Instant,
    pub service: Service,
    pub backend: String,
    pub opened: Instant,
    pub error: String,
}

#[derive(Default)]
pub struct Outcomes {
    pub requests: Vec<Request>,
    pub broken: Vec<Broken>,
    /// Long-lived connections opened (the first ones and the replacements).
    pub opened: usize,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    outcomes: Arc<Mutex<Outcomes>>,
}

impl Load {
    /// Starts the load in the namespace at `netns` (a /run/netns path).
    pub fn start(netns: PathBuf) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Outcomes::default()));
        let mut threads = Vec::new();
        for service in Service::ALL {
            let (ns, stop2, out) = (netns.clone(), Arc::clone(&stop), Arc::clone(&outcomes));
            threads.push(std::thread::spawn(move || {
                enter(&ns);
                short_requests(service, &stop2, &out)
            }));
            let (ns, stop2, out) = (netns.clone(), Arc::clone(&stop), Arc::clone(&outcomes));
            threads.push(std::thread::spawn(move || {
                enter(&ns);
                long_lived(service, &stop2, &out)
            }));
        }
        Load {
            stop,
            threads,
            outcomes,
        }
    }

    /// Requests sent so far and how many failed.
    pub fn counts(&self) -> (usize, usize) {
        let o = lock(&self.outcomes);
        (
            o.requests.len(),
            o.requests.iter().filter(|r| !r.ok).count(),
        )
    }

    pub fn finish(self) -> Outcomes {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        std::mem::take(&mut *lock(&self.outcomes))
    }
}

fn lock(m: &Mutex<Outcomes>) -> std::sync::MutexGuard<'_, Outcomes> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn enter(netns: &PathBuf) {
    let f = std::fs::File::open(netns).expect("the client's netns");
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

fn vip(service: Service) -> SocketAddr {
    SocketAddr::new(addressing(service).vip, 80)
}

/// One line out, one line back: the backend's name.
fn ask(s: &mut TcpStream) -> Result<String, String> {
    s.write_all(b"hi\n").map_err(|e| format!("write: {e}"))?;
    let mut line = String::new();
    BufReader::new(&mut *s)
        .read_line(&mut line)
        .map_err(|e| format!("read: {e}"))?;
    let backend = line.split_whitespace().next().unwrap_or("").to_string();
    if backend.is_empty() {
        return Err("closed".into());
    }
    Ok(backend)
}

fn short_requests(service: Service, stop: &AtomicBool, out: &Mutex<Outcomes>) {
    while !stop.load(Ordering::Relaxed) {
        let at = Instant::now();
        let result = TcpStream::connect_timeout(&vip(service), CONNECT_TIMEOUT)
            .map_err(|e| format!("connect: {e}"))
            .and_then(|mut s| {
                s.set_read_timeout(Some(READ_TIMEOUT))
                    .map_err(|e| e.to_string())?;
                ask(&mut s)
            });
        lock(out).requests.push(Request {
            at,
            service,
            ok: result.is_ok(),
            error: result.err(),
        });
        std::thread::sleep(REQUEST_EVERY.saturating_sub(at.elapsed()));
    }
}

struct Conn {
    stream: TcpStream,
    backend: String,
    opened: Instant,
}

fn open(service: Service) -> Option<Conn> {
    let mut stream = TcpStream::connect_timeout(&vip(service), Duration::from_secs(1)).ok()?;
    // Long enough to ride out a failover (master-down ~3.6 s) or a link flap: TCP
    // retransmits, the connection is not broken unless it really is.
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok()?;
    let backend = ask(&mut stream).ok()?;
    Some(Conn {
        stream,
        backend,
        opened: Instant::now(),
    })
}

fn long_lived(service: Service, stop: &AtomicBool, out: &Mutex<Outcomes>) {
    let mut conns: Vec<Option<Conn>> = (0..LONG_LIVED).map(|_| None).collect();
    while !stop.load(Ordering::Relaxed) {
        for slot in conns.iter_mut() {
            match slot.take() {
                None => {
                    *slot = open(service);
                    if slot.is_some() {
                        lock(out).opened += 1;
                    }
                }
                Some(mut c) => match ask(&mut c.stream) {
                    Ok(b) if b == c.backend => *slot = Some(c),
                    Ok(b) => lock(out).broken.push(Broken {
                        at: Instant::now(),
                        service,
                        backend: c.backend.clone(),
                        opened: c.opened,
                        error: format!("answered by {b} instead"),
                    }),
                    Err(e) => lock(out).broken.push(Broken {
                        at: Instant::now(),
                        service,
                        backend: c.backend.clone(),
                        opened: c.opened,
                        error: e,
                    }),
                },
            }
        }
        std::thread::sleep(ASK_EVERY);
    }
}
