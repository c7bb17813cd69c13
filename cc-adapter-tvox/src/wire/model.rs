//! The widget library's data model (`shared/protocols/tvox.md` §2.5–2.6), field for field.
//!
//! These names are VERIFIED: they are the JavaScript interfaces and enums of the vendor's
//! widget documentation. Every enum keeps an `Unknown(String)` arm so a value added by a
//! newer server decodes instead of failing the whole frame. Optional fields are skipped
//! when absent, as the JS objects leave them undefined.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! wire_enum {
    (
        $(#[doc = $doc:literal])*
        $name:ident { $( $(#[doc = $vdoc:literal])* $variant:ident = $wire:literal, )* }
    ) => {
        $(#[doc = $doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[doc = $vdoc])* $variant, )*
            /// A value this version does not know, kept as sent.
            Unknown(String),
        }

        impl $name {
            /// Every known value.
            pub const KNOWN: &'static [$name] = &[ $( $name::$variant, )* ];

            /// The value as on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )*
                    $name::Unknown(s) => s,
                }
            }

            /// The value for a wire string (unknown strings become `Unknown`).
            pub fn from_wire(s: &str) -> Self {
                match s {
                    $( $wire => $name::$variant, )*
                    other => $name::Unknown(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Ok($name::from_wire(&s))
            }
        }
    };
}

wire_enum! {
    /// `MultiChannelType`: a contact channel.
    MultiChannelType {
        /// Phone call over WebRTC.
        PhoneCall = "PHONE_CALL",
        /// Video call over WebRTC.
        Video = "VIDEO",
        /// Chat.
        Chat = "CHAT",
        /// Ticket (mail) channel.
        Mail = "MAIL",
        /// Callback request.
        Callback = "CALLBACK",
    }
}

wire_enum! {
    /// `ConfigurationStatus`: how a channel or service is configured on the server.
    ConfigurationStatus {
        /// Disabled.
        Disabled = "DISABLED",
        /// Enabled.
        Enabled = "ENABLED",
        /// Not found.
        NotFound = "NOT_FOUND",
        /// No license on the server.
        NoLicense = "NO_LICENSE",
        /// Generic error.
        Failed = "FAILED",
    }
}

wire_enum! {
    /// `ServiceStatusValue`: whether a service takes contacts now.
    ServiceStatusValue {
        /// Open, with an agent logged in.
        Active = "ACTIVE",
        /// Open, without an agent logged in.
        OutOfService = "OUT_OF_SERVICE",
        /// Closed by the service's calendar.
        Overtime = "OVERTIME",
        /// Generic error.
        Failed = "FAILED",
    }
}

wire_enum! {
    /// `ChatChannelEventMessageStatus`: what a chat event says about its sender.
    ChatChannelEventMessageStatus {
        /// A message was written.
        Wrote = "WROTE",
        /// The sender is composing.
        Composing = "COMPOSING",
        /// Nobody is composing.
        Idle = "IDLE",
    }
}

wire_enum! {
    /// `ChatMessageType`: a normal message or a session open/close marker.
    ChatMessageType {
        /// A message.
        Message = "MESSAGE",
        /// The session opened.
        OpenSession = "OPEN_SESSION",
        /// The session closed.
        ClosedSession = "CLOSED_SESSION",
    }
}

wire_enum! {
    /// `Direction`, from the widget's point of view: `INBOUND` is agent → customer.
    Direction {
        /// Agent (or server) → customer.
        Inbound = "INBOUND",
        /// Customer → agent.
        Outbound = "OUTBOUND",
    }
}

wire_enum! {
    /// `MultiChannelState`: whether a channel session is open.
    MultiChannelState {
        /// Open.
        Active = "ACTIVE",
        /// Closed.
        Closed = "CLOSED",
    }
}

wire_enum! {
    /// `MultiChannelStepType`: where a channel session is.
    MultiChannelStepType {
        /// Waiting in the queue.
        Queue = "QUEUE",
        /// Playing a message (text, audio, video) to the customer.
        Play = "PLAY",
        /// Being connected to an agent.
        Connecting = "CONNECTING",
        /// Connected to an agent.
        Connected = "CONNECTED",
        /// The page should go to another URI.
        ToUrl = "TO_URL",
        /// Inactive: the session expires at `inactivityExpireDatetime`.
        InactiveTimeout = "INACTIVE_TIMEOUT",
        /// Active again after an inactivity warning.
        ActiveFromTimeout = "ACTIVE_FROM_TIMEOUT",
        /// The session reached its maximum duration.
        MaxDurationTimeout = "MAX_DURATION_TIMEOUT",
    }
}

wire_enum! {
    /// `CallState`: the state of a video or phone call session.
    CallState {
        /// A new call towards the customer.
        NewInbound = "NEW_INBOUND",
        /// A new call from the customer.
        NewOutbound = "NEW_OUTBOUND",
        /// Answered.
        Connected = "CONNECTED",
        /// Moved to a conference.
        Conferenced = "CONFERENCED",
        /// On hold.
        Hold = "HOLD",
        /// Closed.
        Idle = "IDLE",
    }
}

wire_enum! {
    /// `TrickleIcePolicy` (the vendor's enum values 1, 2, 3 travel by name).
    TrickleIcePolicy {
        /// 1: complete SDP only.
        NotSupported = "NotSupported",
        /// 2: candidates sent as gathered.
        FullTrickle = "FullTrickle",
        /// 3: the offer carries all local candidates, the answerer may trickle.
        HalfTrickle = "HalfTrickle",
    }
}

wire_enum! {
    /// `IceGatherPolicy` (the vendor's enum values 1, 2, 3 travel by name).
    IceGatherPolicy {
        /// 1: every candidate.
        All = "All",
        /// 2: no host candidates.
        NoHost = "NoHost",
        /// 3: relay candidates only.
        Relay = "Relay",
    }
}

/// `ServiceConfiguration`: one service the page may use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceConfiguration {
    /// The service code (`service0001`).
    pub code: String,
    /// The description (the vendor's example spells it `descritpion`; both are accepted).
    #[serde(
        default,
        alias = "descritpion",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
}

/// `ChannelServicesConfiguration`: one channel and its services.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelServicesConfiguration {
    /// The channel.
    #[serde(rename = "type")]
    pub channel: MultiChannelType,
    /// Its services.
    #[serde(default)]
    pub services: Vec<ServiceConfiguration>,
}

/// `CustomerInfo`: who the customer is, shown to the agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerInfo {
    /// Display name (required by the vendor).
    pub customer_display_name: String,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_last_name: Option<String>,
    /// An id, e.g. of the address book.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// A value, e.g. the e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_value: Option<String>,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_phone_number: Option<String>,
    /// Company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_company: Option<String>,
}

/// `WebrtcConfig`, without the browser-only `videoContainer`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebrtcConfig {
    /// Whether WebRTC (phone and video channels) is enabled.
    pub enabled: bool,
    /// The trickle ICE policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trickle_ice_policy: Option<TrickleIcePolicy>,
    /// The ICE gather policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice_gather_policy: Option<IceGatherPolicy>,
}

/// `ServiceStatus`: the status of one service on one channel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// How the channel is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_configuration: Option<ConfigurationStatus>,
    /// The channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<MultiChannelType>,
    /// The service code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// How the service is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_configuration: Option<ConfigurationStatus>,
    /// The status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceStatusValue>,
}

/// `MultiChannelStepUnion`, flattened: `step` and `type`, plus the one field each variant
/// adds (`queuePosition`, `welcomeMessage`, `uri`, `inactivityExpireDatetime`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiChannelStep {
    /// The step counter of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    /// The step's type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub step_type: Option<MultiChannelStepType>,
    /// `QUEUE`: the position, `None` when the server does not know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u32>,
    /// `PLAY`: the message shown while waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome_message: Option<String>,
    /// `TO_URL`: where the page should go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// `INACTIVE_TIMEOUT`: when the session expires (INFERRED epoch milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactivity_expire_datetime: Option<i64>,
    /// `CONNECTED`: the agent's display name. PROPOSED: not in the vendor's data model,
    /// which names no agent; absent from a real server, the agent stays unnamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
}

/// `MultiChannelSession` with the fields of its subtypes: `ChatChannelSession` adds
/// nothing, `VideoChannelSession` and `CallChannelSession` add `start`, `time`, `state`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelSession {
    /// The session id.
    pub id: String,
    /// The service it is on now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Open or closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_state: Option<MultiChannelState>,
    /// The current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<MultiChannelStep>,
    /// Video/call: the call's start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Video/call: the server time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Video/call: the call state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<CallState>,
    /// Video/call, with `state: IDLE`: why the call ended. PROPOSED: not in the vendor's
    /// data model; Q.850-style names (`USER_BUSY`, `NO_ANSWER`, `CALL_REJECTED`,
    /// `NORMAL_CLEARING`, …). Without it an `IDLE` is a plain hang-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
}

/// `ChatChannelSession`.
pub type ChatChannelSession = ChannelSession;
/// `VideoChannelSession`.
pub type VideoChannelSession = ChannelSession;
/// `CallChannelSession`.
pub type CallChannelSession = ChannelSession;

/// `ChatChannelEventMessage`: one item of a chat's event monitor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatChannelEventMessage {
    /// The text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Message, or session open/close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<ChatMessageType>,
    /// Wrote, composing or idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ChatChannelEventMessageStatus>,
    /// When, as an ISO-8601 string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Inbound (agent → customer) or outbound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// The event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The chat session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}
