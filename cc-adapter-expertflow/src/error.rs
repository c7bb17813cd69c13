//! The one table from Expertflow codes to [`cc_core::Error`]; the vendor's code is kept.
//!
//! | where | vendor says | error |
//! |---|---|---|
//! | socket `ERRORS {task:"CHAT_REQUESTED", code:400}` | invalid data | `Rejected { code: "CHAT_REQUESTED/400" }` |
//! | socket `ERRORS {…, code:408}` | end server unreachable | `Rejected { code: "…/408", retry_after: 5 s }` |
//! | socket `ERRORS {…, code:500}` | internal error | `Rejected { code: "…/500", retry_after: 5 s }` |
//! | message ack `{code != 200}` | message not sent | `Rejected { code: "MESSAGE_RECEIVED/<code>" }` |
//! | socket CONNECT_ERROR | identity refused | `Auth { code: "CONNECT_ERROR" }` |
//! | REST 401 / 403 | token or identity refused | `Auth { code: "<status>" }` |
//! | REST 413 (file engine) | file too large | `Rejected { code: "413" }` |
//! | REST body `isInfected: true` | infected upload | `Rejected { code: "INFECTED" }` |
//! | other REST non-2xx | | [`ErrorResponse::default_error`] |

use std::time::Duration;

use cc_core::{Error, Vendor};
use cc_transport::ErrorResponse;
use serde_json::Value;

const V: Vendor = Vendor::Expertflow;

fn code_text(code: &Value) -> String {
    match code {
        Value::String(s) => s.clone(),
        Value::Null => "unknown".to_owned(),
        other => other.to_string(),
    }
}

/// The error for a socket `ERRORS` event.
pub fn errors_event(task: Option<&str>, code: &Value) -> Error {
    let task = task.unwrap_or("UNKNOWN");
    let c = code_text(code);
    let (message, retry_after) = match c.as_str() {
        "400" => ("the server found the request data invalid", None),
        "408" => (
            "the contact center could not be reached",
            Some(Duration::from_secs(5)),
        ),
        "500" => (
            "the contact center had an internal error",
            Some(Duration::from_secs(5)),
        ),
        _ => ("the contact center reported an error", None),
    };
    Error::Rejected {
        vendor: V,
        code: format!("{task}/{c}"),
        message: message.to_owned(),
        retry_after,
    }
}

/// Whether a message ack accepts the message (`code` 200, as number or string).
pub fn ack_ok(code: &Value) -> bool {
    code.as_i64() == Some(200) || code.as_str() == Some("200")
}

/// The error for a message ack that refused the message.
pub fn message_refused(code: &Value) -> Error {
    Error::Rejected {
        vendor: V,
        code: format!("MESSAGE_RECEIVED/{}", code_text(code)),
        message: "the contact center did not accept the message".to_owned(),
        retry_after: None,
    }
}

/// The error for a refused socket CONNECT.
pub fn connect_refused(message: &str) -> Error {
    Error::Auth {
        vendor: V,
        code: Some("CONNECT_ERROR".to_owned()),
        message: format!("the web channel refused the connection: {message}"),
    }
}

/// Maps REST error responses (the file engine's 413 and `isInfected` included).
pub fn map_http(vendor: Vendor, r: &ErrorResponse<'_>) -> Error {
    let json: Option<Value> = serde_json::from_slice(r.body).ok();
    if json
        .as_ref()
        .and_then(|j| j.get("isInfected"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Error::Rejected {
            vendor,
            code: "INFECTED".to_owned(),
            message: format!("{}: the file engine found the file infected", r.endpoint),
            retry_after: None,
        };
    }
    if r.status.as_u16() == 413 {
        return Error::Rejected {
            vendor,
            code: "413".to_owned(),
            message: format!("{}: file too large", r.endpoint),
            retry_after: None,
        };
    }
    r.default_error(vendor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cc_core::ErrorKind;
    use cc_transport::{HeaderMap, StatusCode};

    #[test]
    fn table() {
        let e = errors_event(Some("CHAT_REQUESTED"), &Value::from(408));
        assert_eq!(e.vendor_code(), Some("CHAT_REQUESTED/408"));
        assert!(e.is_retryable());
        assert!(!errors_event(Some("CHAT_REQUESTED"), &Value::from(400)).is_retryable());
        assert!(ack_ok(&Value::from(200)) && ack_ok(&Value::from("200")));
        assert!(!ack_ok(&Value::from(500)));
        assert_eq!(
            message_refused(&Value::from(500)).vendor_code(),
            Some("MESSAGE_RECEIVED/500")
        );
        assert_eq!(connect_refused("x").kind(), ErrorKind::Auth);
        let headers = HeaderMap::new();
        let resp = |status: u16, body: &'static [u8]| ErrorResponse {
            endpoint: "POST /file-engine/api/uploadFileStream",
            status: StatusCode::from_u16(status).unwrap(),
            headers: &headers,
            retry_after: None,
            body,
        };
        assert_eq!(map_http(V, &resp(413, b"")).vendor_code(), Some("413"));
        assert_eq!(
            map_http(V, &resp(400, br#"{"isInfected":true}"#)).vendor_code(),
            Some("INFECTED")
        );
        assert_eq!(map_http(V, &resp(401, b"")).kind(), ErrorKind::Auth);
    }
}
