//! The one table from TVox error codes to [`cc_core::Error`] (`shared/protocols/tvox.md`
//! §3.6, PROPOSED codes). The vendor's code is kept in the error (`Error::vendor_code`).

use std::time::Duration;

use cc_core::{Error, Vendor};

use crate::wire::{DecodeError, RpcError};

const V: Vendor = Vendor::Tvox;

/// A service or channel not monitored per the widget configuration.
pub const SERVICE_UNMONITORED: i64 = 1001;
/// The channel is `DISABLED`.
pub const CHANNEL_DISABLED: i64 = 1002;
/// The channel or service has `NO_LICENSE`.
pub const NO_LICENSE: i64 = 1003;
/// Unknown service code (`NOT_FOUND`).
pub const SERVICE_NOT_FOUND: i64 = 1004;
/// Unknown session id.
pub const SESSION_NOT_FOUND: i64 = 1005;
/// Operation on a `CLOSED` session.
pub const SESSION_CLOSED: i64 = 1006;
/// `chat.send` before the step is `CONNECTED`.
pub const NOT_CONNECTED: i64 = 1007;
/// Recap without a ticket-enabled MAIL channel.
pub const MAIL_NOT_CONFIGURED: i64 = 1008;
/// Create while the service is `OUT_OF_SERVICE` / `OVERTIME`.
pub const SERVICE_UNAVAILABLE: i64 = 1009;
/// Video/call create without WebRTC enabled.
pub const WEBRTC_DISABLED: i64 = 1010;

/// The name of a code, for messages and docs.
pub fn code_name(code: i64) -> &'static str {
    match code {
        -32700 => "PARSE_ERROR",
        -32600 => "INVALID_REQUEST",
        -32601 => "METHOD_NOT_FOUND",
        -32602 => "INVALID_PARAMS",
        -32603 => "INTERNAL_ERROR",
        SERVICE_UNMONITORED => "SERVICE_UNMONITORED",
        CHANNEL_DISABLED => "CHANNEL_DISABLED",
        NO_LICENSE => "NO_LICENSE",
        SERVICE_NOT_FOUND => "SERVICE_NOT_FOUND",
        SESSION_NOT_FOUND => "SESSION_NOT_FOUND",
        SESSION_CLOSED => "SESSION_CLOSED",
        NOT_CONNECTED => "NOT_CONNECTED",
        MAIL_NOT_CONFIGURED => "MAIL_NOT_CONFIGURED",
        SERVICE_UNAVAILABLE => "SERVICE_UNAVAILABLE",
        WEBRTC_DISABLED => "WEBRTC_DISABLED",
        _ => "UNKNOWN",
    }
}

/// Maps a JSON-RPC error of `method` to our error.
///
/// | code | becomes |
/// |---|---|
/// | -32700, -32600, -32601, -32602 | `Protocol` (our request did not suit the server) |
/// | -32603 and other negative codes | `Rejected`, retryable after 1 s |
/// | 1006 `SESSION_CLOSED` | `Closed` (engagement) |
/// | 1007 `NOT_CONNECTED`, 1009 `SERVICE_UNAVAILABLE` | `Rejected`, retryable after 1 s |
/// | 1010 `WEBRTC_DISABLED` | `Rejected` (calls are disabled for this widget) |
/// | every other code | `Rejected` with the code |
pub fn from_rpc(method: &str, e: &RpcError) -> Error {
    let code = e.code;
    let rejected = |retry_after: Option<Duration>| Error::Rejected {
        vendor: V,
        code: code.to_string(),
        message: format!("{} ({method}): {}", code_name(code), e.message),
        retry_after,
    };
    match code {
        -32700 | -32600 | -32601 | -32602 => Error::protocol(
            V,
            format!("{method} request"),
            format!(
                "the server answered {} {}: {}",
                code,
                code_name(code),
                e.message
            ),
        ),
        SESSION_CLOSED => Error::closed(V, "engagement"),
        NOT_CONNECTED | SERVICE_UNAVAILABLE => rejected(Some(Duration::from_secs(1))),
        c if c < 0 => rejected(Some(Duration::from_secs(1))),
        _ => rejected(None),
    }
}

/// A decode failure as the `Protocol` error the session reports.
pub fn from_decode(e: &DecodeError) -> Error {
    Error::protocol(V, e.frame.clone(), e.reason.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cc_core::ErrorKind;

    fn err(code: i64) -> Error {
        from_rpc(
            "chat.send",
            &RpcError {
                code,
                message: "m".into(),
                data: None,
            },
        )
    }

    #[test]
    fn table() {
        assert_eq!(err(-32601).kind(), ErrorKind::Protocol);
        assert_eq!(err(SESSION_CLOSED).kind(), ErrorKind::Closed);
        assert!(err(NOT_CONNECTED).is_retryable());
        assert_eq!(err(NO_LICENSE).vendor_code(), Some("1003"));
        assert!(!err(NO_LICENSE).is_retryable());
        assert!(err(NO_LICENSE).to_string().contains("NO_LICENSE"));
        assert_eq!(err(WEBRTC_DISABLED).kind(), ErrorKind::Rejected);
        assert_eq!(err(WEBRTC_DISABLED).vendor_code(), Some("1010"));
        assert_eq!(err(-32603).kind(), ErrorKind::Rejected);
    }
}
