#![doc = include_str!("docs.md")]

pub mod call;
pub mod client;
pub mod config;
mod dwr;
pub mod engine;
pub mod error;
#[cfg(feature = "sim")]
pub mod sim;
pub mod wire;
mod ws;

use cc_core::{AdapterEntry, Capabilities, Config, ConnectFuture, Result, Vendor};

pub use call::TetherfiCall;
pub use client::{
    CustomerDetails, LiveChatStatus, StartOptions, TetherfiEngagement, TetherfiSession,
};
pub use config::{TetherfiConfig, Transport};

/// The vendor this adapter speaks to.
pub const VENDOR: Vendor = Vendor::Tetherfi;

/// What both transports support (single-chat). The DWR web API and the chat proxy carry the
/// same vocabulary (audio/video signalling included: it rides in app messages), so their
/// capabilities are the same.
pub const CAPABILITIES: Capabilities = Capabilities {
    chat: true,
    resume: true,
    leave: true,
    typing_out: true,
    typing_in: true,
    custom_notices: true,
    bot_history_handoff: true,
    queue_position: true,
    service_status: true,
    agent_list: true,
    callbacks: true,
    attachments: true,
    calls_audio: true,
    calls_video: true,
    call_hold: true,
    call_dtmf: true,
    ..Capabilities::NONE
};

/// The multichat variant (`multilivechat`): as [`CAPABILITIES`], several chats at once.
pub const MULTICHAT: Capabilities = Capabilities {
    multi_chat: true,
    ..CAPABILITIES
};

/// The capabilities of a validated configuration.
pub fn capabilities_for(config: &TetherfiConfig) -> Capabilities {
    if config.multichat {
        MULTICHAT
    } else {
        CAPABILITIES
    }
}

/// The capabilities for a configuration (static: no connection is made).
pub fn capabilities(config: &Config) -> Result<Capabilities> {
    Ok(capabilities_for(&TetherfiConfig::from_config(config)?))
}

/// Connects a session for `config` (its `[tetherfi]` section and TLS settings).
pub async fn connect(config: Config) -> Result<Box<dyn cc_core::Session>> {
    let section = TetherfiConfig::from_config(&config)?;
    let session = TetherfiSession::connect(section, &config.tls).await?;
    Ok(Box::new(session))
}

fn profiles() -> Vec<(&'static str, Capabilities)> {
    vec![
        (Transport::Dwr.name(), CAPABILITIES),
        (Transport::Ws.name(), CAPABILITIES),
    ]
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
