//! Wire decoders: captured frames round-trip, and arbitrary or truncated input never panics.

use cc_adapter_genesys::engine::{GuestEngine, MessagingEngine};
use cc_adapter_genesys::wire::guest::{StreamEvent, WebChatMessage};
use cc_adapter_genesys::wire::messaging::{HistoryPage, Request, ServerBody, ServerFrame};
use cc_adapter_genesys::wire::{WireToken, time};
use cc_core::{EngagementId, Participant, Role};
use proptest::prelude::*;
use std::time::Instant;

const MESSAGING_FRAMES: &[&str] = &[
    r#"{"type":"response","class":"SessionResponse","code":200,"body":{"connected":true,"newSession":true}}"#,
    r#"{"type":"response","class":"SessionResponse","code":200,"body":{"connected":true,"newSession":false,"readOnly":false,"allowedMedia":{"inbound":{"fileTypes":[{"type":"*/*"}],"maxFileSizeKB":10240}},"blockedExtensions":[".ade",".adp"],"maxCustomDataBytes":2048,"durationSeconds":259200,"expirationDate":1700000000}}"#,
    r#"{"type":"message","class":"StructuredMessage","code":200,"body":{"text":"Hello","type":"Text","direction":"Outbound","id":"a1","channel":{"time":"2022-08-22T19:24:26.704Z","messageId":"a1","type":"Private","from":{"nickname":"Agent Smith","image":"https://x/y.png"}},"originatingEntity":"Human","metadata":{"correlationId":"c"}}}"#,
    r#"{"type":"message","class":"StructuredMessage","code":200,"tracingId":"t-1","body":{"text":"hi","type":"Text","direction":"Inbound","id":"a2","channel":{"time":"2022-08-22T19:24:27.704Z"},"metadata":{"correlationId":"c2"}}}"#,
    r#"{"type":"message","class":"StructuredMessage","code":200,"body":{"type":"Event","direction":"Outbound","id":"e1","channel":{"time":"2022-08-22T19:24:27.704Z"},"events":[{"eventType":"Typing","typing":{"type":"On","duration":5000}}]}}"#,
    r#"{"type":"message","class":"StructuredMessage","code":200,"body":{"type":"Event","direction":"Outbound","id":"e2","events":[{"eventType":"Presence","presence":{"type":"Disconnect"}}],"metadata":{"readOnly":"true"}}}"#,
    r#"{"type":"message","class":"StructuredMessage","code":200,"body":{"type":"Structured","direction":"Outbound","id":"s1","text":"Pick one","content":[{"contentType":"QuickReply","quickReply":{"text":"Yes","payload":"yes","action":"Message"}},{"contentType":"QuickReply","quickReply":{"text":"No","payload":"no","action":"Message"}}]}}"#,
    r#"{"type":"response","class":"PresignedUrlResponse","code":200,"tracingId":"r1","body":{"attachmentId":"a","url":"http://127.0.0.1/uploads/a","headers":{"x-amz-tagging":"abc"}}}"#,
    r#"{"type":"message","class":"UploadSuccessEvent","code":200,"body":{"attachmentId":"a","downloadUrl":"http://x","timestamp":"2022-08-22T19:24:27.704Z"}}"#,
    r#"{"type":"message","class":"UploadFailureEvent","code":200,"body":{"attachmentId":"a","errorCode":4001,"errorMessage":"bad type","timestamp":"2022-08-22T19:24:27.704Z"}}"#,
    r#"{"type":"message","class":"GenerateUrlError","code":200,"body":{"attachmentId":"a","errorCode":4002,"errorMessage":"too big"}}"#,
    r#"{"type":"response","class":"JwtResponse","code":200,"body":{"jwt":"j.w.t","exp":1700000000}}"#,
    r#"{"type":"response","class":"TooManyRequestsErrorMessage","code":429,"body":{"retryAfter":3,"errorCode":4029,"errorMessage":"Message rate too high for this session"}}"#,
    r#"{"type":"response","class":"string","code":4007,"body":"session not found"}"#,
    r#"{"type":"message","class":"ConnectionClosedEvent","code":200,"body":{"reason":"signedIn"}}"#,
    r#"{"type":"message","class":"SessionExpiredEvent","code":200,"body":{}}"#,
    r#"{"type":"message","class":"SessionClearedEvent","code":200,"body":{}}"#,
    r#"{"type":"message","class":"LogoutEvent","code":200,"body":{}}"#,
    r#"{"type":"response","class":"AttachmentDeletedResponse","code":200,"body":{"attachmentId":"a"}}"#,
];

const GUEST_FRAMES: &[&str] = &[
    r#"{"topicName":"v2.conversations.chats.aa06a6fc.messages","version":"2","eventBody":{"id":"m1","conversation":{"id":"aa06a6fc"},"sender":{"id":"s1"},"body":"Hi, how are you?","bodyType":"standard","timestamp":"2019-06-18T16:59:22.277Z"},"metadata":{"CorrelationId":"c","type":"message"}}"#,
    r#"{"topicName":"v2.conversations.chats.aa06a6fc.members","version":"2","eventBody":{"conversation":{"id":"aa06a6fc"},"member":{"id":"s1","state":"CONNECTED"},"timestamp":"2019-06-18T16:59:09.689Z"},"metadata":{"CorrelationId":"c","type":"member-change"}}"#,
    r#"{"topicName":"v2.conversations.chats.aa06a6fc.messages","version":"2","eventBody":{"id":"t1","conversation":{"id":"aa06a6fc"},"sender":{"id":"s1"},"timestamp":"2019-06-18T16:59:09.689Z"},"metadata":{"CorrelationId":"c","type":"typing-indicator"}}"#,
    r#"{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}"#,
    r#"{"topicName":"channel.metadata","eventBody":{"message":"pong"}}"#,
];

#[test]
fn captured_messaging_frames_decode_and_round_trip() {
    for f in MESSAGING_FRAMES {
        let frame = ServerFrame::decode(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(!matches!(frame.body, ServerBody::Unknown { .. }), "{f}");
        let again = ServerFrame::decode(&frame.to_json()).unwrap();
        assert_eq!(frame, again, "{f}");
    }
}

#[test]
fn captured_guest_frames_decode_and_round_trip() {
    for f in GUEST_FRAMES {
        let ev = StreamEvent::decode(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(!matches!(ev, StreamEvent::Unknown { .. }), "{f}");
        let n = ev.to_notification("aa06a6fc", "c");
        let again = StreamEvent::from_notification(n).unwrap();
        assert_eq!(ev, again);
    }
}

#[test]
fn unknown_class_and_topic_are_kept() {
    let f = ServerFrame::decode(
        r#"{"type":"message","class":"ResumeTokenResponse","code":200,"body":{"a":1}}"#,
    )
    .unwrap();
    assert!(
        matches!(f.body, ServerBody::Unknown { ref class, .. } if class == "ResumeTokenResponse")
    );
    let e = StreamEvent::decode(r#"{"topicName":"v2.conversations.chats.x.mediarequests","eventBody":{},"metadata":{"type":"media-request"}}"#).unwrap();
    assert!(matches!(e, StreamEvent::Unknown { .. }));
}

#[test]
fn requests_serialize_as_documented() {
    let r = Request::ConfigureSession {
        token: WireToken::from("t"),
        deployment_id: "d".into(),
        start_new: Some(false),
        journey_context: None,
        tracing_id: Some("x".into()),
    };
    assert_eq!(
        r.to_json(),
        r#"{"action":"configureSession","token":"t","deploymentId":"d","startNew":false,"tracingId":"x"}"#
    );
    assert_eq!(Request::decode(&r.to_json()).unwrap(), r);
    assert!(!format!("{r:?}").contains("\"t\""));
    let m: WebChatMessage = serde_json::from_str(r#"{"id":"1","body":"x"}"#).unwrap();
    assert_eq!(m.body, "x");
}

fn messaging_engine() -> MessagingEngine {
    MessagingEngine::new(
        WireToken::from("t"),
        "d",
        EngagementId::from("e"),
        Participant::new(Role::Customer),
    )
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in ".{0,300}") {
        let _ = ServerFrame::decode(&s);
        let _ = StreamEvent::decode(&s);
        let _ = Request::decode(&s);
        let _ = HistoryPage::decode(&s);
        let _ = time::parse_ms(&s);
        let now = Instant::now();
        messaging_engine().handle_text(now, &s);
        GuestEngine::new("c".into(), "m".into(), Participant::new(Role::Customer)).handle_text(now, &s);
    }

    #[test]
    fn truncated_frames_never_panic_and_become_protocol_errors(i in 0usize..MESSAGING_FRAMES.len(), cut in 0usize..400) {
        let f = MESSAGING_FRAMES[i];
        let cut = cut.min(f.len().saturating_sub(1));
        let t = &f[..cut];
        prop_assert!(ServerFrame::decode(t).is_err());
        let mut e = messaging_engine();
        e.handle_text(Instant::now(), t);
        let out = e.poll_output();
        let is_protocol = matches!(out, Some(cc_adapter_genesys::engine::Output::Event(cc_core::Event::Error(ref err))) if err.kind() == cc_core::ErrorKind::Protocol);
        prop_assert!(is_protocol);
    }

    #[test]
    fn truncated_guest_frames_never_panic(i in 0usize..GUEST_FRAMES.len(), cut in 0usize..400) {
        let f = GUEST_FRAMES[i];
        let cut = cut.min(f.len().saturating_sub(1));
        prop_assert!(StreamEvent::decode(&f[..cut]).is_err());
    }

    #[test]
    fn arbitrary_json_values_never_panic(v in arb_json()) {
        let s = v.to_string();
        let _ = ServerFrame::decode(&s);
        let _ = StreamEvent::decode(&s);
        for class in ["SessionResponse", "StructuredMessage", "JwtResponse", "string", "UploadSuccessEvent"] {
            let env = serde_json::json!({"type":"message","class":class,"code":200,"body":v});
            let _ = ServerFrame::decode(&env.to_string());
        }
        for kind in ["message", "member-change", "typing-indicator"] {
            let n = serde_json::json!({"topicName":"v2.conversations.chats.c.messages","eventBody":v,"metadata":{"type":kind}});
            let _ = StreamEvent::decode(&n.to_string());
        }
    }

    #[test]
    fn times_round_trip(ms in -10_000_000_000_000i64..10_000_000_000_000i64) {
        prop_assert_eq!(time::parse_ms(&time::format_ms(ms)), Some(ms));
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("id".to_owned()),
                    Just("type".to_owned()),
                    Just("text".to_owned()),
                    Just("body".to_owned()),
                    Just("member".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
