//! The HTTP client authd uses towards identity providers: rustls with
//! aws-lc-rs, the public web roots plus `federation.ca_file`, a time limit
//! on every call, and no redirects at all (a provider's endpoints come from
//! its discovery document; following a redirect could be turned into a
//! request to an internal address).
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::config::FederationSettings;

pub fn build(settings: &FederationSettings) -> anyhow::Result<reqwest::Client> {
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
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("authd/", env!("CARGO_PKG_VERSION")))
        .build()?)
}
