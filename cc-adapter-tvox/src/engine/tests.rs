//! Engine tests: frames in, frames and events out, no sockets.

use super::*;
use crate::wire::TrickleIcePolicy;
use cc_core::ConnectionState;
use serde_json::json;

struct T {
    e: Engine,
    t0: Instant,
    ms: u64,
    sent: Vec<Value>,
    events: Vec<Event>,
    replies: Vec<(u64, Result<Value, Error>)>,
    reconnects: usize,
    media: Vec<cc_core::CallState>,
    ops: Vec<MediaOp>,
}

impl T {
    fn new() -> T {
        let cfg = EngineConfig {
            hello: Hello {
                services_configuration: vec![crate::wire::ChannelServicesConfiguration {
                    channel: MultiChannelType::Chat,
                    services: vec![crate::wire::ServiceConfiguration {
                        code: "s1".to_owned(),
                        description: None,
                    }],
                }],
                ..Hello::default()
            },
            heartbeat: Duration::from_secs(5),
            outbox: OutboxConfig::default(),
            customer: Participant::new(Role::Customer),
            media_timeout: Duration::from_secs(15),
        };
        T {
            e: Engine::new(cfg),
            t0: Instant::now(),
            ms: 0,
            sent: Vec::new(),
            events: Vec::new(),
            replies: Vec::new(),
            reconnects: 0,
            media: Vec::new(),
            ops: Vec::new(),
        }
    }

    fn now(&self) -> Now {
        Now {
            at: self.t0 + Duration::from_millis(self.ms),
            wall: Timestamp(1_800_000_000_000 + self.ms as i64),
        }
    }

    fn drain(&mut self) {
        while let Some(o) = self.e.poll_output() {
            match o {
                Output::Send(s) => self.sent.push(serde_json::from_str(&s).unwrap()),
                Output::Event(ev) => self.events.push(ev),
                Output::Reply { token, result } => self.replies.push((token, result)),
                Output::Reconnect => self.reconnects += 1,
                Output::Media { state, .. } => self.media.push(state),
                Output::CallMedia { op, .. } => self.ops.push(op),
                Output::Ready(_) | Output::Status { .. } => {}
            }
        }
    }

    fn text(&mut self, v: Value) {
        let now = self.now();
        self.e.on_text(now, &v.to_string());
        self.drain();
    }

    fn last(&self, method: &str) -> Value {
        self.sent
            .iter()
            .rev()
            .find(|f| f["method"] == method)
            .cloned()
            .unwrap_or_else(|| panic!("no {method} in {:#?}", self.sent))
    }

    fn answer(&mut self, method: &str, result: Value) {
        let id = self.last(method)["id"].clone();
        self.text(json!({"jsonrpc": "2.0", "id": id, "result": result}));
    }

    fn connect(&mut self, conn: u64) {
        let now = self.now();
        self.e.on_connected(now, conn);
        self.drain();
        self.answer(
            "widget.hello",
            json!({"clientId": "c1", "resumeToken": "r1", "channelsEnabled": {"CHAT": true}}),
        );
    }

    fn advance(&mut self, ms: u64) {
        self.ms += ms;
        let now = self.now();
        self.e.on_timeout(now);
        self.drain();
    }

    fn push(&mut self, sub: &str, data: Value) {
        self.text(json!({"jsonrpc": "2.0", "method": "notify", "params": {"subscription": sub, "data": data}}));
    }

    /// Starts a chat and answers create and both subscriptions.
    fn chat(&mut self) -> EngagementId {
        let now = self.now();
        let plan = StartChat {
            service: "s1".into(),
            customer: Participant::new(Role::Customer),
            create: ChatCreate {
                service: "s1".into(),
                ..ChatCreate::default()
            },
            bot_history: Vec::new(),
            first_message: None,
        };
        self.e.start_chat(now, plan);
        self.drain();
        self.answer(
            "chat.create",
            json!({"id": "S1", "sessionState": "ACTIVE", "step": {"step": 1, "type": "QUEUE", "queuePosition": 2}}),
        );
        self.answer(
            "chat.session.subscribe",
            json!({"subscription": "ss", "session": {"id": "S1", "sessionState": "ACTIVE", "step": {"step": 1, "type": "QUEUE", "queuePosition": 2}}}),
        );
        self.answer(
            "chat.events.subscribe",
            json!({"subscription": "es", "events": [{"id": "e1", "messageType": "OPEN_SESSION", "direction": "OUTBOUND"}]}),
        );
        EngagementId::from("S1")
    }

    fn connected_step(&mut self, n: i64, agent: &str) {
        self.push(
            "ss",
            json!({"id": "S1", "sessionState": "ACTIVE", "step": {"step": n, "type": "CONNECTED", "agentName": agent}}),
        );
    }

    fn sends(&self) -> Vec<Value> {
        self.sent
            .iter()
            .filter(|f| f["method"] == "chat.send")
            .cloned()
            .collect()
    }
}

#[test]
fn hello_first_then_connected_and_heartbeats() {
    let mut t = T::new();
    let now = t.now();
    t.e.on_connected(now, 1);
    t.drain();
    assert_eq!(t.sent.len(), 1);
    assert_eq!(t.sent[0]["method"], "widget.hello");
    assert!(!t.e.is_up());
    t.answer(
        "widget.hello",
        json!({"clientId": "c1", "resumeToken": "r1", "channelsEnabled": {"CHAT": true}}),
    );
    assert!(t.e.is_up());
    assert!(matches!(
        t.events[0],
        Event::Connection(ConnectionState::Connected)
    ));
    assert_eq!(t.e.channels_enabled().get("CHAT"), Some(&true));
    t.advance(5000);
    let ping = t.last("ping");
    assert_eq!(ping["id"], "hb-1");
    // Answered: no reconnect however long it runs.
    t.text(json!({"jsonrpc": "2.0", "id": "hb-1", "result": {"ts": 1}}));
    t.advance(5000);
    t.text(json!({"jsonrpc": "2.0", "id": "hb-2", "result": {"ts": 1}}));
    t.advance(5000);
    assert_eq!(t.reconnects, 0);
}

#[test]
fn two_missed_pongs_ask_for_a_reconnect_and_the_resume_token_goes_back() {
    let mut t = T::new();
    t.connect(1);
    t.advance(5000); // ping 1
    t.advance(5000); // missed 1, ping 2
    assert_eq!(t.reconnects, 0);
    t.advance(5000); // missed 2
    assert_eq!(t.reconnects, 1);
    let now = t.now();
    t.e.on_disconnected(now);
    t.e.on_connected(now, 2);
    t.drain();
    assert_eq!(t.last("widget.hello")["params"]["resumeToken"], "r1");
    assert!(
        !format!("{:?}", t.e).contains("r1"),
        "the token stays out of Debug"
    );
}

#[test]
fn queue_play_connecting_connected_map_to_events() {
    let mut t = T::new();
    t.connect(1);
    let id = t.chat();
    assert!(t.events.iter().any(
        |e| matches!(e, Event::Queued { position: Some(2), engagement, .. } if *engagement == id)
    ));
    t.push(
        "ss",
        json!({"id": "S1", "sessionState": "ACTIVE", "step": {"step": 2, "type": "PLAY", "welcomeMessage": "Welcome!"}}),
    );
    t.push(
        "ss",
        json!({"id": "S1", "sessionState": "ACTIVE", "step": {"step": 3, "type": "CONNECTING"}}),
    );
    t.connected_step(4, "Ann");
    let kinds: Vec<String> = t
        .events
        .iter()
        .map(|e| match e {
            Event::MessageReceived(m) => {
                format!("msg {:?} {:?}", m.sender.role, m.content.as_text())
            }
            Event::Vendor { name, .. } => format!("vendor {name}"),
            other => format!("{:?}", other.kind()),
        })
        .collect();
    let tail: Vec<&str> = kinds.iter().map(String::as_str).rev().take(3).collect();
    assert_eq!(
        tail,
        vec![
            "ParticipantJoined",
            "vendor tvox.step",
            "msg System Some(\"Welcome!\")"
        ],
        "{kinds:?}"
    );
    let view = t.e.chat_view(&id).unwrap();
    assert_eq!(view.state, EngagementState::Active);
    assert_eq!(view.participants[1].display_name.as_deref(), Some("Ann"));
}

#[test]
fn messages_wait_for_connected_then_go_once_and_are_acked() {
    let mut t = T::new();
    t.connect(1);
    let id = t.chat();
    let now = t.now();
    let m = t.e.send(now, &id, Content::text("hello")).unwrap();
    t.drain();
    assert_eq!(m.state, DeliveryState::Pending);
    assert!(t.sends().is_empty(), "nothing before CONNECTED");
    t.connected_step(2, "Ann");
    let sends = t.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["params"]["message"], "hello");
    assert_eq!(sends[0]["params"]["status"], "WROTE");
    assert_eq!(sends[0]["params"]["notifyGreetingMessage"], false);
    t.answer("chat.send", json!(true));
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, Event::MessageSent(s) if s.client_id == m.client_id))
    );
    // The echo brings the vendor id and does not make a second message.
    t.push(
        "es",
        json!({"id": "e2", "message": "hello", "messageType": "MESSAGE", "status": "WROTE", "direction": "OUTBOUND", "createdAt": time::format(t.now().wall)}),
    );
    let view = t.e.chat_view(&id).unwrap();
    let mine: Vec<_> = view
        .transcript
        .messages()
        .into_iter()
        .filter(|m| m.content.as_text() == Some("hello"))
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id.as_ref().map(MessageId::as_str), Some("e2"));
    assert_eq!(
        t.events
            .iter()
            .filter(|e| matches!(e, Event::MessageSent(_)))
            .count(),
        1
    );
}

#[test]
fn a_message_lost_with_the_connection_is_sent_again_and_one_the_server_has_is_not() {
    let mut t = T::new();
    t.connect(1);
    let id = t.chat();
    t.connected_step(2, "Ann");
    let now = t.now();
    t.e.send(now, &id, Content::text("got there")).unwrap();
    t.e.send(now, &id, Content::text("lost")).unwrap();
    t.drain();
    assert_eq!(t.sends().len(), 2);
    // The link dies before any answer.
    let now = t.now();
    t.e.on_disconnected(now);
    t.sent.clear();
    t.connect(2);
    let subs: Vec<Value> = t
        .sent
        .iter()
        .filter(|f| f["method"] == "chat.events.subscribe")
        .cloned()
        .collect();
    assert_eq!(subs[0]["params"]["sinceEventId"], "e1");
    t.answer(
        "chat.session.subscribe",
        json!({"subscription": "ss2", "session": {"id": "S1", "sessionState": "ACTIVE", "step": {"step": 2, "type": "CONNECTED", "agentName": "Ann"}}}),
    );
    // The replay shows the first message only.
    let at = time::format(t.now().wall);
    t.answer(
        "chat.events.subscribe",
        json!({"subscription": "es2", "events": [
            {"id": "e2", "message": "got there", "messageType": "MESSAGE", "status": "WROTE", "direction": "OUTBOUND", "createdAt": at}
        ]}),
    );
    let sends = t.sends();
    assert_eq!(sends.len(), 1, "{sends:#?}");
    assert_eq!(sends[0]["params"]["message"], "lost");
    let joined = t
        .events
        .iter()
        .filter(|e| matches!(e, Event::ParticipantJoined { .. }))
        .count();
    assert_eq!(joined, 1, "the same agent does not join twice");
}

#[test]
fn bot_history_goes_first_in_order_with_the_greeting_flag() {
    let mut t = T::new();
    t.connect(1);
    let now = t.now();
    let plan = StartChat {
        service: "s1".into(),
        customer: Participant::new(Role::Customer),
        create: ChatCreate {
            service: "s1".into(),
            ..ChatCreate::default()
        },
        bot_history: vec![
            BotTurn {
                role: Role::Bot,
                text: "How can I help?".into(),
                time: Timestamp(1),
            },
            BotTurn {
                role: Role::Customer,
                text: "My card".into(),
                time: Timestamp(2),
            },
        ],
        first_message: Some("Hello agent".into()),
    };
    t.e.start_chat(now, plan);
    t.drain();
    t.answer(
        "chat.create",
        json!({"id": "S1", "sessionState": "ACTIVE", "step": {"step": 1, "type": "QUEUE"}}),
    );
    t.answer(
        "chat.session.subscribe",
        json!({"subscription": "ss", "session": {"id": "S1", "sessionState": "ACTIVE", "step": {"step": 1, "type": "QUEUE"}}}),
    );
    t.answer(
        "chat.events.subscribe",
        json!({"subscription": "es", "events": []}),
    );
    assert!(t.sends().is_empty());
    t.connected_step(2, "Ann");
    let sends: Vec<(String, bool)> = t
        .sends()
        .iter()
        .map(|f| {
            (
                f["params"]["message"].as_str().unwrap().to_owned(),
                f["params"]["notifyGreetingMessage"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sends,
        vec![
            ("How can I help?".to_owned(), true),
            ("My card".to_owned(), false),
            ("Hello agent".to_owned(), false)
        ]
    );
}

#[test]
fn agent_close_idle_warning_and_typing() {
    let mut t = T::new();
    t.connect(1);
    let id = t.chat();
    t.connected_step(2, "Ann");
    let now = t.now();
    t.e.typing(now, &id, true).unwrap();
    t.e.typing(now, &id, true).unwrap();
    t.drain();
    assert_eq!(t.sends().len(), 1, "one COMPOSING for one typing burst");
    assert_eq!(t.sends()[0]["params"]["status"], "COMPOSING");
    t.push(
        "es",
        json!({"id": "e5", "messageType": "MESSAGE", "status": "COMPOSING", "direction": "INBOUND"}),
    );
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, Event::Typing { on: true, .. }))
    );
    let expire = t.now().wall.0 + 60_000;
    t.push(
        "ss",
        json!({"id": "S1", "sessionState": "ACTIVE", "step": {"step": 3, "type": "INACTIVE_TIMEOUT", "inactivityExpireDatetime": expire}}),
    );
    assert!(t.events.iter().any(
        |e| matches!(e, Event::IdleWarning { grace, .. } if *grace == Duration::from_secs(60))
    ));
    t.push(
        "es",
        json!({"id": "e6", "messageType": "CLOSED_SESSION", "direction": "INBOUND"}),
    );
    assert!(t.events.iter().any(|e| matches!(
        e,
        Event::EngagementEnded {
            initiator: Initiator::System,
            ..
        }
    )));
    let now = t.now();
    assert_eq!(
        t.e.send(now, &id, Content::text("x")).unwrap_err().kind(),
        cc_core::ErrorKind::Closed
    );
    assert!(t.sent.iter().any(|f| f["method"] == "subscription.cancel"));
}

#[test]
fn malformed_pushes_are_protocol_errors_and_the_engine_goes_on() {
    let mut t = T::new();
    t.connect(1);
    let _id = t.chat();
    t.text(json!({"jsonrpc": "2.0", "method": "notify", "params": {"subscription": "es", "data": {"messageType": 42}}}));
    let now = t.now();
    t.e.on_text(now, "{not json");
    t.drain();
    let protocol = t
        .events
        .iter()
        .filter(|e| matches!(e, Event::Error(err) if err.kind() == cc_core::ErrorKind::Protocol))
        .count();
    assert_eq!(protocol, 2);
    t.connected_step(2, "Ann");
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, Event::ParticipantJoined { .. }))
    );
}

#[test]
fn service_status_subscribes_once_and_follows_pushes() {
    let mut t = T::new();
    // Asked before the link is up: deferred until the handshake.
    let tok = t.e.service_status(MultiChannelType::Chat, "s1".into());
    t.drain();
    assert!(t.sent.is_empty());
    t.connect(1);
    t.answer(
        "service.status.subscribe",
        json!({"subscription": "st", "status": {"channelId": "CHAT", "service": "s1", "status": "ACTIVE"}}),
    );
    let (rt, r) = t.replies.pop().unwrap();
    assert_eq!(rt, tok);
    assert_eq!(r.unwrap()["status"], "ACTIVE");
    let tok2 = t.e.service_status(MultiChannelType::Chat, "s1".into());
    t.drain();
    assert_eq!(
        t.replies.last().unwrap().0,
        tok2,
        "answered from the live cache"
    );
    assert_eq!(
        t.sent
            .iter()
            .filter(|f| f["method"] == "service.status.subscribe")
            .count(),
        1
    );
    t.push(
        "st",
        json!({"channelId": "CHAT", "service": "s1", "status": "OVERTIME"}),
    );
    assert_eq!(
        t.e.cached_status(&MultiChannelType::Chat, "s1")
            .unwrap()
            .status,
        Some(crate::wire::ServiceStatusValue::Overtime)
    );
    let bad = t.e.service_status(MultiChannelType::Video, "s1".into());
    t.drain();
    let (bt, br) = t.replies.pop().unwrap();
    assert_eq!(bt, bad);
    assert_eq!(br.unwrap_err().kind(), cc_core::ErrorKind::InvalidInput);
}

#[test]
fn call_states_map_to_call_machine_signals() {
    assert_eq!(
        call_signal(&CallState::NewOutbound),
        Some(CallSignal::Trying)
    );
    assert_eq!(
        call_signal(&CallState::Connected),
        Some(CallSignal::Answered)
    );
    assert_eq!(
        call_signal(&CallState::Hold),
        Some(CallSignal::RemoteHold(true))
    );
    assert!(matches!(
        call_signal(&CallState::Idle),
        Some(CallSignal::RemoteHangup { .. })
    ));
    assert_eq!(call_signal(&CallState::Unknown("X".into())), None);
}

#[test]
fn media_sessions_drive_a_call_machine_and_survive_reconnects() {
    use cc_core::CallState as S;
    let mut t = T::new();
    t.connect(1);
    let tok = t.e.media_monitor(MultiChannelType::Video);
    t.drain();
    t.answer("video.subscribe", json!({"subscription": "vs"}));
    assert_eq!(t.replies.last().unwrap().0, tok);
    for state in ["NEW_OUTBOUND", "CONNECTED", "HOLD", "CONNECTED", "IDLE"] {
        t.push(
            "vs",
            json!({"id": "V1", "sessionState": "ACTIVE", "state": state}),
        );
    }
    assert_eq!(
        t.media[..4],
        [S::Dialing, S::Connected, S::OnHold, S::Connected]
    );
    assert!(matches!(t.media[4], S::Ended { .. }));
    // The monitor is renewed after a reconnect, and stopping it cancels it.
    let now = t.now();
    t.e.on_disconnected(now);
    t.sent.clear();
    t.connect(2);
    assert!(t.sent.iter().any(|f| f["method"] == "video.subscribe"));
    t.answer("video.subscribe", json!({"subscription": "vs2"}));
    t.e.media_monitor_stop(&MultiChannelType::Video);
    t.drain();
    assert_eq!(
        t.last("subscription.cancel")["params"]["subscription"],
        "vs2"
    );
}

#[test]
fn an_unanswered_handshake_counts_as_a_dead_link() {
    let mut t = T::new();
    let now = t.now();
    t.e.on_connected(now, 1);
    t.drain();
    t.advance(10_000);
    assert_eq!(t.reconnects, 0);
    t.advance(5_000);
    assert_eq!(t.reconnects, 1);
    assert!(!t.e.is_up());
}

#[test]
fn a_not_connected_answer_holds_the_message_until_the_agent_is_back() {
    let mut t = T::new();
    t.connect(1);
    let id = t.chat();
    t.connected_step(2, "Ann");
    let now = t.now();
    t.e.send(now, &id, Content::text("hello")).unwrap();
    t.drain();
    let first = t.last("chat.send")["id"].clone();
    t.text(json!({"jsonrpc": "2.0", "id": first, "error": {"code": 1007, "message": "no agent"}}));
    assert_eq!(t.sends().len(), 1, "held, not retried at once");
    assert!(
        !t.events
            .iter()
            .any(|e| matches!(e, Event::MessageFailed { .. }))
    );
    t.connected_step(2, "Ann");
    let sends = t.sends();
    assert_eq!(sends.len(), 2, "sent again once the agent is connected");
    assert_eq!(sends[1]["params"]["message"], "hello");
}

#[test]
fn publishing_views_copies_no_message_however_long_the_chat() {
    // The driver publishes the view of every changed chat after each frame; a copy of the
    // transcript there made each message cost as much as the whole conversation so far.
    let mut t = T::new();
    t.connect(1);
    let id = t.chat();
    t.connected_step(2, "Ann");
    let first = t.e.chat_view(&id).unwrap().transcript;
    let before = first.messages().len();
    let copied = first.copied();
    const N: usize = 500;
    for n in 0..N {
        t.push(
            "es",
            json!({"id": format!("m{n}"), "messageType": "MESSAGE", "status": "WROTE",
                "direction": "INBOUND", "message": format!("agent {n}")}),
        );
        // What the driver does after each frame.
        for chat in t.e.take_dirty() {
            let view = t.e.chat_view(&chat).unwrap();
            assert!(view.transcript.same(&first), "one transcript, shared");
        }
    }
    assert_eq!(first.copied(), copied, "no message copied while publishing");
    let received = t
        .events
        .iter()
        .filter(|e| matches!(e, Event::MessageReceived(_)))
        .count();
    assert_eq!(received, N);
    // The app's read sees every message, in order, and is the one copy.
    let texts: Vec<String> = first
        .messages()
        .into_iter()
        .skip(before)
        .filter_map(|m| m.content.as_text().map(str::to_owned))
        .collect();
    let want: Vec<String> = (0..N).map(|n| format!("agent {n}")).collect();
    assert_eq!(texts, want);
    assert_eq!(first.copied(), copied + (before + N) as u64);
}

/// A new session resumes a chat (`hello.sessions`); the agent writes right after the
/// handshake, before the event monitor answers. The monitor's result holds the history
/// (filled in quietly) and the new message, which is announced exactly once.
#[test]
fn a_message_written_while_a_chat_resumes_is_announced_once() {
    let mut t = T::new();
    t.e.set_resume_token(Some(Secret::new("r0".to_owned())));
    let now = t.now();
    t.e.on_connected(now, 1);
    t.drain();
    assert_eq!(t.last("widget.hello")["params"]["resumeToken"], "r0");
    t.answer(
        "widget.hello",
        json!({
            "clientId": "c2", "resumeToken": "r0", "channelsEnabled": {"CHAT": true},
            "serverTime": "2027-01-15T08:00:10.000Z",
            "sessions": [{"id": "S1", "sessionState": "ACTIVE",
                "step": {"step": 3, "type": "CONNECTED", "agentName": "Alex Agent"}}],
        }),
    );
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, Event::EngagementStarted { resumed: true, .. }))
    );
    t.answer(
        "chat.session.subscribe",
        json!({"subscription": "ss2", "session": {"id": "S1", "sessionState": "ACTIVE",
            "step": {"step": 3, "type": "CONNECTED", "agentName": "Alex Agent"}}}),
    );
    let agent = |id: &str, at: &str, text: &str| {
        json!({"id": id, "messageType": "MESSAGE", "status": "WROTE", "direction": "INBOUND",
            "createdAt": at, "message": text})
    };
    t.answer(
        "chat.events.subscribe",
        json!({"subscription": "es2", "events": [
            {"id": "e1", "messageType": "OPEN_SESSION", "direction": "OUTBOUND",
                "createdAt": "2027-01-15T08:00:00.000Z"},
            agent("e2", "2027-01-15T08:00:01.000Z", "how can I help?"),
            agent("e3", "2027-01-15T08:00:10.001Z", "welcome back"),
        ]}),
    );
    // The same event pushed on the monitor as well (the server's race) changes nothing.
    t.push(
        "es2",
        agent("e3", "2027-01-15T08:00:10.001Z", "welcome back"),
    );
    let received: Vec<&str> = t
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MessageReceived(m) => m.content.as_text(),
            _ => None,
        })
        .collect();
    assert_eq!(received, ["welcome back"]);
    // The history is in the transcript all the same.
    let view = t.e.chat_view(&EngagementId::from("S1")).unwrap();
    let texts: Vec<_> = view
        .transcript
        .messages()
        .into_iter()
        .filter_map(|m| m.content.as_text().map(str::to_owned))
        .collect();
    assert_eq!(texts, ["how can I help?", "welcome back"]);
    // Later pushes are news as usual.
    t.push(
        "es2",
        agent("e4", "2027-01-15T08:00:11.000Z", "still there?"),
    );
    assert!(matches!(
        t.events.last(),
        Some(Event::MessageReceived(m)) if m.content.as_text() == Some("still there?")
    ));
}

// ---- calls ----

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n\
    a=mid:0\r\na=sendrecv\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n";

impl T {
    /// A connected engine with a call `C1` created (monitor subscription `cs`).
    fn call(&mut self, webrtc: Option<crate::wire::WebrtcConfig>) -> u64 {
        self.e.cfg.hello.webrtc = webrtc;
        self.connect(1);
        let now = self.now();
        let token = self.e.start_call(
            now,
            StartCall {
                video: false,
                create: crate::wire::codec::MediaCreate {
                    service: "p1".into(),
                    customer_name: Some("Ada".into()),
                    customer_mail: None,
                },
                offer: OFFER.into(),
            },
        );
        self.drain();
        // The monitor goes before the create, so no push of the call is missed.
        let methods: Vec<&str> = self
            .sent
            .iter()
            .filter_map(|f| f["method"].as_str())
            .collect();
        let sub = methods.iter().position(|m| *m == "call.subscribe").unwrap();
        let create = methods.iter().position(|m| *m == "call.create").unwrap();
        assert!(sub < create, "{methods:?}");
        self.answer("call.subscribe", json!({"subscription": "cs"}));
        self.answer("call.create", json!({"sessionId": "C1"}));
        token
    }

    fn call_push(&mut self, data: Value) {
        self.push("cs", data);
    }

    fn call_states(&self) -> Vec<cc_core::CallState> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Call { state, .. } => Some(state.clone()),
                _ => None,
            })
            .collect()
    }

    fn command(&mut self, c: CallCommand) -> u64 {
        let now = self.now();
        let t = self.e.call_command(now, "C1", c);
        self.drain();
        t
    }

    fn reply_of(&self, token: u64) -> Option<&Result<Value, Error>> {
        self.replies
            .iter()
            .find(|(t, _)| *t == token)
            .map(|(_, r)| r)
    }
}

#[test]
fn a_call_offers_with_full_trickle_and_connects_only_with_media() {
    use cc_core::CallState as S;
    let mut t = T::new();
    let token = t.call(None);
    assert_eq!(
        t.reply_of(token).unwrap().as_ref().unwrap(),
        &json!({"sessionId": "C1"})
    );
    assert_eq!(t.last("call.create")["params"]["customerName"], "Ada");
    let offer = t.last("webrtc.offer");
    assert_eq!(offer["params"]["sessionId"], "C1");
    assert!(
        !offer["params"]["sdp"]
            .as_str()
            .unwrap()
            .contains("candidate")
    );
    let cands: Vec<&Value> = t
        .sent
        .iter()
        .filter(|f| f["method"] == "webrtc.candidate")
        .collect();
    assert_eq!(cands.len(), 2);
    assert_eq!(
        cands[0]["params"],
        json!({"sessionId": "C1", "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0})
    );
    assert_eq!(
        cands[1]["params"],
        json!({"sessionId": "C1", "candidate": null})
    );
    assert_eq!(t.call_states(), vec![S::Dialing]);

    // NEW_OUTBOUND alone is the request being processed; CONNECTING rings.
    t.call_push(json!({"id": "C1", "state": "NEW_OUTBOUND", "sessionState": "ACTIVE"}));
    assert_eq!(t.call_states(), vec![S::Dialing]);
    t.call_push(json!({"id": "C1", "state": "NEW_OUTBOUND", "step": {"type": "CONNECTING"}}));
    assert_eq!(t.call_states(), vec![S::Dialing, S::Ringing]);
    // TVox's answer and candidates go to the media.
    t.call_push(json!({"kind": "answer", "sessionId": "C1", "sdp": "v=0\r\n"}));
    t.call_push(json!({"kind": "candidate", "sessionId": "C1", "candidate": "a=candidate:9 1 udp 1 127.0.0.1 7 typ host"}));
    t.call_push(json!({"kind": "candidate", "sessionId": "C1", "candidate": null}));
    assert_eq!(
        t.ops,
        vec![
            MediaOp::ApplyAnswer("v=0\r\n".into()),
            MediaOp::AddCandidate("candidate:9 1 udp 1 127.0.0.1 7 typ host".into()),
        ]
    );
    // CONNECTED without media is not connected yet ...
    t.call_push(json!({"id": "C1", "state": "CONNECTED", "step": {"type": "CONNECTED"}}));
    assert_eq!(t.call_states().len(), 2);
    // ... until ICE and DTLS are up.
    let now = t.now();
    t.e.on_media_connected(now, "C1");
    t.drain();
    assert_eq!(t.call_states(), vec![S::Dialing, S::Ringing, S::Connected]);
    // The monitor extension sees the neutral state of the call too.
    assert_eq!(t.media.last(), Some(&S::Ringing));
}

#[test]
fn media_that_never_comes_up_fails_the_call() {
    let mut t = T::new();
    t.call(None);
    t.call_push(json!({"id": "C1", "state": "CONNECTED"}));
    t.advance(14_000);
    assert!(t.sent.iter().all(|f| f["method"] != "call.close"));
    t.advance(2_000);
    let states = t.call_states();
    assert!(
        matches!(states.last(), Some(cc_core::CallState::Ended { reason }) if reason.starts_with("failed: media did not connect")),
        "{states:?}"
    );
    assert_eq!(t.last("call.close")["params"]["sessionId"], "C1");
    assert_eq!(t.ops.last(), Some(&MediaOp::Close));
}

#[test]
fn idle_reasons_take_the_neutral_word_first() {
    assert_eq!(end_reason(false, Some("USER_BUSY")), "busy: USER_BUSY");
    assert_eq!(end_reason(false, Some("NO_ANSWER")), "no-answer: NO_ANSWER");
    assert_eq!(
        end_reason(false, Some("CALL_REJECTED")),
        "rejected: CALL_REJECTED"
    );
    assert_eq!(end_reason(false, None), "failed: IDLE");
    assert_eq!(end_reason(true, None), "remote-hangup: IDLE");
    assert_eq!(
        end_reason(true, Some("NORMAL_CLEARING")),
        "remote-hangup: NORMAL_CLEARING"
    );
    let mut t = T::new();
    t.call(None);
    t.call_push(
        json!({"id": "C1", "state": "IDLE", "sessionState": "CLOSED", "closeReason": "USER_BUSY"}),
    );
    assert_eq!(
        t.call_states().last(),
        Some(&cc_core::CallState::Ended {
            reason: Arc::from("busy: USER_BUSY")
        })
    );
    assert_eq!(t.ops, vec![MediaOp::Close]);
    // The call is gone: later pushes about it change nothing, and the monitor the call
    // subscribed is cancelled.
    assert_eq!(
        t.last("subscription.cancel")["params"]["subscription"],
        "cs"
    );
    let n = t.events.len();
    t.call_push(json!({"id": "C1", "state": "IDLE"}));
    assert_eq!(t.events.len(), n);
}

#[test]
fn refused_create_is_rejected_with_1010() {
    let mut t = T::new();
    t.connect(1);
    let now = t.now();
    let token = t.e.start_call(
        now,
        StartCall {
            video: true,
            create: crate::wire::codec::MediaCreate {
                service: "v1".into(),
                ..Default::default()
            },
            offer: OFFER.into(),
        },
    );
    t.drain();
    t.answer("video.subscribe", json!({"subscription": "vs"}));
    let id = t.last("video.create")["id"].clone();
    t.text(
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": 1010, "message": "WEBRTC_DISABLED"}}),
    );
    let e = t.reply_of(token).unwrap().as_ref().unwrap_err();
    assert_eq!(e.kind(), cc_core::ErrorKind::Rejected);
    assert_eq!(e.vendor_code(), Some("1010"));
    assert!(t.sent.iter().all(|f| f["method"] != "webrtc.offer"));
    assert!(t.call_states().is_empty());
}

#[test]
fn mute_hold_dtmf_hangup() {
    use cc_core::CallState as S;
    let mut t = T::new();
    t.call(Some(crate::wire::WebrtcConfig {
        enabled: true,
        trickle_ice_policy: Some(TrickleIcePolicy::NotSupported),
        ice_gather_policy: None,
    }));
    // Without trickle: the offer is whole and no candidate goes.
    assert!(
        t.last("webrtc.offer")["params"]["sdp"]
            .as_str()
            .unwrap()
            .contains("a=candidate")
    );
    assert!(t.sent.iter().all(|f| f["method"] != "webrtc.candidate"));
    t.call_push(json!({"id": "C1", "state": "CONNECTED"}));
    let now = t.now();
    t.e.on_media_connected(now, "C1");
    t.drain();
    t.ops.clear();

    let mute = t.command(CallCommand::MuteAudio(true));
    assert_eq!(t.ops, vec![MediaOp::SetAudioMuted(true)]);
    assert_eq!(
        t.last("webrtc.mediaState")["params"],
        json!({"sessionId": "C1", "audioMuted": true, "videoMuted": false})
    );
    // Answered once the agent's UI knows.
    assert!(t.reply_of(mute).is_none());
    t.answer("webrtc.mediaState", json!(true));
    assert!(t.reply_of(mute).unwrap().is_ok());
    let again = t.command(CallCommand::MuteAudio(true));
    assert!(t.reply_of(again).unwrap().is_ok());
    let video = t.command(CallCommand::MuteVideo(true));
    assert_eq!(
        t.reply_of(video).unwrap().as_ref().unwrap_err().kind(),
        cc_core::ErrorKind::Unsupported
    );

    t.ops.clear();
    let hold = t.command(CallCommand::Hold(true));
    assert_eq!(t.ops, vec![MediaOp::HoldOffer(true)]);
    assert_eq!(t.call_states().last(), Some(&S::OnHold));
    let now = t.now();
    t.e.on_local_offer(now, "C1", Ok("v=0\r\na=sendonly\r\n".into()), Some(hold));
    t.drain();
    assert_eq!(
        t.last("webrtc.offer")["params"]["sdp"],
        "v=0\r\na=sendonly\r\n"
    );
    let busy = t.command(CallCommand::Hold(false));
    assert!(
        t.reply_of(busy).unwrap().is_err(),
        "one renegotiation at a time"
    );
    t.answer("webrtc.offer", json!(true));
    t.call_push(json!({"kind": "answer", "sessionId": "C1", "sdp": "v=0\r\na=recvonly\r\n"}));
    assert!(
        t.reply_of(hold).is_none(),
        "answered by the driver after applying"
    );
    assert!(t.sent.iter().all(|f| f["method"] != "webrtc.candidate"));

    t.ops.clear();
    let dtmf = t.command(CallCommand::Dtmf("12#".into()));
    assert!(t.reply_of(dtmf).unwrap().is_err(), "no DTMF on hold");
    let hold_off = t.command(CallCommand::Hold(false));
    let now = t.now();
    t.e.on_local_offer(
        now,
        "C1",
        Ok("v=0\r\na=sendrecv\r\n".into()),
        Some(hold_off),
    );
    t.drain();
    t.call_push(json!({"kind": "answer", "sessionId": "C1", "sdp": "v=0\r\n"}));
    assert_eq!(t.call_states().last(), Some(&S::Connected));
    t.ops.clear();
    let dtmf = t.command(CallCommand::Dtmf("12#".into()));
    assert_eq!(t.ops, vec![MediaOp::Dtmf("12#".into())]);
    assert!(t.reply_of(dtmf).is_none());

    t.ops.clear();
    let bye = t.command(CallCommand::Hangup);
    assert_eq!(
        t.call_states().last(),
        Some(&S::Ended {
            reason: Arc::from("local-hangup")
        })
    );
    assert_eq!(t.ops, vec![MediaOp::Close]);
    assert!(t.reply_of(bye).is_none());
    t.answer("call.close", json!(true));
    assert!(t.reply_of(bye).unwrap().is_ok());
    let after = t.command(CallCommand::MuteAudio(false));
    assert_eq!(
        t.reply_of(after).unwrap().as_ref().unwrap_err().kind(),
        cc_core::ErrorKind::Closed
    );
}

#[test]
fn the_agents_hold_and_re_offer() {
    use cc_core::CallState as S;
    let mut t = T::new();
    t.call(None);
    t.call_push(json!({"id": "C1", "state": "CONNECTED"}));
    let now = t.now();
    t.e.on_media_connected(now, "C1");
    t.drain();
    t.ops.clear();
    t.call_push(json!({"kind": "offer", "sessionId": "C1", "sdp": "v=0\r\na=sendonly\r\n"}));
    assert_eq!(
        t.ops,
        vec![MediaOp::AcceptOffer("v=0\r\na=sendonly\r\n".into())]
    );
    let now = t.now();
    t.e.on_local_answer(now, "C1", Ok("v=0\r\na=recvonly\r\n".into()));
    t.drain();
    assert_eq!(
        t.last("webrtc.answer")["params"],
        json!({"sessionId": "C1", "sdp": "v=0\r\na=recvonly\r\n"})
    );
    t.call_push(json!({"id": "C1", "state": "HOLD"}));
    assert_eq!(t.call_states().last(), Some(&S::OnHold));
    t.call_push(json!({"id": "C1", "state": "CONNECTED"}));
    assert_eq!(t.call_states().last(), Some(&S::Connected));
    t.call_push(json!({"id": "C1", "state": "IDLE", "closeReason": "NORMAL_CLEARING"}));
    assert_eq!(
        t.call_states().last(),
        Some(&S::Ended {
            reason: Arc::from("remote-hangup: NORMAL_CLEARING")
        })
    );
    // TVox ended it: no close from here.
    assert!(t.sent.iter().all(|f| f["method"] != "call.close"));
}

#[test]
fn a_media_failure_ends_the_call_and_tells_tvox() {
    let mut t = T::new();
    t.call(None);
    let now = t.now();
    t.e.on_media_failed(now, "C1", "ICE failed");
    t.drain();
    assert_eq!(
        t.call_states().last(),
        Some(&cc_core::CallState::Ended {
            reason: Arc::from("failed: media: ICE failed")
        })
    );
    assert_eq!(t.last("call.close")["params"]["sessionId"], "C1");
}

#[test]
fn after_a_reconnect_the_monitor_tells_what_became_of_the_call() {
    let mut t = T::new();
    t.call(None);
    t.call_push(json!({"id": "C1", "state": "CONNECTED"}));
    let now = t.now();
    t.e.on_media_connected(now, "C1");
    t.e.on_disconnected(now);
    t.drain();
    // A hang-up while disconnected is not waited for: the close goes after the reconnect.
    t.connect(2);
    // The monitor is renewed; its result lists the call, closed meanwhile by the agent.
    t.answer(
        "call.subscribe",
        json!({"subscription": "cs2", "sessions": [{"id": "C1", "state": "IDLE", "sessionState": "CLOSED", "closeReason": "NORMAL_CLEARING"}]}),
    );
    assert_eq!(
        t.call_states().last(),
        Some(&cc_core::CallState::Ended {
            reason: Arc::from("remote-hangup: NORMAL_CLEARING")
        })
    );
}

#[test]
fn a_hang_up_while_disconnected_closes_after_the_reconnect() {
    let mut t = T::new();
    t.call(None);
    let now = t.now();
    t.e.on_disconnected(now);
    t.drain();
    let bye = t.command(CallCommand::Hangup);
    assert!(t.reply_of(bye).unwrap().is_ok());
    assert!(t.sent.iter().all(|f| f["method"] != "call.close"));
    t.connect(2);
    assert_eq!(t.last("call.close")["params"]["sessionId"], "C1");
}
