//! The SIP user agent against a real peer: kamailio (SIP-over-WebSocket registrar and proxy)
//! on 127.0.0.1. Two of our user agents register with digest auth, alice calls bob through
//! kamailio, both run a WebRTC media session (tone + recorder) and RTP flows both ways;
//! then hold by re-INVITE, DTMF by INFO, a MESSAGE, and BYE.
//!
//! Needs the Debian packages `kamailio` and `kamailio-websocket-modules`. Without them the
//! test fails, unless `CC_SKIP_SYSTEM_PEERS=1` (then it says why and passes).

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_core::media::MediaDevices;
use cc_core::{Secret, Vendor};
use cc_rtc::media::{MediaConfig, MediaSession};
use cc_rtc::sip::{
    Dialog, DialogEvent, IncomingCall, UaConfig, UaEvent, UserAgent, parse_dtmf_relay,
};
use cc_rtc::{RecordingSink, ToneSource};
use cc_transport::BackoffPolicy;
use tokio::sync::broadcast;

const PASSWORD: &str = "kam-test-pw";
const DOMAIN: &str = "kamailio.test";
const WAIT: Duration = Duration::from_secs(10);

/// A kamailio process; stopped (SIGTERM, then SIGKILL) when dropped, also on panic.
struct Kamailio {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Kamailio {
    fn binary() -> Option<PathBuf> {
        ["/usr/sbin/kamailio", "/usr/local/sbin/kamailio"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    }

    fn websocket_module() -> bool {
        [
            "/usr/lib/x86_64-linux-gnu/kamailio/modules/websocket.so",
            "/usr/lib/aarch64-linux-gnu/kamailio/modules/websocket.so",
            "/usr/lib/kamailio/modules/websocket.so",
            "/usr/local/lib64/kamailio/modules/websocket.so",
        ]
        .iter()
        .any(|p| Path::new(p).exists())
    }

    /// Starts kamailio, or returns `None` (skip) when it is missing and
    /// `CC_SKIP_SYSTEM_PEERS=1`.
    fn start() -> Option<Kamailio> {
        let missing = match Self::binary() {
            None => Some("kamailio is not installed"),
            Some(_) if !Self::websocket_module() => {
                Some("kamailio's websocket module is not installed")
            }
            Some(_) => None,
        };
        if let Some(why) = missing {
            if std::env::var("CC_SKIP_SYSTEM_PEERS").as_deref() == Ok("1") {
                eprintln!(
                    "skipped: {why} (apt-get install kamailio kamailio-websocket-modules); CC_SKIP_SYSTEM_PEERS=1"
                );
                return None;
            }
            panic!(
                "{why}: apt-get install kamailio kamailio-websocket-modules, or set CC_SKIP_SYSTEM_PEERS=1"
            );
        }
        let binary = Self::binary().unwrap();
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let dir = tempfile::tempdir().unwrap();
        let template = include_str!("peers/kamailio/kamailio.cfg");
        let cfg = template
            .replace("__WS_PORT__", &port.to_string())
            .replace("__PASSWORD__", PASSWORD);
        let cfg_path = dir.path().join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let log = dir.path().join("kamailio.log");
        let as_root = is_root();
        if as_root {
            // kamailio runs as nobody: it must read the config and write the run dir.
            chmod(dir.path(), 0o755);
            chmod(&cfg_path, 0o644);
            chmod(&run, 0o777);
        }
        let mut command = if as_root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        command
            .arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-Y"])
            .arg(&run)
            .arg("-P")
            .arg(run.join("kamailio.pid"))
            .args(["-m", "64", "-M", "8"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        // Own process group, so the guard can also stop the workers it forks.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("kamailio starts");
        let mut kamailio = Kamailio {
            child,
            port,
            log,
            _dir: dir,
        };
        kamailio.wait_listening();
        Some(kamailio)
    }

    fn wait_listening(&mut self) {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("kamailio exited with {status}:\n{}", self.log_text());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < end,
                "kamailio does not listen on {} after 10 s:\n{}",
                self.port,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> url::Url {
        url::Url::parse(&format!("ws://127.0.0.1:{}/", self.port)).unwrap()
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kamailio log (tail):\n{}", self.log_text());
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of our process group (the group id is kamailio's pid).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn ua_config(kamailio: &Kamailio, user: &str) -> UaConfig {
    let mut config = UaConfig::new(kamailio.url(), DOMAIN, user);
    config.password = Some(Secret::new(PASSWORD));
    config.backoff = BackoffPolicy::fixed(Duration::from_millis(100));
    config.transaction_timeout = Duration::from_secs(8);
    config
}

struct Side {
    media: MediaSession,
    sink: Arc<RecordingSink>,
}

async fn media(hz: f32) -> Side {
    let sink = Arc::new(RecordingSink::new());
    let devices = MediaDevices {
        audio_in: Some(Arc::new(ToneSource::new(hz))),
        audio_out: Some(sink.clone()),
        ..Default::default()
    };
    let media = MediaSession::start(Vendor::Expertflow, MediaConfig::loopback(), devices)
        .await
        .expect("media session starts");
    Side { media, sink }
}

async fn ua_event(
    events: &mut broadcast::Receiver<UaEvent>,
    mut want: impl FnMut(&UaEvent) -> bool,
) -> UaEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("no such UA event in time")
            .expect("UA events ended");
        if let UaEvent::Error(e) = &event {
            panic!("UA error: {e}");
        }
        if want(&event) {
            return event;
        }
    }
}

async fn dialog_event(dialog: &Dialog) -> DialogEvent {
    tokio::time::timeout(WAIT, dialog.next_event())
        .await
        .expect("no dialog event in time")
        .expect("dialog events ended")
}

/// The status and reason of the call's `Failed` event (skipping progress events).
async fn final_event(dialog: &Dialog) -> (u16, String) {
    loop {
        match dialog_event(dialog).await {
            DialogEvent::Failed { status, reason } => return (status, reason),
            DialogEvent::Trying | DialogEvent::Ringing { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_user_agents_call_each_other_through_kamailio_with_media() {
    let Some(kamailio) = Kamailio::start() else {
        return;
    };

    // Registration (digest: 401, then 200).
    let alice = UserAgent::start(Vendor::Expertflow, ua_config(&kamailio, "alice"))
        .await
        .expect("alice connects");
    let bob = UserAgent::start(Vendor::Expertflow, ua_config(&kamailio, "bob"))
        .await
        .expect("bob connects");
    let mut alice_events = alice.events();
    let mut bob_events = bob.events();
    let started = Instant::now();
    alice.register().await.expect("alice registers");
    println!(
        "kamailio: REGISTER with digest (401 + 200): {:?}",
        started.elapsed()
    );
    bob.register().await.expect("bob registers");

    // bob's WebSocket drops: he re-registers on the new connection by himself, so calls
    // reach him there.
    bob.reconnect();
    ua_event(&mut bob_events, |e| {
        matches!(e, UaEvent::TransportDown { .. })
    })
    .await;
    ua_event(&mut bob_events, |e| matches!(e, UaEvent::TransportUp)).await;
    ua_event(&mut bob_events, |e| matches!(e, UaEvent::Registered { .. })).await;

    // A wrong password is refused.
    let mut wrong = ua_config(&kamailio, "mallory");
    wrong.password = Some(Secret::new("not-it"));
    let mallory = UserAgent::start(Vendor::Expertflow, wrong).await.unwrap();
    let err = mallory.register().await.unwrap_err();
    assert!(
        matches!(&err, cc_core::Error::Auth { code: Some(c), .. } if c == "401"),
        "{err:?}"
    );
    mallory.close().await;

    // bob is busy: the refusal and its custom reason come back through kamailio.
    let busy = alice
        .invite(
            &format!("sip:bob@{DOMAIN}"),
            Vec::new(),
            "v=0\r\n".to_owned(),
        )
        .await
        .unwrap();
    let UaEvent::Incoming(incoming) =
        ua_event(&mut bob_events, |e| matches!(e, UaEvent::Incoming(_))).await
    else {
        unreachable!()
    };
    incoming
        .reject(
            486,
            "Busy Here",
            vec![(
                "X-Call-Dropped-Custom-Reason".to_owned(),
                "USER_BUSY".to_owned(),
            )],
        )
        .unwrap();
    assert_eq!(final_event(&busy).await, (486, "USER_BUSY".to_owned()));

    // alice gives up while bob's phone rings: CANCEL through kamailio.
    let cancelled = alice
        .invite(
            &format!("sip:bob@{DOMAIN}"),
            Vec::new(),
            "v=0\r\n".to_owned(),
        )
        .await
        .unwrap();
    let UaEvent::Incoming(incoming) =
        ua_event(&mut bob_events, |e| matches!(e, UaEvent::Incoming(_))).await
    else {
        unreachable!()
    };
    incoming.ringing().unwrap();
    loop {
        match dialog_event(&cancelled).await {
            DialogEvent::Ringing { status: 180, .. } => break,
            DialogEvent::Trying => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    cancelled.cancel().await.unwrap();
    assert_eq!(
        dialog_event(incoming.dialog()).await,
        DialogEvent::Cancelled
    );
    assert_eq!(final_event(&cancelled).await.0, 487);

    // alice calls bob.
    let alice_media = media(440.0).await;
    let bob_media = media(880.0).await;
    let offer = alice_media.media.create_offer().unwrap();
    let started = Instant::now();
    let call = alice
        .invite(
            &format!("sip:bob@{DOMAIN}"),
            vec![
                ("X-Customer-Name".to_owned(), "Alice".to_owned()),
                ("X-Calltype".to_owned(), "OUT".to_owned()),
            ],
            offer,
        )
        .await
        .unwrap();
    let UaEvent::Incoming(incoming) =
        ua_event(&mut bob_events, |e| matches!(e, UaEvent::Incoming(_))).await
    else {
        unreachable!()
    };
    let incoming: IncomingCall = incoming;
    assert_eq!(incoming.header("X-Customer-Name"), Some("Alice"));
    assert_eq!(incoming.header("X-Calltype"), Some("OUT"));
    assert!(incoming.from().contains("sip:alice@kamailio.test"));
    assert_eq!(
        incoming.header("Proxy-Authorization"),
        None,
        "kamailio consumed the credentials"
    );
    incoming.ringing().unwrap();
    let answer = bob_media.media.accept_offer(incoming.sdp()).unwrap();
    let bob_call = incoming.answer(answer).unwrap();

    let mut answered = None;
    let mut ringing = false;
    while answered.is_none() {
        match dialog_event(&call).await {
            DialogEvent::Trying => {}
            DialogEvent::Ringing { status: 180, .. } => ringing = true,
            DialogEvent::Answered { sdp } => answered = Some(sdp),
            other => panic!("unexpected {other:?}"),
        }
    }
    println!(
        "kamailio: INVITE → 200 (407 challenge, 180, 200): {:?}",
        started.elapsed()
    );
    assert!(ringing, "the 180 came through kamailio");
    alice_media.media.apply_answer(&answered.unwrap()).unwrap();
    alice_media
        .media
        .connected(WAIT)
        .await
        .expect("alice media up");
    bob_media.media.connected(WAIT).await.expect("bob media up");
    println!(
        "kamailio: INVITE → media connected: {:?}",
        started.elapsed()
    );

    // RTP both ways.
    until("RTP both ways", || {
        alice_media.media.stats().audio_packets_received > 25
            && bob_media.media.stats().audio_packets_received > 25
    })
    .await;
    until("audio frames played", || {
        alice_media.sink.frames() > 10 && bob_media.sink.frames() > 10
    })
    .await;
    let (a, b) = (alice_media.media.stats(), bob_media.media.stats());
    println!(
        "kamailio: alice sent/received {}/{} RTP packets, bob {}/{}",
        a.audio_packets_sent,
        a.audio_packets_received,
        b.audio_packets_sent,
        b.audio_packets_received
    );

    // Hold: re-INVITE through kamailio, bob's media answers.
    let hold = alice_media.media.hold_offer(true).unwrap();
    assert!(hold.contains("a=sendonly"));
    let (held, ()) = tokio::join!(call.reinvite(hold), async {
        let DialogEvent::ReInvite { sdp } = dialog_event(&bob_call).await else {
            panic!("bob expected a re-INVITE");
        };
        let answer = bob_media.media.accept_offer(&sdp).unwrap();
        bob_call.answer_reinvite(answer).unwrap();
    });
    let held = held.expect("hold re-INVITE answered");
    assert!(held.contains("a=recvonly"), "{held}");
    alice_media.media.apply_answer(&held).unwrap();
    assert!(bob_media.media.is_held_by_remote());
    // Resume.
    let resume = alice_media.media.hold_offer(false).unwrap();
    let (resumed, ()) = tokio::join!(call.reinvite(resume), async {
        let DialogEvent::ReInvite { sdp } = dialog_event(&bob_call).await else {
            panic!("bob expected a re-INVITE");
        };
        let answer = bob_media.media.accept_offer(&sdp).unwrap();
        bob_call.answer_reinvite(answer).unwrap();
    });
    alice_media
        .media
        .apply_answer(&resumed.expect("resume answered"))
        .unwrap();
    assert!(!bob_media.media.is_held_by_remote());

    // DTMF as SIP INFO.
    let (sent, digits) = tokio::join!(call.dtmf("12#"), async {
        let mut digits = String::new();
        while digits.len() < 3 {
            match dialog_event(&bob_call).await {
                DialogEvent::Info { content_type, body } => {
                    assert_eq!(content_type, "application/dtmf-relay");
                    digits.push(parse_dtmf_relay(&body).expect("a digit"));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        digits
    });
    sent.expect("INFO answered");
    assert_eq!(digits, "12#");

    // A MESSAGE from bob to alice (out of dialog, routed by the registrar).
    bob.message(
        &format!("sip:alice@{DOMAIN}"),
        "text/plain",
        "{\"event\":\"agentDetails\"}",
    )
    .await
    .expect("MESSAGE delivered");
    match ua_event(&mut alice_events, |e| matches!(e, UaEvent::Message { .. })).await {
        UaEvent::Message { body, from, .. } => {
            assert_eq!(body, "{\"event\":\"agentDetails\"}");
            assert!(from.contains("sip:bob@kamailio.test"), "{from}");
        }
        _ => unreachable!(),
    }

    // alice hangs up with a reason.
    let before = bob_media.media.stats().audio_packets_received;
    assert!(before > 25);
    call.bye(vec![(
        "X-Call-Dropped-Custom-Reason".to_owned(),
        "CUSTOMER_HANGUP".to_owned(),
    )])
    .await
    .expect("BYE answered");
    assert_eq!(
        dialog_event(&bob_call).await,
        DialogEvent::Bye {
            reason: Some("CUSTOMER_HANGUP".to_owned())
        }
    );
    alice_media.media.close().await;
    bob_media.media.close().await;

    alice.unregister().await.expect("alice unregisters");
    bob.unregister().await.expect("bob unregisters");
    // bob is gone from the location table: a new call to him is refused by kamailio.
    let ghost = alice
        .invite(
            &format!("sip:bob@{DOMAIN}"),
            Vec::new(),
            "v=0\r\n".to_owned(),
        )
        .await
        .unwrap();
    assert_eq!(final_event(&ghost).await, (404, "Not Found".to_owned()));
    alice.close().await;
    bob.close().await;
    drop(kamailio);
}
