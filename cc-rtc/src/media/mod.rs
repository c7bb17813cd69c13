//! The WebRTC media engine of a call, on str0m.
//!
//! A [`MediaSession`] is a cheap, cloneable handle. Behind it one tokio task owns the str0m
//! `Rtc` (ICE, DTLS-SRTP, RTP/RTCP over one BUNDLE'd, rtcp-mux'd UDP socket) and drives it:
//! packets from the socket, str0m's timeouts, a 20 ms audio ticker and a video ticker.
//! The handle's SDP methods are synchronous: they lock the engine, change it, and wake the task.
//!
//! The devices are called from that task: `AudioSource::read_frame` every 20 ms while audio is
//! sent, the sinks for every frame received. They must return quickly (copy into a buffer of
//! their own); a slow device delays the whole session.
//!
//! Audio is always negotiated (PCMU and PCMA, Opus first with the `opus` feature and
//! [`MediaConfig::opus`]), with RFC 4733 `telephone-event` for DTMF. Video (VP8) is
//! negotiated when [`MediaConfig::video`] is set.
//!
//! ```no_run
//! # async fn demo() -> cc_core::Result<()> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use cc_core::{Vendor, media::MediaDevices};
//! use cc_rtc::media::{MediaConfig, MediaSession};
//! use cc_rtc::{RecordingSink, ToneSource};
//!
//! let devices = MediaDevices {
//!     audio_in: Some(Arc::new(ToneSource::new(440.0))),
//!     audio_out: Some(Arc::new(RecordingSink::new())),
//!     ..Default::default()
//! };
//! let caller = MediaSession::start(Vendor::Expertflow, MediaConfig::loopback(), devices.clone()).await?;
//! let callee = MediaSession::start(Vendor::Expertflow, MediaConfig::loopback(), devices).await?;
//! let answer = callee.accept_offer(&caller.create_offer()?)?;
//! caller.apply_answer(&answer)?;
//! caller.connected(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

mod engine;

/// The local address the system sends from towards `host:port`: a UDP socket is
/// `connect`ed there (which sends nothing) and asked for its local address. What a media
/// session binds when the app leaves the choice to the SDK (the vendor's host, or an ICE
/// server, is the far side). Brackets around an IPv6 literal are accepted.
pub async fn route_address(host: &str, port: u16) -> std::io::Result<std::net::IpAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let target = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} has no address")))?;
    let any: std::net::IpAddr = if target.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    probe_route(any, target).await
}

/// The local address a UDP socket bound to `bind` sends from towards `target`: the
/// socket is `connect`ed (which sends nothing) and asked for its local address.
pub(crate) async fn probe_route(
    bind: std::net::IpAddr,
    target: std::net::SocketAddr,
) -> std::io::Result<std::net::IpAddr> {
    let probe = tokio::net::UdpSocket::bind((bind, 0)).await?;
    probe.connect(target).await?;
    Ok(probe.local_addr()?.ip())
}

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cc_core::media::{CallStats, MediaDevices};
use cc_core::{Error, Feature, Result, Secret, Vendor};
use str0m::Candidate;
use tokio::net::UdpSocket;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

use crate::ice;
use engine::Engine;

/// A STUN or TURN server, as in WebRTC's `RTCIceServer`; also the `ice_servers` entry of
/// the adapters' configuration sections (`{ urls = [...], username, credential }`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:host[:port]` or `turn:host[:port][?transport=udp]` URLs.
    pub urls: Vec<String>,
    /// TURN user name (long-term credentials).
    #[serde(default)]
    pub username: Option<String>,
    /// TURN password (never in `Debug`).
    #[serde(default)]
    pub credential: Option<Secret>,
}

impl IceServer {
    /// Checks configured servers: each has a URL, every URL is `stun:`, `stuns:`, `turn:`
    /// or `turns:`, and a TURN URL comes with a user name and a credential (a TURN server
    /// allocates only for a user it knows). Errors name the entry: `{field}[i].urls[j]`.
    pub fn validate_all(servers: &[IceServer], vendor: Vendor, field: &str) -> Result<()> {
        for (i, server) in servers.iter().enumerate() {
            if server.urls.is_empty() {
                return Err(Error::invalid(
                    vendor,
                    format!("{field}[{i}].urls"),
                    "empty",
                ));
            }
            for (j, url) in server.urls.iter().enumerate() {
                let scheme = url.split_once(':').map_or("", |(s, _)| s);
                if !matches!(scheme, "stun" | "stuns" | "turn" | "turns") {
                    return Err(Error::invalid(
                        vendor,
                        format!("{field}[{i}].urls[{j}]"),
                        format!("{url:?} is not a stun:, stuns:, turn: or turns: URL"),
                    ));
                }
                if scheme.starts_with("turn")
                    && (server.username.is_none() || server.credential.is_none())
                {
                    return Err(Error::invalid(
                        vendor,
                        format!("{field}[{i}]"),
                        format!("{url:?} needs a username and a credential"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Which local candidates ICE may use, as in WebRTC's `RTCIceTransportPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IceTransportPolicy {
    /// Host, server-reflexive and relay candidates.
    #[default]
    All,
    /// Only TURN relay candidates (hides the local address; needs a `turn:` server).
    Relay,
}

/// How a [`MediaSession`] sets up its transport and what it negotiates.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// `stun:`/`turn:` servers; empty means host candidates only.
    pub ice_servers: Vec<IceServer>,
    /// The address the UDP socket binds (port chosen by the system); it is the host
    /// candidate. With `0.0.0.0`/`::` the host candidate is the address the system routes
    /// towards the first ICE server from (no ICE server: `InvalidInput`).
    pub bind: IpAddr,
    /// Negotiate a video (VP8) m-line as well.
    pub video: bool,
    /// Offer Opus first (needs the `opus` feature); PCMU and PCMA are always offered.
    pub opus: bool,
    /// Which candidates to use.
    pub ice_transport_policy: IceTransportPolicy,
}

impl MediaConfig {
    /// 127.0.0.1, no ICE servers, audio only, G.711.
    pub fn loopback() -> Self {
        MediaConfig {
            ice_servers: Vec::new(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            video: false,
            opus: false,
            ice_transport_policy: IceTransportPolicy::All,
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self::loopback()
    }
}

/// What happens to the media of a call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// ICE and DTLS are up; media flows.
    Connected,
    /// ICE lost the far end (it may come back, then `Connected` follows again).
    Disconnected,
    /// The far end closed its media (DTLS close alert): nothing more will flow.
    Closed,
    /// The far end sent a DTMF digit (RFC 4733).
    Dtmf(char),
    /// The far end put the call on hold (`true`: it offered `sendonly`/`inactive`) or resumed it.
    RemoteHold(bool),
    /// The media failed for good.
    Failed(Arc<str>),
}

/// The connection state the handle waits on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Conn {
    New,
    Connected,
    Failed(Arc<str>),
    Closed,
}

pub(crate) struct Shared {
    pub(crate) vendor: Vendor,
    pub(crate) engine: Mutex<Engine>,
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) wake: Notify,
    pub(crate) events: broadcast::Sender<MediaEvent>,
    pub(crate) conn: watch::Sender<Conn>,
    local_candidates: Vec<String>,
    /// The host candidate's address (the socket's port on the host address).
    pub(crate) host: SocketAddr,
    reflexive: Vec<SocketAddr>,
    relayed: Vec<SocketAddr>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Closes the engine when the last handle goes away.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.lock().close();
        self.0.wake.notify_one();
    }
}

/// The media of one call: a handle to the task that runs it. Clones share the session; the
/// session closes when [`MediaSession::close`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct MediaSession {
    owner: Arc<Owner>,
}

impl std::fmt::Debug for MediaSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSession")
            .field("vendor", &self.shared().vendor)
            .field("local_addr", &self.shared().socket.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl MediaSession {
    /// Binds the UDP socket on `config.bind`, gathers candidates (host; server-reflexive from
    /// `stun:` servers; relayed from `turn:` servers) and starts the task.
    /// Needs a tokio runtime with time and I/O enabled.
    pub async fn start(
        vendor: Vendor,
        config: MediaConfig,
        devices: MediaDevices,
    ) -> Result<MediaSession> {
        if config.opus && !cfg!(feature = "opus") {
            return Err(Error::invalid(
                vendor,
                "media.opus",
                "this build of cc-rtc has no Opus (cargo feature `opus`)",
            ));
        }
        // The host candidate's address: the bind address, or for 0.0.0.0/:: the address the
        // system routes towards the first ICE server from.
        let host_ip = if config.bind.is_unspecified() {
            ice::route_source(&config).await.ok_or_else(|| {
                Error::invalid(
                    vendor,
                    "media.bind",
                    "0.0.0.0/:: needs a reachable ICE server to find the host address; \
                     give a concrete address",
                )
            })?
        } else {
            config.bind
        };
        let socket = UdpSocket::bind(SocketAddr::new(config.bind, 0))
            .await
            .map_err(|e| Error::transport(vendor, "media socket bind", e))?;
        let port = socket
            .local_addr()
            .map_err(|e| Error::transport(vendor, "media socket bind", e))?
            .port();
        let local = SocketAddr::new(host_ip, port);
        let socket = Arc::new(socket);

        let gathered = ice::gather(vendor, &socket, &config).await?;
        let mut engine = Engine::new(vendor, config.clone(), devices);
        let mut local_candidates = Vec::new();
        let mut add = |engine: &mut Engine, c: Candidate| {
            if let Some(c) = engine.rtc.add_local_candidate(c) {
                local_candidates.push(c.to_sdp_string());
            }
        };
        if config.ice_transport_policy == IceTransportPolicy::All {
            let host = Candidate::host(local, "udp")
                .map_err(|e| Error::invalid(vendor, "media.bind", e.to_string()))?;
            add(&mut engine, host);
            for srflx in &gathered.reflexive {
                if let Ok(c) = Candidate::server_reflexive(*srflx, local, "udp") {
                    add(&mut engine, c);
                }
            }
        }
        for relay in &gathered.relays {
            if let Ok(c) = Candidate::relayed(relay.relayed_addr(), local, "udp") {
                add(&mut engine, c);
            }
        }
        if local_candidates.is_empty() {
            return Err(Error::invalid(
                vendor,
                "media.ice_transport_policy",
                "relay only, but no `turn:` server gave a relay address",
            ));
        }
        let reflexive = gathered.reflexive.clone();
        let relayed = gathered.relays.iter().map(|r| r.relayed_addr()).collect();
        engine.relays = gathered.relays;

        let (events, _) = broadcast::channel(256);
        let (conn, _) = watch::channel(Conn::New);
        let shared = Arc::new(Shared {
            vendor,
            engine: Mutex::new(engine),
            socket,
            wake: Notify::new(),
            events,
            conn,
            local_candidates,
            host: local,
            reflexive,
            relayed,
            task: Mutex::new(None),
        });
        let task = tokio::spawn(engine::run(shared.clone()));
        *shared.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(MediaSession {
            owner: Arc::new(Owner(shared)),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.owner.0
    }

    /// Runs `f` on the engine, then lets the engine put out what the change produced.
    fn with_engine<T>(&self, f: impl FnOnce(&mut Engine) -> Result<T>) -> Result<T> {
        let shared = self.shared();
        let out = {
            let mut engine = shared.lock();
            if engine.is_closed() {
                return Err(Error::closed(shared.vendor, "call media"));
            }
            let out = f(&mut engine);
            engine.drain(shared);
            out
        };
        shared.wake.notify_one();
        out
    }

    /// The host candidate's address: the UDP socket's port on the host address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared().host
    }

    /// The initial SDP offer: audio (and video when configured), all local candidates.
    /// Follow with [`MediaSession::apply_answer`].
    pub fn create_offer(&self) -> Result<String> {
        self.with_engine(|e| e.create_offer())
    }

    /// Applies the far end's answer to the last offer ([`MediaSession::create_offer`] or
    /// [`MediaSession::hold_offer`]).
    pub fn apply_answer(&self, sdp: &str) -> Result<()> {
        self.with_engine(|e| e.apply_answer(sdp))
    }

    /// Answers an offer from the far end: the initial offer or a re-offer (hold/resume).
    pub fn accept_offer(&self, sdp: &str) -> Result<String> {
        self.with_engine(|e| e.accept_offer(sdp))
    }

    /// A re-offer putting the call on hold (`sendonly`) or resuming it (`sendrecv`).
    /// Follow with [`MediaSession::apply_answer`].
    pub fn hold_offer(&self, on: bool) -> Result<String> {
        self.with_engine(|e| e.hold_offer(on))
    }

    /// Forgets our offer that waits for an answer, because the far end refused it (SIP 488 or
    /// 491 to a re-INVITE, a failed call): a hold offer's directions are put back, so the next
    /// [`MediaSession::hold_offer`] can try again. Returns whether an offer was waiting.
    pub fn rollback_offer(&self) -> bool {
        self.with_engine(|e| Ok(e.rollback_offer()))
            .unwrap_or(false)
    }

    /// Adds a trickled remote candidate (`candidate:...`, with or without `a=`).
    pub fn add_remote_candidate(&self, candidate: &str) -> Result<()> {
        self.with_engine(|e| e.add_remote_candidate(candidate))
    }

    /// The local candidates as SDP attribute values (`candidate:...`).
    pub fn local_candidates(&self) -> Vec<String> {
        self.shared().local_candidates.clone()
    }

    /// The addresses STUN (and TURN) servers saw this session's socket at. One equal to the
    /// host address (no NAT in between) is not a separate candidate.
    pub fn reflexive_addrs(&self) -> Vec<SocketAddr> {
        self.shared().reflexive.clone()
    }

    /// The relayed addresses of this session's TURN allocations (its relay candidates).
    pub fn relayed_addrs(&self) -> Vec<SocketAddr> {
        self.shared().relayed.clone()
    }

    /// Stops (or resumes) sending audio: no RTP audio packets while muted.
    pub fn set_audio_muted(&self, on: bool) {
        self.shared().lock().audio_muted = on;
    }

    /// Stops (or resumes) sending video.
    pub fn set_video_muted(&self, on: bool) {
        self.shared().lock().video_muted = on;
    }

    /// Sends DTMF digits (`0-9`, `*`, `#`, `A-D`) as RFC 4733 telephone events, one after the
    /// other (100 ms each, 70 ms apart). Fails with `Unsupported` when the far end did not
    /// negotiate `telephone-event`.
    pub fn send_dtmf(&self, digits: &str) -> Result<()> {
        let vendor = self.shared().vendor;
        let events = digits
            .chars()
            .map(|c| dtmf_event(c).ok_or(c))
            .collect::<std::result::Result<Vec<u8>, char>>()
            .map_err(|c| {
                Error::invalid(
                    vendor,
                    "dtmf",
                    format!("{c:?} is not a DTMF digit (0-9 * # A-D)"),
                )
            })?;
        self.with_engine(|e| e.queue_dtmf(&events))
    }

    /// The media figures so far.
    pub fn stats(&self) -> CallStats {
        self.shared().lock().stats.clone()
    }

    /// Whether the far end holds the call (its last offer was `sendonly` or `inactive`).
    pub fn is_held_by_remote(&self) -> bool {
        self.shared().lock().held_by_remote
    }

    /// The media events (connected, DTMF received, remote hold, failure).
    pub fn events(&self) -> broadcast::Receiver<MediaEvent> {
        self.shared().events.subscribe()
    }

    /// Waits until ICE and DTLS are up.
    pub async fn connected(&self, timeout: Duration) -> Result<()> {
        let vendor = self.shared().vendor;
        let mut rx = self.shared().conn.subscribe();
        let wait = rx.wait_for(|c| *c != Conn::New);
        match tokio::time::timeout(timeout, wait).await {
            Err(_) => Err(Error::Timeout {
                vendor,
                operation: "media connect",
                after: timeout,
            }),
            Ok(Err(_)) => Err(Error::closed(vendor, "call media")),
            Ok(Ok(c)) => match &*c {
                Conn::Connected | Conn::New => Ok(()),
                Conn::Failed(reason) => Err(Error::transport(
                    vendor,
                    "media connect",
                    reason.to_string(),
                )),
                Conn::Closed => Err(Error::closed(vendor, "call media")),
            },
        }
    }

    /// Whether the media is up now.
    pub fn is_connected(&self) -> bool {
        *self.shared().conn.borrow() == Conn::Connected
    }

    /// Stops everything: no more packets, the socket closes, the task ends.
    pub async fn close(&self) {
        let shared = self.shared();
        {
            let mut engine = shared.lock();
            engine.close();
            engine.drain(shared);
        }
        shared.wake.notify_one();
        let task = shared.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        shared.conn.send_replace(Conn::Closed);
    }

    /// Whether the session is closed.
    pub fn is_closed(&self) -> bool {
        self.shared().lock().is_closed()
    }

    /// The vendor this session reports errors for.
    pub fn vendor(&self) -> Vendor {
        self.shared().vendor
    }
}

/// The RFC 4733 event code of a DTMF digit.
fn dtmf_event(c: char) -> Option<u8> {
    Some(match c {
        '0'..='9' => c as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => c as u8 - b'A' + 12,
        'a'..='d' => c as u8 - b'a' + 12,
        _ => return None,
    })
}

/// The DTMF digit of an RFC 4733 event code.
fn dtmf_char(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => (b'0' + event) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + event - 12) as char,
        _ => return None,
    })
}

/// `Unsupported` for DTMF.
fn dtmf_unsupported(vendor: Vendor) -> Error {
    Error::unsupported(vendor, Feature::CallDtmf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_ice_servers_are_checked_and_errors_name_the_entry() {
        let server = |urls: &[&str], creds: bool| IceServer {
            urls: urls.iter().map(|u| (*u).to_owned()).collect(),
            username: creds.then(|| "u".to_owned()),
            credential: creds.then(|| Secret::new("hunter2")),
        };
        let check = |servers: &[IceServer]| {
            IceServer::validate_all(servers, Vendor::Tvox, "tvox.calls.ice_servers")
                .map_err(|e| e.to_string())
        };
        check(&[
            server(&["stun:s.example:3478", "stuns:s.example"], false),
            server(
                &["turn:t.example:3478?transport=udp", "turns:t.example"],
                true,
            ),
        ])
        .unwrap();
        let e = check(&[server(&["stun:a"], false), server(&[], false)]).unwrap_err();
        assert!(
            e.contains("tvox.calls.ice_servers[1].urls") && e.contains("empty"),
            "{e}"
        );
        let e = check(&[server(&["stun:a", "http://x"], false)]).unwrap_err();
        assert!(e.contains("tvox.calls.ice_servers[0].urls[1]"), "{e}");
        let e = check(&[server(&["turn:t.example"], false)]).unwrap_err();
        assert!(e.contains("needs a username and a credential"), "{e}");
        // Configuration reads the WebRTC shape, and nothing else.
        let s: IceServer = serde_json::from_value(serde_json::json!({
            "urls": ["turn:t"], "username": "u", "credential": "hunter2"
        }))
        .unwrap();
        assert_eq!(s, server(&["turn:t"], true));
        assert!(!format!("{s:?}").contains("hunter2"), "{s:?}");
        assert!(serde_json::from_value::<IceServer>(serde_json::json!({"url": "stun:x"})).is_err());
    }

    #[test]
    fn dtmf_codes_round_trip() {
        for c in "0123456789*#ABCD".chars() {
            assert_eq!(dtmf_char(dtmf_event(c).unwrap()), Some(c));
        }
        assert_eq!(dtmf_event('a'), Some(12));
        assert_eq!(dtmf_event('x'), None);
        assert_eq!(dtmf_char(16), None);
    }

    #[tokio::test]
    async fn the_route_to_loopback_starts_on_loopback() {
        let ip = route_address("127.0.0.1", 9).await.unwrap();
        assert_eq!(ip, std::net::IpAddr::from([127, 0, 0, 1]));
        let err = route_address("", 9).await.unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}
