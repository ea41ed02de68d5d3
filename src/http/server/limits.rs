//! How many connections a listener holds, in all and per client address.
//!
//! The rule: no client, and no crowd of clients, can make the process run
//! out of file descriptors or starve the probes. Connections up to
//! `max_connections` serve everything; beyond it, a small reserve serves
//! only `/healthz` and `/readyz`, and only to peers in `probe_networks` or
//! `trusted_proxies` (at most `RESERVE_PER_PEER` per address, so one
//! address cannot take the whole reserve); beyond that, a new connection is
//! closed at once. Each address (an IPv6 client's /64) holds at most
//! `max_connections_per_peer`, except trusted proxies, behind which every
//! client shares one address.
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::HttpSettings;
use crate::domain::throttle::{canonical, client_network};

/// Reserve connections one address may hold: a probe needs one at a time.
const RESERVE_PER_PEER: usize = 2;
/// The admin listener's cap (it serves only `/metrics` to a scraper).
pub const ADMIN_MAX_CONNECTIONS: usize = 32;
/// Descriptors kept free for everything but client connections: standard
/// streams, listeners, the epoll and timer fds, log and secret files, DNS.
const FD_OVERHEAD: u64 = 64;
/// The automatic cap never goes above this, whatever the fd limit: each
/// idle connection costs memory (about 15 KiB), and past a few thousand
/// connections a proxy in front should be doing the fan-in.
const AUTO_MAX_CONNECTIONS: u64 = 4096;
/// Below this the service could not do useful work; refuse to start.
const MIN_CONNECTIONS: u64 = 16;

/// The connection limits of one listener.
#[derive(Debug)]
pub struct ConnectionLimits {
    max: usize,
    reserve: usize,
    per_peer: usize,
    /// Peers without a per-peer cap: trusted proxies.
    exempt: Vec<IpNet>,
    /// Peers the reserve serves: probe networks and trusted proxies.
    probes: Vec<IpNet>,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    normal: usize,
    reserve: usize,
    peers: HashMap<IpAddr, PeerCounts>,
}

#[derive(Debug, Default, Clone, Copy)]
struct PeerCounts {
    normal: usize,
    reserve: usize,
}

/// What a new connection may do.
#[derive(Debug)]
pub enum Admission {
    /// Serve every route.
    Normal(Permit),
    /// Serve only the probes, then close.
    Reserve(Permit),
    /// Close at once.
    Refused(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This address holds `max_connections_per_peer` already.
    PeerLimit,
    /// Every slot, reserve included, is taken.
    Full,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::PeerLimit => "peer_limit",
            Refusal::Full => "full",
        }
    }
}

/// A held slot; dropping it (when the connection ends) frees it.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    peer: IpAddr,
    reserve: bool,
}

impl ConnectionLimits {
    pub fn new(
        max: usize,
        reserve: usize,
        per_peer: usize,
        exempt: &[IpNet],
        probes: &[IpNet],
    ) -> Arc<Self> {
        Arc::new(Self {
            max,
            reserve,
            per_peer,
            exempt: exempt.to_vec(),
            probes: probes.iter().chain(exempt).copied().collect(),
            counts: Mutex::default(),
        })
    }

    /// The public listener's limits: `max` comes from `max_connections`.
    pub fn public(settings: &HttpSettings, max: usize) -> Arc<Self> {
        Self::new(
            max,
            settings.reserved_connections,
            settings.max_connections_per_peer,
            &settings.trusted_proxies,
            &settings.probe_networks,
        )
    }

    /// The admin listener's: a fixed cap, no reserve, no per-peer rule.
    pub fn admin() -> Arc<Self> {
        Self::new(ADMIN_MAX_CONNECTIONS, 0, ADMIN_MAX_CONNECTIONS, &[], &[])
    }

    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Admission {
        let address = canonical(peer);
        let exempt = self.exempt.iter().any(|net| net.contains(&address));
        let probe = self.probes.iter().any(|net| net.contains(&address));
        let peer = client_network(peer);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = counts.peers.get(&peer).copied().unwrap_or_default();
        let reserve = if !exempt && mine.normal >= self.per_peer {
            return Admission::Refused(Refusal::PeerLimit);
        } else if counts.normal < self.max {
            false
        } else if probe && counts.reserve < self.reserve && mine.reserve < RESERVE_PER_PEER {
            true
        } else {
            return Admission::Refused(Refusal::Full);
        };
        let entry = counts.peers.entry(peer).or_default();
        if reserve {
            entry.reserve += 1;
            counts.reserve += 1;
        } else {
            entry.normal += 1;
            counts.normal += 1;
        }
        let permit = Permit {
            limits: Arc::clone(self),
            peer,
            reserve,
        };
        if reserve {
            Admission::Reserve(permit)
        } else {
            Admission::Normal(permit)
        }
    }

    /// Connections held now (normal and reserve).
    pub fn open(&self) -> usize {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.normal + counts.reserve
    }

    fn release(&self, peer: IpAddr, reserve: bool) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if reserve {
            counts.reserve = counts.reserve.saturating_sub(1);
        } else {
            counts.normal = counts.normal.saturating_sub(1);
        }
        if let Some(entry) = counts.peers.get_mut(&peer) {
            let slot = if reserve {
                &mut entry.reserve
            } else {
                &mut entry.normal
            };
            *slot = slot.saturating_sub(1);
            if entry.normal == 0 && entry.reserve == 0 {
                counts.peers.remove(&peer);
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.release(self.peer, self.reserve);
    }
}

/// The public listener's cap: `http.max_connections`, or when it is 0 what
/// the file-descriptor limit leaves after the database pool, the admin
/// listener, the reserve and `FD_OVERHEAD` (at most `AUTO_MAX_CONNECTIONS`).
/// Raises the soft `RLIMIT_NOFILE` to the hard limit first. A configured
/// cap that does not fit is refused: it would turn a flood into
/// `Too many open files` for every listener and the database.
pub fn max_connections(http: &HttpSettings, db_connections: u32) -> anyhow::Result<usize> {
    let soft = raise_fd_limit();
    let overhead = FD_OVERHEAD
        + u64::from(db_connections)
        + ADMIN_MAX_CONNECTIONS as u64
        + http.reserved_connections as u64;
    let room = soft.saturating_sub(overhead);
    let cap = match http.max_connections {
        0 => room.min(AUTO_MAX_CONNECTIONS),
        configured => {
            anyhow::ensure!(
                configured as u64 <= room,
                "http.max_connections = {configured} does not fit the file-descriptor limit \
                 ({soft}, of which {overhead} are kept for the database pool, the admin \
                 listener, http.reserved_connections and the process itself); raise `ulimit -n` \
                 or lower http.max_connections"
            );
            configured as u64
        }
    };
    anyhow::ensure!(
        cap >= MIN_CONNECTIONS,
        "the file-descriptor limit ({soft}) leaves room for only {cap} connections; raise \
         `ulimit -n` (at least {})",
        overhead + MIN_CONNECTIONS
    );
    Ok(usize::try_from(cap).unwrap_or(usize::MAX))
}

/// The soft `RLIMIT_NOFILE` after raising it as far as the hard limit
/// allows (`u64::MAX` where there is no such limit).
fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the file-descriptor limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn kind(admission: &Admission) -> &'static str {
        match admission {
            Admission::Normal(_) => "normal",
            Admission::Reserve(_) => "reserve",
            Admission::Refused(r) => r.label(),
        }
    }

    #[test]
    fn caps_per_peer_then_in_all_then_the_reserve() {
        let limits = ConnectionLimits::new(3, 3, 2, &[], &["127.0.0.0/8".parse().unwrap()]);
        let a: Vec<_> = (0..3).map(|_| limits.admit(ip(1))).collect();
        assert_eq!(
            a.iter().map(kind).collect::<Vec<_>>(),
            ["normal", "normal", "peer_limit"]
        );
        let b = limits.admit(ip(2));
        assert_eq!(kind(&b), "normal");
        // Full: the reserve takes at most two per address.
        let c: Vec<_> = (0..3).map(|_| limits.admit(ip(3))).collect();
        assert_eq!(
            c.iter().map(kind).collect::<Vec<_>>(),
            ["reserve", "reserve", "full"]
        );
        let d = limits.admit(ip(4));
        assert_eq!(kind(&d), "reserve");
        assert_eq!(kind(&limits.admit(ip(5))), "full");
        assert_eq!(limits.open(), 6);
        drop(b);
        assert_eq!(kind(&limits.admit(ip(5))), "normal");
        drop((a, c, d));
        assert_eq!(limits.open(), 0);
    }

    #[test]
    fn the_reserve_serves_only_probe_networks() {
        let limits = ConnectionLimits::new(1, 4, 4, &[], &["10.0.0.0/8".parse().unwrap()]);
        let _held = limits.admit(ip(1));
        assert_eq!(kind(&limits.admit(ip(2))), "full");
        assert_eq!(kind(&limits.admit(IpAddr::from([10, 1, 2, 3]))), "reserve");
    }

    #[test]
    fn trusted_proxies_have_no_per_peer_cap() {
        let nets: Vec<IpNet> = vec!["127.0.0.9/32".parse().unwrap()];
        let limits = ConnectionLimits::new(10, 0, 1, &nets, &[]);
        let held: Vec<_> = (0..5).map(|_| limits.admit(ip(9))).collect();
        assert!(held.iter().all(|a| kind(a) == "normal"));
    }
}
