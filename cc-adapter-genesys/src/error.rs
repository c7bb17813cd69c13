//! The one table mapping Genesys error codes to [`cc_core::Error`].
//!
//! Every mapped error keeps the vendor's code: [`Error::Auth`] in `code`, [`Error::Rejected`]
//! in `code` (as text: `"4011"`, `"chat.error.member.state"`). Codes that mean "try again
//! later" carry a `retry_after`, which makes them retryable.

use std::time::Duration;

use cc_core::{Error, Vendor};

use crate::wire::guest::ErrorBody;

/// How a code is classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The token or credentials: [`Error::Auth`].
    Auth,
    /// The vendor refused; retrying the same request will not help: [`Error::Rejected`].
    Rejected,
    /// The vendor refused for now: [`Error::Rejected`] with a `retry_after`.
    Retry,
}

/// Web Messaging codes (envelope `code` of a `class:"string"` error, `errorCode` of attachment
/// errors and of `TooManyRequestsErrorMessage`), with their meaning.
pub const MESSAGING_CODES: &[(i64, Class, &str)] = &[
    (400, Class::Rejected, "bad request"),
    (401, Class::Auth, "unauthorized"),
    (
        403,
        Class::Rejected,
        "forbidden or feature disabled in the deployment",
    ),
    (404, Class::Rejected, "not found"),
    (408, Class::Retry, "request timeout"),
    (429, Class::Retry, "too many requests"),
    (500, Class::Retry, "internal server error"),
    (502, Class::Retry, "bad gateway"),
    (503, Class::Retry, "service unavailable"),
    (504, Class::Retry, "gateway timeout"),
    (4000, Class::Rejected, "feature unavailable"),
    (4001, Class::Rejected, "file type invalid"),
    (4002, Class::Rejected, "file size invalid"),
    (4003, Class::Rejected, "file content invalid"),
    (4004, Class::Rejected, "file name invalid"),
    (4005, Class::Rejected, "file name too long"),
    (4006, Class::Auth, "session has expired"),
    (4007, Class::Auth, "session not found"),
    (4008, Class::Rejected, "attachment has expired"),
    (4009, Class::Rejected, "attachment not found"),
    (
        4010,
        Class::Rejected,
        "attachment not successfully uploaded",
    ),
    (4011, Class::Rejected, "message too long"),
    (4013, Class::Rejected, "custom attributes too large"),
    (
        4017,
        Class::Auth,
        "cannot downgrade an authenticated session",
    ),
    (4020, Class::Rejected, "missing parameter"),
    (4029, Class::Retry, "message rate too high"),
    (5000, Class::Retry, "unexpected error"),
];

/// Guest chat v2 codes (`ErrorBody.code`), with their classification.
pub const GUEST_CODES: &[(&str, Class)] = &[
    ("bad.request", Class::Rejected),
    ("constraint.validation", Class::Rejected),
    ("invalid.value", Class::Rejected),
    ("invalid.property", Class::Rejected),
    ("invalid.date", Class::Rejected),
    ("invalid.query.param.value", Class::Rejected),
    ("chat.deployment.disabled", Class::Rejected),
    ("chat.deployment.require.auth", Class::Auth),
    ("chat.deployment.bad.auth", Class::Auth),
    ("chat.error.invalid.queue", Class::Rejected),
    ("chat.error.invalid.flow", Class::Rejected),
    (
        "chat.error.createconversationrequest.routingtarget",
        Class::Rejected,
    ),
    (
        "chat.error.pattern.createconversationrequest.deploymentid",
        Class::Rejected,
    ),
    (
        "chat.error.notnull.createconversationmessagerequest.body",
        Class::Rejected,
    ),
    ("chat.error.conversation.state", Class::Rejected),
    ("chat.error.member.state", Class::Rejected),
    ("chat.error.bad.request", Class::Rejected),
    ("client.failed.request", Class::Rejected),
    ("response.entity.too.large", Class::Rejected),
    ("authentication.required", Class::Auth),
    ("bad.credentials", Class::Auth),
    ("credentials.expired", Class::Auth),
    ("ip.not.authorized", Class::Auth),
    ("origin.not.allowed", Class::Rejected),
    ("not.authorized", Class::Rejected),
    ("missing.permissions", Class::Rejected),
    ("not.found", Class::Rejected),
    ("chat.error.not.found", Class::Rejected),
    ("client.timeout", Class::Retry),
    ("request.conflict", Class::Rejected),
    ("request.entity.too.large", Class::Rejected),
    ("unsupported.media.type", Class::Rejected),
    ("too.many.requests", Class::Retry),
    ("too.many.requests.retry.after", Class::Retry),
    ("internal.server.error", Class::Retry),
    ("chat.error", Class::Retry),
    ("chat.error.internal", Class::Retry),
    ("caht.error", Class::Retry),
    ("service.unavailable", Class::Retry),
    ("chat.error.service.unavailable", Class::Retry),
    ("request.timeout", Class::Retry),
    ("chat.error.service.timeout", Class::Retry),
    ("authentication.request.timeout", Class::Retry),
];

/// The wait used when the vendor says "retry" without saying when (the platform SDKs' default).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(3);

fn build(class: Class, code: String, message: String, retry_after: Option<Duration>) -> Error {
    match class {
        Class::Auth => Error::Auth {
            vendor: Vendor::Genesys,
            code: Some(code),
            message,
        },
        Class::Rejected => Error::Rejected {
            vendor: Vendor::Genesys,
            code,
            message,
            retry_after: None,
        },
        Class::Retry => Error::Rejected {
            vendor: Vendor::Genesys,
            code,
            message,
            retry_after: Some(retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
        },
    }
}

/// The class of a Web Messaging code; unknown codes by range (4xxx/4xx refused, 5xx retry).
pub fn messaging_class(code: i64) -> Class {
    MESSAGING_CODES
        .iter()
        .find(|(c, ..)| *c == code)
        .map(|(_, class, _)| *class)
        .unwrap_or(if (500..600).contains(&code) || code >= 5000 {
            Class::Retry
        } else {
            Class::Rejected
        })
}

/// A Web Messaging error (`class:"string"`, attachment errors, rate limits).
pub fn messaging(code: i64, message: &str, retry_after: Option<Duration>) -> Error {
    let message = if message.is_empty() {
        MESSAGING_CODES
            .iter()
            .find(|(c, ..)| *c == code)
            .map(|(.., m)| (*m).to_owned())
            .unwrap_or_default()
    } else {
        message.to_owned()
    };
    build(
        messaging_class(code),
        code.to_string(),
        message,
        retry_after,
    )
}

/// The class of a guest chat code, falling back on the HTTP status.
pub fn guest_class(status: u16, code: &str) -> Class {
    if let Some((_, class)) = GUEST_CODES.iter().find(|(c, _)| *c == code) {
        return *class;
    }
    if code.starts_with("chat.error.notnull.") {
        return Class::Rejected;
    }
    match status {
        401 => Class::Auth,
        408 | 429 | 500..=599 => Class::Retry,
        _ => Class::Rejected,
    }
}

/// A guest chat REST error from its status, body and `Retry-After` header.
pub fn guest(status: u16, body: &ErrorBody, retry_after: Option<Duration>) -> Error {
    let code = if body.code.is_empty() {
        status.to_string()
    } else {
        body.code.clone()
    };
    build(
        guest_class(status, &body.code),
        code,
        body.message.clone(),
        retry_after,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cc_core::ErrorKind;

    #[test]
    fn every_messaging_code_keeps_the_code() {
        for (code, class, _) in MESSAGING_CODES {
            let e = messaging(*code, "", None);
            assert_eq!(e.vendor_code(), Some(code.to_string().as_str()));
            match class {
                Class::Auth => assert_eq!(e.kind(), ErrorKind::Auth),
                Class::Rejected => assert!(!e.is_retryable(), "{code}"),
                Class::Retry => assert!(e.is_retryable(), "{code}"),
            }
        }
    }

    #[test]
    fn rate_limit_keeps_retry_after() {
        let e = messaging(4029, "Message rate too high", Some(Duration::from_secs(2)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(e.vendor_code(), Some("4029"));
    }

    #[test]
    fn every_guest_code_keeps_the_code() {
        for (code, class) in GUEST_CODES {
            let body = ErrorBody {
                status: 400,
                code: (*code).to_owned(),
                message: "m".into(),
                ..ErrorBody::default()
            };
            let e = guest(400, &body, None);
            assert_eq!(e.vendor_code(), Some(*code));
            assert_eq!(e.is_retryable(), *class == Class::Retry, "{code}");
        }
        let body = ErrorBody {
            code: "chat.error.notnull.createconversationrequest.memberinfo.displayname".into(),
            ..ErrorBody::default()
        };
        assert_eq!(guest(400, &body, None).kind(), ErrorKind::Rejected);
        assert_eq!(
            guest(401, &ErrorBody::default(), None).vendor_code(),
            Some("401")
        );
    }
}
