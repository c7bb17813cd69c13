//! The client against the simulator on 127.0.0.1, beyond the conformance suite: join from a
//! second session with the full history, token expiry without loss, session loss, probes,
//! engagement errors, limits and configuration ranges.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cc_adapter_avaya::sim::{SimOptions, Simulator};
use cc_adapter_avaya::{AvayaConfig, AvayaSession};
use cc_core::{
    CallRequest, ChatRequest, ConnectionState, Content, Engagement, ErrorKind, Event, EventStream,
    Feature, Role, Session, TlsSettings,
};
use cc_testkit::{Received, SimControl};
use futures::StreamExt;

const STEP: Duration = Duration::from_secs(8);

async fn sim() -> Simulator {
    Simulator::start(SimOptions {
        hold: Duration::from_secs(1),
        ..SimOptions::default()
    })
    .await
    .unwrap()
}

async fn connect(cfg: AvayaConfig) -> AvayaSession {
    AvayaSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap()
}

async fn wait_for(
    events: &mut EventStream,
    what: &str,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(_)) => {}
            _ => panic!("no {what} within {STEP:?}"),
        }
    }
}

fn is_text(e: &Event, text: &str) -> bool {
    matches!(e, Event::MessageReceived(m) if m.content == Content::text(text))
}

async fn received_texts(sim: &Simulator, chat: &cc_testkit::SimChat) -> Vec<String> {
    sim.received(chat)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Received::Text { text, .. } => Some(text),
            _ => None,
        })
        .collect()
}

async fn wait_received(sim: &Simulator, chat: &cc_testkit::SimChat, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let got = received_texts(sim, chat).await;
        if got.len() >= n || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A chat with an agent in it: the session, its events, the engagement, the simulator's chat.
async fn chat_with_agent(
    sim: &Simulator,
) -> (
    AvayaSession,
    EventStream,
    Arc<dyn Engagement>,
    cc_testkit::SimChat,
) {
    let session = connect(sim.client_config().unwrap()).await;
    let mut events = session.events();
    let eng = session.start_chat(ChatRequest::default()).await.unwrap();
    let chat = sim.wait_for_chat(STEP).await.unwrap();
    wait_for(&mut events, "Queued", |e| matches!(e, Event::Queued { .. })).await;
    sim.agent_joins(&chat, "Alex Agent").await.unwrap();
    wait_for(&mut events, "agent joined", |e| {
        matches!(e, Event::ParticipantJoined { .. })
    })
    .await;
    (session, events, eng, chat)
}

#[tokio::test]
async fn join_from_a_second_session_gets_the_full_history_and_pages_it() {
    let sim = sim().await;
    let (_a, mut a_events, eng, chat) = chat_with_agent(&sim).await;
    let mut all = Vec::new();
    for i in 1..=12 {
        let t = format!("customer {i}");
        eng.send(Content::text(t.clone())).await.unwrap();
        all.push(t);
    }
    assert_eq!(wait_received(&sim, &chat, 12).await.len(), 12);
    for i in 1..=3 {
        let t = format!("agent {i}");
        sim.agent_says(&chat, &t).await.unwrap();
        wait_for(&mut a_events, "agent message", |e| is_text(e, &t)).await;
        all.push(t);
    }

    // A second session of the same customer, while the first one is still there.
    let mut cfg = sim.client_config().unwrap();
    cfg.token = sim.issue_token_for("conformance-customer").unwrap();
    let b = connect(cfg).await;
    let mut b_events = b.events();
    assert_eq!(
        b.user_context().engagements.len(),
        1,
        "the user context lists it"
    );
    let listed = b.list_engagements().await.unwrap();
    assert_eq!(listed[0].engagement_id, eng.id().as_str());
    assert!(
        b.engagement(&eng.id())
            .is_some_and(|e| e.state() == cc_core::EngagementState::Detached)
    );
    let list = b.engagements().await.unwrap();
    let joined = list
        .into_iter()
        .find(|e| e.id() == eng.id())
        .expect("listed");
    wait_for(&mut b_events, "EngagementStarted (resumed)", |e| {
        matches!(e, Event::EngagementStarted { resumed: true, .. })
    })
    .await;
    let deadline = tokio::time::Instant::now() + STEP;
    while joined.transcript().len() < 15 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let texts: Vec<String> = joined
        .transcript()
        .iter()
        .filter_map(|m| m.content.as_text().map(str::to_owned))
        .filter(|t| !t.starts_with("You are"))
        .collect();
    assert_eq!(
        texts, all,
        "the joined transcript is the whole history, once, in order"
    );
    assert!(joined.participants().iter().any(|p| p.role == Role::Agent));

    // History pages of 5, backwards from the newest; later messages stay out.
    let mut pager = joined.history(5).await.unwrap();
    sim.agent_says(&chat, "after the pager").await.unwrap();
    wait_for(&mut b_events, "live message on the second session", |e| {
        is_text(e, "after the pager")
    })
    .await;
    let mut pages = Vec::new();
    while let Some(p) = pager.previous_page().await.unwrap() {
        pages.push(p);
    }
    assert_eq!(pages.len(), 3);
    assert!(pages[0].has_older && !pages[0].has_newer);
    assert!(!pages[2].has_older);
    let mut paged: Vec<String> = Vec::new();
    for p in pages.iter().rev() {
        assert_eq!(p.messages.len(), 5);
        paged.extend(
            p.messages
                .iter()
                .filter_map(|m| m.content.as_text().map(str::to_owned)),
        );
    }
    assert_eq!(paged, all);
    let newer = pager.next_page().await.unwrap().expect("a newer page");
    assert_eq!(newer.messages, pages[1].messages);
    assert!(joined.history(51).await.is_err(), "pages are at most 50");

    // The second session writes; the server gets it once.
    joined
        .send(Content::text("from the second session"))
        .await
        .unwrap();
    let got = wait_received(&sim, &chat, 13).await;
    assert_eq!(
        got.iter()
            .filter(|t| *t == "from the second session")
            .count(),
        1
    );
    let fetched = b.fetch_engagement(&eng.id()).await.unwrap();
    assert_eq!(fetched.engagement_id, eng.id().as_str());
}

#[tokio::test]
async fn token_expiry_then_refresh_loses_nothing() {
    let sim = sim().await;
    let (session, mut events, eng, chat) = chat_with_agent(&sim).await;
    eng.send(Content::text("before")).await.unwrap();
    assert_eq!(wait_received(&sim, &chat, 1).await, ["before"]);
    sim.expire_token().await.unwrap();
    wait_for(&mut events, "TokenExpired", |e| {
        matches!(e, Event::TokenExpired)
    })
    .await;
    let one = eng.send(Content::text("while expired 1")).await.unwrap();
    let two = eng.send(Content::text("while expired 2")).await.unwrap();
    sim.agent_says(&chat, "are you there?").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        received_texts(&sim, &chat).await,
        ["before"],
        "nothing goes with a dead token"
    );
    session
        .set_token(sim.issue_token().await.unwrap())
        .await
        .unwrap();
    // The agent's message (from the poll) and the confirmations (from the sends) come in
    // either order: the stream is back with whichever answers first, the poll or the probe.
    let (mut heard, mut sent) = (false, Vec::new());
    wait_for(
        &mut events,
        "the agent's message and two MessageSent",
        |e| {
            match e {
                Event::MessageSent(m) => sent.extend(m.client_id),
                e if is_text(e, "are you there?") => heard = true,
                _ => {}
            }
            heard && sent.len() == 2
        },
    )
    .await;
    assert_eq!(sent, [one.client_id, two.client_id], "in order, once each");
    assert_eq!(
        wait_received(&sim, &chat, 3).await,
        ["before", "while expired 1", "while expired 2"]
    );
    let n = eng
        .transcript()
        .iter()
        .filter(|m| m.content == Content::text("are you there?"))
        .count();
    assert_eq!(n, 1);
    assert!(
        session
            .set_token(cc_core::Secret::new("nonsense"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_server_forgetting_the_session_shuts_it_down() {
    let sim = sim().await;
    let (session, mut events, eng, _chat) = chat_with_agent(&sim).await;
    sim.forget_sessions();
    let e = wait_for(&mut events, "ShutDown", |e| {
        matches!(e, Event::ShutDown { .. })
    })
    .await;
    assert!(matches!(e, Event::ShutDown { reason } if &*reason == "CLIENT_SESSION_INVALIDATED"));
    let err = eng.send(Content::text("hello?")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert_eq!(
        session
            .start_chat(ChatRequest::default())
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Closed
    );
}

#[tokio::test]
async fn a_server_error_is_probed_and_retried_only_when_the_server_is_down() {
    let sim = sim().await;
    let (_session, mut events, eng, chat) = chat_with_agent(&sim).await;
    // The probes answer: polling goes on without a reconnect.
    sim.fail_polls(1, 500, false);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sim.probes() >= 1);
    sim.agent_says(&chat, "still here").await.unwrap();
    let e = wait_for(&mut events, "the agent's message or a reconnect", |e| {
        is_text(e, "still here")
            || matches!(e, Event::Connection(ConnectionState::Reconnecting { .. }))
    })
    .await;
    assert!(is_text(&e, "still here"), "{e:?}");
    // The probes fail too: the client reconnects with back-off.
    let before = sim.probes();
    sim.fail_polls(1, 503, true);
    wait_for(&mut events, "Reconnecting", |e| {
        matches!(
            e,
            Event::Connection(ConnectionState::Reconnecting { attempt: 1, .. })
        )
    })
    .await;
    assert_eq!(sim.probes() - before, 3, "three probes before giving up");
    wait_for(&mut events, "Connected", |e| {
        matches!(e, Event::Connection(ConnectionState::Connected))
    })
    .await;
    eng.send(Content::text("after the outage")).await.unwrap();
    assert_eq!(wait_received(&sim, &chat, 1).await, ["after the outage"]);
}

#[tokio::test]
async fn an_engagement_error_ends_the_engagement() {
    let sim = sim().await;
    let (_session, mut events, eng, chat) = chat_with_agent(&sim).await;
    sim.engagement_error(&chat, "Routing failed", "no agents")
        .unwrap();
    wait_for(
        &mut events,
        "Error",
        |e| matches!(e, Event::Error(err) if err.vendor_code() == Some("ENGAGEMENT_ERROR")),
    )
    .await;
    wait_for(&mut events, "EngagementEnded", |e| {
        matches!(
            e,
            Event::EngagementEnded {
                initiator: cc_core::Initiator::System,
                ..
            }
        )
    })
    .await;
    assert_eq!(eng.state(), cc_core::EngagementState::Ended);
}

#[tokio::test]
async fn limits_are_enforced_before_anything_is_sent() {
    let sim = sim().await;
    let (session, _events, eng, chat) = chat_with_agent(&sim).await;
    let field = |e: cc_core::Error| match e {
        cc_core::Error::InvalidInput { field, .. } => field.into_owned(),
        other => panic!("{other:?}"),
    };
    let long = "x".repeat(4097);
    assert_eq!(
        field(eng.send(Content::text(long)).await.unwrap_err()),
        "content.text"
    );
    eng.send(Content::text("y".repeat(4096))).await.unwrap();
    let many: BTreeMap<String, String> = (0..21).map(|i| (format!("k{i}"), "v".into())).collect();
    let req = ChatRequest {
        context: many,
        ..ChatRequest::default()
    };
    assert_eq!(field(session.start_chat(req).await.unwrap_err()), "context");
    let req = ChatRequest {
        context: [("k".repeat(65), "v".to_owned())].into(),
        ..ChatRequest::default()
    };
    assert!(field(session.start_chat(req).await.unwrap_err()).starts_with("context."));
    let req = ChatRequest {
        context: [("k".to_owned(), "v".repeat(257))].into(),
        ..ChatRequest::default()
    };
    assert_eq!(
        field(session.start_chat(req).await.unwrap_err()),
        "context.k"
    );
    let file = Content::File(cc_core::Attachment {
        id: None,
        name: "a.txt".into(),
        mime_type: "text/plain".into(),
        size: None,
        url: None,
    });
    assert!(matches!(
        eng.send(file).await,
        Err(cc_core::Error::Unsupported {
            feature: Feature::Attachments,
            ..
        })
    ));
    assert_eq!(
        wait_received(&sim, &chat, 1).await.len(),
        1,
        "only the valid message went"
    );
    for video in [false, true] {
        let r = session
            .start_call(CallRequest {
                video,
                ..CallRequest::default()
            })
            .await;
        assert!(matches!(r, Err(cc_core::Error::Unsupported { .. })));
    }
}

#[tokio::test]
async fn configuration_ranges_and_formats_name_the_field() {
    let sim = sim().await;
    let base = sim.client_config().unwrap();
    let check = |f: &dyn Fn(&mut AvayaConfig), want: &str| {
        let mut c = base.clone();
        f(&mut c);
        match c.validate() {
            Err(cc_core::Error::InvalidInput { field, .. }) => assert_eq!(field, want),
            other => panic!("{want}: {other:?}"),
        }
    };
    check(&|c| c.idle_timeout_secs = 299, "avaya.idle_timeout_secs");
    check(&|c| c.idle_timeout_secs = 3301, "avaya.idle_timeout_secs");
    check(
        &|c| c.idle_shutdown_grace_secs = 29,
        "avaya.idle_shutdown_grace_secs",
    );
    check(
        &|c| c.idle_shutdown_grace_secs = 121,
        "avaya.idle_shutdown_grace_secs",
    );
    check(
        &|c| c.reconnection_timeout_secs = 119,
        "avaya.reconnection_timeout_secs",
    );
    check(
        &|c| c.reconnection_timeout_secs = 301,
        "avaya.reconnection_timeout_secs",
    );
    check(
        &|c| c.display_name = Some("n".repeat(71)),
        "avaya.display_name",
    );
    check(
        &|c| c.integration_id = "nope".into(),
        "avaya.integration_id",
    );
    check(
        &|c| c.token = cc_core::Secret::new("eyJ.a.b"),
        "avaya.token",
    );
    check(
        &|c| c.host_url = Some("http://example.com".into()),
        "avaya.host_url",
    );
    check(&|c| c.region = Some("na".into()), "avaya.host_url");
    let mut ok = base.clone();
    ok.host_url = None;
    ok.region = Some("eu".into());
    assert_eq!(
        ok.base_url().unwrap().as_str(),
        format!(
            "https://eu.api.avayacloud.com/sdk/digital/chat/v1/integrations/{}/",
            ok.integration_id
        )
    );
    let dbg = format!("{base:?}");
    assert!(
        !dbg.contains(base.token.expose()) && !dbg.contains("sim-appkey"),
        "{dbg}"
    );
    // Through cc_core::Config, with unknown fields refused.
    let config = sim.config().unwrap();
    assert!(cc_adapter_avaya::capabilities(&config).is_ok());
    let mut raw = serde_json::to_value(&base).unwrap();
    raw["colour"] = "blue".into();
    let bad = cc_core::Config::new(cc_core::Vendor::Avaya, raw).unwrap();
    assert!(cc_adapter_avaya::capabilities(&bad).is_err());
}

#[tokio::test]
async fn a_kept_session_id_resumes_the_server_session() {
    let sim = sim().await;
    let (a, _events, eng, chat) = chat_with_agent(&sim).await;
    eng.send(Content::text("before the reload")).await.unwrap();
    assert_eq!(wait_received(&sim, &chat, 1).await.len(), 1);
    let id = a.session_id().to_owned();
    // The app goes away without shutting down (a page reload), keeping the session id.
    drop(eng);
    drop(a);
    let mut cfg = sim.client_config().unwrap();
    cfg.session_id = Some(id.clone());
    let b = connect(cfg).await;
    assert_eq!(b.session_id(), id);
    let mut events = b.events();
    let list = b.engagements().await.unwrap();
    let resumed = list.into_iter().next().expect("the ongoing engagement");
    sim.agent_says(&chat, "welcome back").await.unwrap();
    wait_for(&mut events, "the agent's message", |e| {
        is_text(e, "welcome back")
    })
    .await;
    resumed
        .send(Content::text("after the reload"))
        .await
        .unwrap();
    assert_eq!(
        wait_received(&sim, &chat, 2).await,
        ["before the reload", "after the reload"]
    );
    assert!(sim.deleted_sessions().is_empty());
}

#[tokio::test]
async fn two_chats_in_one_session_keep_their_messages_apart() {
    let sim = sim().await;
    let session = connect(sim.client_config().unwrap()).await;
    let mut events = session.events();
    let first = session.start_chat(ChatRequest::default()).await.unwrap();
    let c1 = sim.wait_for_chat(STEP).await.unwrap();
    let second = session.start_chat(ChatRequest::default()).await.unwrap();
    let c2 = sim.wait_for_chat(STEP).await.unwrap();
    assert_ne!(first.id(), second.id());
    assert_eq!(session.user_context().engagements.len(), 0);
    for (c, name) in [(&c1, "Ann"), (&c2, "Bob")] {
        sim.agent_joins(c, name).await.unwrap();
    }
    let mut second_events = second.events();
    sim.agent_says(&c1, "for the first").await.unwrap();
    sim.agent_says(&c2, "for the second").await.unwrap();
    let e = wait_for(&mut events, "first", |e| is_text(e, "for the first")).await;
    assert_eq!(e.engagement(), Some(&first.id()));
    wait_for(&mut second_events, "second", |e| {
        is_text(e, "for the second")
    })
    .await;
    first.send(Content::text("one")).await.unwrap();
    second.send(Content::text("two")).await.unwrap();
    assert_eq!(wait_received(&sim, &c1, 1).await, ["one"]);
    assert_eq!(wait_received(&sim, &c2, 1).await, ["two"]);
    assert!(
        first
            .transcript()
            .iter()
            .all(|m| m.content != Content::text("for the second"))
    );
    let list = session.engagements().await.unwrap();
    assert_eq!(list.len(), 2);
}

#[tokio::test]
async fn the_simulator_checks_auth_and_limits_like_the_server() {
    use cc_adapter_avaya::wire::{self, paths};
    use cc_transport::{HeaderValue, HttpClient, HttpConfig};
    let sim = sim().await;
    let cfg = sim.client_config().unwrap();
    let client = |token: &str, appkey: Option<&str>| {
        let mut c = HttpConfig::new(cc_core::Vendor::Avaya, cfg.base_url().unwrap())
            .with_bearer(cc_core::Secret::new(token))
            .with_error_mapper(cc_adapter_avaya::error::from_response);
        if let Some(k) = appkey {
            c.headers
                .insert(wire::APPKEY_HEADER, HeaderValue::from_str(k).unwrap());
        }
        HttpClient::new(c).unwrap()
    };
    let body = wire::CreateSessionRequest {
        display_name: Some("Casey".into()),
        client_type: "web".into(),
        session_parameters: BTreeMap::new(),
    };
    let token = cfg.token.expose().to_owned();
    let no_key = client(&token, None)
        .post_json::<_, wire::WireSession>(paths::SESSIONS, &body)
        .await
        .unwrap_err();
    assert_eq!(no_key.kind(), ErrorKind::Auth);
    let bad_token = client("jwt.e30.e30.x", Some("sim-appkey"))
        .post_json::<_, wire::WireSession>(paths::SESSIONS, &body)
        .await
        .unwrap_err();
    assert_eq!(bad_token.vendor_code(), Some("ACS-305"));
    let http = client(&token, Some("sim-appkey"));
    let session: wire::WireSession = http.post_json(paths::SESSIONS, &body).await.unwrap();
    let too_many = wire::CreateEngagementRequest {
        session_id: session.session_id.clone(),
        engagement_parameters: (0..21).map(|i| (format!("k{i}"), "v".into())).collect(),
    };
    let e = http
        .post_json::<_, wire::WireEngagement>(paths::ENGAGEMENTS, &too_many)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let ok = wire::CreateEngagementRequest {
        session_id: session.session_id.clone(),
        engagement_parameters: BTreeMap::new(),
    };
    let eng: wire::WireEngagement = http.post_json(paths::ENGAGEMENTS, &ok).await.unwrap();
    let long = wire::SendMessageRequest {
        dialog_id: eng.dialogs[0].dialog_id.clone(),
        session_id: session.session_id.clone(),
        parent_message_id: None,
        body: wire::MessageBody::plain("x".repeat(4097)),
    };
    let e = http
        .post_json::<_, wire::WireMessage>(&paths::messages(&eng.engagement_id), &long)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("body.elementText.text"), "{e}");
    let e = http
        .get_json::<Vec<serde_json::Value>>(&paths::events("00000000-0000-4000-8000-000000000000"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            cc_core::Error::Closed {
                what: "session",
                ..
            }
        ),
        "{e:?}"
    );
    let e = http
        .post_json::<_, wire::WireEngagement>(
            &paths::join("00000000-0000-4000-8000-000000000000"),
            &wire::JoinRequest {
                dialog_id: "d".into(),
                session_id: session.session_id.clone(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            cc_core::Error::Closed {
                what: "engagement",
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn the_long_poll_resends_until_acknowledged_and_holds_when_empty() {
    use cc_adapter_avaya::wire::{self, paths};
    use cc_transport::{HeaderValue, HttpClient, HttpConfig};
    let sim = sim().await;
    let cfg = sim.client_config().unwrap();
    let mut c = HttpConfig::new(cc_core::Vendor::Avaya, cfg.base_url().unwrap())
        .with_bearer(cfg.token.clone())
        .with_error_mapper(cc_adapter_avaya::error::from_response);
    c.headers
        .insert(wire::APPKEY_HEADER, HeaderValue::from_static("sim-appkey"));
    let http = HttpClient::new(c).unwrap();
    let session: wire::WireSession = http
        .post_json(
            paths::SESSIONS,
            &wire::CreateSessionRequest {
                display_name: None,
                client_type: "web".into(),
                session_parameters: BTreeMap::new(),
            },
        )
        .await
        .unwrap();
    let _: wire::WireEngagement = http
        .post_json(
            paths::ENGAGEMENTS,
            &wire::CreateEngagementRequest {
                session_id: session.session_id.clone(),
                engagement_parameters: BTreeMap::new(),
            },
        )
        .await
        .unwrap();
    let events = paths::events(&session.session_id);
    let ids = |body: &[u8]| -> Vec<String> {
        wire::decode_events(body)
            .unwrap()
            .into_iter()
            .map(|d| d.event_id.unwrap())
            .collect()
    };
    let first = http
        .request(cc_transport::Method::GET, &events)
        .send()
        .await
        .unwrap();
    let first = ids(&first.body);
    assert_eq!(first.len(), 2, "ENGAGEMENT_CREATED and PARTICIPANT_ADDED");
    // Not acknowledged: sent again.
    let again = http
        .request(cc_transport::Method::GET, &events)
        .send()
        .await
        .unwrap();
    assert_eq!(ids(&again.body), first);
    // Acknowledged up to the last one: nothing left, so the poll is held, then `[]`.
    let started = tokio::time::Instant::now();
    let acked = http
        .request(
            cc_transport::Method::GET,
            &format!("{events}?lastEventId={}", first[1]),
        )
        .send()
        .await
        .unwrap();
    assert!(ids(&acked.body).is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "held for the hold time"
    );
    // A probe is answered at once.
    let started = tokio::time::Instant::now();
    http.request(cc_transport::Method::GET, &events)
        .header(wire::ROUTE_HEADER, &session.session_id)
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
}

/// The `cc-cli demo` sequence through `sim::SIM`, the entry tools use (the simulator holds
/// an empty poll for its realistic 25 s): a drop right after a poll answered, then
/// `Reconnecting`, two sends, then a *new* `Connected` within a couple of seconds and both
/// messages on the server once each, in order. The server's hold must not keep the queued
/// messages back.
#[tokio::test]
async fn a_drop_through_the_sim_entry_recovers_at_once_and_delivers_the_queued_messages() {
    let running = (cc_adapter_avaya::sim::SIM.start)(cc_testkit::SimStart::default())
        .await
        .unwrap();
    let control = running.control.clone();
    let session = cc_adapter_avaya::connect(running.config.clone())
        .await
        .unwrap();
    let mut events = session.events();
    let eng = session.start_chat(ChatRequest::default()).await.unwrap();
    let chat = control.wait_for_chat(STEP).await.unwrap();
    wait_for(&mut events, "Connected", |e| {
        matches!(e, Event::Connection(ConnectionState::Connected))
    })
    .await;
    control.agent_joins(&chat, "Alex").await.unwrap();
    wait_for(&mut events, "the agent", |e| {
        matches!(e, Event::ParticipantJoined { .. })
    })
    .await;
    eng.send(Content::text("before the drop")).await.unwrap();
    wait_for(&mut events, "MessageSent", |e| {
        matches!(e, Event::MessageSent(_))
    })
    .await;
    // As in the demo, the drop comes right after a poll answered (the agent's message), when
    // the next poll may not be open yet: the drop must still be seen.
    control.agent_says(&chat, "one moment").await.unwrap();
    wait_for(&mut events, "the agent's message", |e| {
        is_text(e, "one moment")
    })
    .await;

    control.drop_connections().await.unwrap();
    let dropped = tokio::time::Instant::now();
    let delay = match wait_for(&mut events, "Reconnecting", |e| {
        matches!(e, Event::Connection(ConnectionState::Reconnecting { .. }))
    })
    .await
    {
        Event::Connection(ConnectionState::Reconnecting { attempt, delay }) => {
            assert_eq!(attempt, 1);
            delay
        }
        _ => unreachable!(),
    };
    assert!(delay < Duration::from_secs(2), "first back-off {delay:?}");
    let texts = ["while down 1", "while down 2"];
    let mut ids = Vec::new();
    for t in texts {
        ids.push(eng.send(Content::text(t)).await.unwrap().client_id);
    }
    let mut sent = Vec::new();
    let mut connected = false;
    let deadline = dropped + Duration::from_secs(4);
    while !(connected && sent.len() == ids.len()) {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Event::Connection(ConnectionState::Connected))) => {
                assert!(sent.is_empty(), "a message was confirmed before Connected");
                connected = true;
            }
            Ok(Some(Event::MessageSent(m))) => sent.push(m.client_id.unwrap()),
            Ok(Some(Event::MessageFailed { .. })) => panic!("a queued message failed"),
            Ok(Some(_)) => {}
            _ => panic!(
                "within 4 s of the drop: connected {connected}, sent {} of {}",
                sent.len(),
                ids.len()
            ),
        }
    }
    assert_eq!(sent, ids, "confirmed once each, in order");
    let got = wait_received_sim(control.as_ref(), &chat, 3).await;
    assert_eq!(got, ["before the drop", "while down 1", "while down 2"]);
    // Nothing doubled later either (the held poll answers with the echoes).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received_texts_sim(control.as_ref(), &chat).await.len(), 3);
    session.shutdown().await.unwrap();
}

async fn received_texts_sim(sim: &dyn SimControl, chat: &cc_testkit::SimChat) -> Vec<String> {
    sim.received(chat)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Received::Text { text, .. } => Some(text),
            _ => None,
        })
        .collect()
}

async fn wait_received_sim(
    sim: &dyn SimControl,
    chat: &cc_testkit::SimChat,
    n: usize,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let got = received_texts_sim(sim, chat).await;
        if got.len() >= n || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A drop is a short outage, not only a reset of the connections open at that instant: a
/// request racing it (the next long poll, between two polls) fails as well, so a client
/// never misses a drop; once `DROP_OUTAGE` has passed the server answers again.
#[tokio::test]
async fn a_drop_refuses_requests_briefly_then_the_server_is_back() {
    let sim = sim().await;
    let cfg = sim.client_config().unwrap();
    sim.drop_connections().await.unwrap();
    let err = AvayaSession::connect(cfg.clone(), &TlsSettings::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    tokio::time::sleep(cc_adapter_avaya::sim::DROP_OUTAGE + Duration::from_millis(100)).await;
    let s = connect(cfg).await;
    s.shutdown().await.unwrap();
}

/// A resumed chat reads its history in the background while the stream already runs. When
/// that read answers after the agent's next message was posted, the history holds the message
/// before its event arrives: the event must still announce it, once.
#[tokio::test]
async fn a_message_the_resumed_history_already_holds_is_still_announced_once() {
    let sim = sim().await;
    let (a, _a_events, eng, chat) = chat_with_agent(&sim).await;
    sim.agent_says(&chat, "Hi Tess").await.unwrap();
    eng.leave().await.unwrap();
    a.shutdown().await.unwrap();

    let b = connect(sim.client_config().unwrap()).await;
    let mut events = b.events();
    sim.hold_history(true);
    sim.hold_events(true);
    let resumed = b
        .engagements()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.id() == eng.id())
        .expect("the ongoing engagement");
    sim.agent_says(&chat, "welcome back").await.unwrap();
    // The history read answers first, with the new message in it ...
    sim.hold_history(false);
    let has = |text: &str| {
        resumed
            .transcript()
            .iter()
            .any(|m| m.content == Content::text(text))
    };
    let deadline = tokio::time::Instant::now() + STEP;
    while !has("welcome back") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the history was not read within {STEP:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(has("Hi Tess"), "the earlier exchange is in the history");
    // ... then the stream delivers its event.
    sim.hold_events(false);
    wait_for(&mut events, "the agent's message", |e| {
        is_text(e, "welcome back")
    })
    .await;
    sim.agent_says(&chat, "anything else?").await.unwrap();
    let mut seen = Vec::new();
    wait_for(&mut events, "the next message", |e| {
        if let Event::MessageReceived(m) = e {
            seen.push(m.content.clone());
        }
        is_text(e, "anything else?")
    })
    .await;
    assert_eq!(
        seen,
        [Content::text("anything else?")],
        "each message is announced once"
    );
    let texts: Vec<Content> = resumed
        .transcript()
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(
        texts
            .iter()
            .filter(|c| **c == Content::text("welcome back"))
            .count(),
        1
    );
}

/// A simulator that holds an empty poll for the server's 25 s, as AXP does.
async fn sim_holding() -> Simulator {
    Simulator::start(SimOptions::default()).await.unwrap()
}

/// A poll whose connection breaks (the server closed a pooled connection as it was reused)
/// is sent again at once: no outage is reported and nothing is lost.
#[tokio::test]
async fn a_poll_on_a_broken_connection_is_sent_again_without_an_outage() {
    let sim = sim_holding().await;
    let (_s, mut events, _eng, chat) = chat_with_agent(&sim).await;
    sim.break_polls(1);
    sim.agent_says(&chat, "one").await.unwrap();
    let mut outage = false;
    wait_for(&mut events, "the message after the broken poll", |e| {
        outage |= matches!(
            e,
            Event::Connection(
                ConnectionState::Reconnecting { .. } | ConnectionState::Disconnected { .. }
            )
        );
        is_text(e, "one")
    })
    .await;
    assert!(!outage, "a broken poll connection is no outage");
    sim.agent_says(&chat, "two").await.unwrap();
    wait_for(&mut events, "the next message", |e| is_text(e, "two")).await;
}

/// A send whose connection breaks leaves its fate unknown. While the stream is up, the
/// message is reconciled with the server's history a second later (not when the held poll
/// answers, up to 25 s later), and reaches the server exactly once, whether the server took
/// it or not.
#[tokio::test]
async fn a_send_on_a_broken_connection_is_reconciled_at_once_and_arrives_once() {
    for after_taking in [false, true] {
        let sim = sim_holding().await;
        let (_s, mut events, eng, chat) = chat_with_agent(&sim).await;
        sim.break_sends(1, after_taking);
        let sent = eng
            .send(Content::text("through a broken pipe"))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(Some(Event::MessageSent(m))) if m.client_id == Some(sent.client_id) => break,
                Ok(Some(Event::MessageFailed { .. })) => panic!("the message failed"),
                Ok(Some(_)) => {}
                _ => panic!("not confirmed within 5 s (taken first: {after_taking})"),
            }
        }
        eng.send(Content::text("next")).await.unwrap();
        assert_eq!(
            wait_received(&sim, &chat, 2).await,
            ["through a broken pipe", "next"],
            "taken first: {after_taking}"
        );
        let copies = eng
            .transcript()
            .iter()
            .filter(|m| m.client_id == Some(sent.client_id))
            .count();
        assert_eq!(copies, 1);
    }
}

/// A load test's customers connect by the thousand while the server is busy: the
/// simulator's listen queue holds such a burst (the usual 128 overflowed, and with SYN
/// cookies an overflowing queue ends in connections reset after they seemed open). While
/// this test's thread connects, the runtime cannot accept, so every connection waits in the
/// queue.
#[tokio::test]
async fn the_listen_queue_holds_a_burst_of_connections() {
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if somaxconn <= 128 {
        eprintln!("net.core.somaxconn is {somaxconn}: the kernel caps the queue; nothing to check");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sim = Simulator::start(SimOptions {
        port,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let burst = somaxconn.min(1000);
    let mut held = Vec::with_capacity(burst);
    for i in 0..burst {
        match std::net::TcpStream::connect_timeout(&sim.addr(), Duration::from_millis(500)) {
            Ok(c) => held.push(c),
            Err(e) => panic!("connection {i} of {burst} failed: {e}"),
        }
    }
    drop(held);
    // The server then serves as usual.
    let session = connect(sim.client_config().unwrap()).await;
    assert!(!session.session_id().is_empty());
}
