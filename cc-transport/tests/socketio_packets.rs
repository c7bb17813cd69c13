//! Property tests: the Engine.IO / Socket.IO decoders never panic, and what they encode
//! decodes back to the same packet.

use cc_transport::socketio::{EioPacket, SioPacket};
use proptest::prelude::*;
use serde_json::{Value, json};

proptest! {
    #[test]
    fn engineio_decoder_never_panics(text in ".{0,200}") {
        let _ = EioPacket::decode(&text);
    }

    #[test]
    fn socketio_decoder_never_panics(text in "[0-6]?[0-9-]{0,3}(/[a-z]{0,5},)?[0-9]{0,25}.{0,100}") {
        let _ = SioPacket::decode(&text);
    }

    #[test]
    fn socketio_decoder_never_panics_on_anything(text in ".{0,200}") {
        let _ = SioPacket::decode(&text);
    }

    #[test]
    fn events_round_trip(
        ns in "/|/[a-z]{1,8}",
        id in proptest::option::of(0u64..1_000_000),
        name in "[A-Za-z_]{1,20}",
        text in ".{0,40}",
        n in any::<i32>(),
    ) {
        let args: Vec<Value> = vec![json!({"markdownText": text}), json!(n)];
        let p = SioPacket::event(&ns, id, &name, &args);
        let decoded = SioPacket::decode(&p.encode()).unwrap();
        prop_assert_eq!(&decoded, &p);
        prop_assert_eq!(decoded.event_name(), Some(name.as_str()));
        prop_assert_eq!(decoded.args(), args);
    }

    #[test]
    fn truncated_frames_never_panic(cut in 0usize..80) {
        let frame = r#"42/web,17["MESSAGE_RECEIVED",{"id":"1","body":{"type":"PLAIN","markdownText":"héllo"}}]"#;
        let end = frame.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(frame.len());
        if let Ok(EioPacket::Message(body)) = EioPacket::decode(&frame[..end]) {
            let _ = SioPacket::decode(&body);
        }
    }
}
