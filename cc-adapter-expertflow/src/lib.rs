#![doc = include_str!("docs.md")]

mod calls;
mod client;
mod config;
mod engine;
pub mod error;
pub mod wire;

#[cfg(feature = "sim")]
pub mod sim;

use cc_core::{AdapterEntry, Capabilities, Config, ConnectFuture, Result, Session, Vendor};

pub use calls::ExpertflowCall;
pub use client::{ExpertflowEngagement, ExpertflowSession, validate_form};
pub use config::{CallsConfig, ExpertflowConfig, Urls};

/// The vendor this crate adapts.
pub const VENDOR: Vendor = Vendor::Expertflow;

/// What the adapter supports: chat over the web channel, audio and video calls over the EF
/// switch (SIP over WebSocket) with hold and DTMF.
pub const CAPABILITIES: Capabilities = Capabilities {
    chat: true,
    resume: true,
    leave: true,
    typing_out: true,
    typing_in: true,
    read_receipts: true,
    attachments: true,
    attachments_in: true,
    rich_content: true,
    history: true,
    set_context: true,
    service_status: true,
    opening_hours: true,
    callbacks: true,
    calls_audio: true,
    calls_video: true,
    call_hold: true,
    call_dtmf: true,
    typing_cooldown_ms: Some(3000),
    ..Capabilities::NONE
};

/// The capabilities for a configuration (the same for every valid one).
pub fn capabilities(config: &Config) -> Result<Capabilities> {
    let section: ExpertflowConfig = config.section()?;
    section.validate()?;
    Ok(CAPABILITIES)
}

/// Connects a session: opens the web channel socket and resumes a live chat of the same
/// customer, if the server has one.
pub async fn connect(config: Config) -> Result<Box<dyn Session>> {
    let section: ExpertflowConfig = config.section()?;
    let session = ExpertflowSession::connect(section, &config.tls).await?;
    Ok(Box::new(session))
}

fn connect_boxed(config: Config) -> ConnectFuture {
    Box::pin(connect(config))
}

fn profiles() -> Vec<(&'static str, Capabilities)> {
    vec![("web-channel", CAPABILITIES)]
}

/// The entry `cc-sdk` registers.
pub const ENTRY: AdapterEntry = AdapterEntry {
    vendor: VENDOR,
    profiles,
    capabilities,
    connect: connect_boxed,
};
