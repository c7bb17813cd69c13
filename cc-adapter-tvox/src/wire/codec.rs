//! The codec: how the data model travels. **PROPOSED** (`shared/protocols/tvox.md` §3.2–3.6).
//!
//! No capture of the widget's real traffic exists, so this module is the one place that
//! decides the envelope (JSON-RPC 2.0 text frames over WebSocket), the method names and the
//! shapes of params and results. The engine sees only [`Call`], [`Incoming`] and the
//! result structs; if the real protocol is ever captured, this file changes and the data
//! model ([`super::model`]), the engine and the simulator's behaviour stay.
//!
//! - request `{"jsonrpc":"2.0","id":<int|string>,"method":…,"params":{…}}`
//! - response `{"jsonrpc":"2.0","id":…,"result":…}` or `{…,"error":{code,message,data?}}`
//! - server push `{"jsonrpc":"2.0","method":"notify","params":{"subscription":…,"data":{…}}}`

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{
    ChannelServicesConfiguration, ChannelSession, ChatChannelEventMessage,
    ChatChannelEventMessageStatus, CustomerInfo, MultiChannelType, ServiceStatus, WebrtcConfig,
};

/// The WebSocket path under the server URL.
pub const WS_PATH: &str = "/apps/widget/api/ws";
/// The subprotocol offered in `Sec-WebSocket-Protocol`.
pub const SUBPROTOCOL: &str = "tvox-widget.v1";
/// The method name of server pushes.
pub const NOTIFY: &str = "notify";

/// A JSON-RPC id: the client numbers its requests; heartbeats use `hb-<n>` strings so
/// they never shift the numbering of the other requests.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RpcId {
    /// A numbered request.
    Num(u64),
    /// A named request (heartbeats).
    Str(String),
}

/// `widget.hello` params.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// The OCC widget id, when the page has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widget_id: Option<String>,
    /// The default customer identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_info: Option<CustomerInfo>,
    /// The channels and services the page uses and monitors.
    #[serde(default)]
    pub services_configuration: Vec<ChannelServicesConfiguration>,
    /// The WebRTC configuration (`server.webrtc`), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webrtc: Option<WebrtcConfig>,
    /// Who connects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The token of an earlier connection, to re-attach its sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<String>,
}

/// `chat.create` params.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatCreate {
    /// The service code.
    pub service: String,
    /// `chatCustomerDisplayName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_display_name: Option<String>,
    /// `chatCustomerValue` (e-mail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_value: Option<String>,
    /// The full identity for this chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_info: Option<CustomerInfo>,
}

/// `chat.send` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSend {
    /// The chat session.
    pub session_id: String,
    /// The text (empty for typing states).
    pub message: String,
    /// `WROTE`, `COMPOSING` or `IDLE`.
    pub status: ChatChannelEventMessageStatus,
    /// Shown to the agent as sent by the agent side (bot history, custom welcome).
    pub notify_greeting_message: bool,
}

/// `video.create` / `call.create` params.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaCreate {
    /// The service code.
    pub service: String,
    /// The customer's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    /// The customer's e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_mail: Option<String>,
}

/// `webrtc.offer` / `webrtc.answer` params: a session description for a video or phone
/// session (PROPOSED, §3.4). The same shape travels server → client as a push on the
/// call subscription ([`SignalPush`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDescription {
    /// The video or phone session.
    pub session_id: String,
    /// The SDP.
    pub sdp: String,
}

/// `webrtc.candidate` params: one trickled ICE candidate, or the end of candidates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The video or phone session.
    pub session_id: String,
    /// The candidate line (`candidate:…`, without `a=`); `null` = end of candidates.
    pub candidate: Option<String>,
    /// The media stream id (`a=mid`) the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The index of the m-line the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u32>,
}

/// `webrtc.mediaState` params: the customer's mute state, for the agent's UI (the mute
/// itself happens in the client's media).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaState {
    /// The video or phone session.
    pub session_id: String,
    /// The microphone is muted.
    pub audio_muted: bool,
    /// The camera is muted.
    pub video_muted: bool,
}

/// A signalling push on a `video.subscribe` / `call.subscribe` subscription: the data
/// carries `kind` (PROPOSED, §3.5); session updates carry none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SignalPush {
    /// TVox offers (a re-offer from the agent's side, e.g. its hold).
    Offer(SessionDescription),
    /// TVox answers the client's offer.
    Answer(SessionDescription),
    /// A trickled candidate of TVox's media, or the end of them.
    Candidate(IceCandidate),
}

impl SignalPush {
    /// The session it is about.
    pub fn session_id(&self) -> &str {
        match self {
            SignalPush::Offer(d) | SignalPush::Answer(d) => &d.session_id,
            SignalPush::Candidate(c) => &c.session_id,
        }
    }
}

/// What a push on a call subscription is.
#[derive(Clone, Debug, PartialEq)]
pub enum CallPush {
    /// A session changed (`VideoChannelSession` / `CallChannelSession`).
    Session(Box<ChannelSession>),
    /// Offer, answer or candidate.
    Signal(SignalPush),
}

/// Decodes a push of a `video.subscribe` / `call.subscribe` subscription: with `kind` it is
/// signalling, without it a session.
pub fn decode_call_push(value: Value) -> Result<CallPush, DecodeError> {
    if value.get("kind").is_some() {
        serde_json::from_value(value)
            .map(CallPush::Signal)
            .map_err(|e| bad("call signalling push", e.to_string()))
    } else {
        serde_json::from_value(value)
            .map(|s| CallPush::Session(Box::new(s)))
            .map_err(|e| bad("call session push", e.to_string()))
    }
}

/// Every client → server request: the method name and its params, one per JS call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params")]
pub enum Call {
    /// `widget.hello`: the handshake of every connection.
    #[serde(rename = "widget.hello")]
    Hello(Hello),
    /// `widget.bye`: `Widget.disconnect()`.
    #[serde(rename = "widget.bye")]
    Bye {},
    /// `ping`: the heartbeat.
    #[serde(rename = "ping")]
    Ping {
        /// The client's time, epoch ms.
        ts: i64,
    },
    /// `widget.visitUri`: `widgetVisitUri`.
    #[serde(rename = "widget.visitUri", rename_all = "camelCase")]
    VisitUri {
        /// `linkableUri` (typically `location.href`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        linkable_uri: Option<String>,
        /// `uri` (typically `location.pathname`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uri: Option<String>,
        /// `uriDisplay` (typically `document.title`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uri_display: Option<String>,
    },
    /// `widget.customerIdentifier`: `sendCustomerIdentifier`.
    #[serde(rename = "widget.customerIdentifier")]
    CustomerIdentifier {
        /// The channel chosen.
        channel: MultiChannelType,
        /// The service chosen.
        service: String,
    },
    /// `service.status.subscribe`: `getServiceStatusForChannel`.
    #[serde(rename = "service.status.subscribe")]
    StatusSubscribe {
        /// The service.
        service: String,
        /// The channel.
        channel: MultiChannelType,
    },
    /// `subscription.cancel`: every monitor stop.
    #[serde(rename = "subscription.cancel")]
    Cancel {
        /// The subscription.
        subscription: String,
    },
    /// `chat.create`: `createChatChannelSession`.
    #[serde(rename = "chat.create")]
    ChatCreate(ChatCreate),
    /// `chat.session.subscribe`: `getChatChannelSessionMonitor`.
    #[serde(rename = "chat.session.subscribe", rename_all = "camelCase")]
    ChatSessionSubscribe {
        /// The chat session.
        session_id: String,
    },
    /// `chat.events.subscribe`: `getChatChannelEventMonitor`.
    #[serde(rename = "chat.events.subscribe", rename_all = "camelCase")]
    ChatEventsSubscribe {
        /// The chat session.
        session_id: String,
        /// Replay only the events after this one (resume after a reconnect).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_event_id: Option<String>,
    },
    /// `chat.send`: `chatSendMessage`.
    #[serde(rename = "chat.send")]
    ChatSend(ChatSend),
    /// `chat.received`: `chatChannelReceivedMessage`.
    #[serde(rename = "chat.received", rename_all = "camelCase")]
    ChatReceived {
        /// The chat session.
        session_id: String,
        /// The inbound message.
        message_id: String,
    },
    /// `chat.read`: `chatChannelReadMessage`.
    #[serde(rename = "chat.read", rename_all = "camelCase")]
    ChatRead {
        /// The chat session.
        session_id: String,
        /// The inbound message.
        message_id: String,
    },
    /// `chat.recap`: `chatSendRecapOfSession`.
    #[serde(rename = "chat.recap", rename_all = "camelCase")]
    ChatRecap {
        /// The chat session.
        session_id: String,
        /// Where to send the transcript.
        mail: String,
    },
    /// `chat.close`: `chatChannelSessionClose`.
    #[serde(rename = "chat.close", rename_all = "camelCase")]
    ChatClose {
        /// The chat session.
        session_id: String,
    },
    /// `video.create`: `videoChannelSessionNew`.
    #[serde(rename = "video.create")]
    VideoCreate(MediaCreate),
    /// `call.create`: `callChannelSessionNew`.
    #[serde(rename = "call.create")]
    CallCreate(MediaCreate),
    /// `video.close`: `videoChannelSessionClose`.
    #[serde(rename = "video.close", rename_all = "camelCase")]
    VideoClose {
        /// The video session.
        session_id: String,
    },
    /// `call.close`: `callChannelSessionClose`.
    #[serde(rename = "call.close", rename_all = "camelCase")]
    CallClose {
        /// The call session.
        session_id: String,
    },
    /// `video.subscribe`: `videoChannelSessionMonitor`.
    #[serde(rename = "video.subscribe")]
    VideoSubscribe {},
    /// `call.subscribe`: `callChannelSessionMonitor`.
    #[serde(rename = "call.subscribe")]
    CallSubscribe {},
    /// `webrtc.offer`: the client's offer (first, or a re-offer such as its hold).
    #[serde(rename = "webrtc.offer")]
    WebrtcOffer(SessionDescription),
    /// `webrtc.answer`: the client's answer to an offer TVox pushed.
    #[serde(rename = "webrtc.answer")]
    WebrtcAnswer(SessionDescription),
    /// `webrtc.candidate`: a trickled local candidate, or the end of them.
    #[serde(rename = "webrtc.candidate")]
    WebrtcCandidate(IceCandidate),
    /// `webrtc.mediaState`: `toggleAudioMute` / `toggleVideoMute`, for the agent's UI.
    #[serde(rename = "webrtc.mediaState")]
    WebrtcMediaState(MediaState),
}

impl Call {
    /// The method name.
    pub fn method(&self) -> &'static str {
        match self {
            Call::Hello(_) => "widget.hello",
            Call::Bye {} => "widget.bye",
            Call::Ping { .. } => "ping",
            Call::VisitUri { .. } => "widget.visitUri",
            Call::CustomerIdentifier { .. } => "widget.customerIdentifier",
            Call::StatusSubscribe { .. } => "service.status.subscribe",
            Call::Cancel { .. } => "subscription.cancel",
            Call::ChatCreate(_) => "chat.create",
            Call::ChatSessionSubscribe { .. } => "chat.session.subscribe",
            Call::ChatEventsSubscribe { .. } => "chat.events.subscribe",
            Call::ChatSend(_) => "chat.send",
            Call::ChatReceived { .. } => "chat.received",
            Call::ChatRead { .. } => "chat.read",
            Call::ChatRecap { .. } => "chat.recap",
            Call::ChatClose { .. } => "chat.close",
            Call::VideoCreate(_) => "video.create",
            Call::CallCreate(_) => "call.create",
            Call::VideoClose { .. } => "video.close",
            Call::CallClose { .. } => "call.close",
            Call::VideoSubscribe {} => "video.subscribe",
            Call::CallSubscribe {} => "call.subscribe",
            Call::WebrtcOffer(_) => "webrtc.offer",
            Call::WebrtcAnswer(_) => "webrtc.answer",
            Call::WebrtcCandidate(_) => "webrtc.candidate",
            Call::WebrtcMediaState(_) => "webrtc.mediaState",
        }
    }
}

/// A request as framed on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    /// The id the response carries back.
    pub id: RpcId,
    /// Method and params.
    #[serde(flatten)]
    pub call: Call,
}

/// A JSON-RPC error object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcError {
    /// The code (§3.6 of the notes).
    pub code: i64,
    /// The message.
    pub message: String,
    /// Extra data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// `widget.hello` result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloResult {
    /// The server's id of this widget connection.
    pub client_id: String,
    /// The token to send in the next `hello` to re-attach this widget's sessions.
    pub resume_token: String,
    /// `getChannelsEnabled()`: channel → enabled.
    #[serde(default)]
    pub channels_enabled: BTreeMap<String, bool>,
    /// The server's time (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time: Option<String>,
    /// STUN/TURN servers for the phone and video channels.
    #[serde(default)]
    pub ice_servers: Vec<IceServer>,
    /// The chat sessions of this widget that are still open, when `resumeToken` named an
    /// earlier connection (PROPOSED, for an app that restarts: the JS library keeps its
    /// sessions in the page instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<ChannelSession>,
}

/// One ICE server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` / `turn:` URLs.
    #[serde(default)]
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential (never in `Debug`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<cc_core::Secret>,
}

/// `ping` result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PingResult {
    /// The `ts` of the ping.
    pub ts: i64,
    /// The server's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time: Option<String>,
}

/// `service.status.subscribe` result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSubscribed {
    /// The subscription pushes come on.
    pub subscription: String,
    /// The status now.
    pub status: ServiceStatus,
}

/// `chat.session.subscribe` result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSubscribed {
    /// The subscription pushes come on.
    pub subscription: String,
    /// The session now.
    pub session: ChannelSession,
}

/// `chat.events.subscribe` result: the `LiveResult`'s `result` part.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsSubscribed {
    /// The subscription pushes come on (the `notification` part).
    pub subscription: String,
    /// The events so far (after `sinceEventId` when given), oldest first.
    #[serde(default)]
    pub events: Vec<ChatChannelEventMessage>,
}

/// `video.subscribe` / `call.subscribe` result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribed {
    /// The subscription pushes come on.
    pub subscription: String,
    /// The widget's sessions of this channel that are still open (PROPOSED: so a client
    /// that subscribes again after a reconnect learns which calls ended meanwhile).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<ChannelSession>,
}

/// `video.create` / `call.create` result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaCreated {
    /// The new session's id.
    pub session_id: String,
}

/// A server push: `params` of a `notify`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notify {
    /// The subscription it belongs to.
    pub subscription: String,
    /// The payload, decoded by what the subscription is.
    pub data: Value,
}

/// What the client can receive.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// The answer to a request.
    Response {
        /// The request's id.
        id: RpcId,
        /// The result or the error.
        result: Result<Value, RpcError>,
    },
    /// A push on a subscription.
    Notify(Notify),
}

/// Why a frame could not be decoded; names the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Which frame (`JSON-RPC frame`, `notify`, `chat.create result`, …).
    pub frame: String,
    /// What was wrong.
    pub reason: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed {}: {}", self.frame, self.reason)
    }
}

impl std::error::Error for DecodeError {}

fn bad(frame: impl Into<String>, reason: impl Into<String>) -> DecodeError {
    DecodeError {
        frame: frame.into(),
        reason: reason.into(),
    }
}

/// Frames a request.
pub fn encode_request(id: RpcId, call: &Call) -> String {
    let req = Request {
        jsonrpc: "2.0".to_owned(),
        id,
        call: call.clone(),
    };
    serde_json::to_string(&req).expect("requests always serialize")
}

/// Decodes one text frame the server sent.
pub fn decode_incoming(text: &str) -> Result<Incoming, DecodeError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| bad("JSON-RPC frame", format!("not JSON: {e}")))?;
    let Value::Object(mut obj) = v else {
        return Err(bad("JSON-RPC frame", "not an object"));
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(bad("JSON-RPC frame", "`jsonrpc` is not \"2.0\""));
    }
    if let Some(method) = obj.get("method") {
        if method.as_str() != Some(NOTIFY) {
            return Err(bad(
                "JSON-RPC frame",
                format!("unexpected server method {method}"),
            ));
        }
        let params = obj.remove("params").unwrap_or(Value::Null);
        let n: Notify = serde_json::from_value(params).map_err(|e| bad("notify", e.to_string()))?;
        return Ok(Incoming::Notify(n));
    }
    let id = match obj.remove("id") {
        Some(id) => serde_json::from_value::<RpcId>(id)
            .map_err(|_| bad("JSON-RPC response", "`id` is neither a number nor a string"))?,
        None => return Err(bad("JSON-RPC response", "no `id` and no `method`")),
    };
    let result = match (obj.remove("result"), obj.remove("error")) {
        (Some(r), None) => Ok(r),
        (None, Some(e)) => Err(serde_json::from_value::<RpcError>(e)
            .map_err(|e| bad("JSON-RPC error", e.to_string()))?),
        _ => {
            return Err(bad(
                "JSON-RPC response",
                "exactly one of `result` and `error` is required",
            ));
        }
    };
    Ok(Incoming::Response { id, result })
}

/// Decodes a result body as `T`, naming the method in the error.
pub fn decode_result<T: serde::de::DeserializeOwned>(
    method: &str,
    value: Value,
) -> Result<T, DecodeError> {
    serde_json::from_value(value).map_err(|e| bad(format!("{method} result"), e.to_string()))
}

/// Decodes a push's data as `T`, naming what it should be.
pub fn decode_data<T: serde::de::DeserializeOwned>(
    what: &str,
    value: Value,
) -> Result<T, DecodeError> {
    serde_json::from_value(value).map_err(|e| bad(format!("{what} push"), e.to_string()))
}

// ---- server side (the simulator uses these) ----

/// Decodes a request the client sent; `Err` carries the JSON-RPC error to answer with and
/// the id when one could be read.
pub fn decode_request(text: &str) -> Result<Request, (Option<RpcId>, RpcError)> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        (
            None,
            RpcError {
                code: -32700,
                message: format!("parse error: {e}"),
                data: None,
            },
        )
    })?;
    let id = v
        .get("id")
        .cloned()
        .and_then(|i| serde_json::from_value::<RpcId>(i).ok());
    let method = v.get("method").and_then(Value::as_str).map(str::to_owned);
    serde_json::from_value::<Request>(v).map_err(|e| {
        let known = method.as_deref().is_some_and(is_known_method);
        let (code, message) = if known {
            (-32602, format!("invalid params: {e}"))
        } else if let Some(m) = method {
            (-32601, format!("method not found: {m}"))
        } else {
            (-32600, format!("invalid request: {e}"))
        };
        (
            id,
            RpcError {
                code,
                message,
                data: None,
            },
        )
    })
}

fn is_known_method(m: &str) -> bool {
    METHODS.contains(&m)
}

/// Every method name of [`Call`].
pub const METHODS: &[&str] = &[
    "widget.hello",
    "widget.bye",
    "ping",
    "widget.visitUri",
    "widget.customerIdentifier",
    "service.status.subscribe",
    "subscription.cancel",
    "chat.create",
    "chat.session.subscribe",
    "chat.events.subscribe",
    "chat.send",
    "chat.received",
    "chat.read",
    "chat.recap",
    "chat.close",
    "video.create",
    "call.create",
    "video.close",
    "call.close",
    "video.subscribe",
    "call.subscribe",
    "webrtc.offer",
    "webrtc.answer",
    "webrtc.candidate",
    "webrtc.mediaState",
];

/// Frames a successful response.
pub fn encode_result(id: &RpcId, result: &impl Serialize) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// Frames an error response (`id` null when the request's id could not be read).
pub fn encode_error(id: Option<&RpcId>, error: &RpcError) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "error": error}).to_string()
}

/// Frames a push.
pub fn encode_notify(subscription: &str, data: &impl Serialize) -> String {
    serde_json::json!({
        "jsonrpc": "2.0",
        "method": NOTIFY,
        "params": {"subscription": subscription, "data": data},
    })
    .to_string()
}
