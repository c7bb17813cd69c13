//! Calls: `Session::start_call` on the widget's video and phone channels, sans-IO.
//!
//! One [`CallTrack`] per call, keyed by its TVox session id, drives a `cc_rtc::CallMachine`.
//! The engine puts the signalling on the wire (`call.create` / `video.create`,
//! `webrtc.offer`, `webrtc.candidate`, `webrtc.answer`, `webrtc.mediaState`, `call.close` /
//! `video.close`) and asks the driver for the media work as [`Output::CallMedia`]
//! ([`MediaOp`]); the driver reports back what the media did
//! ([`Engine::on_media_connected`], [`Engine::on_media_failed`], [`Engine::on_local_offer`],
//! [`Engine::on_local_answer`]).
//!
//! The neutral state: `Dialing` from the create on; `Ringing` once the session's step says
//! an agent is being alerted or the call waits for one (`CONNECTING`, `QUEUE`, `PLAY`) or
//! TVox calls the customer (`NEW_INBOUND`); `Connected` only when TVox says `CONNECTED`
//! (or `CONFERENCED`) **and** the media is up; `OnHold` for the agent's `HOLD` or the
//! customer's own hold; `Ended` on `IDLE`, a closed session, a media failure or a hang-up,
//! with the neutral reason word first ([`end_reason`]).

use std::sync::Arc;
use std::time::Instant;

use cc_core::{Error, Event};
use cc_rtc::{CallAction, CallCommand, CallMachine, CallSignal};
use serde_json::{Value, json};

use super::{Engine, Now, Output, Pending, V};
use crate::error;
use crate::sdp;
use crate::wire::codec::{
    self, IceCandidate, MediaCreate, MediaCreated, MediaState, SessionDescription, SignalPush,
};
use crate::wire::{
    Call, CallState, ChannelSession, MultiChannelState, MultiChannelStepType, MultiChannelType,
    RpcError, TrickleIcePolicy,
};

/// What a new call needs.
#[derive(Clone, Debug)]
pub struct StartCall {
    /// Video as well as audio (`video.create`), or audio only (`call.create`).
    pub video: bool,
    /// The create params: service, customer name and e-mail.
    pub create: MediaCreate,
    /// The media's offer, with every local candidate.
    pub offer: String,
}

/// Media work the driver does for a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaOp {
    /// Apply TVox's answer to the last offer.
    ApplyAnswer(String),
    /// TVox offers (its re-offer): answer it, then [`Engine::on_local_answer`].
    AcceptOffer(String),
    /// A trickled candidate of TVox's media.
    AddCandidate(String),
    /// Stop or resume sending audio.
    SetAudioMuted(bool),
    /// Stop or resume sending video.
    SetVideoMuted(bool),
    /// Make a hold (`true`) or resume (`false`) re-offer, then [`Engine::on_local_offer`].
    HoldOffer(bool),
    /// Send DTMF digits in the media (RFC 4733).
    Dtmf(String),
    /// The call is over: close the media.
    Close,
}

/// One call of this session.
#[derive(Debug)]
pub(crate) struct CallTrack {
    pub(crate) id: Arc<str>,
    pub(crate) channel: MultiChannelType,
    machine: CallMachine,
    /// The last `CallState` TVox sent.
    wire: Option<CallState>,
    /// TVox says the call is answered (`CONNECTED`, `CONFERENCED`, `HOLD`).
    answered: bool,
    /// ICE and DTLS are up.
    media_up: bool,
    /// When the media must be up by (set once TVox says the call is answered).
    media_deadline: Option<Instant>,
    /// `hold()` waiting for TVox's answer to the re-offer.
    hold: Option<u64>,
    /// The customer hung up.
    local_hangup: bool,
}

impl CallTrack {
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.media_up {
            None
        } else {
            self.media_deadline
        }
    }

    fn held_by_agent(&self) -> bool {
        self.wire == Some(CallState::Hold)
    }
}

/// The close request of a call.
pub(crate) fn close_call(call: &str, channel: &MultiChannelType) -> Call {
    let session_id = call.to_owned();
    if *channel == MultiChannelType::Video {
        Call::VideoClose { session_id }
    } else {
        Call::CallClose { session_id }
    }
}

/// The neutral reason of a call TVox ended: `busy`, `no-answer`, `rejected`, `failed` or
/// `remote-hangup`, then `: ` and TVox's own word (the PROPOSED `closeReason`, else `IDLE`).
/// Before an answer, an unknown reason is a failure; after it, a hang-up.
pub fn end_reason(answered: bool, close_reason: Option<&str>) -> String {
    let vendor = close_reason.unwrap_or("IDLE");
    let word = match vendor {
        "USER_BUSY" | "BUSY" => "busy",
        "NO_ANSWER" | "NO_USER_RESPONSE" => "no-answer",
        "CALL_REJECTED" | "REJECTED" => "rejected",
        _ if answered => "remote-hangup",
        _ => "failed",
    };
    format!("{word}: {vendor}")
}

fn channel_of(video: bool) -> MultiChannelType {
    if video {
        MultiChannelType::Video
    } else {
        MultiChannelType::PhoneCall
    }
}

impl Engine {
    fn call_emit(&mut self, id: &Arc<str>, state: Option<cc_core::CallState>) {
        let Some(state) = state else { return };
        let state = match state {
            cc_core::CallState::Ended { .. }
                if self.calls.get(&**id).is_some_and(|c| c.local_hangup) =>
            {
                cc_core::CallState::Ended {
                    reason: Arc::from("local-hangup"),
                }
            }
            s => s,
        };
        self.emit(Event::Call {
            call: id.clone(),
            state,
        });
    }

    fn media_op(&mut self, call: &Arc<str>, op: MediaOp, token: Option<u64>) {
        self.out.push_back(Output::CallMedia {
            call: call.clone(),
            op,
            token,
        });
    }

    fn signal_request(&mut self, call: Call) {
        let method = call.method();
        self.request(
            call,
            Pending::CallSignal {
                method,
                token: None,
            },
        );
    }

    /// Makes sure the channel's session monitor is subscribed (or on its way) before a
    /// create goes out, so no push of the new call is missed.
    fn ensure_call_monitor(&mut self, channel: &MultiChannelType) {
        let entry = self.media_subs.entry(channel.clone()).or_default();
        if !entry.requested && entry.subscription.is_none() {
            self.subscribe_media(channel.clone());
        }
    }

    /// Drops the channel's monitor when neither the app nor a call needs it any more.
    fn release_call_monitor(&mut self, channel: &MultiChannelType) {
        if self.calls.values().any(|c| &c.channel == channel) {
            return;
        }
        if self.media_subs.get(channel).is_some_and(|m| m.app) {
            return;
        }
        if let Some(m) = self.media_subs.remove(channel)
            && let Some(sub) = m.subscription
        {
            self.subs.remove(&sub);
            if self.is_up() {
                self.request_now(Call::Cancel { subscription: sub }, Pending::Cancel);
            }
        }
    }

    /// `callChannelSessionNew` / `videoChannelSessionNew` and the offer. Returns the token;
    /// the reply is `{"sessionId": …}` once TVox created the session (its error otherwise:
    /// 1010 `WEBRTC_DISABLED` is `Rejected`).
    pub fn start_call(&mut self, _now: Now, plan: StartCall) -> u64 {
        let token = self.token();
        let channel = channel_of(plan.video);
        self.ensure_call_monitor(&channel);
        let call = if plan.video {
            Call::VideoCreate(plan.create.clone())
        } else {
            Call::CallCreate(plan.create.clone())
        };
        self.request(
            call,
            Pending::CallCreate {
                token,
                plan: Box::new(plan),
            },
        );
        token
    }

    pub(super) fn on_call_created(
        &mut self,
        _now: Now,
        token: u64,
        plan: StartCall,
        result: Result<Value, RpcError>,
    ) {
        let channel = channel_of(plan.video);
        let method = if plan.video {
            "video.create"
        } else {
            "call.create"
        };
        let created = match result {
            Err(e) => {
                self.release_call_monitor(&channel);
                return self.reply(token, Err(error::from_rpc(method, &e)));
            }
            Ok(v) => match codec::decode_result::<MediaCreated>(method, v) {
                Ok(c) => c,
                Err(e) => {
                    self.release_call_monitor(&channel);
                    return self.reply(token, Err(error::from_decode(&e)));
                }
            },
        };
        let id: Arc<str> = Arc::from(created.session_id.as_str());
        let mut machine = CallMachine::new(V, plan.video);
        let step = machine
            .command(CallCommand::Dial)
            .expect("a new call can dial");
        self.calls.insert(
            created.session_id.clone(),
            CallTrack {
                id: id.clone(),
                channel,
                machine,
                wire: None,
                answered: false,
                media_up: false,
                media_deadline: None,
                hold: None,
                local_hangup: false,
            },
        );
        self.call_emit(&id, step.state);
        self.send_offer(&id, &plan.offer, None, true);
        self.reply(token, Ok(json!({ "sessionId": created.session_id })));
    }

    /// Puts an offer on the wire as the trickle policy says: `FullTrickle` (the default)
    /// sends the description without candidates, then each candidate, then the end (`null`);
    /// `HalfTrickle` the full description, then the end; `NotSupported` the full description
    /// only. The gather policy filters what is advertised. Re-offers go whole.
    fn send_offer(&mut self, id: &Arc<str>, offer: &str, hold: Option<u64>, initial: bool) {
        let webrtc = self.cfg.hello.webrtc.clone().unwrap_or_default();
        let offer = sdp::filter_candidates(offer, webrtc.ice_gather_policy.as_ref());
        let policy = webrtc
            .trickle_ice_policy
            .unwrap_or(TrickleIcePolicy::FullTrickle);
        let (description, candidates, end) = match (&policy, initial) {
            (TrickleIcePolicy::NotSupported, _) | (_, false) => (offer, Vec::new(), false),
            (TrickleIcePolicy::HalfTrickle, true) => (offer, Vec::new(), true),
            _ => {
                let (rest, candidates) = sdp::split_candidates(&offer);
                (rest, candidates, true)
            }
        };
        self.request(
            Call::WebrtcOffer(SessionDescription {
                session_id: id.to_string(),
                sdp: description,
            }),
            Pending::CallOffer {
                call: id.clone(),
                hold,
            },
        );
        for c in candidates {
            self.signal_request(Call::WebrtcCandidate(IceCandidate {
                session_id: id.to_string(),
                candidate: Some(c.candidate),
                sdp_mid: c.mid,
                sdp_m_line_index: Some(c.m_line_index),
            }));
        }
        if end {
            self.signal_request(Call::WebrtcCandidate(IceCandidate {
                session_id: id.to_string(),
                candidate: None,
                sdp_mid: None,
                sdp_m_line_index: None,
            }));
        }
    }

    pub(super) fn on_offer_answered(
        &mut self,
        now: Now,
        call: &Arc<str>,
        hold: Option<u64>,
        result: Result<Value, RpcError>,
    ) {
        let Err(e) = result else { return };
        let err = error::from_rpc("webrtc.offer", &e);
        match hold {
            Some(token) => {
                if let Some(c) = self.calls.get_mut(&**call) {
                    c.hold = None;
                }
                self.reply(token, Err(err));
            }
            None => {
                // TVox refused the call's offer: the call cannot have media.
                self.emit(Event::error(err));
                self.fail_call(now, call, format!("failed: {}", error::code_name(e.code)));
            }
        }
    }

    /// A push of the call monitor about one of this session's calls.
    pub(super) fn apply_call_session(
        &mut self,
        now: Now,
        channel: &MultiChannelType,
        session: ChannelSession,
    ) {
        let Some(track) = self.calls.get_mut(&session.id) else {
            return;
        };
        let id = track.id.clone();
        let mut states = Vec::new();
        let closed = session.session_state == Some(MultiChannelState::Closed)
            || session.state == Some(CallState::Idle);
        if closed {
            let reason = end_reason(track.answered, session.close_reason.as_deref());
            states.push(
                track
                    .machine
                    .signal(CallSignal::RemoteHangup {
                        reason: Arc::from(reason),
                    })
                    .state,
            );
        } else {
            let ringing_step = session
                .step
                .as_ref()
                .and_then(|s| s.step_type.as_ref())
                .is_some_and(|t| {
                    matches!(
                        t,
                        MultiChannelStepType::Connecting
                            | MultiChannelStepType::Queue
                            | MultiChannelStepType::Play
                    )
                });
            match &session.state {
                Some(CallState::NewOutbound) if ringing_step => {
                    states.push(track.machine.signal(CallSignal::Ringing).state);
                }
                Some(CallState::NewInbound) => {
                    states.push(track.machine.signal(CallSignal::Ringing).state);
                }
                Some(CallState::Connected | CallState::Conferenced | CallState::Hold)
                    if !track.answered =>
                {
                    track.answered = true;
                    track.media_deadline = Some(now.at + self.cfg.media_timeout);
                }
                _ => {}
            }
            if let Some(s) = &session.state {
                track.wire = Some(s.clone());
            }
            if track.answered && track.media_up {
                states.push(track.machine.signal(CallSignal::Answered).state);
                let held = track.held_by_agent();
                states.push(track.machine.signal(CallSignal::RemoteHold(held)).state);
            }
        }
        let neutral = track.machine.state().clone();
        for s in states {
            self.call_emit(&id, s);
        }
        self.media_update(channel, session, neutral);
        if closed {
            self.finish_call(&id);
        }
    }

    /// The call's session for the monitor extension (`tvox.media_session`, the stream).
    fn media_update(
        &mut self,
        channel: &MultiChannelType,
        session: ChannelSession,
        state: cc_core::CallState,
    ) {
        let mut payload = serde_json::to_value(&session).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut payload {
            m.insert("channel".into(), Value::String(channel.to_string()));
        }
        self.emit(Event::Vendor {
            vendor: V,
            name: Arc::from("tvox.media_session"),
            payload: Arc::new(payload),
        });
        self.out.push_back(Output::Media {
            channel: channel.clone(),
            session,
            state,
        });
    }

    /// Offer, answer or candidate from TVox.
    pub(super) fn on_call_signal(&mut self, _now: Now, signal: SignalPush) {
        let Some(track) = self.calls.get_mut(signal.session_id()) else {
            tracing::debug!("tvox: signalling for a session that is not one of our calls");
            return;
        };
        let id = track.id.clone();
        match signal {
            SignalPush::Answer(d) => {
                let hold = track.hold.take();
                self.media_op(&id, MediaOp::ApplyAnswer(d.sdp), hold);
            }
            SignalPush::Offer(d) => self.media_op(&id, MediaOp::AcceptOffer(d.sdp), None),
            SignalPush::Candidate(c) => match c.candidate {
                Some(line) if !line.trim().is_empty() => {
                    let line = line.trim_start_matches("a=").to_owned();
                    self.media_op(&id, MediaOp::AddCandidate(line), None);
                }
                // The end of TVox's candidates: nothing to do, the media has them all.
                _ => {}
            },
        }
    }

    /// The media of `call` is up (ICE and DTLS).
    pub fn on_media_connected(&mut self, _now: Now, call: &str) {
        let Some(track) = self.calls.get_mut(call) else {
            return;
        };
        track.media_up = true;
        let id = track.id.clone();
        let mut states = Vec::new();
        if track.answered {
            states.push(track.machine.signal(CallSignal::Answered).state);
            let held = track.held_by_agent();
            states.push(track.machine.signal(CallSignal::RemoteHold(held)).state);
        }
        for s in states {
            self.call_emit(&id, s);
        }
    }

    /// The media of `call` failed: the call ends (`failed: media: …`) and TVox is told.
    pub fn on_media_failed(&mut self, now: Now, call: &str, reason: &str) {
        if let Some(id) = self.calls.get(call).map(|c| c.id.clone()) {
            self.fail_call(now, &id, format!("failed: media: {reason}"));
        }
    }

    /// Ends a call from this side for a failure: state, media, `call.close` to TVox.
    fn fail_call(&mut self, _now: Now, call: &Arc<str>, reason: String) {
        let Some(track) = self.calls.get_mut(&**call) else {
            return;
        };
        let channel = track.channel.clone();
        let state = track
            .machine
            .signal(CallSignal::Failed {
                reason: Arc::from(reason),
            })
            .state;
        self.call_emit(call, state);
        self.request(
            close_call(call, &channel),
            Pending::CallClose {
                call: call.clone(),
                channel,
                token: None,
            },
        );
        self.finish_call(call);
    }

    /// Forgets an ended call: its media closes, waiters are answered, the monitor goes
    /// when nothing needs it.
    fn finish_call(&mut self, call: &Arc<str>) {
        let Some(track) = self.calls.remove(&**call) else {
            return;
        };
        self.ended_calls.insert(call.to_string());
        if let Some(t) = track.hold {
            self.reply(t, Err(Error::closed(V, "call")));
        }
        self.media_op(call, MediaOp::Close, None);
        self.release_call_monitor(&track.channel);
    }

    /// Media deadlines.
    pub(super) fn call_timers(&mut self, now: Now) {
        let late: Vec<Arc<str>> = self
            .calls
            .values()
            .filter(|c| c.deadline().is_some_and(|t| t <= now.at))
            .map(|c| c.id.clone())
            .collect();
        for id in late {
            let after = self.cfg.media_timeout;
            self.fail_call(
                now,
                &id,
                format!(
                    "failed: media did not connect within {} ms",
                    after.as_millis()
                ),
            );
        }
    }

    /// An app command for a call; returns the token its answer comes with.
    pub fn call_command(&mut self, _now: Now, call: &str, command: CallCommand) -> u64 {
        let token = self.token();
        let Some(track) = self.calls.get_mut(call) else {
            self.reply(token, Err(Error::closed(V, "call")));
            return token;
        };
        let id = track.id.clone();
        let channel = track.channel.clone();
        if let CallCommand::Hold(_) = command
            && track.hold.is_some()
        {
            self.reply(
                token,
                Err(Error::invalid(V, "call", "a hold or resume is in progress")),
            );
            return token;
        }
        let hangup = command == CallCommand::Hangup;
        if hangup {
            track.local_hangup = true;
        }
        let step = match track.machine.command(command) {
            Ok(s) => s,
            Err(e) => {
                track.local_hangup = false;
                self.reply(token, Err(e));
                return token;
            }
        };
        let (audio, video) = (track.machine.audio_muted(), track.machine.video_muted());
        self.call_emit(&id, step.state);
        let mut answered_later = false;
        for action in step.actions {
            match action {
                CallAction::SetAudioMuted(on) | CallAction::SetVideoMuted(on) => {
                    let op = if matches!(action, CallAction::SetAudioMuted(_)) {
                        MediaOp::SetAudioMuted(on)
                    } else {
                        MediaOp::SetVideoMuted(on)
                    };
                    // The media first; the answer once the agent's UI knows (at once while
                    // disconnected: the state goes after the reconnect).
                    self.media_op(&id, op, None);
                    let up = self.is_up();
                    self.request(
                        Call::WebrtcMediaState(MediaState {
                            session_id: id.to_string(),
                            audio_muted: audio,
                            video_muted: video,
                        }),
                        Pending::CallSignal {
                            method: "webrtc.mediaState",
                            token: up.then_some(token),
                        },
                    );
                    answered_later = up;
                }
                CallAction::UpdateHold(on) => {
                    if let Some(c) = self.calls.get_mut(call) {
                        c.hold = Some(token);
                    }
                    self.media_op(&id, MediaOp::HoldOffer(on), Some(token));
                    answered_later = true;
                }
                CallAction::SendDtmf(digits) => {
                    self.media_op(&id, MediaOp::Dtmf(digits), Some(token));
                    answered_later = true;
                }
                CallAction::Cancel | CallAction::Bye => {
                    let up = self.is_up();
                    self.request(
                        close_call(&id, &channel),
                        Pending::CallClose {
                            call: id.clone(),
                            channel: channel.clone(),
                            // Disconnected: the close goes after the reconnect, the
                            // customer does not wait for it.
                            token: up.then_some(token),
                        },
                    );
                    answered_later = up;
                }
                CallAction::Offer { .. } => {}
            }
        }
        if hangup {
            self.finish_call(&id);
        }
        if !answered_later {
            self.reply(token, Ok(Value::Bool(true)));
        }
        token
    }

    /// The driver made the re-offer `HoldOffer` asked for (or failed to).
    pub fn on_local_offer(
        &mut self,
        _now: Now,
        call: &str,
        offer: Result<String, Error>,
        token: Option<u64>,
    ) {
        let Some(track) = self.calls.get_mut(call) else {
            if let Some(t) = token {
                self.reply(t, Err(Error::closed(V, "call")));
            }
            return;
        };
        let id = track.id.clone();
        match offer {
            Ok(sdp) => self.send_offer(&id, &sdp, token, false),
            Err(e) => {
                track.hold = None;
                if let Some(t) = token {
                    self.reply(t, Err(e));
                }
            }
        }
    }

    /// The driver answered TVox's re-offer (or failed to).
    pub fn on_local_answer(&mut self, _now: Now, call: &str, answer: Result<String, Error>) {
        let Some(track) = self.calls.get(call) else {
            return;
        };
        let id = track.id.clone();
        match answer {
            Ok(sdp) => self.signal_request(Call::WebrtcAnswer(SessionDescription {
                session_id: id.to_string(),
                sdp,
            })),
            Err(e) => self.emit(Event::error(e)),
        }
    }

    pub(super) fn on_call_closed(
        &mut self,
        call: &Arc<str>,
        token: Option<u64>,
        result: Result<Value, RpcError>,
    ) {
        let Some(token) = token else {
            if let Err(e) = result
                && e.code != error::SESSION_NOT_FOUND
                && e.code != error::SESSION_CLOSED
            {
                tracing::debug!(call = %call, code = e.code, "tvox: close refused");
            }
            return;
        };
        match result {
            Ok(_) => self.reply(token, Ok(Value::Bool(true))),
            // Closed already (TVox ended it first): the hang-up is done.
            Err(e) if e.code == error::SESSION_NOT_FOUND || e.code == error::SESSION_CLOSED => {
                self.reply(token, Ok(Value::Bool(true)));
            }
            Err(e) => self.reply(token, Err(error::from_rpc("call.close", &e))),
        }
    }

    /// Whether a `call.close` / `video.close` waits for TVox's answer.
    pub fn closing_calls(&self) -> bool {
        self.pending
            .values()
            .any(|p| matches!(p, Pending::CallClose { .. }))
    }

    /// The neutral state of one of this session's calls, while it is tracked.
    pub fn call_state(&self, call: &str) -> Option<cc_core::CallState> {
        self.calls.get(call).map(|c| c.machine.state().clone())
    }
}
