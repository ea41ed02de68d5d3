//! The client IP every limit is keyed on. It is the TCP peer, unless the peer
//! is one of `http.trusted_proxies`: only then is `X-Forwarded-For` read, from
//! the right, skipping further trusted hops. A header sent by anyone else is
//! ignored, so it cannot be used to dodge rate limits.
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

#[derive(Clone)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    pub fn new(nets: &[IpNet]) -> Self {
        Self(nets.into())
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&canonical(ip)))
    }

    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusts(peer) {
            return canonical(peer);
        }
        let hops = forwarded_for
            .into_iter()
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .map(canonical);
        let mut client = canonical(peer);
        for hop in hops.collect::<Vec<_>>().into_iter().rev() {
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

pub async fn resolve(
    State(proxies): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let forwarded = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let ip = proxies.client_ip(peer, Some(forwarded.as_str()).filter(|f| !f.is_empty()));
    request.extensions_mut().insert(ClientIp(ip));
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("client IP middleware missing")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn untrusted_peer_header_is_ignored() {
        let proxies = TrustedProxies::new(&[]);
        assert_eq!(
            proxies.client_ip(ip("203.0.113.9"), Some("1.2.3.4")),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn trusted_chain_is_walked_from_the_right() {
        let nets: Vec<IpNet> = ["10.0.0.0/8"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        let proxies = TrustedProxies::new(&nets);
        // A client-supplied leftmost entry cannot override the real client.
        let got = proxies.client_ip(ip("10.0.0.1"), Some("6.6.6.6, 198.51.100.7, 10.0.0.2"));
        assert_eq!(got, ip("198.51.100.7"));
        assert_eq!(
            proxies.client_ip(ip("::ffff:10.0.0.1"), None),
            ip("10.0.0.1")
        );
    }

    proptest::proptest! {
        /// Whatever the header holds: no panic; an untrusted peer is always
        /// the client; otherwise the client is the peer or an address that
        /// appears in the header, and never a trusted one unless every hop
        /// is trusted.
        #[test]
        fn forwarded_for_parsing_keeps_its_invariants(
            peer in proptest::arbitrary::any::<[u8; 4]>(),
            header in "[0-9a-f.:, ]{0,120}",
            hops in proptest::collection::vec(proptest::arbitrary::any::<[u8; 4]>(), 0..5),
        ) {
            let nets: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
            let proxies = TrustedProxies::new(&nets);
            let peer = IpAddr::from(peer);
            let listed: Vec<String> = hops.iter().map(|h| IpAddr::from(*h).to_string()).collect();
            let header = format!("{header},{}", listed.join(","));
            let client = proxies.client_ip(peer, Some(&header));
            if !proxies.trusts(peer) {
                proptest::prop_assert_eq!(client, canonical(peer));
            } else {
                let parsed: Vec<IpAddr> = header
                    .split(',')
                    .filter_map(|h| h.trim().parse::<IpAddr>().ok())
                    .map(canonical)
                    .collect();
                proptest::prop_assert!(client == canonical(peer) || parsed.contains(&client));
                if proxies.trusts(client) {
                    proptest::prop_assert!(parsed.iter().all(|ip| proxies.trusts(*ip)));
                }
            }
        }
    }
}
