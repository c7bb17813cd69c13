//! Adapter registration without global magic: each adapter exports a `const ENTRY`.

use std::future::Future;
use std::pin::Pin;

use crate::{Capabilities, Config, Result, Session, Vendor};

/// The future [`AdapterEntry::connect`] returns.
pub type ConnectFuture = Pin<Box<dyn Future<Output = Result<Box<dyn Session>>> + Send>>;

/// What an adapter crate exports for `cc-sdk`'s registry.
#[derive(Clone, Copy)]
pub struct AdapterEntry {
    /// The vendor.
    pub vendor: Vendor,
    /// The transports the adapter speaks, the default first, with what each supports.
    pub profiles: fn() -> Vec<(&'static str, Capabilities)>,
    /// The capabilities for a configuration (static: no connection is made).
    pub capabilities: fn(&Config) -> Result<Capabilities>,
    /// Connects a session.
    pub connect: fn(Config) -> ConnectFuture,
}

impl std::fmt::Debug for AdapterEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterEntry")
            .field("vendor", &self.vendor)
            .finish_non_exhaustive()
    }
}
