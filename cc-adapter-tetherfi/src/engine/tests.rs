use super::*;
use crate::wire::{AgentInfo, QueueInfo, TransRecord};

fn engine(sid_on_calls: bool) -> Engine {
    let mut e = Engine::new(EngineConfig {
        sid_on_calls,
        customer: Participant::new(Role::Customer).with_name("Casey"),
        outbox: OutboxConfig::default(),
    });
    e.set_online(true, 0, Duration::ZERO);
    e
}

fn clk(t0: Instant, ms: u64) -> Clock {
    Clock {
        now: t0 + Duration::from_millis(ms),
        wall: Timestamp(1_700_000_000_000 + ms as i64),
    }
}

fn events(out: &[Output]) -> Vec<&Event> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn start(e: &mut Engine, t0: Instant, sid: &str) -> EngagementId {
    let out = e.handle_push(
        clk(t0, 0),
        Push::StartSuccess {
            sid: sid.into(),
            tchatid: "T".into(),
            param: Value::Null,
            client_id: None,
        },
    );
    let Some(Output::Started { result: Ok(id), .. }) =
        out.iter().find(|o| matches!(o, Output::Started { .. }))
    else {
        panic!("{out:?}")
    };
    id.clone()
}

#[test]
fn start_queue_join_message_ack() {
    let t0 = Instant::now();
    let mut e = engine(false);
    let id = start(&mut e, t0, "S1");
    let out = e.handle_push(
        clk(t0, 1),
        Push::CallQueued {
            info: QueueInfo::parse_csv("5001,3,x,y,z,chat"),
            sid: None,
        },
    );
    assert!(matches!(
        events(&out)[0],
        Event::Queued {
            position: Some(3),
            ..
        }
    ));
    assert_eq!(e.chat(&id).unwrap().state, EngagementState::Queued);
    let out = e.handle_push(
        clk(t0, 2),
        Push::RemoteUserConnected {
            name: "Alex".into(),
            agent_id: "a1".into(),
            session_id: "S1".into(),
            client_id: None,
        },
    );
    assert!(matches!(events(&out)[0], Event::ParticipantJoined { .. }));
    assert_eq!(e.chat(&id).unwrap().state, EngagementState::Active);
    let push = Push::MessageReceived {
        agent: "Alex".into(),
        msg: "hi".into(),
        id: "m1".into(),
        sid: None,
    };
    let out = e.handle_push(clk(t0, 3), push.clone());
    assert!(
        matches!(events(&out)[0], Event::MessageReceived(m) if m.sender.id.as_deref() == Some("a1"))
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Call(Call::Ack { id, sid: None }) if id == "m1"))
    );
    // A repeat is acked again but not emitted twice.
    let out = e.handle_push(clk(t0, 4), push);
    assert!(events(&out).is_empty());
}

#[test]
fn send_is_confirmed_once_by_callback_and_echo() {
    let t0 = Instant::now();
    let mut e = engine(false);
    let id = start(&mut e, t0, "S1");
    let m = e
        .push_message(&id, Content::text("hello"), clk(t0, 0))
        .unwrap();
    let (sends, _, _) = e.poll_sends(clk(t0, 0));
    assert_eq!(sends.len(), 1);
    assert_eq!(
        sends[0].op,
        SendOp::Call(Call::SendMessage {
            msg: "hello".into(),
            seq: 1,
            sid: None
        })
    );
    let out = e.handle_push(
        clk(t0, 5),
        Push::Echo {
            msg: "hello".into(),
            id: "m9".into(),
            sid: None,
        },
    );
    assert!(matches!(events(&out)[0], Event::MessageSent(s) if s.client_id == m.client_id));
    let out = e.on_send_ok(&id, m.client_id.unwrap(), Some("m9".into()), clk(t0, 6));
    assert!(events(&out).is_empty());
    assert_eq!(e.chat(&id).unwrap().transcript.len(), 1);
}

#[test]
fn offline_holds_and_resends_with_the_same_seq() {
    let t0 = Instant::now();
    let mut e = engine(false);
    let id = start(&mut e, t0, "S1");
    e.push_message(&id, Content::text("a"), clk(t0, 0)).unwrap();
    let (sends, _, _) = e.poll_sends(clk(t0, 0));
    assert_eq!(sends.len(), 1);
    let out = e.set_online(false, 1, Duration::from_secs(3));
    assert!(matches!(
        events(&out)[0],
        Event::Connection(ConnectionState::Reconnecting { .. })
    ));
    e.push_message(&id, Content::text("b"), clk(t0, 1)).unwrap();
    assert!(e.poll_sends(clk(t0, 1)).0.is_empty());
    e.set_online(true, 0, Duration::ZERO);
    let (sends, _, _) = e.poll_sends(clk(t0, 2));
    let seqs: Vec<u64> = sends
        .iter()
        .map(|s| match &s.op {
            SendOp::Call(Call::SendMessage { seq, .. }) => *seq,
            _ => 0,
        })
        .collect();
    assert_eq!(seqs, vec![1, 2]);
}

#[test]
fn ends_map_initiators() {
    let t0 = Instant::now();
    let mut e = engine(false);
    let id = start(&mut e, t0, "S1");
    let out = e.handle_push(
        clk(t0, 1),
        Push::ServersideEnd {
            reason: None,
            sid: None,
        },
    );
    assert!(matches!(
        events(&out)[0],
        Event::EngagementEnded {
            initiator: Initiator::Agent,
            ..
        }
    ));
    assert_eq!(
        e.push_message(&id, Content::text("x"), clk(t0, 2))
            .unwrap_err()
            .kind(),
        cc_core::ErrorKind::Closed
    );
    let mut e = engine(false);
    start(&mut e, t0, "S2");
    let out = e.session_lost();
    assert!(matches!(
        events(&out)[0],
        Event::EngagementEnded { initiator: Initiator::System, reason: Some(r), .. } if &**r == "SessionLostWhileOffline"
    ));
}

#[test]
fn multichat_routes_by_sid() {
    let t0 = Instant::now();
    let mut e = engine(true);
    let a = start(&mut e, t0, "A");
    let b = start(&mut e, t0, "B");
    let out = e.handle_push(
        clk(t0, 1),
        Push::MessageReceived {
            agent: "Alex".into(),
            msg: "to a".into(),
            id: "m1".into(),
            sid: Some("A".into()),
        },
    );
    assert!(matches!(events(&out)[0], Event::MessageReceived(m) if m.engagement == a));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Call(Call::Ack { sid: Some(s), .. }) if s == "A"))
    );
    let out = e.handle_push(
        clk(t0, 2),
        Push::MessageReceived {
            agent: "Blake".into(),
            msg: "to b".into(),
            id: "m2".into(),
            sid: Some("B".into()),
        },
    );
    assert!(matches!(events(&out)[0], Event::MessageReceived(m) if m.engagement == b));
    // Unknown sid in multichat: dropped, not misrouted.
    let out = e.handle_push(
        clk(t0, 3),
        Push::MessageReceived {
            agent: "X".into(),
            msg: "?".into(),
            id: "m3".into(),
            sid: Some("C".into()),
        },
    );
    assert!(out.is_empty());
}

#[test]
fn open_restores_the_transcript() {
    let t0 = Instant::now();
    let mut e = engine(false);
    let out = e.handle_push(
        clk(t0, 0),
        Push::OpenSuccess {
            sessions: vec![OpenedSession {
                sid_webapi: "S1".into(),
                sid_tchat: "T1".into(),
                agents: vec![AgentInfo {
                    name: "Alex".into(),
                    id: "a1".into(),
                    index: 0,
                }],
                trans: vec![
                    TransRecord {
                        kind: "msg".into(),
                        by: Some("c".into()),
                        msg: Some("hello%20there".into()),
                        name: None,
                        id: Some("m1".into()),
                        time: Some(1_700_000_000_000),
                    },
                    TransRecord {
                        kind: "msg".into(),
                        by: Some("a".into()),
                        msg: Some("hi".into()),
                        name: None,
                        id: Some("m2".into()),
                        time: Some(1_700_000_000_500),
                    },
                ],
                client_id: None,
            }],
            token: None,
        },
    );
    assert!(matches!(
        events(&out)[..],
        [Event::EngagementStarted { resumed: true, .. }]
    ));
    let chat = &e.chats()[0];
    let texts: Vec<&str> = chat
        .transcript
        .iter()
        .filter_map(|m| m.content.as_text())
        .collect();
    assert_eq!(texts, vec!["hello there", "hi"]);
    assert_eq!(chat.state, EngagementState::Active);
}

#[test]
fn poll_machine_follows_the_notes() {
    let t0 = Instant::now();
    let mut m = PollMachine::new(Duration::from_secs(3), 3);
    assert_eq!(
        m.on_poll_failed(t0),
        (PollStep::Poll(Duration::from_secs(3)), false)
    );
    assert_eq!(
        m.on_poll_failed(t0),
        (PollStep::Heartbeat(Duration::from_secs(3)), true)
    );
    assert!(m.is_offline());
    assert_eq!(
        m.on_heartbeat_failed(t0),
        PollStep::Heartbeat(Duration::from_secs(3))
    );
    assert_eq!(m.on_heartbeat_failed(t0), PollStep::GiveUp);
    m.on_heartbeat_ok();
    assert!(!m.is_offline());
    assert_eq!(
        m.on_poll_failed(t0),
        (PollStep::Poll(Duration::from_secs(3)), false)
    );
    m.on_poll_ok();
    assert_eq!(
        m.on_poll_failed(t0),
        (PollStep::Poll(Duration::from_secs(3)), false)
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn push() -> impl Strategy<Value = Push> {
        let sid = proptest::option::of(
            proptest::sample::select(vec!["S1", "S2", "X"]).prop_map(String::from),
        );
        let text = "[a-z ]{0,8}";
        prop_oneof![
            (proptest::sample::select(vec!["S1", "S2"]), sid.clone()).prop_map(|(s, c)| {
                Push::StartSuccess {
                    sid: s.into(),
                    tchatid: "T".into(),
                    param: Value::Null,
                    client_id: c,
                }
            }),
            (text, text, sid.clone()).prop_map(|(m, i, s)| Push::MessageReceived {
                agent: "Alex".into(),
                msg: m,
                id: i,
                sid: s,
            }),
            (text, text, sid.clone()).prop_map(|(m, i, s)| Push::Echo {
                msg: m,
                id: i,
                sid: s
            }),
            (text, sid.clone()).prop_map(|(m, s)| Push::AppMessageReceived {
                agent: "Alex".into(),
                msg: m,
                id: "a".into(),
                sid: s,
            }),
            (text, sid.clone()).prop_map(|(a, s)| Push::RemoteUserConnected {
                name: a.clone(),
                agent_id: a,
                session_id: s.unwrap_or_default(),
                client_id: None,
            }),
            (text, sid.clone()).prop_map(|(a, s)| Push::ConferenceUserLeft {
                agent: a,
                msg: String::new(),
                sid: s
            }),
            sid.clone().prop_map(|s| Push::ServersideEnd {
                reason: None,
                sid: s
            }),
            sid.clone().prop_map(|s| Push::ClientsideEnd {
                reason: Some("x".into()),
                sid: s
            }),
            (0u64..5, sid.clone()).prop_map(|(q, s)| Push::Accepted {
                seq: q,
                mid: format!("c{q}"),
                sid: s
            }),
            (0u8..2, sid.clone()).prop_map(|(t, s)| Push::TypingStateChanged {
                agent: "A".into(),
                state: t,
                sid: s
            }),
            Just(Push::OpenFailed {
                code: "NoSessionFound".into(),
                token: None
            }),
        ]
    }

    proptest! {
        /// Any order of pushes, sends and connection changes: no panic, and every chat's
        /// transcript holds each vendor id at most once.
        #[test]
        fn engine_never_panics(steps in proptest::collection::vec((push(), 0u8..4), 0..40), multichat: bool) {
            let t0 = Instant::now();
            let mut e = engine(multichat);
            for (k, (p, action)) in steps.into_iter().enumerate() {
                let c = clk(t0, k as u64 * 10);
                let _ = e.handle_push(c, p);
                match action {
                    0 => {
                        let ids: Vec<EngagementId> = e.chats().iter().map(|c| c.id.clone()).collect();
                        for id in ids {
                            let _ = e.push_message(&id, Content::text("m"), c);
                        }
                    }
                    1 => {
                        let (sends, _, _) = e.poll_sends(c);
                        for s in sends {
                            let _ = e.on_send_ok(&s.engagement, s.client_id, Some(format!("c{k}")), c);
                        }
                    }
                    2 => { let _ = e.set_online(k % 2 == 0, 1, Duration::from_secs(1)); }
                    _ => { let _ = e.session_lost(); }
                }
            }
            for chat in e.chats() {
                let mut ids: Vec<&MessageId> = chat.transcript.iter().filter_map(|m| m.id.as_ref()).collect();
                let n = ids.len();
                ids.sort();
                ids.dedup();
                prop_assert_eq!(ids.len(), n);
            }
        }
    }
}

#[test]
fn av_signalling_stays_out_of_the_transcript() {
    let t0 = Instant::now();
    let mut e = engine(false);
    let id = start(&mut e, t0, "S1");
    let out = e.handle_push(
        clk(t0, 1),
        Push::AppMessageReceived {
            agent: "Alex".into(),
            msg: r#"{"type":"answer","sdp":"v=0"}"#.into(),
            id: "m7".into(),
            sid: None,
        },
    );
    assert!(
        out.iter().any(|o| matches!(o,
            Output::AvSignal { engagement, agent, message }
                if *engagement == id && agent == "Alex" && message["sdp"] == "v=0")),
        "{out:?}"
    );
    // Acked like any app message, and no MessageReceived.
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Call(Call::Ack { id, .. }) if id == "m7"))
    );
    assert!(events(&out).is_empty(), "{out:?}");
    assert!(e.chat(&id).unwrap().transcript.visible().is_empty());
    // A survey app message is chat content.
    let out = e.handle_push(
        clk(t0, 2),
        Push::AppMessageReceived {
            agent: "Alex".into(),
            msg: r#"{"type":"survey"}"#.into(),
            id: "m8".into(),
            sid: None,
        },
    );
    assert!(matches!(events(&out)[0], Event::MessageReceived(_)));
    // Sequence numbers outside the outbox never repeat.
    let a = e.next_seq();
    assert_eq!(e.next_seq(), a + 1);
}
