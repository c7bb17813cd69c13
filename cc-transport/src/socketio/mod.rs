//! An Engine.IO v4 / Socket.IO v5 client (WebSocket transport, text packets).
//!
//! [`SioClient::connect`] builds on [`crate::WsClient`]: one reconnecting WebSocket to
//! `ws(s)://<origin><pathname>/socket.io/?EIO=4&transport=websocket` (the path derived from
//! the socket URL as the reference client derives it, or [`SioConfig::path`]). On every
//! connection it waits for the Engine.IO `open` packet, sends the namespace CONNECT with the
//! auth payload ([`SioConfig::auth`], re-sent on every reconnect), and opens the WebSocket
//! gate once the server answers, so [`SioHandle::emit_queued`] frames flow only on a
//! connected namespace. It answers pings with pongs, counts the connection dead when no
//! packet arrives within `pingInterval + pingTimeout` (and reconnects), matches acks to
//! [`SioHandle::emit_with_ack`] calls, and does not reconnect after the server disconnects
//! the socket (packet `41`) or refuses the CONNECT (packet `44`), as the reference client.
//!
//! ```no_run
//! # async fn demo() -> cc_core::Result<()> {
//! use cc_transport::socketio::{SioClient, SioConfig, SioEvent};
//! use serde_json::json;
//!
//! let url = url::Url::parse("https://cx.example.invalid/web-channel-manager").unwrap();
//! let config = SioConfig::new(cc_core::Vendor::Expertflow, url)
//!     .with_auth(json!({"serviceIdentifier": "5155", "channelCustomerIdentifier": "c-1"}));
//! let (handle, mut events) = SioClient::connect(config)?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         SioEvent::Connected { .. } => {
//!             let ack = handle.emit_with_ack("CHAT_RESUMED", &[json!({})]).await?;
//!             println!("{:?}", ack.wait().await?);
//!         }
//!         SioEvent::Event { name, args, .. } => println!("{name}: {args:?}"),
//!         SioEvent::Closed { .. } => break,
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

mod client;
mod packet;

pub use client::{PendingAck, SioClient, SioConfig, SioDisconnect, SioEvent, SioEvents, SioHandle};
pub use packet::{EioPacket, OpenInfo, PacketError, SioKind, SioPacket};
