//! The client without a simulator: connect failures and configuration errors.

use cc_adapter_tvox::{TvoxConfig, TvoxSession};
use cc_core::{Config, ErrorKind, TlsSettings, Vendor};

#[tokio::test]
async fn connect_gives_up_after_the_connect_timeout() {
    // A port nobody listens on: bind, take the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = TvoxConfig::new(format!("http://127.0.0.1:{port}"));
    cfg.connect_timeout_ms = 300;
    cfg.retry.interval_ms = 50;
    let started = std::time::Instant::now();
    let err = TvoxSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn connect_with_a_retry_limit_fails_with_the_transport_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = TvoxConfig::new(format!("ws://127.0.0.1:{port}"));
    cfg.retry.interval_ms = 10;
    cfg.retry.max_retries = Some(1);
    let err = TvoxSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
}

#[tokio::test]
async fn bad_configuration_is_refused_before_connecting() {
    let config = Config::from_toml(
        "vendor = \"tvox\"\n[tvox]\nurl = \"https://tvox.example.com\"\nretry = { interval_ms = 1 }\n",
    )
    .unwrap();
    let err = cc_adapter_tvox::connect(config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("tvox.retry.interval_ms"), "{err}");
    let caps = (cc_adapter_tvox::ENTRY.capabilities)(
        &Config::new(Vendor::Tvox, TvoxConfig::new("https://tvox.example.com")).unwrap(),
    )
    .unwrap();
    // Calls only with WebRTC enabled.
    assert!(!caps.calls_audio && !caps.calls_video && !caps.call_hold && !caps.call_dtmf);
    assert!(caps.chat && caps.service_status);
    let mut with_webrtc = TvoxConfig::new("https://tvox.example.com");
    with_webrtc.webrtc = Some(cc_adapter_tvox::wire::WebrtcConfig {
        enabled: true,
        ..Default::default()
    });
    let caps =
        (cc_adapter_tvox::ENTRY.capabilities)(&Config::new(Vendor::Tvox, with_webrtc).unwrap())
            .unwrap();
    assert_eq!(caps, cc_adapter_tvox::CAPABILITIES);
}

#[cfg(feature = "sim")]
#[tokio::test]
async fn the_sim_entry_starts_a_simulator_a_session_can_use() {
    let running = (cc_adapter_tvox::sim::SIM.start)(cc_testkit::SimStart::default())
        .await
        .unwrap();
    assert_eq!(running.transport, "widget");
    let session = cc_adapter_tvox::connect(running.config.clone())
        .await
        .unwrap();
    let status = session
        .service_status(cc_core::StatusQuery::default())
        .await
        .unwrap();
    assert_eq!(status.availability, cc_core::Availability::Open);
    session.shutdown().await.unwrap();
    let bad = (cc_adapter_tvox::sim::SIM.start)(cc_testkit::SimStart {
        transport: Some("dwr".into()),
        port: 0,
    })
    .await
    .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
}
