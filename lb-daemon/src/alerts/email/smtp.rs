//! Sending one message: keepalived's SMTP client (core/smtp.c) as a pure dialogue
//! (which command follows which reply) and a small IO shell around it, every step under
//! `smtp_connect_timeout`.

use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest reply line read (keepalived's buffer is 1024 bytes).
const MAX_LINE: usize = 1024;
/// Most lines of one (multi-line) reply.
const MAX_REPLY_LINES: usize = 64;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SendError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("timeout waiting for the {0} reply")]
    Timeout(&'static str),
    #[error("{0} refused with {1}")]
    Refused(&'static str, u16),
    #[error("the server closed the connection during {0}")]
    Closed(&'static str),
    #[error("malformed reply to {0}: {1}")]
    Malformed(&'static str, String),
    #[error("{0}")]
    Io(String),
}

/// Where the dialogue stands: what was sent last, so which reply is awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Greeting,
    Helo,
    Mail,
    Rcpt(usize),
    Data,
    Body,
    Quit,
}

impl Stage {
    fn expected(self) -> u16 {
        match self {
            Stage::Greeting => 220,
            Stage::Data => 354,
            Stage::Quit => 221,
            _ => 250,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stage::Greeting => "greeting",
            Stage::Helo => "HELO",
            Stage::Mail => "MAIL",
            Stage::Rcpt(_) => "RCPT",
            Stage::Data => "DATA",
            Stage::Body => "message",
            Stage::Quit => "QUIT",
        }
    }
}

/// What to do after a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Send(String),
    /// The conversation is over: delivered (`Ok`) or not.
    Done(Result<(), SendError>),
}

/// The client side of one delivery (HELO, MAIL, one RCPT per recipient, DATA, QUIT).
#[derive(Debug)]
pub struct Dialogue {
    stage: Stage,
    helo: String,
    from: String,
    to: Vec<String>,
    data: String,
    /// Set once the message is accepted (or refused): QUIT follows either way.
    outcome: Option<Result<(), SendError>>,
}

impl Dialogue {
    pub fn new(helo: &str, from: &str, to: &[String], data: String) -> Self {
        Self {
            stage: Stage::Greeting,
            helo: helo.into(),
            from: from.into(),
            to: to.to_vec(),
            data,
            outcome: None,
        }
    }

    /// The reply that is awaited now (for errors).
    pub fn awaiting(&self) -> &'static str {
        self.stage.name()
    }

    /// The next step after the reply `code` to the last command.
    pub fn on_reply(&mut self, code: u16) -> Step {
        let stage = self.stage;
        if stage == Stage::Quit {
            return Step::Done(self.outcome.take().unwrap_or(Ok(())));
        }
        if code != stage.expected() {
            // keepalived: any unexpected code ends the conversation with QUIT.
            self.outcome = Some(Err(SendError::Refused(stage.name(), code)));
            return self.quit();
        }
        let (next, command) = match stage {
            Stage::Greeting => (Stage::Helo, format!("HELO {}\r\n", self.helo)),
            Stage::Helo => (Stage::Mail, format!("MAIL FROM:<{}>\r\n", self.from)),
            Stage::Mail | Stage::Rcpt(_) => {
                let i = match stage {
                    Stage::Rcpt(i) => i + 1,
                    _ => 0,
                };
                match self.to.get(i) {
                    Some(to) => (Stage::Rcpt(i), format!("RCPT TO:<{to}>\r\n")),
                    None => (Stage::Data, "DATA\r\n".to_string()),
                }
            }
            Stage::Data => (Stage::Body, std::mem::take(&mut self.data)),
            Stage::Body => {
                self.outcome = Some(Ok(()));
                return self.quit();
            }
            Stage::Quit => unreachable!("handled above"),
        };
        self.stage = next;
        Step::Send(command)
    }

    fn quit(&mut self) -> Step {
        self.stage = Stage::Quit;
        Step::Send("QUIT\r\n".into())
    }

    /// What came of it when the server hangs up or times out after QUIT was sent.
    pub fn after_quit(&mut self) -> Option<Result<(), SendError>> {
        (self.stage == Stage::Quit).then(|| self.outcome.take().unwrap_or(Ok(())))
    }
}

/// The code of a complete reply, or `None` while more lines follow (`250-...`).
pub fn reply_code(line: &str) -> Result<Option<u16>, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    let code = line
        .get(..3)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (200..600).contains(c))
        .ok_or_else(|| line.chars().take(80).collect::<String>())?;
    match line.as_bytes().get(3) {
        Some(b'-') => Ok(None),
        None | Some(b' ') => Ok(Some(code)),
        Some(_) => Err(line.chars().take(80).collect()),
    }
}

/// Delivers `data` to `server` (`HOST:PORT`) as `dialogue` says.
pub async fn deliver(
    server: &str,
    host: &str,
    port: u16,
    wait: Duration,
    mut dialogue: Dialogue,
) -> Result<(), SendError> {
    let addrs: Vec<_> = timeout(wait, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| SendError::Resolve(server.into()))?
        .map_err(|_| SendError::Resolve(server.into()))?
        .collect();
    let addr = addrs
        .first()
        .ok_or_else(|| SendError::Resolve(server.into()))?;
    let stream = timeout(wait, TcpStream::connect(addr))
        .await
        .map_err(|_| SendError::Connect(server.into(), "timeout".into()))?
        .map_err(|e| SendError::Connect(server.into(), e.to_string()))?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let code = match read_reply(&mut read, wait, dialogue.awaiting()).await {
            Ok(code) => code,
            Err(e) => return dialogue.after_quit().unwrap_or(Err(e)),
        };
        match dialogue.on_reply(code) {
            Step::Done(result) => return result,
            Step::Send(command) => {
                let sent = timeout(wait, write.write_all(command.as_bytes())).await;
                match sent {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(SendError::Io(e.to_string())),
                    Err(_) => return Err(SendError::Timeout(dialogue.awaiting())),
                }
            }
        }
    }
}

/// Reads one (possibly multi-line) reply and returns its code.
async fn read_reply(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    wait: Duration,
    stage: &'static str,
) -> Result<u16, SendError> {
    for _ in 0..MAX_REPLY_LINES {
        let mut line = Vec::new();
        let n = timeout(wait, read_line(read, &mut line))
            .await
            .map_err(|_| SendError::Timeout(stage))?
            .map_err(|e| SendError::Io(e.to_string()))?;
        if n == 0 {
            return Err(SendError::Closed(stage));
        }
        let text = String::from_utf8_lossy(&line);
        match reply_code(&text) {
            Ok(Some(code)) => return Ok(code),
            Ok(None) => continue,
            Err(bad) => return Err(SendError::Malformed(stage, bad)),
        }
    }
    Err(SendError::Malformed(stage, "too many lines".into()))
}

/// One line, at most [`MAX_LINE`] bytes (the rest of a longer one is an error).
async fn read_line(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    loop {
        let buf = read.fill_buf().await?;
        if buf.is_empty() {
            return Ok(line.len());
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        read.consume(take);
        if line.len() > MAX_LINE {
            return Err(std::io::Error::other("reply line too long"));
        }
        if done {
            return Ok(line.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialogue() -> Dialogue {
        Dialogue::new(
            "lb1",
            "lb@example.com",
            &["a@example.com".into(), "b@example.com".into()],
            "DATA TEXT\r\n.\r\n".into(),
        )
    }

    fn sent(step: Step) -> String {
        match step {
            Step::Send(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_delivery_is_keepalived_s_command_sequence() {
        let mut d = dialogue();
        assert_eq!(sent(d.on_reply(220)), "HELO lb1\r\n");
        assert_eq!(sent(d.on_reply(250)), "MAIL FROM:<lb@example.com>\r\n");
        assert_eq!(sent(d.on_reply(250)), "RCPT TO:<a@example.com>\r\n");
        assert_eq!(sent(d.on_reply(250)), "RCPT TO:<b@example.com>\r\n");
        assert_eq!(sent(d.on_reply(250)), "DATA\r\n");
        assert_eq!(sent(d.on_reply(354)), "DATA TEXT\r\n.\r\n");
        assert_eq!(sent(d.on_reply(250)), "QUIT\r\n");
        assert_eq!(d.on_reply(221), Step::Done(Ok(())));
    }

    #[test]
    fn a_refusal_quits_and_says_which_command() {
        let mut d = dialogue();
        sent(d.on_reply(220));
        sent(d.on_reply(250));
        assert_eq!(sent(d.on_reply(550)), "QUIT\r\n");
        assert_eq!(
            d.on_reply(221),
            Step::Done(Err(SendError::Refused("MAIL", 550)))
        );
        let mut d = dialogue();
        assert_eq!(sent(d.on_reply(554)), "QUIT\r\n");
        // The server hangs up instead of answering QUIT: the refusal still counts.
        assert_eq!(
            d.after_quit(),
            Some(Err(SendError::Refused("greeting", 554)))
        );
    }

    #[test]
    fn reply_codes_and_continuations() {
        assert_eq!(reply_code("250-mail.example.com\r\n"), Ok(None));
        assert_eq!(reply_code("250 OK\r\n"), Ok(Some(250)));
        assert_eq!(reply_code("221\r\n"), Ok(Some(221)));
        assert!(reply_code("hello\r\n").is_err());
        assert!(reply_code("2500 x\r\n").is_err());
        assert!(reply_code("999 x\r\n").is_err());
    }
}
