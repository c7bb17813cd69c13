//! Candidate gathering for the media engine: server-reflexive addresses from STUN servers and
//! relayed addresses from TURN servers (UDP). str0m runs ICE itself but leaves gathering to
//! the application.
//!
//! Gathering happens once, when the session starts, on the session's own socket (so the
//! reflexive and relayed addresses belong to the port media uses). The TURN allocations live
//! on in the engine as [`TurnRelay`]s.

mod stun;
mod turn;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use cc_core::{Error, Result, Vendor};
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use crate::media::{IceTransportPolicy, MediaConfig};
use stun::{Class, Message, MessageBuilder, Method, TransId, new_trans_id};
pub(crate) use turn::TurnRelay;
use turn::{AllocStep, Allocation, Credentials};

/// Retransmission times of one STUN transaction, from the first send.
const RETRIES: [Duration; 3] = [
    Duration::from_millis(300),
    Duration::from_millis(700),
    Duration::from_millis(1500),
];
/// Give up on a server after this long.
const TRANSACTION_LIMIT: Duration = Duration::from_millis(2500);

/// What gathering found.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    /// Server-reflexive addresses.
    pub(crate) reflexive: Vec<SocketAddr>,
    /// TURN allocations.
    pub(crate) relays: Vec<TurnRelay>,
}

/// A parsed `stun:`/`turn:` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerUrl {
    Stun { host: String, port: u16 },
    Turn { host: String, port: u16 },
}

/// Parses `stun:host[:port]` and `turn:host[:port][?transport=udp]` (RFC 7064/7065).
pub(crate) fn parse_url(url: &str) -> std::result::Result<ServerUrl, String> {
    let (scheme, rest) = url
        .split_once(':')
        .ok_or_else(|| format!("{url:?} has no scheme"))?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "stun" | "turn" => {}
        "stuns" | "turns" => return Err(format!("{url:?}: TLS transport is not supported")),
        _ => return Err(format!("{url:?}: not a stun: or turn: URL")),
    }
    if let Some(q) = query {
        for kv in q.split('&') {
            match kv.split_once('=') {
                Some(("transport", "udp")) => {}
                Some(("transport", other)) => {
                    return Err(format!(
                        "{url:?}: transport {other} is not supported (udp only)"
                    ));
                }
                _ => {}
            }
        }
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: unclosed IPv6 literal"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("{url:?}: junk after the host")),
        };
        (host.to_owned(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (rest.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("{url:?}: bad port {p:?}"))?,
        None => 3478,
    };
    Ok(match scheme.as_str() {
        "stun" => ServerUrl::Stun { host, port },
        _ => ServerUrl::Turn { host, port },
    })
}

async fn resolve(host: &str, port: u16, want_v4: bool) -> Option<SocketAddr> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return (ip.is_ipv4() == want_v4).then_some(SocketAddr::new(ip, port));
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(mut addrs) => addrs.find(|a| a.is_ipv4() == want_v4),
        Err(e) => {
            debug!("resolving {host}: {e}");
            None
        }
    }
}

/// The local address the system would send from towards the first reachable ICE server
/// (a UDP `connect`, which sends nothing).
pub(crate) async fn route_source(config: &MediaConfig) -> Option<IpAddr> {
    let want_v4 = config.bind.is_ipv4();
    for url in config.ice_servers.iter().flat_map(|s| &s.urls) {
        let Ok(ServerUrl::Stun { host, port } | ServerUrl::Turn { host, port }) = parse_url(url)
        else {
            continue;
        };
        let Some(addr) = resolve(&host, port, want_v4).await else {
            continue;
        };
        if let Ok(local) = crate::media::probe_route(config.bind, addr).await
            && !local.is_unspecified()
        {
            return Some(local);
        }
    }
    None
}

/// Sends `request` to `server` until a response with transaction `id` comes (or the
/// transaction times out). Other datagrams are dropped: no peer knows our address yet.
async fn transact(
    socket: &UdpSocket,
    server: SocketAddr,
    id: TransId,
    request: &[u8],
) -> Option<Vec<u8>> {
    let start = tokio::time::Instant::now();
    let mut buf = vec![0u8; 2048];
    let mut retries = RETRIES.iter();
    socket.send_to(request, server).await.ok()?;
    let mut next = retries.next().map(|d| start + *d);
    loop {
        let deadline = next
            .unwrap_or(start + TRANSACTION_LIMIT)
            .min(start + TRANSACTION_LIMIT);
        match tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => {
                if from == server
                    && let Some(m) = Message::parse(&buf[..n])
                    && m.id == id
                    && m.verify_fingerprint()
                    && matches!(m.class, Class::Success | Class::Error)
                {
                    return Some(buf[..n].to_vec());
                }
            }
            // ICMP errors: the server port is closed; keep waiting for a retry's answer.
            Ok(Err(e)) => debug!("STUN to {server}: {e}"),
            Err(_) => {
                if tokio::time::Instant::now() >= start + TRANSACTION_LIMIT {
                    return None;
                }
                let _ = socket.send_to(request, server).await;
                next = retries.next().map(|d| start + *d);
            }
        }
    }
}

/// A STUN Binding request: our address as `server` sees it.
async fn binding(
    socket: &UdpSocket,
    server: SocketAddr,
) -> std::result::Result<SocketAddr, String> {
    let id = new_trans_id();
    let request = MessageBuilder::new(Method::Binding, Class::Request, id).fingerprint();
    let response = transact(socket, server, id, &request)
        .await
        .ok_or_else(|| format!("STUN {server}: no answer"))?;
    let m = Message::parse(&response).ok_or_else(|| format!("STUN {server}: bad answer"))?;
    if m.class == Class::Error {
        let (code, reason) = m.error().unwrap_or((0, ""));
        return Err(format!("STUN {server}: {code} {reason}"));
    }
    m.mapped_addr()
        .ok_or_else(|| format!("STUN {server}: no mapped address in the answer"))
}

/// A TURN allocation on `server`.
async fn allocate(
    socket: &UdpSocket,
    server: SocketAddr,
    creds: Credentials,
) -> std::result::Result<TurnRelay, String> {
    let mut alloc = Allocation::new(server, creds);
    let (mut id, mut request) = alloc.start();
    loop {
        let response = transact(socket, server, id, &request)
            .await
            .ok_or_else(|| format!("TURN {server}: no answer"))?;
        let m = Message::parse(&response).ok_or_else(|| format!("TURN {server}: bad answer"))?;
        match alloc.on_response(&m, Instant::now()) {
            AllocStep::Send(next_id, next) => {
                id = next_id;
                request = next;
            }
            AllocStep::Done(relay) => return Ok(*relay),
            AllocStep::Failed(reason) => return Err(format!("TURN {server}: {reason}")),
        }
    }
}

/// Asks the configured servers for reflexive and relayed addresses.
pub(crate) async fn gather(
    vendor: Vendor,
    socket: &UdpSocket,
    config: &MediaConfig,
) -> Result<Gathered> {
    let mut gathered = Gathered::default();
    let mut failures = Vec::new();
    let want_v4 = config.bind.is_ipv4();
    let relay_only = config.ice_transport_policy == IceTransportPolicy::Relay;
    for (i, server) in config.ice_servers.iter().enumerate() {
        for url in &server.urls {
            let parsed = match parse_url(url) {
                Ok(p) => p,
                Err(reason) => {
                    warn!("ice_servers[{i}]: {reason}; skipped");
                    failures.push(reason);
                    continue;
                }
            };
            match parsed {
                ServerUrl::Stun { .. } if relay_only => {}
                ServerUrl::Stun { host, port } => {
                    let Some(addr) = resolve(&host, port, want_v4).await else {
                        failures.push(format!("{url}: no address of the socket's family"));
                        continue;
                    };
                    match binding(socket, addr).await {
                        Ok(mapped) => {
                            if !gathered.reflexive.contains(&mapped) {
                                gathered.reflexive.push(mapped);
                            }
                        }
                        Err(reason) => {
                            warn!("{reason}");
                            failures.push(reason);
                        }
                    }
                }
                ServerUrl::Turn { host, port } => {
                    let (Some(username), Some(password)) =
                        (server.username.clone(), server.credential.clone())
                    else {
                        return Err(Error::invalid(
                            vendor,
                            format!("ice_servers[{i}].username"),
                            format!("{url} needs a username and a credential"),
                        ));
                    };
                    let Some(addr) = resolve(&host, port, want_v4).await else {
                        failures.push(format!("{url}: no address of the socket's family"));
                        continue;
                    };
                    if gathered.relays.iter().any(|r| r.server() == addr) {
                        continue;
                    }
                    match allocate(socket, addr, Credentials { username, password }).await {
                        Ok(relay) => {
                            if let Some(mapped) = relay.mapped_addr()
                                && !relay_only
                                && !gathered.reflexive.contains(&mapped)
                            {
                                gathered.reflexive.push(mapped);
                            }
                            gathered.relays.push(relay);
                        }
                        Err(reason) => {
                            warn!("{reason}");
                            failures.push(reason);
                        }
                    }
                }
            }
        }
    }
    if relay_only && gathered.relays.is_empty() {
        let why = if failures.is_empty() {
            "no `turn:` server is configured".to_owned()
        } else {
            failures.join("; ")
        };
        return Err(Error::invalid(
            vendor,
            "media.ice_transport_policy",
            format!("relay only, but no TURN allocation: {why}"),
        ));
    }
    Ok(gathered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let stun = |h: &str, p| ServerUrl::Stun {
            host: h.into(),
            port: p,
        };
        let turn = |h: &str, p| ServerUrl::Turn {
            host: h.into(),
            port: p,
        };
        assert_eq!(parse_url("stun:127.0.0.1"), Ok(stun("127.0.0.1", 3478)));
        assert_eq!(
            parse_url("stun:stun.example.org:19302"),
            Ok(stun("stun.example.org", 19302))
        );
        assert_eq!(
            parse_url("turn:[::1]:5000?transport=udp"),
            Ok(turn("::1", 5000))
        );
        assert_eq!(
            parse_url("TURN:relay.example.org"),
            Ok(turn("relay.example.org", 3478))
        );
        assert!(
            parse_url("turns:relay.example.org:443")
                .unwrap_err()
                .contains("TLS")
        );
        assert!(
            parse_url("turn:h?transport=tcp")
                .unwrap_err()
                .contains("tcp")
        );
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("stun:").is_err());
        assert!(parse_url("stun:h:port").unwrap_err().contains("bad port"));
    }
}
