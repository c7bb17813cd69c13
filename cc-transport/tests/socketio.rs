//! The Socket.IO client against the reference server from npm (`socket.io` 4.8.x), run as a
//! Node peer from `tests/peers/socketio/server.js`.
//!
//! Needs `npm ci --prefix cc-transport/tests/peers/socketio` (run from the workspace root)
//! before the tests. Without `node_modules` the tests fail saying so, unless
//! `CC_SKIP_NODE_PEERS=1` is set, in which case they print a visible skip.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cc_core::Vendor;
use cc_transport::BackoffPolicy;
use cc_transport::socketio::{SioClient, SioConfig, SioDisconnect, SioEvent, SioEvents};
use serde_json::{Value, json};

const NPM_CMD: &str = "npm ci --prefix cc-transport/tests/peers/socketio";

/// The Node peer; killed on drop (also when a test panics).
struct NodePeer {
    child: Child,
    port: u16,
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/socketio")
}

/// Starts the peer, or returns `None` (after a visible note) when `CC_SKIP_NODE_PEERS=1` and
/// the peer cannot run.
fn start_peer(env: &[(&str, &str)]) -> Option<NodePeer> {
    let skip = std::env::var("CC_SKIP_NODE_PEERS").is_ok_and(|v| v == "1");
    let dir = peer_dir();
    if !dir.join("node_modules/socket.io").is_dir() {
        if skip {
            eprintln!("SKIPPED (CC_SKIP_NODE_PEERS=1): the socket.io Node peer is not installed");
            return None;
        }
        panic!(
            "the socket.io Node peer is not installed: run `{NPM_CMD}` from the workspace root \
             (or set CC_SKIP_NODE_PEERS=1 to skip these tests visibly)"
        );
    }
    let mut cmd = Command::new("node");
    cmd.arg("server.js")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if skip => {
            eprintln!("SKIPPED (CC_SKIP_NODE_PEERS=1): cannot run node: {e}");
            return None;
        }
        Err(e) => panic!("cannot run `node server.js` in {}: {e}", dir.display()),
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the peer's port");
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the peer printed {line:?}, expected `PORT <n>`"));
    Some(NodePeer { child, port })
}

fn config(peer: &NodePeer, path: &str) -> SioConfig {
    let url = url::Url::parse(&format!("http://127.0.0.1:{}{path}", peer.port)).unwrap();
    let mut c = SioConfig::new(Vendor::Expertflow, url).with_auth(json!({
        "serviceIdentifier": "5155",
        "channelCustomerIdentifier": "customer-1",
    }));
    c.backoff = BackoffPolicy::fixed(Duration::from_millis(50));
    c.ack_timeout = Duration::from_secs(5);
    c
}

async fn next(events: &mut SioEvents) -> SioEvent {
    let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event within 10 s")
        .expect("the client is still running");
    eprintln!("event: {ev:?}");
    ev
}

/// Waits for the server event `name`; returns its first argument.
async fn wait_event(events: &mut SioEvents, name: &str) -> Value {
    loop {
        match next(events).await {
            SioEvent::Event { name: n, args, .. } if n == name => {
                return args.into_iter().next().unwrap_or(Value::Null);
            }
            SioEvent::Closed { reason } => panic!("closed ({reason}) while waiting for {name}"),
            _ => {}
        }
    }
}

async fn wait_connected(events: &mut SioEvents) -> (String, bool) {
    loop {
        match next(events).await {
            SioEvent::Connected { sid, reconnect, .. } => return (sid, reconnect),
            SioEvent::Closed { reason } => panic!("closed ({reason}) while connecting"),
            SioEvent::ConnectError { message, .. } => panic!("connect error {message}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn connect_with_auth_emit_with_ack_and_server_events() {
    let Some(peer) = start_peer(&[("SIO_PATH", "/web-channel-manager/socket.io")]) else {
        return;
    };
    // The path comes from the socket URL's pathname, as the vendor's client derives it.
    let (io, mut events) = SioClient::connect(config(&peer, "/web-channel-manager")).unwrap();
    let (sid, reconnect) = wait_connected(&mut events).await;
    assert!(!sid.is_empty());
    assert!(!reconnect);
    assert_eq!(io.sid().as_deref(), Some(sid.as_str()));
    let welcome = wait_event(&mut events, "welcome").await;
    assert_eq!(welcome["auth"]["serviceIdentifier"], "5155");
    assert_eq!(welcome["auth"]["channelCustomerIdentifier"], "customer-1");
    assert_eq!(welcome["count"], 1);
    assert_eq!(welcome["transport"], "websocket");

    let ack = io
        .emit_with_ack("echo", &[json!({"code": 200}), json!("two")])
        .await
        .unwrap();
    assert_eq!(
        ack.wait().await.unwrap(),
        vec![json!({"code": 200}), json!("two")]
    );

    io.emit("echo_event", &[json!({"hello": "world"})])
        .await
        .unwrap();
    assert_eq!(
        wait_event(&mut events, "echoed").await,
        json!({"hello": "world"})
    );

    io.emit_queued("echo_event", &[json!("queued")]).unwrap();
    assert_eq!(wait_event(&mut events, "echoed").await, json!("queued"));

    // A server event that asks for an ack.
    io.emit("ask", &[json!("what?")]).await.unwrap();
    let id = loop {
        if let SioEvent::Event { name, ack, args } = next(&mut events).await
            && name == "question"
        {
            assert_eq!(args, vec![json!("what?")]);
            break ack.expect("the server asked for an ack");
        }
    };
    io.ack(id, &[json!("forty-two")]).await.unwrap();
    assert_eq!(
        wait_event(&mut events, "answer_was").await,
        json!("forty-two")
    );
    io.disconnect().await;
}

#[tokio::test]
async fn root_path_and_refused_connect() {
    let Some(peer) = start_peer(&[]) else {
        return;
    };
    // No auth: the server's middleware refuses the CONNECT; the client does not retry.
    let mut c = config(&peer, "/");
    c.auth = Some(json!({"serviceIdentifier": "5155"}));
    let (_io, mut events) = SioClient::connect(c).unwrap();
    loop {
        match next(&mut events).await {
            SioEvent::ConnectError { message, data } => {
                assert_eq!(message, "missing identity");
                assert_eq!(data.unwrap()["fields"][0], "serviceIdentifier");
                break;
            }
            SioEvent::Connected { .. } => panic!("connected without identity"),
            _ => {}
        }
    }
    loop {
        match next(&mut events).await {
            SioEvent::Closed { reason } => {
                assert_eq!(reason, "connect error: missing identity");
                break;
            }
            SioEvent::Reconnecting { .. } | SioEvent::Connected { .. } => {
                panic!("reconnected after a refused CONNECT")
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn reconnect_resends_auth_and_server_disconnect_is_final() {
    let Some(peer) = start_peer(&[]) else {
        return;
    };
    let (io, mut events) = SioClient::connect(config(&peer, "")).unwrap();
    wait_connected(&mut events).await;
    assert_eq!(wait_event(&mut events, "welcome").await["count"], 1);

    // The transport drops without a Socket.IO disconnect: the client reconnects with the
    // same auth payload.
    io.emit("drop_transport", &[]).await.unwrap();
    let mut saw = Vec::new();
    let (_, reconnect) = loop {
        match next(&mut events).await {
            SioEvent::Connected { sid, reconnect, .. } => break (sid, reconnect),
            SioEvent::Disconnected { reason } => saw.push(reason),
            SioEvent::Closed { reason } => panic!("closed: {reason}"),
            _ => {}
        }
    };
    assert!(reconnect);
    assert_eq!(saw, vec![SioDisconnect::TransportClose]);
    let welcome = wait_event(&mut events, "welcome").await;
    assert_eq!(welcome["count"], 2);
    assert_eq!(welcome["auth"]["channelCustomerIdentifier"], "customer-1");

    // A pending ack fails when the connection ends.
    io.emit("server_disconnect", &[]).await.unwrap();
    loop {
        match next(&mut events).await {
            SioEvent::Disconnected { reason } => {
                assert_eq!(reason, SioDisconnect::ServerDisconnect);
                assert_eq!(reason.as_str(), "io server disconnect");
                break;
            }
            SioEvent::Connected { .. } => panic!("connected again"),
            _ => {}
        }
    }
    loop {
        match next(&mut events).await {
            SioEvent::Closed { reason } => {
                assert_eq!(reason, "io server disconnect");
                break;
            }
            SioEvent::Reconnecting { .. } | SioEvent::Connected { .. } => {
                panic!("reconnected after a server disconnect")
            }
            _ => {}
        }
    }
    assert!(!io.is_connected());
    assert!(io.emit("echo", &[]).await.is_err());
}

#[tokio::test]
async fn pongs_keep_the_connection_and_a_ping_timeout_reconnects() {
    let Some(peer) = start_peer(&[("PING_INTERVAL", "200"), ("PING_TIMEOUT", "1000")]) else {
        return;
    };
    let (io, mut events) = SioClient::connect(config(&peer, "")).unwrap();
    wait_connected(&mut events).await;
    assert_eq!(wait_event(&mut events, "welcome").await["count"], 1);
    // Several ping intervals pass: the client's pongs keep the server from closing it.
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(1000);
    while let Ok(ev) = tokio::time::timeout_at(quiet_until, events.recv()).await {
        match ev {
            Some(SioEvent::Disconnected { reason }) => panic!("disconnected: {reason}"),
            Some(SioEvent::Closed { reason }) => panic!("closed: {reason}"),
            _ => {}
        }
    }
    assert!(io.is_connected());
    let ack = io.emit_with_ack("echo", &[json!(1)]).await.unwrap();
    assert_eq!(ack.wait().await.unwrap(), vec![json!(1)]);

    // The server stops pinging: after pingInterval + pingTimeout the client gives the
    // connection up and reconnects.
    io.emit("stop_pings", &[]).await.unwrap();
    let reason = loop {
        match next(&mut events).await {
            SioEvent::Disconnected { reason } => break reason,
            SioEvent::Closed { reason } => panic!("closed: {reason}"),
            _ => {}
        }
    };
    assert_eq!(reason, SioDisconnect::PingTimeout);
    let (_, reconnect) = wait_connected(&mut events).await;
    assert!(reconnect);
    assert_eq!(wait_event(&mut events, "welcome").await["count"], 2);
    io.close().await;
}
