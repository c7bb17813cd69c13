//! The one table from the vendor's codes to [`cc_core::Error`].
//!
//! The vendor's SDK reports every failure as an `ACSException` with a code `ACS-3xx`
//! (`shared/protocols/avaya.md` §2.7); the server answers errors with an RFC 7807
//! `application/problem+json` body. [`from_acs`] maps a code to our error kind, keeping the
//! code; [`from_response`] maps an HTTP error response the way the vendor's SDK does
//! (401 → ACS-305, 404 on join/send → ACS-314, 404 `Session not found` → ACS-320,
//! anything else → ACS-304), with the problem's title, detail and violations in the message.

use std::time::Duration;

use cc_core::{Error, Feature};
use cc_transport::ErrorResponse;

use crate::VENDOR;
use crate::wire::{Problem, SESSION_NOT_FOUND};

/// Every error code of the vendor's SDK with its meaning.
pub const ACS_CODES: &[(&str, &str)] = &[
    ("ACS-301", "Server URL not provided"),
    ("ACS-302", "Invalid init parameters"),
    ("ACS-303", "Invalid configuration values"),
    ("ACS-304", "Server responded unexpectedly"),
    ("ACS-305", "JWT token is invalid"),
    ("ACS-306", "Server is unreachable"),
    ("ACS-307", "Invalid IntegrationId"),
    ("ACS-308", "JWT Token not provided"),
    ("ACS-309", "Invalid URL"),
    ("ACS-310", "SDK not initialized"),
    ("ACS-311", "SDK failed to initialize"),
    ("ACS-312", "Unable to join defunct engagement"),
    ("ACS-313", "Engagement is not activated"),
    ("ACS-314", "Engagement doesn't exist"),
    ("ACS-315", "Engagement already active"),
    ("ACS-316", "PageIterator failed to initialize"),
    ("ACS-317", "Failed to fetch older messages"),
    ("ACS-318", "Retry allowed only after event-stream failure"),
    ("ACS-319", "Failed to update engagement"),
    ("ACS-320", "Session not found"),
    ("ACS-321", "init/shutdown in progress"),
    ("ACS-322", "Constraint violated"),
];

/// The meaning of an ACS code, when it is one of [`ACS_CODES`].
pub fn acs_meaning(code: &str) -> Option<&'static str> {
    ACS_CODES.iter().find(|(c, _)| *c == code).map(|(_, m)| *m)
}

/// The error for an ACS code and a detail text.
pub fn from_acs(code: &str, detail: &str) -> Error {
    let meaning = acs_meaning(code).unwrap_or("unknown error");
    let message = if detail.is_empty() {
        meaning.to_owned()
    } else {
        format!("{meaning}: {detail}")
    };
    match code {
        "ACS-301" | "ACS-309" => Error::invalid(VENDOR, "avaya.host_url", message),
        "ACS-302" => Error::invalid(VENDOR, "avaya", message),
        "ACS-303" => Error::invalid(VENDOR, "avaya", message),
        "ACS-307" => Error::invalid(VENDOR, "avaya.integration_id", message),
        "ACS-308" => Error::invalid(VENDOR, "avaya.token", message),
        "ACS-322" => Error::invalid(VENDOR, "request", message),
        "ACS-305" => Error::Auth {
            vendor: VENDOR,
            code: Some(code.to_owned()),
            message,
        },
        "ACS-306" => Error::transport(VENDOR, "HTTP request", message),
        "ACS-310" | "ACS-320" => Error::closed(VENDOR, "session"),
        "ACS-312" | "ACS-314" => Error::closed(VENDOR, "engagement"),
        "ACS-319" => Error::protocol(VENDOR, "event", message),
        "ACS-321" => Error::Rejected {
            vendor: VENDOR,
            code: code.to_owned(),
            message,
            retry_after: Some(Duration::from_secs(1)),
        },
        _ => Error::Rejected {
            vendor: VENDOR,
            code: code.to_owned(),
            message,
            retry_after: None,
        },
    }
}

/// What the error body said, for messages: `title: detail (field: message [code]; ...)`.
fn describe(problem: Option<&Problem>, body: &[u8]) -> String {
    let Some(p) = problem else {
        let text = String::from_utf8_lossy(body);
        return text.chars().take(300).collect();
    };
    let mut out = String::new();
    if let Some(t) = &p.title {
        out.push_str(t);
    }
    if let Some(d) = &p.detail {
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(d);
    }
    if !p.violations.is_empty() {
        let v: Vec<String> = p
            .violations
            .iter()
            .map(|v| {
                let mut s = format!(
                    "{}: {}",
                    v.field.as_deref().unwrap_or("?"),
                    v.message.as_deref().unwrap_or("")
                );
                if let Some(c) = v.code {
                    s.push_str(&format!(" [{c}]"));
                }
                s
            })
            .collect();
        out.push_str(&format!(" ({})", v.join("; ")));
    }
    out
}

/// Whether a 404 body is the `Session not found` problem.
pub fn is_session_not_found(body: &[u8]) -> bool {
    Problem::parse(body).and_then(|p| p.detail).as_deref() == Some(SESSION_NOT_FOUND)
}

/// Maps an HTTP error response as the vendor's SDK does; `endpoint` is `METHOD /path`.
pub fn from_status(
    endpoint: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Error {
    let problem = Problem::parse(body);
    let text = format!(
        "HTTP {status} on {endpoint}: {}",
        describe(problem.as_ref(), body)
    );
    let join_or_send = endpoint.starts_with("POST ")
        && (endpoint.ends_with(":join") || endpoint.ends_with("/messages"));
    match status {
        401 => from_acs("ACS-305", &text),
        403 => Error::Auth {
            vendor: VENDOR,
            code: Some("ACS-304".to_owned()),
            message: format!("forbidden (appkey or integration): {text}"),
        },
        404 if is_session_not_found(body) => from_acs("ACS-320", &text),
        404 if join_or_send => from_acs("ACS-314", &text),
        400 | 422 => from_acs("ACS-322", &text),
        429 | 500..=599 => Error::Rejected {
            vendor: VENDOR,
            code: "ACS-304".to_owned(),
            message: text,
            retry_after: Some(retry_after.unwrap_or(Duration::from_secs(1))),
        },
        _ => Error::Rejected {
            vendor: VENDOR,
            code: "ACS-304".to_owned(),
            message: text,
            retry_after,
        },
    }
}

/// The [`cc_transport::ErrorMapper`] of this adapter.
pub fn from_response(_vendor: cc_core::Vendor, r: &ErrorResponse<'_>) -> Error {
    from_status(r.endpoint, r.status.as_u16(), r.retry_after, r.body)
}

/// Media is not part of the Chat SDK.
pub fn no_calls(video: bool) -> Error {
    Error::unsupported(
        VENDOR,
        if video {
            Feature::CallsVideo
        } else {
            Feature::CallsAudio
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cc_core::ErrorKind;

    #[test]
    fn every_code_maps_and_keeps_its_code_where_the_kind_has_one() {
        for (code, _) in ACS_CODES {
            let e = from_acs(code, "x");
            assert_eq!(e.vendor(), Some(VENDOR));
            if matches!(e.kind(), ErrorKind::Rejected | ErrorKind::Auth) {
                assert_eq!(e.vendor_code(), Some(*code));
            }
        }
        assert_eq!(from_acs("ACS-305", "").kind(), ErrorKind::Auth);
        assert_eq!(from_acs("ACS-306", "").kind(), ErrorKind::Transport);
        assert_eq!(from_acs("ACS-314", "").kind(), ErrorKind::Closed);
        assert_eq!(from_acs("ACS-320", "").kind(), ErrorKind::Closed);
        assert_eq!(from_acs("ACS-322", "").kind(), ErrorKind::InvalidInput);
        assert_eq!(from_acs("ACS-313", "").vendor_code(), Some("ACS-313"));
    }

    #[test]
    fn statuses_map_like_the_sdk() {
        let nf = br#"{"type":"about:blank","title":"Not Found","status":404,"detail":"Session not found"}"#;
        let e = from_status("GET /x/sessions/1/events", 404, None, nf);
        assert!(
            matches!(
                e,
                Error::Closed {
                    what: "session",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = from_status("POST /x/engagements/1:join", 404, None, b"{}");
        assert!(
            matches!(
                e,
                Error::Closed {
                    what: "engagement",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = from_status("POST /x/engagements/1:disconnect", 404, None, b"{}");
        assert_eq!(e.vendor_code(), Some("ACS-304"));
        let e = from_status("GET /x", 401, None, b"");
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert_eq!(e.vendor_code(), Some("ACS-305"));
        let e = from_status("GET /x", 503, None, b"");
        assert!(e.is_retryable());
        let bad = br#"{"title":"Bad Request","status":400,"detail":"invalid","violations":[{"field":"body.elementText.text","message":"too long","code":20006}]}"#;
        let e = from_status("POST /x/engagements/1/messages", 400, None, bad);
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let s = e.to_string();
        assert!(s.contains("body.elementText.text: too long [20006]"), "{s}");
    }
}
