//! Calls end to end against the simulator: real media both ways (the client's
//! `MediaSession` and the simulator's far end on 127.0.0.1), the TVox signalling on the
//! wire, and what each side saw.

#![cfg(feature = "sim")]

use std::sync::Arc;
use std::time::Duration;

use cc_adapter_tvox::TvoxConfig;
use cc_adapter_tvox::sim::{SimOptions, Simulator};
use cc_adapter_tvox::wire::{CallState as WireState, TrickleIcePolicy, WebrtcConfig};
use cc_core::{
    CallRequest, CallSession, CallState, ChatRequest, Engagement, ErrorKind, Event, EventStream,
    Session, TlsSettings,
};
use cc_testkit::calls::far_end_until;
use cc_testkit::{CallAnswer, Direction, FarEndCall, SimChat, SimControl};
use futures::StreamExt;
use serde_json::Value;

const STEP: Duration = Duration::from_secs(10);
const FLOWING: u64 = 25;

struct Setup {
    sim: Simulator,
    session: cc_adapter_tvox::TvoxSession,
    _chat: Arc<dyn Engagement>,
    _sim_chat: SimChat,
    events: EventStream,
}

async fn setup_with(tweak: impl FnOnce(&mut TvoxConfig)) -> Setup {
    let sim = Simulator::start(SimOptions {
        heartbeat: Duration::from_millis(300),
        tick: Duration::from_millis(10),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let mut cfg = sim.config();
    cfg.retry.interval_ms = 100;
    cfg.request_timeout_ms = 5000;
    tweak(&mut cfg);
    let session = cc_adapter_tvox::TvoxSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap();
    let events = session.events();
    let chat = session.start_chat(ChatRequest::default()).await.unwrap();
    let sim_chat = sim.wait_for_chat(STEP).await.unwrap();
    sim.agent_joins(&sim_chat, "Alex").await.unwrap();
    Setup {
        sim,
        session,
        _chat: chat,
        _sim_chat: sim_chat,
        events,
    }
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

fn request(video: bool) -> CallRequest {
    CallRequest {
        video,
        devices: cc_testkit::calls::test_devices(video),
        ..CallRequest::default()
    }
}

/// The next `Event::Call` of `call` on `events` that `want` accepts (others are skipped).
async fn state(
    events: &mut EventStream,
    call: &str,
    mut want: impl FnMut(&CallState) -> bool,
) -> CallState {
    let wait = async {
        while let Some(ev) = events.next().await {
            if let Event::Call { call: c, state } = ev
                && &*c == call
                && want(&state)
            {
                return state;
            }
        }
        panic!("event stream ended");
    };
    tokio::time::timeout(STEP, wait)
        .await
        .unwrap_or_else(|_| panic!("no matching call state for {call} within {STEP:?}"))
}

async fn far(sim: &Simulator) -> FarEndCall {
    sim.far_end_call()
        .await
        .unwrap()
        .expect("a call reached the far end")
}

async fn client_until(call: &dyn CallSession, done: impl FnMut(&cc_core::CallStats) -> bool) {
    cc_testkit::calls::client_stats_until(call, STEP, "client stats", done).await;
}

/// The client frames of `method`, params only.
fn sent(sim: &Simulator, method: &str) -> Vec<Value> {
    sim.frames()
        .into_iter()
        .filter(|f| f.direction == Direction::ClientToServer && f.body["method"] == method)
        .map(|f| f.body["params"].clone())
        .collect()
}

/// The server's signalling pushes of `kind`.
fn pushed(sim: &Simulator, kind: &str) -> Vec<Value> {
    sim.frames()
        .into_iter()
        .filter(|f| {
            f.direction == Direction::ServerToClient && f.body["params"]["data"]["kind"] == kind
        })
        .map(|f| f.body["params"]["data"].clone())
        .collect()
}

async fn connected_call(s: &mut Setup, video: bool) -> Arc<dyn CallSession> {
    s.sim.set_call_answer(CallAnswer::Answer).await.unwrap();
    let call = s.session.start_call(request(video)).await.unwrap();
    // Dialing, unless TVox's ringing came in already.
    assert!(
        matches!(call.state(), CallState::Dialing | CallState::Ringing),
        "{:?}",
        call.state()
    );
    let id = call.id();
    state(&mut s.events, &id, |st| *st == CallState::Ringing).await;
    state(&mut s.events, &id, |st| *st == CallState::Connected).await;
    far_end_until(&s.sim, STEP, "far end receives audio", |f| {
        f.answered && f.stats.audio_packets_received >= FLOWING
    })
    .await;
    client_until(&*call, |st| st.audio_packets_received >= FLOWING).await;
    call
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_call_mute_hold_dtmf_hangup() {
    let mut s = setup().await;
    let call = connected_call(&mut s, false).await;
    let id = call.id();
    let mut own = call.events();
    assert!(call.stats().unwrap().audio_codec.is_some());

    // The wire: create on the PHONE_CALL service, the offer without candidates (full
    // trickle, the default), each candidate, then the end of candidates.
    let create = sent(&s.sim, "call.create");
    assert_eq!(create.len(), 1);
    assert_eq!(create[0]["service"], "support");
    let offer = &sent(&s.sim, "webrtc.offer")[0];
    assert_eq!(offer["sessionId"], *id);
    let sdp = offer["sdp"].as_str().unwrap();
    assert!(
        sdp.contains("m=audio") && !sdp.contains("a=candidate"),
        "{sdp}"
    );
    let cands = sent(&s.sim, "webrtc.candidate");
    assert!(cands.len() >= 2, "{cands:?}");
    assert!(
        cands[0]["candidate"]
            .as_str()
            .unwrap()
            .starts_with("candidate:")
    );
    assert_eq!(cands[0]["sdpMLineIndex"], 0);
    assert_eq!(cands.last().unwrap()["candidate"], Value::Null);
    // TVox's side trickles too: its answer without candidates, then candidates and the end.
    let answers = pushed(&s.sim, "answer");
    assert_eq!(answers.len(), 1);
    assert!(!answers[0]["sdp"].as_str().unwrap().contains("a=candidate"));
    let theirs = pushed(&s.sim, "candidate");
    assert!(theirs.len() >= 2 && theirs.last().unwrap()["candidate"].is_null());

    // Mute: no more audio at the far end; the agent's UI is told.
    call.mute_audio(true).await.unwrap();
    assert_eq!(s.sim.call_media_state(&id), Some((true, false)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = far(&s.sim).await.stats.audio_packets_received;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = far(&s.sim).await.stats.audio_packets_received;
    assert!(
        after <= before + 3,
        "{} packets while muted",
        after - before
    );
    call.mute_audio(false).await.unwrap();
    assert_eq!(s.sim.call_media_state(&id), Some((false, false)));
    far_end_until(&s.sim, STEP, "audio again", |f| {
        f.stats.audio_packets_received >= after + 10
    })
    .await;
    // An audio call has no camera to mute.
    let e = call.mute_video(true).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");

    // The customer's hold: a sendonly re-offer, answered by TVox.
    call.hold(true).await.unwrap();
    state(&mut s.events, &id, |st| *st == CallState::OnHold).await;
    far_end_until(&s.sim, STEP, "held", |f| f.held).await;
    let reoffer = sent(&s.sim, "webrtc.offer").pop().unwrap();
    assert!(reoffer["sdp"].as_str().unwrap().contains("a=sendonly"));
    call.hold(false).await.unwrap();
    state(&mut s.events, &id, |st| *st == CallState::Connected).await;
    far_end_until(&s.sim, STEP, "resumed", |f| !f.held).await;
    assert_eq!(sent(&s.sim, "webrtc.offer").len(), 3);

    // DTMF in the media.
    call.dtmf("12#").await.unwrap();
    far_end_until(&s.sim, STEP, "dtmf", |f| {
        f.stats.dtmf_received.contains("12#")
    })
    .await;
    let e = call.dtmf("1x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");

    // Hang up: call.close, Ended local-hangup on both streams, the far end ended.
    call.hangup().await.unwrap();
    let end = state(&mut s.events, &id, |st| {
        matches!(st, CallState::Ended { .. })
    })
    .await;
    assert!(
        matches!(&end, CallState::Ended { reason } if &**reason == "local-hangup"),
        "{end:?}"
    );
    far_end_until(&s.sim, STEP, "ended", |f| f.ended).await;
    assert_eq!(sent(&s.sim, "call.close")[0]["sessionId"], *id);
    assert!(matches!(call.state(), CallState::Ended { .. }));
    let mut own_ended = false;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(100), own.next()).await {
        if matches!(
            ev,
            Event::Call {
                state: CallState::Ended { .. },
                ..
            }
        ) {
            own_ended = true;
            break;
        }
    }
    assert!(own_ended, "the call's own stream saw the end");
    // Commands after the end are refused; a second hang-up is fine.
    assert_eq!(
        call.mute_audio(true).await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    call.hangup().await.unwrap();
    // The call monitor is cancelled once no call needs it.
    let deadline = tokio::time::Instant::now() + STEP;
    while s.sim.cancelled().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no subscription.cancel"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_holds_resumes_and_hangs_up() {
    let mut s = setup().await;
    let call = connected_call(&mut s, false).await;
    let id = call.id();
    // The agent holds: TVox re-offers sendonly, the client answers, the state is HOLD.
    s.sim.set_call_state(&id, WireState::Hold).unwrap();
    state(&mut s.events, &id, |st| *st == CallState::OnHold).await;
    let offers = pushed(&s.sim, "offer");
    assert_eq!(offers.len(), 1);
    assert!(offers[0]["sdp"].as_str().unwrap().contains("a=sendonly"));
    let deadline = tokio::time::Instant::now() + STEP;
    while sent(&s.sim, "webrtc.answer").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no webrtc.answer");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let answer = &sent(&s.sim, "webrtc.answer")[0];
    assert!(
        answer["sdp"].as_str().unwrap().contains("a=recvonly"),
        "{answer}"
    );
    // Held by the agent (its side sends only, music on hold): the client answered
    // recvonly and sends nothing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = far(&s.sim).await.stats.audio_packets_received;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = far(&s.sim).await.stats.audio_packets_received;
    assert!(after <= before + 3, "{} packets while held", after - before);
    s.sim.set_call_state(&id, WireState::Connected).unwrap();
    state(&mut s.events, &id, |st| *st == CallState::Connected).await;
    far_end_until(&s.sim, STEP, "audio after the resume", |f| {
        f.stats.audio_packets_received >= after + 10
    })
    .await;
    // The agent hangs up.
    s.sim.set_call_state(&id, WireState::Idle).unwrap();
    let end = state(&mut s.events, &id, |st| {
        matches!(st, CallState::Ended { .. })
    })
    .await;
    assert_eq!(
        end,
        CallState::Ended {
            reason: Arc::from("remote-hangup: NORMAL_CLEARING")
        }
    );
    assert!(sent(&s.sim, "call.close").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_call_frames_both_ways() {
    let mut s = setup().await;
    let call = connected_call(&mut s, true).await;
    let id = call.id();
    assert_eq!(sent(&s.sim, "video.create").len(), 1);
    assert!(sent(&s.sim, "call.create").is_empty());
    let f = far_end_until(&s.sim, STEP, "video at the far end", |f| {
        f.stats.video_frames_received >= 10
    })
    .await;
    assert!(f.video);
    client_until(&*call, |st| st.video_frames_received >= 10).await;
    call.mute_video(true).await.unwrap();
    assert_eq!(s.sim.call_media_state(&id), Some((false, true)));
    call.hangup().await.unwrap();
    state(&mut s.events, &id, |st| {
        matches!(st, CallState::Ended { .. })
    })
    .await;
    assert_eq!(sent(&s.sim, "video.close")[0]["sessionId"], *id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_no_answer_refused() {
    let mut s = setup().await;

    s.sim.set_call_answer(CallAnswer::Busy).await.unwrap();
    let call = s.session.start_call(request(false)).await.unwrap();
    let end = state(&mut s.events, &call.id(), |st| {
        matches!(st, CallState::Ended { .. })
    })
    .await;
    assert_eq!(
        end,
        CallState::Ended {
            reason: Arc::from("busy: USER_BUSY")
        }
    );
    assert!(!far(&s.sim).await.answered);

    s.sim.set_call_answer(CallAnswer::NoAnswer).await.unwrap();
    let call = s.session.start_call(request(false)).await.unwrap();
    let id = call.id();
    state(&mut s.events, &id, |st| *st == CallState::Ringing).await;
    let end = state(&mut s.events, &id, |st| {
        matches!(st, CallState::Ended { .. })
    })
    .await;
    assert_eq!(
        end,
        CallState::Ended {
            reason: Arc::from("no-answer: NO_ANSWER")
        }
    );

    s.sim.set_call_answer(CallAnswer::Refuse).await.unwrap();
    let e = s.session.start_call(request(false)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Rejected, "{e}");
    assert_eq!(e.vendor_code(), Some("1010"));
    // Refused before anything else: no offer for it.
    assert_eq!(sent(&s.sim, "call.create").len(), 3);
    assert_eq!(sent(&s.sim, "webrtc.offer").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_up_while_ringing() {
    let mut s = setup().await;
    s.sim.set_call_answer(CallAnswer::NoAnswer).await.unwrap();
    let call = s.session.start_call(request(false)).await.unwrap();
    let id = call.id();
    state(&mut s.events, &id, |st| *st == CallState::Ringing).await;
    call.hangup().await.unwrap();
    let end = state(&mut s.events, &id, |st| {
        matches!(st, CallState::Ended { .. })
    })
    .await;
    assert_eq!(
        end,
        CallState::Ended {
            reason: Arc::from("local-hangup")
        }
    );
    let f = far(&s.sim).await;
    assert!(f.ended && !f.answered, "{f:?}");
    // The no-answer timer of the far end finds the call closed and says nothing more.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ends = s
        .sim
        .frames()
        .into_iter()
        .filter(|f| f.body["params"]["data"]["state"] == "IDLE")
        .count();
    assert_eq!(ends, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_need_webrtc_and_a_service() {
    let s = setup_with(|c| c.webrtc = None).await;
    let e = s.session.start_call(request(false)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(!s.session.capabilities().calls_audio);
    let s = setup_with(|c| c.services.retain(|x| x.channel.as_str() == "CHAT")).await;
    let e = s.session.start_call(request(false)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("routing.target"), "{e}");
    assert!(sent(&s.sim, "call.create").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_descriptions_without_trickle() {
    let mut s = setup_with(|c| {
        c.webrtc = Some(WebrtcConfig {
            enabled: true,
            trickle_ice_policy: Some(TrickleIcePolicy::NotSupported),
            ice_gather_policy: None,
        })
    })
    .await;
    let call = connected_call(&mut s, false).await;
    let offer = &sent(&s.sim, "webrtc.offer")[0];
    assert!(offer["sdp"].as_str().unwrap().contains("a=candidate"));
    assert!(sent(&s.sim, "webrtc.candidate").is_empty());
    assert!(pushed(&s.sim, "candidate").is_empty());
    assert!(
        pushed(&s.sim, "answer")[0]["sdp"]
            .as_str()
            .unwrap()
            .contains("a=candidate")
    );
    call.hangup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_trickle_offers_whole_and_ends_candidates() {
    let mut s = setup_with(|c| {
        c.webrtc = Some(WebrtcConfig {
            enabled: true,
            trickle_ice_policy: Some(TrickleIcePolicy::HalfTrickle),
            ice_gather_policy: None,
        })
    })
    .await;
    let call = connected_call(&mut s, false).await;
    assert!(
        sent(&s.sim, "webrtc.offer")[0]["sdp"]
            .as_str()
            .unwrap()
            .contains("a=candidate")
    );
    let cands = sent(&s.sim, "webrtc.candidate");
    assert_eq!(cands.len(), 1);
    assert!(cands[0]["candidate"].is_null());
    // TVox, the answerer, trickles its own.
    assert!(pushed(&s.sim, "candidate").len() >= 2);
    call.hangup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_survives_a_signalling_drop() {
    let mut s = setup().await;
    let call = connected_call(&mut s, false).await;
    let id = call.id();
    s.sim.drop_connections().await.unwrap();
    let wait = async {
        while let Some(ev) = s.events.next().await {
            if matches!(ev, Event::Connection(cc_core::ConnectionState::Connected)) {
                return;
            }
        }
    };
    tokio::time::timeout(STEP, wait).await.expect("reconnected");
    // Media went on meanwhile, peer to peer.
    let now = far(&s.sim).await.stats.audio_packets_received;
    far_end_until(&s.sim, STEP, "audio after the drop", |f| {
        f.stats.audio_packets_received >= now + 10
    })
    .await;
    assert_eq!(call.state(), CallState::Connected);
    // The monitor is back (one subscribe per connection): the agent's hang-up arrives.
    let deadline = tokio::time::Instant::now() + STEP;
    while sent(&s.sim, "call.subscribe").len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no second call.subscribe"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.sim.set_call_state(&id, WireState::Idle).unwrap();
    let end = state(&mut s.events, &id, |st| {
        matches!(st, CallState::Ended { .. })
    })
    .await;
    assert!(
        matches!(&end, CallState::Ended { reason } if reason.starts_with("remote-hangup")),
        "{end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_missed_on_a_dead_link_is_learnt_after_the_reconnect() {
    let mut s = setup().await;
    let call = connected_call(&mut s, false).await;
    let id = call.id();
    // A half-open link: the agent's hang-up push is lost on its way.
    s.sim.mute_connections();
    s.sim.set_call_state(&id, WireState::Idle).unwrap();
    // Two unanswered heartbeats later the client reconnects; the renewed monitor's
    // result says the call is over.
    let end = state(&mut s.events, &id, |st| {
        matches!(st, CallState::Ended { .. })
    })
    .await;
    assert_eq!(
        end,
        CallState::Ended {
            reason: Arc::from("remote-hangup: NORMAL_CLEARING")
        }
    );
    assert!(sent(&s.sim, "call.subscribe").len() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hangs_up_the_calls() {
    let mut s = setup().await;
    let call = connected_call(&mut s, false).await;
    let id = call.id();
    s.session.shutdown().await.unwrap();
    let end = state(&mut s.events, &id, |st| {
        matches!(st, CallState::Ended { .. })
    })
    .await;
    assert_eq!(
        end,
        CallState::Ended {
            reason: Arc::from("local-hangup")
        }
    );
    // TVox heard the hang-up before the session went.
    far_end_until(&s.sim, STEP, "ended", |f| f.ended).await;
    assert_eq!(sent(&s.sim, "call.close")[0]["sessionId"], *id);
}
