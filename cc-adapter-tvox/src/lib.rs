#![doc = include_str!("docs.md")]

pub mod client;
pub mod config;
pub mod engine;
pub mod error;
pub mod sdp;
#[cfg(feature = "sim")]
pub mod sim;
pub mod wire;

use cc_core::{AdapterEntry, Capabilities, Config, ConnectFuture, Result, Vendor};

pub use client::{
    MediaSessionEvent, MediaSessionStream, MediaSessionUpdate, ServiceStatusStream, TvoxCall,
    TvoxEngagement, TvoxSession,
};
pub use config::{CallsConfig, CustomerConfig, RetryOptions, TvoxConfig};

/// The vendor this adapter speaks to.
pub const VENDOR: Vendor = Vendor::Tvox;

/// What the TVox widget transport supports.
///
/// Audio and video calls (`PHONE_CALL` and `VIDEO` sessions with WebRTC media), the
/// customer's hold (a re-offer) and DTMF (RFC 4733 in the media) need
/// `[tvox.webrtc] enabled = true`: a configuration without it has none of them
/// ([`TvoxConfig::capabilities`]). Receipts are sent only through the extension
/// ([`TvoxEngagement::mark_received`]), because TVox reports none back.
pub const CAPABILITIES: Capabilities = Capabilities {
    chat: true,
    resume: true,
    leave: true,
    multi_chat: true,
    typing_out: true,
    typing_in: true,
    bot_history_handoff: true,
    queue_position: true,
    service_status: true,
    idle_warning: true,
    calls_audio: true,
    calls_video: true,
    call_hold: true,
    call_dtmf: true,
    ..Capabilities::NONE
};

/// The capabilities for a configuration (no connection is made): calls only with
/// `[tvox.webrtc] enabled = true`.
pub fn capabilities(config: &Config) -> Result<Capabilities> {
    Ok(TvoxConfig::from_config(config)?.capabilities())
}

/// Connects a session for `config` (its `[tvox]` section and TLS settings).
pub async fn connect(config: Config) -> Result<Box<dyn cc_core::Session>> {
    let section = TvoxConfig::from_config(&config)?;
    let session = TvoxSession::connect(section, &config.tls).await?;
    Ok(Box::new(session))
}

fn profiles() -> Vec<(&'static str, Capabilities)> {
    vec![("widget", CAPABILITIES)]
}

fn connect_boxed(config: Config) -> ConnectFuture {
    Box::pin(connect(config))
}

/// The registry entry for `cc-sdk`.
pub const ENTRY: AdapterEntry = AdapterEntry {
    vendor: VENDOR,
    profiles,
    capabilities,
    connect: connect_boxed,
};
