//! A client for BIRD 2's control socket (what `birdc` talks to).
//!
//! BIRD's reply protocol (BIRD 2 user's guide, "Remote control"): every line starts with a
//! 4-digit code followed by `-` (more lines of this reply follow) or a space (the last line
//! of the reply); a line starting with a space continues the previous code. 0xxx codes end
//! an action (`0000` ends a table, `0001` is the greeting), 1xxx are table rows, 2xxx table
//! headings, 8xxx run-time errors and 9xxx parse errors. A `+` after the code marks a
//! spontaneous message that is no part of any reply.
//!
//! [`ReplyParser`] is the pure parser of that stream, [`parse_protocols`] reads the table of
//! `show protocols` and [`BirdClient`] is the async client with its timeouts.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// Where Debian's bird2 package puts the control socket.
pub const DEFAULT_SOCKET: &str = "/run/bird/bird.ctl";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest line accepted from BIRD: a runaway reply must not eat the daemon's memory.
const MAX_LINE: usize = 64 * 1024;
/// Code of the greeting BIRD sends on connect ("0001 BIRD 2.0.12 ready.").
const GREETING: u16 = 1;
/// Code of a `show protocols` row.
const PROTOCOL_ROW: u16 = 1002;

/// One line of a reply, with its code (continuation lines carry the code they continue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyLine {
    pub code: u16,
    pub text: String,
}

/// One complete reply: the lines up to and including the one whose code ends in a space.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    pub lines: Vec<ReplyLine>,
}

impl Reply {
    /// The first error line (8xxx run-time, 9xxx parse error), if any.
    pub fn error(&self) -> Option<&ReplyLine> {
        self.lines.iter().find(|l| is_error(l.code))
    }

    /// Lines with this code.
    pub fn with_code(&self, code: u16) -> impl Iterator<Item = &ReplyLine> + '_ {
        self.lines.iter().filter(move |l| l.code == code)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{:04} {}", line.code, line.text)?;
        }
        Ok(())
    }
}

pub fn is_error(code: u16) -> bool {
    (8000..10000).contains(&code)
}

/// A line that breaks BIRD's reply protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error(
        "line {line:?} neither starts with a 4-digit code and '-', ' ' or '+' nor with a space"
    )]
    BadLine { line: String },
    #[error("continuation line {line:?} comes before any coded line")]
    OrphanContinuation { line: String },
}

/// Turns the stream of lines (without their newline) into replies. Pure: no IO.
#[derive(Debug, Default)]
pub struct ReplyParser {
    pending: Vec<ReplyLine>,
}

impl ReplyParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next line; returns the reply it completes, if it is a last line.
    pub fn push_line(&mut self, line: &str) -> Result<Option<Reply>, ProtocolError> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(text) = line.strip_prefix(' ') {
            let Some(last) = self.pending.last() else {
                return Err(ProtocolError::OrphanContinuation {
                    line: line.to_owned(),
                });
            };
            let code = last.code;
            self.pending.push(ReplyLine {
                code,
                text: text.to_owned(),
            });
            return Ok(None);
        }
        let bad = || ProtocolError::BadLine {
            line: line.to_owned(),
        };
        let code = line
            .get(..4)
            .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(bad)?;
        // A bare code ("0000" without its space) happens when the writer trims lines.
        let (sep, text) = match line.as_bytes().get(4) {
            // A multi-byte character at byte 4 is no separator: a bad line, not a panic.
            Some(&s) => (s, line.get(5..).unwrap_or("")),
            None => (b' ', ""),
        };
        match sep {
            b'+' => {
                // Spontaneous message: not part of the reply being read.
                tracing::debug!(code, text, "BIRD notification");
                Ok(None)
            }
            b'-' | b' ' => {
                self.pending.push(ReplyLine {
                    code,
                    text: text.to_owned(),
                });
                if sep == b'-' {
                    return Ok(None);
                }
                Ok(Some(Reply {
                    lines: std::mem::take(&mut self.pending),
                }))
            }
            _ => Err(bad()),
        }
    }

    /// Whether a reply has started and not ended.
    pub fn in_reply(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// Parses a whole recorded stream (greeting included) into replies; a trailing incomplete
/// reply is dropped.
pub fn parse_replies(stream: &str) -> Result<Vec<Reply>, ProtocolError> {
    let mut parser = ReplyParser::new();
    let mut replies = Vec::new();
    for line in stream.lines() {
        replies.extend(parser.push_line(line)?);
    }
    Ok(replies)
}

/// One row of `show protocols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    /// BIRD's protocol type: `BGP`, `Device`, `Direct`, `BFD`, ...
    pub proto: String,
    /// `---` for protocols with channels.
    pub table: String,
    /// `up`, `down`, `start`, `stop`.
    pub state: String,
    pub since: String,
    /// For BGP: the session state, then the last error (`Active  Socket: Connection refused`).
    pub info: String,
}

/// Whether a BGP session carries routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Up,
    Down,
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionState::Up => "up",
            SessionState::Down => "down",
        })
    }
}

/// A BGP session as `status` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpSession {
    /// The protocol's name in bird.conf (e.g. `router1`).
    pub name: String,
    pub state: SessionState,
    /// BIRD's own words: `Established`, `Active  Socket: Connection refused`, `` (disabled).
    pub info: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`show protocols` row {line:?} has fewer than 5 columns (name proto table state since)")]
pub struct BadProtocolRow {
    pub line: String,
}

/// The rows (code 1002) of a `show protocols` reply.
pub fn parse_protocols(reply: &Reply) -> Result<Vec<Protocol>, BadProtocolRow> {
    reply
        .with_code(PROTOCOL_ROW)
        .map(|l| parse_protocol_row(&l.text))
        .collect()
}

fn parse_protocol_row(line: &str) -> Result<Protocol, BadProtocolRow> {
    let mut words = line.split_whitespace();
    let mut next = || {
        words
            .next()
            .map(str::to_owned)
            .ok_or_else(|| BadProtocolRow {
                line: line.to_owned(),
            })
    };
    let (name, proto, table, state, mut since) = (next()?, next()?, next()?, next()?, next()?);
    let mut rest: Vec<&str> = words.collect();
    // `timeformat protocol iso long` prints the date and the time: two words.
    if since.contains('-') && rest.first().is_some_and(|w| is_time(w)) {
        since = format!("{since} {}", rest.remove(0));
    }
    Ok(Protocol {
        name,
        proto,
        table,
        state,
        since,
        info: rest.join(" "),
    })
}

fn is_time(word: &str) -> bool {
    word.contains(':')
        && word
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b':' || b == b'.')
}

/// The BGP sessions among the protocols: up only when BIRD says `up` and `Established`.
pub fn bgp_sessions(protocols: &[Protocol]) -> Vec<BgpSession> {
    protocols
        .iter()
        .filter(|p| p.proto == "BGP")
        .map(|p| BgpSession {
            name: p.name.clone(),
            state: if p.state == "up" && p.info.starts_with("Established") {
                SessionState::Up
            } else {
                SessionState::Down
            },
            info: p.info.clone(),
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    #[error(
        "BIRD's control socket {} does not exist: is bird running? (systemctl start bird)",
        .path.display()
    )]
    NoSocket { path: PathBuf },
    #[error(
        "permission denied on BIRD's control socket {}: run as root or in bird's group",
        .path.display()
    )]
    PermissionDenied { path: PathBuf },
    #[error(
        "nothing listens on BIRD's control socket {} (stale socket): is bird running? \
         (systemctl start bird)",
        .path.display()
    )]
    Refused { path: PathBuf },
    #[error("cannot connect to BIRD's control socket {}: {source}", .path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("BIRD did not {what} on {} within {timeout:?}", .path.display())]
    Timeout {
        path: PathBuf,
        what: String,
        timeout: Duration,
    },
    #[error("BIRD's control socket {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("BIRD closed its control socket {} before the reply ended", .path.display())]
    Closed { path: PathBuf },
    #[error("unexpected reply on BIRD's control socket {}: {source}", .path.display())]
    Protocol {
        path: PathBuf,
        #[source]
        source: ProtocolError,
    },
    #[error("BIRD's greeting on {} is {greeting:?}, not `0001 BIRD ... ready.`", .path.display())]
    Greeting { path: PathBuf, greeting: String },
    #[error("BIRD refused `{command}`: {code} {message}")]
    Refusal {
        command: String,
        code: u16,
        message: String,
    },
    #[error("`{command}`: {source}")]
    BadTable {
        command: String,
        #[source]
        source: BadProtocolRow,
    },
    #[error("BIRD sent a line longer than {MAX_LINE} bytes on {}", .path.display())]
    LineTooLong { path: PathBuf },
    #[error("a BIRD command is one line: {command:?}")]
    BadCommand { command: String },
}

/// Where and how patiently to reach BIRD. Cheap to clone; each call opens a connection.
#[derive(Debug, Clone)]
pub struct BirdClient {
    pub socket: PathBuf,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

impl Default for BirdClient {
    fn default() -> Self {
        Self::new(DEFAULT_SOCKET)
    }
}

impl BirdClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        BirdClient {
            socket: socket.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Connects and reads the greeting (both within `connect_timeout`).
    pub async fn connect(&self) -> Result<BirdConnection, BirdError> {
        let path = self.socket.clone();
        let timeout = self.connect_timeout;
        let timed_out = || BirdError::Timeout {
            path: path.clone(),
            what: "accept the connection and greet".into(),
            timeout,
        };
        let stream = tokio::time::timeout(timeout, UnixStream::connect(&path))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| connect_error(&path, e))?;
        let (read, write) = stream.into_split();
        let mut conn = BirdConnection {
            path: path.clone(),
            reader: BufReader::new(read),
            writer: write,
            parser: ReplyParser::new(),
            command_timeout: self.command_timeout,
            version: String::new(),
        };
        let greeting = tokio::time::timeout(timeout, conn.read_reply())
            .await
            .map_err(|_| timed_out())??;
        conn.version = match greeting.lines.as_slice() {
            [line] if line.code == GREETING => line.text.trim_end_matches(" ready.").to_owned(),
            _ => {
                return Err(BirdError::Greeting {
                    path,
                    greeting: greeting.to_string(),
                })
            }
        };
        Ok(conn)
    }

    /// One-shot: connects, reads `show protocols` and returns the BGP sessions.
    pub async fn bgp_sessions(&self) -> Result<Vec<BgpSession>, BirdError> {
        self.connect().await?.bgp_sessions().await
    }
}

fn connect_error(path: &Path, source: io::Error) -> BirdError {
    let path = path.to_owned();
    match source.kind() {
        io::ErrorKind::NotFound => BirdError::NoSocket { path },
        io::ErrorKind::PermissionDenied => BirdError::PermissionDenied { path },
        io::ErrorKind::ConnectionRefused => BirdError::Refused { path },
        _ => BirdError::Connect { path, source },
    }
}

/// An open control connection; commands run one at a time.
#[derive(Debug)]
pub struct BirdConnection {
    path: PathBuf,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    parser: ReplyParser,
    command_timeout: Duration,
    version: String,
}

impl BirdConnection {
    /// From the greeting, e.g. `BIRD 2.0.12`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Sends one command and reads its whole reply; a reply with an error code is an error.
    pub async fn command(&mut self, command: &str) -> Result<Reply, BirdError> {
        if command.contains(['\n', '\r']) {
            return Err(BirdError::BadCommand {
                command: command.to_owned(),
            });
        }
        let timeout = self.command_timeout;
        let reply = tokio::time::timeout(timeout, async {
            let line = format!("{command}\n");
            self.writer
                .write_all(line.as_bytes())
                .await
                .map_err(|source| self.io_error(source))?;
            self.read_reply().await
        })
        .await
        .map_err(|_| BirdError::Timeout {
            path: self.path.clone(),
            what: format!("answer `{command}`"),
            timeout,
        })??;
        match reply.error() {
            Some(line) => Err(BirdError::Refusal {
                command: command.to_owned(),
                code: line.code,
                message: line.text.clone(),
            }),
            None => Ok(reply),
        }
    }

    pub async fn show_protocols(&mut self) -> Result<Vec<Protocol>, BirdError> {
        const COMMAND: &str = "show protocols";
        let reply = self.command(COMMAND).await?;
        parse_protocols(&reply).map_err(|source| BirdError::BadTable {
            command: COMMAND.into(),
            source,
        })
    }

    pub async fn bgp_sessions(&mut self) -> Result<Vec<BgpSession>, BirdError> {
        Ok(bgp_sessions(&self.show_protocols().await?))
    }

    async fn read_reply(&mut self) -> Result<Reply, BirdError> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = (&mut self.reader)
                .take(MAX_LINE as u64)
                .read_line(&mut line)
                .await
                .map_err(|source| self.io_error(source))?;
            if n == 0 {
                return Err(BirdError::Closed {
                    path: self.path.clone(),
                });
            }
            if n == MAX_LINE && !line.ends_with('\n') {
                return Err(BirdError::LineTooLong {
                    path: self.path.clone(),
                });
            }
            let text = line.strip_suffix('\n').unwrap_or(&line);
            let done = self
                .parser
                .push_line(text)
                .map_err(|source| BirdError::Protocol {
                    path: self.path.clone(),
                    source,
                })?;
            if let Some(reply) = done {
                return Ok(reply);
            }
        }
    }

    fn io_error(&self, source: io::Error) -> BirdError {
        BirdError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    // Recorded from BIRD 2.0.12 (birdc's socket, raw bytes) in network namespaces.
    const ESTABLISHED: &str = include_str!("testdata/show_protocols_established.txt");
    const ACTIVE: &str = include_str!("testdata/show_protocols_active.txt");
    const ALL_ACTIVE: &str = include_str!("testdata/show_protocols_all_active.txt");
    const DISABLE_ENABLE: &str = include_str!("testdata/disable_enable.txt");
    const ERRORS: &str = include_str!("testdata/errors.txt");
    const STATUS: &str = include_str!("testdata/show_status.txt");

    fn one(stream: &str) -> Reply {
        let mut replies = parse_replies(stream).unwrap();
        assert_eq!(replies.len(), 1, "{replies:?}");
        replies.remove(0)
    }

    fn line(code: u16, text: &str) -> ReplyLine {
        ReplyLine {
            code,
            text: text.into(),
        }
    }

    #[test]
    fn greeting_and_table_are_two_replies() {
        let replies = parse_replies(ESTABLISHED).unwrap();
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0].lines, [line(1, "BIRD 2.0.12 ready.")]);
        let table = &replies[1];
        assert_eq!(table.lines.len(), 6);
        assert_eq!(table.lines[0].code, 2002);
        // Continuation lines take the code of the line they continue.
        assert_eq!(table.with_code(1002).count(), 4);
        assert_eq!(table.lines[5], line(0, ""));
        assert!(table.error().is_none());
    }

    #[test]
    fn continuation_lines_keep_their_leading_text() {
        let reply = one(ALL_ACTIVE);
        let detail: Vec<&str> = reply.with_code(1006).map(|l| l.text.as_str()).collect();
        assert_eq!(detail[0], "  BGP state:          Active");
        assert_eq!(detail[1], "    Neighbor address: 10.99.0.1");
        assert!(detail.contains(&"    Last error:       Socket: Connection refused"));
        assert_eq!(detail.last(), Some(&""));
    }

    #[test]
    fn a_reply_ends_at_any_code_followed_by_a_space() {
        let reply = one(STATUS);
        assert_eq!(
            reply.lines.last(),
            Some(&line(13, "Daemon is up and running"))
        );
        assert_eq!(reply.with_code(1011).count(), 5);
        let replies = parse_replies(DISABLE_ENABLE).unwrap();
        assert_eq!(replies.len(), 3);
        assert_eq!(
            replies[0].lines,
            [line(9, "router1: disabled"), line(0, "")]
        );
        assert_eq!(
            replies[2].lines,
            [line(11, "router1: enabled"), line(0, "")]
        );
    }

    #[test]
    fn errors_are_one_line_replies() {
        let replies = parse_replies(ERRORS).unwrap();
        assert_eq!(replies.len(), 2);
        let parse = replies[0].error().unwrap();
        assert_eq!(parse.code, 9001);
        assert!(parse.text.starts_with("syntax error"));
        assert_eq!(replies[1].error(), Some(&line(8001, "Network not found")));
    }

    #[test]
    fn a_non_ascii_character_after_the_code_is_a_bad_line() {
        // Found by the `bird_reply` fuzz target: slicing at byte 5 inside a character.
        let mut p = ReplyParser::new();
        assert!(matches!(
            p.push_line("0000\u{18f}x"),
            Err(ProtocolError::BadLine { .. })
        ));
    }

    #[test]
    fn parser_edge_cases() {
        let mut p = ReplyParser::new();
        assert!(matches!(
            p.push_line(" orphan"),
            Err(ProtocolError::OrphanContinuation { .. })
        ));
        for bad in ["", "abc", "12a4 x", "1234x", "BIRD ready"] {
            assert!(
                matches!(p.push_line(bad), Err(ProtocolError::BadLine { .. })),
                "{bad:?}"
            );
        }
        // A spontaneous message in the middle of a reply is skipped.
        assert_eq!(p.push_line("1002-a").unwrap(), None);
        assert!(p.in_reply());
        assert_eq!(p.push_line("0017+reconfigured").unwrap(), None);
        let reply = p.push_line("0000\r").unwrap().unwrap();
        assert_eq!(reply.lines, [line(1002, "a"), line(0, "")]);
        assert!(!p.in_reply());
        // An unfinished reply at the end of a recording is dropped.
        assert!(parse_replies("1002-a\n b\n").unwrap().is_empty());
    }

    #[test]
    fn show_protocols_established() {
        let replies = parse_replies(ESTABLISHED).unwrap();
        let protocols = parse_protocols(&replies[1]).unwrap();
        assert_eq!(protocols.len(), 4);
        assert_eq!(
            protocols[3],
            Protocol {
                name: "router1".into(),
                proto: "BGP".into(),
                table: "---".into(),
                state: "up".into(),
                since: "17:26:35.507".into(),
                info: "Established".into(),
            }
        );
        assert_eq!(protocols[1].proto, "Direct");
        assert_eq!(protocols[1].info, "");
        assert_eq!(
            bgp_sessions(&protocols),
            [BgpSession {
                name: "router1".into(),
                state: SessionState::Up,
                info: "Established".into(),
            }]
        );
    }

    #[test]
    fn show_protocols_active_and_disabled() {
        let protocols = parse_protocols(&one(ACTIVE)).unwrap();
        let sessions = bgp_sessions(&protocols);
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].state, SessionState::Down);
        assert_eq!(sessions[0].info, "Active Socket: Connection refused");

        let replies = parse_replies(DISABLE_ENABLE).unwrap();
        let sessions = bgp_sessions(&parse_protocols(&replies[1]).unwrap());
        assert_eq!(sessions[0].state, SessionState::Down);
        assert_eq!(sessions[0].info, "");
        // `show protocols all`: the detail lines are no rows.
        assert_eq!(parse_protocols(&one(ALL_ACTIVE)).unwrap().len(), 1);
    }

    #[test]
    fn show_protocols_rows_in_other_shapes() {
        let reply = Reply {
            lines: vec![
                line(1002, "r1 BGP --- up 2026-12-04 17:26:35 Established"),
                line(1002, "r2 BGP --- start 2026-12-03 Connect"),
                line(1002, "r3 BGP --- up 17:00:00.000 Established  "),
            ],
        };
        let p = parse_protocols(&reply).unwrap();
        assert_eq!(p[0].since, "2026-12-04 17:26:35");
        assert_eq!(p[0].info, "Established");
        assert_eq!(
            (p[1].since.as_str(), p[1].info.as_str()),
            ("2026-12-03", "Connect")
        );
        assert_eq!(bgp_sessions(&p)[2].state, SessionState::Up);
        let short = Reply {
            lines: vec![line(1002, "r1 BGP --- up")],
        };
        assert!(parse_protocols(&short).is_err());
    }

    /// A fake BIRD: greets with `greeting`, then answers each command from `answers`.
    async fn fake_bird(
        greeting: &'static str,
        answers: Vec<&'static str>,
    ) -> (tempdir::Dir, BirdClient) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("bird.ctl");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            write.write_all(greeting.as_bytes()).await.unwrap();
            let mut lines = BufReader::new(read).lines();
            for answer in answers {
                if lines.next_line().await.unwrap().is_none() {
                    return;
                }
                write.write_all(answer.as_bytes()).await.unwrap();
            }
            // Then silent, with the connection open, until the client closes it.
            while let Ok(Some(_)) = lines.next_line().await {}
        });
        let mut client = BirdClient::new(&path);
        client.connect_timeout = Duration::from_millis(300);
        client.command_timeout = Duration::from_millis(300);
        (dir, client)
    }

    mod tempdir {
        /// A directory removed on drop.
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(crate::netns::unique_name("lb-bird-test"));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const GREETING_LINE: &str = "0001 BIRD 2.0.12 ready.\n";

    #[tokio::test]
    async fn client_reads_sessions_and_errors() {
        let (_dir, client) = fake_bird(GREETING_LINE, vec![ACTIVE, "9001 syntax error\n"]).await;
        let mut conn = client.connect().await.unwrap();
        assert_eq!(conn.version(), "BIRD 2.0.12");
        let sessions = conn.bgp_sessions().await.unwrap();
        assert_eq!(sessions[0].name, "router1");
        assert_eq!(sessions[0].state, SessionState::Down);
        let err = conn.command("show nosuch").await.unwrap_err();
        assert!(
            matches!(err, BirdError::Refusal { code: 9001, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "BIRD refused `show nosuch`: 9001 syntax error"
        );
        // The fake says no more: the command times out.
        let err = conn.command("show status").await.unwrap_err();
        assert!(matches!(err, BirdError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("answer `show status`"), "{err}");
        let err = conn.command("a\nb").await.unwrap_err();
        assert!(matches!(err, BirdError::BadCommand { .. }), "{err}");
    }

    #[tokio::test]
    async fn client_rejects_a_silent_or_strange_peer() {
        let (_dir, client) = fake_bird("", vec![]).await;
        let err = client.connect().await.unwrap_err();
        assert!(matches!(err, BirdError::Timeout { .. }), "{err}");
        let (_dir, client) = fake_bird("2002-x\n0000 \n", vec![]).await;
        let err = client.connect().await.unwrap_err();
        assert!(matches!(err, BirdError::Greeting { .. }), "{err}");
        let (_dir, client) = fake_bird("hello\n", vec![]).await;
        let err = client.connect().await.unwrap_err();
        assert!(matches!(err, BirdError::Protocol { .. }), "{err}");
    }

    #[tokio::test]
    async fn missing_socket_says_to_start_bird() {
        let err = BirdClient::default().connect().await;
        if std::path::Path::new(DEFAULT_SOCKET).exists() {
            return; // a real BIRD on this machine: nothing to check here
        }
        assert_eq!(
            err.unwrap_err().to_string(),
            "BIRD's control socket /run/bird/bird.ctl does not exist: is bird running? \
             (systemctl start bird)"
        );
    }

    #[tokio::test]
    async fn stale_socket_and_closed_connection() {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("bird.ctl");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let err = BirdClient::new(&path).connect().await.unwrap_err();
        assert!(matches!(err, BirdError::Refused { .. }), "{err}");

        let (_dir, client) = fake_bird(GREETING_LINE, vec!["1002-partial\n"]).await;
        let mut conn = client.connect().await.unwrap();
        // The fake's task ends after its answers only when the peer closes: force it.
        let err = conn.command("show protocols").await.unwrap_err();
        assert!(
            matches!(err, BirdError::Timeout { .. } | BirdError::Closed { .. }),
            "{err}"
        );
    }

    #[test]
    fn permission_denied_is_named() {
        let e = connect_error(
            Path::new("/run/bird/bird.ctl"),
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert_eq!(
            e.to_string(),
            "permission denied on BIRD's control socket /run/bird/bird.ctl: run as root or \
             in bird's group"
        );
        let e = connect_error(Path::new("/x"), io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(e, BirdError::Connect { .. }));
    }
}
