//! Engine tests: frames in, frames and events out, no sockets.

use super::*;
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
}

impl T {
    fn new() -> T {
        let cfg = EngineConfig {
            hello: Hello::default(),
            heartbeat: Duration::from_secs(5),
            monitored: vec![(MultiChannelType::Chat, "s1".to_owned())],
            outbox: OutboxConfig::default(),
            customer: Participant::new(Role::Customer),
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
        .iter()
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
        .iter()
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
