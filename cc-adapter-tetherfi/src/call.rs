//! Audio/video calls: [`TetherfiCall`], a `cc_core::CallSession` over the §3.8 signalling
//! that rides inside the chat (app messages) and a `cc_rtc::media::MediaSession` for the
//! media, driven through `cc_rtc::CallMachine`.
//!
//! ```text
//! customer (this crate)                                   TMAC / CSO (the simulator)
//!   devinfo {info}, avtstatus {param: audio|video}   ──►
//!                                                    ◄──  configs {avmode, ice, avproxy, …}
//!   (avmode false, or no video for a video call: start_call fails, Error::Rejected)
//!   offer {sdp}, candidate {id, sdpMLineIndex, candidate}…  ──►
//!                                                    ◄──  callqueued {avtype}            Ringing
//!                                                    ◄──  agt1stconnect {avtype}
//!                                                    ◄──  answer {sdp}, candidate…       (ICE + DTLS) Connected
//!   offer {sdp a=sendonly} ──►  ◄── answer {sdp a=recvonly}                              OnHold (hold)
//!                                                    ◄──  avcontrol {value: muteaudio}   OnHold (CSO hold)
//!   endav {reason: COMMON}  ──►                                                          Ended local-hangup
//!                                                    ◄──  endav {reason} / bye / onend   Ended remote-hangup / busy / …
//! ```
//!
//! One call per chat at a time. The call's signalling goes out in order, outside the chat's
//! outbox (it is not part of the transcript), each message with its own client sequence number
//! (a retry after a transport error reuses it, so the server does not deliver it twice).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cc_core::{
    CallRequest, CallSession, CallState, CallStats, EngagementId, EngagementState, Error, Event,
    EventBus, EventStream, Result, Vendor,
};
use cc_rtc::media::{IceServer, IceTransportPolicy, MediaConfig, MediaEvent, MediaSession};
use cc_rtc::{CallCommand, CallMachine, CallSignal};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::client::{Guard, Inner};
use crate::wire::Call;
use crate::wire::av::{
    AVMODE_AUDIO, AVMODE_OFF, AVMODE_VIDEO, AvConfigs, AvSignal, END_COMMON, END_ERROR,
    END_NET_ERROR, EndKind,
};

const V: Vendor = Vendor::Tetherfi;

/// What reaches a call's driver.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A signalling message of the call's chat.
    Signal(AvSignal),
    /// The chat ended (the call cannot outlive it).
    ChatEnded {
        /// The customer ended it.
        by_customer: bool,
    },
    /// ICE + DTLS connected after the answer (or not).
    MediaUp(Result<()>),
    /// End the call (the session shuts down), or, once it ended, stop its driver.
    Stop(&'static str),
}

/// The calls of a session: the driver of each chat's call, by chat.
#[derive(Debug, Default)]
pub(crate) struct CallHub {
    calls: Mutex<HashMap<EngagementId, mpsc::UnboundedSender<Inbound>>>,
    /// `configs` a chat received while it had no call.
    configs: Mutex<HashMap<EngagementId, AvConfigs>>,
}

/// How long a call start waits for fresh `configs` when the chat already has some.
const FRESH_CONFIGS_GRACE: Duration = Duration::from_secs(1);

impl CallHub {
    /// Keeps `configs` pushed to chat `engagement` outside a call.
    pub(crate) fn keep_configs(&self, engagement: &EngagementId, configs: AvConfigs) {
        self.configs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(engagement.clone(), configs);
    }

    fn kept_configs(&self, engagement: &EngagementId) -> Option<AvConfigs> {
        self.configs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(engagement)
            .cloned()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<EngagementId, mpsc::UnboundedSender<Inbound>>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether chat `engagement` has a call.
    pub(crate) fn has(&self, engagement: &EngagementId) -> bool {
        self.lock().get(engagement).is_some_and(|t| !t.is_closed())
    }

    /// Hands `msg` to the chat's call; false when the chat has none.
    pub(crate) fn route(&self, engagement: &EngagementId, msg: Inbound) -> bool {
        let mut calls = self.lock();
        match calls.get(engagement) {
            Some(tx) => match tx.send(msg) {
                Ok(()) => true,
                Err(_) => {
                    calls.remove(engagement);
                    false
                }
            },
            None => false,
        }
    }

    fn register(
        &self,
        engagement: &EngagementId,
        tx: mpsc::UnboundedSender<Inbound>,
    ) -> Result<()> {
        let mut calls = self.lock();
        if calls.get(engagement).is_some_and(|t| !t.is_closed()) {
            return Err(Error::invalid(
                V,
                "engagement",
                format!("chat {engagement} already has a call"),
            ));
        }
        calls.insert(engagement.clone(), tx);
        Ok(())
    }

    fn unregister(&self, engagement: &EngagementId, tx: &mpsc::UnboundedSender<Inbound>) {
        let mut calls = self.lock();
        if calls.get(engagement).is_some_and(|t| t.same_channel(tx)) {
            calls.remove(engagement);
        }
    }

    /// Ends every call (the session shuts down or is dropped).
    pub(crate) fn stop_all(&self, why: &'static str) {
        for (_, tx) in self.lock().drain() {
            let _ = tx.send(Inbound::Stop(why));
        }
    }
}

/// The neutral end reason: `word`, then `: ` and the vendor's text when there is one.
fn reason(word: &str, vendor_text: Option<&str>) -> Arc<str> {
    match vendor_text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => Arc::from(format!("{word}: {t}")),
        None => Arc::from(word),
    }
}

/// The neutral word for an end the far end signalled, before (`up` false) or after the media
/// came up.
fn end_word(up: bool, kind: EndKind) -> &'static str {
    match (up, kind) {
        (_, EndKind::Failed) => "failed",
        (true, _) => "remote-hangup",
        (false, EndKind::Busy) => "busy",
        (false, EndKind::NoAnswer) => "no-answer",
        // The CSO side ended a call it never answered.
        (false, EndKind::Rejected | EndKind::Normal) => "rejected",
    }
}

/// Sends one signalling message on chat `engagement`, retrying transport failures with the
/// same sequence number until the request timeout.
async fn send_signal(inner: &Arc<Inner>, engagement: &EngagementId, sig: &AvSignal) -> Result<()> {
    let (seq, sid) = {
        let mut st = inner.lock();
        (st.engine.next_seq(), st.engine.call_sid(engagement))
    };
    let call = Call::SendAppMessage {
        msg: sig.to_value().to_string(),
        seq,
        sid,
    };
    let deadline = Instant::now() + inner.cfg.request_timeout();
    loop {
        match inner.call(&call).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tracing::debug!(vendor = %V, error = %e, kind = sig.kind(), "signalling retry");
                tokio::time::sleep(inner.cfg.poll_retry().min(Duration::from_millis(500))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Where a call is, beyond the state the app sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The offer is out; waiting for the CSO's answer.
    Offered,
    /// The answer is applied; waiting for ICE + DTLS.
    Connecting,
    /// Media is up.
    Up,
    /// Over.
    Ended,
}

struct Core {
    machine: CallMachine,
    reported: CallState,
    phase: Phase,
    /// A local re-offer (hold) waits for this answer.
    pending_answer: Option<oneshot::Sender<String>>,
    /// The CSO's `avcontrol` hold.
    control_hold: bool,
    /// The far end's own re-offer said sendonly/inactive.
    sdp_hold: bool,
}

struct Shared {
    id: Arc<str>,
    engagement: EngagementId,
    inner: Arc<Inner>,
    bus: EventBus,
    media: MediaSession,
    core: Mutex<Core>,
    tx: mpsc::UnboundedSender<Inbound>,
    /// Keeps the call's signalling in order.
    send_lock: tokio::sync::Mutex<()>,
}

impl Shared {
    fn core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reports `state` (once per change) on the call's and the session's streams.
    fn publish(&self, core: &mut Core, state: CallState) {
        if core.reported == state {
            return;
        }
        core.reported = state.clone();
        let ev = Event::Call {
            call: self.id.clone(),
            state,
        };
        self.bus.emit(ev.clone());
        self.inner.bus.emit(ev);
    }

    fn apply_step(&self, core: &mut Core, step: cc_rtc::Step) {
        if let Some(s) = step.state {
            self.publish(core, s);
        }
    }

    async fn send(&self, sig: &AvSignal) -> Result<()> {
        let _order = self.send_lock.lock().await;
        send_signal(&self.inner, &self.engagement, sig).await
    }

    fn protocol_error(&self, reason: impl Into<String>) {
        self.inner.bus.emit(Event::error(Error::protocol(
            V,
            "audio/video app message",
            reason,
        )));
    }

    /// Ends the call once: reports `Ended { reason }`, tells the far end with `tell` (when
    /// given), closes the media and frees the chat for another call.
    async fn finish(&self, reason: Arc<str>, tell: Option<AvSignal>) {
        {
            let mut core = self.core();
            if core.phase == Phase::Ended {
                return;
            }
            core.phase = Phase::Ended;
            core.pending_answer = None;
            core.machine.signal(CallSignal::Failed {
                reason: reason.clone(),
            });
            // Free the chat first: whoever sees the end may start the next call at once.
            self.inner.calls.unregister(&self.engagement, &self.tx);
            self.publish(&mut core, CallState::Ended { reason });
        }
        // Wake the driver so that it sees the end and stops.
        let _ = self.tx.send(Inbound::Stop("ended"));
        if let Some(sig) = tell
            && let Err(e) = self.send(&sig).await
        {
            tracing::debug!(vendor = %V, error = %e, "could not send the end of the call");
        }
        self.media.close().await;
    }

    fn update_remote_hold(&self, core: &mut Core) {
        let on = core.control_hold || core.sdp_hold;
        let step = core.machine.signal(CallSignal::RemoteHold(on));
        self.apply_step(core, step);
    }

    async fn on_signal(self: &Arc<Self>, sig: AvSignal) {
        match sig {
            AvSignal::CallQueued { .. } => {
                let mut core = self.core();
                let step = core.machine.signal(CallSignal::Ringing);
                self.apply_step(&mut core, step);
            }
            AvSignal::Answer { sdp } => {
                enum Next {
                    Waiter(oneshot::Sender<String>),
                    Bad(Error),
                    Connecting,
                    Unexpected,
                }
                let next = {
                    let mut core = self.core();
                    match core.pending_answer.take() {
                        Some(w) => Next::Waiter(w),
                        None if core.phase == Phase::Offered => {
                            match self.media.apply_answer(&sdp) {
                                Ok(()) => {
                                    core.phase = Phase::Connecting;
                                    Next::Connecting
                                }
                                Err(e) => Next::Bad(e),
                            }
                        }
                        None => Next::Unexpected,
                    }
                };
                match next {
                    Next::Waiter(w) => {
                        let _ = w.send(sdp);
                    }
                    Next::Bad(e) => {
                        self.finish(
                            reason("failed", Some(&format!("bad answer: {e}"))),
                            Some(AvSignal::EndAv {
                                reason: END_ERROR.to_owned(),
                            }),
                        )
                        .await;
                    }
                    Next::Connecting => {
                        let media = self.media.clone();
                        let tx = self.tx.clone();
                        let wait = self.inner.cfg.calls.media_timeout();
                        tokio::spawn(async move {
                            let r = media.connected(wait).await;
                            let _ = tx.send(Inbound::MediaUp(r));
                        });
                    }
                    Next::Unexpected => {
                        self.protocol_error("an `answer` without an offer in flight");
                    }
                }
            }
            AvSignal::Offer { sdp } => {
                {
                    let mut core = self.core();
                    if core.phase != Phase::Up {
                        drop(core);
                        self.protocol_error("an `offer` before the call is connected");
                        return;
                    }
                    // A glare: the far end's offer wins over our hold re-offer.
                    core.pending_answer = None;
                }
                match self.media.accept_offer(&sdp) {
                    Ok(answer) => {
                        if let Err(e) = self.send(&AvSignal::Answer { sdp: answer }).await {
                            tracing::debug!(vendor = %V, error = %e, "could not answer a re-offer");
                        }
                        let mut core = self.core();
                        core.sdp_hold = self.media.is_held_by_remote();
                        self.update_remote_hold(&mut core);
                    }
                    Err(e) => self.protocol_error(format!("`offer`: {e}")),
                }
            }
            AvSignal::Candidate { candidate, .. } => {
                if let Err(e) = self.media.add_remote_candidate(&candidate) {
                    self.protocol_error(format!("`candidate`: {e}"));
                }
            }
            AvSignal::AvControl { value } => {
                let on = match value.as_str() {
                    "muteaudio" => true,
                    "unmuteaudio" => false,
                    other => {
                        self.protocol_error(format!("`avcontrol` value `{other}`"));
                        return;
                    }
                };
                let mut core = self.core();
                core.control_hold = on;
                self.update_remote_hold(&mut core);
            }
            AvSignal::EndAv { reason: r } => self.remote_end(Some(r)).await,
            AvSignal::Bye { reason: r } | AvSignal::OnEnd { reason: r } => {
                self.remote_end(r).await;
            }
            AvSignal::AvtStatus { param } if param == AVMODE_OFF => {
                self.remote_end(Some("avtstatus false".to_owned())).await;
            }
            // Configs again, the CSO's own upgrade request, device info: nothing to do
            // during a call.
            AvSignal::Configs(_)
            | AvSignal::Agt1stConnect { .. }
            | AvSignal::RequestAv { .. }
            | AvSignal::AvtStatus { .. }
            | AvSignal::DevInfo { .. } => {}
        }
    }

    /// The far end ended the media session.
    async fn remote_end(&self, text: Option<String>) {
        let up = self.core().phase == Phase::Up;
        let text = text.filter(|t| !t.is_empty());
        let kind = text.as_deref().map_or(EndKind::Normal, EndKind::of);
        self.finish(reason(end_word(up, kind), text.as_deref()), None)
            .await;
    }

    async fn on_inbound(self: &Arc<Self>, msg: Inbound, reconnect: &mut Option<Instant>) {
        match msg {
            Inbound::Signal(sig) => self.on_signal(sig).await,
            Inbound::ChatEnded { by_customer } => {
                let word = if by_customer {
                    "local-hangup"
                } else {
                    "remote-hangup"
                };
                self.finish(reason(word, Some("chat ended")), None).await;
            }
            Inbound::MediaUp(Ok(())) => {
                let mut core = self.core();
                if core.phase == Phase::Connecting {
                    core.phase = Phase::Up;
                    let step = core.machine.signal(CallSignal::Answered);
                    self.apply_step(&mut core, step);
                    *reconnect = None;
                }
            }
            Inbound::MediaUp(Err(e)) => {
                self.finish(
                    reason("failed", Some(&format!("media did not connect: {e}"))),
                    Some(AvSignal::EndAv {
                        reason: END_NET_ERROR.to_owned(),
                    }),
                )
                .await;
            }
            Inbound::Stop(why) => {
                self.finish(
                    reason("local-hangup", Some(why)),
                    Some(AvSignal::EndAv {
                        reason: END_COMMON.to_owned(),
                    }),
                )
                .await;
            }
        }
    }

    async fn on_media(&self, ev: MediaEvent, reconnect: &mut Option<Instant>) {
        let phase = self.core().phase;
        match ev {
            MediaEvent::Disconnected if phase == Phase::Up => {
                // §4.3: media may come back within the reconnect window.
                reconnect.get_or_insert(Instant::now() + self.inner.cfg.calls.reconnect_window());
            }
            MediaEvent::Connected => *reconnect = None,
            MediaEvent::Failed(why) => {
                self.finish(
                    reason("failed", Some(&why)),
                    Some(AvSignal::EndAv {
                        reason: END_ERROR.to_owned(),
                    }),
                )
                .await;
            }
            MediaEvent::RemoteHold(on) => {
                let mut core = self.core();
                core.sdp_hold = on;
                self.update_remote_hold(&mut core);
            }
            _ => {}
        }
    }
}

/// The driver: signalling, media events and timers of one call, until it ends.
async fn drive(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Inbound>,
    mut media: tokio::sync::broadcast::Receiver<MediaEvent>,
) {
    let mut answer_by = Some(Instant::now() + shared.inner.cfg.calls.answer_timeout());
    let mut reconnect: Option<Instant> = None;
    loop {
        if shared.core().phase == Phase::Ended {
            return;
        }
        if shared.core().phase != Phase::Offered {
            answer_by = None;
        }
        let next = match (answer_by, reconnect) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        };
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => shared.on_inbound(m, &mut reconnect).await,
                None => return,
            },
            ev = media.recv() => match ev {
                Ok(ev) => shared.on_media(ev, &mut reconnect).await,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    shared.finish(reason("failed", Some("media closed")), Some(AvSignal::EndAv {
                        reason: END_ERROR.to_owned(),
                    })).await;
                }
            },
            () = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                if answer_by.is_some_and(|t| t <= Instant::now()) {
                    shared.finish(reason("no-answer", None), Some(AvSignal::EndAv {
                        reason: "NoAnswer".to_owned(),
                    })).await;
                } else {
                    shared.finish(reason("failed", Some("media lost")), Some(AvSignal::EndAv {
                        reason: END_NET_ERROR.to_owned(),
                    })).await;
                }
            }
        }
    }
}

/// The `mid` of the first m-line of an SDP (`a=mid:`), for trickled candidates.
fn first_mid(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=mid:"))
        .unwrap_or("0")
        .trim()
        .to_owned()
}

/// The chat a call rides on: `context["engagement"]` when given, else the newest chat with a
/// connected agent.
fn pick_chat(inner: &Inner, request: &CallRequest) -> Result<EngagementId> {
    let st = inner.lock();
    let chats = st.engine.chats();
    if let Some(want) = request.context.get("engagement") {
        let c = chats
            .iter()
            .find(|c| c.id.as_str() == want)
            .ok_or_else(|| Error::invalid(V, "context.engagement", format!("no chat {want}")))?;
        if c.state != EngagementState::Active {
            return Err(Error::invalid(
                V,
                "context.engagement",
                format!(
                    "chat {want} is {:?}: a call needs a chat with an agent connected",
                    c.state
                ),
            ));
        }
        return Ok(c.id.clone());
    }
    chats
        .iter()
        .rev()
        .find(|c| c.state == EngagementState::Active)
        .map(|c| c.id.clone())
        .ok_or_else(|| {
            Error::invalid(
                V,
                "engagement",
                "no active chat: a Tetherfi audio/video call rides on a chat with an agent \
                 connected (start_chat, wait for the agent, then start_call)",
            )
        })
}

/// The ICE servers of a call: the configured ones, then those `configs` pushed.
fn ice_servers(inner: &Inner, configs: &AvConfigs) -> Vec<IceServer> {
    let configured = inner.cfg.calls.ice_servers.iter().cloned();
    let pushed = configs.servers().into_iter().map(|s| IceServer {
        urls: s.urls,
        username: s.username,
        credential: s.credential,
    });
    configured.chain(pushed).collect()
}

/// The local address of the interface that routes to the Tetherfi server (the media's host
/// candidate when `calls.bind` is left at `0.0.0.0`). A UDP `connect` sends nothing.
async fn route_address(inner: &Inner) -> Result<std::net::IpAddr> {
    let base = inner.cfg.base()?;
    let host = base.host_str().unwrap_or("localhost").to_owned();
    let port = base.port_or_known_default().unwrap_or(443);
    let fail = |e: std::io::Error| {
        Error::invalid(
            V,
            "tetherfi.calls.bind",
            format!(
                "0.0.0.0 means the interface that routes to {host}, and none does ({e}); set an address"
            ),
        )
    };
    cc_rtc::media::route_address(&host, port)
        .await
        .map_err(fail)
}

/// `Session::start_call`: see the [module docs](self).
pub(crate) async fn start(
    inner: Arc<Inner>,
    guard: Arc<Guard>,
    request: CallRequest,
) -> Result<TetherfiCall> {
    let engagement = pick_chat(&inner, &request)?;
    let video = request.video;
    let (tx, mut rx) = mpsc::unbounded_channel();
    inner.calls.register(&engagement, tx.clone())?;
    let result = async {
        // StartAvCall: say what the customer has, ask for the call.
        let avtype = if video { AVMODE_VIDEO } else { AVMODE_AUDIO };
        let _ = send_signal(
            &inner,
            &engagement,
            &AvSignal::DevInfo {
                info: json!({
                    "lib": inner.cfg.lib,
                    "os": std::env::consts::OS,
                    "audio": request.devices.audio_in.is_some(),
                    "video": request.devices.video_in.is_some(),
                }),
            },
        )
        .await;
        send_signal(
            &inner,
            &engagement,
            &AvSignal::AvtStatus {
                param: avtype.to_owned(),
            },
        )
        .await?;
        // SetAvConfigs: the server's media configuration says whether and how. Configs pushed
        // earlier (at agent connect) serve when no fresh ones come.
        let kept = inner.calls.kept_configs(&engagement);
        let wait = match kept {
            Some(_) => FRESH_CONFIGS_GRACE.min(inner.cfg.request_timeout()),
            None => inner.cfg.request_timeout(),
        };
        let fresh = tokio::time::timeout(wait, async {
            loop {
                match rx.recv().await {
                    Some(Inbound::Signal(AvSignal::Configs(c))) => return Ok(c),
                    Some(Inbound::Signal(
                        AvSignal::EndAv { reason: r }
                        | AvSignal::Bye { reason: Some(r) }
                        | AvSignal::OnEnd { reason: Some(r) },
                    )) => {
                        return Err(Error::Rejected {
                            vendor: V,
                            code: r,
                            message: "the server ended the call before its configs".into(),
                            retry_after: None,
                        });
                    }
                    Some(Inbound::ChatEnded { .. }) | None => {
                        return Err(Error::closed(V, "engagement"));
                    }
                    Some(Inbound::Stop(_)) => return Err(Error::closed(V, "session")),
                    Some(_) => {}
                }
            }
        })
        .await;
        let configs = match (fresh, kept) {
            (Ok(r), _) => r?,
            (Err(_), Some(c)) => c,
            (Err(_), None) => {
                return Err(Error::Timeout {
                    vendor: V,
                    operation: "audio/video configs",
                    after: wait,
                });
            }
        };
        if !configs.allows(video) {
            let _ = send_signal(
                &inner,
                &engagement,
                &AvSignal::AvtStatus {
                    param: AVMODE_OFF.to_owned(),
                },
            )
            .await;
            return Err(Error::Rejected {
                vendor: V,
                code: format!("avmode={}", configs.avmode),
                message: if configs.avmode == AVMODE_OFF {
                    "the service takes no audio/video calls on this chat".into()
                } else {
                    "the service takes audio calls only on this chat".into()
                },
                retry_after: None,
            });
        }
        let bind = match inner.cfg.calls.bind {
            b if b.is_unspecified() => route_address(&inner).await?,
            b => b,
        };
        let media = MediaSession::start(
            V,
            MediaConfig {
                ice_servers: ice_servers(&inner, &configs),
                bind,
                video,
                opus: inner.cfg.calls.opus,
                // `media_conn_mode: avproxy`: media only through the AV proxy (TURN).
                ice_transport_policy: if configs.media_conn_mode == "avproxy" {
                    IceTransportPolicy::Relay
                } else {
                    IceTransportPolicy::All
                },
            },
            request.devices.clone(),
        )
        .await?;
        Ok(media)
    }
    .await;
    let media = match result {
        Ok(m) => m,
        Err(e) => {
            inner.calls.unregister(&engagement, &tx);
            return Err(e);
        }
    };
    let media_events = media.events();
    let id: Arc<str> = Arc::from(uuid::Uuid::new_v4().to_string());
    let shared = Arc::new(Shared {
        id,
        engagement: engagement.clone(),
        inner: inner.clone(),
        bus: EventBus::default(),
        media: media.clone(),
        core: Mutex::new(Core {
            machine: CallMachine::new(V, video),
            reported: CallState::Idle,
            phase: Phase::Offered,
            pending_answer: None,
            control_hold: false,
            sdp_hold: false,
        }),
        tx: tx.clone(),
        send_lock: tokio::sync::Mutex::new(()),
    });
    {
        let mut core = shared.core();
        let step = core.machine.command(CallCommand::Dial)?;
        shared.apply_step(&mut core, step);
    }
    let sent = async {
        let offer = media.create_offer()?;
        let mid = first_mid(&offer);
        shared.send(&AvSignal::Offer { sdp: offer }).await?;
        for c in media.local_candidates() {
            shared
                .send(&AvSignal::Candidate {
                    mid: mid.clone(),
                    mline_index: 0,
                    candidate: c.trim_start_matches("a=").to_owned(),
                })
                .await?;
        }
        Ok::<(), Error>(())
    }
    .await;
    if let Err(e) = sent {
        shared
            .finish(
                reason("failed", Some(&e.to_string())),
                Some(AvSignal::EndAv {
                    reason: END_ERROR.to_owned(),
                }),
            )
            .await;
        return Err(e);
    }
    tokio::spawn(drive(shared.clone(), rx, media_events));
    Ok(TetherfiCall {
        shared,
        _guard: guard,
    })
}

/// One Tetherfi audio/video call on a chat. Cheap to clone. Dropping every handle does not
/// end the call (hang up first); the session's shutdown does.
#[derive(Clone)]
pub struct TetherfiCall {
    shared: Arc<Shared>,
    _guard: Arc<Guard>,
}

impl fmt::Debug for TetherfiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TetherfiCall")
            .field("id", &self.shared.id)
            .field("engagement", &self.shared.engagement)
            .finish_non_exhaustive()
    }
}

impl TetherfiCall {
    /// The chat the call rides on.
    pub fn engagement(&self) -> &EngagementId {
        &self.shared.engagement
    }

    fn command(&self, c: CallCommand) -> Result<cc_rtc::Step> {
        let sh = &self.shared;
        let mut core = sh.core();
        let step = core.machine.command(c)?;
        Ok(step)
    }
}

#[cc_core::async_trait]
impl CallSession for TetherfiCall {
    fn vendor(&self) -> Vendor {
        V
    }

    fn id(&self) -> Arc<str> {
        self.shared.id.clone()
    }

    fn state(&self) -> CallState {
        self.shared.core().reported.clone()
    }

    fn events(&self) -> EventStream {
        self.shared.bus.subscribe()
    }

    /// `Pause(audio, _)`: stops sending audio packets (no silence is sent).
    async fn mute_audio(&self, on: bool) -> Result<()> {
        if !self.command(CallCommand::MuteAudio(on))?.actions.is_empty() {
            self.shared.media.set_audio_muted(on);
        }
        Ok(())
    }

    /// `Pause(_, video)`: stops sending video.
    async fn mute_video(&self, on: bool) -> Result<()> {
        if !self.command(CallCommand::MuteVideo(on))?.actions.is_empty() {
            self.shared.media.set_video_muted(on);
        }
        Ok(())
    }

    /// A re-offer `a=sendonly` (hold) or `a=sendrecv` (resume) in an `offer` app message; the
    /// far end's `answer` completes it.
    async fn hold(&self, on: bool) -> Result<()> {
        let sh = &self.shared;
        let (rx, sdp) = {
            let mut core = sh.core();
            if core.phase != Phase::Up {
                drop(core);
                return self.command(CallCommand::Hold(on)).map(drop);
            }
            if core.pending_answer.is_some() {
                return Err(Error::invalid(
                    V,
                    "call",
                    "a hold or resume is already in progress",
                ));
            }
            let step = core.machine.command(CallCommand::Hold(on))?;
            if step.actions.is_empty() {
                return Ok(());
            }
            let sdp = match sh.media.hold_offer(on) {
                Ok(s) => s,
                Err(e) => {
                    let _ = core.machine.command(CallCommand::Hold(!on));
                    return Err(e);
                }
            };
            let (tx, rx) = oneshot::channel();
            core.pending_answer = Some(tx);
            (rx, sdp)
        };
        let revert = |e: Error| {
            let mut core = sh.core();
            core.pending_answer = None;
            if core.phase != Phase::Ended {
                // Back to what was negotiated before the re-offer.
                sh.media.rollback_offer();
                let _ = core.machine.command(CallCommand::Hold(!on));
            }
            e
        };
        sh.send(&AvSignal::Offer { sdp }).await.map_err(revert)?;
        let wait = sh.inner.cfg.request_timeout();
        let answer = match tokio::time::timeout(wait, rx).await {
            Ok(Ok(a)) => a,
            Ok(Err(_)) if sh.core().phase == Phase::Ended => {
                return Err(Error::closed(V, "call"));
            }
            // The far end's own offer crossed ours (it wins, ours was rolled back).
            Ok(Err(_)) => {
                return Err(revert(Error::invalid(
                    V,
                    "call",
                    "the far end renegotiated at the same time; try again",
                )));
            }
            Err(_) => {
                return Err(revert(Error::Timeout {
                    vendor: V,
                    operation: "hold answer",
                    after: wait,
                }));
            }
        };
        sh.media.apply_answer(&answer).map_err(revert)?;
        let mut core = sh.core();
        let state = core.machine.state().clone();
        sh.publish(&mut core, state);
        Ok(())
    }

    /// RFC 4733 telephone-events in the media.
    async fn dtmf(&self, digits: &str) -> Result<()> {
        let step = self.command(CallCommand::Dtmf(digits.to_owned()))?;
        if step.actions.is_empty() {
            return Ok(());
        }
        self.shared.media.send_dtmf(digits)
    }

    /// `EndAvCall`: `endav {reason: COMMON}`; the chat goes on.
    async fn hangup(&self) -> Result<()> {
        let step = self.command(CallCommand::Hangup)?;
        let tell = (!step.actions.is_empty()).then(|| AvSignal::EndAv {
            reason: END_COMMON.to_owned(),
        });
        self.shared.finish(reason("local-hangup", None), tell).await;
        Ok(())
    }

    fn stats(&self) -> Result<CallStats> {
        Ok(self.shared.media.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_words() {
        assert_eq!(end_word(false, EndKind::of("AgentBusy")), "busy");
        assert_eq!(end_word(false, EndKind::of("NO_ANSWER")), "no-answer");
        assert_eq!(end_word(false, EndKind::of("COMMON")), "rejected");
        assert_eq!(end_word(false, EndKind::of("Declined")), "rejected");
        assert_eq!(end_word(false, EndKind::of("NET_ERROR")), "failed");
        assert_eq!(end_word(true, EndKind::of("AgentBusy")), "remote-hangup");
        assert_eq!(end_word(true, EndKind::of("ERROR")), "failed");
        assert_eq!(&*reason("busy", Some("AgentBusy")), "busy: AgentBusy");
        assert_eq!(&*reason("local-hangup", Some("  ")), "local-hangup");
        assert_eq!(&*reason("failed", None), "failed");
    }

    #[test]
    fn mid_of_the_first_m_line() {
        assert_eq!(
            first_mid("v=0\r\nm=audio 9 x\r\na=mid:zUg\r\nm=video\r\na=mid:1\r\n"),
            "zUg"
        );
        assert_eq!(first_mid("v=0\r\n"), "0");
    }
}
