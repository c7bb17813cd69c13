//! Serde types of every Genesys frame and body, exactly as on the wire.
//!
//! - [`messaging`]: the Web Messaging guest API (WebSocket `action` requests, the
//!   `type`/`class`/`code`/`body` envelope, history over REST).
//! - [`guest`]: ACD Web Chat v2 "guest chat" (REST bodies and the JWT event stream).
//! - [`common`]: what both share (the platform error body, numbered entity pages).
//!
//! Decoders never panic: malformed or truncated JSON is a [`DecodeError`], and an unknown
//! `class`, topic or enum value decodes to an `Unknown` arm that keeps the raw JSON.

pub mod common;
pub mod guest;
pub mod messaging;

use std::fmt;

use serde::{Deserialize, Serialize};

/// A frame or body the decoder could not understand.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed {frame}: {reason}")]
pub struct DecodeError {
    /// Which frame or body (`web messaging frame`, `guest chat event`).
    pub frame: &'static str,
    /// What was wrong.
    pub reason: String,
}

impl DecodeError {
    pub(crate) fn new(frame: &'static str, reason: impl fmt::Display) -> Self {
        DecodeError {
            frame,
            reason: reason.to_string(),
        }
    }

    /// This error as a [`cc_core::Error::Protocol`] naming the frame.
    pub fn into_error(self) -> cc_core::Error {
        cc_core::Error::protocol(cc_core::Vendor::Genesys, self.frame, self.reason)
    }
}

/// A token carried on the wire (session token, JWT): serialized as is, never printed.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct WireToken(pub String);

impl WireToken {
    /// The token's text, for where it goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WireToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[token]")
    }
}

impl From<&str> for WireToken {
    fn from(s: &str) -> Self {
        WireToken(s.to_owned())
    }
}

impl From<String> for WireToken {
    fn from(s: String) -> Self {
        WireToken(s)
    }
}

/// ISO-8601 / RFC 3339 UTC times as Genesys writes them (`2019-06-18T16:59:22.277Z`), as
/// milliseconds since the Unix epoch (on `cc_core::Timestamp`'s RFC 3339 codec).
pub mod time {
    use cc_core::Timestamp;

    /// Milliseconds since the Unix epoch from `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]`; `None`
    /// when it does not parse.
    pub fn parse_ms(s: &str) -> Option<i64> {
        Timestamp::parse_rfc3339(s).map(Timestamp::unix_ms)
    }

    /// `YYYY-MM-DDTHH:MM:SS.fffZ` from milliseconds since the Unix epoch.
    pub fn format_ms(ms: i64) -> String {
        Timestamp(ms).to_rfc3339()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trip() {
            assert_eq!(parse_ms("1970-01-01T00:00:00Z"), Some(0));
            assert_eq!(
                parse_ms("2019-06-18T16:59:22.277Z"),
                Some(1_560_877_162_277)
            );
            assert_eq!(format_ms(1_560_877_162_277), "2019-06-18T16:59:22.277Z");
            assert_eq!(
                parse_ms("2019-06-18T18:59:22.277+02:00"),
                Some(1_560_877_162_277)
            );
            assert_eq!(parse_ms("2019-06-18"), None);
            assert_eq!(parse_ms("2019-13-18T16:59:22Z"), None);
            for ms in [0, 1, 951_782_400_000, 4_102_444_799_999] {
                assert_eq!(parse_ms(&format_ms(ms)), Some(ms));
            }
        }
    }
}
