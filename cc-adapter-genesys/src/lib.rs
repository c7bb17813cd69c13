#![doc = include_str!("docs.md")]

pub mod client;
pub mod config;
pub mod engine;
pub mod error;
#[cfg(feature = "sim")]
pub mod sim;
pub mod wire;

use cc_core::{AdapterEntry, Capabilities, Config, ConnectFuture, Result, Vendor};

pub use client::{AgentRecord, ChatStats, GenesysEngagement, GenesysSession};
pub use config::{GenesysConfig, RoutingConfig, Transport};

/// The vendor this adapter speaks to.
pub const VENDOR: Vendor = Vendor::Genesys;

/// Web Messaging (the default transport).
pub const WEB_MESSAGING: Capabilities = Capabilities {
    chat: true,
    resume: true,
    leave: true,
    typing_out: true,
    typing_in: true,
    attachments: true,
    attachments_in: true,
    rich_content: true,
    filtered_messages: true,
    history: true,
    history_can_page_backwards: true,
    set_context: true,
    agent_list: true,
    keep_alive: true,
    message_max_chars: Some(engine::MESSAGING_MAX_CHARS as u32),
    attachment_max_bytes: Some(10240 * 1024),
    history_page_max: Some(100),
    messages_per_second: Some(engine::MESSAGES_PER_SECOND as u32),
    typing_cooldown_ms: Some(engine::TYPING_COOLDOWN.as_millis() as u32),
    ..Capabilities::NONE
};

/// Guest chat v2 (`purecloud-v2-sockets`).
pub const GUEST_CHAT_V2: Capabilities = Capabilities {
    chat: true,
    resume: true,
    leave: true,
    typing_out: true,
    typing_in: true,
    custom_notices: true,
    filtered_messages: true,
    history: true,
    history_can_page_backwards: true,
    agent_list: true,
    message_max_chars: Some(engine::GUEST_MAX_CHARS as u32),
    history_page_max: Some(100),
    messages_per_second: Some(engine::MESSAGES_PER_SECOND as u32),
    typing_cooldown_ms: Some(engine::TYPING_COOLDOWN.as_millis() as u32),
    ..Capabilities::NONE
};

/// The capabilities of a transport.
pub const fn capabilities_for(transport: Transport) -> Capabilities {
    match transport {
        Transport::WebMessaging => WEB_MESSAGING,
        Transport::GuestChatV2 => GUEST_CHAT_V2,
    }
}

/// The capabilities for a configuration (static: no connection is made).
pub fn capabilities(config: &Config) -> Result<Capabilities> {
    Ok(capabilities_for(
        GenesysConfig::from_config(config)?.transport,
    ))
}

/// Connects a session for `config` (its `[genesys]` section and TLS settings).
pub async fn connect(config: Config) -> Result<Box<dyn cc_core::Session>> {
    let section = GenesysConfig::from_config(&config)?;
    let session = GenesysSession::connect(section, &config.tls).await?;
    Ok(Box::new(session))
}

fn profiles() -> Vec<(&'static str, Capabilities)> {
    vec![
        (Transport::WebMessaging.name(), WEB_MESSAGING),
        (Transport::GuestChatV2.name(), GUEST_CHAT_V2),
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
