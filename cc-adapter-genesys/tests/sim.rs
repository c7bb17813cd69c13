//! The simulator and the client beyond the conformance suite: vendor error codes, limits,
//! out-of-order delivery, history paging, prefilters, WebChatService extensions.

use std::sync::Arc;
use std::time::Duration;

use cc_adapter_genesys::sim::{SimOptions, Simulator};
use cc_adapter_genesys::{GenesysConfig, GenesysSession, Transport};
use cc_core::{Content, Engagement, Event, Session, TlsSettings};
use cc_testkit::{Received, SimChat, SimControl};
use futures::StreamExt;
use serde_json::{Value, json};

async fn wm() -> (Simulator, GenesysSession) {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let cfg = GenesysConfig::web_messaging(&sim.base_url(), "sim-deployment");
    let s = GenesysSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap();
    (sim, s)
}

/// A guest chat v2 configuration for the simulator's organization and queue.
fn guest_config(sim: &Simulator) -> GenesysConfig {
    let mut cfg = GenesysConfig::web_messaging(&sim.base_url(), "sim-deployment");
    cfg.transport = Transport::GuestChatV2;
    cfg.org_id = Some("sim-org".into());
    cfg.routing.target_address = Some("Support".into());
    cfg
}

async fn guest() -> (Simulator, GenesysSession) {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = GenesysSession::connect(guest_config(&sim), &TlsSettings::default())
        .await
        .unwrap();
    (sim, s)
}

/// Starts the default chat request on `s`: the engagement and the simulator's chat.
async fn start(sim: &Simulator, s: &GenesysSession) -> (Arc<dyn Engagement>, SimChat) {
    let eng = s
        .start_chat(cc_testkit::default_chat_request())
        .await
        .unwrap();
    let chat = sim.wait_for_chat(Duration::from_secs(5)).await.unwrap();
    (eng, chat)
}

/// The texts of `messages`, in order.
fn texts<'a>(messages: impl IntoIterator<Item = &'a cc_core::Message>) -> Vec<String> {
    messages
        .into_iter()
        .filter_map(|m| m.content.as_text().map(str::to_owned))
        .collect()
}

/// Waits for the agent message `text`.
async fn received(events: &mut cc_core::EventStream, text: &str) {
    next_matching(
        events,
        |e| matches!(e, Event::MessageReceived(m) if m.content.as_text() == Some(text)),
    )
    .await;
}

async fn next_matching(events: &mut cc_core::EventStream, pred: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let e = events.next().await.expect("stream open");
            if pred(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event within 5 s")
}

#[tokio::test]
async fn out_of_order_agent_messages_are_ordered_by_server_time() {
    let (sim, s) = wm().await;
    let mut ev = s.events();
    let (eng, chat) = start(&sim, &s).await;
    sim.agent_joins(&chat, "Ann").await.unwrap();
    sim.agent_says_out_of_order(&chat, "first", "second")
        .unwrap();
    for _ in 0..2 {
        next_matching(&mut ev, |e| matches!(e, Event::MessageReceived(_))).await;
    }
    assert_eq!(texts(&eng.transcript()), ["first", "second"]);
}

#[tokio::test]
async fn history_pager_walks_pages_newest_first() {
    let (sim, s) = wm().await;
    let (eng, chat) = start(&sim, &s).await;
    sim.agent_joins(&chat, "Ann").await.unwrap();
    for i in 0..5 {
        sim.agent_says(&chat, &format!("m{i}")).await.unwrap();
    }
    let mut pager = eng.history(2).await.unwrap();
    let p1 = pager.previous_page().await.unwrap().unwrap();
    assert_eq!(texts(&p1.messages), ["m3", "m4"]);
    assert!(p1.has_older);
    let p2 = pager.previous_page().await.unwrap().unwrap();
    assert_eq!(texts(&p2.messages), ["m1", "m2"]);
}

#[tokio::test]
async fn too_long_messages_are_refused_before_the_wire() {
    let (sim, s) = wm().await;
    let (eng, chat) = start(&sim, &s).await;
    let e = eng.send(Content::text("x".repeat(4001))).await.unwrap_err();
    assert!(e.to_string().contains("content.text"), "{e}");
    assert!(sim.received(&chat).await.unwrap().is_empty());
}

#[tokio::test]
async fn burst_is_paced_not_dropped() {
    let (sim, s) = wm().await;
    let (eng, chat) = start(&sim, &s).await;
    for i in 0..5 {
        eng.send(Content::text(format!("b{i}"))).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    loop {
        let got = sim.received(&chat).await.unwrap();
        let texts: Vec<_> = got
            .iter()
            .filter_map(|r| match r {
                Received::Text { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect();
        if texts.len() == 5 {
            assert_eq!(texts, ["b0", "b1", "b2", "b3", "b4"]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "got {texts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn prefilters_and_hidden_messages_stay_out_of_the_transcript() {
    let (sim, s) = wm().await;
    let mut ev = s.events();
    let (eng, chat) = start(&sim, &s).await;
    let g = s.engagements().await.unwrap();
    assert_eq!(g.len(), 1);
    let ge = s.current_engagement().unwrap();
    ge.add_prefilter(&["^#code"]).await.unwrap();
    assert!(ge.add_prefilter(&["("]).await.is_err());
    eng.send_hidden(Content::text("token 1234")).await.unwrap();
    sim.agent_joins(&chat, "Ann").await.unwrap();
    sim.agent_says(&chat, "#code 42").await.unwrap();
    sim.agent_says(&chat, "visible").await.unwrap();
    received(&mut ev, "visible").await;
    assert_eq!(texts(&eng.transcript()), ["visible"]);
    let got = sim.received(&chat).await.unwrap();
    assert!(got.contains(&Received::Text {
        text: "token 1234".into(),
        hidden: true
    }));
    assert_eq!(ge.agents().len(), 1);
    assert!(ge.stats().end_time.is_none());
    assert!(s.verify_session());
}

async fn post(base: &str, path: &str, body: Value, bearer: Option<&str>) -> (u16, Value) {
    // A tiny HTTP/1.1 client over a TCP socket keeps the test free of client crates.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.to_string();
    let auth = bearer
        .map(|b| format!("Authorization: Bearer {b}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    sock.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    let status: u16 = text[9..12].parse().unwrap();
    let json = text
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test]
async fn guest_create_validates_and_answers_with_documented_codes() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let base = sim.base_url();
    let p = "/api/v2/webchat/guest/conversations";
    let (st, b) = post(
        &base,
        p,
        json!({"organizationId":"sim-org","deploymentId":"sim-deployment",
        "routingTarget":{"targetType":"QUEUE","targetAddress":"Support"},"memberInfo":{}}),
        None,
    )
    .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (
            400,
            Some("chat.error.notnull.createconversationrequest.memberinfo.displayname")
        )
    );
    let (st, b) = post(&base, p, json!({"organizationId":"x","deploymentId":"sim-deployment",
        "routingTarget":{"targetType":"QUEUE","targetAddress":"Support"},"memberInfo":{"displayName":"J"}}), None).await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("chat.deployment.disabled"))
    );
    let (st, b) = post(&base, p, json!({"organizationId":"sim-org","deploymentId":"sim-deployment",
        "routingTarget":{"targetType":"QUEUE","targetAddress":"Support"},"memberInfo":{"displayName":"J"}}), None).await;
    assert_eq!(st, 200);
    let conv = b["id"].as_str().unwrap();
    let member = b["member"]["id"].as_str().unwrap();
    assert!(
        b["eventStreamUri"]
            .as_str()
            .unwrap()
            .starts_with("ws://127.0.0.1:")
    );
    let msgs = format!("{p}/{conv}/members/{member}/messages");
    let (st, b) = post(&base, &msgs, json!({"body":"hi"}), None).await;
    assert_eq!(
        (st, b["code"].as_str()),
        (401, Some("authentication.required"))
    );
    let (st, b) = post(&base, &msgs, json!({"body":"hi"}), Some("nope")).await;
    assert_eq!((st, b["code"].as_str()), (401, Some("bad.credentials")));
}

#[tokio::test]
async fn guest_chat_notice_typing_and_end() {
    let (sim, s) = guest().await;
    let mut ev = s.events();
    let (eng, chat) = start(&sim, &s).await;
    assert_eq!(chat.customer_name.as_deref(), Some("Casey"));
    eng.send(Content::Notice(cc_core::Notice {
        kind: "cobrowse".into(),
        payload: json!({"x": 1}),
    }))
    .await
    .unwrap();
    eng.typing(true).await.unwrap();
    assert!(
        eng.upload(cc_core::Upload {
            name: "a".into(),
            mime_type: "text/plain".into(),
            bytes: std::sync::Arc::from(&b"a"[..])
        })
        .await
        .is_err()
    );
    sim.agent_joins(&chat, "Ann").await.unwrap();
    sim.agent_typing(&chat, true).await.unwrap();
    next_matching(&mut ev, |e| matches!(e, Event::Typing { on: true, .. })).await;
    // No "typing stopped" on the wire: the indicator times out after about 4 s.
    next_matching(&mut ev, |e| matches!(e, Event::Typing { on: false, .. })).await;
    let got = sim.received(&chat).await.unwrap();
    assert!(
        got.contains(&Received::Notice {
            kind: "cobrowse".into()
        }),
        "{got:?}"
    );
    assert!(got.contains(&Received::Typing { on: true }));
    let agents = s
        .current_engagement()
        .unwrap()
        .fetch_agents()
        .await
        .unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].display_name.as_deref(), Some("Ann"));
    eng.end(None).await.unwrap();
    assert_eq!(
        sim.received(&chat).await.unwrap().last(),
        Some(&Received::Ended)
    );
}

#[tokio::test]
async fn guest_expired_jwt_is_reported_with_the_vendor_code() {
    let (sim, s) = guest().await;
    let mut ev = s.events();
    let (eng, _) = start(&sim, &s).await;
    next_matching(&mut ev, |e| {
        matches!(e, Event::Connection(cc_core::ConnectionState::Connected))
    })
    .await;
    sim.expire_token().await.unwrap();
    // Whichever comes first, the refused stream or a refused POST, the app is told and the
    // message is not lost silently.
    let _ = eng.send(Content::text("after expiry")).await;
    next_matching(&mut ev, |e| matches!(e, Event::TokenExpired)).await;
    next_matching(&mut ev, |e| {
        matches!(
            e,
            Event::MessageFailed { .. } | Event::EngagementEnded { .. }
        )
    })
    .await;
}

#[tokio::test]
async fn both_transports_over_tls_with_the_simulator_ca() {
    let sim = Simulator::start(SimOptions {
        tls: true,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    let tls = TlsSettings {
        ca_pem: sim.ca_pem().map(str::to_owned),
        ca_file: None,
    };
    // Certificate checks stay on: without the CA the handshake fails.
    let untrusting = GenesysSession::connect(guest_config(&sim), &TlsSettings::default())
        .await
        .unwrap();
    let err = untrusting
        .start_chat(cc_testkit::default_chat_request())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), cc_core::ErrorKind::Transport, "{err}");
    let cfg = GenesysConfig::web_messaging(&sim.base_url(), "sim-deployment");
    let s = GenesysSession::connect(cfg, &tls).await.unwrap();
    let mut ev = s.events();
    let (eng, chat) = start(&sim, &s).await;
    sim.agent_joins(&chat, "Ann").await.unwrap();
    sim.agent_says(&chat, "over wss").await.unwrap();
    received(&mut ev, "over wss").await;
    eng.send(Content::text("hello")).await.unwrap();
    next_matching(&mut ev, |e| matches!(e, Event::MessageSent(_))).await;

    let g = GenesysSession::connect(guest_config(&sim), &tls)
        .await
        .unwrap();
    let mut gev = g.events();
    let (geng, gchat) = start(&sim, &g).await;
    geng.send(Content::text("over https")).await.unwrap();
    next_matching(&mut gev, |e| matches!(e, Event::MessageSent(_))).await;
    sim.agent_joins(&gchat, "Bo").await.unwrap();
    sim.agent_says(&gchat, "stream over wss").await.unwrap();
    received(&mut gev, "stream over wss").await;
}
