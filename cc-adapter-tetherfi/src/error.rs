//! The one table from Tetherfi's codes (§2.5) to `cc_core::Error`. The vendor's code is
//! always kept as `Error::Rejected { code }` (or in the message of the other kinds).

use std::time::Duration;

use cc_core::{Error, Vendor};

const V: Vendor = Vendor::Tetherfi;

/// One known code: what it means and whether trying again later may help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    /// The vendor's code, exactly.
    pub code: &'static str,
    /// What it means.
    pub meaning: &'static str,
    /// When set, the error is retryable after this wait.
    pub retry_after: Option<Duration>,
}

const fn info(code: &'static str, meaning: &'static str) -> CodeInfo {
    CodeInfo {
        code,
        meaning,
        retry_after: None,
    }
}

const fn retry(code: &'static str, meaning: &'static str, secs: u64) -> CodeInfo {
    CodeInfo {
        code,
        meaning,
        retry_after: Some(Duration::from_secs(secs)),
    }
}

/// `OnStartFailed` codes, including the client-generated ones.
pub const START_FAILED: &[CodeInfo] = &[
    info("StartError", "the chat could not be started"),
    retry(
        "ServerInternalConnectivityError",
        "the web API could not reach the chat service",
        5,
    ),
    info(
        "AlreadyStartedAndInSession",
        "this browser session already has a chat; open it instead",
    ),
    info("CookiesDisabled", "the server saw no session cookie"),
    info(
        "UnOpenedSessionPerformedStart",
        "Start was called before Open",
    ),
    info("CaptchaDoesNotMatch", "the captcha answer is wrong"),
    info("CaptchaNotFound", "no captcha was issued for this session"),
    info("CaptchaIsEmpty", "the captcha answer is empty"),
    retry(
        "MaxConcurrentSessionCountReached",
        "the service has as many chats as it takes",
        30,
    ),
    info(
        "AlreadyEndedSession",
        "this browser session's chat has ended",
    ),
    retry("RequestFailed", "the Start request failed", 3),
    retry("OpenRequestFailed", "the Open before Start failed", 3),
];

/// `OnOpenFailed` codes.
pub const OPEN_FAILED: &[CodeInfo] = &[
    info("CookiesDisabled", "the server saw no session cookie"),
    info(
        "NoSessionFound",
        "no chat in this browser session: start one",
    ),
    info(
        "AlreadyEndedSession",
        "this browser session's chat has ended",
    ),
    retry("RequestFailed", "the Open request failed", 3),
];

/// `OnSystemNotification` / `OnCallbackAutoRegistered` reasons: a callback was recorded
/// instead of the chat.
pub const SYSTEM_NOTIFICATIONS: &[CodeInfo] = &[
    info("ErrorInGetAgentDetails", "agent details could not be read"),
    info("ErrorAgentDetails", "agent details are wrong"),
    info("NoStaffedAgents", "no agent is staffed"),
    info("QueueIsTooBig", "the queue is too long"),
    info("TimedOutInQueue", "the chat waited too long in the queue"),
    info("InternalServerError", "the server failed"),
];

/// `OnInternalServerError` codes.
pub const INTERNAL_ERRORS: &[CodeInfo] = &[info(
    "UnOpenedSessionNotAllowed",
    "a call came before Open/Start attached the page",
)];

/// The information on `code` in `table`.
pub fn lookup(table: &'static [CodeInfo], code: &str) -> Option<&'static CodeInfo> {
    table.iter().find(|c| c.code == code)
}

fn rejected(table: &'static [CodeInfo], what: &str, code: &str) -> Error {
    let (meaning, retry_after) = match lookup(table, code) {
        Some(i) => (i.meaning.to_owned(), i.retry_after),
        None if code.starts_with("OpenRetunedWith") => (
            format!("the Open before Start answered {}", &code[15..]),
            None,
        ),
        None => (format!("unknown {what} code"), None),
    };
    Error::Rejected {
        vendor: V,
        code: code.to_owned(),
        message: format!("{what}: {meaning}"),
        retry_after,
    }
}

/// The error for `OnStartFailed(code)`.
pub fn start_failed(code: &str) -> Error {
    rejected(START_FAILED, "start", code)
}

/// The error for `OnOpenFailed(code)` (not for `NoSessionFound`, which is no error).
pub fn open_failed(code: &str) -> Error {
    rejected(OPEN_FAILED, "open", code)
}

/// The error for `OnInternalServerError(code)`.
pub fn internal_error(code: &str) -> Error {
    rejected(INTERNAL_ERRORS, "internal server error", code)
}

/// The error for a DWR exception reply to `method`.
pub fn exception(method: &str, message: &str) -> Error {
    Error::Rejected {
        vendor: V,
        code: "DwrException".to_owned(),
        message: format!("{method}: {message}"),
        retry_after: None,
    }
}

/// Whether an end reason means the contact centre (not an agent) ended the chat.
pub fn is_system_reason(reason: &str) -> bool {
    lookup(SYSTEM_NOTIFICATIONS, reason).is_some() || reason == "SessionLostWhileOffline"
}

#[cfg(test)]
mod tests {
    use super::*;
    use cc_core::ErrorKind;

    #[test]
    fn codes_are_kept() {
        let e = start_failed("CaptchaDoesNotMatch");
        assert_eq!(e.vendor_code(), Some("CaptchaDoesNotMatch"));
        assert!(!e.is_retryable());
        let e = start_failed("MaxConcurrentSessionCountReached");
        assert!(e.is_retryable());
        let e = start_failed("OpenRetunedWithCookiesDisabled");
        assert!(e.to_string().contains("CookiesDisabled"), "{e}");
        let e = start_failed("Whatever");
        assert_eq!(e.kind(), ErrorKind::Rejected);
        assert_eq!(
            open_failed("AlreadyEndedSession").vendor_code(),
            Some("AlreadyEndedSession")
        );
        assert!(is_system_reason("TimedOutInQueue"));
        assert!(!is_system_reason("agent left"));
    }
}
