//! Calls over the EF switch: [`ExpertflowCall`], the `CallSession` of this adapter.
//!
//! A call is a SIP leg next to the chat (`shared/protocols/expertflow.md` §5): a user agent of
//! `cc-rtc` registers the widget config's shared extension at the switch (SIP over WebSocket,
//! digest auth), INVITEs `sip:<diallingUri>@<uriFs>` with the `X-Customer-*` headers and a
//! WebRTC offer from a `cc_rtc::media::MediaSession`, and drives the call through
//! `cc_rtc::CallMachine`. One task per call owns the user agent and the dialog; the
//! `CallSession` methods talk to it over a channel.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use cc_core::{
    CallRequest, CallSession, CallState, CallStats, Error, Event, EventBus, EventStream, Result,
    Vendor,
};
use cc_rtc::media::{MediaConfig, MediaEvent, MediaSession};
use cc_rtc::sip::{DialogEvent, OutgoingCall, UaConfig, UaEvent, UserAgent};
use cc_rtc::{CallAction, CallCommand, CallMachine, CallSignal, Step};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::config::CallsConfig;
use crate::wire::call::{
    CallerInfo, EndWord, SideMessage, WebRtcSettings, bye_reason, failure_reason, invite_headers,
};

const V: Vendor = Vendor::Expertflow;

/// The `User-Agent` the call's user agent writes.
const USER_AGENT: &str = concat!("cc-sdk/", env!("CARGO_PKG_VERSION"), " (expertflow)");
/// How long hang-up cleanup (BYE, un-REGISTER) may take before the call lets go.
const CLEANUP: Duration = Duration::from_secs(2);

enum CallCmd {
    Hold(bool, oneshot::Sender<Result<()>>),
    Dtmf(String, oneshot::Sender<Result<()>>),
    Hangup(oneshot::Sender<()>),
}

pub(crate) struct CallInner {
    id: Arc<str>,
    machine: Mutex<CallMachine>,
    state: Mutex<CallState>,
    bus: EventBus,
    session_bus: EventBus,
    media: MediaSession,
    cmd: mpsc::UnboundedSender<CallCmd>,
    /// The INVITE's Call-ID (the vendor client's `dialog.id`), once sent.
    dialog_id: Mutex<Option<String>>,
    /// The agent's extension, once `agentDetails` said it.
    agent_ext: Mutex<Option<String>>,
}

/// One call over the EF switch. Cheap to clone.
#[derive(Clone)]
pub struct ExpertflowCall {
    inner: Arc<CallInner>,
}

impl std::fmt::Debug for ExpertflowCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpertflowCall")
            .field("id", &self.inner.id)
            .field("state", &*self.inner.state())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CallInner {
    fn state(&self) -> MutexGuard<'_, CallState> {
        lock(&self.state)
    }

    fn publish(&self, state: CallState) {
        *self.state() = state.clone();
        let e = Event::Call {
            call: Arc::clone(&self.id),
            state,
        };
        self.bus.emit(e.clone());
        self.session_bus.emit(e);
    }

    /// Publishes the state a step reached, if it changed.
    fn apply(&self, step: &Step) {
        if let Some(s) = &step.state {
            self.publish(s.clone());
        }
    }

    fn signal(&self, signal: CallSignal) -> Step {
        let step = lock(&self.machine).signal(signal);
        self.apply(&step);
        step
    }

    fn ended(&self) -> bool {
        matches!(*self.state(), CallState::Ended { .. })
    }

    /// Ends the call with `reason` unless it already ended.
    fn end(&self, reason: Arc<str>) {
        self.signal(CallSignal::Failed { reason });
    }

    fn vendor_event(&self, name: &str, payload: Value) {
        let e = Event::Vendor {
            vendor: V,
            name: Arc::from(name),
            payload: Arc::new(payload),
        };
        self.bus.emit(e.clone());
        self.session_bus.emit(e);
    }

    fn error_event(&self, e: Error) {
        let e = Event::error(e);
        self.bus.emit(e.clone());
        self.session_bus.emit(e);
    }
}

impl ExpertflowCall {
    /// Whether the call is over.
    pub fn is_ended(&self) -> bool {
        self.inner.ended()
    }

    /// The SIP dialog id (the INVITE's `Call-ID`), once the INVITE is out.
    pub fn dialog_id(&self) -> Option<String> {
        lock(&self.inner.dialog_id).clone()
    }

    /// The agent's extension, once the switch's `agentDetails` message named it.
    pub fn agent_extension(&self) -> Option<String> {
        lock(&self.inner.agent_ext).clone()
    }

    /// Checks `command` against a copy of the machine (nothing changes).
    fn probe(&self, command: CallCommand) -> Result<Step> {
        lock(&self.inner.machine).clone().command(command)
    }

    async fn ask(&self, make: impl FnOnce(oneshot::Sender<Result<()>>) -> CallCmd) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .cmd
            .send(make(tx))
            .map_err(|_| Error::closed(V, "call"))?;
        rx.await.map_err(|_| Error::closed(V, "call"))?
    }
}

#[async_trait]
impl CallSession for ExpertflowCall {
    fn vendor(&self) -> Vendor {
        V
    }

    fn id(&self) -> Arc<str> {
        Arc::clone(&self.inner.id)
    }

    fn state(&self) -> CallState {
        self.inner.state().clone()
    }

    fn events(&self) -> EventStream {
        self.inner.bus.subscribe()
    }

    /// Local only, as the vendor client: outgoing audio RTP stops, nothing is signalled.
    async fn mute_audio(&self, on: bool) -> Result<()> {
        let step = lock(&self.inner.machine).command(CallCommand::MuteAudio(on))?;
        for a in step.actions {
            if let CallAction::SetAudioMuted(on) = a {
                self.inner.media.set_audio_muted(on);
            }
        }
        Ok(())
    }

    async fn mute_video(&self, on: bool) -> Result<()> {
        let step = lock(&self.inner.machine).command(CallCommand::MuteVideo(on))?;
        for a in step.actions {
            if let CallAction::SetVideoMuted(on) = a {
                self.inner.media.set_video_muted(on);
            }
        }
        Ok(())
    }

    /// Re-INVITE with `a=sendonly` (hold) or `a=sendrecv` (resume); the state changes once
    /// the switch accepted it.
    async fn hold(&self, on: bool) -> Result<()> {
        let step = self.probe(CallCommand::Hold(on))?;
        if step.actions.is_empty() {
            return Ok(());
        }
        self.ask(|tx| CallCmd::Hold(on, tx)).await
    }

    /// One `INFO` (`application/dtmf-relay`, `Signal=<digit>`, `Duration=150`) per digit,
    /// each answered before the next. Refused while on hold, as the vendor client does.
    async fn dtmf(&self, digits: &str) -> Result<()> {
        self.probe(CallCommand::Dtmf(digits.to_owned()))?;
        let digits = digits.to_owned();
        self.ask(|tx| CallCmd::Dtmf(digits, tx)).await
    }

    /// `CANCEL` before the answer, `BYE` after; the state is `Ended` with `local-hangup` when
    /// this returns.
    async fn hangup(&self) -> Result<()> {
        // The machine says CANCEL or BYE; the dialog knows better whether the answer
        // arrived meanwhile (`Dialog::cancel` sends BYE on an answered call), so the task
        // asks the dialog.
        lock(&self.inner.machine).command(CallCommand::Hangup)?;
        self.inner.publish(CallState::Ended {
            reason: EndWord::LocalHangup.with(None),
        });
        let (tx, rx) = oneshot::channel();
        if self.inner.cmd.send(CallCmd::Hangup(tx)).is_ok() {
            let _ = tokio::time::timeout(CLEANUP, rx).await;
        }
        Ok(())
    }

    fn stats(&self) -> Result<CallStats> {
        Ok(self.inner.media.stats())
    }
}

/// What `start_call` needs from the session.
pub(crate) struct CallSetup {
    pub(crate) settings: WebRtcSettings,
    pub(crate) calls: CallsConfig,
    pub(crate) caller: CallerInfo,
    pub(crate) tls: cc_transport::TlsConfig,
    pub(crate) session_bus: EventBus,
    /// How long the switch's WebSocket may take to connect.
    pub(crate) connect_timeout: Duration,
}

/// The settings of the widget config's `webRtc` block with the `[expertflow.calls]` overrides;
/// `Err(Rejected)` when the deployment has calls switched off.
pub(crate) fn settings(web_rtc: Option<&Value>, calls: &CallsConfig) -> Result<WebRtcSettings> {
    let mut merged = match web_rtc {
        Some(v) if v.is_object() => v.clone(),
        _ => Value::Object(Default::default()),
    };
    let o = merged.as_object_mut().expect("an object");
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            o.insert(k.to_owned(), Value::from(v.clone()));
        }
    };
    put("wssFs", &calls.switch_url);
    put("uriFs", &calls.sip_domain);
    put("diallingUri", &calls.dialling_uri);
    put("sipExtension", &calls.extension);
    if o.is_empty() {
        return Err(Error::Rejected {
            vendor: V,
            code: "WEBRTC_NOT_CONFIGURED".to_owned(),
            message: "the widget config has no webRtc settings (calls are not set up)".to_owned(),
            retry_after: None,
        });
    }
    let mut s = WebRtcSettings::from_widget(&merged)?;
    if !s.enabled {
        return Err(Error::Rejected {
            vendor: V,
            code: "WEBRTC_DISABLED".to_owned(),
            message: "the widget config has enableWebRtc false".to_owned(),
            retry_after: None,
        });
    }
    if let Some(p) = &calls.password {
        s.password = Some(p.clone());
    }
    if let Some(ice) = &calls.ice_servers {
        s.ice_servers = ice.clone();
    }
    Ok(s)
}

/// The local address the system routes to the switch from: a UDP socket "connected" to the
/// switch's address (no packet is sent) tells it.
async fn route_to(switch: &url::Url) -> Result<std::net::IpAddr> {
    let host = switch
        .host_str()
        .ok_or_else(|| Error::invalid(V, "webRtc.wssFs", "no host"))?
        .trim_matches(['[', ']']);
    let port = switch.port_or_known_default().unwrap_or(7443);
    cc_rtc::media::route_address(host, port)
        .await
        .map_err(|e| Error::transport(V, "finding the media address", e))
}

/// The registration failed: a refusal (`401`/`403`/`407`, `Error::Auth` from the user agent)
/// names the switch's status and phrase; anything else stays as it is.
fn registration_refused(e: Error) -> Error {
    match e {
        Error::Auth { code, message, .. } => Error::Auth {
            vendor: V,
            code,
            message: format!("the EF switch refused the registration: {message}"),
        },
        other => other,
    }
}

/// Starts a call: media session and offer, user agent and registration (a refused
/// registration fails here with `Error::Auth`), then returns the call in `Dialing` while a
/// task sends the INVITE and follows it.
pub(crate) async fn start(setup: CallSetup, request: CallRequest) -> Result<ExpertflowCall> {
    let CallSetup {
        settings,
        calls,
        caller,
        tls,
        session_bus,
        connect_timeout,
    } = setup;
    let bind = match calls.media_bind {
        Some(ip) => ip,
        None => route_to(&settings.switch_url).await?,
    };
    let media = MediaSession::start(
        V,
        MediaConfig {
            ice_servers: settings.ice_servers.clone(),
            bind,
            video: request.video,
            opus: calls.opus,
            ..MediaConfig::loopback()
        },
        request.devices.clone(),
    )
    .await?;
    let offer = match media.create_offer() {
        Ok(o) => o,
        Err(e) => {
            media.close().await;
            return Err(e);
        }
    };
    let mut ua_config = UaConfig::new(
        settings.switch_url.clone(),
        settings.sip_domain.clone(),
        settings.extension.clone(),
    );
    ua_config.password = settings.password.clone();
    ua_config.tls = tls;
    ua_config.register_expires = calls.register_expires;
    ua_config.user_agent = USER_AGENT.to_owned();
    ua_config.connect_timeout = connect_timeout;
    ua_config.backoff =
        cc_transport::BackoffPolicy::fixed(Duration::from_millis(calls.switch_reconnect_ms))
            .with_max_attempts(Some(10));
    ua_config.display_name =
        (!caller.customer_name.is_empty()).then(|| caller.customer_name.clone());
    let ua = match UserAgent::start(V, ua_config).await {
        Ok(ua) => ua,
        Err(e) => {
            media.close().await;
            return Err(e);
        }
    };
    if let Err(e) = ua.register().await {
        ua.close().await;
        media.close().await;
        return Err(registration_refused(e));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let mut machine = CallMachine::new(V, request.video);
    let step = machine.command(CallCommand::Dial)?;
    let inner = Arc::new(CallInner {
        id: Arc::from(uuid::Uuid::new_v4().to_string()),
        machine: Mutex::new(machine),
        state: Mutex::new(CallState::Idle),
        bus: EventBus::default(),
        session_bus,
        media,
        cmd: tx,
        dialog_id: Mutex::new(None),
        agent_ext: Mutex::new(None),
    });
    inner.apply(&step);
    let headers = invite_headers(&caller);
    let target = settings.target();
    let media_timeout = Duration::from_millis(calls.media_timeout_ms);
    tokio::spawn(drive(
        Arc::clone(&inner),
        ua,
        target,
        headers,
        offer,
        rx,
        media_timeout,
    ));
    Ok(ExpertflowCall { inner })
}

/// The call's task: INVITE, then every signal of the dialog, the media, the side channel
/// and the app's commands, until the call ends; then cleanup.
async fn drive(
    call: Arc<CallInner>,
    ua: UserAgent,
    target: String,
    headers: Vec<(String, String)>,
    offer: String,
    mut cmds: mpsc::UnboundedReceiver<CallCmd>,
    media_timeout: Duration,
) {
    let mut ua_events = ua.events();
    let mut media_events = call.media.events();
    let mut pending_hangup: Option<oneshot::Sender<()>> = None;
    let outgoing = tokio::select! {
        r = ua.invite(&target, headers, offer) => r,
        Some(cmd) = cmds.recv() => {
            // Only a hang-up can come before the INVITE is out (the rest needs an answer).
            if let CallCmd::Hangup(done) = cmd {
                pending_hangup = Some(done);
            }
            Err(Error::closed(V, "call"))
        }
    };
    let dialog: OutgoingCall = match outgoing {
        Ok(d) => d,
        Err(e) => {
            if pending_hangup.is_none() {
                call.end(EndWord::Failed.with(Some(&e.to_string())));
            }
            finish(&call, &ua, pending_hangup).await;
            return;
        }
    };
    *lock(&call.dialog_id) = Some(dialog.call_id().to_owned());
    let (up_tx, mut up_rx) = mpsc::channel::<Result<()>>(1);
    let mut answered = false;
    loop {
        tokio::select! {
            ev = dialog.next_event() => {
                let Some(ev) = ev else {
                    call.end(EndWord::Failed.with(Some("the switch connection closed")));
                    break;
                };
                match ev {
                    DialogEvent::Trying => { call.signal(CallSignal::Trying); }
                    DialogEvent::Ringing { .. } => { call.signal(CallSignal::Ringing); }
                    DialogEvent::Answered { sdp } => {
                        if answered {
                            continue;
                        }
                        answered = true;
                        if let Err(e) = call.media.apply_answer(&sdp) {
                            let _ = dialog.bye(Vec::new()).await;
                            call.end(EndWord::Failed.with(Some(&format!("the answer's SDP: {e}"))));
                            break;
                        }
                        // Connected only once ICE and DTLS are up.
                        let media = call.media.clone();
                        let up = up_tx.clone();
                        tokio::spawn(async move {
                            let _ = up.send(media.connected(media_timeout).await).await;
                        });
                    }
                    DialogEvent::Failed { status, reason } => {
                        call.end(failure_reason(status, &reason));
                        break;
                    }
                    DialogEvent::ReInvite { sdp } => {
                        match call.media.accept_offer(&sdp) {
                            Ok(answer) => {
                                if let Err(e) = dialog.answer_reinvite(answer) {
                                    call.error_event(e);
                                }
                                let held = call.media.is_held_by_remote();
                                call.signal(CallSignal::RemoteHold(held));
                            }
                            Err(e) => {
                                let _ = dialog.reject_reinvite(488, "Not Acceptable Here");
                                call.error_event(e);
                            }
                        }
                    }
                    DialogEvent::Info { .. } | DialogEvent::Cancelled => {}
                    DialogEvent::Bye { reason } => {
                        call.end(bye_reason(reason.as_deref()));
                        break;
                    }
                }
            }
            Some(up) = up_rx.recv() => match up {
                Ok(()) => { call.signal(CallSignal::Answered); }
                Err(e) => {
                    let _ = dialog.bye(Vec::new()).await;
                    call.end(EndWord::Failed.with(Some(&format!("media did not connect: {e}"))));
                    break;
                }
            },
            me = media_events.recv() => {
                if let Ok(MediaEvent::Failed(why)) = me {
                    let _ = dialog.bye(Vec::new()).await;
                    call.end(EndWord::Failed.with(Some(&format!("media: {why}"))));
                    break;
                }
            }
            ue = ua_events.recv() => {
                let Ok(UaEvent::Message { content_type: _, body, .. }) = ue else { continue };
                match SideMessage::parse(&body) {
                    Err(why) => call.error_event(Error::protocol(V, "SIP MESSAGE body", why)),
                    Ok(m) if m.dialog() != dialog.call_id() => {}
                    Ok(SideMessage::MediaServerCallEnd { reason_code, .. }) => {
                        let text = match reason_code {
                            Some(c) => format!("MEDIA_SERVER_CALL_END {c}"),
                            None => "MEDIA_SERVER_CALL_END".to_owned(),
                        };
                        let _ = dialog.bye(Vec::new()).await;
                        call.end(EndWord::RemoteHangup.with(Some(&text)));
                        break;
                    }
                    Ok(SideMessage::UserBusy { .. }) => {
                        let _ = dialog.cancel().await;
                        call.end(EndWord::Busy.with(Some("USER_BUSY")));
                        break;
                    }
                    Ok(SideMessage::AgentDetails { agent_ext, .. }) => {
                        *lock(&call.agent_ext) = agent_ext;
                        if let Ok(v) = serde_json::from_str(&body) {
                            call.vendor_event("agentDetails", v);
                        }
                    }
                    Ok(SideMessage::MediaStreamUpdate { body, .. }) => call.vendor_event("mediaStreamUpdate", body),
                    Ok(SideMessage::Other { event, body }) => call.vendor_event(&event, body),
                }
            }
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else { break };
                match cmd {
                    CallCmd::Hold(on, done) => {
                        let r = hold(&call, &dialog, on).await;
                        let _ = done.send(r);
                    }
                    CallCmd::Dtmf(digits, done) => {
                        // Checked again: a hold may have come in since the caller's check.
                        let ok = lock(&call.machine).clone().command(CallCommand::Dtmf(digits.clone()));
                        let r = match ok {
                            Ok(_) => dialog.dtmf(&digits).await,
                            Err(e) => Err(e),
                        };
                        let _ = done.send(r);
                    }
                    CallCmd::Hangup(done) => {
                        // CANCEL before the answer (sent once a provisional response is in;
                        // the INVITE then fails with 487), BYE after it.
                        if let Err(e) = dialog.cancel().await {
                            tracing::debug!(error = %e, "hang-up request failed");
                        }
                        let _ = tokio::time::timeout(CLEANUP, async {
                            while !dialog.is_terminated() {
                                if dialog.next_event().await.is_none() {
                                    break;
                                }
                            }
                        })
                        .await;
                        pending_hangup = Some(done);
                        break;
                    }
                }
            }
        }
    }
    finish(&call, &ua, pending_hangup).await;
}

/// Hold or resume: the media's re-offer in a re-INVITE, its answer applied, then the state.
async fn hold(call: &CallInner, dialog: &OutgoingCall, on: bool) -> Result<()> {
    if call.ended() {
        return Err(Error::closed(V, "call"));
    }
    let offer = call.media.hold_offer(on)?;
    let answer = dialog.reinvite(offer).await?;
    call.media.apply_answer(&answer)?;
    let step = lock(&call.machine).command(CallCommand::Hold(on))?;
    call.apply(&step);
    Ok(())
}

async fn finish(call: &CallInner, ua: &UserAgent, done: Option<oneshot::Sender<()>>) {
    call.media.close().await;
    let _ = tokio::time::timeout(CLEANUP, ua.unregister()).await;
    ua.close().await;
    if let Some(d) = done {
        let _ = d.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_merge_overrides_and_refuse_when_off() {
        let widget = json!({
            "enableWebRtc": true, "wssFs": "wss://sw.invalid:7443", "uriFs": "sw.invalid",
            "diallingUri": "5166", "sipExtension": "5000", "extensionPassword": "from-widget",
            "iceServers": [{"urls": ["stun:stun.invalid:3478"]}]
        });
        let mut calls = CallsConfig::default();
        let s = settings(Some(&widget), &calls).unwrap();
        assert_eq!(s.target(), "sip:5166@sw.invalid");
        assert_eq!(s.ice_servers.len(), 1);
        calls.dialling_uri = Some("7000".into());
        calls.password = Some(cc_core::Secret::new("from-config"));
        calls.ice_servers = Some(Vec::new());
        let s = settings(Some(&widget), &calls).unwrap();
        assert_eq!(s.target(), "sip:7000@sw.invalid");
        assert_eq!(
            s.password.as_ref().map(cc_core::Secret::expose),
            Some("from-config")
        );
        assert!(s.ice_servers.is_empty());

        // Everything from the configuration, no webRtc block.
        let calls = CallsConfig {
            switch_url: Some("ws://127.0.0.1:7443".into()),
            sip_domain: Some("127.0.0.1".into()),
            dialling_uri: Some("1".into()),
            extension: Some("2".into()),
            ..CallsConfig::default()
        };
        assert_eq!(settings(None, &calls).unwrap().target(), "sip:1@127.0.0.1");

        let e = settings(None, &CallsConfig::default()).unwrap_err();
        assert!(
            matches!(&e, Error::Rejected { code, .. } if code == "WEBRTC_NOT_CONFIGURED"),
            "{e}"
        );
        let mut off = widget;
        off["enableWebRtc"] = json!(false);
        let e = settings(Some(&off), &CallsConfig::default()).unwrap_err();
        assert!(
            matches!(&e, Error::Rejected { code, .. } if code == "WEBRTC_DISABLED"),
            "{e}"
        );
    }

    #[test]
    fn refused_registration_names_the_status() {
        let e = registration_refused(Error::Auth {
            vendor: V,
            code: Some("403".into()),
            message: "SIP 403 Forbidden".into(),
        });
        assert_eq!(e.kind(), cc_core::ErrorKind::Auth);
        assert!(
            e.to_string()
                .contains("refused the registration: SIP 403 Forbidden"),
            "{e}"
        );
        let t = registration_refused(Error::closed(V, "x"));
        assert_eq!(t.kind(), cc_core::ErrorKind::Closed);
    }

    #[tokio::test]
    async fn media_address_routes_to_the_switch() {
        let url = url::Url::parse("ws://127.0.0.1:7443").unwrap();
        assert_eq!(
            route_to(&url).await.unwrap(),
            std::net::IpAddr::from([127, 0, 0, 1])
        );
    }
}
