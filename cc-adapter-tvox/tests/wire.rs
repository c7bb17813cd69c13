//! The codec on sample frames of the protocol notes (`shared/protocols/tvox.md` §3), and
//! property tests: arbitrary or truncated input never panics a decoder or the engine;
//! unknown values decode to `Unknown` arms and unknown event types become vendor events.

use std::time::{Duration, Instant};

use cc_adapter_tvox::engine::{Engine, EngineConfig, Now, Output};
use cc_adapter_tvox::wire::codec::{
    self, ChatSend, EventsSubscribed, Hello, HelloResult, SessionSubscribed, StatusSubscribed,
};
use cc_adapter_tvox::wire::{
    Call, ChannelSession, ChatChannelEventMessage, ChatChannelEventMessageStatus, ChatMessageType,
    ConfigurationStatus, Direction, Incoming, MultiChannelState, MultiChannelStepType,
    MultiChannelType, RpcId, ServiceStatusValue, time,
};
use cc_core::{ErrorKind, Event, Timestamp};
use proptest::prelude::*;
use serde_json::{Value, json};

fn response(frame: &str) -> Value {
    match codec::decode_incoming(frame).expect("decodes") {
        Incoming::Response { result, .. } => result.expect("a result"),
        other => panic!("not a response: {other:?}"),
    }
}

fn push(frame: &str) -> Value {
    match codec::decode_incoming(frame).expect("decodes") {
        Incoming::Notify(n) => n.data,
        other => panic!("not a push: {other:?}"),
    }
}

#[test]
fn hello_result_from_the_notes() {
    let v = response(
        r#"{"jsonrpc":"2.0","id":1,"result":{"clientId":"c-1","resumeToken":"r-1",
        "channelsEnabled":{"CHAT":true,"VIDEO":false},"serverTime":"2026-11-23T12:00:00Z",
        "iceServers":[{"urls":["stun:tvox.example.com:3478"]}]}}"#,
    );
    let h: HelloResult = codec::decode_result("widget.hello", v).unwrap();
    assert_eq!(h.channels_enabled.get("VIDEO"), Some(&false));
    assert_eq!(h.ice_servers[0].urls[0], "stun:tvox.example.com:3478");
}

#[test]
fn session_steps_every_variant() {
    let steps = [
        (
            r#"{"step":1,"type":"QUEUE","queuePosition":3}"#,
            MultiChannelStepType::Queue,
        ),
        (
            r#"{"step":2,"type":"PLAY","welcomeMessage":"Hi"}"#,
            MultiChannelStepType::Play,
        ),
        (
            r#"{"step":3,"type":"CONNECTING"}"#,
            MultiChannelStepType::Connecting,
        ),
        (
            r#"{"step":4,"type":"CONNECTED"}"#,
            MultiChannelStepType::Connected,
        ),
        (
            r#"{"step":5,"type":"TO_URL","uri":"https://x"}"#,
            MultiChannelStepType::ToUrl,
        ),
        (
            r#"{"step":6,"type":"INACTIVE_TIMEOUT","inactivityExpireDatetime":1800000000000}"#,
            MultiChannelStepType::InactiveTimeout,
        ),
        (
            r#"{"step":7,"type":"ACTIVE_FROM_TIMEOUT"}"#,
            MultiChannelStepType::ActiveFromTimeout,
        ),
        (
            r#"{"step":8,"type":"MAX_DURATION_TIMEOUT"}"#,
            MultiChannelStepType::MaxDurationTimeout,
        ),
        (
            r#"{"type":"TELEPORT"}"#,
            MultiChannelStepType::Unknown("TELEPORT".into()),
        ),
    ];
    for (step, kind) in steps {
        let frame = format!(
            r#"{{"jsonrpc":"2.0","method":"notify","params":{{"subscription":"s",
            "data":{{"id":"S1","service":"support","sessionState":"ACTIVE","step":{step}}}}}}}"#
        );
        let s: ChannelSession = codec::decode_data("chat session", push(&frame)).unwrap();
        assert_eq!(s.session_state, Some(MultiChannelState::Active));
        assert_eq!(s.step.unwrap().step_type, Some(kind));
    }
}

#[test]
fn subscribe_results_and_events() {
    let v = response(
        r#"{"jsonrpc":"2.0","id":4,"result":{"subscription":"sub-2","events":[
        {"id":"e1","sessionId":"S1","messageType":"OPEN_SESSION","direction":"OUTBOUND"},
        {"id":"e2","sessionId":"S1","message":"Hello","messageType":"MESSAGE","status":"WROTE",
         "direction":"INBOUND","createdAt":"2026-11-23T12:00:01.5Z"},
        {"id":"e3","messageType":"MESSAGE","status":"COMPOSING","direction":"INBOUND"}]}}"#,
    );
    let r: EventsSubscribed = codec::decode_result("chat.events.subscribe", v).unwrap();
    assert_eq!(r.events.len(), 3);
    assert_eq!(r.events[1].direction, Some(Direction::Inbound));
    assert_eq!(
        time::parse(r.events[1].created_at.as_deref().unwrap()),
        Some(Timestamp(1_795_435_201_500))
    );
    assert_eq!(
        r.events[2].status,
        Some(ChatChannelEventMessageStatus::Composing)
    );
    let v = response(
        r#"{"jsonrpc":"2.0","id":3,"result":{"subscription":"sub-1","session":{"id":"S1"}}}"#,
    );
    let s: SessionSubscribed = codec::decode_result("chat.session.subscribe", v).unwrap();
    assert_eq!(s.session.id, "S1");
    let v = response(
        r#"{"jsonrpc":"2.0","id":9,"result":{"subscription":"sub-3","status":{
        "channelConfiguration":"ENABLED","channelId":"CHAT","service":"support",
        "serviceConfiguration":"NO_LICENSE","status":"OVERTIME"}}}"#,
    );
    let st: StatusSubscribed = codec::decode_result("service.status.subscribe", v).unwrap();
    assert_eq!(st.status.channel_id, Some(MultiChannelType::Chat));
    assert_eq!(
        st.status.service_configuration,
        Some(ConfigurationStatus::NoLicense)
    );
    assert_eq!(st.status.status, Some(ServiceStatusValue::Overtime));
}

#[test]
fn errors_and_bad_envelopes() {
    match codec::decode_incoming(
        r#"{"jsonrpc":"2.0","id":5,"error":{"code":1007,"message":"not connected"}}"#,
    )
    .unwrap()
    {
        Incoming::Response { id, result } => {
            assert_eq!(id, RpcId::Num(5));
            assert_eq!(result.unwrap_err().code, 1007);
        }
        other => panic!("{other:?}"),
    }
    for bad in [
        "",
        "[]",
        r#"{"jsonrpc":"1.0","id":1,"result":true}"#,
        r#"{"jsonrpc":"2.0","id":1}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":true,"error":{"code":1,"message":""}}"#,
        r#"{"jsonrpc":"2.0","method":"ping","params":{}}"#,
        r#"{"jsonrpc":"2.0","method":"notify","params":{"data":{}}}"#,
    ] {
        let e = codec::decode_incoming(bad).unwrap_err();
        assert!(!e.frame.is_empty(), "{bad}: {e}");
    }
}

#[test]
fn every_call_round_trips_through_the_server_decoder() {
    let calls = vec![
        Call::Hello(Hello {
            resume_token: Some("r".into()),
            ..Hello::default()
        }),
        Call::Bye {},
        Call::Ping { ts: 1 },
        Call::VisitUri {
            linkable_uri: Some("https://x/a".into()),
            uri: Some("/a".into()),
            uri_display: None,
        },
        Call::CustomerIdentifier {
            channel: MultiChannelType::Chat,
            service: "s".into(),
        },
        Call::StatusSubscribe {
            service: "s".into(),
            channel: MultiChannelType::Video,
        },
        Call::Cancel {
            subscription: "sub-1".into(),
        },
        Call::ChatSessionSubscribe {
            session_id: "S".into(),
        },
        Call::ChatEventsSubscribe {
            session_id: "S".into(),
            since_event_id: Some("e9".into()),
        },
        Call::ChatSend(ChatSend {
            session_id: "S".into(),
            message: "m".into(),
            status: ChatChannelEventMessageStatus::Wrote,
            notify_greeting_message: true,
        }),
        Call::ChatReceived {
            session_id: "S".into(),
            message_id: "e2".into(),
        },
        Call::ChatRecap {
            session_id: "S".into(),
            mail: "a@b".into(),
        },
        Call::ChatClose {
            session_id: "S".into(),
        },
        Call::VideoSubscribe {},
        Call::CallClose {
            session_id: "C".into(),
        },
    ];
    for call in calls {
        let text = codec::encode_request(RpcId::Num(7), &call);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["method"], call.method(), "{text}");
        assert!(codec::METHODS.contains(&call.method()));
        let back = codec::decode_request(&text).unwrap();
        assert_eq!(back.call, call);
        assert_eq!(back.id, RpcId::Num(7));
    }
    let (_, e) =
        codec::decode_request(r#"{"jsonrpc":"2.0","id":1,"method":"chat.fly","params":{}}"#)
            .unwrap_err();
    assert_eq!(e.code, -32601);
    let (id, e) =
        codec::decode_request(r#"{"jsonrpc":"2.0","id":2,"method":"chat.send","params":{}}"#)
            .unwrap_err();
    assert_eq!((id, e.code), (Some(RpcId::Num(2)), -32602));
}

#[test]
fn unknown_values_are_kept() {
    let ev: ChatChannelEventMessage = serde_json::from_value(json!({
        "messageType": "REACTION", "status": "SHOUTED", "direction": "SIDEWAYS"
    }))
    .unwrap();
    assert_eq!(
        ev.message_type,
        Some(ChatMessageType::Unknown("REACTION".into()))
    );
    assert_eq!(
        serde_json::to_value(&ev).unwrap()["status"],
        json!("SHOUTED")
    );
}

fn engine() -> (Engine, Now) {
    let mut e = Engine::new(EngineConfig {
        hello: Hello::default(),
        heartbeat: Duration::from_secs(5),
        outbox: cc_chat::OutboxConfig::default(),
        customer: cc_core::Participant::new(cc_core::Role::Customer),
        media_timeout: Duration::from_secs(15),
    });
    let now = Now {
        at: Instant::now(),
        wall: Timestamp(1_800_000_000_000),
    };
    e.on_connected(now, 1);
    e.on_text(
        now,
        r#"{"jsonrpc":"2.0","id":1,"result":{"clientId":"c","resumeToken":"r"}}"#,
    );
    while e.poll_output().is_some() {}
    (e, now)
}

/// An engine with chat `S1` whose monitors are subscriptions `ss` and `es`.
fn engine_with_chat() -> (Engine, Now) {
    let (mut e, now) = engine();
    e.start_chat(
        now,
        cc_adapter_tvox::engine::StartChat {
            service: "s".into(),
            customer: cc_core::Participant::new(cc_core::Role::Customer),
            create: codec::ChatCreate {
                service: "s".into(),
                ..Default::default()
            },
            bot_history: vec![],
            first_message: None,
        },
    );
    e.on_text(
        now,
        r#"{"jsonrpc":"2.0","id":2,"result":{"id":"S1","sessionState":"ACTIVE"}}"#,
    );
    e.on_text(
        now,
        r#"{"jsonrpc":"2.0","id":3,"result":{"subscription":"ss","session":{"id":"S1"}}}"#,
    );
    e.on_text(
        now,
        r#"{"jsonrpc":"2.0","id":4,"result":{"subscription":"es","events":[]}}"#,
    );
    while e.poll_output().is_some() {}
    (e, now)
}

#[test]
fn unknown_chat_event_types_become_vendor_events() {
    let (mut e, now) = engine_with_chat();
    e.on_text(
        now,
        r#"{"jsonrpc":"2.0","method":"notify","params":{"subscription":"es","data":{"id":"x","messageType":"REACTION","direction":"INBOUND"}}}"#,
    );
    let mut vendor = false;
    while let Some(o) = e.poll_output() {
        if let Output::Event(Event::Vendor { name, payload, .. }) = o {
            vendor |= &*name == "tvox.chat_event" && payload["messageType"] == "REACTION";
        }
    }
    assert!(vendor);
}

const SAMPLES: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":1,"result":{"clientId":"c","resumeToken":"r","channelsEnabled":{"CHAT":true}}}"#,
    r#"{"jsonrpc":"2.0","method":"notify","params":{"subscription":"ss","data":{"id":"S1","sessionState":"ACTIVE","step":{"step":2,"type":"INACTIVE_TIMEOUT","inactivityExpireDatetime":1800000060000}}}}"#,
    r#"{"jsonrpc":"2.0","method":"notify","params":{"subscription":"es","data":{"id":"e2","message":"Hello","messageType":"MESSAGE","status":"WROTE","direction":"INBOUND","createdAt":"2026-11-23T12:00:01Z"}}}"#,
    r#"{"jsonrpc":"2.0","id":5,"error":{"code":1007,"message":"not connected"}}"#,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoders_never_panic_on_arbitrary_text(s in ".{0,300}") {
        let _ = codec::decode_incoming(&s);
        let _ = codec::decode_request(&s);
        let _ = time::parse(&s);
    }

    #[test]
    fn decoders_never_panic_on_truncated_samples(i in 0usize..4, cut in 0usize..400) {
        let sample = SAMPLES[i];
        let end = cut.min(sample.len());
        let _ = codec::decode_incoming(&sample[..end]);
        let _ = codec::decode_request(&sample[..end]);
    }

    #[test]
    fn the_engine_turns_garbage_into_protocol_errors(s in ".{0,200}") {
        let (mut e, now) = engine();
        e.on_text(now, &s);
        while let Some(o) = e.poll_output() {
            if let Output::Event(Event::Error(err)) = o {
                prop_assert_eq!(err.kind(), ErrorKind::Protocol);
            }
        }
    }

    #[test]
    fn arbitrary_json_pushes_never_panic(
        kind in prop::sample::select(vec!["QUEUE", "PLAY", "CONNECTED", "INACTIVE_TIMEOUT", "X"]),
        pos in proptest::option::of(any::<u32>()),
        expire in proptest::option::of(any::<i64>()),
        msg in proptest::option::of(".{0,20}"),
        status in prop::sample::select(vec!["WROTE", "COMPOSING", "IDLE", "??"]),
    ) {
        let (mut e, now) = engine_with_chat();
        let session = json!({"id": "S1", "sessionState": "ACTIVE",
            "step": {"type": kind, "queuePosition": pos, "inactivityExpireDatetime": expire}});
        let event = json!({"id": "e", "message": msg, "status": status, "direction": "INBOUND"});
        for (sub, data) in [("ss", session), ("es", event)] {
            let frame = json!({"jsonrpc": "2.0", "method": "notify",
                "params": {"subscription": sub, "data": data}});
            e.on_text(now, &frame.to_string());
        }
        while e.poll_output().is_some() {}
        let _ = time::format(Timestamp(expire.unwrap_or(0) / 4));
    }
}

#[test]
fn call_signalling_frames() {
    use cc_adapter_tvox::wire::codec::{CallPush, IceCandidate, MediaState, SignalPush};
    // The end of candidates is an explicit null.
    let end = codec::encode_request(
        RpcId::Num(7),
        &Call::WebrtcCandidate(IceCandidate {
            session_id: "C1".into(),
            candidate: None,
            sdp_mid: None,
            sdp_m_line_index: None,
        }),
    );
    let v: Value = serde_json::from_str(&end).unwrap();
    assert_eq!(v["method"], "webrtc.candidate");
    assert_eq!(v["params"], json!({"sessionId": "C1", "candidate": null}));
    let mute = codec::encode_request(
        RpcId::Num(8),
        &Call::WebrtcMediaState(MediaState {
            session_id: "C1".into(),
            audio_muted: true,
            video_muted: false,
        }),
    );
    let v: Value = serde_json::from_str(&mute).unwrap();
    assert_eq!(v["method"], "webrtc.mediaState");
    assert_eq!(v["params"]["audioMuted"], true);
    // The simulator reads back what the client writes.
    assert!(codec::decode_request(&mute).is_ok());
    // Pushes on a call subscription: signalling with `kind`, sessions without.
    let answer = push(
        r#"{"jsonrpc":"2.0","method":"notify","params":{"subscription":"cs","data":
        {"kind":"answer","sessionId":"C1","sdp":"v=0\r\n"}}}"#,
    );
    match codec::decode_call_push(answer).unwrap() {
        CallPush::Signal(SignalPush::Answer(d)) => assert_eq!(d.session_id, "C1"),
        other => panic!("{other:?}"),
    }
    let idle = push(
        r#"{"jsonrpc":"2.0","method":"notify","params":{"subscription":"cs","data":
        {"id":"C1","state":"IDLE","sessionState":"CLOSED","closeReason":"USER_BUSY"}}}"#,
    );
    match codec::decode_call_push(idle).unwrap() {
        CallPush::Session(s) => assert_eq!(s.close_reason.as_deref(), Some("USER_BUSY")),
        other => panic!("{other:?}"),
    }
    let bad = json!({"kind": "renegotiate", "sessionId": "C1"});
    let e = codec::decode_call_push(bad).unwrap_err();
    assert!(e.to_string().contains("call signalling push"), "{e}");
    // A TURN credential never shows in Debug.
    let h: HelloResult = codec::decode_result(
        "widget.hello",
        json!({"clientId": "c", "resumeToken": "r", "iceServers": [{"urls": ["turn:t:3478"], "username": "u", "credential": "pw"}]}),
    )
    .unwrap();
    assert!(!format!("{h:?}").contains("pw"));
    assert_eq!(h.ice_servers[0].credential.as_ref().unwrap().expose(), "pw");
}
