//! The client's timers on tokio's paused clock, against the simulator on 127.0.0.1:
//! nothing waits in real time.

use std::time::Duration;

use cc_adapter_avaya::AvayaSession;
use cc_adapter_avaya::sim::{SimOptions, Simulator};
use cc_core::{Event, EventStream, Session, TlsSettings};
use futures::StreamExt;
use tokio::time::Instant;

async fn next_neutral(events: &mut EventStream) -> Event {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(7200), events.next())
            .await
            .expect("an event")
            .expect("stream open");
        if !matches!(e, Event::Vendor { .. }) {
            return e;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn idle_warning_then_grace_then_shutdown_with_user_inactive() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let mut cfg = sim.client_config().unwrap();
    cfg.idle_shutdown_grace_secs = 30;
    let t0 = Instant::now();
    let session = AvayaSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap();
    let mut events = session.events();
    match next_neutral(&mut events).await {
        Event::IdleWarning {
            engagement: None,
            grace,
        } => assert_eq!(grace, Duration::from_secs(30)),
        other => panic!("{other:?}"),
    }
    assert_eq!(t0.elapsed().as_secs(), 300);
    match next_neutral(&mut events).await {
        Event::ShutDown { reason } => assert_eq!(&*reason, "USER_INACTIVE"),
        other => panic!("{other:?}"),
    }
    assert_eq!(t0.elapsed().as_secs(), 330);
    let deleted = sim.deleted_sessions();
    assert_eq!(
        deleted,
        vec![(
            session.session_id().to_owned(),
            Some("USER_INACTIVE".to_owned())
        )]
    );
    assert!(session.keep_alive().await.is_err(), "the session is closed");
}

#[tokio::test(start_paused = true)]
async fn keep_alive_during_grace_restarts_the_idle_timer() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let cfg = sim.client_config().unwrap();
    let t0 = Instant::now();
    let session = AvayaSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap();
    let mut events = session.events();
    assert!(matches!(
        next_neutral(&mut events).await,
        Event::IdleWarning { .. }
    ));
    tokio::time::sleep(Duration::from_secs(20)).await;
    session.keep_alive().await.unwrap();
    assert!(matches!(
        next_neutral(&mut events).await,
        Event::IdleWarning { .. }
    ));
    assert_eq!(t0.elapsed().as_secs(), 300 + 20 + 300);
    assert!(sim.deleted_sessions().is_empty());
}

#[tokio::test(start_paused = true)]
async fn token_reminder_exactly_180_s_before_exp_then_expired_then_refresh() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let mut cfg = sim.client_config().unwrap();
    cfg.idle_timeout_secs = 3300;
    cfg.token = sim
        .issue_token_with_ttl("conformance-customer", Duration::from_secs(600))
        .unwrap();
    let t0 = Instant::now();
    let session = AvayaSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap();
    let mut events = session.events();
    match next_neutral(&mut events).await {
        Event::TokenExpiring { in_ } => assert_eq!(in_, Duration::from_secs(180)),
        other => panic!("{other:?}"),
    }
    // `exp` is whole seconds from the wall clock at issue: the reminder is at 419..=420 s.
    let at = t0.elapsed();
    assert!(
        at >= Duration::from_secs(419) && at <= Duration::from_secs(420),
        "{at:?}"
    );
    assert!(matches!(
        next_neutral(&mut events).await,
        Event::TokenExpired
    ));
    assert_eq!((t0.elapsed() - at).as_secs(), 180);
    let fresh = sim.issue_token_for("conformance-customer").unwrap();
    session.set_token(fresh).await.unwrap();
    // The next timer is the idle warning, not another token event.
    assert!(matches!(
        next_neutral(&mut events).await,
        Event::IdleWarning { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn reconnection_stops_after_the_reconnection_timeout_until_retry_connection() {
    use cc_core::{ChatRequest, ConnectionState};
    use cc_testkit::{Proxy, SimControl};
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let proxy = Proxy::start(sim.addr()).await.unwrap();
    let mut cfg = sim.client_config().unwrap();
    cfg.host_url = Some(format!("http://{}", proxy.addr()));
    cfg.idle_timeout_secs = 3300;
    let session = AvayaSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap();
    let mut events = session.events();
    session.start_chat(ChatRequest::default()).await.unwrap();
    sim.wait_for_chat(Duration::from_secs(5)).await.unwrap();
    loop {
        if matches!(next_neutral(&mut events).await, Event::Queued { .. }) {
            break;
        }
    }
    let t0 = Instant::now();
    proxy.set_down(true);
    let mut attempts = Vec::new();
    let reason = loop {
        match next_neutral(&mut events).await {
            Event::Connection(ConnectionState::Reconnecting { attempt, delay }) => {
                attempts.push((attempt, delay.as_secs()));
            }
            Event::Connection(ConnectionState::Disconnected { reason }) => break reason,
            _ => {}
        }
    };
    assert_eq!(&*reason, "RECONNECTION_TIMEOUT");
    assert_eq!(t0.elapsed().as_secs(), 120, "the reconnection timeout");
    // Fibonacci back-off (whole seconds; the jitter is under one).
    let delays: Vec<u64> = attempts.iter().map(|a| a.1).collect();
    assert_eq!(&delays[..6], &[1, 1, 2, 3, 5, 8], "{attempts:?}");
    // No automatic attempt any more.
    let refused = proxy.refused();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(proxy.refused(), refused);
    proxy.set_down(false);
    session.retry_connection().unwrap();
    loop {
        if matches!(
            next_neutral(&mut events).await,
            Event::Connection(ConnectionState::Connected)
        ) {
            break;
        }
    }
    assert!(session.retry_connection().is_err(), "only after a failure");
}

#[tokio::test(start_paused = true)]
async fn the_server_forgets_an_unused_session_after_its_expiry() {
    use cc_core::{ChatRequest, ErrorKind};
    let sim = Simulator::start(SimOptions {
        session_expiry: Duration::from_secs(30 * 60),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let mut cfg = sim.client_config().unwrap();
    cfg.idle_timeout_secs = 3300;
    let session = AvayaSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(31 * 60)).await;
    let err = session
        .start_chat(ChatRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_chat_across_token_expiry_and_refresh_loses_nothing() {
    use cc_core::{ChatRequest, ConnectionState, Content};
    use cc_testkit::{Received, SimControl};
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let mut cfg = sim.client_config().unwrap();
    cfg.idle_timeout_secs = 3300;
    cfg.token = sim
        .issue_token_with_ttl("conformance-customer", Duration::from_secs(600))
        .unwrap();
    let session = AvayaSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap();
    let mut events = session.events();
    let eng = session.start_chat(ChatRequest::default()).await.unwrap();
    let chat = sim.wait_for_chat(Duration::from_secs(5)).await.unwrap();
    sim.agent_joins(&chat, "Alex Agent").await.unwrap();
    eng.send(Content::text("before")).await.unwrap();
    loop {
        match next_neutral(&mut events).await {
            Event::TokenExpired => break,
            Event::MessageFailed { .. } => panic!("a message failed"),
            _ => {}
        }
    }
    loop {
        if let Event::Connection(ConnectionState::Disconnected { reason }) =
            next_neutral(&mut events).await
        {
            assert!(reason.starts_with("TOKEN_EXPIRED"), "{reason}");
            break;
        }
    }
    let pending = eng.send(Content::text("while expired")).await.unwrap();
    sim.agent_says(&chat, "still there?").await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let texts = |r: Vec<Received>| -> Vec<String> {
        r.into_iter()
            .filter_map(|r| match r {
                Received::Text { text, .. } => Some(text),
                _ => None,
            })
            .collect()
    };
    assert_eq!(texts(sim.received(&chat).await.unwrap()), ["before"]);
    session
        .set_token(sim.issue_token_for("conformance-customer").unwrap())
        .await
        .unwrap();
    let (mut got_agent, mut got_sent) = (false, false);
    while !(got_agent && got_sent) {
        match next_neutral(&mut events).await {
            Event::MessageReceived(m) if m.content == Content::text("still there?") => {
                assert!(!got_agent, "the agent's message came twice");
                got_agent = true;
            }
            Event::MessageSent(m) if m.client_id == Some(pending.client_id) => got_sent = true,
            Event::MessageFailed { .. } => panic!("a message failed"),
            _ => {}
        }
    }
    assert_eq!(
        texts(sim.received(&chat).await.unwrap()),
        ["before", "while expired"]
    );
}
