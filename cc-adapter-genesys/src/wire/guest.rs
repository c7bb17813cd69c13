//! ACD Web Chat v2 "guest chat": REST bodies under `/api/v2/webchat/guest` and the
//! server-to-client event stream at `eventStreamUri`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{EntityPage, decode_body, decode_json, to_value};
use super::{DecodeError, WireToken};

/// The path prefix of every guest chat REST call.
pub const BASE_PATH: &str = "/api/v2/webchat/guest";

/// `CreateWebChatConversationRequest`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateConversationRequest {
    /// Organization id.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// Widget deployment key.
    #[serde(default)]
    pub deployment_id: Option<String>,
    /// Routing.
    #[serde(default)]
    pub routing_target: Option<RoutingTarget>,
    /// The guest.
    #[serde(default)]
    pub member_info: Option<MemberInfo>,
    /// JWT from signed data, for authenticated deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_auth_token: Option<WireToken>,
    /// Journey context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journey_context: Option<Value>,
}

/// `routingTarget`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingTarget {
    /// Always `QUEUE`.
    pub target_type: String,
    /// Queue name.
    pub target_address: String,
    /// Skills.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    /// Language skill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Priority 0–10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// `WebChatMemberInfo` (request and response).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberInfo {
    /// Member (communication) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Display name (required on create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// Avatar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_image_url: Option<String>,
    /// `AGENT`, `CUSTOMER`, `WORKFLOW`, `ACD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<MemberRole>,
    /// Joined, ISO-8601.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_date: Option<String>,
    /// Left, ISO-8601.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_date: Option<String>,
    /// Authenticated guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_guest: Option<bool>,
    /// Custom fields (string map).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_fields: BTreeMap<String, String>,
    /// `CONNECTED`, `DISCONNECTED`, `ALERTING`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<MemberState>,
}

/// Member role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MemberRole {
    /// An agent.
    Agent,
    /// The guest.
    Customer,
    /// An Architect flow.
    Workflow,
    /// The ACD placeholder while queued.
    Acd,
    /// Any other value.
    #[serde(other)]
    Unknown,
}

/// Member state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MemberState {
    /// In the chat.
    Connected,
    /// Left.
    Disconnected,
    /// Being offered the chat.
    Alerting,
    /// Any other value.
    #[serde(other)]
    Unknown,
}

/// `CreateWebChatConversationResponse`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateConversationResponse {
    /// Conversation id.
    pub id: String,
    /// JWT for every later call.
    pub jwt: WireToken,
    /// The event stream WebSocket URI (carries the JWT; treat as secret).
    pub event_stream_uri: WireToken,
    /// The guest member.
    pub member: MemberInfo,
}

/// `{ "id": ... }` references.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityRef {
    /// The id.
    #[serde(default)]
    pub id: String,
    /// Self URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
}

/// `bodyType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BodyType {
    /// A chat message.
    Standard,
    /// A notice.
    Notice,
    /// Someone joined.
    MemberJoin,
    /// Someone left.
    MemberLeave,
    /// Co-browse / screen share request.
    MediaRequest,
    /// Any other value.
    #[serde(other)]
    Unknown,
}

/// `CreateWebChatMessageRequest`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    /// Text, ≤ 4,000 characters.
    #[serde(default)]
    pub body: Option<String>,
    /// `standard` or `notice`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_type: Option<BodyType>,
}

/// `WebChatMessage`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebChatMessage {
    /// Message id.
    pub id: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conversation.
    #[serde(default)]
    pub conversation: EntityRef,
    /// Sender (often only `{id}`).
    #[serde(default)]
    pub sender: MemberInfo,
    /// Text.
    #[serde(default)]
    pub body: String,
    /// Kind.
    #[serde(default = "standard")]
    pub body_type: BodyType,
    /// ISO-8601.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Self URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
}

fn standard() -> BodyType {
    BodyType::Standard
}

/// `WebChatTyping`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebChatTyping {
    /// Event id.
    pub id: String,
    /// Conversation.
    #[serde(default)]
    pub conversation: EntityRef,
    /// Who types.
    #[serde(default)]
    pub sender: MemberInfo,
    /// ISO-8601.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// `WebChatMessageEntityList` (history).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEntityList {
    /// Page size.
    #[serde(default)]
    pub page_size: u32,
    /// Messages.
    #[serde(default)]
    pub entities: Vec<WebChatMessage>,
    /// URI of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_page: Option<String>,
    /// URI of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Self URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
}

/// `WebChatMemberInfoEntityList`.
pub type MemberEntityList = EntityPage<MemberInfo>;

/// The platform `ErrorBody`.
pub use super::common::ErrorBody;

/// One event-stream text frame, before its body is decoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// `v2.conversations.chats.<id>.messages`, `.members`, `channel.metadata`.
    pub topic_name: String,
    /// `"2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The body.
    #[serde(default)]
    pub event_body: Value,
    /// `{CorrelationId, type}`; absent on heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<NotificationMetadata>,
}

/// `metadata` of a notification (note the capital `CorrelationId`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotificationMetadata {
    /// Correlation id.
    #[serde(
        rename = "CorrelationId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub correlation_id: Option<String>,
    /// `message`, `member-change`, `typing-indicator`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// `member-change` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberChange {
    /// Conversation.
    #[serde(default)]
    pub conversation: EntityRef,
    /// `{id, state}`.
    pub member: MemberInfo,
    /// ISO-8601.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// A decoded event-stream frame.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// A message (standard, notice, member-join, member-leave).
    Message(WebChatMessage),
    /// A typing indicator.
    Typing(WebChatTyping),
    /// A member state change.
    MemberChange(MemberChange),
    /// `channel.metadata` heartbeat.
    Heartbeat,
    /// `channel.metadata` pong.
    Pong,
    /// Another topic or type, kept raw.
    Unknown {
        /// Topic.
        topic: String,
        /// `metadata.type`, when present.
        kind: Option<String>,
        /// Body.
        body: Value,
    },
}

/// The heartbeat text.
pub const HEARTBEAT: &str = "WebSocket Heartbeat";

const STREAM: &str = "guest chat event";

impl StreamEvent {
    /// Decodes one event-stream frame; never panics.
    pub fn decode(text: &str) -> Result<StreamEvent, DecodeError> {
        Self::from_notification(decode_json(STREAM, text)?)
    }

    /// Decodes the body of a notification.
    pub fn from_notification(n: Notification) -> Result<StreamEvent, DecodeError> {
        if n.topic_name == "channel.metadata" {
            let msg = n.event_body.get("message").and_then(Value::as_str);
            return Ok(match msg {
                Some(HEARTBEAT) => StreamEvent::Heartbeat,
                Some("pong") => StreamEvent::Pong,
                _ => StreamEvent::Unknown {
                    topic: n.topic_name,
                    kind: None,
                    body: n.event_body,
                },
            });
        }
        let kind = n.metadata.as_ref().map(|m| m.kind.clone());
        let chats = n.topic_name.starts_with("v2.conversations.chats.");
        match (chats, kind.as_deref()) {
            (true, Some("message")) if n.topic_name.ends_with(".messages") => Ok(
                StreamEvent::Message(decode_body(STREAM, "message", n.event_body)?),
            ),
            (true, Some("typing-indicator")) => Ok(StreamEvent::Typing(decode_body(
                STREAM,
                "typing-indicator",
                n.event_body,
            )?)),
            (true, Some("member-change")) if n.topic_name.ends_with(".members") => Ok(
                StreamEvent::MemberChange(decode_body(STREAM, "member-change", n.event_body)?),
            ),
            _ => Ok(StreamEvent::Unknown {
                topic: n.topic_name,
                kind,
                body: n.event_body,
            }),
        }
    }

    /// The notification for this event (the simulator's side).
    pub fn to_notification(&self, conversation: &str, correlation_id: &str) -> Notification {
        let meta = |kind: &str| {
            Some(NotificationMetadata {
                correlation_id: Some(correlation_id.to_owned()),
                kind: kind.to_owned(),
            })
        };
        match self {
            StreamEvent::Message(m) => Notification {
                topic_name: format!("v2.conversations.chats.{conversation}.messages"),
                version: Some("2".into()),
                event_body: to_value(m),
                metadata: meta("message"),
            },
            StreamEvent::Typing(t) => Notification {
                topic_name: format!("v2.conversations.chats.{conversation}.messages"),
                version: Some("2".into()),
                event_body: to_value(t),
                metadata: meta("typing-indicator"),
            },
            StreamEvent::MemberChange(c) => Notification {
                topic_name: format!("v2.conversations.chats.{conversation}.members"),
                version: Some("2".into()),
                event_body: to_value(c),
                metadata: meta("member-change"),
            },
            StreamEvent::Heartbeat => Notification {
                topic_name: "channel.metadata".into(),
                version: None,
                event_body: serde_json::json!({ "message": HEARTBEAT }),
                metadata: None,
            },
            StreamEvent::Pong => Notification {
                topic_name: "channel.metadata".into(),
                version: None,
                event_body: serde_json::json!({ "message": "pong" }),
                metadata: None,
            },
            StreamEvent::Unknown { topic, kind, body } => Notification {
                topic_name: topic.clone(),
                version: None,
                event_body: body.clone(),
                metadata: kind.as_ref().map(|k| NotificationMetadata {
                    correlation_id: Some(correlation_id.to_owned()),
                    kind: k.clone(),
                }),
            },
        }
    }
}
