//! Wire decoding: sample frames from `shared/protocols/expertflow.md` decode as the vendor
//! client reads them; arbitrary and truncated input never panics.

use cc_adapter_expertflow::wire::{
    Body, BodyKind, ChatRequested, CimMessage, ConversationResumed, Envelope, ErrorsPayload,
    MessageAck, ResumeAck, UploadResponse, WidgetConfig,
};
use proptest::prelude::*;
use serde_json::{Value, json};

/// The CIM message of the vendor documentation's example (agent message).
const CIM_AGENT: &str = r#"{
  "id": "6479a1b5c2d3e4f5a6b7c8d9",
  "header": {
    "channelData": {"channelCustomerIdentifier": "923331234567", "serviceIdentifier": "5155",
                    "requestPriority": 0, "additionalAttributes": []},
    "language": {}, "timestamp": 1685693877123, "securityInfo": {}, "stamps": [],
    "intent": null, "entities": {}, "channelSessionId": "6479a1b5c2d3e4f5a6b7c8da",
    "conversationId": "6479a1b5c2d3e4f5a6b7c8db",
    "customer": {"_id": "6479a1b5c2d3e4f5a6b7c8dc", "firstName": "Casey", "phoneNumber": [], "isAnonymous": false},
    "sender": {"id": "a-1", "type": "AGENT", "senderName": "alex",
               "additionalDetail": {"firstName": "Alex", "lastName": "Agent"}}
  },
  "body": {"type": "PLAIN", "markdownText": "Hello, how can I help?"}
}"#;

const SAMPLES: &[&str] = &[
    CIM_AGENT,
    r#"{"id":"n1","header":{"sender":{"type":"SYSTEM"},"conversationId":"c1"},
        "body":{"type":"NOTIFICATION","notificationType":"AGENT_SUBSCRIBED","notificationData":{"data":{"agentParticipant":{"participant":{"keycloakUser":{"firstName":"Alex","lastName":"Agent","username":"alex"}}}}}}}"#,
    r#"{"id":"r1","header":{"sender":{"type":"AGENT"}},"body":{"type":"DELIVERYNOTIFICATION","messageId":"m1","status":"READ","reasonCode":200}}"#,
    r#"{"id":"f1","header":{"sender":{"type":"AGENT"}},"body":{"type":"IMAGE","caption":"a.png","markdownText":"",
        "attachment":{"mediaUrl":"https://h/file-engine/api/downloadFileStream?filename=13318_a.png","mimeType":"image/png","size":52991}}}"#,
    r#"{"id":"b1","header":{"sender":{"type":"BOT"}},"body":{"type":"BUTTON","markdownText":"Pick","buttonMessageType":"Quick_Replies",
        "buttons":[{"title":"Yes","payload":"yes","type":"postback"}]}}"#,
    r#"{"id":"x1","header":{"sender":{"type":"AGENT"}},"body":{"type":"WRAPUP","anything":1}}"#,
];

#[test]
fn sample_cim_messages_decode() {
    let m: CimMessage = serde_json::from_str(CIM_AGENT).unwrap();
    assert_eq!(m.header.timestamp_ms(), Some(1_685_693_877_123));
    assert_eq!(
        m.header.conversation_id.as_deref(),
        Some("6479a1b5c2d3e4f5a6b7c8db")
    );
    assert_eq!(m.body.kind(), BodyKind::Plain);
    assert_eq!(
        m.header.extra["channelSessionId"],
        "6479a1b5c2d3e4f5a6b7c8da"
    );
    let kinds: Vec<BodyKind> = SAMPLES
        .iter()
        .map(|s| serde_json::from_str::<CimMessage>(s).unwrap().body.kind())
        .collect();
    assert_eq!(
        kinds,
        vec![
            BodyKind::Plain,
            BodyKind::Notification,
            BodyKind::DeliveryNotification,
            BodyKind::Media,
            BodyKind::Button,
            BodyKind::Unknown("WRAPUP".to_owned()),
        ]
    );
    // Unknown fields survive a round trip.
    let x: CimMessage = serde_json::from_str(SAMPLES[5]).unwrap();
    assert_eq!(serde_json::to_value(&x).unwrap()["body"]["anything"], 1);
}

#[test]
fn customer_frames_match_the_protocol_notes() {
    let req: ChatRequested = serde_json::from_value(json!({
        "channelCustomerIdentifier": "923331234567", "serviceIdentifier": "5155",
        "additionalAttributes": [{"key": "WebChannelData", "type": "WebChannelData", "value": {
            "browserDeviceInfo": {"browserId": "1", "browserIdExpiryTime": "9999", "browserName": "chrome", "deviceType": "desktop"},
            "queue": "", "locale": {"timezone": "Asia/Karachi", "language": "en", "country": "PK"},
            "formData": {"id": "1", "formId": "f", "filledBy": "web-widget", "attributes": [], "entities": {}, "createdOn": 1}}}]
    }))
    .unwrap();
    assert_eq!(
        req.web_channel_data().unwrap()["browserDeviceInfo"]["deviceType"],
        "desktop"
    );
    let env: Envelope = serde_json::from_value(json!({
        "type": "NOTIFICATION",
        "header": {"originalMessageId": null, "intent": null},
        "body": {"type": "NOTIFICATION", "notificationType": "TYPING_STARTED", "markdownText": ""},
        "customer": {"serviceIdentifier": "5155", "channelCustomerIdentifier": "c",
            "browserDeviceInfo": {"browserId": "", "browserIdExpiryTime": "", "browserName": "", "deviceType": "mobile"},
            "queue": "", "locale": {"timezone": "", "language": "", "country": ""},
            "formData": {"id": "", "formId": "", "filledBy": "", "attributes": []}},
        "timestamp": ""
    }))
    .unwrap();
    assert_eq!(env.body, Body::notification("TYPING_STARTED"));
    let ack: ResumeAck =
        serde_json::from_value(json!({"isChatAvailable": true, "data": "previous chat data"}))
            .unwrap();
    assert!(ack.is_chat_available);
    let ack: MessageAck = serde_json::from_value(json!({"code": 200, "message": "ok"})).unwrap();
    assert_eq!(ack.code, 200);
    let e: ErrorsPayload =
        serde_json::from_value(json!({"task": "CHAT_REQUESTED", "code": 408})).unwrap();
    assert_eq!(e.task.as_deref(), Some("CHAT_REQUESTED"));
    let r: ConversationResumed = serde_json::from_value(
        json!({"history": [serde_json::from_str::<Value>(CIM_AGENT).unwrap()]}),
    )
    .unwrap();
    assert_eq!(r.history.len(), 1);
    let u: UploadResponse = serde_json::from_value(json!({"message": "File uploaded successfully",
        "etag": "9109239e595cd2706c3b2180594351b6", "name": "13318_developer.png", "type": "image/png", "size": 52991}))
    .unwrap();
    assert_eq!(u.name, "13318_developer.png");
    let w: WidgetConfig = serde_json::from_value(
        json!({"id": "629dd96ac2fc5e06bf842c19", "widgetIdentifier": "web",
        "enableFileTransfer": true, "form": "", "webRtc": null, "theme": "yellow_theme"}),
    )
    .unwrap();
    assert_eq!(w.extra["theme"], "yellow_theme");
    let w: WidgetConfig = serde_json::from_value(json!({"webRtc": {"sipExtension": "99",
        "extensionPassword": "pa55word", "wssFs": "wss://switch:7443"}}))
    .unwrap();
    let shown = format!("{w:?}");
    assert!(
        !shown.contains("pa55word") && shown.contains("extensionPassword"),
        "{shown}"
    );
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("id".to_owned()),
                    Just("header".to_owned()),
                    Just("body".to_owned()),
                    Just("type".to_owned()),
                    Just("sender".to_owned()),
                    Just("timestamp".to_owned()),
                    Just("attachment".to_owned()),
                    "[a-z]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        let _ = serde_json::from_str::<CimMessage>(&text);
        let _ = serde_json::from_str::<Envelope>(&text);
        let _ = serde_json::from_str::<ResumeAck>(&text);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        if let Ok(m) = serde_json::from_value::<CimMessage>(v.clone()) {
            let _ = m.body.kind();
            let _ = m.header.timestamp_ms();
        }
        let _ = serde_json::from_value::<ConversationResumed>(v.clone());
        let _ = serde_json::from_value::<ErrorsPayload>(v);
    }

    #[test]
    fn truncated_samples_never_panic(i in 0usize..SAMPLES.len(), cut in 0usize..400) {
        let s = SAMPLES[i];
        let end = s.char_indices().map(|(k, _)| k).nth(cut).unwrap_or(s.len());
        let _ = serde_json::from_str::<CimMessage>(&s[..end]);
    }
}
