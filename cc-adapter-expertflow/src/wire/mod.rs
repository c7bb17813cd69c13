//! Serde types of the Expertflow CX customer-side wire, exactly as on the wire
//! (`shared/protocols/expertflow.md` §3). Decoding is tolerant: unknown fields are kept in
//! `extra` maps, unknown body and notification types stay strings (see [`Body::kind`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub mod call;

/// Socket event names.
pub mod event {
    /// Client → server: start a chat (customer payload).
    pub const CHAT_REQUESTED: &str = "CHAT_REQUESTED";
    /// Both ways: a message envelope (client, with ack) or a CIM message (server).
    pub const MESSAGE_RECEIVED: &str = "MESSAGE_RECEIVED";
    /// Client → server, with ack: is there a live chat, and its history.
    pub const CHAT_RESUMED: &str = "CHAT_RESUMED";
    /// Both ways: the chat ends.
    pub const CHAT_ENDED: &str = "CHAT_ENDED";
    /// Server → client: the JWT for REST calls.
    pub const TOKEN_GENERATED: &str = "TOKEN_GENERATED";
    /// Server → client: the channel session started (CIM message).
    pub const CHANNEL_SESSION_STARTED: &str = "CHANNEL_SESSION_STARTED";
    /// Server → client: the channel session ended.
    pub const CHANNEL_SESSION_ENDED: &str = "CHANNEL_SESSION_ENDED";
    /// Server → client: the channel session expired (customer inactivity).
    pub const CHANNEL_SESSION_EXPIRED: &str = "CHANNEL_SESSION_EXPIRED";
    /// Server → client: `{task, code}`.
    pub const ERRORS: &str = "ERRORS";
    /// Server → client: another socket took over this customer's session.
    pub const SESSION_REPLACED: &str = "SESSION_REPLACED";
    /// Server → client: `{history}` of a live conversation, pushed on connect.
    pub const CONVERSATION_RESUMED: &str = "CONVERSATION_RESUMED";
}

/// The sender of a CIM message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sender {
    /// The sender's id.
    #[serde(default)]
    pub id: Option<String>,
    /// `AGENT`, `BOT`, `CUSTOMER`, `APP`, `CONNECTOR`, `SYSTEM`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    /// Extra details (agents: `firstName`, `lastName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_detail: Option<Value>,
}

/// `header.channelData`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelData {
    /// The customer's channel identifier.
    #[serde(default)]
    pub channel_customer_identifier: Option<String>,
    /// The service identifier.
    #[serde(default)]
    pub service_identifier: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A CIM message header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// Who sent it.
    #[serde(default)]
    pub sender: Option<Sender>,
    /// The channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_data: Option<ChannelData>,
    /// The conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Epoch milliseconds (a number; a numeric string is accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Value>,
    /// Intent (`UPDATE` marks an edit of `originalMessageId`).
    #[serde(default)]
    pub intent: Option<String>,
    /// The message replied to or edited.
    #[serde(default)]
    pub original_message_id: Option<String>,
    /// The customer record (`_id`, names, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<Value>,
    /// Everything else (`language`, `securityInfo`, `stamps`, `entities`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Header {
    /// The timestamp in epoch milliseconds.
    pub fn timestamp_ms(&self) -> Option<i64> {
        match self.timestamp.as_ref()? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
}

/// A CIM attachment (the widget's own extra fields `type`, `extType` kept in `extra`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireAttachment {
    /// Download URL (`{FILE}/api/downloadFileStream?filename=<name>`).
    #[serde(default)]
    pub media_url: Option<String>,
    /// MIME type.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// Size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// File name (server model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_name: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A CIM body; the fields of every known type, all optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Body {
    /// `PLAIN`, `NOTIFICATION`, `DELIVERYNOTIFICATION`, `FILE`, `IMAGE`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markdown_text: Option<String>,
    /// Notification type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_type: Option<String>,
    /// Notification data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_data: Option<Value>,
    /// Delivery notification: the message it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Delivery notification: `DELIVERED`, `READ`, `CONNECTED`, `FAILED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Delivery notification: 200 ok, else a failure code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<Value>,
    /// Media caption (the widget puts the file name here for image/video/audio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Media attachment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<WireAttachment>,
    /// Extra details (`fileName` for files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_details: Option<Value>,
    /// Everything else (`buttons`, `elements`, `sections`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The body types the adapter knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// Text.
    Plain,
    /// A notification (`notificationType`).
    Notification,
    /// A delivery or read receipt.
    DeliveryNotification,
    /// A file, image, video or audio attachment.
    Media,
    /// A URL.
    Url,
    /// Buttons or quick replies.
    Button,
    /// A carousel.
    Carousel,
    /// A form (widget or bot form).
    FormData,
    /// Anything else, kept as the vendor's name.
    Unknown(String),
}

impl Body {
    /// The body's kind.
    pub fn kind(&self) -> BodyKind {
        match self.kind.as_str() {
            "PLAIN" => BodyKind::Plain,
            "NOTIFICATION" => BodyKind::Notification,
            "DELIVERYNOTIFICATION" => BodyKind::DeliveryNotification,
            "FILE" | "IMAGE" | "VIDEO" | "AUDIO" | "MULTIMEDIA" | "STICKER" => BodyKind::Media,
            "URL" => BodyKind::Url,
            "BUTTON" => BodyKind::Button,
            "CAROUSEL" => BodyKind::Carousel,
            "FORM_DATA" => BodyKind::FormData,
            other => BodyKind::Unknown(other.to_owned()),
        }
    }

    /// A text body.
    pub fn plain(text: &str) -> Body {
        Body {
            kind: "PLAIN".to_owned(),
            markdown_text: Some(text.to_owned()),
            ..Body::default()
        }
    }

    /// A notification body.
    pub fn notification(kind: &str) -> Body {
        Body {
            kind: "NOTIFICATION".to_owned(),
            notification_type: Some(kind.to_owned()),
            markdown_text: Some(String::new()),
            ..Body::default()
        }
    }

    /// A delivery notification body.
    pub fn delivery(message_id: &str, status: &str) -> Body {
        Body {
            kind: "DELIVERYNOTIFICATION".to_owned(),
            message_id: Some(message_id.to_owned()),
            status: Some(status.to_owned()),
            reason_code: Some(Value::from(200)),
            ..Body::default()
        }
    }
}

/// A full CIM message (server → client, history).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CimMessage {
    /// The message id.
    #[serde(default)]
    pub id: Option<String>,
    /// The header.
    pub header: Header,
    /// The body.
    pub body: Body,
}

/// `browserDeviceInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrowserDeviceInfo {
    /// Browser id.
    pub browser_id: String,
    /// Browser id expiry.
    pub browser_id_expiry_time: String,
    /// Browser name.
    pub browser_name: String,
    /// Device type (required by the widget).
    pub device_type: String,
}

/// `locale`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locale {
    /// IANA time zone.
    pub timezone: String,
    /// Language.
    pub language: String,
    /// Country.
    pub country: String,
}

/// One pre-chat form answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormAttribute {
    /// The field key.
    pub key: String,
    /// The value.
    pub value: String,
    /// The value type (`string`, …).
    #[serde(rename = "type")]
    pub kind: String,
}

/// `formData`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormData {
    /// Form data id.
    pub id: String,
    /// The form's id.
    pub form_id: String,
    /// `web-widget` for the widget.
    pub filled_by: String,
    /// The answers.
    pub attributes: Vec<FormAttribute>,
    /// Entities (`{}`).
    #[serde(default)]
    pub entities: Value,
    /// When it was filled (epoch ms).
    #[serde(default)]
    pub created_on: Value,
}

/// The customer data object: sent in `CHAT_REQUESTED` (as `WebChannelData`), in every
/// message envelope, and in `CHAT_ENDED`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerData {
    /// Service identifier.
    pub service_identifier: String,
    /// Customer channel identifier.
    pub channel_customer_identifier: String,
    /// Browser and device.
    pub browser_device_info: BrowserDeviceInfo,
    /// Queue (`""` by default).
    pub queue: String,
    /// Locale.
    pub locale: Locale,
    /// Pre-chat form answers.
    pub form_data: FormData,
}

/// One `additionalAttributes` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdditionalAttribute {
    /// `WebChannelData`.
    pub key: String,
    /// `WebChannelData`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The data.
    pub value: Value,
}

/// `CHAT_REQUESTED` payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatRequested {
    /// Customer channel identifier.
    pub channel_customer_identifier: String,
    /// Service identifier.
    pub service_identifier: String,
    /// `[{key:"WebChannelData", type:"WebChannelData", value:{browserDeviceInfo, queue, locale, formData}}]`.
    pub additional_attributes: Vec<AdditionalAttribute>,
}

impl ChatRequested {
    /// The payload the widget builds from the customer data.
    pub fn from_customer(c: &CustomerData) -> ChatRequested {
        let value = serde_json::json!({
            "browserDeviceInfo": c.browser_device_info,
            "queue": c.queue,
            "locale": c.locale,
            "formData": c.form_data,
        });
        ChatRequested {
            channel_customer_identifier: c.channel_customer_identifier.clone(),
            service_identifier: c.service_identifier.clone(),
            additional_attributes: vec![AdditionalAttribute {
                key: "WebChannelData".to_owned(),
                kind: "WebChannelData".to_owned(),
                value,
            }],
        }
    }

    /// The `WebChannelData` value, if present.
    pub fn web_channel_data(&self) -> Option<&Value> {
        self.additional_attributes
            .iter()
            .find(|a| a.key == "WebChannelData")
            .map(|a| &a.value)
    }
}

/// The header of an outgoing envelope.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeHeader {
    /// Reply target (`null`).
    pub original_message_id: Option<String>,
    /// Intent (`null`).
    pub intent: Option<String>,
    /// Entities (messages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities: Option<Value>,
    /// `{carousalCardId}` (messages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_data: Option<Value>,
    /// The customer as sender (messages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Sender>,
}

/// The `MESSAGE_RECEIVED` envelope a customer sends (with ack).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// `PLAIN`, `NOTIFICATION`, `DELIVERYNOTIFICATION`, `FORM_DATA`, or the MIME major type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Header.
    pub header: EnvelopeHeader,
    /// CIM body.
    pub body: Body,
    /// The customer data.
    pub customer: CustomerData,
    /// Always `""`.
    #[serde(default)]
    pub timestamp: Value,
}

/// `CHAT_RESUMED` payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeRequest {
    /// Service identifier.
    pub service_identifier: String,
    /// Customer channel identifier.
    pub channel_customer_identifier: String,
}

/// The `CHAT_RESUMED` ack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeAck {
    /// Whether a live chat exists.
    #[serde(default)]
    pub is_chat_available: bool,
    /// The history (an array of CIM messages; anything else counts as none).
    #[serde(default)]
    pub data: Value,
}

/// The `MESSAGE_RECEIVED` ack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageAck {
    /// 200 = accepted.
    pub code: Value,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ERRORS` payload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorsPayload {
    /// The failed task (`CHAT_REQUESTED`).
    #[serde(default)]
    pub task: Option<String>,
    /// 408, 400, 500 …
    #[serde(default)]
    pub code: Value,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `CONVERSATION_RESUMED` payload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationResumed {
    /// The conversation's messages.
    #[serde(default)]
    pub history: Vec<CimMessage>,
}

/// The file engine's upload reply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadResponse {
    /// `File uploaded successfully`.
    #[serde(default)]
    pub message: Option<String>,
    /// ETag.
    #[serde(default)]
    pub etag: Option<String>,
    /// The stored name (prefixed), used in the download URL.
    pub name: String,
    /// MIME type.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
}

/// The widget configuration (`GET {CCM}/widget-configs/{id}`); known fields typed, the
/// rest in `extra`. Its `Debug` shows only the keys of `webRtc`, which carries the shared
/// SIP extension's password.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetConfig {
    /// Config id.
    #[serde(default)]
    pub id: Option<String>,
    /// Widget identifier.
    #[serde(default)]
    pub widget_identifier: Option<String>,
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// File transfer allowed.
    #[serde(default)]
    pub enable_file_transfer: Option<bool>,
    /// Transcript download allowed.
    #[serde(default)]
    pub enable_download_transcript: Option<bool>,
    /// Reconnect time.
    #[serde(default)]
    pub customer_reconnect_time: Option<Value>,
    /// Pre-chat form id (or `""`).
    #[serde(default)]
    pub form: Option<String>,
    /// WebRTC settings (for calls).
    #[serde(default)]
    pub web_rtc: Option<Value>,
    /// Callback settings `{enableCallback, callbackUrl, campaignId, allowDuplicate, …}`.
    #[serde(default)]
    pub callback: Option<Value>,
    /// Webhook settings.
    #[serde(default)]
    pub webhook: Option<Value>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for WidgetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let web_rtc_keys: Option<Vec<&str>> = self
            .web_rtc
            .as_ref()
            .and_then(Value::as_object)
            .map(|o| o.keys().map(String::as_str).collect());
        f.debug_struct("WidgetConfig")
            .field("id", &self.id)
            .field("widget_identifier", &self.widget_identifier)
            .field("title", &self.title)
            .field("enable_file_transfer", &self.enable_file_transfer)
            .field(
                "enable_download_transcript",
                &self.enable_download_transcript,
            )
            .field("customer_reconnect_time", &self.customer_reconnect_time)
            .field("form", &self.form)
            .field("web_rtc_keys", &web_rtc_keys)
            .field("callback", &self.callback)
            .field("webhook", &self.webhook)
            .field("extra_keys", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A business calendar event (`GET {CAL}/calendars/events`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarEvent {
    /// Event id.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Start (RFC 3339 or epoch ms).
    #[serde(default)]
    pub start_time: Value,
    /// End (RFC 3339 or epoch ms).
    #[serde(default)]
    pub end_time: Value,
    /// `BUSINESS_HOURS`, `HOLIDAY`, …
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Everything else (`shifts`, recurrence, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A callback request (`POST {callback.callbackUrl}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackRequest {
    /// Campaign id from the widget config.
    pub campaign_id: String,
    /// The number to call.
    pub phone1: String,
    /// Business parameter 1.
    pub business_param1: String,
    /// Business parameter 2.
    pub business_param2: String,
    /// Business parameter 3.
    pub business_param3: String,
    /// Business parameter 4.
    pub business_param4: String,
    /// Whether duplicates are allowed.
    pub duplicate_callbacks: bool,
}
