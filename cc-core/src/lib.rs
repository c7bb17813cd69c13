//! The vendor-neutral core of the cc contact-center SDK.
//!
//! `cc-core` holds what every adapter and every app shares, and does no I/O:
//!
//! - the trait set: [`Session`] (one user's connection to one contact center),
//!   [`Engagement`] (one chat), [`CallSession`] (one call), [`HistoryPager`];
//! - the unified [`Event`] enum and its fan-out, [`EventBus`] / [`EventStream`] (a subscriber
//!   that falls behind gets [`Event::Lagged`], never a silent drop);
//! - [`Capabilities`] and the mirrored [`Feature`] enum, and the capability [`guard`];
//! - the [`Error`] type, which names the vendor and keeps its code;
//! - identities ([`Participant`], [`Customer`]), the message model ([`Message`],
//!   [`Content`]), [`ServiceStatus`], and [`Config`].
//!
//! ```
//! use cc_core::{Config, Vendor};
//! let config = Config::from_toml(r#"
//!     vendor = "genesys"
//!     [genesys]
//!     deployment_id = "d-1"
//! "#).unwrap();
//! assert_eq!(config.vendor, Vendor::Genesys);
//! ```

mod capabilities;
mod config;
mod error;
mod event;
pub mod guard;
mod identity;
pub mod media;
mod message;
mod registry;
mod secret;
mod session;
mod status;
mod stream;
mod vendor;

pub use capabilities::{Capabilities, Feature, LIMITS};
pub use config::{Config, TlsSettings};
pub use error::{BoxError, Error, ErrorKind, Result, error_with_causes};
pub use event::{CallState, ConnectionState, Event, EventKind, Initiator};
pub use identity::{Customer, Participant, Preferences, Role, User};
pub use media::{
    AudioSink, AudioSource, CallStats, MediaDevices, VideoCodec, VideoFrame, VideoSink, VideoSource,
};
pub use message::{
    Action, Attachment, BotTurn, Card, ClientMessageId, Content, DeliveryState, EngagementId,
    FormField, HistoryPage, Message, MessageId, Notice, Receipt, RichContent, SentMessage,
    Timestamp, Upload,
};
pub use registry::{AdapterEntry, ConnectFuture};
pub use secret::Secret;
pub use session::{
    CallRequest, CallSession, ChatRequest, Engagement, EngagementState, HistoryPager, Routing,
    Session,
};
pub use status::{Availability, OpeningHours, OpeningWindow, ServiceStatus, StatusQuery, Weekday};
pub use stream::{DEFAULT_CAPACITY, EventBus, EventStream};
pub use vendor::{UnknownVendor, Vendor};

/// Re-exported so adapters implement the traits with the same macro version.
pub use async_trait::async_trait;

// `Event` sits in one broadcast ring per session, thousands of sessions per process.
const _: () = assert!(std::mem::size_of::<Event>() <= 56);

#[cfg(test)]
mod tests;
