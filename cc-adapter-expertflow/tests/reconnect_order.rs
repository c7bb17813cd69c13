//! Messages sent while the socket reconnects reach the server once each and in order, and
//! every connect completes promptly, on a multi-threaded runtime against the simulator
//! without a proxy in between (the way `cc-cli demo` runs it). Each round: connect, start a
//! chat, the agent joins, the customer says one line, the simulator drops every connection,
//! two lines are sent during the reconnect.
//!
//! The rounds are repeated because the failures these guard against were races: the
//! simulator's Socket.IO server runs each event's handler as its own task, so two events
//! written back to back could be handled in either order, and an event written right after
//! the CONNECT reply could arrive before the connection's handlers existed.

use std::time::{Duration, Instant};

use cc_adapter_expertflow::ExpertflowSession;
use cc_adapter_expertflow::sim::{SimOptions, Simulator};
use cc_core::{ConnectionState, Content, Event, EventStream, Session, TlsSettings};
use cc_testkit::{Received, SimControl};
use futures::StreamExt;

const ROUNDS: usize = 25;
/// Far above a healthy connect or step on loopback (a few ms), far below the 5 s timeouts
/// a lost packet would run into.
const STEP: Duration = Duration::from_secs(2);

async fn wait(events: &mut EventStream, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(STEP, async {
        while let Some(e) = events.next().await {
            if pred(&e) {
                return Some(e);
            }
            seen.push(format!("{e:?}"));
        }
        None
    })
    .await;
    match found {
        Ok(Some(e)) => e,
        _ => panic!("no {what} within {STEP:?}; saw {seen:#?}"),
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

async fn round(n: usize) {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let mut cfg = sim.client_config(&sim.base_url(), &format!("order-{n}"));
    cfg.timeout_ms = u64::try_from(STEP.as_millis()).unwrap();
    let t0 = Instant::now();
    let session = ExpertflowSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap_or_else(|e| panic!("round {n}: connect: {e}"));
    assert!(
        t0.elapsed() < STEP,
        "round {n}: connect took {:?}",
        t0.elapsed()
    );
    let mut events = session.events();
    let eng = session
        .start_chat(cc_testkit::default_chat_request())
        .await
        .unwrap();
    let chat = sim.wait_for_chat(STEP).await.unwrap();
    sim.agent_joins(&chat, "Alex Agent").await.unwrap();
    let first = eng.send(Content::text("before the drop")).await.unwrap();
    wait(
        &mut events,
        "MessageSent before the drop",
        |e| matches!(e, Event::MessageSent(m) if m.client_id == Some(first.client_id)),
    )
    .await;

    sim.drop_connections().await.unwrap();
    wait(&mut events, "Reconnecting", |e| {
        matches!(e, Event::Connection(ConnectionState::Reconnecting { .. }))
    })
    .await;
    let lines = ["during the reconnect (1)", "during the reconnect (2)"];
    let mut ids = Vec::new();
    for l in lines {
        ids.push(eng.send(Content::text(l)).await.unwrap().client_id);
    }
    wait(&mut events, "Connected", |e| {
        matches!(e, Event::Connection(ConnectionState::Connected))
    })
    .await;
    let mut confirmed = Vec::new();
    while confirmed.len() < ids.len() {
        let e = wait(
            &mut events,
            "MessageSent after the reconnect",
            |e| matches!(e, Event::MessageSent(m) if m.client_id.is_some_and(|c| ids.contains(&c))),
        )
        .await;
        if let Event::MessageSent(m) = e {
            confirmed.push(m.client_id.unwrap());
        }
    }
    assert_eq!(confirmed, ids, "round {n}: MessageSent order");

    let got = texts(&sim.received(&chat).await.unwrap());
    let order: Vec<&str> = got
        .iter()
        .map(String::as_str)
        .filter(|t| lines.contains(t))
        .collect();
    assert_eq!(
        order, lines,
        "round {n}: the server's copies, in arrival order (all: {got:?})"
    );
    let shown = eng
        .transcript()
        .iter()
        .filter(|m| lines.contains(&m.content.as_text().unwrap_or("")))
        .count();
    assert_eq!(shown, lines.len(), "round {n}: transcript");
    session.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_during_a_reconnect_arrive_once_in_order() {
    for n in 0..ROUNDS {
        round(n).await;
    }
}
