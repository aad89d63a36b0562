//! Who a client is (docs/front-door.md): the address of the TCP peer, or,
//! behind proxies that are trusted, the address those proxies saw. The API
//! counts its rate limits per client; the web app's server resolves its
//! visitors the same way before it calls the API for them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// `BOXOFFICE_TRUSTED_PROXIES`: comma-separated networks (`10.0.0.0/8`) or
/// addresses; empty, no proxy is trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl FromStr for TrustedProxies {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| {
                n.parse::<IpNet>()
                    .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{n:?} is not a network like 10.0.0.0/8 or an address"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nets: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&nets.join(","))
    }
}

impl TrustedProxies {
    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&canonical(address)))
    }
}

/// Every `X-Forwarded-For` line of a request as one list. A byte that is
/// not text spoils only its own entry, never the addresses proxies added
/// after it.
pub fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let lines: Vec<String> = headers
        .get_all("X-Forwarded-For")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    (!lines.is_empty()).then(|| lines.join(","))
}

/// The client behind a request: its peer, unless the peer is a trusted
/// proxy; then, walking `X-Forwarded-For` from the right (each proxy
/// appends the address it saw), the first address that is not a trusted
/// proxy. Entries left of that one are the client's own claims and are
/// never read. `None` without a peer address (not over TCP).
pub fn address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let mut client = canonical(peer?);
    if !trusted.trusts(client) {
        return Some(client);
    }
    for hop in forwarded_for.unwrap_or("").rsplit(',') {
        let hop = hop.trim();
        if hop.is_empty() {
            continue;
        }
        // A trusted proxy writes addresses; anything else here was not
        // written by one: the proxy seen last is then all that is known.
        let Ok(address) = hop.parse::<IpAddr>() else {
            return Some(client);
        };
        client = canonical(address);
        if !trusted.trusts(client) {
            return Some(client);
        }
    }
    Some(client)
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// What one client's limits are counted under: an IPv4 address, or the /64
/// of an IPv6 one (a subscriber line gets a whole /64 and may use any
/// address in it).
pub fn key(address: Option<IpAddr>) -> String {
    match address.map(canonical) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nets(s: &str) -> TrustedProxies {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn trusted_proxies_parse_networks_addresses_and_nothing() {
        assert_eq!(nets(""), TrustedProxies(vec![]));
        assert_eq!(nets(" , "), TrustedProxies(vec![]));
        let t = nets("10.0.0.0/8, 127.0.0.1,::1");
        assert_eq!(t.to_string(), "10.0.0.0/8,127.0.0.1/32,::1/128");
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("localhost".parse::<TrustedProxies>().is_err());
    }

    #[test]
    fn a_direct_client_is_its_peer_whatever_it_claims() {
        let trusted = nets("10.0.0.0/8");
        assert_eq!(
            address(ip("203.0.113.7"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            address(ip("203.0.113.7"), None, &nets("")),
            ip("203.0.113.7")
        );
        assert_eq!(address(None, Some("1.2.3.4"), &trusted), None);
    }

    #[test]
    fn behind_trusted_proxies_the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted = nets("10.0.0.0/8,127.0.0.1/32");
        // The web app's server (127.0.0.1) behind an ingress (10.1.1.1):
        // the client's own claim (6.6.6.6) is never read.
        assert_eq!(
            address(
                ip("127.0.0.1"),
                Some("6.6.6.6, 198.51.100.9, 10.1.1.1"),
                &trusted
            ),
            ip("198.51.100.9")
        );
        // A trusted peer that sent no header is the client.
        assert_eq!(address(ip("127.0.0.1"), None, &trusted), ip("127.0.0.1"));
        // Every hop trusted: the leftmost.
        assert_eq!(
            address(ip("127.0.0.1"), Some("10.0.0.5,10.0.0.6"), &trusted),
            ip("10.0.0.5")
        );
        // Garbage where a proxy's address should be: the last proxy known.
        assert_eq!(
            address(ip("127.0.0.1"), Some("1.1.1.1, bogus, 10.0.0.6"), &trusted),
            ip("10.0.0.6")
        );
        // An IPv4 peer written as IPv6 is trusted as IPv4.
        assert_eq!(
            address(ip("::ffff:127.0.0.1"), Some("198.51.100.9"), &trusted),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn a_byte_that_is_not_text_spoils_only_its_own_entry() {
        let mut headers = HeaderMap::new();
        headers.append(
            actix_web::http::header::HeaderName::from_static("x-forwarded-for"),
            actix_web::http::header::HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.9").unwrap(),
        );
        let list = forwarded_for(&headers).unwrap();
        assert_eq!(
            address(ip("127.0.0.1"), Some(&list), &nets("127.0.0.1")),
            ip("198.51.100.9")
        );
        assert_eq!(forwarded_for(&HeaderMap::new()), None);
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        assert_eq!(key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(key(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(key(None), "unknown");
    }

    proptest! {
        /// Whatever a client writes into X-Forwarded-For, it is counted as
        /// the address the last trusted proxy saw: behind any chain of
        /// trusted proxies, each appending what it saw.
        #[test]
        fn a_client_cannot_choose_its_address(
            claim in prop::collection::vec(any::<[u8; 4]>(), 0..6),
            garbage in "[ -~]{0,40}",
            client in any::<[u8; 4]>(),
            proxies in prop::collection::vec(any::<u8>(), 0..4),
        ) {
            let client = IpAddr::from(client);
            let trusted = nets("10.9.0.0/16,127.0.0.1/32");
            prop_assume!(!trusted.trusts(client));
            let mut header: Vec<String> = claim.iter().map(|a| IpAddr::from(*a).to_string()).collect();
            header.push(garbage.replace(',', " "));
            // The first proxy appends the client; each later one, the
            // proxy before it.
            header.push(client.to_string());
            for p in &proxies {
                header.push(format!("10.9.1.{p}"));
            }
            let got = address(ip("127.0.0.1"), Some(&header.join(", ")), &trusted);
            prop_assert_eq!(got, Some(client));
            // Reached directly, the peer is the client, whatever it sends.
            prop_assert_eq!(address(Some(client), Some(&header.join(",")), &trusted), Some(client));
        }

        #[test]
        fn trusted_proxies_never_panic_on_any_text(s in "\\PC{0,40}") {
            let _ = s.parse::<TrustedProxies>();
        }
    }
}
