//! The AXP Chat SDK wire format: JSON bodies of the REST calls and the long-poll events,
//! exactly as on the wire (`shared/protocols/avaya.md` §3). The simulator uses the same
//! types, so client and server cannot drift.
//!
//! Every enum has an `Unknown` arm, so a new value from the server never fails a decode.

use std::collections::BTreeMap;

use cc_core::{Error, Role, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::VENDOR;

/// The path of every call, relative to `{host}/sdk/digital/chat/v1/integrations/{integrationId}/`.
pub mod paths {
    /// `POST sessions`.
    pub const SESSIONS: &str = "sessions";
    /// `GET|DELETE sessions/{id}`.
    pub fn session(id: &str) -> String {
        format!("sessions/{id}")
    }
    /// `GET sessions/{id}/events`.
    pub fn events(id: &str) -> String {
        format!("sessions/{id}/events")
    }
    /// `POST engagements`.
    pub const ENGAGEMENTS: &str = "engagements";
    /// `GET engagements/{id}`.
    pub fn engagement(id: &str) -> String {
        format!("engagements/{id}")
    }
    /// `POST engagements/{id}:join`.
    pub fn join(id: &str) -> String {
        format!("engagements/{id}:join")
    }
    /// `POST engagements/{id}:disconnect`.
    pub fn disconnect(id: &str) -> String {
        format!("engagements/{id}:disconnect")
    }
    /// `POST|GET engagements/{id}/messages`.
    pub fn messages(id: &str) -> String {
        format!("engagements/{id}/messages")
    }
}

/// The header carrying the application key.
pub const APPKEY_HEADER: &str = "appkey";
/// The header sent only on disconnection probes, carrying the session id.
pub const ROUTE_HEADER: &str = "x-route-request";
/// The exact `detail` of the 404 that says the session is gone.
pub const SESSION_NOT_FOUND: &str = "Session not found";

/// `ParticipantType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParticipantType {
    /// The end user.
    Customer,
    /// A human agent.
    Agent,
    /// A supervisor.
    Supervisor,
    /// The contact center.
    System,
    /// A bot.
    Bot,
    /// A value this crate does not know.
    #[serde(other)]
    Unknown,
}

impl ParticipantType {
    /// The neutral role.
    pub fn role(self) -> Role {
        match self {
            ParticipantType::Customer => Role::Customer,
            ParticipantType::Agent | ParticipantType::Supervisor => Role::Agent,
            ParticipantType::Bot => Role::Bot,
            ParticipantType::System | ParticipantType::Unknown => Role::System,
        }
    }
}

/// `EngagementStatus` (the dialog's `dialogStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DialogStatus {
    /// Created, the customer not yet added.
    Pending,
    /// The customer is in.
    Active,
    /// Being closed.
    Terminating,
    /// Closed.
    Terminated,
    /// A value this crate does not know.
    #[serde(other)]
    Unknown,
}

/// A participant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireParticipant {
    /// Its id.
    pub participant_id: String,
    /// Its type.
    pub participant_type: ParticipantType,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl WireParticipant {
    /// The neutral participant.
    pub fn to_participant(&self) -> cc_core::Participant {
        let mut p = cc_core::Participant::new(self.participant_type.role())
            .with_id(self.participant_id.as_str());
        p.display_name.clone_from(&self.display_name);
        p
    }
}

/// `POST sessions` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSessionRequest {
    /// The customer's name, when the JWT carries none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Always `web` in the vendor's SDK.
    pub client_type: String,
    /// Session parameters.
    #[serde(default)]
    pub session_parameters: BTreeMap<String, String>,
}

/// A session (`UserContext` on the wire).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireSession {
    /// The session id.
    pub session_id: String,
    /// The customer's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Session parameters.
    #[serde(default)]
    pub session_parameters: BTreeMap<String, String>,
    /// Every ongoing engagement of the user, across sessions.
    #[serde(default)]
    pub engagements: Vec<WireEngagement>,
}

/// An engagement: one dialog in practice (the SDK reads `dialogs[0]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireEngagement {
    /// The engagement id.
    pub engagement_id: String,
    /// Its dialogs.
    #[serde(default)]
    pub dialogs: Vec<WireDialog>,
}

impl WireEngagement {
    /// The first dialog, which the vendor's SDK uses.
    pub fn dialog(&self) -> Option<&WireDialog> {
        self.dialogs.first()
    }
}

/// A dialog of an engagement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireDialog {
    /// The dialog id.
    pub dialog_id: String,
    /// Its status.
    #[serde(default = "unknown_status")]
    pub dialog_status: DialogStatus,
    /// Created at (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Last update (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_at: Option<String>,
    /// Who takes part.
    #[serde(default)]
    pub participants: Vec<WireParticipant>,
}

fn unknown_status() -> DialogStatus {
    DialogStatus::Unknown
}

/// `POST engagements` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateEngagementRequest {
    /// The session.
    pub session_id: String,
    /// Context data for routing (`{}` when none).
    #[serde(default)]
    pub engagement_parameters: BTreeMap<String, String>,
}

/// `POST engagements/{id}:join` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    /// The dialog.
    pub dialog_id: String,
    /// The session joining.
    pub session_id: String,
}

/// `POST engagements/{id}:disconnect` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisconnectRequest {
    /// The dialog.
    pub dialog_id: String,
    /// The session.
    pub session_id: String,
    /// `USER_CLOSED`, `USER_INACTIVE` or `SYSTEM_CLOSED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `ElementText`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ElementText {
    /// The text.
    pub text: String,
    /// `PLAINTEXT`, `HTML` or `MARKDOWN`.
    pub text_format: String,
}

/// `MessageBody`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageBody {
    /// `TEXT` (the only type defined).
    pub element_type: String,
    /// The text, for `TEXT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_text: Option<ElementText>,
}

impl MessageBody {
    /// A plain-text body.
    pub fn plain(text: impl Into<String>) -> Self {
        MessageBody {
            element_type: "TEXT".to_owned(),
            element_text: Some(ElementText {
                text: text.into(),
                text_format: "PLAINTEXT".to_owned(),
            }),
        }
    }

    /// The text, for a `TEXT` body.
    pub fn text(&self) -> Option<&str> {
        self.element_text.as_ref().map(|t| t.text.as_str())
    }
}

/// `POST engagements/{id}/messages` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    /// The dialog.
    pub dialog_id: String,
    /// The session.
    pub session_id: String,
    /// The message this one replies to (a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_message_id: Option<String>,
    /// The body.
    pub body: MessageBody,
}

/// A message as the REST calls return it (send receipt, history item): flat sender fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireMessage {
    /// Its id.
    pub message_id: String,
    /// The dialog.
    pub dialog_id: String,
    /// The engagement.
    pub engagement_id: String,
    /// The order within the dialog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_index: Option<u64>,
    /// The message replied to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_message_id: Option<String>,
    /// The body.
    pub body: MessageBody,
    /// The sender's participant id.
    pub sender_participant_id: String,
    /// The sender's type.
    pub participant_type: ParticipantType,
    /// The sender's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Received at (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<String>,
    /// Last update (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_at: Option<String>,
}

impl WireMessage {
    /// The sender.
    pub fn sender(&self) -> WireParticipant {
        WireParticipant {
            participant_id: self.sender_participant_id.clone(),
            participant_type: self.participant_type,
            display_name: self.display_name.clone(),
        }
    }
}

/// `pagination` of a history page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// This page's number, 1 = newest.
    pub page_number: u32,
}

/// `links` of a history page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    /// The absolute URL of the next (older) page, `""` when none.
    #[serde(default)]
    pub next: String,
}

/// `GET engagements/{id}/messages` reply: newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesPage {
    /// The messages, newest first.
    #[serde(default)]
    pub messages: Vec<WireMessage>,
    /// Which page.
    pub pagination: Pagination,
    /// The next page.
    #[serde(default)]
    pub links: Links,
}

/// The `message` of a `MESSAGE` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMessage {
    /// Its id.
    pub message_id: String,
    /// The message replied to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_message_id: Option<String>,
    /// The order within the dialog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_index: Option<u64>,
    /// Received at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<String>,
    /// Last update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_at: Option<String>,
    /// The body.
    pub body: MessageBody,
}

/// `MESSAGE` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEvent {
    /// The engagement.
    pub engagement_id: String,
    /// The dialog.
    pub dialog_id: String,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_date: Option<String>,
    /// The message.
    pub message: EventMessage,
    /// The sender.
    pub participant: WireParticipant,
}

/// `PARTICIPANT_ADDED` / `PARTICIPANT_DISCONNECTED` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantEvent {
    /// The engagement.
    pub engagement_id: String,
    /// The dialog.
    pub dialog_id: String,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_date: Option<String>,
    /// Who.
    pub participant: WireParticipant,
    /// The session, for the customer's own participant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// `ENGAGEMENT_CREATED` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngagementCreatedEvent {
    /// The engagement.
    pub engagement_id: String,
    /// The session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// The `error` of an `ENGAGEMENT_ERROR` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngagementErrorBody {
    /// A URI.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// A title.
    #[serde(default)]
    pub title: String,
    /// Details.
    #[serde(default)]
    pub detail: String,
}

/// `ENGAGEMENT_ERROR` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngagementErrorEvent {
    /// The engagement.
    pub engagement_id: String,
    /// The dialog.
    #[serde(default)]
    pub dialog_id: String,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_date: Option<String>,
    /// What went wrong.
    pub error: EngagementErrorBody,
}

/// One server event of the long poll.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerEvent {
    /// `MESSAGE`.
    Message(MessageEvent),
    /// `PARTICIPANT_ADDED`.
    ParticipantAdded(ParticipantEvent),
    /// `PARTICIPANT_DISCONNECTED`.
    ParticipantDisconnected(ParticipantEvent),
    /// `ENGAGEMENT_CREATED`.
    EngagementCreated(EngagementCreatedEvent),
    /// `ENGAGEMENT_ERROR`.
    EngagementError(EngagementErrorEvent),
    /// Any other `eventType`, kept raw.
    Unknown {
        /// The `eventType`.
        event_type: String,
        /// The whole event.
        raw: Value,
    },
}

impl ServerEvent {
    /// The wire `eventType`.
    pub fn event_type(&self) -> &str {
        match self {
            ServerEvent::Message(_) => "MESSAGE",
            ServerEvent::ParticipantAdded(_) => "PARTICIPANT_ADDED",
            ServerEvent::ParticipantDisconnected(_) => "PARTICIPANT_DISCONNECTED",
            ServerEvent::EngagementCreated(_) => "ENGAGEMENT_CREATED",
            ServerEvent::EngagementError(_) => "ENGAGEMENT_ERROR",
            ServerEvent::Unknown { event_type, .. } => event_type,
        }
    }

    /// The event as JSON, with `eventId` and `eventType` (what the simulator sends).
    pub fn to_json(&self, event_id: &str) -> Value {
        let mut v = match self {
            ServerEvent::Message(e) => serde_json::to_value(e),
            ServerEvent::ParticipantAdded(e) | ServerEvent::ParticipantDisconnected(e) => {
                serde_json::to_value(e)
            }
            ServerEvent::EngagementCreated(e) => serde_json::to_value(e),
            ServerEvent::EngagementError(e) => serde_json::to_value(e),
            ServerEvent::Unknown { raw, .. } => Ok(raw.clone()),
        }
        .unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("eventId".to_owned(), Value::String(event_id.to_owned()));
            m.insert(
                "eventType".to_owned(),
                Value::String(self.event_type().to_owned()),
            );
        }
        v
    }
}

/// One element of a long-poll batch: its id (when it has one) and the event, or why it
/// could not be read.
#[derive(Debug)]
pub struct Decoded {
    /// `eventId`, when present and a string or number.
    pub event_id: Option<String>,
    /// The event, or a [`Error::Protocol`] naming it.
    pub event: Result<ServerEvent, Error>,
}

/// Decodes a long-poll reply: a JSON array of events. A body that is not an array is an
/// error; an element that does not decode is an error item, and the others go on.
pub fn decode_events(body: &[u8]) -> Result<Vec<Decoded>, Error> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Error::protocol(VENDOR, "event batch", e.to_string()))?;
    let Value::Array(items) = v else {
        return Err(Error::protocol(
            VENDOR,
            "event batch",
            "expected a JSON array",
        ));
    };
    Ok(items.into_iter().map(decode_event).collect())
}

/// Decodes one event object.
pub fn decode_event(v: Value) -> Decoded {
    let event_id = match v.get("eventId") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let event = (|| {
        let Some(kind) = v.get("eventType").and_then(Value::as_str) else {
            return Err(Error::protocol(VENDOR, "event", "no string `eventType`"));
        };
        if event_id.is_none() {
            return Err(Error::protocol(
                VENDOR,
                format!("{kind} event"),
                "no `eventId`",
            ));
        }
        fn typed<T: serde::de::DeserializeOwned>(kind: &str, v: Value) -> Result<T, Error> {
            serde_json::from_value(v)
                .map_err(|e| Error::protocol(VENDOR, format!("{kind} event"), e.to_string()))
        }
        Ok(match kind {
            "MESSAGE" => ServerEvent::Message(typed(kind, v.clone())?),
            "PARTICIPANT_ADDED" => ServerEvent::ParticipantAdded(typed(kind, v.clone())?),
            "PARTICIPANT_DISCONNECTED" => {
                ServerEvent::ParticipantDisconnected(typed(kind, v.clone())?)
            }
            "ENGAGEMENT_CREATED" => ServerEvent::EngagementCreated(typed(kind, v.clone())?),
            "ENGAGEMENT_ERROR" => ServerEvent::EngagementError(typed(kind, v.clone())?),
            other => ServerEvent::Unknown {
                event_type: other.to_owned(),
                raw: v.clone(),
            },
        })
    })();
    Decoded { event_id, event }
}

/// An RFC 7807 `application/problem+json` error body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A short title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Field violations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

/// One violation of a [`Problem`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A numeric code (`20002`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
}

impl Problem {
    /// Parses a problem body; anything else gives `None`.
    pub fn parse(body: &[u8]) -> Option<Problem> {
        serde_json::from_slice::<Problem>(body).ok()
    }
}

/// A wire timestamp (RFC 3339) as a [`Timestamp`], `None` when absent or unreadable.
pub fn timestamp(s: Option<&str>) -> Option<Timestamp> {
    s.and_then(Timestamp::parse_rfc3339)
}
