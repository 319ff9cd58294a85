//! keepalived's e-mail alerts and notify FIFOs. Mail is delivered to a real SMTP server
//! the tests start (PyPI's aiosmtpd, storing each message in a Maildir that the tests
//! read back); FIFO lines are read by the `notify_fifo_script` the daemon starts. VRRP
//! instance and sync-group transitions and the stop of a running daemon in a namespace
//! (with a reload that changes the recipients in place), real servers going down and up
//! and a virtual server losing and regaining quorum, and a dead SMTP server that costs
//! nothing but counted failures and drops. Needs root and `cargo xtask setup` (aiosmtpd).

use std::{
    net::SocketAddr,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use lb_daemon::{
    alerts::{
        email::{self, Alert, Mailer, VrrpState},
        fifo::{Carries, FifoSpec, NotifyFifos},
        Alerts,
    },
    config::Config,
    daemon::control,
    health::{from_config::plan, runner::Health},
    netns::{unique_name, Netns},
};
use lb_tests::single_node::SingleNode;
use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle};

/// One delivered message, as the SMTP server stored it.
#[derive(Debug, Clone)]
struct Mail {
    headers: Vec<(String, String)>,
    body: String,
}

impl Mail {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    fn subject(&self) -> &str {
        self.header("Subject")
    }

    fn parse(text: &str) -> Mail {
        let text = text.replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((n, v)) = line.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        Mail {
            headers,
            body: body.trim_end().to_string(),
        }
    }
}

/// aiosmtpd storing every message in `DIR/Maildir`, killed on drop.
struct SmtpServer {
    maildir: PathBuf,
    _child: Child,
}

impl SmtpServer {
    /// On `listen` (HOST:PORT), in `ns` if given.
    fn start(dir: &Path, listen: &str, ns: Option<&Netns>) -> SmtpServer {
        let maildir = dir.join("Maildir");
        let mut argv: Vec<String> = Vec::new();
        if let Some(ns) = ns {
            argv.extend(["ip", "netns", "exec", ns.name()].map(String::from));
        }
        argv.extend(
            [
                "python3",
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                listen,
                "-c",
                "aiosmtpd.handlers.Mailbox",
                maildir.to_str().unwrap(),
            ]
            .map(String::from),
        );
        let log = std::fs::File::create(dir.join("smtpd.log")).unwrap();
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting aiosmtpd (cargo xtask setup installs it)");
        let server = SmtpServer {
            maildir,
            _child: child,
        };
        // Listening once it answers a connection.
        let (host, port) = listen.rsplit_once(':').unwrap();
        let probe = format!("import socket; socket.create_connection(('{host}', {port}), 1)");
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let mut cmd = match ns {
                Some(ns) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", ns.name(), "python3", "-c", &probe]);
                    c
                }
                None => {
                    let mut c = Command::new("python3");
                    c.args(["-c", &probe]);
                    c
                }
            };
            if cmd
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                return server;
            }
            assert!(Instant::now() < end, "aiosmtpd did not start listening");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for(&self, subject: &str, limit: Duration) -> Mail {
        wait_mail(&self.maildir, subject, limit)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self._child.kill();
        let _ = self._child.wait();
    }
}

/// The messages delivered to `maildir`, in delivery order.
fn mails(maildir: &Path) -> Vec<Mail> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(maildir.join("new"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    // Maildir names start with the delivery time.
    files.sort();
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .map(|t| Mail::parse(&t))
        .collect()
}

/// Waits for a message with this subject.
fn wait_mail(maildir: &Path, subject: &str, limit: Duration) -> Mail {
    let end = Instant::now() + limit;
    loop {
        if let Some(m) = mails(maildir).into_iter().find(|m| m.subject() == subject) {
            return m;
        }
        if Instant::now() > end {
            let got: Vec<String> = mails(maildir).iter().map(|m| m.subject().into()).collect();
            panic!("no mail `{subject}` within {limit:?}; got {got:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(tag));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const EMAIL: &str = r#"notification_email = ["ops@example.com", "oncall@example.com"]
notification_email_from = "lb@example.com"
smtp_helo_name = "lb.example.com"
smtp_connect_timeout = "2s"
"#;

fn daemon_config(dir: &Path, email: &str) -> String {
    format!(
        r#"[global]
router_id = "lb-mail"
control_socket = "{dir}/lb.sock"
smtp_server = "127.0.0.1 2525"
smtp_alert = true
notify_fifo = "{dir}/notify.fifo"
notify_fifo_script = "sh -c 'while read -r l; do echo \"$l\" >> {dir}/fifo.log; done < \"$0\"'"
{email}
[[vrrp_instance]]
name = "VI_1"
interface = "d0"
state = "MASTER"
virtual_router_id = 61
priority = 150
advert_int = 1
virtual_ipaddress = ["192.0.2.100/32"]

[[vrrp_sync_group]]
name = "G1"
group = ["VI_1"]
"#,
        dir = dir.display()
    )
}

fn fifo_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("fifo.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn wait_line(dir: &Path, line: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    while !fifo_lines(dir).iter().any(|l| l == line) {
        assert!(
            Instant::now() < end,
            "no FIFO line {line:?}: {:?}",
            fifo_lines(dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ask(dir: &Path, command: &str) -> String {
    let sock = dir.join("lb.sock");
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        match control::request(&sock, command, Duration::from_secs(10)) {
            Ok(reply) => return reply,
            Err(e) if Instant::now() > end => panic!("{command}: {e:#}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn vrrp_transitions_reload_and_stop_are_mailed_and_written_to_the_fifo() {
    let mut node = SingleNode::new("lb-mail");
    let dir = node.dir.clone();
    // The server first: the daemon's first transition is mailed at once.
    let smtp = SmtpServer::start(&dir, "127.0.0.1:2525", Some(&node.ns));
    node.start(&daemon_config(&dir, EMAIL));
    let master = smtp.wait_for(
        "[lb-mail] VRRP Instance VI_1 - Entering MASTER state",
        Duration::from_secs(15),
    );
    assert_eq!(master.body, "=> VRRP Instance is now owning VRRP VIPs <=");
    assert_eq!(master.header("From"), "lb@example.com");
    assert_eq!(master.header("To"), "ops@example.com, oncall@example.com");
    assert_eq!(master.header("X-Mailer"), "lb-daemon");
    assert!(!master.header("Date").is_empty());
    let group = smtp.wait_for(
        "[lb-mail] VRRP Group G1 - Entering MASTER state",
        Duration::from_secs(10),
    );
    assert_eq!(
        group.body,
        "=> All VRRP group instances are now in MASTER state <="
    );
    // The same events on the FIFO, read by the script the daemon started.
    wait_line(&dir, "INSTANCE \"VI_1\" MASTER 150");
    wait_line(&dir, "GROUP \"G1\" MASTER 0");
    // Every alert so far delivered (counted once the server has answered QUIT).
    let delivered = mails(&smtp.maildir).len() as u64;
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let status: serde_json::Value = serde_json::from_str(&ask(&dir, "status")).unwrap();
        let email = &status["email"];
        if email["sent"].as_u64() >= Some(delivered) {
            assert_eq!(
                (email["failed"].as_u64(), email["dropped"].as_u64()),
                (Some(0), Some(0))
            );
            break;
        }
        assert!(Instant::now() < end, "{status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Reload: only the recipients change; applied in place.
    let config = dir.join("lb.toml");
    std::fs::write(
        &config,
        daemon_config(
            &dir,
            &EMAIL.replace(
                r#"["ops@example.com", "oncall@example.com"]"#,
                r#"["noc@example.com"]"#,
            ),
        ),
    )
    .unwrap();
    let reply = ask(&dir, "reload");
    assert!(reply.contains("reloaded"), "{reply}");
    let reply = ask(&dir, "stop");
    assert!(reply.contains("stopping"), "{reply}");
    let stop = smtp.wait_for(
        "[lb-mail] VRRP Instance VI_1 - Stopping",
        Duration::from_secs(15),
    );
    assert_eq!(stop.body, "=> VRRP Instance stopping <=");
    assert_eq!(
        stop.header("To"),
        "noc@example.com",
        "the reloaded recipients"
    );
    assert!(
        stop.header("X-RcptTo").contains("noc@example.com"),
        "envelope: {:?}",
        stop.headers
    );
    assert_eq!(stop.header("X-MailFrom"), "lb@example.com");
    wait_line(&dir, "INSTANCE \"VI_1\" STOP 150");
    // The FIFO the daemon created is gone once it has stopped.
    let end = Instant::now() + Duration::from_secs(10);
    while dir.join("notify.fifo").exists() {
        assert!(Instant::now() < end, "the FIFO was not removed at stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(node);
}

/// A TCP listener that accepts and closes; dropping it refuses.
struct Real {
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Real {
    async fn start(addr: SocketAddr) -> Real {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                drop(s);
            }
        });
        Real {
            addr,
            task: Some(task),
        }
    }

    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        self.stop();
    }
}

fn load(text: &str) -> Config {
    match Config::from_str(text, "test.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("config:\n{e}\n{text}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_server_and_quorum_alerts_are_keepalived_s_mails() {
    let dir = scratch("lb-mail-rs");
    let port = free_port();
    let smtp_dir = dir.clone();
    let smtp = tokio::task::spawn_blocking(move || {
        SmtpServer::start(&smtp_dir, &format!("127.0.0.1:{port}"), None)
    })
    .await
    .unwrap();
    let mut real = Real::start("127.0.0.61:0".parse().unwrap()).await;
    let text = format!(
        r#"[global]
router_id = "lb-mail"
smtp_server = "127.0.0.1 {port}"
{EMAIL}
[[virtual_server]]
address = "198.18.0.100"
port = 80
delay_loop = "100ms"
quorum = 1
smtp_alert = true

[[virtual_server.real_server]]
address = "127.0.0.61"
port = {rport}
tcp_check = {{ connect_timeout = "200ms", retry = 0, warmup = "0s" }}
"#,
        rport = real.addr.port()
    );
    let config = load(&text);
    let mailer = Mailer::start(email::Settings::from_config(&config.global, "host"));
    let fifo = dir.join("lvs.fifo");
    let fifos = NotifyFifos::open(
        &[FifoSpec {
            path: fifo.clone(),
            script: None,
            carries: Carries::Lvs,
        }],
        None,
    )
    .unwrap();
    let alerts = Alerts {
        mailer: Some(mailer.clone()),
        fifos: Some(fifos.clone()),
    };
    let (tx, _rx) = mpsc::unbounded_channel();
    let health = Health::run(plan(&config), tx, alerts);
    tokio::time::sleep(Duration::from_millis(500)).await;
    real.stop();
    let rs = format!(
        "[lb-mail] Realserver [127.0.0.61]:tcp:{} of virtual server [198.18.0.100]:tcp:80",
        real.addr.port()
    );
    let wait = |subject: String| {
        let maildir = smtp.maildir.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                wait_mail(&maildir, &subject, Duration::from_secs(10))
            })
            .await
            .unwrap()
        }
    };
    let down = wait(format!("{rs} - DOWN")).await;
    assert_eq!(down.body, "=> TCP CHECK failed on service <=");
    assert_eq!(down.header("To"), "ops@example.com, oncall@example.com");
    let lost = wait("[lb-mail] Virtualserver [198.18.0.100]:tcp:80 - DOWN".into()).await;
    assert_eq!(lost.body, "=> Lost quorum 1+0=1 <= 0 <=");
    let mut again = Real::start(real.addr).await;
    let up = wait(format!("{rs} - UP")).await;
    assert_eq!(up.body, "=> TCP CHECK succeed on service <=");
    let gained = wait("[lb-mail] Virtualserver [198.18.0.100]:tcp:80 - UP".into()).await;
    assert_eq!(gained.body, "=> Gained quorum 1+0=1 <= 1 <=");
    assert_eq!(mailer.counters().sent.load(Ordering::Relaxed), 4);
    assert_eq!(mailer.counters().failed.load(Ordering::Relaxed), 0);
    // keepalived's LVS lines, in order, on the FIFO (read without blocking: the daemon's
    // own descriptor keeps it open).
    let mut text = String::new();
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let _ = std::io::Read::read_to_string(&mut reader, &mut text);
    let rs_line = format!(
        "RS [127.0.0.61]:tcp:{} [198.18.0.100]:tcp:80",
        real.addr.port()
    );
    assert_eq!(
        text,
        format!(
            "{rs_line} DOWN\nVS [198.18.0.100]:tcp:80 DOWN\n{rs_line} UP\nVS [198.18.0.100]:tcp:80 UP\n"
        )
    );
    fifos.close().await;
    again.stop();
    health.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_smtp_server_costs_nothing_but_counted_failures_and_drops() {
    // A server that accepts and never says a word: every delivery waits for its timeout.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            held.push(s);
        }
    });
    let text = format!(
        "[global]\nsmtp_server = \"127.0.0.1 {}\"\nsmtp_alert = true\n\
         notification_email = [\"ops@example.com\"]\nsmtp_connect_timeout = \"1s\"\n\
         [[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"lo\"\nvirtual_router_id = 1\n",
        silent.port()
    );
    let config = load(&text);
    let mailer = Mailer::start(email::Settings::from_config(&config.global, "host"));
    let alert = || Alert::Instance {
        name: "VI_1".into(),
        state: VrrpState::Master,
    };
    // 100 alerts at once: the queue holds 64, one is being delivered, the rest are
    // dropped; sending never waits for the server.
    for _ in 0..100 {
        mailer.send(alert(), None);
    }
    let dropped = mailer.counters().dropped.load(Ordering::Relaxed);
    assert!((35..=36).contains(&dropped), "dropped {dropped}");
    // The first delivery times out (1 s without a greeting): a failure, counted.
    let end = Instant::now() + Duration::from_secs(10);
    while mailer.counters().failed.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < end, "no failure counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(accepted.load(Ordering::Relaxed) >= 1);
    assert_eq!(mailer.counters().sent.load(Ordering::Relaxed), 0);
    // A refused port fails at connect.
    let refused = format!(
        "[global]\nsmtp_server = \"127.0.0.1 {}\"\nnotification_email = [\"ops@example.com\"]\n",
        free_port()
    );
    let other = Mailer::start(email::Settings::from_config(&load(&refused).global, "host"));
    other.send(alert(), Some(true));
    other.flush(Duration::from_secs(5)).await;
    assert_eq!(other.counters().failed.load(Ordering::Relaxed), 1);
    // Without smtp_alert anywhere an instance sends nothing (keepalived's default).
    other.send(alert(), None);
    other.flush(Duration::from_secs(5)).await;
    assert_eq!(other.counters().failed.load(Ordering::Relaxed), 1);
}
