//! Transports for cc adapters: everything an adapter needs to talk to its vendor.
//!
//! - [`BackoffPolicy`] / [`Backoff`]: sans-IO retry delays with the vendors' own tables
//!   ([`BackoffPolicy::genesys_web_messaging`], [`BackoffPolicy::tetherfi_poll`], …).
//! - [`WsClient`]: a reconnecting WebSocket (tokio-tungstenite + rustls), one task per
//!   connection, a cloneable [`WsHandle`], ordered [`WsEvents`], heartbeats, dead-connection
//!   detection, and a bounded send queue behind a per-connection gate ([`WsHandle::ready`]).
//! - [`HttpClient`]: reqwest with the same TLS trust, bearer auth from a [`cc_core::Secret`],
//!   JSON helpers, multipart, raw PUT, `Retry-After`, and vendor error mapping.
//! - [`LongPoll`]: a fetch loop that delivers items in order and backs off on errors.
//! - [`socketio`]: our Engine.IO v4 / Socket.IO v5 client ([`SioClient`]) on top of
//!   [`WsClient`]: auth payload on every CONNECT, ping/pong, acks, reconnection.
//! - [`TlsConfig`]: web PKI roots plus extra PEM roots from [`cc_core::TlsSettings`], with the
//!   aws-lc-rs provider chosen explicitly. Certificate checks cannot be turned off.
//!
//! Every error is a [`cc_core::Error`] naming the vendor.

mod backoff;
mod http;
mod longpoll;
pub mod socketio;
mod tls;
mod ws;

pub use crate::backoff::{Backoff, BackoffPolicy, Jitter, Schedule, TETHERFI_RETRY_TABLE};
pub use crate::http::{
    DefaultErrorMapper, ErrorMapper, ErrorResponse, HttpClient, HttpConfig, HttpRequest,
    HttpResponse, Multipart, parse_retry_after,
};
pub use crate::longpoll::{LongPoll, LongPollConfig, LongPollHandle, PollEvent, PollEvents};
pub use crate::socketio::{SioClient, SioConfig, SioEvent, SioHandle};
pub use crate::tls::{TlsConfig, crypto_provider, install_default_crypto_provider};
pub use crate::ws::{
    Disconnect, Frame, Heartbeat, UrlFuture, UrlProvider, WsClient, WsConfig, WsEvent, WsEvents,
    WsHandle,
};

/// Re-exported so adapters name headers, methods and URLs with the same versions.
pub use ::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
pub use url::Url;
