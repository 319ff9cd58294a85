//! SMTP_CHECK (keepalived `check_smtp.c`, `smtp_engine_thread`): a 220 greeting,
//! `HELO <helo_name>` answered by 250, then `QUIT`, whose reply must arrive but whose
//! code is not checked. keepalived sends HELO, not EHLO, and so does this.
//!
//! Unlike keepalived, which reads only the first line of a reply (so a multi-line
//! `220-` greeting fails there), multi-line replies are read to their last line.

use tokio::io::{AsyncBufRead, AsyncWriteExt, BufReader};

use super::{io_reason, read_line, tcp, within, Verdict};
use crate::health::spec::{Common, SmtpCheck, Target};

const MAX_LINE: usize = 4096;
const MAX_REPLY_LINES: usize = 100;

pub(super) async fn run(smtp: &SmtpCheck, target: Target, common: &Common) -> Verdict {
    within(common.connect_timeout, async {
        match converse(smtp, target, common).await {
            Ok(()) => Verdict::up("220/250"),
            Err(why) => Verdict::down(why),
        }
    })
    .await
}

async fn converse(smtp: &SmtpCheck, target: Target, common: &Common) -> Result<(), String> {
    let stream = tcp::connect(target, common.bind_to)
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = BufReader::new(stream);
    match reply(&mut stream)
        .await
        .map_err(|e| format!("banner: {e}"))?
    {
        220 => {}
        code => return Err(format!("banner {code}")),
    }
    send(&mut stream, &format!("HELO {}\r\n", smtp.helo_name)).await?;
    match reply(&mut stream)
        .await
        .map_err(|e| format!("no 250 reply: {e}"))?
    {
        250 => {}
        code => return Err(format!("no 250 reply (got {code})")),
    }
    send(&mut stream, "QUIT\r\n").await?;
    reply(&mut stream)
        .await
        .map_err(|e| format!("no QUIT reply: {e}"))?;
    Ok(())
}

async fn send<S: tokio::io::AsyncWrite + Unpin>(stream: &mut S, line: &str) -> Result<(), String> {
    stream
        .write_all(line.as_bytes())
        .await
        .map_err(|e| io_reason(&e))
}

/// Reads one reply, `NNN-text` continuation lines up to the final `NNN text`, and
/// returns its code (RFC 5321 section 4.2).
pub(crate) async fn reply<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<u16, String> {
    for _ in 0..MAX_REPLY_LINES {
        let line = read_line(r, MAX_LINE)
            .await
            .map_err(|e| io_reason(&e))?
            .ok_or("connection closed")?;
        let bytes = line.as_bytes();
        let code = line
            .get(..3)
            .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("bad reply {:?}", truncated(&line)))?;
        match bytes.get(3) {
            Some(b'-') => continue,
            None | Some(b' ') => return Ok(code),
            Some(_) => return Err(format!("bad reply {:?}", truncated(&line))),
        }
    }
    Err("reply too long".into())
}

fn truncated(line: &str) -> String {
    line.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use std::{
        net::SocketAddr,
        sync::{Arc, Mutex},
    };

    use tokio::{io::AsyncWriteExt, net::TcpListener};

    use super::*;
    use crate::health::checkers::{read_line, test_support::common};

    /// An SMTP server answering each command line with the next canned reply (the
    /// first is the greeting); records the commands.
    async fn server(replies: &[&str]) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let replies: Vec<String> = replies.iter().map(|r| r.to_string()).collect();
        let log = seen.clone();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut stream = BufReader::new(stream);
            for (i, reply) in replies.iter().enumerate() {
                if i > 0 {
                    match read_line(&mut stream, 1000).await {
                        Ok(Some(line)) => log.lock().unwrap().push(line),
                        _ => return,
                    }
                }
                if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
            // Hold the connection until the client leaves.
            while let Ok(Some(_)) = read_line(&mut stream, 1000).await {}
        });
        (addr, seen)
    }

    fn check(helo: &str) -> SmtpCheck {
        SmtpCheck {
            helo_name: helo.into(),
        }
    }

    fn target(addr: SocketAddr) -> Target {
        Target {
            addr: addr.ip(),
            port: addr.port(),
        }
    }

    #[tokio::test]
    async fn multi_line_greeting_and_helo_reply() {
        let (addr, seen) = server(&[
            "220-mail.example ESMTP\r\n220 ready\r\n",
            "250-mail.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
            "221 bye\r\n",
        ])
        .await;
        let v = run(&check("lb.example"), target(addr), &common(1000)).await;
        assert!(v.up, "{v:?}");
        assert_eq!(*seen.lock().unwrap(), ["HELO lb.example", "QUIT"]);
    }

    #[tokio::test]
    async fn rejecting_greeting_is_down() {
        let (addr, _) = server(&["554 no service\r\n"]).await;
        let v = run(&check("lb"), target(addr), &common(1000)).await;
        assert_eq!(v, Verdict::down("banner 554"));
    }

    #[tokio::test]
    async fn rejected_helo_is_down() {
        let (addr, _) = server(&["220 hi\r\n", "550 go away\r\n"]).await;
        let v = run(&check("lb"), target(addr), &common(1000)).await;
        assert_eq!(v, Verdict::down("no 250 reply (got 550)"));
    }

    #[tokio::test]
    async fn garbage_and_silence() {
        let (addr, _) = server(&["hello\r\n"]).await;
        let v = run(&check("lb"), target(addr), &common(1000)).await;
        assert_eq!(v, Verdict::down("banner: bad reply \"hello\""));

        // A server that never greets: the timeout.
        let (addr, _) = server(&[""]).await;
        let v = run(&check("lb"), target(addr), &common(300)).await;
        assert_eq!(v, Verdict::down("timeout"));
    }
}
