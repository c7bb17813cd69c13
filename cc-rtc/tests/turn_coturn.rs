//! STUN and TURN against a real coturn (`turnserver`) on 127.0.0.1.
//!
//! Each test starts its own `turnserver` on a free port with a static user, no TLS/DTLS, and
//! loopback peers allowed, and kills it at the end. Without the binary the tests fail, unless
//! `CC_SKIP_SYSTEM_PEERS=1` is set (then they say why and pass).

use std::net::UdpSocket as StdUdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_core::media::MediaDevices;
use cc_core::{ErrorKind, Secret, Vendor};
use cc_rtc::media::{IceServer, IceTransportPolicy, MediaConfig, MediaSession};
use cc_rtc::{RecordingSink, ToneSource};

const USER: &str = "test";
const PASSWORD: &str = "secret";

struct Coturn {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Coturn {
    /// Starts `turnserver`, or `None` when it is missing and `CC_SKIP_SYSTEM_PEERS=1`.
    fn start(test: &str) -> Option<Coturn> {
        let found = Command::new("turnserver")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            if std::env::var("CC_SKIP_SYSTEM_PEERS").as_deref() == Ok("1") {
                eprintln!("{test}: skipped: `turnserver` (Debian package coturn) is not installed");
                return None;
            }
            panic!(
                "{test}: `turnserver` not found; install coturn (apt-get install coturn) \
                 or set CC_SKIP_SYSTEM_PEERS=1"
            );
        }
        // A free port can be taken between our probe and the server's bind (another test's
        // relay port): try a few ports.
        let mut last_log = String::new();
        for _ in 0..3 {
            let coturn = Coturn::spawn();
            if coturn.wait_ready() {
                return Some(coturn);
            }
            last_log = coturn.log();
        }
        let tail: Vec<&str> = last_log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{test}: turnserver did not answer; the end of its log:\n{}",
            tail.join("\n")
        );
    }

    fn spawn() -> Coturn {
        let port = StdUdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("cc-rtc-coturn-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("turnserver.log")).unwrap();
        let child = Command::new("turnserver")
            .arg("-n")
            .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
            .args(["--listening-port", &port.to_string()])
            .args(["--realm", "test.local", "--lt-cred-mech"])
            .args(["--user", &format!("{USER}:{PASSWORD}")])
            .args([
                "--fingerprint",
                "--allow-loopback-peers",
                "--no-multicast-peers",
            ])
            // UDP only: no TCP/TLS/DTLS listeners, no RFC 5780 second port.
            .args([
                "--no-tls",
                "--no-dtls",
                "--no-tcp",
                "--no-tcp-relay",
                "--no-rfc5780",
            ])
            .args(["--no-cli", "--relay-threads", "1"])
            .arg(format!(
                "--pidfile={}",
                dir.join("turnserver.pid").display()
            ))
            .arg(format!("--userdb={}", dir.join("turndb").display()))
            .args(["--log-file", "stdout", "--simple-log"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("turnserver starts");
        Coturn { child, port, dir }
    }

    /// Waits (at most 3 s) until the server answers a STUN Binding request.
    fn wait_ready(&self) -> bool {
        let socket = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // A Binding request: type 0x0001, length 0, magic cookie, transaction id.
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(b"cc-rtc-ready");
        let end = Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 512];
        while Instant::now() < end {
            let _ = socket.send_to(&request, ("127.0.0.1", self.port));
            if let Ok((n, _)) = socket.recv_from(&mut buf)
                && n >= 20
                && buf[..2] == [0x01, 0x01]
            {
                return true;
            }
        }
        false
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stun_url(&self) -> String {
        format!("stun:127.0.0.1:{}", self.port)
    }

    fn turn_server(&self, password: &str) -> IceServer {
        IceServer {
            urls: vec![format!("turn:127.0.0.1:{}?transport=udp", self.port)],
            username: Some(USER.into()),
            credential: Some(Secret::new(password)),
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn devices(sink: &Arc<RecordingSink>) -> MediaDevices {
    MediaDevices {
        audio_in: Some(Arc::new(ToneSource::new(440.0))),
        audio_out: Some(sink.clone()),
        ..Default::default()
    }
}

async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stun_gives_the_reflexive_address() {
    let Some(coturn) = Coturn::start("stun_gives_the_reflexive_address") else {
        return;
    };
    let config = MediaConfig {
        ice_servers: vec![IceServer {
            urls: vec![coturn.stun_url()],
            ..Default::default()
        }],
        ..MediaConfig::loopback()
    };
    let media = MediaSession::start(Vendor::Genesys, config, MediaDevices::default())
        .await
        .unwrap();
    // No NAT on loopback: the server sees the socket's own address.
    assert_eq!(media.reflexive_addrs(), vec![media.local_addr()]);
    media.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unspecified_bind_takes_the_address_towards_the_ice_server() {
    let Some(coturn) = Coturn::start("unspecified_bind_takes_the_address_towards_the_ice_server")
    else {
        return;
    };
    let sink = Arc::new(RecordingSink::new());
    let any = MediaSession::start(
        Vendor::Genesys,
        MediaConfig {
            bind: "0.0.0.0".parse().unwrap(),
            ice_servers: vec![IceServer {
                urls: vec![coturn.stun_url()],
                ..Default::default()
            }],
            ..MediaConfig::loopback()
        },
        devices(&sink),
    )
    .await
    .unwrap();
    assert_eq!(any.local_addr().ip().to_string(), "127.0.0.1");
    let other_sink = Arc::new(RecordingSink::new());
    let other = MediaSession::start(
        Vendor::Genesys,
        MediaConfig::loopback(),
        devices(&other_sink),
    )
    .await
    .unwrap();
    let answer = other.accept_offer(&any.create_offer().unwrap()).unwrap();
    any.apply_answer(&answer).unwrap();
    any.connected(Duration::from_secs(5)).await.unwrap();
    until(Duration::from_secs(3), "audio both ways", || {
        sink.frames() >= 10 && other_sink.frames() >= 10
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_flows_through_the_turn_relay() {
    let Some(mut coturn) = Coturn::start("media_flows_through_the_turn_relay") else {
        return;
    };
    let relayed_sink = Arc::new(RecordingSink::new());
    let relayed = MediaSession::start(
        Vendor::Genesys,
        MediaConfig {
            ice_servers: vec![coturn.turn_server(PASSWORD)],
            ice_transport_policy: IceTransportPolicy::Relay,
            ..MediaConfig::loopback()
        },
        devices(&relayed_sink),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", coturn.log()));
    let relay_addrs = relayed.relayed_addrs();
    assert_eq!(relay_addrs.len(), 1);
    let candidates = relayed.local_candidates();
    assert_eq!(candidates.len(), 1, "{candidates:?}");
    assert!(candidates[0].contains("typ relay"), "{candidates:?}");
    assert_ne!(relay_addrs[0], relayed.local_addr());
    assert!(candidates[0].contains(&format!(" {} ", relay_addrs[0].port())));

    let host_sink = Arc::new(RecordingSink::new());
    let host = MediaSession::start(
        Vendor::Genesys,
        MediaConfig::loopback(),
        devices(&host_sink),
    )
    .await
    .unwrap();

    let started = Instant::now();
    let offer = relayed.create_offer().unwrap();
    assert!(!offer.contains("typ host"), "{offer}");
    let answer = host.accept_offer(&offer).unwrap();
    relayed.apply_answer(&answer).unwrap();
    relayed
        .connected(Duration::from_secs(8))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", coturn.log()));
    host.connected(Duration::from_secs(5)).await.unwrap();
    eprintln!("relayed: offer to connected: {:?}", started.elapsed());
    until(
        Duration::from_secs(5),
        "audio both ways through the relay",
        || host_sink.frames() >= 25 && relayed_sink.frames() >= 25,
    )
    .await;
    eprintln!(
        "relayed: offer to 25 frames both ways: {:?}",
        started.elapsed()
    );
    let hz = host_sink.dominant_hz().unwrap();
    assert!((hz - 440.0).abs() < 10.0, "{hz}");
    relayed.send_dtmf("7").unwrap();
    until(Duration::from_secs(2), "DTMF through the relay", || {
        host.stats().dtmf_received == "7"
    })
    .await;

    // The relay is the only path: without the server, nothing arrives any more.
    coturn.kill();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before = host.stats().audio_packets_received;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        host.stats().audio_packets_received,
        before,
        "media bypassed the relay"
    );
    relayed.close().await;
    host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_turn_password_leaves_a_relay_only_session_without_candidates() {
    let Some(coturn) = Coturn::start("wrong_turn_password") else {
        return;
    };
    let err = MediaSession::start(
        Vendor::Genesys,
        MediaConfig {
            ice_servers: vec![coturn.turn_server("not-the-password")],
            ice_transport_policy: IceTransportPolicy::Relay,
            ..MediaConfig::loopback()
        },
        MediaDevices::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("ice_transport_policy") && text.contains("401"),
        "{text}"
    );
    assert!(!format!("{err:?}").contains("not-the-password"));

    // Without the relay-only policy the session starts with its host candidate.
    let media = MediaSession::start(
        Vendor::Genesys,
        MediaConfig {
            ice_servers: vec![coturn.turn_server("not-the-password")],
            ..MediaConfig::loopback()
        },
        MediaDevices::default(),
    )
    .await
    .unwrap();
    assert!(media.relayed_addrs().is_empty());
    assert_eq!(media.local_candidates().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_without_credentials_is_invalid_input() {
    let err = MediaSession::start(
        Vendor::Genesys,
        MediaConfig {
            ice_servers: vec![IceServer {
                urls: vec!["turn:127.0.0.1:3478".into()],
                ..Default::default()
            }],
            ..MediaConfig::loopback()
        },
        MediaDevices::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("ice_servers[0].username"), "{err}");
}
