//! The egress policy of `http/request`: which hosts and addresses the executor may connect
//! to on a client's behalf (docs/security-model.md).
//!
//! A destination is refused when a deny rule matches it (the built-in link-local rules, or
//! an operator's `--http-deny`) and no `--http-allow` rule matches it: an allow rule wins,
//! so operators open single exceptions in a denied range (`--http-allow 169.254.169.254`),
//! or deny everything and allow a few names.
//!
//! The address rules are checked against the address actually connected to: host names
//! are resolved by [`PolicyResolver`], which hands the HTTP client only the addresses the
//! policy allows, so a name that resolves to a denied address (DNS rebinding) is refused
//! at connect time. IP literals in a URL never reach a resolver and are checked by
//! [`EgressPolicy::check_url`] before the request and at every redirect hop.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// What a rule matches: a host name (`example.com`, or `*.example.com` for its
/// subdomains) or an address range (an address alone is a /32 or /128).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Host(String),
    Subdomains(String),
    Net(IpNet),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Host(host) => f.write_str(host),
            Target::Subdomains(parent) => write!(f, "*.{parent}"),
            Target::Net(net) if net.prefix_len() == net.max_prefix_len() => write!(f, "{}", net.addr()),
            Target::Net(net) => write!(f, "{net}"),
        }
    }
}

/// Parses the value of `--http-allow`/`--http-deny`: `HOST`, `*.HOST`, an IP address
/// (IPv6 with or without brackets) or a CIDR range.
pub fn parse_target(text: &str) -> Result<Target, String> {
    let trimmed = text.trim();
    let unbracketed = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(trimmed);
    if let Ok(net) = unbracketed.parse::<IpNet>() {
        // `10.1.2.3/8` names the range 10.0.0.0/8; normalise so the rule reads as meant.
        return Ok(Target::Net(normalise_net(net.trunc())));
    }
    if let Ok(addr) = unbracketed.parse::<IpAddr>() {
        return Ok(Target::Net(normalise_net(IpNet::from(addr))));
    }
    let (wildcard, name) = match trimmed.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let name = normalise_host(name);
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!("`{text}` is neither a host name (`example.com`, `*.example.com`), an IP address nor a CIDR range"));
    }
    Ok(if wildcard { Target::Subdomains(name) } else { Target::Host(name) })
}

/// An IPv4-mapped IPv6 range is kept as the IPv4 range it maps, so that one rule covers
/// both ways of writing an address.
fn normalise_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map(IpNet::V4).unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

/// The address the connection really reaches, for judging it: an IPv4-mapped IPv6
/// address (`[::ffff:169.254.169.254]`) reaches the IPv4 one, and the unspecified address
/// (`0.0.0.0`, `::`) reaches this host's loopback on Linux, so a rule denying 127.0.0.0/8
/// must not be sidestepped by `http://0.0.0.0:PORT/`.
fn normalise_ip(ip: IpAddr) -> IpAddr {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        _ => ip,
    }
}

fn normalise_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Where a rule came from, to name it in a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// Link-local ranges, denied unless allowed: cloud metadata endpoints live there.
    BuiltIn,
    Deny,
    Allow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    target: Target,
    origin: Origin,
}

impl Rule {
    fn matches(&self, host: Option<&str>, ip: Option<IpAddr>) -> bool {
        match (&self.target, host, ip) {
            (Target::Host(name), Some(host), _) => *name == host,
            (Target::Subdomains(parent), Some(host), _) => {
                host.len() > parent.len() + 1 && host.ends_with(parent.as_str()) && host[..host.len() - parent.len()].ends_with('.')
            }
            (Target::Net(net), _, Some(ip)) => net.contains(&ip),
            _ => false,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.origin {
            Origin::BuiltIn => write!(
                f,
                "the built-in rule denying link-local {} (cloud metadata endpoints; open an exception with `--http-allow`)",
                self.target
            ),
            Origin::Deny => write!(f, "`--http-deny {}`", self.target),
            Origin::Allow => write!(f, "`--http-allow {}`", self.target),
        }
    }
}

/// A refused destination, with the rule that refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{destination} is denied by {rule}")]
pub struct EgressDenied {
    destination: String,
    rule: String,
}

/// The operator's rules plus the built-in link-local ones.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        Self::new(Vec::new(), Vec::new())
    }
}

/// Link-local ranges: 169.254.169.254 (and fd00:ec2::254's link-local siblings) serve cloud
/// instance metadata, credentials included, to anything on the host that asks.
const BUILT_IN_DENY: [&str; 2] = ["169.254.0.0/16", "fe80::/10"];

impl EgressPolicy {
    pub fn new(allow: Vec<Target>, deny: Vec<Target>) -> Self {
        let built_in =
            BUILT_IN_DENY.iter().filter_map(|text| parse_target(text).ok()).map(|target| Rule { target, origin: Origin::BuiltIn });
        let explicit = deny.into_iter().map(|target| Rule { target, origin: Origin::Deny });
        Self {
            allow: allow.into_iter().map(|target| Rule { target, origin: Origin::Allow }).collect(),
            deny: built_in.chain(explicit).collect(),
        }
    }

    /// Whether connecting to `ip` (resolved from `host`, when it was a name) is allowed.
    /// With no address, only the host-name rules are judged (the address is judged once
    /// the name is resolved).
    pub fn check(&self, host: Option<&str>, ip: Option<IpAddr>) -> Result<(), EgressDenied> {
        let host = host.map(normalise_host);
        let host = host.as_deref();
        let shown = ip;
        let ip = ip.map(normalise_ip);
        if self.allow.iter().any(|rule| rule.matches(host, ip)) {
            return Ok(());
        }
        match self.deny.iter().find(|rule| rule.matches(host, ip)) {
            None => Ok(()),
            Some(rule) => {
                let destination = match (host, shown) {
                    (Some(host), Some(ip)) => format!("address {ip} (resolved from `{host}`)"),
                    (Some(host), None) => format!("host `{host}`"),
                    (None, Some(ip)) => format!("address {ip}"),
                    (None, None) => "the destination".to_owned(),
                };
                Err(EgressDenied { destination, rule: rule.to_string() })
            }
        }
    }

    /// The checks a URL allows before anything is resolved: its host name against the
    /// name rules, or its IP literal against every rule (an IP literal is connected to as
    /// it is, without a resolver).
    pub fn check_url(&self, url: &url::Url) -> Result<(), EgressDenied> {
        match url.host() {
            Some(url::Host::Domain(name)) => self.check(Some(name), None),
            Some(url::Host::Ipv4(v4)) => self.check(None, Some(IpAddr::V4(v4))),
            Some(url::Host::Ipv6(v6)) => self.check(None, Some(IpAddr::V6(v6))),
            None => Ok(()),
        }
    }
}

/// The HTTP client's resolver: the system's (getaddrinfo, through tokio), with every
/// address the policy refuses removed. Only what is returned here can be connected to.
pub struct PolicyResolver {
    pub policy: Arc<EgressPolicy>,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the connector puts the URL's port on each address.
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let mut allowed = Vec::with_capacity(resolved.len());
            for addr in resolved {
                match policy.check(Some(&host), Some(addr.ip())) {
                    Ok(()) => allowed.push(addr),
                    Err(denied) => {
                        tracing::info!("http/request egress refused: {denied}");
                        refused.get_or_insert(denied);
                    }
                }
            }
            match (allowed.is_empty(), refused) {
                (true, Some(denied)) => Err(Box::new(denied) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> Target {
        parse_target(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap_or_else(|e| panic!("{text}: {e}")))
    }

    #[test]
    fn parses_hosts_addresses_and_ranges() {
        assert_eq!(target("Example.COM."), Target::Host("example.com".into()));
        assert_eq!(target("*.example.com"), Target::Subdomains("example.com".into()));
        assert_eq!(target("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(target("127.0.0.2").to_string(), "127.0.0.2");
        assert_eq!(target("[::1]").to_string(), "::1");
        assert_eq!(target("::ffff:169.254.169.254").to_string(), "169.254.169.254");
        for bad in ["", "a b", "-x.com", "x..com", "10.0.0.0/33", "http://x", "*.", "x/y"] {
            assert!(parse_target(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn link_local_is_denied_by_default_and_an_allow_opens_it() {
        let default = EgressPolicy::default();
        let denied = default.check(None, ip("169.254.169.254")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(denied.contains("built-in rule denying link-local 169.254.0.0/16"), "{denied}");
        assert!(default.check(None, ip("fe80::1")).is_err());
        assert!(default.check(None, ip("::ffff:169.254.169.254")).is_err(), "mapped IPv4 is judged as IPv4");
        assert!(default.check(Some("metadata.internal"), ip("169.254.169.254")).is_err(), "a name does not launder it");
        assert!(default.check(None, ip("127.0.0.1")).is_ok());
        assert!(default.check(Some("example.com"), None).is_ok());
        let opened = EgressPolicy::new(vec![target("169.254.169.254")], vec![]);
        assert!(opened.check(None, ip("169.254.169.254")).is_ok());
        assert!(opened.check(None, ip("169.254.169.253")).is_err());
    }

    #[test]
    fn deny_rules_name_themselves_and_allow_wins() {
        let policy = EgressPolicy::new(
            vec![target("10.1.2.3"), target("api.example.com")],
            vec![target("127.0.0.2"), target("10.0.0.0/8"), target("*.example.com")],
        );
        let message = policy.check(Some("localhost"), ip("127.0.0.2")).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(message, "address 127.0.0.2 (resolved from `localhost`) is denied by `--http-deny 127.0.0.2`");
        assert!(policy.check(None, ip("127.0.0.1")).is_ok());
        let loopback = EgressPolicy::new(vec![], vec![target("127.0.0.0/8"), target("::1")]);
        let message = loopback.check(None, ip("0.0.0.0")).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(message, "address 0.0.0.0 is denied by `--http-deny 127.0.0.0/8`", "0.0.0.0 reaches loopback");
        assert!(loopback.check(None, ip("::")).is_err());
        assert!(policy.check(None, ip("10.9.9.9")).is_err());
        assert!(policy.check(None, ip("10.1.2.3")).is_ok());
        let message = policy.check(Some("www.Example.com"), None).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(message, "host `www.example.com` is denied by `--http-deny *.example.com`");
        assert!(policy.check(Some("example.com"), None).is_ok(), "*. covers subdomains only");
        assert!(policy.check(Some("api.example.com"), ip("10.9.9.9")).is_ok(), "an allowed name wins");
        assert!(policy.check(Some("notexample.com"), None).is_ok());
    }

    #[test]
    fn urls_with_ip_literals_are_judged_before_any_resolver() {
        let policy = EgressPolicy::new(vec![], vec![target("127.0.0.2"), target("::1")]);
        let url = |text: &str| url::Url::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(policy.check_url(&url("http://127.0.0.2:8080/x")).is_err());
        assert!(policy.check_url(&url("http://[::1]/")).is_err());
        assert!(policy.check_url(&url("http://[::ffff:169.254.169.254]/")).is_err());
        assert!(policy.check_url(&url("http://127.0.0.1/")).is_ok());
        assert!(policy.check_url(&url("http://localhost/")).is_ok(), "names are judged once resolved");
    }
}
