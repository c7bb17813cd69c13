use std::time::{Duration, Instant};

use cc_core::{ConnectionState, EventKind};
use serde_json::json;

use super::*;
use crate::wire::{BrowserDeviceInfo, FormData, Locale};

fn engine() -> Engine {
    let customer = CustomerData {
        service_identifier: "5155".into(),
        channel_customer_identifier: "c-1".into(),
        browser_device_info: BrowserDeviceInfo {
            device_type: "desktop".into(),
            ..Default::default()
        },
        queue: String::new(),
        locale: Locale::default(),
        form_data: FormData::default(),
    };
    let mut e = Engine::new(
        customer,
        Participant::new(Role::Customer).with_id("c-1"),
        OutboxConfig::default(),
    );
    e.on_connected();
    e
}

fn cim(id: &str, sender: &str, body: Value) -> Value {
    json!({
        "id": id,
        "header": {
            "sender": {"id": "s", "type": sender, "senderName": "Alex Agent",
                       "additionalDetail": {"firstName": "Alex", "lastName": "Agent"}},
            "channelData": {"channelCustomerIdentifier": "c-1", "serviceIdentifier": "5155"},
            "conversationId": "conv-1",
            "timestamp": 1_700_000_000_000i64,
            "language": {}, "securityInfo": {}, "stamps": []
        },
        "body": body
    })
}

fn events(out: &[Output]) -> Vec<&Event> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn started(e: &mut Engine, now: Instant) {
    let out = e.on_event(
        event::CHANNEL_SESSION_STARTED,
        &[cim(
            "n-0",
            "SYSTEM",
            json!({"type": "NOTIFICATION", "notificationType": "CHANNEL_SESSION_STARTED"}),
        )],
        now,
    );
    assert!(matches!(out.last(), Some(Output::Started(id)) if id.as_str() == "conv-1"));
}

#[test]
fn session_start_queue_join_message_typing() {
    let now = Instant::now();
    let mut e = engine();
    started(&mut e, now);
    let q = e.on_event(
        event::MESSAGE_RECEIVED,
        &[cim(
            "n-1",
            "SYSTEM",
            json!({"type": "NOTIFICATION", "notificationType": "TASK_ENQUEUED"}),
        )],
        now,
    );
    assert_eq!(events(&q)[0].kind(), EventKind::Queued);
    assert_eq!(e.chat.as_ref().unwrap().state, EngagementState::Queued);
    let j = e.on_event(
        event::MESSAGE_RECEIVED,
        &[cim(
            "n-2",
            "SYSTEM",
            json!({"type": "NOTIFICATION", "notificationType": "AGENT_SUBSCRIBED",
            "notificationData": {"data": {"agentParticipant": {"participant": {"keycloakUser":
                {"id": "a1", "firstName": "Alex", "lastName": "Agent", "username": "alex"}}}}}}),
        )],
        now,
    );
    let Event::ParticipantJoined { participant, .. } = events(&j)[0] else {
        panic!("{j:?}")
    };
    assert_eq!(participant.display_name.as_deref(), Some("Alex Agent"));
    let t = e.on_event(
        event::MESSAGE_RECEIVED,
        &[cim(
            "n-3",
            "AGENT",
            json!({"type": "NOTIFICATION", "notificationType": "TYPING_STARTED"}),
        )],
        now,
    );
    assert!(matches!(events(&t)[0], Event::Typing { on: true, .. }));
    let m = e.on_event(
        event::MESSAGE_RECEIVED,
        &[cim(
            "m-1",
            "AGENT",
            json!({"type": "PLAIN", "markdownText": "hi"}),
        )],
        now,
    );
    let Event::MessageReceived(msg) = events(&m)[0] else {
        panic!()
    };
    assert_eq!(msg.content, Content::text("hi"));
    assert_eq!(msg.server_time, Some(Timestamp(1_700_000_000_000)));
    // The same message again (history, redelivery) is not announced twice.
    let again = e.on_event(
        event::MESSAGE_RECEIVED,
        &[cim(
            "m-1",
            "AGENT",
            json!({"type": "PLAIN", "markdownText": "hi"}),
        )],
        now,
    );
    assert!(events(&again).is_empty());
}

#[test]
fn echo_confirms_and_read_receipt_names_the_client_id() {
    let now = Instant::now();
    let mut e = engine();
    started(&mut e, now);
    let chat = e.chat.as_mut().unwrap();
    let m = chat
        .outbox
        .push(Content::text("hello"), Timestamp::now(), now);
    let cid = m.client_id.unwrap();
    let Poll::Send(out) = chat.outbox.poll(now) else {
        panic!()
    };
    chat.outbox.on_written(out.client_id(), now);
    let echo = e.on_event(
        event::MESSAGE_RECEIVED,
        &[cim(
            "m-9",
            "CUSTOMER",
            json!({"type": "PLAIN", "markdownText": "hello"}),
        )],
        now,
    );
    let Event::MessageSent(sent) = events(&echo)[0] else {
        panic!("{echo:?}")
    };
    assert_eq!(sent.client_id, Some(cid));
    assert_eq!(sent.id.as_ref().map(MessageId::as_str), Some("m-9"));
    let read = e.on_event(
        event::MESSAGE_RECEIVED,
        &[cim("r-1", "AGENT", json!({"type": "DELIVERYNOTIFICATION", "messageId": "m-9", "status": "READ", "reasonCode": 200}))],
        now,
    );
    assert!(matches!(events(&read)[0], Event::MessageRead { client_id: Some(c), .. } if *c == cid));
    assert_eq!(e.chat.as_ref().unwrap().transcript.len(), 1);
}

use cc_chat::Poll;

#[test]
fn cut_then_history_settles_uncertain_messages_once() {
    let now = Instant::now();
    let mut e = engine();
    started(&mut e, now);
    let chat = e.chat.as_mut().unwrap();
    chat.outbox
        .push(Content::text("got there"), Timestamp::now(), now);
    chat.outbox
        .push(Content::text("lost"), Timestamp::now(), now);
    for _ in 0..2 {
        let Poll::Send(out) = chat.outbox.poll(now) else {
            panic!()
        };
        chat.outbox.on_written(out.client_id(), now);
    }
    e.on_disconnected();
    e.on_connected();
    // The server has the first one (and an agent message sent meanwhile).
    let mut out = Vec::new();
    let ack = json!({"isChatAvailable": true, "data": [
        cim("m-1", "CUSTOMER", json!({"type": "PLAIN", "markdownText": "got there"})),
        cim("m-2", "AGENT", json!({"type": "PLAIN", "markdownText": "while you were away"})),
    ]});
    assert!(e.on_resume_ack(&[ack], now + Duration::from_millis(5), &mut out));
    let kinds: Vec<EventKind> = events(&out).iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        vec![EventKind::MessageSent, EventKind::MessageReceived]
    );
    let chat = e.chat.as_mut().unwrap();
    // Only the lost one goes again.
    let Poll::Send(out) = chat.outbox.poll(now) else {
        panic!()
    };
    assert_eq!(out.message.content, Content::text("lost"));
    assert_eq!(out.attempt, 2);
}

#[test]
fn resume_after_restart_and_server_end() {
    let now = Instant::now();
    let mut e = engine();
    let mut out = Vec::new();
    let ack = json!({"isChatAvailable": true, "data": [
        cim("m-1", "CUSTOMER", json!({"type": "PLAIN", "markdownText": "a"})),
        cim("m-2", "AGENT", json!({"type": "PLAIN", "markdownText": "b"})),
    ]});
    assert!(e.on_resume_ack(&[ack], now, &mut out));
    assert!(matches!(
        events(&out)[0],
        Event::EngagementStarted { resumed: true, .. }
    ));
    assert_eq!(e.chat.as_ref().unwrap().transcript.len(), 2);
    let end = e.on_event(event::CHANNEL_SESSION_ENDED, &[json!("agent closed")], now);
    assert!(matches!(
        events(&end)[0],
        Event::EngagementEnded {
            initiator: Initiator::Agent,
            ..
        }
    ));
    assert!(matches!(end.last(), Some(Output::SendChatEnded)));
    // An available session without history is kept (no CHAT_ENDED, unlike the widget);
    // an unavailable one ends the chat the client knew.
    let mut out = Vec::new();
    started(&mut e, now);
    assert!(e.on_resume_ack(
        &[json!({"isChatAvailable": true, "data": []})],
        now,
        &mut out
    ));
    assert!(out.is_empty(), "{out:?}");
    assert!(!e.on_resume_ack(
        &[json!({"isChatAvailable": false, "data": []})],
        now,
        &mut out
    ));
    assert!(matches!(
        events(&out)[0],
        Event::EngagementEnded {
            initiator: Initiator::Unknown,
            ..
        }
    ));
    let _ = ConnectionState::Connected;
}

#[test]
fn malformed_frames_are_protocol_errors_and_unknown_events_vendor_events() {
    let now = Instant::now();
    let mut e = engine();
    started(&mut e, now);
    for (name, arg) in [
        (
            event::MESSAGE_RECEIVED,
            json!({"header": "broken", "body": {}}),
        ),
        (event::CHANNEL_SESSION_STARTED, json!(42)),
        (event::TOKEN_GENERATED, json!(null)),
        (event::ERRORS, json!("x")),
    ] {
        let out = e.on_event(name, &[arg], now);
        assert!(
            matches!(events(&out)[0], Event::Error(err) if err.kind() == cc_core::ErrorKind::Protocol),
            "{name}: {out:?}"
        );
    }
    let out = e.on_event("SOMETHING_NEW", &[json!({"a": 1})], now);
    assert_eq!(events(&out)[0].kind(), EventKind::Vendor);
    let out = e.on_event(
        event::ERRORS,
        &[json!({"task": "CHAT_REQUESTED", "code": 408})],
        now,
    );
    assert!(
        matches!(&out[0], Output::StartFailed(err) if err.vendor_code() == Some("CHAT_REQUESTED/408"))
    );
    let out = e.on_event(event::TOKEN_GENERATED, &[json!("eyJ.x.y")], now);
    assert!(matches!(&out[0], Output::Token(t) if t.expose() == "eyJ.x.y"));
    assert!(!format!("{out:?}").contains("eyJ"));
}

#[test]
fn outgoing_envelopes() {
    let e = engine();
    let env = e.message_envelope(&Content::text("hi")).unwrap();
    let v = serde_json::to_value(&env).unwrap();
    assert_eq!(v["type"], "PLAIN");
    assert_eq!(v["body"], json!({"type": "PLAIN", "markdownText": "hi"}));
    assert_eq!(v["header"]["sender"]["type"], "CUSTOMER");
    assert_eq!(v["timestamp"], "");
    let file = Content::File(cc_core::Attachment {
        id: None,
        name: "a.png".into(),
        mime_type: "image/png".into(),
        size: Some(3),
        url: Some("http://x/file-engine/api/downloadFileStream?filename=1_a.png".into()),
    });
    let v = serde_json::to_value(e.message_envelope(&file).unwrap()).unwrap();
    assert_eq!(v["type"], "image");
    assert_eq!(v["body"]["type"], "IMAGE");
    assert_eq!(v["body"]["caption"], "a.png");
    assert_eq!(v["body"]["attachment"]["extType"], "png");
    let pdf = Content::File(cc_core::Attachment {
        id: None,
        name: "r.pdf".into(),
        mime_type: "application/pdf".into(),
        size: Some(3),
        url: Some("u".into()),
    });
    let v = serde_json::to_value(e.message_envelope(&pdf).unwrap()).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["body"]["type"].as_str()),
        (Some("application"), Some("FILE"))
    );
    assert_eq!(v["body"]["additionalDetails"]["fileName"], "r.pdf");
    let typing = serde_json::to_value(e.envelope(
        "NOTIFICATION",
        Body::notification("TYPING_STARTED"),
        false,
    ))
    .unwrap();
    assert_eq!(
        typing["header"],
        json!({"originalMessageId": null, "intent": null})
    );
    assert!(
        e.message_envelope(&Content::Notice(cc_core::Notice {
            kind: "k".into(),
            payload: json!(1)
        }))
        .is_err()
    );
}

mod props {
    use proptest::prelude::*;

    use super::*;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just("PLAIN".to_owned()),
                Just("NOTIFICATION".to_owned()),
                Just("DELIVERYNOTIFICATION".to_owned()),
                Just("IMAGE".to_owned()),
                Just("CUSTOMER".to_owned()),
                Just("AGENT".to_owned()),
                Just("conv-1".to_owned()),
                ".{0,8}",
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("id".to_owned()),
                        Just("header".to_owned()),
                        Just("body".to_owned()),
                        Just("type".to_owned()),
                        Just("sender".to_owned()),
                        Just("conversationId".to_owned()),
                        Just("notificationType".to_owned()),
                        Just("messageId".to_owned()),
                        Just("status".to_owned()),
                        Just("history".to_owned()),
                        Just("data".to_owned()),
                        Just("isChatAvailable".to_owned()),
                    ],
                    inner,
                    0..6,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn server_events_never_panic(
            name in prop_oneof![
                Just(event::MESSAGE_RECEIVED), Just(event::CHANNEL_SESSION_STARTED),
                Just(event::CONVERSATION_RESUMED), Just(event::ERRORS), Just(event::TOKEN_GENERATED),
                Just(event::CHANNEL_SESSION_ENDED), Just(event::CHAT_ENDED), Just("OTHER"),
            ],
            args in prop::collection::vec(value(), 0..3),
            ack in value(),
        ) {
            let now = Instant::now();
            let mut e = engine();
            started(&mut e, now);
            let _ = e.on_event(name, &args, now);
            let mut out = Vec::new();
            let _ = e.on_resume_ack(&[ack], now, &mut out);
        }
    }
}
