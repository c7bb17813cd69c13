//! A TURN client over UDP (RFC 8656), sans-IO: the allocation handshake with long-term
//! credentials, then a [`TurnRelay`] that refreshes the allocation, installs permissions for
//! the peers ICE talks to, wraps outgoing data in Send indications and unwraps Data
//! indications. Time is passed in; datagrams to send are pushed to an `out` list.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use cc_core::Secret;
use tracing::{debug, warn};

use super::stun::{
    Class, Message, MessageBuilder, Method, TransId, attr, long_term_key, new_trans_id,
};

/// Datagrams to send: (destination, bytes).
pub(crate) type Out = Vec<(SocketAddr, Vec<u8>)>;

/// REQUESTED-TRANSPORT value for UDP (protocol 17 in the first byte).
const TRANSPORT_UDP: u32 = 17 << 24;
/// The allocation lifetime we ask for.
const LIFETIME: Duration = Duration::from_secs(600);
/// Permissions last five minutes; refresh a minute early.
const PERMISSION_REFRESH: Duration = Duration::from_secs(240);
/// First retransmission timeout of a request.
const RTO: Duration = Duration::from_millis(500);
/// Transmissions of one request before giving up.
const MAX_TRANSMISSIONS: u32 = 5;
const SOFTWARE: &str = "cc-rtc";

/// The credentials of a TURN server.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What an allocation attempt should do next.
#[derive(Debug)]
pub(crate) enum AllocStep {
    /// Send this request (a retry with credentials or a fresh nonce).
    Send(TransId, Vec<u8>),
    /// The allocation exists.
    Done(Box<TurnRelay>),
    /// The server refused.
    Failed(String),
}

/// The Allocate handshake: an unauthenticated request, the server's 401 with realm and nonce,
/// the authenticated request, the relayed address.
#[derive(Debug)]
pub(crate) struct Allocation {
    server: SocketAddr,
    creds: Credentials,
    realm: Option<String>,
    nonce: Option<String>,
    key: [u8; 16],
    attempts: u32,
}

impl Allocation {
    pub(crate) fn new(server: SocketAddr, creds: Credentials) -> Self {
        Allocation {
            server,
            creds,
            realm: None,
            nonce: None,
            key: [0; 16],
            attempts: 0,
        }
    }

    /// The first request.
    pub(crate) fn start(&mut self) -> (TransId, Vec<u8>) {
        self.request()
    }

    fn request(&mut self) -> (TransId, Vec<u8>) {
        self.attempts += 1;
        let id = new_trans_id();
        let b = MessageBuilder::new(Method::Allocate, Class::Request, id)
            .u32(attr::REQUESTED_TRANSPORT, TRANSPORT_UDP)
            .u32(attr::LIFETIME, LIFETIME.as_secs() as u32)
            .text(attr::SOFTWARE, SOFTWARE);
        let bytes = match (&self.realm, &self.nonce) {
            (Some(realm), Some(nonce)) => b
                .text(attr::USERNAME, &self.creds.username)
                .text(attr::REALM, realm)
                .text(attr::NONCE, nonce)
                .integrity(&self.key)
                .fingerprint(),
            _ => b.fingerprint(),
        };
        (id, bytes)
    }

    /// Handles the server's response to the last request.
    pub(crate) fn on_response(&mut self, msg: &Message<'_>, now: Instant) -> AllocStep {
        match msg.class {
            Class::Success => {
                if !msg.verify_integrity(&self.key) {
                    return AllocStep::Failed("allocate response fails its integrity check".into());
                }
                let Some(relayed) = msg.xor_addr(attr::XOR_RELAYED_ADDRESS) else {
                    return AllocStep::Failed("allocate response without a relayed address".into());
                };
                let lifetime = msg
                    .u32(attr::LIFETIME)
                    .map(|s| Duration::from_secs(u64::from(s)))
                    .unwrap_or(LIFETIME);
                AllocStep::Done(Box::new(TurnRelay {
                    server: self.server,
                    creds: self.creds.clone(),
                    realm: self.realm.clone().unwrap_or_default(),
                    nonce: self.nonce.clone().unwrap_or_default(),
                    key: self.key,
                    relayed,
                    mapped: msg.mapped_addr(),
                    refresh_at: now + refresh_after(lifetime),
                    permissions: HashMap::new(),
                    pending: Vec::new(),
                    released: false,
                }))
            }
            Class::Error => {
                let (code, reason) = msg.error().unwrap_or((0, ""));
                let retry = match code {
                    401 if self.realm.is_none() => true,
                    438 => true,
                    _ => false,
                };
                if !retry || self.attempts >= 4 {
                    return AllocStep::Failed(format!("allocate refused: {code} {reason}"));
                }
                if let Some(realm) = msg.text(attr::REALM) {
                    self.realm = Some(realm.to_owned());
                }
                self.nonce = msg.text(attr::NONCE).map(str::to_owned);
                let (Some(realm), Some(_)) = (&self.realm, &self.nonce) else {
                    return AllocStep::Failed(format!("{code} {reason} without realm and nonce"));
                };
                self.key = long_term_key(&self.creds.username, realm, self.creds.password.expose());
                let (id, bytes) = self.request();
                AllocStep::Send(id, bytes)
            }
            _ => AllocStep::Failed("unexpected STUN message class".into()),
        }
    }
}

fn refresh_after(lifetime: Duration) -> Duration {
    if lifetime > Duration::from_secs(120) {
        lifetime - Duration::from_secs(60)
    } else {
        lifetime / 2
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Refresh(u32),
    Permission(IpAddr),
}

#[derive(Debug)]
struct Pending {
    id: TransId,
    purpose: Purpose,
    bytes: Vec<u8>,
    sent: u32,
    next_retry: Instant,
}

/// A live TURN allocation.
pub(crate) struct TurnRelay {
    server: SocketAddr,
    creds: Credentials,
    realm: String,
    nonce: String,
    key: [u8; 16],
    relayed: SocketAddr,
    mapped: Option<SocketAddr>,
    refresh_at: Instant,
    /// Peers with a permission, and when to refresh it.
    permissions: HashMap<IpAddr, Instant>,
    pending: Vec<Pending>,
    released: bool,
}

impl fmt::Debug for TurnRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnRelay")
            .field("server", &self.server)
            .field("relayed", &self.relayed)
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

impl TurnRelay {
    /// The relayed transport address (the relay candidate).
    pub(crate) fn relayed_addr(&self) -> SocketAddr {
        self.relayed
    }

    /// The TURN server.
    pub(crate) fn server(&self) -> SocketAddr {
        self.server
    }

    /// Our address as the server saw it (a server-reflexive candidate).
    pub(crate) fn mapped_addr(&self) -> Option<SocketAddr> {
        self.mapped
    }

    /// How many peers have a permission.
    #[cfg(test)]
    pub(crate) fn permission_count(&self) -> usize {
        self.permissions.len()
    }

    fn auth_request(&self, method: Method, id: TransId, purpose: Purpose) -> Vec<u8> {
        let b = MessageBuilder::new(method, Class::Request, id);
        let b = match purpose {
            Purpose::Refresh(lifetime) => b.u32(attr::LIFETIME, lifetime),
            Purpose::Permission(ip) => b.xor_addr(attr::XOR_PEER_ADDRESS, SocketAddr::new(ip, 0)),
        };
        b.text(attr::USERNAME, &self.creds.username)
            .text(attr::REALM, &self.realm)
            .text(attr::NONCE, &self.nonce)
            .integrity(&self.key)
            .fingerprint()
    }

    /// Queues a request, due at once (sent by the next [`TurnRelay::on_timeout`]).
    fn queue_request(&mut self, purpose: Purpose, now: Instant) -> usize {
        self.pending.retain(|p| p.purpose != purpose);
        let id = new_trans_id();
        let method = match purpose {
            Purpose::Refresh(_) => Method::Refresh,
            Purpose::Permission(_) => Method::CreatePermission,
        };
        let bytes = self.auth_request(method, id, purpose);
        self.pending.push(Pending {
            id,
            purpose,
            bytes,
            sent: 0,
            next_retry: now,
        });
        self.pending.len() - 1
    }

    fn send_request(&mut self, purpose: Purpose, now: Instant, out: &mut Out) {
        let i = self.queue_request(purpose, now);
        let p = &mut self.pending[i];
        out.push((self.server, p.bytes.clone()));
        p.sent = 1;
        p.next_retry = now + RTO;
    }

    /// Makes sure the server will relay between us and `ip` (a trickled candidate): the
    /// CreatePermission goes out with the next [`TurnRelay::on_timeout`], which is due now.
    pub(crate) fn permit(&mut self, ip: IpAddr, now: Instant) {
        if self.released
            || self.permissions.contains_key(&ip)
            || ip.is_ipv4() != self.relayed.is_ipv4()
        {
            return;
        }
        self.permissions.insert(ip, now + PERMISSION_REFRESH);
        self.queue_request(Purpose::Permission(ip), now);
    }

    fn permit_into(&mut self, ip: IpAddr, now: Instant, out: &mut Out) {
        if self.released || self.permissions.contains_key(&ip) {
            return;
        }
        if ip.is_ipv4() != self.relayed.is_ipv4() {
            return;
        }
        self.permissions.insert(ip, now + PERMISSION_REFRESH);
        self.send_request(Purpose::Permission(ip), now, out);
    }

    /// Relays `data` to `to`: a permission first if needed, then a Send indication.
    pub(crate) fn send_to(&mut self, to: SocketAddr, data: &[u8], now: Instant, out: &mut Out) {
        if self.released {
            return;
        }
        self.permit_into(to.ip(), now, out);
        // A permission queued by `permit` goes out ahead of the data it is for.
        let server = self.server;
        if let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.purpose == Purpose::Permission(to.ip()) && p.sent == 0)
        {
            out.push((server, p.bytes.clone()));
            p.sent = 1;
            p.next_retry = now + RTO;
        }
        let bytes = MessageBuilder::new(Method::Send, Class::Indication, new_trans_id())
            .xor_addr(attr::XOR_PEER_ADDRESS, to)
            .attr(attr::DATA, data)
            .finish();
        out.push((self.server, bytes));
    }

    /// Handles a datagram from the server. Returns relayed data from a peer.
    pub(crate) fn handle_incoming(
        &mut self,
        data: &[u8],
        now: Instant,
        out: &mut Out,
    ) -> Option<(SocketAddr, Vec<u8>)> {
        let msg = Message::parse(data).filter(Message::verify_fingerprint)?;
        match (msg.method, msg.class) {
            (Method::Data, Class::Indication) => {
                let peer = msg.xor_addr(attr::XOR_PEER_ADDRESS)?;
                let payload = msg.get(attr::DATA)?;
                Some((peer, payload.to_vec()))
            }
            (_, Class::Success | Class::Error) => {
                let pos = self.pending.iter().position(|p| p.id == msg.id)?;
                let pending = self.pending.remove(pos);
                self.on_response(&msg, pending.purpose, now, out);
                None
            }
            _ => None,
        }
    }

    fn on_response(&mut self, msg: &Message<'_>, purpose: Purpose, now: Instant, out: &mut Out) {
        if msg.class == Class::Success {
            if !msg.verify_integrity(&self.key) {
                warn!("TURN {}: a response fails its integrity check", self.server);
                return;
            }
            if let Purpose::Refresh(lifetime) = purpose
                && lifetime > 0
            {
                let granted = msg
                    .u32(attr::LIFETIME)
                    .map(|s| Duration::from_secs(u64::from(s)))
                    .unwrap_or(LIFETIME);
                self.refresh_at = now + refresh_after(granted);
            }
            return;
        }
        let (code, reason) = msg.error().unwrap_or((0, ""));
        if code == 438
            && let Some(nonce) = msg.text(attr::NONCE)
        {
            // Stale nonce: take the new one and ask again.
            self.nonce = nonce.to_owned();
            if let Some(realm) = msg.text(attr::REALM) {
                self.realm = realm.to_owned();
                self.key = long_term_key(
                    &self.creds.username,
                    &self.realm,
                    self.creds.password.expose(),
                );
            }
            self.send_request(purpose, now, out);
            return;
        }
        warn!("TURN {}: {purpose:?} refused: {code} {reason}", self.server);
        if let Purpose::Permission(ip) = purpose {
            self.permissions.remove(&ip);
        }
    }

    /// Retransmissions, the allocation refresh and permission refreshes that are due.
    pub(crate) fn on_timeout(&mut self, now: Instant, out: &mut Out) {
        if self.released {
            return;
        }
        let server = self.server;
        self.pending.retain_mut(|p| {
            if p.next_retry > now {
                return true;
            }
            if p.sent >= MAX_TRANSMISSIONS {
                debug!("TURN {server}: {:?} timed out", p.purpose);
                return false;
            }
            out.push((server, p.bytes.clone()));
            p.next_retry = now + RTO * 2u32.pow(p.sent.min(3));
            p.sent += 1;
            true
        });
        let lost: Vec<IpAddr> = self
            .permissions
            .iter()
            .filter(|(ip, _)| {
                !self
                    .pending
                    .iter()
                    .any(|p| p.purpose == Purpose::Permission(**ip))
            })
            .filter(|(_, at)| **at <= now)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in lost {
            self.permissions.insert(ip, now + PERMISSION_REFRESH);
            self.send_request(Purpose::Permission(ip), now, out);
        }
        if self.refresh_at <= now {
            // Until the answer sets the next refresh from the granted lifetime.
            self.refresh_at = now + Duration::from_secs(30);
            self.send_request(Purpose::Refresh(LIFETIME.as_secs() as u32), now, out);
        }
    }

    /// When [`TurnRelay::on_timeout`] has something to do.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.released {
            return None;
        }
        let retries = self.pending.iter().map(|p| p.next_retry);
        let permissions = self.permissions.values().copied();
        retries
            .chain(permissions)
            .chain(std::iter::once(self.refresh_at))
            .min()
    }

    /// Deletes the allocation (a Refresh with lifetime 0).
    pub(crate) fn release(&mut self, now: Instant, out: &mut Out) {
        if self.released {
            return;
        }
        self.send_request(Purpose::Refresh(0), now, out);
        self.released = true;
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            username: "test".into(),
            password: Secret::new("secret"),
        }
    }

    /// A server's answer to `request`.
    fn respond(
        request: &[u8],
        class: Class,
        f: impl FnOnce(MessageBuilder) -> MessageBuilder,
    ) -> Vec<u8> {
        let m = Message::parse(request).unwrap();
        f(MessageBuilder::new(m.method, class, m.id)).fingerprint()
    }

    fn error(code: u16, reason: &str) -> Vec<u8> {
        let mut v = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
        v.extend_from_slice(reason.as_bytes());
        v
    }

    fn allocated(now: Instant) -> TurnRelay {
        let server: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        let mut alloc = Allocation::new(server, creds());
        let (_, first) = alloc.start();
        let challenge = respond(&first, Class::Error, |b| {
            b.attr(attr::ERROR_CODE, &error(401, "Unauthorized"))
                .text(attr::REALM, "test.local")
                .text(attr::NONCE, "n1")
        });
        let AllocStep::Send(_, second) =
            alloc.on_response(&Message::parse(&challenge).unwrap(), now)
        else {
            panic!("expected a retry with credentials");
        };
        let m = Message::parse(&second).unwrap();
        assert_eq!(m.text(attr::USERNAME), Some("test"));
        assert_eq!(m.text(attr::NONCE), Some("n1"));
        let key = long_term_key("test", "test.local", "secret");
        assert!(m.verify_integrity(&key));
        let ok = respond(&second, Class::Success, |b| {
            b.xor_addr(
                attr::XOR_RELAYED_ADDRESS,
                "127.0.0.1:49160".parse().unwrap(),
            )
            .xor_addr(attr::XOR_MAPPED_ADDRESS, "127.0.0.1:5000".parse().unwrap())
            .u32(attr::LIFETIME, 600)
            .integrity(&key)
        });
        match alloc.on_response(&Message::parse(&ok).unwrap(), now) {
            AllocStep::Done(relay) => *relay,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn allocation_answers_the_challenge_and_yields_the_relay() {
        let relay = allocated(Instant::now());
        assert_eq!(relay.relayed_addr(), "127.0.0.1:49160".parse().unwrap());
        assert_eq!(relay.mapped_addr(), Some("127.0.0.1:5000".parse().unwrap()));
        assert!(!format!("{relay:?}").contains("secret"));
    }

    #[test]
    fn wrong_credentials_fail_the_allocation() {
        let now = Instant::now();
        let server: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        let mut alloc = Allocation::new(server, creds());
        let (_, first) = alloc.start();
        let challenge = respond(&first, Class::Error, |b| {
            b.attr(attr::ERROR_CODE, &error(401, "Unauthorized"))
                .text(attr::REALM, "r")
                .text(attr::NONCE, "n")
        });
        let AllocStep::Send(_, second) =
            alloc.on_response(&Message::parse(&challenge).unwrap(), now)
        else {
            panic!()
        };
        let refused = respond(&second, Class::Error, |b| {
            b.attr(attr::ERROR_CODE, &error(401, "Unauthorized"))
                .text(attr::REALM, "r")
                .text(attr::NONCE, "n")
        });
        match alloc.on_response(&Message::parse(&refused).unwrap(), now) {
            AllocStep::Failed(reason) => assert!(reason.contains("401"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sending_installs_a_permission_then_wraps_in_send_indications() {
        let now = Instant::now();
        let mut relay = allocated(now);
        let peer: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        let mut out = Vec::new();
        relay.send_to(peer, b"hello", now, &mut out);
        assert_eq!(out.len(), 2);
        let perm = Message::parse(&out[0].1).unwrap();
        assert_eq!(perm.method, Method::CreatePermission);
        assert_eq!(
            perm.xor_addr(attr::XOR_PEER_ADDRESS).map(|a| a.ip()),
            Some(peer.ip())
        );
        let send = Message::parse(&out[1].1).unwrap();
        assert_eq!((send.method, send.class), (Method::Send, Class::Indication));
        assert_eq!(send.get(attr::DATA), Some(&b"hello"[..]));
        assert_eq!(send.xor_addr(attr::XOR_PEER_ADDRESS), Some(peer));

        // Second datagram: no second permission.
        out.clear();
        relay.send_to(peer, b"again", now, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(relay.permission_count(), 1);

        // The permission request is retransmitted until answered.
        out.clear();
        relay.on_timeout(now + RTO, &mut out);
        assert_eq!(out.len(), 1);
        let key = long_term_key("test", "test.local", "secret");
        let ok = respond(&out[0].1, Class::Success, |b| b.integrity(&key));
        let mut more = Vec::new();
        assert!(relay.handle_incoming(&ok, now, &mut more).is_none());
        assert!(more.is_empty());
        more.clear();
        relay.on_timeout(now + RTO * 4, &mut more);
        assert!(more.is_empty(), "answered requests are not retransmitted");

        // Data indications come out as (peer, data).
        let data = MessageBuilder::new(Method::Data, Class::Indication, new_trans_id())
            .xor_addr(attr::XOR_PEER_ADDRESS, peer)
            .attr(attr::DATA, b"from peer")
            .finish();
        assert_eq!(
            relay.handle_incoming(&data, now, &mut more),
            Some((peer, b"from peer".to_vec()))
        );
    }

    #[test]
    fn a_permission_asked_for_early_goes_out_before_the_first_data() {
        let now = Instant::now();
        let mut relay = allocated(now);
        let peer: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        relay.permit(peer.ip(), now);
        assert_eq!(relay.poll_timeout(), Some(now), "due at once");
        let mut out = Vec::new();
        relay.send_to(peer, b"check", now, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            Message::parse(&out[0].1).unwrap().method,
            Method::CreatePermission
        );
        assert_eq!(Message::parse(&out[1].1).unwrap().method, Method::Send);
        // Not sent twice.
        out.clear();
        relay.on_timeout(now, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn refresh_and_stale_nonce() {
        let now = Instant::now();
        let mut relay = allocated(now);
        let due = relay.poll_timeout().unwrap();
        assert_eq!(due, now + Duration::from_secs(540));
        let mut out = Vec::new();
        relay.on_timeout(due, &mut out);
        assert_eq!(out.len(), 1);
        let refresh = Message::parse(&out[0].1).unwrap();
        assert_eq!(refresh.method, Method::Refresh);
        let stale = respond(&out[0].1, Class::Error, |b| {
            b.attr(attr::ERROR_CODE, &error(438, "Stale Nonce"))
                .text(attr::REALM, "test.local")
                .text(attr::NONCE, "n2")
        });
        let mut again = Vec::new();
        relay.handle_incoming(&stale, due, &mut again);
        assert_eq!(again.len(), 1);
        let m = Message::parse(&again[0].1).unwrap();
        assert_eq!(
            (m.method, m.text(attr::NONCE)),
            (Method::Refresh, Some("n2"))
        );
        let key = long_term_key("test", "test.local", "secret");
        let ok = respond(&again[0].1, Class::Success, |b| {
            b.u32(attr::LIFETIME, 600).integrity(&key)
        });
        relay.handle_incoming(&ok, due, &mut Vec::new());
        assert_eq!(relay.poll_timeout(), Some(due + Duration::from_secs(540)));

        let mut bye = Vec::new();
        relay.release(due, &mut bye);
        let m = Message::parse(&bye[0].1).unwrap();
        assert_eq!(
            (m.method, m.u32(attr::LIFETIME)),
            (Method::Refresh, Some(0))
        );
        assert_eq!(relay.poll_timeout(), None);
    }
}
