//! The Telenia TVox adapter: not implemented yet.
//!
//! This crate will hold the customer side of TVox: chat, callbacks and WebRTC audio and video
//! calls over the protocol proposed in `shared/protocols/tvox.md` (the vendor's wire format is
//! not public, so its codec will be a layer of its own), a client implementing the `cc_core`
//! traits, a local simulator behind a `sim` feature, and the `ENTRY` that `cc-sdk` registers.
//! Until then the crate exports nothing, and `cc_sdk::connect` answers a configuration with
//! `vendor = "tvox"` with an error saying the adapter does not exist yet.
