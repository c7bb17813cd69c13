//! The simulator's EF switch: SIP over WebSocket (RFC 7118, subprotocol `sip`) on a listener
//! of its own, as the vendor's `wssFs` is a URL of its own (`wss://SWITCH:7443`).
//!
//! - **Registrar**: `REGISTER` without credentials → `401` with an MD5 digest challenge
//!   (`qop="auth"`); with credentials → `200` when they match the fixed test extension
//!   ([`EXTENSION`] / [`PASSWORD`]), else `403 Forbidden`. With [`CallAnswer::Refuse`] every
//!   `REGISTER` after the challenge is refused `403 Forbidden`.
//! - **Calls** to `sip:<diallingUri>@<uriFs>`, per [`CallAnswer`]: `100 Trying`, then
//!   `Answer`: `180 Ringing` and after the ring time (200 ms, `SimControl::set_ring_time`)
//!   `200 OK` with the far end's SDP answer (a `cc_rtc` media peer on 127.0.0.1 playing a
//!   440 Hz tone and recording what it gets); `Busy`: `486 Busy Here` +
//!   `X-Call-Dropped-Custom-Reason: USER_BUSY`; `NoAnswer`: `180 Ringing`, then after about a
//!   second `480 Temporarily Unavailable` + `X-Call-Dropped-Custom-Reason: NO_ANSWER`;
//!   `Refuse`: `403 Forbidden`.
//! - In the dialog: re-`INVITE` answered by the media peer (a `sendonly`/`inactive` offer
//!   marks the call held), `INFO application/dtmf-relay` → digits recorded, `BYE` and
//!   `CANCEL` (`487` to the INVITE) end the call, `MESSAGE` and `OPTIONS` get `200`.
//! - The far end can hang up (`BYE` with a `Reason`), hold and resume (its own re-`INVITE`,
//!   `sendonly` / `sendrecv`, ACKed on the `200`), and send the side channel's `MESSAGE`s
//!   (`MEDIA_SERVER_CALL_END`, `agentDetails`). Its connections can be dropped; a dialog
//!   follows its client to the connection it registers again on.
//!
//! Every SIP frame, both ways, is recorded on channel `sip` as
//! `{"line": <first line>, "headers": [[name, value], …], "body": <text>}`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use cc_core::{CallStats, MediaDevices, Result, Vendor};
use cc_rtc::media::{MediaConfig, MediaSession};
use cc_rtc::sip::{
    DigestAuthorization, DigestChallenge, Method, SipCodec, SipMessage, parse_dtmf_relay,
    random_token,
};
use cc_rtc::{CountingVideoSink, RecordingSink, TestPatternVideo, ToneSource};
use cc_testkit::{CallAnswer, Direction, FarEndCall};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::Shared;
use crate::wire::call::{DROPPED_REASON_HEADER, DTMF_CONTENT_TYPE, SIDE_CHANNEL_CONTENT_TYPE};

const V: Vendor = Vendor::Expertflow;

/// The SIP domain (`uriFs`) the simulator serves.
pub const SIP_DOMAIN: &str = "127.0.0.1";
/// The shared web extension (`sipExtension`) of the simulator's widget config.
pub const EXTENSION: &str = "5000";
/// Its password (`extensionPassword`).
pub const PASSWORD: &str = "sim-extension-password";
/// The number the widget dials (`diallingUri`).
pub const DIALLING_URI: &str = "5166";
/// The agent extension the far end announces in `agentDetails`.
pub const AGENT_EXTENSION: &str = "1001";
/// How long the far end rings before answering, unless set otherwise.
const ANSWER_AFTER: Duration = Duration::from_millis(200);
/// How long the far end rings before the switch gives up ([`CallAnswer::NoAnswer`]).
const NO_ANSWER_AFTER: Duration = Duration::from_millis(1000);

/// One call the switch saw.
#[derive(Debug)]
struct SimCall {
    call_id: String,
    conn: u64,
    invite: SipMessage,
    /// The switch's To tag.
    tag: String,
    /// Where in-dialog requests go (the client's Contact).
    remote_target: String,
    answered: bool,
    held: bool,
    ended: bool,
    video: bool,
    dtmf: String,
    media: Option<MediaSession>,
    final_stats: Option<CallStats>,
    timer: Option<tokio::task::AbortHandle>,
    cseq: u32,
    /// The switch's own re-INVITE waiting for its answer: `(CSeq number, hold)`.
    reinvite: Option<(u32, bool)>,
}

/// The switch's state.
#[derive(Debug, Default)]
pub(crate) struct SwitchState {
    answer: CallAnswer,
    /// How long the far end rings before answering (`None`: [`ANSWER_AFTER`]).
    ring: Option<Duration>,
    conns: HashMap<u64, mpsc::UnboundedSender<String>>,
    next_conn: u64,
    /// The connection and Contact of the newest registration.
    registered: Option<(u64, String)>,
    nonces: Vec<String>,
    calls: Vec<SimCall>,
    host: String,
}

/// The switch: its state and codec.
#[derive(Debug)]
pub(crate) struct Switch {
    state: Mutex<SwitchState>,
    codec: SipCodec,
    /// Bumped to drop every WebSocket connection.
    cut: watch::Sender<u64>,
}

impl Default for Switch {
    fn default() -> Self {
        Switch {
            state: Mutex::new(SwitchState::default()),
            codec: SipCodec::new(V),
            cut: watch::channel(0).0,
        }
    }
}

impl Switch {
    fn lock(&self) -> MutexGuard<'_, SwitchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn frame_json(m: &SipMessage) -> Value {
    json!({
        "line": m.first_line(),
        "headers": m.headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
        "body": m.body,
    })
}

/// Serves the switch on `listener` until the task is dropped.
pub(crate) async fn serve(sh: Arc<Shared>, listener: tokio::net::TcpListener) {
    let app = Router::new().fallback(upgrade).with_state(sh);
    // SIP answers go out in bursts of small frames (100, 180, 200): without TCP_NODELAY
    // each one after the first waits for the client's delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let _ = axum::serve(listener, app).await;
}

async fn upgrade(State(sh): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    // 4 KiB read buffers, not tungstenite's 128 KiB: a simulator may hold thousands.
    ws.protocols(["sip"])
        .read_buffer_size(4 * 1024)
        .on_upgrade(move |socket| connection(sh, socket))
}

async fn connection(sh: Arc<Shared>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let conn = {
        let mut st = sh.switch.lock();
        st.next_conn += 1;
        let id = st.next_conn;
        st.conns.insert(id, tx);
        id
    };
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(WsMessage::Text(text.into())).await.is_err() {
                break;
            }
        }
    });
    let mut cut = sh.switch.cut.subscribe();
    loop {
        let frame = tokio::select! {
            f = stream.next() => f,
            _ = cut.changed() => break,
        };
        let Some(Ok(frame)) = frame else { break };
        let text = match frame {
            WsMessage::Text(t) => t.to_string(),
            WsMessage::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            WsMessage::Close(_) => break,
            _ => continue,
        };
        // RFC 7118 keep-alive: a bare CRLF.
        if text.trim().is_empty() {
            continue;
        }
        match sh.switch.codec.parse(&text) {
            Ok(m) => {
                sh.record(Direction::ClientToServer, "sip", frame_json(&m));
                handle(&sh, conn, m);
            }
            Err(e) => {
                sh.record(
                    Direction::ClientToServer,
                    "sip",
                    json!({"unparsed": text, "error": e.to_string()}),
                );
            }
        }
    }
    writer.abort();
    let mut st = sh.switch.lock();
    st.conns.remove(&conn);
    if st.registered.as_ref().is_some_and(|(c, _)| *c == conn) {
        st.registered = None;
    }
}

/// Writes `m` on connection `conn` and records it.
fn send(sh: &Shared, st: &SwitchState, conn: u64, m: &SipMessage) {
    sh.record(Direction::ServerToClient, "sip", frame_json(m));
    if let Some(tx) = st.conns.get(&conn) {
        let _ = tx.send(sh.switch.codec.print(m));
    }
}

fn handle(sh: &Arc<Shared>, conn: u64, m: SipMessage) {
    let mut st = sh.switch.lock();
    // A dialog follows its client to a new connection (RFC 5626 flows: the vendor client's
    // Contact has `;ob`), so requests of the far end reach it after a reconnect.
    if let Some(c) = call_of(&mut st, &m) {
        c.conn = conn;
    }
    let Some(method) = m.method().cloned() else {
        response(sh, &mut st, conn, &m);
        return;
    };
    match method {
        Method::Register => register(sh, &mut st, conn, &m),
        Method::Invite => {
            let existing = m.to_tag().is_some()
                && st
                    .calls
                    .iter()
                    .any(|c| Some(c.call_id.as_str()) == m.call_id());
            if existing {
                reinvite(sh, &mut st, conn, &m);
            } else {
                invite(sh, &mut st, conn, m);
            }
        }
        Method::Ack => {}
        Method::Info => {
            let r = SipMessage::response_to(&m, 200, "OK");
            if m.content_type().as_deref() == Some(DTMF_CONTENT_TYPE)
                && let Some(d) = parse_dtmf_relay(&m.body)
                && let Some(c) = call_of(&mut st, &m)
            {
                c.dtmf.push(d);
            }
            send(sh, &st, conn, &r);
        }
        Method::Bye => {
            let r = SipMessage::response_to(&m, 200, "OK");
            let media = call_of(&mut st, &m).and_then(end_call);
            send(sh, &st, conn, &r);
            drop(st);
            close_later(media);
        }
        Method::Cancel => {
            let r = SipMessage::response_to(&m, 200, "OK");
            send(sh, &st, conn, &r);
            let mut terminated = None;
            if let Some(c) = call_of(&mut st, &m)
                && !c.answered
                && !c.ended
            {
                terminated = Some(SipMessage::response_to_tagged(
                    &c.invite,
                    487,
                    "Request Terminated",
                    &c.tag,
                ));
                let media = end_call(c);
                close_later(media);
            }
            if let Some(t) = terminated {
                send(sh, &st, conn, &t);
            }
        }
        Method::Message | Method::Options | Method::Notify => {
            let r = SipMessage::response_to(&m, 200, "OK");
            send(sh, &st, conn, &r);
        }
        _ => {
            let r = SipMessage::response_to(&m, 405, "Method Not Allowed").with_header(
                "Allow",
                "INVITE, ACK, BYE, CANCEL, REGISTER, INFO, MESSAGE, OPTIONS",
            );
            send(sh, &st, conn, &r);
        }
    }
}

/// A response to one of the switch's own requests: the answer to its re-INVITE is applied
/// and ACKed; the rest (to BYE, MESSAGE) needs nothing.
fn response(sh: &Shared, st: &mut SwitchState, conn: u64, m: &SipMessage) {
    let Some((cseq, Method::Invite)) = m.cseq() else {
        return;
    };
    let Some(c) = call_of(st, m) else { return };
    let Some((want, on)) = c.reinvite else { return };
    if cseq != want || m.status().is_none_or(|s| s < 200) {
        return;
    }
    c.reinvite = None;
    if m.status().is_some_and(|s| s < 300) {
        if let Some(media) = &c.media
            && media.apply_answer(&m.body).is_ok()
        {
            tracing::debug!(hold = on, "the far end's re-INVITE was answered");
        }
        let mut ack = Switch::in_dialog(c, Method::Ack);
        ack.set_header("CSeq", format!("{cseq} ACK"));
        c.cseq -= 1;
        send(sh, st, conn, &ack);
    }
}

fn call_of<'a>(st: &'a mut SwitchState, m: &SipMessage) -> Option<&'a mut SimCall> {
    let id = m.call_id()?;
    st.calls.iter_mut().rev().find(|c| c.call_id == id)
}

/// Marks the call ended; returns its media peer to close (after keeping its figures).
fn end_call(c: &mut SimCall) -> Option<MediaSession> {
    if let Some(t) = c.timer.take() {
        t.abort();
    }
    c.ended = true;
    let media = c.media.take();
    if let Some(m) = &media {
        c.final_stats = Some(m.stats());
    }
    media
}

fn close_later(media: Option<MediaSession>) {
    if let Some(m) = media {
        tokio::spawn(async move { m.close().await });
    }
}

fn register(sh: &Shared, st: &mut SwitchState, conn: u64, m: &SipMessage) {
    let Some(auth) = m.header("Authorization") else {
        let nonce = random_token(24);
        st.nonces.push(nonce.clone());
        let challenge = DigestChallenge::new(SIP_DOMAIN, nonce);
        let r = SipMessage::response_to(m, 401, "Unauthorized")
            .with_header("WWW-Authenticate", challenge.header_value());
        send(sh, st, conn, &r);
        return;
    };
    let ok = st.answer != CallAnswer::Refuse
        && DigestAuthorization::parse(auth).is_ok_and(|a| {
            a.username == EXTENSION
                && st.nonces.contains(&a.nonce)
                && a.verify(&Method::Register, PASSWORD)
        });
    if !ok {
        let r = SipMessage::response_to(m, 403, "Forbidden");
        send(sh, st, conn, &r);
        return;
    }
    let expires = m
        .header("Expires")
        .and_then(|e| e.trim().parse::<u32>().ok())
        .or_else(|| {
            m.header("Contact")
                .and_then(|c| cc_rtc::sip::param_of(c, "expires"))
                .and_then(|e| e.trim().parse().ok())
        })
        .unwrap_or(600);
    let contact = m.header("Contact").unwrap_or_default().to_owned();
    let mut r = SipMessage::response_to(m, 200, "OK");
    if expires == 0 {
        if st.registered.as_ref().is_some_and(|(c, _)| *c == conn) {
            st.registered = None;
        }
    } else {
        let uri = contact_uri(&contact);
        // Calls whose connection is gone follow the client's new registration (its flow).
        let live: Vec<u64> = st.conns.keys().copied().collect();
        for c in st.calls.iter_mut().filter(|c| !live.contains(&c.conn)) {
            c.conn = conn;
        }
        st.registered = Some((conn, uri));
        let base = contact.split(";expires").next().unwrap_or(&contact);
        r.push_header("Contact", format!("{base};expires={expires}"));
    }
    r.push_header("Expires", expires.to_string());
    send(sh, st, conn, &r);
}

/// The URI inside a Contact / From / To value (`<sip:..>;params` or a bare URI).
fn contact_uri(value: &str) -> String {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => value[a + 1..b].to_owned(),
        _ => value.split(';').next().unwrap_or(value).trim().to_owned(),
    }
}

fn has_video(sdp: &str) -> bool {
    sdp.lines()
        .any(|l| l.starts_with("m=video") && !l.starts_with("m=video 0 "))
}

fn offers_hold(sdp: &str) -> bool {
    sdp.lines()
        .any(|l| matches!(l.trim(), "a=sendonly" | "a=inactive"))
}

fn invite(sh: &Arc<Shared>, st: &mut SwitchState, conn: u64, m: SipMessage) {
    send(sh, st, conn, &SipMessage::response_to(&m, 100, "Trying"));
    let expected = format!("sip:{DIALLING_URI}@{SIP_DOMAIN}");
    let uri = m.uri().unwrap_or_default().to_owned();
    if contact_uri(&uri).split(';').next() != Some(expected.as_str()) {
        let r = SipMessage::response_to(&m, 404, "Not Found")
            .with_header(DROPPED_REASON_HEADER, "NO-DIALPLAN-FOUND");
        send(sh, st, conn, &r);
        return;
    }
    let registered = st.registered.as_ref().is_some_and(|(c, _)| *c == conn);
    let tag = random_token(10);
    let call_id = m.call_id().unwrap_or_default().to_owned();
    let remote_target = contact_uri(m.header("Contact").unwrap_or_default());
    let video = has_video(&m.body);
    let mut call = SimCall {
        call_id: call_id.clone(),
        conn,
        invite: m.clone(),
        tag: tag.clone(),
        remote_target,
        answered: false,
        held: false,
        ended: false,
        video,
        dtmf: String::new(),
        media: None,
        final_stats: None,
        timer: None,
        cseq: 0,
        reinvite: None,
    };
    let answer = if registered {
        st.answer
    } else {
        CallAnswer::Refuse
    };
    match answer {
        CallAnswer::Refuse => {
            call.ended = true;
            let r = SipMessage::response_to_tagged(&m, 403, "Forbidden", &tag)
                .with_header(DROPPED_REASON_HEADER, "User_Not_Registered");
            send(sh, st, conn, &r);
        }
        CallAnswer::Busy => {
            call.ended = true;
            let r = SipMessage::response_to_tagged(&m, 486, "Busy Here", &tag)
                .with_header(DROPPED_REASON_HEADER, "USER_BUSY");
            send(sh, st, conn, &r);
        }
        CallAnswer::NoAnswer => {
            send(
                sh,
                st,
                conn,
                &SipMessage::response_to_tagged(&m, 180, "Ringing", &tag),
            );
            let sh2 = Arc::clone(sh);
            let id = call_id;
            call.timer = Some(
                tokio::spawn(async move {
                    tokio::time::sleep(NO_ANSWER_AFTER).await;
                    let mut st = sh2.switch.lock();
                    let Some(c) = st.calls.iter_mut().rev().find(|c| c.call_id == id) else {
                        return;
                    };
                    if c.ended {
                        return;
                    }
                    c.ended = true;
                    c.timer = None;
                    let r = SipMessage::response_to_tagged(
                        &c.invite,
                        480,
                        "Temporarily Unavailable",
                        &c.tag,
                    )
                    .with_header(DROPPED_REASON_HEADER, "NO_ANSWER");
                    let conn = c.conn;
                    send(&sh2, &st, conn, &r);
                })
                .abort_handle(),
            );
        }
        CallAnswer::Answer => {
            send(
                sh,
                st,
                conn,
                &SipMessage::response_to_tagged(&m, 180, "Ringing", &tag),
            );
            let sh2 = Arc::clone(sh);
            let id = call_id;
            let offer = m.body;
            let ring = st.ring.unwrap_or(ANSWER_AFTER);
            call.timer = Some(
                tokio::spawn(async move {
                    tokio::time::sleep(ring).await;
                    answer_call(sh2, id, offer, video).await;
                })
                .abort_handle(),
            );
        }
    }
    st.calls.push(call);
}

/// The far end picks up: a media peer answers the client's offer, `200 OK` carries it.
async fn answer_call(sh: Arc<Shared>, call_id: String, offer: String, video: bool) {
    let devices = MediaDevices {
        audio_in: Some(Arc::new(ToneSource::new(440.0))),
        audio_out: Some(Arc::new(RecordingSink::new())),
        video_in: video.then(|| Arc::new(TestPatternVideo::new()) as _),
        video_out: video.then(|| Arc::new(CountingVideoSink::new()) as _),
    };
    let config = MediaConfig {
        video,
        ..MediaConfig::loopback()
    };
    let answer = match MediaSession::start(V, config, devices).await {
        Ok(media) => match media.accept_offer(&offer) {
            Ok(sdp) => Ok((media, sdp)),
            Err(e) => {
                media.close().await;
                Err(e)
            }
        },
        Err(e) => Err(e),
    };
    let mut st = sh.switch.lock();
    let host = st.host.clone();
    let Some(c) = st.calls.iter_mut().rev().find(|c| c.call_id == call_id) else {
        return;
    };
    c.timer = None;
    if c.ended {
        if let Ok((media, _)) = answer {
            close_later(Some(media));
        }
        return;
    }
    let conn = c.conn;
    let r = match answer {
        Ok((media, sdp)) => {
            c.answered = true;
            c.media = Some(media);
            SipMessage::response_to_tagged(&c.invite, 200, "OK", &c.tag)
                .with_header(
                    "Contact",
                    format!("<sip:{DIALLING_URI}@{host};transport=ws>"),
                )
                .with_header("Allow", "INVITE, ACK, BYE, CANCEL, INFO, MESSAGE, OPTIONS")
                .with_body("application/sdp", sdp)
        }
        Err(e) => {
            c.ended = true;
            SipMessage::response_to_tagged(&c.invite, 488, "Not Acceptable Here", &c.tag)
                .with_header(DROPPED_REASON_HEADER, format!("MEDIA_ERROR {e}"))
        }
    };
    send(&sh, &st, conn, &r);
}

fn reinvite(sh: &Shared, st: &mut SwitchState, conn: u64, m: &SipMessage) {
    let host = st.host.clone();
    let r = match call_of(st, m) {
        Some(c) if c.answered && !c.ended => {
            match c.media.as_ref().map(|md| md.accept_offer(&m.body)) {
                Some(Ok(sdp)) => {
                    c.held = offers_hold(&m.body);
                    SipMessage::response_to_tagged(m, 200, "OK", &c.tag)
                        .with_header(
                            "Contact",
                            format!("<sip:{DIALLING_URI}@{host};transport=ws>"),
                        )
                        .with_body("application/sdp", sdp)
                }
                _ => SipMessage::response_to_tagged(m, 488, "Not Acceptable Here", &c.tag),
            }
        }
        _ => SipMessage::response_to(m, 481, "Call/Transaction Does Not Exist"),
    };
    send(sh, st, conn, &r);
}

impl Switch {
    pub(crate) fn set_host(&self, addr: SocketAddr) {
        self.lock().host = addr.to_string();
    }

    pub(crate) fn set_answer(&self, answer: CallAnswer) {
        self.lock().answer = answer;
    }

    pub(crate) fn set_ring(&self, ring: Duration) {
        self.lock().ring = Some(ring);
    }

    pub(crate) fn far_end(&self) -> Option<FarEndCall> {
        let st = self.lock();
        let c = st.calls.last()?;
        let mut stats = match (&c.media, &c.final_stats) {
            (Some(m), _) => m.stats(),
            (None, Some(s)) => s.clone(),
            (None, None) => CallStats::default(),
        };
        // DTMF arrives as SIP INFO on this switch (and as RFC 4733 in the media, if ever).
        let mut dtmf = c.dtmf.clone();
        dtmf.push_str(&stats.dtmf_received);
        stats.dtmf_received = dtmf;
        Some(FarEndCall {
            answered: c.answered,
            held: c.held,
            ended: c.ended,
            video: c.video,
            stats,
        })
    }

    /// The `X-` headers of the newest INVITE, in order.
    pub(crate) fn invite_headers(&self) -> Vec<(String, String)> {
        let st = self.lock();
        st.calls
            .last()
            .map(|c| {
                c.invite
                    .headers
                    .iter()
                    .filter(|(n, _)| n.len() > 2 && n[..2].eq_ignore_ascii_case("X-"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The switch's Call-ID for the newest call.
    pub(crate) fn call_id(&self) -> Option<String> {
        self.lock().calls.last().map(|c| c.call_id.clone())
    }

    fn in_dialog(c: &mut SimCall, method: Method) -> SipMessage {
        c.cseq += 1;
        let from = format!(
            "{};tag={}",
            c.invite.header("To").unwrap_or_default(),
            c.tag
        );
        SipMessage::request(method.clone(), c.remote_target.clone())
            .with_header(
                "Via",
                format!("SIP/2.0/WS {SIP_DOMAIN};branch=z9hG4bK{}", random_token(12)),
            )
            .with_header("Max-Forwards", "70")
            .with_header("From", from)
            .with_header("To", c.invite.header("From").unwrap_or_default())
            .with_header("Call-ID", c.call_id.clone())
            .with_header("CSeq", format!("{} {}", 100 + c.cseq, method.as_str()))
    }

    /// Drops every WebSocket connection (the client reconnects and registers again).
    pub(crate) fn drop_connections(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// The far end holds (`sendonly` re-INVITE) or resumes (`sendrecv`) the newest answered
    /// call.
    pub(crate) fn far_end_hold(&self, sh: &Shared, on: bool) -> Result<()> {
        let mut st = self.lock();
        let Some(c) = st.calls.last_mut().filter(|c| c.answered && !c.ended) else {
            return Err(cc_core::Error::invalid(
                V,
                "call",
                "no answered call to hold",
            ));
        };
        let Some(media) = &c.media else {
            return Err(cc_core::Error::invalid(V, "call", "no media"));
        };
        let offer = media.hold_offer(on)?;
        let host = st.host.clone();
        let c = st.calls.last_mut().expect("checked above");
        let invite = Self::in_dialog(c, Method::Invite)
            .with_header(
                "Contact",
                format!("<sip:{DIALLING_URI}@{host};transport=ws>"),
            )
            .with_body("application/sdp", offer);
        c.reinvite = Some((100 + c.cseq, on));
        let conn = c.conn;
        send(sh, &st, conn, &invite);
        Ok(())
    }

    /// The far end hangs up the newest answered call: `BYE` with `Reason` and
    /// `X-Call-Dropped-Custom-Reason` when `reason` is given.
    pub(crate) fn hangup(&self, sh: &Shared, reason: Option<&str>) -> Result<()> {
        let mut st = self.lock();
        let Some(c) = st.calls.last_mut().filter(|c| c.answered && !c.ended) else {
            return Err(cc_core::Error::invalid(
                V,
                "call",
                "no answered call to hang up",
            ));
        };
        let mut bye = Self::in_dialog(c, Method::Bye);
        if let Some(r) = reason {
            bye.push_header("Reason", format!("Q.850;cause=16;text=\"{r}\""));
            bye.push_header(DROPPED_REASON_HEADER, r);
        }
        let conn = c.conn;
        let media = end_call(c);
        send(sh, &st, conn, &bye);
        drop(st);
        close_later(media);
        Ok(())
    }

    /// The switch sends a side-channel `MESSAGE` (`{event, dialog:{id,…}, …}`) about the newest
    /// call to the registered client. `MEDIA_SERVER_CALL_END` also ends the call here.
    pub(crate) fn side_message(&self, sh: &Shared, event: &str, extra: Value) -> Result<()> {
        let mut st = self.lock();
        let Some((conn, target)) = st.registered.clone() else {
            return Err(cc_core::Error::invalid(
                V,
                "call",
                "no client is registered",
            ));
        };
        let Some(c) = st.calls.last_mut() else {
            return Err(cc_core::Error::invalid(V, "call", "no call yet"));
        };
        let mut body = json!({"event": event, "dialog": {"id": c.call_id}});
        if let (Some(b), Value::Object(x)) = (body.as_object_mut(), extra) {
            for (k, v) in x {
                if k == "dialog" {
                    if let (Some(d), Value::Object(dx)) =
                        (b.get_mut("dialog").and_then(Value::as_object_mut), v)
                    {
                        d.extend(dx);
                    }
                } else {
                    b.insert(k, v);
                }
            }
        }
        let media = if event == "MEDIA_SERVER_CALL_END" {
            end_call(c)
        } else {
            None
        };
        Self::send_message(sh, &st, conn, target, &body.to_string());
        drop(st);
        close_later(media);
        Ok(())
    }

    /// Sends a side-channel `MESSAGE` with `body` as it is (for malformed-body tests).
    pub(crate) fn raw_message(&self, sh: &Shared, body: &str) -> Result<()> {
        let st = self.lock();
        let Some((conn, target)) = st.registered.clone() else {
            return Err(cc_core::Error::invalid(
                V,
                "call",
                "no client is registered",
            ));
        };
        Self::send_message(sh, &st, conn, target, body);
        Ok(())
    }

    fn send_message(sh: &Shared, st: &SwitchState, conn: u64, target: String, body: &str) {
        let m = SipMessage::request(Method::Message, target)
            .with_header(
                "Via",
                format!("SIP/2.0/WS {SIP_DOMAIN};branch=z9hG4bK{}", random_token(12)),
            )
            .with_header("Max-Forwards", "70")
            .with_header(
                "From",
                format!(
                    "<sip:{AGENT_EXTENSION}@{SIP_DOMAIN}>;tag={}",
                    random_token(8)
                ),
            )
            .with_header("To", format!("<sip:{EXTENSION}@{SIP_DOMAIN}>"))
            .with_header("Call-ID", random_token(16))
            .with_header("CSeq", "1 MESSAGE")
            .with_body(SIDE_CHANNEL_CONTENT_TYPE, body);
        send(sh, st, conn, &m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_checks() {
        assert!(offers_hold(
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=sendonly\r\n"
        ));
        assert!(!offers_hold("v=0\r\na=sendrecv\r\n"));
        assert!(has_video(
            "m=audio 9 x 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
        ));
        assert!(!has_video(
            "m=audio 9 x 0\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\n"
        ));
        assert_eq!(
            contact_uri("<sip:5000@a.invalid;transport=ws>;expires=600"),
            "sip:5000@a.invalid;transport=ws"
        );
        assert_eq!(contact_uri("sip:x@y;ob"), "sip:x@y");
    }
}
