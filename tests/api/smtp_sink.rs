//! A minimal SMTP server for the tests: it accepts every message (no TLS,
//! no auth, as authd allows towards loopback) and keeps it for inspection,
//! except for recipients whose local part starts with `bounce`, which it
//! refuses for good (550 5.1.1, quoting the address, as real relays do),
//! or `denied`, which it refuses as a misconfigured relay would (550 5.7.1).
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub struct Received {
    pub to: Vec<String>,
    /// The message as sent (headers and MIME body).
    pub data: String,
}

impl Received {
    /// The decoded text/plain part.
    pub fn text(&self) -> String {
        let parsed = mailparse::parse_mail(self.data.as_bytes()).unwrap();
        find_part(&parsed, "text/plain").unwrap_or_default()
    }

    pub fn html(&self) -> String {
        let parsed = mailparse::parse_mail(self.data.as_bytes()).unwrap();
        find_part(&parsed, "text/html").unwrap_or_default()
    }

    pub fn subject(&self) -> String {
        let parsed = mailparse::parse_mail(self.data.as_bytes()).unwrap();
        use mailparse::MailHeaderMap;
        parsed
            .headers
            .get_first_value("Subject")
            .unwrap_or_default()
    }

    /// The token of the first link to `page` in the text part.
    pub fn token(&self, page: &str) -> Option<String> {
        let text = self.text();
        let start = text.find(&format!("/{page}?token="))? + page.len() + 8;
        Some(
            text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect(),
        )
    }
}

fn find_part(mail: &mailparse::ParsedMail<'_>, mime: &str) -> Option<String> {
    if mail.ctype.mimetype == mime {
        return mail.get_body().ok();
    }
    mail.subparts.iter().find_map(|p| find_part(p, mime))
}

pub struct SmtpSink {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    refused: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Store {
    received: Arc<Mutex<Vec<Received>>>,
    refused: Arc<Mutex<Vec<String>>>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let store = Store {
            received: Arc::new(Mutex::new(Vec::new())),
            refused: Arc::new(Mutex::new(Vec::new())),
        };
        let (received, refused) = (store.received.clone(), store.refused.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, store.clone()));
            }
        });
        Self {
            addr,
            received,
            refused,
            task,
        }
    }

    /// How many times a `bounce…` or `denied…` recipient `to` was refused.
    pub fn refusals(&self, to: &str) -> usize {
        let refused = self.refused.lock().unwrap();
        refused
            .iter()
            .filter(|r| r.eq_ignore_ascii_case(to))
            .count()
    }

    /// Waits (up to 10 s) until `to` has been refused `count` times.
    pub async fn wait_refused(&self, to: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.refusals(to) < count {
            assert!(
                Instant::now() < deadline,
                "{to} was not refused {count} times"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Messages to `to` (case-insensitive).
    pub fn to(&self, to: &str) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
            .collect()
    }

    /// Waits (up to 10 s) until `to` has received `count` messages.
    pub async fn wait_for(&self, to: &str, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.to(to);
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{to} got {} of {count} messages",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn session(stream: TcpStream, store: Store) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply: Vec<u8> = if command.starts_with("EHLO") {
            b"250-sink\r\n250 8BITMIME\r\n".to_vec()
        } else if command.starts_with("HELO") || command.starts_with("MAIL") {
            b"250 ok\r\n".to_vec()
        } else if command.starts_with("RCPT") {
            let address = line
                .split_once('<')
                .and_then(|(_, rest)| rest.split_once('>'))
                .map(|(a, _)| a.to_owned())
                .unwrap_or_default();
            let lower = address.to_ascii_lowercase();
            if lower.starts_with("bounce") {
                let reply = format!("550 5.1.1 <{address}>: Recipient address rejected\r\n");
                store.refused.lock().unwrap().push(address);
                reply.into_bytes()
            } else if lower.starts_with("denied") {
                // A relay's policy, not the recipient: 550 with 5.7.1.
                store.refused.lock().unwrap().push(address);
                b"550 5.7.1 Relaying denied\r\n".to_vec()
            } else {
                to.push(address);
                b"250 ok\r\n".to_vec()
            }
        } else if command == "DATA" {
            let _ = write.write_all(b"354 go ahead\r\n").await;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            store.received.lock().unwrap().push(Received {
                to: std::mem::take(&mut to),
                data,
            });
            b"250 queued\r\n".to_vec()
        } else if command == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 ok\r\n".to_vec()
        };
        if write.write_all(&reply).await.is_err() {
            return;
        }
    }
}
