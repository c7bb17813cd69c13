//! The Avaya Experience Platform adapter: not implemented yet.
//!
//! This crate will hold the customer side of the AXP Digital chat: the JSON REST calls and the
//! HTTP long-poll event stream described in `shared/protocols/avaya.md` (`wire`), a client
//! implementing the `cc_core` chat traits (AXP chat has no media, so calls will answer
//! `Error::Unsupported`), a local simulator behind a `sim` feature, and the `ENTRY` that `cc-sdk`
//! registers. Until then the crate exports nothing, and `cc_sdk::connect` answers a configuration
//! with `vendor = "avaya"` with an error saying the adapter does not exist yet.
