#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use std::fmt;

pub use cc_core::*;

/// The Expertflow CX adapter crate (feature `expertflow`).
#[cfg(feature = "expertflow")]
pub use cc_adapter_expertflow as expertflow;

/// The Telenia TVox adapter crate (feature `tvox`).
#[cfg(feature = "tvox")]
pub use cc_adapter_tvox as tvox;

/// The Avaya Experience Platform adapter crate (feature `avaya`).
#[cfg(feature = "avaya")]
pub use cc_adapter_avaya as avaya;

/// The Genesys Cloud adapter crate (feature `genesys`).
#[cfg(feature = "genesys")]
pub use cc_adapter_genesys as genesys;

/// The Tetherfi adapter crate (feature `tetherfi`).
#[cfg(feature = "tetherfi")]
pub use cc_adapter_tetherfi as tetherfi;

/// The call engine: WebRTC media on str0m, the SIP-over-WebSocket user agent, and ready-made
/// devices (a tone source, a recording sink) for tests and demos (feature `calls`, on with
/// every adapter that has calls).
#[cfg(feature = "calls")]
pub use cc_rtc as rtc;

/// The adapters compiled into this build, one `#[cfg]` line per vendor feature.
const COMPILED: &[AdapterEntry] = &[
    #[cfg(feature = "expertflow")]
    cc_adapter_expertflow::ENTRY,
    #[cfg(feature = "tvox")]
    cc_adapter_tvox::ENTRY,
    #[cfg(feature = "avaya")]
    cc_adapter_avaya::ENTRY,
    #[cfg(feature = "genesys")]
    cc_adapter_genesys::ENTRY,
    #[cfg(feature = "tetherfi")]
    cc_adapter_tetherfi::ENTRY,
];

/// The test kit: `SimControl`, the simulators' common interface, and the conformance suite
/// (feature `sim`).
#[cfg(feature = "sim")]
pub use cc_testkit as testkit;

/// The simulators compiled into this build (feature `sim` plus the vendor's feature).
#[cfg(feature = "sim")]
const SIMS: &[cc_testkit::SimEntry] = &[
    #[cfg(feature = "expertflow")]
    cc_adapter_expertflow::sim::SIM,
    #[cfg(feature = "tvox")]
    cc_adapter_tvox::sim::SIM,
    #[cfg(feature = "avaya")]
    cc_adapter_avaya::sim::SIM,
    #[cfg(feature = "genesys")]
    cc_adapter_genesys::sim::SIM,
    #[cfg(feature = "tetherfi")]
    cc_adapter_tetherfi::sim::SIM,
];

/// The local simulators compiled into this build, in [`Vendor::ALL`] order: start one with
/// its `start` function and connect to it with the [`Config`] it returns.
#[cfg(feature = "sim")]
pub fn sims() -> Vec<cc_testkit::SimEntry> {
    SIMS.to_vec()
}

/// The cargo feature of `cc-sdk` that compiles in `vendor`'s adapter.
pub const fn cargo_feature(vendor: Vendor) -> &'static str {
    vendor.key()
}

/// Whether `vendor`'s cargo feature is on in this build.
pub const fn feature_enabled(vendor: Vendor) -> bool {
    match vendor {
        Vendor::Expertflow => cfg!(feature = "expertflow"),
        Vendor::Tvox => cfg!(feature = "tvox"),
        Vendor::Avaya => cfg!(feature = "avaya"),
        Vendor::Genesys => cfg!(feature = "genesys"),
        Vendor::Tetherfi => cfg!(feature = "tetherfi"),
    }
}

/// The adapters compiled into this build, in [`Vendor::ALL`] order.
///
/// ```
/// for entry in cc_sdk::adapters() {
///     for (transport, caps) in (entry.profiles)() {
///         let features: Vec<_> = caps.features().map(|f| f.name()).collect();
///         println!("{} over {transport}: {}", entry.vendor, features.join(", "));
///     }
/// }
/// ```
pub fn adapters() -> Vec<AdapterEntry> {
    COMPILED.to_vec()
}

/// Whether an adapter for a vendor is usable in this build, and if not, why.
#[derive(Clone, Copy, Debug)]
pub enum AdapterStatus {
    /// Compiled in: [`connect`] works for this vendor.
    Available(AdapterEntry),
    /// The adapter exists but its cargo feature ([`cargo_feature`]) is off in this build.
    FeatureOff,
}

impl AdapterStatus {
    /// The entry, when the adapter is available.
    pub const fn entry(&self) -> Option<AdapterEntry> {
        match self {
            AdapterStatus::Available(entry) => Some(*entry),
            AdapterStatus::FeatureOff => None,
        }
    }
}

/// Whether `vendor`'s adapter is usable in this build.
pub fn adapter_status(vendor: Vendor) -> AdapterStatus {
    status_in(vendor, COMPILED)
}

fn status_in(vendor: Vendor, compiled: &[AdapterEntry]) -> AdapterStatus {
    match compiled.iter().find(|e| e.vendor == vendor) {
        Some(entry) => AdapterStatus::Available(*entry),
        None => AdapterStatus::FeatureOff,
    }
}

/// The compiled-in adapter for `vendor`, or an [`Error::InvalidInput`] on the field `vendor`
/// that says which cargo feature to enable.
pub fn adapter(vendor: Vendor) -> Result<AdapterEntry> {
    match adapter_status(vendor) {
        AdapterStatus::Available(entry) => Ok(entry),
        AdapterStatus::FeatureOff => Err(unavailable(vendor, COMPILED)),
    }
}

struct VendorList<'a>(&'a [AdapterEntry]);

impl fmt::Display for VendorList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, entry) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(entry.vendor.key())?;
        }
        Ok(())
    }
}

fn unavailable(vendor: Vendor, compiled: &[AdapterEntry]) -> Error {
    let reason = format!(
        "the {} adapter is not compiled in: enable the cc-sdk feature \"{}\" \
         (compiled-in adapters: {})",
        vendor.display_name(),
        cargo_feature(vendor),
        VendorList(compiled),
    );
    Error::invalid(vendor, "vendor", reason)
}

/// What the configured vendor's adapter supports with this configuration, without connecting.
pub fn capabilities(config: &Config) -> Result<Capabilities> {
    let entry = adapter(config.vendor)?;
    (entry.capabilities)(config)
}

/// Connects a session to the vendor named by `config.vendor`, through its compiled-in adapter.
///
/// The session is wrapped in the capability [`guard`]: an operation the adapter does not support
/// returns [`Error::Unsupported`], and input beyond the adapter's limits returns
/// [`Error::InvalidInput`], before the adapter sees it.
///
/// A vendor whose cargo feature is off is an [`Error::InvalidInput`] on the field `vendor`
/// that names the feature to enable (see [`adapter`]).
pub async fn connect(config: &Config) -> Result<Box<dyn Session>> {
    let entry = adapter(config.vendor)?;
    open(entry, config).await
}

/// Like [`connect`], choosing among `adapters` instead of the compiled-in ones: for an app's own
/// adapter, or a test double.
pub async fn connect_with(adapters: &[AdapterEntry], config: &Config) -> Result<Box<dyn Session>> {
    let Some(entry) = adapters.iter().find(|e| e.vendor == config.vendor) else {
        return Err(Error::invalid(
            config.vendor,
            "vendor",
            format!(
                "no adapter for {} among the given ones ({})",
                config.vendor.display_name(),
                VendorList(adapters),
            ),
        ));
    };
    open(*entry, config).await
}

async fn open(entry: AdapterEntry, config: &Config) -> Result<Box<dyn Session>> {
    let session = (entry.connect)(config.clone()).await?;
    Ok(Box::new(guard::Guarded::new(session)))
}

/// The root README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct RootReadme;

#[cfg(test)]
mod tests;
