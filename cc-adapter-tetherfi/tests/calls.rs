//! Audio/video calls against the simulator's CSO side, on both transports: the §3.8
//! signalling on the wire, media both ways (RTP packet counts on each side), mute, hold (ours
//! and the CSO's), DTMF, hang-up from either side, and the failures (busy, no answer, refused,
//! no chat).

use std::sync::Arc;
use std::time::Duration;

use cc_adapter_tetherfi::sim::{SimOptions, Simulator};
use cc_adapter_tetherfi::wire::Push;
use cc_adapter_tetherfi::wire::av::AvSignal;
use cc_adapter_tetherfi::{TetherfiSession, Transport};
use cc_core::{
    CallRequest, CallState, Content, Engagement, ErrorKind, Event, EventStream, Session,
    TlsSettings,
};
use cc_rtc::{CountingVideoSink, TestPatternVideo};
use cc_testkit::calls::far_end_until;
use cc_testkit::{CallAnswer, Direction, Received, SimChat, SimControl};
use futures::StreamExt;
use serde_json::Value;

const T: Duration = Duration::from_secs(10);
const BOTH: [Transport; 2] = [Transport::Dwr, Transport::Ws];

async fn expect(
    events: &mut EventStream,
    what: &str,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(e)) => seen.push(format!("{e:?}")),
            _ => panic!("no {what} within {T:?}; saw {seen:#?}"),
        }
    }
}

async fn expect_call(events: &mut EventStream, what: &str, want: impl Fn(&CallState) -> bool) {
    expect(
        events,
        what,
        |e| matches!(e, Event::Call { state, .. } if want(state)),
    )
    .await;
}

struct Setup {
    sim: Simulator,
    session: TetherfiSession,
    events: EventStream,
    chat: Arc<dyn Engagement>,
    sim_chat: SimChat,
}

async fn setup(transport: Transport) -> Setup {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let session = TetherfiSession::connect(sim.config(transport), &TlsSettings::default())
        .await
        .unwrap();
    let mut events = session.events();
    let chat = session
        .start_chat(cc_testkit::default_chat_request())
        .await
        .unwrap();
    let sim_chat = sim.wait_for_chat(T).await.unwrap();
    sim.agent_joins(&sim_chat, "Alex Agent").await.unwrap();
    expect(&mut events, "agent joins", |e| {
        matches!(e, Event::ParticipantJoined { .. })
    })
    .await;
    Setup {
        sim,
        session,
        events,
        chat,
        sim_chat,
    }
}

fn request() -> CallRequest {
    CallRequest {
        devices: cc_testkit::calls::test_devices(false),
        ..CallRequest::default()
    }
}

/// The audio/video app messages the client sent, in order.
fn sent_av(sim: &Simulator) -> Vec<Value> {
    sim.frames()
        .iter()
        .filter(|f| f.direction == Direction::ClientToServer)
        .filter_map(|f| {
            let obj = if f.channel.contains("SendAppMessage") {
                // The wrapper URL-encodes the JSON text (§3.6).
                let text = cc_adapter_tetherfi::wire::url_decode(f.body["params"][0].as_str()?);
                serde_json::from_str::<Value>(&text).ok()?
            } else if f.channel == "ws" {
                f.body.clone()
            } else {
                return None;
            };
            let t = obj.get("type")?.as_str()?;
            cc_adapter_tetherfi::wire::is_av_signal(t).then_some(obj)
        })
        .collect()
}

/// The `type`s of [`sent_av`].
fn sent_av_types(sim: &Simulator) -> Vec<String> {
    sent_av(sim)
        .iter()
        .filter_map(|v| v["type"].as_str().map(str::to_owned))
        .collect()
}

/// The AV app messages the server sent, decoded, in order (one page).
fn received_av(sim: &Simulator) -> Vec<Value> {
    sim.frames()
        .iter()
        .filter(|f| f.direction == Direction::ServerToClient)
        .filter_map(|f| {
            if f.channel == "ws" {
                let t = f.body.get("type")?.as_str()?;
                return cc_adapter_tetherfi::wire::is_av_signal(t).then(|| f.body.clone());
            }
            match cc_adapter_tetherfi::wire::dwr::decode_push(f.body.as_str()?) {
                Ok(Push::AppMessageReceived { msg, .. }) => serde_json::from_str(&msg).ok(),
                _ => None,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_call_on_both_transports() {
    for transport in BOTH {
        let Setup {
            sim,
            session,
            mut events,
            chat,
            sim_chat,
        } = setup(transport).await;
        sim.set_call_answer(CallAnswer::Answer).await.unwrap();
        let call = session.start_call(request()).await.unwrap();
        assert!(
            matches!(call.state(), CallState::Dialing | CallState::Ringing),
            "{transport:?}: {:?}",
            call.state()
        );
        let mut call_events = call.events();
        expect_call(&mut events, "ringing", |s| *s == CallState::Ringing).await;
        expect_call(&mut events, "connected", |s| *s == CallState::Connected).await;
        expect_call(&mut call_events, "connected on the call's stream", |s| {
            *s == CallState::Connected
        })
        .await;

        // Media both ways.
        far_end_until(&sim, T, "far end receives audio", |f| {
            f.answered && f.stats.audio_packets_received >= 25
        })
        .await;
        let deadline = tokio::time::Instant::now() + T;
        while call.stats().unwrap().audio_packets_received < 25 {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", call.stats());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(call.stats().unwrap().audio_codec.is_some());

        // Mute stops outgoing audio; unmute brings it back.
        call.mute_audio(true).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = sim
            .far_end_call()
            .await
            .unwrap()
            .unwrap()
            .stats
            .audio_packets_received;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let after = sim
            .far_end_call()
            .await
            .unwrap()
            .unwrap()
            .stats
            .audio_packets_received;
        assert!(
            after <= before + 3,
            "{transport:?}: {before} → {after} while muted"
        );
        call.mute_audio(false).await.unwrap();
        far_end_until(&sim, T, "audio again", |f| {
            f.stats.audio_packets_received >= after + 10
        })
        .await;

        // Our hold: a sendonly re-offer the far end sees.
        call.hold(true).await.unwrap();
        expect_call(&mut events, "on hold", |s| *s == CallState::OnHold).await;
        far_end_until(&sim, T, "far end sees hold", |f| f.held).await;
        call.hold(false).await.unwrap();
        expect_call(&mut events, "resumed", |s| *s == CallState::Connected).await;
        far_end_until(&sim, T, "far end sees resume", |f| !f.held).await;

        // The CSO's hold: avcontrol.
        sim.agent_holds_call(&sim_chat, true).unwrap();
        expect_call(&mut events, "held by the CSO", |s| *s == CallState::OnHold).await;
        sim.agent_holds_call(&sim_chat, false).unwrap();
        expect_call(&mut events, "resumed by the CSO", |s| {
            *s == CallState::Connected
        })
        .await;

        // DTMF in the media.
        call.dtmf("12#").await.unwrap();
        far_end_until(&sim, T, "far end receives DTMF", |f| {
            f.stats.dtmf_received.contains("12#")
        })
        .await;

        // A malformed signalling message is an error event; the call goes on.
        sim.agent_app_message(&sim_chat, serde_json::json!({"type": "offer"}))
            .unwrap();
        expect(
            &mut events,
            "protocol error",
            |e| matches!(e, Event::Error(err) if err.kind() == ErrorKind::Protocol),
        )
        .await;
        assert_eq!(call.state(), CallState::Connected);

        call.hangup().await.unwrap();
        expect_call(
            &mut events,
            "ended",
            |s| matches!(s, CallState::Ended { reason } if &**reason == "local-hangup"),
        )
        .await;
        far_end_until(&sim, T, "far end sees the end", |f| f.ended).await;
        assert!(call.hangup().await.is_err());

        // The chat goes on.
        chat.send(Content::text("after the call")).await.unwrap();
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let got = sim.received(&sim_chat).await.unwrap();
            if got
                .iter()
                .any(|r| matches!(r, Received::Text { text, .. } if text == "after the call"))
            {
                // Call signalling is not chat content.
                assert!(
                    !got.iter().any(|r| matches!(r, Received::Notice { .. })),
                    "{got:?}"
                );
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{got:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            chat.transcript()
                .iter()
                .all(|m| m.content.as_text().is_some())
        );

        // The wire: StartAvCall, the offer and its candidates, the hold re-offers, endav.
        let sent = sent_av_types(&sim);
        assert_eq!(
            sent[..3],
            ["devinfo", "avtstatus", "offer"],
            "{transport:?}: {sent:?}"
        );
        assert_eq!(sent[3], "candidate", "{sent:?}");
        assert_eq!(
            sent.iter().filter(|t| *t == "offer").count(),
            3,
            "initial offer and two re-offers: {sent:?}"
        );
        assert_eq!(sent.last().map(String::as_str), Some("endav"), "{sent:?}");
        let got: Vec<String> = received_av(&sim)
            .iter()
            .filter_map(|v| v["type"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            got[..4],
            ["configs", "callqueued", "agt1stconnect", "answer"],
            "{transport:?}: {got:?}"
        );
        session.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_no_answer_and_refused() {
    for transport in BOTH {
        let Setup {
            sim,
            session,
            mut events,
            ..
        } = setup(transport).await;

        sim.set_call_answer(CallAnswer::Busy).await.unwrap();
        let call = session.start_call(request()).await.unwrap();
        expect_call(
            &mut events,
            "busy",
            |s| matches!(s, CallState::Ended { reason } if &**reason == "busy: AgentBusy"),
        )
        .await;
        assert!(!sim.far_end_call().await.unwrap().unwrap().answered);
        assert!(matches!(call.state(), CallState::Ended { .. }));

        sim.set_call_answer(CallAnswer::NoAnswer).await.unwrap();
        let started = tokio::time::Instant::now();
        let _call = session.start_call(request()).await.unwrap();
        expect_call(&mut events, "ringing", |s| *s == CallState::Ringing).await;
        expect_call(
            &mut events,
            "no answer",
            |s| matches!(s, CallState::Ended { reason } if &**reason == "no-answer: NoAnswer"),
        )
        .await;
        assert!(started.elapsed() >= Duration::from_millis(900));
        assert!(!sim.far_end_call().await.unwrap().unwrap().answered);

        sim.set_call_answer(CallAnswer::Refuse).await.unwrap();
        let calls = sim.call_count();
        let e = session.start_call(request()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Rejected, "{e}");
        assert_eq!(e.vendor_code(), Some("avmode=false"), "{e}");
        assert_eq!(sim.call_count(), calls, "no call reached the CSO");
        // The refusal went no further than avtstatus: no offer after it.
        // (Over the chat proxy the frame may still be on its way when start_call returns.)
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let sent = sent_av(&sim);
            if sent.last().is_some_and(|v| v["param"] == "false") {
                let kinds: Vec<_> = sent
                    .iter()
                    .rev()
                    .take(3)
                    .map(|v| v["type"].clone())
                    .collect();
                assert_eq!(kinds, ["avtstatus", "avtstatus", "devinfo"], "{sent:?}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{sent:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The chat still takes calls once the service does.
        sim.set_call_answer(CallAnswer::Answer).await.unwrap();
        let call = session.start_call(request()).await.unwrap();
        expect_call(&mut events, "connected", |s| *s == CallState::Connected).await;
        call.hangup().await.unwrap();
        session.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cso_or_the_chat_ends_the_call() {
    for transport in BOTH {
        let Setup {
            sim,
            session,
            mut events,
            chat,
            sim_chat,
        } = setup(transport).await;
        let call = session.start_call(request()).await.unwrap();
        expect_call(&mut events, "connected", |s| *s == CallState::Connected).await;
        // One call per chat.
        let e = session.start_call(request()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        sim.agent_ends_call(&sim_chat, "COMMON").unwrap();
        expect_call(
            &mut events,
            "ended by the CSO",
            |s| matches!(s, CallState::Ended { reason } if &**reason == "remote-hangup: COMMON"),
        )
        .await;
        assert!(matches!(call.state(), CallState::Ended { .. }));

        // A new call on the same chat; then the chat ends under it.
        let call = session.start_call(request()).await.unwrap();
        expect_call(&mut events, "connected again", |s| {
            *s == CallState::Connected
        })
        .await;
        chat.end(Some("done".into())).await.unwrap();
        expect_call(
            &mut events,
            "ended with the chat",
            |s| matches!(s, CallState::Ended { reason } if &**reason == "local-hangup: chat ended"),
        )
        .await;
        far_end_until(&sim, T, "far end ended", |f| f.ended).await;
        assert!(matches!(call.state(), CallState::Ended { .. }));
        session.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_call_needs_a_chat_with_an_agent() {
    for transport in BOTH {
        let sim = Simulator::start(SimOptions::default()).await.unwrap();
        let session = TetherfiSession::connect(sim.config(transport), &TlsSettings::default())
            .await
            .unwrap();
        let e = session.start_call(request()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("engagement"), "{e}");
        let _chat = session
            .start_chat(cc_testkit::default_chat_request())
            .await
            .unwrap();
        let e = session.start_call(request()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        let mut r = request();
        r.context.insert("engagement".into(), "nope".into());
        let e = session.start_call(r).await.unwrap_err();
        assert!(e.to_string().contains("context.engagement"), "{e}");
        assert!(sent_av_types(&sim).is_empty());
        session.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn requestav_without_a_call_is_a_vendor_event() {
    let Setup {
        sim,
        session,
        mut events,
        sim_chat,
        ..
    } = setup(Transport::Dwr).await;
    sim.av_signal(
        &sim_chat,
        &AvSignal::RequestAv {
            param: "video".into(),
        },
    )
    .unwrap();
    expect(&mut events, "requestav", |e| {
        matches!(e, Event::Vendor { name, payload, .. }
            if &**name == "OnAppMessageReceived" && payload["message"]["param"] == "video")
    })
    .await;
    session.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_call_both_ways() {
    for transport in BOTH {
        let Setup {
            sim,
            session,
            mut events,
            ..
        } = setup(transport).await;
        let mut r = request();
        r.video = true;
        r.devices.video_in = Some(Arc::new(TestPatternVideo::new()));
        r.devices.video_out = Some(Arc::new(CountingVideoSink::new()));
        let call = session.start_call(r).await.unwrap();
        expect_call(&mut events, "connected", |s| *s == CallState::Connected).await;
        let far = far_end_until(&sim, T, "far end receives video", |f| {
            f.stats.video_frames_received >= 10
        })
        .await;
        assert!(far.video);
        let deadline = tokio::time::Instant::now() + T;
        while call.stats().unwrap().video_frames_received < 10 {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", call.stats());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Pause(_, video): no more video frames reach the far end.
        call.mute_video(true).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = sim
            .far_end_call()
            .await
            .unwrap()
            .unwrap()
            .stats
            .video_frames_received;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = sim
            .far_end_call()
            .await
            .unwrap()
            .unwrap()
            .stats
            .video_frames_received;
        assert!(
            after <= before + 2,
            "{transport:?}: {before} → {after} while paused"
        );
        let sent = sent_av(&sim);
        assert_eq!(sent[1]["type"], "avtstatus", "{sent:?}");
        assert_eq!(sent[1]["param"], "video", "{sent:?}");
        assert!(
            sent[2]["sdp"].as_str().unwrap().contains("m=video"),
            "{sent:?}"
        );
        call.hangup().await.unwrap();
        session.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_outlives_a_chat_connection_drop() {
    for transport in BOTH {
        let Setup {
            sim,
            session,
            mut events,
            ..
        } = setup(transport).await;
        let call = session.start_call(request()).await.unwrap();
        expect_call(&mut events, "connected", |s| *s == CallState::Connected).await;
        far_end_until(&sim, T, "media flows", |f| {
            f.stats.audio_packets_received >= 10
        })
        .await;
        sim.drop_connections().await.unwrap();
        expect(&mut events, "reconnecting", |e| {
            matches!(
                e,
                Event::Connection(cc_core::ConnectionState::Reconnecting { .. })
            )
        })
        .await;
        // Media does not ride on the chat connection.
        let during = sim
            .far_end_call()
            .await
            .unwrap()
            .unwrap()
            .stats
            .audio_packets_received;
        far_end_until(&sim, T, "media during the outage", |f| {
            f.stats.audio_packets_received >= during + 10
        })
        .await;
        assert_eq!(call.state(), CallState::Connected, "{transport:?}");
        expect(&mut events, "connected again", |e| {
            matches!(e, Event::Connection(cc_core::ConnectionState::Connected))
        })
        .await;
        // Signalling works again.
        call.hold(true).await.unwrap();
        far_end_until(&sim, T, "far end sees hold", |f| f.held).await;
        call.hangup().await.unwrap();
        far_end_until(&sim, T, "far end sees the end", |f| f.ended).await;
        session.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cso_holds_by_re_offer_and_the_answer_times_out() {
    for transport in BOTH {
        let sim = Simulator::start(SimOptions::default()).await.unwrap();
        let mut cfg = sim.config(transport);
        cfg.calls.answer_timeout_ms = 300;
        let session = TetherfiSession::connect(cfg, &TlsSettings::default())
            .await
            .unwrap();
        let mut events = session.events();
        let _chat = session
            .start_chat(cc_testkit::default_chat_request())
            .await
            .unwrap();
        let sim_chat = sim.wait_for_chat(T).await.unwrap();
        sim.agent_joins(&sim_chat, "Alex Agent").await.unwrap();
        expect(&mut events, "agent joins", |e| {
            matches!(e, Event::ParticipantJoined { .. })
        })
        .await;

        // The far end's own sendonly re-offer: we answer, and the call is on hold.
        let call = session.start_call(request()).await.unwrap();
        expect_call(&mut events, "connected", |s| *s == CallState::Connected).await;
        sim.agent_reoffers_hold(&sim_chat, true).unwrap();
        expect_call(&mut events, "held by re-offer", |s| *s == CallState::OnHold).await;
        // (Over the chat proxy our answer may still be on its way.)
        let deadline = tokio::time::Instant::now() + T;
        while let Err(e) = sim.agent_reoffers_hold(&sim_chat, false) {
            assert!(tokio::time::Instant::now() < deadline, "{e}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        expect_call(&mut events, "resumed by re-offer", |s| {
            *s == CallState::Connected
        })
        .await;
        // Media still flows both ways after the renegotiation.
        let got = call.stats().unwrap().audio_packets_received;
        let deadline = tokio::time::Instant::now() + T;
        while call.stats().unwrap().audio_packets_received < got + 10 {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", call.stats());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        call.hangup().await.unwrap();

        // Our answer timer beats the CSO's (1 s): no-answer, and we say so.
        sim.set_call_answer(CallAnswer::NoAnswer).await.unwrap();
        let _call = session.start_call(request()).await.unwrap();
        expect_call(
            &mut events,
            "our no-answer",
            |s| matches!(s, CallState::Ended { reason } if &**reason == "no-answer"),
        )
        .await;
        far_end_until(&sim, T, "the CSO side sees the end", |f| f.ended).await;
        let sent = sent_av(&sim);
        assert_eq!(sent.last().unwrap()["reason"], "NoAnswer", "{sent:?}");
        session.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multichat_calls_the_chat_the_app_names() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let mut cfg = sim.config(Transport::Dwr);
    cfg.multichat = true;
    let session = TetherfiSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap();
    let mut events = session.events();
    let first = session
        .start_chat(cc_testkit::default_chat_request())
        .await
        .unwrap();
    let sim_first = sim.wait_for_chat(T).await.unwrap();
    let _second = session
        .start_chat(cc_testkit::default_chat_request())
        .await
        .unwrap();
    let sim_second = sim.wait_for_chat(T).await.unwrap();
    sim.agent_joins(&sim_first, "Alex Agent").await.unwrap();
    sim.agent_joins(&sim_second, "Blake Agent").await.unwrap();
    for _ in 0..2 {
        expect(&mut events, "agent joins", |e| {
            matches!(e, Event::ParticipantJoined { .. })
        })
        .await;
    }
    let mut r = request();
    r.context
        .insert("engagement".into(), first.id().as_str().to_owned());
    let call = session.start_call(r).await.unwrap();
    expect_call(&mut events, "connected", |s| *s == CallState::Connected).await;
    // The signalling named the first chat (multichat calls carry the `Sid`).
    let sent = sim.frames();
    let offer = sent
        .iter()
        .find(|f| {
            f.channel.contains("SendAppMessage")
                && f.body["params"][0]
                    .as_str()
                    .is_some_and(|p| p.contains("offer"))
        })
        .expect("an offer");
    assert_eq!(offer.body["params"][2], first.id().as_str(), "{offer:?}");
    // The CSO of the other chat cannot end it.
    sim.agent_ends_call(&sim_second, "COMMON").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(call.state(), CallState::Connected);
    sim.agent_ends_call(&sim_first, "COMMON").unwrap();
    expect_call(
        &mut events,
        "ended",
        |s| matches!(s, CallState::Ended { reason } if reason.starts_with("remote-hangup")),
    )
    .await;
    session.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_pushed_at_agent_connect_serve_the_call() {
    let sim = Simulator::start(SimOptions {
        av_configs_on_join: true,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let session = TetherfiSession::connect(sim.config(Transport::Dwr), &TlsSettings::default())
        .await
        .unwrap();
    let mut events = session.events();
    let _chat = session
        .start_chat(cc_testkit::default_chat_request())
        .await
        .unwrap();
    let sim_chat = sim.wait_for_chat(T).await.unwrap();
    sim.agent_joins(&sim_chat, "Alex Agent").await.unwrap();
    // Reported (no call yet), and kept.
    expect(&mut events, "configs at agent connect", |e| {
        matches!(e, Event::Vendor { name, payload, .. }
            if &**name == "OnAppMessageReceived" && payload["message"]["type"] == "configs")
    })
    .await;
    let call = session.start_call(request()).await.unwrap();
    expect_call(&mut events, "connected", |s| *s == CallState::Connected).await;
    call.hangup().await.unwrap();
    session.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_the_far_end_never_answers_fails_and_is_undone() {
    // DWR: during the outage every call is refused, so the re-offer never reaches the CSO.
    let sim = Simulator::start(SimOptions {
        outage: Duration::from_millis(1500),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let mut cfg = sim.config(Transport::Dwr);
    cfg.request_timeout_ms = 400;
    let session = TetherfiSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap();
    let mut events = session.events();
    let _chat = session
        .start_chat(cc_testkit::default_chat_request())
        .await
        .unwrap();
    let sim_chat = sim.wait_for_chat(T).await.unwrap();
    sim.agent_joins(&sim_chat, "Alex Agent").await.unwrap();
    expect(&mut events, "agent joins", |e| {
        matches!(e, Event::ParticipantJoined { .. })
    })
    .await;
    let call = session.start_call(request()).await.unwrap();
    expect_call(&mut events, "connected", |s| *s == CallState::Connected).await;
    sim.drop_connections().await.unwrap();
    let e = call.hold(true).await.unwrap_err();
    assert!(e.is_retryable() || e.kind() == ErrorKind::Transport, "{e}");
    assert_eq!(call.state(), CallState::Connected);
    assert!(!sim.far_end_call().await.unwrap().unwrap().held);
    expect(&mut events, "back online", |e| {
        matches!(e, Event::Connection(cc_core::ConnectionState::Connected))
    })
    .await;
    // The offer was rolled back: holding again works.
    call.hold(true).await.unwrap();
    expect_call(&mut events, "on hold", |s| *s == CallState::OnHold).await;
    far_end_until(&sim, T, "far end sees hold", |f| f.held).await;
    call.hangup().await.unwrap();
    session.shutdown().await.unwrap();
}
