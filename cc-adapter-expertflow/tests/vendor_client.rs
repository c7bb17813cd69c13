//! The simulator against the vendor widget's own socket.io-client (4.5.4, HTTP long-polling
//! then the upgrade to WebSocket) making the widget's exact emits, run as a Node peer from
//! `cc-transport/tests/peers/socketio/vendor_client.js`.
//!
//! Needs `npm ci --prefix cc-transport/tests/peers/socketio` (from the workspace root).
//! Without it the test fails saying so, unless `CC_SKIP_NODE_PEERS=1` is set (visible skip).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use cc_adapter_expertflow::sim::{SimOptions, Simulator};
use cc_testkit::{Received, SimControl};
use serde_json::Value;

const NPM_CMD: &str = "npm ci --prefix cc-transport/tests/peers/socketio";

fn peer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cc-transport/tests/peers/socketio")
}

#[tokio::test]
async fn the_vendor_widget_client_chats_with_the_simulator() {
    let skip = std::env::var("CC_SKIP_NODE_PEERS").is_ok_and(|v| v == "1");
    let dir = peer_dir();
    if !dir.join("node_modules/socket.io-client").is_dir() {
        if skip {
            eprintln!("SKIPPED (CC_SKIP_NODE_PEERS=1): the socket.io Node peer is not installed");
            return;
        }
        panic!(
            "socket.io-client is not installed: run `{NPM_CMD}` from the workspace root \
             (or set CC_SKIP_NODE_PEERS=1 to skip this test visibly)"
        );
    }
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    // `kill_on_drop` is the guard: the peer dies with the test, also on panic.
    let child = tokio::process::Command::new("node")
        .arg("vendor_client.js")
        .arg(sim.base_url())
        .arg("5155")
        .arg("widget-customer")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) if skip => {
            eprintln!("SKIPPED (CC_SKIP_NODE_PEERS=1): cannot run node: {e}");
            return;
        }
        Err(e) => panic!("cannot run node in {}: {e}", dir.display()),
    };
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the peer finishes within 20 s")
        .expect("the peer ran");
    let text = String::from_utf8_lossy(&out.stdout);
    let result: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("the peer printed {text:?}: {e}"));
    assert!(out.status.success(), "the peer failed: {result}");
    // Polling first, then the upgrade to WebSocket, as in a browser.
    assert_eq!(
        result["transports"],
        serde_json::json!(["polling", "websocket"]),
        "{result}"
    );
    assert_eq!(result["echoTransport"], "websocket", "{result}");
    assert_eq!(result["token"], "string");
    assert_eq!(result["echo"], "hello from the widget");
    assert_eq!(result["acks"][0]["CHAT_RESUMED"], false);
    assert_eq!(result["acks"][1]["MESSAGE_RECEIVED"], 200);
    let events: Vec<&str> = result["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        events,
        vec![
            "CHANNEL_SESSION_STARTED",
            "MESSAGE_RECEIVED CUSTOMER PLAIN",
            "CHAT_ENDED"
        ]
    );
    let chat = sim.wait_for_chat(Duration::from_secs(1)).await.unwrap();
    assert_eq!(chat.id, result["conversationId"].as_str().unwrap());
    assert_eq!(chat.customer_name.as_deref(), Some("Widget"));
    let got = sim.received(&chat).await.unwrap();
    assert_eq!(
        got,
        vec![
            Received::Text {
                text: "hello from the widget".into(),
                hidden: false
            },
            Received::Ended,
        ]
    );
}
