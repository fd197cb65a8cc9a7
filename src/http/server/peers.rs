//! Who may open a connection: at most `AUTHD_MAX_CONNECTIONS` are open at once (at the cap,
//! new ones wait in the kernel's backlog), and one host holds at most an eighth of them, so a
//! single host cannot fill the cap. Trusted proxies are exempt: each carries many clients.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::client::host_of;

/// The share of the connection cap one host may hold: `max_connections / SHARE_DIVISOR`.
const SHARE_DIVISOR: usize = 8;

/// Open connections by host.
type ByHost = Arc<Mutex<HashMap<IpAddr, usize>>>;

pub(super) struct Peers {
    open: Arc<Semaphore>,
    share: usize,
    trusted: Vec<IpNet>,
    by_host: ByHost,
}

/// A host's claim on one connection of its share, given back when the connection ends.
pub(super) struct Share {
    held: Option<(ByHost, IpAddr)>,
}

impl Peers {
    pub(super) fn new(max_connections: usize, trusted: Vec<IpNet>) -> Self {
        Self {
            open: Arc::new(Semaphore::new(max_connections)),
            share: (max_connections / SHARE_DIVISOR).max(1),
            trusted,
            by_host: Arc::default(),
        }
    }

    /// Waits until fewer than the cap are open; the permit is the connection's place.
    pub(super) async fn open_slot(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.open)
            .acquire_owned()
            .await
            .expect("the connection semaphore is never closed")
    }

    /// A place in the share of the host `peer` belongs to; `None` when it holds its whole share.
    pub(super) fn claim(&self, peer: IpAddr) -> Option<Share> {
        if self
            .trusted
            .iter()
            .any(|net| net.contains(&peer.to_canonical()))
        {
            return Some(Share { held: None });
        }
        let host = host_of(peer);
        let mut by_host = self.by_host.lock().unwrap_or_else(PoisonError::into_inner);
        let held = by_host.entry(host).or_default();
        if *held >= self.share {
            return None;
        }
        *held += 1;
        Some(Share {
            held: Some((Arc::clone(&self.by_host), host)),
        })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let Some((by_host, host)) = self.held.take() else {
            return;
        };
        let mut by_host = by_host.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = by_host.get_mut(&host) {
            *held -= 1;
            if *held == 0 {
                by_host.remove(&host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn one_host_holds_an_eighth_of_the_cap_and_gets_it_back() {
        let peers = Peers::new(16, vec![]);
        let first = peers.claim(ip("192.0.2.1")).expect("first");
        let _second = peers.claim(ip("192.0.2.1")).expect("second");
        assert!(
            peers.claim(ip("192.0.2.1")).is_none(),
            "a third is over 16 / 8"
        );
        assert!(
            peers.claim(ip("192.0.2.2")).is_some(),
            "another host has its own"
        );
        drop(first);
        assert!(peers.claim(ip("192.0.2.1")).is_some(), "given back");
    }

    #[test]
    fn ipv6_hosts_are_counted_by_their_64_and_proxies_are_exempt() {
        let peers = Peers::new(8, vec!["10.0.0.0/8".parse().expect("CIDR")]);
        let _one = peers.claim(ip("2001:db8:1:2::1")).expect("first");
        assert!(
            peers.claim(ip("2001:db8:1:2:ffff::9")).is_none(),
            "same /64"
        );
        assert!(peers.claim(ip("2001:db8:1:3::1")).is_some(), "another /64");
        let proxied: Vec<_> = (0..20)
            .filter_map(|_| peers.claim(ip("10.1.2.3")))
            .collect();
        assert_eq!(proxied.len(), 20);
    }
}
