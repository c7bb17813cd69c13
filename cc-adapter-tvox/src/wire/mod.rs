//! What travels between the widget client and TVox, in two layers:
//!
//! - [`model`]: the widget library's data model (VERIFIED names from the vendor's
//!   documentation): sessions, steps, chat events, service status, enums;
//! - [`codec`]: the PROPOSED envelope and method catalogue (JSON-RPC 2.0 over WebSocket).
//!   It is the only layer that changes if real traffic is ever captured.
//!
//! [`time`] converts the ISO-8601 strings of the model to and from [`cc_core::Timestamp`].

pub mod codec;
pub mod model;

pub use codec::{Call, DecodeError, Incoming, RpcError, RpcId};
pub use model::*;

/// ISO-8601 / RFC 3339 times (UTC) ↔ [`cc_core::Timestamp`].
pub mod time {
    use cc_core::Timestamp;

    /// Formats as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn format(t: Timestamp) -> String {
        t.to_rfc3339()
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]`; `None` when it is not such a time.
    pub fn parse(s: &str) -> Option<Timestamp> {
        Timestamp::parse_rfc3339(s)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trip() {
            for ms in [0, 1_700_000_000_123, 951_782_400_000, -1000] {
                assert_eq!(parse(&format(Timestamp(ms))), Some(Timestamp(ms)));
            }
            assert_eq!(
                parse("2026-11-23T12:00:00+01:00"),
                parse("2026-11-23T11:00:00Z")
            );
            assert_eq!(parse("2026-11-23"), None);
            assert_eq!(parse("2026-13-23T11:00:00Z"), None);
        }
    }
}
