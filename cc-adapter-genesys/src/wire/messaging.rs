//! Web Messaging guest API: WebSocket requests, the reply/push envelope, history over REST.
//!
//! Requests are one JSON object per text frame with `action`, `token` and an optional
//! `tracingId`. Replies and pushes share one envelope:
//! `{"type":"response"|"message","class":<class>,"code":<int>,"body":<object|string>,"tracingId"?}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{EntityPage, decode_body, decode_json, to_value};
use super::{DecodeError, WireToken};

const FRAME: &str = "web messaging frame";

/// A client-to-server request, tagged by `action`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Request {
    /// Opens or resumes the session named by `token`.
    ConfigureSession {
        /// The session token (client-generated, persisted to resume).
        token: WireToken,
        /// The Messenger deployment id.
        deployment_id: String,
        /// Start a new conversation after a read-only disconnect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_new: Option<bool>,
        /// Journey context (`customer`, `customerSession`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        journey_context: Option<Value>,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Sends a message (text, structured, or an event such as typing or presence).
    OnMessage {
        /// The session token.
        token: WireToken,
        /// The message.
        message: OutgoingMessage,
        /// Echoed in the reply and in the Inbound echo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Asks for a presigned upload URL.
    OnAttachment {
        /// The session token.
        token: WireToken,
        /// A client-generated UUID.
        attachment_id: String,
        /// File name.
        file_name: String,
        /// MIME type.
        file_type: String,
        /// Size in bytes.
        file_size: u64,
        /// MD5 of the content, optional.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_md5: Option<String>,
        /// Ask for JSON errors (`GenerateUrlError`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        errors_as_json: Option<bool>,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Asks for a fresh download URL.
    GetAttachment {
        /// The session token.
        token: WireToken,
        /// The attachment.
        attachment_id: String,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Deletes an uploaded attachment before it is sent.
    DeleteAttachment {
        /// The session token.
        token: WireToken,
        /// The attachment.
        attachment_id: String,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Application-level ping (`message: {type:"Text", text:"ping"}`).
    Echo {
        /// The session token.
        token: WireToken,
        /// Always a `ping` text.
        message: OutgoingMessage,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Asks for a JWT for the REST history.
    GetJwt {
        /// The session token.
        token: WireToken,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Closes the session (and, with `closeAllConnections`, every socket on the token).
    CloseSession {
        /// The session token.
        token: WireToken,
        /// Close every connection of the token.
        #[serde(default)]
        close_all_connections: bool,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Reads the deployment's session configuration.
    GetConfiguration {
        /// The session token.
        token: WireToken,
        /// The deployment.
        deployment_id: String,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
}

impl Request {
    /// The request's `tracingId`.
    pub fn tracing_id(&self) -> Option<&str> {
        match self {
            Request::ConfigureSession { tracing_id, .. }
            | Request::OnMessage { tracing_id, .. }
            | Request::OnAttachment { tracing_id, .. }
            | Request::GetAttachment { tracing_id, .. }
            | Request::DeleteAttachment { tracing_id, .. }
            | Request::Echo { tracing_id, .. }
            | Request::GetJwt { tracing_id, .. }
            | Request::CloseSession { tracing_id, .. }
            | Request::GetConfiguration { tracing_id, .. } => tracing_id.as_deref(),
        }
    }

    /// The request's session token.
    pub fn token(&self) -> &WireToken {
        match self {
            Request::ConfigureSession { token, .. }
            | Request::OnMessage { token, .. }
            | Request::OnAttachment { token, .. }
            | Request::GetAttachment { token, .. }
            | Request::DeleteAttachment { token, .. }
            | Request::Echo { token, .. }
            | Request::GetJwt { token, .. }
            | Request::CloseSession { token, .. }
            | Request::GetConfiguration { token, .. } => token,
        }
    }

    /// Serializes to the JSON text sent on the socket.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("requests always serialize")
    }

    /// Decodes a request (the simulator's side); never panics.
    pub fn decode(text: &str) -> Result<Request, DecodeError> {
        decode_json("web messaging request", text)
    }
}

/// The `type` of a message (`NormalizedType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageType {
    /// Plain text (possibly with attachments or button responses in `content`).
    Text,
    /// Rich content (quick replies, cards, carousels).
    Structured,
    /// Events only (typing, presence).
    Event,
    /// A receipt.
    Receipt,
    /// A generic message.
    Message,
    /// Any other value.
    #[serde(other)]
    Unknown,
}

/// A message the guest sends in `onMessage` / `echo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingMessage {
    /// `Text`, `Structured` or `Event`.
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// The text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Attachments and button responses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<ContentItem>,
    /// Typing and presence events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventItem>,
    /// String metadata kept with the message.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Channel data: `metadata.customAttributes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<OutgoingChannel>,
}

impl OutgoingMessage {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        OutgoingMessage {
            kind: MessageType::Text,
            text: Some(text.into()),
            content: Vec::new(),
            events: Vec::new(),
            metadata: BTreeMap::new(),
            channel: None,
        }
    }

    /// An event-only message.
    pub fn event(event: EventItem) -> Self {
        OutgoingMessage {
            kind: MessageType::Event,
            text: None,
            content: Vec::new(),
            events: vec![event],
            metadata: BTreeMap::new(),
            channel: None,
        }
    }
}

/// `channel` of an outgoing message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingChannel {
    /// Channel metadata.
    pub metadata: ChannelMetadata,
}

/// `channel.metadata` of an outgoing message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelMetadata {
    /// Custom attributes (string map) for routing and the agent's view.
    #[serde(default)]
    pub custom_attributes: BTreeMap<String, String>,
}

/// One element of `content`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentItem {
    /// `Attachment`, `ButtonResponse`, `QuickReply`, `Card`, `Carousel`, …
    pub content_type: String,
    /// For `Attachment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentWire>,
    /// For `ButtonResponse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_response: Option<ButtonResponse>,
    /// For `QuickReply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quick_reply: Option<QuickReply>,
    /// For `Card`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<CardWire>,
    /// For `Carousel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carousel: Option<CarouselWire>,
}

impl ContentItem {
    /// An attachment reference.
    pub fn attachment(attachment: AttachmentWire) -> Self {
        ContentItem {
            content_type: "Attachment".into(),
            attachment: Some(attachment),
            button_response: None,
            quick_reply: None,
            card: None,
            carousel: None,
        }
    }
}

/// An attachment in `content`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentWire {
    /// The attachment id.
    pub id: String,
    /// Download URL (agent files, echoes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// File name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// `Image`, `File`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
}

/// A button response the guest sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ButtonResponse {
    /// Label.
    pub text: String,
    /// Payload.
    pub payload: String,
    /// `QuickReply`, `Button`, …
    #[serde(rename = "type")]
    pub kind: String,
}

/// A quick reply offered by the agent or bot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuickReply {
    /// Label.
    pub text: String,
    /// Payload.
    pub payload: String,
    /// `Message`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// A card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardWire {
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Buttons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<CardAction>,
}

/// A card button.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardAction {
    /// `Button` or `Link`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Label.
    pub text: String,
    /// Payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A carousel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CarouselWire {
    /// Cards.
    pub cards: Vec<CardWire>,
}

/// One element of `events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventItem {
    /// `Typing`, `Presence`, …
    pub event_type: EventType,
    /// For `Typing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<Typing>,
    /// For `Presence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<Presence>,
}

impl EventItem {
    /// Typing `On`.
    pub fn typing_on(duration_ms: Option<u64>) -> Self {
        EventItem {
            event_type: EventType::Typing,
            typing: Some(Typing {
                kind: TypingType::On,
                duration: duration_ms,
            }),
            presence: None,
        }
    }

    /// A presence event.
    pub fn presence(kind: PresenceType) -> Self {
        EventItem {
            event_type: EventType::Presence,
            typing: None,
            presence: Some(Presence { kind }),
        }
    }
}

/// `eventType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// Typing indicator.
    Typing,
    /// Presence (join, disconnect, clear, …).
    Presence,
    /// Co-browse.
    CoBrowse,
    /// Video.
    Video,
    /// Reactions.
    Reactions,
    /// Any other value.
    #[serde(other)]
    Unknown,
}

/// A typing event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Typing {
    /// `On` (or `Off`, seen in one fixture).
    #[serde(rename = "type")]
    pub kind: TypingType,
    /// How long to show it, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
}

/// Typing `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TypingType {
    /// Started typing.
    On,
    /// Stopped typing.
    Off,
    /// Any other value.
    #[serde(other)]
    Unknown,
}

/// A presence event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: PresenceType,
}

/// Presence `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PresenceType {
    /// The guest joins (starts the conversation).
    Join,
    /// The agent or flow ended the conversation.
    Disconnect,
    /// The guest clears the conversation.
    Clear,
    /// Signed in.
    SignIn,
    /// Session expired.
    SessionExpired,
    /// Authentication requested.
    Authenticate,
    /// Authentication cancelled.
    AuthenticateCancel,
    /// Authentication failed.
    AuthenticateFailure,
    /// Any other value.
    #[serde(other)]
    Unknown,
}

/// `direction` of a structured message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// From the guest.
    Inbound,
    /// To the guest.
    Outbound,
    /// Any other value.
    #[serde(other)]
    Unknown,
}

/// Who produced an Outbound message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OriginatingEntity {
    /// A human agent.
    Human,
    /// A bot.
    Bot,
    /// Any other value.
    #[serde(other)]
    Unknown,
}

/// A message as the server sends it (pushes, echoes, history entities).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StructuredMessage {
    /// The platform's message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `Text`, `Structured`, `Event`, …
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// The text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `Inbound` or `Outbound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// `Human` or `Bot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originating_entity: Option<OriginatingEntity>,
    /// Channel data: time and sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Rich content and attachments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<ContentItem>,
    /// Events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventItem>,
    /// Metadata (`correlationId`, `readOnly`, `customMessageId`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, Value>,
}

impl StructuredMessage {
    /// A metadata value as text.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
}

/// `channel` of a server message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    /// ISO-8601 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Message id on the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// `Private`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Party>,
    /// The recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Party>,
}

/// `channel.from` / `channel.to`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Party {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// Avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

/// `allowedMedia`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowedMedia {
    /// What the guest may upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<InboundMedia>,
}

/// `allowedMedia.inbound`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundMedia {
    /// Allowed MIME types (`*/*` is a wildcard).
    #[serde(default)]
    pub file_types: Vec<FileType>,
    /// Largest file, in KB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_size_k_b: Option<u64>,
}

/// One allowed file type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileType {
    /// MIME type.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `SessionResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    /// Connected.
    pub connected: bool,
    /// A new session (false when the token resumed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_session: Option<bool>,
    /// The last conversation ended read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// An authenticated upgrade cleared the old session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_existing_session: Option<bool>,
    /// Upload limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_media: Option<AllowedMedia>,
    /// Blocked file extensions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_extensions: Vec<String>,
    /// Largest custom attributes, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_custom_data_bytes: Option<u64>,
    /// Session lifetime in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
    /// Expiry, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<i64>,
    /// The deployment auto-started the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_started: Option<bool>,
}

/// `PresignedUrlResponse`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresignedUrl {
    /// The attachment.
    pub attachment_id: String,
    /// Where to PUT (or GET, for a refresh).
    pub url: String,
    /// Headers to send with the PUT.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// File name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<String>,
}

/// `UploadSuccessEvent`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadSuccess {
    /// The attachment.
    pub attachment_id: String,
    /// Where to download it.
    pub download_url: String,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// `UploadFailureEvent` and `GenerateUrlError`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentError {
    /// The attachment.
    pub attachment_id: String,
    /// 4001–4010.
    pub error_code: i64,
    /// Text.
    #[serde(default)]
    pub error_message: String,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// `JwtResponse`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JwtResponse {
    /// The JWT for REST calls.
    pub jwt: WireToken,
    /// Expiry, epoch seconds.
    pub exp: i64,
}

/// `TooManyRequestsErrorMessage`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TooManyRequests {
    /// Seconds to wait.
    pub retry_after: u64,
    /// 4029.
    pub error_code: i64,
    /// Text.
    #[serde(default)]
    pub error_message: String,
}

/// `ConnectionClosedEvent`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionClosed {
    /// `signedIn`, or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `AttachmentDeletedResponse`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentDeleted {
    /// The attachment.
    pub attachment_id: String,
}

/// The envelope of every server frame, before its body is decoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// `response` or `message`.
    #[serde(rename = "type")]
    pub kind: EnvelopeType,
    /// The body's class.
    pub class: String,
    /// HTTP-like or 4000-range code.
    #[serde(default = "ok_code")]
    pub code: i64,
    /// The body.
    #[serde(default)]
    pub body: Value,
    /// The request's tracing id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing_id: Option<String>,
}

fn ok_code() -> i64 {
    200
}

/// `response` (a reply) or `message` (a push).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EnvelopeType {
    /// A direct reply to a request.
    Response,
    /// An asynchronous push.
    Message,
    /// Any other value.
    #[serde(other)]
    Unknown,
}

/// A decoded server frame body.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerBody {
    /// `SessionResponse`.
    Session(SessionResponse),
    /// `StructuredMessage` (pushes, echoes, echo replies).
    Message(Box<StructuredMessage>),
    /// `PresignedUrlResponse`.
    PresignedUrl(PresignedUrl),
    /// `AttachmentDeletedResponse`.
    AttachmentDeleted(AttachmentDeleted),
    /// `UploadSuccessEvent`.
    UploadSuccess(UploadSuccess),
    /// `UploadFailureEvent`.
    UploadFailure(AttachmentError),
    /// `GenerateUrlError`.
    GenerateUrlError(AttachmentError),
    /// `ConnectionClosedEvent`.
    ConnectionClosed(ConnectionClosed),
    /// `LogoutEvent`.
    Logout,
    /// `SessionExpiredEvent`.
    SessionExpired,
    /// `SessionClearedEvent`.
    SessionCleared,
    /// `JwtResponse`.
    Jwt(JwtResponse),
    /// `TooManyRequestsErrorMessage`.
    TooManyRequests(TooManyRequests),
    /// `class:"string"` (or `Error`): an error with a text body.
    Error {
        /// The message.
        message: String,
    },
    /// Another class (`GetConfigurationResponse`, `ResumeTokenResponse`, new ones), kept raw.
    Unknown {
        /// The class.
        class: String,
        /// The body.
        body: Value,
    },
}

/// A server frame: envelope plus decoded body.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerFrame {
    /// `response` or `message`.
    pub kind: EnvelopeType,
    /// The code.
    pub code: i64,
    /// The request's tracing id.
    pub tracing_id: Option<String>,
    /// The body.
    pub body: ServerBody,
}

fn body<T: serde::de::DeserializeOwned>(class: &str, v: Value) -> Result<T, DecodeError> {
    decode_body(FRAME, class, v)
}

impl ServerFrame {
    /// Decodes one text frame; never panics.
    pub fn decode(text: &str) -> Result<ServerFrame, DecodeError> {
        Self::from_envelope(decode_json(FRAME, text)?)
    }

    /// Decodes the body of an envelope.
    pub fn from_envelope(env: Envelope) -> Result<ServerFrame, DecodeError> {
        let class = env.class.as_str();
        let b = env.body;
        let body = match class {
            "SessionResponse" => ServerBody::Session(body(class, b)?),
            "StructuredMessage" => ServerBody::Message(Box::new(body(class, b)?)),
            "PresignedUrlResponse" => ServerBody::PresignedUrl(body(class, b)?),
            "AttachmentDeletedResponse" => ServerBody::AttachmentDeleted(body(class, b)?),
            "UploadSuccessEvent" => ServerBody::UploadSuccess(body(class, b)?),
            "UploadFailureEvent" => ServerBody::UploadFailure(body(class, b)?),
            "GenerateUrlError" => ServerBody::GenerateUrlError(body(class, b)?),
            "ConnectionClosedEvent" => ServerBody::ConnectionClosed(if b.is_null() {
                ConnectionClosed::default()
            } else {
                body(class, b)?
            }),
            "LogoutEvent" => ServerBody::Logout,
            "SessionExpiredEvent" => ServerBody::SessionExpired,
            "SessionClearedEvent" => ServerBody::SessionCleared,
            "JwtResponse" => ServerBody::Jwt(body(class, b)?),
            "TooManyRequestsErrorMessage" => ServerBody::TooManyRequests(body(class, b)?),
            "string" | "Error" => ServerBody::Error {
                message: match b {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                },
            },
            _ => ServerBody::Unknown {
                class: env.class.clone(),
                body: b,
            },
        };
        Ok(ServerFrame {
            kind: env.kind,
            code: env.code,
            tracing_id: env.tracing_id,
            body,
        })
    }

    /// The envelope for this frame (the simulator's side).
    pub fn to_envelope(&self) -> Envelope {
        let (class, body) = match &self.body {
            ServerBody::Session(b) => ("SessionResponse", to_value(b)),
            ServerBody::Message(b) => ("StructuredMessage", to_value(b)),
            ServerBody::PresignedUrl(b) => ("PresignedUrlResponse", to_value(b)),
            ServerBody::AttachmentDeleted(b) => ("AttachmentDeletedResponse", to_value(b)),
            ServerBody::UploadSuccess(b) => ("UploadSuccessEvent", to_value(b)),
            ServerBody::UploadFailure(b) => ("UploadFailureEvent", to_value(b)),
            ServerBody::GenerateUrlError(b) => ("GenerateUrlError", to_value(b)),
            ServerBody::ConnectionClosed(b) => ("ConnectionClosedEvent", to_value(b)),
            ServerBody::Logout => ("LogoutEvent", Value::Object(Default::default())),
            ServerBody::SessionExpired => {
                ("SessionExpiredEvent", Value::Object(Default::default()))
            }
            ServerBody::SessionCleared => {
                ("SessionClearedEvent", Value::Object(Default::default()))
            }
            ServerBody::Jwt(b) => ("JwtResponse", to_value(b)),
            ServerBody::TooManyRequests(b) => ("TooManyRequestsErrorMessage", to_value(b)),
            ServerBody::Error { message } => ("string", Value::String(message.clone())),
            ServerBody::Unknown { class, body } => (class.as_str(), body.clone()),
        };
        Envelope {
            kind: self.kind,
            class: class.to_owned(),
            code: self.code,
            body,
            tracing_id: self.tracing_id.clone(),
        }
    }

    /// Serializes to the JSON text sent on the socket.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.to_envelope()).expect("envelopes always serialize")
    }
}

/// A history page from `GET /api/v2/webmessaging/messages` (messages newest first).
pub type HistoryPage = EntityPage<StructuredMessage>;

impl EntityPage<StructuredMessage> {
    /// Decodes a history body; never panics.
    pub fn decode(text: &str) -> Result<HistoryPage, DecodeError> {
        decode_json("web messaging history page", text)
    }
}

/// The REST error body (platform `ErrorBody`), shared with the guest API.
pub use super::common::ErrorBody;
