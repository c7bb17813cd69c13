//! The WebSocket opening handshake against scripted raw TCP servers.

use std::net::SocketAddr;
use std::time::Duration;

use cc_core::{Error, Vendor};
use cc_transport::{BackoffPolicy, Disconnect, UrlProvider, WsClient, WsConfig, WsEvent, WsEvents};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use url::Url;

use crate::ws::{next, until};

/// Serves one connection: reads the request head and hands it with the stream to `script`.
async fn raw_server<F, Fut>(script: F) -> SocketAddr
where
    F: FnOnce(TcpStream, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap() == 0 {
                return;
            }
            head.push(byte[0]);
        }
        script(stream, String::from_utf8(head).unwrap()).await;
    });
    addr
}

/// The `Sec-WebSocket-Accept` for the key in `request`.
fn accept_for(request: &str) -> String {
    let key = request
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .expect("no key in the request");
    derive_accept_key(key.trim().as_bytes())
}

fn switching(accept: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
}

/// A server text frame (unmasked) of fewer than 126 bytes.
fn text_frame(text: &str) -> Vec<u8> {
    assert!(text.len() < 126);
    let mut frame = vec![0x81, text.len() as u8];
    frame.extend_from_slice(text.as_bytes());
    frame
}

fn config(addr: SocketAddr) -> WsConfig {
    let url = Url::parse(&format!("ws://{addr}/chat?x=1")).unwrap();
    let mut c = WsConfig::new(Vendor::Tvox, UrlProvider::fixed(url));
    c.backoff = BackoffPolicy::fixed(Duration::from_secs(3600));
    c
}

/// The error of the first failed attempt.
async fn failure(events: &mut WsEvents) -> std::sync::Arc<Error> {
    match until(events, |e| matches!(e, WsEvent::Disconnected { .. })).await {
        WsEvent::Disconnected {
            reason: Disconnect::Error(e),
        } => e,
        other => panic!("{other:?}"),
    }
}

fn source_text(e: &Error) -> String {
    std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Keeps a scripted connection open for a while (the client decides when it ends).
async fn linger(mut stream: TcpStream) {
    let mut sink = [0u8; 256];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    })
    .await;
}

#[tokio::test]
async fn request_carries_the_upgrade_headers_in_order() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let addr = raw_server(|mut stream, request| async move {
        let _ = stream
            .write_all(switching(&accept_for(&request)).as_bytes())
            .await;
        let _ = tx.send(request);
        linger(stream).await;
    })
    .await;
    let mut c = config(addr);
    c.headers.insert(
        cc_transport::header::ORIGIN,
        cc_transport::HeaderValue::from_static("https://app.example"),
    );
    c.headers.insert(
        cc_transport::header::USER_AGENT,
        cc_transport::HeaderValue::from_static("cc-test"),
    );
    let (handle, mut events) = WsClient::connect(c);
    until(&mut events, |e| matches!(e, WsEvent::Connected { .. })).await;
    let request = rx.await.unwrap();
    let lines: Vec<&str> = request.lines().collect();
    assert_eq!(lines[0], "GET /chat?x=1 HTTP/1.1");
    assert_eq!(lines[1], format!("Host: {addr}"));
    assert_eq!(lines[2], "Upgrade: websocket");
    assert_eq!(lines[3], "Connection: Upgrade");
    assert!(lines[4].starts_with("Sec-WebSocket-Key: "), "{request}");
    assert_eq!(lines[5], "Sec-WebSocket-Version: 13");
    assert_eq!(lines[6], "Origin: https://app.example");
    assert_eq!(lines[7], "User-Agent: cc-test");
    assert_eq!(lines[8], "");
    handle.close().await;
}

/// A server that answers the upgrade request with `answer(request)` in one write.
async fn answering(answer: impl FnOnce(&str) -> Vec<u8> + Send + 'static) -> SocketAddr {
    raw_server(|mut stream, request| async move {
        let _ = stream.write_all(&answer(&request)).await;
        linger(stream).await;
    })
    .await
}

/// The first failure of a client with `c`, and the text of its cause.
async fn fails_with(c: WsConfig) -> (std::sync::Arc<Error>, String) {
    let (handle, mut events) = WsClient::connect(c);
    let err = failure(&mut events).await;
    handle.close().await;
    let text = source_text(&err);
    (err, text)
}

/// Connects to `addr` and expects the text frames `texts`, in order.
async fn receives(addr: SocketAddr, texts: &[&str]) {
    let (handle, mut events) = WsClient::connect(config(addr));
    until(&mut events, |e| matches!(e, WsEvent::Connected { .. })).await;
    for expected in texts {
        match next(&mut events).await {
            WsEvent::Text(t) => assert_eq!(t, *expected),
            other => panic!("{other:?}"),
        }
    }
    handle.close().await;
}

#[tokio::test]
async fn a_wrong_accept_key_is_refused() {
    let addr =
        answering(|_| switching(&derive_accept_key(b"not the key that was sent")).into()).await;
    let (err, text) = fails_with(config(addr)).await;
    assert!(err.is_retryable(), "{err:?}");
    assert!(text.contains("Sec-WebSocket-Accept"), "{text}");
    assert!(text.contains("does not match"), "{text}");
}

#[tokio::test]
async fn a_101_without_upgrade_is_refused() {
    let addr = answering(|request| {
        switching(&accept_for(request))
            .replace("Upgrade: websocket\r\n", "")
            .into()
    })
    .await;
    let (_, text) = fails_with(config(addr)).await;
    assert!(text.contains("no `Upgrade: websocket`"), "{text}");
}

#[tokio::test]
async fn a_head_split_across_many_small_writes_works() {
    let addr = raw_server(|mut stream, request| async move {
        let mut bytes = switching(&accept_for(&request)).into_bytes();
        bytes.extend(text_frame("after a slow head"));
        for piece in bytes.chunks(3) {
            if stream.write_all(piece).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        linger(stream).await;
    })
    .await;
    receives(addr, &["after a slow head"]).await;
}

#[tokio::test]
async fn frames_in_the_same_write_as_the_101_are_not_lost() {
    let addr = answering(|request| {
        let mut bytes = switching(&accept_for(request)).into_bytes();
        bytes.extend(text_frame("first"));
        bytes.extend(text_frame("second"));
        bytes
    })
    .await;
    receives(addr, &["first", "second"]).await;
}

#[tokio::test]
async fn an_oversized_head_is_refused() {
    let addr = answering(|_| {
        let mut head = String::from("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n");
        for i in 0..400 {
            head.push_str(&format!("X-Filler-{i}: {}\r\n", "y".repeat(60)));
        }
        head.into()
    })
    .await;
    let (_, text) = fails_with(config(addr)).await;
    assert!(text.contains("larger than 16 KiB"), "{text}");
}

#[tokio::test]
async fn a_refusal_keeps_its_mapping_and_a_bounded_body_excerpt() {
    let body = format!("slow down {}", "z".repeat(1000));
    let sent = body.clone();
    let addr = raw_server(|mut stream, _request| async move {
        let head = format!(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: {}\r\n\r\n",
            sent.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        // The body comes in a later write.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let _ = stream.write_all(sent.as_bytes()).await;
        linger(stream).await;
    })
    .await;
    let (handle, mut events) = WsClient::connect(config(addr));
    let err = failure(&mut events).await;
    match &*err {
        Error::Rejected {
            vendor: Vendor::Tvox,
            code,
            message,
            retry_after,
        } => {
            assert_eq!(code, "429");
            assert_eq!(*retry_after, Some(Duration::from_secs(7)));
            assert!(message.contains("HTTP 429"), "{message}");
            assert!(message.contains(&body[..512]), "{message}");
            assert!(!message.contains(&body[..513]), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A retryable refusal: the client waits the server's delay, then tries again.
    match until(&mut events, |e| matches!(e, WsEvent::Reconnecting { .. })).await {
        WsEvent::Reconnecting { delay, .. } => assert_eq!(delay, Duration::from_secs(7)),
        other => panic!("{other:?}"),
    }
    handle.close().await;
}

#[tokio::test]
async fn a_503_without_retry_after_is_a_transport_error() {
    let addr = answering(|_| {
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy".to_vec()
    })
    .await;
    let (err, text) = fails_with(config(addr)).await;
    assert!(
        matches!(
            &*err,
            Error::Transport {
                vendor: Vendor::Tvox,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.contains("HTTP 503"), "{text}");
    assert!(text.contains("busy"), "{text}");
}

#[tokio::test]
async fn the_message_size_limit_still_applies() {
    let addr = answering(|request| {
        let mut bytes = switching(&accept_for(request)).into_bytes();
        // A 2,000-byte text frame (16-bit length).
        bytes.extend([0x81, 126, 0x07, 0xd0]);
        bytes.extend(std::iter::repeat_n(b'a', 2000));
        bytes
    })
    .await;
    let mut c = config(addr);
    c.max_message_size = 1024;
    let (_, text) = fails_with(c).await;
    assert!(text.contains("too long"), "{text}");
}

#[tokio::test]
async fn a_reserved_header_is_invalid_input() {
    let addr = raw_server(|stream, _request| linger(stream)).await;
    let mut c = config(addr);
    c.headers.insert(
        cc_transport::header::HOST,
        cc_transport::HeaderValue::from_static("elsewhere.example"),
    );
    let (_handle, mut events) = WsClient::connect(c);
    let err = failure(&mut events).await;
    assert!(matches!(&*err, Error::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("headers"), "{err}");
    assert!(matches!(
        until(&mut events, |e| matches!(e, WsEvent::GaveUp { .. })).await,
        WsEvent::GaveUp { .. }
    ));
}
