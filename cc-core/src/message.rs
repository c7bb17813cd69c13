//! The chat message and content model shared by every adapter.
//!
//! These are plain data types; the machinery around them (outbox, transcript, pager,
//! typing debounce) lives in `cc-chat`. They live here because [`crate::Event`] and the
//! [`crate::Engagement`] trait carry them.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Participant;

/// A point in time, as milliseconds since the Unix epoch (what most vendors send).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Now, from the system clock.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_ms(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 time (`2026-11-23T12:00:00.123Z`, any offset, any fraction
    /// digits, truncated to milliseconds); `None` when `text` is not one.
    ///
    /// Vendors bend the format, so three liberties are taken: a space may stand for the
    /// `T`, an offset may lack its colon (`+0100`), and a time with no offset at all is read
    /// as UTC.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        use time::format_description::well_known::Rfc3339;
        let text = text.trim();
        let mut text = match text.as_bytes().get(10) {
            Some(b' ') => format!("{}T{}", &text[..10], &text[11..]),
            _ => text.to_owned(),
        };
        // `…:00+0100`: the offset's four digits after a sign, past the seconds.
        let b = text.as_bytes();
        if b.len() >= 24
            && matches!(b[b.len() - 5], b'+' | b'-')
            && b[b.len() - 4..].iter().all(u8::is_ascii_digit)
        {
            text.insert(text.len() - 2, ':');
        }
        let t = time::OffsetDateTime::parse(&text, &Rfc3339)
            .ok()
            .or_else(|| {
                // No offset (`…:00.123`): UTC, only when nothing else follows the seconds.
                let tail = text.get(19..)?;
                let fraction = tail.strip_prefix('.').unwrap_or(tail);
                let bare = tail.is_empty()
                    || (tail.starts_with('.')
                        && !fraction.is_empty()
                        && fraction.bytes().all(|b| b.is_ascii_digit()));
                if !bare {
                    return None;
                }
                time::OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339).ok()
            })?;
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
            .ok()
            .map(Timestamp)
    }

    /// Formats as RFC 3339 in UTC with milliseconds (`2026-11-23T12:00:00.123Z`), the form
    /// most vendors send.
    pub fn to_rfc3339(self) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
        let (h, mi, s, ms) = (t.hour(), t.minute(), t.second(), t.millisecond());
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
    }

    /// The absolute time between two timestamps.
    pub const fn abs_diff(self, other: Timestamp) -> Duration {
        Duration::from_millis(self.0.abs_diff(other.0))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }
}

/// The id of an engagement (a chat), as the vendor gives it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EngagementId(pub Arc<str>);

impl EngagementId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EngagementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for EngagementId {
    fn from(s: &str) -> Self {
        EngagementId(Arc::from(s))
    }
}

impl From<String> for EngagementId {
    fn from(s: String) -> Self {
        EngagementId(Arc::from(s))
    }
}

/// The id of a message as the vendor gives it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub Arc<str>);

impl MessageId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for MessageId {
    fn from(s: &str) -> Self {
        MessageId(Arc::from(s))
    }
}

impl From<String> for MessageId {
    fn from(s: String) -> Self {
        MessageId(Arc::from(s))
    }
}

/// The id the SDK gives a message it sends, before the vendor knows it: a UUID v7, so ids
/// sort by creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientMessageId([u8; 16]);

impl ClientMessageId {
    /// A new id (UUID v7).
    pub fn new() -> Self {
        ClientMessageId(*uuid::Uuid::now_v7().as_bytes())
    }

    /// The id from its 128-bit value.
    pub const fn from_u128(v: u128) -> Self {
        ClientMessageId(v.to_be_bytes())
    }

    /// The 128-bit value.
    pub const fn as_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }
}

impl Default for ClientMessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ClientMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&uuid::Uuid::from_bytes(self.0).hyphenated(), f)
    }
}

impl FromStr for ClientMessageId {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s)
            .map(|u| ClientMessageId(*u.as_bytes()))
            .map_err(|e| crate::Error::invalid(None, "client_id", e.to_string()))
    }
}

impl Serialize for ClientMessageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClientMessageId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A file carried by a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The vendor's id of the file, when it has one.
    pub id: Option<String>,
    /// File name.
    pub name: String,
    /// MIME type.
    pub mime_type: String,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// Where to download it, when known.
    pub url: Option<String>,
}

/// A file the app uploads.
#[derive(Clone, PartialEq, Eq)]
pub struct Upload {
    /// File name.
    pub name: String,
    /// MIME type.
    pub mime_type: String,
    /// The content.
    pub bytes: Arc<[u8]>,
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload")
            .field("name", &self.name)
            .field("mime_type", &self.mime_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// One button or quick reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// What the customer sees.
    pub label: String,
    /// What is sent back when chosen (the label when the vendor has no separate payload).
    pub payload: String,
    /// A link to open instead of sending a reply, for URL buttons.
    pub url: Option<String>,
}

/// A card: title, text, image and buttons.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// Title.
    pub title: String,
    /// Body text.
    pub text: Option<String>,
    /// Image URL.
    pub image_url: Option<String>,
    /// Buttons.
    #[serde(default)]
    pub actions: Vec<Action>,
}

/// One field of a form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormField {
    /// The field's key.
    pub name: String,
    /// The label shown.
    pub label: String,
    /// Whether an answer is required.
    pub required: bool,
    /// Choices, for a choice field; empty for free text.
    #[serde(default)]
    pub options: Vec<String>,
}

/// Structured content from an agent or bot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RichContent {
    /// A text with quick replies.
    QuickReplies {
        /// The prompt.
        text: String,
        /// The replies offered.
        replies: Vec<Action>,
    },
    /// A text with buttons.
    Buttons {
        /// The prompt.
        text: String,
        /// The buttons.
        buttons: Vec<Action>,
    },
    /// One card.
    Card(Card),
    /// Several cards side by side.
    Carousel {
        /// The cards.
        cards: Vec<Card>,
    },
    /// A form to fill in.
    Form {
        /// The form's title.
        title: String,
        /// The fields.
        fields: Vec<FormField>,
    },
}

/// A custom notice or app message: a kind and a JSON payload, not shown as chat text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The kind (the vendor's notice type, or the app's own).
    pub kind: String,
    /// The payload.
    pub payload: serde_json::Value,
}

/// What a message carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Content {
    /// Plain text.
    Text(String),
    /// A file.
    File(Attachment),
    /// Structured content.
    Rich(RichContent),
    /// A custom notice.
    Notice(Notice),
}

impl Content {
    /// Plain text content.
    pub fn text(s: impl Into<String>) -> Self {
        Content::Text(s.into())
    }

    /// The text of a text message, the prompt of rich content, the name of a file.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Content::Text(t) => Some(t),
            Content::File(a) => Some(&a.name),
            Content::Rich(
                RichContent::QuickReplies { text, .. } | RichContent::Buttons { text, .. },
            ) => Some(text),
            Content::Rich(RichContent::Card(c)) => Some(&c.title),
            Content::Rich(RichContent::Form { title, .. }) => Some(title),
            Content::Rich(RichContent::Carousel { .. }) | Content::Notice(_) => None,
        }
    }
}

/// Where a message is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryState {
    /// Queued in the outbox, not yet acknowledged by the vendor.
    Pending,
    /// Acknowledged or echoed by the vendor.
    Sent,
    /// Delivered to the other side.
    Delivered,
    /// Read by the other side.
    Read,
    /// Given up.
    Failed {
        /// Why.
        reason: String,
        /// Whether sending it again may succeed.
        retryable: bool,
    },
}

impl DeliveryState {
    /// Orders states so a late `Delivered` never overwrites `Read`.
    pub const fn rank(&self) -> u8 {
        match self {
            DeliveryState::Pending => 0,
            DeliveryState::Sent => 1,
            DeliveryState::Delivered => 2,
            DeliveryState::Read => 3,
            DeliveryState::Failed { .. } => 4,
        }
    }
}

/// A receipt the customer sends for an agent's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Receipt {
    /// The message reached the customer's device.
    Delivered,
    /// The customer read it.
    Read,
}

/// One chat message, inbound or outbound.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The vendor's id, once known.
    pub id: Option<MessageId>,
    /// The SDK's id, for messages this client sent.
    pub client_id: Option<ClientMessageId>,
    /// The engagement it belongs to.
    pub engagement: EngagementId,
    /// Who sent it.
    pub sender: Participant,
    /// What it carries.
    pub content: Content,
    /// The vendor's time, when it gave one.
    pub server_time: Option<Timestamp>,
    /// The local time it was created or received.
    pub local_time: Timestamp,
    /// The delivery state (for outbound messages).
    pub state: DeliveryState,
    /// Kept out of the visible transcript (filtered messages).
    #[serde(default)]
    pub hidden: bool,
}

impl Message {
    /// The time used for ordering: the server's time when known, else the local time.
    pub fn sort_time(&self) -> Timestamp {
        self.server_time.unwrap_or(self.local_time)
    }
}

/// What [`crate::Engagement::send`] returns: the message as the outbox recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    /// The SDK's id of the message.
    pub client_id: ClientMessageId,
    /// The vendor's id, when it was already known on return.
    pub id: Option<MessageId>,
    /// The state on return (`Pending` while disconnected).
    pub state: DeliveryState,
}

/// One turn of a bot conversation, replayed to the agent at handoff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotTurn {
    /// Who spoke: [`crate::Role::Bot`] or [`crate::Role::Customer`].
    pub role: crate::Role,
    /// What was said.
    pub text: String,
    /// When.
    pub time: Timestamp,
}

/// One page of history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryPage {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// Whether older messages exist.
    pub has_older: bool,
    /// Whether newer messages exist.
    pub has_newer: bool,
}
