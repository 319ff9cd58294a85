//! Health checks against real servers the tests start on loopback: verdicts, rise/fall,
//! inhibit vs removal, quorum with a sorry server and its scripts, misc_dynamic weights,
//! and a hanging check that delays nothing else.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use lb_daemon::{
    config::Config,
    health::runner::{Health, Update},
};
use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle};

/// A TCP listener that accepts and closes; dropping the handle stops it (refused).
struct Real {
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
    accepted: Arc<AtomicUsize>,
}

impl Real {
    async fn start(addr: SocketAddr) -> Real {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                drop(s);
            }
        });
        Real {
            addr,
            task: Some(task),
            accepted,
        }
    }

    /// A listener that accepts and then never answers (an HTTP check hangs).
    async fn start_silent(addr: SocketAddr) -> Real {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                held.push(s);
            }
        });
        Real {
            addr,
            task: Some(task),
            accepted,
        }
    }

    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    async fn restart(&mut self) {
        self.stop();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut again = Real::start(self.addr).await;
        self.task = again.task.take();
        self.accepted = Arc::clone(&again.accepted);
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Distinct loopback addresses per test, so parallel tests never share a port.
fn loopback(test: u8, i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::from([127, 77, test, 1 + i]), 0)
}

fn real_block(r: &Real, extra: &str) -> String {
    format!(
        "\n[[virtual_server.real_server]]\naddress = \"{}\"\nport = {}\n{extra}\n",
        r.addr.ip(),
        r.addr.port()
    )
}

fn load(text: &str) -> Config {
    match Config::from_str(text, "test.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("config:\n{e}\n{text}"),
    }
}

/// Waits for an update whose backends satisfy `pred`; returns it and the time taken.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<Update>,
    timeout: Duration,
    pred: impl Fn(&Update) -> bool,
) -> (Update, Duration) {
    let start = Instant::now();
    loop {
        let left = timeout.checked_sub(start.elapsed()).unwrap_or_default();
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(u)) if pred(&u) => return (u, start.elapsed()),
            Ok(Some(_)) => continue,
            _ => panic!("no matching update within {timeout:?}"),
        }
    }
}

fn has(u: &Update, r: &Real, weight: u32) -> bool {
    u.backends
        .iter()
        .any(|b| b.addr == r.addr.ip() && b.port == r.addr.port() && b.weight == weight)
}

fn absent(u: &Update, r: &Real) -> bool {
    !u.backends
        .iter()
        .any(|b| b.addr == r.addr.ip() && b.port == r.addr.port())
}

const VS: &str =
    "[[virtual_server]]\naddress = \"198.18.0.100\"\nport = 80\ndelay_loop = \"100ms\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_real_leaves_after_fall_and_returns_after_rise() {
    let mut a = Real::start(loopback(1, 0)).await;
    let b = Real::start(loopback(1, 1)).await;
    let check = "tcp_check = { connect_timeout = \"200ms\", retry = 0, fall = 3, rise = 2, warmup = \"0s\" }";
    let text = format!("{VS}{}{}", real_block(&a, check), real_block(&b, check));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let health = Health::start(&load(&text), tx);
    let (first, _) = wait_for(&mut rx, Duration::from_secs(2), |u| u.backends.len() == 2).await;
    assert!(has(&first, &a, 1) && has(&first, &b, 1));
    a.stop();
    let (down, took) = wait_for(&mut rx, Duration::from_secs(3), |u| absent(u, &a)).await;
    assert!(has(&down, &b, 1));
    // fall = 3 checks 100 ms apart: not before the third failure.
    assert!(
        took >= Duration::from_millis(180),
        "left after {took:?}: fall not honoured"
    );
    a.restart().await;
    let (_, took) = wait_for(&mut rx, Duration::from_secs(3), |u| has(u, &a, 1)).await;
    assert!(
        took >= Duration::from_millis(80),
        "back after {took:?}: rise not honoured"
    );
    let status = health.status[0].borrow().clone();
    assert!(status.reals.iter().all(|r| r.healthy));
    health.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inhibit_on_failure_keeps_the_real_at_weight_zero() {
    let mut a = Real::start(loopback(2, 0)).await;
    let b = Real::start(loopback(2, 1)).await;
    let check = "tcp_check = { connect_timeout = \"200ms\", retry = 0, warmup = \"0s\" }";
    let text = format!(
        "{VS}inhibit_on_failure = true\n{}{}",
        real_block(&a, &format!("weight = 3\n{check}")),
        real_block(&b, check)
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let health = Health::start(&load(&text), tx);
    wait_for(&mut rx, Duration::from_secs(2), |u| has(u, &a, 3)).await;
    a.stop();
    let (u, _) = wait_for(&mut rx, Duration::from_secs(3), |u| has(u, &a, 0)).await;
    assert!(has(&u, &b, 1));
    // The checks start with the service: one may have reached the listener's backlog
    // before it closed, and fail as "connection reset"; every later one is refused.
    let mut last = None;
    for _ in 0..50 {
        let status = health.status[0].borrow().clone();
        let ra = status
            .reals
            .iter()
            .find(|r| r.port == a.addr.port())
            .cloned()
            .unwrap();
        assert!(!ra.healthy);
        last = ra.last_result;
        if last.as_deref().unwrap_or("").contains("refused") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        last.as_deref().unwrap_or("").contains("refused"),
        "reason logged: {last:?}"
    );
    health.stop();
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lb-health-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn wait_file(p: &std::path::Path) -> bool {
    for _ in 0..100 {
        if p.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_loss_switches_to_the_sorry_server_and_back() {
    let dir = scratch("quorum");
    let mut a = Real::start(loopback(3, 0)).await;
    let mut b = Real::start(loopback(3, 1)).await;
    let c = Real::start(loopback(3, 2)).await;
    let check = "tcp_check = { connect_timeout = \"200ms\", retry = 0, warmup = \"0s\" }";
    let text = format!(
        "{VS}quorum = 2\nsorry_server = {{ address = \"198.18.0.60\", port = 8080 }}\nquorum_up = \"touch {up}\"\nquorum_down = \"touch {down}\"\n{}{}{}",
        real_block(&a, check),
        real_block(&b, check),
        real_block(&c, check),
        up = dir.join("up").display(),
        down = dir.join("down").display()
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let health = Health::start(&load(&text), tx);
    wait_for(&mut rx, Duration::from_secs(2), |u| {
        u.backends.len() == 3 && u.quorum_up
    })
    .await;
    a.stop();
    b.stop();
    let (u, _) = wait_for(&mut rx, Duration::from_secs(3), |u| !u.quorum_up).await;
    assert_eq!(
        u.backends.len(),
        1,
        "only the sorry server: {:?}",
        u.backends
    );
    assert!(u.backends[0].sorry && u.backends[0].port == 8080);
    assert!(wait_file(&dir.join("down")).await, "quorum_down ran");
    a.restart().await;
    b.restart().await;
    let (u, _) = wait_for(&mut rx, Duration::from_secs(3), |u| {
        u.quorum_up && u.backends.len() == 3
    })
    .await;
    assert!(u.backends.iter().all(|b| !b.sorry));
    assert!(wait_file(&dir.join("up")).await, "quorum_up ran");
    health.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misc_dynamic_sets_the_weight_and_scripts_notify() {
    let dir = scratch("misc");
    let code = dir.join("code");
    std::fs::write(&code, "0").unwrap();
    let a = Real::start(loopback(4, 0)).await;
    let misc = format!(
        "weight = 2\nnotify_down = \"touch {down}\"\nmisc_check = {{ misc_path = \"exit $(cat {code})\", misc_timeout = \"1s\", misc_dynamic = true, warmup = \"0s\" }}",
        down = dir.join("down").display(),
        code = code.display()
    );
    let text = format!("{VS}{}", real_block(&a, &misc));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let health = Health::start(&load(&text), tx);
    wait_for(&mut rx, Duration::from_secs(2), |u| has(u, &a, 2)).await;
    std::fs::write(&code, "7").unwrap();
    wait_for(&mut rx, Duration::from_secs(3), |u| has(u, &a, 5)).await;
    std::fs::write(&code, "1").unwrap();
    wait_for(&mut rx, Duration::from_secs(3), |u| absent(u, &a)).await;
    assert!(wait_file(&dir.join("down")).await, "notify_down ran");
    health.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_check_times_out_and_delays_nothing_else() {
    let hang = Real::start_silent(loopback(5, 0)).await;
    let fine = Real::start(loopback(5, 1)).await;
    let text = format!(
        "{VS}{}{}",
        real_block(&hang, "http_get = { connect_timeout = \"300ms\", retry = 0, warmup = \"0s\", url = [{ path = \"/\" }] }"),
        real_block(&fine, "tcp_check = { connect_timeout = \"300ms\", retry = 0, warmup = \"0s\" }")
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let health = Health::start(&load(&text), tx);
    let (_, took) = wait_for(&mut rx, Duration::from_secs(3), |u| absent(u, &hang)).await;
    assert!(
        took < Duration::from_secs(2),
        "the timeout ended the hanging check: {took:?}"
    );
    let before = fine.accepted.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let during = fine.accepted.load(Ordering::Relaxed) - before;
    // 100 ms delay_loop: about 10 checks of the healthy real in that second.
    assert!(
        during >= 7,
        "healthy real checked {during} times in 1 s while the other hangs"
    );
    let status = health.status[0].borrow().clone();
    let h = status
        .reals
        .iter()
        .find(|r| r.port == hang.addr.port())
        .unwrap();
    assert!(
        h.last_result.as_deref().unwrap_or("").contains("timeout"),
        "{:?}",
        h.last_result
    );
    health.stop();
}

/// An HTTP server on `addr` answering every request with 200 and `body`.
async fn http_server(addr: SocketAddr, body: &'static str) -> (SocketAddr, JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind(addr).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_run_over_ipv6() {
    let v6 = |port| SocketAddr::new(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), port);
    let mut tcp = Real::start(v6(0)).await;
    let (http, server) = http_server(v6(0), "ok over IPv6").await;
    let text = format!(
        "[[virtual_server]]\naddress = \"2001:db8:1::100\"\nport = 80\ndelay_loop = \"100ms\"\n{}\n[[virtual_server.real_server]]\naddress = \"::1\"\nport = {}\nhttp_get = {{ connect_timeout = \"300ms\", retry = 0, warmup = \"0s\", url = [{{ path = \"/\", status_code = 200 }}] }}\n",
        real_block(
            &tcp,
            "tcp_check = { connect_timeout = \"200ms\", retry = 0, warmup = \"0s\" }"
        ),
        http.port()
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let health = Health::start(&load(&text), tx);
    let (up, _) = wait_for(&mut rx, Duration::from_secs(3), |u| u.backends.len() == 2).await;
    assert!(up.backends.iter().all(|b| b.addr.is_ipv6()), "{up:?}");
    tcp.stop();
    let (down, _) = wait_for(&mut rx, Duration::from_secs(3), |u| absent(u, &tcp)).await;
    assert!(down.backends.iter().any(|b| b.port == http.port()));
    server.abort();
    let (_, _) = wait_for(&mut rx, Duration::from_secs(3), |u| u.backends.is_empty()).await;
    health.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_check_sets_the_weight_and_the_state_from_the_watched_file() {
    let a = Real::start(loopback(9, 0)).await;
    let dir = scratch("file-check");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("weight");
    std::fs::write(&file, "2\n").unwrap();
    let check = format!(
        "weight = 5\nfile_check = [{{ file = \"{0}\", weight = 3 }}, {{ file = \"{0}.down\", weight = 0 }}]",
        file.display()
    );
    let text = format!("{VS}{}", real_block(&a, &check));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let health = Health::start(&load(&text), tx);
    // 5 + 2 × 3.
    wait_for(&mut rx, Duration::from_secs(5), |u| has(u, &a, 11)).await;
    std::fs::write(&file, "-1").unwrap();
    wait_for(&mut rx, Duration::from_secs(5), |u| has(u, &a, 2)).await;
    // The weight-0 file: non-zero is down.
    std::fs::write(dir.join("weight.down"), "1").unwrap();
    wait_for(&mut rx, Duration::from_secs(5), |u| absent(u, &a)).await;
    std::fs::remove_file(dir.join("weight.down")).unwrap();
    wait_for(&mut rx, Duration::from_secs(5), |u| has(u, &a, 2)).await;
    health.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
