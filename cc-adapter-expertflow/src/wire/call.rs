//! The call half of the wire: the widget config's `webRtc` settings, the INVITE's `X-` headers,
//! the SIP MESSAGE side channel and the mapping of the switch's end reasons
//! to the neutral words of `cc_core::CallState::Ended` (`shared/protocols/expertflow.md` §5, §6).
//!
//! Everything here is pure: the call driver and the simulator's switch both use it.

use std::sync::Arc;

use cc_core::{Error, Result, Secret, Vendor};
use cc_rtc::media::IceServer;
use serde_json::Value;
use url::Url;

const V: Vendor = Vendor::Expertflow;

/// `Content-Type` of the DTMF INFO (SIP.js `application/dtmf-relay`).
pub const DTMF_CONTENT_TYPE: &str = "application/dtmf-relay";
/// The header the switch and the vendor client put their own end reason in.
pub const DROPPED_REASON_HEADER: &str = "X-Call-Dropped-Custom-Reason";
/// `Content-Type` of the SIP MESSAGE side channel (SIP.js default, INFERRED).
pub const SIDE_CHANNEL_CONTENT_TYPE: &str = "text/plain";

/// The `webRtc` block of the widget config, checked: where the EF switch is and what to dial.
///
/// `Debug` hides the password (it is a [`Secret`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebRtcSettings {
    /// `enableWebRtc`.
    pub enabled: bool,
    /// `wssFs`: the switch's SIP-over-WebSocket URL (`wss://SWITCH:7443`).
    pub switch_url: Url,
    /// `uriFs`: the SIP domain (registrar and the dialled URI's host).
    pub sip_domain: String,
    /// `diallingUri`: the number dialled (the WEB_RTC channel's service identifier).
    pub dialling_uri: String,
    /// `sipExtension`: the extension every web customer registers as.
    pub extension: String,
    /// `extensionPassword`.
    pub password: Option<Secret>,
    /// `iceServers`.
    pub ice_servers: Vec<IceServer>,
}

fn text(o: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    match o.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn missing(field: &str, why: &str) -> Error {
    Error::invalid(V, format!("widget-configs webRtc.{field}"), why.to_owned())
}

impl WebRtcSettings {
    /// Reads the widget config's `webRtc` object. The switch URL is `wssFs`; configs of the
    /// older shape give `wssServerIp` + `wssServerPort` (+ `webSocket`/`websocket` as the
    /// scheme, `wss` when absent) instead. Errors name the field.
    pub fn from_widget(web_rtc: &Value) -> Result<WebRtcSettings> {
        let Some(o) = web_rtc.as_object() else {
            return Err(Error::invalid(
                V,
                "widget-configs webRtc",
                "absent: the deployment has no WebRTC settings",
            ));
        };
        let enabled = match o.get("enableWebRtc") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            // Older configs have no switch; the block being there means calls are set up.
            _ => true,
        };
        let switch_url = match text(o, "wssFs") {
            Some(u) => u,
            None => {
                let host = text(o, "wssServerIp").ok_or_else(|| missing("wssFs", "absent"))?;
                let port = text(o, "wssServerPort").unwrap_or_else(|| "7443".to_owned());
                let scheme = text(o, "webSocket")
                    .or_else(|| text(o, "websocket"))
                    .unwrap_or_else(|| "wss".to_owned());
                format!("{scheme}://{host}:{port}")
            }
        };
        let switch_url = parse_switch_url(&switch_url, "widget-configs webRtc.wssFs")?;
        let sip_domain = text(o, "uriFs")
            .or_else(|| switch_url.host_str().map(str::to_owned))
            .ok_or_else(|| missing("uriFs", "absent"))?;
        let dialling_uri =
            text(o, "diallingUri").ok_or_else(|| missing("diallingUri", "absent"))?;
        let extension = text(o, "sipExtension").ok_or_else(|| missing("sipExtension", "absent"))?;
        let password = text(o, "extensionPassword").map(Secret::new);
        let ice_servers = match o.get("iceServers") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => ice_servers_of(v)?,
        };
        Ok(WebRtcSettings {
            enabled,
            switch_url,
            sip_domain,
            dialling_uri,
            extension,
            password,
            ice_servers,
        })
    }

    /// The request URI of the call: `sip:<diallingUri>@<uriFs>`.
    pub fn target(&self) -> String {
        format!("sip:{}@{}", self.dialling_uri, self.sip_domain)
    }
}

/// Parses a switch URL (`ws:`/`wss:`); `field` names it in the error.
pub fn parse_switch_url(text: &str, field: &str) -> Result<Url> {
    let url = Url::parse(text.trim())
        .map_err(|e| Error::invalid(V, field.to_owned(), format!("{text:?}: {e}")))?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(Error::invalid(
            V,
            field.to_owned(),
            format!("scheme {:?} is not wss or ws", url.scheme()),
        ));
    }
    if url.host_str().is_none() {
        return Err(Error::invalid(V, field.to_owned(), "no host"));
    }
    Ok(url)
}

/// `iceServers: [{urls: [..] | "..", username?, credential?}]`. The vendor's own sample writes
/// `"stun: stun.l.google.com:19302"` (a space after the scheme); spaces are dropped.
fn ice_servers_of(v: &Value) -> Result<Vec<IceServer>> {
    let field = "widget-configs webRtc.iceServers";
    let Some(list) = v.as_array() else {
        return Err(Error::invalid(V, field, "not a list"));
    };
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let urls: Vec<String> = match s.get("urls").or_else(|| s.get("url")) {
            Some(Value::String(u)) => vec![u.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => return Err(Error::invalid(V, format!("{field}[{i}].urls"), "absent")),
        };
        let urls: Vec<String> = urls
            .iter()
            .map(|u| u.split_whitespace().collect::<String>())
            .filter(|u| !u.is_empty())
            .collect();
        for u in &urls {
            if !(u.starts_with("stun:") || u.starts_with("turn:") || u.starts_with("turns:")) {
                return Err(Error::invalid(
                    V,
                    format!("{field}[{i}].urls"),
                    format!("{u:?} is not a stun:/turn:/turns: URL"),
                ));
            }
        }
        out.push(IceServer {
            urls,
            username: s.get("username").and_then(Value::as_str).map(str::to_owned),
            credential: s.get("credential").and_then(Value::as_str).map(Secret::new),
        });
    }
    Ok(out)
}

/// What the INVITE's `X-` headers carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallerInfo {
    /// `X-Customer-Name`: the customer's name (pre-chat `name`).
    pub customer_name: String,
    /// `X-Agent-Extension`: the agent's extension when known (secure-link calls), else empty.
    pub agent_extension: String,
    /// `X-Customer-Number`: the customer's phone (pre-chat `phone`).
    pub customer_number: String,
    /// `X-Customer-Id`: the customer's id.
    pub customer_id: String,
    /// `X-Destination-Number`: the dialled number (`diallingUri`).
    pub destination: String,
    /// `X-Media-Type: video` rather than `audio`.
    pub video: bool,
}

/// The INVITE's extra headers, in the vendor client's order; empty values stay (as empty
/// headers).
pub fn invite_headers(info: &CallerInfo) -> Vec<(String, String)> {
    let clean = |s: &str| s.replace(['\r', '\n'], " ").trim().to_owned();
    vec![
        ("X-Customer-Name".to_owned(), clean(&info.customer_name)),
        ("X-Agent-Extension".to_owned(), clean(&info.agent_extension)),
        ("X-Customer-Number".to_owned(), clean(&info.customer_number)),
        ("X-Customer-Id".to_owned(), clean(&info.customer_id)),
        ("X-Destination-Number".to_owned(), clean(&info.destination)),
        (
            "X-Media-Type".to_owned(),
            if info.video { "video" } else { "audio" }.to_owned(),
        ),
        ("X-Calltype".to_owned(), "OUT".to_owned()),
    ]
}

/// A SIP MESSAGE of the side channel (JSON body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SideMessage {
    /// `agentDetails`: the agent's extension for the call `dialog`.
    AgentDetails {
        /// The call's dialog id (the INVITE's Call-ID).
        dialog: String,
        /// The agent's extension.
        agent_ext: Option<String>,
    },
    /// `MEDIA_SERVER_CALL_END`: the switch ended the call.
    MediaServerCallEnd {
        /// The dialog.
        dialog: String,
        /// `reasonCode`, as text.
        reason_code: Option<String>,
    },
    /// `USER_BUSY`: the far end is busy.
    UserBusy {
        /// The dialog.
        dialog: String,
    },
    /// `mediaStreamUpdate`: a stream was turned on or off at one end.
    MediaStreamUpdate {
        /// The dialog.
        dialog: String,
        /// The whole JSON, for an `Event::Vendor`.
        body: Value,
    },
    /// Another event name.
    Other {
        /// The event name.
        event: String,
        /// The whole JSON.
        body: Value,
    },
}

impl SideMessage {
    /// Parses a MESSAGE body; `Err` names what is wrong.
    pub fn parse(body: &str) -> std::result::Result<SideMessage, String> {
        let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
        let event = v
            .get("event")
            .and_then(Value::as_str)
            .ok_or("no `event`")?
            .to_owned();
        let dialog = v
            .pointer("/dialog/id")
            .and_then(|d| match d {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .unwrap_or_default();
        let text_of = |p: &str| {
            v.pointer(p).and_then(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        Ok(match event.as_str() {
            "agentDetails" => SideMessage::AgentDetails {
                dialog,
                agent_ext: text_of("/dialog/agentExt"),
            },
            "MEDIA_SERVER_CALL_END" => SideMessage::MediaServerCallEnd {
                dialog,
                reason_code: text_of("/reasonCode"),
            },
            "USER_BUSY" => SideMessage::UserBusy { dialog },
            "mediaStreamUpdate" => SideMessage::MediaStreamUpdate { dialog, body: v },
            _ => SideMessage::Other { event, body: v },
        })
    }

    /// The dialog the message is about (`""` when it names none).
    pub fn dialog(&self) -> &str {
        match self {
            SideMessage::AgentDetails { dialog, .. }
            | SideMessage::MediaServerCallEnd { dialog, .. }
            | SideMessage::UserBusy { dialog }
            | SideMessage::MediaStreamUpdate { dialog, .. } => dialog,
            SideMessage::Other { .. } => "",
        }
    }
}

/// The neutral word of an end reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndWord {
    /// The far end is busy.
    Busy,
    /// Nobody answered.
    NoAnswer,
    /// The far end or the switch refused the call.
    Rejected,
    /// The call failed (network, media, server error).
    Failed,
    /// The customer hung up.
    LocalHangup,
    /// The far end hung up.
    RemoteHangup,
}

impl EndWord {
    /// `busy`, `no-answer`, `rejected`, `failed`, `local-hangup`, `remote-hangup`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndWord::Busy => "busy",
            EndWord::NoAnswer => "no-answer",
            EndWord::Rejected => "rejected",
            EndWord::Failed => "failed",
            EndWord::LocalHangup => "local-hangup",
            EndWord::RemoteHangup => "remote-hangup",
        }
    }

    /// `word` or `word: text` (text trimmed; empty text adds nothing).
    pub fn with(self, text: Option<&str>) -> Arc<str> {
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => Arc::from(format!("{}: {t}", self.as_str())),
            None => Arc::from(self.as_str()),
        }
    }
}

/// What a vendor reason text (the switch's `X-Call-Dropped-Custom-Reason`, a `Reason` text or
/// a reason phrase; FreeSWITCH hangup causes included) means, when it says.
fn word_of_text(text: &str) -> Option<EndWord> {
    let t = text.trim().to_ascii_uppercase().replace(['-', ' '], "_");
    Some(match t.as_str() {
        "USER_BUSY" | "BUSY_HERE" | "BUSY_EVERYWHERE" | "ON_ANOTHER_CALL" => EndWord::Busy,
        "NO_ANSWER"
        | "NO_USER_RESPONSE"
        | "TEMPORARILY_UNAVAILABLE"
        | "REQUEST_TIMEOUT"
        | "ALLOTTED_TIMEOUT"
        | "RECOVERY_ON_TIMER_EXPIRE"
        | "USER_NOT_REGISTERED"
        | "SUBSCRIBER_ABSENT"
        | "PROGRESS_TIMEOUT" => EndWord::NoAnswer,
        "DECLINE"
        | "CALL_REJECTED"
        | "FORBIDDEN"
        | "NO_DIALPLAN_FOUND"
        | "NOT_FOUND"
        | "UNALLOCATED_NUMBER"
        | "NO_ROUTE_DESTINATION"
        | "INVALID_URI"
        | "URI_ERROR"
        | "ADDRESS_INCOMPLETE"
        | "INVALID_NUMBER_FORMAT" => EndWord::Rejected,
        "SERVICE_UNAVAILABLE"
        | "GATEWAY_DOWN"
        | "INVALID_GATEWAY"
        | "NORMAL_TEMPORARY_FAILURE"
        | "DESTINATION_OUT_OF_ORDER"
        | "MEDIA_TIMEOUT"
        | "INCOMPATIBLE_DESTINATION"
        | "CUSTOM_UNKNOWN_ERROR"
        | "OB_TRANSACTION_ERROR" => EndWord::Failed,
        _ => return None,
    })
}

/// The end reason of a call the switch refused with a final status: the vendor's text
/// decides when it is a known one, else the status does (486/600 busy; 408/480/487 no
/// answer; 403/404/603 and other 4xx/6xx rejected; 5xx failed).
pub fn failure_reason(status: u16, text: &str) -> Arc<str> {
    let word = word_of_text(text).unwrap_or(match status {
        486 | 600 => EndWord::Busy,
        408 | 480 | 487 => EndWord::NoAnswer,
        500..=599 => EndWord::Failed,
        400..=499 | 603 | 604 | 606 => EndWord::Rejected,
        _ => EndWord::Failed,
    });
    word.with(Some(text))
}

/// The end reason of a BYE from the switch (`X-Call-Dropped-Custom-Reason`, else the `Reason`
/// text, when there is one): `remote-hangup`, or what the text says when it names a failure.
pub fn bye_reason(text: Option<&str>) -> Arc<str> {
    let word = match text.and_then(word_of_text) {
        Some(EndWord::Failed) => EndWord::Failed,
        _ => EndWord::RemoteHangup,
    };
    word.with(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn widget_settings_current_shape() {
        let s = WebRtcSettings::from_widget(&json!({
            "enableWebRtc": true, "diallingUri": "369852", "sipExtension": "99000",
            "extensionPassword": "pw", "channel": "web", "websocket": "wss",
            "wssFs": "wss://switch.example.invalid:7443", "uriFs": "192.0.2.10",
            "iceServers": [{"urls": ["stun: stun.example.invalid:19302"]}]
        }))
        .unwrap();
        assert!(s.enabled);
        assert_eq!(s.switch_url.as_str(), "wss://switch.example.invalid:7443/");
        assert_eq!(s.target(), "sip:369852@192.0.2.10");
        assert_eq!(s.ice_servers[0].urls, ["stun:stun.example.invalid:19302"]);
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("pw"));
        assert!(!format!("{s:?}").contains("pw\""), "{s:?}");
    }

    #[test]
    fn widget_settings_older_shape_and_errors() {
        let s = WebRtcSettings::from_widget(&json!({
            "wssServerIp": "192.0.2.1", "wssServerPort": "7443", "webSocket": "ws",
            "diallingUri": 5, "sipExtension": "1000"
        }))
        .unwrap();
        assert_eq!(s.switch_url.as_str(), "ws://192.0.2.1:7443/");
        assert_eq!(s.sip_domain, "192.0.2.1");
        assert_eq!(s.dialling_uri, "5");
        let e = WebRtcSettings::from_widget(
            &json!({"wssFs": "https://x", "diallingUri": "1", "sipExtension": "2"}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("webRtc.wssFs") && e.contains("https"), "{e}");
        let e = WebRtcSettings::from_widget(&json!({"wssFs": "wss://x", "sipExtension": "2"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("webRtc.diallingUri"), "{e}");
        let e = WebRtcSettings::from_widget(&Value::Null)
            .unwrap_err()
            .to_string();
        assert!(e.contains("webRtc"), "{e}");
        let e = WebRtcSettings::from_widget(&json!({"wssFs": "wss://x", "diallingUri": "1", "sipExtension": "2", "iceServers": [{"urls": ["http://x"]}]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("iceServers[0].urls"), "{e}");
        let off = WebRtcSettings::from_widget(&json!({"enableWebRtc": false, "wssFs": "wss://x", "diallingUri": "1", "sipExtension": "2"})).unwrap();
        assert!(!off.enabled);
    }

    #[test]
    fn invite_headers_in_vendor_order() {
        let h = invite_headers(&CallerInfo {
            customer_name: "Ada Lovelace".into(),
            customer_number: "+44 1\r\n".into(),
            customer_id: "c-1".into(),
            destination: "369852".into(),
            video: true,
            ..CallerInfo::default()
        });
        let names: Vec<&str> = h.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "X-Customer-Name",
                "X-Agent-Extension",
                "X-Customer-Number",
                "X-Customer-Id",
                "X-Destination-Number",
                "X-Media-Type",
                "X-Calltype"
            ]
        );
        assert_eq!(h[1].1, "");
        assert_eq!(h[2].1, "+44 1");
        assert_eq!(h[5].1, "video");
        assert_eq!(h[6].1, "OUT");
    }

    #[test]
    fn side_channel_messages() {
        assert_eq!(
            SideMessage::parse(r#"{"event":"MEDIA_SERVER_CALL_END","dialog":{"id":"abc"},"reasonCode":"NORMAL_CLEARING"}"#).unwrap(),
            SideMessage::MediaServerCallEnd { dialog: "abc".into(), reason_code: Some("NORMAL_CLEARING".into()) }
        );
        assert_eq!(
            SideMessage::parse(r#"{"event":"agentDetails","dialog":{"id":"abc","agentExt":"1001","callType":"OUT"}}"#).unwrap(),
            SideMessage::AgentDetails { dialog: "abc".into(), agent_ext: Some("1001".into()) }
        );
        assert_eq!(
            SideMessage::parse(r#"{"event":"USER_BUSY","dialog":{"id":"abc"}}"#)
                .unwrap()
                .dialog(),
            "abc"
        );
        assert!(SideMessage::parse("nope").unwrap_err().contains("JSON"));
        assert!(SideMessage::parse("{}").unwrap_err().contains("event"));
    }

    #[test]
    fn reasons_map_to_neutral_words() {
        assert_eq!(&*failure_reason(486, "USER_BUSY"), "busy: USER_BUSY");
        assert_eq!(&*failure_reason(480, "NO_ANSWER"), "no-answer: NO_ANSWER");
        assert_eq!(
            &*failure_reason(480, "Temporarily Unavailable"),
            "no-answer: Temporarily Unavailable"
        );
        assert_eq!(&*failure_reason(603, "Decline"), "rejected: Decline");
        assert_eq!(
            &*failure_reason(404, "NO-DIALPLAN-FOUND"),
            "rejected: NO-DIALPLAN-FOUND"
        );
        assert_eq!(
            &*failure_reason(503, "Service Unavailable"),
            "failed: Service Unavailable"
        );
        // The text wins over the status; an unknown text leaves it to the status.
        assert_eq!(&*failure_reason(500, "USER_BUSY"), "busy: USER_BUSY");
        assert_eq!(&*failure_reason(486, "Something"), "busy: Something");
        assert_eq!(&*failure_reason(499, ""), "rejected");
        assert_eq!(
            &*bye_reason(Some("NORMAL_CLEARING")),
            "remote-hangup: NORMAL_CLEARING"
        );
        assert_eq!(&*bye_reason(None), "remote-hangup");
        assert_eq!(&*bye_reason(Some("MEDIA_TIMEOUT")), "failed: MEDIA_TIMEOUT");
        assert_eq!(&*EndWord::LocalHangup.with(None), "local-hangup");
    }
}
