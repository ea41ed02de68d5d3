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

    /// Sends one message; an error means it should be tried again later.
    pub async fn send(&self, from: &str, to: &str, message: &Rendered) -> anyhow::Result<()> {
        let from: Mailbox = from.parse()?;
        let to: Mailbox = to.parse()?;
        let email = Message::builder()
            .from(from)
            .to(to)
            .subject(message.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                message.html.clone(),
            ))?;
        match self {
            Transport::Smtp(smtp) => {
                smtp.send(email).await?;
            }
            Transport::File(dir) => {
                let path = dir.join(format!("{}.eml", uuid::Uuid::new_v4()));
                let bytes = email.formatted();
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    std::fs::create_dir_all(dir)?;
                    std::fs::write(path, bytes)
                })
                .await??;
            }
        }
        Ok(())
    }
}
