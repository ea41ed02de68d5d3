//! Delivery: SMTP through lettre (STARTTLS or implicit TLS via rustls;
//! plain text only towards a loopback relay, which config enforces), or one
//! `.eml` file per message for development.
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{MailSettings, MailTransport, SmtpTls};
use crate::domain::mail::templates::Rendered;

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(PathBuf),
}

impl Transport {
    pub fn from_settings(mail: &MailSettings) -> anyhow::Result<Self> {
        if mail.transport == MailTransport::File {
            return Ok(Transport::File(mail.file_dir.clone()));
        }
        let smtp = &mail.smtp;
        let builder = match smtp.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)?,
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
        };
        let mut builder = builder
            .port(smtp.port)
            .timeout(Some(Duration::from_secs(smtp.timeout_secs)));
        if let (Some(user), Some(path)) = (&smtp.username, &smtp.password_file) {
            let password = crate::secret_files::read("mail.smtp.password_file", path)?;
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Transport::Smtp(builder.build()))
    }

    /// Sends one message.
    pub async fn send(&self, from: &str, to: &str, message: &Rendered) -> Result<(), Undelivered> {
        let email = build(from, to, message).ok_or(Undelivered {
            reason: "unbuildable".into(),
            recipient_refused: true,
        })?;
        match self {
            Transport::Smtp(smtp) => {
                smtp.send(email).await.map_err(|e| Undelivered::smtp(&e))?;
            }
            Transport::File(dir) => {
                let path = dir.join(format!("{}.eml", uuid::Uuid::new_v4()));
                let bytes = email.formatted();
                let dir = dir.clone();
                let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    std::fs::create_dir_all(dir)?;
                    std::fs::write(path, bytes)
                })
                .await;
                if !matches!(written, Ok(Ok(()))) {
                    return Err(Undelivered {
                        reason: "file not written".into(),
                        recipient_refused: false,
                    });
                }
            }
        }
        Ok(())
    }
}

fn build(from: &str, to: &str, message: &Rendered) -> Option<Message> {
    let from: Mailbox = from.parse().ok()?;
    let to: Mailbox = to.parse().ok()?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(message.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            message.text.clone(),
            message.html.clone(),
        ))
        .ok()
}

/// Why a message was not delivered, fit for the logs: never the relay's
/// reply text, which often quotes the recipient's address.
#[derive(Debug)]
pub struct Undelivered {
    /// The SMTP reply code, or the kind of failure.
    pub reason: String,
    /// The relay refused this recipient for good (550, 551 or 553 with an
    /// enhanced status 5.1.x, RFC 3463's addressing class), or the message
    /// cannot be built: retrying cannot help. Every other refusal (550
    /// "relaying denied" is 5.7.x, a policy; a refused login) is the
    /// relay's configuration, which an operator may fix, so it is retried.
    pub recipient_refused: bool,
}

impl Undelivered {
    fn smtp(error: &lettre::transport::smtp::Error) -> Self {
        let code = error.status().map(u16::from);
        let reason = match code {
            Some(code) => format!("smtp {code}"),
            None if error.is_timeout() => "timeout".into(),
            None if error.is_tls() => "tls".into(),
            None => "connection".into(),
        };
        // Read, never logged: the reply text usually quotes the address.
        let addressing = error
            .to_string()
            .split_whitespace()
            .any(|word| word.starts_with("5.1."));
        Undelivered {
            reason,
            recipient_refused: matches!(code, Some(550 | 551 | 553)) && addressing,
        }
    }
}
