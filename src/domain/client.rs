//! Who is on the other end of a request, as far as authd can tell: what sessions, throttling
//! and audit will key on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The most of a User-Agent kept (in characters): enough to name a device.
const USER_AGENT_MAX: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// A client known only by the process itself (the command line).
    pub fn local() -> Self {
        Self {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_agent: None,
        }
    }

    /// What throttles count this client as: its address, or for IPv6 its /64 (one host's
    /// usual allocation, which it can otherwise rotate through freely).
    pub fn throttle_key(&self) -> String {
        match self.ip {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => {
                let segments = ip.segments();
                format!(
                    "{:x}:{:x}:{:x}:{:x}::/64",
                    segments[0], segments[1], segments[2], segments[3]
                )
            }
        }
    }

    /// `peer` is the connection's address; `forwarded_for` the `X-Forwarded-For` values in
    /// order; only a trusted peer's forwarding is believed.
    pub fn new(
        peer: IpAddr,
        forwarded_for: &[&str],
        trusted: &[IpNet],
        user_agent: Option<&str>,
    ) -> Self {
        Self {
            ip: client_ip(peer, forwarded_for, trusted),
            user_agent: user_agent
                .map(|agent| {
                    agent
                        .trim()
                        .chars()
                        .take(USER_AGENT_MAX)
                        .collect::<String>()
                })
                .filter(|agent| !agent.is_empty()),
        }
    }
}

/// The address that stands for one host: an IPv4 address as it is, an IPv6 address by its
/// /64 (one host's usual allocation, which it can otherwise rotate through freely).
pub fn host_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(ip) => {
            let [a, b, c, d, ..] = ip.segments();
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
        ip => ip,
    }
}

/// The peer, or, when the peer is a trusted proxy, the rightmost `X-Forwarded-For` hop that
/// is not one: every hop to its right was added by a proxy we trust, the hop itself by the
/// first one, so it cannot be forged by the client. A hop that is not an address stops the
/// walk at the last trusted proxy.
fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let hops = forwarded_for
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>().map(|ip| ip.to_canonical()) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("net")).collect()
    }

    #[test]
    fn forwarding_is_believed_only_from_trusted_proxies() {
        let trusted = nets(&["10.0.0.0/8"]);
        let behind = |xff: &[&str]| client_ip(ip("10.0.0.1"), xff, &trusted);
        assert_eq!(behind(&[]), ip("10.0.0.1"));
        assert_eq!(behind(&["203.0.113.9"]), ip("203.0.113.9"));
        assert_eq!(
            behind(&["1.1.1.1, 203.0.113.9, 10.0.0.7"]),
            ip("203.0.113.9"),
            "the client forged 1.1.1.1; our proxies added the rest"
        );
        assert_eq!(behind(&["1.1.1.1", "203.0.113.9"]), ip("203.0.113.9"));
        assert_eq!(behind(&["10.0.0.9, 10.0.0.8"]), ip("10.0.0.9"));
        assert_eq!(behind(&["garbage, 10.0.0.8"]), ip("10.0.0.8"));
        assert_eq!(
            client_ip(ip("198.51.100.4"), &["203.0.113.9"], &trusted),
            ip("198.51.100.4"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), &["2001:db8::1"], &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &["203.0.113.9"], &[]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let key = |text: &str| ClientInfo::new(ip(text), &[], &[], None).throttle_key();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.9"), "203.0.113.9");
    }

    #[test]
    fn user_agents_are_trimmed_and_bounded() {
        let long = "x".repeat(1000);
        let client = ClientInfo::new(ip("127.0.0.1"), &[], &[], Some(&long));
        assert_eq!(client.user_agent.map(|a| a.len()), Some(USER_AGENT_MAX));
        assert_eq!(
            ClientInfo::new(ip("127.0.0.1"), &[], &[], Some("  ")).user_agent,
            None
        );
    }
}
