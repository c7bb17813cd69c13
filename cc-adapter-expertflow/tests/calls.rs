//! Calls end to end against the simulator: chat, agent, `start_call` over the simulator's
//! switch (SIP over WebSocket) with real media on 127.0.0.1 both ways, mute, hold, DTMF,
//! hang-up from either side, busy, no answer, refused registration, the side channel, and
//! what goes on the wire.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_adapter_expertflow::sim::{DIALLING_URI, SIP_DOMAIN, SimOptions, Simulator};
use cc_adapter_expertflow::{ExpertflowCall, ExpertflowSession};
use cc_core::{
    CallRequest, CallSession, CallState, CallStats, Engagement, ErrorKind, Event, EventStream,
    MediaDevices, Session, TlsSettings,
};
use cc_rtc::{RecordingSink, ToneSource};
use cc_testkit::calls::far_end_until;
use cc_testkit::{CallAnswer, SimChat, SimControl};
use futures::StreamExt;

const STEP: Duration = Duration::from_secs(5);

async fn session(sim: &Simulator, customer: &str) -> ExpertflowSession {
    let cfg = sim.client_config(&sim.base_url(), customer);
    ExpertflowSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap()
}

async fn chat(sim: &Simulator, s: &ExpertflowSession) -> (Arc<dyn Engagement>, SimChat) {
    let eng = s
        .start_chat(cc_testkit::default_chat_request())
        .await
        .unwrap();
    let chat = sim.wait_for_chat(STEP).await.unwrap();
    sim.agent_joins(&chat, "Alex Agent").await.unwrap();
    (eng, chat)
}

fn request(sink: &Arc<RecordingSink>) -> CallRequest {
    let chat = cc_testkit::default_chat_request();
    CallRequest {
        customer: chat.customer,
        video: false,
        routing: Default::default(),
        context: Default::default(),
        devices: MediaDevices {
            audio_in: Some(Arc::new(ToneSource::new(440.0))),
            audio_out: Some(sink.clone() as _),
            ..MediaDevices::default()
        },
    }
}

async fn call_state(
    events: &mut EventStream,
    id: &str,
    want: impl Fn(&CallState) -> bool,
) -> CallState {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(STEP, async {
        while let Some(e) = events.next().await {
            if let Event::Call { call, state } = &e
                && &**call == id
                && want(state)
            {
                return Some(state.clone());
            }
            seen.push(format!("{e:?}"));
        }
        None
    })
    .await;
    match found {
        Ok(Some(s)) => s,
        _ => panic!("no such call state; saw {seen:#?}"),
    }
}

async fn client_until(
    call: &ExpertflowCall,
    what: &str,
    done: impl Fn(&CallStats) -> bool,
) -> CallStats {
    cc_testkit::calls::client_stats_until(call, STEP, what, done).await
}

fn sip_lines(sim: &Simulator) -> Vec<String> {
    sim.frames()
        .into_iter()
        .filter(|f| f.channel == "sip")
        .filter_map(|f| f.body["line"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn full_call() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-call-full").await;
    let (eng, chat) = chat(&sim, &s).await;
    let mut events = s.events();
    let sink = Arc::new(RecordingSink::new());
    let started = Instant::now();
    let call = s.call(request(&sink)).await.unwrap();
    assert_eq!(call.state(), CallState::Dialing);
    let id = call.id();
    call_state(&mut events, &id, |s| *s == CallState::Ringing).await;
    call_state(&mut events, &id, |s| *s == CallState::Connected).await;
    let connected = started.elapsed();
    client_until(&call, "first packet", |s| s.audio_packets_received > 0).await;
    eprintln!(
        "start_call to Connected {connected:?}, to the first RTP packet {:?} (the far end rings 200 ms)",
        started.elapsed()
    );

    // The INVITE: target and X- headers in the vendor's order.
    let invite = sim
        .frames()
        .into_iter()
        .find(|f| {
            f.channel == "sip"
                && f.body["line"]
                    .as_str()
                    .is_some_and(|l| l.starts_with("INVITE "))
        })
        .unwrap();
    assert_eq!(
        invite.body["line"],
        format!("INVITE sip:{DIALLING_URI}@{SIP_DOMAIN} SIP/2.0")
    );
    let headers = sim.call_headers();
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "X-Customer-Name",
            "X-Agent-Extension",
            "X-Customer-Number",
            "X-Customer-Id",
            "X-Destination-Number",
            "X-Media-Type",
            "X-Calltype"
        ]
    );
    assert_eq!(headers[0].1, "Casey Jones");
    assert_eq!(headers[4].1, DIALLING_URI);
    assert_eq!(headers[5].1, "audio");
    assert_eq!(headers[6].1, "OUT");
    assert_eq!(call.dialog_id(), sim.call_dialog_id());
    // The extension's password never goes on the wire (digest only), nor into Debug.
    let password = cc_adapter_expertflow::sim::PASSWORD;
    assert!(
        sim.frames()
            .iter()
            .all(|f| !f.body.to_string().contains(password))
    );
    assert!(!format!("{call:?} {s:?}").contains(password));

    // Media both ways.
    far_end_until(&sim, STEP, "far end receives audio", |f| {
        f.answered && f.stats.audio_packets_received >= 25
    })
    .await;
    let stats = client_until(&call, "client receives audio", |s| {
        s.audio_packets_received >= 25
    })
    .await;
    assert!(
        stats.audio_packets_sent >= 25 && stats.audio_codec.is_some(),
        "{stats:?}"
    );
    assert!(sink.frames() > 0);

    // Mute is local: RTP stops, nothing is signalled.
    let lines_before = sip_lines(&sim).len();
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
    assert!(after <= before + 3, "{before} → {after} while muted");
    assert_eq!(sip_lines(&sim).len(), lines_before, "mute sends no SIP");
    call.mute_audio(false).await.unwrap();
    far_end_until(&sim, STEP, "audio again", |f| {
        f.stats.audio_packets_received >= after + 10
    })
    .await;

    // Hold / resume: re-INVITE sendonly / sendrecv.
    call.hold(true).await.unwrap();
    call_state(&mut events, &id, |s| *s == CallState::OnHold).await;
    assert!(sim.far_end_call().await.unwrap().unwrap().held);
    assert!(
        call.dtmf("1").await.is_err(),
        "no DTMF while held, as the vendor client"
    );
    call.hold(false).await.unwrap();
    call_state(&mut events, &id, |s| *s == CallState::Connected).await;
    assert!(!sim.far_end_call().await.unwrap().unwrap().held);
    let reinvites: Vec<String> = sim
        .frames()
        .into_iter()
        .filter(|f| {
            f.channel == "sip"
                && f.body["line"]
                    .as_str()
                    .is_some_and(|l| l.starts_with("INVITE "))
        })
        .filter_map(|f| f.body["body"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(reinvites.len(), 3);
    assert!(reinvites[1].contains("a=sendonly"));
    assert!(reinvites[2].contains("a=sendrecv"));

    // DTMF: INFO application/dtmf-relay, one per digit.
    call.dtmf("12#").await.unwrap();
    far_end_until(&sim, STEP, "DTMF", |f| f.stats.dtmf_received == "12#").await;
    let infos: Vec<_> = sim
        .frames()
        .into_iter()
        .filter(|f| {
            f.channel == "sip"
                && f.body["line"]
                    .as_str()
                    .is_some_and(|l| l.starts_with("INFO "))
        })
        .collect();
    assert_eq!(infos.len(), 3);
    assert_eq!(infos[2].body["body"], "Signal=#\r\nDuration=150");
    assert!(
        call.dtmf("1x")
            .await
            .unwrap_err()
            .to_string()
            .contains("`x`")
    );

    // A second call while this one is live is refused.
    let e = s.call(request(&sink)).await.unwrap_err();
    assert!(e.to_string().contains("already"), "{e}");

    // Hang up: BYE, Ended(local-hangup), the far end saw it, the chat goes on.
    call.hangup().await.unwrap();
    let ended = call_state(&mut events, &id, |s| matches!(s, CallState::Ended { .. })).await;
    assert_eq!(
        ended,
        CallState::Ended {
            reason: "local-hangup".into()
        }
    );
    far_end_until(&sim, STEP, "far end ended", |f| f.ended).await;
    assert!(sip_lines(&sim).iter().any(|l| l.starts_with("BYE ")));
    assert!(call.hold(true).await.is_err());
    eng.send(cc_core::Content::text("after the call"))
        .await
        .unwrap();
    let _ = chat;
    // The registration is given back.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let unregister = sim
        .frames()
        .into_iter()
        .filter(|f| f.channel == "sip")
        .any(|f| {
            f.body["line"]
                .as_str()
                .is_some_and(|l| l.starts_with("REGISTER "))
                && f.body["headers"].as_array().is_some_and(|h| {
                    h.iter().any(|kv| kv[0] == "Expires" && kv[1] == "0")
                        || h.iter().any(|kv| {
                            kv[0] == "Contact"
                                && kv[1].as_str().is_some_and(|c| c.contains("expires=0"))
                        })
                })
        });
    assert!(unregister, "un-REGISTER after the call");
}

#[tokio::test]
async fn busy_no_answer_refused() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-call-fail").await;
    let _chat = chat(&sim, &s).await;
    let sink = Arc::new(RecordingSink::new());
    let mut events = s.events();

    sim.set_call_answer(CallAnswer::Busy).await.unwrap();
    let call = s.call(request(&sink)).await.unwrap();
    let ended = call_state(&mut events, &call.id(), |s| {
        matches!(s, CallState::Ended { .. })
    })
    .await;
    assert_eq!(
        ended,
        CallState::Ended {
            reason: "busy: USER_BUSY".into()
        }
    );
    assert!(!sim.far_end_call().await.unwrap().unwrap().answered);

    sim.set_call_answer(CallAnswer::NoAnswer).await.unwrap();
    let call = s.call(request(&sink)).await.unwrap();
    call_state(&mut events, &call.id(), |s| *s == CallState::Ringing).await;
    let ended = call_state(&mut events, &call.id(), |s| {
        matches!(s, CallState::Ended { .. })
    })
    .await;
    assert_eq!(
        ended,
        CallState::Ended {
            reason: "no-answer: NO_ANSWER".into()
        }
    );

    sim.set_call_answer(CallAnswer::Refuse).await.unwrap();
    let e = s.call(request(&sink)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(
        e.to_string().contains("403") && e.to_string().contains("Forbidden"),
        "{e}"
    );
    let lines = sip_lines(&sim);
    assert!(
        !lines
            .iter()
            .skip_while(|l| !l.contains("403"))
            .any(|l| l.starts_with("INVITE "))
    );

    // Hanging up while it rings: CANCEL, 487.
    sim.set_call_answer(CallAnswer::NoAnswer).await.unwrap();
    let call = s.call(request(&sink)).await.unwrap();
    call_state(&mut events, &call.id(), |s| *s == CallState::Ringing).await;
    call.hangup().await.unwrap();
    assert_eq!(
        call.state(),
        CallState::Ended {
            reason: "local-hangup".into()
        }
    );
    far_end_until(&sim, STEP, "cancelled", |f| f.ended).await;
    let lines = sip_lines(&sim);
    assert!(lines.iter().any(|l| l.starts_with("CANCEL ")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("487")), "{lines:#?}");
}

#[tokio::test]
async fn far_end_ends_and_side_channel() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-call-remote").await;
    let _chat = chat(&sim, &s).await;
    let sink = Arc::new(RecordingSink::new());
    let mut events = s.events();

    // BYE from the switch with a reason.
    let call = s.call(request(&sink)).await.unwrap();
    call_state(&mut events, &call.id(), |s| *s == CallState::Connected).await;
    sim.send_agent_details().unwrap();
    let deadline = Instant::now() + STEP;
    while call.agent_extension().is_none() {
        assert!(Instant::now() < deadline, "agentDetails not taken");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        call.agent_extension().as_deref(),
        Some(cc_adapter_expertflow::sim::AGENT_EXTENSION)
    );
    // A MESSAGE whose body is not JSON: Event::Error(Protocol), the call goes on.
    sim.send_switch_message("not json").unwrap();
    let deadline = Instant::now() + STEP;
    loop {
        let e = tokio::time::timeout_at(deadline.into(), events.next())
            .await
            .expect("an error event")
            .unwrap();
        if let Event::Error(err) = &e {
            assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
            break;
        }
    }
    assert_eq!(call.state(), CallState::Connected);
    // Another dialog's MESSAGE is ignored.
    sim.send_switch_message(r#"{"event":"MEDIA_SERVER_CALL_END","dialog":{"id":"another"}}"#)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(call.state(), CallState::Connected);
    sim.far_end_hangup(Some("NORMAL_CLEARING")).unwrap();
    let ended = call_state(&mut events, &call.id(), |s| {
        matches!(s, CallState::Ended { .. })
    })
    .await;
    assert_eq!(
        ended,
        CallState::Ended {
            reason: "remote-hangup: NORMAL_CLEARING".into()
        }
    );

    // MEDIA_SERVER_CALL_END over SIP MESSAGE ends the call.
    let call = s.call(request(&sink)).await.unwrap();
    call_state(&mut events, &call.id(), |s| *s == CallState::Connected).await;
    sim.switch_ends_call("NORMAL_CLEARING").unwrap();
    let ended = call_state(&mut events, &call.id(), |s| {
        matches!(s, CallState::Ended { .. })
    })
    .await;
    match ended {
        CallState::Ended { reason } => assert!(
            reason.starts_with("remote-hangup: MEDIA_SERVER_CALL_END"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn chat_connection_drop_leaves_the_call_alone() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-call-drop").await;
    let _chat = chat(&sim, &s).await;
    let sink = Arc::new(RecordingSink::new());
    let mut events = s.events();
    let call = s.call(request(&sink)).await.unwrap();
    call_state(&mut events, &call.id(), |s| *s == CallState::Connected).await;
    let before = client_until(&call, "audio", |s| s.audio_packets_received >= 10).await;
    sim.drop_connections().await.unwrap();
    client_until(&call, "audio after the chat socket dropped", |s| {
        s.audio_packets_received >= before.audio_packets_received + 25
    })
    .await;
    assert_eq!(call.state(), CallState::Connected);
    call.hangup().await.unwrap();
}

#[tokio::test]
async fn preconditions() {
    // No chat yet.
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-call-nochat").await;
    let sink = Arc::new(RecordingSink::new());
    let e = s.call(request(&sink)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("chat"), "{e}");

    // A deployment without WebRTC settings.
    let sim = Simulator::start(SimOptions {
        web_rtc: false,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let s = session(&sim, "c-call-off").await;
    let _chat = chat(&sim, &s).await;
    let e = s.start_call(request(&sink)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Rejected, "{e}");
}

#[tokio::test]
async fn video_call() {
    use cc_rtc::{CountingVideoSink, TestPatternVideo};
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-call-video").await;
    let _chat = chat(&sim, &s).await;
    let sink = Arc::new(RecordingSink::new());
    let video_sink = Arc::new(CountingVideoSink::new());
    let mut req = request(&sink);
    req.video = true;
    req.devices.video_in = Some(Arc::new(TestPatternVideo::new()));
    req.devices.video_out = Some(video_sink.clone() as _);
    let mut events = s.events();
    let call = s.call(req).await.unwrap();
    call_state(&mut events, &call.id(), |s| *s == CallState::Connected).await;
    assert_eq!(sim.call_headers()[5].1, "video");
    let far = far_end_until(&sim, STEP, "video frames at the far end", |f| {
        f.video && f.stats.video_frames_received >= 10 && f.stats.audio_packets_received >= 10
    })
    .await;
    assert!(far.answered);
    client_until(&call, "video frames at the client", |s| {
        s.video_frames_received >= 10
    })
    .await;
    assert!(video_sink.frames() >= 10);
    call.mute_video(true).await.unwrap();
    call.hangup().await.unwrap();
    far_end_until(&sim, STEP, "ended", |f| f.ended).await;
}

#[tokio::test]
async fn far_end_holds_and_switch_reconnect() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-call-remote-hold").await;
    let _chat = chat(&sim, &s).await;
    let sink = Arc::new(RecordingSink::new());
    let mut events = s.events();
    let call = s.call(request(&sink)).await.unwrap();
    call_state(&mut events, &call.id(), |s| *s == CallState::Connected).await;

    // The far end holds and resumes (re-INVITE sendonly / sendrecv from the switch).
    sim.far_end_hold(true).unwrap();
    call_state(&mut events, &call.id(), |s| *s == CallState::OnHold).await;
    // (once the switch has the answer to its first re-INVITE)
    let deadline = Instant::now() + STEP;
    while let Err(e) = sim.far_end_hold(false) {
        assert!(Instant::now() < deadline, "{e}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    call_state(&mut events, &call.id(), |s| *s == CallState::Connected).await;

    // The switch's WebSocket drops: the user agent reconnects and registers again; the
    // media goes on and the dialog follows to the new connection.
    let registers = |sim: &Simulator| {
        sip_lines(sim)
            .iter()
            .filter(|l| l.starts_with("REGISTER "))
            .count()
    };
    let before = registers(&sim);
    let packets = call.stats().unwrap().audio_packets_received;
    sim.drop_switch_connections();
    let deadline = Instant::now() + STEP;
    while registers(&sim) < before + 1 {
        assert!(
            Instant::now() < deadline,
            "no re-REGISTER: {:#?}",
            sip_lines(&sim)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client_until(&call, "audio across the reconnect", |s| {
        s.audio_packets_received >= packets + 25
    })
    .await;
    assert_eq!(call.state(), CallState::Connected);
    sim.far_end_hangup(Some("NORMAL_CLEARING")).unwrap();
    let ended = call_state(&mut events, &call.id(), |s| {
        matches!(s, CallState::Ended { .. })
    })
    .await;
    assert_eq!(
        ended,
        CallState::Ended {
            reason: "remote-hangup: NORMAL_CLEARING".into()
        }
    );
}

#[tokio::test]
async fn setup_time_without_ringing() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    sim.set_ring_time(Duration::ZERO).await.unwrap();
    let s = session(&sim, "c-call-setup").await;
    let _chat = chat(&sim, &s).await;
    let sink = Arc::new(RecordingSink::new());
    let mut events = s.events();
    let started = Instant::now();
    let call = s.call(request(&sink)).await.unwrap();
    let returned = started.elapsed();
    call_state(&mut events, &call.id(), |s| *s == CallState::Connected).await;
    let connected = started.elapsed();
    far_end_until(&sim, STEP, "first packet at the far end", |f| {
        f.stats.audio_packets_received > 0
    })
    .await;
    let far_first = started.elapsed();
    eprintln!(
        "start_call returned after {returned:?} (widget config, media, REGISTER with digest); Connected after {connected:?}; first RTP at the far end after {far_first:?}"
    );
    // The figures are for reading; `cargo bench -p cc-bench --bench call_setup` measures.
    call.hangup().await.unwrap();
}
