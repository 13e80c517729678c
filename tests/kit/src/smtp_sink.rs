//! A tiny SMTP server on `127.0.0.1:0` that records every message it is given: what the
//! notification adapters' tests send real mail to.
//!
//! It speaks just enough SMTP for a client to deliver: `EHLO`/`HELO`, `MAIL FROM`,
//! `RCPT TO`, `DATA` (dot-unstuffed), `RSET`, `NOOP`, `QUIT`; no TLS, no AUTH. Each
//! accepted message is kept with its envelope sender, recipients, raw data and parsed
//! `Subject`. [`SmtpSink::reject_next`] makes the next `MAIL FROM`s answer a given reply (a
//! `451` or a `550`), to exercise the client's error mapping.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Largest message accepted (a client sending more is cut off).
const MAX_DATA: usize = 10 * 1024 * 1024;

/// One delivered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpMessage {
    /// The `MAIL FROM` address, without angle brackets.
    pub from: String,
    /// The `RCPT TO` addresses, without angle brackets.
    pub recipients: Vec<String>,
    /// Headers and body as sent (CRLF line ends), dot-unstuffed, without the final dot.
    pub data: String,
    /// The `Subject` header, unfolded.
    pub subject: Option<String>,
}

impl SmtpMessage {
    /// The value of the first header called `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.data, name)
    }

    /// Everything after the blank line that ends the headers.
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
    }
}

/// The running sink. It serves until the runtime stops.
pub struct SmtpSink {
    pub addr: SocketAddr,
    messages: Mutex<Vec<SmtpMessage>>,
    /// Replies owed to the next `MAIL FROM`s, in order.
    rejections: Mutex<Vec<String>>,
    count: watch::Sender<usize>,
}

impl SmtpSink {
    /// Listen on a free loopback port.
    pub async fn start() -> std::io::Result<Arc<Self>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let sink = Arc::new(Self {
            addr: listener.local_addr()?,
            messages: Mutex::new(Vec::new()),
            rejections: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
        });
        let serving = Arc::clone(&sink);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let sink = Arc::clone(&serving);
                tokio::spawn(async move {
                    let _ = sink.session(stream).await;
                });
            }
        });
        Ok(sink)
    }

    /// `smtp://127.0.0.1:<port>`, for clients taking a URL.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<SmtpMessage> {
        lock(&self.messages).clone()
    }

    /// Answer `reply` (e.g. `"451 4.3.0 try again later"`) to the next `count` `MAIL FROM`s.
    pub fn reject_next(&self, count: usize, reply: &str) {
        let mut rejections = lock(&self.rejections);
        rejections.extend(std::iter::repeat_n(reply.to_owned(), count));
    }

    /// Wait until at least `count` messages arrived; all of them, or `None` on timeout.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Option<Vec<SmtpMessage>> {
        let mut seen = self.count.subscribe();
        tokio::time::timeout(timeout, seen.wait_for(|seen| *seen >= count))
            .await
            .ok()?
            .ok()?;
        Some(self.messages())
    }

    async fn session(&self, stream: TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        let mut envelope = Envelope::default();
        write.write_all(b"220 emporium-sink ESMTP\r\n").await?;
        loop {
            let Some(line) = read_line(&mut lines).await? else {
                return Ok(());
            };
            let reply = match verb(&line).as_str() {
                "EHLO" => "250-emporium-sink\r\n250-8BITMIME\r\n250 SMTPUTF8".to_owned(),
                "HELO" | "NOOP" => "250 OK".to_owned(),
                "RSET" => {
                    envelope = Envelope::default();
                    "250 OK".to_owned()
                }
                "MAIL" => self.mail_from(&line, &mut envelope),
                "RCPT" => {
                    envelope.recipients.push(address(&line));
                    "250 OK".to_owned()
                }
                "DATA" => {
                    write
                        .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let Some(data) = read_data(&mut lines).await? else {
                        return Ok(());
                    };
                    self.accept(std::mem::take(&mut envelope), data);
                    "250 OK queued".to_owned()
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await?;
                    return Ok(());
                }
                _ => "502 command not implemented".to_owned(),
            };
            write.write_all(format!("{reply}\r\n").as_bytes()).await?;
        }
    }

    fn mail_from(&self, line: &str, envelope: &mut Envelope) -> String {
        let rejection = {
            let mut rejections = lock(&self.rejections);
            (!rejections.is_empty()).then(|| rejections.remove(0))
        };
        if let Some(reply) = rejection {
            return reply;
        }
        *envelope = Envelope {
            from: address(line),
            recipients: Vec::new(),
        };
        "250 OK".to_owned()
    }

    fn accept(&self, envelope: Envelope, data: String) {
        let message = SmtpMessage {
            subject: header(&data, "subject"),
            from: envelope.from,
            recipients: envelope.recipients,
            data,
        };
        let count = {
            let mut messages = lock(&self.messages);
            messages.push(message);
            messages.len()
        };
        self.count.send_replace(count);
    }
}

#[derive(Default)]
struct Envelope {
    from: String,
    recipients: Vec<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One line without its line end; `None` at end of stream.
async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).await? == 0 {
        return Ok(None);
    }
    while line
        .last()
        .is_some_and(|byte| *byte == b'\n' || *byte == b'\r')
    {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// The message after `DATA`, up to the lone dot, dot-unstuffed; `None` if the client left.
async fn read_data<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> std::io::Result<Option<String>> {
    let mut data = String::new();
    loop {
        let Some(line) = read_line(reader).await? else {
            return Ok(None);
        };
        if line == "." {
            return Ok(Some(data));
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
        data.push_str("\r\n");
        if data.len() > MAX_DATA {
            return Ok(None);
        }
    }
}

fn verb(line: &str) -> String {
    line.split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

/// The address of `MAIL FROM:<a@b> …` or `RCPT TO:<a@b>`.
fn address(line: &str) -> String {
    let after_colon = line.split_once(':').map_or("", |(_, rest)| rest).trim();
    match (after_colon.find('<'), after_colon.find('>')) {
        (Some(open), Some(close)) if open < close => after_colon[open + 1..close].to_owned(),
        _ => after_colon
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned(),
    }
}

/// The first header `name` of `data`, with folded lines joined.
fn header(data: &str, name: &str) -> Option<String> {
    let headers = data.split("\r\n\r\n").next().unwrap_or("");
    let mut found: Option<String> = None;
    for line in headers.split("\r\n") {
        if let Some(value) = found.as_mut() {
            if line.starts_with([' ', '\t']) {
                value.push(' ');
                value.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((field, value)) = line.split_once(':')
            && field.eq_ignore_ascii_case(name)
        {
            found = Some(value.trim().to_owned());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn say(stream: &mut TcpStream, line: &str) -> String {
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        reply(stream).await
    }

    async fn reply(stream: &mut TcpStream) -> String {
        let mut buffer = vec![0u8; 1024];
        let read = stream.read(&mut buffer).await.unwrap();
        String::from_utf8_lossy(&buffer[..read]).into_owned()
    }

    #[tokio::test]
    async fn a_message_is_recorded_with_its_envelope_and_subject() {
        let sink = SmtpSink::start().await.unwrap();
        let mut stream = TcpStream::connect(sink.addr).await.unwrap();
        assert!(reply(&mut stream).await.starts_with("220"));
        assert!(say(&mut stream, "EHLO client").await.contains("250 "));
        assert!(
            say(&mut stream, "MAIL FROM:<shop@example.com> BODY=8BITMIME")
                .await
                .starts_with("250")
        );
        assert!(
            say(&mut stream, "RCPT TO:<ada@example.com>")
                .await
                .starts_with("250")
        );
        assert!(say(&mut stream, "DATA").await.starts_with("354"));
        let data = "Subject: Your order\r\n  has shipped\r\nTo: ada@example.com\r\n\r\n..dotted\r\nbody\r\n.";
        assert!(say(&mut stream, data).await.starts_with("250"));
        assert!(say(&mut stream, "QUIT").await.starts_with("221"));
        let messages = sink.wait_for(1, Duration::from_secs(5)).await.unwrap();
        assert_eq!(messages[0].from, "shop@example.com");
        assert_eq!(messages[0].recipients, ["ada@example.com"]);
        assert_eq!(
            messages[0].subject.as_deref(),
            Some("Your order has shipped")
        );
        assert_eq!(messages[0].body(), ".dotted\r\nbody\r\n");
        assert_eq!(messages[0].header("to").as_deref(), Some("ada@example.com"));
    }

    #[tokio::test]
    async fn rejections_answer_the_next_mail_from() {
        let sink = SmtpSink::start().await.unwrap();
        sink.reject_next(1, "451 4.3.0 try again later");
        let mut stream = TcpStream::connect(sink.addr).await.unwrap();
        reply(&mut stream).await;
        say(&mut stream, "HELO client").await;
        assert!(say(&mut stream, "MAIL FROM:<a@b>").await.starts_with("451"));
        assert!(say(&mut stream, "MAIL FROM:<a@b>").await.starts_with("250"));
    }
}
