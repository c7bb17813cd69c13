//! The Tetherfi adapter: not implemented yet.
//!
//! This crate will hold the customer side of Tetherfi's live chat: the DWR-style HTTP calls with
//! reverse-AJAX long polling, and the newer WebSocket chat proxy, described in
//! `shared/protocols/tetherfi.md` (`wire`), a client implementing the `cc_core` traits, a local
//! simulator behind a `sim` feature, and the `ENTRY` that `cc-sdk` registers. Until then the crate
//! exports nothing, and `cc_sdk::connect` answers a configuration with `vendor = "tetherfi"` with
//! an error saying the adapter does not exist yet.
