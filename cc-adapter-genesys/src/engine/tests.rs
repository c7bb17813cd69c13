use super::*;
use serde_json::json;

fn me() -> Participant {
    Participant::new(Role::Customer).with_name("Jonny")
}

fn engine() -> MessagingEngine {
    MessagingEngine::new(
        WireToken::from("tok"),
        "dep",
        EngagementId::from("e-1"),
        me(),
    )
}

fn drain(e: &mut MessagingEngine) -> (Vec<Value>, Vec<Event>, Vec<Output>) {
    let (mut frames, mut events, mut other) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(o) = e.poll_output() {
        match o {
            Output::Send(s) => frames.push(serde_json::from_str(&s).unwrap()),
            Output::Event(ev) => events.push(ev),
            o => other.push(o),
        }
    }
    (frames, events, other)
}

fn configured(now: Instant) -> MessagingEngine {
    let mut e = engine();
    e.handle_connected(now);
    let (f, ..) = drain(&mut e);
    assert_eq!(f[0]["action"], "configureSession");
    assert_eq!(f[0]["deploymentId"], "dep");
    e.handle_text(
        now,
        r#"{"type":"response","class":"SessionResponse","code":200,"body":{"connected":true,"newSession":true}}"#,
    );
    drain(&mut e);
    e
}

/// The client id of a message the engine accepted.
fn sent_id(accepted: Result<Message, Error>) -> ClientMessageId {
    accepted.unwrap().client_id.unwrap()
}

/// The agent's Presence `Disconnect` of a conversation that stays read-only.
fn read_only_disconnect() -> String {
    json!({"type":"message","class":"StructuredMessage","code":200,"body":{"type":"Event","direction":"Outbound",
        "id":"p1","events":[{"eventType":"Presence","presence":{"type":"Disconnect"}}],"metadata":{"readOnly":"true"}}})
    .to_string()
}

fn echo(tracing: &str, id: &str, text: &str) -> String {
    json!({"type":"message","class":"StructuredMessage","code":200,"tracingId":tracing,
        "body":{"id":id,"type":"Text","text":text,"direction":"Inbound",
        "channel":{"time":"2024-01-01T00:00:00.000Z"},"metadata":{"correlationId":"c"}}})
    .to_string()
}

#[test]
fn paces_two_messages_per_second_and_queues_the_rest() {
    let t0 = Instant::now();
    let mut e = configured(t0);
    for i in 0..5 {
        e.send_message(t0, Content::text(format!("m{i}")), false)
            .unwrap();
    }
    let (f, ..) = drain(&mut e);
    assert_eq!(f.len(), 1, "one goes out at once, the rest are paced");
    assert_eq!(f[0]["action"], "onMessage");
    assert_eq!(f[0]["message"]["text"], "m0");
    let step = (Duration::from_secs(1) + PACING_MARGIN) / 2;
    assert_eq!(e.poll_timeout(t0), Some(t0 + step));
    e.handle_timeout(t0 + step - Duration::from_millis(1));
    assert!(drain(&mut e).0.is_empty());
    let mut sent = vec![f[0]["message"]["text"].clone()];
    for k in 1..5u32 {
        e.handle_timeout(t0 + step * k);
        let (f, ..) = drain(&mut e);
        assert_eq!(f.len(), 1, "at step {k}");
        sent.push(f[0]["message"]["text"].clone());
    }
    assert_eq!(sent, ["m0", "m1", "m2", "m3", "m4"]);
    // Never more than two in any second.
    assert!(step * 2 > Duration::from_secs(1));
    assert_eq!(e.unacknowledged(), 5);
}

#[test]
fn echo_with_tracing_id_acknowledges_once() {
    let t0 = Instant::now();
    let mut e = configured(t0);
    let id = sent_id(e.send_message(t0, Content::text("hi"), false));
    let (f, ..) = drain(&mut e);
    assert_eq!(f[0]["tracingId"], id.to_string());
    assert_eq!(
        f[0]["message"]["metadata"][CUSTOM_MESSAGE_ID],
        id.to_string()
    );
    e.handle_text(t0, &echo(&id.to_string(), "m-1", "hi"));
    e.handle_text(t0, &echo(&id.to_string(), "m-1", "hi"));
    let (_, ev, _) = drain(&mut e);
    assert_eq!(ev.len(), 1);
    let Event::MessageSent(m) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(m.client_id, Some(id));
    assert_eq!(m.id.as_ref().unwrap().as_str(), "m-1");
    assert_eq!(e.unacknowledged(), 0);
}

#[test]
fn rate_limit_requeues_at_the_head() {
    let t0 = Instant::now();
    let mut e = configured(t0);
    let id = sent_id(e.send_message(t0, Content::text("a"), false));
    drain(&mut e);
    e.handle_text(
        t0,
        &json!({"type":"response","class":"TooManyRequestsErrorMessage","code":429,"tracingId":id.to_string(),
            "body":{"retryAfter":3,"errorCode":4029,"errorMessage":"Message rate too high for this session"}})
        .to_string(),
    );
    let (f, ev, _) = drain(&mut e);
    assert!(f.is_empty());
    assert!(matches!(&ev[0], Event::Error(err) if err.vendor_code() == Some("4029")));
    assert_eq!(e.poll_timeout(t0), Some(t0 + Duration::from_secs(3)));
    e.handle_timeout(t0 + Duration::from_secs(3));
    let (f, ..) = drain(&mut e);
    assert_eq!(f[0]["message"]["text"], "a");
}

#[test]
fn message_error_fails_that_message() {
    let t0 = Instant::now();
    let mut e = configured(t0);
    let id = sent_id(e.send_message(t0, Content::text("a"), false));
    drain(&mut e);
    e.handle_text(
        t0,
        &json!({"type":"response","class":"string","code":4011,"tracingId":id.to_string(),"body":"Message too long"})
            .to_string(),
    );
    let (_, ev, _) = drain(&mut e);
    assert!(
        matches!(&ev[0], Event::MessageFailed { client_id, error, .. }
        if *client_id == id && error.vendor_code() == Some("4011"))
    );
}

#[test]
fn reconnect_checks_history_before_resending() {
    let t0 = Instant::now();
    let mut e = configured(t0);
    let send = |e: &mut MessagingEngine, t: Instant, text: &str| {
        sent_id(e.send_message(t, Content::text(text), false))
    };
    let a = send(&mut e, t0, "a");
    let _b = send(&mut e, t0, "b");
    e.handle_timeout(t0 + Duration::from_millis(550));
    assert_eq!(drain(&mut e).0.len(), 2, "a and b are on the wire");
    e.handle_disconnected(t0);
    let _c = send(&mut e, t0, "c");
    assert!(
        drain(&mut e).0.is_empty(),
        "nothing goes out while disconnected"
    );
    let t1 = t0 + Duration::from_secs(5);
    e.handle_connected(t1);
    e.handle_text(
        t1,
        r#"{"type":"response","class":"SessionResponse","code":200,"body":{"connected":true,"newSession":false}}"#,
    );
    let (f, _, other) = drain(&mut e);
    assert_eq!(f.len(), 1, "only configureSession");
    assert!(matches!(other[0], Output::Backfill));
    // The server got `a` before the cut; `b` was lost. An agent wrote meanwhile.
    let page: mw::HistoryPage = serde_json::from_value(json!({"entities":[
        {"id":"x-2","type":"Text","text":"while away","direction":"Outbound","originatingEntity":"Human",
         "channel":{"time":"2024-01-01T00:00:02.000Z","from":{"nickname":"Ann"}}},
        {"id":"x-1","type":"Text","text":"a","direction":"Inbound",
         "channel":{"time":"2024-01-01T00:00:01.000Z"},"metadata":{"customMessageId":a.to_string()}}
    ],"pageSize":25,"pageNumber":1,"total":2,"pageCount":1}))
    .unwrap();
    e.handle_history(t1, Some(page));
    e.handle_timeout(t1 + Duration::from_millis(550));
    let (f, ev, _) = drain(&mut e);
    let texts: Vec<_> = f.iter().map(|f| f["message"]["text"].clone()).collect();
    assert_eq!(texts, vec![json!("b"), json!("c")]);
    let kinds: Vec<_> = ev.iter().map(Event::kind).collect();
    use cc_core::EventKind as K;
    assert_eq!(
        kinds,
        vec![K::MessageSent, K::ParticipantJoined, K::MessageReceived]
    );
    // The same history again (another reconnect) reports nothing twice.
    e.handle_history(t1, None);
    assert!(drain(&mut e).1.is_empty());
}

#[test]
fn agent_typing_times_out_and_clears_on_message() {
    let t0 = Instant::now();
    let mut e = configured(t0);
    let typing = json!({"type":"message","class":"StructuredMessage","code":200,"body":{"type":"Event","direction":"Outbound",
        "id":"t1","channel":{"time":"2024-01-01T00:00:00Z","from":{"nickname":"Ann"}},
        "events":[{"eventType":"Typing","typing":{"type":"On","duration":5000}}]}});
    e.handle_text(t0, &typing.to_string());
    let (_, ev, _) = drain(&mut e);
    assert!(matches!(ev.last(), Some(Event::Typing { on: true, .. })));
    assert_eq!(e.poll_timeout(t0).unwrap(), t0 + Duration::from_secs(5));
    e.handle_timeout(t0 + Duration::from_secs(5));
    let (_, ev, _) = drain(&mut e);
    assert!(matches!(ev.as_slice(), [Event::Typing { on: false, .. }]));
}

#[test]
fn typing_cooldown() {
    let t0 = Instant::now();
    let mut e = configured(t0);
    assert!(e.typing(t0));
    assert!(!e.typing(t0 + Duration::from_secs(1)));
    assert!(e.typing(t0 + TYPING_COOLDOWN));
    let (f, ..) = drain(&mut e);
    assert_eq!(f.len(), 2);
    assert_eq!(f[0]["message"]["events"][0]["typing"]["type"], "On");
}

#[test]
fn presence_disconnect_ends_and_unknown_class_is_vendor() {
    let t0 = Instant::now();
    let mut e = configured(t0);
    e.handle_text(t0, &read_only_disconnect());
    e.handle_text(
        t0,
        r#"{"type":"message","class":"BrandNewEvent","code":200,"body":{"x":1}}"#,
    );
    e.handle_text(t0, r#"{"type":"message","class":"StructuredMessage""#);
    let (_, ev, _) = drain(&mut e);
    assert!(matches!(
        &ev[0],
        Event::EngagementEnded {
            initiator: Initiator::Agent,
            ..
        }
    ));
    assert!(e.read_only());
    assert!(matches!(&ev[1], Event::Vendor { name, .. } if &**name == "BrandNewEvent"));
    assert!(matches!(&ev[2], Event::Error(err) if err.kind() == cc_core::ErrorKind::Protocol));
}

#[test]
fn prefilters_hide_matching_messages() {
    let t0 = Instant::now();
    let mut e = configured(t0);
    assert!(e.prefilters_mut().add(&["("]).is_err());
    e.prefilters_mut().add(&["^#code"]).unwrap();
    e.handle_text(t0, &json!({"type":"message","class":"StructuredMessage","code":200,"body":{"type":"Text","direction":"Outbound",
        "id":"o1","text":"#code 1234"}}).to_string());
    let (_, ev, _) = drain(&mut e);
    assert!(matches!(ev.last(), Some(Event::MessageReceived(m)) if m.hidden));
}

fn guest() -> GuestEngine {
    GuestEngine::new("conv".into(), "me".into(), me())
}

/// An event-stream frame of conversation `conv`: `topic` (`messages`, `members`), metadata
/// `kind`, `body`.
fn stream(topic: &str, kind: &str, body: Value) -> String {
    json!({"topicName":format!("v2.conversations.chats.conv.{topic}"),"version":"2","eventBody":body,
        "metadata":{"CorrelationId":"c","type":kind}})
    .to_string()
}

fn gdrain(e: &mut GuestEngine) -> (Vec<HttpCall>, Vec<Event>, Vec<Output>) {
    let (mut calls, mut events, mut other) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(o) = e.poll_output() {
        match o {
            Output::Http(c) => calls.push(c),
            Output::Event(ev) => events.push(ev),
            o => other.push(o),
        }
    }
    (calls, events, other)
}

#[test]
fn guest_messages_are_posted_paced_and_deduped() {
    let t0 = Instant::now();
    let mut e = guest();
    e.handle_connected(t0);
    let mut ids = Vec::new();
    for i in 0..3 {
        let m = e
            .send_message(t0, Content::text(format!("m{i}")), false)
            .unwrap();
        ids.push(m.client_id.unwrap());
    }
    let (calls, ..) = gdrain(&mut e);
    assert_eq!(calls.len(), 1, "paced: one now, the next after 550 ms");
    assert_eq!(
        calls[0].path,
        "/api/v2/webchat/guest/conversations/conv/members/me/messages"
    );
    assert_eq!(calls[0].body.as_ref().unwrap()["bodyType"], "standard");
    let reply = json!({"id":"m-1","conversation":{"id":"conv"},"sender":{"id":"me"},"body":"m0","bodyType":"standard","timestamp":"2024-01-01T00:00:00.000Z"});
    e.handle_response(t0, &calls[0], Ok(reply.clone()));
    // The stream echo of the same message is not reported again.
    e.handle_text(t0, &stream("messages", "message", reply));
    let (_, ev, _) = gdrain(&mut e);
    assert_eq!(ev.len(), 1);
    assert!(matches!(&ev[0], Event::MessageSent(m) if m.client_id == Some(ids[0])));
    // An echo that overtakes the POST response confirms by content, once.
    e.handle_timeout(t0 + Duration::from_millis(550));
    let (calls, ..) = gdrain(&mut e);
    assert_eq!(calls.len(), 1);
    let echo = json!({"id":"m-2","conversation":{"id":"conv"},"sender":{"id":"me"},"body":"m1","bodyType":"standard","timestamp":"2024-01-01T00:00:01.000Z"});
    e.handle_text(t0, &stream("messages", "message", echo.clone()));
    e.handle_response(t0, &calls[0], Ok(echo));
    let (_, ev, _) = gdrain(&mut e);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(matches!(&ev[0], Event::MessageSent(m) if m.client_id == Some(ids[1])));
}

#[test]
fn guest_members_join_leave_and_end() {
    let t0 = Instant::now();
    let mut e = guest();
    e.handle_connected(t0);
    let mc = |id: &str, state: &str| {
        let change = json!({"conversation":{"id":"conv"},"member":{"id":id,"state":state},
            "timestamp":"2024-01-01T00:00:00Z"});
        stream("members", "member-change", change)
    };
    e.handle_text(t0, &mc("agent", "CONNECTED"));
    let (_, _, other) = gdrain(&mut e);
    assert!(matches!(&other[0], Output::FetchMember(id) if id == "agent"));
    e.handle_member(gw::MemberInfo {
        id: Some("agent".into()),
        display_name: Some("Ann".into()),
        role: Some(MemberRole::Agent),
        state: Some(MemberState::Connected),
        ..Default::default()
    });
    e.handle_text(t0, &mc("agent", "DISCONNECTED"));
    e.handle_text(t0, &mc("me", "DISCONNECTED"));
    e.handle_text(
        t0,
        r#"{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}"#,
    );
    let (_, ev, _) = gdrain(&mut e);
    use cc_core::EventKind as K;
    let kinds: Vec<_> = ev.iter().map(Event::kind).collect();
    assert_eq!(
        kinds,
        vec![K::ParticipantJoined, K::ParticipantLeft, K::EngagementEnded]
    );
    assert!(e.send_message(t0, Content::text("x"), false).is_err());
}

#[test]
fn guest_reconnect_backfills_after_last_seen() {
    let t0 = Instant::now();
    let mut e = guest();
    e.handle_connected(t0);
    let msg = json!({"id":"m-9","conversation":{"id":"conv"},"sender":{"id":"agent"},"body":"hello","bodyType":"standard"});
    e.handle_text(t0, &stream("messages", "message", msg));
    e.handle_disconnected();
    e.handle_connected(t0);
    let (calls, ev, _) = gdrain(&mut e);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        calls[0].path,
        "/api/v2/webchat/guest/conversations/conv/messages?after=m-9&maxResults=100"
    );
    let page = json!({"pageSize":100,"entities":[
        {"id":"m-9","sender":{"id":"agent"},"body":"hello","bodyType":"standard"},
        {"id":"m-10","sender":{"id":"agent"},"body":"missed","bodyType":"standard"}]});
    e.handle_response(t0, &calls[0], Ok(page));
    let (_, ev, _) = gdrain(&mut e);
    assert_eq!(ev.len(), 1);
    assert!(matches!(&ev[0], Event::MessageReceived(m) if m.content == Content::text("missed")));
}

#[test]
fn guest_typing_times_out_after_four_seconds() {
    let t0 = Instant::now();
    let mut e = guest();
    let t = json!({"id":"t-1","conversation":{"id":"conv"},"sender":{"id":"agent"}});
    e.handle_text(t0, &stream("messages", "typing-indicator", t));
    assert_eq!(e.poll_timeout(t0), Some(t0 + AGENT_TYPING_TIMEOUT));
    e.handle_timeout(t0 + AGENT_TYPING_TIMEOUT);
    let (_, ev, _) = gdrain(&mut e);
    assert!(matches!(
        ev.as_slice(),
        [
            Event::Typing { on: true, .. },
            Event::Typing { on: false, .. }
        ]
    ));
}

#[test]
fn guest_rate_limit_requeues() {
    let t0 = Instant::now();
    let mut e = guest();
    e.handle_connected(t0);
    e.send_message(t0, Content::text("a"), false).unwrap();
    let (calls, ..) = gdrain(&mut e);
    let err = error::guest(
        429,
        &gw::ErrorBody {
            status: 429,
            code: "too.many.requests".into(),
            ..Default::default()
        },
        Some(Duration::from_secs(2)),
    );
    e.handle_response(t0, &calls[0], Err(err));
    let (calls2, ev, _) = gdrain(&mut e);
    assert!(calls2.is_empty());
    assert!(ev.is_empty(), "queued again, not failed: {ev:?}");
    assert_eq!(e.poll_timeout(t0), Some(t0 + Duration::from_secs(2)));
    e.handle_timeout(t0 + Duration::from_secs(2));
    let (calls3, ..) = gdrain(&mut e);
    assert_eq!(calls3.len(), 1);
    assert_eq!(calls3[0].body, calls[0].body);
}

#[test]
fn guest_post_lost_in_transit_is_settled_by_history() {
    let t0 = Instant::now();
    let mut e = guest();
    e.handle_connected(t0);
    let id = sent_id(e.send_message(t0, Content::text("maybe"), false));
    let (calls, ..) = gdrain(&mut e);
    let err = Error::transport(Vendor::Genesys, "POST", "connection reset");
    e.handle_response(t0, &calls[0], Err(err));
    let (_, _, other) = gdrain(&mut e);
    assert!(other.iter().any(|o| matches!(o, Output::Reconnect)));
    e.handle_disconnected();
    e.handle_connected(t0 + Duration::from_secs(1));
    let (calls, ..) = gdrain(&mut e);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].purpose, Purpose::Backfill);
    // The server did get it: confirmed from history, not posted again.
    let page = json!({"pageSize":100,"entities":[
        {"id":"m-1","sender":{"id":"me"},"body":"maybe","bodyType":"standard",
         "timestamp": time::format_ms(Timestamp::now().unix_ms())}]});
    e.handle_response(t0, &calls[0], Ok(page));
    let (calls, ev, _) = gdrain(&mut e);
    assert!(calls.is_empty(), "{calls:?}");
    assert!(matches!(ev.as_slice(), [Event::MessageSent(m)] if m.client_id == Some(id)));
}

#[test]
fn start_after_read_only_asks_for_a_new_conversation() {
    let t0 = Instant::now();
    let mut e = configured(t0);
    e.handle_text(t0, &read_only_disconnect());
    drain(&mut e);
    assert!(e.read_only());
    e.start(t0, BTreeMap::new());
    let (f, ..) = drain(&mut e);
    assert_eq!(f[0]["action"], "configureSession");
    assert_eq!(f[0]["startNew"], true);
    assert_eq!(f[1]["message"]["events"][0]["presence"]["type"], "Join");
}

proptest::proptest! {
    #[test]
    fn guest_responses_of_any_shape_never_panic(v in proptest::arbitrary::any::<Vec<(String, i64)>>(), shape in 0usize..6) {
        let t0 = Instant::now();
        let mut e = guest();
        e.handle_connected(t0);
        e.send_message(t0, Content::text("x"), false).unwrap();
        let (calls, ..) = gdrain(&mut e);
        let obj: serde_json::Map<String, Value> = v.iter().map(|(k, n)| (k.clone(), json!(n))).collect();
        let body = match shape {
            0 => Value::Object(obj),
            1 => json!({"id": 5, "body": obj}),
            2 => json!({"entities": [Value::Object(obj)]}),
            3 => json!({"entities": "nope"}),
            4 => Value::Null,
            _ => json!([1, 2, 3]),
        };
        e.handle_response(t0, &calls[0], Ok(body.clone()));
        let backfill = HttpCall { id: 99, method: "GET", path: String::new(), body: None, purpose: Purpose::Backfill };
        e.handle_response(t0, &backfill, Ok(body.clone()));
        let info: Result<gw::MemberInfo, _> = serde_json::from_value(body);
        if let Ok(info) = info {
            e.handle_member(info);
        }
        gdrain(&mut e);
    }
}

#[test]
fn guest_messages_sent_before_the_stream_opens_go_once_it_does() {
    let t0 = Instant::now();
    let mut e = guest();
    e.send_message(t0, Content::text("early"), false).unwrap();
    let (calls, ..) = gdrain(&mut e);
    assert!(
        calls.is_empty(),
        "the chat is not routed before the stream attaches"
    );
    e.handle_connected(t0);
    let (calls, ..) = gdrain(&mut e);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].body.as_ref().unwrap()["body"], "early");
}
