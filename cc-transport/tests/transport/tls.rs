//! wss and https against a local TLS server whose certificate comes from a throw-away CA.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use cc_core::{Error, TlsSettings, Vendor};
use cc_transport::{
    BackoffPolicy, Disconnect, HttpClient, HttpConfig, TlsConfig, UrlProvider, WsClient, WsConfig,
    WsEvent,
};
use url::Url;

use crate::server::{WsState, serve_tls, test_pki, ws_router};
use crate::ws::{next, until};

async fn tls_server() -> (String, std::net::SocketAddr) {
    let pki = test_pki();
    let router = ws_router(Arc::new(WsState::default()))
        .merge(Router::new().route("/hello", get(|| async { r#"{"hello":"tls"}"# })));
    let addr = serve_tls(router, pki.server_config).await;
    (pki.ca_pem, addr)
}

fn ws_config(addr: std::net::SocketAddr, tls: TlsConfig) -> WsConfig {
    let url = Url::parse(&format!("wss://{addr}/ws")).unwrap();
    let mut c = WsConfig::new(Vendor::Expertflow, UrlProvider::fixed(url));
    c.tls = tls;
    c.backoff = BackoffPolicy::fixed(Duration::from_secs(3600));
    c
}

#[tokio::test]
async fn wss_works_when_the_ca_is_trusted() {
    let (ca_pem, addr) = tls_server().await;
    let settings = TlsSettings {
        ca_pem: Some(ca_pem),
        ca_file: None,
    };
    let tls = TlsConfig::from_settings(Vendor::Expertflow, &settings).unwrap();
    assert_eq!(tls.extra_roots(), 1);
    let (handle, mut events) = WsClient::connect(ws_config(addr, tls));
    let up = until(&mut events, |e| matches!(e, WsEvent::Connected { .. })).await;
    let WsEvent::Connected { connection, .. } = up else {
        unreachable!()
    };
    handle.ready(connection);
    handle.send("over tls").unwrap();
    match next(&mut events).await {
        WsEvent::Text(t) => assert_eq!(t, "over tls"),
        other => panic!("{other:?}"),
    }
    handle.close().await;
}

#[tokio::test]
async fn wss_fails_when_the_ca_is_not_trusted() {
    let (_ca_pem, addr) = tls_server().await;
    let (handle, mut events) = WsClient::connect(ws_config(addr, TlsConfig::webpki()));
    let down = until(&mut events, |e| matches!(e, WsEvent::Disconnected { .. })).await;
    let WsEvent::Disconnected {
        reason: Disconnect::Error(err),
    } = down
    else {
        panic!("{down:?}")
    };
    assert!(
        matches!(
            &*err,
            Error::Transport {
                vendor: Vendor::Expertflow,
                ..
            }
        ),
        "{err:?}"
    );
    let source = std::error::Error::source(&*err).unwrap().to_string();
    assert!(source.contains("certificate"), "{source}");
    assert!(matches!(
        next(&mut events).await,
        WsEvent::Reconnecting { .. }
    ));
    handle.close().await;
}

#[tokio::test]
async fn https_trusts_the_ca_from_a_file_and_only_then() {
    let (ca_pem, addr) = tls_server().await;
    let dir = std::env::temp_dir().join(format!("cc-transport-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let settings = TlsSettings {
        ca_pem: None,
        ca_file: Some(ca_file),
    };
    let base = Url::parse(&format!("https://{addr}/")).unwrap();

    let trusted = TlsConfig::from_settings(Vendor::Tvox, &settings).unwrap();
    let http =
        HttpClient::new(HttpConfig::new(Vendor::Tvox, base.clone()).with_tls(trusted)).unwrap();
    let body: serde_json::Value = http.get_json("/hello").await.unwrap();
    assert_eq!(body["hello"], "tls");

    let untrusted = HttpClient::new(HttpConfig::new(Vendor::Tvox, base)).unwrap();
    let err = untrusted
        .get_json::<serde_json::Value>("/hello")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                vendor: Vendor::Tvox,
                ..
            }
        ),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
