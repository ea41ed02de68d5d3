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

use crate::domain::throttle::canonical;
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
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|v| v.split(','))
            .collect();
        let mut client = canonical(peer);
        for hop in hops.into_iter().rev() {
            // An entry that is not an address ends the walk at the last
            // trusted hop: skipping it would make the client's own entry,
            // to its left, the address every limit is keyed on.
            let Some(hop) = parse_hop(hop) else {
                break;
            };
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, or an address with a port
/// (`203.0.113.9:443`, `[2001:db8::1]:443`), as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()?;
    Some(canonical(ip))
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

    #[test]
    fn an_entry_that_is_not_an_address_ends_the_walk() {
        let nets: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxies = TrustedProxies::new(&nets);
        // The client's own entry left of a garbled one is not believed.
        let got = proxies.client_ip(ip("10.0.0.1"), Some("6.6.6.6, unknown"));
        assert_eq!(got, ip("10.0.0.1"));
        let got = proxies.client_ip(ip("10.0.0.1"), Some("6.6.6.6, 10.0.0.3, bogus, 10.0.0.2"));
        assert_eq!(got, ip("10.0.0.2"));
        // Entries with a port are addresses.
        let got = proxies.client_ip(ip("10.0.0.1"), Some("6.6.6.6, 198.51.100.7:443"));
        assert_eq!(got, ip("198.51.100.7"));
        let got = proxies.client_ip(ip("10.0.0.1"), Some("6.6.6.6, [2001:db8::7]:443"));
        assert_eq!(got, ip("2001:db8::7"));
    }

    proptest::proptest! {
        /// Whatever the header holds: no panic; an untrusted peer is always
        /// the client; otherwise the client is the peer or an address that
        /// appears in the header, and a trusted one only when every entry
        /// the walk passed (from the right, up to the first that is not an
        /// address) is trusted.
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
                let walked: Vec<IpAddr> = header
                    .split(',')
                    .rev()
                    .map_while(parse_hop)
                    .collect();
                proptest::prop_assert!(client == canonical(peer) || walked.contains(&client));
                if proxies.trusts(client) {
                    proptest::prop_assert!(walked.iter().all(|ip| proxies.trusts(*ip)));
                }
            }
        }
    }
}
