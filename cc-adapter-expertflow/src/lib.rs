//! The Expertflow CX adapter: not implemented yet.
//!
//! This crate will hold the customer side of Expertflow CX: the Socket.IO chat protocol of the
//! vendor's web channel (`wire`), a client implementing `cc_core::Session` and `Engagement` on top
//! of it, WebRTC/SIP calls through `cc-rtc`, a faithful local simulator behind a `sim` feature,
//! and the `ENTRY` that `cc-sdk` registers. The wire facts it will follow are collected in
//! `shared/protocols/expertflow.md`. Until then the crate exports nothing, and `cc_sdk::connect`
//! answers a configuration with `vendor = "expertflow"` with an error saying the adapter does not
//! exist yet.
