//! The reconnecting WebSocket client against a local axum server.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cc_core::{ConnectionState, Error, Vendor};
use cc_transport::{
    BackoffPolicy, Disconnect, Frame, HeaderValue, Heartbeat, UrlProvider, WsClient, WsConfig,
    WsEvent, WsEvents, header,
};
use url::Url;

use crate::server::{WsState, closed_port, serve, ws_router};

const LIMIT: Duration = Duration::from_secs(10);

/// The next event, failing the test when none comes in time.
pub(crate) async fn next(events: &mut WsEvents) -> WsEvent {
    tokio::time::timeout(LIMIT, events.recv())
        .await
        .expect("no event in time")
        .expect("events ended")
}

/// Skips events until `pred` matches; returns the match.
pub(crate) async fn until(events: &mut WsEvents, pred: impl Fn(&WsEvent) -> bool) -> WsEvent {
    loop {
        let e = next(events).await;
        if pred(&e) {
            return e;
        }
    }
}

async fn connected(events: &mut WsEvents) -> u64 {
    match until(events, |e| matches!(e, WsEvent::Connected { .. })).await {
        WsEvent::Connected { connection, .. } => connection,
        _ => unreachable!(),
    }
}

async fn text(events: &mut WsEvents) -> String {
    match next(events).await {
        WsEvent::Text(t) => t,
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn echo_server() -> (Arc<WsState>, Url) {
    let state = Arc::new(WsState::default());
    let addr = serve(ws_router(state.clone())).await;
    let url = Url::parse(&format!("ws://{addr}/ws")).unwrap();
    (state, url)
}

fn config(url: Url) -> WsConfig {
    let mut c = WsConfig::new(Vendor::Genesys, UrlProvider::fixed(url));
    c.backoff = BackoffPolicy::fixed(Duration::from_millis(200));
    c
}

#[tokio::test]
async fn connects_with_headers_and_subprotocol_and_echoes() {
    let (state, url) = echo_server().await;
    let mut c = config(url);
    c.headers.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://app.example"),
    );
    c.subprotocols = vec!["sip".to_owned()];
    let (handle, mut events) = WsClient::connect(c);

    let first = next(&mut events).await;
    assert!(
        matches!(first, WsEvent::Connecting { attempt: 0 }),
        "{first:?}"
    );
    assert_eq!(first.connection_state(), Some(ConnectionState::Connecting));
    let up = next(&mut events).await;
    let WsEvent::Connected {
        connection,
        attempt,
        ref protocol,
    } = up
    else {
        panic!("{up:?}")
    };
    assert_eq!((connection, attempt), (1, 0));
    assert_eq!(protocol.as_deref(), Some("sip"));
    assert_eq!(up.connection_state(), Some(ConnectionState::Connected));
    assert_eq!(handle.connection(), Some(1));
    let seen = state.headers.lock().unwrap()[0].clone();
    assert_eq!(seen.get("origin").unwrap(), "https://app.example");

    handle.ready(connection);
    handle.send("hello").unwrap();
    assert_eq!(text(&mut events).await, "hello");
    handle.send_now(vec![1u8, 2, 3]).await.unwrap();
    match next(&mut events).await {
        WsEvent::Binary(b) => assert_eq!(&b[..], &[1, 2, 3]),
        other => panic!("{other:?}"),
    }

    let unsent = handle.close().await;
    assert!(unsent.is_empty());
    let last = next(&mut events).await;
    assert!(matches!(last, WsEvent::Closed), "{last:?}");
    assert!(events.recv().await.is_none());
    let err = handle.send("late").unwrap_err();
    assert!(matches!(err, Error::Closed { .. }), "{err:?}");
}

#[tokio::test]
async fn reconnects_after_a_drop_and_flushes_the_queue_once_after_the_gate() {
    let (state, url) = echo_server().await;
    let (handle, mut events) = WsClient::connect(config(url));
    let first = connected(&mut events).await;
    handle.ready(first);
    handle.send_now("drop").await.unwrap();

    let down = until(&mut events, |e| matches!(e, WsEvent::Disconnected { .. })).await;
    assert!(
        matches!(
            down,
            WsEvent::Disconnected {
                reason: Disconnect::Error(_)
            }
        ),
        "{down:?}"
    );
    // Disconnected: the immediate lane refuses, the queue accepts.
    assert!(handle.send_now("nope").await.is_err());
    handle.send("q1").unwrap();
    handle.send("q2").unwrap();
    let retry = next(&mut events).await;
    assert!(
        matches!(retry, WsEvent::Reconnecting { attempt: 1, delay } if delay == Duration::from_millis(200)),
        "{retry:?}"
    );
    assert_eq!(
        retry.connection_state(),
        Some(ConnectionState::Reconnecting {
            attempt: 1,
            delay: Duration::from_millis(200)
        })
    );
    assert!(matches!(
        next(&mut events).await,
        WsEvent::Connecting { attempt: 1 }
    ));
    let up = next(&mut events).await;
    let WsEvent::Connected {
        connection: second,
        attempt: 1,
        ..
    } = up
    else {
        panic!("{up:?}")
    };
    assert_eq!(second, 2);

    // Gate closed: a handshake goes through, the queue waits.
    handle.send_now("handshake").await.unwrap();
    assert_eq!(text(&mut events).await, "handshake");
    // A late ready for the old connection does not open the new gate.
    handle.ready(first);
    handle.send_now("marker").await.unwrap();
    assert_eq!(text(&mut events).await, "marker");
    assert!(!state.received().contains(&"q1".to_owned()));

    handle.ready(second);
    assert_eq!(text(&mut events).await, "q1");
    assert_eq!(text(&mut events).await, "q2");
    handle.send("after").unwrap();
    assert_eq!(text(&mut events).await, "after");
    let received = state.received();
    assert_eq!(received.iter().filter(|t| *t == "q1").count(), 1);
    assert_eq!(received.iter().filter(|t| *t == "q2").count(), 1);
    assert_eq!(
        received,
        ["drop", "handshake", "marker", "q1", "q2", "after"]
    );
    assert_eq!(state.connections.load(Ordering::SeqCst), 2);
    handle.close().await;
}

#[tokio::test]
async fn server_close_code_is_reported_and_can_end_the_client() {
    let (_state, url) = echo_server().await;
    let mut c = config(url);
    c.reconnect_after_server_close = false;
    let (handle, mut events) = WsClient::connect(c);
    connected(&mut events).await;
    handle.send_now("close:4001").await.unwrap();
    let down = next(&mut events).await;
    match &down {
        WsEvent::Disconnected {
            reason: Disconnect::ServerClosed { code, reason },
        } => {
            assert_eq!(*code, 4001);
            assert_eq!(reason, "bye");
        }
        other => panic!("{other:?}"),
    }
    let last = next(&mut events).await;
    assert!(
        matches!(
            &last,
            WsEvent::GaveUp {
                reason: Disconnect::ServerClosed { code: 4001, .. },
                ..
            }
        ),
        "{last:?}"
    );
    assert!(matches!(
        last.connection_state(),
        Some(ConnectionState::Disconnected { .. })
    ));
    assert!(events.recv().await.is_none());
}

#[tokio::test]
async fn server_close_reconnects_by_default() {
    let (state, url) = echo_server().await;
    let (handle, mut events) = WsClient::connect(config(url));
    connected(&mut events).await;
    handle.send_now("close:1001").await.unwrap();
    let down = next(&mut events).await;
    assert!(
        matches!(
            down,
            WsEvent::Disconnected {
                reason: Disconnect::ServerClosed { code: 1001, .. }
            }
        ),
        "{down:?}"
    );
    assert_eq!(connected(&mut events).await, 2);
    assert_eq!(state.connections.load(Ordering::SeqCst), 2);
    handle.close().await;
}

#[tokio::test]
async fn silent_connection_times_out_and_the_url_provider_is_asked_again() {
    let (state, url) = echo_server().await;
    // First attempt: a server that never answers; later attempts: the echo server.
    let provider = UrlProvider::new(move |attempt| {
        let mut url = url.clone();
        if attempt == 0 {
            url.set_query(Some("mode=silent"));
        }
        async move { Ok(url) }
    });
    let mut c = config(Url::parse("ws://unused.invalid").unwrap());
    c.url = provider;
    c.backoff = BackoffPolicy::fixed(Duration::from_millis(20));
    c.heartbeats = vec![Heartbeat::text_before_ready(
        Duration::from_millis(40),
        || r#"{"action":"echo"}"#.to_owned(),
    )];
    c.dead_after = Some(Duration::from_millis(250));
    let (handle, mut events) = WsClient::connect(c);
    let first = connected(&mut events).await;
    assert_eq!(first, 1);
    let down = next(&mut events).await;
    match down {
        WsEvent::Disconnected {
            reason: Disconnect::Dead { silent_for },
        } => assert!(silent_for >= Duration::from_millis(250)),
        other => panic!("{other:?}"),
    }
    assert_eq!(connected(&mut events).await, 2);
    // The echo server reflects the application heartbeat.
    assert_eq!(text(&mut events).await, r#"{"action":"echo"}"#);
    assert!(state.received().iter().all(|t| t == r#"{"action":"echo"}"#));
    handle.close().await;
}

#[tokio::test]
async fn ping_heartbeat_keeps_an_idle_connection_alive() {
    let (_state, url) = echo_server().await;
    let mut c = config(url);
    c.heartbeats = vec![Heartbeat::ping(Duration::from_millis(30))];
    c.dead_after = Some(Duration::from_millis(120));
    let (handle, mut events) = WsClient::connect(c);
    connected(&mut events).await;
    // Pongs count as traffic: nothing happens for many dead_after periods.
    let quiet = tokio::time::timeout(Duration::from_millis(600), events.recv()).await;
    assert!(quiet.is_err(), "unexpected event {quiet:?}");
    assert_eq!(handle.connection(), Some(1));
    handle.close().await;
}

#[tokio::test]
async fn full_queue_is_an_error_and_close_returns_the_unsent_frames() {
    let addr = closed_port().await;
    let mut c = config(Url::parse(&format!("ws://{addr}/ws")).unwrap());
    c.queue_capacity = 2;
    c.backoff = BackoffPolicy::fixed(Duration::from_secs(3600));
    let (handle, mut events) = WsClient::connect(c);
    handle.send("a").unwrap();
    handle.send("b").unwrap();
    let err = handle.send("c").unwrap_err();
    assert!(err.is_retryable());
    assert!(matches!(
        err,
        Error::Transport {
            vendor: Vendor::Genesys,
            ..
        }
    ));
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("queue full"), "{source}");
    until(&mut events, |e| matches!(e, WsEvent::Reconnecting { .. })).await;
    let unsent = handle.close().await;
    assert_eq!(unsent, vec![Frame::from("a"), Frame::from("b")]);
    assert!(matches!(next(&mut events).await, WsEvent::Closed));
}

#[tokio::test]
async fn rejected_upgrade_is_fatal() {
    let (_state, mut url) = echo_server().await;
    url.set_query(Some("token=bad"));
    let (_handle, mut events) = WsClient::connect(config(url));
    let down = until(&mut events, |e| matches!(e, WsEvent::Disconnected { .. })).await;
    let WsEvent::Disconnected {
        reason: Disconnect::Error(err),
    } = down
    else {
        panic!("{down:?}")
    };
    assert!(
        matches!(&*err, Error::Auth { code: Some(c), .. } if c == "401"),
        "{err:?}"
    );
    let last = next(&mut events).await;
    assert!(matches!(last, WsEvent::GaveUp { .. }), "{last:?}");
}

#[tokio::test]
async fn reconnect_on_request_uses_a_new_connection() {
    let (state, url) = echo_server().await;
    let (handle, mut events) = WsClient::connect(config(url));
    assert_eq!(connected(&mut events).await, 1);
    handle.reconnect();
    let down = next(&mut events).await;
    assert!(matches!(
        down,
        WsEvent::Disconnected {
            reason: Disconnect::Requested
        }
    ));
    assert!(matches!(
        next(&mut events).await,
        WsEvent::Reconnecting {
            attempt: 1,
            delay: Duration::ZERO
        }
    ));
    assert_eq!(connected(&mut events).await, 2);
    assert_eq!(state.connections.load(Ordering::SeqCst), 2);
    handle.close().await;
}

/// Simulated time: the Genesys policy (every 5 s for 5 minutes) against a closed port
/// finishes at once and gives up after 60 retries.
#[tokio::test(start_paused = true)]
async fn gives_up_when_the_policy_is_exhausted() {
    let addr = closed_port().await;
    let mut c = config(Url::parse(&format!("ws://{addr}/ws")).unwrap());
    c.backoff = BackoffPolicy::genesys_web_messaging();
    let (handle, mut events) = WsClient::connect(c);
    handle.send("never").unwrap();
    let start = tokio::time::Instant::now();
    let mut retries = 0;
    loop {
        match events.recv().await.expect("events ended before GaveUp") {
            WsEvent::Reconnecting { attempt, delay } => {
                retries += 1;
                assert_eq!(attempt, retries);
                assert_eq!(delay, Duration::from_secs(5));
            }
            WsEvent::GaveUp { reason, unsent } => {
                assert!(matches!(reason, Disconnect::Error(_)));
                assert_eq!(unsent, vec![Frame::from("never")]);
                break;
            }
            WsEvent::Connected { .. } => panic!("connected to a closed port"),
            _ => {}
        }
    }
    assert_eq!(retries, 60);
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(300) && elapsed < Duration::from_secs(310),
        "{elapsed:?}"
    );
    assert!(events.recv().await.is_none());
    assert!(matches!(handle.send("x"), Err(Error::Closed { .. })));
}

#[tokio::test]
async fn gated_text_heartbeat_starts_after_ready() {
    let (state, url) = echo_server().await;
    let mut c = config(url);
    let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = n.clone();
    c.heartbeats = vec![
        Heartbeat::ping(Duration::from_millis(20)),
        Heartbeat::text(Duration::from_millis(50), move || {
            format!("beat-{}", counter.fetch_add(1, Ordering::SeqCst))
        }),
    ];
    let (handle, mut events) = WsClient::connect(c);
    let connection = connected(&mut events).await;
    // Before the gate opens only protocol pings flow.
    let quiet = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
    assert!(quiet.is_err(), "unexpected event {quiet:?}");
    assert!(state.received().is_empty());
    handle.ready(connection);
    assert_eq!(text(&mut events).await, "beat-0");
    assert_eq!(text(&mut events).await, "beat-1");
    handle.close().await;
}

/// Waits until the server is done with the connection; returns the frames it received and
/// the close frames it saw.
async fn server_saw_close(state: &WsState) -> (Vec<String>, Vec<(usize, u16)>) {
    let start = tokio::time::Instant::now();
    while state.ended.load(Ordering::SeqCst) == 0 {
        assert!(
            start.elapsed() < LIMIT,
            "the server did not end the connection"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (state.received(), state.closes.lock().unwrap().clone())
}

#[tokio::test]
async fn close_writes_the_queued_frames_then_the_close_frame() {
    const N: usize = 100;
    let (state, url) = echo_server().await;
    let (handle, mut events) = WsClient::connect(config(url));
    let connection = connected(&mut events).await;
    handle.ready(connection);
    for i in 0..N {
        handle.send(format!("frame-{i}")).unwrap();
    }
    // Closing at once: every frame queued before the close is written, none is returned.
    let unsent = handle.close().await;
    assert!(unsent.is_empty(), "{} frames unsent", unsent.len());
    let (received, closes) = server_saw_close(&state).await;
    let expected: Vec<String> = (0..N).map(|i| format!("frame-{i}")).collect();
    assert_eq!(received, expected);
    assert_eq!(closes, vec![(N, 1000)]);
    assert!(matches!(
        until(&mut events, |e| matches!(e, WsEvent::Closed)).await,
        WsEvent::Closed
    ));
}

/// The server reads slowly and echoes every frame, so echoes still arrive after the client
/// has sent its close frame. Dropping the TCP stream then makes the client's kernel answer
/// them with a reset, and the reset makes the server's kernel discard what the server has
/// not read yet: the last frames ("bye") and the close frame. The client must wait for the
/// server's close frame before it drops the stream.
#[tokio::test]
async fn close_right_after_sending_loses_no_frame() {
    const N: usize = 5;
    let (state, mut url) = echo_server().await;
    url.set_query(Some("mode=slow"));
    let (handle, mut events) = WsClient::connect(config(url));
    connected(&mut events).await;
    for i in 0..N {
        handle.send_now(format!("frame-{i}")).await.unwrap();
    }
    handle.send_now("bye").await.unwrap();
    assert!(handle.close().await.is_empty());
    let (received, closes) = server_saw_close(&state).await;
    assert_eq!(received.len(), N + 1, "{received:?}");
    assert_eq!(received.last().map(String::as_str), Some("bye"));
    assert_eq!(closes, vec![(N + 1, 1000)]);
}

#[tokio::test]
async fn close_with_the_gate_closed_returns_the_queue() {
    let (state, url) = echo_server().await;
    let (handle, mut events) = WsClient::connect(config(url));
    connected(&mut events).await;
    handle.send("held").unwrap();
    // The gate never opened: the frame is returned, not written.
    assert_eq!(handle.close().await, vec![Frame::from("held")]);
    let (received, closes) = server_saw_close(&state).await;
    assert!(received.is_empty(), "{received:?}");
    assert_eq!(closes, vec![(0, 1000)]);
}
