#![doc = include_str!("docs.md")]

pub mod client;
pub mod config;
pub mod engine;
pub mod error;
#[cfg(feature = "sim")]
pub mod sim;
pub mod wire;

use cc_core::{AdapterEntry, Capabilities, Config, ConnectFuture, Result, Vendor};

pub use client::{AvayaEngagement, AvayaSession, Clock};

pub use config::AvayaConfig;

/// The vendor this adapter speaks to.
pub const VENDOR: Vendor = Vendor::Avaya;

/// The one transport: REST calls plus the HTTP long-poll event stream.
pub const TRANSPORT: &str = "chat-sdk";

/// What the AXP Chat SDK protocol supports. It has no media: calls are unsupported.
pub const CAPABILITIES: Capabilities = Capabilities {
    chat: true,
    resume: true,
    leave: true,
    multi_chat: true,
    history: true,
    history_can_page_backwards: true,
    agent_list: true,
    token_refresh: true,
    keep_alive: true,
    idle_warning: true,
    message_max_chars: Some(config::MESSAGE_MAX_CHARS as u32),
    history_page_max: Some(client::HISTORY_PAGE_MAX),
    ..Capabilities::NONE
};

/// The capabilities for a configuration (static: no connection is made).
pub fn capabilities(config: &Config) -> Result<Capabilities> {
    AvayaConfig::from_config(config)?;
    Ok(CAPABILITIES)
}

/// Connects a session for `config` (its `[avaya]` section and TLS settings).
pub async fn connect(config: Config) -> Result<Box<dyn cc_core::Session>> {
    let section = AvayaConfig::from_config(&config)?;
    let session = AvayaSession::connect(section, &config.tls).await?;
    Ok(Box::new(session))
}

fn profiles() -> Vec<(&'static str, Capabilities)> {
    vec![(TRANSPORT, CAPABILITIES)]
}

/// The entry `cc-sdk` registers.
pub const ENTRY: AdapterEntry = AdapterEntry {
    vendor: VENDOR,
    profiles,
    capabilities,
    connect: |config: Config| -> ConnectFuture { Box::pin(connect(config)) },
};
