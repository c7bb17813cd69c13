//! The adapter against its simulator, beyond the conformance suite: multichat with two agents
//! at once, Close then Open from a new session, the offline/online cycle, the lost session,
//! start failure codes, the status endpoint, and the vendor extension calls. Each test runs
//! against both transports.

use std::collections::BTreeMap;
use std::time::Duration;

use cc_adapter_tetherfi::sim::{SimOptions, SimStatus, Simulator};
use cc_adapter_tetherfi::{
    CustomerDetails, LiveChatStatus, StartOptions, TetherfiConfig, TetherfiSession, Transport,
};
use cc_core::{
    Availability, BotTurn, ChatRequest, ConnectionState, Content, Engagement, EngagementState,
    ErrorKind, Event, EventStream, Initiator, Role, Secret, Session, StatusQuery, Timestamp,
    TlsSettings, Upload,
};
use cc_testkit::{Proxy, Received, SimChat, SimControl};
use futures::StreamExt;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(5);
const BOTH: [Transport; 2] = [Transport::Dwr, Transport::Ws];

async fn connect(cfg: TetherfiConfig) -> TetherfiSession {
    TetherfiSession::connect(cfg, &TlsSettings::default())
        .await
        .expect("connect")
}

async fn expect(
    events: &mut EventStream,
    what: &str,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(e)) => seen.push(format!("{e:?}")),
            _ => panic!("no {what} within {T:?}; saw {seen:#?}"),
        }
    }
}

async fn wait_received(
    sim: &Simulator,
    chat: &SimChat,
    what: &str,
    done: impl Fn(&[Received]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let got = sim.received(chat).await.unwrap();
        if done(&got) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: received {got:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn texts(got: &[Received]) -> Vec<String> {
    got.iter()
        .filter_map(|r| match r {
            Received::Text { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn transcript_texts(eng: &dyn Engagement) -> Vec<String> {
    eng.transcript()
        .iter()
        .filter_map(|m| m.content.as_text().map(str::to_owned))
        .collect()
}

fn request() -> ChatRequest {
    cc_testkit::default_chat_request()
}

async fn started(
    sim: &Simulator,
    s: &TetherfiSession,
) -> (std::sync::Arc<dyn Engagement>, SimChat) {
    let eng = s.start_chat(request()).await.expect("start");
    let chat = sim.wait_for_chat(T).await.expect("chat");
    (eng, chat)
}

#[tokio::test]
async fn multichat_with_two_agents_at_once() {
    for transport in BOTH {
        let sim = Simulator::start(SimOptions::default()).await.unwrap();
        let mut cfg = sim.config(transport);
        cfg.multichat = true;
        let s = connect(cfg).await;
        assert!(s.capabilities().multi_chat);
        let mut ev = s.events();
        let (a, chat_a) = started(&sim, &s).await;
        let (b, chat_b) = started(&sim, &s).await;
        assert_ne!(a.id(), b.id());
        sim.agent_joins(&chat_a, "Alex Agent").await.unwrap();
        sim.agent_joins(&chat_b, "Blake Agent").await.unwrap();
        for (eng, name) in [(&a, "Alex Agent"), (&b, "Blake Agent")] {
            let id = eng.id();
            expect(&mut ev, "join", |e| {
                matches!(e, Event::ParticipantJoined { engagement, participant }
                    if *engagement == id && participant.display_name.as_deref() == Some(name))
            })
            .await;
        }
        sim.agent_says(&chat_b, "hello from Blake").await.unwrap();
        sim.agent_says(&chat_a, "hello from Alex").await.unwrap();
        let (ida, idb) = (a.id(), b.id());
        expect(&mut ev, "Blake's message in b", |e| {
            matches!(e, Event::MessageReceived(m) if m.engagement == idb
                && m.content.as_text() == Some("hello from Blake"))
        })
        .await;
        expect(&mut ev, "Alex's message in a", |e| {
            matches!(e, Event::MessageReceived(m) if m.engagement == ida
                && m.content.as_text() == Some("hello from Alex"))
        })
        .await;
        a.send(Content::text("to Alex")).await.unwrap();
        b.send(Content::text("to Blake")).await.unwrap();
        wait_received(&sim, &chat_a, "a", |g| texts(g) == ["to Alex"]).await;
        wait_received(&sim, &chat_b, "b", |g| texts(g) == ["to Blake"]).await;
        assert_eq!(transcript_texts(&*a), ["hello from Alex", "to Alex"]);
        assert_eq!(transcript_texts(&*b), ["hello from Blake", "to Blake"]);
        b.end(Some("done".into())).await.unwrap();
        expect(&mut ev, "b ended", |e| {
            matches!(e, Event::EngagementEnded { engagement, initiator: Initiator::Customer, .. } if *engagement == idb)
        })
        .await;
        assert_eq!(a.state(), EngagementState::Active);
        assert!(!sim.is_ended(&chat_a).unwrap());
        if transport == Transport::Dwr {
            // Multichat DWR calls carry the Sid as their last parameter.
            let sends: Vec<Value> = sim
                .frames()
                .into_iter()
                .filter(|f| f.channel.ends_with("__textchat.SendMessage.dwr"))
                .map(|f| f.body["params"].clone())
                .collect();
            assert!(
                sends.iter().all(|p| p.as_array().map(Vec::len) == Some(3)),
                "{sends:?}"
            );
        }
        s.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn close_then_open_from_a_new_session_keeps_the_history() {
    for transport in BOTH {
        let sim = Simulator::start(SimOptions::default()).await.unwrap();
        let cfg = sim.config(transport);
        let s = connect(cfg.clone()).await;
        let mut ev = s.events();
        let (eng, chat) = started(&sim, &s).await;
        sim.agent_joins(&chat, "Alex Agent").await.unwrap();
        eng.send(Content::text("my card is lost")).await.unwrap();
        wait_received(&sim, &chat, "first", |g| texts(g).len() == 1).await;
        sim.agent_says(&chat, "let me block it").await.unwrap();
        expect(&mut ev, "agent message", |e| {
            matches!(e, Event::MessageReceived(_))
        })
        .await;
        // Close: detach without ending.
        eng.leave().await.unwrap();
        assert_eq!(eng.state(), EngagementState::Detached);
        assert!(!sim.is_ended(&chat).unwrap());
        assert_eq!(
            eng.send(Content::text("x")).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        // A new session for the same browser session finds it with Open.
        let mut cfg2 = cfg.clone();
        cfg2.resume_token = s.resume_token();
        assert!(cfg2.resume_token.is_some());
        let s2 = connect(cfg2).await;
        let list = s2.engagements().await.unwrap();
        let resumed = list
            .into_iter()
            .find(|e| e.id() == eng.id())
            .expect("resumed");
        assert_eq!(resumed.state(), EngagementState::Active);
        assert_eq!(
            transcript_texts(&*resumed),
            ["my card is lost", "let me block it"]
        );
        assert!(resumed.participants().iter().any(|p| p.role == Role::Agent));
        let mut ev2 = s2.events();
        sim.agent_says(&chat, "blocked").await.unwrap();
        expect(
            &mut ev2,
            "after reopen",
            |e| matches!(e, Event::MessageReceived(m) if m.content.as_text() == Some("blocked")),
        )
        .await;
        resumed.send(Content::text("thanks")).await.unwrap();
        wait_received(&sim, &chat, "after reopen", |g| {
            texts(g) == ["my card is lost", "thanks"]
        })
        .await;
        // The first session re-attaches too (the floating-chat flow).
        let again = s.engagements().await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].state(), EngagementState::Active);
        s.shutdown().await.unwrap();
        s2.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn close_without_open_ends_the_chat_after_the_timer() {
    for transport in BOTH {
        let opts = SimOptions {
            close_end_after: Duration::from_millis(300),
            ..SimOptions::default()
        };
        let sim = Simulator::start(opts).await.unwrap();
        let cfg = sim.config(transport);
        let s = connect(cfg.clone()).await;
        let (eng, chat) = started(&sim, &s).await;
        eng.leave().await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(sim.is_ended(&chat).unwrap());
        let mut cfg2 = cfg.clone();
        cfg2.resume_token = s.resume_token();
        let s2 = connect(cfg2).await;
        assert!(s2.engagements().await.unwrap().is_empty());
        assert_eq!(
            s2.reopen().await.unwrap_err().vendor_code(),
            Some("AlreadyEndedSession")
        );
    }
}

#[tokio::test]
async fn offline_online_cycle_loses_and_doubles_nothing() {
    for transport in BOTH {
        let sim = Simulator::start(SimOptions {
            outage: Duration::from_millis(1200),
            ..SimOptions::default()
        })
        .await
        .unwrap();
        let s = connect(sim.config(transport)).await;
        let mut ev = s.events();
        let (eng, chat) = started(&sim, &s).await;
        sim.agent_joins(&chat, "Alex Agent").await.unwrap();
        eng.send(Content::text("one")).await.unwrap();
        wait_received(&sim, &chat, "one", |g| texts(g).len() == 1).await;
        sim.drop_connections().await.unwrap();
        expect(&mut ev, "offline", |e| {
            matches!(e, Event::Connection(ConnectionState::Reconnecting { .. }))
        })
        .await;
        // Both ways while offline.
        eng.send(Content::text("two")).await.unwrap();
        eng.send(Content::text("three")).await.unwrap();
        let m1 = sim.agent_says(&chat, "while you were away").await.unwrap();
        expect(&mut ev, "online", |e| {
            matches!(e, Event::Connection(ConnectionState::Connected))
        })
        .await;
        expect(&mut ev, "the agent's message", |e| {
            matches!(e, Event::MessageReceived(m) if m.id.as_ref().map(|i| i.as_str()) == Some(m1.as_str()))
        })
        .await;
        wait_received(&sim, &chat, "all", |g| texts(g).len() == 3).await;
        eng.send(Content::text("four")).await.unwrap();
        wait_received(&sim, &chat, "barrier", |g| texts(g).len() == 4).await;
        assert_eq!(
            texts(&sim.received(&chat).await.unwrap()),
            ["one", "two", "three", "four"]
        );
        let t = transcript_texts(&*eng);
        for x in ["one", "two", "three", "four", "while you were away"] {
            assert_eq!(t.iter().filter(|y| *y == x).count(), 1, "{x} in {t:?}");
        }
        s.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn session_lost_while_offline_ends_the_chat() {
    for transport in BOTH {
        let sim = Simulator::start(SimOptions::default()).await.unwrap();
        let s = connect(sim.config(transport)).await;
        let mut ev = s.events();
        let (eng, chat) = started(&sim, &s).await;
        sim.end_session_silently(&chat).unwrap();
        sim.drop_connections().await.unwrap();
        let id = eng.id();
        expect(&mut ev, "OnEnd(lib, SessionLostWhileOffline)", |e| {
            matches!(e, Event::EngagementEnded { engagement, initiator: Initiator::System, reason: Some(r) }
                if *engagement == id && &**r == "SessionLostWhileOffline")
        })
        .await;
        assert_eq!(eng.state(), EngagementState::Ended);
    }
}

#[tokio::test]
async fn start_failures_keep_the_vendor_code() {
    for transport in BOTH {
        let sim = Simulator::start(SimOptions {
            captcha: Some("7xk2".into()),
            ..SimOptions::default()
        })
        .await
        .unwrap();
        let s = connect(sim.config(transport)).await;
        let with = |captcha: Option<&str>| {
            let mut r = request();
            if let Some(c) = captcha {
                r.context.insert("captcha".into(), c.into());
            }
            r
        };
        let code = |r: cc_core::Result<std::sync::Arc<dyn Engagement>>| {
            r.unwrap_err().vendor_code().map(str::to_owned)
        };
        assert_eq!(
            code(s.start_chat(with(None)).await).as_deref(),
            Some("CaptchaNotFound")
        );
        assert_eq!(
            code(s.start_chat(with(Some(""))).await).as_deref(),
            Some("CaptchaIsEmpty")
        );
        assert_eq!(
            code(s.start_chat(with(Some("nope"))).await).as_deref(),
            Some("CaptchaDoesNotMatch")
        );
        sim.fail_next_start("MaxConcurrentSessionCountReached");
        let e = s.start_chat(with(Some("7xk2"))).await.unwrap_err();
        assert!(e.is_retryable());
        let eng = s.start_chat(with(Some("7xk2"))).await.unwrap();
        let chat = sim.wait_for_chat(T).await.unwrap();
        let (details, _) = sim.start_details(&chat).unwrap();
        assert_eq!(details["eEnteredCaptcha"], "7xk2");
        assert!(details["eCustDetails"].get("captcha").is_none());
        // Single chat: a second Start is refused.
        assert_eq!(
            code(s.start_chat(with(Some("7xk2"))).await).as_deref(),
            Some("AlreadyStartedAndInSession")
        );
        eng.end(None).await.unwrap();
    }
}

#[tokio::test]
async fn status_endpoint_maps_to_service_status() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = connect(sim.config(Transport::Dwr)).await;
    let status = s.service_status(StatusQuery::default()).await.unwrap();
    assert_eq!(status.availability, Availability::Open);
    sim.set_status(SimStatus::Offline("maintenance".into()));
    assert_eq!(
        s.live_chat_status().await.unwrap(),
        LiveChatStatus::Offline("maintenance".into())
    );
    let status = s.service_status(StatusQuery::default()).await.unwrap();
    assert_eq!(status.availability, Availability::OutOfService);
    sim.set_status(SimStatus::Http(503));
    assert_eq!(
        s.live_chat_status().await.unwrap(),
        LiveChatStatus::Unavailable(503)
    );
    sim.set_status(SimStatus::Http(404));
    assert_eq!(
        s.live_chat_status().await.unwrap(),
        LiveChatStatus::Unavailable(404)
    );
}

#[tokio::test]
async fn extension_calls() {
    for transport in BOTH {
        let sim = Simulator::start(SimOptions::default()).await.unwrap();
        let s = connect(sim.config(transport)).await;
        let mut ev = s.events();
        assert!(!s.access_token().await.unwrap().expose().is_empty());
        let eng = s
            .start_chat_with(StartOptions {
                details: CustomerDetails::Map(BTreeMap::from([(
                    "eCustName".into(),
                    "Casey".into(),
                )])),
                bot_history: vec![
                    BotTurn {
                        role: Role::Customer,
                        text: "card lost".into(),
                        time: Timestamp(1_000),
                    },
                    BotTurn {
                        role: Role::Bot,
                        text: "connecting you".into(),
                        time: Timestamp(2_000),
                    },
                ],
                va_chat_id: Some("va-1".into()),
                captcha: None,
                first_message: Some("hello".into()),
            })
            .await
            .unwrap();
        let chat = sim.wait_for_chat(T).await.unwrap();
        let (details, va) = sim.start_details(&chat).unwrap();
        assert_eq!(details["vachatid"], "va-1");
        assert_eq!(va.as_array().map(Vec::len), Some(2), "{va}");
        assert_eq!(va[0]["msg"], "card lost");
        wait_received(&sim, &chat, "first message", |g| texts(g) == ["hello"]).await;
        sim.agent_joins(&chat, "Alex Agent").await.unwrap();

        // SendAppMessage ≈ Content::Notice.
        eng.send_app_message("formdata", json!({"field": "x"}))
            .await
            .unwrap();
        wait_received(&sim, &chat, "app message", |g| {
            g.contains(&Received::Notice {
                kind: "formdata".into(),
            })
        })
        .await;
        eng.request_callback("+44 20 7946 0000").await.unwrap();
        expect(&mut ev, "OnCallbackRequestStatus", |e| {
            matches!(e, Event::Vendor { name, payload, .. }
                if &**name == "OnCallbackRequestStatus" && payload["isCustomerReq"] == true && payload["status"] == true)
        })
        .await;
        assert_eq!(
            eng.request_callback("call me").await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let r = s
            .create_campaign_contact(json!({"phone": "123"}))
            .await
            .unwrap();
        assert_eq!(r["resultCode"], 0);
        s.slog("warn", "checkout", "slow page").await.unwrap();
        assert_eq!(
            s.slog("debug", "x", "y").await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );

        sim.system_notification(&chat, "NoStaffedAgents").unwrap();
        expect(&mut ev, "OnSystemNotification", |e| {
            matches!(e, Event::Vendor { name, payload, .. }
                if &**name == "OnSystemNotification" && payload["reason"] == "NoStaffedAgents")
        })
        .await;
        sim.agent_app_message(&chat, json!({"type": "survey", "url": "https://x"}))
            .unwrap();
        expect(&mut ev, "app message as a notice", |e| {
            matches!(e, Event::MessageReceived(m) if matches!(&m.content, Content::Notice(n) if n.kind == "survey"))
        })
        .await;
        sim.agent_app_message(&chat, json!({"type": "requestav", "param": "video"}))
            .unwrap();
        expect(&mut ev, "AV signalling stays out of the transcript", |e| {
            matches!(e, Event::Vendor { name, payload, .. }
                if &**name == "OnAppMessageReceived" && payload["message"]["type"] == "requestav")
        })
        .await;
        sim.internal_error(&chat, "UnOpenedSessionNotAllowed")
            .unwrap();
        expect(&mut ev, "OnInternalServerError", |e| {
            matches!(e, Event::Error(err) if err.vendor_code() == Some("UnOpenedSessionNotAllowed"))
        })
        .await;
        sim.callback_status(&chat, true).unwrap();
        expect(&mut ev, "CSO callback status", |e| {
            matches!(e, Event::Vendor { name, payload, .. }
                if &**name == "OnCallbackRequestStatus" && payload["isCustomerReq"] == false)
        })
        .await;
        sim.transfer(&chat, "Blake Agent").await.unwrap();
        expect(&mut ev, "the first agent leaves", |e| {
            matches!(e, Event::ParticipantLeft { participant, .. } if participant.display_name.as_deref() == Some("Alex Agent"))
        })
        .await;
        expect(&mut ev, "the second agent joins", |e| {
            matches!(e, Event::ParticipantJoined { participant, .. } if participant.display_name.as_deref() == Some("Blake Agent"))
        })
        .await;
        let mid = sim.agent_says(&chat, "ack me").await.unwrap();
        let deadline = tokio::time::Instant::now() + T;
        while !sim.acks(&chat).unwrap().contains(&mid) {
            assert!(tokio::time::Instant::now() < deadline, "no Ack for {mid}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let info = s
            .upload_file(
                &eng.id(),
                Upload {
                    name: "statement.pdf".into(),
                    mime_type: "application/pdf".into(),
                    bytes: vec![7u8; 512].into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(info["fileSize"], 512);
        wait_received(&sim, &chat, "upload", |g| {
            g.contains(&Received::File {
                name: "statement.pdf".into(),
                size: 512,
            })
        })
        .await;
        expect(
            &mut ev,
            "OnUploadComplete",
            |e| matches!(e, Event::Vendor { name, .. } if &**name == "OnUploadComplete"),
        )
        .await;
        assert!(
            s.download_url("statement.pdf")
                .unwrap()
                .as_str()
                .ends_with("/download?file=statement.pdf")
        );
        assert!(
            s.captcha_url(true)
                .unwrap()
                .as_str()
                .ends_with("/CaptchaImageServlet?reset=true")
        );
        assert_eq!(
            sim.logs(),
            [("warn".into(), "checkout".into(), "slow page".into())]
        );
        s.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn encrypted_customer_details_and_access_token() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let mut cfg = sim.config(Transport::Dwr);
    cfg.encrypted_customer_details = Some(Secret::new("ENC(abc123)"));
    cfg.use_access_token = true;
    let s = connect(cfg).await;
    let _eng = s.start_chat(request()).await.unwrap();
    let chat = sim.wait_for_chat(T).await.unwrap();
    let (details, _) = sim.start_details(&chat).unwrap();
    assert_eq!(details["eCustDetails"], "ENC(abc123)");
    // Debug output never shows the secret.
    assert!(
        !format!(
            "{:?}",
            CustomerDetails::Encrypted(Secret::new("ENC(abc123)"))
        )
        .contains("abc123")
    );
}

/// The 9 s rule, shortened: a poll that hangs past `poll_timeout_ms` fails; two failures in a
/// row are offline; a heartbeat that gets through is online again.
#[tokio::test]
async fn a_hanging_poll_counts_as_failed() {
    let sim = Simulator::start(SimOptions {
        poll_hold: Duration::from_millis(200),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let proxy = Proxy::start(sim.addr()).await.unwrap();
    let mut cfg = sim.config(Transport::Dwr);
    cfg.base_url = Some(format!("http://{}", proxy.addr()));
    cfg.poll_timeout_ms = 400;
    cfg.request_timeout_ms = 400;
    let s = connect(cfg).await;
    let mut ev = s.events();
    let (eng, chat) = started(&sim, &s).await;
    proxy.stall(true);
    let t0 = tokio::time::Instant::now();
    expect(&mut ev, "offline", |e| {
        matches!(e, Event::Connection(ConnectionState::Reconnecting { .. }))
    })
    .await;
    // At least one timed-out poll, a retry interval, and a second failure.
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );
    eng.send(Content::text("held")).await.unwrap();
    proxy.stall(false);
    expect(&mut ev, "online", |e| {
        matches!(e, Event::Connection(ConnectionState::Connected))
    })
    .await;
    wait_received(&sim, &chat, "held message", |g| texts(g) == ["held"]).await;
}
