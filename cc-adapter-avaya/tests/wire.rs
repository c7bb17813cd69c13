//! Decoders on sample bodies from the protocol notes, and property tests: arbitrary and
//! truncated input never panics; unknown event types stay readable.

use cc_adapter_avaya::config::token_expiry;
use cc_adapter_avaya::wire::{self, ParticipantType, ServerEvent};
use cc_core::{ErrorKind, Secret};
use proptest::prelude::*;

const BATCH: &str = r#"[
 {"eventId":"1","eventType":"ENGAGEMENT_CREATED","sessionId":"s-1","engagementId":"e-1"},
 {"eventId":"2","eventType":"PARTICIPANT_ADDED","engagementId":"e-1","dialogId":"d-1","eventDate":"2024-01-31T12:00:00Z",
  "participant":{"participantId":"p-1","participantType":"CUSTOMER","displayName":"Casey"},"sessionId":"s-1"},
 {"eventId":"3","eventType":"MESSAGE","engagementId":"e-1","dialogId":"d-1","eventDate":"2024-01-31T12:00:01Z",
  "message":{"messageId":"m-1","messageIndex":1,"receivedAt":"2024-01-31T12:00:01.250Z","lastUpdatedAt":"2024-01-31T12:00:01.250Z",
   "body":{"elementType":"TEXT","elementText":{"text":"Hello","textFormat":"PLAINTEXT"}}},
  "participant":{"participantId":"a-1","participantType":"AGENT","displayName":"Alex"}},
 {"eventId":"4","eventType":"ENGAGEMENT_ERROR","engagementId":"e-1","dialogId":"d-1",
  "error":{"type":"about:blank","title":"Routing failed","detail":"no agents"}},
 {"eventId":"5","eventType":"TYPING_STARTED","engagementId":"e-1"},
 {"eventId":"6","eventType":"MESSAGE","engagementId":42}
]"#;

#[test]
fn a_sample_batch_decodes_with_unknown_and_malformed_items_kept_apart() {
    let items = wire::decode_events(BATCH.as_bytes()).unwrap();
    assert_eq!(items.len(), 6);
    assert!(matches!(
        items[0].event,
        Ok(ServerEvent::EngagementCreated(_))
    ));
    match &items[1].event {
        Ok(ServerEvent::ParticipantAdded(p)) => {
            assert_eq!(p.participant.participant_type, ParticipantType::Customer);
            assert_eq!(p.session_id.as_deref(), Some("s-1"));
        }
        other => panic!("{other:?}"),
    }
    match &items[2].event {
        Ok(ServerEvent::Message(m)) => {
            assert_eq!(m.message.body.text(), Some("Hello"));
            assert_eq!(
                wire::timestamp(m.message.received_at.as_deref()),
                Some(cc_core::Timestamp(1_706_702_401_250))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&items[3].event, Ok(ServerEvent::EngagementError(e)) if e.error.title == "Routing failed")
    );
    assert!(
        matches!(&items[4].event, Ok(ServerEvent::Unknown { event_type, .. }) if event_type == "TYPING_STARTED")
    );
    let bad = items[5].event.as_ref().unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::Protocol);
    assert_eq!(
        items[5].event_id.as_deref(),
        Some("6"),
        "a bad event can still be acked"
    );
}

#[test]
fn a_body_that_is_not_an_array_is_a_protocol_error() {
    let e = wire::decode_events(br#"{"eventId":"1"}"#).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
}

#[test]
fn unknown_participant_types_decode() {
    let p: wire::WireParticipant =
        serde_json::from_str(r#"{"participantId":"x","participantType":"ROBOT"}"#).unwrap();
    assert_eq!(p.participant_type, ParticipantType::Unknown);
}

#[test]
fn a_history_page_decodes() {
    let page: wire::MessagesPage = serde_json::from_str(
        r#"{
      "messages":[{"messageId":"m-2","dialogId":"d","engagementId":"e","messageIndex":2,
        "body":{"elementType":"TEXT","elementText":{"text":"hi","textFormat":"PLAINTEXT"}},
        "senderParticipantId":"p","participantType":"CUSTOMER","displayName":"Casey",
        "receivedAt":"2024-01-31T12:00:00Z","lastUpdatedAt":"2024-01-31T12:00:00Z"}],
      "pagination":{"pageNumber":1},"links":{"next":""}}"#,
    )
    .unwrap();
    assert_eq!(
        page.messages[0].sender().participant_type,
        ParticipantType::Customer
    );
    assert!(page.links.next.is_empty());
}

#[test]
fn token_expiry_reads_the_third_part() {
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1700000000}"#);
    let t = Secret::new(format!("jwt.eyJhbGciOiJSUzI1NiJ9.{payload}.sig"));
    assert_eq!(token_expiry(&t), Ok(1_700_000_000));
    assert!(token_expiry(&Secret::new("eyJ.a.b")).is_err());
    assert!(token_expiry(&Secret::new("jwt.a.!!!.c")).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = wire::decode_events(&bytes);
        let _ = wire::Problem::parse(&bytes);
        let _ = cc_adapter_avaya::error::from_status("GET /x", 404, None, &bytes);
        let _ = wire::timestamp(Some(&String::from_utf8_lossy(&bytes)));
    }

    #[test]
    fn truncated_batches_never_panic(cut in 0..BATCH.len()) {
        let _ = wire::decode_events(&BATCH.as_bytes()[..cut]);
    }

    #[test]
    fn arbitrary_event_objects_never_panic(kind in "[A-Z_]{0,24}", id in any::<Option<u32>>(), extra in "\\PC{0,40}") {
        let mut v = serde_json::json!({ "eventType": kind, "x": extra });
        if let Some(id) = id { v["eventId"] = serde_json::json!(id); }
        let _ = wire::decode_event(v);
    }

    #[test]
    fn arbitrary_tokens_never_panic(s in "\\PC{0,80}") {
        let _ = token_expiry(&Secret::new(s));
    }
}
