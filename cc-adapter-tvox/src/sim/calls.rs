//! The simulator's calls: TVox's side of `call.create` / `video.create` and the `webrtc.*`
//! signalling, with a far end that has real media.
//!
//! A call is created `NEW_OUTBOUND` (pushed with no step). When the client's first
//! `webrtc.offer` arrives, the far end plays the script of
//! [`cc_testkit::SimControl::set_call_answer`] (PROPOSED vendor signals, see the crate docs):
//!
//! | answer | what the client sees |
//! |---|---|
//! | `Answer` | `NEW_OUTBOUND` with step `CONNECTING` (the agent's phone rings); after `SimOptions::answer_after` (or [`cc_testkit::SimControl::set_ring_time`]) the far end's answer (`{kind:"answer"}`), its candidates (`{kind:"candidate"}`, then `candidate: null`) unless the widget's trickle policy is `NotSupported`, then `CONNECTED` with step `CONNECTED` |
//! | `Busy` | at once `IDLE`, session `CLOSED`, `closeReason: "USER_BUSY"` |
//! | `NoAnswer` | step `CONNECTING`, then after `SimOptions::no_answer_after` `IDLE` with `closeReason: "NO_ANSWER"` |
//! | `Refuse` | the create itself fails with 1010 `WEBRTC_DISABLED` |
//!
//! The far end is a `cc_rtc::media::MediaSession` on 127.0.0.1 playing a 440 Hz tone into
//! a recording sink (plus a test pattern and a counting sink for video). A later client
//! offer is a re-offer: `a=sendonly`/`a=inactive` marks the call held by the customer.
//! `webrtc.mediaState` is recorded for the agent's UI ([`super::Simulator::call_media_state`]).

use std::sync::Arc;

use cc_core::{CallStats, MediaDevices};
use cc_rtc::media::{MediaConfig, MediaSession};
use cc_rtc::{CountingVideoSink, RecordingSink, TestPatternVideo, ToneSource};
use cc_testkit::{CallAnswer, FarEndCall};
use serde_json::Value;

use super::{Inner, MediaRec, Reply, State, Target, V, new_sub, ok, rpc_error};
use crate::error as codes;
use crate::sdp;
use crate::wire::codec::{IceCandidate, MediaState, SessionDescription, SignalPush, Subscribed};
use crate::wire::{
    CallState, ChannelSession, MultiChannelState, MultiChannelStep, MultiChannelStepType,
    MultiChannelType, RpcError, RpcId, TrickleIcePolicy, time,
};

/// The far end of one call.
#[derive(Debug, Default)]
pub(crate) struct FarEnd {
    /// The client's latest offer.
    offer: Option<String>,
    /// The media peer, once it answered.
    media: Option<MediaSession>,
    /// Client candidates that came before the media peer.
    candidates: Vec<String>,
    answered: bool,
    held: bool,
    ended: bool,
    video: bool,
    /// The media's counts when the call ended (the peer is closed then).
    final_stats: Option<CallStats>,
    /// The last `webrtc.mediaState`: audio muted, video muted.
    muted: Option<(bool, bool)>,
}

impl FarEnd {
    /// What the test harness sees.
    pub(crate) fn view(&self) -> FarEndCall {
        let stats = self
            .final_stats
            .clone()
            .or_else(|| self.media.as_ref().map(MediaSession::stats))
            .unwrap_or_default();
        FarEndCall {
            answered: self.answered,
            held: self.held,
            ended: self.ended,
            video: self.video,
            stats,
        }
    }

    /// The far end hangs up or is hung up on: counts kept, media closed.
    fn end(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        if let Some(m) = self.media.take() {
            self.final_stats = Some(m.stats());
            tokio::spawn(async move { m.close().await });
        }
    }
}

impl MediaRec {
    /// The session as pushed: `closeReason` with `IDLE`.
    pub(super) fn session(
        &self,
        wall: cc_core::Timestamp,
        step: Option<MultiChannelStepType>,
    ) -> ChannelSession {
        let closed = self.state == CallState::Idle;
        ChannelSession {
            id: self.id.clone(),
            service: Some(self.service.clone()),
            session_state: Some(if closed {
                MultiChannelState::Closed
            } else {
                MultiChannelState::Active
            }),
            step: step.map(|t| MultiChannelStep {
                step_type: Some(t),
                ..MultiChannelStep::default()
            }),
            start: Some(self.start.clone()),
            time: Some(time::format(wall)),
            state: Some(self.state.clone()),
            close_reason: if closed {
                self.close_reason.clone()
            } else {
                None
            },
        }
    }
}

fn target_of(channel: &MultiChannelType) -> Target {
    if *channel == MultiChannelType::Video {
        Target::Video
    } else {
        Target::Call
    }
}

/// Pushes `data` on the call monitors of the widget that owns the session.
pub(super) fn push_call(st: &mut State, session_id: &str, data: &Value) {
    let Some(m) = st.media.iter().find(|m| m.id == session_id) else {
        return;
    };
    let target = target_of(&m.channel);
    let owner = m.owner.clone();
    let mut out = Vec::new();
    for (i, s) in st.socks.iter().enumerate() {
        if owner.is_some() && s.token != owner {
            continue;
        }
        for (sub, t) in &s.subs {
            if *t == target {
                out.push((i, crate::wire::codec::encode_notify(sub, data)));
            }
        }
    }
    for (i, text) in out {
        st.send(i, text);
    }
}

fn push_signal(st: &mut State, session_id: &str, signal: &SignalPush) {
    let data = serde_json::to_value(signal).expect("serializable");
    push_call(st, session_id, &data);
}

fn find(st: &State, session_id: &str) -> Result<usize, RpcError> {
    st.media
        .iter()
        .position(|m| m.id == session_id)
        .ok_or_else(|| rpc_error(codes::SESSION_NOT_FOUND, "session not found"))
}

fn find_open(st: &State, session_id: &str) -> Result<usize, RpcError> {
    let i = find(st, session_id)?;
    if st.media[i].state == CallState::Idle {
        return Err(rpc_error(codes::SESSION_CLOSED, "session closed"));
    }
    Ok(i)
}

fn internal(e: impl std::fmt::Display) -> RpcError {
    rpc_error(-32603, e.to_string())
}

/// `video.subscribe` / `call.subscribe`: the subscription, and the widget's sessions of the
/// channel with their state now (PROPOSED, for a client coming back after a reconnect).
pub(super) fn subscribe(
    st: &mut State,
    sock: usize,
    id: &RpcId,
    channel: MultiChannelType,
) -> Result<Reply, RpcError> {
    let subscription = new_sub(st, sock, target_of(&channel));
    let wall = st.wall();
    let token = st.socks[sock].token.clone();
    let sessions = st
        .media
        .iter()
        .filter(|m| m.channel == channel && token.is_some() && m.owner == token)
        .map(|m| m.session(wall, None))
        .collect();
    Ok(ok(
        st,
        sock,
        id,
        &Subscribed {
            subscription,
            sessions,
        },
    ))
}

/// `webrtc.offer`: the first one starts the far end's script, later ones are re-offers.
pub(super) fn offer(
    inner: &Arc<Inner>,
    st: &mut State,
    sock: usize,
    id: &RpcId,
    d: SessionDescription,
) -> Result<Reply, RpcError> {
    let i = find_open(st, &d.session_id)?;
    ok(st, sock, id, &true);
    let answer = st.call_answer;
    let far = st.media[i].far.get_or_insert_with(FarEnd::default);
    let first = far.offer.is_none() && far.media.is_none();
    far.offer = Some(d.sdp.clone());
    if let Some(media) = far.media.clone() {
        // A re-offer: the customer holds or resumes.
        far.held = sdp::is_hold(&d.sdp);
        let answer = media.accept_offer(&d.sdp).map_err(internal)?;
        push_signal(
            st,
            &d.session_id,
            &SignalPush::Answer(SessionDescription {
                session_id: d.session_id.clone(),
                sdp: answer,
            }),
        );
        return Ok(Reply::Sent);
    }
    if first {
        st.last_call = Some(i);
        tokio::spawn(script(inner.clone(), d.session_id, answer));
    }
    Ok(Reply::Sent)
}

/// `webrtc.answer`: the client answers the agent side's re-offer.
pub(super) fn answer(
    st: &mut State,
    sock: usize,
    id: &RpcId,
    d: SessionDescription,
) -> Result<Reply, RpcError> {
    let i = find_open(st, &d.session_id)?;
    let media = st.media[i]
        .far
        .as_ref()
        .and_then(|f| f.media.clone())
        .ok_or_else(|| rpc_error(-32602, "no offer of TVox to answer"))?;
    media.apply_answer(&d.sdp).map_err(internal)?;
    Ok(ok(st, sock, id, &true))
}

/// `webrtc.candidate`: into the far end's media, or kept until it exists.
pub(super) fn candidate(
    st: &mut State,
    sock: usize,
    id: &RpcId,
    c: IceCandidate,
) -> Result<Reply, RpcError> {
    let i = find_open(st, &c.session_id)?;
    let far = st.media[i].far.get_or_insert_with(FarEnd::default);
    if let Some(line) = c.candidate {
        match &far.media {
            Some(m) => m.add_remote_candidate(&line).map_err(internal)?,
            None => far.candidates.push(line),
        }
    }
    Ok(ok(st, sock, id, &true))
}

/// `webrtc.mediaState`: what the agent's UI shows.
pub(super) fn media_state(
    st: &mut State,
    sock: usize,
    id: &RpcId,
    m: MediaState,
) -> Result<Reply, RpcError> {
    let i = find_open(st, &m.session_id)?;
    st.media[i].far.get_or_insert_with(FarEnd::default).muted =
        Some((m.audio_muted, m.video_muted));
    Ok(ok(st, sock, id, &true))
}

/// `call.close` / `video.close`: the customer hangs up.
pub(super) fn close(
    st: &mut State,
    sock: usize,
    id: &RpcId,
    session_id: &str,
) -> Result<Reply, RpcError> {
    let i = find(st, session_id)?;
    ok(st, sock, id, &true);
    if st.media[i].state == CallState::Idle {
        return Ok(Reply::Sent);
    }
    finish(st, i, "NORMAL_CLEARING");
    Ok(Reply::Sent)
}

/// Ends call `i` with `reason` (`IDLE`, `CLOSED`).
fn finish(st: &mut State, i: usize, reason: &str) {
    let m = &mut st.media[i];
    m.close_reason = Some(reason.to_owned());
    if let Some(far) = &mut m.far {
        far.end();
    }
    let session_id = m.id.clone();
    let _ = super::media_push(st, &session_id, CallState::Idle, None);
}

/// The agent side moves a call to `state` ([`super::Simulator::set_call_state`]).
pub(super) fn agent_sets_state(
    st: &mut State,
    session_id: &str,
    state: CallState,
) -> cc_core::Result<()> {
    let i = st
        .media
        .iter()
        .position(|m| m.id == session_id)
        .ok_or_else(|| {
            cc_core::Error::invalid(V, "session_id", format!("unknown session {session_id}"))
        })?;
    if state == CallState::Idle {
        finish(st, i, "NORMAL_CLEARING");
        return Ok(());
    }
    let was_held = st.media[i].state == CallState::Hold;
    let media = st.media[i]
        .far
        .as_ref()
        .filter(|f| f.answered && !f.ended)
        .and_then(|f| f.media.clone());
    let reoffer = match (&state, media) {
        (CallState::Hold, Some(m)) if !was_held => Some(m.hold_offer(true)),
        (CallState::Connected, Some(m)) if was_held => Some(m.hold_offer(false)),
        _ => None,
    };
    if let Some(offer) = reoffer {
        let sdp = offer?;
        push_signal(
            st,
            session_id,
            &SignalPush::Offer(SessionDescription {
                session_id: session_id.to_owned(),
                sdp,
            }),
        );
    }
    super::media_push(st, session_id, state, None)
}

/// The call's media settings in the simulator: loopback, video when the call has it.
fn far_devices(video: bool) -> MediaDevices {
    MediaDevices {
        audio_in: Some(Arc::new(ToneSource::new(440.0))),
        audio_out: Some(Arc::new(RecordingSink::new())),
        video_in: video.then(|| Arc::new(TestPatternVideo::new()) as _),
        video_out: video.then(|| Arc::new(CountingVideoSink::new()) as _),
    }
}

/// The far end's script for one call, from the client's first offer on.
async fn script(inner: Arc<Inner>, session_id: String, answer: CallAnswer) {
    let ring = |inner: &Arc<Inner>| {
        let mut st = inner.lock();
        let _ = super::media_push(
            &mut st,
            &session_id,
            CallState::NewOutbound,
            Some(MultiChannelStepType::Connecting),
        );
    };
    // Whether the call is still up (the customer may hang up while it rings).
    let open = |st: &State| -> Option<usize> {
        st.media
            .iter()
            .position(|m| m.id == session_id)
            .filter(|&i| st.media[i].state != CallState::Idle)
    };
    match answer {
        CallAnswer::Refuse => {}
        CallAnswer::Busy => {
            let mut st = inner.lock();
            if let Some(i) = open(&st) {
                finish(&mut st, i, "USER_BUSY");
            }
        }
        CallAnswer::NoAnswer => {
            ring(&inner);
            tokio::time::sleep(inner.opts.no_answer_after).await;
            let mut st = inner.lock();
            if let Some(i) = open(&st) {
                finish(&mut st, i, "NO_ANSWER");
            }
        }
        CallAnswer::Answer => {
            ring(&inner);
            let after = inner.lock().ring.unwrap_or(inner.opts.answer_after);
            tokio::time::sleep(after).await;
            let video = {
                let st = inner.lock();
                let Some(i) = open(&st) else { return };
                st.media[i].channel == MultiChannelType::Video
            };
            let config = MediaConfig {
                video,
                ..MediaConfig::loopback()
            };
            let media = MediaSession::start(V, config, far_devices(video)).await;
            let late = {
                let mut st = inner.lock();
                match (open(&st), media) {
                    (Some(i), Ok(m)) => {
                        answer_call(&mut st, i, m);
                        None
                    }
                    (Some(i), Err(e)) => {
                        tracing::warn!(error = %e, "tvox sim: the far end's media did not start");
                        finish(&mut st, i, "FAILED");
                        None
                    }
                    // The customer hung up meanwhile.
                    (None, m) => m.ok(),
                }
            };
            if let Some(m) = late {
                m.close().await;
            }
        }
    }
}

/// The far end answers call `i` with `media`: the answer, its candidates as the widget's
/// trickle policy wants them, then `CONNECTED`.
fn answer_call(st: &mut State, i: usize, media: MediaSession) {
    let session_id = st.media[i].id.clone();
    let trickle = st.media[i].trickle.clone();
    let video_call = st.media[i].channel == MultiChannelType::Video;
    let far = st.media[i].far.get_or_insert_with(FarEnd::default);
    let offer = far.offer.clone().unwrap_or_default();
    let answer = match media.accept_offer(&offer) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "tvox sim: the far end cannot answer the offer");
            tokio::spawn(async move { media.close().await });
            finish(st, i, "FAILED");
            return;
        }
    };
    for c in far.candidates.drain(..) {
        if let Err(e) = media.add_remote_candidate(&c) {
            tracing::warn!(error = %e, "tvox sim: a client candidate was refused");
        }
    }
    far.held = sdp::is_hold(&offer);
    far.video = video_call && sdp::has_video(&answer);
    far.answered = true;
    far.media = Some(media);
    let trickles = !matches!(trickle, Some(TrickleIcePolicy::NotSupported));
    let (description, candidates) = if trickles {
        sdp::split_candidates(&answer)
    } else {
        (answer, Vec::new())
    };
    push_signal(
        st,
        &session_id,
        &SignalPush::Answer(SessionDescription {
            session_id: session_id.clone(),
            sdp: description,
        }),
    );
    if trickles {
        for c in candidates {
            push_signal(
                st,
                &session_id,
                &SignalPush::Candidate(IceCandidate {
                    session_id: session_id.clone(),
                    candidate: Some(c.candidate),
                    sdp_mid: c.mid,
                    sdp_m_line_index: Some(c.m_line_index),
                }),
            );
        }
        push_signal(
            st,
            &session_id,
            &SignalPush::Candidate(IceCandidate {
                session_id: session_id.clone(),
                candidate: None,
                sdp_mid: None,
                sdp_m_line_index: None,
            }),
        );
    }
    let _ = super::media_push(
        st,
        &session_id,
        CallState::Connected,
        Some(MultiChannelStepType::Connected),
    );
}

impl super::Simulator {
    /// The last `webrtc.mediaState` of a call (audio muted, video muted), as the agent's
    /// UI shows it; `None` before any.
    pub fn call_media_state(&self, session_id: &str) -> Option<(bool, bool)> {
        let st = self.inner.lock();
        st.media
            .iter()
            .find(|m| m.id == session_id)
            .and_then(|m| m.far.as_ref())
            .and_then(|f| f.muted)
    }
}
