//! The vendors the SDK knows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A contact-center vendor with an adapter crate in this workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// Expertflow CX (`cc-adapter-expertflow`).
    Expertflow,
    /// Telenia TVox (`cc-adapter-tvox`).
    Tvox,
    /// Avaya Experience Platform (`cc-adapter-avaya`).
    Avaya,
    /// Genesys Cloud (`cc-adapter-genesys`).
    Genesys,
    /// Tetherfi (`cc-adapter-tetherfi`).
    Tetherfi,
}

impl Vendor {
    /// Every vendor, in a stable order.
    pub const ALL: [Vendor; 5] = [
        Vendor::Expertflow,
        Vendor::Tvox,
        Vendor::Avaya,
        Vendor::Genesys,
        Vendor::Tetherfi,
    ];

    /// The lowercase key used in configuration files and cargo features.
    pub const fn key(self) -> &'static str {
        match self {
            Vendor::Expertflow => "expertflow",
            Vendor::Tvox => "tvox",
            Vendor::Avaya => "avaya",
            Vendor::Genesys => "genesys",
            Vendor::Tetherfi => "tetherfi",
        }
    }

    /// The vendor's product name, for people.
    pub const fn display_name(self) -> &'static str {
        match self {
            Vendor::Expertflow => "Expertflow CX",
            Vendor::Tvox => "Telenia TVox",
            Vendor::Avaya => "Avaya Experience Platform",
            Vendor::Genesys => "Genesys Cloud",
            Vendor::Tetherfi => "Tetherfi",
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// The error of [`Vendor::from_str`]: names the text and the known keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown vendor `{0}` (known: expertflow, tvox, avaya, genesys, tetherfi)")]
pub struct UnknownVendor(pub String);

impl FromStr for Vendor {
    type Err = UnknownVendor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Vendor::ALL
            .into_iter()
            .find(|v| v.key().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownVendor(s.to_owned()))
    }
}
