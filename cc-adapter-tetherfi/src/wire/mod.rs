//! The Tetherfi wire: what goes over each transport, exactly as the protocol notes
//! (`shared/protocols/tetherfi.md`) describe it.
//!
//! Both transports carry the same two vocabularies, so the engine and the simulator work on
//! transport-neutral types:
//!
//! - [`Call`]: what the client asks the server (`__textchat.<Method>` over DWR §3.5, a JSON
//!   frame over the WebSocket proxy §3.7);
//! - [`Push`]: what the server tells the client (`__textchat.On<Event>(…)` reverse-AJAX pushes
//!   §3.6, JSON frames §3.7).
//!
//! [`dwr`] encodes and decodes DWR request bodies and replies, [`ws`] the chat-proxy JSON
//! frames, [`js`] parses the JavaScript literals DWR replies carry. Unknown pushes become
//! [`Push::Unknown`] (kept for an `Event::Vendor`), never a panic.

pub mod av;
pub mod dwr;
pub mod js;
pub mod ws;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The DWR script name of the chat object.
pub const TEXTCHAT: &str = "__textchat";
/// The DWR script name of the client log object (`slog`).
pub const CLIENTLOG: &str = "__clientlog";
/// The DWR system script.
pub const SYSTEM: &str = "__System";

/// The app-message types that carry audio/video signalling (§3.8, decoded by [`av::AvSignal`]).
/// The calls support takes these; chat leaves them out of the transcript.
pub const AV_SIGNAL_TYPES: &[&str] = &[
    "requestav",
    "avtstatus",
    "devinfo",
    "configs",
    "callqueued",
    "agt1stconnect",
    "avcontrol",
    "endav",
    "bye",
    "onend",
    "offer",
    "answer",
    "candidate",
];

/// Whether an app message of this `type` is audio/video signalling.
pub fn is_av_signal(kind: &str) -> bool {
    AV_SIGNAL_TYPES.contains(&kind)
}

/// JavaScript's `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` is
/// percent-encoded as UTF-8.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
    out
}

/// JavaScript's `decodeURIComponent`, tolerant: `+` stays `+`, a malformed escape is kept as
/// text, invalid UTF-8 becomes U+FFFD.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// One agent in an [`OpenedSession`] (§2.2 `Session.agents`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// The agent's name.
    #[serde(default)]
    pub name: String,
    /// The agent's id.
    #[serde(default, deserialize_with = "string_or_number")]
    pub id: String,
    /// The position in `trans` from which the agent sees the transcript.
    #[serde(default)]
    pub index: u64,
}

/// One transcript record of an [`OpenedSession`] (§2.2 `Session.trans`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransRecord {
    /// `msg`, `connect` or `disconnect`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// For `msg`: `c` (customer) or `a` (agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// For `msg`: the text, URL-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    /// For `connect`/`disconnect`: the agent's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The message id (PROPOSED: the server's `mid`), or the agent id of a connect record.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_string_or_number"
    )]
    pub id: Option<String>,
    /// The server's accept time, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
}

/// The payload of `OnOpenSuccess` (§2.2 `Session`): one chat of the browser session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenedSession {
    /// The web-API session id (the engagement id).
    #[serde(default)]
    pub sid_webapi: String,
    /// The chat service's id.
    #[serde(default)]
    pub sid_tchat: String,
    /// The agents, when connected.
    #[serde(default)]
    pub agents: Vec<AgentInfo>,
    /// The transcript.
    #[serde(default)]
    pub trans: Vec<TransRecord>,
    /// Multichat: the app's `clientId` given at `Start`.
    #[serde(default, rename = "clientId", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

fn opt_string_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Null => None,
        other => Some(other.to_string()),
    })
}

/// The queue information of `OnCallQueued`: the CSV `vdn,queuePos,shortSid,to,server,queueType`
/// (§3.6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueInfo {
    /// The VDN the chat was routed to.
    pub vdn: String,
    /// The position in the queue, when it parses.
    pub position: Option<u32>,
    /// The short session id of the internal SIP leg.
    pub short_sid: String,
    /// The SIP target.
    pub to: String,
    /// The SIP server.
    pub server: String,
    /// The queue type.
    pub queue_type: String,
}

impl QueueInfo {
    /// Parses the CSV; missing fields are empty.
    pub fn parse_csv(s: &str) -> QueueInfo {
        let mut f = s.split(',').map(str::trim);
        let mut next = || f.next().unwrap_or("").to_owned();
        let vdn = next();
        let pos = next();
        QueueInfo {
            vdn,
            position: pos.parse().ok(),
            short_sid: next(),
            to: next(),
            server: next(),
            queue_type: next(),
        }
    }

    /// The CSV form.
    pub fn to_csv(&self) -> String {
        format!(
            "{},{},{},{},{},{}",
            self.vdn,
            self.position.map(|p| p.to_string()).unwrap_or_default(),
            self.short_sid,
            self.to,
            self.server,
            self.queue_type
        )
    }
}

/// What the server tells the client (§3.6, §3.7). `sid` is the chat a push is about: always
/// given in multichat and over the WebSocket proxy, absent in single-chat DWR (the one chat).
#[derive(Clone, Debug, PartialEq)]
pub enum Push {
    /// `OnStartSuccess(sid, tchatid, param[, clientId])`.
    StartSuccess {
        /// The web-API session id: the engagement id.
        sid: String,
        /// The chat service's id.
        tchatid: String,
        /// Deployment-specific extra data.
        param: Value,
        /// Multichat: the app's id given at `Start`.
        client_id: Option<String>,
    },
    /// `OnStartFailed(code[, clientId])`.
    StartFailed {
        /// The code (§2.5).
        code: String,
        /// Multichat: the app's id given at `Start`.
        client_id: Option<String>,
    },
    /// `OnOpenSuccess(session)` (an array of sessions in multichat).
    OpenSuccess {
        /// The chats re-attached.
        sessions: Vec<OpenedSession>,
        /// WebSocket proxy: the browser-session token to resume with (PROPOSED).
        token: Option<String>,
    },
    /// `OnOpenFailed(code)`; `NoSessionFound` means "start a new one".
    OpenFailed {
        /// The code.
        code: String,
        /// WebSocket proxy: the browser-session token to resume with (PROPOSED).
        token: Option<String>,
    },
    /// `OnServersideEnd(reason)` → `OnEnd("server", reason)`.
    ServersideEnd {
        /// The reason, when given.
        reason: Option<String>,
        /// The chat.
        sid: Option<String>,
    },
    /// `OnClientsideEnd(reason)` → `OnEnd("client", reason)`.
    ClientsideEnd {
        /// The reason given to `End`.
        reason: Option<String>,
        /// The chat.
        sid: Option<String>,
    },
    /// `OnRemoteUserConnected(name, agentId, sessionId[, clientId])`.
    RemoteUserConnected {
        /// The agent's name.
        name: String,
        /// The agent's id.
        agent_id: String,
        /// The chat's session id.
        session_id: String,
        /// Multichat: the app's id given at `Start`.
        client_id: Option<String>,
    },
    /// `OnCallbackAutoRegistered(reason)` → `OnSystemNotification(reason)`.
    CallbackAutoRegistered {
        /// The reason code (§2.5).
        reason: String,
        /// The chat.
        sid: Option<String>,
    },
    /// `OnCallbackRequestStatus(isCustomerReq, status)`.
    CallbackRequestStatus {
        /// Whether the customer asked for it (else the CSO).
        is_customer_req: bool,
        /// The status as given.
        status: Value,
        /// The chat.
        sid: Option<String>,
    },
    /// `OnError(code)` → `OnInternalServerError(code)`.
    InternalError {
        /// The code.
        code: String,
    },
    /// `OnCallQueued("vdn,pos,shortSid,to,server,queueType")`.
    CallQueued {
        /// The queue information.
        info: QueueInfo,
        /// The chat.
        sid: Option<String>,
    },
    /// `OnMessageReceived(agent, msg, id)`: text from the CSO.
    MessageReceived {
        /// The agent's name.
        agent: String,
        /// The text, decoded.
        msg: String,
        /// The message id, to `Ack`.
        id: String,
        /// The chat.
        sid: Option<String>,
    },
    /// `OnAppMessageReceived(agent, msg, id)`: an app message (JSON text) from TMAC.
    AppMessageReceived {
        /// The agent's name.
        agent: String,
        /// The JSON text, decoded.
        msg: String,
        /// The message id, to `Ack`.
        id: String,
        /// The chat.
        sid: Option<String>,
    },
    /// `OnEcho(msg, id)`: the server's copy of a customer message.
    Echo {
        /// The text, decoded.
        msg: String,
        /// The message id, to `Ack`.
        id: String,
        /// The chat.
        sid: Option<String>,
    },
    /// `OnTypingStateChanged(agent, state)`: 0 started, 1 stopped.
    TypingStateChanged {
        /// The agent's name.
        agent: String,
        /// 0 or 1.
        state: u8,
        /// The chat.
        sid: Option<String>,
    },
    /// `OnConferenceUserLeft(agent, msg)`.
    ConferenceUserLeft {
        /// The agent's name.
        agent: String,
        /// The message shown.
        msg: String,
        /// The chat.
        sid: Option<String>,
    },
    /// `OnHistoryReceived(history)`.
    HistoryReceived {
        /// The history as given.
        history: Value,
        /// The chat.
        sid: Option<String>,
    },
    /// `OnResetCaptcha()`.
    ResetCaptcha,
    /// `OnUploadComplete(response)`.
    UploadComplete {
        /// `{fileName, fileSize, fileType}`.
        response: Value,
    },
    /// `OnCampaignContactCreated(response)`.
    CampaignContactCreated {
        /// `{resultCode, resultMessage}`.
        response: Value,
    },
    /// WebSocket proxy: the server accepted message `seq` as `mid` (PROPOSED `ack` frame).
    Accepted {
        /// The client's sequence number.
        seq: u64,
        /// The server's message id.
        mid: String,
        /// The chat.
        sid: Option<String>,
    },
    /// WebSocket proxy: the answer to `gettoken` (PROPOSED).
    AccessToken {
        /// The token.
        token: String,
    },
    /// A push this adapter does not know; kept for an `Event::Vendor`.
    Unknown {
        /// Its name.
        name: String,
        /// Its arguments.
        args: Vec<Value>,
    },
}

impl Push {
    /// The vendor's event name (`OnMessageReceived`, …).
    pub fn name(&self) -> &str {
        match self {
            Push::StartSuccess { .. } => "OnStartSuccess",
            Push::StartFailed { .. } => "OnStartFailed",
            Push::OpenSuccess { .. } => "OnOpenSuccess",
            Push::OpenFailed { .. } => "OnOpenFailed",
            Push::ServersideEnd { .. } => "OnServersideEnd",
            Push::ClientsideEnd { .. } => "OnClientsideEnd",
            Push::RemoteUserConnected { .. } => "OnRemoteUserConnected",
            Push::CallbackAutoRegistered { .. } => "OnCallbackAutoRegistered",
            Push::CallbackRequestStatus { .. } => "OnCallbackRequestStatus",
            Push::InternalError { .. } => "OnError",
            Push::CallQueued { .. } => "OnCallQueued",
            Push::MessageReceived { .. } => "OnMessageReceived",
            Push::AppMessageReceived { .. } => "OnAppMessageReceived",
            Push::Echo { .. } => "OnEcho",
            Push::TypingStateChanged { .. } => "OnTypingStateChanged",
            Push::ConferenceUserLeft { .. } => "OnConferenceUserLeft",
            Push::HistoryReceived { .. } => "OnHistoryReceived",
            Push::ResetCaptcha => "OnResetCaptcha",
            Push::UploadComplete { .. } => "OnUploadComplete",
            Push::CampaignContactCreated { .. } => "OnCampaignContactCreated",
            Push::Accepted { .. } => "ack",
            Push::AccessToken { .. } => "token",
            Push::Unknown { name, .. } => name,
        }
    }

    /// The chat the push names, if it names one.
    pub fn sid(&self) -> Option<&str> {
        match self {
            Push::StartSuccess { sid, .. } => Some(sid),
            Push::RemoteUserConnected { session_id, .. } if !session_id.is_empty() => {
                Some(session_id)
            }
            Push::ServersideEnd { sid, .. }
            | Push::ClientsideEnd { sid, .. }
            | Push::CallbackAutoRegistered { sid, .. }
            | Push::CallbackRequestStatus { sid, .. }
            | Push::CallQueued { sid, .. }
            | Push::MessageReceived { sid, .. }
            | Push::AppMessageReceived { sid, .. }
            | Push::Echo { sid, .. }
            | Push::TypingStateChanged { sid, .. }
            | Push::ConferenceUserLeft { sid, .. }
            | Push::HistoryReceived { sid, .. }
            | Push::Accepted { sid, .. } => sid.as_deref(),
            _ => None,
        }
    }
}

/// What the client asks the server (§3.5). `sid` is given in multichat (the chat the call is
/// about) and over the WebSocket proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `__System.generateId()`: the DWR session id (DWR only).
    GenerateId,
    /// `__System.checkHeartbeat()`: is the server reachable (DWR only, while offline).
    CheckHeartbeat,
    /// `__System.pageUnloaded()` (DWR only).
    PageUnloaded,
    /// `Open(cookieEnabled)`: re-attach to the browser session's chat(s).
    Open {
        /// Always true here: this client keeps cookies.
        cookie_enabled: bool,
        /// WebSocket proxy: the browser-session token to resume (PROPOSED).
        token: Option<String>,
        /// WebSocket proxy: this client's page id, stable across reconnects (PROPOSED; DWR
        /// carries it in `scriptSessionId`).
        page: Option<String>,
    },
    /// `Start(sessionDetailsJson, vaSession[, clientId])`.
    Start {
        /// The `SessionDetails` JSON text.
        details: String,
        /// The virtual-assistant history, a JSON array text.
        va_session: String,
        /// Multichat: the app's id for this chat.
        client_id: Option<String>,
    },
    /// `SendMessage(msg, clientSeq[, Sid])`; `msg` is plain text here (URL-encoded on the wire).
    SendMessage {
        /// The text.
        msg: String,
        /// The client's sequence number (retries reuse it).
        seq: u64,
        /// The chat.
        sid: Option<String>,
    },
    /// `SendAppMessage(msg, clientSeq[, Sid])`; `msg` is JSON text with a `type`.
    SendAppMessage {
        /// The JSON text.
        msg: String,
        /// The client's sequence number.
        seq: u64,
        /// The chat.
        sid: Option<String>,
    },
    /// `NotifyTypingStateChange(state[, Sid])`: 0 started, 1 stopped (PROPOSED DWR name).
    Typing {
        /// 0 or 1.
        state: u8,
        /// The chat.
        sid: Option<String>,
    },
    /// `ClientSideEnd(reason[, Sid])`.
    End {
        /// The reason, echoed in `OnEnd("client", reason)`.
        reason: String,
        /// The chat.
        sid: Option<String>,
    },
    /// `Close()`: detach without ending (PROPOSED DWR name).
    Close,
    /// `Ack(id[, Sid])`: acknowledge a received message, echo or app message.
    Ack {
        /// The message id.
        id: String,
        /// The chat.
        sid: Option<String>,
    },
    /// `IsValid()`: is the session still alive (after coming back online).
    IsValid,
    /// `GetAccessToken()` (PROPOSED DWR name).
    GetAccessToken,
    /// `RequestCallback(contact[, Sid])` (PROPOSED DWR name).
    RequestCallback {
        /// The phone number.
        contact: String,
        /// The chat.
        sid: Option<String>,
    },
    /// `CreateCampaignContact(json)` (PROPOSED DWR name).
    CreateCampaignContact {
        /// The JSON text.
        data: String,
    },
    /// `__clientlog.Log(type, unit, msg)` (PROPOSED name): `slog`.
    Log {
        /// `info`, `warn` or `error`.
        level: String,
        /// The caller's name.
        unit: String,
        /// The text.
        msg: String,
    },
}

impl Call {
    /// The DWR script and method.
    pub fn dwr_name(&self) -> (&'static str, &'static str) {
        match self {
            Call::GenerateId => (SYSTEM, "generateId"),
            Call::CheckHeartbeat => (SYSTEM, "checkHeartbeat"),
            Call::PageUnloaded => (SYSTEM, "pageUnloaded"),
            Call::Open { .. } => (TEXTCHAT, "Open"),
            Call::Start { .. } => (TEXTCHAT, "Start"),
            Call::SendMessage { .. } => (TEXTCHAT, "SendMessage"),
            Call::SendAppMessage { .. } => (TEXTCHAT, "SendAppMessage"),
            Call::Typing { .. } => (TEXTCHAT, "NotifyTypingStateChange"),
            Call::End { .. } => (TEXTCHAT, "ClientSideEnd"),
            Call::Close => (TEXTCHAT, "Close"),
            Call::Ack { .. } => (TEXTCHAT, "Ack"),
            Call::IsValid => (TEXTCHAT, "IsValid"),
            Call::GetAccessToken => (TEXTCHAT, "GetAccessToken"),
            Call::RequestCallback { .. } => (TEXTCHAT, "RequestCallback"),
            Call::CreateCampaignContact { .. } => (TEXTCHAT, "CreateCampaignContact"),
            Call::Log { .. } => (CLIENTLOG, "Log"),
        }
    }
}

/// `SessionDetails`, what `Start` sends JSON-stringified (§2.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionDetails {
    /// The customer details: an object of strings, or an already encrypted string.
    #[serde(rename = "eCustDetails")]
    pub cust_details: Value,
    /// `web`, `android`, `ios`.
    pub lib: String,
    /// `sg_pweb`.
    pub comm_path: String,
    /// The virtual-assistant chat id (`pKaiSid`), when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vachatid: Option<String>,
    /// Callback instead of chat when no agent is available.
    pub enable_autocb: bool,
    /// Local time `H:M:S:ms`, unpadded.
    #[serde(rename = "pClientTime")]
    pub client_time: String,
    /// The captcha text the user entered.
    #[serde(
        rename = "eEnteredCaptcha",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entered_captcha: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_component() {
        assert_eq!(url_encode("hello there/ü!"), "hello%20there%2F%C3%BC!");
        assert_eq!(url_decode("hello%20there%2F%C3%BC!"), "hello there/ü!");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz%4"), "%zz%4");
        assert_eq!(url_decode("a+b"), "a+b");
    }

    #[test]
    fn queue_csv() {
        let q = QueueInfo::parse_csv("5001,3,ab12,sip:q@x,10.0.0.1,chat");
        assert_eq!(q.position, Some(3));
        assert_eq!(q.queue_type, "chat");
        assert_eq!(QueueInfo::parse_csv(&q.to_csv()), q);
        assert_eq!(QueueInfo::parse_csv("").position, None);
    }
}
