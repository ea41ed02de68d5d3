//! The HTTP client authd uses towards identity providers: rustls with
//! aws-lc-rs, the public web roots plus `federation.ca_file`, a time limit
//! on every call, and no redirects at all (a provider's endpoints come from
//! its discovery document; following a redirect could be turned into a
//! request to an internal address), and a cap on every response body (a
//! broken or hostile provider cannot make authd buffer more than
//! `MAX_BODY_BYTES`).
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpClientError, HttpRequest, HttpResponse};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::config::FederationSettings;

/// More than any discovery document, JWKS or token response holds.
const MAX_BODY_BYTES: usize = 1 << 20;

/// The client openidconnect is given: reqwest's, with the body capped.
#[derive(Clone)]
pub struct IdpClient(reqwest::Client);

impl<'c> AsyncHttpClient<'c> for IdpClient {
    type Error = HttpClientError<reqwest::Error>;
    type Future =
        Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = request.try_into().map_err(Box::new)?;
            let mut response = self.0.execute(request).await.map_err(Box::new)?;
            let too_large =
                || HttpClientError::Other(format!("response over {MAX_BODY_BYTES} bytes"));
            if response
                .content_length()
                .is_some_and(|length| length > MAX_BODY_BYTES as u64)
            {
                return Err(too_large());
            }
            let mut builder = openidconnect::http::Response::builder()
                .status(response.status())
                .version(response.version());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(Box::new)? {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            builder.body(body).map_err(HttpClientError::Http)
        })
    }
}

pub fn build(settings: &FederationSettings) -> anyhow::Result<IdpClient> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &settings.ca_file {
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path)
            .map_err(|e| anyhow::anyhow!("federation.ca_file {}: {e}", path.display()))?
        {
            let cert =
                cert.map_err(|e| anyhow::anyhow!("federation.ca_file {}: {e}", path.display()))?;
            roots.add(cert)?;
            added += 1;
        }
        anyhow::ensure!(
            added > 0,
            "federation.ca_file {} holds no certificate",
            path.display()
        );
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let timeout = Duration::from_secs(settings.http_timeout_secs);
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("authd/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(IdpClient(client))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers every request with `body`, announcing its
    /// length or not (then chunked).
    async fn serving(body: Vec<u8>, announce_length: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = if announce_length {
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len())
                } else {
                    "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_owned()
                };
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            }
        });
        format!("http://{addr}/jwks")
    }

    async fn fetch(url: &str) -> Result<HttpResponse, HttpClientError<reqwest::Error>> {
        let client = build(&FederationSettings::default()).unwrap();
        let request = openidconnect::http::Request::get(url)
            .body(Vec::new())
            .unwrap();
        client.call(request).await
    }

    #[tokio::test]
    async fn a_response_body_over_the_cap_is_refused_however_it_comes() {
        let small = serving(b"{\"keys\":[]}".to_vec(), true).await;
        assert_eq!(fetch(&small).await.unwrap().body(), b"{\"keys\":[]}");
        for announce_length in [true, false] {
            let url = serving(vec![b' '; MAX_BODY_BYTES + 1], announce_length).await;
            let error = fetch(&url).await.err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains("over")),
                "{error:?}"
            );
        }
    }
}
